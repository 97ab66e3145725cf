"""Fan-out: many exports in one step, each with its own materialization and checks (not timed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance
from domo_assets_dev.sandbox import Sandbox
from support import (
    check_outcomes,
    domo_resource,
    failure_text,
    log_messages,
    materializations,
    materialize_catalog,
    write_catalog,
)

from domo_assets.catalog import Catalog

EXPORTS = 10
EXPORT_PATH = "/api/query/v1/export/"


@pytest.fixture
def instance():
    with DagsterInstance.ephemeral() as instance:
        yield instance


def fanout_catalog(tmp_path: Path, dataset_ids: Sequence[str]) -> Catalog:
    return write_catalog(
        tmp_path,
        *(
            {"name": f"fan_{i}", "dataset_id": dataset_id, "path": f"t/fan_{i}"}
            for i, dataset_id in enumerate(dataset_ids)
        ),
    )


def materialize_all_at_once(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path, dataset_ids: Sequence[str]
) -> Any:
    """One run exporting each DataSet once, every export driven at the same time."""
    return materialize_catalog(
        fanout_catalog(tmp_path, dataset_ids),
        instance,
        domo_resource(sandbox, max_concurrent_exports=len(dataset_ids)),
    )


def most_at_once(exports: Sequence[dict[str, Any]]) -> int:
    """The most exports Domo was running at the same moment."""
    edges = sorted(
        [(e["created"], 1) for e in exports] + [(e["finished"], -1) for e in exports],
        key=lambda edge: (edge[0], edge[1]),
    )
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def test_every_export_gets_its_own_results_and_a_failure_hides_none(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path
) -> None:
    ids = sandbox.control.add_synthetic_datasets(EXPORTS)
    sandbox.control.set_behaviour(ids[3], export_outcome="error")

    result = materialize_all_at_once(sandbox, instance, tmp_path, ids)

    assert not result.success
    found = materializations(result)
    assert set(found) == {f"fan_{i}" for i in range(EXPORTS)} - {"fan_3"}
    assert len({m["export_id"] for m in found.values()}) == EXPORTS - 1
    checks = check_outcomes(result)
    assert len(checks) == 3 * (EXPORTS - 1) and all(checks.values())
    assert "1 of 10 Domo export(s) failed" in failure_text(result)
    assert "fan_3" in failure_text(result)


def test_exports_run_concurrently_up_to_the_cap(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path
) -> None:
    ids = sandbox.control.add_synthetic_datasets(EXPORTS)
    for dataset_id in ids:
        sandbox.control.set_behaviour(dataset_id, export_seconds=0.5)
    catalog = fanout_catalog(tmp_path, ids)

    wide = materialize_catalog(catalog, instance, domo_resource(sandbox, max_concurrent_exports=10))
    wide_exports = sandbox.control.exports()
    sandbox.control.reset()
    sandbox.control.add_synthetic_datasets(EXPORTS)
    for dataset_id in ids:
        sandbox.control.set_behaviour(dataset_id, export_seconds=0.5)
    narrow = materialize_catalog(
        catalog, instance, domo_resource(sandbox, max_concurrent_exports=2)
    )

    assert wide.success and narrow.success
    assert most_at_once(wide_exports) > 2
    assert most_at_once(sandbox.control.exports()) <= 2


def test_each_export_lists_the_datasets_exports_once_before_posting(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path
) -> None:
    ids = sandbox.control.add_synthetic_datasets(EXPORTS)

    result = materialize_all_at_once(sandbox, instance, tmp_path, ids)

    assert result.success
    requests = sandbox.control.requests()
    for dataset_id in ids:
        calls = [(r["method"], r["path"]) for r in requests if dataset_id in r["path"]]
        export_calls = [method for method, path in calls if EXPORT_PATH in path]
        post = export_calls.index("POST")
        assert export_calls[:post] == ["GET"], f"{dataset_id}: {calls}"
    assert sum(1 for r in requests if r["path"].endswith("/users/me")) == 1


def test_start_lines_are_logged_together_naming_every_export(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path
) -> None:
    ids = sandbox.control.add_synthetic_datasets(EXPORTS)

    result = materialize_all_at_once(sandbox, instance, tmp_path, ids)

    assert result.success
    started = [m for m in log_messages(instance, result) if "Domo export" in m and "started" in m]
    text = "\n".join(started)
    for name, found in materializations(result).items():
        assert f"{name}: Domo export {found['export_id']} started" in text
    # Ten exports starting within moments: a few stored events, not one each.
    assert len(started) < EXPORTS, started
