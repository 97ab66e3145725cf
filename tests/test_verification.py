"""Own-request verification: an export is recorded only once it is shown to answer its own asset's
request (where it lies, which columns in which order, with or without a BOM, how many rows).

Domo's documentation, read literally: while a DataSet is unchanged, an export request returns "the
previous export", whatever request made it. The sandbox's ``previous_export: any_request``
behaviour (part of its strict mode) does exactly that.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, RetryPolicy
from domo_assets_dev.sandbox import EXPORT_BUCKET, PHARMACY_CLAIMS_ID, Sandbox
from support import (
    check_outcomes,
    domo_resource,
    failure_text,
    materializations,
    materialize_catalog,
    read_json,
    refused_checks,
    refused_outcomes,
    write_catalog,
)

from domo_assets.catalog import Catalog

SUPPLY_COLUMNS = ["Customer ID", "Date Filled", "Days Supply"]
LONG_SUPPLY = {
    "dataset_id": PHARMACY_CLAIMS_ID,
    "columns": SUPPLY_COLUMNS,
    "where": [{"column": "Days Supply", "gte": 30}],
}


def run(catalog: Catalog, sandbox: Sandbox, instance: DagsterInstance, **kwargs: Any) -> Any:
    return materialize_catalog(catalog, instance, domo_resource(sandbox), **kwargs)


def keys_under(s3: Any, prefix: str) -> list[str]:
    listed = s3.list_objects_v2(Bucket=EXPORT_BUCKET, Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def any_request(sandbox: Sandbox) -> None:
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, previous_export="any_request")


def export_one_query_twice(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path
) -> tuple[Any, dict[str, Any], dict[str, Any], str, str]:
    """Two assets of one query under two prefixes, materialized in one run: Domo makes one
    export, and the second asset gets a copy. Returns the run, Domo's export, the copying
    asset's metadata, its prefix and the source's."""
    catalog = write_catalog(
        tmp_path,
        {"name": "supply_a", "path": "v/a", **LONG_SUPPLY},
        {"name": "supply_b", "path": "v/b", **LONG_SUPPLY},
    )
    result = run(catalog, sandbox, instance)
    assert result.success, failure_text(result)
    (export,) = sandbox.control.exports(dataset_id=PHARMACY_CLAIMS_ID)
    found = materializations(result)
    copied = [name for name, metadata in found.items() if "copied_from" in metadata]
    assert len(copied) == 1, "one export for both; the second asset gets a copy"
    (name,) = copied
    own, source = ("v/b", "v/a") if name == "supply_b" else ("v/a", "v/b")
    return result, export, found[name], own, source


def test_same_query_elsewhere_is_copied_into_the_assets_own_prefix(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path, s3: Any
) -> None:
    any_request(sandbox)
    result, export, metadata, own, source = export_one_query_twice(sandbox, instance, tmp_path)
    export_id = export["export_id"]
    assert metadata["export_id"] == export_id
    assert metadata["start_outcome"] == "reused_previous"
    assert metadata["copied_from"] == [
        f"s3://{EXPORT_BUCKET}/{source}/{export_id}/export/data.csv.gz"
    ]
    assert metadata["s3_uris"] == [f"s3://{EXPORT_BUCKET}/{own}/{export_id}/export/data.csv.gz"]
    assert metadata["verified_location"] == f"s3://{EXPORT_BUCKET}/{own}/{export_id}/"
    original = s3.head_object(Bucket=EXPORT_BUCKET, Key=f"{source}/{export_id}/export/data.csv.gz")
    copy = s3.head_object(Bucket=EXPORT_BUCKET, Key=f"{own}/{export_id}/export/data.csv.gz")
    assert copy["ETag"] == original["ETag"]
    manifest = read_json(s3, metadata["manifest_uri"])
    assert manifest["copied_from"] == metadata["copied_from"]
    assert manifest["columns"] == SUPPLY_COLUMNS
    assert metadata["dagster/row_count"] == sandbox.control.true_row_count(
        PHARMACY_CLAIMS_ID, where_sql="`Days Supply` >= 30"
    )
    assert all(check_outcomes(result).values())


def test_copies_keep_each_objects_key_relative_to_its_export_folder(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path, s3: Any
) -> None:
    """Domo documents an export's files under ``<exportId>/export/...`` without saying they lie
    flat there: files in sub-folders, every one with the same name, must each get a copy of
    their own under the copying asset's prefix."""
    any_request(sandbox)
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, key_layout="nested", rows_per_file=100)
    result, export, metadata, own, source = export_one_query_twice(sandbox, instance, tmp_path)
    export_id = export["export_id"]
    relative = sorted(key.split(f"/{export_id}/export/", 1)[1] for key in export["object_keys"])
    assert len(relative) > 1 and len({r.rsplit("/", 1)[1] for r in relative}) == 1, (
        "several files, one name, one sub-folder each"
    )

    own_keys = [f"{own}/{export_id}/export/{r}" for r in relative]
    assert metadata["s3_uris"] == [f"s3://{EXPORT_BUCKET}/{k}" for k in own_keys]
    assert metadata["copied_from"] == [
        f"s3://{EXPORT_BUCKET}/{source}/{export_id}/export/{r}" for r in relative
    ]
    manifests = [f"{own}/{export_id}/export/_{n}.json" for n in ("manifest", "redshift_manifest")]
    assert keys_under(s3, f"{own}/{export_id}/") == sorted([*own_keys, *manifests])
    for r in relative:
        original = s3.head_object(Bucket=EXPORT_BUCKET, Key=f"{source}/{export_id}/export/{r}")
        copy = s3.head_object(Bucket=EXPORT_BUCKET, Key=f"{own}/{export_id}/export/{r}")
        assert copy["ETag"] == original["ETag"], r
    expected = sandbox.control.true_row_count(PHARMACY_CLAIMS_ID, where_sql="`Days Supply` >= 30")
    assert metadata["dagster/row_count"] == expected
    manifest = read_json(s3, metadata["manifest_uri"])
    assert (
        metadata["manifest_uri"] == f"s3://{EXPORT_BUCKET}/{own}/{export_id}/export/_manifest.json"
    )
    assert [f["key"] for f in manifest["files"]] == own_keys
    assert sum(f["rows"] for f in manifest["files"]) == expected
    assert all(check_outcomes(result).values())


def test_a_copy_of_an_object_outside_an_export_folder_is_refused(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path, s3: Any
) -> None:
    """Files Domo wrote straight under ``<exportId>/``, without the ``export/`` folder: their
    own asset records them, but where another asset's copy of one belongs cannot be told."""
    any_request(sandbox)
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, key_layout="bare")
    catalog = write_catalog(
        tmp_path,
        {"name": "supply_a", "path": "v/a", **LONG_SUPPLY},
        {"name": "supply_b", "path": "v/b", **LONG_SUPPLY},
    )
    first = run(catalog, sandbox, instance, selection=["supply_a"])
    assert first.success, failure_text(first)
    (export,) = sandbox.control.exports(dataset_id=PHARMACY_CLAIMS_ID)
    export_id = export["export_id"]

    result = run(catalog, sandbox, instance, selection=["supply_b"], retry_policy=RetryPolicy(2))

    assert not result.success
    assert materializations(result) == {}
    text = failure_text(result)
    assert f"its object s3://{EXPORT_BUCKET}/v/a/{export_id}/data.csv.gz does not lie" in text
    assert f"under an {export_id}/export/ folder" in text and "nothing was copied" in text
    assert not any(e.event_type_value == "STEP_RESTARTED" for e in result.all_events)
    assert keys_under(s3, "v/b/") == []


def test_another_querys_export_is_refused_and_not_retried(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path, s3: Any
) -> None:
    any_request(sandbox)
    catalog = write_catalog(
        tmp_path,
        {"name": "claims", "dataset_id": PHARMACY_CLAIMS_ID, "path": "v/claims"},
        {"name": "supply", "path": "v/supply", **LONG_SUPPLY},
    )
    first = run(catalog, sandbox, instance, selection=["claims"])
    assert first.success
    (export,) = sandbox.control.exports(dataset_id=PHARMACY_CLAIMS_ID)
    export_id = export["export_id"]

    result = run(catalog, sandbox, instance, selection=["supply"], retry_policy=RetryPolicy(2))

    assert not result.success
    assert materializations(result) == {}
    text = failure_text(result)
    assert f"Domo answered supply's export request with export {export_id}" in text
    assert f"written to s3://{EXPORT_BUCKET}/v/claims/{export_id}/export/" in text
    assert "its manifest records another request" in text
    assert f"DataSet {PHARMACY_CLAIMS_ID} is unchanged since that export" in text
    assert "give this query a DataSet of its own" in text
    assert not any(e.event_type_value == "STEP_RESTARTED" for e in result.all_events)
    assert keys_under(s3, "v/supply/") == [], "nothing written under the refused asset's prefix"
    manifest = read_json(s3, f"s3://{EXPORT_BUCKET}/v/claims/{export_id}/export/_manifest.json")
    assert manifest["request"] == materializations(first)["claims"]["domo/request"], (
        "the other export's manifest is left as its own asset wrote it"
    )


def test_a_manifestless_previous_export_of_another_request_is_refused(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path, s3: Any
) -> None:
    """An export at this asset's own prefix with no manifest to tell its request (its run was
    killed, or its checks failed): this asset's ledger recorded it for other columns, so it is
    not taken as this request's, even before its header is read."""
    any_request(sandbox)
    entry = {"name": "claims", "dataset_id": PHARMACY_CLAIMS_ID, "path": "v/claims"}
    first = run(write_catalog(tmp_path, {**entry, "columns": SUPPLY_COLUMNS}), sandbox, instance)
    manifest_uri = materializations(first)["claims"]["manifest_uri"]
    s3.delete_object(Bucket=EXPORT_BUCKET, Key=manifest_uri.split("/", 3)[3])

    result = run(
        write_catalog(tmp_path, {**entry, "columns": SUPPLY_COLUMNS[:2]}),
        sandbox,
        instance,
        retry_policy=RetryPolicy(max_retries=1),
    )

    assert not result.success
    assert materializations(result) == {}
    assert check_outcomes(result) == {}
    text = failure_text(result)
    assert "neither a manifest beside it" in text and "nor this asset's ledger" in text
    assert "Materialize again after the DataSet next changes" in text
    assert not any(e.event_type_value == "STEP_RESTARTED" for e in result.all_events), (
        "another request's export does not become this one's on retry"
    )
    assert sandbox.control.export_count(PHARMACY_CLAIMS_ID) == 1
    assert not [k for k in keys_under(s3, "v/claims/") if k.endswith("/_manifest.json")], (
        "no manifest claiming the new request was written"
    )


@pytest.mark.parametrize("wrong_files", [1, 1000], ids=["last-file", "every-file"])
def test_a_wrong_header_found_by_deep_verification_is_not_retried(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path, wrong_files: int
) -> None:
    """Files naming a column otherwise: only the last one (the header check reads the first
    file and passes; deep verification reads every file) or all of them (both checks fail).
    Either way a retry would read the same files again: the step is not retried."""
    sandbox.control.set_behaviour(
        PHARMACY_CLAIMS_ID, rows_per_file=100, wrong_header_files=wrong_files
    )
    entry = {
        "name": "claims",
        "dataset_id": PHARMACY_CLAIMS_ID,
        "path": "v/claims",
        "verify": "deep",
    }

    result = run(
        write_catalog(tmp_path, entry),
        sandbox,
        instance,
        retry_policy=RetryPolicy(max_retries=2),
    )

    assert not result.success
    assert materializations(result) == {}
    assert refused_outcomes(result) == {
        ("claims", "row_count"): True,
        ("claims", "s3_objects"): True,
        ("claims", "header"): wrong_files == 1,
        ("claims", "deep_verification"): False,
    }
    (export,) = sandbox.control.exports(dataset_id=PHARMACY_CLAIMS_ID)
    uris = [f"s3://{EXPORT_BUCKET}/{key}" for key in sorted(export["object_keys"])]
    assert len(uris) > 1
    deep = refused_checks(result)[("claims", "deep_verification")]
    assert deep["metadata"]["wrong_headers"] == uris[-wrong_files:]
    assert "unexpected ['Customer ID (renamed)']" in deep["description"]
    assert not any(e.event_type_value == "STEP_RESTARTED" for e in result.all_events), (
        "a wrong header does not heal on retry"
    )
    assert sandbox.control.export_count(PHARMACY_CLAIMS_ID) == 1


@pytest.mark.parametrize("asked", [False, True], ids=["not-asked", "asked"])
def test_a_bom_not_asked_for_or_missing_fails_the_header_check(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path, asked: bool
) -> None:
    """Domo writing the BOM opposite to the request (ignoring includeBOM): the header check
    reads the first bytes and refuses the export."""
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, flip_bom=True)
    entry = {"name": "claims", "dataset_id": PHARMACY_CLAIMS_ID, "path": "v/claims"}
    result = run(write_catalog(tmp_path, {**entry, "include_bom": asked}), sandbox, instance)

    assert materializations(result) == {}
    header = refused_checks(result)[("claims", "header")]
    assert not header["passed"]
    expected = "a BOM was asked for but the file has none" if asked else "BOM"
    assert expected in header["description"]


def test_filtered_export_counts_rows_with_domos_sql(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path, domo_mode: str
) -> None:
    """`Days Supply` has a space: in Domo's MySQL-like dialect a double-quoted name would be a
    string, and the count would be wrong. The strict mode reads it that way."""
    result = run(
        write_catalog(tmp_path, {"name": "supply", "path": "v/s", **LONG_SUPPLY}), sandbox, instance
    )
    assert result.success, failure_text(result)
    metadata = materializations(result)["supply"]
    expected = sandbox.control.true_row_count(PHARMACY_CLAIMS_ID, where_sql="`Days Supply` >= 30")
    assert 0 < expected < 1000
    assert metadata["dagster/row_count"] == expected
    assert metadata["domo/rows_visible_to_token"] == expected
    assert metadata["verified_header"] == SUPPLY_COLUMNS
