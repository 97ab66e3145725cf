"""Catalog validation: every bad input fails loading with the file, the export and the field."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from domo_assets_dev import DEMO_CATALOG

from domo_assets.catalog import CatalogError, load_catalog
from domo_assets.domo.models import FilterOp

GOOD = {
    "name": "claims",
    "dataset_id": "5f0e7f4c",
    "bucket": "domo-exports",
    "path": "p",
    "region": "us-east-1",
}


def write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    return path


def error_for(tmp_path: Path, document: object) -> str:
    with pytest.raises(CatalogError) as info:
        load_catalog(write(tmp_path, document))
    return str(info.value)


def test_bundled_catalog_is_valid() -> None:
    catalog = load_catalog(DEMO_CATALOG)
    assert len(catalog.exports) >= 5
    assert len({e.name for e in catalog.exports}) == len(catalog.exports)


def test_unknown_key_names_file_export_and_field(tmp_path: Path) -> None:
    message = error_for(tmp_path, {"exports": [{**GOOD, "colums": ["a"]}]})
    assert (
        "catalog.yaml" in message
        and "'claims'" in message
        and "colums" in message
        and "unknown key" in message
    )


def test_duplicate_name(tmp_path: Path) -> None:
    message = error_for(tmp_path, {"exports": [GOOD, {**GOOD, "path": "q"}]})
    assert "duplicate" in message and "exports[1]" in message and "'name'" in message


@pytest.mark.parametrize("missing", ["dataset_id", "bucket", "path", "region"])
def test_missing_field(tmp_path: Path, missing: str) -> None:
    entry = {k: v for k, v in GOOD.items() if k != missing}
    message = error_for(tmp_path, {"exports": [entry]})
    assert f"field '{missing}'" in message and "required" in message and "'claims'" in message


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("bucket", "Bad_Bucket", "not a valid S3 bucket name"),
        ("bucket", "192.168.1.1", "not a valid S3 bucket name"),
        ("region", "us-east", "not an AWS region"),
        ("name", "has space", "not a valid asset name"),
        ("include_bom", "maybe", "include_bom"),
        ("dataset_id", "", "dataset_id"),
        ("where", [{"column": "a", "equals": 1, "in": [1]}], "exactly one"),
    ],
)
def test_malformed_value(tmp_path: Path, field: str, value: object, words: str) -> None:
    message = error_for(tmp_path, {"exports": [{**GOOD, field: value}]})
    assert words in message and f"field '{field}" in message and "catalog.yaml" in message


def test_malformed_yaml_names_file(tmp_path: Path) -> None:
    message = error_for(tmp_path, "exports: [unclosed\n")
    assert "catalog.yaml" in message and "not valid YAML" in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogError) as info:
        load_catalog(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(info.value)


def test_bad_defaults_are_named(tmp_path: Path) -> None:
    message = error_for(tmp_path, {"defaults": {"region": "mars-1"}, "exports": [GOOD]})
    assert "defaults" in message and "field 'region'" in message


def test_where_forms_become_conditions(tmp_path: Path) -> None:
    entry = {
        **GOOD,
        "where": [{"column": "Region", "in": ["East", "West"]}, {"column": "Amount", "gte": 10}],
    }
    export = load_catalog(write(tmp_path, {"exports": [entry]})).exports[0]
    conditions = export.to_query().where.conditions
    assert [(c.column, c.op, c.values) for c in conditions] == [
        ("Region", FilterOp.IN, ("East", "West")),
        ("Amount", FilterOp.GREATER_THAN_EQUAL, (10,)),
    ]
    assert export.to_query().where.to_sql() == "`Region` IN ('East', 'West') AND `Amount` >= 10"


def test_code_location_load_fails_on_bad_catalog(tmp_path: Path) -> None:
    path = write(tmp_path, {"exports": [{**GOOD, "regoin": "x"}]})
    env = {
        **os.environ,
        "DOMO_EXPORTS_FILE": str(path),
        "DOMO_INSTANCE_URL": "http://127.0.0.1:9",
        "DOMO_DEVELOPER_TOKEN": "t",
    }
    done = load_code_location(env)
    assert done.returncode != 0
    assert "regoin" in done.stderr and str(path) in done.stderr


def load_code_location(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import domo_assets.definitions"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_code_location_load_fails_without_instance_url(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOMO_")}
    done = load_code_location(
        {**env, "DOMO_EXPORTS_FILE": str(write(tmp_path, {"exports": [GOOD]}))}
    )
    assert done.returncode != 0
    assert "DOMO_INSTANCE_URL is not set" in done.stderr


def test_code_location_has_no_default_catalog() -> None:
    """A production install must not load the sandbox's demo catalog against a real Domo."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOMO_")}
    env.update(DOMO_INSTANCE_URL="https://acme.domo.com", DOMO_DEVELOPER_TOKEN="t")
    done = load_code_location(env)
    assert done.returncode != 0
    assert "DOMO_EXPORTS_FILE is not set: export it as the path of your export catalog" in (
        done.stderr
    )
