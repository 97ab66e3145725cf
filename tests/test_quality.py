"""Data-quality checks against the previous export: schema change, row-count drop, min rows."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetCheckSeverity, DagsterInstance
from domo_assets_dev.sandbox import DAILY_ORDERS_ID, PHARMACY_CLAIMS_ID, Sandbox
from support import domo_resource, failure_text, materialize_catalog, write_catalog

from domo_assets.catalog import CatalogError

CLAIMS = {"name": "claims", "dataset_id": PHARMACY_CLAIMS_ID, "path": "q/claims"}
QUALITY = {
    "schema_change": {"severity": "warn"},
    "max_row_drop": {"bound": "50%", "severity": "error"},
    "min_rows": {"bound": 300, "severity": "warn"},
}


def evaluations(result: Any) -> dict[str, Any]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def run(tmp_path: Path, sandbox: Sandbox, instance: DagsterInstance, **entry: Any) -> Any:
    catalog = write_catalog(tmp_path, {**CLAIMS, "quality": QUALITY, **entry})
    result = materialize_catalog(catalog, instance, domo_resource(sandbox))
    assert result.success, failure_text(result)
    return evaluations(result)


def test_first_export_passes_every_quality_check(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path
) -> None:
    found = run(tmp_path, sandbox, instance)
    assert found["column_schema_change"].passed
    assert found["row_count_drop"].passed
    assert found["row_count_drop"].description == "No previous materialization to compare with"
    assert found["dagster_row_count_bounds_check"].passed


def test_a_large_drop_and_a_schema_change_are_caught_with_their_severity(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path
) -> None:
    run(tmp_path, sandbox, instance, columns=["Customer ID", "Days Supply", "Label Name"])
    # The same asset, now fewer rows (a filter standing for a DataSet Domo truncated) and a
    # column less.
    found = run(
        tmp_path,
        sandbox,
        instance,
        columns=["Customer ID", "Days Supply"],
        where=[{"column": "Days Supply", "gte": 80}],
    )
    drop = found["row_count_drop"]
    assert not drop.passed and drop.severity == AssetCheckSeverity.ERROR
    assert drop.metadata["previous_row_count"].value == 1000
    assert drop.metadata["row_count"].value < 500
    schema = found["column_schema_change"]
    assert not schema.passed and schema.severity == AssetCheckSeverity.WARN
    assert "Label Name" in str(schema.metadata.get("removed_columns", schema.description))
    bounds = found["dagster_row_count_bounds_check"]
    assert not bounds.passed and bounds.severity == AssetCheckSeverity.WARN


def test_max_row_drop_is_refused_on_a_partitioned_export(tmp_path: Path) -> None:
    entry = {
        "name": "orders",
        "dataset_id": DAILY_ORDERS_ID,
        "path": "q/orders",
        "partition": {"column": "Order Date", "scheme": "daily", "start": "2026-11-01"},
        "quality": {"max_row_drop": {"bound": "50%"}},
    }
    with pytest.raises(CatalogError, match="another partition's"):
        write_catalog(tmp_path, entry)


def test_a_drop_bound_must_be_a_percentage(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=re.escape("field 'quality.max_row_drop.bound'")):
        write_catalog(tmp_path, {**CLAIMS, "quality": {"max_row_drop": {"bound": "lots"}}})
