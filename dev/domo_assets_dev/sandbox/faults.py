"""Fault injection: rules that make matching Domo requests fail in chosen ways.

Actions:
    status: answer with `status` in the rule's `shape` (below), or with the rule's JSON `body`,
        plus a ``Retry-After`` header when `retry_after` is set; the request is not processed.
    reset: close the TCP connection with a RST before processing the request.
    delay: sleep `delay` seconds, then process and answer normally.
    drop_response: process the request fully, then close the connection without answering.

Shapes of a ``status`` answer, the forms Domo's errors are seen to take:
    domo: Domo's JSON error body ``{status, statusReason, message, toe}`` (the default).
    oauth: OAuth-style JSON ``{error, error_description}``.
    html: an HTML error page (``text/html``) with the status and the message.
    bearer_challenge: no body, ``WWW-Authenticate: Bearer error="invalid_token",
        error_description="<message>"``.
With `echo_secrets`, the message ends with every secret the request carried (its developer
token, bearer token or Basic password, an export request's ``awsAccessSecret`` and
``sessionToken``), each as sent, JSON-escaped and percent-encoded: what a careless server may
echo back, for tests of a client's scrubbing.
"""

from __future__ import annotations

import html
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus

from .auth import request_secrets
from .rules import RequestRule, RuleBook, compile_check, parse_method, parse_times
from .web import Request, Response, error_body, json_response, status_reason

FAULT_ACTIONS = ("status", "reset", "delay", "drop_response")
FAULT_SHAPES = ("domo", "oauth", "html", "bearer_challenge")
DEFAULT_FAULT_MESSAGE = "Injected fault"
HTML_CONTENT_TYPE = "text/html;charset=UTF-8"
# The OAuth `error` code of an oauth-shaped answer, by status (RFC 6749 and RFC 6750 codes).
OAUTH_ERROR_CODES = {400: "invalid_request", 401: "invalid_token", 403: "insufficient_scope"}
OAUTH_SERVER_ERROR = "server_error"
FAULT_METHODS = ("*", "GET", "POST", "PUT", "PATCH", "DELETE")
FAULT_SEED = 20_261_128
KIND = "Fault"
DEFAULT_FAULT_STATUS = 503
DEFAULT_DELAY_SECONDS = 1.0
RULE_FIELDS = frozenset(
    {"method", "path_regex", "action", "status", "retry_after", "body", "delay", "times"}
    | {"probability", "shape", "message", "echo_secrets"}
)


@dataclass
class FaultRule(RequestRule):
    """One fault rule (see the module docstring for the actions).

    Attributes (besides `RequestRule`'s):
        action: One of `FAULT_ACTIONS`.
        status: Status of a ``status`` action.
        retry_after: ``Retry-After`` seconds of a ``status`` action, or None.
        body: JSON body of a ``status`` action instead of Domo's error body, or None.
        delay: Seconds of a ``delay`` action.
        probability: Chance that a matching request faults (seeded), or None for always.
        shape: Form of a ``status`` answer without `body`: one of `FAULT_SHAPES`.
        message: The message of a ``status`` answer.
        echo_secrets: Whether the message echoes the request's secrets (see the module).
    """

    action: str = "status"
    status: int = DEFAULT_FAULT_STATUS
    retry_after: float | None = None
    body: Any = None
    delay: float = DEFAULT_DELAY_SECONDS
    probability: float | None = None
    shape: str = "domo"
    message: str = DEFAULT_FAULT_MESSAGE
    echo_secrets: bool = False

    def response(self, request: Request) -> Response:
        """Return the response of a ``status`` action to `request`."""
        headers = {}
        if self.retry_after is not None:
            seconds = self.retry_after
            headers["Retry-After"] = str(int(seconds)) if seconds == int(seconds) else str(seconds)
        if self.body is not None:
            return json_response(self.body, self.status, headers)
        message = self.message
        if self.echo_secrets:
            message += ": " + " ".join(
                form for secret in request_secrets(request) for form in echoed_forms(secret)
            )
        return _shaped(self.shape, self.status, message, headers)

    def to_dict(self) -> dict[str, Any]:
        """Return the rule as JSON-ready data."""
        return {
            "id": self.id,
            "method": self.method,
            "path_regex": self.path_regex,
            "action": self.action,
            "status": self.status,
            "retry_after": self.retry_after,
            "body": self.body,
            "delay": self.delay,
            "remaining": self.remaining,
            "probability": self.probability,
            "shape": self.shape,
            "message": self.message,
            "echo_secrets": self.echo_secrets,
            "hits": self.hits,
        }


class FaultInjector:
    """The active fault rules (thread-safe); the first matching rule wins."""

    def __init__(self) -> None:
        self._book: RuleBook[FaultRule] = RuleBook(KIND, RULE_FIELDS, _build_rule)
        self._rng = random.Random(FAULT_SEED)

    def add(self, spec: Mapping[str, Any]) -> FaultRule:
        """Add a rule from its JSON description (fields as in `FaultRule`; ``times`` sets
        `remaining`, default 1, null for unlimited).

        Raises:
            ValueError: For unknown fields or invalid values.
        """
        return self._book.add(spec)

    def clear(self) -> None:
        """Remove every rule."""
        self._book.clear()

    def reset(self) -> None:
        """Remove every rule and re-seed the probability generator."""
        self._book.reset()
        self._rng = random.Random(FAULT_SEED)

    def rules(self) -> list[dict[str, Any]]:
        """Return every rule as JSON-ready data."""
        return self._book.rules()

    def take(self, method: str, path: str) -> FaultRule | None:
        """Return the rule that faults this request, using up one of its times, or None."""
        return self._book.first(method, path, self._draws)

    def _draws(self, rule: FaultRule) -> bool:
        return rule.probability is None or self._rng.random() < rule.probability


def _build_rule(rule_id: int, spec: Mapping[str, Any]) -> FaultRule:
    method = parse_method(spec, KIND, FAULT_METHODS)
    action = spec.get("action", "status")
    if action not in FAULT_ACTIONS:
        raise ValueError(f"Fault 'action' must be one of {FAULT_ACTIONS}")
    status = spec.get("status", DEFAULT_FAULT_STATUS)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise ValueError("Fault 'status' must be an HTTP status code")
    times = parse_times(spec, KIND)
    probability = _number(spec, "probability", None)
    if probability is not None and not 0 <= probability <= 1:
        raise ValueError("Fault 'probability' must be between 0 and 1")
    shape = spec.get("shape", "domo")
    if shape not in FAULT_SHAPES:
        raise ValueError(f"Fault 'shape' must be one of {FAULT_SHAPES}")
    if spec.get("body") is not None and "shape" in spec:
        raise ValueError("Fault 'body' is the whole answer: give a 'body' or a 'shape', not both")
    message = spec.get("message", DEFAULT_FAULT_MESSAGE)
    if not isinstance(message, str):
        raise ValueError("Fault 'message' must be a string")
    echo_secrets = spec.get("echo_secrets", False)
    if not isinstance(echo_secrets, bool):
        raise ValueError("Fault 'echo_secrets' must be a boolean")
    return compile_check(
        KIND,
        lambda: FaultRule(
            id=rule_id,
            method=method,
            path_regex=str(spec.get("path_regex", ".*")),
            remaining=times,
            action=action,
            status=status,
            retry_after=_number(spec, "retry_after", None),
            body=spec.get("body"),
            delay=_number(spec, "delay", DEFAULT_DELAY_SECONDS) or 0.0,
            probability=probability,
            shape=shape,
            message=message,
            echo_secrets=echo_secrets,
        ),
    )


def _number(spec: Mapping[str, Any], name: str, default: float | None) -> float | None:
    value = spec.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"Fault {name!r} must be a non-negative number")
    return float(value)


def _shaped(shape: str, status: int, message: str, headers: dict[str, str]) -> Response:
    """An error answer in one of `FAULT_SHAPES`."""
    if shape == "oauth":
        code = OAUTH_SERVER_ERROR if status >= 500 else OAUTH_ERROR_CODES.get(status)
        body = {"error": code or "invalid_request", "error_description": message}
        return json_response(body, status, headers)
    if shape == "html":
        title = f"{status} {status_reason(status)}"
        page = (
            f"<!DOCTYPE html><html><head><title>{title}</title></head><body><h1>{title}</h1>"
            f"<p>{html.escape(message)}</p><hr><address>DomoSandbox</address></body></html>"
        )
        headers = {**headers, "Content-Type": HTML_CONTENT_TYPE}
        return Response(status, headers, page.encode("utf-8"))
    if shape == "bearer_challenge":
        described = _header_safe(message.replace("\\", "\\\\").replace('"', '\\"'))
        challenge = f'Bearer error="invalid_token", error_description="{described}"'
        return Response(status, {**headers, "WWW-Authenticate": challenge}, b"")
    return json_response(error_body(status, message), status, headers)


def echoed_forms(secret: str) -> list[str]:
    """A secret as sent, JSON-escaped (``/`` too) and percent-encoded (quote, quote_plus)."""
    escaped = json.dumps(secret)[1:-1]
    forms = [
        secret,
        escaped,
        json.dumps(secret, ensure_ascii=False)[1:-1],
        escaped.replace("/", "\\/"),
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
    ]
    return list(dict.fromkeys(forms))


def _header_safe(text: str) -> str:
    """Text a header can carry: no line breaks, Latin-1 only (others become '?')."""
    single_line = text.replace("\r", " ").replace("\n", " ")
    return single_line.encode("latin-1", "replace").decode("latin-1")
