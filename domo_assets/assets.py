"""The asset factory: export assets from translated specs, and the ``domo_export_assets`` decorator.

All unpartitioned export assets of a catalog live in one subsettable ``multi_asset`` whose step
drives the selected exports concurrently in threads (they spend their time waiting on Domo),
capped by ``DomoResource.max_concurrent_exports``; the step itself is in the ``domo`` pool, which
caps export steps across runs. So a run of 100 exports is one process, not 100, and each export
still gets its own materialization and checks. Each partitioned export has an op of its own.
The built-in assets are the decorator applied to a body that calls
``DomoResource.export_and_poll``, the same path a user's own asset takes. This module knows
Dagster, not HTTP.
"""

from collections.abc import Callable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetsDefinition,
    AssetSpec,
    BackfillPolicy,
    MaterializeResult,
    OpExecutionContext,
    RetryPolicy,
    SensorEvaluationContext,
    multi_asset,
)

from domo_assets.catalog import Catalog
from domo_assets.checks import check_specs
from domo_assets.resource import DomoResource
from domo_assets.translator import DagsterDomoTranslator, DomoSpecs, export_config, translate

DOMO_POOL = "domo"
# The Domo resource's key in a code location; a scoped catalog's is `<scope>__domo`.
DOMO_RESOURCE_KEY = "domo"
EXPORTS_OP_NAME = "domo_exports"
DEFAULT_RETRY_POLICY = RetryPolicy(max_retries=2, delay=10)

ExportsFunction = Callable[..., Iterator[MaterializeResult | AssetCheckResult]]
ExecuteFunction = Callable[
    [AssetExecutionContext, DomoResource], Iterator[MaterializeResult | AssetCheckResult]
]


def domo_resource_key(scope: str | None = None) -> str:
    """The key the Domo resource of a catalog's definitions is bound to: ``domo``, or
    ``<scope>__domo`` for a scoped catalog (a component instance), so that several live in one
    project, each initialized and torn down by Dagster."""
    return f"{scope}__{DOMO_RESOURCE_KEY}" if scope else DOMO_RESOURCE_KEY


def step_domo(
    context: OpExecutionContext | SensorEvaluationContext, resource_key: str
) -> DomoResource:
    """The Domo resource Dagster initialized for this step (or sensor tick) under that key."""
    return getattr(context.resources, resource_key)


@dataclass(frozen=True)
class ExportOp:
    """How a catalog's export ops run (a component's ``op:`` and ``retry_policy:``).

    Attributes:
        name: The unpartitioned exports' op name (default ``[<scope>__]domo_exports``).
        tags: Tags of every export op.
        description: The unpartitioned exports' op description.
        pool: The Dagster pool capping concurrent export steps across runs.
        retry_policy: Step retries of every export op.
    """

    name: str | None = None
    tags: Mapping[str, Any] | None = None
    description: str | None = None
    pool: str = DOMO_POOL
    retry_policy: RetryPolicy | None = DEFAULT_RETRY_POLICY


def domo_export_assets(
    *,
    catalog: Catalog | None = None,
    specs: Sequence[AssetSpec] | None = None,
    translator: DagsterDomoTranslator | None = None,
    name: str = EXPORTS_OP_NAME,
    pool: str = DOMO_POOL,
    retry_policy: RetryPolicy | None = DEFAULT_RETRY_POLICY,
    description: str | None = None,
    op_tags: Mapping[str, Any] | None = None,
    backfill_policy: BackfillPolicy | None = None,
    required_resource_keys: AbstractSet[str] | None = None,
) -> Callable[[ExportsFunction], AssetsDefinition]:
    """Declare a multi-asset of Domo exports whose body you write, like ``@fivetran_assets``.

    The body receives the step's context and its resources; ``yield from
    domo.export_and_poll(context)`` exports the selected assets, with the same results and
    checks as the built-in assets::

        catalog = load_catalog("exports.yaml")

        @domo_export_assets(catalog=catalog, name="my_exports")
        def my_exports(context: AssetExecutionContext, domo: DomoResource):
            yield from domo.export_and_poll(context)

    Args:
        catalog: The exports, translated with ``translator``. Give this or ``specs``.
        specs: Export specs built by a ``DagsterDomoTranslator`` (e.g. from ``translate``).
        translator: Chooses keys, groups and metadata (``DagsterDomoTranslator()`` by default).
        name: The op's name.
        pool: The Dagster pool capping concurrent export steps across runs.
        retry_policy: Step retries; a retry resumes the exports it started and redoes only
            the failed ones.
        description: The op's description.
        op_tags: The op's tags.
        backfill_policy: For partitioned exports (default: one partition per run).
        required_resource_keys: Resources the body reads from ``context.resources`` (the
            body's typed parameters, like ``domo: DomoResource``, need not be listed).

    Raises:
        ValueError: Neither or both of ``catalog`` and ``specs``, or specs with several
            partitions definitions (give each partitioned export a decorator of its own).
    """
    if (catalog is None) == (specs is None):
        raise ValueError("domo_export_assets takes a catalog or specs (one of them)")
    chosen = list(translate(catalog, translator).exports if catalog is not None else specs or [])
    partitions = {id(s.partitions_def): s.partitions_def for s in chosen}
    if len(partitions) > 1:
        raise ValueError(
            "domo_export_assets: these exports have different partitions; give each "
            "partitioned export a decorator (op) of its own"
        )
    partitions_def = next(iter(partitions.values()), None)
    return multi_asset(
        name=name,
        # Skippable: an export that a concurrent run's newer export has superseded (by Domo's
        # times) is not recorded, so Dagster's latest materialization never falls behind the
        # published one (execution.py).
        specs=[spec.replace_attributes(skippable=True) for spec in chosen],
        check_specs=[
            check
            for spec in chosen
            for check in check_specs(export_config(spec), spec.key, partitions_def)
        ],
        can_subset=True,
        pool=pool,
        retry_policy=retry_policy,
        partitions_def=partitions_def,
        backfill_policy=(backfill_policy or BackfillPolicy.multi_run(1))
        if partitions_def
        else None,
        description=description or "Exports Domo DataSets to S3, one asset per catalog entry.",
        op_tags=op_tags,
        required_resource_keys=required_resource_keys,
    )


def build_export_assets(
    specs: DomoSpecs,
    *,
    name: str = EXPORTS_OP_NAME,
    pool: str = DOMO_POOL,
    retry_policy: RetryPolicy | None = DEFAULT_RETRY_POLICY,
    resource_key: str = DOMO_RESOURCE_KEY,
    body: ExportsFunction | None = None,
    op_tags: Mapping[str, Any] | None = None,
    description: str | None = None,
) -> AssetsDefinition:
    """The multi-asset that materializes every unpartitioned export of a translated catalog.

    Args:
        specs: The translated catalog.
        name: The op's name.
        pool: The Dagster pool capping concurrent export steps across runs.
        retry_policy: Step retries; safe because a retry resumes the export it started.
        resource_key: The key of the Domo resource the step uses.
        body: The step's body (default ``built_in_body(resource_key)``), e.g. a component's
            ``execute`` (``execute_body``); it reads the Domo resource under ``resource_key``.
        op_tags: The op's tags.
        description: The op's description.
    """
    return domo_export_assets(
        specs=[s for s in specs.exports if s.partitions_def is None],
        name=name,
        pool=pool,
        retry_policy=retry_policy,
        op_tags=op_tags,
        description=description,
        required_resource_keys={resource_key},
    )(body or built_in_body(resource_key))


def build_partitioned_export_assets(
    specs: DomoSpecs,
    *,
    op_prefix: str = "",
    pool: str = DOMO_POOL,
    retry_policy: RetryPolicy | None = DEFAULT_RETRY_POLICY,
    resource_key: str = DOMO_RESOURCE_KEY,
    body: ExportsFunction | None = None,
    op_tags: Mapping[str, Any] | None = None,
) -> list[AssetsDefinition]:
    """One partitioned asset (op ``<prefix><name>_export``) per partitioned export.

    ``body`` and ``op_tags`` are as for ``build_export_assets``.

    Each run exports one partition (backfills launch a run per partition); the ``domo`` pool
    caps how many run at once, and partitions of one DataSet follow each other because Domo
    runs one export per DataSet at a time (a run waits for the running one).
    """
    assets = []
    for spec in specs.exports:
        if spec.partitions_def is None:
            continue
        config = export_config(spec)
        assert config.partition is not None  # a partitions_def comes from a partition
        assets.append(
            domo_export_assets(
                specs=[spec],
                name=f"{op_prefix}{config.name}_export",
                pool=pool,
                retry_policy=retry_policy,
                description=f"Exports Domo DataSet {config.dataset_name or config.dataset_id} "
                f"to S3, one {config.partition.scheme.value} partition per run.",
                op_tags=op_tags,
                required_resource_keys={resource_key},
            )(body or built_in_body(resource_key))
        )
    return assets


def execute_body(
    execute: ExecuteFunction, resource_key: str = DOMO_RESOURCE_KEY
) -> ExportsFunction:
    """A body that hands each step to ``execute`` (e.g. a component's) with the Domo resource
    Dagster initialized for the step under ``resource_key``."""

    def _execute(context: AssetExecutionContext) -> Iterator[MaterializeResult | AssetCheckResult]:
        yield from execute(context, step_domo(context, resource_key))

    return _execute


def built_in_body(resource_key: str = DOMO_RESOURCE_KEY) -> ExportsFunction:
    """The built-in assets' body: every selected export, through the Domo resource Dagster
    initialized for the step (with its nested ``s3`` and ``aws_credentials``).

    Args:
        resource_key: The Domo resource's key (``domo``, or a scoped catalog's).
    """
    return execute_body(lambda context, domo: domo.export_and_poll(context), resource_key)
