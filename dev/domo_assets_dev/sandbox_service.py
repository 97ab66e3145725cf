"""Run the sandbox as a container service: ``python -m domo_assets_dev.sandbox_service``.

The sandbox only listens on loopback (its control API has no authentication), and the
project's Domo client only sends credentials over plain http:// to a loopback host. So the
sandbox container shares the network namespace of the code location's container
(``--network container:domo-assets-code-location``; the run containers join it too, see
tests/containers/compose.test.yaml): there it listens on fixed loopback ports,
``http://127.0.0.1:8000`` for Domo and ``http://127.0.0.1:5000`` for S3. A port published to
the host reaches a container's own address, not its loopback, so this entry point also relays
two more ports on every address of the container to those two, for the test on the host
(tests/test_containers.py). Only for a private test network: anyone who reaches the relayed
ports controls the sandbox.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import socketserver
import sys
import threading
from collections.abc import Sequence
from urllib.parse import urlsplit

from .sandbox import Sandbox

DOMO_PORT = 8000
S3_PORT = 5000
# The relays: RELAY_OFFSET above each port, on every address.
RELAY_OFFSET = 1
LISTEN_HOST = "0.0.0.0"
RELAY_BUFFER_BYTES = 65536
WAIT_POLL_SECONDS = 0.5


def pump(source: socket.socket, target: socket.socket) -> None:
    """Copy bytes from `source` to `target` until `source` ends, then end `target`'s writes."""
    with contextlib.suppress(OSError):
        while data := source.recv(RELAY_BUFFER_BYTES):
            target.sendall(data)
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)


class Relay(socketserver.ThreadingTCPServer):
    """A TCP relay from ``(LISTEN_HOST, port)`` to one loopback port of the sandbox.

    Attributes:
        upstream: The sandbox's ``(host, port)`` that each connection is relayed to.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        super().__init__((LISTEN_HOST, port), RelayHandler)


class RelayHandler(socketserver.BaseRequestHandler):
    """Relays one accepted connection to the sandbox, both ways, until both sides end."""

    server: Relay

    def handle(self) -> None:
        """Connect upstream and copy in both directions."""
        with socket.create_connection(self.server.upstream) as upstream:
            back = threading.Thread(target=pump, args=(upstream, self.request), daemon=True)
            back.start()
            pump(self.request, upstream)
            back.join()


def loopback_endpoint(url: str) -> tuple[str, int]:
    """The ``(host, port)`` of one of the sandbox's URLs."""
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"The sandbox URL {url!r} has no host and port")
    return parts.hostname, parts.port


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m domo_assets_dev.sandbox_service",
        description="Run the sandbox in a container, relayed on fixed ports of every address.",
    )
    parser.add_argument("--token", required=True, help="developer token of 'analyst'")
    parser.add_argument("--domo-port", type=int, default=DOMO_PORT, help="Domo port (loopback)")
    parser.add_argument("--s3-port", type=int, default=S3_PORT, help="S3 port (loopback)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sandbox and its two relays until SIGINT or SIGTERM; return the exit status."""
    args = parse_args(argv)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    with Sandbox(token=args.token, port=args.domo_port, s3_port=args.s3_port) as sandbox:
        relays = [
            Relay(port + RELAY_OFFSET, loopback_endpoint(url))
            for port, url in ((args.domo_port, sandbox.domo_url), (args.s3_port, sandbox.s3_url))
        ]
        for relay in relays:
            threading.Thread(target=relay.serve_forever, daemon=True).start()
        print(
            f"Domo sandbox: {sandbox.domo_url} (relayed on port {args.domo_port + RELAY_OFFSET}),"
            f" S3 {sandbox.s3_url} (relayed on port {args.s3_port + RELAY_OFFSET})",
            flush=True,
        )
        try:
            while not stopping.wait(WAIT_POLL_SECONDS):
                pass
        finally:
            for relay in relays:
                relay.shutdown()
                relay.server_close()
    print("Domo sandbox stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
