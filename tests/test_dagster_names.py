"""The Dagster names domo_assets spells itself (no public API exports them) are Dagster's own."""

from __future__ import annotations

import ast
from pathlib import Path

from dagster import TableSchema
from dagster._core.definitions.assets.job.asset_job import (
    IMPLICIT_ASSET_JOB_NAME as DAGSTER_IMPLICIT_ASSET_JOB_NAME,
)
from dagster._core.definitions.data_version import DATA_VERSION_TAG as DAGSTER_DATA_VERSION_TAG
from dagster._core.definitions.metadata.metadata_set import TableMetadataSet

from domo_assets import dagster_names

PACKAGE = Path(__file__).resolve().parent.parent / "domo_assets"


def test_names_match_dagsters_private_constants() -> None:
    assert dagster_names.IMPLICIT_ASSET_JOB_NAME == DAGSTER_IMPLICIT_ASSET_JOB_NAME
    assert dagster_names.DATA_VERSION_TAG == DAGSTER_DATA_VERSION_TAG
    assert TableMetadataSet.extract({dagster_names.ROW_COUNT_KEY: 42}).row_count == 42
    table = TableMetadataSet(row_count=1, column_schema=TableSchema(columns=[]))
    assert set(dict(table)) == {dagster_names.ROW_COUNT_KEY, dagster_names.COLUMN_SCHEMA_KEY}
    named = TableMetadataSet(table_name="domo.claims")
    assert set(dict(named)) == {dagster_names.TABLE_NAME_KEY}


def test_product_code_imports_no_private_dagster_module() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            offenders += [
                f"{path.relative_to(PACKAGE.parent)}: {name}"
                for name in names
                if name.startswith(("dagster._", "dagster_aws._", "dagster_dg_cli._"))
            ]
    assert offenders == []
