"""``parquet: true``: a downstream asset ``<name>_parquet`` that writes a verified export as Parquet.

Its step reads the export asset's latest materialization (only ever recorded for a verified
export: see "What a green materialization means"), streams its CSV objects into Parquet with
bounded memory (``s3/parquet.py``: pyarrow, Domo types mapped to Arrow types, columns named as
the Glue table's) beside them, under ``<path>/<exportId>/parquet/``, registers the Parquet
table in Glue when the export has a ``table:`` (never moving it to an older export than it
names), records the files' columns as ``dagster/column_schema``, and checks that the Parquet
rows equal the export's. The lineage graph then reads
DataSet, export, Parquet, and whatever consumes it.
"""

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetRecordsFilter,
    AssetsDefinition,
    AssetSpec,
    BackfillPolicy,
    Failure,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
    multi_asset,
)

from domo_assets.assets import DOMO_POOL, DOMO_RESOURCE_KEY, step_domo
from domo_assets.catalog import ExportConfig
from domo_assets.dagster_names import COLUMN_SCHEMA_KEY, ROW_COUNT_KEY, TABLE_NAME_KEY
from domo_assets.domo.models import DataSetColumn, S3Object, normalize_s3_url
from domo_assets.translator import DomoSpecs, export_config

if TYPE_CHECKING:
    import pyarrow as pa

    from domo_assets.publish import GlueClients

PARQUET_OP_NAME = "domo_parquet"
PARQUET_CHECK = "parquet_row_count"
PARQUET_FOLDER = "parquet"
# The column types materialization metadata records (metadata.py), back to Domo's.
_DOMO_TYPES = {
    "int": "LONG",
    "decimal": "DECIMAL",
    "float": "DOUBLE",
    "date": "DATE",
    "datetime": "DATETIME",
    "string": "STRING",
}
_FILES_SCHEMA = TableSchema(
    columns=[
        TableColumn("uri", "string", description="The Parquet object"),
        TableColumn("rows", "int", description="Rows it holds"),
        TableColumn("bytes", "int", description="Its size in S3"),
        TableColumn("source", "string", description="The CSV object it was written from"),
    ]
)


def build_parquet_assets(
    specs: DomoSpecs, *, op_prefix: str = "", resource_key: str = DOMO_RESOURCE_KEY
) -> list[AssetsDefinition]:
    """The Parquet assets of the exports with ``parquet: true``.

    Unpartitioned ones share one op (``<prefix>domo_parquet``); a partitioned one has an op of
    its own, with its export's partitions.

    Args:
        specs: The translated catalog.
        op_prefix: Prepended to op names (several catalogs in one project).
        resource_key: The key of the Domo resource whose nested ``s3`` reads and writes S3.
    """
    unpartitioned = [s for s in specs.parquets if s.partitions_def is None]
    assets = (
        [_parquet_multi_asset(unpartitioned, f"{op_prefix}{PARQUET_OP_NAME}", resource_key)]
        if unpartitioned
        else []
    )
    for spec in specs.parquets:
        if spec.partitions_def is not None:
            name = f"{op_prefix}{export_config(spec).name}_parquet"
            assets.append(_parquet_multi_asset([spec], name, resource_key))
    return assets


def _parquet_multi_asset(
    parquet_specs: Sequence[AssetSpec], name: str, resource_key: str
) -> AssetsDefinition:
    partitions_def = parquet_specs[0].partitions_def

    def write(context: AssetExecutionContext, s3_client: Any) -> Iterator[MaterializeResult]:
        # Imported here: pyarrow is a run's cost, not the code location's.
        from domo_assets.publish import new_glue_clients
        from domo_assets.s3.landing import LandingError
        from domo_assets.s3.owner import expect_bucket_owners, owners_of
        from domo_assets.s3.parquet import ParquetConversionError

        glue_clients = new_glue_clients()
        selected = [s for s in context.assets_def.specs if s.key in context.selected_asset_keys]
        # Every call of the step's S3 client to a bucket with a bucket_owner passes it.
        expect_bucket_owners(s3_client, owners_of(export_config(s) for s in selected))
        failures = []
        for spec in selected:
            try:
                written, result = _write_parquet(context, spec, s3_client)
            except (ValueError, ParquetConversionError) as exc:
                failures.append(f"{spec.key.to_user_string()}: {exc}")
                context.log.error(failures[-1])
                continue
            yield result
            # Dagster has stored the materialization: the pointer and the table may follow it.
            try:
                refused = _publish_parquet(context, spec, written, s3_client, glue_clients)
            except LandingError as exc:
                refused = str(exc)
            if refused is not None:
                failures.append(f"{spec.key.to_user_string()}: {refused}")
                context.log.error(failures[-1])
        if failures:
            raise Failure(description="; ".join(failures))

    decorate = multi_asset(
        name=name,
        specs=list(parquet_specs),
        check_specs=[
            AssetCheckSpec(
                PARQUET_CHECK,
                asset=spec.key,
                partitions_def=partitions_def,
                description="The Parquet files hold as many rows as the export they come from",
            )
            for spec in parquet_specs
        ],
        can_subset=True,
        pool=DOMO_POOL,
        partitions_def=partitions_def,
        backfill_policy=BackfillPolicy.multi_run(1) if partitions_def else None,
        description="Writes verified Domo exports as Parquet beside them.",
        required_resource_keys={resource_key},
    )

    def _parquet(context: AssetExecutionContext) -> Iterator[MaterializeResult]:
        yield from write(context, step_domo(context, resource_key).s3.get_client())

    return decorate(_parquet)


@dataclass(frozen=True)
class _Written:
    """What a Parquet step wrote, for its publication once Dagster recorded it."""

    config: ExportConfig
    partition: str | None
    folder: str
    export_id: str
    columns: tuple[DataSetColumn, ...]
    manifest_uri: str | None
    files: tuple[S3Object, ...]


def _write_parquet(
    context: AssetExecutionContext, spec: AssetSpec, s3_client: Any
) -> tuple[_Written, MaterializeResult]:
    """Convert the upstream export's latest materialization; raise ValueError if there is none.

    Returns:
        What was written (for its publication), and the materialization.
    """
    # Imported here: pyarrow is a run's cost, not the code location's.
    from domo_assets.s3.parquet import convert_export
    from domo_assets.s3.storage import kms_write_args

    config = export_config(spec)
    (dep,) = spec.deps
    # A backfill's run names its partition as a one-key range: has_partition_key is False there.
    partition = context.partition_key if context.assets_def.partitions_def is not None else None
    source = _latest_export(context, dep.asset_key, partition)
    export_id = str(source["export_id"].value)
    uris = list(source["s3_uris"].value)
    columns = _columns(source[COLUMN_SCHEMA_KEY].value)
    objects = [normalize_s3_url(uri) for uri in uris]
    folder = f"{config.export_path(partition)}/{export_id}/{PARQUET_FOLDER}"
    result = convert_export(
        s3_client,
        objects,
        columns,
        compression=_recorded_compression(source),
        bucket=config.bucket,
        key_prefix=folder,
        put_args=kms_write_args(config.kms_key_id),
    )
    expected = int(source[ROW_COUNT_KEY].value)
    metadata: dict[str, Any] = {
        ROW_COUNT_KEY: result.rows,
        COLUMN_SCHEMA_KEY: MetadataValue.table_schema(_files_schema(result.schema)),
        "export_id": export_id,
        "dagster/uri": f"s3://{config.bucket}/{folder}/",
        "parquet_uris": MetadataValue.json([f.uri for f in result.files]),
        "files": MetadataValue.table(
            records=[
                TableRecord({"uri": f.uri, "rows": f.rows, "bytes": f.size, "source": f.source_uri})
                for f in result.files
            ],
            schema=_FILES_SCHEMA,
        ),
    }
    if config.table is not None:
        metadata.update(_table_metadata(config))
    manifest = source.get("manifest_uri")
    written = _Written(
        config=config,
        partition=partition,
        folder=folder,
        export_id=export_id,
        columns=tuple(columns),
        manifest_uri=str(manifest.value) if manifest is not None else None,
        files=tuple(S3Object(*normalize_s3_url(f.uri), f.rows) for f in result.files),
    )
    return written, MaterializeResult(
        asset_key=spec.key,
        metadata=metadata,
        check_results=[
            AssetCheckResult(
                asset_key=spec.key,
                check_name=PARQUET_CHECK,
                passed=result.rows == expected,
                severity=AssetCheckSeverity.ERROR,
                description=f"{result.rows} Parquet row(s); the export has {expected}",
                metadata={"parquet_rows": result.rows, "export_rows": expected},
            )
        ],
    )


def _latest_export(
    context: AssetExecutionContext, key: AssetKey, partition: str | None
) -> dict[str, Any]:
    """The metadata of the export asset's latest (verified) materialization."""
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(
            asset_key=key, asset_partitions=[partition] if partition is not None else None
        ),
        limit=1,
    ).records
    materialization = records[0].asset_materialization if records else None
    if materialization is None:
        where = f" (partition {partition})" if partition is not None else ""
        raise ValueError(
            f"{key.to_user_string()}{where} has no materialization yet: materialize the export "
            "first (only verified exports are recorded, so only they are converted)"
        )
    return dict(materialization.metadata)


def _recorded_compression(source: Mapping[str, Any]) -> str | None:
    """The compression the export's materialization recorded; None when Domo did not say (each
    object's headers or magic bytes decide then)."""
    from domo_assets.metadata import UNKNOWN_COMPRESSION

    recorded = source.get("compression")
    value = None if recorded is None else str(recorded.value)
    return None if value == UNKNOWN_COMPRESSION else value


def _columns(schema: TableSchema) -> list[DataSetColumn]:
    return [DataSetColumn(c.name, _DOMO_TYPES.get(c.type, "STRING")) for c in schema.columns]


def _table_metadata(config: ExportConfig) -> dict[str, Any]:
    """The Parquet table's name and console link (it is registered after the record)."""
    from domo_assets.publish import entry_table
    from domo_assets.s3.glue import PARQUET

    reference = entry_table(config, PARQUET)
    return {
        TABLE_NAME_KEY: reference.table_name,
        "glue/console_url": MetadataValue.url(reference.console_url),
    }


def _files_schema(schema: "pa.Schema") -> TableSchema:
    """``dagster/column_schema`` of the Parquet files: their column names and Arrow types, the
    Domo name and type as each column's description."""
    from domo_assets.s3.parquet import DOMO_NAME_KEY, DOMO_TYPE_KEY

    return TableSchema(
        columns=[
            TableColumn(
                field.name,
                str(field.type),
                description=f"{field.metadata[DOMO_NAME_KEY].decode()} "
                f"(Domo {field.metadata[DOMO_TYPE_KEY].decode()})",
            )
            for field in schema
        ]
    )


def _publish_parquet(
    context: AssetExecutionContext,
    spec: AssetSpec,
    written: _Written,
    s3_client: Any,
    glue_clients: "GlueClients",
) -> str | None:
    """Once Dagster recorded the Parquet materialization: ``_latest_parquet.json`` and, with
    ``table:``, the Parquet table move to it, never to files older (by the export's Domo times)
    than the ones they name.

    Args:
        config: The export's catalog entry.
        partition: The Dagster partition, for a partitioned export.
        folder: The Parquet files' prefix.
        columns: The exported columns with their Domo types.
        export_id: The export the files come from.
        started: Domo's start time of that export (the table is never moved to an export
            older than the one it names).
        glue_clients: Gives the Glue client of a region.

    Returns:
        Why the step must fail (a Glue permission is missing), or None. An outage only warns.

    Raises:
        LandingError: S3 refused or failed the pointer.
    """
    from domo_assets.publish import glue_table, register_table
    from domo_assets.s3.glue import PARQUET
    from domo_assets.s3.landing import PARQUET_LATEST_NAME, publish_pointer
    from domo_assets.s3.manifest import read_manifest_at

    config = written.config
    stored = read_manifest_at(s3_client, written.manifest_uri)
    if stored is None:
        return (
            f"the export's manifest ({written.manifest_uri}) cannot be read: the Parquet files "
            "are recorded but not published; materialize the export again"
        )
    move = publish_pointer(
        s3_client,
        config.bucket,
        config.export_path(written.partition),
        stored.manifest,
        stored.uri,
        name=PARQUET_LATEST_NAME,
        folder=PARQUET_FOLDER,
        files=written.files,
    )
    if move.superseded_by is not None:
        context.log.info(
            f"{spec.key.to_user_string()}: not published: {move.pointer.uri} names the Parquet "
            f"files of export {move.superseded_by}, which Domo made later"
        )
        return None
    if config.table is None:
        return None
    done = register_table(
        glue_clients(config.region),
        glue_table(config, written.columns, None, PARQUET),
        f"s3://{config.bucket}/{written.folder}/",
        written.export_id,
        config.region,
        written.partition,
        started=stored.manifest.started,
    )
    context.log.info(
        f"{spec.key.to_user_string()}: published the Parquet files of export "
        f"{written.export_id} ({move.pointer.uri}); Glue table "
        f"{done.reference.table_name}: {done.status}"
    )
    if done.error is not None:
        context.log.warning(f"{spec.key.to_user_string()}: {done.error}")
    return done.error if done.permanent else None
