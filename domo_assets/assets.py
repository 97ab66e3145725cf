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
from dataclasses import dataclass
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetsDefinition,
    AssetSpec,
    BackfillPolicy,
    MaterializeResult,
    ResourceParam,
    RetryPolicy,
    multi_asset,
)

from domo_assets.catalog import Catalog
from domo_assets.checks import check_specs
from domo_assets.resource import AwsCredentialsResource, DomoResource, S3ClientFactory
from domo_assets.translator import DagsterDomoTranslator, DomoSpecs, export_config, translate

DOMO_POOL = "domo"
EXPORTS_OP_NAME = "domo_exports"
DEFAULT_RETRY_POLICY = RetryPolicy(max_retries=2, delay=10)

ExportsFunction = Callable[..., Iterator[MaterializeResult | AssetCheckResult]]
ExecuteFunction = Callable[
    [AssetExecutionContext, DomoResource], Iterator[MaterializeResult | AssetCheckResult]
]


@dataclass(frozen=True)
class BoundResources:
    """Resources bound to a catalog's definitions themselves rather than the code location's.

    Attributes:
        domo: The Domo connection, with its settings resolved (no ``EnvVar`` left: it is used
            as it is, never initialized by Dagster).
        aws_credentials: Which credentials Domo is handed; S3 is read with dagster-aws's
            ``S3Resource()`` (boto3's chain and ``AWS_ENDPOINT_URL``).
    """

    domo: DomoResource
    aws_credentials: AwsCredentialsResource | None = None


@dataclass(frozen=True)
class ExportOp:
    """How a catalog's export ops run (a component's ``op:`` and ``retry_policy:``).

    Attributes:
        name: The unpartitioned exports' op name (default ``[<scope>__]domo_exports``).
        tags: Tags of every export op.
        description: The unpartitioned exports' op description.
        pool: The Dagster pool capping concurrent export steps across runs.
        backfill_policy: The partitioned exports' backfill policy (default: one partition per
            run).
        retry_policy: Step retries of every export op.
    """

    name: str | None = None
    tags: Mapping[str, Any] | None = None
    description: str | None = None
    pool: str = DOMO_POOL
    backfill_policy: BackfillPolicy | None = None
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
    )


def build_export_assets(
    specs: DomoSpecs,
    *,
    name: str = EXPORTS_OP_NAME,
    pool: str = DOMO_POOL,
    retry_policy: RetryPolicy | None = DEFAULT_RETRY_POLICY,
    bound: BoundResources | None = None,
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
        bound: Resources bound to the assets (see ``built_in_body``).
        body: The step's body (default ``built_in_body(bound)``), e.g. a component's
            ``execute``.
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
    )(body or built_in_body(bound))


def build_partitioned_export_assets(
    specs: DomoSpecs,
    *,
    op_prefix: str = "",
    pool: str = DOMO_POOL,
    retry_policy: RetryPolicy | None = DEFAULT_RETRY_POLICY,
    bound: BoundResources | None = None,
    body: ExportsFunction | None = None,
    op_tags: Mapping[str, Any] | None = None,
    backfill_policy: BackfillPolicy | None = None,
) -> list[AssetsDefinition]:
    """One partitioned asset (op ``<prefix><name>_export``) per partitioned export.

    ``body``, ``op_tags`` and ``backfill_policy`` are as for ``build_export_assets`` and
    ``domo_export_assets``.

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
                backfill_policy=backfill_policy,
            )(body or built_in_body(bound))
        )
    return assets


def execute_body(execute: ExecuteFunction, domo: DomoResource | None = None) -> ExportsFunction:
    """A body that hands each step to ``execute`` (e.g. a component's), with ``domo``, or with
    the code location's ``domo`` resource when None.

    Defined here, where annotations are types rather than strings: Dagster reads the body's
    ``context`` and resource parameters from them.
    """
    if domo is not None:
        bound_domo = domo

        def _bound_execute(
            context: AssetExecutionContext,
        ) -> Iterator[MaterializeResult | AssetCheckResult]:
            yield from execute(context, bound_domo)

        return _bound_execute

    def _execute(
        context: AssetExecutionContext, domo: DomoResource
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        yield from execute(context, domo)

    return _execute


def built_in_body(bound: BoundResources | None = None) -> ExportsFunction:
    """The built-in assets' body: every selected export, through the resource.

    Args:
        bound: Resources bound to the assets themselves (a component's, so that several
            instances need no code-location resource keys); by default the body takes the
            code location's ``domo``, ``s3`` and ``aws_credentials`` resources.
    """
    if bound is not None:

        def _bound_exports(
            context: AssetExecutionContext,
        ) -> Iterator[MaterializeResult | AssetCheckResult]:
            yield from bound.domo.export_and_poll(context, aws_credentials=bound.aws_credentials)

        return _bound_exports

    def _exports(
        context: AssetExecutionContext,
        domo: DomoResource,
        s3: ResourceParam[S3ClientFactory],
        aws_credentials: AwsCredentialsResource,
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        yield from domo.export_and_poll(
            context, s3_client=s3.get_client(), aws_credentials=aws_credentials
        )

    return _exports
