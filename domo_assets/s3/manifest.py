"""The export manifest: ``_manifest.json`` written beside an export's files once it is verified.

Readers of the lake (Spark, Athena, a downstream asset) learn from it that an export is complete,
verified and what it holds, without calling Domo. Hadoop-style readers skip files starting with
``_``, so it sits in the export's folder with the CSV files (``<exportId>/export/``, above any
sub-folders). It is written only when every check of the export passed (location, header, row
count, objects, and deep verification when asked): a folder without a manifest holds nothing
this project vouches for. Format ``domo_assets.manifest/v2``::

    {"format": "domo_assets.manifest/v2", "export_id": "...",
     "dataset": {"id": "...", "name": "..."}, "partition_key": "2026-11-28" | null,
     "query": {<Domo queryRequest.query>}, "include_bom": false, "request": "<fingerprint>",
     "columns": ["..."], "schema": [{"name": "...", "type": "LONG"}],
     "compression": "gzip", "row_count": 360,
     "files": [{"uri", "bucket", "key", "rows", "bytes", "etag"}],
     "copied_from": ["s3://..."] (only for copies of another request's export),
     "started": "<ISO-8601>", "finished": "<ISO-8601>", "written_at": "<ISO-8601>",
     "written_by": "domo_assets <version>"}

``request`` is the fingerprint of the request the export answers (``ExportTarget.fingerprint``):
every decision about whose folder this is (retention, the pointer, adoption of a previous
export) reads it. ``started`` and ``finished`` are Domo's own times, the order in which exports
are published and kept (``order_key``); the worker's clock (``written_at``) never orders them.

:class:`ExportManifest` is the record that crosses from the Dagster layer into this one: the
asset layer builds it from what it verified, and everything written to S3 after verification
(the manifest, the Redshift manifest, the pointer, the Glue table, retention) is written from it.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from domo_assets.domo.errors import DomoResponseError
from domo_assets.domo.models import DataSetColumn, S3Object, normalize_s3_url, parse_timestamp
from domo_assets.s3.storage import is_missing
from domo_assets.s3.target import ExportTarget, export_folder
from domo_assets.version import __version__

MANIFEST_NAME = "_manifest.json"
MANIFEST_FORMAT = "domo_assets.manifest/v2"
JSON_CONTENT_TYPE = "application/json"


@dataclass(frozen=True)
class ManifestFile:
    """One file of a verified export."""

    uri: str
    bucket: str
    key: str
    rows: int
    bytes: int | None = None
    etag: str | None = None

    def to_object(self) -> S3Object:
        """The file as the Domo layer's record."""
        return S3Object(self.bucket, self.key, self.rows)


@dataclass(frozen=True)
class ExportManifest:
    """What a verified export holds and which request it answers (``_manifest.json``).

    Attributes:
        export_id: Domo's export id.
        dataset_id: The DataSet exported.
        dataset_name: Its name, when known.
        partition_key: The partition, for a partitioned asset.
        query: Domo's ``queryRequest.query`` of the request.
        include_bom: Whether the files start with a UTF-8 BOM.
        request: The request's fingerprint (``ExportTarget.fingerprint``).
        schema: The exported columns, in order, with Domo's types.
        compression: ``gzip``, ``none``, or None when Domo did not say.
        files: The files, with their rows, sizes and ETags.
        started: Domo's start time of the export.
        finished: Domo's end time of the export.
        copied_from: Source URIs, when the files are copies of another request's export.
        written_at: When the manifest was written (the worker's clock: informative only).
    """

    export_id: str
    dataset_id: str
    dataset_name: str | None
    partition_key: str | None
    query: dict[str, Any]
    include_bom: bool
    request: str
    schema: tuple[DataSetColumn, ...]
    compression: str | None
    files: tuple[ManifestFile, ...]
    started: datetime | None = None
    finished: datetime | None = None
    copied_from: tuple[str, ...] = ()
    written_at: str | None = field(default=None, compare=False)

    @property
    def columns(self) -> tuple[str, ...]:
        """The exported columns' names, in order."""
        return tuple(c.name for c in self.schema)

    @property
    def row_count(self) -> int:
        """Data rows over every file."""
        return sum(f.rows for f in self.files)

    @property
    def objects(self) -> tuple[S3Object, ...]:
        """The files as the Domo layer's records."""
        return tuple(f.to_object() for f in self.files)

    @property
    def folder(self) -> tuple[str, str] | None:
        """``(bucket, key of the export's folder)``: its ``<exportId>/export`` folder, where the
        manifest goes (files may lie in sub-folders of it), or None without files."""
        if not self.files:
            return None
        first = self.files[0]
        return first.bucket, export_folder(self.export_id, first.key)

    @property
    def order_key(self) -> tuple[datetime, datetime, str]:
        """The order in which exports are published and kept: Domo's start, then end, then id
        (never the worker's clock). An export whose times Domo did not give sorts first."""
        return export_order(self.export_id, self.started, self.finished)

    def answers(self, target: ExportTarget) -> bool:
        """Whether the export was made for the same DataSet, query and BOM as ``target``
        (place aside: a copy of it may serve another asset with the same query)."""
        return target.answered_by(self.dataset_id, self.query, self.include_bom)

    def to_document(self) -> dict[str, Any]:
        """The manifest's JSON document."""
        document: dict[str, Any] = {
            "format": MANIFEST_FORMAT,
            "export_id": self.export_id,
            "dataset": {"id": self.dataset_id, "name": self.dataset_name},
            "partition_key": self.partition_key,
            "query": self.query,
            "include_bom": self.include_bom,
            "request": self.request,
            "columns": list(self.columns),
            "schema": [{"name": c.name, "type": c.type} for c in self.schema],
            "compression": self.compression,
            "row_count": self.row_count,
            "files": [
                {
                    "uri": f.uri,
                    "bucket": f.bucket,
                    "key": f.key,
                    "rows": f.rows,
                    "bytes": f.bytes,
                    "etag": f.etag,
                }
                for f in self.files
            ],
            "started": iso(self.started),
            "finished": iso(self.finished),
            "written_at": self.written_at or iso(datetime.now(UTC)),
            "written_by": f"domo_assets {__version__}",
        }
        if self.copied_from:
            document["copied_from"] = list(self.copied_from)
        return document


@dataclass(frozen=True)
class StoredManifest:
    """A manifest as read from S3: where it lies and what it says."""

    uri: str
    manifest: ExportManifest


def export_order(
    export_id: str, started: datetime | None, finished: datetime | None
) -> tuple[datetime, datetime, str]:
    """The publication order of an export from Domo's times (see ``ExportManifest.order_key``)."""
    floor = datetime.min.replace(tzinfo=UTC)
    return (started or finished or floor, finished or started or floor, export_id)


def manifest_key(folder_key: str) -> str:
    """The manifest's key in a folder of export files."""
    return posixpath.join(folder_key, MANIFEST_NAME)


def write_manifest(s3_client: Any, manifest: ExportManifest, *, keep_existing: bool) -> str | None:
    """Write the manifest of a verified export beside its files.

    Args:
        s3_client: A boto3 S3 client with the worker's credentials.
        manifest: What the export holds.
        keep_existing: Keep a manifest already there (an export Domo handed back keeps the one
            written when it was verified).

    Returns:
        The manifest's ``s3://`` URI, or None when the export wrote no file.
    """
    folder = manifest.folder
    if folder is None:
        return None
    bucket, key = folder[0], manifest_key(folder[1])
    if not (keep_existing and _exists(s3_client, bucket, key)):
        body = json.dumps(manifest.to_document(), indent=2).encode("utf-8")
        s3_client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=JSON_CONTENT_TYPE)
    return f"s3://{bucket}/{key}"


def manifest_folder(uri: str | None) -> tuple[str, str] | None:
    """``(bucket, folder key)`` of the manifest an ``s3://`` URI names, or None when it names
    none (no URI, or no key)."""
    if not uri:
        return None
    try:
        bucket, key = normalize_s3_url(uri)
    except DomoResponseError:
        return None
    return bucket, posixpath.dirname(key)


def read_manifest_at(s3_client: Any, uri: str | None) -> StoredManifest | None:
    """The manifest an ``s3://`` URI names (a materialization's ``manifest_uri``, a pointer's
    ``manifest``), or None when it names none or none this project wrote is there.

    Raises:
        ClientError: S3 refused the read for another reason than a missing object.
    """
    folder = manifest_folder(uri)
    return read_manifest(s3_client, *folder) if folder is not None else None


def read_manifest(s3_client: Any, bucket: str, folder_key: str) -> StoredManifest | None:
    """The manifest this project wrote in a folder, or None when there is none it can read.

    Only manifests of the current format count: earlier ones were written before exports were
    verified against their request.

    Raises:
        ClientError: S3 refused the read for another reason than a missing object.
    """
    key = manifest_key(folder_key)
    try:
        body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if is_missing(exc):
            return None
        raise
    manifest = parse_manifest(body)
    return StoredManifest(f"s3://{bucket}/{key}", manifest) if manifest is not None else None


def parse_manifest(body: bytes) -> ExportManifest | None:
    """A manifest document, or None when it is not one of the current format this project
    wrote (malformed JSON, another format, a field missing or of the wrong type)."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT:
        return None
    try:
        return _from_document(document)
    except (KeyError, TypeError, ValueError, DomoResponseError):
        return None


def _from_document(document: dict[str, Any]) -> ExportManifest:
    dataset = document["dataset"]
    columns = [str(c) for c in document.get("columns") or []]
    # Manifests written before "schema" existed name the columns only.
    schema = tuple(
        DataSetColumn(str(c["name"]), str(c["type"])) for c in document.get("schema") or []
    ) or tuple(DataSetColumn(name, "STRING") for name in columns)
    return ExportManifest(
        export_id=str(document["export_id"]),
        dataset_id=str(dataset["id"]),
        dataset_name=dataset.get("name"),
        partition_key=document.get("partition_key"),
        query=document["query"],
        include_bom=bool(document["include_bom"]),
        request=str(document["request"]),
        schema=schema,
        compression=document.get("compression"),
        files=tuple(
            ManifestFile(
                uri=str(f["uri"]),
                bucket=str(f["bucket"]),
                key=str(f["key"]),
                rows=int(f["rows"]),
                bytes=f.get("bytes"),
                etag=f.get("etag"),
            )
            for f in document["files"]
        ),
        started=parse_timestamp(document.get("started")),
        finished=parse_timestamp(document.get("finished")),
        copied_from=tuple(str(u) for u in document.get("copied_from") or ()),
        written_at=document.get("written_at"),
    )


def _exists(s3_client: Any, bucket: str, key: str) -> bool:
    try:
        s3_client.head_object(Bucket=bucket, Key=key)
    except ClientError:
        return False
    return True


def iso(moment: datetime | None) -> str | None:
    """An ISO-8601 UTC text, ``Z``-suffixed (None stays None)."""
    return moment.isoformat().replace("+00:00", "Z") if moment else None
