"""A downstream consumer of the demo's Parquet table: the lineage graph reads DataSet, export,
Parquet, consumer (``make dev``)."""

import io

import dagster as dg
import pyarrow.compute as pc
import pyarrow.parquet as pq
from dagster_aws.s3 import S3Resource

PARQUET_ASSET = dg.AssetKey("awkward_values_parquet")


@dg.asset(
    deps=[PARQUET_ASSET],
    group_name="domo_exports",
    kinds={"parquet", "python"},
    description="Reads awkward_values as Parquet and records its figures: rows, the total "
    "Amount, and the texts with line breaks (which only the Parquet table keeps readable).",
)
def awkward_values_report(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Read the latest Parquet files of awkward_values and record three figures."""
    event = context.instance.get_latest_materialization_event(PARQUET_ASSET)
    if event is None or event.asset_materialization is None:
        raise dg.Failure("awkward_values_parquet has no materialization yet: materialize it first")
    uris = event.asset_materialization.metadata["parquet_uris"].value
    s3 = S3Resource().get_client()
    tables = []
    for uri in uris:
        bucket, key = uri.removeprefix("s3://").split("/", 1)
        tables.append(
            pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
        )
    rows = sum(t.num_rows for t in tables)
    # The Parquet files name their columns as the Glue table does (Domo's Amount is amount).
    amount = sum(pc.sum(t["amount"]).as_py() or 0.0 for t in tables)
    multiline = sum(
        pc.sum(pc.match_substring(pc.fill_null(t["text"], ""), "\n")).as_py() or 0 for t in tables
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "total_amount": round(amount, 2),
            "texts_with_line_breaks": multiline,
            "source": dg.MetadataValue.json(list(uris)),
        }
    )
