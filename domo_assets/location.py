"""Builds the code location's ``Definitions`` from a catalog and a Domo resource.

No environment is read here (``definitions.py`` does that), so tests and benchmarks build
definitions for any catalog and any Domo instance.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from dagster import Definitions

from domo_assets.assets import (
    EXPORTS_OP_NAME,
    BoundResources,
    ExportOp,
    ExportsFunction,
    build_export_assets,
    build_partitioned_export_assets,
)
from domo_assets.catalog import Catalog, check_credentials
from domo_assets.parquet_assets import build_parquet_assets
from domo_assets.quality import build_quality_checks
from domo_assets.resource import AwsCredentialsResource, DomoResource, default_s3_resource
from domo_assets.schedules import build_export_schedules
from domo_assets.sensors import (
    OBSERVE_OP_NAME,
    SENSOR_NAME,
    build_change_sensor,
    build_dataset_assets,
)
from domo_assets.translator import DagsterDomoTranslator, translate

if TYPE_CHECKING:
    from dagster_aws.s3 import S3Resource


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
    s3: S3Resource | None = None,
    aws_credentials: AwsCredentialsResource | None = None,
    translator: DagsterDomoTranslator | None = None,
    scope: str | None = None,
    op: ExportOp | None = None,
    body: ExportsFunction | None = None,
) -> Definitions:
    """The Definitions for a catalog: its assets, change sensor and schedules.

    The Domo DataSets are observable source assets (``sensors.build_dataset_assets``) so that
    the data versions the change sensor records drive the exports' staleness.

    Args:
        catalog: The validated catalog.
        domo: The Domo resource.
        s3: The S3 resource for checks (default: ``S3Resource()``, imported when a run needs
            it: boto3's chain and ``AWS_ENDPOINT_URL``).
        aws_credentials: The credentials handed to Domo (default: scoped STS sessions).
        translator: Chooses keys, groups and metadata (``DagsterDomoTranslator()`` by default).
        scope: Prefixes every op, sensor and schedule name (``<scope>__<name>``) and binds the
            resources to the definitions themselves (no code-location resource keys), so that
            several catalogs (e.g. component instances, each with its own Domo connection) live
            in one project. ``domo`` must then hold resolved settings (no ``EnvVar``).
        op: How the export ops run: name, tags, pool, backfill and retry policies (default
            ``ExportOp()``: pool ``domo``, two retries).
        body: The export steps' body (default: the built-in one), e.g. a component's
            ``execute``.

    Raises:
        CatalogError: An export's ``credentials:`` would widen what ``aws_credentials`` allows.
    """
    check_credentials(catalog, (aws_credentials or AwsCredentialsResource()).limits)
    specs = translate(catalog, translator)
    prefix = f"{scope}__" if scope else ""
    bound = BoundResources(domo, aws_credentials) if scope else None
    held = domo if scope else None
    unpartitioned = any(spec.partitions_def is None for spec in specs.exports)
    # An empty catalog has no DataSet to observe or watch (and Dagster rejects empty multi-assets).
    watched = bool(catalog.exports)
    op = op or ExportOp()
    return Definitions(
        assets=[
            *(
                [build_dataset_assets(specs, name=f"{prefix}{OBSERVE_OP_NAME}", domo=held)]
                if watched
                else []
            ),
            *(
                [
                    build_export_assets(
                        specs,
                        name=op.name or f"{prefix}{EXPORTS_OP_NAME}",
                        pool=op.pool,
                        retry_policy=op.retry_policy,
                        bound=bound,
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
                bound=bound,
                body=body,
                op_tags=op.tags,
                backfill_policy=op.backfill_policy,
            ),
            *build_parquet_assets(specs, op_prefix=prefix, bound_s3=scope is not None),
        ],
        asset_checks=build_quality_checks(specs, name_prefix=prefix),
        sensors=(
            [build_change_sensor(specs, name=f"{prefix}{SENSOR_NAME}", domo=held)]
            if watched
            else []
        ),
        schedules=build_export_schedules(specs, name_prefix=prefix),
        resources=(
            {}
            if scope
            else {
                "domo": domo,
                "s3": s3 or default_s3_resource,
                "aws_credentials": aws_credentials or AwsCredentialsResource(),
            }
        ),
    )
