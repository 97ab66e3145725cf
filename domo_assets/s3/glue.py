"""A Glue Data Catalog table per export, so Athena, Trino or Spark can query the landed CSV.

Each export asset may have one EXTERNAL_TABLE over its newest verified export folder
(``s3://<bucket>/<path>/<exportId>/export/``): columns named and typed from the DataSet's schema,
Hive's ``OpenCSVSerde`` (it reads quoted fields, the ones Domo writes around commas and quotes),
the header line skipped, gzip read by the text input format. A partitioned export has one table
whose partition key is the Hive key of its S3 prefix (``dt``...) and one Glue partition per
Dagster partition, located at that partition's newest export folder. The Parquet table of an
export's Parquet asset is declared with the very names its files are written under
(``s3/columns.py``), since Athena reads Parquet columns by name.

Every call is idempotent: the database is created when missing, the table and partitions are
created, or updated only when they differ. A table this project did not create is never
touched. A table (or partition) is never moved to an export older than the one it names: each
records its export's id and Domo start time (see :func:`supersedes`). Failures are typed:
:class:`GluePermissionError` names the permission to grant (trying again cannot help);
:class:`GlueUnavailableError` is anything else and is ``retryable``. Nothing here reads or
writes S3, so a Glue failure never loses an export's files.

It knows boto3's Glue client and the Domo layer's records, nothing of Dagster.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from domo_assets.domo.errors import ConfigurationError
from domo_assets.domo.models import DataSetColumn
from domo_assets.s3.columns import domo_column_name, table_column_names
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
# Domo writes RFC 4180 CSV: fields quoted with " where needed, a quote inside doubled, nothing
# escaped. OpenCSVSerde (Hive's, and Trino's port of it that Athena runs) parses each line with
# opencsv's rules: inside quotes a doubled quote is one quote, whatever the escape character;
# an escape character is dropped, and a quote or escape character right after it is taken
# literally. So the escape character must be one that never reaches the parser. A quote does
# not do: Hive and Trino replace an escapeChar of '"' with a backslash, so every backslash in
# the data would vanish, and a quoted value ending in one would swallow the rest of its row. A
# line feed does: the text input format cuts the files into lines at every LF and CR before the
# SerDe sees them, so no line holds one. What no setting can read is a value holding a line
# break: its record arrives as two lines (see csv_table_reading).
SERDE_PARAMETERS: Mapping[str, str] = {"separatorChar": ",", "quoteChar": '"', "escapeChar": "\n"}
CSV_DESCRIPTION = (
    "CSV files of a Domo export, registered by domo_assets. OpenCSVSerde reads each line as a "
    "row: a value holding a line break splits its row, so read such data from the Parquet "
    "table (<table>_parquet, with parquet: true). Column comments give the Domo names."
)
PARQUET_DESCRIPTION = (
    "Parquet files of a Domo export, registered by domo_assets; the files' columns carry the "
    "table's names. Column comments give the Domo names."
)
COMPRESSIONS = ("gzip", "none")
PARTITION_KEY_TYPE = "string"
# Parameter marking the tables (and partitions) this project manages, with the export shown.
MANAGED_BY_PARAMETER = "domo_assets.managed_by"
MANAGED_BY = "domo_assets"
EXPORT_ID_PARAMETER = "domo_assets.export_id"
# Domo's start time of that export, ISO-8601 UTC; absent when Domo gave none.
EXPORT_STARTED_PARAMETER = "domo_assets.export_started"
INCLUDE_BOM_PARAMETER = "domo_assets.include_bom"
# Athena and Hive lower-case every name and allow only letters, digits and _ in them.
NAME_PATTERN = re.compile(r"^[a-z0-9_]{1,255}$")
COMMENT_MAX_LENGTH = 255
# The optimistic-concurrency token of GetTable, passed back to UpdateTable (see upsert_table).
VERSION_ID = "VersionId"
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
    LEFT_ON_NEWER = "left_on_newer"
    """It names a newer export than the one registered, and was left on it (not an error)."""


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
        GlueTableConflictError: A column's name is the partition key's.
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
        glue_columns(self)  # a clash with the partition key fails here, before any Glue call

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
class ExportStamp:
    """An export as a table or partition records it: its id and Domo's start time of it.

    Attributes:
        export_id: Domo's ``exportId``.
        started: When Domo started the export (aware), None when Domo did not say.
    """

    export_id: str
    started: datetime | None

    def __post_init__(self) -> None:
        if self.started is not None and self.started.tzinfo is None:
            raise ValueError(
                f"export {self.export_id}: its start time {self.started} has no time zone; pass "
                "Domo's time as an aware datetime (domo.models.parse_timestamp gives UTC)"
            )

    @property
    def started_text(self) -> str | None:
        """The start time as recorded: ISO-8601 UTC with microseconds, or None."""
        if self.started is None:
            return None
        return self.started.astimezone(UTC).isoformat(timespec="microseconds")

    def describe(self) -> str:
        """``export <id> (started <time>)``, for messages."""
        started = self.started_text or "when, Domo did not say"
        return f"export {self.export_id} (started {started})"


@dataclass(frozen=True)
class GlueRegistration:
    """What registering one export in Glue did.

    Attributes:
        reference: The table's name and console link.
        location: The export folder the table (or the partition) reads after the call: the one
            registered, or the newer export's when it was left on that.
        database_created: Whether the database had to be created.
        table: What happened to the table.
        shown: The export the table (or the partition) names after the call.
        partition: What happened to the partition, for a partitioned table.
        partition_value: The partition registered, for a partitioned table.
    """

    reference: TableReference
    location: str
    database_created: bool
    table: TableChange
    shown: ExportStamp
    partition: TableChange | None = None
    partition_value: str | None = None

    @property
    def left_on_newer(self) -> bool:
        """The table (or partition) names a newer export and was left on it."""
        return TableChange.LEFT_ON_NEWER in (self.table, self.partition)


@dataclass(frozen=True)
class CsvTableReading:
    """Whether an export's CSV table reads it exactly, and which table to query instead.

    Attributes:
        readable: True when every value is known to read back exactly, False when some value
            is known not to (a line break inside a value), None when it is not known.
        query: The qualified table to query for this export (``dagster/table_name``), or None
            when no table of it reads it exactly.
        note: What a reader should know, in a sentence.
    """

    readable: bool | None
    query: str | None
    note: str


def csv_table_reading(
    csv_table: str, parquet_table: str | None, line_breaks: int | None
) -> CsvTableReading:
    """Which table reads an export exactly, from what verification saw of its values.

    The CSV table (see ``SERDE_PARAMETERS``) reads every value exactly except one holding a
    line break (LF or CR): the text input format ends the row there, so the table returns the
    record as fragment rows. The Parquet table reads any value.

    Args:
        csv_table: The CSV table, ``<database>.<table>``.
        parquet_table: The Parquet table (``parquet: true``), or None.
        line_breaks: Line breaks inside quoted fields over the export's files, as deep
            verification counted them; None when the values were not read (basic verification).

    Returns:
        Whether the CSV table reads the export, which table to query, and why.
    """
    if line_breaks == 0:
        return CsvTableReading(
            True,
            csv_table,
            f"{csv_table} reads every value exactly: deep verification found no line break "
            "inside a value",
        )
    if line_breaks is not None:
        found = (
            f"deep verification found {line_breaks} line break(s) inside values, which "
            f"{csv_table} reads as row ends (it returns fragment rows)"
        )
        if parquet_table is None:
            return CsvTableReading(
                False,
                None,
                f"no table reads this export exactly: {found}; set parquet: true for a "
                "Parquet table that does",
            )
        return CsvTableReading(False, parquet_table, f"query {parquet_table}: {found}")
    unknown = (
        f"{csv_table} reads values exactly unless one holds a line break, which basic "
        "verification does not look for"
    )
    if parquet_table is None:
        return CsvTableReading(
            None,
            csv_table,
            f"{unknown}: use verify: deep to know, or parquet: true for a table that reads any "
            "value",
        )
    return CsvTableReading(None, parquet_table, f"query {parquet_table}: {unknown}")


def supersedes(export: ExportStamp, shown: ExportStamp | None) -> bool:
    """Whether ``export`` may replace ``shown`` as what a table (or partition) reads.

    Exports are ordered by Domo's start time, then by export id (a tie-break only: ids are
    UUIDs). Re-registering the export shown is allowed (it refreshes the definition). When the
    shown export has no recorded start time (Domo gave none, or an earlier version registered
    it), nothing shows it newer, so it is replaced. When only ``export`` lacks one, it cannot be
    shown newer, so the table stays where it is: a table never moves to an export that may be
    older than the one it names.
    """
    if shown is None or shown.export_id == export.export_id or shown.started is None:
        return True
    if export.started is None:
        return False
    return (export.started, export.export_id) > (shown.started, shown.export_id)


def parquet_glue_type(domo_type: str) -> str:
    """The Hive type of a Parquet column written from a Domo type (see ``PARQUET_GLUE_TYPES``):
    the Parquet files carry real dates, timestamps and decimals, unlike the CSV."""
    return PARQUET_GLUE_TYPES.get(domo_type.strip().upper(), FALLBACK_TYPE)


def glue_type(domo_type: str) -> str:
    """The Hive type a Domo column type is declared with (see ``GLUE_TYPES``)."""
    return GLUE_TYPES.get(domo_type.strip().upper(), FALLBACK_TYPE)


def glue_columns(table: GlueTable) -> list[dict[str, str]]:
    """The table's ``Columns``: the names of ``s3/columns.py`` (the Parquet files' too), Hive
    types, the Domo name and type in each comment.

    Raises:
        GlueTableConflictError: A column's name is the partition key's.
    """
    names = table_column_names([column.name for column in table.columns])
    columns: list[dict[str, str]] = []
    for name, column in zip(names, table.columns, strict=True):
        domo_name = domo_column_name(column.name)
        if name == table.partition_key:
            raise GlueTableConflictError(
                f"Glue table {table.table_name}: column {domo_name!r} becomes {name!r}, the "
                "partition key's name (Athena lower-cases names and allows only letters, digits "
                "and _); choose another partition key_name"
            )
        comment = f"{domo_name} (Domo {column.type})"[:COMMENT_MAX_LENGTH]
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


def table_input(table: GlueTable, location: str, export: ExportStamp | None) -> dict[str, Any]:
    """The ``TableInput`` of CreateTable and UpdateTable.

    Args:
        table: The table.
        location: The export folder (unpartitioned) or the table's root (partitioned).
        export: The export an unpartitioned table shows; None for a partitioned table, whose
            partitions name theirs (so registering a partition leaves the table unchanged).
    """
    document: dict[str, Any] = {
        "Name": table.name,
        "Description": PARQUET_DESCRIPTION if table.file_format == PARQUET else CSV_DESCRIPTION,
        "TableType": TABLE_TYPE,
        "StorageDescriptor": storage_descriptor(table, location),
        "PartitionKeys": [],
        "Parameters": {
            "EXTERNAL": "TRUE",
            **_format_parameters(table),
            INCLUDE_BOM_PARAMETER: str(table.include_bom).lower(),
            MANAGED_BY_PARAMETER: MANAGED_BY,
            **(export_parameters(export) if export is not None else {}),
        },
    }
    if table.partition_key:
        document["PartitionKeys"] = [{"Name": table.partition_key, "Type": PARTITION_KEY_TYPE}]
    return document


def export_parameters(export: ExportStamp) -> dict[str, str]:
    """The parameters naming the export a table or partition shows: id and start time."""
    parameters = {EXPORT_ID_PARAMETER: export.export_id}
    if export.started_text is not None:
        parameters[EXPORT_STARTED_PARAMETER] = export.started_text
    return parameters


def shown_export(parameters: Mapping[str, str], what: str) -> ExportStamp | None:
    """The export a table's or partition's parameters name, or None when they name none.

    Raises:
        GlueTableConflictError: The recorded start time is not an ISO-8601 time with a zone
            (the parameter was edited by hand).
    """
    export_id = parameters.get(EXPORT_ID_PARAMETER)
    if not export_id:
        return None
    recorded = parameters.get(EXPORT_STARTED_PARAMETER)
    if recorded is None:
        return ExportStamp(export_id, None)
    try:
        started = datetime.fromisoformat(recorded)
    except ValueError:
        started = None
    if started is None or started.tzinfo is None:
        raise GlueTableConflictError(
            f"{what}: parameter {EXPORT_STARTED_PARAMETER} is {recorded!r}, not an ISO-8601 time "
            "with a zone, so it cannot be ordered against the export registered; remove the "
            "parameter (the next registration moves the table and writes it again)"
        )
    return ExportStamp(export_id, started)


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
    *,
    started: datetime | None,
) -> GlueRegistration:
    """Point the table (or a partition of it) at a verified export's folder, idempotently.

    Creates the database and the table when missing; updates the table when it differs. For a
    partitioned table the table reads its root and the partition ``partition_value`` reads
    ``location``, created or moved there. A table (or partition) that names a newer export
    than this one (see :func:`supersedes`) is left on it: the result says so
    (``TableChange.LEFT_ON_NEWER``), which is not an error.

    Args:
        glue_client: A boto3 Glue client, in the bucket's region.
        table: The table.
        location: The export folder, ``s3://<bucket>/<path>/<exportId>/export/``.
        export_id: The export.
        partition_value: The Dagster partition, required for a partitioned table.
        started: Domo's start time of the export (aware), None when Domo did not give it.

    Returns:
        What was done.

    Raises:
        ValueError: A partition value for an unpartitioned table, or none for a partitioned
            one; a start time without a zone.
        GluePermissionError: Glue refused an action; the message names the permission.
        GlueTableConflictError: The table exists and this project did not create it.
        GlueUnavailableError: Any other Glue failure; retry on the next materialization.
    """
    if (partition_value is None) != (table.partition_key is None):
        raise ValueError(
            f"Glue table {table.table_name}: a partition value is needed exactly when the "
            f"table has a partition key (key {table.partition_key!r}, value {partition_value!r})"
        )
    export = ExportStamp(export_id, started)
    region = glue_client.meta.region_name
    database_created = ensure_database(glue_client, table.database)
    partition = None
    if partition_value is None:
        change, shown = upsert_table(glue_client, table, location, export)
    else:
        change, _ = upsert_table(glue_client, table, str(table.root), None)
        partition, shown = upsert_partition(glue_client, table, partition_value, location, export)
    return GlueRegistration(
        reference=table_reference(table.database, table.name, region),
        location=shown.location,
        database_created=database_created,
        table=change,
        shown=shown.export or export,
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


@dataclass(frozen=True)
class Shown:
    """What a table or partition reads after an upsert: its folder and the export it names."""

    location: str
    export: ExportStamp | None


def upsert_table(
    glue_client: Any, table: GlueTable, location: str, export: ExportStamp | None
) -> tuple[TableChange, Shown]:
    """Create the table, or update it in place when it differs from what it should be.

    An unpartitioned table that names a newer export than ``export`` is left as it is. The
    comparison is a read, then a write: Glue's UpdateTable takes the ``VersionId`` the read
    returned, and AWS refuses the write (ConcurrentModificationException, reported as
    :class:`GlueUnavailableError`) when another writer changed the table in between, so a
    slower run cannot overwrite a newer registration it did not see. (moto ignores
    ``VersionId``: the tests prove the comparison, not the race.)

    Args:
        glue_client: A boto3 Glue client.
        table: The table.
        location: As :func:`table_input`.
        export: As :func:`table_input`.

    Returns:
        What was done, and what the table reads afterwards.

    Raises:
        GlueTableConflictError: The table exists and this project did not create it.
        GluePermissionError, GlueUnavailableError: As :func:`register_export`.
    """
    call = _Caller(glue_client, table.database, table.name)
    wanted = table_input(table, location, export)
    found = call("GetTable", absent=_NOT_FOUND, DatabaseName=table.database, Name=table.name)
    if found is None:
        created = call(
            "CreateTable", absent=_ALREADY_EXISTS, DatabaseName=table.database, TableInput=wanted
        )
        if created is not None:
            return TableChange.CREATED, Shown(location, export)
        # Another run created it between the two calls: update it as if it had been there.
        found = call("GetTable", DatabaseName=table.database, Name=table.name)
    current = found["Table"]
    parameters = current.get("Parameters", {})
    if parameters.get(MANAGED_BY_PARAMETER) != MANAGED_BY:
        raise GlueTableConflictError(
            f"Glue table {table.table_name} exists but was not created by {MANAGED_BY} (no "
            f"{MANAGED_BY_PARAMETER} parameter), so it is left alone: choose another table name "
            "for this export, or drop that table if it may be replaced"
        )
    if export is not None:
        shown = shown_export(parameters, f"Glue table {table.table_name}")
        if not supersedes(export, shown):
            return TableChange.LEFT_ON_NEWER, Shown(_location(current), shown)
    if _covers(current, wanted):
        return TableChange.UNCHANGED, Shown(location, export)
    version = {VERSION_ID: current[VERSION_ID]} if current.get(VERSION_ID) else {}
    call("UpdateTable", DatabaseName=table.database, TableInput=wanted, **version)
    return TableChange.UPDATED, Shown(location, export)


def upsert_partition(
    glue_client: Any, table: GlueTable, value: str, location: str, export: ExportStamp
) -> tuple[TableChange, Shown]:
    """Create the partition ``value``, or move it to ``location`` when it reads another folder.

    A partition that names a newer export than ``export`` is left as it is. Glue's
    UpdatePartition has no version check, so this is a read, a comparison and a write: two runs
    of one partition that pass the comparison together may still write in either order.

    Returns:
        What was done, and what the partition reads afterwards.

    Raises:
        GlueTableConflictError: The partition's start-time parameter is unreadable.
        GluePermissionError, GlueUnavailableError: As :func:`register_export`.
    """
    call = _Caller(glue_client, table.database, table.name)
    wanted = {
        "Values": [value],
        "StorageDescriptor": storage_descriptor(table, location),
        "Parameters": {MANAGED_BY_PARAMETER: MANAGED_BY, **export_parameters(export)},
    }
    keys = {"DatabaseName": table.database, "TableName": table.name}
    found = call("GetPartition", absent=_NOT_FOUND, PartitionValues=[value], **keys)
    if found is None:
        created = call("CreatePartition", absent=_ALREADY_EXISTS, PartitionInput=wanted, **keys)
        if created is not None:
            return TableChange.CREATED, Shown(location, export)
        found = call("GetPartition", PartitionValues=[value], **keys)
    current = found["Partition"]
    what = f"Glue partition {table.partition_key}={value} of {table.table_name}"
    shown = shown_export(current.get("Parameters", {}), what)
    if not supersedes(export, shown):
        return TableChange.LEFT_ON_NEWER, Shown(_location(current), shown)
    if _covers(current, wanted):
        return TableChange.UNCHANGED, Shown(location, export)
    call("UpdatePartition", PartitionValueList=[value], PartitionInput=wanted, **keys)
    return TableChange.UPDATED, Shown(location, export)


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


def _location(found: Mapping[str, Any]) -> str:
    """The folder a table or partition (as Glue returns it) reads."""
    return str(found.get("StorageDescriptor", {}).get("Location", ""))


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
