"""The destination guard: checks a bucket before any data is sent to it.

Domo's documentation warns that once data is in S3 its safety is the bucket's, and that exports
across regions are unsupported. Before any call to Domo, the guard checks that

* the bucket's region equals the export's region;
* the bucket's Public Access Block is fully on and its policy status is not public, unless the
  export sets ``allow_public_destination: true`` (then it warns and records that in metadata);

and reads the bucket's default encryption for the metadata. A check it cannot make (access
denied) counts as failed: the guard refuses rather than guesses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from domo_assets.domo.errors import ConfigurationError
from domo_assets.s3.storage import error_code

PUBLIC_ACCESS_BLOCK_SETTINGS = (
    "BlockPublicAcls",
    "IgnorePublicAcls",
    "BlockPublicPolicy",
    "RestrictPublicBuckets",
)
_NO_PUBLIC_ACCESS_BLOCK = {"NoSuchPublicAccessBlockConfiguration"}
_NO_POLICY = {"NoSuchBucketPolicy"}
_NO_ENCRYPTION = {"ServerSideEncryptionConfigurationNotFoundError"}
# GetBucketLocation answers None for us-east-1 and "EU" for the oldest eu-west-1 buckets.
_LEGACY_REGIONS = {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}


class DestinationError(ConfigurationError):
    """The destination bucket failed the guard; no export request was sent."""


@dataclass(frozen=True)
class DestinationReport:
    """What the guard found about a bucket."""

    bucket: str
    region: str
    public_access_blocked: bool
    policy_public: bool
    default_encryption: str
    allowed_public: bool = False

    @property
    def is_private(self) -> bool:
        """Public Access Block fully on and no public policy."""
        return self.public_access_blocked and not self.policy_public


def check_destination(
    s3_client: Any, bucket: str, region: str, *, allow_public: bool = False, export_name: str = ""
) -> DestinationReport:
    """Check a bucket before exporting into it.

    Args:
        s3_client: A boto3 S3 client with the integration's credentials.
        bucket: The destination bucket.
        region: The export's region.
        allow_public: Accept a bucket that may be public (recorded and warned about).
        export_name: The export, for messages.

    Returns:
        What was found.

    Raises:
        DestinationError: Wrong region, a possibly public bucket without ``allow_public``, or a
            check that could not be made.
    """
    who = f"export {export_name!r}: " if export_name else ""
    bucket_region = _bucket_region(s3_client, bucket, who)
    if bucket_region != region:
        raise DestinationError(
            f"{who}bucket {bucket} is in region {bucket_region} but the export's region is {region}: "
            f"Domo does not support cross-region exports. Set region: {bucket_region} in the catalog "
            "or export to a bucket in the export's region"
        )
    report = DestinationReport(
        bucket=bucket,
        region=bucket_region,
        public_access_blocked=_public_access_blocked(s3_client, bucket, who),
        policy_public=_policy_public(s3_client, bucket, who),
        default_encryption=_default_encryption(s3_client, bucket, who),
        allowed_public=allow_public,
    )
    if not report.is_private and not allow_public:
        reasons = []
        if not report.public_access_blocked:
            reasons.append("its Public Access Block is not fully on")
        if report.policy_public:
            reasons.append("its bucket policy makes it public")
        raise DestinationError(
            f"{who}refusing to export into bucket {bucket}: {' and '.join(reasons)}. Turn on all four "
            "Public Access Block settings (s3api put-public-access-block), or, if the data may be "
            "public, set allow_public_destination: true on the export"
        )
    return report


def _bucket_region(s3_client: Any, bucket: str, who: str) -> str:
    answer = _call(s3_client.get_bucket_location, bucket, who, "s3:GetBucketLocation", set())
    constraint = answer.get("LocationConstraint") if answer else None
    return _LEGACY_REGIONS.get(constraint, constraint)


def _public_access_blocked(s3_client: Any, bucket: str, who: str) -> bool:
    answer = _call(
        s3_client.get_public_access_block,
        bucket,
        who,
        "s3:GetBucketPublicAccessBlock",
        _NO_PUBLIC_ACCESS_BLOCK,
    )
    settings = (answer or {}).get("PublicAccessBlockConfiguration", {})
    return all(settings.get(name) is True for name in PUBLIC_ACCESS_BLOCK_SETTINGS)


def _policy_public(s3_client: Any, bucket: str, who: str) -> bool:
    answer = _call(
        s3_client.get_bucket_policy_status, bucket, who, "s3:GetBucketPolicyStatus", _NO_POLICY
    )
    return bool((answer or {}).get("PolicyStatus", {}).get("IsPublic", False))


def _default_encryption(s3_client: Any, bucket: str, who: str) -> str:
    answer = _call(
        s3_client.get_bucket_encryption,
        bucket,
        who,
        "s3:GetEncryptionConfiguration",
        _NO_ENCRYPTION,
    )
    rules = (answer or {}).get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
    for rule in rules:
        default = rule.get("ApplyServerSideEncryptionByDefault", {})
        if default.get("SSEAlgorithm"):
            key = default.get("KMSMasterKeyID")
            return f"{default['SSEAlgorithm']} ({key})" if key else default["SSEAlgorithm"]
    return "none"


def _call(
    method: Any, bucket: str, who: str, permission: str, absent: set[str]
) -> dict[str, Any] | None:
    """Call a bucket API; None when the answer is 'not configured'."""
    try:
        return method(Bucket=bucket)
    except ClientError as exc:
        code = error_code(exc)
        if code in absent:
            return None
        if code in {"NoSuchBucket", "404"}:
            raise DestinationError(
                f"{who}bucket {bucket} does not exist; create it first (Domo does not)"
            ) from None
        raise DestinationError(
            f"{who}cannot check bucket {bucket} ({code}): grant {permission} to the integration's "
            "credentials so that the destination guard can verify it"
        ) from None
    except BotoCoreError as exc:
        raise DestinationError(f"{who}cannot reach S3 to check bucket {bucket}: {exc}") from None
