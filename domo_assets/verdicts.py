"""What each check of an export concludes, as plain records.

An export is recorded as its asset's data only when every verdict passed (``verified``); the
asset layer turns each verdict into an ``AssetCheckResult`` either way, so a refused export
still shows which check refused it. Plain Python: no Dagster.

* ``row_count``: the rows Domo reports exported equal the rows the same token counts through
  Domo's query endpoint with the same filter (a grouped export: at least ``min_rows``);
* ``s3_objects``: every recorded object exists in S3 and is non-empty;
* ``header``: the first object's header row lists exactly the requested columns, in order,
  with a UTF-8 BOM only if the export asked for one;
* ``deep_verification`` (``verify: deep``): every object parsed as CSV, with the header and
  record count Domo reports.

A failed verdict says whether a retry could mend it (``permanent``): a wrong header does not
heal (Domo hands back the same files while the DataSet is unchanged), whether the ``header``
check found it in the first file or deep verification in any; a row count or an object may
(data changing under the export, S3 catching up, a read that failed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from domo_assets.outcome import ExportOutcome
from domo_assets.s3.verify import header_mismatch

ROW_COUNT_CHECK = "row_count"
S3_OBJECTS_CHECK = "s3_objects"
HEADER_CHECK = "header"
DEEP_CHECK = "deep_verification"


@dataclass(frozen=True)
class Verdict:
    """One check's conclusion.

    Attributes:
        check: The check's name.
        passed: Whether the export passed it.
        description: One line saying what was compared and found.
        metadata: Plain values (numbers, strings, booleans, lists) to record with it.
        permanent: It failed for a reason a retry cannot mend (a wrong header).
    """

    check: str
    passed: bool
    description: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    permanent: bool = False


def verdicts(outcome: ExportOutcome) -> tuple[Verdict, ...]:
    """Every check's verdict on one export, in the order the checks are declared."""
    found = [row_count(outcome), s3_objects(outcome), header(outcome)]
    if outcome.config.verify == "deep":
        found.append(deep_verification(outcome))
    return tuple(found)


def verified(outcome: ExportOutcome) -> bool:
    """Whether every check passed: the export answers this asset's request."""
    return all(v.passed for v in verdicts(outcome))


def refused_for_good(outcome: ExportOutcome) -> bool:
    """Whether a retry cannot mend the checks that failed: each failed for a permanent reason.

    Args:
        outcome: An export that failed at least one check.
    """
    failed = [v for v in verdicts(outcome) if not v.passed]
    return bool(failed) and all(v.permanent for v in failed)


def row_count(outcome: ExportOutcome) -> Verdict:
    """The exported row count equals what Domo counts for the same filter (or the minimum)."""
    exported = outcome.row_count
    if outcome.expected_rows is None:
        minimum = outcome.config.min_rows
        return Verdict(
            ROW_COUNT_CHECK,
            exported >= minimum,
            f"{exported} row(s) exported; at least {minimum} required",
            {"exported_rows": exported, "min_rows": minimum},
        )
    return Verdict(
        ROW_COUNT_CHECK,
        exported == outcome.expected_rows,
        f"{exported} row(s) exported; Domo counts {outcome.expected_rows} for the same filter",
        {"exported_rows": exported, "expected_rows": outcome.expected_rows},
    )


def s3_objects(outcome: ExportOutcome) -> Verdict:
    """Every recorded object exists and is non-empty."""
    stored = outcome.stored
    missing = [s.reported.uri for s in stored if not s.exists]
    empty = [s.reported.uri for s in stored if s.exists and not s.size]
    passed = bool(stored) and not missing and not empty
    if not stored:
        description = "Domo reported no object for this export"
    elif passed:
        description = f"All {len(stored)} object(s) exist and are non-empty"
    else:
        description = f"{len(missing)} missing and {len(empty)} empty of {len(stored)} object(s)"
    metadata: dict[str, Any] = {
        "objects": len(stored),
        "total_bytes": sum(s.size or 0 for s in stored),
        "missing_objects": len(missing),
        "empty_objects": len(empty),
    }
    # The lists only when there is something to show (the UI renders them as links).
    if missing:
        metadata["missing"] = missing
    if empty:
        metadata["empty"] = empty
    return Verdict(S3_OBJECTS_CHECK, passed, description, metadata)


def header(outcome: ExportOutcome) -> Verdict:
    """The first object's header is the requested columns, with a BOM only if asked."""
    expected = list(outcome.exported_columns)
    read = outcome.header
    if read is None:
        problem = outcome.header_problem or "no object to read"
        return Verdict(
            HEADER_CHECK,
            False,
            f"Header not read: {problem}",
            {"expected_columns": expected},
            permanent=True,
        )
    problems = []
    if read.columns != outcome.target.columns:
        problems.append(header_mismatch(outcome.target.columns, read.columns))
    if read.had_bom != outcome.target.include_bom:
        asked = "asked for" if outcome.target.include_bom else "not asked for"
        problems.append(f"a BOM was {asked} but the file {'has' if read.had_bom else 'has none'}")
    description = (
        f"{read.uri}: " + "; ".join(problems)
        if problems
        else f"{read.uri} starts with the {len(expected)} requested column(s), in order"
    )
    return Verdict(
        HEADER_CHECK,
        not problems,
        description,
        {
            "expected_columns": expected,
            "found_columns": list(read.columns),
            "bom": read.had_bom,
            "bytes_read": read.bytes_read,
        },
        permanent=bool(problems),
    )


def deep_verification(outcome: ExportOutcome) -> Verdict:
    """The records parsed from S3 equal Domo's count, with the expected header, well formed."""
    report = outcome.verification
    exported = outcome.row_count
    if report is None:
        return Verdict(
            DEEP_CHECK,
            False,
            "Not run: an object Domo reported is missing or empty (see s3_objects)",
        )
    problems = list(report.problems)
    if report.records != exported:
        problems.append(f"{report.records} record(s) parsed but Domo reports {exported}")
    metadata: dict[str, Any] = {
        "records_parsed": report.records,
        "exported_rows": exported,
        "bytes_read": sum(f.bytes_read for f in report.files),
        "problems": problems,
    }
    if report.wrong_headers:
        metadata["wrong_headers"] = list(report.wrong_headers)
    return Verdict(
        DEEP_CHECK,
        not problems,
        "; ".join(problems) or f"{report.records} record(s) parsed in {len(report.files)} file(s)",
        metadata,
        # A retry reads the same files: Domo hands the export back while the DataSet is unchanged.
        permanent=bool(report.wrong_headers),
    )
