"""Delay rules for the sandbox's S3 (and every other moto service): hold matching requests.

A rule holds each matching request (its method, and a regex searched in the request path:
``/<bucket>/<key>`` for the path-style requests the sandbox's clients send to its loopback
address) for ``delay`` seconds, or until the rules are cleared, whichever comes first; then moto
processes it as usual. The request's body is read whole before the hold, so a request whose
client went away meanwhile (a killed process) is still processed, as S3 processes a request it
has received. Tests use it to stop a step at a known S3 call (the PUT of ``_latest.json``, the
GET of an export's file) while they terminate a run or start another one. A rule with
``fail_status`` (500 or 503) answers each request it holds with that status and S3's XML error
(``InternalError``, ``SlowDown``) instead of passing it to moto: the request is not processed, as
when S3 fails a call, and botocore's retries count it as a retryable server error.

Writes to one object are also made atomic here: moto checks a conditional PutObject's
``If-Match`` / ``If-None-Match`` and then writes, without a lock, so two racing conditional
writes could both succeed. S3 decides them atomically, so the sandbox processes the PUTs of one
path one at a time (multipart parts excepted: they change no visible object).
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from .rules import RequestRule, RuleBook, compile_check, parse_method, parse_times
from .sts_wsgi import WsgiApp, forward, take_body

DELAY_METHODS = ("*", "GET", "HEAD", "PUT", "POST", "DELETE")
KIND = "S3 delay"
DEFAULT_S3_DELAY_SECONDS = 1.0
# A held request is released after this long at most, whatever the rule says: a forgotten
# rule must not keep a server thread (and the client's read timeout) forever.
MAX_S3_DELAY_SECONDS = 300.0
DELAY_FIELDS = frozenset({"method", "path_regex", "delay", "times", "skip", "fail_status"})
# The statuses a rule may fail a request with, and S3's error code for each.
FAIL_CODES = {500: "InternalError", 503: "SlowDown"}
# PUTs are serialized per path over this many locks (bounded memory; unrelated paths rarely
# share one, and then only wait for each other's PUT).
WRITE_LOCK_STRIPES = 64
MULTIPART_PART_PARAM = "uploadId"


@dataclass
class S3DelayRule(RequestRule):
    """One delay rule.

    Attributes (besides `RequestRule`'s, whose ``hits`` counts requests held):
        delay: Seconds each matching request is held (unless the rules are cleared first).
        skip: Matching requests still to let through unheld before the rule holds any (to
            hold, say, the second read of an object and not the first).
        holding: Requests it holds right now.
        fail_status: Answer each held request with this status (S3's error body) instead of
            passing it to moto; None passes it on.
    """

    delay: float = DEFAULT_S3_DELAY_SECONDS
    skip: int = 0
    holding: int = 0
    fail_status: int | None = None
    released: threading.Event = field(default_factory=threading.Event, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The rule as JSON-ready data."""
        return {
            "id": self.id,
            "method": self.method,
            "path_regex": self.path_regex,
            "delay": self.delay,
            "remaining": self.remaining,
            "skip": self.skip,
            "hits": self.hits,
            "holding": self.holding,
            "fail_status": self.fail_status,
        }


class S3Delays:
    """The active delay rules (thread-safe); the first matching rule with times left applies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._book: RuleBook[S3DelayRule] = RuleBook(KIND, DELAY_FIELDS, _build_rule)

    def add(self, spec: Mapping[str, Any]) -> S3DelayRule:
        """Add a rule from its JSON description (fields as in `S3DelayRule`; ``times`` sets
        `remaining`, default 1, null for every matching request).

        Raises:
            ValueError: For unknown fields or invalid values, naming the field.
        """
        return self._book.add(spec)

    def rules(self) -> list[dict[str, Any]]:
        """Every rule as JSON-ready data, oldest first."""
        return self._book.rules()

    def clear(self) -> None:
        """Remove every rule and release the requests they hold at once."""
        for rule in self._book.clear():
            rule.released.set()

    def reset(self) -> None:
        """`clear`, and number rules from 1 again."""
        for rule in self._book.reset():
            rule.released.set()

    def take(self, method: str, path: str) -> S3DelayRule | None:
        """The rule that holds this request, one of its times used up, or None."""
        return self._book.first(method, path, _past_skip)

    def hold(self, rule: S3DelayRule) -> None:
        """Hold the calling request for the rule's delay, or until the rules are cleared."""
        with self._lock:
            rule.holding += 1
        try:
            rule.released.wait(rule.delay)
        finally:
            with self._lock:
                rule.holding -= 1


class S3DelayMiddleware:
    """Wraps the moto server's WSGI application (see the module docstring).

    Args:
        app: The application answering the requests (moto behind the STS layer).
        delays: The delay rules.
    """

    def __init__(self, app: WsgiApp, delays: S3Delays) -> None:
        self._app = app
        self._delays = delays
        self._write_locks = tuple(threading.Lock() for _ in range(WRITE_LOCK_STRIPES))

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "")).upper()
        path = str(environ.get("PATH_INFO", ""))
        rule = self._delays.take(method, path)
        if rule is not None:
            take_body(environ)  # received whole: processed even if the client goes away
            self._delays.hold(rule)
            if rule.fail_status is not None:
                return _s3_error(rule.fail_status, start_response)
        if method != "PUT" or MULTIPART_PART_PARAM in parse_qs(environ.get("QUERY_STRING", "")):
            return self._app(environ, start_response)
        with self._write_locks[zlib.crc32(path.encode("utf-8")) % WRITE_LOCK_STRIPES]:
            status, headers, body = forward(self._app, environ)
        start_response(status, headers)
        return [body]


def _s3_error(status: int, start_response: Callable[..., Any]) -> list[bytes]:
    """S3's answer to a request it failed: the status and its XML error document."""
    code = FAIL_CODES[status]
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>The sandbox failed this request (an S3 delay "
        f"rule's fail_status)</Message><RequestId>sandbox</RequestId></Error>"
    ).encode()
    reason = {500: "Internal Server Error", 503: "Service Unavailable"}[status]
    start_response(
        f"{status} {reason}",
        [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))],
    )
    return [body]


def _past_skip(rule: S3DelayRule) -> bool:
    """Whether the rule holds this request, or lets it through as one of the first it skips."""
    if rule.skip > 0:
        rule.skip -= 1
        return False
    return True


def _build_rule(rule_id: int, spec: Mapping[str, Any]) -> S3DelayRule:
    method = parse_method(spec, KIND, DELAY_METHODS)
    delay = spec.get("delay", DEFAULT_S3_DELAY_SECONDS)
    if (
        isinstance(delay, bool)
        or not isinstance(delay, int | float)
        or not 0 <= delay <= MAX_S3_DELAY_SECONDS
    ):
        raise ValueError(
            f"S3 delay 'delay' must be a number of seconds in 0..{MAX_S3_DELAY_SECONDS:g}"
        )
    times = parse_times(spec, KIND)
    skip = spec.get("skip", 0)
    if not isinstance(skip, int) or isinstance(skip, bool) or skip < 0:
        raise ValueError("S3 delay 'skip' must be a non-negative integer")
    fail_status = spec.get("fail_status")
    if fail_status is not None and (isinstance(fail_status, bool) or fail_status not in FAIL_CODES):
        raise ValueError(
            f"S3 delay 'fail_status' must be one of {sorted(FAIL_CODES)} (or null), "
            f"not {fail_status!r}"
        )
    return compile_check(
        KIND,
        lambda: S3DelayRule(
            id=rule_id,
            method=method,
            path_regex=str(spec.get("path_regex", ".*")),
            remaining=times,
            delay=float(delay),
            skip=skip,
            fail_status=fail_status,
        ),
    )
