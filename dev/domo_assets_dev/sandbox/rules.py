"""What the sandbox's request rules share: matching a request, numbering, and a thread-safe book.

Fault rules (``faults.py``, on the Domo server) and S3 delay rules (``s3_delays.py``, on the
moto server) both match a request by its method and a regex searched in its path, count how many
more requests they apply to (``times``), and live in a book that tests fill and clear through the
control API.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar


@dataclass
class RequestRule:
    """The part of a rule that matches requests.

    Attributes:
        id: Rule id, unique until the book is reset.
        method: HTTP method to match, or ``*``.
        path_regex: Regex searched in the request path (query string excluded).
        remaining: Matching requests the rule still applies to; None for every one.
        hits: Requests it applied to so far.
    """

    id: int
    method: str
    path_regex: str
    remaining: int | None = 1
    hits: int = 0
    pattern: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.pattern = re.compile(self.path_regex)

    def matches(self, method: str, path: str) -> bool:
        """True when the rule still applies to a request with `method` and `path`."""
        return (
            self.remaining != 0
            and self.method in ("*", method)
            and self.pattern.search(path) is not None
        )

    def use(self) -> None:
        """Count one request the rule applies to."""
        self.hits += 1
        if self.remaining is not None:
            self.remaining -= 1


Rule = TypeVar("Rule", bound=RequestRule)


class RuleBook(Generic[Rule]):
    """Rules of one kind, in the order they were added (thread-safe).

    Args:
        kind: What the rules are called in messages (``Fault``, ``S3 delay``).
        fields: The JSON fields a rule may have.
        build: Makes a rule from its id and JSON description; raises ValueError naming the
            field on a bad value.
    """

    def __init__(
        self,
        kind: str,
        fields: frozenset[str],
        build: Callable[[int, Mapping[str, Any]], Rule],
    ) -> None:
        self._kind = kind
        self._fields = fields
        self._build = build
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._next_id = 1

    def add(self, spec: Mapping[str, Any]) -> Rule:
        """Add a rule from its JSON description.

        Raises:
            ValueError: For unknown fields or invalid values, naming the field.
        """
        unknown = set(spec) - self._fields
        if unknown:
            raise ValueError(f"Unknown {self._kind} field(s): {', '.join(sorted(unknown))}")
        with self._lock:
            rule = self._build(self._next_id, spec)
            self._next_id += 1
            self._rules.append(rule)
            return rule

    def rules(self) -> list[dict[str, Any]]:
        """Every rule as JSON-ready data, oldest first."""
        with self._lock:
            return [rule.to_dict() for rule in self._rules]  # type: ignore[attr-defined]

    def clear(self) -> list[Rule]:
        """Remove every rule; returns them."""
        with self._lock:
            rules, self._rules = self._rules, []
        return rules

    def reset(self) -> list[Rule]:
        """`clear`, and number rules from 1 again; returns the rules removed."""
        rules = self.clear()
        with self._lock:
            self._next_id = 1
        return rules

    def first(self, method: str, path: str, accept: Callable[[Rule], bool]) -> Rule | None:
        """The first rule that matches the request and that ``accept`` takes (under the
        book's lock), one of its times used up; None when none does."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path) and accept(rule):
                    rule.use()
                    return rule
        return None


def parse_method(spec: Mapping[str, Any], kind: str, allowed: tuple[str, ...]) -> str:
    """A rule's ``method`` (default ``*``).

    Raises:
        ValueError: Not one of ``allowed``.
    """
    method = str(spec.get("method", "*")).upper()
    if method not in allowed:
        raise ValueError(f"{kind} 'method' must be one of {allowed}")
    return method


def parse_times(spec: Mapping[str, Any], kind: str) -> int | None:
    """A rule's ``times`` (default 1; null for every matching request).

    Raises:
        ValueError: Not a positive integer or null.
    """
    times = spec.get("times", 1)
    if times is not None and (not isinstance(times, int) or isinstance(times, bool) or times < 1):
        raise ValueError(f"{kind} 'times' must be a positive integer or null (every request)")
    return times


def compile_check(kind: str, make: Callable[[], Rule]) -> Rule:
    """``make()``, with a bad ``path_regex`` reported as ValueError naming the field."""
    try:
        return make()
    except re.error as exc:
        raise ValueError(f"{kind} 'path_regex' is not a valid regex: {exc}") from exc
