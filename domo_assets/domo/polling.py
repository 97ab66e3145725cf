"""When to read an export's status: a geometric schedule, sharpened by the DataSet's history.

Pure logic (no HTTP, no clock), used by ``DomoClient.wait_for_export``.

A purely geometric schedule cannot both keep the number of reads logarithmic in the export's
duration ``T`` and notice completion within a fixed fraction of ``T``: a lag of at most 10 %
needs a growth factor of at most 1.1, i.e. about 45 reads to reach 10 minutes. Domo lists a
DataSet's past exports with their start and finish times, so the schedule can be told how long
the export is expected to take (:func:`expected_duration`) and spend its reads there:

* **without an expectation** the interval starts at ``initial_interval`` and grows by
  ``backoff`` up to ``max_interval`` (about ``log(T) / log(backoff)`` reads; completion noticed
  within ``(backoff - 1) x T``, and within ``max_interval``);
* **with an expectation** ``E`` the reads approach ``(1 - lead_fraction) x E`` geometrically
  (factor ``approach_backoff``, anchored so the last approach read falls exactly there), then
  come every ``lag_fraction`` of the elapsed time (at least ``initial_interval``): an export that
  ends at any ``T >= (1 - lead_fraction) x E`` is noticed within
  ``max(initial_interval, lag_fraction x T)``, in about ``log2(E) + 4`` reads when ``T`` is near
  ``E``. An export far shorter than expected is noticed with the approach's lag (up to the
  elapsed time); one far longer costs about 7 more reads per doubling of ``T``.

Every interval is capped by ``max_interval``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from domo_assets.domo.models import Export, ExportStatus

DEFAULT_INITIAL_INTERVAL = 0.5
DEFAULT_MAX_INTERVAL = 600.0
DEFAULT_BACKOFF = 1.5
DEFAULT_TIMEOUT = 3600.0
# Domo's history can keep an export "exporting" that never ends; past this it is stale.
DEFAULT_STALE_EXPORT_AFTER = 6 * 3600.0
DEFAULT_APPROACH_BACKOFF = 2.0
DEFAULT_LAG_FRACTION = 0.1
DEFAULT_LEAD_FRACTION = 0.2
# The expectation is the median duration of the DataSet's last few successful exports.
HISTORY_SIZE = 5


@dataclass(frozen=True)
class PollSchedule:
    """How often to ask Domo for an export's status, and for how long.

    Attributes:
        initial_interval: The first wait, and the shortest one near the expected end.
        max_interval: The longest wait between two status reads.
        backoff: Growth factor of the interval when the duration is not expected.
        timeout: Seconds after which polling gives up.
        approach_backoff: Growth factor of the interval before the expected end.
        lag_fraction: Near and after the expected end, the wait as a fraction of the time
            elapsed (the most a completion can go unnoticed, relative to the export's duration).
        lead_fraction: Dense reads start this fraction of the expected duration before it.
    """

    initial_interval: float = DEFAULT_INITIAL_INTERVAL
    max_interval: float = DEFAULT_MAX_INTERVAL
    backoff: float = DEFAULT_BACKOFF
    timeout: float = DEFAULT_TIMEOUT
    approach_backoff: float = DEFAULT_APPROACH_BACKOFF
    lag_fraction: float = DEFAULT_LAG_FRACTION
    lead_fraction: float = DEFAULT_LEAD_FRACTION

    def __post_init__(self) -> None:
        if self.initial_interval <= 0 or self.max_interval <= 0:
            raise ValueError("poll intervals must be positive")
        if self.backoff < 1 or self.approach_backoff <= 1:
            raise ValueError("backoff must be at least 1 and approach_backoff more than 1")
        if self.lag_fraction <= 0 or not 0 <= self.lead_fraction < 1:
            raise ValueError("lag_fraction must be positive and lead_fraction in [0, 1)")

    def intervals(self, expected: float | None = None) -> Iterator[float]:
        """The successive waits between status reads (endless).

        Args:
            expected: The export's expected duration in seconds, if known.
        """
        previous = 0.0
        for moment in self.read_times(expected):
            yield moment - previous
            previous = moment

    def read_times(self, expected: float | None = None) -> Iterator[float]:
        """The seconds after polling begins at which to read the status (endless, increasing).

        Args:
            expected: The export's expected duration in seconds, if known.
        """
        if expected is None or expected <= 0:
            return _cumulative(self._geometric())
        approach = self._approach(expected * (1 - self.lead_fraction))
        return _chain_dense(approach, self._dense_after)

    def _geometric(self) -> Iterator[float]:
        """The waits without an expectation: ``initial_interval`` growing by ``backoff``."""
        interval = self.initial_interval
        while True:
            yield interval
            interval = min(interval * self.backoff, self.max_interval)

    def _approach(self, until: float) -> list[float]:
        """Geometric read times ending exactly at `until`, gaps capped by ``max_interval``."""
        anchors: list[float] = []
        moment = until
        while moment >= self.initial_interval:
            anchors.append(moment)
            moment /= self.approach_backoff
        times: list[float] = []
        previous = 0.0
        for anchor in reversed(anchors):
            steps = max(1, math.ceil((anchor - previous) / self.max_interval))
            times.extend(previous + (anchor - previous) * i / steps for i in range(1, steps + 1))
            previous = anchor
        return times

    def _dense_after(self, moment: float) -> float:
        """The read after `moment` near and past the expected end."""
        interval = min(max(self.lag_fraction * moment, self.initial_interval), self.max_interval)
        return moment + interval


def _cumulative(intervals: Iterable[float]) -> Iterator[float]:
    """Read times from successive waits."""
    moment = 0.0
    for interval in intervals:
        moment += interval
        yield moment


def _chain_dense(approach: list[float], after: Callable[[float], float]) -> Iterator[float]:
    """The approach's read times, then each next one from `after` (endless)."""
    yield from approach
    moment = approach[-1] if approach else 0.0
    while True:
        moment = after(moment)
        yield moment


def expected_duration(
    exports: Iterable[Export], bucket: str | None = None, prefix: str | None = None
) -> float | None:
    """The expected duration of a new export: the median of the last few successful ones.

    Exports that wrote under ``s3://bucket/prefix/`` (the same catalog entry) are preferred;
    without any, every successful export of the DataSet counts.

    Args:
        exports: The DataSet's exports, oldest first (as ``DomoClient.list_exports`` returns).
        bucket: The destination bucket of the export about to run.
        prefix: Its S3 prefix.

    Returns:
        Seconds, or None when no successful export says how long it took.
    """
    done = [e for e in exports if e.status is ExportStatus.SUCCESS and _positive_duration(e)]
    mine = [e for e in done if _wrote_under(e, bucket, prefix)] if prefix else []
    recent = (mine or done)[-HISTORY_SIZE:]
    if not recent:
        return None
    return statistics.median(e.duration_seconds or 0.0 for e in recent)


def _positive_duration(export: Export) -> bool:
    """Whether Domo dated the export's start and end, the end after the start."""
    return (export.duration_seconds or 0.0) > 0


def _wrote_under(export: Export, bucket: str | None, prefix: str) -> bool:
    """Whether the export wrote under ``s3://bucket/prefix/`` (any bucket when None)."""
    folder = prefix.strip("/") + "/"
    return any(
        o.key.startswith(folder) and (bucket is None or o.bucket == bucket) for o in export.objects
    )
