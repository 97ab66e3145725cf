"""Asset checks of an export: its row count, its objects in S3 and its header.

The specs every export asset carries, and their results from the verdicts of ``verdicts.py``
(which says what each check compares). An export whose checks do not all pass is not recorded
as the asset's data: its check results are recorded all the same, so the UI shows which failed.
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
    PreviewWarning,
)

from domo_assets.catalog import ExportConfig
from domo_assets.outcome import ExportOutcome
from domo_assets.verdicts import (
    DEEP_CHECK,
    HEADER_CHECK,
    ROW_COUNT_CHECK,
    S3_OBJECTS_CHECK,
    Verdict,
    verdicts,
)


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
        AssetCheckSpec(
            HEADER_CHECK,
            asset=key,
            blocking=blocking,
            partitions_def=partitions_def,
            description="The first object's header lists exactly the requested columns, in "
            "order, with a UTF-8 BOM only if asked (read with a ranged GET)",
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
    """Evaluate the checks of one export asset (recorded whether or not it materializes)."""
    return [_result(verdict, key) for verdict in verdicts(outcome)]


def _result(verdict: Verdict, key: AssetKey) -> AssetCheckResult:
    return AssetCheckResult(
        asset_key=key,
        check_name=verdict.check,
        passed=verdict.passed,
        severity=AssetCheckSeverity.ERROR,
        description=verdict.description,
        metadata={
            name: MetadataValue.json(value) if isinstance(value, list) else value
            for name, value in verdict.metadata.items()
        },
    )
