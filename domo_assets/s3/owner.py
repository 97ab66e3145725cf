"""``ExpectedBucketOwner`` on every S3 call the worker makes to a bucket whose owner is known.

An export may name its bucket's AWS account (``bucket_owner``). S3 then refuses (403) any call
carrying ``ExpectedBucketOwner`` (``ExpectedSourceBucketOwner`` for a copy's source) when the
bucket belongs to another account, so a mistyped or re-registered bucket name in another
account never receives or serves the data. Rather than pass it at each call (the guard, HEAD,
ranged GET, deep verification, copies, manifests, the pointer, retention, Parquet writes), one
botocore handler on the worker's S3 client adds it to every operation that takes it, from a
bucket -> owner map: no call can forget it. A value a caller passes itself is kept.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote

from domo_assets.domo.errors import ConfigurationError

EVENT = "before-parameter-build.s3"
HANDLER_ID = "domo_assets.expected_bucket_owner"
BUCKET_PARAM = "Bucket"
COPY_SOURCE_PARAM = "CopySource"
OWNER_PARAM = "ExpectedBucketOwner"
SOURCE_OWNER_PARAM = "ExpectedSourceBucketOwner"


class BucketOwnerConflictError(ConfigurationError):
    """Two exports of one step name different owners for the same bucket."""


class BucketOwners:
    """The bucket -> owner map of one S3 client, and the botocore handler that applies it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owners: dict[str, str] = {}

    def add(self, owners: Mapping[str, str]) -> None:
        """Expect these owners from now on.

        Raises:
            BucketOwnerConflictError: A bucket is already expected to belong to another account.
        """
        with self._lock:
            for bucket, owner in owners.items():
                known = self._owners.setdefault(bucket, owner)
                if known != owner:
                    raise BucketOwnerConflictError(
                        f"bucket {bucket} is expected to belong to account {known} and to "
                        f"account {owner} (bucket_owner of exports in the same run): give every "
                        "export of that bucket the same bucket_owner"
                    )

    def owner(self, bucket: str) -> str | None:
        """The account ``bucket`` must belong to, if known."""
        with self._lock:
            return self._owners.get(bucket)

    def mapping(self) -> dict[str, str]:
        """Every bucket's expected owner."""
        with self._lock:
            return dict(self._owners)

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        """botocore's ``before-parameter-build.s3.*``: add the expected owners the operation takes."""
        members = model.input_shape.members if model.input_shape is not None else {}
        if OWNER_PARAM in members and OWNER_PARAM not in params:
            owner = self.owner(str(params.get(BUCKET_PARAM, "")))
            if owner is not None:
                params[OWNER_PARAM] = owner
        if SOURCE_OWNER_PARAM in members and SOURCE_OWNER_PARAM not in params:
            source = copy_source_bucket(params.get(COPY_SOURCE_PARAM))
            owner = self.owner(source) if source else None
            if owner is not None:
                params[SOURCE_OWNER_PARAM] = owner


_registry: weakref.WeakKeyDictionary[Any, BucketOwners] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def expect_bucket_owners(s3_client: Any, owners: Mapping[str, str]) -> Any:
    """Make every call of ``s3_client`` to one of these buckets pass its expected owner.

    The handler is registered once per client; later calls add to its map.

    Args:
        s3_client: A boto3 S3 client (the worker's).
        owners: Bucket name -> 12-digit AWS account id.

    Returns:
        The same client.

    Raises:
        BucketOwnerConflictError: A bucket is already expected to belong to another account.
    """
    if not owners:
        return s3_client
    with _registry_lock:
        handler = _registry.get(s3_client)
        if handler is None:
            handler = BucketOwners()
            s3_client.meta.events.register(EVENT, handler, unique_id=HANDLER_ID)
            _registry[s3_client] = handler
    handler.add(owners)
    return s3_client


def owners_of(exports: Iterable[Any]) -> dict[str, str]:
    """Bucket -> owner of the exports that name a ``bucket_owner`` (catalog entries).

    Raises:
        BucketOwnerConflictError: Two of them name different owners for one bucket.
    """
    found = BucketOwners()
    for export in exports:
        if export.bucket_owner is not None:
            found.add({export.bucket: export.bucket_owner})
    return found.mapping()


def copy_source_bucket(source: Any) -> str | None:
    """The bucket of a ``CopySource``: ``{"Bucket": ..., "Key": ...}`` or ``bucket/key``
    (URL-encoded, maybe with a leading ``/`` or ``?versionId=``) once botocore has encoded it."""
    if isinstance(source, Mapping):
        bucket = source.get(BUCKET_PARAM)
        return str(bucket) if bucket else None
    if isinstance(source, str) and source:
        return unquote(source.lstrip("/").split("/", 1)[0]) or None
    return None
