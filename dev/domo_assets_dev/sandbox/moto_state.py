"""What the sandbox reads from moto's state as S3 and KMS would: who owns a bucket, and which
KMS key an id, alias or ARN names.

moto runs in the sandbox's process and keeps its state in process-global backends, one per
account: a bucket's owner is the account whose backend holds it, and a key id or alias name is
looked up in the account of the credentials that use it (a key ARN or alias ARN names its own
account and region), as KMS resolves them.
"""

from __future__ import annotations

import re

from moto.kms.models import kms_backends
from moto.s3.models import s3_backends

KMS_ARN = re.compile(
    r"^arn:aws[a-z-]*:kms:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):(?P<name>(?:key|alias)/.+)$"
)
ALIAS_PREFIX = "alias/"
KEY_PREFIX = "key/"
ARN_PREFIX = "arn:"
KMS_ALGORITHMS = frozenset({"aws:kms", "aws:kms:dsse"})
S3_MANAGED_KEY_ALIAS = "alias/aws/s3"  # what SSE-KMS uses when a bucket default names no key


def bucket_owner(bucket: str) -> str | None:
    """Return the account that owns `bucket`, or None if it does not exist."""
    found = s3_backends.bucket_accounts.get(bucket)
    return found[1] if found else None


def bucket_region(bucket: str) -> str | None:
    """Return the region of `bucket`, or None if it does not exist."""
    found = s3_backends.bucket_accounts.get(bucket)
    if found is None:
        return None
    partition, account = found
    return str(s3_backends[account][partition].get_bucket(bucket).region_name)


def kms_key_arn(key: str, region: str, account: str) -> str | None:
    """Return the key ARN `key` names, or None if no such key exists.

    Args:
        key: A key id, alias name (``alias/x``), key ARN or alias ARN.
        region: The region a key id or alias name is looked up in (the bucket's).
        account: The account a key id or alias name is looked up in (the writer's).
    """
    name = key
    arn = KMS_ARN.match(key)
    if arn is not None:
        region, account, name = arn["region"], arn["account"], arn["name"]
    elif key.startswith(ARN_PREFIX):
        return None
    backend = kms_backends[account][region]
    if name.startswith(ALIAS_PREFIX):
        key_id = backend.get_key_id_from_alias(name)
    else:
        key_id = name.removeprefix(KEY_PREFIX)
    found = backend.keys.get(key_id) if key_id else None
    return found.arn if found is not None else None


def bucket_default_kms_key(bucket: str) -> str | None:
    """Return the KMS key `bucket`'s default encryption names (``alias/aws/s3`` for SSE-KMS
    without a key), or None when its default is not SSE-KMS (or it does not exist)."""
    found = s3_backends.bucket_accounts.get(bucket)
    if found is None:
        return None
    partition, account = found
    encryption = s3_backends[account][partition].get_bucket(bucket).encryption or {}
    rules = encryption.get("Rule") or []
    for rule in rules if isinstance(rules, list) else [rules]:
        default = rule.get("ApplyServerSideEncryptionByDefault") or {}
        if default.get("SSEAlgorithm") in KMS_ALGORITHMS:
            return default.get("KMSMasterKeyID") or S3_MANAGED_KEY_ALIAS
    return None
