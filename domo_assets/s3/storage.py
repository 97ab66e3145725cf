"""What an export left in S3: object existence, sizes and ETags, read with a boto3 S3 client.

It knows S3 and the records of ``domo_assets.domo.models``, nothing of Domo's HTTP API or Dagster.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from domo_assets.domo.models import S3Object

_MISSING_CODES = {"404", "NoSuchKey", "NotFound"}


@dataclass(frozen=True)
class StoredObject:
    """An object Domo reported, as S3 sees it."""

    reported: S3Object
    exists: bool
    size: int | None = None
    etag: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Exists and holds at least one byte."""
        return self.exists and bool(self.size)


def inspect_objects(s3_client: Any, objects: Sequence[S3Object]) -> tuple[StoredObject, ...]:
    """HEAD every reported object.

    Args:
        s3_client: A boto3 S3 client.
        objects: What Domo reported writing.

    Returns:
        One record per object, in the same order.
    """
    return tuple(_head(s3_client, obj) for obj in objects)


def error_code(exc: ClientError) -> str:
    """The error code of a call AWS refused (``NoSuchKey``, ``AccessDenied``, ``404``...)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_missing(exc: ClientError) -> bool:
    """Whether S3 refused the call because the object is not there."""
    return error_code(exc) in _MISSING_CODES


def _head(s3_client: Any, obj: S3Object) -> StoredObject:
    try:
        head = s3_client.head_object(Bucket=obj.bucket, Key=obj.key)
    except ClientError as exc:
        code = error_code(exc)
        if code in _MISSING_CODES:
            return StoredObject(obj, exists=False)
        return StoredObject(obj, exists=False, error=f"S3 {code or 'error'} on HEAD {obj.uri}")
    return StoredObject(
        obj,
        exists=True,
        size=int(head.get("ContentLength", 0)),
        etag=str(head.get("ETag", "")).strip('"') or None,
    )


def kms_write_args(kms_key_id: str | None) -> dict[str, str] | None:
    """The arguments that make an S3 write encrypt with this KMS key (SSE-KMS); None without
    a key (the bucket's default encryption applies)."""
    if not kms_key_id:
        return None
    return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id}


def copy_object(
    s3_client: Any, source: S3Object, bucket: str, key: str, kms_key_id: str | None = None
) -> S3Object:
    """Copy one object server-side (boto3's managed copy: multipart above its threshold).

    Args:
        s3_client: A boto3 S3 client with the worker's own credentials.
        source: The object to copy.
        bucket: The destination bucket.
        key: The destination key.
        kms_key_id: Encrypt the copy with this KMS key (SSE-KMS), as the export would be.

    Returns:
        The copy, with the source's row count.
    """
    s3_client.copy(
        {"Bucket": source.bucket, "Key": source.key},
        bucket,
        key,
        ExtraArgs=kms_write_args(kms_key_id),
    )
    return S3Object(bucket=bucket, key=key, row_count=source.row_count)
