"""The sandbox's HTTP server: sockets, keep-alive, fault injection and the request log.

One `ThreadingHTTPServer` (HTTP/1.1, keep-alive, a daemon thread per connection) serves the
Domo API and the control API. Faults apply to Domo API requests only; a ``reset`` or
``drop_response`` fault closes the connection with SO_LINGER 0, so the client gets a TCP RST
instead of a response.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .auth import credential_kinds
from .control_api import PREFIX as CONTROL_PREFIX
from .control_api import ControlApi
from .domo_api import DomoApi
from .state import SandboxState
from .web import ApiError, Request, Response, Router

LOGGER = logging.getLogger(__name__)
IDLE_TIMEOUT_SECONDS = 60
STOP_WAIT_SECONDS = 5.0
STOP_POLL_SECONDS = 0.01
POLL_INTERVAL_SECONDS = 0.05
LINGER_RESET = struct.pack("ii", 1, 0)
HANDLED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
LISTEN_BACKLOG = 128


class _HttpServer(ThreadingHTTPServer):
    """A threading HTTP server that tracks its open connections so `stop` can close them."""

    daemon_threads = True
    # socketserver's default backlog of 5 drops connections when many clients connect at once
    # (a fan-out of exports), and each dropped SYN costs the client a 1 s retransmission.
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], router: Router, state: SandboxState) -> None:
        super().__init__(address, _Handler)
        self.router = router
        self.state = state
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log a handler's exception; a client that went away is not worth a traceback."""
        LOGGER.debug("Error serving %s", client_address, exc_info=True)

    def close_connections(self) -> None:
        """Shut down every open connection and wait (briefly) for their threads to end."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        while self._connections and time.monotonic() < deadline:
            time.sleep(STOP_POLL_SECONDS)


class _Handler(BaseHTTPRequestHandler):
    """Turns HTTP requests into `Request`s, applies faults, writes `Response`s."""

    protocol_version = "HTTP/1.1"
    server_version = "DomoSandbox/1.0"
    sys_version = ""
    timeout = IDLE_TIMEOUT_SECONDS
    # Headers and body go out in two writes: with Nagle's algorithm the body waits for the
    # client's delayed ACK of the headers, adding ~40 ms to every response.
    disable_nagle_algorithm = True
    server: _HttpServer

    def do_GET(self) -> None:
        """Serve any method (the router decides)."""
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Route the default access log to `logging` at debug level."""
        LOGGER.debug("%s " + format, self.address_string(), *args)

    def _serve(self) -> None:
        state = self.server.state
        path = self.path.partition("?")[0]
        is_control = path.startswith(CONTROL_PREFIX + "/")
        ticket = state.requests.ticket()
        fault = None if is_control else state.faults.take(self.command, path)
        action = fault.action if fault else None
        credentials = credential_kinds(dict(self.headers))
        if action == "reset" or (action == "delay" and not state.sleep(fault.delay)):
            state.requests.record(self.command, path, None, action, credentials, ticket)
            self._abort()
            return
        request = Request.build(self.command, self.path, dict(self.headers), self._read_body())
        if fault and action == "status":
            response = fault.response(request)
        else:
            response = self._dispatch(request)
        if not is_control:
            sent = None if action == "drop_response" else response.status
            state.requests.record(self.command, path, sent, action, credentials, ticket)
        if action == "drop_response":
            self._abort()
            return
        self._send(response)

    def _dispatch(self, request: Request) -> Response:
        try:
            return self.server.router.dispatch(request)
        except Exception as exc:  # a sandbox bug must still answer like a server
            LOGGER.exception("Unhandled error in %s %s", request.method, request.path)
            return ApiError(500, f"Internal server error: {exc}").response()

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        parts = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline().strip():
                    pass
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    def _abort(self) -> None:
        """Close the connection with a TCP RST and no response."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        self.connection.close()


class DomoServer:
    """The Domo-compatible HTTP server, run in a background thread.

    Args:
        state: The sandbox state the routes use.
        host: Loopback address to bind.
        port: Port to bind (0: a free one).
    """

    def __init__(self, state: SandboxState, host: str, port: int = 0) -> None:
        router = Router()
        DomoApi(state).register(router)
        ControlApi(state).register(router)
        self._server = _HttpServer((host, port), router, state)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The server's URL (``http://127.0.0.1:PORT``)."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": POLL_INTERVAL_SECONDS},
            name="domo-sandbox-http",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, close open connections and the listening socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.close_connections()
        self._server.server_close()
