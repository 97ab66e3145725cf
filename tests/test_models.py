"""Parsing of Domo's JSON into records, and the SQL the records write (pure functions)."""

from __future__ import annotations

from typing import Any

import pytest

from domo_assets.domo.errors import DomoResponseError
from domo_assets.domo.models import (
    Condition,
    Export,
    ExportStatus,
    FilterOp,
    QueryResult,
    RowFilter,
    export_entries,
    find_export_entry,
    parse_export_entries,
    parse_status,
)

GOOD = {
    "exportId": "good",
    "exportStatus": "success",
    "started": 1764288000000,
    "finished": "2025-11-28T00:01:00Z",
    "urlRowCountMap": {"s3://bucket/p/good/export/data.csv.gz": 7},
}


def entry(**changes: Any) -> dict[str, Any]:
    """A readable export entry with some fields changed."""
    return {**GOOD, **changes}


# -- statuses -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("none", ExportStatus.NONE),
        (None, ExportStatus.NONE),
        ("EXPORTING", ExportStatus.EXPORTING),
        (" Success ", ExportStatus.SUCCESS),
        ("error", ExportStatus.ERROR),
        ("CANCELLED", ExportStatus.UNKNOWN),
        ("aborted", ExportStatus.UNKNOWN),
    ],
)
def test_parse_status_maps_undocumented_values_to_unknown(
    raw: str | None, status: ExportStatus
) -> None:
    assert parse_status(raw) is status


@pytest.mark.parametrize(
    ("status", "active", "terminal"),
    [
        (ExportStatus.NONE, True, False),
        (ExportStatus.EXPORTING, True, False),
        (ExportStatus.SUCCESS, False, True),
        (ExportStatus.ERROR, False, True),
        (ExportStatus.UNKNOWN, False, True),
    ],
)
def test_only_none_and_exporting_are_active(
    status: ExportStatus, active: bool, terminal: bool
) -> None:
    assert (status.is_active, status.is_terminal) == (active, terminal)
    assert Export("x", status).is_active is active


def test_unknown_status_keeps_domos_text() -> None:
    export = Export.from_api(entry(exportStatus="CANCELLED", urlRowCountMap=None))
    assert export.status is ExportStatus.UNKNOWN
    assert export.raw_status == "CANCELLED"
    assert export.status_text == "CANCELLED"
    assert not export.is_active


# -- history ------------------------------------------------------------------------------------


MALFORMED = [
    ("not-an-object", None, "str"),
    ({"exportStatus": "success"}, None, "without exportId"),
    (entry(exportId="bad-time", started="not a time"), "bad-time", "'started'"),
    (
        entry(exportId="null-rows", urlRowCountMap={"s3://bucket/k.csv": None}),
        "null-rows",
        "no row count",
    ),
    (
        entry(exportId="text-rows", urlRowCountMap={"s3://bucket/k.csv": "many"}),
        "text-rows",
        "no row count",
    ),
    (
        entry(exportId="bad-url", urlRowCountMap={"ftp://nowhere": 3}),
        "bad-url",
        "Cannot read an S3 bucket",
    ),
]


def test_history_skips_each_unreadable_entry_and_keeps_the_rest() -> None:
    entries = [GOOD, *(raw for raw, _, _ in MALFORMED), entry(exportId="also-good")]
    history = parse_export_entries(entries)
    assert [e.export_id for e in history.exports] == ["good", "also-good"]
    assert [(s.position, s.export_id) for s in history.skipped] == [
        (position, export_id) for position, (_, export_id, _) in enumerate(MALFORMED, start=1)
    ]
    for skipped, (_, _, reason) in zip(history.skipped, MALFORMED, strict=True):
        assert reason in skipped.reason
        assert f"entry {skipped.position}" in skipped.describe()


def test_skipped_identity_survives_reordering() -> None:
    entries = [raw for raw, _, _ in MALFORMED]
    forward = parse_export_entries(entries).skipped
    backward = parse_export_entries(entries[::-1]).skipped
    assert {s.identity for s in forward} == {s.identity for s in backward}
    assert len({s.identity for s in forward}) == len(MALFORMED)


def test_find_export_entry_returns_the_raw_entry_without_parsing_others() -> None:
    entries = [raw for raw, _, _ in MALFORMED] + [GOOD]
    assert find_export_entry(entries, "good") == (len(MALFORMED), GOOD)
    assert find_export_entry(entries, "missing") is None
    position, raw = find_export_entry(entries, "bad-time") or (None, None)
    assert position == 2
    with pytest.raises(DomoResponseError, match="'started'"):
        Export.from_api(raw)


def test_export_entries_accepts_an_envelope_and_rejects_other_bodies() -> None:
    assert export_entries({"exports": [GOOD]}) == [GOOD]
    with pytest.raises(DomoResponseError, match="list of exports"):
        export_entries("nope")


# -- SQL ----------------------------------------------------------------------------------------


def test_sql_backticks_names_and_escapes_strings_for_mysql() -> None:
    condition = Condition("Odd `name` \"x\" 'y'", FilterOp.EQUALS, ("it's a \\ path",))
    assert condition.to_sql() == "`Odd ``name`` \"x\" 'y'` = 'it''s a \\\\ path'"


def test_sql_numbers_stay_bare_and_conditions_join_with_and() -> None:
    where = RowFilter(
        (
            Condition("Region", FilterOp.IN, ("East", "West")),
            Condition("Amount", FilterOp.GREATER_THAN_EQUAL, (10,)),
            Condition("Rate", FilterOp.LESS_THAN, (0.5,)),
        )
    )
    assert where.to_sql() == "`Region` IN ('East', 'West') AND `Amount` >= 10 AND `Rate` < 0.5"


# -- query answers ------------------------------------------------------------------------------


def test_query_result_reads_columns_and_rows() -> None:
    result = QueryResult.from_api({"columns": ["COUNT(*)"], "rows": [[42]], "numRows": 1})
    assert result.columns == ("COUNT(*)",)
    assert result.scalar() == 42


def test_query_result_reads_an_array_of_row_objects() -> None:
    result = QueryResult.from_api([{"b": 1, "a": "x"}, {"a": "y", "b": 2}])
    assert result.columns == ("b", "a")
    assert result.rows == ((1, "x"), (2, "y"))
    assert QueryResult.from_api([{"COUNT(*)": 42}]).scalar() == 42


def test_query_result_without_rows_has_no_scalar() -> None:
    with pytest.raises(DomoResponseError, match="no rows"):
        QueryResult.from_api([]).scalar()
    with pytest.raises(DomoResponseError, match="row objects"):
        QueryResult.from_api([{"a": 1}, [2]])
