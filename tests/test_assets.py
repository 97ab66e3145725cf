"""Export assets: real Dagster runs against the sandbox's Domo and S3 servers."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance
from domo_assets_dev import DEMO_CATALOG
from domo_assets_dev.sandbox import Sandbox
from domo_assets_dev.sandbox.datasets import (
    AWKWARD_VALUES_ID,
    PHARMACY_CLAIMS_ID,
    REGIONAL_SALES_ID,
)
from support import (
    check_outcomes,
    domo_resource,
    failure_text,
    log_messages,
    materializations,
    materialize_catalog,
    read_json,
    refused_checks,
    refused_outcomes,
    write_catalog,
)

from domo_assets.catalog import Catalog, load_catalog, parse_catalog
from domo_assets.location import build_definitions, collector_paused
from domo_assets.resource import DomoResource


def run(catalog: Catalog, sandbox: Sandbox, instance: DagsterInstance, selection=None, **settings):
    return materialize_catalog(
        catalog, instance, domo_resource(sandbox, **settings), selection=selection
    )


REPO_ROOT = Path(__file__).resolve().parent.parent
PHARMACY = {
    "name": "claims",
    "dataset_id": PHARMACY_CLAIMS_ID,
    "dataset_name": "Pharmacy Claims",
    "path": "t/claims",
}


def test_bundled_catalog_materializes_with_true_metadata(
    sandbox: Sandbox, instance: DagsterInstance, domo_mode: str
) -> None:
    catalog = load_catalog(DEMO_CATALOG)
    result = run(catalog, sandbox, instance)
    found = materializations(result)
    refused: set[str] = set()
    if domo_mode == "strict":
        # The catalog exports Pharmacy Claims twice, with other columns and filters. Read
        # literally, Domo answers the second request with the first's export (the data is
        # unchanged): it must be refused, never recorded as the second asset's data.
        assert not result.success
        refused = {"pharmacy_claims", "pharmacy_claims_supply"} - set(found)
        assert len(refused) == 1, found.keys()
        (name,) = refused
        text = failure_text(result)
        assert f"Domo answered {name}'s export request with export" in text
        assert f"DataSet {PHARMACY_CLAIMS_ID} is unchanged since that export" in text
        assert "were not recorded" in text
    else:
        assert result.success
    # A Parquet asset follows its export's step, which a refused export fails (strict mode).
    parquet = {f"{e.name}_parquet" for e in catalog.exports if e.parquet and result.success}
    assert set(found) == ({e.name for e in catalog.exports} | parquet) - refused
    s3 = sandbox.s3_client()
    sandbox_exports = {e["export_id"]: e for e in sandbox.control.exports()}
    for export in catalog.exports:
        if export.name in refused:
            continue
        assert (export.parquet and result.success) is (f"{export.name}_parquet" in found)
        metadata = found[export.name]
        export_id = metadata["export_id"]
        assert export_id in sandbox_exports, f"{export.name}: export id unknown to Domo"
        folder = f"s3://domo-exports/{export.path}/{export_id}/"
        assert metadata["verified_location"] == folder
        uris = metadata["s3_uris"]
        assert uris and all(u.startswith(f"{folder}export/") for u in uris)
        for uri in uris:
            bucket, key = uri.removeprefix("s3://").split("/", 1)
            assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] > 0
        rows = metadata["dagster/row_count"]
        assert rows == sum(record.data["rows"] for record in metadata["files"].records)
        assert metadata["reused_previous_export"] is False
        assert metadata["domo/dataset_id"] == export.dataset_id
        manifest = read_json(s3, metadata["manifest_uri"])
        assert manifest["export_id"] == export_id
        assert manifest["columns"] == metadata["verified_header"]
    assert found["pharmacy_claims_supply" if "pharmacy_claims" in refused else "pharmacy_claims"][
        "dagster/row_count"
    ] == sandbox.control.true_row_count(
        PHARMACY_CLAIMS_ID,
        where_sql="`Days Supply` >= 30" if "pharmacy_claims" in refused else None,
    )
    checks = check_outcomes(result)
    transfer = {k: v for k, v in checks.items() if k[1] in {"row_count", "s3_objects", "header"}}
    assert len(transfer) == 3 * len(set(found) - parquet)
    assert all(checks.values()), checks


def test_unchanged_dataset_reuses_export_and_data_version(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path, domo_mode: str
) -> None:
    catalog = write_catalog(tmp_path, PHARMACY)
    first = materializations(run(catalog, sandbox, instance))["claims"]
    second = materializations(run(catalog, sandbox, instance))["claims"]
    assert second["export_id"] == first["export_id"]
    assert second["reused_previous_export"] is True
    record = instance.get_latest_materialization_event(AssetKey("claims"))
    assert record.asset_materialization.tags["dagster/data_version"] == first["export_id"]
    sandbox.control.change_dataset(PHARMACY_CLAIMS_ID, rows=3)
    third = materializations(run(catalog, sandbox, instance))["claims"]
    assert third["export_id"] != first["export_id"]
    assert third["dagster/row_count"] == first["dagster/row_count"] + 3


def test_misreported_count_is_never_recorded(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path
) -> None:
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, misreport_rows=7)
    result = run(write_catalog(tmp_path, PHARMACY), sandbox, instance)
    assert not result.success, "an export whose row count is wrong must fail the run"
    assert materializations(result) == {}
    assert check_outcomes(result) == {}, "no verdict is pinned to an earlier materialization"
    assert refused_outcomes(result) == {
        ("claims", "row_count"): False,
        ("claims", "s3_objects"): True,
        ("claims", "header"): True,
    }
    text = failure_text(result)
    assert "was not recorded: check row_count failed" in text
    (export,) = sandbox.control.exports(dataset_id=PHARMACY_CLAIMS_ID)
    folder = f"t/claims/{export['export_id']}/export/"
    listed = sandbox.s3_client().list_objects_v2(Bucket="domo-exports", Prefix=folder)
    names = [o["Key"].rsplit("/", 1)[-1] for o in listed.get("Contents", [])]
    assert names == ["data.csv.gz"], "no manifest beside an unverified export"


def test_blocking_check_failure_fails_the_run(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path
) -> None:
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, misreport_rows=1)
    result = run(write_catalog(tmp_path, {**PHARMACY, "blocking_checks": True}), sandbox, instance)
    assert not result.success
    assert refused_outcomes(result)[("claims", "row_count")] is False


def test_missing_object_fails_s3_check(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path
) -> None:
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, omit_object=True)
    result = run(write_catalog(tmp_path, PHARMACY), sandbox, instance)
    evaluations = refused_checks(result)
    assert evaluations[("claims", "s3_objects")]["passed"] is False
    assert "missing" in evaluations[("claims", "s3_objects")]["description"]
    assert evaluations[("claims", "header")]["passed"] is False
    assert materializations(result) == {}


def test_export_error_fails_step_but_keeps_other_results(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path, domo_mode: str
) -> None:
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, export_outcome="error")
    other = {"name": "sales", "dataset_id": REGIONAL_SALES_ID, "path": "t/sales"}
    result = run(write_catalog(tmp_path, PHARMACY, other), sandbox, instance)
    assert not result.success
    assert set(materializations(result)) == {"sales"}
    text = failure_text(result)
    assert "claims" in text and "EXPORT_FAILED" in text and "The export failed" in text


def test_post_answered_with_an_error_export_fails_with_domos_reason(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path, domo_mode: str
) -> None:
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, post_answer="error")
    result = run(write_catalog(tmp_path, PHARMACY), sandbox, instance)
    assert not result.success
    assert materializations(result) == {}
    (export,) = sandbox.control.exports(dataset_id=PHARMACY_CLAIMS_ID)
    text = failure_text(result)
    assert export["export_id"] in text and "EXPORT_REJECTED" in text
    assert export["message"] in text, "Domo's message (with its toe) must be quoted"


def test_stuck_export_times_out_naming_export_and_elapsed(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path
) -> None:
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, export_outcome="stuck")
    result = run(write_catalog(tmp_path, PHARMACY), sandbox, instance, poll_timeout=1.0)
    assert not result.success
    stuck = sandbox.control.exports(dataset_id=PHARMACY_CLAIMS_ID)[0]["export_id"]
    text = failure_text(result)
    assert stuck in text and "after it started (poll_timeout 1 s" in text
    assert "ended" not in "\n".join(log_messages(instance, result)), "a timeout is no end"


def test_lineage_dataset_then_export(sandbox: Sandbox) -> None:
    catalog = load_catalog(DEMO_CATALOG)
    defs = build_definitions(
        catalog, DomoResource(instance_url=sandbox.domo_url, developer_token=sandbox.token)
    )
    graph = defs.resolve_asset_graph()
    pharmacy = AssetKey(["domo", "pharmacy_claims_dataset"])
    assert graph.get(AssetKey("pharmacy_claims")).parent_keys == {pharmacy}
    assert graph.get(AssetKey("pharmacy_claims_supply")).parent_keys == {pharmacy}
    assert graph.get(pharmacy).is_external
    assert graph.get(pharmacy).kinds == {"domo"}
    assert graph.get(AssetKey("pharmacy_claims")).kinds == {"domo", "s3"}
    assert graph.get(AssetKey("pharmacy_claims")).group_name == "domo_exports"


def test_selecting_one_export_runs_only_it(sandbox: Sandbox, instance: DagsterInstance) -> None:
    catalog = load_catalog(DEMO_CATALOG)
    result = run(catalog, sandbox, instance, selection=["awkward_values"])
    assert result.success
    assert set(materializations(result)) == {"awkward_values"}
    assert sandbox.control.export_count(PHARMACY_CLAIMS_ID) == 0


def test_catalog_is_parsed_with_defaults() -> None:
    catalog = parse_catalog(
        {
            "defaults": {"bucket": "b-1", "region": "eu-west-1", "tags": {"t": "v"}},
            "exports": [{**PHARMACY, "bucket": "b-2"}],
        },
        source="inline.yaml",
    )
    export = catalog.exports[0]
    assert (export.bucket, export.region, export.tags) == ("b-2", "eu-west-1", {"t": "v"})


def test_deep_verification_parses_awkward_csv(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path
) -> None:
    entry = {
        "name": "awkward",
        "dataset_id": AWKWARD_VALUES_ID,
        "path": "t/awkward",
        "verify": "deep",
        "include_bom": True,
    }
    result = run(write_catalog(tmp_path, entry), sandbox, instance)
    assert result.success
    evaluation = next(
        e for e in result.get_asset_check_evaluations() if e.check_name == "deep_verification"
    )
    assert evaluation.passed, evaluation.description
    assert evaluation.metadata["records_parsed"].value == sandbox.control.true_row_count(
        AWKWARD_VALUES_ID
    )


def test_deep_verification_catches_a_misreported_count(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path
) -> None:
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, misreport_rows=2)
    result = run(write_catalog(tmp_path, {**PHARMACY, "verify": "deep"}), sandbox, instance)
    evaluation = refused_checks(result)[("claims", "deep_verification")]
    assert not evaluation["passed"]
    assert "Domo reports" in evaluation["description"]
    assert materializations(result) == {}


@pytest.mark.slow
def test_cli_validates_and_materializes_every_export(sandbox: Sandbox, tmp_path: Path) -> None:
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        **os.environ,
        **sandbox.env(),
        "DAGSTER_HOME": str(tmp_path),
        "DOMO_EXPORTS_FILE": str(DEMO_CATALOG),
    }

    def dagster(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "dagster", *args, "-m", "domo_assets.definitions"]
        return subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT
        )

    validate = dagster("definitions", "validate")
    assert validate.returncode == 0, validate.stderr[-2000:]
    done = dagster("asset", "materialize", "--select", "*")
    assert done.returncode == 0, done.stderr[-3000:]
    exported = {e["request"]["path"] for e in sandbox.control.exports() if e["status"] == "success"}
    assert exported == {e.path for e in load_catalog(DEMO_CATALOG).exports}


def test_loading_the_code_location_leaves_http_and_aws_libraries_to_runs(
    sandbox: Sandbox,
) -> None:
    """requests, boto3 and dagster_aws cost a load about 0.9 s together; only runs need them."""
    probe = (
        "import json, sys; import domo_assets.definitions as d; "
        "d.defs.get_repository_def().load_all_definitions(); "
        "print(json.dumps(sorted(m for m in ('requests', 'boto3', 'dagster_aws') "
        "if m in sys.modules)))"
    )
    env = {**os.environ, **sandbox.env(), "DOMO_EXPORTS_FILE": str(DEMO_CATALOG)}

    loaded = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120
    )

    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.strip().splitlines()[-1] == "[]"


def test_loading_the_code_location_gives_the_garbage_collector_back(sandbox: Sandbox) -> None:
    """The collector is paused while the catalog is built, and running again after."""
    probe = (
        "import gc; import domo_assets.definitions as d; print(gc.isenabled(), len(d.defs.assets))"
    )
    env = {**os.environ, **sandbox.env(), "DOMO_EXPORTS_FILE": str(DEMO_CATALOG)}

    loaded = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120
    )

    assert loaded.returncode == 0, loaded.stderr[-2000:]
    enabled, assets = loaded.stdout.split()
    assert enabled == "True" and int(assets) > 0


@pytest.mark.parametrize("enabled_before", [True, False])
def test_collector_paused_restores_the_collector_as_it_was(enabled_before: bool) -> None:
    was = gc.isenabled()
    (gc.enable if enabled_before else gc.disable)()
    try:
        with pytest.raises(RuntimeError), collector_paused():
            paused = gc.isenabled()
            raise RuntimeError("a build that fails")
        assert paused is False
        assert gc.isenabled() is enabled_before
    finally:
        (gc.enable if was else gc.disable)()
