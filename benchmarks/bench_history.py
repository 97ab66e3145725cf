"""Benchmark of reading a long export history: one status read and one full list, against N.

Domo's ``GET /api/query/v1/export/{id}`` answers every export the DataSet ever had, so each
status read of a poll downloads the whole history. The sandbox runs in a child process
(``python -m domo_assets_dev.sandbox``). For N finished entries (injected with its
``add_history(id, "finished", count=N)``) plus one running export (a real export with
``export_outcome="stuck"``), this measures:

* **bytes per read**: the response body's size;
* **HTTP ms**: a whole ``DomoClient.get_export`` / ``list_exports`` call (request, sandbox,
  decode, parse), median of ``--reads`` calls, for information;
* **parse ms**: the client's own work on one response, median of ``--reads`` responses (each
  fetched anew, so Domo's shuffled order varies), after one untimed warm-up parse:
  ``response.json()`` (also shown alone as **decode ms**) plus
  ``DomoClient.export_from_payload`` (find the running export's entry in one pass, parse it) for
  a status read, plus ``DomoClient.exports_from_payload`` (parse every entry, sort) for a list;
* **us per entry**: parse time over the entries in the body (N + 1): roughly constant across N
  when the work is linear.

Usage::

    .venv/bin/python benchmarks/bench_history.py
    .venv/bin/python benchmarks/bench_history.py --sizes 100 1000 10000 --reads 15 --no-gc
"""

from __future__ import annotations

import argparse
import gc
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from domo_assets_dev.sandbox import EXPORT_BUCKET, PHARMACY_CLAIMS_ID, SandboxControl

from domo_assets.domo.auth import DeveloperTokenAuth
from domo_assets.domo.client import DomoClient
from domo_assets.domo.endpoints import EXPORTS
from domo_assets.domo.models import AwsCredentials, ExportRequest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SIZES = (100, 1_000, 10_000)
DEFAULT_READS = 7
DATASET_ID = PHARMACY_CLAIMS_ID
SANDBOX_READY_SECONDS = 60.0
SANDBOX_EXIT_SECONDS = 15.0
STATUS_READ = "status read (get_export)"
FULL_LIST = "full list (list_exports)"


@dataclass(frozen=True)
class Measurement:
    """One kind of read at one history size.

    Attributes:
        read: ``STATUS_READ`` or ``FULL_LIST``.
        history: Finished entries injected (N).
        entries: Entries in the body (N + the running export).
        body_bytes: Median response body size.
        http_ms: Median wall time of the whole client call.
        decode_ms: Median time of ``response.json()`` alone (part of ``parse_ms``).
        parse_ms: Median time of decode + find/parse on one response.
    """

    read: str
    history: int
    entries: int
    body_bytes: int
    http_ms: float
    decode_ms: float
    parse_ms: float

    @property
    def us_per_entry(self) -> float:
        """Parse time per entry of the body, in microseconds."""
        return 1000 * self.parse_ms / self.entries


@dataclass(frozen=True)
class SandboxProcess:
    """A sandbox running in a child process, as its environment file describes it."""

    env: dict[str, str]

    @property
    def url(self) -> str:
        """The Domo server's base URL."""
        return self.env["DOMO_INSTANCE_URL"]

    @property
    def token(self) -> str:
        """The developer token of the sandbox's main user."""
        return self.env["DOMO_DEVELOPER_TOKEN"]

    @property
    def control(self) -> SandboxControl:
        """Its control API."""
        return SandboxControl(self.url)


@contextmanager
def sandbox_process() -> Iterator[SandboxProcess]:
    """Run ``python -m domo_assets_dev.sandbox`` in a child process until the block ends.

    A child of its own keeps the sandbox's objects (10,000 history entries, the server's
    threads) out of the measured process: its garbage collector would otherwise walk them too.
    """
    with tempfile.TemporaryDirectory() as folder:
        env_file = Path(folder) / "sandbox.env"
        child = subprocess.Popen(
            [sys.executable, "-m", "domo_assets_dev.sandbox", "--env-file", str(env_file)],
            cwd=PROJECT_ROOT,
            stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + SANDBOX_READY_SECONDS
            while not env_file.exists():
                if child.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"The sandbox did not start (exit code {child.poll()})")
                time.sleep(0.1)
            lines = env_file.read_text(encoding="utf-8").splitlines()
            yield SandboxProcess(dict(line.split("=", 1) for line in lines if "=" in line))
        finally:
            child.terminate()
            child.wait(SANDBOX_EXIT_SECONDS)


def prepare(sandbox: SandboxProcess, client: DomoClient, size: int) -> str:
    """Reset the sandbox, inject `size` finished entries and start one stuck export.

    Returns:
        The running export's id.
    """
    control = sandbox.control
    control.reset(s3=False)
    control.add_history(DATASET_ID, "finished", count=size)
    control.set_behaviour(DATASET_ID, export_outcome="stuck")
    env = sandbox.env
    request = ExportRequest(
        credentials=AwsCredentials(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]),
        bucket=EXPORT_BUCKET,
        path="bench/history",
        region="us-east-1",
    )
    return client.start_export(DATASET_ID, request).export.export_id


def median_ms(run: Callable[[], Any], reads: int) -> float:
    """Median wall time of `reads` calls of `run`, in milliseconds."""
    times = []
    for _ in range(reads):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return 1000 * statistics.median(times)


def measure(
    sandbox: SandboxProcess, client: DomoClient, size: int, reads: int
) -> tuple[Measurement, Measurement]:
    """Both kinds of read at one history size."""
    running = prepare(sandbox, client, size)
    url = sandbox.url + EXPORTS.path(DATASET_ID)
    headers = {"X-DOMO-Developer-Token": sandbox.token, "Accept": "application/json"}
    with requests.Session() as session:
        session.trust_env = False
        responses = [session.get(url, headers=headers, timeout=60) for _ in range(reads)]
    for response in responses:
        response.raise_for_status()
    entries = len(responses[0].json())
    body_bytes = int(statistics.median(len(r.content) for r in responses))
    # One untimed pass first: the first parse pays for regex compilation and imports.
    client.exports_from_payload(DATASET_ID, responses[0].json())
    decode, status_parse, list_parse = [], [], []
    for response in responses:
        began = time.perf_counter()
        payload = response.json()
        decoded = time.perf_counter()
        export = client.export_from_payload(DATASET_ID, running, payload)
        status_parse.append(time.perf_counter() - began)
        decode.append(decoded - began)
        began = time.perf_counter()
        listed = client.exports_from_payload(DATASET_ID, response.json())
        list_parse.append(time.perf_counter() - began)
        assert export.is_active and len(listed) == entries, "the history was not read whole"
    decode_ms = 1000 * statistics.median(decode)
    status = Measurement(
        STATUS_READ,
        size,
        entries,
        body_bytes,
        median_ms(lambda: client.get_export(DATASET_ID, running), reads),
        decode_ms,
        1000 * statistics.median(status_parse),
    )
    full = Measurement(
        FULL_LIST,
        size,
        entries,
        body_bytes,
        median_ms(lambda: client.list_exports(DATASET_ID), reads),
        decode_ms,
        1000 * statistics.median(list_parse),
    )
    return status, full


def report(rows: Sequence[Measurement]) -> list[str]:
    """Markdown table lines, with each row's parse time relative to the smallest size's."""
    lines = [
        "| read | N | entries | bytes per read | bytes per entry | HTTP ms | parse ms | "
        "of which decode ms | us per entry | parse ms vs smallest N |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        base = next(r for r in rows if r.read == row.read)
        lines.append(
            f"| {row.read} | {row.history:,} | {row.entries:,} | {row.body_bytes:,} | "
            f"{row.body_bytes / row.entries:.0f} | {row.http_ms:.1f} | {row.parse_ms:.2f} | "
            f"{row.decode_ms:.2f} | {row.us_per_entry:.2f} | {row.parse_ms / base.parse_ms:.1f}x |"
        )
    return lines


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=DEFAULT_SIZES)
    parser.add_argument("--reads", type=int, default=DEFAULT_READS, help="reads per median")
    parser.add_argument(
        "--no-gc",
        action="store_true",
        help="disable Python's cyclic garbage collector while measuring (a diagnosis: it "
        "separates the client's own work from the collector's)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    args = parse_args(argv)
    if args.no_gc:
        gc.disable()
    rows: list[Measurement] = []
    with sandbox_process() as sandbox:
        client = DomoClient(sandbox.url, DeveloperTokenAuth(sandbox.token))
        try:
            for size in sorted(args.sizes):
                status, full = measure(sandbox, client, size, args.reads)
                rows.extend((status, full))
                print(f"N = {size:,}: done", file=sys.stderr)
        finally:
            client.close()
    rows.sort(key=lambda r: (r.read != STATUS_READ, r.history))
    print(f"Garbage collector: {'disabled' if args.no_gc else 'enabled'}; {args.reads} reads each")
    print("\n".join(report(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
