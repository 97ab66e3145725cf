"""Benchmark of fan-out: 100 exports in one run versus a run of one export.

Starts the sandbox in its own process (``python -m domo_assets_dev.sandbox --synthetic-datasets``,
so its HTTP and S3 servers do not share this process's GIL) with one small synthetic DataSet per
export (Domo runs one export per DataSet at a time), writes a catalog of ``--exports`` exports,
and measures the wall time of Dagster runs:

* (a) a run of one export in our layout (median of ``--repeat``);
* (b) a run of every export in our layout: one step driving the exports in threads, capped by
  ``DomoResource.max_concurrent_exports`` (``--cap``; median of ``--repeat``);
* (c) the naive layout: one single-export op per export under Dagster's default multiprocess
  executor (one step process per export, as many at once as CPUs; one run);
* (d) Dagster's own floor under (b): the same asset graph (the real export assets' specs and
  check specs, with their DataSet deps: one subsettable multi-asset) whose op yields, at once
  and with no network, a materialization of each selected export with a passing result for
  each check the real asset carries: what recording 100 materializations and their check
  evaluations costs in one step (median of ``--repeat``);
* (e) Dagster's floor under (a): the same floor with one export selected (median of
  ``--repeat``).

Each is measured in up to four modes, all in this process's view of wall time:

* ``multiprocess/postgres``: ``execute_job`` of a reconstructable job with Dagster's default
  multiprocess executor, as a run launched from the UI, a schedule or the sensor executes (a
  step process per op), on the production deployment's storage: run, event-log and schedule
  storage in PostgreSQL, configured by the ``storage`` section of ``deployment/dagster.yaml``
  (its other sections are left out, so that only the storage differs from the SQLite modes),
  on a throwaway local cluster with PostgreSQL's default durability (fsync and synchronous
  commit on, checked before measuring). The instance gets a ``DAGSTER_HOME`` of its own, and
  the ``DAGSTER_PG_*`` variables, while the mode runs (the step processes load the instance
  from there): what a deployed run pays;
* ``multiprocess/postgres+pgbouncer``: the same, with PgBouncer (session pooling) in front of
  the cluster on a free loopback port, the ``DAGSTER_PG_HOST``/``PORT`` variables pointing at
  it (``pgbouncer`` must be installed: ``apt-get install -y pgbouncer``); its ``SHOW STATS``
  totals are printed at the end, so the runs are seen to have gone through it;
* ``multiprocess/sqlite``: the same runs on Dagster's default storage, SQLite in a temporary
  ``DAGSTER_HOME``;
* ``in-process/sqlite``: ``materialize`` (the in-process executor) on that SQLite instance;
* ``in-process/memory``: ``materialize`` on ``DagsterInstance.ephemeral()``.

Dagster writes every event synchronously, one after the other (a 100-export run records about
1,000 events), so the storage's cost per event sets a floor under (b). SQLite opens a new
connection and commits per event. dagster-postgres has no connection pool either: every write
opens a connection (PostgreSQL forks a backend process for it, and the deployment's password
authentication runs a SCRAM exchange), one per event and two per materialization, and each
commit waits for its WAL flush. The step process start-up of the multiprocess executor is paid
once per run by our layout and once per export by the naive one.

Before each run the sandbox is reset, so every export is a real one (Domo would otherwise
return the previous export of unchanged data at once). Resource settings other than the cap
are the defaults (polling included). Each (b) run is also checked: one materialization per
export with a passing result for every check the catalog's assets carry (counted from their
check specs), and distinct export ids.

In the multiprocess modes the benchmark then runs (a) once more, traced, and prints it second by
second: the times of Dagster's events (its event log), of every request the sandbox's Domo, S3
and STS served (their request logs), of the ledger's start record, and of Domo's export (its
creation and end), merged in one table with the phases they delimit (``--no-breakdown`` leaves
it out).

``--scale`` measures, instead, (b) and (d) at ``--scale-base`` exports (default 100) and at
``--exports``, each size with a catalog of its own (the first N synthetic DataSets), in the
multiprocess modes: wall time per export, (b) / (d), Domo requests per export, that every
materialization and check was recorded, and the step process's peak memory. The peak is the
kernel's high-water mark of resident memory (``VmHWM``) that each step process writes when it
exits (registered where it rebuilds the job, so it covers imports, the code location load, the
exports and the recording); the largest of a run's step processes is reported. Goal: the
per-export wall time of (b) grows at most 1.2x from the smaller size to the larger (linear).

Goals (issue 23), in each mode: (b) within 10% of (d); (a) minus Domo's own export time (the
sandbox's record of the export: from its creation to its end) within 15% of (e). The older goal
(b) <= 2 x (a) is printed too.

The postgres mode needs PostgreSQL's ``initdb`` and ``pg_ctl`` (installed from apt first if
missing, when run as root; the server then runs as user ``postgres``): see
``tests/servers.py``'s ``postgres_cluster``.

Usage::

    .venv/bin/python benchmarks/bench_fanout.py                          # multiprocess/sqlite
    .venv/bin/python benchmarks/bench_fanout.py --mode all --no-naive     # every mode
    .venv/bin/python benchmarks/bench_fanout.py --mode multiprocess/postgres --no-naive
    .venv/bin/python benchmarks/bench_fanout.py --exports 100 --cap 100 --repeat 3 --no-naive
    .venv/bin/python benchmarks/bench_fanout.py --exports 1000 --scale --repeat 1   # 100 vs 1,000
    .venv/bin/python benchmarks/bench_fanout.py --no-naive --no-breakdown --repeat 1 \
        --mode multiprocess/postgres multiprocess/postgres+pgbouncer           # with and without
"""

import argparse
import atexit
import dataclasses
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSelection,
    AssetSpec,
    DagsterInstance,
    DataVersion,
    Definitions,
    JobDefinition,
    MaterializeResult,
    define_asset_job,
    execute_job,
    materialize,
    multi_asset,
    multiprocess_executor,
    reconstructable,
)
from domo_assets_dev.sandbox import EXPORT_BUCKET, SandboxControl, synthetic_dataset_id

from domo_assets.assets import (
    DOMO_RESOURCE_KEY,
    build_export_assets,
    built_in_body,
    domo_export_assets,
)
from domo_assets.catalog import Catalog, load_catalog
from domo_assets.resource import DomoResource
from domo_assets.translator import DomoSpecs, translate

if TYPE_CHECKING:
    from tests.servers import Postgres

DEFAULT_EXPORTS = 100
DEFAULT_CAP = 100
DEFAULT_REPEAT = 3
MAX_RATIO = 2.0
# Issue 23's goals: (b) within 10% of Dagster's floor (d), and (a) less Domo's own export time
# within 15% of the one-export floor (e).
MAX_FANOUT_OVER_FLOOR = 1.10
MAX_SINGLE_OVER_FLOOR = 1.15
PGBOUNCER_MODE = "multiprocess/postgres+pgbouncer"
MODES = (
    "multiprocess/postgres",
    PGBOUNCER_MODE,
    "multiprocess/sqlite",
    "in-process/sqlite",
    "in-process/memory",
)
# How runs execute under `dagster dev`; the others are for `--mode all` (the naive layout on
# PostgreSQL alone takes longer than "a few minutes").
DEFAULT_MODE = "multiprocess/sqlite"
SANDBOX_READY_SECONDS = 60.0
SANDBOX_POLL_SECONDS = 0.1
CATALOG_VAR = "BENCH_FANOUT_CATALOG"
CAP_VAR = "BENCH_FANOUT_CAP"
# Where step processes write their peak memory (VmHWM) when they exit; unset: not measured.
PEAK_DIR_VAR = "BENCH_FANOUT_PEAK_DIR"
# The scale comparison (``--scale``): per-export cost from the smaller run to the larger within
# this factor (issue 23: linear).
DEFAULT_SCALE_BASE = 100
MAX_PER_EXPORT_GROWTH = 1.2
# PgBouncer in front of the cluster (``multiprocess/postgres+pgbouncer``): session pooling, the
# mode that keeps every session feature dagster-postgres may use (LISTEN/NOTIFY for run-storage
# watching, session settings); server connections are kept and reused across client connects.
PGBOUNCER_POOL_MODE = "session"
PGBOUNCER_POOL_SIZE = 40
PGBOUNCER_MAX_CLIENTS = 1000
PGBOUNCER_READY_SECONDS = 30.0
OURS_JOB = "domo_exports_fanout"
NAIVE_JOB = "naive_fanout"
FLOOR_JOB = "dagster_floor_fanout"
FLOOR_OP = "dagster_floor"
EXPORT_PATH_PREFIX = "bench/fanout"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEPLOYMENT_INSTANCE = PROJECT_ROOT / "deployment" / "dagster.yaml"
# PostgreSQL's defaults, which the postgres mode must run with to measure what a deployment pays.
DURABLE_SETTINGS = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}

Run = Callable[[], Any]


@dataclass(frozen=True)
class RunStats:
    """One measured run.

    Attributes:
        label: What ran.
        seconds: Wall time of the run.
        materializations: Export assets materialized.
        checks_passed: Asset checks that passed.
        checks: Asset checks evaluated.
        export_ids: Distinct export ids (data versions) in the materializations.
        domo_requests: Requests the sandbox's Domo API served during the run.
        domo_export_seconds: Domo's own time for the run's exports: the longest, from the
            sandbox creating an export to its end (0 without exports).
        peak_mb: The step processes' peak resident memory (the largest ``VmHWM``, MiB); None
            in the in-process modes, which have no step process.
    """

    label: str
    seconds: float
    materializations: int
    checks_passed: int
    checks: int
    export_ids: int
    domo_requests: int
    domo_export_seconds: float = 0.0
    peak_mb: float | None = None


# -- the sandbox --------------------------------------------------------------------------------


def start_sandbox(workdir: Path, datasets: int) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    """Start the sandbox CLI with `datasets` synthetic DataSets; return it and its environment."""
    env_file = workdir / "sandbox.env"
    command = [sys.executable, "-m", "domo_assets_dev.sandbox", "--env-file", str(env_file)]
    process = subprocess.Popen(
        [*command, "--synthetic-datasets", str(datasets)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + SANDBOX_READY_SECONDS
    while not env_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("the sandbox did not start")
        time.sleep(SANDBOX_POLL_SECONDS)
    env = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    return process, env


def stop_sandbox(process: subprocess.Popen[bytes]) -> None:
    """Stop the sandbox process this benchmark started."""
    process.terminate()
    process.wait(timeout=SANDBOX_READY_SECONDS)


# -- catalog and definitions --------------------------------------------------------------------


def write_catalog(path: Path, count: int) -> Catalog:
    """Write a catalog of `count` exports, one per synthetic DataSet, and load it."""
    document = {
        "defaults": {"bucket": EXPORT_BUCKET, "region": "us-east-1"},
        "exports": [
            {
                "name": f"fan_{index:03d}",
                "dataset_id": synthetic_dataset_id(index),
                "dataset_name": f"synthetic {index:03d}",
                "path": f"{EXPORT_PATH_PREFIX}/fan_{index:03d}",
            }
            for index in range(count)
        ],
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return load_catalog(path)


def resources(cap: int = DEFAULT_CAP) -> dict[str, Any]:
    """The run's resources: default settings but the cap, pointed at the sandbox."""
    return {
        "domo": DomoResource(
            instance_url=os.environ["DOMO_INSTANCE_URL"],
            developer_token=os.environ["DOMO_DEVELOPER_TOKEN"],
            max_concurrent_exports=cap,
        ),
    }


def write_at_exit(dir_var: str, document: Callable[[], dict[str, Any]]) -> None:
    """In a step process, write ``document()`` to ``$<dir_var>/<pid>.json`` when it exits.

    The step processes of the multiprocess executor are spawned children of this benchmark
    that rebuild the job by calling a job function (:func:`ours_job`, :func:`floor_job`...),
    so that is where this is registered. Nothing happens in this (the orchestrating) process or
    when the variable is unset; registering twice writes the same file twice.
    """
    target = os.environ.get(dir_var)
    if target and multiprocessing.parent_process() is not None:
        atexit.register(_write_document, Path(target), document)


def _write_document(target: Path, document: Callable[[], dict[str, Any]]) -> None:
    (target / f"{os.getpid()}.json").write_text(json.dumps(document()), encoding="utf-8")


def read_documents(target: Path) -> list[dict[str, Any]]:
    """The documents the step processes of a run wrote to `target` (:func:`write_at_exit`),
    then clear it."""
    files = sorted(target.glob("*.json"))
    documents = [json.loads(f.read_text(encoding="utf-8")) for f in files]
    for f in files:
        f.unlink()
    return documents


def record_peak_at_exit() -> None:
    """In a step process, write its peak memory to ``BENCH_FANOUT_PEAK_DIR`` when it exits.

    ``VmHWM`` is the kernel's high-water mark of the process's resident memory over its whole
    life: imports, code location load, the exports and the recording, read at exit so nothing
    after a sample is missed.
    """
    write_at_exit(PEAK_DIR_VAR, _peak)


def _peak() -> dict[str, Any]:
    """This process's ``VmHWM`` and ``VmRSS`` (kB)."""
    status = Path("/proc/self/status").read_text(encoding="utf-8").splitlines()
    fields = {line.split(":")[0]: int(line.split()[1]) for line in status if line.startswith("Vm")}
    return {"pid": os.getpid(), "hwm_kb": fields["VmHWM"], "rss_kb": fields["VmRSS"]}


def read_peaks(target: Path) -> list[int]:
    """The peaks (kB) the step processes of a run wrote to `target`, then clear it.

    Raises:
        RuntimeError: No step process wrote one (the measurement would be missing, not zero).
    """
    peaks = [document["hwm_kb"] for document in read_documents(target)]
    if not peaks:
        raise RuntimeError(f"no step process wrote its peak memory to {target}")
    return peaks


def ours_job() -> JobDefinition:
    """Our layout's job (one multi-asset) under the multiprocess executor; reconstructable."""
    record_peak_at_exit()
    specs = translate(load_catalog(os.environ[CATALOG_VAR]))
    assets = [*specs.datasets, build_export_assets(specs, retry_policy=None)]
    return _multiprocess_job(OURS_JOB, specs, assets)


def naive_job() -> JobDefinition:
    """The naive layout's job (one op per export) under the multiprocess executor.

    Module-level, like :func:`ours_job`, so that ``reconstructable`` can rebuild it in each
    step's process; the catalog comes from ``BENCH_FANOUT_CATALOG``.
    """
    record_peak_at_exit()
    specs = translate(load_catalog(os.environ[CATALOG_VAR]))
    ops = [
        domo_export_assets(
            specs=[spec],
            name=f"{spec.key.path[-1]}_export",
            retry_policy=None,
            required_resource_keys={DOMO_RESOURCE_KEY},
        )(built_in_body())
        for spec in specs.exports
    ]
    return _multiprocess_job(NAIVE_JOB, specs, [*specs.datasets, *ops])


def floor_job() -> JobDefinition:
    """Dagster's floor (d) under the multiprocess executor; reconstructable, like ours_job."""
    record_peak_at_exit()
    specs = translate(load_catalog(os.environ[CATALOG_VAR]))
    return _multiprocess_job(FLOOR_JOB, specs, floor_assets(specs))


def _multiprocess_job(name: str, specs: DomoSpecs, assets: Sequence[Any]) -> JobDefinition:
    """An asset job of every export under the multiprocess executor, resources bound."""
    job = define_asset_job(
        name,
        selection=AssetSelection.assets(*(s.key for s in specs.exports)),
        executor_def=multiprocess_executor,
    )
    cap = int(os.environ.get(CAP_VAR, DEFAULT_CAP))
    defs = Definitions(assets=assets, jobs=[job], resources=resources(cap))
    return defs.resolve_job_def(name)


def floor_assets(specs: DomoSpecs) -> list[AssetsDefinition | AssetSpec]:
    """Dagster's floor: our graph from primitives, its op yielding fixed results at once.

    The specs and check specs are the real export assets' (``build_export_assets``), so the
    floor plans, and records, exactly the checks a real run records.
    """
    real = build_export_assets(specs, retry_policy=None)
    checks_of: dict[AssetKey, list[str]] = {}
    for check in real.check_specs:
        checks_of.setdefault(check.asset_key, []).append(check.name)

    @like_real_exports(FLOOR_OP, real)
    def _floor(context: AssetExecutionContext) -> Iterator[MaterializeResult]:
        for key in sorted(context.selected_asset_keys):
            yield MaterializeResult(
                asset_key=key,
                metadata={"export_id": key.path[-1], "dagster/row_count": 20},
                data_version=DataVersion(key.path[-1]),
                check_results=[
                    AssetCheckResult(asset_key=key, check_name=name, passed=True)
                    for name in checks_of[key]
                ],
            )

    return [*specs.datasets, _floor]


def like_real_exports(name: str, real: AssetsDefinition) -> Callable[[Callable[..., Any]], Any]:
    """A subsettable ``multi_asset`` decorator named `name` with the specs and check specs of
    `real`, the real export assets: a stand-in op plans and records exactly their checks."""
    return multi_asset(
        name=name,
        specs=list(real.specs),
        check_specs=list(real.check_specs),
        can_subset=True,
    )


def expected_checks(specs: DomoSpecs, keys: Sequence[AssetKey] | None = None) -> int:
    """The check evaluations a run of `keys` (every export when None) must record: one per
    check spec the real export assets carry for them."""
    real = build_export_assets(specs, retry_policy=None)
    wanted = set(keys) if keys is not None else {s.key for s in specs.exports}
    return sum(1 for check in real.check_specs if check.asset_key in wanted)


# -- runs ---------------------------------------------------------------------------------------


def stats(
    label: str, result: Any, seconds: float, requests: int, domo_export_seconds: float = 0.0
) -> RunStats:
    """Count what a run recorded."""
    events = list(result.all_events)
    materializations = [e for e in events if e.event_type_value == "ASSET_MATERIALIZATION"]
    evaluations = [
        e.event_specific_data for e in events if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    versions = {
        e.event_specific_data.materialization.tags.get("dagster/data_version")
        for e in materializations
    }
    return RunStats(
        label=label,
        seconds=seconds,
        materializations=len(materializations),
        checks_passed=sum(1 for e in evaluations if e.passed),
        checks=len(evaluations),
        export_ids=len(versions - {None}),
        domo_requests=requests,
        domo_export_seconds=domo_export_seconds,
        peak_mb=result.peak_kb / 1024 if isinstance(result, _Detached) else None,
    )


def domo_export_seconds(exports: Sequence[Mapping[str, Any]]) -> float:
    """Domo's own time for a run's exports (the sandbox's record): the longest export, from
    its creation to its end, in seconds; 0 without exports."""
    spans = [
        (e["finished"] - e["created"]) / 1000
        for e in exports
        if e.get("finished") is not None and e.get("created") is not None
    ]
    return max(spans, default=0.0)


def timed(label: str, control: SandboxControl, run: Run) -> RunStats:
    """Reset the sandbox, then time one run and count what it recorded."""
    control.reset()
    began = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - began
    return stats(
        label,
        result,
        seconds,
        len(control.requests()),
        domo_export_seconds(control.exports()),
    )


def median_run(label: str, control: SandboxControl, run: Run, repeat: int) -> RunStats:
    """The run of median wall time among `repeat` runs."""
    runs = sorted((timed(label, control, run) for _ in range(repeat)), key=lambda r: r.seconds)
    return runs[len(runs) // 2]


def in_process(
    assets: Sequence[Any], names: Sequence[str], instance: DagsterInstance, cap: int
) -> Run:
    """A run of the selected assets with the in-process executor."""
    selection = AssetSelection.assets(*names)
    return lambda: materialize(
        assets, resources=resources(cap), instance=instance, selection=selection
    )


def out_of_process(
    job: Callable[[], JobDefinition], instance: DagsterInstance, keys: Sequence[AssetKey] | None
) -> Run:
    """A run of a reconstructable job (multiprocess executor) on a persistent instance."""

    def run() -> Any:
        with execute_job(reconstructable(job), instance=instance, asset_selection=keys) as result:
            events = list(result.all_events)
        return _Detached(events, max(read_peaks(Path(os.environ[PEAK_DIR_VAR]))))

    return run


@dataclass(frozen=True)
class _Detached:
    """The events of an ``ExecuteJobResult``, kept after its context closes, and the largest
    peak memory (kB) of its step processes."""

    all_events: list[Any]
    peak_kb: int


@contextmanager
def environment(variables: Mapping[str, str]) -> Iterator[None]:
    """Set `variables` in this process's environment for the block, then restore them."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def check_durable(cluster: "Postgres") -> None:
    """Fail unless the cluster runs with PostgreSQL's default durability (DURABLE_SETTINGS)."""
    with closing(cluster.connect()) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", (list(DURABLE_SETTINGS),)
        )
        found = dict(cursor.fetchall())
    if found != DURABLE_SETTINGS:
        raise RuntimeError(f"the PostgreSQL cluster is not durable: {found}")


def write_postgres_instance_yaml(dagster_home: Path) -> None:
    """Write ``dagster.yaml`` with deployment/dagster.yaml's ``storage`` section alone.

    The storage reads its connection settings from the ``DAGSTER_PG_*`` variables, as deployed.
    The other sections stay at Dagster's defaults, as in the SQLite modes: the deployment's
    ``domo`` pool limit, for one, would change what the runs wait for.
    """
    deployed = yaml.safe_load(DEPLOYMENT_INSTANCE.read_text(encoding="utf-8"))
    document = yaml.safe_dump({"storage": deployed["storage"]}, sort_keys=False)
    (dagster_home / "dagster.yaml").write_text(document, encoding="utf-8")


@contextmanager
def pgbouncer(cluster: "Postgres") -> Iterator[dict[str, str]]:
    """PgBouncer in front of `cluster` on a free loopback port; yields the ``DAGSTER_PG_*``
    variables that point at it.

    Session pooling (``PGBOUNCER_POOL_MODE``): dagster-postgres opens a connection per write
    (SQLAlchemy's NullPool) and closes it; PgBouncer keeps the server connection and hands it
    to the next client, so the server forks no backend per write. Clients still authenticate
    with SCRAM, as against the server (PgBouncer holds the password in its auth file and
    authenticates to the server with it). Runs as the cluster's owner when we are root
    (PgBouncer refuses root).

    Raises:
        RuntimeError: ``pgbouncer`` is not installed (``apt-get install -y pgbouncer``), or
            it did not accept connections (with its log).
    """
    from tests.servers import cluster_owner, free_port

    binary = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
    if binary is None:
        raise RuntimeError(
            f"{PGBOUNCER_MODE} needs PgBouncer: install it (apt-get install -y pgbouncer)"
        )
    owner = cluster_owner()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-fanout-pgbouncer-") as tmp:
        base = Path(tmp)
        (base / "userlist.txt").write_text(f'"{cluster.user}" "{cluster.password}"\n')
        ini = {
            "listen_addr": "127.0.0.1",
            "listen_port": port,
            "unix_socket_dir": "",
            "auth_type": "scram-sha-256",
            "auth_file": base / "userlist.txt",
            "pool_mode": PGBOUNCER_POOL_MODE,
            "default_pool_size": PGBOUNCER_POOL_SIZE,
            "max_client_conn": PGBOUNCER_MAX_CLIENTS,
            "logfile": base / "pgbouncer.log",
            # For SHOW STATS at the end (that the runs went through it).
            "admin_users": cluster.user,
        }
        (base / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"{cluster.db_name} = host={cluster.host} port={cluster.port} "
            f"dbname={cluster.db_name}\n\n[pgbouncer]\n"
            + "".join(f"{name} = {value}\n" for name, value in ini.items())
        )
        if owner:
            shutil.chown(base, owner)
            for path in base.iterdir():
                shutil.chown(path, owner)
        as_owner = ["runuser", "-u", owner, "--"] if owner else []
        process = subprocess.Popen(
            [*as_owner, binary, str(base / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        try:
            pooled = dataclasses.replace(cluster, port=port)
            _wait_for_connection(pooled, process, base / "pgbouncer.log")
            yield pooled.env()
            print_pgbouncer_stats(pooled)
        finally:
            process.terminate()
            process.wait(timeout=PGBOUNCER_READY_SECONDS)


def print_pgbouncer_stats(pooled: "Postgres") -> None:
    """Print PgBouncer's totals for the database (``SHOW STATS``): the traffic it carried."""
    connection = pooled.connect("pgbouncer")
    with closing(connection), connection.cursor() as cursor:
        cursor.execute("SHOW STATS")
        names = [column[0] for column in cursor.description]
        for row in cursor.fetchall():
            found = dict(zip(names, row, strict=True))
            if found["database"] == pooled.db_name:
                wanted = ("total_xact_count", "total_query_count", "total_server_assignment_count")
                print("PgBouncer:", ", ".join(f"{k} {found[k]}" for k in wanted if k in found))


def _wait_for_connection(pooled: "Postgres", process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until a query through PgBouncer succeeds; raise with its log if it never does."""
    deadline = time.monotonic() + PGBOUNCER_READY_SECONDS
    while True:
        try:
            with closing(pooled.connect()) as connection, connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                return
        except Exception as error:  # psycopg2.OperationalError until it listens
            if process.poll() is not None or time.monotonic() > deadline:
                text = log.read_text() if log.exists() else "(no log)"
                message = f"PgBouncer did not accept connections: {error}\n{text}"
                raise RuntimeError(message) from error
        time.sleep(SANDBOX_POLL_SECONDS)


@contextmanager
def postgres_instance(pooled: bool) -> Iterator[DagsterInstance]:
    """An instance on PostgreSQL storage as deployed, on a durable throwaway cluster; with
    `pooled`, through PgBouncer (:func:`pgbouncer`).

    ``DAGSTER_HOME`` (a directory of its own) and the ``DAGSTER_PG_*`` variables are set in
    this process's environment while the instance is open, because the multiprocess
    executor's step processes inherit the environment and load the instance from it.
    """
    # Imported here, not at the top: every step process imports this module, and tests.servers
    # imports pytest, which would add its import time to every run's step start-up.
    from tests.servers import postgres_cluster

    with (
        postgres_cluster(durable=True) as cluster,
        tempfile.TemporaryDirectory(prefix="bench-fanout-pg-home-") as home,
    ):
        check_durable(cluster)
        write_postgres_instance_yaml(Path(home))
        with ExitStack() as stack:
            variables = stack.enter_context(pgbouncer(cluster)) if pooled else cluster.env()
            stack.enter_context(environment({**variables, "DAGSTER_HOME": home}))
            with DagsterInstance.get() as instance:
                yield instance


@contextmanager
def open_instance(mode: str) -> Iterator[DagsterInstance]:
    """The mode's instance: PostgreSQL as deployed, SQLite in ``DAGSTER_HOME``, or in memory."""
    if "postgres" in mode:
        with postgres_instance(pooled=mode == PGBOUNCER_MODE) as instance:
            yield instance
    elif mode.endswith("sqlite"):
        with DagsterInstance.get() as instance:
            yield instance
    else:
        with DagsterInstance.ephemeral() as instance:
            yield instance


def runs_for(mode: str, catalog: Catalog, instance: DagsterInstance, cap: int) -> dict[str, Run]:
    """The runs (a), (b), (d) and (e) of one mode, by label (in that order)."""
    specs = translate(catalog)
    names = [c.name for c in catalog.exports]
    count = len(names)
    if mode.startswith("multiprocess"):
        first = [specs.exports[0].key]
        return {
            "(a) 1 export": out_of_process(ours_job, instance, first),
            f"(b) {count} exports, one step": out_of_process(ours_job, instance, None),
            f"(d) Dagster floor, {count} results": out_of_process(floor_job, instance, None),
            "(e) Dagster floor, 1 result": out_of_process(floor_job, instance, first),
        }
    exports = [*specs.datasets, build_export_assets(specs, retry_policy=None)]
    return {
        "(a) 1 export": in_process(exports, names[:1], instance, cap),
        f"(b) {count} exports, one step": in_process(exports, names, instance, cap),
        f"(d) Dagster floor, {count} results": in_process(
            floor_assets(specs), names, instance, cap
        ),
        "(e) Dagster floor, 1 result": in_process(floor_assets(specs), names[:1], instance, cap),
    }


def measure_mode(
    mode: str, catalog: Catalog, control: SandboxControl, args: argparse.Namespace
) -> tuple[list[RunStats], list["Mark"]]:
    """The mode's runs, each the median of ``--repeat`` after a warm-up; (c) once; then, in the
    multiprocess modes, (a) traced (unless ``--no-breakdown``)."""
    marks: list[Mark] = []
    with open_instance(mode) as instance:
        runs = runs_for(mode, catalog, instance, args.cap)
        timed("warm-up", control, next(iter(runs.values())))
        rows = [median_run(label, control, run, args.repeat) for label, run in runs.items()]
        if args.naive and mode.startswith("multiprocess"):
            label = f"(c) {len(catalog.exports)} exports, op each"
            rows.append(timed(label, control, out_of_process(naive_job, instance, None)))
        if args.breakdown and mode.startswith("multiprocess"):
            marks = traced_single(control, instance, catalog)
    return rows, marks


# -- scale: the same runs at two sizes ----------------------------------------------------------


def measure_scale(
    mode: str, workdir: Path, control: SandboxControl, args: argparse.Namespace
) -> list[RunStats]:
    """(b) and (d) at ``--scale-base`` exports, then at ``--exports``, each the median of
    ``--repeat`` after a one-export warm-up, on one instance.

    Each size has a catalog of its own (the first N synthetic DataSets), so each run loads a
    code location of exactly the exports it runs, as a deployment of that size would.
    """
    rows = []
    with open_instance(mode) as instance:
        for size in (args.scale_base, args.exports):
            path = workdir / f"exports-{size}.yaml"
            specs = translate(write_catalog(path, size))
            os.environ[CATALOG_VAR] = str(path)
            if not rows:
                warm = out_of_process(ours_job, instance, [specs.exports[0].key])
                timed("warm-up", control, warm)
            runs = {
                f"(b) {size} exports, one step": out_of_process(ours_job, instance, None),
                f"(d) Dagster floor, {size} results": out_of_process(floor_job, instance, None),
            }
            rows += [median_run(label, control, run, args.repeat) for label, run in runs.items()]
    return rows


def scale_report(mode: str, rows: Sequence[RunStats], sizes: Sequence[int]) -> list[str]:
    """Table lines of the scale runs: per-export wall time, share over the floor, memory."""
    lines = [
        f"| {mode} | wall s | ms / export | (b) / (d) | (b) - (d) ms / export | step peak MB "
        "| Domo requests / export | materializations | checks passed |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for index, size in enumerate(sizes):
        ours, floor = rows[2 * index], rows[2 * index + 1]
        for run in (ours, floor):
            is_ours = run is ours
            ratio = f"{ours.seconds / floor.seconds:.2f}" if is_ours else ""
            share = f"{(ours.seconds - floor.seconds) / size * 1000:.1f}" if is_ours else ""
            lines.append(
                f"| {run.label} | {run.seconds:.2f} | {run.seconds / size * 1000:.1f} | {ratio} "
                f"| {share} | {run.peak_mb:.0f} | {run.domo_requests / size:.2f} "
                f"| {run.materializations} | {run.checks_passed}/{run.checks} |"
            )
    return lines


def scale_verdict(mode: str, rows: Sequence[RunStats], sizes: Sequence[int]) -> bool:
    """Print the scale goals' figures; True when the per-export cost of (b) grows at most
    ``MAX_PER_EXPORT_GROWTH`` from the smaller size to the larger and every run recorded each
    export's materialization and every check."""
    (small, large) = sizes
    b_small, d_small, b_large, d_large = rows
    run_sizes = (small, small, large, large)
    per = [run.seconds / size for run, size in zip(rows, run_sizes, strict=True)]
    growth = per[2] / per[0]
    floor_growth = per[3] / per[1]
    ok = growth <= MAX_PER_EXPORT_GROWTH
    print(
        f"Goal per-export cost of (b) from {small} to {large} <= {MAX_PER_EXPORT_GROWTH:g}x, "
        f"{mode}: {per[0] * 1000:.1f} -> {per[2] * 1000:.1f} ms = "
        f"{growth:.2f}x -> {'PASS' if ok else 'MISS'} (Dagster's floor (d): {floor_growth:.2f}x)"
    )
    share_small = (b_small.seconds - d_small.seconds) / small * 1000
    share_large = (b_large.seconds - d_large.seconds) / large * 1000
    print(
        f"Our share over the floor, {mode}: (b) / (d) = {b_small.seconds / d_small.seconds:.2f} "
        f"at {small}, {b_large.seconds / d_large.seconds:.2f} at {large}; (b) - (d) = "
        f"{share_small:.1f} then {share_large:.1f} ms an export"
    )
    if any(run.peak_mb is None for run in rows):
        raise RuntimeError(f"{mode}: a scale run has no step peak memory (multiprocess only)")
    peaks = [run.peak_mb or 0.0 for run in rows]
    marginal = (peaks[2] - peaks[0]) / (large - small)
    floor_marginal = (peaks[3] - peaks[1]) / (large - small)
    print(
        f"Step peak memory, {mode}: (b) {peaks[0]:.0f} -> {peaks[2]:.0f} MB "
        f"({marginal:.3f} MB per added export; {peaks[2] / large:.3f} MB per export "
        f"overall); (d) {peaks[1]:.0f} -> {peaks[3]:.0f} MB "
        f"({floor_marginal:.3f} MB per added export)"
    )
    wrong = []
    specs = translate(load_catalog(os.environ[CATALOG_VAR]))
    for run, size in zip(rows, run_sizes, strict=True):
        keys = [s.key for s in specs.exports[:size]]
        wrong += [f"{run.label}: {p}" for p in problems(run, size, expected_checks(specs, keys))]
    for problem in wrong:
        print(f"  recorded wrongly: {problem}")
    if not wrong:
        print(f"  recorded: every run's {small} or {large} materializations and all their checks")
    return ok and not wrong


# -- one export, second by second -------------------------------------------------------------


@dataclass(frozen=True)
class Mark:
    """One timed event of a traced run.

    Attributes:
        at: Epoch seconds.
        source: ``dagster``, ``domo``, ``s3``, ``sts``, ``ledger`` or ``bench``.
        what: What happened.
    """

    at: float
    source: str
    what: str


# Phases of a one-export run: each from the first mark the first token names to the first mark
# at or after it the second names (``_names``).
PHASES = (
    (
        "Dagster's run start (run created, run process, executor)",
        "launched",
        "STEP_WORKER_STARTING",
    ),
    (
        "step process start: spawn, imports, code location load",
        "STEP_WORKER_STARTING",
        "STEP_START",
    ),
    ("step start to our first call: resources, imports of requests and boto3", "STEP_START", "s3 "),
    ("our checks before Domo: S3 guard, KMS, STS identity, Domo metadata", "s3 ", "POST "),
    ("Domo's own export (sandbox: created to ended)", "Domo export created", "Domo export ended"),
    ("export end noticed (first status read after the end)", "Domo export ended", "GET /api/"),
    (
        "Dagster recording: materialization, checks, step end",
        "ASSET_MATERIALIZATION",
        "STEP_SUCCESS",
    ),
    ("Dagster's run end (step process exit, run success)", "STEP_SUCCESS", "returned"),
)


def traced_single(
    control: SandboxControl, instance: DagsterInstance, catalog: Catalog
) -> list[Mark]:
    """Run (a) once, then gather every timed mark of it, oldest first."""
    key = translate(catalog).exports[0].key
    control.reset()
    launched = time.time()
    with execute_job(reconstructable(ours_job), instance=instance, asset_selection=[key]) as run:
        run_id = run.run_id
    read_peaks(Path(os.environ[PEAK_DIR_VAR]))  # cleared: the trace reports no memory
    marks = [Mark(launched, "bench", "launched"), Mark(time.time(), "bench", "returned")]
    for entry in instance.all_logs(run_id):
        kind = entry.dagster_event.event_type_value if entry.dagster_event else "LOG"
        text = (entry.user_message or "").splitlines()[0][:70] if kind == "LOG" else ""
        marks.append(Mark(entry.timestamp, "dagster", f"{kind} {text}".strip()))
    for request in control.requests():
        marks.append(Mark(request["time"], "domo", f"{request['method']} {request['path']}"))
    for call in control.s3_calls():
        where = f"{call['bucket']}/{call.get('key') or ''}".rstrip("/")
        marks.append(Mark(call["time"], "s3", f"s3 {call['method']} {where}"))
    for call in control.sts_calls():
        marks.append(Mark(call["time"], "sts", f"sts {call['action']}"))
    for export in control.exports():
        marks.append(Mark(export["created"] / 1000, "domo", "Domo export created"))
        if export.get("finished") is not None:
            marks.append(Mark(export["finished"] / 1000, "domo", "Domo export ended"))
    for record in instance.fetch_observations(key, limit=1).records:
        marks.append(Mark(record.timestamp, "ledger", "ledger: export start recorded"))
    return sorted(marks, key=lambda m: m.at)


def _names(mark: Mark, token: str) -> bool:
    """Whether a mark is `token`: the same text, or text that begins with it as a whole word
    (``ASSET_MATERIALIZATION`` is not ``ASSET_MATERIALIZATION_PLANNED``); a token ending in a
    space or a slash is a prefix."""
    if token.endswith((" ", "/")):
        return mark.what.startswith(token)
    return mark.what == token or mark.what.startswith(token + " ")


def breakdown(marks: Sequence[Mark]) -> list[str]:
    """Table lines: every mark with its time since launch and since the mark before, then the
    phases they delimit."""
    start = marks[0].at
    lines = ["| t s | +s | source | event |", "| ---: | ---: | --- | --- |"]
    previous = start
    for mark in marks:
        lines.append(
            f"| {mark.at - start:.3f} | {mark.at - previous:.3f} | {mark.source} | {mark.what} |"
        )
        previous = mark.at
    lines += ["", "| phase | s |", "| --- | ---: |"]
    for label, begin, end in PHASES:
        first = next((m for m in marks if _names(m, begin)), None)
        last = next((m for m in marks if first and m.at >= first.at and _names(m, end)), None)
        seconds = f"{last.at - first.at:.3f}" if first and last else "n/a"
        lines.append(f"| {label} | {seconds} |")
    lines.append(f"| whole run, as timed | {marks[-1].at - start:.3f} |")
    return lines


# -- report -------------------------------------------------------------------------------------


def report(mode: str, rows: Sequence[RunStats]) -> list[str]:
    """Table lines: each run's wall time, ratio to (a) and what it recorded."""
    single = rows[0]
    lines = [
        f"| {mode} | wall s | / (a) | materializations | checks passed | Domo requests "
        "| Domo export s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in rows:
        lines.append(
            f"| {run.label} | {run.seconds:.2f} | {run.seconds / single.seconds:.2f} | "
            f"{run.materializations} | {run.checks_passed}/{run.checks} | {run.domo_requests} "
            f"| {run.domo_export_seconds:.2f} |"
        )
    return lines


def problems(run: RunStats, exports: int, checks: int) -> list[str]:
    """What a run recorded wrongly: each of its `exports` needs its materialization (with an
    export id of its own) and every one of its `checks`, passed."""
    found = []
    if run.materializations != exports or run.export_ids != exports:
        found.append(f"{run.materializations} materializations, {run.export_ids} export ids")
    if run.checks != checks or run.checks_passed != run.checks:
        found.append(f"{run.checks_passed}/{run.checks} checks passed, {checks} expected")
    return found


def verdict(mode: str, rows: Sequence[RunStats], specs: DomoSpecs) -> bool:
    """Print the goals' figures for one mode; True when issue 23's goals pass and (a) and (b)
    recorded what the catalog's assets carry."""
    single, fanout, floor, single_floor = rows[0], rows[1], rows[2], rows[3]
    exports = len(specs.exports)
    wrong = [
        f"{run.label}: {problem}"
        for run, keys in ((single, [specs.exports[0].key]), (fanout, None))
        for problem in problems(run, len(keys or specs.exports), expected_checks(specs, keys))
    ]
    over_floor = fanout.seconds / floor.seconds
    ours_single = single.seconds - single.domo_export_seconds
    over_single_floor = ours_single / single_floor.seconds
    fanout_ok = over_floor <= MAX_FANOUT_OVER_FLOOR
    single_ok = over_single_floor <= MAX_SINGLE_OVER_FLOOR
    print(
        f"Goal (b) <= {MAX_FANOUT_OVER_FLOOR:g} x (d), {mode}: (b) / (d) = {over_floor:.2f} -> "
        f"{'PASS' if fanout_ok else 'MISS'}"
    )
    print(
        f"Goal (a) - Domo <= {MAX_SINGLE_OVER_FLOOR:g} x (e), {mode}: ({single.seconds:.2f} - "
        f"{single.domo_export_seconds:.2f}) / {single_floor.seconds:.2f} = "
        f"{over_single_floor:.2f} -> {'PASS' if single_ok else 'MISS'}"
    )
    old = fanout.seconds / single.seconds
    print(
        f"Older goal (b) <= {MAX_RATIO:g} x (a), {mode}: {old:.2f} -> "
        f"{'PASS' if old <= MAX_RATIO else 'MISS'} ({exports} exports)"
    )
    for problem in wrong:
        print(f"  recorded wrongly: {problem}")
    return fanout_ok and single_ok and not wrong


def scale_summary(results: Mapping[str, Sequence[RunStats]], args: argparse.Namespace) -> int:
    """Print the scale runs' tables and goals; exit status 0 when every mode passes."""
    sizes = (args.scale_base, args.exports)
    print(
        f"\nScale: {sizes[0]} then {sizes[1]} exports over {args.exports} synthetic DataSets, "
        f"max_concurrent_exports={args.cap}, {os.cpu_count()} CPUs, median of {args.repeat}"
    )
    for mode, rows in results.items():
        print("\n".join(["", *scale_report(mode, rows, sizes)]))
    print()
    passed = [scale_verdict(mode, rows, sizes) for mode, rows in results.items()]
    return 0 if all(passed) else 1


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exports", type=int, default=DEFAULT_EXPORTS)
    parser.add_argument("--cap", type=int, default=DEFAULT_CAP, help="max_concurrent_exports")
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT)
    parser.add_argument(
        "--mode",
        choices=[*MODES, "all"],
        nargs="+",
        default=[DEFAULT_MODE],
        help=f"one or more; default {DEFAULT_MODE} (about 6 min with the naive layout)",
    )
    parser.add_argument(
        "--scale",
        action="store_true",
        help="instead of (a)-(e): (b) and (d) at --scale-base exports and at --exports, with "
        "the step's peak memory (multiprocess modes)",
    )
    parser.add_argument("--scale-base", type=int, default=DEFAULT_SCALE_BASE)
    parser.add_argument("--naive", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--breakdown",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="in the multiprocess modes, run (a) once more, traced, and print it second by second",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; exit status 0 when every mode passes."""
    args = parse_args(argv)
    modes = MODES if "all" in args.mode else tuple(dict.fromkeys(args.mode))
    if args.scale and not all(m.startswith("multiprocess") for m in modes):
        raise SystemExit("--scale measures step processes: multiprocess modes only")
    results: dict[str, list[RunStats]] = {}
    traces: dict[str, list[Mark]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        workdir = Path(tmp)
        process, env = start_sandbox(workdir, args.exports)
        try:
            os.environ.update(env)
            os.environ.pop("AWS_SESSION_TOKEN", None)
            os.environ[CATALOG_VAR] = str(workdir / "exports.yaml")
            os.environ[CAP_VAR] = str(args.cap)
            os.environ["DAGSTER_HOME"] = str(workdir)
            os.environ[PEAK_DIR_VAR] = str(workdir / "peaks")
            (workdir / "peaks").mkdir()
            catalog = write_catalog(workdir / "exports.yaml", args.exports)
            control = SandboxControl(env["DOMO_INSTANCE_URL"])
            for mode in modes:
                if args.scale:
                    results[mode] = measure_scale(mode, workdir, control, args)
                else:
                    results[mode], traces[mode] = measure_mode(mode, catalog, control, args)
            if args.scale:
                return scale_summary(results, args)
        finally:
            stop_sandbox(process)
    print(
        f"\nFan-out: {args.exports} exports over {args.exports} synthetic DataSets, "
        f"max_concurrent_exports={args.cap}, {os.cpu_count()} CPUs"
    )
    for mode, rows in results.items():
        print("\n".join(["", *report(mode, rows)]))
    for mode, marks in traces.items():
        if marks:
            print(f"\nOne export, second by second ({mode}, a traced run of (a)):\n")
            print("\n".join(breakdown(marks)))
    print()
    specs = translate(catalog)
    passed = [verdict(mode, rows, specs) for mode, rows in results.items()]
    return 0 if all(passed) else 1


if __name__ == "__main__":
    sys.exit(main())
