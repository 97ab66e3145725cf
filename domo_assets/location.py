"""Builds the code location's ``Definitions`` from a catalog and a Domo resource.

No environment is read here (``definitions.py`` does that), so tests and benchmarks build
definitions for any catalog and any Domo instance.
"""

from __future__ import annotations

from dagster import Definitions
from dagster_aws.s3 import S3Resource

from domo_assets.assets import build_dataset_specs, build_export_assets
from domo_assets.catalog import Catalog
from domo_assets.resource import AwsCredentialsResource, DomoResource


def build_definitions(
    catalog: Catalog,
    domo: DomoResource,
    *,
    s3: S3Resource | None = None,
    aws_credentials: AwsCredentialsResource | None = None,
) -> Definitions:
    """The Definitions for a catalog.

    Args:
        catalog: The validated catalog.
        domo: The Domo resource.
        s3: The S3 resource for checks (default: boto3's chain and ``AWS_ENDPOINT_URL``).
        aws_credentials: The credentials handed to Domo (default: boto3's chain).
    """
    return Definitions(
        assets=[*build_dataset_specs(catalog), build_export_assets(catalog)],
        resources={
            "domo": domo,
            "s3": s3 or S3Resource(),
            "aws_credentials": aws_credentials or AwsCredentialsResource(),
        },
    )
