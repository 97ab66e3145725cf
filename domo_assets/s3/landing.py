"""The landing around verified exports: a stable pointer, retention and a Redshift COPY manifest.

Every export lands in a folder of its own, ``<prefix>/<exportId>/export/``. For readers that do
not follow Dagster's metadata or Glue, this module keeps, beside those folders:

* ``<prefix>/_latest.json``, the **pointer** to the current export (format
  ``domo_assets.latest/v1``)::

      {"format": "domo_assets.latest/v1", "export_id": "...", "partition_key": null,
       "location": "s3://<bucket>/<prefix>/<exportId>/export/",
       "manifest": "s3://.../_manifest.json", "row_count": 360,
       "files": ["s3://.../data.csv.gz"], "written_at": "<ISO-8601>"}

  replaced by one PutObject, which S3 makes visible whole: a reader sees the old pointer or the
  new one, never a mix;
* **retention**: only the N newest export folders under the prefix are kept, and only folders
  holding a ``_manifest.json`` this project wrote for that export are ever removed;
* ``_redshift_manifest.json`` beside ``_manifest.json``, in AWS's documented format, so
  ``COPY ... MANIFEST`` loads exactly the export's files.

The prefix is the asset's path, or ``<path>/<partition segment>`` for a partition. Files whose
names start with ``_`` are skipped by Athena, Hive and Spark, so these sit beside the data.
It knows S3 (through boto3) and the Domo layer's records, nothing of Dagster.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from domo_assets.domo.errors import DomoResponseError
from domo_assets.domo.models import S3Object, parse_timestamp
from domo_assets.s3.manifest import MANIFEST_FORMAT, MANIFEST_NAME, manifest_key
from domo_assets.s3.storage import StoredObject, error_code, is_missing
from domo_assets.s3.target import EXPORT_FOLDER, export_folder

LATEST_NAME = "_latest.json"
LATEST_FORMAT = "domo_assets.latest/v1"
REDSHIFT_MANIFEST_NAME = "_redshift_manifest.json"
JSON_CONTENT_TYPE = "application/json"
MIN_KEEP_EXPORTS = 1
# DeleteObjects takes at most 1,000 keys a request.
DELETE_BATCH = 1000
_ACCESS_DENIED_CODES = {"AccessDenied", "403"}


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
        location: Its folder, ``s3://<bucket>/<prefix>/<exportId>/export/``.
        manifest: Its ``_manifest.json``.
        row_count: Data rows over its files.
        files: Its files' ``s3://`` URIs.
        written_at: When the pointer was written (ISO-8601, UTC).
        partition_key: The partition, for a partition's prefix.
    """

    uri: str
    export_id: str
    location: str
    manifest: str
    row_count: int
    files: tuple[str, ...]
    written_at: str
    partition_key: str | None = None

    def to_document(self) -> dict[str, Any]:
        """The pointer's JSON document."""
        return {
            "format": LATEST_FORMAT,
            "export_id": self.export_id,
            "partition_key": self.partition_key,
            "location": self.location,
            "manifest": self.manifest,
            "row_count": self.row_count,
            "files": list(self.files),
            "written_at": self.written_at,
        }


@dataclass(frozen=True)
class RemovedExport:
    """An export folder retention removed."""

    export_id: str
    folder: str
    """``s3://<bucket>/<prefix>/<exportId>/``."""
    objects: int
    bytes: int
    written_at: str


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
        ignored: Folders that are not exports this project verified, left alone.
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


@dataclass(frozen=True)
class _Candidate:
    export_id: str
    written: datetime
    written_at: str


def export_location(bucket: str, prefix: str, export_id: str) -> str:
    """An export's folder of files: ``s3://<bucket>/<prefix>/<exportId>/export/``."""
    return f"s3://{bucket}/{_folder_key(_clean(prefix), export_id)}{EXPORT_FOLDER}/"


def latest_key(prefix: str) -> str:
    """The pointer's key: ``<prefix>/_latest.json``."""
    return f"{_clean(prefix)}/{LATEST_NAME}"


def write_latest(
    s3_client: Any,
    bucket: str,
    prefix: str,
    export_id: str,
    manifest_uri: str,
    files: Sequence[S3Object],
    partition_key: str | None = None,
) -> LatestPointer:
    """Replace ``<prefix>/_latest.json`` with a pointer to a verified export (one PutObject).

    Call it only once the export's checks passed and its manifest is written.

    Args:
        s3_client: A boto3 S3 client with the worker's credentials.
        bucket: The bucket.
        prefix: The asset's path, or ``<path>/<partition segment>`` for a partition.
        export_id: The export.
        manifest_uri: Its ``_manifest.json``.
        files: Its files, with their row counts.
        partition_key: The partition, for a partition's prefix.

    Returns:
        The pointer written.

    Raises:
        LandingError: S3 refused or failed the write (the message names the permission).
    """
    key = latest_key(prefix)
    pointer = LatestPointer(
        uri=f"s3://{bucket}/{key}",
        export_id=export_id,
        location=export_location(bucket, prefix, export_id),
        manifest=manifest_uri,
        row_count=sum(obj.row_count for obj in files),
        files=tuple(obj.uri for obj in files),
        written_at=_now(),
        partition_key=partition_key,
    )
    _put_json(s3_client, bucket, key, pointer.to_document())
    return pointer


def read_latest(s3_client: Any, bucket: str, prefix: str) -> LatestPointer | None:
    """The pointer under ``prefix``, or None when there is none yet.

    Raises:
        PointerFormatError: ``_latest.json`` is not a pointer of format ``domo_assets.latest/v1``.
        LandingError: S3 refused or failed the read.
    """
    key = latest_key(prefix)
    uri = f"s3://{bucket}/{key}"
    exists, document = _get_json(s3_client, bucket, key)
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
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PointerFormatError(
            f"{uri} lacks or garbles field {exc}: rewrite it by materializing the asset again"
        ) from None


def apply_retention(
    s3_client: Any, bucket: str, prefix: str, keep: int, current_export_id: str
) -> RetentionReport:
    """Remove the export folders under ``prefix`` older than its ``keep`` newest.

    Only direct sub-folders of ``prefix`` whose ``export/_manifest.json`` this project wrote for
    that very export (the current manifest format, naming the folder's export id) count as
    exports, ranked by the manifest's ``written_at`` (else ``finished``). Anything else (another
    prefix that merely starts alike, partition folders, unverified or foreign folders, a folder
    whose manifest has no readable time) is left alone, and so are ``current_export_id`` and the
    export ``_latest.json`` names (should the pointer lag behind, its readers keep their data). In a
    folder, the manifest is deleted last: a folder half removed keeps it, and is removed on the
    next call. In a versioned bucket the deletions leave delete markers (lifecycle rules expire
    the old versions).

    Args:
        s3_client: A boto3 S3 client with the worker's credentials.
        bucket: The bucket.
        prefix: The asset's path, or ``<path>/<partition segment>`` for a partition.
        keep: How many of the newest exports to keep (at least 1).
        current_export_id: The export just materialized: never removed.

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
    protected = {current_export_id, *_pointed_export(s3_client, bucket, root)}
    candidates: list[_Candidate] = []
    ignored: list[IgnoredFolder] = []
    for export_id in _child_folders(s3_client, bucket, root):
        found = _candidate(s3_client, bucket, root, export_id)
        if isinstance(found, _Candidate):
            candidates.append(found)
        else:
            ignored.append(IgnoredFolder(f"s3://{bucket}/{_folder_key(root, export_id)}", found))
    candidates.sort(key=lambda c: c.written, reverse=True)
    kept = tuple(
        c.export_id for i, c in enumerate(candidates) if i < keep or c.export_id in protected
    )
    removed = [
        _remove_folder(s3_client, bucket, root, c) for c in candidates if c.export_id not in kept
    ]
    return RetentionReport(
        prefix=f"s3://{bucket}/{root}/",
        kept=kept,
        removed=tuple(removed),
        ignored=tuple(ignored),
    )


def build_redshift_manifest(objects: Sequence[StoredObject]) -> dict[str, Any]:
    """The Redshift COPY manifest of an export's files, with their sizes.

    Raises:
        ValueError: A file was not found in S3 (HEAD them with ``inspect_objects`` first).
    """
    missing = [s.reported.uri for s in objects if not s.exists or s.size is None]
    if missing:
        raise ValueError(
            f"cannot list {', '.join(missing)} in a Redshift manifest: not found in S3 (its size "
            "is unknown); build the manifest from a verified export's objects"
        )
    return {
        "entries": [
            {"url": s.reported.uri, "mandatory": True, "meta": {"content_length": s.size}}
            for s in objects
        ]
    }


def write_redshift_manifest(
    s3_client: Any, objects: Sequence[StoredObject], export_id: str
) -> str | None:
    """Write ``_redshift_manifest.json`` beside the export's ``_manifest.json``.

    Args:
        s3_client: A boto3 S3 client with the worker's credentials.
        objects: The export's files as S3 sees them (``inspect_objects``), all in one export
            folder (``<exportId>/export/``, nested keys included: ``target.export_folder``).
        export_id: The export's id.

    Returns:
        The manifest's ``s3://`` URI, or None when the export wrote no file.

    Raises:
        ValueError: A file is missing, or the files lie in more than one export folder.
        LandingError: S3 refused or failed the write.
    """
    if not objects:
        return None
    folders = {(s.reported.bucket, export_folder(export_id, s.reported.key)) for s in objects}
    if len(folders) != 1:
        raise ValueError(
            "an export's files must lie in one folder for its Redshift manifest, found "
            + ", ".join(f"s3://{b}/{f}/" for b, f in sorted(folders))
        )
    ((bucket, folder),) = folders
    key = f"{folder}/{REDSHIFT_MANIFEST_NAME}"
    _put_json(s3_client, bucket, key, build_redshift_manifest(objects))
    return f"s3://{bucket}/{key}"


def _pointed_export(s3_client: Any, bucket: str, root: str) -> tuple[str, ...]:
    """The export ``_latest.json`` names, when it holds a readable pointer."""
    try:
        pointer = read_latest(s3_client, bucket, root)
    except PointerFormatError:
        return ()
    return (pointer.export_id,) if pointer else ()


def _candidate(s3_client: Any, bucket: str, root: str, export_id: str) -> _Candidate | str:
    """The folder as a ranked export, or why it is not one."""
    key = manifest_key(f"{_folder_key(root, export_id)}{EXPORT_FOLDER}")
    _, document = _get_json(s3_client, bucket, key)
    if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT:
        return f"no {MANIFEST_NAME} of format {MANIFEST_FORMAT}: not an export domo_assets verified"
    if document.get("export_id") != export_id:
        return f"its {MANIFEST_NAME} names export {document.get('export_id')!r}, not this folder"
    for field in ("written_at", "finished"):
        try:
            written = parse_timestamp(document.get(field))
        except DomoResponseError:
            written = None
        if written is not None:
            return _Candidate(export_id, written, str(document[field]))
    return f"its {MANIFEST_NAME} has no readable written_at or finished: its age is unknown"


def _remove_folder(s3_client: Any, bucket: str, root: str, candidate: _Candidate) -> RemovedExport:
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
        written_at=candidate.written_at,
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


def _put_json(s3_client: Any, bucket: str, key: str, document: dict[str, Any]) -> None:
    body = json.dumps(document, indent=2).encode("utf-8")
    try:
        s3_client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=JSON_CONTENT_TYPE)
    except (ClientError, BotoCoreError) as exc:
        raise _s3_error(exc, "write", "s3:PutObject", f"arn:aws:s3:::{bucket}/{key}") from None


def _get_json(s3_client: Any, bucket: str, key: str) -> tuple[bool, Any]:
    """Whether the object at ``key`` exists, and its decoded JSON (None when it is not JSON).

    Raises:
        LandingError: S3 refused or failed the read.
    """
    try:
        body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if is_missing(exc):
            return False, None
        raise _s3_error(exc, "read", "s3:GetObject", f"arn:aws:s3:::{bucket}/{key}") from None
    except BotoCoreError as exc:
        raise _s3_error(exc, "read", "s3:GetObject", f"arn:aws:s3:::{bucket}/{key}") from None
    try:
        return True, json.loads(body)
    except ValueError:
        return True, None


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
