"""A local Domo-compatible sandbox: Domo's export, metadata and query APIs plus moto S3.

Written from Domo's documented behaviour (docs/domo-api.md), independently of the project's
client. See README.md beside this file.
"""

from .control import SandboxControl, SandboxControlError
from .datasets import (
    AWKWARD_VALUES_ID,
    DAILY_ORDERS_ID,
    HR_SALARIES_ID,
    LARGE_EVENTS_ID,
    PHARMACY_CLAIMS_ID,
    REGIONAL_SALES_ID,
    SAMPLE_DATASETS,
    synthetic_dataset_id,
)
from .s3 import (
    ACCESS_KEY_ID,
    ACCOUNT_ID,
    EU_EXPORT_BUCKET,
    EXPORT_BUCKET,
    EXPORT_KMS_ALIAS,
    EXPORT_ROLE_ARN,
    KMS_EXPORT_BUCKET,
    PUBLIC_EXPORT_BUCKET,
    SECRET_ACCESS_KEY,
)
from .sandbox import Sandbox
from .sts import MINTED_SECRET_PREFIX, MINTED_TOKEN_PREFIX
from .users import ANALYST, HR_ADMIN, WEST_MANAGER

__all__ = [
    "ACCESS_KEY_ID",
    "ACCOUNT_ID",
    "ANALYST",
    "AWKWARD_VALUES_ID",
    "DAILY_ORDERS_ID",
    "EU_EXPORT_BUCKET",
    "EXPORT_BUCKET",
    "EXPORT_KMS_ALIAS",
    "EXPORT_ROLE_ARN",
    "HR_ADMIN",
    "HR_SALARIES_ID",
    "KMS_EXPORT_BUCKET",
    "LARGE_EVENTS_ID",
    "MINTED_SECRET_PREFIX",
    "MINTED_TOKEN_PREFIX",
    "PHARMACY_CLAIMS_ID",
    "PUBLIC_EXPORT_BUCKET",
    "REGIONAL_SALES_ID",
    "SAMPLE_DATASETS",
    "SECRET_ACCESS_KEY",
    "WEST_MANAGER",
    "Sandbox",
    "SandboxControl",
    "SandboxControlError",
    "synthetic_dataset_id",
]
