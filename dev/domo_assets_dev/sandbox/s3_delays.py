"""Delay rules for the sandbox's S3 (and every other moto service): hold matching requests.

A rule holds each matching request (its method, and a regex searched in the request path:
``/<bucket>/<key>`` for the path-style requests the sandbox's clients send to its loopback
address) for ``delay`` seconds, or until the rules are cleared, whichever comes first; then moto
processes it as usual. The request's body is read whole before the hold, so a request whose
client went away meanwhile (a killed process) is still processed, as S3 processes a request it
has received. Tests use it to stop a step at a known S3 call (the PUT of ``_latest.json``, the
GET of an export's file) while they terminate a run or start another one.

Writes to one object are also made atomic here: moto checks a conditional PutObject's
``If-Match`` / ``If-None-Match`` and then writes, without a lock, so two racing conditional
writes could both succeed. S3 decides them atomically, so the sandbox processes the PUTs of one
path one at a time (multipart parts excepted: they change no visible object).
"""

from __future__ import annotations

import re
import threading
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from .sts_wsgi import WsgiApp, forward, take_body

DELAY_METHODS = ("*", "GET", "HEAD", "PUT", "POST", "DELETE")
DEFAULT_S3_DELAY_SECONDS = 1.0
# A held request is released after this long at most, whatever the rule says: a forgotten
# rule must not keep a server thread (and the client's read timeout) forever.
MAX_S3_DELAY_SECONDS = 300.0
DELAY_FIELDS = frozenset({"method", "path_regex", "delay", "times", "skip"})
# PUTs are serialized per path over this many locks (bounded memory; unrelated paths rarely
# share one, and then only wait for each other's PUT).
WRITE_LOCK_STRIPES = 64
MULTIPART_PART_PARAM = "uploadId"


@dataclass
class S3DelayRule:
    """One delay rule.

    Attributes:
        id: Rule id, unique until `S3Delays.reset`.
        method: HTTP method to match, or ``*``.
        path_regex: Regex searched in the request path (query string excluded).
        delay: Seconds each matching request is held (unless the rules are cleared first).
        remaining: Matching requests still to hold; None for every one.
        skip: Matching requests still to let through unheld before the rule holds any (to
            hold, say, the second read of an object and not the first).
        hits: Requests this rule held (or holds).
        holding: Requests it holds right now.
    """

    id: int
    method: str
    path_regex: str
    delay: float = DEFAULT_S3_DELAY_SECONDS
    remaining: int | None = 1
    skip: int = 0
    hits: int = 0
    holding: int = 0
    pattern: re.Pattern[str] = field(init=False, repr=False)
    released: threading.Event = field(default_factory=threading.Event, repr=False)

    def __post_init__(self) -> None:
        self.pattern = re.compile(self.path_regex)

    def matches(self, method: str, path: str) -> bool:
        """True when the rule still applies to a request with `method` and `path`."""
        return (
            self.remaining != 0
            and self.method in ("*", method)
            and self.pattern.search(path) is not None
        )

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
        }


class S3Delays:
    """The active delay rules (thread-safe); the first matching rule with times left applies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[S3DelayRule] = []
        self._next_id = 1

    def add(self, spec: Mapping[str, Any]) -> S3DelayRule:
        """Add a rule from its JSON description (fields as in `S3DelayRule`; ``times`` sets
        `remaining`, default 1, null for every matching request).

        Raises:
            ValueError: For unknown fields or invalid values, naming the field.
        """
        unknown = set(spec) - DELAY_FIELDS
        if unknown:
            raise ValueError(f"Unknown S3 delay field(s): {', '.join(sorted(unknown))}")
        with self._lock:
            rule = _build_rule(self._next_id, spec)
            self._next_id += 1
            self._rules.append(rule)
            return rule

    def rules(self) -> list[dict[str, Any]]:
        """Every rule as JSON-ready data, oldest first."""
        with self._lock:
            return [rule.to_dict() for rule in self._rules]

    def clear(self) -> None:
        """Remove every rule and release the requests they hold at once."""
        with self._lock:
            rules, self._rules = self._rules, []
        for rule in rules:
            rule.released.set()

    def reset(self) -> None:
        """`clear`, and number rules from 1 again."""
        self.clear()
        with self._lock:
            self._next_id = 1

    def take(self, method: str, path: str) -> S3DelayRule | None:
        """The rule that holds this request, one of its times used up, or None."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path):
                    if rule.skip > 0:
                        rule.skip -= 1
                        return None
                    rule.hits += 1
                    if rule.remaining is not None:
                        rule.remaining -= 1
                    return rule
        return None

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
        if method != "PUT" or MULTIPART_PART_PARAM in parse_qs(environ.get("QUERY_STRING", "")):
            return self._app(environ, start_response)
        with self._write_locks[zlib.crc32(path.encode("utf-8")) % WRITE_LOCK_STRIPES]:
            status, headers, body = forward(self._app, environ)
        start_response(status, headers)
        return [body]


def _build_rule(rule_id: int, spec: Mapping[str, Any]) -> S3DelayRule:
    method = str(spec.get("method", "*")).upper()
    if method not in DELAY_METHODS:
        raise ValueError(f"S3 delay 'method' must be one of {DELAY_METHODS}")
    delay = spec.get("delay", DEFAULT_S3_DELAY_SECONDS)
    if (
        isinstance(delay, bool)
        or not isinstance(delay, int | float)
        or not 0 <= delay <= MAX_S3_DELAY_SECONDS
    ):
        raise ValueError(
            f"S3 delay 'delay' must be a number of seconds in 0..{MAX_S3_DELAY_SECONDS:g}"
        )
    times = spec.get("times", 1)
    if times is not None and (not isinstance(times, int) or isinstance(times, bool) or times < 1):
        raise ValueError("S3 delay 'times' must be a positive integer or null (every request)")
    skip = spec.get("skip", 0)
    if not isinstance(skip, int) or isinstance(skip, bool) or skip < 0:
        raise ValueError("S3 delay 'skip' must be a non-negative integer")
    try:
        return S3DelayRule(
            id=rule_id,
            method=method,
            path_regex=str(spec.get("path_regex", ".*")),
            delay=float(delay),
            remaining=times,
            skip=skip,
        )
    except re.error as exc:
        raise ValueError(f"S3 delay 'path_regex' is not a valid regex: {exc}") from exc
