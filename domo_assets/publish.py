"""What happens once an export is verified: it becomes the current one for its readers.

Only ever called for an export whose checks all passed (after ``_manifest.json``), so a reader
never sees a half-verified export, in this order:

1. the Redshift COPY manifest beside ``_manifest.json``, naming exactly the export's files;
2. ``<prefix>/_latest.json`` (the asset's path, or its partition's), replaced in one PutObject;
3. the Glue table (``table:``), or the partition's Glue partition, switched to the export's
   folder, unless it names a newer export (by Domo's start time), which it is left on. A Glue
   outage never loses the S3 data: the export is still recorded, the failure is in the metadata
   and the log, and the next materialization registers the table again. Missing Glue
   permissions are recorded the same way and then fail the step, naming the permission. Which
   table reads the export exactly (the CSV table, unless a value holds a line break) is
   recorded with it (:class:`~domo_assets.s3.glue.CsvTableReading`);
4. retention (``keep_exports: N``): export folders older than the N newest verified ones under
   the asset's own prefix are removed (only folders whose manifest this project wrote).

Plain Python over boto3 clients: no Dagster.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domo_assets.catalog import ExportConfig
from domo_assets.domo.models import DataSetColumn
from domo_assets.outcome import ExportOutcome
from domo_assets.s3.glue import (
    CSV,
    PARQUET,
    CsvTableReading,
    ExportStamp,
    GlueError,
    GluePermissionError,
    GlueTable,
    TableReference,
    csv_table_reading,
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


REGISTERED = "registered"
"""``glue/status`` of a table (or partition) moved to the export, or already on it."""


@dataclass(frozen=True)
class TableResult:
    """What the Glue step did for one table.

    Attributes:
        reference: The table's name and console link.
        status: ``registered``; that it was left on a newer export; or why it was not updated.
        error: Why the Glue step failed, when it did (the data is still recorded).
        permanent: It failed for want of a permission (the caller fails the step after
            recording the data), not an outage (the next materialization registers it again).
    """

    reference: TableReference
    status: str
    error: str | None = None
    permanent: bool = False


@dataclass(frozen=True)
class Publication:
    """What publishing a verified export did.

    Attributes:
        redshift_manifest_uri: The Redshift COPY manifest.
        latest_uri: The ``_latest.json`` pointer.
        table: The Glue table, when the export has ``table:`` (registered or not).
        reading: Which table reads the export exactly, when it has ``table:``.
        retention: What retention removed, with ``keep_exports``.
    """

    redshift_manifest_uri: str | None
    latest_uri: str
    table: TableResult | None = None
    reading: CsvTableReading | None = None
    retention: RetentionReport | None = None

    @property
    def table_error(self) -> str | None:
        """Why the Glue step failed, when it did (the export is still recorded)."""
        return self.table.error if self.table is not None else None

    @property
    def table_error_permanent(self) -> bool:
        """The Glue step failed for want of a permission (the step fails after recording the
        export); otherwise it is retried at the next materialization."""
        return self.table is not None and self.table.permanent


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
    redshift = write_redshift_manifest(s3_client, outcome.stored)
    latest = write_latest(
        s3_client,
        config.bucket,
        outcome.path,
        export_id,
        outcome.manifest_uri or "",
        outcome.objects,
        partition_key=outcome.partition_key,
    )
    table, reading = None, None
    if config.table is not None:
        table = _register(outcome, glue_clients)
        if table.error is not None:
            log.warning(f"{config.name}: {table.error}")
        reading = csv_table_reading(
            table.reference.table_name,
            parquet_table_name(config),
            outcome.verification.quoted_line_breaks if outcome.verification else None,
        )
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
    return Publication(redshift, latest.uri, table=table, reading=reading, retention=retention)


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
    partitioned = config.partition is not None
    return GlueTable(
        database=config.table.database,
        name=_table_name(config.table.name or config.name, file_format),
        columns=columns,
        compression=compression if file_format == CSV else None,
        include_bom=config.include_bom and file_format == CSV,
        partition_key=config.partition.hive_key if config.partition is not None else None,
        root=prefix_uri(config.bucket, config.path) if partitioned else None,
        file_format=file_format,
    )


def parquet_table_name(config: ExportConfig) -> str | None:
    """``<database>.<table>_parquet``, the Parquet asset's table, for an entry with ``table:``
    and ``parquet: true``; None otherwise."""
    if config.table is None or not config.parquet:
        return None
    return f"{config.table.database}.{_table_name(config.table.name or config.name, PARQUET)}"


def _table_name(name: str, file_format: str) -> str:
    return f"{name}_parquet" if file_format == PARQUET else name


def _register(outcome: ExportOutcome, glue_clients: GlueClients) -> TableResult:
    config = outcome.config
    location = export_location(config.bucket, outcome.path, outcome.export.export_id)
    return register_table(
        glue_clients(config.region),
        export_table(outcome),
        location,
        outcome.export.export_id,
        config.region,
        outcome.partition_key,
        started=outcome.export.started,
    )


def register_table(
    glue_client: Any,
    table: GlueTable,
    location: str,
    export_id: str,
    region: str,
    partition_key: str | None,
    *,
    started: datetime | None,
) -> TableResult:
    """Point a Glue table (or its partition) at ``location``, never raising for Glue.

    Args:
        glue_client: A boto3 Glue client, in the bucket's region.
        table: The table.
        location: The folder of the export's files.
        export_id: The export.
        region: The bucket's region (for the console link).
        partition_key: The Dagster partition, for a partitioned table.
        started: Domo's start time of the export: a table naming a newer export is left there.

    Returns:
        The table's reference and status, and why and how it failed when it did.
    """
    reference = table_reference(table.database, table.name, region)
    try:
        done = register_export(
            glue_client, table, location, export_id, partition_value=partition_key, started=started
        )
    except GluePermissionError as exc:
        error = f"Glue table {reference.table_name} not updated: {exc}"
        return TableResult(reference, error, error, permanent=True)
    except GlueError as exc:
        error = (
            f"Glue table {reference.table_name} not updated ({exc}); the data is recorded, "
            "and the next materialization registers it again"
        )
        return TableResult(reference, error, error)
    if not done.left_on_newer:
        return TableResult(reference, REGISTERED)
    if started is None:
        why = f"this export ({export_id}) has no start time from Domo, so it cannot be shown newer"
        return TableResult(reference, f"left on {done.shown.describe()}: {why}")
    this = ExportStamp(export_id, started).describe()
    return TableResult(reference, f"left on {done.shown.describe()}, newer than this {this}")
