"""Benchmark of the CSV-to-Parquet conversion: one large gzip export streamed from moto's S3.

Generates (once, cached) a gzip CSV of ``--mb`` MiB uncompressed with Domo's types (LONG,
STRING, DECIMAL, DOUBLE, DATETIME, DATE) and awkward strings (quoted commas, doubled quotes,
``\\n`` and ``\\r\\n`` inside fields, multi-byte UTF-8, a BOM, nulls), written as Domo writes
it, puts it in a local moto S3 server (its own process, as ``bench_verify.py`` does), then runs
each candidate in a subprocess of its own that reports its wall and CPU time and its peak RSS
above the RSS before the run:

* ``read``: pyarrow alone, the reference: the same streaming GET, pyarrow's gzip stream and
  ``pyarrow.csv.open_csv`` with the same typed schema and options as the conversion, every batch
  read and counted, nothing written;
* ``convert``: ``domo_assets.s3.parquet.convert_export`` with its defaults (snappy), writing the
  Parquet file back to moto's S3 by multipart upload;
* ``convert-zstd``: the same with ``parquet_compression="zstd"``.

It prints a Markdown table (the one in ``benchmarks/README.md``): seconds, MB/s of uncompressed
CSV, the ratio to ``read`` (wall time, and CPU time), peak MB, rows, Parquet MB and row groups,
and PASS/MISS against the goals (ratio >= 0.5, peak < 300 MB).

Usage::

    .venv/bin/python benchmarks/bench_parquet.py --mb 200
    .venv/bin/python benchmarks/bench_parquet.py --mb 1024 --repeat 2
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# Imported here, before any measurement: import time and memory stay out of every child's figures.
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from bench_verify import (  # the same data cache, server, client and measurement
    FRAGMENTS,
    MB,
    NAMES,
    Dataset,
    _cpu_seconds,
    _status_kb,
    ensure_dataset,
    free_port,
    render_csv,
    s3_client,
    start_moto,
    upload,
)

from domo_assets.domo.models import DataSetColumn
from domo_assets.s3.parquet import (
    CSV_BLOCK_SIZE,
    PARQUET_CODEC,
    PART_SIZE,
    ROW_GROUP_BYTES,
    arrow_schema,
    convert_export,
    parquet_key,
)

DEFAULT_MB = 1024
DEFAULT_CACHE_DIR = Path(tempfile.gettempdir()) / "domo-bench-parquet"
SEED = 20260517
BUCKET = "bench-parquet"
KEY = "exports/bench/export/data.csv.gz"
PARQUET_PREFIX = "exports/bench/parquet"
COLUMNS = (
    DataSetColumn("Event ID", "LONG"),
    DataSetColumn("Customer", "STRING"),
    DataSetColumn("Comment", "STRING"),
    DataSetColumn("Amount", "DECIMAL"),
    DataSetColumn("Ratio", "DOUBLE"),
    DataSetColumn("Created", "DATETIME"),
    DataSetColumn("Day", "DATE"),
    DataSetColumn("Tags", "STRING"),
)
ROWS_PER_BATCH = 20_000
POOL_SIZE = 4096
GZIP_LEVEL = 6
NULL_ONE_IN = 20
"""About one value in 20 of each nullable column is null (an empty field)."""
REFERENCE = "read"
MIN_THROUGHPUT_RATIO = 0.5
MAX_PEAK_MB = 300


# --- candidates -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """The sizes every candidate runs with (the conversion's defaults unless told)."""

    block_size: int = CSV_BLOCK_SIZE
    row_group_bytes: int = ROW_GROUP_BYTES
    part_size: int = PART_SIZE

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        """The sizes of ``--block-mb``, ``--row-group-mb`` and ``--part-mb``."""
        return cls(int(args.block_mb * MB), int(args.row_group_mb * MB), int(args.part_mb * MB))


@dataclass(frozen=True)
class Counted:
    """What a candidate read and wrote."""

    rows: int
    parquet_bytes: int = 0
    row_groups: int = 0


def read_with_pyarrow(client: Any, settings: Settings) -> Counted:
    """pyarrow alone: the conversion's reading, with its schema and options, nothing written."""
    body = client.get_object(Bucket=BUCKET, Key=KEY)["Body"]
    stream = pa.CompressedInputStream(pa.PythonFile(body, mode="r"), "gzip")
    reader = pacsv.open_csv(
        stream,
        read_options=pacsv.ReadOptions(block_size=settings.block_size, use_threads=True),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=arrow_schema(COLUMNS),
            null_values=[""],
            strings_can_be_null=False,
            quoted_strings_can_be_null=True,
        ),
    )
    return Counted(sum(batch.num_rows for batch in reader))


def convert(client: Any, settings: Settings, codec: str = PARQUET_CODEC) -> Counted:
    """``convert_export`` of the object into Parquet in the same bucket."""
    result = convert_export(
        client,
        [(BUCKET, KEY)],
        COLUMNS,
        compression="gzip",
        bucket=BUCKET,
        key_prefix=PARQUET_PREFIX,
        parquet_compression=codec,
        row_group_bytes=settings.row_group_bytes,
        block_size=settings.block_size,
        part_size=settings.part_size,
    )
    written = result.files[0]
    return Counted(result.rows, written.size, written.row_groups)


CANDIDATES: dict[str, Callable[[Any, Settings], Counted]] = {
    REFERENCE: read_with_pyarrow,
    "convert": convert,
    "convert-zstd": lambda client, settings: convert(client, settings, "zstd"),
}


def parquet_rows(client: Any) -> int:
    """The rows the Parquet file's footer records (read after the measurement)."""
    body = client.get_object(Bucket=BUCKET, Key=parquet_key(PARQUET_PREFIX, 0))["Body"]
    return pq.read_metadata(io.BytesIO(body.read())).num_rows


# --- data -------------------------------------------------------------------------------------


def _batches(target_bytes: int) -> Iterator[tuple[bytes, int]]:
    """CSV bytes (BOM and header first) in batches of rows, until ``target_bytes``."""
    rng = random.Random(SEED)
    comments = [" ".join(rng.choices(FRAGMENTS, k=rng.randint(1, 4))) for _ in range(POOL_SIZE)]
    tags = [",".join(rng.sample(("a", "b b", 'c"c', "d\nd", "é"), 3)) for _ in range(POOL_SIZE)]
    yield render_csv([[c.name for c in COLUMNS]], bom=True), 0
    written, row_id = 0, 0
    while written < target_bytes:
        rows = []
        for _ in range(ROWS_PER_BATCH):
            row_id += 1
            rows.append(_row(rng, row_id, comments, tags))
        batch = render_csv(rows, bom=False)
        written += len(batch)
        yield batch, len(rows)


def _row(rng: random.Random, row_id: int, comments: list[str], tags: list[str]) -> list[str]:
    """One record's fields as Domo writes them (null: an empty field)."""
    month, day = rng.randint(1, 12), rng.randint(1, 28)
    values = [
        str(row_id),
        rng.choice(NAMES),
        comments[rng.randrange(POOL_SIZE)],
        f"{rng.uniform(-1e6, 1e6):.2f}",
        repr(rng.random() * 100),
        f"2026-{month:02d}-{day:02d}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:00",
        f"2026-{month:02d}-{day:02d}",
        tags[rng.randrange(POOL_SIZE)],
    ]
    nullable = range(3, 7)  # Amount, Ratio, Created, Day
    return [
        "" if i in nullable and rng.randrange(NULL_ONE_IN) == 0 else v for i, v in enumerate(values)
    ]


# --- measurement ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """One measurement: times, peak RSS above the baseline, what was read and written."""

    seconds: float
    cpu_seconds: float
    peak_mb: float | None
    rows: int | None
    parquet_bytes: int = 0
    row_groups: int = 0
    footer_rows: int | None = None
    problem: str | None = None
    server_cpu_seconds: float | None = None
    """CPU seconds of moto's server during the run (it shares the machine's cores)."""


def run_child(args: argparse.Namespace) -> None:
    """Measure one candidate in this (fresh) process; print JSON."""
    client = s3_client(args.endpoint)
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    baseline_kb = _status_kb("VmRSS")
    started, cpu = time.perf_counter(), _cpu_seconds(resource.RUSAGE_SELF)
    counted = CANDIDATES[args.child](client, Settings.from_args(args))
    seconds = time.perf_counter() - started
    cpu_seconds = _cpu_seconds(resource.RUSAGE_SELF) - cpu
    peak_mb = (_status_kb("VmHWM") - baseline_kb) / 1024
    footer = parquet_rows(client) if counted.parquet_bytes else None
    result = Result(
        seconds,
        cpu_seconds,
        peak_mb,
        counted.rows,
        counted.parquet_bytes,
        counted.row_groups,
        footer,
    )
    print(json.dumps(asdict(result)))


def measure(candidate: str, server_pid: int, endpoint: str, args: argparse.Namespace) -> Result:
    """Run one candidate in a subprocess; return what it measured, with moto's CPU time."""
    command = [sys.executable, __file__, "--child", candidate, "--endpoint", endpoint]
    command += ["--block-mb", str(args.block_mb), "--row-group-mb", str(args.row_group_mb)]
    command += ["--part-mb", str(args.part_mb)]
    server_cpu = _process_cpu_seconds(server_pid)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    server_cpu = _process_cpu_seconds(server_pid) - server_cpu
    if done.returncode != 0:
        error = (done.stderr.strip().splitlines() or ["failed"])[-1]
        return Result(float("nan"), float("nan"), None, None, problem=error)
    return Result(**{**json.loads(done.stdout), "server_cpu_seconds": server_cpu})


def _process_cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of another process so far (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rounds(
    args: argparse.Namespace, candidates: Sequence[str], server_pid: int, endpoint: str
) -> dict[str, Result]:
    """Run every candidate ``repeat`` rounds, interleaved; keep each one's fastest run.

    The peak memory kept is the highest of the rounds.
    """
    best: dict[str, Result] = {}
    for _ in range(args.repeat):
        for candidate in candidates:
            result = measure(candidate, server_pid, endpoint, args)
            previous = best.get(candidate)
            if previous is None or result.seconds < previous.seconds:
                peaks = [r.peak_mb for r in (result, previous) if r and r.peak_mb is not None]
                best[candidate] = replace(result, peak_mb=max(peaks, default=None))
    return best


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the options, then generate, upload, measure and print the table."""
    args = _parser().parse_args(argv)
    if args.child:
        run_child(args)
        return
    dataset = ensure_dataset(args.cache_dir, args.mb, name="parquet", batches=_batches)
    candidates = args.candidates.split(",")
    if REFERENCE not in candidates:
        candidates.insert(0, REFERENCE)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = start_moto(port)
    try:
        upload_seconds = upload(endpoint, dataset, bucket=BUCKET, key=KEY)
        results = rounds(args, candidates, server.pid, endpoint)
    finally:
        server.terminate()
        server.wait()
    print(_summary(dataset, upload_seconds, args))
    print("\n".join(_table(dataset, results)))


def _summary(dataset: Dataset, upload_seconds: float, args: argparse.Namespace) -> str:
    return (
        f"object: {dataset.data_bytes / MB:.0f} MiB CSV, {dataset.compressed_bytes / MB:.0f} "
        f"MiB gzip, {dataset.records} records; upload to moto {upload_seconds:.1f}s; "
        f"CSV blocks {args.block_mb:g} MiB, row groups {args.row_group_mb:g} MiB of Arrow data, "
        f"upload parts {args.part_mb:g} MiB; "
        f"best of {args.repeat} round(s); {os.cpu_count()} CPU(s)"
    )


def _table(dataset: Dataset, results: dict[str, Result]) -> list[str]:
    """The Markdown table: throughput relative to ``read``, memory, output, goals.

    ``ratio`` is ``read``'s wall time over the candidate's (the goal's measure); ``CPU ratio``
    the same with CPU seconds (every thread), which shared cores disturb less.
    """
    data_mb = dataset.data_bytes / MB
    reference = results[REFERENCE]
    lines = [
        "| candidate | seconds | MB/s | ratio | CPU s | CPU ratio | moto CPU s | peak MB | rows "
        "| Parquet MB | row groups | throughput >= 0.5 | memory < 300 MB |",
        "|---|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|---|---|",
    ]
    for candidate, result in results.items():
        ratio = reference.seconds / result.seconds
        peak = "-" if result.peak_mb is None else f"{result.peak_mb:.1f}"
        memory = "-" if result.peak_mb is None else _verdict(result.peak_mb < MAX_PEAK_MB)
        parquet_mb = f"{result.parquet_bytes / MB:.0f}" if result.parquet_bytes else "-"
        row_groups = str(result.row_groups) if result.parquet_bytes else "-"
        server = "-" if result.server_cpu_seconds is None else f"{result.server_cpu_seconds:.2f}"
        lines.append(
            f"| {candidate} | {result.seconds:.2f} | {data_mb / result.seconds:.0f} "
            f"| {ratio:.2f} | {result.cpu_seconds:.2f} "
            f"| {reference.cpu_seconds / result.cpu_seconds:.2f} | {server} | {peak} "
            f"| {_rows_verdict(result, dataset.records)} | {parquet_mb} | {row_groups} "
            f"| {_verdict(ratio >= MIN_THROUGHPUT_RATIO)} | {memory} |"
        )
    return lines


def _verdict(passed: bool) -> str:
    return "PASS" if passed else "MISS"


def _rows_verdict(result: Result, expected: int) -> str:
    """OK when the rows read (and the Parquet footer's, if written) equal the CSV's records."""
    if result.problem:
        return f"FAIL: {result.problem}"
    found = {result.rows} | ({result.footer_rows} if result.parquet_bytes else set())
    return "OK" if found == {expected} else f"WRONG ({sorted(found, key=str)})"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=DEFAULT_MB, help="MiB of uncompressed CSV")
    parser.add_argument("--repeat", type=int, default=1, help="rounds; the fastest is kept")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument(
        "--candidates", default=",".join(CANDIDATES), help="comma-separated, of: %(default)s"
    )
    parser.add_argument(
        "--block-mb", type=float, default=CSV_BLOCK_SIZE / MB, help="CSV block size, MiB"
    )
    parser.add_argument(
        "--row-group-mb",
        type=float,
        default=ROW_GROUP_BYTES / MB,
        help="Arrow MiB gathered per Parquet row group",
    )
    parser.add_argument(
        "--part-mb", type=float, default=PART_SIZE / MB, help="multipart upload part size, MiB"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    return parser


if __name__ == "__main__":
    main()
