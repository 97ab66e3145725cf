"""Benchmark of export polling: status reads and detection lag against the export's duration.

For an export lasting T seconds the goal is: the number of status reads grows about
logarithmically in T (at most 15 for T = 10 minutes) and completion is noticed within
max(1 s, 10 % of T). Measured with the default ``PollSchedule``:

* **sandbox** rows (small T): real exports of the sandbox (in this process) with
  ``export_seconds=T``, driven by ``ExportRunner`` as a materialization drives them. The first
  export of the DataSet has no history; the second has the first as history. Reads are the
  sandbox's logged ``GET /api/query/v1/export/{id}`` requests after the start request; the lag
  is the last read's time minus the export's ``finished`` time.
* **simulated** rows (any T): the same ``DomoClient.wait_for_export`` loop on a simulated clock
  (the status read answers "exporting" until T, the waits advance the clock; the timeout is
  raised above T), with the history saying T (accurate), nothing, or a duration 1.5 x too short
  or too long; and the schedule this project used before (1 s growing x1.5 up to 30 s) as
  ``legacy``.

Usage::

    .venv/bin/python benchmarks/bench_polling.py
    .venv/bin/python benchmarks/bench_polling.py --sandbox 2 10 30 --simulate 2 10 60 600 3600
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from domo_assets_dev.sandbox import EXPORT_BUCKET, PHARMACY_CLAIMS_ID, Sandbox

from domo_assets.catalog import ExportConfig
from domo_assets.domo.auth import DeveloperTokenAuth
from domo_assets.domo.client import DomoClient, PollSchedule
from domo_assets.domo.models import Export, ExportStatus
from domo_assets.runner import ExportRunner
from domo_assets.s3.credentials import CredentialProvider, CredentialsMode

DEFAULT_SANDBOX_SECONDS = (2.0, 10.0)
DEFAULT_SIMULATED_SECONDS = (2.0, 10.0, 60.0, 600.0, 3600.0)
GOAL_READS_AT_10_MINUTES = 15
GOAL_LAG_FLOOR = 1.0
GOAL_LAG_FRACTION = 0.1
TEN_MINUTES = 600.0
EXPORT_PATH = "/api/query/v1/export/"
# What the DataSet's history says, as a factor of the export's real duration T.
HISTORIES = {"accurate": 1.0, "none": None, "T = 1.5 x history": 1 / 1.5, "T = history / 1.5": 1.5}
ACCURATE = "accurate"
# The schedule before this change (no history; 1 s growing x1.5 up to 30 s), for comparison.
LEGACY_SCHEDULE = PollSchedule(initial_interval=1.0, max_interval=30.0, backoff=1.5)
LEGACY = "none (legacy 1-30 s x1.5)"


@dataclass(frozen=True)
class Measurement:
    """One export's polling.

    Attributes:
        source: ``sandbox`` or ``simulated``.
        seconds: The export's duration T.
        history: What the history said (``accurate``, ``none``...).
        reads: Status reads after the start request.
        lag: Seconds between the end of the export and the read that saw it.
    """

    source: str
    seconds: float
    history: str
    reads: int
    lag: float

    @property
    def lag_limit(self) -> float:
        """The goal's largest lag for this duration."""
        return max(GOAL_LAG_FLOOR, GOAL_LAG_FRACTION * self.seconds)

    @property
    def passed(self) -> bool:
        """Lag within the limit, and at most 15 reads up to ten minutes."""
        reads_ok = self.seconds > TEN_MINUTES or self.reads <= GOAL_READS_AT_10_MINUTES
        return reads_ok and self.lag <= self.lag_limit


# -- simulated clock ----------------------------------------------------------------------------


class SimulatedClock:
    """A monotonic clock that only moves when someone waits."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class SimulatedStop(threading.Event):
    """A stop event whose waits advance the simulated clock instead of sleeping."""

    def __init__(self, clock: SimulatedClock) -> None:
        super().__init__()
        self._clock = clock

    def wait(self, timeout: float | None = None) -> bool:
        self._clock.now += timeout or 0.0
        return False


class SimulatedDomo(DomoClient):
    """A client whose status read answers from the simulated clock (no HTTP)."""

    def __init__(self, clock: SimulatedClock, duration: float) -> None:
        super().__init__("http://127.0.0.1:9", DeveloperTokenAuth("simulated-token"), clock=clock)
        self.clock = clock
        self.duration = duration
        self.reads: list[float] = []

    def get_export(self, dataset_id: str, export_id: str) -> Export:
        self.reads.append(self.clock())
        done = self.clock() >= self.duration
        return Export(export_id, ExportStatus.SUCCESS if done else ExportStatus.EXPORTING)


def simulate(duration: float, history: str, schedule: PollSchedule) -> Measurement:
    """Poll an export lasting `duration` on a simulated clock, as the runner polls a fresh one."""
    clock = SimulatedClock()
    client = SimulatedDomo(clock, duration)
    factor = HISTORIES.get(history)
    client.wait_for_export(
        "dataset",
        "export",
        replace(schedule, timeout=max(schedule.timeout, 2 * duration)),
        stop=SimulatedStop(clock),
        expected_seconds=None if factor is None else duration * factor,
        current=Export("export", ExportStatus.EXPORTING),
    )
    return Measurement(
        "simulated", duration, history, len(client.reads), client.reads[-1] - duration
    )


# -- the sandbox --------------------------------------------------------------------------------


def sandbox_runs(sandbox: Sandbox, seconds: float, schedule: PollSchedule) -> list[Measurement]:
    """Two real exports lasting `seconds`: without history, then with the first as history."""
    control = sandbox.control
    control.reset()
    control.set_behaviour(PHARMACY_CLAIMS_ID, export_seconds=seconds)
    config = ExportConfig(
        name="claims",
        dataset_id=PHARMACY_CLAIMS_ID,
        bucket=EXPORT_BUCKET,
        region="us-east-1",
        path="bench/polling",
    )
    client = DomoClient(sandbox.domo_url, DeveloperTokenAuth(sandbox.token))
    s3 = sandbox.s3_client()
    runner = ExportRunner(
        client=client,
        s3_client=s3,
        # The sandbox's keys, handed over as they are: STS plays no part in what is measured.
        credentials=CredentialProvider(
            boto3.Session(),
            CredentialsMode.CHAIN,
            allow_unscoped_credentials=True,
            allow_long_lived=True,
        ),
        schedule=schedule,
        log=logging.getLogger("bench_polling"),
    )
    measurements = []
    try:
        for history in ("none", ACCURATE):
            control.clear_requests()
            outcome = runner.run(config)
            measurements.append(_measured(sandbox, outcome.export, seconds, history))
            control.change_dataset(PHARMACY_CLAIMS_ID, rows=1)
    finally:
        client.close()
        s3.close()
    return measurements


def _measured(sandbox: Sandbox, export: Export, seconds: float, history: str) -> Measurement:
    record = next(e for e in sandbox.control.exports() if e["export_id"] == export.export_id)
    requests = sandbox.control.requests()
    posted = next(r["time"] for r in requests if r["method"] == "POST" and EXPORT_PATH in r["path"])
    reads = [
        r["time"]
        for r in requests
        if r["method"] == "GET" and EXPORT_PATH in r["path"] and r["time"] > posted
    ]
    return Measurement(
        "sandbox", seconds, history, len(reads), reads[-1] - record["finished"] / 1000
    )


# -- report -------------------------------------------------------------------------------------


def report(rows: Sequence[Measurement]) -> list[str]:
    """Markdown table lines."""
    lines = [
        "| source | T s | history | status reads | lag s | lag limit s | verdict |",
        "| --- | ---: | --- | ---: | ---: | ---: | --- |",
    ]
    for row in rows:
        verdict = ("PASS" if row.passed else "MISS") if row.history == ACCURATE else "(info)"
        lines.append(
            f"| {row.source} | {row.seconds:g} | {row.history} | {row.reads} | {row.lag:.2f} | "
            f"{row.lag_limit:.1f} | {verdict} |"
        )
    return lines


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sandbox", type=float, nargs="*", default=DEFAULT_SANDBOX_SECONDS)
    parser.add_argument("--simulate", type=float, nargs="*", default=DEFAULT_SIMULATED_SECONDS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; exit status 0 when every row with accurate history passes."""
    args = parse_args(argv)
    schedule = PollSchedule()
    rows: list[Measurement] = []
    if args.sandbox:
        with Sandbox() as sandbox:
            os.environ.update(sandbox.env())
            os.environ.pop("AWS_SESSION_TOKEN", None)
            for seconds in args.sandbox:
                rows.extend(sandbox_runs(sandbox, seconds, schedule))
    for seconds in args.simulate:
        rows.extend(simulate(seconds, history, schedule) for history in HISTORIES)
        rows.append(simulate(seconds, LEGACY, LEGACY_SCHEDULE))
    print(f"Polling with the default schedule: {schedule}")
    print("\n".join(report(rows)))
    goal_rows = [row for row in rows if row.history == ACCURATE]
    passed = all(row.passed for row in goal_rows)
    print(
        f"\nGoal (reads <= {GOAL_READS_AT_10_MINUTES} up to 10 min, lag <= max(1 s, 10 % of T), "
        f"with history): {'PASS' if passed else 'MISS'}"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
