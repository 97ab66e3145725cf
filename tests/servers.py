"""Servers and processes started by tests.

Free loopback ports, subprocesses that log to a file and lead their own process group (so
that stopping one stops its children too), polling that fails with the processes' output,
apt-get installs of what a test needs, and a client of a Dagster webserver's GraphQL API.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import pytest
import requests

LOG_TAIL_LINES = 60
POLL_SECONDS = 0.5
# How long stopped processes get to exit after SIGTERM, and to be reaped after SIGKILL.
STOP_GRACE_SECONDS = 20.0
KILL_WAIT_SECONDS = 5.0
# How long apt-get waits for another apt-get or dpkg to release its lock.
APT_LOCK_TIMEOUT_SECONDS = 120

T = TypeVar("T")

WORKSPACE_QUERY = """
query Workspace {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError { __typename ... on PythonError { message } }
      }
    }
    ... on PythonError { message }
  }
}
"""


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- processes --------------------------------------------------------------------------------


@dataclass
class Process:
    """A started subprocess, leader of its own process group, logging to a file.

    Attributes:
        name: What failure messages call it.
        popen: The process.
        log_path: Where its output (stdout and stderr) goes.
        log: The open log file.
    """

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.popen.poll() is None

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of the process's output, for failure messages."""
        self.log.flush()
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def report(self) -> str:
        """Its name, exit status and the tail of its output, for failure messages."""
        return f"----- {self.name} (exit {self.popen.poll()}) -----\n{self.tail()}"

    def terminate(self) -> None:
        """Send SIGTERM to its whole process group (the first half of stopping it)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)

    def finish(self, grace: float) -> None:
        """Wait up to `grace` seconds for it to exit, then SIGKILL whatever is left of its
        process group and close its log (the second half of stopping it)."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=grace)
        # Children (a code server's gRPC worker, run workers) may outlive the leader.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        if self.popen.poll() is None:
            self.popen.wait(timeout=KILL_WAIT_SECONDS)
        self.log.close()


@dataclass
class Processes:
    """Subprocesses that are all stopped, with their process groups, when the block ends.

    Attributes:
        log_dir: Where each process logs, to ``<name>.log``, and by default runs.
        started: The processes started so far, in order.
    """

    log_dir: Path
    started: list[Process] = field(default_factory=list)

    def start(
        self,
        name: str,
        args: Sequence[str],
        env: Mapping[str, str],
        cwd: Path | None = None,
    ) -> Process:
        """Start `args` in `cwd` (default: the log directory) in a new session, so that its
        children can be signalled with it."""
        log_path = self.log_dir / f"{name}.log"
        log = log_path.open("wb")
        try:
            popen = subprocess.Popen(
                list(args),
                env=dict(env),
                cwd=cwd or self.log_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except BaseException:
            log.close()
            raise
        process = Process(name, popen, log_path, log)
        self.started.append(process)
        return process

    def stop_all(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM every process group (last started first), give them `grace` seconds in
        all to exit, then SIGKILL what is left."""
        for process in reversed(self.started):
            process.terminate()
        deadline = time.monotonic() + grace
        for process in reversed(self.started):
            process.finish(max(0.1, deadline - time.monotonic()))

    def diagnostics(self) -> str:
        """The report of every process, for failure messages."""
        return "\n".join(process.report() for process in self.started)

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop_all()


def wait_until(
    condition: Callable[[], T | None],
    what: str,
    timeout: float,
    processes: Processes,
    poll: float = POLL_SECONDS,
) -> T:
    """Poll `condition()` every `poll` seconds until it returns a truthy value, and return
    that; fail as soon as one of `processes` has exited, or when `timeout` seconds are up,
    with the tail of every process's output."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        dead = [process.name for process in processes.started if not process.alive()]
        if dead:
            pytest.fail(
                f"{', '.join(dead)} exited while waiting for {what}:\n{processes.diagnostics()}"
            )
        if time.monotonic() > deadline:
            pytest.fail(
                f"Timed out after {timeout:.0f}s waiting for {what}:\n{processes.diagnostics()}"
            )
        time.sleep(poll)


def apt_get_install(arguments: Sequence[str], timeout: float) -> str | None:
    """``apt-get update``, then ``apt-get install -y -qq <arguments>``, non-interactive, each
    allowed `timeout` seconds (the caller checks that it runs as root); return why one failed,
    or None once installed."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    wait_for_lock = ["-o", f"DPkg::Lock::Timeout={APT_LOCK_TIMEOUT_SECONDS}"]
    for command in (
        ["apt-get", *wait_for_lock, "update", "-qq"],
        ["apt-get", *wait_for_lock, "install", "-y", "-qq", *arguments],
    ):
        try:
            result = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return f"`{' '.join(command)}` timed out"
        if result.returncode != 0:
            return f"`{' '.join(command)}` failed: {result.stderr.strip()[-500:]}"
    return None


# --- a Dagster webserver's GraphQL API --------------------------------------------------------


@dataclass
class GraphQL:
    """A client of a Dagster webserver's GraphQL endpoint.

    Attributes:
        url: The endpoint, ``<webserver>/graphql``.
        session: The HTTP session that posts the queries.
        timeout: Seconds each request may take.
    """

    url: str
    session: requests.Session
    timeout: float

    def __call__(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Run `query`; return its ``data`` (fail on an HTTP error or GraphQL errors)."""
        response = self.session.post(
            self.url,
            json={"query": query, "variables": dict(variables or {})},
            timeout=self.timeout,
        )
        response.raise_for_status()
        body = response.json()
        assert not body.get("errors"), body["errors"]
        return body["data"]


def location_loaded(graphql: GraphQL, location_name: str) -> bool:
    """Whether the webserver has loaded code location `location_name` (fails on a workspace
    or location load error)."""
    workspace = graphql(WORKSPACE_QUERY)["workspaceOrError"]
    assert workspace["__typename"] == "Workspace", workspace
    for entry in workspace["locationEntries"]:
        if entry["name"] == location_name and entry["loadStatus"] == "LOADED":
            location = entry["locationOrLoadError"]
            assert location["__typename"] == "RepositoryLocation", location
            return True
    return False
