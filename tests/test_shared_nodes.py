"""No collisions: component instances and a classic catalog that export one Domo DataSet share
its DataSet node (one key, defined once, observed by the catalog built first), and the project
loads; ``dg check defs`` and ``dg list defs`` show one node with every export downstream.

Real dg projects, real runs against the sandbox, the dg and dagster CLIs as subprocesses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from domo_assets_dev.sandbox import Sandbox
from support import caused_by, error_messages
from test_component import (
    CLAIMS,
    CLASSIC_PY,
    DESTINATION,
    _pythonpath,
    dg_env,
    domo_env,  # noqa: F401 (a fixture)
    exported_paths,
    instance_document,
    json_output,
    load_project,
    materialize,
    op_names,
    run_dg,
    validate_definitions,
    write_project,
)

from domo_assets.catalog import CatalogError

NODE = "domo/pharmacy_claims_dataset"
TEAM_A = {**CLAIMS, "name": "claims_a", "path": "shared/a/claims"}
TEAM_B = {**CLAIMS, "name": "claims_b", "path": "shared/b/claims"}
CLASSIC = {**CLAIMS, "name": "claims_classic", "path": "shared/classic/claims"}


def two_instances(root: Path, **b_settings: Any) -> str:
    """A project whose instances team_a and team_b export the Pharmacy Claims DataSet."""
    return write_project(
        root,
        {
            "team_a": instance_document(TEAM_A),
            "team_b": instance_document({**TEAM_B, **b_settings}),
        },
    )


def with_classic_catalog(root: Path, module: str, folder: Path) -> Path:
    """Add a defs module loading the classic catalog (DOMO_EXPORTS_FILE), which exports the same
    DataSet; returns the catalog file to point the variable at."""
    (root / module / "defs" / "classic.py").write_text(CLASSIC_PY, encoding="utf-8")
    catalog = folder / "classic.yaml"
    document = {"defaults": DESTINATION, "exports": [CLASSIC]}
    catalog.write_text(yaml.safe_dump(document), encoding="utf-8")
    return catalog


def test_two_instances_exporting_one_dataset_share_its_node_and_both_export(
    domo_env: Sandbox,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    instance: dg.DagsterInstance,
) -> None:
    two_instances(tmp_path)

    defs = load_project(tmp_path, monkeypatch)

    specs = {spec.key: spec for spec in defs.resolve_all_asset_specs()}
    node = dg.AssetKey.from_user_string(NODE)
    assert [k for k in specs if k.path[0] == "domo"] == [node]
    for name in ("claims_a", "claims_b"):
        assert {dep.asset_key for dep in specs[dg.AssetKey(name)].deps} == {node}
    # One observation op defines the node: the instance built first.
    observers = {name for name in op_names(defs) if name.endswith("__domo_datasets")}
    assert len(observers) == 1, observers

    result = materialize(defs, instance, [dg.AssetKey("claims_a"), dg.AssetKey("claims_b")])

    assert result.success
    assert exported_paths(domo_env) == {TEAM_A["path"], TEAM_B["path"]}


def test_a_shared_node_with_another_spec_fails_the_load_naming_both_instances(
    domo_env: Sandbox,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A node is defined once, so both catalogs must describe it alike: a different group
    fails the load naming both defs.yaml files, the node and what differs."""
    module = two_instances(tmp_path, group="team_b")
    defs = tmp_path / module / "defs"

    with pytest.raises(Exception) as failure:
        load_project(tmp_path, monkeypatch)

    assert caused_by(failure.value, CatalogError)
    text = error_messages(failure.value)
    assert f"DataSet node {NODE} is also defined by" in text
    assert str(defs / "team_a" / "defs.yaml") in text
    assert str(defs / "team_b" / "defs.yaml") in text
    assert "with a different group_name" in text


@pytest.mark.slow
def test_dg_checks_and_lists_one_node_for_instances_and_a_classic_catalog(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """`dg check defs` passes and `dg list defs` lists the DataSet node once, with both
    instances' exports depending on it; with a classic catalog exporting it too, `dagster
    definitions validate` and `dg list defs` load it once as well."""
    project = tmp_path / "project"
    project.mkdir()
    module = two_instances(project)
    env = dg_env(sandbox, tmp_path / "dagster_home")

    run_dg(project, env, "check", "defs")
    listed = json_output(run_dg(project, env, "list", "defs", "--json"))

    assert [a["asset_key"] for a in listed["assets"]].count(NODE) == 1
    assert _downstream_of(listed, NODE) == {"claims_a", "claims_b"}

    catalog = with_classic_catalog(project, module, tmp_path)
    classic_env = {**env, "DOMO_EXPORTS_FILE": str(catalog), "PYTHONPATH": _pythonpath(project)}
    validate = validate_definitions(project, module, env, catalog)
    assert validate.returncode == 0, validate.stdout[-3000:] + validate.stderr[-3000:]
    listed = json_output(run_dg(project, classic_env, "list", "defs", "--json"))
    assert [a["asset_key"] for a in listed["assets"]].count(NODE) == 1
    assert _downstream_of(listed, NODE) == {"claims_a", "claims_b", "claims_classic"}
    assert sandbox.control.exports() == []


def _downstream_of(listed: dict[str, Any], key: str) -> set[str]:
    """The assets `dg list defs --json` lists as depending on `key`."""
    return {a["asset_key"] for a in listed["assets"] if key in a.get("dependency_keys", [])}
