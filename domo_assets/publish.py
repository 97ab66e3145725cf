"""What happens once an export is verified: it becomes the current one for its readers.

Only ever called for an export whose checks all passed (after ``_manifest.json``), so a reader
never sees a half-verified export, in this order:

1. the Redshift COPY manifest beside ``_manifest.json``, naming exactly the export's files;
2. ``<prefix>/_latest.json`` (the asset's path, or its partition's), replaced in one PutObject;
3. the Glue table (``table:``), or the partition's Glue partition, switched to the export's
   folder. A Glue outage never loses the S3 data: the export is still recorded, the failure is
   in the metadata and the log, and the next materialization registers the table again. Missing
   Glue permissions are recorded the same way and then fail the step, naming the permission;
4. retention (``keep_exports: N``): export folders older than the N newest verified ones under
   the asset's own prefix are removed (only folders whose manifest this project wrote).

Plain Python over boto3 clients: no Dagster.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from domo_assets.catalog import ExportConfig
from domo_assets.domo.models import DataSetColumn
from domo_assets.outcome import ExportOutcome
from domo_assets.s3.glue import (
    CSV,
    PARQUET,
    GlueError,
    GluePermissionError,
    GlueTable,
    TableReference,
    register_export,
    table_reference,
)
from domo_assets.s3.landing import (
    RetentionReport,
    apply_retention,
    export_location,
    write_latest,
    write_redshift_manifest,
)
from domo_assets.s3.target import prefix_uri

GlueClients = Callable[[str], Any]
"""A region's boto3 Glue client."""


def new_glue_clients() -> GlueClients:
    """A Glue client per region, made when first needed and shared by the threads of a step
    (boto3's chain, ``AWS_ENDPOINT_URL``)."""
    import boto3

    clients: dict[str, Any] = {}
    lock = threading.Lock()

    def client(region: str) -> Any:
        with lock:
            if region not in clients:
                clients[region] = boto3.client("glue", region_name=region)
            return clients[region]

    return client


@dataclass(frozen=True)
class Publication:
    """What publishing a verified export did.

    Attributes:
        redshift_manifest_uri: The Redshift COPY manifest.
        latest_uri: The ``_latest.json`` pointer.
        table: The Glue table, when the export has ``table:`` (registered or not).
        table_error: Why the Glue step failed, when it did (the export is still recorded).
        table_error_permanent: The Glue step failed for want of a permission (the step fails
            after recording the export); otherwise it is retried at the next materialization.
        retention: What retention removed, with ``keep_exports``.
    """

    redshift_manifest_uri: str | None
    latest_uri: str
    table: TableReference | None = None
    table_error: str | None = None
    table_error_permanent: bool = False
    retention: RetentionReport | None = None


def publish(
    outcome: ExportOutcome,
    s3_client: Any,
    glue_clients: GlueClients,
    log: logging.Logger,
) -> Publication:
    """Make a verified export the current one: manifest for Redshift, pointer, table, retention.

    Args:
        outcome: The verified export (its manifest written).
        s3_client: A boto3 S3 client with the worker's credentials.
        glue_clients: Gives the Glue client of a region.
        log: Where the Glue failures and removals are reported.
    """
    config = outcome.config
    export_id = outcome.export.export_id
    redshift = write_redshift_manifest(s3_client, outcome.stored, export_id)
    latest = write_latest(
        s3_client,
        config.bucket,
        outcome.path,
        export_id,
        outcome.manifest_uri or "",
        outcome.objects,
        partition_key=outcome.partition_key,
    )
    table, error, permanent = None, None, False
    if config.table is not None:
        table, error, permanent = _register(outcome, glue_clients)
        if error is not None:
            log.warning(f"{config.name}: {error}")
    retention = None
    if config.keep_exports is not None:
        retention = apply_retention(
            s3_client, config.bucket, outcome.path, config.keep_exports, export_id
        )
        for removed in retention.removed:
            log.info(
                f"{config.name}: retention (keep_exports {config.keep_exports}) removed "
                f"{removed.folder} ({removed.objects} object(s))"
            )
    return Publication(redshift, latest.uri, table, error, permanent, retention)


def export_table(outcome: ExportOutcome) -> GlueTable:
    """The Glue table of an export asset: its exported columns, with their Domo types."""
    by_name = {c.name: c for c in outcome.columns}
    columns = tuple(
        by_name.get(name, DataSetColumn(name, "STRING")) for name in outcome.exported_columns
    )
    return glue_table(outcome.config, columns, outcome.export.compression, CSV)


def glue_table(
    config: ExportConfig,
    columns: tuple[DataSetColumn, ...],
    compression: str | None,
    file_format: str,
) -> GlueTable:
    """The Glue table of a catalog entry with ``table:``: its CSV export's, or (``parquet``) its
    Parquet asset's, named ``<table>_parquet``.

    Raises:
        ValueError: The entry has no ``table:``.
    """
    if config.table is None:
        raise ValueError(f"export {config.name!r} has no table: setting")
    name = config.table.name or config.name
    partitioned = config.partition is not None
    return GlueTable(
        database=config.table.database,
        name=f"{name}_parquet" if file_format == PARQUET else name,
        columns=columns,
        compression=compression if file_format == CSV else None,
        include_bom=config.include_bom and file_format == CSV,
        partition_key=config.partition.hive_key if config.partition is not None else None,
        root=prefix_uri(config.bucket, config.path) if partitioned else None,
        file_format=file_format,
    )


def _register(
    outcome: ExportOutcome, glue_clients: GlueClients
) -> tuple[TableReference, str | None, bool]:
    config = outcome.config
    location = export_location(config.bucket, outcome.path, outcome.export.export_id)
    return register_table(
        glue_clients(config.region),
        export_table(outcome),
        location,
        outcome.export.export_id,
        config.region,
        outcome.partition_key,
    )


def register_table(
    glue_client: Any,
    table: GlueTable,
    location: str,
    export_id: str,
    region: str,
    partition_key: str | None,
) -> tuple[TableReference, str | None, bool]:
    """Point a Glue table (or its partition) at ``location``, never raising for Glue.

    Returns:
        The table's reference; why it was not updated (None when it was); and whether that
        was for want of a permission (the caller fails the step after recording the data), not
        an outage (the next materialization registers it again).
    """
    reference = table_reference(table.database, table.name, region)
    try:
        register_export(glue_client, table, location, export_id, partition_value=partition_key)
    except GluePermissionError as exc:
        return reference, f"Glue table {reference.table_name} not updated: {exc}", True
    except GlueError as exc:
        return (
            reference,
            f"Glue table {reference.table_name} not updated ({exc}); the data is recorded, "
            "and the next materialization registers it again",
            False,
        )
    return reference, None, False
