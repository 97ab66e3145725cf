"""A Glue Data Catalog table per export, so Athena, Trino or Spark can query the landed CSV.

Each export asset may have one EXTERNAL_TABLE over its newest verified export folder
(``s3://<bucket>/<path>/<exportId>/export/``): columns named and typed from the DataSet's schema,
Hive's ``OpenCSVSerde`` (it reads quoted fields, the ones Domo writes around commas and quotes),
the header line skipped, gzip read by the text input format. A partitioned export has one table
whose partition key is the Hive key of its S3 prefix (``dt``...) and one Glue partition per
Dagster partition, located at that partition's newest export folder.

Every call is idempotent: the database is created when missing, the table and partitions are
created, or updated only when they differ. A table this project did not create is never
touched. Failures are typed: :class:`GluePermissionError` names the permission to grant (trying
again cannot help); :class:`GlueUnavailableError` is anything else and is ``retryable``. Nothing
here reads or writes S3, so a Glue failure never loses an export's files.

It knows boto3's Glue client and the Domo layer's records, nothing of Dagster.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from domo_assets.domo.errors import ConfigurationError
from domo_assets.domo.models import DataSetColumn
from domo_assets.s3.storage import error_code

TABLE_TYPE = "EXTERNAL_TABLE"
CSV = "csv"
PARQUET = "parquet"
FILE_FORMATS = (CSV, PARQUET)
PARQUET_SERDE_LIBRARY = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
PARQUET_INPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
# As s3/parquet.py writes them (DECIMAL: decimal128(38, 18); DATETIME: timestamp[us]).
PARQUET_GLUE_TYPES = {
    "STRING": "string",
    "LONG": "bigint",
    "DOUBLE": "double",
    "DECIMAL": "decimal(38,18)",
    "DATE": "date",
    "DATETIME": "timestamp",
}
SERDE_LIBRARY = "org.apache.hadoop.hive.serde2.OpenCSVSerde"
INPUT_FORMAT = "org.apache.hadoop.mapred.TextInputFormat"
OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
# Domo writes RFC 4180 CSV: fields quoted with ", a quote inside doubled. With " as the escape
# character too, opencsv reads "" as a quote and leaves backslashes in the data alone.
SERDE_PARAMETERS: Mapping[str, str] = {"separatorChar": ",", "quoteChar": '"', "escapeChar": '"'}
COMPRESSIONS = ("gzip", "none")
PARTITION_KEY_TYPE = "string"
# Parameter marking the tables (and partitions) this project manages, with the export shown.
MANAGED_BY_PARAMETER = "domo_assets.managed_by"
MANAGED_BY = "domo_assets"
EXPORT_ID_PARAMETER = "domo_assets.export_id"
INCLUDE_BOM_PARAMETER = "domo_assets.include_bom"
# Athena and Hive lower-case every name and allow only letters, digits and _ in them.
NAME_PATTERN = re.compile(r"^[a-z0-9_]{1,255}$")
COMMENT_MAX_LENGTH = 255
FALLBACK_TYPE = "string"
# Domo types to Hive types that the OpenCSVSerde reads. AWS documents that it recognises BIGINT,
# INT, DOUBLE and BOOLEAN values; a DATE only as days since 1970 and a TIMESTAMP only as epoch
# milliseconds. So: DECIMAL is double (DECIMAL is not among the types it parses; beyond about
# 15 significant digits use the Parquet table or CAST the text); DATE stays string, since Domo
# writes YYYY-MM-DD; DATETIME stays string, since Domo writes YYYY-MM-DDTHH:MM:SS, whose T
# Hive's timestamp does not parse. Unknown Domo types are string.
GLUE_TYPES: Mapping[str, str] = {
    "STRING": "string",
    "LONG": "bigint",
    "DECIMAL": "double",
    "DOUBLE": "double",
    "DATE": "string",
    "DATETIME": "string",
}
# Domo writes a null as an empty field, which Athena's OpenCSVSerde cannot read as bigint or
# double: the whole query fails (HIVE_BAD_DATA). This Athena table property reads such values as
# NULL. AWS warns that it hides schema mismatches; here the header and the schema are verified
# before a table ever points at an export.
NULL_FOR_INVALID_PARAMETER = "use.null.for.invalid.data"
CONSOLE_URL = (
    "https://{region}.console.aws.amazon.com/glue/home?region={region}"
    "#/v2/data-catalog/tables/view/{table}?database={database}"
)
UNKNOWN_ACCOUNT = "<account-id>"
_UNSAFE_NAME = re.compile(r"[^a-z0-9_]+")
_ACCESS_DENIED_CODES = {"AccessDenied", "AccessDeniedException"}
_NOT_FOUND = frozenset({"EntityNotFoundException"})
_ALREADY_EXISTS = frozenset({"AlreadyExistsException"})
# An account id in an ARN of AWS's refusal ("User: arn:aws:iam::123456789012:user/x is ...").
_ACCOUNT_IN_ARN = re.compile(r"arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:(\d{12}):")
# moto answers Glue's JSON protocol with an XML error body: keep only its <Message>.
_XML_MESSAGE = re.compile(r"<Message>(.*?)</Message>", re.DOTALL)


class GlueError(Exception):
    """Base of the Glue failures this module raises; ``retryable`` says if trying again may help.

    The export's files in S3 are never touched by a Glue call: the export stays materialized
    whatever the table step does.
    """

    retryable = False


class GluePermissionError(GlueError, ConfigurationError):
    """Glue refused an action for lack of permission; the message names what to grant."""

    def __init__(self, message: str, permission: str, resources: tuple[str, ...]) -> None:
        super().__init__(message)
        self.permission = permission
        self.resources = resources


class GlueUnavailableError(GlueError):
    """Any other Glue failure (outage, throttling, a refused request): try again next time."""

    retryable = True


class GlueTableConflictError(GlueError, ConfigurationError):
    """The table exists but this project did not create it, or the schema cannot be named."""


class TableChange(StrEnum):
    """What registering an export did to a table or a partition."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class GlueTable:
    """The Glue table of one export asset.

    Attributes:
        database: The Glue database (created when missing).
        name: The table's name.
        columns: The exported columns, in file order, with their Domo types.
        compression: ``gzip`` or ``none``, as Domo reports the export's (None: ``none``).
        include_bom: Whether the files start with a UTF-8 BOM. It lies at the start of the header
            line, which the table skips, so rows read the same; it is recorded as a parameter.
        partition_key: The Hive key of a partitioned export's prefix (``dt``...), or None.
        root: A partitioned table's own location, ``s3://<bucket>/<path>/``.
        file_format: ``csv`` (the export's files) or ``parquet`` (its Parquet asset's files,
            typed as ``s3/parquet.py`` writes them).

    Raises:
        ValueError: A name Athena cannot use, an unknown compression, or a partition key
            without a root.
        GlueTableConflictError: Two columns (or a column and the partition key) share a name.
    """

    database: str
    name: str
    columns: tuple[DataSetColumn, ...]
    compression: str | None
    include_bom: bool = False
    partition_key: str | None = None
    root: str | None = None
    file_format: str = CSV

    def __post_init__(self) -> None:
        for what, value in (("database", self.database), ("table", self.name)):
            _check_name(what, value)
        if self.partition_key is not None:
            _check_name("partition key", self.partition_key)
            if not self.root:
                raise ValueError(
                    f"Glue table {self.table_name}: a partitioned table needs its root location "
                    "(s3://<bucket>/<path>/)"
                )
        if self.file_format not in FILE_FORMATS:
            raise ValueError(
                f"Glue table {self.table_name}: unknown format {self.file_format!r}; expected "
                f"one of {', '.join(FILE_FORMATS)}"
            )
        if self.compression_type not in COMPRESSIONS:
            raise ValueError(
                f"Glue table {self.table_name}: unknown compression {self.compression!r}; "
                f"expected one of {', '.join(COMPRESSIONS)}"
            )
        glue_columns(self)  # name clashes fail here, before any Glue call

    @property
    def table_name(self) -> str:
        """``<database>.<table>``, as ``dagster/table_name`` spells it."""
        return f"{self.database}.{self.name}"

    @property
    def compression_type(self) -> str:
        """The ``compressionType`` table parameter."""
        return (self.compression or "none").lower()


@dataclass(frozen=True)
class TableReference:
    """Where a table is shown: its qualified name and its page in the Glue console."""

    table_name: str
    console_url: str


@dataclass(frozen=True)
class GlueRegistration:
    """What registering one export in Glue did.

    Attributes:
        reference: The table's name and console link.
        location: The export folder the table (or the partition) now reads.
        database_created: Whether the database had to be created.
        table: What happened to the table.
        partition: What happened to the partition, for a partitioned table.
        partition_value: The partition registered, for a partitioned table.
    """

    reference: TableReference
    location: str
    database_created: bool
    table: TableChange
    partition: TableChange | None = None
    partition_value: str | None = None


def parquet_glue_type(domo_type: str) -> str:
    """The Hive type of a Parquet column written from a Domo type (see ``PARQUET_GLUE_TYPES``):
    the Parquet files carry real dates, timestamps and decimals, unlike the CSV."""
    return PARQUET_GLUE_TYPES.get(domo_type.strip().upper(), FALLBACK_TYPE)


def glue_type(domo_type: str) -> str:
    """The Hive type a Domo column type is declared with (see ``GLUE_TYPES``)."""
    return GLUE_TYPES.get(domo_type.strip().upper(), FALLBACK_TYPE)


def glue_column_name(name: str) -> str:
    """A Domo column name as Athena and Hive accept it: ``Customer ID`` -> ``customer_id``."""
    return _UNSAFE_NAME.sub("_", name.strip().lower()).strip("_") or "_"


def glue_columns(table: GlueTable) -> list[dict[str, str]]:
    """The table's ``Columns``: Hive names and types, the Domo name and type in each comment.

    Raises:
        GlueTableConflictError: Two columns, or a column and the partition key, share a name.
    """
    columns: list[dict[str, str]] = []
    seen: dict[str, str] = {table.partition_key: "the partition key"} if table.partition_key else {}
    for column in table.columns:
        name = glue_column_name(column.name)
        if name in seen:
            raise GlueTableConflictError(
                f"Glue table {table.table_name}: column {column.name!r} and {seen[name]} both "
                f"become {name!r} (Athena lower-cases names and allows only letters, digits and "
                "_); rename one in Domo, or choose another partition key_name"
            )
        seen[name] = f"column {column.name!r}"
        comment = f"{column.name} (Domo {column.type})"[:COMMENT_MAX_LENGTH]
        kind = parquet_glue_type(column.type) if table.file_format == PARQUET else None
        columns.append({"Name": name, "Type": kind or glue_type(column.type), "Comment": comment})
    return columns


def storage_descriptor(table: GlueTable, location: str) -> dict[str, Any]:
    """The ``StorageDescriptor`` of the table or of one partition, reading ``location``."""
    if table.file_format == PARQUET:
        return {
            "Columns": glue_columns(table),
            "Location": location,
            "InputFormat": PARQUET_INPUT_FORMAT,
            "OutputFormat": PARQUET_OUTPUT_FORMAT,
            "Compressed": False,
            "SerdeInfo": {"SerializationLibrary": PARQUET_SERDE_LIBRARY, "Parameters": {}},
            "Parameters": _format_parameters(table),
        }
    return {
        "Columns": glue_columns(table),
        "Location": location,
        "InputFormat": INPUT_FORMAT,
        "OutputFormat": OUTPUT_FORMAT,
        "Compressed": table.compression_type != "none",
        "SerdeInfo": {"SerializationLibrary": SERDE_LIBRARY, "Parameters": dict(SERDE_PARAMETERS)},
        "Parameters": _format_parameters(table),
    }


def table_input(table: GlueTable, location: str, export_id: str | None) -> dict[str, Any]:
    """The ``TableInput`` of CreateTable and UpdateTable.

    Args:
        table: The table.
        location: The export folder (unpartitioned) or the table's root (partitioned).
        export_id: The export an unpartitioned table shows; None for a partitioned table, whose
            partitions name theirs (so registering a partition leaves the table unchanged).
    """
    document: dict[str, Any] = {
        "Name": table.name,
        "TableType": TABLE_TYPE,
        "StorageDescriptor": storage_descriptor(table, location),
        "PartitionKeys": [],
        "Parameters": {
            "EXTERNAL": "TRUE",
            **_format_parameters(table),
            INCLUDE_BOM_PARAMETER: str(table.include_bom).lower(),
            MANAGED_BY_PARAMETER: MANAGED_BY,
        },
    }
    if export_id is not None:
        document["Parameters"][EXPORT_ID_PARAMETER] = export_id
    if table.partition_key:
        document["PartitionKeys"] = [{"Name": table.partition_key, "Type": PARTITION_KEY_TYPE}]
    return document


def table_reference(database: str, table: str, region: str) -> TableReference:
    """``<database>.<table>`` (for ``dagster/table_name``) and the table's Glue console link."""
    url = CONSOLE_URL.format(region=region, table=table, database=database)
    return TableReference(table_name=f"{database}.{table}", console_url=url)


def register_export(
    glue_client: Any,
    table: GlueTable,
    location: str,
    export_id: str,
    partition_value: str | None = None,
) -> GlueRegistration:
    """Point the table (or a partition of it) at a verified export's folder, idempotently.

    Creates the database and the table when missing; updates the table when it differs. For a
    partitioned table the table reads its root and the partition ``partition_value`` reads
    ``location``, created or moved there.

    Args:
        glue_client: A boto3 Glue client, in the bucket's region.
        table: The table.
        location: The export folder, ``s3://<bucket>/<path>/<exportId>/export/``.
        export_id: The export.
        partition_value: The Dagster partition, required for a partitioned table.

    Returns:
        What was done.

    Raises:
        ValueError: A partition value for an unpartitioned table, or none for a partitioned one.
        GluePermissionError: Glue refused an action; the message names the permission.
        GlueTableConflictError: The table exists and this project did not create it.
        GlueUnavailableError: Any other Glue failure; retry on the next materialization.
    """
    if (partition_value is None) != (table.partition_key is None):
        raise ValueError(
            f"Glue table {table.table_name}: a partition value is needed exactly when the "
            f"table has a partition key (key {table.partition_key!r}, value {partition_value!r})"
        )
    region = glue_client.meta.region_name
    database_created = ensure_database(glue_client, table.database)
    if partition_value is None:
        change = upsert_table(glue_client, table, location, export_id)
        partition = None
    else:
        change = upsert_table(glue_client, table, str(table.root), None)
        partition = upsert_partition(glue_client, table, partition_value, location, export_id)
    return GlueRegistration(
        reference=table_reference(table.database, table.name, region),
        location=location,
        database_created=database_created,
        table=change,
        partition=partition,
        partition_value=partition_value,
    )


def ensure_database(glue_client: Any, database: str) -> bool:
    """Create the Glue database when it is missing.

    Returns:
        Whether it was created (False when it existed, or another run created it meanwhile).
    """
    call = _Caller(glue_client, database)
    if call("GetDatabase", absent=_NOT_FOUND, Name=database) is not None:
        return False
    created = call(
        "CreateDatabase",
        absent=_ALREADY_EXISTS,
        DatabaseInput={"Name": database, "Description": f"Domo exports ({MANAGED_BY})"},
    )
    return created is not None


def upsert_table(
    glue_client: Any, table: GlueTable, location: str, export_id: str | None
) -> TableChange:
    """Create the table, or update it in place when it differs from what it should be.

    Args:
        glue_client: A boto3 Glue client.
        table: The table.
        location: As :func:`table_input`.
        export_id: As :func:`table_input`.

    Raises:
        GlueTableConflictError: The table exists and this project did not create it.
        GluePermissionError, GlueUnavailableError: As :func:`register_export`.
    """
    call = _Caller(glue_client, table.database, table.name)
    wanted = table_input(table, location, export_id)
    found = call("GetTable", absent=_NOT_FOUND, DatabaseName=table.database, Name=table.name)
    if found is None:
        created = call(
            "CreateTable", absent=_ALREADY_EXISTS, DatabaseName=table.database, TableInput=wanted
        )
        if created is not None:
            return TableChange.CREATED
        # Another run created it between the two calls: update it as if it had been there.
        found = call("GetTable", DatabaseName=table.database, Name=table.name)
    current = found["Table"]
    if current.get("Parameters", {}).get(MANAGED_BY_PARAMETER) != MANAGED_BY:
        raise GlueTableConflictError(
            f"Glue table {table.table_name} exists but was not created by {MANAGED_BY} (no "
            f"{MANAGED_BY_PARAMETER} parameter), so it is left alone: choose another table name "
            "for this export, or drop that table if it may be replaced"
        )
    if _covers(current, wanted):
        return TableChange.UNCHANGED
    call("UpdateTable", DatabaseName=table.database, TableInput=wanted)
    return TableChange.UPDATED


def upsert_partition(
    glue_client: Any, table: GlueTable, value: str, location: str, export_id: str
) -> TableChange:
    """Create the partition ``value``, or move it to ``location`` when it reads another folder.

    Raises:
        GluePermissionError, GlueUnavailableError: As :func:`register_export`.
    """
    call = _Caller(glue_client, table.database, table.name)
    wanted = {
        "Values": [value],
        "StorageDescriptor": storage_descriptor(table, location),
        "Parameters": {MANAGED_BY_PARAMETER: MANAGED_BY, EXPORT_ID_PARAMETER: export_id},
    }
    keys = {"DatabaseName": table.database, "TableName": table.name}
    found = call("GetPartition", absent=_NOT_FOUND, PartitionValues=[value], **keys)
    if found is None:
        created = call("CreatePartition", absent=_ALREADY_EXISTS, PartitionInput=wanted, **keys)
        if created is not None:
            return TableChange.CREATED
        found = call("GetPartition", PartitionValues=[value], **keys)
    if _covers(found["Partition"], wanted):
        return TableChange.UNCHANGED
    call("UpdatePartition", PartitionValueList=[value], PartitionInput=wanted, **keys)
    return TableChange.UPDATED


def permission_resources(
    region: str, account: str, database: str, table: str | None = None
) -> tuple[str, ...]:
    """The ARNs Glue checks an action on: the catalog, the database and, for tables, the table.

    The most specific comes first.
    """
    base = f"arn:aws:glue:{region}:{account}"
    resources = [f"{base}:catalog", f"{base}:database/{database}"]
    if table is not None:
        resources.append(f"{base}:table/{database}/{table}")
    return tuple(reversed(resources))


class _Caller:
    """Calls Glue for one database (and table), turning its failures into this module's."""

    def __init__(self, glue_client: Any, database: str, table: str | None = None) -> None:
        self._client = glue_client
        self._database = database
        self._table = table

    def __call__(
        self, action: str, absent: frozenset[str] = frozenset(), **kwargs: Any
    ) -> dict[str, Any] | None:
        """Call ``action``; None when Glue answers one of the ``absent`` error codes."""
        method = getattr(self._client, _snake(action))
        try:
            return method(**kwargs)
        except ClientError as exc:
            code = error_code(exc)
            if code in absent:
                return None
            if _access_denied(exc):
                raise self._permission_error(action, exc) from None
            raise self._unavailable(action, f"{code or 'error'}: {_aws_message(exc)}") from None
        except BotoCoreError as exc:
            raise self._unavailable(action, str(exc)) from None

    @property
    def _what(self) -> str:
        if self._table is None:
            return f"database {self._database}"
        return f"table {self._database}.{self._table}"

    def _permission_error(self, action: str, exc: ClientError) -> GluePermissionError:
        message = _aws_message(exc)
        match = _ACCOUNT_IN_ARN.search(message)
        account = match.group(1) if match else UNKNOWN_ACCOUNT
        region = self._client.meta.region_name
        resources = permission_resources(region, account, self._database, self._table)
        permission = f"glue:{action}"
        others = " and ".join(resources[1:])
        return GluePermissionError(
            f"Glue refused {permission} on {self._what} ({message}). Grant {permission} on "
            f"{resources[0]} (Glue also checks it on {others}) to the identity that runs the "
            "materialization; the export's files stay in S3 and the table is registered on the "
            "next materialization",
            permission,
            resources,
        )

    def _unavailable(self, action: str, reason: str) -> GlueUnavailableError:
        return GlueUnavailableError(
            f"Glue glue:{action} on {self._what} failed ({reason}); the export's files stay in "
            "S3, and the table step is tried again on the next materialization"
        )


def _check_name(what: str, value: str) -> None:
    if not NAME_PATTERN.fullmatch(value):
        raise ValueError(
            f"Glue {what} name {value!r} is not usable by Athena: use 1 to 255 lower-case "
            "letters, digits or _"
        )


def _format_parameters(table: GlueTable) -> dict[str, str]:
    if table.file_format == PARQUET:
        return {"classification": "parquet"}
    return {
        "classification": "csv",
        "compressionType": table.compression_type,
        "skip.header.line.count": "1",
        NULL_FOR_INVALID_PARAMETER: "true",
    }


def _covers(current: Any, wanted: Any) -> bool:
    """Whether ``current`` (as Glue returns it) holds everything ``wanted`` sets.

    Keys Glue adds are ignored; an empty list or mapping Glue leaves out counts as given.
    """
    if current is None and isinstance(wanted, Mapping | list) and not wanted:
        return True
    if isinstance(wanted, Mapping):
        return isinstance(current, Mapping) and all(
            _covers(current.get(key), value) for key, value in wanted.items()
        )
    if isinstance(wanted, Sequence) and not isinstance(wanted, str):
        return (
            isinstance(current, Sequence)
            and not isinstance(current, str)
            and len(current) == len(wanted)
            and all(_covers(c, w) for c, w in zip(current, wanted, strict=True))
        )
    return current == wanted


def _access_denied(exc: ClientError) -> bool:
    code = error_code(exc)
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in _ACCESS_DENIED_CODES or status == 403


def _aws_message(exc: ClientError) -> str:
    message = str(exc.response.get("Error", {}).get("Message", "")).strip()
    match = _XML_MESSAGE.search(message)
    return (match.group(1).strip() if match else message) or "no message"


def _snake(action: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", action).lower()
