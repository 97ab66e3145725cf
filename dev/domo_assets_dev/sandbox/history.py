"""Injected export history: entries that Domo's export list may hold but the sandbox never made.

Domo's list of a DataSet's exports holds its whole history, and nothing documents what an old
entry may look like (an undocumented status, a null row count, an unreadable time), how long a
stale ``exporting`` entry may stay, or how long the list grows. The presets below put such
entries into ``GET /api/query/v1/export/{id}``; the engine lists them and never runs or reuses
them (a ``blocking`` stale entry refuses new exports, as a running one would).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .exports import (
    STATUS_EXPORTING,
    STATUS_SUCCESS,
    export_object,
    file_names,
    format_timestamp,
    object_url,
)
from .s3 import DEFAULT_REGION, EXPORT_BUCKET

MALFORMED = "malformed"
STALE_EXPORTING = "stale_exporting"
FINISHED = "finished"
PRESETS = (MALFORMED, STALE_EXPORTING, FINISHED)
UNDOCUMENTED_STATUS = "CANCELLED"
UNREADABLE_TIME = "not a time"
DEFAULT_STALE_AGE_SECONDS = 259_200  # three days
DEFAULT_FINISHED_COUNT = 10_000
MAX_FINISHED_COUNT = 1_000_000  # keeps a typo from filling the sandbox's memory
MALFORMED_AGE_MS = 2 * 24 * 3600 * 1000
FINISHED_SPACING_MS = 3600 * 1000  # one old export an hour, the newest an hour ago
MIN_DURATION_MS = 1_000
DURATION_SPREAD_MS = 29_000
DURATION_STEP_MS = 7_919  # a prime: durations vary without a random generator
HISTORY_BUCKET_REGION = DEFAULT_REGION  # the region of EXPORT_BUCKET


@dataclass(frozen=True)
class HistoryTarget:
    """What injected entries imitate: the DataSet's forms at the time they are added.

    Attributes:
        dataset_id: DataSet id (the default export path).
        compression: ``gzip`` or ``none``.
        row_count: Rows a successful old export reports.
        url_style: Form of urlRowCountMap keys.
        timestamp_style: Form of started/finished.
        now_ms: The current time, epoch milliseconds.
    """

    dataset_id: str
    compression: str
    row_count: int
    url_style: str
    timestamp_style: str
    now_ms: int

    def entry(
        self,
        status: str,
        started_ms: int | None,
        finished_ms: int | None,
        url_row_counts: Mapping[str, object] | None,
        export_id: str | None = None,
    ) -> dict[str, Any]:
        """Return an export object of this DataSet, written to `EXPORT_BUCKET`."""
        return export_object(
            export_id=export_id or str(uuid.uuid4()),
            status=status,
            started=format_timestamp(started_ms, self.timestamp_style),
            finished=format_timestamp(finished_ms, self.timestamp_style),
            url_row_counts=url_row_counts,
            compression=self.compression,
            bucket=EXPORT_BUCKET,
        )

    def file_url(self, export_id: str) -> str:
        """Return the URL of an old export's one file, in the DataSet's url style."""
        (name,) = file_names(1, self.compression)
        key = f"{self.dataset_id}/{export_id}/export/{name}"
        return object_url(self.url_style, EXPORT_BUCKET, HISTORY_BUCKET_REGION, key)

    def finished_entry(self, started_ms: int, duration_ms: int) -> dict[str, Any]:
        """Return an old successful export with a one-file urlRowCountMap."""
        export_id = str(uuid.uuid4())
        urls = {self.file_url(export_id): self.row_count}
        return self.entry(STATUS_SUCCESS, started_ms, started_ms + duration_ms, urls, export_id)


@dataclass(frozen=True)
class History:
    """Entries to inject into a DataSet's export list.

    Attributes:
        entries: Raw JSON values, listed verbatim.
        blocking: Whether the DataSet must refuse new exports while they exist.
    """

    entries: list[Any]
    blocking: bool = False

    @property
    def export_ids(self) -> list[str]:
        """The exportIds of the entries that have one (a raw entry may have none)."""
        return [
            entry["exportId"]
            for entry in self.entries
            if isinstance(entry, Mapping) and isinstance(entry.get("exportId"), str)
        ]


def build_history(body: Mapping[str, Any], target: HistoryTarget) -> History:
    """Return the history a control request asks for.

    Args:
        body: ``{"preset": name, ...options}`` or ``{"entries": [...]}``.
        target: The DataSet the entries imitate.

    Raises:
        ValueError: For an unknown preset or option, or a value out of range.
    """
    options = dict(body)
    preset = options.pop("preset", None)
    if preset is None:
        entries = options.pop("entries", None)
        _no_other_options(options, "raw entries")
        if not isinstance(entries, list):
            raise ValueError(
                f"Give a 'preset' (one of {', '.join(PRESETS)}) or 'entries': a list of values"
            )
        return History(list(entries))
    if not isinstance(preset, str) or preset not in BUILDERS:
        raise ValueError(f"Unknown history preset {preset!r}; use one of {', '.join(PRESETS)}")
    return BUILDERS[preset](options, target)


def _malformed(options: dict[str, Any], target: HistoryTarget) -> History:
    _no_other_options(options, MALFORMED)
    started = target.now_ms - MALFORMED_AGE_MS
    cancelled = target.entry(UNDOCUMENTED_STATUS, started, started + MIN_DURATION_MS, None)
    null_count = target.finished_entry(started, MIN_DURATION_MS)
    null_count["urlRowCountMap"] = dict.fromkeys(null_count["urlRowCountMap"])
    bad_time = target.finished_entry(started, MIN_DURATION_MS)
    bad_time["started"] = UNREADABLE_TIME
    return History([cancelled, null_count, bad_time])


def _stale_exporting(options: dict[str, Any], target: HistoryTarget) -> History:
    age = options.pop("age_seconds", DEFAULT_STALE_AGE_SECONDS)
    blocking = options.pop("blocking", False)
    _no_other_options(options, STALE_EXPORTING)
    if not isinstance(age, int | float) or isinstance(age, bool) or not 0 <= age < math.inf:
        raise ValueError(f"'age_seconds' must be a non-negative number, got {age!r}")
    if not isinstance(blocking, bool):
        raise ValueError(f"'blocking' must be a boolean, got {blocking!r}")
    started = target.now_ms - round(age * 1000)
    return History([target.entry(STATUS_EXPORTING, started, None, None)], blocking=blocking)


def _finished(options: dict[str, Any], target: HistoryTarget) -> History:
    count = options.pop("count", DEFAULT_FINISHED_COUNT)
    _no_other_options(options, FINISHED)
    if (
        not isinstance(count, int)
        or isinstance(count, bool)
        or not 0 <= count <= MAX_FINISHED_COUNT
    ):
        raise ValueError(
            f"'count' must be an integer from 0 to {MAX_FINISHED_COUNT}, got {count!r}"
        )
    oldest = target.now_ms - count * FINISHED_SPACING_MS
    return History(
        [
            target.finished_entry(
                oldest + index * FINISHED_SPACING_MS,
                MIN_DURATION_MS + (index * DURATION_STEP_MS) % DURATION_SPREAD_MS,
            )
            for index in range(count)
        ]
    )


def _no_other_options(options: Mapping[str, Any], preset: str) -> None:
    if options:
        raise ValueError(f"Unknown option(s) for {preset}: {', '.join(sorted(options))}")


BUILDERS: dict[str, Callable[[dict[str, Any], HistoryTarget], History]] = {
    MALFORMED: _malformed,
    STALE_EXPORTING: _stale_exporting,
    FINISHED: _finished,
}
