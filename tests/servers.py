"""Servers and processes started by tests.

Free loopback ports, subprocesses that log to a file and lead their own process group (so
that stopping one stops its children too), polling that fails with the processes' output,
apt-get installs of what a test needs, a throwaway PostgreSQL cluster (also used by
benchmarks/bench_fanout.py), and a client of a Dagster webserver's GraphQL API.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
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
# Held by `apt_get_install` for its whole update and install, so that test processes running at
# once (pytest-xdist workers) install one after another, each seeing what the other installed.
APT_INSTALL_LOCK = Path(tempfile.gettempdir()) / "domo-assets-tests-apt-get.lock"

# The throwaway PostgreSQL cluster.
PG_USER = "dagster"
PG_DB = "dagster"
PG_APT_TIMEOUT_SECONDS = 420
PG_INITDB_TIMEOUT_SECONDS = 120
PG_START_WAIT_SECONDS = 60
PG_CTL_TIMEOUT_SECONDS = 90
# Off for tests only, for speed: a crash of a throwaway cluster loses nothing worth keeping.
PG_NON_DURABLE_SETTINGS = ("fsync=off", "full_page_writes=off")

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


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock (flock) on `path`, created if missing, until the block ends;
    waits while another process (e.g. another pytest-xdist worker) holds it."""
    with path.open("a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def apt_get_install(
    arguments: Sequence[str], timeout: float, missing: Callable[[], bool] = lambda: True
) -> str | None:
    """``apt-get update``, then ``apt-get install -y -qq <arguments>``, non-interactive, each
    allowed `timeout` seconds (the caller checks that it runs as root); return why one failed,
    or None once installed.

    One test process at a time installs (APT_INSTALL_LOCK): apt's own lock makes a second
    apt-get wait at most APT_LOCK_TIMEOUT_SECONDS, less than an install may take. Once it holds
    the lock, `missing()` tells whether what it installs is still missing (another process may
    have installed it meanwhile); if not, it installs nothing."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    wait_for_lock = ["-o", f"DPkg::Lock::Timeout={APT_LOCK_TIMEOUT_SECONDS}"]
    with file_lock(APT_INSTALL_LOCK):
        if not missing():
            return None
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


# --- a throwaway PostgreSQL cluster ----------------------------------------------------------


class PostgresUnavailable(RuntimeError):
    """PostgreSQL is not installed, and cannot be installed on this machine."""


@dataclass(frozen=True)
class Postgres:
    """A running throwaway PostgreSQL cluster on loopback.

    Attributes:
        host: The address it listens on.
        port: Its TCP port.
        user: A superuser, authenticated by password over TCP.
        password: The user's password.
        db_name: An empty database owned by the user.
    """

    host: str
    port: int
    user: str
    password: str
    db_name: str

    def env(self) -> dict[str, str]:
        """The DAGSTER_PG_* variables that deployment/dagster.yaml reads."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USER": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": self.db_name,
        }

    def connect(self, db_name: str | None = None) -> Any:
        """A psycopg2 connection (autocommit)."""
        import psycopg2

        connection = psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=db_name or self.db_name,
            connect_timeout=10,
        )
        connection.autocommit = True
        return connection


def postgres_bin_dir() -> Path | None:
    """The directory of initdb and pg_ctl: on PATH, or Debian's newest /usr/lib/postgresql."""
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0,
    )
    return candidates[-1].parent if candidates else None


def install_postgres() -> str | None:
    """Install PostgreSQL from apt (root only); return why not, or None once installed."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "initdb is not installed and apt-get cannot install it (not root, or no apt-get)"
    return apt_get_install(
        ["--no-install-recommends", "postgresql"],
        PG_APT_TIMEOUT_SECONDS,
        missing=lambda: postgres_bin_dir() is None,
    )


def installed_postgres_bin_dir() -> Path:
    """The directory of initdb and pg_ctl, installing PostgreSQL from apt if needed.

    Raises:
        PostgresUnavailable: PostgreSQL is missing and cannot be installed (the reason).
        RuntimeError: apt installed PostgreSQL but initdb is still not found.
    """
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        reason = install_postgres()
        if reason:
            raise PostgresUnavailable(reason)
        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            raise RuntimeError("apt installed postgresql but initdb is not found")
    return bin_dir


def cluster_owner() -> str | None:
    """The user that runs PostgreSQL when we are root (it refuses root); None if not root."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(KeyError):
        return pwd.getpwnam("postgres").pw_name
    # Another test process may create the user at the same time: then useradd fails (the user
    # exists), and what counts is that the user exists afterwards.
    added = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres"],
        capture_output=True,
        text=True,
    )
    try:
        return pwd.getpwnam("postgres").pw_name
    except KeyError:
        raise RuntimeError(f"useradd postgres failed: {added.stdout}{added.stderr}") from None


def run_checked(command: Sequence[str], what: str, timeout: float) -> None:
    """Run `command`; raise RuntimeError with its output if it fails."""
    result = subprocess.run(list(command), capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed: {result.stdout}{result.stderr}")


def initdb(bin_dir: Path, data_dir: Path, password_file: Path, as_owner: Sequence[str]) -> None:
    """Create a cluster in `data_dir` whose superuser PG_USER logs in by password over TCP."""
    command = [
        *as_owner,
        str(bin_dir / "initdb"),
        *("-D", str(data_dir), "-U", PG_USER, f"--pwfile={password_file}"),
        *("--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C"),
        # Only skips flushing the new files at creation; the server's settings are untouched.
        "--no-sync",
    ]
    run_checked(command, "initdb", PG_INITDB_TIMEOUT_SECONDS)


def write_password(base: Path, owner: str | None) -> tuple[str, Path]:
    """A new random password, written to a file in `base`; both are given to `owner` (if
    any), who runs initdb."""
    password = secrets.token_urlsafe(18)
    password_file = base / "password"
    password_file.write_text(password, encoding="utf-8")
    if owner:
        owner_ids = pwd.getpwnam(owner)
        for path in (base, password_file):
            os.chown(path, owner_ids.pw_uid, owner_ids.pw_gid)
    return password, password_file


@contextlib.contextmanager
def postgres_cluster(*, durable: bool) -> Iterator[Postgres]:
    """A PostgreSQL cluster in a temporary directory on a free loopback port, password auth,
    with an empty database PG_DB; stopped and deleted afterwards.

    Installs PostgreSQL from apt first if initdb is missing (root only), and runs the server
    as user ``postgres`` when we are root (PostgreSQL refuses to run as root).

    Args:
        durable: True for PostgreSQL's default durability settings (fsync, full page writes,
            synchronous commit), what a real deployment pays per commit; False turns fsync and
            full page writes off, for tests that do not measure time.

    Yields:
        The running cluster.

    Raises:
        PostgresUnavailable: PostgreSQL is missing and cannot be installed (the reason).
        RuntimeError: initdb or pg_ctl failed (with their output).
    """
    bin_dir = installed_postgres_bin_dir()
    owner = cluster_owner()
    as_owner = ["runuser", "-u", owner, "--"] if owner else []
    base = Path(tempfile.mkdtemp(prefix="dagster-pg-"))
    data_dir = base / "data"
    port = free_port()
    pg_ctl = [*as_owner, str(bin_dir / "pg_ctl"), "-D", str(data_dir)]
    settings = () if durable else PG_NON_DURABLE_SETTINGS
    options = " ".join([f"-h 127.0.0.1 -p {port} -k {base}", *(f"-c {s}" for s in settings)])
    started = False
    try:
        password, password_file = write_password(base, owner)
        initdb(bin_dir, data_dir, password_file, as_owner)
        # From here on, stop the server whatever happens: pg_ctl may leave one running even
        # when it fails or times out.
        started = True
        start = [*pg_ctl, "-l", str(base / "postgres.log"), "-w", "-t", str(PG_START_WAIT_SECONDS)]
        run_checked([*start, "-o", options, "start"], "pg_ctl start", PG_CTL_TIMEOUT_SECONDS)
        cluster = Postgres("127.0.0.1", port, PG_USER, password, PG_DB)
        with (
            contextlib.closing(cluster.connect("postgres")) as connection,
            connection.cursor() as cursor,
        ):
            cursor.execute(f"CREATE DATABASE {PG_DB}")
        yield cluster
    finally:
        if started:
            subprocess.run(
                [*pg_ctl, "-m", "immediate", "stop"],
                capture_output=True,
                timeout=PG_CTL_TIMEOUT_SECONDS,
            )
        shutil.rmtree(base, ignore_errors=True)


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
