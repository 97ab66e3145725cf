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
     "columns": ["..."], "compression": "gzip", "row_count": 360,
     "files": [{"uri", "bucket", "key", "rows", "bytes", "etag"}],
     "copied_from": ["s3://..."] (only for copies of another request's export),
     "started": "<ISO-8601>", "finished": "<ISO-8601>", "written_at": "<ISO-8601>",
     "written_by": "domo_assets <version>"}

The manifest is also how this project recognises, in an export Domo hands back for another
request, the same query: see ``provenance.py``.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from domo_assets.s3.storage import is_missing
from domo_assets.s3.target import ExportTarget, export_folder
from domo_assets.version import __version__

if TYPE_CHECKING:
    # The record it is written from; the S3 layer imports nothing of the Dagster layer.
    from domo_assets.outcome import ExportOutcome

MANIFEST_NAME = "_manifest.json"
MANIFEST_FORMAT = "domo_assets.manifest/v2"


@dataclass(frozen=True)
class Manifest:
    """The parts of a manifest that say which request an export answers."""

    uri: str
    export_id: str | None
    dataset_id: Any
    query: Any
    include_bom: Any

    def answers(self, target: ExportTarget) -> bool:
        """Whether the export was made for the same DataSet, query and BOM as ``target``."""
        return target.answered_by(self.dataset_id, self.query, self.include_bom)


def manifest_key(folder_key: str) -> str:
    """The manifest's key in a folder of export files."""
    return posixpath.join(folder_key, MANIFEST_NAME)


def build_manifest(outcome: ExportOutcome) -> dict[str, Any]:
    """The manifest document of one verified export."""
    export = outcome.export
    target = outcome.target
    stored = {s.reported.uri: s for s in outcome.stored}
    document: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "export_id": export.export_id,
        "dataset": {"id": target.dataset_id, "name": outcome.dataset.name},
        "partition_key": target.partition_key,
        "query": target.query_document,
        "include_bom": target.include_bom,
        "request": target.fingerprint,
        "columns": list(target.columns),
        "compression": export.compression,
        "row_count": outcome.row_count,
        "files": [
            {
                "uri": obj.uri,
                "bucket": obj.bucket,
                "key": obj.key,
                "rows": obj.row_count,
                "bytes": stored[obj.uri].size if obj.uri in stored else None,
                "etag": stored[obj.uri].etag if obj.uri in stored else None,
            }
            for obj in outcome.objects
        ],
        "started": _iso(export.started),
        "finished": _iso(export.finished),
        "written_at": _iso(datetime.now(UTC)),
        "written_by": f"domo_assets {__version__}",
    }
    if outcome.copied_from:
        document["copied_from"] = list(outcome.copied_from)
    return document


def write_manifest(s3_client: Any, outcome: ExportOutcome) -> str | None:
    """Write the manifest of a verified export (a reused export keeps the one it has), in its
    ``<exportId>/export/`` folder (``target.export_folder``).

    Returns:
        The manifest's ``s3://`` URI, or None when the export wrote no file.
    """
    if not outcome.objects:
        return None
    first = outcome.objects[0]
    bucket = first.bucket
    key = manifest_key(export_folder(outcome.export.export_id, first.key))
    if not (outcome.reused_previous_export and _exists(s3_client, bucket, key)):
        body = json.dumps(build_manifest(outcome), indent=2).encode("utf-8")
        s3_client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    return f"s3://{bucket}/{key}"


def read_manifest(s3_client: Any, bucket: str, folder_key: str) -> Manifest | None:
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
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT:
        return None
    dataset = document.get("dataset")
    return Manifest(
        uri=f"s3://{bucket}/{key}",
        export_id=document.get("export_id"),
        dataset_id=dataset.get("id") if isinstance(dataset, dict) else None,
        query=document.get("query"),
        include_bom=document.get("include_bom"),
    )


def _exists(s3_client: Any, bucket: str, key: str) -> bool:
    try:
        s3_client.head_object(Bucket=bucket, Key=key)
    except ClientError:
        return False
    return True


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None
