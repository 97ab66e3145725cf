"""Publication follows Dagster's record, end to end against the sandbox (moto's S3 and Glue).

- A run terminated after verification, before or while it publishes (a real ``dagster asset
  materialize`` process, SIGINT as Dagster's run termination sends, or SIGKILL): the pointer,
  the Glue table and Dagster's latest materialization name the same export (after SIGKILL, once
  the next materialization has run), and no file a latest materialization names is deleted.
- Two runs of one asset finishing out of order: the newer export (by Domo's times) stays
  published and kept.
- Strict mode: an unchanged DataSet whose previous export under the asset's own prefix has no
  manifest, and a catalog entry changed only where neither the header nor the count can see
  (``order_by``, a grouped export's ``where``): never green, and no manifest claims it.
- The landing's primitives against moto over HTTP: a monotonic pointer under a write race, and
  retention that touches only its own request's older folders.

The sandbox's S3 delay rules (``control.add_s3_delay``) hold a step at a chosen S3 call.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError
from dagster import (
    AssetKey,
    AssetMaterialization,
    DagsterInstance,
    DagsterRunStatus,
    RetryPolicy,
)
from dagster_postgres import PostgresEventLogStorage
from domo_assets_dev.sandbox import (
    DAILY_ORDERS_ID,
    EXPORT_BUCKET,
    PHARMACY_CLAIMS_ID,
    Sandbox,
    SandboxControlError,
)
from servers import Postgres
from support import (
    deployment_storage,
    domo_resource,
    failure_text,
    log_messages,
    materializations,
    materialize_catalog,
    read_json,
    write_catalog,
)

from domo_assets.catalog import Catalog
from domo_assets.domo.models import DataSetColumn
from domo_assets.ledger import LatestMaterializations
from domo_assets.s3.landing import apply_retention, publish_pointer, read_latest
from domo_assets.s3.manifest import ExportManifest, ManifestFile, iso, write_manifest

GLUE_DATABASE = "domo"
# Long enough that a held request is released by the test, never by the rule running out.
HOLD_SECONDS = 120.0
WAIT_SECONDS = 90.0
POLL_SECONDS = 0.2
# After SIGINT, time for the interrupt to reach the step before the held request is released.
INTERRUPT_SETTLE_SECONDS = 2.0
# What the delay rules hold, under an asset's path: an export's manifest, its Redshift manifest
# (written just after it, before Dagster records the export), the pointer.
MANIFEST_PUT = r"/[^/]+/export/_manifest\.json$"
REDSHIFT_MANIFEST_PUT = r"/[^/]+/export/_redshift_manifest\.json$"
POINTER = r"/_latest\.json$"


# -- helpers ------------------------------------------------------------------------------------


def dagster_home(tmp_path: Path, storage: dict[str, Any] | None = None) -> Path:
    """A DAGSTER_HOME on SQLite (or ``storage``), shared by in-process runs and ``dagster``
    subprocesses."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    document = {"telemetry": {"enabled": False}, **({"storage": storage} if storage else {})}
    (home / "dagster.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
    return home


def run_in_process(catalog: Catalog, sandbox: Sandbox, home: Path, **kwargs: Any) -> Any:
    """One materialization of the catalog, in this process, on the instance at ``home``."""
    with DagsterInstance.from_config(str(home)) as instance:
        return materialize_catalog(catalog, instance, domo_resource(sandbox), **kwargs)


def start_materialize(sandbox: Sandbox, catalog: Catalog, home: Path, select: str) -> Any:
    """``dagster asset materialize`` of the code location, in its own process group."""
    env = {
        **os.environ,
        **sandbox.env(),
        "DOMO_EXPORTS_FILE": catalog.source,
        "DAGSTER_HOME": str(home),
    }
    command = [sys.executable, "-m", "dagster", "asset", "materialize"]
    command += ["-m", "domo_assets.definitions", "--select", select]
    return subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def latest(home: Path, name: str) -> dict[str, Any] | None:
    """The metadata values of an asset's latest materialization in the instance at ``home``."""
    with DagsterInstance.from_config(str(home)) as instance:
        records = instance.fetch_materializations(AssetKey(name), limit=1).records
    if not records or records[0].asset_materialization is None:
        return None
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def latest_run_status(home: Path) -> DagsterRunStatus:
    with DagsterInstance.from_config(str(home)) as instance:
        return instance.get_runs(limit=1)[0].status


def key_regex(path: str, suffix: str) -> str:
    """A delay rule's ``path_regex``: ``suffix`` under ``path`` in the export bucket."""
    return rf"^/{EXPORT_BUCKET}/{path}{suffix}"


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(POLL_SECONDS)


def holding(sandbox: Sandbox) -> int:
    """How many S3 requests the delay rules hold right now."""
    return sum(rule["holding"] for rule in sandbox.control.s3_delays())


def pointer(s3: Any, path: str, name: str = "_latest.json") -> dict[str, Any]:
    return read_json(s3, f"s3://{EXPORT_BUCKET}/{path}/{name}")


def table_location(name: str) -> str:
    glue = boto3.client("glue", region_name="us-east-1")
    table = glue.get_table(DatabaseName=GLUE_DATABASE, Name=name)["Table"]
    return table["StorageDescriptor"]["Location"]


def export_folder(path: str, export_id: str, folder: str = "export") -> str:
    return f"s3://{EXPORT_BUCKET}/{path}/{export_id}/{folder}/"


def exists(s3: Any, uri: str) -> bool:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError:
        return False
    return True


def keys_under(s3: Any, prefix: str) -> list[str]:
    listed = s3.list_objects_v2(Bucket=EXPORT_BUCKET, Prefix=prefix).get("Contents", [])
    return sorted(o["Key"] for o in listed)


def named_files(home: Path, name: str) -> list[str]:
    """Every file the latest materializations of an export asset and its Parquet asset name."""
    files: list[str] = []
    exported = latest(home, name)
    if exported is not None:
        files += [*exported["s3_uris"], exported["manifest_uri"]]
    parquet = latest(home, f"{name}_parquet")
    if parquet is not None:
        files += parquet["parquet_uris"]
    return files


def assert_agreement(s3: Any, home: Path, name: str, path: str) -> str:
    """The pointer, the Glue table and Dagster's latest materialization name one export, and
    every file a latest materialization names exists (the Parquet asset's too, with its own
    pointer and table). Returns that export."""
    exported = latest(home, name)
    assert exported is not None, f"{name} has no materialization"
    export_id = exported["export_id"]
    assert pointer(s3, path)["export_id"] == export_id, "the pointer names another export"
    assert table_location(name) == export_folder(path, export_id), "the table reads another"
    missing = [uri for uri in named_files(home, name) if not exists(s3, uri)]
    assert missing == [], f"files a latest materialization names are gone: {missing}"
    parquet = latest(home, f"{name}_parquet")
    if parquet is not None:
        assert pointer(s3, path, "_latest_parquet.json")["files"] == parquet["parquet_uris"]
        assert table_location(f"{name}_parquet") == export_folder(
            path, parquet["export_id"], "parquet"
        )
    return export_id


@pytest.fixture
def strict(sandbox: Sandbox) -> Iterator[None]:
    """The sandbox's strict mode (Domo hands back its latest export for any request while the
    data is unchanged), switched back afterwards."""
    sandbox.control.set_mode("strict")
    yield
    sandbox.control.set_mode("default")


# -- the sandbox's S3 delay rules ---------------------------------------------------------------


def test_s3_delay_rule_holds_a_request_until_cleared(sandbox: Sandbox, s3: Any) -> None:
    """A rule holds its matching requests for its delay, its times only; clearing the rules
    releases a held request at once, and a held PUT reaches moto only then."""
    s3.put_object(Bucket=EXPORT_BUCKET, Key="held/object.txt", Body=b"x")
    rule = sandbox.control.add_s3_delay(method="GET", path_regex=r"/held/object\.txt$", delay=0.5)
    started = time.monotonic()
    assert s3.get_object(Bucket=EXPORT_BUCKET, Key="held/object.txt")["Body"].read() == b"x"
    assert time.monotonic() - started >= 0.5
    (listed,) = sandbox.control.s3_delays()
    assert listed == {**rule, "remaining": 0, "hits": 1, "holding": 0}
    s3.get_object(Bucket=EXPORT_BUCKET, Key="held/object.txt")  # the rule's one time is spent
    assert sandbox.control.s3_delays()[0]["hits"] == 1, "the second read was not held"

    sandbox.control.add_s3_delay(method="PUT", path_regex=r"/held/", delay=HOLD_SECONDS)
    writer = threading.Thread(
        target=s3.put_object, kwargs={"Bucket": EXPORT_BUCKET, "Key": "held/new.txt", "Body": b"y"}
    )
    writer.start()
    wait_until(lambda: holding(sandbox) == 1, "the PUT is held")
    assert not exists(s3, f"s3://{EXPORT_BUCKET}/held/new.txt"), "held before moto saw it"
    sandbox.control.clear_s3_delays()
    writer.join(timeout=10)
    assert not writer.is_alive() and exists(s3, f"s3://{EXPORT_BUCKET}/held/new.txt")
    assert sandbox.control.s3_delays() == []
    with pytest.raises(SandboxControlError) as refused:
        sandbox.control.add_s3_delay(delay=-1)
    assert refused.value.status == 400 and "'delay'" in refused.value.body


def test_s3_log_drops_a_request_held_across_a_clear_and_logs_a_failed_one(
    sandbox: Sandbox, s3: Any
) -> None:
    """The S3 log takes a request as it arrived: one a delay rule holds while the log is cleared
    (a test's reset) belongs to the log before it, and one a rule fails (``fail_status``) is
    logged with the status it was answered, then the client's retry with its own."""
    key = "held/logged.txt"
    s3.put_object(Bucket=EXPORT_BUCKET, Key=key, Body=b"x")
    sandbox.control.add_s3_delay(method="GET", path_regex=r"/held/logged\.txt$", delay=HOLD_SECONDS)
    reader = threading.Thread(target=s3.get_object, kwargs={"Bucket": EXPORT_BUCKET, "Key": key})
    reader.start()
    wait_until(lambda: holding(sandbox) == 1, "the GET is held")
    sandbox.control.clear_s3_calls()
    sandbox.control.clear_s3_delays()
    reader.join(timeout=10)
    assert not reader.is_alive()
    assert [c for c in sandbox.control.s3_calls() if c["key"] == key] == []

    sandbox.control.add_s3_delay(
        method="GET", path_regex=r"/held/logged\.txt$", delay=0, fail_status=500
    )
    assert s3.get_object(Bucket=EXPORT_BUCKET, Key=key)["Body"].read() == b"x"
    assert [c["status"] for c in sandbox.control.s3_calls() if c["key"] == key] == [500, 200]


# -- the landing's primitives -------------------------------------------------------------------

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def manifest(prefix: str, export_id: str, hours: int, request: str = "request-a") -> ExportManifest:
    """A verified export of ``request`` started ``hours`` after T0 (Domo's time), ending a
    minute later, with one file under ``<prefix>/<exportId>/export/``."""
    key = f"{prefix}/{export_id}/export/data.csv.gz"
    return ExportManifest(
        export_id=export_id,
        dataset_id=PHARMACY_CLAIMS_ID,
        dataset_name="pharmacy-claims",
        partition_key=None,
        query={"columns": []},
        include_bom=False,
        request=request,
        schema=(DataSetColumn("Customer ID", "LONG"),),
        compression="gzip",
        files=(ManifestFile(f"s3://{EXPORT_BUCKET}/{key}", EXPORT_BUCKET, key, 1, 1),),
        started=T0 + timedelta(hours=hours),
        finished=T0 + timedelta(hours=hours, minutes=1),
    )


def land(s3: Any, found: ExportManifest, with_manifest: bool = True) -> ExportManifest:
    """Write an export's file and (unless told not to) its ``_manifest.json``."""
    (file,) = found.files
    s3.put_object(Bucket=EXPORT_BUCKET, Key=file.key, Body=b"x")
    if with_manifest:
        write_manifest(s3, found, keep_existing=False)
    return found


def manifest_uri(found: ExportManifest) -> str:
    return f"s3://{EXPORT_BUCKET}/{found.files[0].key.rsplit('/', 1)[0]}/_manifest.json"


def test_pointer_is_never_moved_to_an_older_export(s3: Any) -> None:
    """An older export published after a newer one leaves the pointer (``superseded_by``)."""
    older, newer = manifest("mono/a", "older", 1), manifest("mono/a", "newer", 2)
    first = publish_pointer(s3, EXPORT_BUCKET, "mono/a", newer, manifest_uri(newer))
    assert first.moved and first.superseded_by is None
    late = publish_pointer(s3, EXPORT_BUCKET, "mono/a", older, manifest_uri(older))
    assert not late.moved and late.superseded_by == "newer"
    document = pointer(s3, "mono/a")
    assert document["export_id"] == "newer"
    assert document["request"] == "request-a" and document["started"] == "2026-11-01T02:00:00Z"
    again = publish_pointer(s3, EXPORT_BUCKET, "mono/a", newer, manifest_uri(newer))
    assert not again.moved and again.superseded_by is None, "naming it already: nothing to do"


def _race(sandbox: Sandbox, prefix: str, contenders: list[ExportManifest]) -> dict[str, Any]:
    """Publish each manifest from a thread of its own (each with its own client), released
    together; returns each one's ``PointerMove``."""
    barrier = threading.Barrier(len(contenders))
    moves: dict[str, Any] = {}

    def publish(found: ExportManifest) -> None:
        client = sandbox.s3_client()
        try:
            barrier.wait(timeout=10)
            moves[found.export_id] = publish_pointer(
                client, EXPORT_BUCKET, prefix, found, manifest_uri(found)
            )
        finally:
            client.close()

    threads = [threading.Thread(target=publish, args=(found,)) for found in contenders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return moves


@pytest.mark.parametrize("initial", [None, "oldest"], ids=["no-pointer", "replacing"])
def test_racing_publishers_end_on_the_newer_export(
    sandbox: Sandbox, s3: Any, initial: str | None
) -> None:
    """Two publishers released together, twenty times: whichever conditional PutObject S3
    takes first, the pointer ends on the newer export."""
    rounds = []
    for round_number in range(20):
        prefix = f"race/{initial}/{round_number}"
        if initial is not None:
            oldest = manifest(prefix, initial, 0)
            publish_pointer(s3, EXPORT_BUCKET, prefix, oldest, manifest_uri(oldest))
        moves = _race(sandbox, prefix, [manifest(prefix, "older", 1), manifest(prefix, "newer", 2)])
        assert read_latest(s3, EXPORT_BUCKET, prefix).export_id == "newer", round_number
        rounds.append(moves)
    assert all(moves["newer"].moved for moves in rounds), "the newer one always moved it"
    assert all(m["older"].moved or m["older"].superseded_by == "newer" for m in rounds)


def test_retention_removes_only_this_requests_older_unprotected_folders(s3: Any) -> None:
    """keep 1 around the export just published: only this request's folders older than it
    go, never a newer one, the pointer's, a protected one, another request's (older or
    newer), a folder without a manifest, or a sibling prefix's."""
    prefix = "keep/claims"
    mine = {
        export_id: land(s3, manifest(prefix, export_id, hours))
        for export_id, hours in [
            ("mine-0", 0),
            ("pointed", 1),
            ("protected", 2),
            ("mine-3", 3),
            ("current", 4),
            ("newer-5", 5),
            ("newer-6", 6),
        ]
    }
    theirs = [
        land(s3, manifest(prefix, "theirs-old", -5, request="request-b")),
        land(s3, manifest(prefix, "theirs-new", 9, request="request-b")),
    ]
    unverified = land(s3, manifest(prefix, "no-manifest", -3), with_manifest=False)
    sibling = land(s3, manifest("keep/claims_supply", "sibling", -9))
    # The pointer may name an older export (a newer one was refused its move, or is under way).
    publish_pointer(s3, EXPORT_BUCKET, prefix, mine["pointed"], manifest_uri(mine["pointed"]))

    report = apply_retention(s3, EXPORT_BUCKET, prefix, 1, mine["current"], protected={"protected"})

    assert [r.export_id for r in report.removed] == ["mine-3", "mine-0"]
    assert set(report.kept) == {"newer-6", "newer-5", "current", "protected", "pointed"}
    assert {i.folder.rsplit("/", 2)[1] for i in report.ignored} == {
        "theirs-old",
        "theirs-new",
        "no-manifest",
    }
    for export_id in ("mine-0", "mine-3"):
        assert keys_under(s3, f"{prefix}/{export_id}/") == []
    for found in [*theirs, unverified, sibling, *(mine[k] for k in report.kept)]:
        assert exists(s3, found.files[0].uri), f"{found.export_id} was removed"
    for found in [*theirs, sibling]:
        assert exists(s3, manifest_uri(found))


def test_retention_spares_an_unrecorded_recent_folder_and_only_that(s3: Any) -> None:
    """Retention told which exports Dagster recorded keeps a verified folder it has not
    recorded while the folder's manifest is under IN_FLIGHT_GRACE old (a concurrent run may be
    about to record it); the same folder written two hours ago, and an old recorded one, go."""
    prefix = "keep/grace"
    two_hours_ago = iso(datetime.now(UTC) - timedelta(hours=2))
    in_flight = land(s3, manifest(prefix, "in-flight", 1))
    abandoned = land(s3, replace(manifest(prefix, "abandoned", 2), written_at=two_hours_ago))
    recorded_old = land(s3, manifest(prefix, "recorded-old", 3))
    current = land(s3, manifest(prefix, "current", 4))

    report = apply_retention(
        s3, EXPORT_BUCKET, prefix, 1, current, recorded={"current", "recorded-old"}
    )

    assert sorted(r.export_id for r in report.removed) == ["abandoned", "recorded-old"]
    assert set(report.kept) == {"current", "in-flight"}
    assert exists(s3, in_flight.files[0].uri) and exists(s3, manifest_uri(in_flight))
    for gone in (abandoned, recorded_old):
        assert keys_under(s3, f"{prefix}/{gone.export_id}/") == []


# -- termination after verification --------------------------------------------------------------

CLAIMS = {
    "name": "claims",
    "dataset_id": PHARMACY_CLAIMS_ID,
    "path": "pub/claims",
    "table": {"database": GLUE_DATABASE},
    "keep_exports": 1,
    "parquet": True,
}
POINTER_KEY = key_regex("pub/claims", POINTER)


def _materialize_then_hold(
    sandbox: Sandbox, tmp_path: Path, method: str, path_regex: str, skip: int = 0
) -> tuple[Path, Catalog, str, Any]:
    """Materialize the export and its Parquet asset once (in process), change the data, then
    start ``dagster asset materialize --select claims`` with the first request matching
    ``method`` and ``path_regex`` held. Returns the home, the catalog, the first export's id
    and the process, once the request is held."""
    home = dagster_home(tmp_path)
    catalog = write_catalog(tmp_path, CLAIMS)
    first = run_in_process(catalog, sandbox, home)
    assert first.success, failure_text(first)
    first_export = materializations(first)["claims"]["export_id"]
    sandbox.control.change_dataset(PHARMACY_CLAIMS_ID, rows=2)
    sandbox.control.add_s3_delay(
        method=method, path_regex=path_regex, delay=HOLD_SECONDS, skip=skip
    )
    process = start_materialize(sandbox, catalog, home, "claims")
    try:
        wait_until(lambda: holding(sandbox) == 1 or process.poll() is not None, "held")
        assert process.poll() is None, process.communicate()[0][-3000:]
    except BaseException:
        _kill(process)
        raise
    return home, catalog, first_export, process


def _kill(process: Any) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


HOLDS = {
    # Verified, its manifest being written: nothing is recorded yet.
    "before-record": ("PUT", key_regex("pub/claims", MANIFEST_PUT), False, 0),
    # Recorded; the publisher reads the pointer first (the step read it once before recording,
    # to see whether a newer export is published: that read is let through).
    "before-pointer": ("GET", POINTER_KEY, True, 1),
    # Recorded; the pointer's conditional PutObject is under way.
    "while-pointer": ("PUT", POINTER_KEY, True, 0),
}


@pytest.mark.slow
@pytest.mark.parametrize("hold", HOLDS.values(), ids=HOLDS.keys())
def test_terminated_run_leaves_pointer_table_and_record_in_agreement(
    sandbox: Sandbox, tmp_path: Path, s3: Any, hold: tuple[str, str, bool, int]
) -> None:
    """SIGINT (Dagster's run termination) while the step is held at an S3 call after the
    export was verified: the step waits for what it started (the held request is released
    two seconds after the signal), then stops. Pointer, table and record name one export (the
    new one once it was recorded) and nothing a latest materialization names is gone."""
    method, path_regex, recorded, skip = hold
    home, _, first_export, process = _materialize_then_hold(
        sandbox, tmp_path, method, path_regex, skip
    )
    try:
        if recorded:
            wait_until(
                lambda: latest(home, "claims")["export_id"] != first_export,
                "the new materialization is recorded",
            )
        os.kill(process.pid, signal.SIGINT)  # as Dagster's run termination does
        time.sleep(INTERRUPT_SETTLE_SECONDS)
        assert process.poll() is None, "the step waits for the held request"
        sandbox.control.clear_s3_delays()
        output, _ = process.communicate(timeout=60)
    finally:
        sandbox.control.clear_s3_delays()
        _kill(process)
    assert latest_run_status(home) != DagsterRunStatus.SUCCESS, output[-3000:]
    published = assert_agreement(s3, home, "claims", "pub/claims")
    assert (published != first_export) is recorded, output[-3000:]
    # The Parquet asset was not run: its latest files (the first export's) are kept.
    assert latest(home, "claims_parquet")["export_id"] == first_export
    if recorded:
        with DagsterInstance.from_config(str(home)) as instance:
            run_id = instance.get_runs(limit=1)[0].run_id
            logged = [e.user_message or "" for e in instance.all_logs(run_id)]
        assert any(f"published export {published}" in m for m in logged), (
            "the terminated run's log says what its publication did"
        )


@pytest.mark.slow
def test_killed_run_loses_nothing_and_the_next_materialization_reconciles(
    sandbox: Sandbox, tmp_path: Path, s3: Any
) -> None:
    """SIGKILL between Dagster's record and the pointer: the pointer and the table still name
    the first export, whose files are kept, as are the new export's; the PUT S3 had already
    received lands after the kill; the next materialization brings everything back together."""
    home, catalog, first_export, process = _materialize_then_hold(
        sandbox, tmp_path, "PUT", POINTER_KEY
    )
    try:
        wait_until(
            lambda: latest(home, "claims")["export_id"] != first_export,
            "the new materialization is recorded",
        )
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        second_export = latest(home, "claims")["export_id"]
        assert pointer(s3, "pub/claims")["export_id"] == first_export
        assert table_location("claims") == export_folder("pub/claims", first_export)
        files = [*named_files(home, "claims"), *pointer(s3, "pub/claims")["files"]]
        assert [uri for uri in files if not exists(s3, uri)] == []
    finally:
        sandbox.control.clear_s3_delays()
        _kill(process)
    wait_until(
        lambda: pointer(s3, "pub/claims")["export_id"] == second_export,
        "the held PUT lands",
        timeout=10,
    )
    assert table_location("claims") == export_folder("pub/claims", first_export), (
        "the killed step never reached Glue: the table is behind the pointer"
    )

    again = run_in_process(catalog, sandbox, home, selection=["claims"])

    assert again.success, failure_text(again)
    assert assert_agreement(s3, home, "claims", "pub/claims") == second_export
    assert sandbox.control.export_count(PHARMACY_CLAIMS_ID) == 2, "no export made again"


# -- two runs finishing out of order ------------------------------------------------------------


ORDER_PATH = "order/claims"
RUN_A_HOLDS = {
    # A's manifest is not written yet when B publishes: B's retention cannot see A's folder.
    "before-manifest": MANIFEST_PUT,
    # A's manifest is written (A is held writing the Redshift manifest, just before Dagster
    # records it): B's retention sees A's folder, older than B's export.
    "after-manifest": REDSHIFT_MANIFEST_PUT,
}


@pytest.mark.parametrize("hold", RUN_A_HOLDS.values(), ids=RUN_A_HOLDS.keys())
def test_runs_finishing_out_of_order_keep_the_newer_export_published(
    sandbox: Sandbox, tmp_path: Path, s3: Any, hold: str
) -> None:
    """Run A's export is verified, then A is held before Dagster records it; the data changes
    and run B exports, records and publishes a newer export; then A goes on. A's older export
    is not recorded (Dagster's latest materialization would fall behind the pointer), the newer
    export stays published and kept, and what Dagster's latest materialization names (B's) is
    there."""
    path = ORDER_PATH
    catalog = write_catalog(
        tmp_path,
        {
            "name": "claims",
            "dataset_id": PHARMACY_CLAIMS_ID,
            "path": path,
            "table": {"database": GLUE_DATABASE},
            "keep_exports": 1,
        },
    )
    home = dagster_home(tmp_path)
    oldest = run_in_process(catalog, sandbox, home)
    assert oldest.success, failure_text(oldest)
    oldest_export = materializations(oldest)["claims"]["export_id"]

    sandbox.control.change_dataset(PHARMACY_CLAIMS_ID, rows=1)
    sandbox.control.add_s3_delay(method="PUT", path_regex=key_regex(path, hold), delay=HOLD_SECONDS)
    results: dict[str, Any] = {}
    run_a = threading.Thread(
        target=lambda: results.setdefault("a", run_in_process(catalog, sandbox, home))
    )
    run_a.start()
    manifests: dict[str, dict[str, Any]] = {}
    try:
        wait_until(lambda: holding(sandbox) == 1, "run A is held before Dagster records it")
        older = sandbox.control.exports(PHARMACY_CLAIMS_ID)[-1]["export_id"]
        if exists(s3, f"{export_folder(path, older)}_manifest.json"):
            manifests["older"] = read_json(s3, f"{export_folder(path, older)}_manifest.json")
        sandbox.control.change_dataset(PHARMACY_CLAIMS_ID, rows=1)
        run_b = run_in_process(catalog, sandbox, home)
        assert run_b.success, failure_text(run_b)
        newer = materializations(run_b)["claims"]["export_id"]
        assert pointer(s3, path)["export_id"] == newer
    finally:
        sandbox.control.clear_s3_delays()
        run_a.join(timeout=60)
    run_a_result = results["a"]
    assert run_a_result.success, failure_text(run_a_result)
    assert "claims" not in materializations(run_a_result), "the superseded export is not recorded"
    assert latest(home, "claims")["export_id"] == newer
    assert len({oldest_export, older, newer}) == 3
    if "older" not in manifests:
        manifests["older"] = read_json(s3, f"{export_folder(path, older)}_manifest.json")
    manifests["newer"] = read_json(s3, f"{export_folder(path, newer)}_manifest.json")
    assert manifests["older"]["started"] < manifests["newer"]["started"], "A's export is older"

    assert pointer(s3, path)["export_id"] == newer
    assert table_location("claims") == export_folder(path, newer)
    assert all(exists(s3, f["uri"]) for f in manifests["newer"]["files"]), "newer export kept"
    assert keys_under(s3, f"{path}/{oldest_export}/") == [], "B's retention removed the oldest"
    with DagsterInstance.from_config(str(home)) as instance:
        messages = log_messages(instance, run_a_result)
    assert any(
        f"export {older} was verified but is not recorded" in m and f"names export {newer}" in m
        for m in messages
    ), messages
    missing = [uri for uri in named_files(home, "claims") if not exists(s3, uri)]
    assert missing == [], (
        f"Dagster's latest materialization of claims (export {latest(home, 'claims')['export_id']}"
        f") names files that are gone: {missing}"
    )


# -- strict mode: a previous export whose request nothing shows --------------------------------


def _assert_refused(result: Any, s3: Any, path: str, export_id: str) -> None:
    assert not result.success
    assert materializations(result) == {}, "nothing recorded: not green"
    text = failure_text(result)
    assert f"export {export_id}" in text, text
    assert "Materialize again after the DataSet next changes" in text, text
    assert not any(k.endswith("/_manifest.json") for k in keys_under(s3, f"{path}/")), (
        "no manifest claims the new query"
    )
    assert not any(e.event_type_value == "STEP_RESTARTED" for e in result.all_events)


def test_strict_order_by_change_over_an_unverified_previous_export_is_not_green(
    sandbox: Sandbox, tmp_path: Path, s3: Any, strict: None
) -> None:
    """The first export fails its row count (Domo misreports it), so no manifest is written;
    with the data unchanged, a request sorted otherwise gets that export back."""
    path = "strict/claims"
    entry = {
        "name": "claims",
        "dataset_id": PHARMACY_CLAIMS_ID,
        "path": path,
        "order_by": ["Date Filled"],
    }
    home = dagster_home(tmp_path)
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, misreport_rows=3)
    first = run_in_process(write_catalog(tmp_path, entry), sandbox, home)
    assert not first.success and materializations(first) == {}
    (export,) = sandbox.control.exports(PHARMACY_CLAIMS_ID)
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, misreport_rows=0)

    resorted = {**entry, "order_by": [{"column": "Date Filled", "direction": "desc"}]}
    result = run_in_process(
        write_catalog(tmp_path, resorted), sandbox, home, retry_policy=RetryPolicy(max_retries=1)
    )

    _assert_refused(result, s3, path, export["export_id"])
    assert sandbox.control.export_count(PHARMACY_CLAIMS_ID) == 1


def test_strict_grouped_where_change_over_a_manifestless_previous_export_is_not_green(
    sandbox: Sandbox, tmp_path: Path, s3: Any, strict: None
) -> None:
    """A grouped export (no row count to compare) is verified, then its manifest is lost (as a
    run killed before writing it leaves it); a request filtered otherwise gets it back and is
    refused. The unchanged request still adopts it: the ledger shows it was made for that."""
    path = "strict/regions"
    entry = {
        "name": "regions",
        "dataset_id": DAILY_ORDERS_ID,
        "path": path,
        "columns": ["Region"],
        "group_by": ["Region"],
        "where": [{"column": "Amount", "gte": 10}],
    }
    home = dagster_home(tmp_path)
    first = run_in_process(write_catalog(tmp_path, entry), sandbox, home)
    assert first.success, failure_text(first)
    recorded = materializations(first)["regions"]
    s3.delete_object(Bucket=EXPORT_BUCKET, Key=recorded["manifest_uri"].split("/", 3)[3])

    refiltered = {**entry, "where": [{"column": "Amount", "gte": 50}]}
    result = run_in_process(
        write_catalog(tmp_path, refiltered), sandbox, home, retry_policy=RetryPolicy(max_retries=1)
    )

    _assert_refused(result, s3, path, recorded["export_id"])
    again = run_in_process(write_catalog(tmp_path, entry), sandbox, home)
    assert again.success, failure_text(again)
    adopted = materializations(again)["regions"]
    assert adopted["export_id"] == recorded["export_id"]
    assert read_json(s3, adopted["manifest_uri"])["request"] == recorded["domo/request"]
    assert sandbox.control.export_count(DAILY_ORDERS_ID) == 1


def test_latest_materializations_answer_every_caller_with_what_was_recorded_before_it_asked(
    instance: DagsterInstance,
) -> None:
    """The step's publications confirm their records through one shared reader: 40 threads
    asking at once (each right after its asset's materialization was stored, as a publication
    does) each get their own asset's latest export, and a later record is seen by a later ask."""
    keys = [AssetKey(["lake", f"t{i}"]) for i in range(40)]

    def record(key: AssetKey, export_id: str) -> None:
        instance.report_runless_asset_event(
            AssetMaterialization(key, metadata={"export_id": export_id, "manifest_uri": "s3://b/m"})
        )

    shared = LatestMaterializations(instance)
    answers: dict[AssetKey, str | None] = {}

    def publish(key: AssetKey) -> None:
        record(key, f"{key.path[-1]}-1")
        latest = shared.latest(key)
        answers[key] = latest.export_id if latest else None

    threads = [threading.Thread(target=publish, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == {key: f"{key.path[-1]}-1" for key in keys}
    assert shared.latest(AssetKey(["lake", "never"])) is None
    record(keys[0], "t0-2")
    again = shared.latest(keys[0])
    assert again is not None and again.export_id == "t0-2" and again.manifest_uri == "s3://b/m"


# -- the deployment's storage -------------------------------------------------------------------


@pytest.mark.deployment
def test_publication_on_postgres_keeps_pointer_table_and_record_in_agreement(
    sandbox: Sandbox,
    postgres: Postgres,
    tmp_path: Path,
    s3: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On the deployment's storage (PostgreSQL, deployment/dagster.yaml): three materializations,
    the data changed before each. Each publication confirms its record through the step's
    shared reader, and retention reads the recorded exports and the Parquet asset's latest, all
    from PostgreSQL: pointer, Glue table and Parquet asset name the newest export; with
    ``keep_exports: 1`` the previous export's folder stays while the Parquet asset's latest
    files lie there (it runs after the export), and is removed by the next publication."""
    for name, value in postgres.env().items():
        monkeypatch.setenv(name, value)
    home = dagster_home(tmp_path, deployment_storage())
    catalog = write_catalog(tmp_path, CLAIMS)

    exports: list[str] = []
    kept: list[list[bool]] = []
    for rows in (1, 2, 3):
        sandbox.control.change_dataset(PHARMACY_CLAIMS_ID, rows=rows)
        result = run_in_process(catalog, sandbox, home)
        assert result.success, failure_text(result)
        exports.append(materializations(result)["claims"]["export_id"])
        assert assert_agreement(s3, home, "claims", "pub/claims") == exports[-1]
        manifests = [f"{export_folder('pub/claims', e)}_manifest.json" for e in exports]
        kept.append([exists(s3, uri) for uri in manifests])

    with DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert len(set(exports)) == 3
    assert kept == [[True], [True, True], [False, True, True]]
