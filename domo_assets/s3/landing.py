"""The landing around verified exports: a stable pointer, retention and a Redshift COPY manifest.

Every export lands in a folder of its own, ``<prefix>/<exportId>/export/``. For readers that do
not follow Dagster's metadata or Glue, this module keeps, beside those folders:

* ``<prefix>/_latest.json``, the **pointer** to the current export (format
  ``domo_assets.latest/v1``)::

      {"format": "domo_assets.latest/v1", "export_id": "...", "partition_key": null,
       "location": "s3://<bucket>/<prefix>/<exportId>/export/",
       "manifest": "s3://.../_manifest.json", "request": "<fingerprint>",
       "started": "<Domo's start>", "finished": "<Domo's end>", "row_count": 360,
       "files": ["s3://.../data.csv.gz"], "written_at": "<ISO-8601>"}

  replaced by one conditional PutObject, which S3 makes visible whole (a reader sees the old
  pointer or the new one, never a mix), and never moved to an export older, by Domo's times,
  than the one it names; ``_latest_parquet.json`` names the Parquet files the same way;
* **retention**: only the N newest export folders of the asset's request under the prefix are
  kept, ranked by Domo's times; only folders whose ``_manifest.json`` this project wrote for
  that export and that request are ever removed, never one a live materialization names;
* ``_redshift_manifest.json`` beside ``_manifest.json``, in AWS's documented format, so
  ``COPY ... MANIFEST`` loads exactly the export's files.

The prefix is the asset's path, or ``<path>/<partition segment>`` for a partition. Files whose
names start with ``_`` are skipped by Athena, Hive and Spark, so these sit beside the data.
It knows S3 (through boto3) and the Domo layer's records, nothing of Dagster.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from domo_assets.domo.errors import DomoResponseError
from domo_assets.domo.models import S3Object, parse_timestamp
from domo_assets.s3.manifest import (
    JSON_CONTENT_TYPE,
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    ExportManifest,
    ManifestFile,
    export_order,
    iso,
    manifest_folder,
    manifest_key,
    parse_manifest,
)
from domo_assets.s3.storage import error_code, is_missing
from domo_assets.s3.target import EXPORT_FOLDER

LATEST_NAME = "_latest.json"
PARQUET_LATEST_NAME = "_latest_parquet.json"
LATEST_FORMAT = "domo_assets.latest/v1"
REDSHIFT_MANIFEST_NAME = "_redshift_manifest.json"
MIN_KEEP_EXPORTS = 1
# A verified folder Dagster has not recorded is kept this long: a concurrent run may be about
# to record it (it writes the manifest, then yields the materialization, within seconds).
IN_FLIGHT_GRACE = timedelta(hours=1)
# DeleteObjects takes at most 1,000 keys a request.
DELETE_BATCH = 1000
# A conditional pointer write that lost a race is read and decided again, this many times.
MAX_POINTER_ATTEMPTS = 8
_ACCESS_DENIED_CODES = {"AccessDenied", "403"}
# S3's answers to a conditional write that lost: the object changed, or a concurrent write.
_LOST_RACE_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


class LandingError(Exception):
    """An S3 call of the landing failed; ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class PointerFormatError(LandingError):
    """``_latest.json`` exists but is not a pointer this project wrote."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


@dataclass(frozen=True)
class LatestPointer:
    """The current export of a prefix, as ``_latest.json`` names it.

    Attributes:
        uri: Where the pointer lies.
        export_id: The current export.
        location: Its folder, ``s3://<bucket>/<prefix>/<exportId>/export/`` (``parquet/`` for
            the Parquet pointer).
        manifest: Its ``_manifest.json``.
        row_count: Data rows over its files.
        files: Its files' ``s3://`` URIs.
        written_at: When the pointer was written (ISO-8601, UTC; informative only).
        partition_key: The partition, for a partition's prefix.
        request: The fingerprint of the request the export answers (None in pointers written
            before it was recorded).
        started: Domo's start time of the export (the publication order).
        finished: Domo's end time of the export.
        etag: The pointer object's ETag when it was read (what a conditional replace names).
    """

    uri: str
    export_id: str
    location: str
    manifest: str
    row_count: int
    files: tuple[str, ...]
    written_at: str
    partition_key: str | None = None
    request: str | None = None
    started: datetime | None = None
    finished: datetime | None = None
    etag: str | None = None

    @property
    def order_key(self) -> tuple[datetime, datetime, str]:
        """The export's publication order (``manifest.export_order``)."""
        return export_order(self.export_id, self.started, self.finished)

    def to_document(self) -> dict[str, Any]:
        """The pointer's JSON document."""
        return {
            "format": LATEST_FORMAT,
            "export_id": self.export_id,
            "partition_key": self.partition_key,
            "location": self.location,
            "manifest": self.manifest,
            "request": self.request,
            "started": iso(self.started),
            "finished": iso(self.finished),
            "row_count": self.row_count,
            "files": list(self.files),
            "written_at": self.written_at,
        }


@dataclass(frozen=True)
class PointerMove:
    """What publishing an export did to a pointer.

    Attributes:
        pointer: The pointer in place afterwards.
        moved: Whether this call made it name the export (False: it named it already, or a
            newer export).
        superseded_by: The newer export the pointer names instead, when it was left on it.
    """

    pointer: LatestPointer
    moved: bool
    superseded_by: str | None = None


@dataclass(frozen=True)
class RemovedExport:
    """An export folder retention removed."""

    export_id: str
    folder: str
    """``s3://<bucket>/<prefix>/<exportId>/``."""
    objects: int
    bytes: int
    started: str | None


@dataclass(frozen=True)
class IgnoredFolder:
    """A folder under the prefix that retention left alone, and why."""

    folder: str
    reason: str


@dataclass(frozen=True)
class RetentionReport:
    """What retention did under one prefix.

    Attributes:
        prefix: ``s3://<bucket>/<prefix>/``.
        kept: The export ids kept, newest first (the current one included).
        removed: The folders removed, newest first.
        ignored: Folders that are not exports this project verified for this request, left
            alone.
    """

    prefix: str
    kept: tuple[str, ...]
    removed: tuple[RemovedExport, ...]
    ignored: tuple[IgnoredFolder, ...]

    @property
    def removed_objects(self) -> int:
        """Objects deleted over every removed folder."""
        return sum(r.objects for r in self.removed)

    @property
    def removed_bytes(self) -> int:
        """Bytes deleted over every removed folder."""
        return sum(r.bytes for r in self.removed)


def export_location(bucket: str, prefix: str, export_id: str, folder: str = EXPORT_FOLDER) -> str:
    """An export's folder of files: ``s3://<bucket>/<prefix>/<exportId>/export/`` (or another
    sub-folder of the export, such as ``parquet``)."""
    return f"s3://{bucket}/{_folder_key(_clean(prefix), export_id)}{folder}/"


def latest_key(prefix: str, name: str = LATEST_NAME) -> str:
    """The pointer's key: ``<prefix>/_latest.json`` (or ``name``)."""
    return f"{_clean(prefix)}/{name}"


def publish_pointer(
    s3_client: Any,
    bucket: str,
    prefix: str,
    manifest: ExportManifest,
    manifest_uri: str,
    *,
    name: str = LATEST_NAME,
    folder: str = EXPORT_FOLDER,
    files: Sequence[S3Object] | None = None,
) -> PointerMove:
    """Make the pointer name a verified export, unless it names a newer one (monotonic).

    The pointer is read, compared by Domo's times (``ExportManifest.order_key``; never the
    worker's clock) and replaced by a conditional PutObject (``If-Match`` its ETag, or
    ``If-None-Match: *`` where there is none): two publishers finishing out of order cannot move
    it back to the older export. A write that lost a race is decided again.

    Call it only once the export's materialization is recorded in Dagster.

    Args:
        s3_client: A boto3 S3 client with the worker's credentials.
        bucket: The bucket.
        prefix: The asset's path, or ``<path>/<partition segment>`` for a partition.
        manifest: The verified export.
        manifest_uri: Its ``_manifest.json``.
        name: The pointer's name (``_latest.json``; ``_latest_parquet.json`` for Parquet).
        folder: The export's sub-folder the pointer's ``location`` names.
        files: The files the pointer lists (default: the export's own).

    Returns:
        The pointer in place, and whether this call moved it.

    Raises:
        LandingError: S3 refused or failed a read or the write (the message names the
            permission), or the pointer kept changing under it.
        PointerFormatError: The pointer is not one this project wrote.
    """
    listed = tuple(files) if files is not None else manifest.objects
    key = latest_key(prefix, name)
    wanted = LatestPointer(
        uri=f"s3://{bucket}/{key}",
        export_id=manifest.export_id,
        location=export_location(bucket, prefix, manifest.export_id, folder),
        manifest=manifest_uri,
        row_count=sum(obj.row_count for obj in listed),
        files=tuple(obj.uri for obj in listed),
        written_at=_now(),
        partition_key=manifest.partition_key,
        request=manifest.request,
        started=manifest.started,
        finished=manifest.finished,
    )
    for _ in range(MAX_POINTER_ATTEMPTS):
        current = read_latest(s3_client, bucket, prefix, name)
        if current is not None and current.export_id == manifest.export_id:
            return PointerMove(current, moved=False)
        if current is not None and pointer_order(s3_client, current) > manifest.order_key:
            return PointerMove(current, moved=False, superseded_by=current.export_id)
        condition = (
            {"IfMatch": current.etag}
            if current is not None and current.etag
            else {"IfNoneMatch": "*"}
        )
        if _put_json(s3_client, bucket, key, wanted.to_document(), condition):
            return PointerMove(wanted, moved=True)
    raise LandingError(
        f"s3://{bucket}/{key} kept changing while this export was published "
        f"({MAX_POINTER_ATTEMPTS} attempts); it is tried again on the next materialization"
    )


def read_latest(
    s3_client: Any, bucket: str, prefix: str, name: str = LATEST_NAME
) -> LatestPointer | None:
    """The pointer under ``prefix``, or None when there is none yet.

    Raises:
        PointerFormatError: ``_latest.json`` is not a pointer of format ``domo_assets.latest/v1``.
        LandingError: S3 refused or failed the read.
    """
    key = latest_key(prefix, name)
    uri = f"s3://{bucket}/{key}"
    exists, document, etag = _get_json(s3_client, bucket, key)
    if not exists:
        return None
    if not isinstance(document, dict) or document.get("format") != LATEST_FORMAT:
        raise PointerFormatError(
            f"{uri} is not a pointer of format {LATEST_FORMAT}: it was not written by "
            "domo_assets (or by a newer version); read the export from its manifest instead"
        )
    try:
        return LatestPointer(
            uri=uri,
            export_id=str(document["export_id"]),
            location=str(document["location"]),
            manifest=str(document["manifest"]),
            row_count=int(document["row_count"]),
            files=tuple(str(f) for f in document["files"]),
            written_at=str(document["written_at"]),
            partition_key=document.get("partition_key"),
            request=document.get("request"),
            started=parse_timestamp(document.get("started")),
            finished=parse_timestamp(document.get("finished")),
            etag=etag,
        )
    except (KeyError, TypeError, ValueError, DomoResponseError) as exc:
        raise PointerFormatError(
            f"{uri} lacks or garbles field {exc}: rewrite it by materializing the asset again"
        ) from None


def apply_retention(
    s3_client: Any,
    bucket: str,
    prefix: str,
    keep: int,
    current: ExportManifest,
    protected: Collection[str] = (),
    *,
    recorded: Collection[str] | None = None,
    in_flight_grace: timedelta = IN_FLIGHT_GRACE,
) -> RetentionReport:
    """Remove this request's export folders under ``prefix`` older than its ``keep`` newest.

    Only direct sub-folders of ``prefix`` whose ``export/_manifest.json`` this project wrote for
    that very export AND for this very request (its ``request`` is ``current.request``) count,
    ranked by Domo's times (``ExportManifest.order_key``), never the worker's clock. Anything
    else (another prefix that merely starts alike, partition folders, unverified folders, another
    request's exports) is left alone, and so are ``current``, every export newer than it, the
    exports ``_latest.json`` and ``_latest_parquet.json`` name and the ``protected`` ones
    (what a live materialization names: the caller reads them from Dagster). In a folder, the
    manifest is deleted last: a folder half removed keeps it, and is removed on the next call.
    In a versioned bucket the deletions leave delete markers (lifecycle rules expire the old
    versions).

    Args:
        s3_client: A boto3 S3 client with the worker's credentials.
        bucket: The bucket.
        prefix: The asset's path, or ``<path>/<partition segment>`` for a partition.
        keep: How many of the newest exports to keep (at least 1).
        current: The export just published: never removed, and its request is the owner.
        protected: Export ids never to remove.
        recorded: The export ids Dagster recorded for the asset, when known: a folder not
            among them whose manifest was written less than ``in_flight_grace`` ago may be a
            concurrent run's export, verified and about to be recorded, and is kept (the
            worker's clock serves this safety margin only, never the order).
        in_flight_grace: See ``recorded``.

    Returns:
        What was kept, removed and left alone.

    Raises:
        ValueError: ``keep`` below 1, or an empty prefix.
        LandingError: S3 refused or failed a listing or a deletion (the message names the
            permission); folders removed before the failure stay removed.
    """
    if keep < MIN_KEEP_EXPORTS:
        raise ValueError(f"keep_exports must be at least {MIN_KEEP_EXPORTS}, not {keep}")
    root = _clean(prefix)
    spared = {current.export_id, *protected, *_pointed_export(s3_client, bucket, root)}
    candidates: list[ExportManifest] = []
    ignored: list[IgnoredFolder] = []
    for export_id in _child_folders(s3_client, bucket, root):
        found = _candidate(s3_client, bucket, root, export_id, current.request)
        if isinstance(found, ExportManifest):
            candidates.append(found)
        else:
            ignored.append(IgnoredFolder(f"s3://{bucket}/{_folder_key(root, export_id)}", found))
    candidates.sort(key=lambda m: m.order_key, reverse=True)
    if recorded is not None:
        spared |= {m.export_id for m in candidates if _in_flight(m, recorded, in_flight_grace)}
    kept = tuple(
        m.export_id
        for i, m in enumerate(candidates)
        if i < keep or m.export_id in spared or m.order_key >= current.order_key
    )
    removed = [
        _remove_folder(s3_client, bucket, root, m) for m in candidates if m.export_id not in kept
    ]
    return RetentionReport(
        prefix=f"s3://{bucket}/{root}/",
        kept=kept,
        removed=tuple(removed),
        ignored=tuple(ignored),
    )


def build_redshift_manifest(files: Sequence[ManifestFile]) -> dict[str, Any]:
    """The Redshift COPY manifest of an export's files, with their sizes.

    Raises:
        ValueError: A file's size is unknown (it was not found in S3 when verified).
    """
    missing = [f.uri for f in files if f.bytes is None]
    if missing:
        raise ValueError(
            f"cannot list {', '.join(missing)} in a Redshift manifest: not found in S3 (its size "
            "is unknown); build the manifest from a verified export's objects"
        )
    return {
        "entries": [
            {"url": f.uri, "mandatory": True, "meta": {"content_length": f.bytes}} for f in files
        ]
    }


def write_redshift_manifest(s3_client: Any, manifest: ExportManifest) -> str | None:
    """Write ``_redshift_manifest.json`` beside the export's ``_manifest.json``.

    It names only the export's own files, so it is written with the manifest, before the
    export is recorded: no reader is sent to it until the pointer is.

    Args:
        s3_client: A boto3 S3 client with the worker's credentials.
        manifest: The verified export, its files all in one folder.

    Returns:
        The manifest's ``s3://`` URI, or None when the export wrote no file.

    Raises:
        ValueError: A file's size is unknown, or the files lie in more than one bucket.
        LandingError: S3 refused or failed the write.
    """
    if manifest.folder is None:
        return None
    buckets = sorted({f.bucket for f in manifest.files})
    if len(buckets) != 1:
        raise ValueError(
            "an export's files must lie in one bucket for its Redshift manifest, found "
            + ", ".join(buckets)
        )
    bucket, folder = manifest.folder
    key = f"{folder}/{REDSHIFT_MANIFEST_NAME}"
    _put_json(s3_client, bucket, key, build_redshift_manifest(manifest.files))
    return f"s3://{bucket}/{key}"


def _pointed_export(s3_client: Any, bucket: str, root: str) -> tuple[str, ...]:
    """The exports ``_latest.json`` and ``_latest_parquet.json`` name (readers may be on
    either), where they hold a pointer this project wrote (another's names nothing of ours)."""
    found = []
    for name in (LATEST_NAME, PARQUET_LATEST_NAME):
        try:
            pointer = read_latest(s3_client, bucket, root, name)
        except PointerFormatError:
            continue
        if pointer is not None:
            found.append(pointer.export_id)
    return tuple(found)


def _candidate(
    s3_client: Any, bucket: str, root: str, export_id: str, request: str
) -> ExportManifest | str:
    """The folder as a ranked export of ``request``, or why it is not one."""
    found = _read_folder_manifest(
        s3_client, bucket, f"{_folder_key(root, export_id)}{EXPORT_FOLDER}"
    )
    if found is None:
        return f"no {MANIFEST_NAME} of format {MANIFEST_FORMAT}: not an export domo_assets verified"
    if found.export_id != export_id:
        return f"its {MANIFEST_NAME} names export {found.export_id!r}, not this folder"
    if found.request != request:
        return (
            f"its {MANIFEST_NAME} answers request {found.request}, not this asset's ({request}): "
            "another request's export (or this asset's before its catalog entry changed)"
        )
    return found


def _in_flight(manifest: ExportManifest, recorded: Collection[str], grace: timedelta) -> bool:
    """Whether a verified folder may be a run's export about to be recorded: Dagster has not
    recorded it and its manifest is recent (or of unknown age)."""
    if manifest.export_id in recorded:
        return False
    try:
        written = parse_timestamp(manifest.written_at)
    except DomoResponseError:
        return True
    return written is None or datetime.now(UTC) - written < grace


def _read_folder_manifest(s3_client: Any, bucket: str, folder_key: str) -> ExportManifest | None:
    """The manifest in a folder (None when absent or not this project's), errors as LandingError."""
    key = manifest_key(folder_key)
    exists, _, body = _get(s3_client, bucket, key)
    return parse_manifest(body) if exists else None


def pointer_order(s3_client: Any, pointer: LatestPointer) -> tuple[datetime, datetime, str]:
    """The publication order of the export a pointer names: from the pointer, or (pointers
    written before they recorded Domo's times) from the export's manifest."""
    if pointer.started is not None or pointer.finished is not None:
        return pointer.order_key
    folder = manifest_folder(pointer.manifest)
    found = _read_folder_manifest(s3_client, *folder) if folder is not None else None
    return found.order_key if found is not None else pointer.order_key


def _remove_folder(
    s3_client: Any, bucket: str, root: str, candidate: ExportManifest
) -> RemovedExport:
    folder = _folder_key(root, candidate.export_id)
    manifest = manifest_key(f"{folder}{EXPORT_FOLDER}")
    objects = list(_objects(s3_client, bucket, folder))
    # The manifest last: until everything else is gone the folder stays recognisably ours.
    data = [k for k, _ in objects if k != manifest]
    for start in range(0, len(data), DELETE_BATCH):
        _delete(s3_client, bucket, folder, data[start : start + DELETE_BATCH])
    _delete(s3_client, bucket, folder, [k for k, _ in objects if k == manifest])
    return RemovedExport(
        export_id=candidate.export_id,
        folder=f"s3://{bucket}/{folder}",
        objects=len(objects),
        bytes=sum(size for _, size in objects),
        started=iso(candidate.started),
    )


def _child_folders(s3_client: Any, bucket: str, root: str) -> Iterator[str]:
    """The names of the direct sub-folders of ``root``: listed with a delimiter, so a sibling
    prefix that merely starts with the same characters (``claims_supply`` for ``claims``) and
    deeper folders never appear."""
    start = f"{root}/"
    for page in _pages(s3_client, bucket, start, delimiter="/"):
        for common in page.get("CommonPrefixes", []):
            name = str(common["Prefix"])[len(start) :].rstrip("/")
            if name:
                yield name


def _objects(s3_client: Any, bucket: str, folder: str) -> Iterator[tuple[str, int]]:
    for page in _pages(s3_client, bucket, folder):
        for obj in page.get("Contents", []):
            yield str(obj["Key"]), int(obj.get("Size", 0))


def _pages(
    s3_client: Any, bucket: str, prefix: str, delimiter: str | None = None
) -> Iterator[dict[str, Any]]:
    arguments = {"Bucket": bucket, "Prefix": prefix}
    if delimiter:
        arguments["Delimiter"] = delimiter
    try:
        yield from s3_client.get_paginator("list_objects_v2").paginate(**arguments)
    except (ClientError, BotoCoreError) as exc:
        raise _s3_error(exc, "list", "s3:ListBucket", f"arn:aws:s3:::{bucket}") from None


def _delete(s3_client: Any, bucket: str, folder: str, keys: list[str]) -> None:
    if not keys:
        return
    resource = f"arn:aws:s3:::{bucket}/{folder}*"
    try:
        answer = s3_client.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
        )
    except (ClientError, BotoCoreError) as exc:
        raise _s3_error(exc, "delete", "s3:DeleteObject", resource) from None
    errors = answer.get("Errors") or []
    if errors:
        denied = any(str(e.get("Code")) in _ACCESS_DENIED_CODES for e in errors)
        sample = ", ".join(f"{e.get('Key')} ({e.get('Code')})" for e in errors[:3])
        raise LandingError(
            f"S3 did not delete {len(errors)} object(s) of s3://{bucket}/{folder}: {sample}. "
            + (
                f"Grant s3:DeleteObject on {resource} to the worker's credentials"
                if denied
                else "The folder is removed on the next materialization"
            ),
            retryable=not denied,
        )


def _put_json(
    s3_client: Any,
    bucket: str,
    key: str,
    document: dict[str, Any],
    condition: Mapping[str, str] | None = None,
) -> bool:
    """Write a JSON object; with a ``condition`` (``IfMatch``/``IfNoneMatch``), False when S3
    refused it because the object changed meanwhile."""
    body = json.dumps(document, indent=2).encode("utf-8")
    try:
        s3_client.put_object(
            Bucket=bucket, Key=key, Body=body, ContentType=JSON_CONTENT_TYPE, **(condition or {})
        )
    except ClientError as exc:
        if condition and error_code(exc) in _LOST_RACE_CODES:
            return False
        raise _s3_error(exc, "write", "s3:PutObject", f"arn:aws:s3:::{bucket}/{key}") from None
    except BotoCoreError as exc:
        raise _s3_error(exc, "write", "s3:PutObject", f"arn:aws:s3:::{bucket}/{key}") from None
    return True


def _get_json(s3_client: Any, bucket: str, key: str) -> tuple[bool, Any, str | None]:
    """Whether the object at ``key`` exists, its decoded JSON (None when it is not JSON) and
    its ETag.

    Raises:
        LandingError: S3 refused or failed the read.
    """
    exists, etag, body = _get(s3_client, bucket, key)
    if not exists:
        return False, None, None
    try:
        return True, json.loads(body), etag
    except ValueError:
        return True, None, etag


def _get(s3_client: Any, bucket: str, key: str) -> tuple[bool, str | None, bytes]:
    """Whether the object at ``key`` exists, its ETag and its bytes.

    Raises:
        LandingError: S3 refused or failed the read.
    """
    try:
        answer = s3_client.get_object(Bucket=bucket, Key=key)
        return True, answer.get("ETag"), answer["Body"].read()
    except ClientError as exc:
        if is_missing(exc):
            return False, None, b""
        raise _s3_error(exc, "read", "s3:GetObject", f"arn:aws:s3:::{bucket}/{key}") from None
    except BotoCoreError as exc:
        raise _s3_error(exc, "read", "s3:GetObject", f"arn:aws:s3:::{bucket}/{key}") from None


def _s3_error(
    exc: ClientError | BotoCoreError, verb: str, permission: str, resource: str
) -> LandingError:
    if isinstance(exc, ClientError):
        code = error_code(exc)
        if code in _ACCESS_DENIED_CODES:
            return LandingError(
                f"S3 refused to {verb} {resource} ({code}): grant {permission} on {resource} "
                "to the worker's credentials",
                retryable=False,
            )
        reason = f"{code}: {exc.response.get('Error', {}).get('Message', '')}".rstrip(": ")
    else:
        reason = str(exc)
    return LandingError(
        f"S3 could not {verb} {resource} ({reason}); it is tried again on the next materialization"
    )


def _folder_key(root: str, export_id: str) -> str:
    return f"{root}/{export_id}/"


def _clean(prefix: str) -> str:
    cleaned = prefix.strip("/")
    if not cleaned:
        raise ValueError(
            "the landing needs the asset's S3 prefix (its path), not the bucket's root"
        )
    return cleaned


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
