"""Experiment: how close to Dagster's floor can 100 exports in one step get on this machine?

Issue 23 asks for (b) within 10% of (d) (``bench_fanout.py``). In (b) the step's process does
two things: Dagster records every export's events (its main thread), and the exports' own HTTP
work (Domo, STS, S3, the ledger's writes, publication) runs in its threads under the same GIL.
This script measures the bound of taking all of that work out of the step's process:

* (b) our layout, as shipped (``bench_fanout.ours_job``);
* (f) the same assets and checks, whose op forks a child process at its start; the child drives
  every selected export with the library's own ``ExportRunner`` (the resource's clients and
  settings, the instance's ledger), sends each verified outcome to the step over a pipe, and
  publishes it (pointer, retention) once the step says Dagster recorded it, after checking that
  Dagster's latest materialization names it. The step only turns outcomes into results (the same
  metadata and check results as (b)) and yields them. Not a shipped layout: it skips what the
  shipped one guarantees around it (termination, step retries, a failed export's report);
* (d) Dagster's floor (``bench_fanout.floor_job``).

Each is the median of ``--repeat`` runs on multiprocess/sqlite with the sandbox in its own
process, reset before each run. For each run the script also reads the CPU seconds of the step's
process (its own, and its reaped children's: the export child of (f)) and of the sandbox's
process (its Domo, S3 and STS servers), from ``/proc`` and ``getrusage``: on a 2-CPU machine
the export traffic's CPU on both sides competes with Dagster's recording for the same cores.

Usage::

    .venv/bin/python benchmarks/bench_split.py                 # 100 exports, cap 16, 3 runs each
    .venv/bin/python benchmarks/bench_split.py --cap 8 --repeat 5
"""

import argparse
import dataclasses
import os
import pickle
import struct
import sys
import tempfile
import threading
import traceback
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_fanout as fanout
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    DagsterInstance,
    DataVersion,
    JobDefinition,
    MaterializeResult,
    build_resources,
)
from domo_assets_dev.sandbox import SandboxControl

from domo_assets.assets import build_export_assets
from domo_assets.catalog import load_catalog
from domo_assets.checks import check_results
from domo_assets.metadata import materialization_metadata
from domo_assets.translator import DomoSpecs, export_config, translate

SPLIT_JOB = "split_fanout"
SPLIT_OP = "split_exports"
DEFAULT_CAP = 16
CPU_DIR_VAR = "BENCH_SPLIT_CPU_DIR"
_LENGTH = struct.Struct(">I")


# -- CPU accounting -----------------------------------------------------------------------------


def record_cpu_at_exit() -> None:
    """In a step process, write its CPU seconds (its own and its reaped children's) at exit."""
    fanout.write_at_exit(CPU_DIR_VAR, _cpu)


def _cpu() -> dict[str, float]:
    times = os.times()
    return {
        "step": times.user + times.system,
        "children": times.children_user + times.children_system,
    }


def read_cpu(target: Path) -> dict[str, float]:
    """The CPU seconds the run's step processes wrote, summed; then clear them."""
    found = {"step": 0.0, "children": 0.0}
    for document in fanout.read_documents(target):
        for name, seconds in document.items():
            found[name] += seconds
    return found


def process_cpu(pid: int) -> float:
    """CPU seconds (user and system) a live process has used, from ``/proc``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the jobs (module level: the step processes rebuild them) -----------------------------------


def ours_job() -> JobDefinition:
    """(b): our shipped layout."""
    record_cpu_at_exit()
    return fanout.ours_job()


def floor_job() -> JobDefinition:
    """(d): Dagster's floor."""
    record_cpu_at_exit()
    return fanout.floor_job()


def split_job() -> JobDefinition:
    """(f): the exports driven in a forked child, the step only recording."""
    record_cpu_at_exit()
    fanout.record_peak_at_exit()
    specs = translate(load_catalog(os.environ[fanout.CATALOG_VAR]))
    return fanout._multiprocess_job(SPLIT_JOB, specs, split_assets(specs))


def split_assets(specs: DomoSpecs) -> list[AssetsDefinition | AssetSpec]:
    """The real export assets' specs and checks under an op that records what a child exports."""

    @fanout.like_real_exports(SPLIT_OP, build_export_assets(specs, retry_policy=None))
    def _split(context: AssetExecutionContext) -> Iterator[MaterializeResult]:
        keys = {
            export_config(spec).name: spec.key
            for spec in context.assets_def.specs
            if spec.key in context.selected_asset_keys
        }
        yield from record_from_child(context.run_id, keys)

    return [*specs.datasets, _split]


def record_from_child(run_id: str, keys: dict[str, AssetKey]) -> Iterator[MaterializeResult]:
    """Fork the export child, yield each outcome it sends, and tell it each was recorded."""
    # Imported before the fork, so that the child starts with them loaded.
    import domo_assets.ledger
    import domo_assets.publish
    import domo_assets.runner  # noqa: F401

    outcomes_read, outcomes_write = os.pipe()
    acks_read, acks_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(outcomes_read)
        os.close(acks_write)
        code = 1
        try:
            with open(outcomes_write, "wb") as out, open(acks_read, "rb") as acks:
                drive_exports(run_id, sorted(keys), out, acks)
            code = 0
        finally:
            os._exit(code)
    os.close(outcomes_write)
    os.close(acks_read)
    instance_url = os.environ["DOMO_INSTANCE_URL"]
    with open(outcomes_read, "rb") as outcomes, open(acks_write, "wb") as acks:
        for _ in keys:
            header = outcomes.read(_LENGTH.size)
            if len(header) < _LENGTH.size:
                raise RuntimeError("the export child ended before sending every outcome")
            name, outcome = pickle.loads(outcomes.read(_LENGTH.unpack(header)[0]))
            key = keys[name]
            yield MaterializeResult(
                asset_key=key,
                metadata=materialization_metadata(outcome, instance_url),
                data_version=DataVersion(outcome.export.export_id),
                check_results=check_results(outcome, key),
            )
            # Dagster stored the result's events before resuming this generator.
            acks.write(name.encode() + b"\n")
            acks.flush()
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise RuntimeError(f"the export child failed (wait status {status})")


def drive_exports(run_id: str, names: Sequence[str], out: IO[bytes], acks: IO[bytes]) -> None:
    """In the child: run every export with the library's runner, send each outcome, publish
    each one the step acknowledges."""
    import logging

    from domo_assets.ledger import InstanceLedger, LatestMaterializations
    from domo_assets.publish import new_glue_clients, publish
    from domo_assets.runner import ExportRunner
    from domo_assets.verdicts import verified

    catalog = load_catalog(os.environ[fanout.CATALOG_VAR])
    configs = {c.name: c for c in catalog.exports}
    keys = {export_config(s).name: s.key for s in translate(catalog).exports}
    cap = int(os.environ[fanout.CAP_VAR])
    log = logging.getLogger("bench_split")
    lock = threading.Lock()
    with build_resources(fanout.resources(cap)) as built, DagsterInstance.get() as instance:
        domo = built.domo
        s3 = domo.s3.get_client()
        runner = ExportRunner(
            client=domo.get_client(log=log),
            s3_client=s3,
            credentials=domo.aws_credentials.get_provider(),
            schedule=domo.poll_schedule,
            log=log,
            stale_after=domo.stale_export_after,
        )
        latest = LatestMaterializations(instance)
        ledgers = {n: InstanceLedger(instance, keys[n], None, run_id, latest) for n in names}
        glue = new_glue_clients()
        outcomes: dict[str, Any] = {}

        def export(name: str) -> None:
            try:
                outcome = runner.run(configs[name], ledger=ledgers[name])
                if not verified(outcome):
                    raise RuntimeError(f"{name}: not verified")
            except BaseException:
                # The step waits for this export's outcome: end the child, so that it reads the
                # end of the pipe and fails instead of waiting for ever.
                traceback.print_exc()
                os._exit(1)
            outcomes[name] = outcome
            # The minted keys stay in this process: the step needs only what the grant says.
            grant = dataclasses.replace(outcome.credentials, credentials=None)
            data = pickle.dumps((name, dataclasses.replace(outcome, credentials=grant)))
            with lock:
                out.write(_LENGTH.pack(len(data)) + data)
                out.flush()

        def publish_recorded(name: str) -> None:
            outcome = outcomes[name]
            recorded = ledgers[name].latest_materialization()
            if recorded is None or recorded.export_id != outcome.export.export_id:
                raise RuntimeError(f"{name}: Dagster's latest materialization is not this export")
            manifest = outcome.to_manifest()
            publish(
                configs[name],
                manifest,
                outcome.manifest_uri,
                s3,
                glue,
                protected={outcome.export.export_id},
            )

        with ThreadPoolExecutor(max_workers=cap) as pool:
            futures: list[Future[None]] = [pool.submit(export, n) for n in names]
            futures += [pool.submit(publish_recorded, line.decode().strip()) for line in acks]
            for future in futures:
                future.result()


# -- measuring ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Measured:
    """One run: wall time, what it recorded, and CPU seconds by process."""

    stats: fanout.RunStats
    step_cpu: float
    child_cpu: float
    sandbox_cpu: float


def measure(label: str, control: SandboxControl, run: fanout.Run, sandbox_pid: int) -> Measured:
    """Time one run (sandbox reset first) and read the CPU its processes used."""
    before = process_cpu(sandbox_pid)
    stats = fanout.timed(label, control, run)
    sandbox = process_cpu(sandbox_pid) - before
    cpu = read_cpu(Path(os.environ[CPU_DIR_VAR]))
    return Measured(stats, cpu["step"], cpu["children"], sandbox)


def median(runs: Sequence[Measured]) -> Measured:
    """The run of median wall time."""
    return sorted(runs, key=lambda m: m.stats.seconds)[len(runs) // 2]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exports", type=int, default=fanout.DEFAULT_EXPORTS)
    parser.add_argument("--cap", type=int, default=DEFAULT_CAP, help="max_concurrent_exports")
    parser.add_argument("--repeat", type=int, default=fanout.DEFAULT_REPEAT)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure (b), (f) and (d); print them with their CPU seconds and ratios to (d)."""
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-split-") as tmp:
        workdir = Path(tmp)
        process, env = fanout.start_sandbox(workdir, args.exports)
        try:
            for name in ("peaks", "cpu"):
                (workdir / name).mkdir()
            os.environ.update(env)
            os.environ.pop("AWS_SESSION_TOKEN", None)
            os.environ.update(
                {
                    fanout.CATALOG_VAR: str(workdir / "exports.yaml"),
                    fanout.CAP_VAR: str(args.cap),
                    "DAGSTER_HOME": str(workdir),
                    fanout.PEAK_DIR_VAR: str(workdir / "peaks"),
                    CPU_DIR_VAR: str(workdir / "cpu"),
                }
            )
            catalog = fanout.write_catalog(workdir / "exports.yaml", args.exports)
            control = SandboxControl(env["DOMO_INSTANCE_URL"])
            count = len(catalog.exports)
            with DagsterInstance.get() as instance:
                runs = {
                    f"(b) {count} exports, shipped layout": ours_job,
                    f"(f) {count} exports, exports in a forked child": split_job,
                    f"(d) Dagster floor, {count} results": floor_job,
                }
                fanout.timed("warm-up", control, fanout.out_of_process(ours_job, instance, None))
                read_cpu(workdir / "cpu")
                rows = {
                    label: median(
                        [
                            measure(
                                label,
                                control,
                                fanout.out_of_process(job, instance, None),
                                process.pid,
                            )
                            for _ in range(args.repeat)
                        ]
                    )
                    for label, job in runs.items()
                }
        finally:
            fanout.stop_sandbox(process)
    print(
        f"\nSplit bound: {args.exports} exports, max_concurrent_exports={args.cap}, "
        f"{os.cpu_count()} CPUs, medians of {args.repeat}, multiprocess/sqlite\n"
    )
    floor = list(rows.values())[-1].stats.seconds
    checks = fanout.expected_checks(translate(catalog))
    print("| run | wall s | / (d) | step CPU s | export child CPU s | sandbox CPU s | recorded |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for label, m in rows.items():
        wrong = fanout.problems(m.stats, count, checks)
        print(
            f"| {label} | {m.stats.seconds:.2f} | {m.stats.seconds / floor:.2f} | "
            f"{m.step_cpu:.2f} | {m.child_cpu:.2f} | {m.sandbox_cpu:.2f} | "
            f"{'; '.join(wrong) or 'all'} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
