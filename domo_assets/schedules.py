"""Cron schedules from the catalog: exports sharing a (cron, timezone) share one schedule.

An export (or ``defaults:``) with ``schedule: "0 6 * * *"`` and optionally ``timezone:`` is
materialized on that cron. All exports with the same cron string and timezone run together, so
they are one run (one step of the ``domo_exports`` multi-asset, driving them concurrently).
Schedule names are derived from the cron and the timezone, not from catalog order, so
reordering the catalog keeps each schedule's name and therefore its running/stopped state.

Each schedule requests its exports from Dagster's implicit asset job (the job the UI's
Materialize button runs) rather than from a job of its own: Dagster resolves every job when
the code location loads, and an asset job selecting part of the ``domo_exports`` multi-asset
costs 0.2 to 0.4 s each for a catalog of 1,000 exports (see "Load time" in the README).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass

from dagster import (
    AssetKey,
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
)

from domo_assets.catalog import DEFAULT_TIMEZONE, CatalogError, ExportConfig
from domo_assets.dagster_names import IMPLICIT_ASSET_JOB_NAME
from domo_assets.translator import DomoSpecs, export_config

SCHEDULE_NAME_PREFIX = "domo_exports_schedule_"
SCHEDULE_TAG = "domo_assets/schedule"
# A cron someone wrote into the catalog is an explicit request to run on it.
DEFAULT_SCHEDULE_STATUS = DefaultScheduleStatus.RUNNING
# Readable stand-ins for cron punctuation, so names stay distinct: "*/15" is not "15".
_CRON_WORDS = {"*": "x", "/": "_every_", "-": "_to_", ",": "_and_", "?": "any", "#": "_nth_"}
_NOT_NAME = re.compile(r"[^A-Za-z0-9]+")


@dataclass(frozen=True)
class ScheduleGroup:
    """Exports that run together: one cron string in one timezone.

    Attributes:
        cron: The normalized cron string.
        timezone: The IANA timezone the cron is read in.
        keys: The export asset keys, in catalog order.
        slug: The cron and timezone as a name fragment, e.g. ``0_6_x_x_x_UTC``.
    """

    cron: str
    timezone: str
    keys: tuple[AssetKey, ...]
    slug: str

    @property
    def schedule_name(self) -> str:
        """The name of the schedule that starts the job."""
        return f"{SCHEDULE_NAME_PREFIX}{self.slug}"


def schedule_groups(specs: DomoSpecs) -> list[ScheduleGroup]:
    """Group the catalog's scheduled exports by (cron, timezone), in order of first appearance.

    Args:
        specs: The translated catalog.

    Returns:
        One group per distinct (cron, timezone); exports without ``schedule`` are in none.

    Raises:
        CatalogError: A partitioned export has a schedule (a cron run cannot choose partitions).
    """
    members: dict[tuple[str, str], list[AssetKey]] = {}
    for spec in (*specs.exports, *specs.parquets):
        config = export_config(spec)
        if config.schedule:
            _check_unpartitioned(config, specs.catalog.source)
            timezone = config.timezone or DEFAULT_TIMEZONE
            members.setdefault((config.schedule, timezone), []).append(spec.key)
    slugs = {pair: _slug(*pair) for pair in members}
    taken = Counter(slugs.values())
    return [
        ScheduleGroup(
            cron=cron,
            timezone=timezone,
            keys=tuple(keys),
            slug=slugs[cron, timezone]
            if taken[slugs[cron, timezone]] == 1
            else f"{slugs[cron, timezone]}_{_digest(cron, timezone)}",
        )
        for (cron, timezone), keys in members.items()
    ]


def build_export_schedules(
    specs: DomoSpecs,
    *,
    default_status: DefaultScheduleStatus = DEFAULT_SCHEDULE_STATUS,
    name_prefix: str = "",
) -> list[ScheduleDefinition]:
    """One schedule per distinct (cron, timezone) of the catalog.

    Args:
        specs: The translated catalog.
        default_status: Whether the schedules run as soon as the code location loads.
        name_prefix: Prepended to each schedule's name (several catalogs in one project).

    Returns:
        The schedules, in order of first appearance in the catalog; each requests a run of its
        exports from Dagster's implicit asset job.
    """
    return [_schedule(group, default_status, name_prefix) for group in schedule_groups(specs)]


def _schedule(
    group: ScheduleGroup, default_status: DefaultScheduleStatus, name_prefix: str
) -> ScheduleDefinition:
    names = ", ".join(key.to_user_string() for key in group.keys)
    keys = list(group.keys)

    def _request(context: ScheduleEvaluationContext) -> RunRequest:
        return RunRequest(asset_selection=keys, tags={SCHEDULE_TAG: group.slug})

    return ScheduleDefinition(
        name=f"{name_prefix}{group.schedule_name}",
        cron_schedule=group.cron,
        execution_timezone=group.timezone,
        job_name=IMPLICIT_ASSET_JOB_NAME,
        execution_fn=_request,
        default_status=default_status,
        description=f"Materializes {names} on cron '{group.cron}' ({group.timezone}).",
    )


def _check_unpartitioned(config: ExportConfig, source: str) -> None:
    if config.partition is not None:
        raise CatalogError(
            f"{source}: export {config.name!r}: field 'schedule': a partitioned export cannot "
            "take a cron schedule (a run needs a partition key); backfill its partitions, or "
            "set 'schedule: null' on it when the schedule comes from 'defaults'"
        )


def _slug(cron: str, timezone: str) -> str:
    readable = "".join(_CRON_WORDS.get(char, char) for char in cron)
    return _NOT_NAME.sub("_", f"{readable}_{timezone}").strip("_")


def _digest(cron: str, timezone: str) -> str:
    """Tells apart two (cron, timezone) pairs whose slugs collide."""
    return hashlib.sha256(f"{cron}\n{timezone}".encode()).hexdigest()[:8]
