"""DomoExportsComponent: dg projects with real defs.yaml files, real runs against the sandbox,
and the dg CLI (list, scaffold, check, launch, dev) as subprocesses."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import requests
import yaml
from domo_assets_dev import DEMO_PARTITIONED_CATALOG
from domo_assets_dev.sandbox import ANALYST, EXPORT_BUCKET, Sandbox
from domo_assets_dev.sandbox.datasets import (
    AWKWARD_VALUES_ID,
    DAILY_ORDERS_ID,
    PHARMACY_CLAIMS_ID,
)
from servers import GraphQL, Processes, free_port, location_loaded, wait_until
from support import (
    FAST_POLLING,
    caused_by,
    check_outcomes,
    error_messages,
    failure_text,
    log_messages,
    materializations,
)

from domo_assets.catalog import CatalogError, load_catalog
from domo_assets.component import DomoExportsComponent
from domo_assets.component_scaffolder import (
    DomoExportsComponentScaffolder,
    DomoExportsScaffoldParams,
)
from domo_assets.discovery import read_state

REPO = Path(__file__).resolve().parents[1]
DEV_PROJECT = REPO / "dev"
DEMO_DEFS_YAML = DEV_PROJECT / "domo_assets_dev" / "defs" / "demo_exports" / "defs.yaml"
COMPONENT_TYPE = "domo_assets.DomoExportsComponent"
CLI_TIMEOUT_SECONDS = 300
DEV_STARTUP_SECONDS = 180
GRAPHQL_TIMEOUT_SECONDS = 30
OAUTH_TOKEN_PATH = "/oauth/token"
CONNECTION = {
    "instance_url": "{{ env.DOMO_INSTANCE_URL }}",
    "developer_token": "{{ env.DOMO_DEVELOPER_TOKEN }}",
    **FAST_POLLING,
}
# OAuth beside the developer token (the export API takes no other credential).
OAUTH_CONNECTION = {
    "instance_url": "{{ env.DOMO_INSTANCE_URL }}",
    "developer_token": "{{ env.DOMO_DEVELOPER_TOKEN }}",
    "client_id": "{{ env.DOMO_CLIENT_ID }}",
    "client_secret": "{{ env.DOMO_CLIENT_SECRET }}",
    "api_url": "{{ env.DOMO_API_URL }}",
    **FAST_POLLING,
}
DESTINATION = {"bucket": EXPORT_BUCKET, "region": "us-east-1"}
CLAIMS = {
    "name": "claims",
    "dataset_id": PHARMACY_CLAIMS_ID,
    "dataset_name": "Pharmacy Claims",
    "path": "component/claims",
}
AWKWARD = {
    "name": "awkward",
    "dataset_id": AWKWARD_VALUES_ID,
    "dataset_name": "Awkward Values",
    "path": "component/awkward",
    "include_bom": True,
}
AWKWARD_WITHOUT_PATH = {k: v for k, v in AWKWARD.items() if k != "path"}
ORDERS = {
    "name": "orders_regions",
    "dataset_id": DAILY_ORDERS_ID,
    "dataset_name": "Daily Orders",
    "path": "component/orders_regions",
    "columns": ["Region"],
    "group_by": ["Region"],
    "schedule": "0 6 * * *",
}
PROJECT_TOML = """\
[project]
name = "{module}"
version = "0.0.0"

[tool.dg]
directory_type = "project"

[tool.dg.project]
root_module = "{module}"
"""
DEFINITIONS_PY = """\
from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
"""
INSTANCE_YAML = "telemetry:\n  enabled: false\n"
DAGSTER = (sys.executable, "-m", "dagster")
# A defs module loading the classic catalog (DOMO_EXPORTS_FILE) beside a project's instances.
CLASSIC_PY = "from domo_assets.definitions import defs as classic\n"


# --- projects -------------------------------------------------------------------------------


def instance_document(*exports: Mapping[str, Any], **attributes: Any) -> dict[str, Any]:
    """A defs.yaml document of the component, with the sandbox's connection and destination."""
    return {
        "type": COMPONENT_TYPE,
        "attributes": {
            "domo": CONNECTION,
            "defaults": DESTINATION,
            "exports": [dict(e) for e in exports],
            **attributes,
        },
    }


def write_project(root: Path, instances: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """A dg project in `root` with one defs.yaml per instance (path -> document); returns its
    root module, named uniquely so that each test imports its own."""
    module = f"domo_project_{uuid.uuid4().hex[:10]}"
    (root / "pyproject.toml").write_text(PROJECT_TOML.format(module=module), encoding="utf-8")
    package = root / module
    (package / "defs").mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "definitions.py").write_text(DEFINITIONS_PY, encoding="utf-8")
    for path, document in (instances or {}).items():
        write_instance(root / module / "defs" / path, document)
    return module


def write_instance(folder: Path, document: Mapping[str, Any]) -> Path:
    """Write `document` as `folder`/defs.yaml and return the file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "defs.yaml"
    path.write_text(yaml.safe_dump(dict(document), sort_keys=False), encoding="utf-8")
    return path


def load_project(root: Path, monkeypatch: pytest.MonkeyPatch) -> dg.Definitions:
    """The project's Definitions, loaded in process as its code location loads them."""
    monkeypatch.syspath_prepend(str(root))
    return dg.load_from_defs_folder(path_within_project=root)


@pytest.fixture
def domo_env(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The sandbox's Domo variables (URLs, token, OAuth client) in the environment, as the
    defs.yaml files expect."""
    for name, value in sandbox.env().items():
        if name.startswith("DOMO_"):
            monkeypatch.setenv(name, value)
    return sandbox


def materialize(
    defs: dg.Definitions, instance: dg.DagsterInstance, selection: Sequence[dg.AssetKey]
) -> dg.ExecuteInProcessResult:
    """Materialize some of a project's assets with its own resources."""
    return dg.materialize(
        list(defs.assets or []),
        resources=dict(defs.resources or {}),
        instance=instance,
        selection=list(selection),
        raise_on_error=False,
    )


def exported_paths(sandbox: Sandbox) -> set[str]:
    """The S3 prefixes of the sandbox's successful exports."""
    return {e["request"]["path"] for e in sandbox.control.exports() if e["status"] == "success"}


def op_names(defs: dg.Definitions) -> set[str]:
    """The op names of a Definitions' assets."""
    return {a.op.name for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)}


def stored_text(instance: dg.DagsterInstance, run_id: str) -> str:
    """What Dagster stored of a run: its job snapshot, run config and every event, serialized."""
    run = instance.get_run_by_id(run_id)
    assert run is not None and run.job_snapshot_id is not None
    snapshot = instance.get_job_snapshot(run.job_snapshot_id)
    events = [dg.serialize_value(entry) for entry in instance.all_logs(run_id)]
    assert events  # the run's records are there to be searched
    return "\n".join([dg.serialize_value(snapshot), json.dumps(run.run_config), *events])


def exporting_users(sandbox: Sandbox) -> set[str]:
    """The Domo users whose tokens started the sandbox's exports."""
    return {e["user"] for e in sandbox.control.exports()}


# --- loading and running --------------------------------------------------------------------


def test_component_materializes_end_to_end_and_keeps_the_token_out_of_the_snapshot(
    domo_env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, instance: dg.DagsterInstance
) -> None:
    write_project(tmp_path, {"lake": instance_document(CLAIMS, AWKWARD)})
    defs = load_project(tmp_path, monkeypatch)

    result = materialize(defs, instance, [dg.AssetKey("claims"), dg.AssetKey("awkward")])

    assert result.success, failure_text(result)
    found = materializations(result)
    assert set(found) == {"claims", "awkward"}
    assert exported_paths(domo_env) == {"component/claims", "component/awkward"}
    rows = {
        e["request"]["path"]: sum(e["url_row_count_map"].values())
        for e in domo_env.control.exports()
    }
    assert found["claims"]["dagster/row_count"] == rows["component/claims"] > 0
    # The DataSet's page is on the instance the environment names, not on the variable's name.
    assert found["claims"]["domo/dataset_url"].startswith(f"{domo_env.domo_url}/datasources/")
    outcomes = check_outcomes(result)
    assert outcomes and all(outcomes.values()), outcomes
    # The run authenticated with the token (its user made the exports), yet stored none of it.
    assert exporting_users(domo_env) == {ANALYST}
    assert domo_env.token not in stored_text(instance, result.run_id)


LOGGED_EXPORTS = """\
from domo_assets.component import DomoExportsComponent


class LoggedExports(DomoExportsComponent):
    def execute(self, context, domo):
        keys = sorted(key.to_user_string() for key in context.selected_asset_keys)
        context.log.info(f"LoggedExports exporting {keys}")
        yield from super().execute(context, domo)
"""


def test_execute_op_and_retry_policy_are_extension_points(
    domo_env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, instance: dg.DagsterInstance
) -> None:
    module = write_project(tmp_path)
    (tmp_path / module / "lib.py").write_text(LOGGED_EXPORTS, encoding="utf-8")
    document = instance_document(
        CLAIMS,
        ORDERS,
        op={"name": "lake_exports", "tags": {"team": "lake"}, "pool": "domo_lake"},
        retry_policy={"max_retries": 0},
    )
    document["type"] = f"{module}.lib.LoggedExports"
    write_instance(tmp_path / module / "defs" / "lake", document)
    defs = load_project(tmp_path, monkeypatch)

    exports = next(a for a in defs.assets or [] if a.op.name == "lake_exports")
    assert exports.op.tags == {"team": "lake"}
    assert exports.op.pool == "domo_lake"
    assert exports.op.retry_policy == dg.RetryPolicy(max_retries=0)
    result = materialize(defs, instance, [dg.AssetKey("claims")])

    assert result.success, failure_text(result)
    assert set(materializations(result)) == {"claims"}
    logged = [m for m in log_messages(instance, result) if "LoggedExports exporting" in m]
    assert logged == ["LoggedExports exporting ['claims']"]

    # A backfill policy handing a run several partitions is refused: a run exports one.
    document["attributes"]["op"] = {"backfill_policy": {"type": "single_run"}}
    write_instance(tmp_path / module / "defs" / "lake", document)
    with pytest.raises(Exception) as failure:
        load_project(tmp_path, monkeypatch)
    assert "op.backfill_policy: a partitioned export's run exports one partition" in error_messages(
        failure.value
    )


def test_two_instances_in_one_project_do_not_collide(
    domo_env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, instance: dg.DagsterInstance
) -> None:
    team_b = instance_document(AWKWARD, ORDERS)
    team_b["attributes"]["domo"] = OAUTH_CONNECTION  # each instance has a connection of its own
    write_project(tmp_path, {"team_a/claims": instance_document(CLAIMS), "team-b": team_b})
    defs = load_project(tmp_path, monkeypatch)

    assert op_names(defs) == {
        "team_a_claims__domo_exports",
        "team_a_claims__domo_datasets",
        "team_b__domo_exports",
        "team_b__domo_datasets",
    }
    assert {s.name for s in defs.sensors or []} == {
        "team_a_claims__domo_dataset_change_sensor",
        "team_b__domo_dataset_change_sensor",
    }
    assert [s.name for s in defs.schedules or []] == ["team_b__domo_exports_schedule_0_6_x_x_x_UTC"]
    # One run across both instances, each export through its own instance's connection.
    result = materialize(defs, instance, [dg.AssetKey("claims"), dg.AssetKey("orders_regions")])
    assert result.success, failure_text(result)
    assert set(materializations(result)) == {"claims", "orders_regions"}
    assert exported_paths(domo_env) == {"component/claims", "component/orders_regions"}
    # team-b's connection has the OAuth client: it asked Domo for an access token, and sent
    # it to the platform API only, never to an instance path.
    log = domo_env.control.requests()
    assert any(r["path"].startswith(OAUTH_TOKEN_PATH) and r["status"] == 200 for r in log)
    assert any(r["path"].startswith("/v1/") and r["credentials"] == ["bearer"] for r in log)
    assert all(
        r["credentials"] == ["developer_token"] for r in log if r["path"].startswith("/api/")
    )


def test_translation_and_post_processing_change_key_group_and_tags(
    domo_env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, instance: dg.DagsterInstance
) -> None:
    document = instance_document(
        CLAIMS,
        AWKWARD,
        translation={"key": "lake/{{ props.config.name }}", "group_name": "curated"},
    )
    document["post_processing"] = {
        "assets": [{"target": "key:lake/claims", "attributes": {"tags": {"tier": "gold"}}}]
    }
    write_project(tmp_path, {"exports": document})
    defs = load_project(tmp_path, monkeypatch)
    specs = {spec.key: spec for spec in defs.resolve_all_asset_specs()}

    claims = specs[dg.AssetKey(["lake", "claims"])]
    assert claims.group_name == "curated"
    assert claims.tags["tier"] == "gold"
    assert "tier" not in specs[dg.AssetKey(["lake", "awkward"])].tags
    assert dg.AssetKey("claims") not in specs
    # The run finds the catalog entry from the translated spec's metadata.
    result = materialize(defs, instance, [dg.AssetKey(["lake", "claims"])])
    assert result.success, failure_text(result)
    assert set(materializations(result)) == {"lake/claims"}
    assert exported_paths(domo_env) == {"component/claims"}


def test_a_typo_in_an_export_fails_the_load_naming_file_export_and_field(
    domo_env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A misspelled key of an export: the attributes' typed model names it, with its line.
    module = write_project(
        tmp_path, {"exports": instance_document(CLAIMS, {**AWKWARD, "regoin": "us-east-1"})}
    )
    defs_yaml = tmp_path / module / "defs" / "exports" / "defs.yaml"

    with pytest.raises(Exception) as failure:
        load_project(tmp_path, monkeypatch)

    assert f"attributes.exports.list[DomoExportModel].1.regoin at {defs_yaml}:" in error_messages(
        failure.value
    )
    assert "Extra inputs are not permitted" in error_messages(failure.value)

    # Inside a nested section the catalog's parser names it, as for a catalog file.
    write_instance(
        defs_yaml.parent,
        instance_document(CLAIMS, {**AWKWARD, "quality": {"min_rowz": {"bound": 1}}}),
    )
    with pytest.raises(Exception) as failure:
        load_project(tmp_path, monkeypatch)
    assert caused_by(failure.value, CatalogError)
    assert (
        f"{defs_yaml}: export 'awkward' (exports[1]): field 'quality.min_rowz': unknown key"
    ) in error_messages(failure.value)


def test_the_exports_may_live_in_a_catalog_file_beside_defs_yaml(
    domo_env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = {"type": COMPONENT_TYPE, "attributes": {"domo": CONNECTION, "catalog": "c.yaml"}}
    module = write_project(tmp_path, {"exports": document})
    folder = tmp_path / module / "defs" / "exports"
    (folder / "c.yaml").write_text(
        yaml.safe_dump({"defaults": DESTINATION, "exports": [CLAIMS, AWKWARD]}), encoding="utf-8"
    )
    defs = load_project(tmp_path, monkeypatch)
    keys = {spec.key.to_user_string() for spec in defs.resolve_all_asset_specs()}
    assert {"claims", "awkward"} <= keys

    write_instance(
        folder, {**document, "attributes": {**document["attributes"], "exports": [CLAIMS]}}
    )
    with pytest.raises(Exception) as failure:
        load_project(tmp_path, monkeypatch)
    assert "not both" in error_messages(failure.value)


@pytest.mark.parametrize(
    ("domo", "unset", "expected"),
    [
        (
            CONNECTION,
            "DOMO_DEVELOPER_TOKEN",
            "developer_token (DOMO_DEVELOPER_TOKEN is not set)",
        ),
        (CONNECTION, "DOMO_INSTANCE_URL", "environment variable DOMO_INSTANCE_URL is not set"),
        (
            {**CONNECTION, "developer_token": "SECRET-WRITTEN-OUT"},
            None,
            "attributes.domo.developer_token: a secret written out in the YAML",
        ),
    ],
    ids=["token-unset", "url-unset", "literal-token"],
)
def test_a_bad_connection_fails_the_load_saying_what_to_set(
    domo_env: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    domo: Mapping[str, Any],
    unset: str | None,
    expected: str,
) -> None:
    if unset:
        monkeypatch.delenv(unset)
    document = instance_document(CLAIMS)
    document["attributes"]["domo"] = dict(domo)
    write_project(tmp_path, {"exports": document})

    with pytest.raises(Exception) as failure:
        load_project(tmp_path, monkeypatch)

    messages = error_messages(failure.value)
    assert expected in messages
    assert "SECRET-WRITTEN-OUT" not in messages
    assert domo_env.token not in messages


def test_oauth_alone_fails_the_load(
    domo_env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = instance_document(CLAIMS)
    document["attributes"]["domo"] = {
        k: v for k, v in OAUTH_CONNECTION.items() if k != "developer_token"
    }
    write_project(tmp_path, {"exports": document})

    with pytest.raises(Exception) as failure:
        load_project(tmp_path, monkeypatch)

    messages = error_messages(failure.value)
    assert (
        "no Domo developer token: give developer_token as '{{ env.DOMO_DEVELOPER_TOKEN }}'"
        in messages
    )
    assert "OAuth client credentials alone cannot export" in messages
    assert domo_env.token not in messages and domo_env.client_secret not in messages
    assert domo_env.control.requests() == [], "loading makes no call to Domo"


@pytest.mark.parametrize(
    ("domo", "env", "expected"),
    [
        (
            CONNECTION,
            {"DOMO_INSTANCE_URL": "http://domo.example.com"},
            "instance_url (DOMO_INSTANCE_URL) is http://domo.example.com: Domo is reached over "
            "https:// only",
        ),
        (
            OAUTH_CONNECTION,
            {"DOMO_API_URL": "http://api.example.com"},
            "api_url (DOMO_API_URL) is http://api.example.com",
        ),
    ],
    ids=["http-instance", "http-api"],
)
def test_a_plain_http_url_from_the_environment_fails_when_dagster_initializes_the_resource(
    domo_env: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    instance: dg.DagsterInstance,
    domo: Mapping[str, Any],
    env: Mapping[str, str],
    expected: str,
) -> None:
    """A URL given as '{{ env.NAME }}' is an EnvVar that Dagster reads when it initializes the
    resource for a step (the component reads no variable itself): the run fails there, naming
    the field and the variable, before any request."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    document = instance_document(CLAIMS)
    document["attributes"]["domo"] = dict(domo)
    write_project(tmp_path, {"exports": document})
    defs = load_project(tmp_path, monkeypatch)

    result = materialize(defs, instance, [dg.AssetKey(CLAIMS["name"])])

    assert not result.success
    messages = "\n".join(
        str(event.event_specific_data) for event in result.all_events if event.is_failure
    )
    assert expected in messages
    assert domo_env.token not in messages and domo_env.client_secret not in messages
    assert domo_env.control.requests() == [], "no call to Domo"


def test_a_tuning_setting_may_come_from_the_environment(
    domo_env: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOMO_MAX_EXPORTS", "3")
    attributes = instance_document(CLAIMS)["attributes"]
    attributes["domo"] = {**CONNECTION, "max_concurrent_exports": "{{ env.DOMO_MAX_EXPORTS }}"}

    component = DomoExportsComponent.from_attributes_dict(attributes=attributes)

    assert component.domo.max_concurrent_exports == 3
    assert isinstance(component.domo.instance_url, dg.EnvVar)


def test_demo_defs_yaml_holds_the_partitioned_demo_catalogs_exports(
    domo_env: Sandbox, tmp_path: Path
) -> None:
    attributes = yaml.safe_load(DEMO_DEFS_YAML.read_text(encoding="utf-8"))["attributes"]
    component = DomoExportsComponent.from_attributes_dict(attributes=attributes)
    component.write_state_to_path(tmp_path / "state")  # what `dg dev` does first
    state = read_state(tmp_path / "state", str(DEMO_DEFS_YAML))

    catalog = component.build_catalog(str(DEMO_DEFS_YAML), state)
    expected = load_catalog(DEMO_PARTITIONED_CATALOG)

    found = {e.name: e for e in catalog.exports}
    assert set(found) == {e.name for e in expected.exports}
    # large_events is discovered (by its tag): the same DataSet, prefix and lineage node, with
    # Domo's name for its DataSet; every other export is listed by hand as in the catalog.
    discovered = {"large_events"}
    for export in expected.exports:
        if export.name in discovered:
            same = ("dataset_id", "bucket", "path", "region", "group", "owners", "dataset_key")
            assert {k: getattr(found[export.name], k) for k in same} == {
                k: getattr(export, k) for k in same
            }
        else:
            assert found[export.name] == export
    assert catalog.sensor == expected.sensor


def test_the_scaffolded_defs_yaml_loads_as_written(
    domo_env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = write_project(tmp_path)
    folder = tmp_path / module / "defs" / "my_exports"
    folder.mkdir()
    request = dg.ScaffoldRequest(
        type_name=COMPONENT_TYPE,
        target_path=folder,
        scaffold_format="yaml",
        project_root=tmp_path,
        params=DomoExportsScaffoldParams(),
    )

    DomoExportsComponentScaffolder().scaffold(request)
    defs = load_project(tmp_path, monkeypatch)

    assert {spec.key for spec in defs.resolve_all_asset_specs()} == {
        dg.AssetKey("my_export"),
        dg.AssetKey(["domo", "my_dataset_dataset"]),
    }


def test_the_component_is_a_lazy_attribute_of_the_package() -> None:
    import domo_assets
    import domo_assets.component

    assert "DomoExportsComponent" in dir(domo_assets)
    assert domo_assets.DomoExportsComponent is domo_assets.component.DomoExportsComponent
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        domo_assets.NoSuchThing  # noqa: B018


# --- one owner per prefix across instances --------------------------------------------------


def test_instances_of_one_project_may_not_share_or_nest_prefixes(
    domo_env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # team_b's orders land inside team_a's claims prefix; its awkward export shares it outright
    # through its defaults.
    team_b = instance_document({**ORDERS, "path": "component/claims/orders"})
    module = write_project(tmp_path, {"team_a": instance_document(CLAIMS), "team_b": team_b})
    defs = tmp_path / module / "defs"

    with pytest.raises(Exception) as failure:
        load_project(tmp_path, monkeypatch)

    assert caused_by(failure.value, CatalogError)
    assert (
        f"{defs / 'team_b' / 'defs.yaml'}: export 'orders_regions' (exports[0]): field 'path': "
        f"s3://{EXPORT_BUCKET}/component/claims/orders/ lies inside "
        f"s3://{EXPORT_BUCKET}/component/claims/, the prefix of "
        f"{defs / 'team_a' / 'defs.yaml'}: export 'claims' (exports[0])"
    ) in error_messages(failure.value)

    shared = {"defaults": {**DESTINATION, "path": "component/claims"}}
    write_instance(defs / "team_b", instance_document(AWKWARD_WITHOUT_PATH, **shared))
    with pytest.raises(Exception) as failure:
        load_project(tmp_path, monkeypatch)
    assert (
        f"{defs / 'team_b' / 'defs.yaml'}: export 'awkward' (exports[0]): field 'path': "
        f"s3://{EXPORT_BUCKET}/component/claims/ is also the prefix of "
        f"{defs / 'team_a' / 'defs.yaml'}: export 'claims' (exports[0]) ('awkward' takes its "
        "path from defaults)"
    ) in error_messages(failure.value)

    # Given a prefix of its own, the same project loads in the same process: the refused
    # loads left no claim behind.
    write_instance(defs / "team_b", instance_document(AWKWARD))
    keys = {
        s.key.to_user_string()
        for s in load_project(tmp_path, monkeypatch).resolve_all_asset_specs()
    }
    assert {"claims", "awkward"} <= keys


def test_two_projects_in_one_process_may_reuse_a_prefix(
    domo_env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two dg projects are two code locations: only instances of one project are compared."""
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        write_project(tmp_path / name, {"lake": instance_document(CLAIMS)})
        defs = load_project(tmp_path / name, monkeypatch)
        assert dg.AssetKey("claims") in {s.key for s in defs.resolve_all_asset_specs()}


# --- the dg CLI -----------------------------------------------------------------------------


def dg_env(sandbox: Sandbox, home: Path) -> dict[str, str]:
    """The environment of a dg subprocess: the sandbox's variables and a fresh DAGSTER_HOME."""
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text(INSTANCE_YAML, encoding="utf-8")
    env = {**os.environ, **sandbox.env(), "DAGSTER_HOME": str(home)}
    env.pop("DOMO_EXPORTS_FILE", None)  # the dg project needs no catalog file
    return env


def dg_command(*args: str) -> list[str]:
    """The dg executable of this interpreter's environment, with arguments."""
    executable = Path(sys.executable).with_name("dg")
    return [str(executable) if executable.exists() else "dg", *args]


def run_dg(
    cwd: Path, env: Mapping[str, str], *args: str, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``dg <args>`` in `cwd`; when `ok`, fail the test unless it succeeds."""
    done = subprocess.run(
        dg_command(*args),
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
    )
    if ok:
        assert done.returncode == 0, (
            f"dg {' '.join(args)}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    return done


def json_output(done: subprocess.CompletedProcess[str]) -> Any:
    """The JSON document a ``--json`` command printed (after any log lines)."""
    text = done.stdout
    return json.loads(text[text.index("{") :])


@pytest.mark.slow
def test_dg_lists_scaffolds_checks_and_launches_the_component(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    module = write_project(project)
    env = dg_env(sandbox, tmp_path / "dagster_home")

    listed = json_output(run_dg(project, env, "list", "components", "--json"))
    assert COMPONENT_TYPE in {item["key"] for item in listed["items"]}

    params = {"name": "claims", "dataset_id": PHARMACY_CLAIMS_ID, "bucket": EXPORT_BUCKET}
    run_dg(
        project,
        env,
        *("scaffold", "defs", COMPONENT_TYPE, "my_exports", "--json-params", json.dumps(params)),
    )
    defs_yaml = project / module / "defs" / "my_exports" / "defs.yaml"
    text = defs_yaml.read_text(encoding="utf-8")
    assert '    developer_token: "{{ env.DOMO_DEVELOPER_TOKEN }}"\n' in text
    assert "  # The Domo connection. Secrets come from the environment" in text

    run_dg(project, env, "check", "yaml")
    run_dg(project, env, "check", "defs")
    listed_defs = json_output(run_dg(project, env, "list", "defs", "--json"))
    assert {a["asset_key"] for a in listed_defs["assets"]} == {
        "claims",
        "domo/my_dataset_dataset",
    }
    assert [s["name"] for s in listed_defs["sensors"]] == ["my_exports__domo_dataset_change_sensor"]

    run_dg(project, env, "launch", "--assets", "claims")
    assert exported_paths(sandbox) == {"domo/claims"}
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        (run,) = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.SUCCESS
        stored = stored_text(instance, run.run_id)
    assert exporting_users(sandbox) == {ANALYST}
    assert sandbox.token not in stored
    assert sandbox.token not in json.dumps(listed_defs)

    defs_yaml.write_text(text_with_typo(defs_yaml), encoding="utf-8")
    failed = run_dg(project, env, "check", "yaml", ok=False)
    assert failed.returncode != 0
    assert (
        f"{defs_yaml}:{typo_line(defs_yaml)} - {COMPONENT_TYPE} attributes.exports.0.regoin "
        "Additional properties are not allowed ('regoin' was unexpected)"
    ) in _plain(failed.stdout + failed.stderr)


@pytest.mark.slow
def test_dg_check_defs_and_definitions_validate_refuse_overlapping_prefixes(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    nested = instance_document({**ORDERS, "path": "component/claims/orders"})
    module = write_project(project, {"team_a": instance_document(CLAIMS), "team_b": nested})
    defs = project / module / "defs"
    env = dg_env(sandbox, tmp_path / "dagster_home")

    failed = run_dg(project, env, "check", "defs", ok=False)
    assert failed.returncode != 0
    assert (
        f"{defs / 'team_b' / 'defs.yaml'}: export 'orders_regions' (exports[0]): field 'path': "
        f"s3://{EXPORT_BUCKET}/component/claims/orders/ lies inside "
        f"s3://{EXPORT_BUCKET}/component/claims/"
    ) in failed.stdout + failed.stderr

    # A classic catalog (DOMO_EXPORTS_FILE) loaded beside the instances in one code location.
    (defs / "team_b" / "defs.yaml").unlink()
    (defs / "team_b").rmdir()
    (defs / "classic.py").write_text(CLASSIC_PY, encoding="utf-8")
    catalog = tmp_path / "classic.yaml"
    catalog.write_text(
        yaml.safe_dump({"defaults": DESTINATION, "exports": [{**AWKWARD, "path": "component"}]}),
        encoding="utf-8",
    )
    validate = validate_definitions(project, module, env, catalog)
    assert validate.returncode != 0
    assert (
        f"s3://{EXPORT_BUCKET}/component/claims/ lies inside s3://{EXPORT_BUCKET}/component/"
    ) in validate.stdout + validate.stderr
    assert f"{catalog}: export 'awkward' (exports[0])" in validate.stdout + validate.stderr
    assert sandbox.control.exports() == []


def _pythonpath(*folders: Path) -> str:
    """PYTHONPATH with `folders` first, then the current one."""
    return os.pathsep.join([*map(str, folders), *filter(None, [os.environ.get("PYTHONPATH")])])


def validate_definitions(
    project: Path, module: str, env: dict[str, str], catalog: Path
) -> subprocess.CompletedProcess[str]:
    """``dagster definitions validate`` of the project's definitions, with the classic catalog
    (``CLASSIC_PY``) reading ``catalog``."""
    return subprocess.run(
        [*DAGSTER, "definitions", "validate", "-m", f"{module}.definitions"],
        cwd=project,
        env={**env, "DOMO_EXPORTS_FILE": str(catalog), "PYTHONPATH": _pythonpath(project)},
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
    )


def typo_line(defs_yaml: Path, key: str = "regoin") -> int:
    """The line of a misspelt key (by default the one `text_with_typo` wrote; 1-based)."""
    lines = defs_yaml.read_text(encoding="utf-8").splitlines()
    return next(number for number, line in enumerate(lines, 1) if f"{key}:" in line)


def _plain(text: str) -> str:
    """`text` without terminal colour codes (dg colours file names and locations)."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def text_with_typo(defs_yaml: Path) -> str:
    """The scaffolded defs.yaml with a misspelt key in its export."""
    text = defs_yaml.read_text(encoding="utf-8")
    return text.replace("      path: domo/claims\n", "      path: domo/claims\n      regoin: eu\n")


@pytest.mark.slow
def test_the_repositorys_dg_project_checks_lists_and_serves(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    env = dg_env(sandbox, tmp_path / "dagster_home")
    expected = load_catalog(DEMO_PARTITIONED_CATALOG)

    run_dg(DEV_PROJECT, env, "check", "yaml")
    run_dg(DEV_PROJECT, env, "check", "defs")
    listed = json_output(run_dg(DEV_PROJECT, env, "list", "defs", "--json"))

    keys = {a["asset_key"] for a in listed["assets"]}
    assert {e.name for e in expected.exports} <= keys
    parquet = {f"{e.name}_parquet" for e in expected.exports if e.parquet}
    consumers = {"awkward_values_report"}  # the demo's downstream asset (defs/awkward_report)
    assert {k for k in keys if not k.startswith("domo/")} == (
        {e.name for e in expected.exports} | parquet | consumers
    )
    assert [s["name"] for s in listed["sensors"]] == ["demo_exports__domo_dataset_change_sensor"]
    assert all(s["name"].startswith("demo_exports__") for s in listed["schedules"])
    assert listed["schedules"]

    with serving_dg_dev(env, tmp_path) as graphql:
        assert location_loaded(graphql, "domo_assets_dev")


@contextmanager
def serving_dg_dev(env: Mapping[str, str], log_dir: Path) -> Iterator[GraphQL]:
    """``dg dev`` on the repository's dg project, on a free loopback port, until the block ends
    (then its whole process group is stopped); yields a client of its webserver."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = dg_command(
        "dev", "--target-path", str(DEV_PROJECT), "-h", "127.0.0.1", "-p", str(port)
    )
    with Processes(log_dir) as processes, requests.Session() as session:
        session.trust_env = False
        processes.start("dg-dev", command, env, cwd=REPO)
        graphql = GraphQL(f"{url}/graphql", session, GRAPHQL_TIMEOUT_SECONDS)
        wait_until(
            lambda: _answers(session, f"{url}/server_info"),
            "dg dev's webserver",
            DEV_STARTUP_SECONDS,
            processes,
        )
        wait_until(
            lambda: location_loaded(graphql, "domo_assets_dev"),
            "code location domo_assets_dev",
            DEV_STARTUP_SECONDS,
            processes,
        )
        yield graphql


def _answers(session: requests.Session, url: str) -> bool:
    try:
        return session.get(url, timeout=5).ok
    except requests.RequestException:
        return False
