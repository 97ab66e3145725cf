"""Builds the code location's ``Definitions`` from a catalog and a Domo resource.

No environment is read here (``definitions.py`` does that), so tests and benchmarks build
definitions for any catalog and any Domo instance.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from dagster import AssetSpec, Definitions

from domo_assets.assets import (
    EXPORTS_OP_NAME,
    ExecuteFunction,
    ExportOp,
    build_export_assets,
    build_partitioned_export_assets,
    domo_resource_key,
    execute_body,
)
from domo_assets.catalog import Catalog, check_credentials
from domo_assets.parquet_assets import build_parquet_assets
from domo_assets.quality import build_quality_checks
from domo_assets.resource import DomoResource
from domo_assets.schedules import build_export_schedules
from domo_assets.sensors import (
    OBSERVE_OP_NAME,
    SENSOR_NAME,
    build_change_sensor,
    build_dataset_assets,
)
from domo_assets.translator import DagsterDomoTranslator, DomoSpecs, translate

# Chooses which of a catalog's DataSet nodes its definitions define (the others are defined by
# another catalog of the project: ``ownership.DATASET_NODES``).
NodeClaim = Callable[[DomoSpecs], Sequence[AssetSpec]]


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a catalog is read and built into definitions.

    Building allocates tens of thousands of objects that live as long as the code location
    (entries, specs, outputs, check specs). Meanwhile each full collection walks every object
    Dagster has loaded and frees next to nothing: about a tenth of a 1,000-export load
    (``benchmarks/bench_load.py``). Reference counting frees what it always frees; cycles made
    meanwhile are collected by the first collection after. A collector the process had disabled
    stays disabled.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def build_definitions(
    catalog: Catalog,
    domo: DomoResource,
    *,
    translator: DagsterDomoTranslator | None = None,
    scope: str | None = None,
    op: ExportOp | None = None,
    execute: ExecuteFunction | None = None,
    claim_nodes: NodeClaim | None = None,
) -> Definitions:
    """The Definitions for a catalog: its assets, change sensor, schedules and Domo resource.

    The Domo DataSets are observable source assets (``sensors.build_dataset_assets``) so that
    the data versions the change sensor records drive the exports' staleness.

    Args:
        catalog: The validated catalog.
        domo: The Domo resource, with its nested ``s3`` and ``aws_credentials``; bound to the
            definitions under ``domo`` (or ``<scope>__domo``), so Dagster initializes it (and
            them) for every step and sensor tick and tears it down after.
        translator: Chooses keys, groups and metadata (``DagsterDomoTranslator()`` by default).
        scope: Prefixes every op, sensor and schedule name and the resource key
            (``<scope>__<name>``), so that several catalogs (e.g. component instances, each
            with its own Domo connection) live in one project.
        op: How the export ops run: name, tags, pool, backfill and retry policies (default
            ``ExportOp()``: pool ``domo``, two retries).
        execute: The export steps' body (default: the built-in one), e.g. a component's
            ``execute``; it is handed the step's context and the Domo resource.
        claim_nodes: Which DataSet nodes these definitions define (default: all of the
            catalog's); the exports depend on the others by key.

    Raises:
        CatalogError: An export's ``credentials:`` would widen what ``domo.aws_credentials``
            allows, or ``claim_nodes`` refuses a node.
    """
    check_credentials(catalog, domo.aws_credentials.limits)
    specs = translate(catalog, translator)
    prefix = f"{scope}__" if scope else ""
    key = domo_resource_key(scope)
    nodes = list(specs.datasets if claim_nodes is None else claim_nodes(specs))
    unpartitioned = any(spec.partitions_def is None for spec in specs.exports)
    op = op or ExportOp()
    body = execute_body(execute, key) if execute is not None else None
    return Definitions(
        assets=[
            # Dagster rejects empty multi-assets: no node of its own (an empty catalog, or
            # every DataSet defined by another catalog), no observation op.
            *(
                [
                    build_dataset_assets(
                        specs,
                        name=f"{prefix}{OBSERVE_OP_NAME}",
                        resource_key=key,
                        dataset_specs=nodes,
                    )
                ]
                if nodes
                else []
            ),
            *(
                [
                    build_export_assets(
                        specs,
                        name=op.name or f"{prefix}{EXPORTS_OP_NAME}",
                        pool=op.pool,
                        retry_policy=op.retry_policy,
                        resource_key=key,
                        body=body,
                        op_tags=op.tags,
                        description=op.description,
                    )
                ]
                if unpartitioned
                else []
            ),
            *build_partitioned_export_assets(
                specs,
                op_prefix=prefix,
                pool=op.pool,
                retry_policy=op.retry_policy,
                resource_key=key,
                body=body,
                op_tags=op.tags,
            ),
            *build_parquet_assets(specs, op_prefix=prefix, resource_key=key),
        ],
        asset_checks=build_quality_checks(specs, name_prefix=prefix),
        # An empty catalog has no DataSet to watch.
        sensors=(
            [build_change_sensor(specs, name=f"{prefix}{SENSOR_NAME}", resource_key=key)]
            if catalog.exports
            else []
        ),
        schedules=build_export_schedules(specs, name_prefix=prefix),
        resources={key: domo},
    )
