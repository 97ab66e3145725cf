"""What happens once Dagster has recorded a verified export: it becomes the current one.

Called only after the export's materialization is in Dagster's event log (the asset layer
checks it there first), so neither Dagster nor a reader is ever ahead of the other for long and
nothing a recorded materialization names is deleted before its replacement is recorded. In this
order, each step only if the one before it held:

1. ``<prefix>/_latest.json`` is made to name the export, by a conditional PutObject, unless it
   names a newer export (by Domo's times): then nothing else moves either (``superseded_by``);
2. the Glue table (``table:``), or the partition's Glue partition, is switched to the export's
   folder. A Glue outage never loses the S3 data: the export stays recorded, the failure is
   logged, and the next materialization registers the table again. Missing Glue permissions fail
   the step, naming the permission;
3. retention (``keep_exports: N``): this request's export folders older than the N newest under
   the asset's own prefix are removed, never one the pointer or a live materialization names.

Everything is read from the export's :class:`ExportManifest`, so an export recorded by a run
that died before publishing can be published later from its manifest alone.

Plain Python over boto3 clients: no Dagster.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domo_assets.catalog import ExportConfig
from domo_assets.domo.models import DataSetColumn
from domo_assets.s3.glue import (
    CSV,
    PARQUET,
    ExportStamp,
    GlueError,
    GluePermissionError,
    GlueTable,
    TableReference,
    register_export,
    table_reference,
)
from domo_assets.s3.landing import (
    LATEST_NAME,
    PointerMove,
    RetentionReport,
    apply_retention,
    export_location,
    publish_pointer,
)
from domo_assets.s3.manifest import ExportManifest
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
    """What publishing a recorded export did.

    Attributes:
        export_id: The export published.
        pointer: What became of ``_latest.json``.
        table: The Glue table, when the export has ``table:`` and the pointer names it.
        retention: What retention removed, with ``keep_exports``.
    """

    export_id: str
    pointer: PointerMove
    table: TableResult | None = None
    retention: RetentionReport | None = None

    @property
    def table_error(self) -> str | None:
        """Why the Glue step failed, when it did (the export stays recorded)."""
        return self.table.error if self.table is not None else None

    @property
    def table_error_permanent(self) -> bool:
        """The Glue step failed for want of a permission (the step fails saying what to
        grant); otherwise it is retried at the next materialization."""
        return self.table is not None and self.table.permanent

    @property
    def summary(self) -> str:
        """One line for the run log."""
        if self.pointer.superseded_by is not None:
            return (
                f"export {self.export_id} not published: {self.pointer.pointer.uri} names "
                f"export {self.pointer.superseded_by}, which Domo made later; the table and "
                "retention follow that one"
            )
        parts = [f"published export {self.export_id} ({self.pointer.pointer.uri})"]
        if self.table is not None:
            parts.append(f"Glue table {self.table.reference.table_name}: {self.table.status}")
        if self.retention is not None and self.retention.removed:
            parts.append(
                "retention removed "
                + ", ".join(f"{r.folder} ({r.objects} object(s))" for r in self.retention.removed)
            )
        return "; ".join(parts)


def publish(
    config: ExportConfig,
    manifest: ExportManifest,
    manifest_uri: str,
    s3_client: Any,
    glue_clients: GlueClients,
    *,
    protected: Collection[str] = (),
    recorded: Collection[str] | None = None,
) -> Publication:
    """Make a recorded, verified export the current one: pointer, table, retention.

    Args:
        config: The catalog entry.
        manifest: The export (its ``_manifest.json`` written).
        manifest_uri: Where that manifest lies.
        s3_client: A boto3 S3 client with the worker's credentials.
        glue_clients: Gives the Glue client of a region.
        protected: Export ids retention must keep (what a live materialization names: the
            asset's, and its Parquet asset's).
        recorded: Export ids Dagster recorded for the asset: a verified folder not among them
            and younger than ``IN_FLIGHT_GRACE`` may be a concurrent run's, about to be
            recorded, and is kept.

    Raises:
        LandingError: S3 refused or failed the pointer or retention (``retryable`` says whether
            trying again may help); what was done before stays done.
    """
    prefix = config.export_path(manifest.partition_key)
    pointer = publish_pointer(
        s3_client, config.bucket, prefix, manifest, manifest_uri, name=LATEST_NAME
    )
    if pointer.superseded_by is not None:
        return Publication(manifest.export_id, pointer)
    table = None
    if config.table is not None:
        table = register_table(
            glue_clients(config.region),
            glue_table(config, manifest.schema, manifest.compression, CSV),
            export_location(config.bucket, prefix, manifest.export_id),
            manifest.export_id,
            config.region,
            manifest.partition_key,
            started=manifest.started,
        )
    retention = None
    if config.keep_exports is not None:
        retention = apply_retention(
            s3_client,
            config.bucket,
            prefix,
            config.keep_exports,
            manifest,
            protected,
            recorded=recorded,
        )
    return Publication(manifest.export_id, pointer, table, retention)


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


def entry_table(config: ExportConfig, file_format: str) -> TableReference:
    """The qualified name and console link of a catalog entry's CSV table, or (``parquet``)
    its Parquet asset's, as ``glue_table`` names them.

    Raises:
        ValueError: The entry has no ``table:``.
    """
    if config.table is None:
        raise ValueError(f"export {config.name!r} has no table: setting")
    name = _table_name(config.table.name or config.name, file_format)
    return table_reference(config.table.database, name, config.region)


def parquet_table_name(config: ExportConfig) -> str | None:
    """``<database>.<table>_parquet``, the Parquet asset's table, for an entry with ``table:``
    and ``parquet: true``; None otherwise."""
    if config.table is None or not config.parquet:
        return None
    return entry_table(config, PARQUET).table_name


def _table_name(name: str, file_format: str) -> str:
    return f"{name}_parquet" if file_format == PARQUET else name


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
