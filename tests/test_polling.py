"""The status-read schedule: pure schedule logic, the history estimate, and one real wait."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime, timedelta

import pytest
from domo_assets_dev.sandbox import PHARMACY_CLAIMS_ID, Sandbox
from test_client import make_client, make_request

from domo_assets.domo.client import DomoClient, PollSchedule
from domo_assets.domo.models import Export, ExportStatus, S3Object
from domo_assets.domo.polling import HISTORY_SIZE, expected_duration

EXPORT_PATH = "/api/query/v1/export/"
LAG_SLACK_SECONDS = 0.5
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def detection(schedule: PollSchedule, duration: float, expected: float | None) -> tuple[int, float]:
    """Reads until an export lasting `duration` is seen finished, and the lag of that read.

    The first read is the one after the start request (whose answer said "exporting").
    """
    for reads, moment in enumerate(schedule.read_times(expected), start=1):
        if moment >= duration:
            return reads, moment - duration
    raise AssertionError("unreachable: the schedule is endless")


def finished_export(seconds: float, started: datetime = T0, key: str = "p/x/data.csv") -> Export:
    return Export(
        export_id=f"e{started.timestamp()}",
        status=ExportStatus.SUCCESS,
        started=started,
        finished=started + timedelta(seconds=seconds),
        objects=(S3Object("bucket-a", key, 1),),
    )


# -- the schedule -------------------------------------------------------------------------------


def test_without_expectation_the_intervals_are_the_geometric_ones() -> None:
    schedule = PollSchedule(initial_interval=1, max_interval=30, backoff=1.5)
    waits = list(itertools.islice(schedule.intervals(), 12))
    assert waits[:4] == pytest.approx([1, 1.5, 2.25, 3.375])
    assert waits[-3:] == [30, 30, 30]


@pytest.mark.parametrize(
    ("duration", "most_reads"), [(2, 15), (10, 15), (60, 15), (600, 15), (3600, 20)]
)
def test_with_expectation_completion_is_noticed_within_a_tenth(
    duration: float, most_reads: int
) -> None:
    schedule = PollSchedule(timeout=2 * duration)
    reads, lag = detection(schedule, duration, expected=duration)
    assert lag <= max(1.0, 0.1 * duration) + 1e-9
    assert reads <= most_reads


def test_reads_grow_logarithmically_with_the_duration() -> None:
    schedule = PollSchedule()
    reads = {t: detection(schedule, t, expected=t)[0] for t in (10, 100, 1000)}
    assert reads[100] - reads[10] <= 5
    assert reads[1000] - reads[100] <= 5
    assert detection(schedule, 600, expected=600)[0] <= 15


@pytest.mark.parametrize("ratio", [0.8, 1.0, 1.5, 3.0])
def test_longer_than_expected_is_still_noticed_within_a_tenth(ratio: float) -> None:
    schedule = PollSchedule()
    duration = 120 * ratio
    _, lag = detection(schedule, duration, expected=120)
    assert lag <= max(1.0, 0.1 * duration) + 1e-9


def test_no_history_fallback_is_geometric() -> None:
    schedule = PollSchedule()
    reads, lag = detection(schedule, 600, expected=None)
    assert reads <= 16
    assert lag <= (schedule.backoff - 1) * 600


def test_intervals_respect_floor_and_ceiling() -> None:
    schedule = PollSchedule(initial_interval=0.5, max_interval=20)
    times = list(itertools.islice(schedule.read_times(expected=400), 60))
    waits = [b - a for a, b in itertools.pairwise([0.0, *times])]
    assert all(w > 0 for w in waits), "read times must increase"
    assert max(waits) <= 20 + 1e-9
    assert min(waits) >= 0.5 - 1e-9


def test_approach_ends_exactly_where_dense_reads_start() -> None:
    schedule = PollSchedule(initial_interval=1, lead_fraction=0.2, approach_backoff=2)
    times = list(itertools.islice(schedule.read_times(expected=100), 10))
    assert 80.0 in times
    assert times[: times.index(80.0) + 1] == pytest.approx([1.25, 2.5, 5, 10, 20, 40, 80])


def test_tiny_expectation_starts_dense_at_the_first_interval() -> None:
    schedule = PollSchedule(initial_interval=1)
    assert list(itertools.islice(schedule.read_times(expected=0.3), 3)) == [1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    "settings",
    [
        {"initial_interval": 0},
        {"max_interval": -1},
        {"backoff": 0.5},
        {"approach_backoff": 1.0},
        {"lag_fraction": 0},
        {"lead_fraction": 1.0},
    ],
)
def test_invalid_schedules_are_refused(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        PollSchedule(**settings)


# -- the expectation from history ---------------------------------------------------------------


def test_expected_duration_is_the_median_of_recent_successes() -> None:
    history = [
        finished_export(seconds, T0 + timedelta(hours=i))
        for i, seconds in enumerate([500, 10, 12, 11, 13, 30])
    ]
    failed = Export("x", ExportStatus.ERROR, started=T0, finished=T0 + timedelta(seconds=1))
    running = Export("y", ExportStatus.EXPORTING, started=T0)
    assert len(history[-HISTORY_SIZE:]) == 5
    assert expected_duration([*history, failed, running]) == 12


def test_expected_duration_prefers_the_same_destination() -> None:
    mine = finished_export(40, key="exports/claims/e1/export/data.csv")
    other = finished_export(5, T0 + timedelta(hours=1), key="exports/other/e2/export/data.csv")
    assert expected_duration([mine, other], "bucket-a", "exports/claims") == 40
    assert expected_duration([mine, other], "bucket-a", "exports/other") == 5
    # None of this destination (another bucket), or none asked for: every export counts.
    assert expected_duration([mine, other], "bucket-b", "exports/claims") == pytest.approx(22.5)
    assert expected_duration([mine, other]) == pytest.approx(22.5)


def test_no_history_means_no_expectation() -> None:
    assert expected_duration([]) is None
    assert expected_duration([Export("x", ExportStatus.SUCCESS, started=T0)]) is None


# -- a real wait --------------------------------------------------------------------------------


def test_wait_with_history_reads_around_the_expected_end(sandbox: Sandbox) -> None:
    client: DomoClient = make_client(sandbox)
    schedule = PollSchedule(initial_interval=0.1, max_interval=5, timeout=30)
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, export_seconds=1.0)
    first = client.start_export(PHARMACY_CLAIMS_ID, make_request(sandbox))
    client.wait_for_export(PHARMACY_CLAIMS_ID, first.export.export_id, schedule)
    sandbox.control.change_dataset(PHARMACY_CLAIMS_ID, rows=1)
    expected = expected_duration(client.list_exports(PHARMACY_CLAIMS_ID))
    assert expected is not None and 0.9 <= expected <= 2.0

    start = client.start_export(PHARMACY_CLAIMS_ID, make_request(sandbox))
    sandbox.control.clear_requests()
    began = time.time()
    export = client.wait_for_export(
        PHARMACY_CLAIMS_ID,
        start.export.export_id,
        schedule,
        expected_seconds=expected,
        current=start.export,
    )

    assert export.status is ExportStatus.SUCCESS
    reads = [r["time"] for r in sandbox.control.requests() if EXPORT_PATH in r["path"]]
    assert reads[0] - began >= 0.1 - 0.02, "the start's answer stands for the first read"
    assert len(reads) <= detection(schedule, expected * 1.5, expected)[0]
    finished = export.finished.timestamp() if export.finished else 0.0
    assert reads[-1] - finished <= max(0.1, 0.1 * expected) + LAG_SLACK_SECONDS
