"""Partitioned exports, backfills and manifests, against the sandbox."""

from __future__ import annotations

import csv
import gzip
import io
import json
import threading
from pathlib import Path

import boto3
import pytest
import support
import yaml
from dagster import DagsterInstance
from domo_assets_dev import DEMO_CATALOG, DEMO_PARTITIONED_CATALOG
from domo_assets_dev.sandbox import DAILY_ORDERS_ID, EXPORT_BUCKET, Sandbox
from domo_assets_dev.sandbox.datasets import AWKWARD_VALUES_ID
from support import domo_resource, materializations, materialize_catalog, write_catalog

from domo_assets.catalog import Catalog, CatalogError, load_catalog
from domo_assets.partitions import PartitionScheme, PartitionSettings
from domo_assets.s3.manifest import MANIFEST_FORMAT

DAILY = {
    "name": "orders",
    "dataset_id": DAILY_ORDERS_ID,
    "dataset_name": "Daily Orders",
    "path": "part/orders",
    "partition": {
        "column": "Order Date",
        "scheme": "daily",
        "start": "2026-11-01",
        "end": "2026-12-01",
    },
}


def run_partition(
    catalog: Catalog, sandbox: Sandbox, instance: DagsterInstance, key: str, name: str = "orders"
):
    return materialize_catalog(
        catalog, instance, domo_resource(sandbox), selection=[name], partition_key=key
    )


def metadata_of(result) -> dict:
    [name] = materializations(result)
    return support.metadata_of(result, name)


def read_rows(s3, uri: str) -> list[dict]:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    text = (gzip.decompress(body) if key.endswith(".gz") else body).decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


def test_single_daily_partition(sandbox: Sandbox, instance, tmp_path: Path, domo_mode: str) -> None:
    result = run_partition(write_catalog(tmp_path, DAILY), sandbox, instance, "2026-11-05")
    assert result.success
    metadata = metadata_of(result)
    expected = sandbox.control.true_row_count(DAILY_ORDERS_ID, "\"Order Date\" = '2026-11-05'")
    assert metadata["dagster/row_count"] == expected > 0
    assert metadata["partition_key"] == "2026-11-05"
    assert all(
        u.startswith("s3://domo-exports/part/orders/dt=2026-11-05/") for u in metadata["s3_uris"]
    )
    rows = [row for uri in metadata["s3_uris"] for row in read_rows(sandbox.s3_client(), uri)]
    assert len(rows) == expected and {r["Order Date"] for r in rows} == {"2026-11-05"}
    checks = {(e.check_name, e.partition): e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {
        ("row_count", "2026-11-05"): True,
        ("s3_objects", "2026-11-05"): True,
        ("header", "2026-11-05"): True,
    }
    assert instance.get_materialized_partitions(
        result.get_asset_materialization_events()[0].asset_key
    ) == {"2026-11-05"}


def test_backfill_of_several_partitions_one_export_each(
    sandbox: Sandbox, instance, tmp_path: Path, domo_mode: str
) -> None:
    catalog = write_catalog(tmp_path, DAILY)
    keys = ["2026-11-01", "2026-11-02", "2026-11-03"]
    results: dict[str, object] = {}
    # A backfill launches one run per partition; they run at once and Domo allows one export per
    # DataSet, so each run waits for the others' exports.
    threads = [
        threading.Thread(
            target=lambda k=k: results.__setitem__(k, run_partition(catalog, sandbox, instance, k))
        )
        for k in keys
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    exports = sandbox.control.exports(DAILY_ORDERS_ID)
    done = [k for k in keys if results[k].success]
    if domo_mode == "strict":
        # Read literally, Domo answers every request on unchanged data with its previous
        # export: the first partition's. The others are refused, never recorded.
        assert len(done) == 1 and len(exports) == 1
        for key in set(keys) - set(done):
            assert materializations(results[key]) == {}
            text = support.failure_text(results[key])
            assert (
                f"Domo answered orders's export request with export {exports[0]['export_id']}"
                in text
            )
    else:
        assert done == keys
        assert sorted(e["request"]["path"] for e in exports) == [
            f"part/orders/dt={k}" for k in keys
        ]
    for key in done:
        metadata = metadata_of(results[key])
        rows = [row for uri in metadata["s3_uris"] for row in read_rows(sandbox.s3_client(), uri)]
        assert {r["Order Date"] for r in rows} == {key}
        assert len(rows) == sandbox.control.true_row_count(
            DAILY_ORDERS_ID, f"\"Order Date\" = '{key}'"
        )


def test_static_partition(sandbox: Sandbox, instance, tmp_path: Path) -> None:
    entry = {
        **DAILY,
        "name": "by_region",
        "path": "part/region",
        "partition": {"column": "Region", "scheme": "static", "values": ["East", "West"]},
    }
    result = run_partition(
        write_catalog(tmp_path, entry), sandbox, instance, "West", name="by_region"
    )
    assert result.success
    metadata = metadata_of(result)
    assert all(
        u.startswith("s3://domo-exports/part/region/region=West/") for u in metadata["s3_uris"]
    )
    assert metadata["dagster/row_count"] == sandbox.control.true_row_count(
        DAILY_ORDERS_ID, "\"Region\" = 'West'"
    )


@pytest.mark.parametrize("url_style", ["s3", "virtual"])
def test_static_values_land_under_their_escaped_prefix(
    sandbox: Sandbox, instance, tmp_path: Path, s3, url_style: str
) -> None:
    """`A/B` and `A B` are two partitions with two prefixes (the old `_` substitution wrote both
    under `A_B`); each export lands, is verified and is registered in Glue under its own."""
    sandbox.control.set_behaviour(AWKWARD_VALUES_ID, url_style=url_style)
    entry = {
        "name": "by_text",
        "dataset_id": AWKWARD_VALUES_ID,
        "dataset_name": "Awkward Values",
        "path": "part/text",
        "table": {"database": "domo"},
        "partition": {
            "column": "Text",
            "scheme": "static",
            "key_name": "text_value",
            "values": ["A/B", "A B", "comma, inside", "café au lait"],
        },
    }
    catalog = write_catalog(tmp_path, entry)
    glue = boto3.client("glue", region_name="us-east-1")
    for value, segment in [
        ("comma, inside", "text_value=comma%2C%20inside"),
        ("café au lait", "text_value=caf%C3%A9%20au%20lait"),
        ("A/B", "text_value=A%2FB"),
        ("A B", "text_value=A%20B"),
    ]:
        result = run_partition(catalog, sandbox, instance, value, name="by_text")
        assert result.success, support.failure_text(result)
        metadata = metadata_of(result)
        folder = f"part/text/{segment}/{metadata['export_id']}/export/"
        stored = {
            f"s3://{EXPORT_BUCKET}/{o['Key']}"
            for o in s3.list_objects_v2(Bucket=EXPORT_BUCKET, Prefix=folder).get("Contents", [])
        }
        assert metadata["s3_uris"] and set(metadata["s3_uris"]) <= stored
        assert metadata["manifest_uri"] == f"s3://{EXPORT_BUCKET}/{folder}_manifest.json"
        rows = [row for uri in metadata["s3_uris"] for row in read_rows(s3, uri)]
        assert {r["Text"] for r in rows} <= {value}
        assert len(rows) == sandbox.control.true_row_count(
            AWKWARD_VALUES_ID, f"\"Text\" = '{value}'"
        )
        partition = glue.get_partition(
            DatabaseName="domo", TableName="by_text", PartitionValues=[value]
        )["Partition"]
        assert partition["StorageDescriptor"]["Location"] == f"s3://{EXPORT_BUCKET}/{folder}"
    # Four partitions, four prefixes, nothing written anywhere else.
    listed = s3.list_objects_v2(Bucket=EXPORT_BUCKET, Prefix="part/text/")["Contents"]
    assert {o["Key"].split("/")[2] for o in listed} == {
        "text_value=comma%2C%20inside",
        "text_value=caf%C3%A9%20au%20lait",
        "text_value=A%2FB",
        "text_value=A%20B",
    }


def test_monthly_partition_uses_in_list(sandbox: Sandbox, instance, tmp_path: Path) -> None:
    entry = {
        **DAILY,
        "name": "monthly",
        "path": "part/monthly",
        "partition": {
            "column": "Order Date",
            "scheme": "monthly",
            "start": "2026-10-01",
            "include_current": True,
        },
    }
    result = run_partition(
        write_catalog(tmp_path, entry), sandbox, instance, "2026-11", name="monthly"
    )
    assert result.success
    metadata = metadata_of(result)
    assert metadata["dagster/row_count"] == sandbox.control.true_row_count(DAILY_ORDERS_ID) == 360
    assert all("/month=2026-11/" in u for u in metadata["s3_uris"])
    where = sandbox.control.exports(DAILY_ORDERS_ID)[0]["request"]["where"]
    assert where["exprType"] == "IN" and len(where["rightExpr"]["values"]) == 30


def test_manifest_matches_s3_and_survives_reuse(sandbox: Sandbox, instance, tmp_path: Path) -> None:
    catalog = write_catalog(tmp_path, DAILY)
    metadata = metadata_of(run_partition(catalog, sandbox, instance, "2026-11-07"))
    s3 = sandbox.s3_client()
    bucket, key = metadata["manifest_uri"].removeprefix("s3://").split("/", 1)
    assert key == f"part/orders/dt=2026-11-07/{metadata['export_id']}/export/_manifest.json"
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert manifest["format"] == MANIFEST_FORMAT
    assert manifest["export_id"] == metadata["export_id"]
    assert manifest["dataset"]["id"] == DAILY_ORDERS_ID
    assert manifest["partition_key"] == "2026-11-07"
    assert manifest["row_count"] == metadata["dagster/row_count"]
    assert manifest["query"]["where"]["rightExpr"]["value"] == "2026-11-07"
    assert manifest["columns"][0] == "Order Date"
    for entry in manifest["files"]:
        head = s3.head_object(Bucket=entry["bucket"], Key=entry["key"])
        assert entry["bytes"] == head["ContentLength"] and entry["etag"] == head["ETag"].strip('"')
    assert sum(f["rows"] for f in manifest["files"]) == manifest["row_count"]

    again = metadata_of(run_partition(catalog, sandbox, instance, "2026-11-07"))
    assert (
        again["reused_previous_export"] is True
        and again["manifest_uri"] == metadata["manifest_uri"]
    )
    kept = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert kept["written_at"] == manifest["written_at"], "a reused export keeps its manifest"


def test_datetime_column_is_refused_for_time_partitions() -> None:
    settings = PartitionSettings(column="Created", scheme=PartitionScheme.DAILY, start="2026-11-01")
    with pytest.raises(ValueError, match="need a DATE column"):
        settings.check_column_type("DATETIME", "events")
    settings.check_column_type("DATE", "events")


def test_partition_catalog_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(CatalogError) as info:
        write_catalog(tmp_path, {**DAILY, "partition": {"column": "Order Date", "scheme": "daily"}})
    assert "field 'partition'" in str(info.value) and "needs start" in str(info.value)


def test_bundled_catalog_has_partitioned_examples() -> None:
    catalog = load_catalog(DEMO_PARTITIONED_CATALOG)
    schemes = {e.partition.scheme for e in catalog.exports if e.partition}
    assert schemes == {PartitionScheme.DAILY, PartitionScheme.STATIC}
    included = {e.name for e in load_catalog(DEMO_CATALOG).exports}
    assert included < {e.name for e in catalog.exports}, "it includes the default catalog"
    assert not any(e.partition for e in load_catalog(DEMO_CATALOG).exports)


def test_include_cycle_and_duplicates_are_named(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({"include": ["b.yaml"], "exports": []}))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump({"include": ["a.yaml"], "exports": []}))
    with pytest.raises(CatalogError, match="includes itself"):
        load_catalog(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text(
        yaml.safe_dump(
            {
                "include": [str(DEMO_CATALOG)],
                "exports": [
                    {
                        **DAILY,
                        "name": "pharmacy_claims",
                        "bucket": "domo-exports",
                        "region": "us-east-1",
                    }
                ],
            }
        )
    )
    with pytest.raises(
        CatalogError,
        match=r"field .name.: duplicate of .*exports\.yaml: export .pharmacy_claims. \(exports\[0\]\)",
    ):
        load_catalog(tmp_path / "c.yaml")
