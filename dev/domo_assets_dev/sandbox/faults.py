"""Fault injection: rules that make matching Domo requests fail in chosen ways.

Actions:
    status: answer with `status` (Domo error body, or the rule's `body`), plus a
        ``Retry-After`` header when `retry_after` is set; the request is not processed.
    reset: close the TCP connection with a RST before processing the request.
    delay: sleep `delay` seconds, then process and answer normally.
    drop_response: process the request fully, then close the connection without answering.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .rules import RequestRule, RuleBook, compile_check, parse_method, parse_times
from .web import Response, error_body, json_response

FAULT_ACTIONS = ("status", "reset", "delay", "drop_response")
FAULT_METHODS = ("*", "GET", "POST", "PUT", "PATCH", "DELETE")
FAULT_SEED = 20_261_128
KIND = "Fault"
DEFAULT_FAULT_STATUS = 503
DEFAULT_DELAY_SECONDS = 1.0
RULE_FIELDS = frozenset(
    {"method", "path_regex", "action", "status", "retry_after", "body", "delay", "times"}
    | {"probability"}
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
    """

    action: str = "status"
    status: int = DEFAULT_FAULT_STATUS
    retry_after: float | None = None
    body: Any = None
    delay: float = DEFAULT_DELAY_SECONDS
    probability: float | None = None

    def response(self) -> Response:
        """Return the response of a ``status`` action."""
        headers = {}
        if self.retry_after is not None:
            seconds = self.retry_after
            headers["Retry-After"] = str(int(seconds)) if seconds == int(seconds) else str(seconds)
        body = self.body if self.body is not None else error_body(self.status, "Injected fault")
        return json_response(body, self.status, headers)

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
        ),
    )


def _number(spec: Mapping[str, Any], name: str, default: float | None) -> float | None:
    value = spec.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"Fault {name!r} must be a non-negative number")
    return float(value)
