"""The sandbox's request logs (Domo's and S3's): append-only, cleared by a test's reset.

A request takes a ticket when it arrives and hands it back when its entry is appended: a request
that arrived before a clear (one a delay held across a test's reset) is not logged after it, in
the next test's log.
"""

from __future__ import annotations

import threading
from dataclasses import asdict
from typing import Any, Generic, TypeVar

Entry = TypeVar("Entry")


class TicketedLog(Generic[Entry]):
    """A log of dataclass entries; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[Entry] = []
        # Bumped by every clear: tickets taken before it are spent.
        self._generation = 0

    def ticket(self) -> int:
        """Taken when a request arrives, handed back to `append` when it is answered."""
        with self._lock:
            return self._generation

    def append(self, entry: Entry, ticket: int) -> None:
        """Append an entry, unless the log was cleared since its request arrived."""
        with self._lock:
            if ticket == self._generation:
                self._entries.append(entry)

    def entries(self) -> list[dict[str, Any]]:
        """Every entry, oldest first, as JSON-ready data."""
        with self._lock:
            return [asdict(entry) for entry in self._entries]  # type: ignore[call-overload]

    def clear(self) -> None:
        """Forget every entry, and every request still being answered."""
        with self._lock:
            self._entries.clear()
            self._generation += 1
