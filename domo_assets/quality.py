"""Data-quality checks beyond transfer integrity, from each export's ``quality:`` settings.

The transfer checks (``checks.py``) compare an export with Domo; these compare it with what the
asset looked like before, so that a DataSet Domo truncates, or whose columns change, is caught:

* ``column_schema_change`` (Dagster's ``build_column_schema_change_checks``): the
  ``dagster/column_schema`` of the latest materialization against the previous one (added,
  removed, retyped columns);
* ``dagster_row_count_bounds_check`` (Dagster's ``build_metadata_bounds_checks``): at least
  ``min_rows`` rows in the latest materialization;
* ``row_count_drop``: the latest row count fell by at most ``max_row_drop`` (a percentage)
  against the previous materialization (unpartitioned exports: the catalog refuses it on a
  partitioned one, whose previous materialization is another partition's).

Each has the severity its settings give (``warn`` or ``error``). They run as their own check
steps after the export in the same run, reading the materializations through Dagster's public
instance API. Dagster's builders are beta in 1.13.27 (pinned exactly).
"""

import warnings
from collections import defaultdict
from collections.abc import Iterable, Mapping

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    AssetRecordsFilter,
    BetaWarning,
    build_column_schema_change_checks,
    build_metadata_bounds_checks,
    multi_asset_check,
)

from domo_assets.catalog import QualitySettings, Severity
from domo_assets.dagster_names import ROW_COUNT_KEY
from domo_assets.translator import DomoSpecs, export_config

ROW_DROP_CHECK = "row_count_drop"
_SEVERITIES = {"warn": AssetCheckSeverity.WARN, "error": AssetCheckSeverity.ERROR}


def build_quality_checks(specs: DomoSpecs, *, name_prefix: str = "") -> list[AssetChecksDefinition]:
    """The data-quality checks of every export that asks for them.

    Args:
        specs: The translated catalog.
        name_prefix: Prepended to the row-drop check op's name (several catalogs in a project).
    """
    schema: dict[Severity, list[AssetKey]] = defaultdict(list)
    minimum: dict[tuple[int, Severity], list[AssetKey]] = defaultdict(list)
    drops: dict[AssetKey, QualitySettings] = {}
    for spec in specs.exports:
        quality = export_config(spec).quality
        if quality is None:
            continue
        if quality.schema_change is not None:
            schema[quality.schema_change.severity].append(spec.key)
        if quality.min_rows is not None:
            minimum[quality.min_rows.bound, quality.min_rows.severity].append(spec.key)
        if quality.max_row_drop is not None:
            drops[spec.key] = quality
    checks: list[AssetChecksDefinition] = []
    with warnings.catch_warnings():
        # Dagster's check builders are beta in 1.13; we pin dagster exactly.
        warnings.simplefilter("ignore", BetaWarning)
        for severity, keys in schema.items():
            checks += build_column_schema_change_checks(assets=keys, severity=_SEVERITIES[severity])
        for (bound, severity), keys in minimum.items():
            checks += build_metadata_bounds_checks(
                assets=keys,
                severity=_SEVERITIES[severity],
                metadata_key=ROW_COUNT_KEY,
                min_value=bound,
            )
    if drops:
        checks.append(_row_drop_checks(drops, f"{name_prefix}domo_row_count_drop_checks"))
    return checks


def _row_drop_checks(drops: Mapping[AssetKey, QualitySettings], name: str) -> AssetChecksDefinition:

    @multi_asset_check(
        name=name,
        specs=[
            AssetCheckSpec(
                ROW_DROP_CHECK,
                asset=key,
                description=f"The row count fell by at most {_percent(q)} against the previous "
                "materialization",
            )
            for key, q in drops.items()
        ],
        can_subset=True,
    )
    def _drops(context: AssetCheckExecutionContext) -> Iterable[AssetCheckResult]:
        for check_key in context.selected_asset_check_keys:
            quality = drops[check_key.asset_key]
            yield row_drop_result(context, check_key.asset_key, quality)

    return _drops


def row_drop_result(
    context: AssetCheckExecutionContext, key: AssetKey, quality: QualitySettings
) -> AssetCheckResult:
    """Compare the asset's latest row count with the one before."""
    assert quality.max_row_drop is not None
    rows = _latest_row_counts(context, key)
    severity = _SEVERITIES[quality.max_row_drop.severity]
    if len(rows) < 2:
        return AssetCheckResult(
            asset_key=key,
            check_name=ROW_DROP_CHECK,
            passed=True,
            severity=severity,
            description="No previous materialization to compare with",
            metadata={"row_count": rows[0] if rows else -1},
        )
    latest, previous = rows
    drop = (previous - latest) / previous if previous else 0.0
    allowed = quality.max_row_drop.fraction
    return AssetCheckResult(
        asset_key=key,
        check_name=ROW_DROP_CHECK,
        passed=drop <= allowed,
        severity=severity,
        description=f"{latest} row(s), {previous} before: a drop of {max(drop, 0.0):.1%} "
        f"(at most {_percent(quality)} allowed)",
        metadata={
            "row_count": latest,
            "previous_row_count": previous,
            "drop_fraction": round(max(drop, 0.0), 6),
            "max_row_drop": allowed,
        },
    )


def _latest_row_counts(context: AssetCheckExecutionContext, key: AssetKey) -> list[int]:
    """The row counts of the asset's two latest materializations, newest first."""
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key), limit=2
    ).records
    counts = []
    for record in records:
        materialization = record.asset_materialization
        value = materialization.metadata.get(ROW_COUNT_KEY) if materialization else None
        if value is not None:
            counts.append(int(value.value))
    return counts


def _percent(quality: QualitySettings) -> str:
    assert quality.max_row_drop is not None
    return f"{quality.max_row_drop.fraction:.0%}"
