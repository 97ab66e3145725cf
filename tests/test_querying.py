"""A queryable landing, end to end against the sandbox (moto's S3 and Glue): the Glue table and
the pointer move only on a verified export, partitions register, retention removes only what
it may, the Parquet rows equal the CSV rows, and a Glue outage loses nothing."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import boto3
import pyarrow.parquet as pq
from dagster import DagsterInstance
from domo_assets_dev.sandbox import DAILY_ORDERS_ID, EXPORT_BUCKET, PHARMACY_CLAIMS_ID, Sandbox
from support import (
    check_outcomes,
    domo_resource,
    failure_text,
    log_messages,
    materialize_catalog,
    metadata_of,
    read_json,
    write_catalog,
)

CLAIMS = {
    "name": "claims",
    "dataset_id": PHARMACY_CLAIMS_ID,
    "path": "lake/claims",
    "table": {"database": "domo"},
    "keep_exports": 1,
    "parquet": True,
}


def run(tmp_path: Path, sandbox: Sandbox, instance: DagsterInstance, *entries: Any, **kw: Any):
    return materialize_catalog(
        write_catalog(tmp_path, *entries), instance, domo_resource(sandbox), **kw
    )


def table_location(name: str) -> str:
    glue = boto3.client("glue", region_name="us-east-1")
    return glue.get_table(DatabaseName="domo", Name=name)["Table"]["StorageDescriptor"]["Location"]


def keys(s3: Any, prefix: str) -> list[str]:
    found = s3.list_objects_v2(Bucket=EXPORT_BUCKET, Prefix=prefix).get("Contents", [])
    return sorted(o["Key"] for o in found)


def test_parquet_converts_an_export_whose_compression_domo_did_not_state(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path, s3: Any
) -> None:
    """Domo lists ``compression`` but does not say it is always there: without it the export is
    recorded as ``unknown`` and the Parquet step reads each object's own encoding (gzip here)."""
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, omit_compression=True)
    result = run(tmp_path, sandbox, instance, {**CLAIMS, "table": None})
    assert result.success, failure_text(result)
    export = metadata_of(result, "claims")
    assert export["compression"] == "unknown"
    assert all(uri.endswith(".csv.gz") for uri in export["s3_uris"])
    parquet = metadata_of(result, "claims_parquet")
    assert check_outcomes(result)[("claims_parquet", "parquet_row_count")] is True
    assert parquet["dagster/row_count"] == export["dagster/row_count"] == 1000


def test_table_pointer_parquet_and_retention_follow_verified_exports(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path, s3: Any
) -> None:
    first = run(tmp_path, sandbox, instance, CLAIMS)
    assert first.success, failure_text(first)
    export = metadata_of(first, "claims")
    e1 = export["export_id"]
    assert export["dagster/table_name"] == "domo.claims"
    assert export["latest_pointer"] == f"s3://{EXPORT_BUCKET}/lake/claims/_latest.json"
    assert any(
        f"published export {e1}" in m and "Glue table domo.claims: registered" in m
        for m in log_messages(instance, first)
    )
    assert table_location("claims") == f"s3://{EXPORT_BUCKET}/lake/claims/{e1}/export/"
    latest = read_json(s3, f"s3://{EXPORT_BUCKET}/lake/claims/_latest.json")
    assert latest["export_id"] == e1 and latest["row_count"] == export["dagster/row_count"]
    redshift = read_json(s3, export["redshift_manifest_uri"])
    assert [e["url"] for e in redshift["entries"]] == export["s3_uris"]
    # Parquet: the same rows, typed, beside the export, with its own table.
    parquet = metadata_of(first, "claims_parquet")
    assert check_outcomes(first)[("claims_parquet", "parquet_row_count")] is True
    assert parquet["dagster/row_count"] == export["dagster/row_count"] == 1000
    (uri,) = parquet["parquet_uris"]
    assert uri.startswith(f"s3://{EXPORT_BUCKET}/lake/claims/{e1}/parquet/")
    body = s3.get_object(Bucket=EXPORT_BUCKET, Key=uri.split("/", 3)[3])["Body"].read()
    rows = pq.read_table(io.BytesIO(body))
    assert rows.num_rows == 1000 and str(rows.schema.field("Days Supply").type) == "int64"
    assert table_location("claims_parquet") == f"s3://{EXPORT_BUCKET}/lake/claims/{e1}/parquet/"

    # A newer verified export: the table and the pointer move. Retention keeps the old folder
    # while the Parquet asset's latest materialization still names its Parquet files (the
    # export is published before its Parquet step runs), and removes it on the next export.
    sandbox.control.change_dataset(PHARMACY_CLAIMS_ID, rows=2)
    second = run(tmp_path, sandbox, instance, CLAIMS)
    assert second.success, failure_text(second)
    e2 = metadata_of(second, "claims")["export_id"]
    assert table_location("claims") == f"s3://{EXPORT_BUCKET}/lake/claims/{e2}/export/"
    assert keys(s3, f"lake/claims/{e1}/parquet/"), "the Parquet asset's files were kept"
    assert metadata_of(second, "claims_parquet")["dagster/row_count"] == 1002
    sandbox.control.change_dataset(PHARMACY_CLAIMS_ID, rows=1)
    again = run(tmp_path, sandbox, instance, CLAIMS)
    assert again.success, failure_text(again)
    e2 = metadata_of(again, "claims")["export_id"]
    assert keys(s3, f"lake/claims/{e1}/") == [], "the old export folder is gone"
    assert any(
        f"retention removed s3://{EXPORT_BUCKET}/lake/claims/{e1}/" in m
        for m in log_messages(instance, again)
    )

    # An export that fails its checks moves nothing.
    sandbox.control.change_dataset(PHARMACY_CLAIMS_ID)
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, misreport_rows=3)
    third = run(tmp_path, sandbox, instance, CLAIMS, selection=["claims"])
    assert not third.success
    assert table_location("claims") == f"s3://{EXPORT_BUCKET}/lake/claims/{e2}/export/"
    latest = read_json(s3, f"s3://{EXPORT_BUCKET}/lake/claims/_latest.json")
    assert latest["export_id"] == e2
    assert keys(s3, f"lake/claims/{e2}/export/_manifest.json"), "the current export is kept"


def test_partitions_register_one_glue_partition_each(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path
) -> None:
    entry = {
        "name": "orders",
        "dataset_id": DAILY_ORDERS_ID,
        "path": "lake/orders",
        "table": {"database": "domo"},
        "partition": {"column": "Order Date", "scheme": "daily", "start": "2026-11-01"},
    }
    for day in ("2026-11-05", "2026-11-06"):
        result = run(tmp_path, sandbox, instance, entry, selection=["orders"], partition_key=day)
        assert result.success, failure_text(result)
    glue = boto3.client("glue", region_name="us-east-1")
    table = glue.get_table(DatabaseName="domo", Name="orders")["Table"]
    assert [k["Name"] for k in table["PartitionKeys"]] == ["dt"]
    partitions = glue.get_partitions(DatabaseName="domo", TableName="orders")["Partitions"]
    locations = {p["Values"][0]: p["StorageDescriptor"]["Location"] for p in partitions}
    assert sorted(locations) == ["2026-11-05", "2026-11-06"]
    assert all(
        loc.startswith(f"s3://{EXPORT_BUCKET}/lake/orders/dt={day}/")
        for day, loc in locations.items()
    )


def test_a_glue_outage_loses_nothing(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path, monkeypatch: Any, s3: Any
) -> None:
    # Glue answers from the Domo sandbox's fault injection: every call a 503.
    monkeypatch.setenv("AWS_ENDPOINT_URL_GLUE", f"{sandbox.domo_url}/glue-outage")
    sandbox.control.add_fault(method="POST", path_regex="^/glue-outage", status=503, times=None)
    entry = {**CLAIMS, "parquet": False, "keep_exports": None}
    entry.pop("keep_exports")
    result = run(tmp_path, sandbox, instance, entry)
    assert result.success, "a Glue outage does not fail the export"
    metadata = metadata_of(result, "claims")
    assert any(
        "not updated" in m and "registers it again" in m for m in log_messages(instance, result)
    )
    assert (
        json.loads(
            s3.get_object(Bucket=EXPORT_BUCKET, Key="lake/claims/_latest.json")["Body"].read()
        )["export_id"]
        == metadata["export_id"]
    )


def test_retention_never_removes_what_the_parquet_asset_names(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path, s3: Any
) -> None:
    """keep_exports: 1 with parquet: materialize all, then only the export, twice, on changed
    data: the Parquet asset's latest files (and its pointer and table) stay readable."""
    first = run(tmp_path, sandbox, instance, CLAIMS)
    assert first.success, failure_text(first)
    parquet_uris = metadata_of(first, "claims_parquet")["parquet_uris"]
    for rows in (2, 3):
        sandbox.control.change_dataset(PHARMACY_CLAIMS_ID, rows=rows)
        only_export = run(tmp_path, sandbox, instance, CLAIMS, selection=["claims"])
        assert only_export.success, failure_text(only_export)
        for uri in parquet_uris:
            assert keys(s3, uri.split("/", 3)[3]), f"{uri} was deleted after {rows} changes"
        pointer = read_json(s3, f"s3://{EXPORT_BUCKET}/lake/claims/_latest_parquet.json")
        assert pointer["files"] == parquet_uris
        location = table_location("claims_parquet")
        assert keys(s3, location.split("/", 3)[3]), "the Parquet table reads existing files"
    # The export folders in between were not the Parquet asset's: retention removed them.
    latest = read_json(s3, f"s3://{EXPORT_BUCKET}/lake/claims/_latest.json")["export_id"]
    parquet_export = metadata_of(first, "claims_parquet")["export_id"]
    folders = {k.split("/")[2] for k in keys(s3, "lake/claims/") if k.count("/") > 2}
    assert folders == {latest, parquet_export}
