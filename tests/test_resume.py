"""Resume across processes: a killed ``dagster asset materialize`` leaves its Domo export
running, and the next process of the same Dagster instance attaches to it.

Each test runs the real CLI twice against the sandbox. The first process starts a slow export;
as soon as Domo accepted the POST and the start is recorded in the instance (an
``AssetObservation`` of the asset, see ``domo_assets/ledger.py``), its whole process group is
killed with SIGKILL, so nothing of it can finish the export or tidy up. The second process,
started while Domo still runs that export, must attach to it rather than POST another: one
export POST in all, and a materialization with ``start_outcome: attached``. Once on the SQLite
storage of a plain ``DAGSTER_HOME``, once on the deployment's PostgreSQL storage
(deployment/dagster.yaml) on a throwaway cluster.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, DagsterRunStatus
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster_postgres import PostgresEventLogStorage
from domo_assets_dev.sandbox import PHARMACY_CLAIMS_ID, Sandbox
from servers import (
    KILL_WAIT_SECONDS,
    Postgres,
    Process,
    Processes,
    wait_until,
)
from support import DESTINATION, deployment_storage, export_posts, write_catalog

TELEMETRY_OFF = {"telemetry": {"enabled": False}}

ASSET_NAME = "pharmacy_claims"
ASSET_KEY = AssetKey(ASSET_NAME)
CLAIMS = {
    "name": ASSET_NAME,
    "dataset_id": PHARMACY_CLAIMS_ID,
    "dataset_name": "Pharmacy Claims",
    "path": "t/claims",
    **DESTINATION,
}
MATERIALIZE_COMMAND = (
    sys.executable,
    *("-m", "dagster", "asset", "materialize"),
    *("-m", "domo_assets.definitions", "--select", ASSET_NAME),
)
# The documented keys of the start observation (domo_assets/ledger.py).
STARTED_EXPORT_KEY = "domo/started_export_id"
REQUEST_KEY = "domo/request"
RUN_ID_KEY = "domo/run_id"

# The export must outlast the second process's CLI start-up (several seconds here, more on a
# loaded machine) so that it finds it still running; not much more, since the test waits for it.
EXPORT_SECONDS = 20.0
# Bounds: until the first process's export is accepted and recorded (one CLI start-up), and
# until the second process ends (a start-up, the rest of the export, polling and checks).
START_TIMEOUT_SECONDS = 90.0
SECOND_RUN_TIMEOUT_SECONDS = 120.0
POLL_SECONDS = 0.1

pytestmark = pytest.mark.slow


# --- helpers ----------------------------------------------------------------------------------


def dagster_home(tmp_path: Path, config: Mapping[str, Any]) -> Path:
    """A ``DAGSTER_HOME`` in `tmp_path` whose dagster.yaml is `config`."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(dict(config)), encoding="utf-8")
    return home


def cli_env(sandbox: Sandbox, home: Path, catalog: str, extra: Mapping[str, str]) -> dict[str, str]:
    """The CLI's environment: this one without Dagster, Domo or AWS settings of its own, then
    the sandbox's, the instance's home, the catalog and `extra` (e.g. DAGSTER_PG_*)."""
    base = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DAGSTER_", "DOMO_", "AWS_"))
    }
    return {
        **base,
        **sandbox.env(),
        **extra,
        "DAGSTER_HOME": str(home),
        "DOMO_EXPORTS_FILE": catalog,
        "PYTHONUNBUFFERED": "1",
    }


def start_materialize(processes: Processes, name: str, env: Mapping[str, str]) -> Process:
    """Start ``dagster asset materialize --select pharmacy_claims`` leading its own process
    group (the CLI runs the step in a child process), logging to ``<name>.log``."""
    return processes.start(name, MATERIALIZE_COMMAND, env)


def kill_group(process: Process) -> None:
    """SIGKILL the process's whole group, as a crash or an OOM kill would, and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.popen.pid, signal.SIGKILL)
    process.popen.wait(timeout=KILL_WAIT_SECONDS)


def wait_to_end(process: Process, timeout: float) -> int:
    """Wait for `process` to exit; its return code (fails with its output after `timeout`)."""
    try:
        return process.popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{process.name} still running after {timeout:.0f} s:\n{process.report()}")


def started_export(instance: DagsterInstance, export_id: str) -> dict[str, Any] | None:
    """The metadata of the asset's latest observation if it records the start of `export_id`."""
    records = instance.fetch_observations(AssetRecordsFilter(asset_key=ASSET_KEY), limit=1)
    for record in records.records:
        observation = record.asset_observation
        if observation is None:
            return None
        metadata = {key: value.value for key, value in observation.metadata.items()}
        if metadata.get(STARTED_EXPORT_KEY) != export_id:
            return None
        return {**metadata, "description": observation.description}
    return None


def sole_export_id(sandbox: Sandbox) -> str | None:
    """The id of the DataSet's export once Domo has accepted one."""
    exports = sandbox.control.exports(dataset_id=PHARMACY_CLAIMS_ID)
    return exports[0]["export_id"] if exports else None


def latest_materialization(home: Path) -> tuple[str, dict[str, Any]]:
    """The run and metadata of the asset's latest materialization, read by a fresh instance."""
    with DagsterInstance.from_config(str(home)) as instance:
        records = instance.fetch_materializations(AssetRecordsFilter(asset_key=ASSET_KEY), limit=1)
        assert records.records, f"{ASSET_NAME} was never materialized"
        record = records.records[0]
        assert record.asset_materialization is not None
        metadata = record.asset_materialization.metadata
        return record.run_id, {key: value.value for key, value in metadata.items()}


def run_messages(home: Path, run_id: str) -> list[str]:
    """The log messages of one run, read by a fresh instance."""
    with DagsterInstance.from_config(str(home)) as instance:
        return [entry.user_message or "" for entry in instance.all_logs(run_id)]


# --- the scenario -----------------------------------------------------------------------------


def assert_second_process_attaches(
    sandbox: Sandbox,
    tmp_path: Path,
    home: Path,
    extra_env: Mapping[str, str],
    event_log_storage: type,
) -> None:
    """Materialize in a process killed once its export is accepted and recorded, then in a
    second process: the second attaches to the first's export, still running in Domo.

    Args:
        sandbox: The running sandbox.
        tmp_path: Where the catalog and the processes' logs go.
        home: The instance's DAGSTER_HOME.
        extra_env: More environment for the CLI (the storage's settings).
        event_log_storage: The event-log storage class the instance must have.
    """
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, export_seconds=EXPORT_SECONDS)
    env = cli_env(sandbox, home, write_catalog(tmp_path, CLAIMS).source, extra_env)
    # Opened (storage created or migrated) before any CLI process, so none races to do it.
    with DagsterInstance.from_config(str(home)) as instance, Processes(tmp_path) as processes:
        assert isinstance(instance.event_log_storage, event_log_storage), instance
        first = start_materialize(processes, "first-materialize", env)
        export_id = wait_until(
            lambda: sole_export_id(sandbox),
            "Domo to accept the first process's export POST",
            START_TIMEOUT_SECONDS,
            processes,
            POLL_SECONDS,
        )
        record = wait_until(
            lambda: started_export(instance, export_id),
            f"the start observation of export {export_id} in the instance",
            START_TIMEOUT_SECONDS,
            processes,
            POLL_SECONDS,
        )
        kill_group(first)
        (first_run,) = instance.get_runs()

        second = start_materialize(processes, "second-materialize", env)
        returncode = wait_to_end(second, SECOND_RUN_TIMEOUT_SECONDS)
        output = processes.diagnostics()
        assert returncode == 0, f"the second process failed:\n{output}"
        first_status = instance.get_run_by_id(first_run.run_id).status
    # Killed, not shut down: the first run never got to end, let alone to materialize.
    assert first_status is DagsterRunStatus.STARTED, f"first run {first_status}\n{output}"
    assert record["description"] == f"Domo export {export_id} started", record
    assert record[RUN_ID_KEY] == first_run.run_id and record[REQUEST_KEY], record

    posts = export_posts(sandbox.control, PHARMACY_CLAIMS_ID)
    assert len(posts) == 1, f"expected one export POST, got {posts}\n{output}"
    exports = sandbox.control.exports(dataset_id=PHARMACY_CLAIMS_ID)
    assert [e["export_id"] for e in exports] == [export_id], f"{exports}\n{output}"
    assert exports[0]["status"] == "success", f"{exports[0]}\n{output}"

    run_id, metadata = latest_materialization(home)
    assert run_id != first_run.run_id, f"materialized by the killed run?\n{output}"
    assert metadata["start_outcome"] == "attached", f"{metadata}\n{output}"
    assert metadata["export_id"] == export_id, f"{metadata}\n{output}"
    folder = f"{CLAIMS['path']}/{export_id}/"
    assert metadata["verified_location"] == f"s3://{CLAIMS['bucket']}/{folder}", metadata
    keys = exports[0]["object_keys"]
    assert keys and all(key.startswith(folder) for key in keys), keys
    # Attached while Domo still ran it, not after it ended unwatched (the other path to
    # "attached", which a slow start-up of the second process would take instead).
    attached = f"attaching to Domo export {export_id}, started for this asset earlier"
    lines = [m for m in run_messages(home, run_id) if attached in m]
    assert lines and "(still running)" in lines[0], (
        f"the second process did not find export {export_id} still running: {lines}. If its "
        f"start-up (timestamps below) outlasted the export, raise EXPORT_SECONDS "
        f"({EXPORT_SECONDS:.0f} s).\n{output}"
    )


# --- the tests --------------------------------------------------------------------------------


def test_second_process_attaches_on_sqlite(sandbox: Sandbox, tmp_path: Path) -> None:
    """A plain DAGSTER_HOME (SQLite storage): the killed process's export is resumed."""
    home = dagster_home(tmp_path, TELEMETRY_OFF)
    assert_second_process_attaches(sandbox, tmp_path, home, {}, SqliteEventLogStorage)


@pytest.mark.deployment
def test_second_process_attaches_on_postgres(
    sandbox: Sandbox, postgres: Postgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deployment's storage (PostgreSQL, from DAGSTER_PG_*): the same."""
    home = dagster_home(tmp_path, {"storage": deployment_storage(), **TELEMETRY_OFF})
    # This process opens the instance too, and the storage reads DAGSTER_PG_* when it loads.
    for name, value in postgres.env().items():
        monkeypatch.setenv(name, value)
    assert_second_process_attaches(sandbox, tmp_path, home, postgres.env(), PostgresEventLogStorage)
