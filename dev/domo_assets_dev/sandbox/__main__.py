"""Run the sandbox from a shell: ``python -m domo_assets_dev.sandbox [--port 0] [--env-file F]``.

Prints the URLs, ``export`` lines and an example curl; writes the environment to
``--env-file`` (atomically, once both servers are ready; removed again on exit) and runs
until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from .behaviour import DEFAULT_MODE, MODES
from .datasets import DEFAULT_SYNTHETIC_ROWS, PHARMACY_CLAIMS_ID, SAMPLE_DATASETS
from .s3 import SEED_BUCKETS
from .sandbox import DEFAULT_HOST, Sandbox, loopback_address

WAIT_POLL_SECONDS = 0.5


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m domo_assets_dev.sandbox",
        description="Run a local Domo-compatible server and a moto S3 server.",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="loopback address to bind")
    parser.add_argument("--port", type=int, default=0, help="Domo server port (0: any free)")
    parser.add_argument("--s3-port", type=int, default=0, help="moto S3 port (0: any free)")
    parser.add_argument("--token", help="developer token of 'analyst' (default: random)")
    parser.add_argument("--env-file", type=Path, help="write KEY=VALUE lines here when ready")
    parser.add_argument("--verbose", action="store_true", help="log every moto request")
    parser.add_argument(
        "--synthetic-datasets",
        type=int,
        default=0,
        help="also serve this many small synthetic DataSets (deterministic ids; kept on reset)",
    )
    parser.add_argument(
        "--synthetic-rows",
        type=int,
        default=DEFAULT_SYNTHETIC_ROWS,
        help="rows of each synthetic DataSet",
    )
    parser.add_argument(
        "--mode",
        choices=MODES,
        default=DEFAULT_MODE,
        help="strict: every DataSet reads Domo's documentation at its harshest",
    )
    args = parser.parse_args(argv)
    try:
        loopback_address(args.host)
    except (OSError, ValueError) as exc:
        parser.error(f"--host: {exc}")
    return args


def write_env_file(path: Path, env: Mapping[str, str]) -> None:
    """Write ``KEY=VALUE`` lines to `path` atomically (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{name}={value}\n" for name, value in env.items())
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def banner(sandbox: Sandbox) -> str:
    """Return what the command prints once the sandbox is ready."""
    env = sandbox.env()
    width = max(len(name) for name in SAMPLE_DATASETS)
    lines = [
        "Domo sandbox is running.",
        f"  Mode: {sandbox.control.mode()}",
        f"  Domo API (instance, platform, /_sandbox control): {sandbox.domo_url}",
        f"  S3, STS, IAM (moto):                              {sandbox.s3_url}",
        "  Developer tokens:",
        *(f"    {user:<13} {token}" for user, token in sandbox.tokens.items()),
        "  Sample DataSets:",
        *(f"    {name:<{width}}  {dataset_id}" for name, dataset_id in SAMPLE_DATASETS.items()),
        "  Buckets: " + ", ".join(f"{b.name} ({b.region})" for b in SEED_BUCKETS),
        "",
        "Paste into a shell:",
        *(f"export {name}={shlex.quote(value)}" for name, value in env.items()),
        "",
        "Try:",
        'curl -H "X-DOMO-Developer-Token: $DOMO_DEVELOPER_TOKEN" '
        f"$DOMO_INSTANCE_URL/api/query/v1/export/{PHARMACY_CLAIMS_ID}",
        "",
        "Stop with Ctrl-C (or SIGTERM).",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sandbox until SIGINT or SIGTERM; return the exit status."""
    args = parse_args(argv)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    if args.env_file:
        args.env_file.unlink(missing_ok=True)
    try:
        with Sandbox(
            token=args.token,
            port=args.port,
            s3_port=args.s3_port,
            host=args.host,
            verbose=args.verbose,
            synthetic_datasets=args.synthetic_datasets,
            synthetic_rows=args.synthetic_rows,
            mode=args.mode,
        ) as sandbox:
            print(banner(sandbox), flush=True)
            if args.env_file:
                write_env_file(args.env_file, sandbox.env())
            while not stopping.wait(WAIT_POLL_SECONDS):
                pass
    finally:
        if args.env_file:
            args.env_file.unlink(missing_ok=True)
    print("Domo sandbox stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
