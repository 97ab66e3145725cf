"""The export manifest: ``_manifest.json`` written beside an export's files.

Readers of the lake (Spark, Athena, a downstream asset) learn from it that an export is complete
and what it holds without calling Domo. Hadoop-style readers skip files starting with ``_``, so
it sits in the same folder as the CSV files. Format ``domo_assets.manifest/v1``::

    {"format": "domo_assets.manifest/v1", "export_id": "...",
     "dataset": {"id": "...", "name": "..."}, "partition_key": "2026-11-28" | null,
     "query": {<Domo queryRequest.query>}, "columns": ["..."], "compression": "gzip",
     "row_count": 360, "files": [{"uri", "bucket", "key", "rows", "bytes", "etag"}],
     "started": "<ISO-8601>", "finished": "<ISO-8601>", "written_at": "<ISO-8601>",
     "written_by": "domo_assets <version>"}

A reused previous export (Domo answered "nothing changed") keeps the manifest it already has.
"""

from __future__ import annotations

import json
import posixpath
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from domo_assets.outcome import ExportOutcome
from domo_assets.version import __version__

MANIFEST_NAME = "_manifest.json"
MANIFEST_FORMAT = "domo_assets.manifest/v1"


def manifest_location(outcome: ExportOutcome) -> tuple[str, str] | None:
    """``(bucket, key)`` of the manifest: the folder of the export's first file."""
    if not outcome.export.objects:
        return None
    first = outcome.export.objects[0]
    return first.bucket, posixpath.join(posixpath.dirname(first.key), MANIFEST_NAME)


def build_manifest(outcome: ExportOutcome) -> dict[str, Any]:
    """The manifest document of one export."""
    export = outcome.export
    stored = {s.reported.uri: s for s in outcome.stored}
    return {
        "format": MANIFEST_FORMAT,
        "export_id": export.export_id,
        "dataset": {"id": outcome.config.dataset_id, "name": outcome.dataset.name},
        "partition_key": outcome.partition_key,
        "query": outcome.config.to_query(outcome.partition_key).to_domo(outcome.exported_columns),
        "columns": list(outcome.exported_columns),
        "compression": export.compression,
        "row_count": export.row_count,
        "files": [
            {
                "uri": obj.uri,
                "bucket": obj.bucket,
                "key": obj.key,
                "rows": obj.row_count,
                "bytes": stored[obj.uri].size if obj.uri in stored else None,
                "etag": stored[obj.uri].etag if obj.uri in stored else None,
            }
            for obj in export.objects
        ],
        "started": _iso(export.started),
        "finished": _iso(export.finished),
        "written_at": _iso(datetime.now(UTC)),
        "written_by": f"domo_assets {__version__}",
    }


def write_manifest(s3_client: Any, outcome: ExportOutcome) -> str | None:
    """Write the manifest unless a reused export already has one.

    Returns:
        The manifest's ``s3://`` URI, or None when the export wrote no file.
    """
    location = manifest_location(outcome)
    if location is None:
        return None
    bucket, key = location
    if not (outcome.reused_previous_export and _exists(s3_client, bucket, key)):
        body = json.dumps(build_manifest(outcome), indent=2).encode("utf-8")
        s3_client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    return f"s3://{bucket}/{key}"


def _exists(s3_client: Any, bucket: str, key: str) -> bool:
    try:
        s3_client.head_object(Bucket=bucket, Key=key)
    except ClientError:
        return False
    return True


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None
