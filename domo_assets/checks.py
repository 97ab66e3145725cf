"""Asset checks of an export: its row count and its objects in S3.

``row_count``: the rows Domo reports exported equal the rows the same token can count through
Domo's query endpoint with the same filter (so PDP policies apply equally), or, for a grouped
export, are at least the catalog's ``min_rows``.
``s3_objects``: every reported object exists in S3 and is non-empty.
"""

from __future__ import annotations

import warnings

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    MetadataValue,
    PartitionsDefinition,
)
from dagster._utils.warnings import PreviewWarning

from domo_assets.catalog import ExportConfig
from domo_assets.outcome import ExportOutcome

ROW_COUNT_CHECK = "row_count"
S3_OBJECTS_CHECK = "s3_objects"
DEEP_CHECK = "deep_verification"


def check_specs(
    config: ExportConfig, key: AssetKey, partitions_def: PartitionsDefinition | None = None
) -> list[AssetCheckSpec]:
    """The checks every export asset carries (per partition for a partitioned export)."""
    blocking = config.blocking_checks
    if partitions_def is None:
        return _check_specs(config, key, partitions_def, blocking)
    with warnings.catch_warnings():
        # Partitioned check specs are a preview feature of Dagster 1.13; checks per partition
        # are what a partitioned export needs, so the warning is expected here.
        warnings.simplefilter("ignore", PreviewWarning)
        return _check_specs(config, key, partitions_def, blocking)


def _check_specs(
    config: ExportConfig, key: AssetKey, partitions_def: PartitionsDefinition | None, blocking: bool
) -> list[AssetCheckSpec]:
    return [
        AssetCheckSpec(
            ROW_COUNT_CHECK,
            asset=key,
            blocking=blocking,
            partitions_def=partitions_def,
            description=(
                "Rows exported equal the rows Domo counts for the same filter and token"
                if not config.group_by
                else f"A grouped export has at least {config.min_rows} row(s)"
            ),
        ),
        AssetCheckSpec(
            S3_OBJECTS_CHECK,
            asset=key,
            blocking=blocking,
            partitions_def=partitions_def,
            description="Every object Domo reports exists in S3 and is non-empty",
        ),
        *(
            [
                AssetCheckSpec(
                    DEEP_CHECK,
                    asset=key,
                    blocking=blocking,
                    partitions_def=partitions_def,
                    description="Every object streamed and parsed as CSV: header equals the "
                    "exported columns and the records counted equal Domo's row count",
                )
            ]
            if config.verify == "deep"
            else []
        ),
    ]


def check_results(outcome: ExportOutcome, key: AssetKey) -> list[AssetCheckResult]:
    """Evaluate the checks of one export asset."""
    results = [row_count_result(outcome, key), s3_objects_result(outcome, key)]
    if outcome.config.verify == "deep":
        results.append(deep_verification_result(outcome, key))
    return results


def deep_verification_result(outcome: ExportOutcome, key: AssetKey) -> AssetCheckResult:
    """The records parsed from S3 equal Domo's count, with the expected header, well formed."""
    report = outcome.verification
    exported = outcome.export.row_count
    if report is None:
        return AssetCheckResult(
            asset_key=key,
            check_name=DEEP_CHECK,
            passed=False,
            severity=AssetCheckSeverity.ERROR,
            description="Not run: an object Domo reported is missing or empty (see s3_objects)",
        )
    problems = list(report.problems)
    if report.records != exported:
        problems.append(f"{report.records} record(s) parsed but Domo reports {exported}")
    return AssetCheckResult(
        asset_key=key,
        check_name=DEEP_CHECK,
        passed=not problems,
        severity=AssetCheckSeverity.ERROR,
        description="; ".join(problems)
        or f"{report.records} record(s) parsed in {len(report.files)} file(s)",
        metadata={
            "records_parsed": report.records,
            "exported_rows": exported,
            "bytes_read": sum(f.bytes_read for f in report.files),
            "problems": MetadataValue.json(problems),
        },
    )


def row_count_result(outcome: ExportOutcome, key: AssetKey) -> AssetCheckResult:
    """Compare the exported row count with what Domo counts (or the minimum)."""
    exported = outcome.export.row_count
    if outcome.expected_rows is None:
        passed = exported >= outcome.config.min_rows
        description = f"{exported} row(s) exported; at least {outcome.config.min_rows} required"
        expected_meta: dict[str, int] = {"min_rows": outcome.config.min_rows}
    else:
        passed = exported == outcome.expected_rows
        description = (
            f"{exported} row(s) exported; Domo counts {outcome.expected_rows} for the same filter"
        )
        expected_meta = {"expected_rows": outcome.expected_rows}
    return AssetCheckResult(
        asset_key=key,
        check_name=ROW_COUNT_CHECK,
        passed=passed,
        severity=AssetCheckSeverity.ERROR,
        description=description,
        metadata={"exported_rows": exported, **expected_meta},
    )


def s3_objects_result(outcome: ExportOutcome, key: AssetKey) -> AssetCheckResult:
    """Every reported object exists and is non-empty."""
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
    return AssetCheckResult(
        asset_key=key,
        check_name=S3_OBJECTS_CHECK,
        passed=passed,
        severity=AssetCheckSeverity.ERROR,
        description=description,
        metadata={
            "objects": len(stored),
            "total_bytes": sum(s.size or 0 for s in stored),
            "missing_objects": len(missing),
            "empty_objects": len(empty),
            # The lists only when there is something to show (the UI renders them as links).
            **({"missing": MetadataValue.json(missing)} if missing else {}),
            **({"empty": MetadataValue.json(empty)} if empty else {}),
        },
    )
