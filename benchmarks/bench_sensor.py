"""Benchmark of the DataSet change sensor over a large catalog: Domo requests, wall time and
Dagster events per tick, and how long a change takes to be noticed.

Starts the sandbox in its own process with ``--datasets`` synthetic DataSets (default 1,000),
writes a catalog of one export per DataSet, and evaluates the sensor's ticks as the daemon does
(``SensorDefinition.evaluate_tick`` with a real ``DomoResource`` over HTTP, the catalog's default
``sensor:`` settings), for two full sweeps of the catalog:

* sweep 1, the first ever: every DataSet is read and recorded (one observation each), nothing is
  exported (``export_on_first_tick`` is off by default);
* then ``--changed`` DataSets get new rows, and sweep 2 reads every DataSet again: only the
  changed ones are observed and requested.

For each sweep: ticks, Domo requests per tick (from the sandbox's request log), the requests a
minute that makes at the sensor's ``minimum_interval_seconds``, wall time per tick, and what a
tick hands the daemon to store: observations (one event each) and run requests. A full sweep
takes ``datasets / datasets_per_tick`` ticks, so a change is noticed within that many intervals.

Goal: the default settings stay within Domo's rate guidance (about 120 requests a minute).

Usage::

    .venv/bin/python benchmarks/bench_sensor.py                    # 1,000 DataSets, 10 changed
    .venv/bin/python benchmarks/bench_sensor.py --datasets 200 --changed 5
"""

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_fanout import environment, start_sandbox, stop_sandbox, write_catalog
from dagster import DagsterInstance, SensorDefinition, build_sensor_context
from dagster._core.definitions.sensor_definition import SensorExecutionData
from domo_assets_dev.sandbox import SandboxControl, synthetic_dataset_id

from domo_assets.catalog import DEFAULT_SENSOR_REQUESTS_PER_MINUTE, SensorSettings
from domo_assets.resource import DomoResource
from domo_assets.sensors import build_change_sensor
from domo_assets.translator import translate

DEFAULT_DATASETS = 1000
DEFAULT_CHANGED = 10


@dataclass(frozen=True)
class Sweep:
    """One full pass of the sensor over the catalog."""

    label: str
    ticks: int
    requests: list[int]
    seconds: list[float]
    observations: list[int]
    run_requests: int
    exports_requested: int


def evaluate(
    sensor: SensorDefinition, resource: DomoResource, cursor: str | None
) -> SensorExecutionData:
    """One tick, as the daemon evaluates it (resources initialised, the result unpacked)."""
    with (
        DagsterInstance.ephemeral() as instance,
        build_sensor_context(
            cursor=cursor, resources={"domo": resource}, instance=instance
        ) as context,
    ):
        return sensor.evaluate_tick(context)


def sweep(
    label: str,
    sensor: SensorDefinition,
    resource: DomoResource,
    control: SandboxControl,
    cursor: str | None,
    ticks: int,
) -> tuple[Sweep, str | None]:
    """Evaluate ``ticks`` ticks from ``cursor``; return what they cost and the cursor after."""
    requests, seconds, observations = [], [], []
    run_requests = exports = 0
    for _ in range(ticks):
        control.clear_requests()
        started = time.perf_counter()
        data = evaluate(sensor, resource, cursor)
        seconds.append(time.perf_counter() - started)
        requests.append(len(control.requests()))
        observations.append(len(data.asset_events))
        run_requests += len(data.run_requests or ())
        exports += sum(len(r.asset_selection or ()) for r in data.run_requests or ())
        cursor = data.cursor
    return Sweep(label, ticks, requests, seconds, observations, run_requests, exports), cursor


def report(sweeps: Sequence[Sweep], settings: SensorSettings, datasets: int) -> list[str]:
    """The sweeps as a Markdown table, with the rate each makes at the sensor's interval."""
    per_minute = 60 / settings.minimum_interval_seconds
    lines = [
        f"DataSets: {datasets}; datasets_per_tick {settings.datasets_per_tick}, "
        f"minimum_interval_seconds {settings.minimum_interval_seconds}: a change is noticed "
        f"within {-(-datasets // settings.datasets_per_tick)} ticks "
        f"({-(-datasets // settings.datasets_per_tick) * settings.minimum_interval_seconds / 60:g}"
        " min)",
        "",
        "| sweep | ticks | Domo requests / tick (max) | requests / min | wall s / tick "
        "(median, max) | observations / tick (max) | run requests | exports requested |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in sweeps:
        lines.append(
            f"| {s.label} | {s.ticks} | {max(s.requests)} | {max(s.requests) * per_minute:g} | "
            f"{statistics.median(s.seconds):.3f}, {max(s.seconds):.3f} | {max(s.observations)} | "
            f"{s.run_requests} | {s.exports_requested} |"
        )
    return lines


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", type=int, default=DEFAULT_DATASETS)
    parser.add_argument("--changed", type=int, default=DEFAULT_CHANGED)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        process, env = start_sandbox(Path(work), args.datasets)
        try:
            with environment(env):
                control = SandboxControl(env["DOMO_INSTANCE_URL"])
                catalog = write_catalog(Path(work) / "exports.yaml", args.datasets)
                settings = catalog.sensor
                sensor = build_change_sensor(translate(catalog))
                resource = DomoResource(
                    instance_url=env["DOMO_INSTANCE_URL"],
                    developer_token=env["DOMO_DEVELOPER_TOKEN"],
                )
                ticks = -(-args.datasets // settings.datasets_per_tick)
                first, cursor = sweep("1: first ever", sensor, resource, control, None, ticks)
                for index in range(args.changed):
                    control.change_dataset(synthetic_dataset_id(index))
                second, _ = sweep(
                    f"2: {args.changed} changed", sensor, resource, control, cursor, ticks
                )
        finally:
            stop_sandbox(process)
    print("\n".join(report([first, second], settings, args.datasets)))
    rate = max(max(first.requests), max(second.requests)) * 60 / settings.minimum_interval_seconds
    within = rate <= DEFAULT_SENSOR_REQUESTS_PER_MINUTE
    missed = second.exports_requested != args.changed
    print(
        f"\nGoal (at most {DEFAULT_SENSOR_REQUESTS_PER_MINUTE} Domo requests a minute by "
        f"default): {'MET' if within else 'MISSED'} ({rate:g}); changes requested: "
        f"{second.exports_requested} of {args.changed}"
    )
    return 0 if within and not missed else 1


if __name__ == "__main__":
    sys.exit(main())
