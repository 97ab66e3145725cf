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
from datetime import UTC, datetime
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
    ResourceParam,
    TableColumn,
    TableRecord,
    TableSchema,
    multi_asset,
)

from domo_assets.assets import DOMO_POOL
from domo_assets.catalog import ExportConfig
from domo_assets.dagster_names import COLUMN_SCHEMA_KEY, ROW_COUNT_KEY
from domo_assets.domo.models import DataSetColumn
from domo_assets.resource import S3ClientFactory
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
    specs: DomoSpecs, *, op_prefix: str = "", bound_s3: bool = False
) -> list[AssetsDefinition]:
    """The Parquet assets of the exports with ``parquet: true``.

    Unpartitioned ones share one op (``<prefix>domo_parquet``); a partitioned one has an op of
    its own, with its export's partitions.

    Args:
        specs: The translated catalog.
        op_prefix: Prepended to op names (several catalogs in one project).
        bound_s3: Read and write S3 with dagster-aws's ``S3Resource()`` instead of the code
            location's ``s3`` resource (a component's definitions hold no resource keys).
    """
    unpartitioned = [s for s in specs.parquets if s.partitions_def is None]
    assets = (
        [_parquet_multi_asset(unpartitioned, f"{op_prefix}{PARQUET_OP_NAME}", bound_s3)]
        if unpartitioned
        else []
    )
    for spec in specs.parquets:
        if spec.partitions_def is not None:
            name = f"{op_prefix}{export_config(spec).name}_parquet"
            assets.append(_parquet_multi_asset([spec], name, bound_s3))
    return assets


def _parquet_multi_asset(
    parquet_specs: Sequence[AssetSpec], name: str, bound_s3: bool
) -> AssetsDefinition:
    partitions_def = parquet_specs[0].partitions_def

    def write(context: AssetExecutionContext, s3_client: Any) -> Iterator[MaterializeResult]:
        # Imported here: pyarrow is a run's cost, not the code location's.
        from domo_assets.publish import new_glue_clients
        from domo_assets.s3.parquet import ParquetConversionError

        glue_clients = new_glue_clients()
        failures = []
        for spec in context.assets_def.specs:
            if spec.key not in context.selected_asset_keys:
                continue
            try:
                refused, result = _write_parquet(context, spec, s3_client, glue_clients)
            except (ValueError, ParquetConversionError) as exc:
                failures.append(f"{spec.key.to_user_string()}: {exc}")
                context.log.error(failures[-1])
                continue
            yield result
            if refused is not None:
                failures.append(f"{spec.key.to_user_string()}: {refused}")
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
    )
    if bound_s3:

        def _parquet(context: AssetExecutionContext) -> Iterator[MaterializeResult]:
            from dagster_aws.s3 import S3Resource

            yield from write(context, S3Resource().get_client())

        return decorate(_parquet)

    def _parquet_s3(
        context: AssetExecutionContext, s3: ResourceParam[S3ClientFactory]
    ) -> Iterator[MaterializeResult]:
        yield from write(context, s3.get_client())

    return decorate(_parquet_s3)


def _write_parquet(
    context: AssetExecutionContext, spec: AssetSpec, s3_client: Any, glue_clients: "GlueClients"
) -> tuple[str | None, MaterializeResult]:
    """Convert the upstream export's latest materialization; raise ValueError if there is none.

    Returns:
        Why the Glue table could not be registered for want of a permission (or None), and the
        materialization.
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
    objects = [tuple(uri.removeprefix("s3://").split("/", 1)) for uri in uris]
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
    table_metadata, refused = _register_table(
        config, partition, folder, columns, export_id, _recorded_start(source), glue_clients
    )
    metadata.update(table_metadata)
    return refused, MaterializeResult(
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


def _recorded_start(source: Mapping[str, Any]) -> datetime | None:
    """Domo's start time of the export, as its materialization recorded it (None: not given)."""
    started = source.get("started")
    return None if started is None else datetime.fromtimestamp(float(started.value), UTC)


def _columns(schema: TableSchema) -> list[DataSetColumn]:
    return [DataSetColumn(c.name, _DOMO_TYPES.get(c.type, "STRING")) for c in schema.columns]


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


def _register_table(
    config: ExportConfig,
    partition: str | None,
    folder: str,
    columns: Sequence[DataSetColumn],
    export_id: str,
    started: datetime | None,
    glue_clients: "GlueClients",
) -> tuple[dict[str, Any], str | None]:
    """The Parquet table ``<table>_parquet`` in Glue, when the export has ``table:``.

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
        Its metadata, and the error message when Glue refused for want of a permission (the
        Parquet files are still recorded; the step then fails naming it). An outage is only
        recorded: the next materialization registers the table again.
    """
    if config.table is None:
        return {}, None
    from domo_assets.metadata import glue_metadata
    from domo_assets.publish import glue_table, register_table
    from domo_assets.s3.glue import PARQUET

    done = register_table(
        glue_clients(config.region),
        glue_table(config, tuple(columns), None, PARQUET),
        f"s3://{config.bucket}/{folder}/",
        export_id,
        config.region,
        partition,
        started=started,
    )
    return glue_metadata(done.reference, done.status), done.error if done.permanent else None
