"""Builds the code location's ``Definitions`` from a catalog and a Domo resource.

No environment is read here (``definitions.py`` does that), so tests and benchmarks build
definitions for any catalog and any Domo instance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dagster import Definitions

from domo_assets.assets import build_export_assets, build_partitioned_export_assets
from domo_assets.catalog import Catalog
from domo_assets.resource import AwsCredentialsResource, DomoResource, default_s3_resource
from domo_assets.schedules import build_export_schedules
from domo_assets.sensors import build_change_sensor, build_dataset_assets

if TYPE_CHECKING:
    from dagster_aws.s3 import S3Resource


def build_definitions(
    catalog: Catalog,
    domo: DomoResource,
    *,
    s3: S3Resource | None = None,
    aws_credentials: AwsCredentialsResource | None = None,
) -> Definitions:
    """The Definitions for a catalog: its assets, change sensor and schedules.

    The Domo DataSets are observable source assets (``sensors.build_dataset_assets``) so that
    the data versions the change sensor records drive the exports' staleness.

    Args:
        catalog: The validated catalog.
        domo: The Domo resource.
        s3: The S3 resource for checks (default: ``S3Resource()``, imported when a run needs
            it: boto3's chain and ``AWS_ENDPOINT_URL``).
        aws_credentials: The credentials handed to Domo (default: boto3's chain).
    """
    exports = build_export_assets(catalog)
    # An empty catalog has no DataSet to observe or watch (and Dagster rejects empty multi-assets).
    watched = bool(catalog.exports)
    return Definitions(
        assets=[
            *([build_dataset_assets(catalog)] if watched else []),
            exports,
            *build_partitioned_export_assets(catalog),
        ],
        sensors=[build_change_sensor(catalog, assets=exports)] if watched else [],
        schedules=build_export_schedules(catalog),
        resources={
            "domo": domo,
            "s3": s3 or default_s3_resource,
            "aws_credentials": aws_credentials or AwsCredentialsResource(),
        },
    )
