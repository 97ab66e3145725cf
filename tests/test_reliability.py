"""Reliability: exactly one export per request under faults, retries, re-execution and concurrency."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    AssetCheckKey,
    AssetKey,
    AssetObservation,
    AssetRecordsFilter,
    DagsterInstance,
    RetryPolicy,
)
from domo_assets_dev.sandbox import EXPORT_BUCKET, PHARMACY_CLAIMS_ID, SAMPLE_DATASETS, Sandbox
from support import (
    dataset_key,
    domo_resource,
    export_posts,
    failure_text,
    log_messages,
    materialize_catalog,
    metadata_of,
    read_json,
    write_catalog,
)

from domo_assets.assets import DOMO_POOL, build_export_assets
from domo_assets.catalog import Catalog
from domo_assets.dagster_names import DATA_VERSION_TAG
from domo_assets.domo.auth import DeveloperTokenAuth
from domo_assets.domo.client import DomoClient
from domo_assets.domo.models import AwsCredentials, ExportRequest
from domo_assets.resource import S3ReaderResource
from domo_assets.sightings import FIRST_SEEN_KEY
from domo_assets.translator import translate

EXPORT_PATH = "/api/query/v1/export/"
CLAIMS = {"name": "claims", "dataset_id": PHARMACY_CLAIMS_ID, "path": "rel/claims"}
STALE_SECONDS = 2.0


def run(
    catalog: Catalog, sandbox: Sandbox, instance: DagsterInstance, retry_policy=None, **settings
):
    return materialize_catalog(
        catalog, instance, domo_resource(sandbox, **settings), retry_policy=retry_policy
    )


# -- attach, don't duplicate --------------------------------------------------------------------


def test_reexecuted_run_resumes_the_export_it_started(
    sandbox: Sandbox, instance, tmp_path: Path
) -> None:
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, export_seconds=3)
    catalog = write_catalog(tmp_path, CLAIMS)
    first = run(catalog, sandbox, instance, poll_timeout=0.5)
    assert not first.success
    second = run(catalog, sandbox, instance)
    assert second.success
    assert metadata_of(second, "claims")["start_outcome"] == "attached"
    assert sandbox.control.export_count(PHARMACY_CLAIMS_ID) == 1


def test_export_that_finished_unwatched_is_attached_to_not_redone(
    sandbox: Sandbox, instance, tmp_path: Path, domo_mode: str
) -> None:
    """The first run gives up while Domo still exports; Domo then finishes with no run
    watching. The next run reads the ledger (Domo lists a successful export newer than the
    DataSet's last change, which could be this asset's own) and takes that export: no second
    POST, and the run says the export finished while no run watched it."""
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, export_seconds=1)
    catalog = write_catalog(tmp_path, CLAIMS)
    first = run(catalog, sandbox, instance, poll_timeout=0.3)
    assert not first.success
    (export,) = sandbox.control.exports(dataset_id=PHARMACY_CLAIMS_ID)
    sandbox.control.wait_for_export(export["export_id"])
    second = run(catalog, sandbox, instance)
    assert second.success, failure_text(second)
    assert metadata_of(second, "claims")["start_outcome"] == "attached"
    assert metadata_of(second, "claims")["export_id"] == export["export_id"]
    assert sandbox.control.export_count(PHARMACY_CLAIMS_ID) == 1
    lines = log_messages(instance, second)
    assert any(
        f"attaching to Domo export {export['export_id']}" in line
        and "(finished while no run watched it)" in line
        for line in lines
    ), lines


def test_retried_step_attaches_to_the_export_it_started(
    sandbox: Sandbox, instance, tmp_path: Path
) -> None:
    """A status read fails for good (no client retry left) while the export runs: the step is
    retried by its RetryPolicy and the new attempt attaches instead of posting again."""
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, export_seconds=3)
    catalog = write_catalog(tmp_path, CLAIMS)

    def fail_one_status_read_once_exporting() -> None:
        deadline = time.monotonic() + 30
        while sandbox.control.export_count(PHARMACY_CLAIMS_ID) == 0:
            assert time.monotonic() < deadline, "the export never started"
            time.sleep(0.02)
        sandbox.control.add_fault(method="GET", path_regex=EXPORT_PATH, status=503, times=1)

    injector = threading.Thread(target=fail_one_status_read_once_exporting)
    injector.start()
    result = run(catalog, sandbox, instance, retry_policy=RetryPolicy(max_retries=1), max_retries=0)
    injector.join()
    assert result.success, failure_text(result)
    assert any(e.event_type_value == "STEP_RESTARTED" for e in result.all_events), (
        "the step must have been retried"
    )
    assert metadata_of(result, "claims")["start_outcome"] == "attached"
    assert sandbox.control.export_count(PHARMACY_CLAIMS_ID) == 1


def test_step_retry_redoes_only_the_failed_export(
    sandbox: Sandbox, instance, tmp_path: Path, domo_mode: str
) -> None:
    """Three exports, one ending in error: the RetryPolicy's retry exports only that one again;
    the other two keep their one POST and their one materialization, and stay in the run."""
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, export_outcome="error")
    entries = [
        CLAIMS,
        {"name": "orders", "dataset_id": SAMPLE_DATASETS["daily-orders"], "path": "rel/orders"},
        {"name": "sales", "dataset_id": SAMPLE_DATASETS["regional-sales"], "path": "rel/sales"},
    ]
    result = run(
        write_catalog(tmp_path, *entries),
        sandbox,
        instance,
        retry_policy=RetryPolicy(max_retries=1),
    )
    assert not result.success
    restarts = [e for e in result.all_events if e.event_type_value == "STEP_RESTARTED"]
    assert len(restarts) == 1, "the export error is worth one retry"
    posts = Counter(r["path"].removeprefix(EXPORT_PATH) for r in export_posts(sandbox.control))
    assert posts == {
        PHARMACY_CLAIMS_ID: 2,
        SAMPLE_DATASETS["daily-orders"]: 1,
        SAMPLE_DATASETS["regional-sales"]: 1,
    }
    materialized = [
        e.asset_key.to_user_string()
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
    ]
    assert sorted(materialized) == ["orders", "sales"], "each materialized once, in this run"
    assert any(
        "not exported again: " in m and "orders" in m and "sales" in m
        for m in log_messages(instance, result)
    )


def test_step_retry_publishes_what_an_earlier_attempt_recorded(
    sandbox: Sandbox, instance, tmp_path: Path, s3: Any
) -> None:
    """S3 fails the pointer's PUT (503 SlowDown, the S3 client's one attempt) after Dagster
    recorded the export: the step fails asking for a retry, and the RetryPolicy's retry does not
    export again but publishes the recorded export from its manifest, so the pointer names it."""
    catalog = write_catalog(tmp_path, CLAIMS)
    sandbox.control.add_s3_delay(
        method="PUT", path_regex=r"/rel/claims/_latest\.json$", delay=0, fail_status=503
    )
    domo = domo_resource(sandbox, s3=S3ReaderResource(max_attempts=1))

    result = materialize_catalog(catalog, instance, domo, retry_policy=RetryPolicy(max_retries=1))

    assert result.success, failure_text(result)
    assert [r["hits"] for r in sandbox.control.s3_delays()] == [1], "the first PUT was failed"
    restarts = [e for e in result.all_events if e.event_type_value == "STEP_RESTARTED"]
    assert len(restarts) == 1, "the failed publication asks for one retry"
    (materialized,) = [
        e for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"
    ]
    export_id = materialized.materialization.metadata["export_id"].value
    assert sandbox.control.export_count(PHARMACY_CLAIMS_ID) == 1, "not exported again"
    assert read_json(s3, f"s3://{EXPORT_BUCKET}/rel/claims/_latest.json")["export_id"] == export_id
    assert any(f"published export {export_id}" in m for m in log_messages(instance, result))


def test_permanent_failure_is_not_retried(sandbox: Sandbox, instance, tmp_path: Path) -> None:
    catalog = write_catalog(tmp_path, {**CLAIMS, "dataset_id": "no-such-dataset"})
    result = run(catalog, sandbox, instance, retry_policy=RetryPolicy(max_retries=2))
    assert not result.success
    assert not any(e.event_type_value == "STEP_RESTARTED" for e in result.all_events)
    assert "DataSet no-such-dataset" in failure_text(result)


def test_retry_does_not_redo_a_permanent_failure(
    sandbox: Sandbox, instance, tmp_path: Path
) -> None:
    """One export fails for good (an unknown DataSet), another transiently (an export error):
    the retry the second asks for does not try the first again (one metadata read, not two)."""
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, export_outcome="error")
    entries = [
        CLAIMS,
        {"name": "ghost", "dataset_id": "no-such-dataset", "path": "rel/ghost"},
    ]
    result = run(
        write_catalog(tmp_path, *entries),
        sandbox,
        instance,
        retry_policy=RetryPolicy(max_retries=1),
    )
    assert not result.success
    restarts = [e for e in result.all_events if e.event_type_value == "STEP_RESTARTED"]
    assert len(restarts) == 1, "the export error is worth one retry"
    reads = [r for r in sandbox.control.requests() if "no-such-dataset" in r["path"]]
    assert len(reads) == 1, f"the unknown DataSet was asked for again: {reads}"
    assert sandbox.control.export_count(PHARMACY_CLAIMS_ID) == 2
    assert "ghost: not tried again" in failure_text(result)


def test_a_refused_export_leaves_the_previous_materialization_green(
    sandbox: Sandbox, instance, tmp_path: Path
) -> None:
    """A verification that fails records no check result: Dagster would pin it to the previous,
    good materialization, which would then show red. The failure names each failed check."""
    catalog = write_catalog(tmp_path, CLAIMS)
    good = run(catalog, sandbox, instance)
    assert good.success, failure_text(good)
    sandbox.control.change_dataset(PHARMACY_CLAIMS_ID)
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, misreport_rows=3)
    refused = run(catalog, sandbox, instance)
    assert not refused.success
    assert "check row_count failed" in failure_text(refused)
    assert not [e for e in refused.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    key = AssetKey("claims")
    for check in ("row_count", "s3_objects", "header"):
        history = instance.event_log_storage.get_asset_check_execution_history(
            AssetCheckKey(key, check), limit=5
        )
        statuses = {e.run_id: e.status.value for e in history}
        # The good run's result stands; the refused run's check never evaluated (planned in a
        # failed run: "execution failed" in the UI), so no verdict is pinned to the good export.
        assert statuses[good.run_id] == "SUCCEEDED"
        assert statuses[refused.run_id] in {"PLANNED", "EXECUTION_FAILED"}


# -- bounded waits -------------------------------------------------------------------------------


def test_poll_timeout_bounds_an_export_across_attempts_and_runs(
    sandbox: Sandbox, instance, tmp_path: Path
) -> None:
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, export_outcome="stuck")
    catalog = write_catalog(tmp_path, CLAIMS)
    first = run(
        catalog, sandbox, instance, retry_policy=RetryPolicy(max_retries=2), poll_timeout=1.5
    )
    assert not first.success
    assert not any(e.event_type_value == "STEP_RESTARTED" for e in first.all_events), (
        "a spent wait is not retried: the next attempt would wait again"
    )
    (stuck,) = sandbox.control.exports(dataset_id=PHARMACY_CLAIMS_ID)
    assert stuck["export_id"] in failure_text(first)
    time.sleep(0.5)
    second = run(catalog, sandbox, instance, poll_timeout=1.5)
    text = failure_text(second)
    assert not second.success
    assert f"Domo export {stuck['export_id']}" in text and "after it started" in text
    assert sandbox.control.export_count(PHARMACY_CLAIMS_ID) == 1, "attached, not posted again"
    messages = "\n".join(log_messages(instance, first) + log_messages(instance, second))
    assert " ended" not in messages, "the log never says a timed-out export ended"


def test_stale_and_malformed_history_does_not_hold_an_export(
    sandbox: Sandbox, instance, tmp_path: Path
) -> None:
    ghost = sandbox.control.add_history(PHARMACY_CLAIMS_ID, "stale_exporting", age_seconds=259200)
    malformed = sandbox.control.add_history(PHARMACY_CLAIMS_ID, "malformed")
    result = run(write_catalog(tmp_path, CLAIMS), sandbox, instance)
    assert result.success, failure_text(result)
    assert metadata_of(result, "claims")["start_outcome"] == "started"
    messages = "\n".join(log_messages(instance, result))
    assert f"not waiting for export {ghost[0]}" in messages and "3 d" in messages
    assert "waiting for it to end" not in messages
    # The CANCELLED entry parses (an unknown status: finished, never running); the entries with
    # a null row count and an unreadable time are ignored, each with one warning naming it.
    ignored = [m for m in log_messages(instance, result) if m.startswith("Ignoring entry")]
    assert len(ignored) == 2, ignored
    assert all(any(export_id in m for m in ignored) for export_id in malformed[1:]), ignored


def test_undated_history_is_stale_from_when_it_was_first_seen(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path
) -> None:
    """Entries Domo lists as running without a start time (one ``EXPORTING``, one without any
    status, read as queued): their age counts from when a run first saw them. The first run
    waits for them only until that age passes ``stale_export_after``; the sighting is kept in
    the instance, on the DataSet's node (its data version unchanged), so a later run of another
    instance object on the same DAGSTER_HOME leaves them aside at once."""
    ghosts = sandbox.control.add_history(
        PHARMACY_CLAIMS_ID,
        entries=[
            {"exportId": "ghost-exporting", "exportStatus": "EXPORTING"},
            {"exportId": "ghost-without-status"},
        ],
    )
    catalog = write_catalog(tmp_path, CLAIMS)
    node = dataset_key(catalog.exports[0])
    # The DataSet's version as the change sensor would have recorded it.
    instance.report_runless_asset_event(
        AssetObservation(asset_key=node, tags={DATA_VERSION_TAG: "2026-12-01T00:00:00.000+00:00"})
    )

    started = time.monotonic()
    first = run(catalog, sandbox, instance, stale_export_after=STALE_SECONDS, poll_timeout=60)
    assert first.success, failure_text(first)
    assert time.monotonic() - started < 30, "waited for the ghosts only until they were stale"
    messages = "\n".join(log_messages(instance, first))
    assert "waiting for it to end before starting this one (at most 2 s: then it is stale)" in (
        messages
    )
    for ghost in ghosts:
        assert f"not waiting for export {ghost} of DataSet {PHARMACY_CLAIMS_ID}" in messages
    assert "ago (Domo lists no start time), longer ago than stale_export_after (2 s)" in messages

    (latest,) = instance.fetch_observations(AssetRecordsFilter(asset_key=node), limit=1).records
    observation = latest.asset_observation
    assert observation is not None
    assert observation.tags[DATA_VERSION_TAG] == "2026-12-01T00:00:00.000+00:00"
    assert sorted(observation.metadata[FIRST_SEEN_KEY].value) == sorted(ghosts)

    with DagsterInstance.local_temp(str(tmp_path / "dagster_home")) as other:
        second = run(catalog, sandbox, other, stale_export_after=STALE_SECONDS, poll_timeout=60)
        assert second.success, failure_text(second)
        messages = "\n".join(log_messages(other, second))
    assert "waiting for it to end" not in messages, "the ghosts' first sighting was kept"
    for ghost in ghosts:
        assert f"not waiting for export {ghost}" in messages
    assert metadata_of(second, "claims")["export_id"] == metadata_of(first, "claims")["export_id"]
    assert sandbox.control.export_count(PHARMACY_CLAIMS_ID) == 1


def test_stale_export_domo_still_runs_fails_naming_it(
    sandbox: Sandbox, instance, tmp_path: Path
) -> None:
    (ghost,) = sandbox.control.add_history(
        PHARMACY_CLAIMS_ID, "stale_exporting", age_seconds=259200, blocking=True
    )
    result = run(write_catalog(tmp_path, CLAIMS), sandbox, instance, retry_policy=RetryPolicy(2))
    assert not result.success
    text = failure_text(result)
    assert f"counts export {ghost} as 'exporting', started 3 d ago" in text
    assert "stale_export_after 6.0 h" in text and "Ask Domo support to cancel it" in text
    assert not any(e.event_type_value == "STEP_RESTARTED" for e in result.all_events)


def test_own_export_older_than_the_stale_bound_fails(
    sandbox: Sandbox, instance, tmp_path: Path
) -> None:
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, export_outcome="stuck")
    catalog = write_catalog(tmp_path, CLAIMS)
    assert not run(catalog, sandbox, instance, poll_timeout=0.5).success
    time.sleep(1.2)
    result = run(catalog, sandbox, instance, stale_export_after=1.0)
    (stuck,) = sandbox.control.exports(dataset_id=PHARMACY_CLAIMS_ID)
    text = failure_text(result)
    assert f"Domo export {stuck['export_id']} of DataSet {PHARMACY_CLAIMS_ID} has been" in text
    assert "longer than stale_export_after (1 s)" in text


def test_foreign_running_export_is_waited_for(sandbox: Sandbox, instance, tmp_path: Path) -> None:
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, export_seconds=4)
    env = sandbox.env()
    other = DomoClient(sandbox.domo_url, DeveloperTokenAuth(sandbox.token)).start_export(
        PHARMACY_CLAIMS_ID,
        ExportRequest(
            AwsCredentials(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]),
            "domo-exports",
            "someone/else",
            "us-east-1",
        ),
    )
    result = run(write_catalog(tmp_path, CLAIMS), sandbox, instance)
    assert result.success
    assert metadata_of(result, "claims")["export_id"] != other.export.export_id
    assert metadata_of(result, "claims")["start_outcome"] == "started"
    assert sandbox.control.export_count(PHARMACY_CLAIMS_ID) == 2
    assert any("waiting for it to end" in m for m in log_messages(instance, result))


def test_two_runs_at_once_make_one_export(sandbox: Sandbox, instance, tmp_path: Path) -> None:
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, export_seconds=1.5)
    catalog = write_catalog(tmp_path, CLAIMS)
    results = []

    def materialize_once() -> None:
        results.append(run(catalog, sandbox, instance))

    threads = [threading.Thread(target=materialize_once) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [r.success for r in results] == [True, True]
    assert {metadata_of(r, "claims")["export_id"] for r in results} == {
        sandbox.control.exports(PHARMACY_CLAIMS_ID)[0]["export_id"]
    }
    assert sandbox.control.export_count(PHARMACY_CLAIMS_ID) == 1


def test_exports_run_in_the_domo_pool(tmp_path: Path) -> None:
    assets_def = build_export_assets(translate(write_catalog(tmp_path, CLAIMS)))
    assert assets_def.op.pool == DOMO_POOL


# -- faults ------------------------------------------------------------------------------------


FAULTS = {
    "429-retry-after": (
        {
            "method": "GET",
            "path_regex": EXPORT_PATH,
            "action": "status",
            "status": 429,
            "retry_after": 1,
            "times": 2,
        },
        "retry",
    ),
    "5xx-burst": (
        {
            "method": "GET",
            "path_regex": "/datasources/",
            "action": "status",
            "status": 503,
            "times": 3,
        },
        "retry",
    ),
    "reset": ({"method": "GET", "path_regex": EXPORT_PATH, "action": "reset", "times": 2}, "retry"),
    "slow-response": (
        {"method": "GET", "path_regex": "/datasources/", "action": "delay", "delay": 2, "times": 1},
        "retry",
    ),
    "post-response-lost": (
        {"method": "POST", "path_regex": EXPORT_PATH, "action": "drop_response", "times": 1},
        "had accepted it",
    ),
    "post-5xx": (
        {
            "method": "POST",
            "path_regex": EXPORT_PATH,
            "action": "status",
            "status": 502,
            "times": 1,
        },
        "retrying",
    ),
}


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
def test_fault_is_survived_with_one_export(
    sandbox: Sandbox, instance, tmp_path: Path, fault
) -> None:
    rule, logged = fault
    sandbox.control.add_fault(**rule)
    result = run(write_catalog(tmp_path, CLAIMS), sandbox, instance, read_timeout=0.7)
    assert result.success
    assert sandbox.control.export_count(PHARMACY_CLAIMS_ID) == 1
    assert metadata_of(result, "claims")["dagster/row_count"] == sandbox.control.true_row_count(
        PHARMACY_CLAIMS_ID
    )
    assert any(logged in m for m in log_messages(instance, result)), (
        f"the fault must be logged ('{logged}')"
    )


def test_persistent_fault_fails_with_bounded_retries(
    sandbox: Sandbox, instance, tmp_path: Path
) -> None:
    sandbox.control.add_fault(
        method="GET", path_regex="/datasources/", action="status", status=500, times=None
    )
    result = run(write_catalog(tmp_path, CLAIMS), sandbox, instance, max_retries=2)
    assert not result.success
    hits = [r for r in sandbox.control.requests() if "/datasources/" in r["path"]]
    assert len(hits) == 3
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "retry later" in str(failure.event_specific_data.error)
    assert sandbox.control.export_count(PHARMACY_CLAIMS_ID) == 0


@pytest.mark.slow
def test_termination_while_polling_stops_promptly(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, export_outcome="stuck")
    env = {
        **os.environ,
        **sandbox.env(),
        "DOMO_EXPORTS_FILE": write_catalog(tmp_path, CLAIMS).source,
        "DAGSTER_HOME": str(tmp_path),
    }
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    command = [
        sys.executable,
        "-m",
        "dagster",
        "asset",
        "materialize",
        "-m",
        "domo_assets.definitions",
        "--select",
        "claims",
    ]
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not sandbox.control.exports(PHARMACY_CLAIMS_ID) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sandbox.control.exports(PHARMACY_CLAIMS_ID), "the export never started"
        time.sleep(1.5)
        stopped_at = time.monotonic()
        os.kill(process.pid, signal.SIGINT)  # as Dagster's run termination does
        output, _ = process.communicate(timeout=30)
        elapsed = time.monotonic() - stopped_at
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    export_id = sandbox.control.exports(PHARMACY_CLAIMS_ID)[0]["export_id"]
    assert elapsed < 15, f"the step took {elapsed:.1f} s to stop"
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        run_id = instance.get_runs()[0].run_id
        logged = [e.user_message for e in instance.all_logs(run_id)]
    stopped = [m for m in logged if f"Stopped polling Domo export {export_id}" in m]
    assert stopped, output[-2000:]
    assert "'exporting'" in stopped[0] and "attach to it" in stopped[0]


# -- soak ---------------------------------------------------------------------------------------


@pytest.mark.soak
@pytest.mark.slow
def test_soak_many_exports_with_faults(sandbox: Sandbox, instance, tmp_path: Path) -> None:
    count = int(os.environ.get("SOAK_EXPORTS", "40"))
    readable = [
        i for name, i in SAMPLE_DATASETS.items() if name not in {"hr-salaries", "large-events"}
    ]
    entries = [
        {
            "name": f"soak_{i:03d}",
            "dataset_id": readable[i % len(readable)],
            "path": f"soak/{i:03d}",
        }
        for i in range(count)
    ]
    catalog = write_catalog(tmp_path, *entries)
    for method in ("GET", "POST"):
        sandbox.control.add_fault(
            method=method,
            path_regex="/api/",
            action="status",
            status=503,
            times=None,
            probability=0.1,
        )
    # With 10% of requests failing, three POST tries fail together for one export in a thousand;
    # five make a failed soak a matter of chance no more (1e-5 per export).
    result = run(catalog, sandbox, instance, max_concurrent_exports=16, post_attempts=5)
    assert result.success
    assert len(result.get_asset_materialization_events()) == count
    exports = sandbox.control.exports()
    per_path = {}
    for export in exports:
        per_path.setdefault(export["request"]["path"], []).append(export["export_id"])
    assert len(per_path) == count and all(len(ids) == 1 for ids in per_path.values()), (
        "one export per asset, never two"
    )
    log_text = "\n".join(m or "" for m in log_messages(instance, result))
    assert sandbox.token not in log_text and sandbox.env()["AWS_SECRET_ACCESS_KEY"] not in log_text
