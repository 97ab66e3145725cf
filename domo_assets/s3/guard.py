"""The destination guard: checks a bucket before any data is sent to it.

Domo's documentation warns that once data is in S3 its safety is the bucket's, and that exports
across regions are unsupported. Before any call to Domo, the guard checks that

* the bucket's region equals the export's region;
* the bucket's Public Access Block is fully on and its policy status is not public, unless the
  export sets ``allow_public_destination: true`` (then it warns and records that in metadata);

and reads the bucket's default encryption: for the metadata, and because a default SSE-KMS key
encrypts Domo's files when the export names no key, so Domo's credentials must be allowed to use
it. With a ``bucket_owner``, every call passes ``ExpectedBucketOwner`` (``owner.py``), so a bucket
of another account is refused at the first call. A check it cannot make (access denied) counts
as failed: the guard refuses rather than guesses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from domo_assets.domo.errors import ConfigurationError
from domo_assets.s3.kms import default_kms_key
from domo_assets.s3.owner import expect_bucket_owners
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
_DENIED = {"AccessDenied", "403"}
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
    default_kms_key: str | None = None
    """The KMS key the bucket's default encryption names (``alias/aws/s3`` for SSE-KMS without
    one), or None when its default is not SSE-KMS."""
    bucket_owner: str | None = None
    """The account the bucket was shown to belong to (every call passed ExpectedBucketOwner)."""

    @property
    def is_private(self) -> bool:
        """Public Access Block fully on and no public policy."""
        return self.public_access_blocked and not self.policy_public


def check_destination(
    s3_client: Any,
    bucket: str,
    region: str,
    *,
    allow_public: bool = False,
    export_name: str = "",
    bucket_owner: str | None = None,
) -> DestinationReport:
    """Check a bucket before exporting into it.

    Args:
        s3_client: A boto3 S3 client with the integration's credentials.
        bucket: The destination bucket.
        region: The export's region.
        allow_public: Accept a bucket that may be public (recorded and warned about).
        export_name: The export, for messages.
        bucket_owner: The account the bucket must belong to: from now on every call of
            ``s3_client`` to it passes ``ExpectedBucketOwner``.

    Returns:
        What was found.

    Raises:
        DestinationError: Wrong region or owner, a possibly public bucket without
            ``allow_public``, or a check that could not be made.
    """
    who = f"export {export_name!r}: " if export_name else ""
    if bucket_owner is not None:
        expect_bucket_owners(s3_client, {bucket: bucket_owner})
    call = _Caller(s3_client, bucket, who, bucket_owner)
    bucket_region = _bucket_region(call)
    if bucket_region != region:
        raise DestinationError(
            f"{who}bucket {bucket} is in region {bucket_region} but the export's region is {region}: "
            f"Domo does not support cross-region exports. Set region: {bucket_region} in the catalog "
            "or export to a bucket in the export's region"
        )
    encryption, kms_key = _default_encryption(call)
    report = DestinationReport(
        bucket=bucket,
        region=bucket_region,
        public_access_blocked=_public_access_blocked(call),
        policy_public=_policy_public(call),
        default_encryption=encryption,
        allowed_public=allow_public,
        default_kms_key=kms_key,
        bucket_owner=bucket_owner,
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


def _bucket_region(call: _Caller) -> str:
    answer = call("get_bucket_location", "s3:GetBucketLocation", set())
    constraint = answer.get("LocationConstraint") if answer else None
    return _LEGACY_REGIONS.get(constraint, constraint)


def _public_access_blocked(call: _Caller) -> bool:
    answer = call(
        "get_public_access_block", "s3:GetBucketPublicAccessBlock", _NO_PUBLIC_ACCESS_BLOCK
    )
    settings = (answer or {}).get("PublicAccessBlockConfiguration", {})
    return all(settings.get(name) is True for name in PUBLIC_ACCESS_BLOCK_SETTINGS)


def _policy_public(call: _Caller) -> bool:
    answer = call("get_bucket_policy_status", "s3:GetBucketPolicyStatus", _NO_POLICY)
    return bool((answer or {}).get("PolicyStatus", {}).get("IsPublic", False))


def _default_encryption(call: _Caller) -> tuple[str, str | None]:
    """The default encryption as recorded (``aws:kms (<key>)``...), and its KMS key if any."""
    answer = call(
        "get_bucket_encryption",
        "s3:GetEncryptionConfiguration",
        _NO_ENCRYPTION,
        why="its default encryption decides which KMS key Domo's credentials must be allowed "
        "to use",
    )
    rules = (answer or {}).get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
    for rule in rules:
        default = rule.get("ApplyServerSideEncryptionByDefault", {})
        algorithm = default.get("SSEAlgorithm")
        if algorithm:
            key = default.get("KMSMasterKeyID")
            described = f"{algorithm} ({key})" if key else algorithm
            return described, default_kms_key(algorithm, key)
    return "none", None


class _Caller:
    """Calls the bucket APIs of one check, turning refusals into ``DestinationError``."""

    def __init__(self, s3_client: Any, bucket: str, who: str, owner: str | None) -> None:
        self.s3_client = s3_client
        self.bucket = bucket
        self.who = who
        self.owner = owner

    def __call__(
        self, method: str, permission: str, absent: set[str], why: str = ""
    ) -> dict[str, Any] | None:
        """Call a bucket API; None when the answer is 'not configured'."""
        bucket, who = self.bucket, self.who
        try:
            return getattr(self.s3_client, method)(Bucket=bucket)
        except ClientError as exc:
            code = error_code(exc)
            if code in absent:
                return None
            if code in {"NoSuchBucket", "404"}:
                raise DestinationError(
                    f"{who}bucket {bucket} does not exist; create it first (Domo does not)"
                ) from None
            if code in _DENIED and self.owner is not None:
                raise DestinationError(
                    f"{who}S3 refused {permission} on bucket {bucket} ({code}) with "
                    f"ExpectedBucketOwner {self.owner}: the bucket does not belong to account "
                    f"{self.owner} (the export's bucket_owner), or the worker may not call it. "
                    "Check the bucket name and bucket_owner (a bucket of another account must "
                    f"never receive the data), then that the worker has {permission}. Nothing "
                    "was exported"
                ) from None
            reason = f" ({why})" if why else ""
            raise DestinationError(
                f"{who}cannot check bucket {bucket} ({code}): grant {permission} to the "
                f"integration's credentials so that the destination guard can verify it{reason}"
            ) from None
        except BotoCoreError as exc:
            raise DestinationError(
                f"{who}cannot reach S3 to check bucket {bucket}: {exc}"
            ) from None
