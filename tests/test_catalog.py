"""Catalog validation: every bad input fails loading with the file, the export and the field."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from domo_assets_dev import DEMO_CATALOG
from domo_assets_dev.sandbox import EXPORT_BUCKET, Sandbox
from domo_assets_dev.sandbox.datasets import PHARMACY_CLAIMS_ID, REGIONAL_SALES_ID

from domo_assets.catalog import CatalogError, load_catalog
from domo_assets.domo.models import FilterOp
from domo_assets.partitions import PartitionScheme, PartitionSettings

GOOD = {
    "name": "claims",
    "dataset_id": "5f0e7f4c",
    "bucket": "domo-exports",
    "path": "p",
    "region": "us-east-1",
}
DESTINATION = {"bucket": EXPORT_BUCKET, "region": "us-east-1"}
DAGSTER = (sys.executable, "-m", "dagster")


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
        ("bucket_owner", "12345", "not an AWS account id (12 digits)"),
        ("bucket_owner", 12345678901, "quote it"),
        ("kms_key_id", "arn:aws:kms:us-east-1:123456789012:grant/x", "neither a KMS key ARN"),
        ("kms_key_id", "my key", "not a KMS key id, alias/<name>"),
    ],
)
def test_malformed_value(tmp_path: Path, field: str, value: object, words: str) -> None:
    message = error_for(tmp_path, {"exports": [{**GOOD, field: value}]})
    assert words in message and f"field '{field}" in message and "catalog.yaml" in message


def test_bucket_owner_from_defaults_and_one_owner_per_bucket(tmp_path: Path) -> None:
    # Unquoted, YAML reads the id as a number: 12 digits are kept, as the id they spell.
    catalog = load_catalog(
        write(tmp_path, "defaults: {bucket_owner: 123456789012}\nexports:\n" + f"  - {GOOD}\n")
    )
    assert catalog.exports[0].bucket_owner == "123456789012"
    other = {**GOOD, "name": "other", "path": "q", "bucket_owner": "210987654321"}
    message = error_for(
        tmp_path, {"defaults": {"bucket_owner": "123456789012"}, "exports": [GOOD, other]}
    )
    assert "export 'other' (exports[1])" in message and "field 'bucket_owner'" in message
    assert "bucket domo-exports belongs to account 123456789012" in message


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


# --- one owner per prefix -------------------------------------------------------------------


def test_two_exports_sharing_a_path_from_defaults_are_refused_and_nothing_is_exported(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    document = {
        "defaults": {**DESTINATION, "path": "domo/shared"},
        "exports": [
            {"name": "claims", "dataset_id": PHARMACY_CLAIMS_ID},
            {"name": "sales", "dataset_id": REGIONAL_SALES_ID},
        ],
    }
    path = write(tmp_path, document)
    expected = (
        f"{path}: export 'sales' (exports[1]): field 'path': s3://{EXPORT_BUCKET}/domo/shared/ "
        f"is also the prefix of {path}: export 'claims' (exports[0]) (both take their path from "
        "defaults)"
    )
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    assert expected in str(info.value)
    assert "Give each export a path of its own" in str(info.value)

    # The code location refuses to load, so a materialization of everything exports nothing.
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        **os.environ,
        **sandbox.env(),
        "DAGSTER_HOME": str(tmp_path),
        "DOMO_EXPORTS_FILE": str(path),
    }
    done = subprocess.run(
        [*DAGSTER, "asset", "materialize", "--select", "*", "-m", "domo_assets.definitions"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    assert expected in done.stderr
    assert sandbox.control.exports() == []


@pytest.mark.parametrize(
    ("outer", "inner"),
    [
        ({"path": "domo/x"}, {"path": "domo/x/sub"}),
        ({"path": "domo/x/sub/"}, {"path": "/domo/x"}),
        # A partitioned export's partitions lie under its path: nothing may nest there either.
        (
            {
                "path": "domo/x",
                "partition": {"column": "d", "scheme": "daily", "start": "2026-11-01"},
            },
            {"path": "domo/x/dt=2026-11-05"},
        ),
    ],
    ids=["inside", "outside-listed-first", "under-a-partitioned-export"],
)
def test_a_nested_prefix_is_refused_naming_both_exports(
    tmp_path: Path, outer: dict[str, Any], inner: dict[str, Any]
) -> None:
    message = error_for(
        tmp_path,
        {"exports": [{**GOOD, **outer, "name": "outer"}, {**GOOD, **inner, "name": "inner"}]},
    )
    outer_uri = f"s3://domo-exports/{outer['path'].strip('/')}/"
    inner_uri = f"s3://domo-exports/{inner['path'].strip('/')}/"
    outer_path, inner_path = sorted([outer_uri, inner_uri], key=len)
    assert f"field 'path': {inner_path} lies inside {outer_path}, the prefix of" in message
    assert "export 'outer'" in message and "export 'inner'" in message
    assert "catalog.yaml" in message and "takes its path from defaults" not in message


def test_prefixes_that_only_share_letters_or_live_in_other_buckets_are_accepted(
    tmp_path: Path,
) -> None:
    catalog = load_catalog(
        write(
            tmp_path,
            {
                "exports": [
                    {**GOOD, "name": "a", "path": "domo/x"},
                    {**GOOD, "name": "b", "path": "domo/xy"},
                    {**GOOD, "name": "c", "path": "domo/x-y/z"},
                    {**GOOD, "name": "d", "path": "domo/x/sub", "bucket": "other-bucket"},
                ]
            },
        )
    )
    assert [e.path for e in catalog.exports] == ["domo/x", "domo/xy", "domo/x-y/z", "domo/x/sub"]


def test_an_included_catalogs_prefix_counts_naming_its_file(tmp_path: Path) -> None:
    shared = tmp_path / "shared.yaml"
    shared.write_text(yaml.safe_dump({"exports": [{**GOOD, "name": "base", "path": "lake"}]}))
    main = write(
        tmp_path,
        {"include": ["shared.yaml"], "exports": [{**GOOD, "name": "mine", "path": "lake/mine"}]},
    )
    with pytest.raises(CatalogError) as info:
        load_catalog(main)
    assert str(info.value).startswith(
        f"{main}: export 'mine' (exports[0]): field 'path': s3://domo-exports/lake/mine/ lies "
        f"inside s3://domo-exports/lake/, the prefix of {shared}: export 'base' (exports[0])"
    )


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("domo/*", "contains '*', which IAM reads as a wildcard"),
        ("domo/a?c", "contains '?', which IAM reads as a wildcard"),
        (
            "domo/${aws:username}",
            "contains '$', which IAM reads as a wildcard or a policy variable",
        ),
        ("domo/{x}", "contains '{'"),
        ("domo/x}", "contains '}'"),
        ("domo/a\nb", "contains the control character '\\n'"),
        ("domo//x", "has an empty segment (//)"),
        ("domo/../x", "has a '..' segment"),
        ("./domo", "has a '.' segment"),
    ],
)
def test_a_path_that_would_widen_or_escape_its_prefix_is_refused(
    tmp_path: Path, path: str, words: str
) -> None:
    message = error_for(tmp_path, {"exports": [{**GOOD, "path": path}]})
    assert "catalog.yaml: export 'claims' (exports[0]): field 'path'" in message
    assert words in message


def test_a_wildcard_path_in_defaults_is_refused(tmp_path: Path) -> None:
    entry = {k: v for k, v in GOOD.items() if k != "path"}
    message = error_for(tmp_path, {"defaults": {"path": "domo/*"}, "exports": [entry]})
    assert "catalog.yaml: defaults: field 'path'" in message and "contains '*'" in message


@pytest.mark.parametrize(
    ("key_name", "words"),
    [
        ("dt*", "contains '*', which IAM reads as a wildcard"),
        ("${k}", "contains '$'"),
        ("a/b", "'/' is not allowed"),
        ("a=b", "'=' is not allowed"),
        ("", "it is empty"),
    ],
)
def test_a_key_name_outside_hive_keys_is_refused(tmp_path: Path, key_name: str, words: str) -> None:
    partition = {"column": "Region", "scheme": "static", "values": ["East"], "key_name": key_name}
    message = error_for(tmp_path, {"exports": [{**GOOD, "partition": partition}]})
    assert "export 'claims' (exports[0]): field 'partition.key_name'" in message
    assert words in message


@pytest.mark.parametrize(
    ("value", "prefix"),
    [
        ("A/B", "region=A%2FB"),
        ("A B", "region=A%20B"),
        ("A_B", "region=A_B"),
        ("A%2FB", "region=A%252FB"),
        ("café", "region=caf%C3%A9"),
        ("*?${}", "region=%2A%3F%24%7B%7D"),
        ("North-East.1", "region=North-East.1"),
    ],
)
def test_static_values_get_distinct_escaped_prefixes(value: str, prefix: str) -> None:
    values = ["A/B", "A B", "A_B", "A%2FB", "café", "*?${}", "North-East.1"]
    settings = PartitionSettings(column="Region", scheme=PartitionScheme.STATIC, values=values)
    assert settings.prefix(value) == prefix
    assert len({settings.prefix(v) for v in values}) == len(values)


def test_time_partition_prefixes_are_unchanged() -> None:
    daily = PartitionSettings(column="d", scheme=PartitionScheme.DAILY, start="2026-11-01")
    monthly = PartitionSettings(column="d", scheme=PartitionScheme.MONTHLY, start="2026-11-01")
    assert daily.prefix("2026-11-28") == "dt=2026-11-28"
    assert monthly.prefix("2026-11") == "month=2026-11"


def test_a_column_without_letters_or_digits_needs_a_key_name(tmp_path: Path) -> None:
    partition = {"column": "日付", "scheme": "static", "values": ["x"]}
    message = error_for(tmp_path, {"exports": [{**GOOD, "partition": partition}]})
    assert "field 'partition'" in message and "gives no Hive key" in message
    assert "set key_name" in message
