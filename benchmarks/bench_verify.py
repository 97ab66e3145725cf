"""Benchmark of deep verification: record counting parsers over one large gzip CSV object.

Generates (once, cached) a gzip CSV of ``--mb`` MiB uncompressed with awkward values (quoted
commas, doubled quotes, ``\\n`` and ``\\r\\n`` inside fields, multi-byte UTF-8, a BOM), puts it in
a local moto S3 server (its own process), then times:

* ``zcat FILE | wc -l`` on a local copy of the same bytes: the throughput reference;
* every candidate counter, streaming from S3 through ``verify_objects`` and from the local file,
  each run in its own subprocess that reports its wall and CPU time and its peak RSS above the
  RSS before the run (``/proc/self/clear_refs`` resets the high-water mark first).

It prints a Markdown table (the one in ``benchmarks/README.md``): seconds, MB/s of uncompressed
CSV, the ratio to ``zcat | wc -l`` (wall time, and CPU time), peak MB, whether the count is
right, and PASS/MISS against the goals (ratio >= 0.5, peak < 150 MB).

Candidates: ``scan`` (``domo_assets.s3.verify.count_csv_records``, the quote-aware byte scanner),
``pyarrow`` (``pyarrow.csv.open_csv`` with ``newlines_in_values=True``, all columns as strings),
``pyarrow-1col`` (the same converting only the first column), ``csv-module`` (the stdlib
``csv`` reader over ``gzip.GzipFile`` and a text wrapper) and ``gunzip-only`` (decompression
without parsing: the floor under every candidate).

Usage::

    .venv/bin/python benchmarks/bench_verify.py --mb 200
    .venv/bin/python benchmarks/bench_verify.py --mb 1024 --repeat 2
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import os
import random
import resource
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from domo_assets.s3.verify import (
    CHUNK_SIZE,
    GZIP_WBITS,
    CsvCount,
    count_csv_records,
    verify_objects,
)

DEFAULT_MB = 1024
DEFAULT_CACHE_DIR = Path(tempfile.gettempdir()) / "domo-bench-verify"
SEED = 20240601
BUCKET = "bench-verify"
KEY = "exports/bench/export/data.csv.gz"
COLUMNS = ("id", "customer", "comment", "amount", "created_at", "active", "tags")
ROWS_PER_BATCH = 20_000
POOL_SIZE = 4096
GZIP_LEVEL = 6
MIN_THROUGHPUT_RATIO = 0.5
REFERENCE = "zcat | wc -l"
PIPE = "\\|"  # escaped for a Markdown table cell
MAX_PEAK_MB = 150
MB = 1024 * 1024
DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
REGION = "us-east-1"
SERVER_START_SECONDS = 30.0
FRAGMENTS = (
    "plain",
    "comma, separated",
    'he said "hi"',
    '""',
    "multi\nline",
    "windows\r\nline break",
    "naïve café",
    "日本語テキスト",
    "emoji 🎉🚀",
    "tab\tinside",
    "",
    " leading space",
    "trailing space ",
    'mixed, "quoted"\r\nand more',
    "'single'",
    "back\\slash",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit",
)
NAMES = ("Zoë", "José", "Łukasz", "O'Brien", "Smith, Jr.", 'The "Best" Co', "王伟", "Ana")


# --- candidates -------------------------------------------------------------------------------


def count_with_csv_module(
    stream: BinaryIO, *, gzip: bool | None = None, chunk_size: int = CHUNK_SIZE
) -> CsvCount:
    """The stdlib ``csv`` reader over ``gzip.GzipFile`` and a UTF-8 text wrapper."""
    source = _CountingStream(stream)
    compressed = _require_gzip(gzip)
    binary: Any = _gzip_file(source) if compressed else source
    text = io.TextIOWrapper(io.BufferedReader(binary, chunk_size), encoding="utf-8-sig", newline="")
    reader = csv.reader(text, strict=True)
    header = tuple(next(reader, ()))
    records = sum(1 for _ in reader)
    return CsvCount(header, records, source.bytes_read, compressed, False, -1)


def count_with_pyarrow(
    stream: BinaryIO,
    *,
    gzip: bool | None = None,
    first_column_only: bool = False,
    columns: Sequence[str] = COLUMNS,
) -> CsvCount:
    """``pyarrow.csv.open_csv`` (multi-threaded, pyarrow's gzip), every value read as a string."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    source = _CountingStream(stream)
    compressed = _require_gzip(gzip)
    native: Any = pa.PythonFile(source, mode="r")
    if compressed:
        native = pa.CompressedInputStream(native, "gzip")
    included = list(columns[:1] if first_column_only else columns)
    reader = pacsv.open_csv(
        native,
        read_options=pacsv.ReadOptions(block_size=1 << 20, use_threads=True),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in included}, include_columns=included
        ),
    )
    records = sum(batch.num_rows for batch in reader)
    header = tuple(columns) if first_column_only else tuple(reader.schema.names)
    return CsvCount(header, records, source.bytes_read, compressed, False, -1)


def gunzip_only(
    stream: BinaryIO, *, gzip: bool | None = None, chunk_size: int = CHUNK_SIZE
) -> CsvCount:
    """Decompression alone (zlib, like the scanner's), no parsing: the floor of every parser."""
    _require_gzip(gzip)
    inflater = zlib.decompressobj(GZIP_WBITS)
    bytes_read = data_bytes = 0
    while chunk := stream.read(chunk_size):
        bytes_read += len(chunk)
        while chunk:
            data_bytes += len(inflater.decompress(chunk, chunk_size))
            chunk = inflater.unconsumed_tail
    return CsvCount(COLUMNS, -1, bytes_read, True, False, data_bytes)


def _pyarrow_all(stream: BinaryIO, *, gzip: bool | None = None) -> CsvCount:
    return count_with_pyarrow(stream, gzip=gzip)


def _pyarrow_first(stream: BinaryIO, *, gzip: bool | None = None) -> CsvCount:
    return count_with_pyarrow(stream, gzip=gzip, first_column_only=True)


CANDIDATES: dict[str, Callable[..., CsvCount]] = {
    "scan": count_csv_records,
    "pyarrow": _pyarrow_all,
    "pyarrow-1col": _pyarrow_first,
    "csv-module": count_with_csv_module,
    "gunzip-only": gunzip_only,
}


class _CountingStream(io.RawIOBase):
    """A read-only raw stream over another, counting the bytes read."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        self.bytes_read += len(data)
        return len(data)

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size) if size >= 0 else self._stream.read()
        self.bytes_read += len(data)
        return data


def _gzip_file(source: io.RawIOBase) -> gzip.GzipFile:
    return gzip.GzipFile(fileobj=source, mode="rb")


def _require_gzip(declared: bool | None) -> bool:
    if declared is None:
        raise ValueError("benchmark candidates need the compression declared")
    return declared


# --- data -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    """The cached benchmark object: a local gzip file and what it holds."""

    path: Path
    records: int
    data_bytes: int
    compressed_bytes: int


BatchSource = Callable[[int], Iterator[tuple[bytes, int]]]
"""Gives CSV bytes (BOM and header first) in batches of rows, with their counts, up to a size."""


def ensure_dataset(
    cache_dir: Path, mb: int, *, name: str = "verify", batches: BatchSource | None = None
) -> Dataset:
    """Reuse the cached object of this size, or generate it (with ``batches``; this benchmark's
    own rows by default)."""
    path = cache_dir / f"{name}-{mb}mb-seed{SEED}.csv.gz"
    meta_path = path.with_suffix(".json")
    if path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        return Dataset(path, meta["records"], meta["data_bytes"], path.stat().st_size)
    cache_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    records, data_bytes = _generate(path, mb * MB, batches or _batches)
    meta_path.write_text(json.dumps({"records": records, "data_bytes": data_bytes}))
    print(f"generated {path} in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    return Dataset(path, records, data_bytes, path.stat().st_size)


def _generate(path: Path, target_bytes: int, batches: BatchSource) -> tuple[int, int]:
    """Write about ``target_bytes`` of CSV through ``gzip`` (in parallel); return counts."""
    partial = path.with_suffix(".partial")
    with partial.open("wb") as out:
        zipper = subprocess.Popen(
            ["gzip", f"-{GZIP_LEVEL}", "-c"], stdin=subprocess.PIPE, stdout=out
        )
        assert zipper.stdin is not None
        records = data_bytes = 0
        for batch, rows in batches(target_bytes):
            zipper.stdin.write(batch)
            data_bytes += len(batch)
            records += rows
        zipper.stdin.close()
        if zipper.wait() != 0:
            raise RuntimeError("gzip failed")
    partial.rename(path)
    return records, data_bytes


def _batches(target_bytes: int) -> Iterator[tuple[bytes, int]]:
    """CSV bytes (BOM and header first) in batches of rows, until ``target_bytes``."""
    rng = random.Random(SEED)
    comments = [" ".join(rng.choices(FRAGMENTS, k=rng.randint(1, 4))) for _ in range(POOL_SIZE)]
    tags = [",".join(rng.sample(("a", "b b", 'c"c', "d\nd", "é"), 3)) for _ in range(POOL_SIZE)]
    yield render_csv([COLUMNS], bom=True), 0
    written, row_id = 0, 0
    while written < target_bytes:
        rows = []
        for _ in range(ROWS_PER_BATCH):
            row_id += 1
            rows.append(
                (
                    row_id,
                    rng.choice(NAMES),
                    comments[rng.randrange(POOL_SIZE)],
                    f"{rng.uniform(-1e6, 1e6):.2f}",
                    f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T12:34:56Z",
                    rng.choice(("true", "false", "")),
                    tags[rng.randrange(POOL_SIZE)],
                )
            )
        batch = render_csv(rows, bom=False)
        written += len(batch)
        yield batch, len(rows)


def render_csv(rows: Sequence[Sequence[object]], *, bom: bool) -> bytes:
    """Rows as Domo writes them: the csv module's minimal quoting, CRLF, an optional BOM."""
    buffer = io.StringIO()
    if bom:
        buffer.write("\ufeff")
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue().encode("utf-8")


# --- S3 ---------------------------------------------------------------------------------------


def free_port() -> int:
    """A loopback TCP port nothing listens on (right now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_moto(port: int) -> subprocess.Popen[bytes]:
    """Start moto's S3 server in its own process, so it does not share our GIL."""
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            time.sleep(0.1)
    server.terminate()
    raise RuntimeError("moto server did not start")


def s3_client(endpoint: str) -> Any:
    """A boto3 S3 client for the local server."""
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION, **DUMMY_CREDENTIALS)


def upload(endpoint: str, dataset: Dataset, *, bucket: str = BUCKET, key: str = KEY) -> float:
    """Create the bucket and put the object; return the seconds it took."""
    client = s3_client(endpoint)
    started = time.perf_counter()
    client.create_bucket(Bucket=bucket)
    client.upload_file(
        str(dataset.path), bucket, key, ExtraArgs={"ContentType": "application/gzip"}
    )
    return time.perf_counter() - started


# --- measurement ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """One measurement: wall and CPU seconds, peak RSS above the baseline, what was counted."""

    seconds: float
    cpu_seconds: float
    peak_mb: float | None
    records: int | None
    problems: tuple[str, ...] = ()


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def run_child(args: argparse.Namespace) -> None:
    """Measure one candidate on one source in this (fresh) process; print JSON."""
    counter = CANDIDATES[args.child]
    if args.child.startswith("pyarrow"):
        import pyarrow.csv  # noqa: F401  (import time and memory stay out of the measurement)
    client = s3_client(args.endpoint) if args.source == "s3" else None
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    baseline_kb = _status_kb("VmRSS")
    started, cpu = time.perf_counter(), _cpu_seconds(resource.RUSAGE_SELF)
    if client is not None:
        report = verify_objects(client, [(BUCKET, KEY)], COLUMNS, counter=counter)
        records, problems = report.records, report.problems
    else:
        with open(args.path, "rb") as stream:
            found = counter(stream, gzip=True)
        records = found.records
        problems = () if found.header == COLUMNS else (f"header {found.header}",)
    result = Result(
        seconds=time.perf_counter() - started,
        cpu_seconds=_cpu_seconds(resource.RUSAGE_SELF) - cpu,
        peak_mb=(_status_kb("VmHWM") - baseline_kb) / 1024,
        records=records,
        problems=problems,
    )
    print(json.dumps(asdict(result)))


def measure(candidate: str, source: str, endpoint: str, path: Path) -> Result:
    """Run one candidate on one source in a subprocess; return what it measured."""
    command = [sys.executable, __file__, "--child", candidate, "--source", source]
    command += ["--endpoint", endpoint, "--path", str(path)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        error = (done.stderr.strip().splitlines() or ["failed"])[-1]
        return Result(float("nan"), float("nan"), None, None, (error,))
    fields = json.loads(done.stdout)
    return Result(**{**fields, "problems": tuple(fields["problems"])})


def measure_zcat_wc(path: Path) -> Result:
    """Wall and CPU time (of every process in the pipe) of ``zcat FILE | wc -l``."""
    started, cpu = time.perf_counter(), _cpu_seconds(resource.RUSAGE_CHILDREN)
    done = subprocess.run(f"zcat {path} | wc -l", shell=True, check=True, capture_output=True)
    seconds = time.perf_counter() - started
    lines = int(done.stdout.split()[0])
    return Result(seconds, _cpu_seconds(resource.RUSAGE_CHILDREN) - cpu, None, lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the options, then generate, upload, measure and print the table."""
    args = _parser().parse_args(argv)
    if args.child:
        run_child(args)
        return
    dataset = ensure_dataset(args.cache_dir, args.mb)
    candidates = args.candidates.split(",")
    sources = args.sources.split(",")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = start_moto(port) if "s3" in sources else None
    try:
        upload_seconds = upload(endpoint, dataset) if server else 0.0
        plan = [(c, s) for c in candidates for s in sources]
        results = _rounds(args.repeat, dataset, plan, endpoint)
    finally:
        if server is not None:
            server.terminate()
            server.wait()
    print(_summary(dataset, upload_seconds, args.repeat))
    print("\n".join(_table(dataset, results)))


def _rounds(
    repeat: int, dataset: Dataset, plan: Sequence[tuple[str, str]], endpoint: str
) -> dict[tuple[str, str], Result]:
    """Run the reference and every measurement, ``repeat`` rounds; keep each one's fastest.

    The peak memory kept is the highest of the rounds.
    """
    best: dict[tuple[str, str], Result] = {}
    for _ in range(repeat):
        runs = [((REFERENCE, "local"), measure_zcat_wc(dataset.path))]
        runs += [((c, s), measure(c, s, endpoint, dataset.path)) for c, s in plan]
        for key, result in runs:
            previous = best.get(key)
            if previous is None or result.seconds < previous.seconds:
                peaks = [r.peak_mb for r in (result, previous) if r and r.peak_mb is not None]
                best[key] = replace(result, peak_mb=max(peaks, default=None))
    return best


def _summary(dataset: Dataset, upload_seconds: float, repeat: int) -> str:
    return (
        f"object: {dataset.data_bytes / MB:.0f} MiB CSV, {dataset.compressed_bytes / MB:.0f} "
        f"MiB gzip, {dataset.records} records; upload to moto {upload_seconds:.1f}s; "
        f"best of {repeat} round(s); {os.cpu_count()} CPU(s)"
    )


def _table(dataset: Dataset, results: dict[tuple[str, str], Result]) -> list[str]:
    """The Markdown table: throughput relative to the reference, memory, goals.

    ``ratio`` is the reference's wall time over the candidate's (the goal's measure);
    ``CPU ratio`` the same with CPU seconds (every process and thread), which shared cores
    disturb less.
    """
    data_mb = dataset.data_bytes / MB
    reference = results[(REFERENCE, "local")]
    lines = [
        "| candidate | source | seconds | MB/s | ratio | CPU s | CPU ratio | peak MB "
        "| count | throughput >= 0.5 | memory < 150 MB |",
        "|---|---|--:|--:|--:|--:|--:|--:|---|---|---|",
    ]
    for (candidate, source), result in results.items():
        ratio = reference.seconds / result.seconds
        cpu_ratio = reference.cpu_seconds / result.cpu_seconds
        peak = "-" if result.peak_mb is None else f"{result.peak_mb:.1f}"
        memory = "-" if result.peak_mb is None else _verdict(result.peak_mb < MAX_PEAK_MB)
        lines.append(
            f"| {candidate.replace('|', PIPE)} | {source} | {result.seconds:.2f} "
            f"| {data_mb / result.seconds:.0f} | {ratio:.2f} | {result.cpu_seconds:.2f} "
            f"| {cpu_ratio:.2f} "
            f"| {peak} | {_count_verdict(candidate, result, dataset.records)} "
            f"| {_verdict(ratio >= MIN_THROUGHPUT_RATIO)} | {memory} |"
        )
    return lines


def _verdict(passed: bool) -> str:
    return "PASS" if passed else "MISS"


def _count_verdict(candidate: str, result: Result, expected: int) -> str:
    if result.problems:
        return f"FAIL: {'; '.join(result.problems)}"
    if candidate == REFERENCE or result.records == -1:
        return "-"  # counts lines, or nothing
    return "OK" if result.records == expected else f"WRONG ({result.records})"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=DEFAULT_MB, help="MiB of uncompressed CSV")
    parser.add_argument("--repeat", type=int, default=1, help="rounds; the fastest is kept")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument(
        "--candidates", default=",".join(CANDIDATES), help="comma-separated, of: %(default)s"
    )
    parser.add_argument("--sources", default="s3,local", help="s3, local or both (comma)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    return parser


if __name__ == "__main__":
    main()
