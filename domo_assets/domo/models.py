"""Immutable records for Domo API objects, parsed once at the edge.

Domo documents some fields loosely (see ``shared/docs/domo-api.md``): timestamps arrive as epoch
milliseconds or ISO-8601 strings, and ``urlRowCountMap`` keys come as ``s3://``, virtual-hosted or
path-style URLs. The parsers here accept every plausible form and tolerate unknown fields, so the
rest of the package only ever sees these records.

This module knows Domo's JSON shapes and nothing of HTTP or Dagster.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import unquote, urlsplit

from domo_assets.domo.errors import DomoResponseError

# Virtual-hosted S3 hosts: bucket.s3.amazonaws.com, bucket.s3.region.amazonaws.com,
# bucket.s3-region.amazonaws.com (legacy dash form), bucket.s3.dualstack.region.amazonaws.com.
_VIRTUAL_HOST = re.compile(r"^(?P<bucket>.+)\.s3(?:[.-][a-z0-9-]+)*\.amazonaws\.com(?:\.cn)?$")
# Path-style S3 hosts: s3.amazonaws.com, s3.region.amazonaws.com, s3-region.amazonaws.com.
_PATH_HOST = re.compile(r"^s3(?:[.-][a-z0-9-]+)*\.amazonaws\.com(?:\.cn)?$")
# Above this, a bare number is epoch milliseconds rather than seconds (year 2286 in seconds).
_EPOCH_MS_THRESHOLD = 10_000_000_000


class ExportStatus(StrEnum):
    """Status of a Domo export, as ``exportStatus`` reports it.

    Domo documents four values; ``UNKNOWN`` stands for any other. Domo's docs say nothing of
    further statuses, so an unknown one is read as finished without success: never as running,
    which would make callers wait forever for an export Domo is no longer working on.
    """

    NONE = "none"
    EXPORTING = "exporting"
    SUCCESS = "success"
    ERROR = "error"
    UNKNOWN = "unknown"

    @property
    def is_active(self) -> bool:
        """Whether Domo is still working on the export (queued or exporting)."""
        return self in (ExportStatus.NONE, ExportStatus.EXPORTING)

    @property
    def is_terminal(self) -> bool:
        """Whether the export has finished: successfully, in error, or in an unknown status."""
        return not self.is_active

    @property
    def is_failure(self) -> bool:
        """Whether the export finished without success (``error`` or an unknown status)."""
        return self in (ExportStatus.ERROR, ExportStatus.UNKNOWN)


@dataclass(frozen=True)
class S3Object:
    """One file an export wrote, with the data rows it holds."""

    bucket: str
    key: str
    row_count: int

    @property
    def uri(self) -> str:
        """The object's canonical ``s3://bucket/key`` URI."""
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class Export:
    """A Domo export, as returned by the export endpoints."""

    export_id: str
    status: ExportStatus
    started: datetime | None = None
    finished: datetime | None = None
    objects: tuple[S3Object, ...] = ()
    compression: str | None = None
    export_format: str | None = None
    bucket: str | None = None
    error_code: str | None = None
    message: str | None = None
    raw_status: str | None = None
    """``exportStatus`` as Domo wrote it (e.g. ``CANCELLED`` for an unknown status)."""

    @property
    def status_text(self) -> str:
        """The status for messages: Domo's own text when it sent one."""
        return self.raw_status or self.status.value

    @property
    def row_count(self) -> int:
        """Total data rows over every file written."""
        return sum(obj.row_count for obj in self.objects)

    @property
    def is_active(self) -> bool:
        """Whether Domo is still working on this export (``none`` or ``exporting`` only)."""
        return self.status.is_active

    @property
    def duration_seconds(self) -> float | None:
        """Seconds from start to finish, when both are known."""
        if self.started is None or self.finished is None:
            return None
        return (self.finished - self.started).total_seconds()

    @classmethod
    def from_api(cls, payload: Any) -> Export:
        """Parse an export object from Domo's JSON.

        Args:
            payload: One decoded export object.

        Returns:
            The parsed export.

        Raises:
            DomoResponseError: The payload is not an object, lacks ``exportId``, or has a field
                that cannot be read (the message names the field).
        """
        data = _require_mapping(payload, "export object")
        export_id = export_entry_id(data)
        if export_id is None:
            raise DomoResponseError(
                f"Domo returned an export object without exportId: keys {sorted(map(str, data))}"
            )
        bucket = _optional_str(data.get("bucket"))
        raw_status = data.get("exportStatus")
        return cls(
            export_id=export_id,
            status=parse_status(raw_status),
            started=_read_field(data, "started", parse_timestamp),
            finished=_read_field(data, "finished", parse_timestamp),
            objects=_read_field(
                data, "urlRowCountMap", lambda v: parse_url_row_count_map(v, bucket_hint=bucket)
            ),
            compression=_optional_str(data.get("compression")),
            export_format=_optional_str(data.get("exportFormat")),
            bucket=bucket,
            error_code=_optional_str(data.get("errorCode")),
            message=_optional_str(data.get("message")),
            raw_status=_optional_str(raw_status),
        )


@dataclass(frozen=True)
class SkippedEntry:
    """An entry of a DataSet's export history that could not be read, and why.

    Attributes:
        position: Its index in Domo's list (the list's order is not stable between reads).
        export_id: Its ``exportId``, when that much is readable.
        reason: What could not be read.
        identity: Stable across reads: the export id, or a digest of the entry's JSON.
    """

    position: int
    export_id: str | None
    reason: str
    identity: str

    def describe(self) -> str:
        """``entry N (exportId X)``, for messages."""
        return f"entry {self.position} (exportId {self.export_id or 'unreadable'})"


@dataclass(frozen=True)
class ExportHistory:
    """A DataSet's export list as parsed: the readable exports and the skipped entries."""

    exports: tuple[Export, ...]
    skipped: tuple[SkippedEntry, ...] = ()


@dataclass(frozen=True)
class DataSetOwner:
    """The owner of a DataSet (``email`` where Domo's user record gives one)."""

    id: str
    name: str
    email: str | None = None


@dataclass(frozen=True)
class DataSetMetadata:
    """What Domo's datasource endpoint says about a DataSet."""

    dataset_id: str
    name: str
    row_count: int | None
    column_count: int | None
    created: datetime | None = None
    last_updated: datetime | None = None
    last_touched: datetime | None = None
    status: str | None = None
    owner: DataSetOwner | None = None
    description: str | None = None

    @classmethod
    def from_api(cls, payload: Any) -> DataSetMetadata:
        """Parse ``GET /api/data/v3/datasources/{id}``.

        Args:
            payload: The decoded JSON body.

        Returns:
            The parsed metadata.
        """
        data = _require_mapping(payload, "DataSet metadata")
        return cls(
            dataset_id=str(data.get("id") or ""),
            name=str(data.get("name") or ""),
            row_count=_optional_int(data.get("rowCount", data.get("rows"))),
            column_count=_optional_int(data.get("columnCount", data.get("columns"))),
            created=parse_timestamp(data.get("created", data.get("createdAt"))),
            last_updated=parse_timestamp(
                data.get("lastUpdated", data.get("dataCurrentAt", data.get("updatedAt")))
            ),
            last_touched=parse_timestamp(data.get("lastTouched")),
            status=_optional_str(data.get("status")),
            owner=_owner(data.get("owner")),
            description=_optional_str(data.get("description")),
        )


@dataclass(frozen=True)
class DataSetColumn:
    """A column of a DataSet's schema."""

    name: str
    type: str


@dataclass(frozen=True)
class DomoUser:
    """The Domo user a credential acts as."""

    id: str
    name: str
    email: str | None = None
    role: str | None = None

    @classmethod
    def from_api(cls, payload: Any) -> DomoUser:
        """Parse ``GET /api/content/v2/users/me``."""
        data = _require_mapping(payload, "user")
        return cls(
            id=str(data.get("id") or data.get("userId") or ""),
            name=str(data.get("displayName") or data.get("name") or ""),
            email=_optional_str(data.get("emailAddress") or data.get("email")),
            role=_optional_str(data.get("role")),
        )


@dataclass(frozen=True)
class DataSetSummary:
    """One DataSet of Domo's listing (the platform API's ``GET /v1/datasets`` or a hit of the
    instance search API), with its schema once read.

    Attributes:
        dataset_id: The DataSet id.
        name: Its name in Domo.
        description: Its description, when it has one.
        owner: Its owner, when the listing names one.
        row_count: Its rows, when the listing says.
        updated: When its data last changed, when the listing says.
        tags: Its tags, or None where the listing does not return tags (the platform API's
            does not): a selector by tag must not read "no tags" from "not said".
        columns: Its schema (empty until read).
    """

    dataset_id: str
    name: str
    description: str | None = None
    owner: DataSetOwner | None = None
    row_count: int | None = None
    updated: datetime | None = None
    tags: tuple[str, ...] | None = None
    columns: tuple[DataSetColumn, ...] = ()

    @classmethod
    def from_platform(cls, item: Any) -> DataSetSummary:
        """Parse one item of the platform API's ``GET /v1/datasets`` (or ``/v1/datasets/{id}``).

        Raises:
            DomoResponseError: The item is not an object or has no id.
        """
        data = _require_mapping(item, "DataSet of the listing")
        return cls(
            dataset_id=_listing_id(data, ("id",)),
            name=str(data.get("name") or ""),
            description=_optional_str(data.get("description")),
            owner=_owner(data.get("owner")),
            row_count=_optional_int(data.get("rows", data.get("rowCount"))),
            updated=_read_field(
                data, "dataCurrentAt" if "dataCurrentAt" in data else "updatedAt", parse_timestamp
            ),
            tags=_tags(data["tags"]) if "tags" in data else None,
        )

    @classmethod
    def from_search_hit(cls, hit: Any) -> DataSetSummary:
        """Parse one hit of the instance search API (``POST /api/search/v1/query``).

        Domo does not document a hit's fields; ids and names are read from every name seen
        (``databaseId``, ``id``, ``entityId``; ``name``, ``title``), the owner from
        ``ownedById``/``ownedByName`` or ``owner``.

        Raises:
            DomoResponseError: The hit is not an object or has no id.
        """
        data = _require_mapping(hit, "search hit")
        owner = _owner(data.get("owner"))
        if owner is None and data.get("ownedById") is not None:
            owner = DataSetOwner(id=str(data["ownedById"]), name=str(data.get("ownedByName") or ""))
        return cls(
            dataset_id=_listing_id(data, ("databaseId", "id", "entityId")),
            name=str(data.get("name") or data.get("title") or ""),
            description=_optional_str(data.get("description")),
            owner=owner,
            row_count=_optional_int(data.get("rowCount", data.get("rows"))),
            updated=_read_field(
                data, "lastUpdated" if "lastUpdated" in data else "updatedAt", parse_timestamp
            ),
            tags=_tags(data.get("tags") or []),
        )

    @classmethod
    def from_metadata(cls, metadata: DataSetMetadata) -> DataSetSummary:
        """The summary of a DataSet read by id (one the listing did not hold)."""
        return cls(
            dataset_id=metadata.dataset_id,
            name=metadata.name,
            description=metadata.description,
            owner=metadata.owner,
            row_count=metadata.row_count,
            updated=metadata.last_updated,
        )


def parse_dataset_page(payload: Any) -> list[Any]:
    """The items of one page of the platform listing (a bare JSON array).

    Raises:
        DomoResponseError: The body is not a list.
    """
    if not isinstance(payload, list):
        raise DomoResponseError(
            f"Domo returned {type(payload).__name__} where the DataSet listing's JSON array "
            "was expected"
        )
    return payload


def parse_search_page(payload: Any) -> tuple[list[Any], int | None]:
    """The hits of one page of the instance search API and the total it reports, if any.

    Hits are read from ``searchObjects`` (what community clients read), else from the one
    list the answer holds.

    Raises:
        DomoResponseError: The body holds no list of hits.
    """
    data = _require_mapping(payload, "search answer")
    hits = data.get("searchObjects")
    if hits is None:
        lists = [value for value in data.values() if isinstance(value, list)]
        hits = lists[0] if len(lists) == 1 else None
    if not isinstance(hits, list):
        raise DomoResponseError(
            f"Domo's search answer holds no list of hits (searchObjects): keys {sorted(data)}"
        )
    return hits, _optional_int(data.get("totalResultCount"))


def _listing_id(data: Mapping[str, Any], names: Sequence[str]) -> str:
    for name in names:
        value = data.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return str(value)
    raise DomoResponseError(
        f"Domo listed a DataSet without an id ({', '.join(names)}): keys {sorted(map(str, data))}"
    )


def _owner(value: Any) -> DataSetOwner | None:
    if not isinstance(value, Mapping) or value.get("id") is None:
        return None
    email = value.get("email") or value.get("emailAddress")
    return DataSetOwner(
        id=str(value["id"]),
        name=str(value.get("name") or value.get("displayName") or ""),
        email=_optional_str(email),
    )


def _tags(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise DomoResponseError(f"Domo returned tags as {type(value).__name__}, not a list")
    return tuple(str(tag.get("name") if isinstance(tag, Mapping) else tag) for tag in value)


def parse_columns(payload: Any) -> tuple[DataSetColumn, ...]:
    """Parse ``GET /api/data/v2/datasources/{id}/schemas/latest`` into columns.

    Args:
        payload: The decoded JSON body (``{"schema": {"columns": [...]}}``).

    Returns:
        The DataSet's columns in order.
    """
    data = _require_mapping(payload, "DataSet schema")
    schema = data.get("schema", data)
    columns = schema.get("columns", []) if isinstance(schema, Mapping) else []
    return tuple(
        DataSetColumn(name=str(col["name"]), type=str(col.get("type", "STRING")))
        for col in columns
        if isinstance(col, Mapping) and "name" in col
    )


def export_entries(payload: Any) -> Sequence[Any]:
    """The entries of ``GET /api/query/v1/export/{id}``'s answer, undecoded.

    Args:
        payload: The decoded JSON body: a list, or an envelope such as ``{"exports": [...]}``.

    Raises:
        DomoResponseError: The body holds no list.
    """
    if isinstance(payload, Mapping):
        # Tolerate an envelope such as {"exports": [...]}.
        payload = next((v for v in payload.values() if isinstance(v, list)), [])
    if not isinstance(payload, list):
        raise DomoResponseError(
            f"Domo returned {type(payload).__name__} where a list of exports was expected"
        )
    return payload


def export_entry_id(entry: Any) -> str | None:
    """An entry's ``exportId`` as text, or None when it is not an object or has none."""
    if not isinstance(entry, Mapping):
        return None
    value = entry.get("exportId")
    if value is None or value == "" or isinstance(value, bool | Mapping | list):
        return None
    return str(value)


def find_export_entry(entries: Sequence[Any], export_id: str) -> tuple[int, Any] | None:
    """The position and raw entry whose ``exportId`` is `export_id`, in one pass, unparsed.

    A status read needs one export of a history that only grows: only that one is parsed.
    """
    for position, entry in enumerate(entries):
        if export_entry_id(entry) == export_id:
            return position, entry
    return None


def parse_export_entries(entries: Sequence[Any]) -> ExportHistory:
    """Parse every entry, skipping (and describing) those that cannot be read.

    One malformed entry stays in Domo's history for good: failing the whole list on it would
    stop every later export of the DataSet.
    """
    exports: list[Export] = []
    skipped: list[SkippedEntry] = []
    for position, entry in enumerate(entries):
        try:
            exports.append(Export.from_api(entry))
        except DomoResponseError as exc:
            skipped.append(skipped_entry(position, entry, exc.summary))
    return ExportHistory(tuple(exports), tuple(skipped))


def skipped_entry(position: int, entry: Any, reason: str) -> SkippedEntry:
    """Describe an unreadable history entry, with an identity that survives reordering."""
    export_id = export_entry_id(entry)
    return SkippedEntry(position, export_id, reason, export_id or _digest(entry))


def parse_status(value: Any) -> ExportStatus:
    """Parse ``exportStatus`` case-insensitively.

    A missing status means ``none`` (queued); any value Domo does not document (such as
    ``CANCELLED``) is ``UNKNOWN``: finished, not successful, never running.
    """
    if value is None or value == "":
        return ExportStatus.NONE
    try:
        return ExportStatus(str(value).strip().lower())
    except ValueError:
        return ExportStatus.UNKNOWN


def parse_timestamp(value: Any) -> datetime | None:
    """Parse a Domo timestamp: epoch milliseconds (number or numeric string) or ISO-8601.

    Args:
        value: The raw JSON value.

    Returns:
        An aware UTC datetime, or None when the value is empty.

    Raises:
        DomoResponseError: The value is neither form.
    """
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _from_epoch(float(value))
    text = str(value).strip()
    try:
        return _from_epoch(float(text))
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise DomoResponseError(f"Domo returned an unreadable timestamp {value!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_url_row_count_map(value: Any, bucket_hint: str | None = None) -> tuple[S3Object, ...]:
    """Parse ``urlRowCountMap`` into S3 objects, sorted by key.

    Args:
        value: The raw ``{url: rowCount}`` mapping (or None).
        bucket_hint: The export's bucket, used for URLs of non-AWS endpoints.

    Returns:
        One record per file.
    """
    if not value:
        return ()
    if not isinstance(value, Mapping):
        raise DomoResponseError(f"urlRowCountMap is {type(value).__name__}, expected an object")
    objects = []
    for url, rows in value.items():
        bucket, key = normalize_s3_url(str(url), bucket_hint=bucket_hint)
        count = _optional_int(rows)
        if count is None:
            raise DomoResponseError(f"urlRowCountMap gives no row count for {url!r}: {rows!r}")
        objects.append(S3Object(bucket=bucket, key=key, row_count=count))
    return tuple(sorted(objects, key=lambda obj: (obj.bucket, obj.key)))


def normalize_s3_url(url: str, bucket_hint: str | None = None) -> tuple[str, str]:
    """Split any S3 URL form Domo may return into ``(bucket, key)``.

    Accepts ``s3://bucket/key``, virtual-hosted ``https://bucket.s3.region.amazonaws.com/key``
    and path-style ``https://s3.region.amazonaws.com/bucket/key``, plus non-AWS endpoints (such as
    a local S3 server) when ``bucket_hint`` names the bucket as the host's first label or the
    path's first segment. An ``https`` URL's key is percent-decoded, as URLs encode keys; an
    ``s3://`` URI's key is read as written, as AWS writes them (the key ``dt%3D1`` stays
    ``dt%3D1``; partition prefixes hold such ``%XX`` escapes).

    Raises:
        DomoResponseError: The URL names no bucket and key.
    """
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    path = unquote(parts.path).lstrip("/")
    bucket, key = "", ""
    if parts.scheme == "s3":
        # Taken from the text itself: urlsplit would also cut a key at '?' or '#'.
        bucket, _, key = url.strip().split("://", 1)[1].partition("/")
    elif match := _VIRTUAL_HOST.match(host):
        bucket, key = match.group("bucket"), path
    elif _PATH_HOST.match(host) or (bucket_hint and path.startswith(f"{bucket_hint}/")):
        bucket, _, key = path.partition("/")
    elif bucket_hint and host.startswith(f"{bucket_hint.lower()}."):
        bucket, key = bucket_hint, path
    if not bucket or not key:
        raise DomoResponseError(f"Cannot read an S3 bucket and key from urlRowCountMap key {url!r}")
    return bucket, key


def _from_epoch(number: float) -> datetime:
    seconds = number / 1000 if abs(number) >= _EPOCH_MS_THRESHOLD else number
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise DomoResponseError(f"Domo returned an out-of-range timestamp {number!r}") from None


def _read_field(data: Mapping[str, Any], name: str, parse: Callable[[Any], Any]) -> Any:
    """Parse one field, naming it in the error."""
    try:
        return parse(data.get(name))
    except DomoResponseError as exc:
        raise DomoResponseError(f"field {name!r}: {exc.summary}") from None


def _digest(entry: Any) -> str:
    """A short stable digest of an entry's JSON (its identity when it has no readable id)."""
    text = json.dumps(entry, sort_keys=True, default=repr)
    return "sha1:" + hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:16]


def _require_mapping(payload: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(payload, Mapping):
        raise DomoResponseError(
            f"Domo returned {type(payload).__name__} where an object ({what}) was expected"
        )
    return payload


def _optional_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _optional_int(value: Any) -> int | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class AwsCredentials:
    """AWS credentials handed to Domo so that it can write into the bucket.

    The secret and session token never appear in ``repr`` or ``str``.
    """

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)

    @property
    def is_temporary(self) -> bool:
        """Whether these are STS credentials (with a session token)."""
        return bool(self.session_token)

    @property
    def secrets(self) -> tuple[str, ...]:
        """The values that must never be logged."""
        return tuple(s for s in (self.secret_access_key, self.session_token) if s)


class FilterOp(StrEnum):
    """Comparison operators of a row filter."""

    EQUALS = "equals"
    NOT_EQUALS = "not_equals"
    IN = "in"
    GREATER_THAN = "gt"
    GREATER_THAN_EQUAL = "gte"
    LESS_THAN = "lt"
    LESS_THAN_EQUAL = "lte"


_DOMO_EXPR_TYPES = {
    FilterOp.EQUALS: "EQUALS",
    FilterOp.NOT_EQUALS: "NOT_EQUALS",
    FilterOp.GREATER_THAN: "GREATER_THAN",
    FilterOp.GREATER_THAN_EQUAL: "GREATER_THAN_EQUAL",
    FilterOp.LESS_THAN: "LESS_THAN",
    FilterOp.LESS_THAN_EQUAL: "LESS_THAN_EQUAL",
}
_SQL_OPS = {
    FilterOp.EQUALS: "=",
    FilterOp.NOT_EQUALS: "<>",
    FilterOp.GREATER_THAN: ">",
    FilterOp.GREATER_THAN_EQUAL: ">=",
    FilterOp.LESS_THAN: "<",
    FilterOp.LESS_THAN_EQUAL: "<=",
}

FilterValue = str | int | float


@dataclass(frozen=True)
class Condition:
    """One comparison of a column with a value (or, for ``in``, a list of values)."""

    column: str
    op: FilterOp
    values: tuple[FilterValue, ...]

    def to_domo(self) -> dict[str, Any]:
        """This condition as a Domo query expression."""
        column = {"column": self.column, "exprType": "COLUMN"}
        if self.op is FilterOp.IN:
            return {
                "exprType": "IN",
                "leftExpr": column,
                "rightExpr": {"values": [_domo_value(v) for v in self.values]},
            }
        return {
            "exprType": _DOMO_EXPR_TYPES[self.op],
            "leftExpr": column,
            "rightExpr": _domo_value(self.values[0]),
        }

    def to_sql(self) -> str:
        """This condition as a SQL predicate for Domo's query endpoint (MySQL-like).

        The column is back-ticked (a back-tick in the name doubled); a string value is
        single-quoted with backslashes doubled and quotes doubled; a number stays bare.
        """
        column = _sql_identifier(self.column)
        if self.op is FilterOp.IN:
            return f"{column} IN ({', '.join(_sql_literal(v) for v in self.values)})"
        return f"{column} {_SQL_OPS[self.op]} {_sql_literal(self.values[0])}"


@dataclass(frozen=True)
class RowFilter:
    """A conjunction of conditions: the ``where`` of an export and of its row-count query."""

    conditions: tuple[Condition, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.conditions)

    def and_(self, other: RowFilter) -> RowFilter:
        """Both filters at once."""
        return RowFilter(self.conditions + other.conditions)

    def to_domo(self) -> dict[str, Any] | None:
        """The filter as a Domo expression, nesting ``AND`` pairwise; None when empty."""
        expressions = [c.to_domo() for c in self.conditions]
        if not expressions:
            return None
        combined = expressions[0]
        for expression in expressions[1:]:
            combined = {"exprType": "AND", "leftExpr": combined, "rightExpr": expression}
        return combined

    def to_sql(self) -> str:
        """The filter as a SQL ``WHERE`` body; empty when there is no condition."""
        return " AND ".join(c.to_sql() for c in self.conditions)


def _domo_value(value: FilterValue) -> dict[str, Any]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"value": value, "exprType": "NUMERIC_VALUE"}
    return {"value": str(value), "exprType": "STRING_VALUE"}


def _sql_identifier(name: str) -> str:
    # Domo's SQL is MySQL-like: back-ticks quote names (a double-quoted token is a string).
    return "`" + name.replace("`", "``") + "`"


def _sql_literal(value: FilterValue) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value)
    # MySQL reads a backslash as an escape, so it is doubled; a quote is doubled, which both
    # MySQL and ANSI SQL read as one quote.
    return "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"


@dataclass(frozen=True)
class OrderBy:
    """One ``ORDER BY`` column."""

    column: str
    descending: bool = False


@dataclass(frozen=True)
class ExportQuery:
    """What to export: columns (empty: all), grouping, ordering and a row filter."""

    columns: tuple[str, ...] = ()
    group_by: tuple[str, ...] = ()
    order_by: tuple[OrderBy, ...] = ()
    where: RowFilter = field(default_factory=RowFilter)

    @property
    def is_whole_dataset(self) -> bool:
        """Whether every row is exported (no filter, no grouping)."""
        return not self.where and not self.group_by

    def to_domo(self, all_columns: Sequence[str]) -> dict[str, Any]:
        """The ``queryRequest.query`` object.

        Args:
            all_columns: The DataSet's columns, used when no columns were chosen.
        """
        query: dict[str, Any] = {
            "columns": [_column_expr(c) for c in (self.columns or all_columns)],
            "groupByColumns": [_column_expr(c) for c in self.group_by],
            "orderByColumns": [
                {
                    "expression": _column_expr(o.column),
                    "order": "DESCENDING" if o.descending else "ASCENDING",
                }
                for o in self.order_by
            ],
        }
        where = self.where.to_domo()
        if where is not None:
            query["where"] = where
        return query


def _column_expr(name: str) -> dict[str, str]:
    return {"column": name, "exprType": "COLUMN"}


@dataclass(frozen=True)
class ExportRequest:
    """Everything Domo needs to export a DataSet to S3."""

    credentials: AwsCredentials
    bucket: str
    path: str
    region: str
    query: ExportQuery = field(default_factory=ExportQuery)
    kms_key_id: str | None = None
    include_bom: bool = False
    use_cache: bool = True
    source: str = "domo_assets"

    def to_api(self, all_columns: Sequence[str]) -> dict[str, Any]:
        """The JSON body of ``POST /api/query/v1/export/{id}``.

        Args:
            all_columns: The DataSet's columns, used when the query names none.
        """
        body: dict[str, Any] = {
            "awsAccessKey": self.credentials.access_key_id,
            "awsAccessSecret": self.credentials.secret_access_key,
            "bucket": self.bucket,
            "path": self.path,
            "region": self.region,
            "source": self.source,
            "queryRequest": {
                "includeBOM": self.include_bom,
                "useCache": self.use_cache,
                "query": self.query.to_domo(all_columns),
            },
        }
        if self.credentials.session_token:
            body["sessionToken"] = self.credentials.session_token
        if self.kms_key_id:
            body["awsKmsKey"] = self.kms_key_id
        return body


@dataclass(frozen=True)
class QueryResult:
    """The answer of Domo's query endpoint."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    @classmethod
    def from_api(cls, payload: Any) -> QueryResult:
        """Parse ``POST /api/query/v1/execute/{id}`` in either shape Domo documents.

        Args:
            payload: ``{"columns": [...], "rows": [[...], ...]}``, or an array of row objects
                such as ``[{"COUNT(*)": 42}]`` (columns then come from the first object's keys,
                in order).

        Raises:
            DomoResponseError: The payload is neither shape.
        """
        if isinstance(payload, list):
            return cls._from_objects(payload)
        data = _require_mapping(payload, "query result")
        rows = data.get("rows") or []
        if rows and all(isinstance(row, Mapping) for row in rows):
            return cls._from_objects(rows)
        return cls(
            columns=tuple(str(c) for c in data.get("columns") or []),
            rows=tuple(tuple(row) for row in rows if isinstance(row, list | tuple)),
        )

    @classmethod
    def _from_objects(cls, rows: Sequence[Any]) -> QueryResult:
        """Rows as objects: the first one's keys are the columns."""
        if not all(isinstance(row, Mapping) for row in rows):
            raise DomoResponseError(
                "Domo's query returned an array whose items are not all row objects"
            )
        columns = tuple(str(key) for key in rows[0]) if rows else ()
        return cls(
            columns=columns,
            rows=tuple(tuple(row.get(column) for column in columns) for row in rows),
        )

    def scalar(self) -> Any:
        """The single value of a one-row, one-column result."""
        if not self.rows or not self.rows[0]:
            raise DomoResponseError("Domo's query returned no rows where one value was expected")
        return self.rows[0][0]


class StartOutcome(StrEnum):
    """How a call to start an export ended."""

    STARTED = "started"
    """Domo started a new export."""
    REUSED_PREVIOUS = "reused_previous"
    """The data had not changed: Domo returned its previous export."""
    ALREADY_RUNNING = "already_running"
    """Domo returned an export that was already running for the DataSet."""
    RECOVERED = "recovered"
    """The POST's response was lost, but Domo had accepted it: the new export was found."""
    ATTACHED = "attached"
    """An export started by an earlier attempt of the same asset was still running: resumed."""


@dataclass(frozen=True)
class ExportStart:
    """The export a start request led to, and how."""

    export: Export
    outcome: StartOutcome
