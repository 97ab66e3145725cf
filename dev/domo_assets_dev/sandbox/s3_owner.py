"""WSGI middleware in front of moto: S3 requests are logged, and ``ExpectedBucketOwner`` is
enforced as S3 enforces it (moto 5.2.5 ignores it).

An S3 request (signed for ``s3``) carrying ``x-amz-expected-bucket-owner`` that names another
account than the bucket's owner, or ``x-amz-source-expected-bucket-owner`` that names another
account than the owner of its ``x-amz-copy-source`` bucket, is answered 403 ``AccessDenied`` and
not processed. Every S3 request is logged (`S3CallLog`: method, bucket, key, the access key id
that signed it, the expected owners it carried, the status), never a secret, so tests can see
which calls carried an expected owner.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote
from xml.sax.saxutils import escape

from .logs import TicketedLog
from .moto_state import bucket_owner
from .sts_wsgi import WsgiApp, signing_scope

S3_SERVICE = "s3"
EXPECTED_OWNER = "HTTP_X_AMZ_EXPECTED_BUCKET_OWNER"
SOURCE_EXPECTED_OWNER = "HTTP_X_AMZ_SOURCE_EXPECTED_BUCKET_OWNER"
COPY_SOURCE = "HTTP_X_AMZ_COPY_SOURCE"
# Virtual-hosted requests name the bucket in the host: <bucket>.s3[.<region>].amazonaws.com.
VIRTUAL_HOST_MARK = ".s3."
XML_CONTENT_TYPE = "application/xml"


@dataclass(frozen=True)
class S3Call:
    """One S3 request as the log shows it (never a secret).

    Attributes:
        time: Epoch seconds when it arrived.
        method: HTTP method.
        bucket: The bucket it addressed, or None (ListBuckets).
        key: The object key, or None for a bucket request.
        access_key_id: The access key id that signed it.
        expected_owner: ``x-amz-expected-bucket-owner``, or None.
        source_expected_owner: ``x-amz-source-expected-bucket-owner``, or None.
        status: The HTTP status answered.
    """

    time: float
    method: str
    bucket: str | None
    key: str | None
    access_key_id: str | None
    expected_owner: str | None
    source_expected_owner: str | None
    status: int = 0


class S3CallLog(TicketedLog[S3Call]):
    """The S3 request log; thread-safe (``entries`` lists it)."""


class S3OwnerMiddleware:
    """Wraps the moto application (see the module docstring).

    Args:
        app: The application behind (moto, through the STS middleware).
        log: Where S3 requests are logged.
    """

    def __init__(self, app: WsgiApp, log: S3CallLog) -> None:
        self._app = app
        self._log = log

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        signer = signing_scope(environ)
        if signer is None or signer[1] != S3_SERVICE:
            return self._app(environ, start_response)
        ticket = self._log.ticket()
        bucket, key = addressed(environ)
        call = S3Call(
            time=time.time(),
            method=environ.get("REQUEST_METHOD", ""),
            bucket=bucket,
            key=key,
            access_key_id=signer[0],
            expected_owner=environ.get(EXPECTED_OWNER) or None,
            source_expected_owner=environ.get(SOURCE_EXPECTED_OWNER) or None,
        )
        if not owners_match(call, copy_source_bucket(environ.get(COPY_SOURCE))):
            self._log.append(replace(call, status=HTTPStatus.FORBIDDEN), ticket)
            status, headers, body = access_denied(call.method)
            start_response(status, headers)
            return [body]

        def recording_start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            self._log.append(replace(call, status=int(status.split(" ", 1)[0])), ticket)
            return start_response(status, headers, exc_info)

        return self._app(environ, recording_start_response)


def addressed(environ: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """Return the bucket and key a request addresses (path-style or virtual-hosted)."""
    path = environ.get("PATH_INFO", "").lstrip("/")
    host = environ.get("HTTP_HOST", "").split(":", 1)[0]
    if VIRTUAL_HOST_MARK in host and host.endswith(".amazonaws.com"):
        bucket = host.split(VIRTUAL_HOST_MARK, 1)[0]
        return bucket, path or None
    bucket, _, key = path.partition("/")
    return bucket or None, key or None


def copy_source_bucket(header: str | None) -> str | None:
    """Return the bucket of an ``x-amz-copy-source`` header (``[/]bucket/key[?versionId=]``)."""
    if not header:
        return None
    return unquote(header.lstrip("/").split("/", 1)[0]) or None


def owners_match(call: S3Call, source_bucket: str | None) -> bool:
    """Return False when an expected owner names another account than the bucket's owner."""
    checks = ((call.expected_owner, call.bucket), (call.source_expected_owner, source_bucket))
    for expected, bucket in checks:
        if expected is None or bucket is None:
            continue
        owner = bucket_owner(bucket)
        if owner is not None and owner != expected:
            return False
    return True


def access_denied(method: str) -> tuple[str, list[tuple[str, str]], bytes]:
    """S3's 403 AccessDenied answer (no body for a HEAD, as S3 sends none)."""
    request_id = uuid.uuid4().hex.upper()[:16]
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
        f"<Message>{escape('Access Denied')}</Message><RequestId>{request_id}</RequestId>"
        "</Error>"
    ).encode()
    if method == "HEAD":
        body = b""
    headers = [
        ("Content-Type", XML_CONTENT_TYPE),
        ("x-amz-request-id", request_id),
        ("Content-Length", str(len(body))),
    ]
    status = HTTPStatus.FORBIDDEN
    return f"{status.value} {status.phrase}", headers, body
