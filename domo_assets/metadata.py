"""Materialization metadata of an export asset, from an :class:`ExportOutcome`.

Keys (documented in the README): ``dagster/row_count``, ``export_id``, ``s3_uris``, ``files``,
``export_status``, ``started``, ``finished``, ``duration_seconds``, ``compression``, ``format``,
``reused_previous_export``, ``start_outcome``, ``domo/dataset_id``, ``domo/dataset_name``,
``domo/dataset_url``, ``dagster/uri``, ``dagster/column_schema``, ``domo/request``,
``verified_location``, ``verified_header`` and (for a copy of another request's export)
``copied_from``.
"""

from __future__ import annotations

from typing import Any

from dagster import (
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
)

from domo_assets.dagster_names import COLUMN_SCHEMA_KEY, ROW_COUNT_KEY, TABLE_NAME_KEY
from domo_assets.discovery import DATASET_URL_KEY
from domo_assets.domo.endpoints import dataset_page_url
from domo_assets.outcome import ExportOutcome
from domo_assets.publish import entry_table, parquet_table_name
from domo_assets.s3.credentials import CredentialGrant
from domo_assets.s3.glue import CSV, csv_table_reading
from domo_assets.s3.landing import latest_key
from domo_assets.s3.target import prefix_uri

FILES_SCHEMA = TableSchema(
    columns=[
        TableColumn("uri", "string", description="The object's s3:// URI"),
        TableColumn("rows", "int", description="Data rows Domo reports in the file"),
        TableColumn("bytes", "int", description="The object's size in S3"),
    ]
)
# What ``compression`` records when Domo's export object does not say.
UNKNOWN_COMPRESSION = "unknown"
_DOMO_TYPES = {
    "LONG": "int",
    "DECIMAL": "decimal",
    "DOUBLE": "float",
    "DATE": "date",
    "DATETIME": "datetime",
}


def materialization_metadata(outcome: ExportOutcome, instance_url: str) -> dict[str, Any]:
    """The metadata recorded on an export asset's materialization."""
    export = outcome.export
    sizes = {s.reported.uri: s.size for s in outcome.stored}
    column_types = {c.name: c.type for c in outcome.columns}
    metadata: dict[str, Any] = {
        ROW_COUNT_KEY: outcome.row_count,
        COLUMN_SCHEMA_KEY: MetadataValue.table_schema(
            TableSchema(
                columns=[
                    TableColumn(name, _DOMO_TYPES.get(column_types.get(name, ""), "string"))
                    for name in outcome.exported_columns
                ]
            )
        ),
        "export_id": export.export_id,
        "s3_uris": MetadataValue.json([obj.uri for obj in outcome.objects]),
        "files": MetadataValue.table(
            records=[
                TableRecord(
                    {"uri": obj.uri, "rows": obj.row_count, "bytes": sizes.get(obj.uri) or 0}
                )
                for obj in outcome.objects
            ],
            schema=FILES_SCHEMA,
        ),
        "export_status": export.status.value,
        "start_outcome": outcome.outcome.value,
        "reused_previous_export": outcome.reused_previous_export,
        "compression": export.compression or UNKNOWN_COMPRESSION,
        "format": export.export_format or "csv",
        "domo/dataset_id": outcome.config.dataset_id,
        "domo/dataset_name": outcome.dataset.name,
        DATASET_URL_KEY: MetadataValue.url(
            dataset_page_url(instance_url, outcome.config.dataset_id)
        ),
        "dagster/uri": prefix_uri(outcome.config.bucket, outcome.path),
        # What was proved before this was recorded (see verdicts.py and provenance.py).
        "domo/request": outcome.target.fingerprint,
        "verified_location": f"{outcome.target.prefix_uri}{export.export_id}/",
    }
    if outcome.header is not None:
        metadata["verified_header"] = MetadataValue.json(list(outcome.header.columns))
    if outcome.copied_from:
        metadata["copied_from"] = MetadataValue.json(list(outcome.copied_from))
    destination = outcome.destination
    if outcome.manifest_uri is not None:
        metadata["manifest_uri"] = outcome.manifest_uri
    if outcome.redshift_manifest_uri is not None:
        metadata["redshift_manifest_uri"] = outcome.redshift_manifest_uri
    metadata.update(landing_metadata(outcome))
    if outcome.partition_key is not None:
        metadata["partition_key"] = outcome.partition_key
    metadata["s3/bucket_region"] = destination.region
    metadata["s3/default_encryption"] = destination.default_encryption
    metadata["s3/public_access_blocked"] = destination.public_access_blocked
    if destination.bucket_owner is not None:
        metadata["s3/bucket_owner"] = destination.bucket_owner
    if outcome.kms_key is not None:
        metadata["s3/kms_key_arn"] = outcome.kms_key.arn
    if destination.allowed_public and not destination.is_private:
        metadata["s3/allow_public_destination"] = True
    if outcome.acting_user is not None:
        user = outcome.acting_user
        metadata["domo/acting_user"] = f"{user.name} ({user.id})" if user.name else user.id
    if outcome.dataset.row_count is not None:
        metadata["domo/dataset_row_count"] = outcome.dataset.row_count
    if outcome.expected_rows is not None:
        metadata["domo/rows_visible_to_token"] = outcome.expected_rows
    if export.started is not None:
        metadata["started"] = MetadataValue.timestamp(export.started)
    if export.finished is not None:
        metadata["finished"] = MetadataValue.timestamp(export.finished)
    metadata.update(credentials_metadata(outcome.credentials))
    if export.duration_seconds is not None:
        metadata["duration_seconds"] = round(export.duration_seconds, 3)
    return metadata


def credentials_metadata(grant: CredentialGrant | None) -> dict[str, Any]:
    """What Domo was handed, never a key or token: kind, scope, session name and expiry."""
    if grant is None:
        # Attached to an export started earlier, or handed back by Domo: no request was sent.
        return {"domo/credentials_kind": "none (no export request in this run)"}
    metadata: dict[str, Any] = {
        "domo/credentials_kind": grant.kind.value,
        "domo/credentials_scope": grant.scope or "unscoped",
    }
    if grant.session_name is not None:
        metadata["domo/credentials_session"] = grant.session_name
    if grant.expires_at is not None:
        metadata["domo/credentials_expiry"] = MetadataValue.timestamp(grant.expires_at)
    return metadata


def landing_metadata(outcome: ExportOutcome) -> dict[str, Any]:
    """Where readers find the current export once it is published: the pointer and, with
    ``table:``, the Glue table (both move only after this materialization is recorded, and never
    to an older export: see ``publish.py``), and which table reads this export exactly:
    ``dagster/table_name`` names it (the Parquet table when the CSV table may not; absent when
    none does), ``glue/csv_table_readable`` whether the CSV table does (when known),
    ``glue/query`` why."""
    config = outcome.config
    metadata: dict[str, Any] = {
        "latest_pointer": f"s3://{config.bucket}/{latest_key(outcome.path)}"
    }
    if config.table is None:
        return metadata
    reference = entry_table(config, CSV)
    verification = outcome.verification
    reading = csv_table_reading(
        reference.table_name,
        parquet_table_name(config),
        verification.quoted_line_breaks if verification is not None else None,
    )
    metadata["glue/csv_table"] = reference.table_name
    metadata["glue/console_url"] = MetadataValue.url(reference.console_url)
    metadata["glue/query"] = reading.note
    if reading.query is not None:
        metadata[TABLE_NAME_KEY] = reading.query
    if reading.readable is not None:
        metadata["glue/csv_table_readable"] = reading.readable
    return metadata
    return metadata
