"""The S3 side of the sandbox: a moto server (S3, STS, IAM, KMS) and its seeded buckets and key.

moto keeps its state in process-global backends: `MotoS3.reset` wipes every moto backend of
the process (through moto's ``/moto-api/reset``) and seeds the buckets again. Two sandboxes
running at the same time in one process would therefore share (and reset) one S3.

moto's application is served behind `StsMiddleware`, which logs every STS request, refuses
denied STS actions and gives minted credentials unique values (see ``sts_wsgi.py``); the
server's `StsLedger` (``MotoS3.sts``) is what the export engine asks about a key. In front of
that, `S3DelayMiddleware` holds (or fails) requests matching a delay rule (``MotoS3.delays``)
and makes the PUTs of one object atomic (see ``s3_delays.py``). In front of all,
`S3OwnerMiddleware` logs S3 requests as they arrive (``MotoS3.s3_calls``; a request held
across a reset is not logged after it) and enforces ``ExpectedBucketOwner``, which moto ignores
(see ``s3_owner.py``).

Besides the buckets, `reset` seeds a KMS key with the alias ``alias/domo-exports``
(``MotoS3.export_kms_key_arn``; moto draws a new key id at each reset) and a bucket whose
default encryption is SSE-KMS with that key.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from .moto_state import bucket_region as moto_bucket_region
from .s3_delays import S3DelayMiddleware, S3Delays
from .s3_owner import S3CallLog, S3OwnerMiddleware
from .sts import StsLedger
from .sts_wsgi import StsMiddleware

ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"
ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
EXPORT_BUCKET = "domo-exports"
EU_EXPORT_BUCKET = "domo-exports-eu"
PUBLIC_EXPORT_BUCKET = "domo-public-exports"
KMS_EXPORT_BUCKET = "domo-exports-kms"
EXPORT_KMS_ALIAS = "alias/domo-exports"
KMS_DEFAULT = "aws:kms"  # a seed's default_encryption: SSE-KMS with the seeded key
EXPORT_ROLE_NAME = "domo-export"
EXPORT_ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/{EXPORT_ROLE_NAME}"
# The most AWS allows, so that only role chaining (1 h) limits its sessions below 12 h.
EXPORT_ROLE_MAX_SESSION_DURATION = 43_200
MOTO_RESET_PATH = "/moto-api/reset"
HTTP_TIMEOUT_SECONDS = 10
SERVER_THREAD_NAME = "domo-sandbox-moto"
CLIENT_CONFIG = Config(
    s3={"addressing_style": "path"},
    retries={"max_attempts": 2, "mode": "standard"},
    connect_timeout=5,
    read_timeout=30,
)
PUBLIC_ACCESS_BLOCK = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}
TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"},
            "Action": "sts:AssumeRole",
        }
    ],
}

_session_lock = threading.Lock()
_session = boto3.session.Session()


@dataclass(frozen=True)
class BucketSeed:
    """A bucket the sandbox creates.

    Attributes:
        name: Bucket name.
        region: Bucket region.
        block_public_access: Turn the bucket's Public Access Block fully on.
        default_encryption: Default SSE algorithm (``AES256``, or ``aws:kms``: SSE-KMS with
            the seeded key ``alias/domo-exports``), or None.
        public_read: Attach a bucket policy that lets anyone read the objects.
    """

    name: str
    region: str
    block_public_access: bool = True
    default_encryption: str | None = None
    public_read: bool = False


SEED_BUCKETS: tuple[BucketSeed, ...] = (
    BucketSeed(EXPORT_BUCKET, DEFAULT_REGION, default_encryption="AES256"),
    BucketSeed(EU_EXPORT_BUCKET, "eu-west-1"),
    BucketSeed(PUBLIC_EXPORT_BUCKET, DEFAULT_REGION, block_public_access=False, public_read=True),
    BucketSeed(KMS_EXPORT_BUCKET, DEFAULT_REGION, default_encryption=KMS_DEFAULT),
)


def make_client(
    service: str,
    endpoint_url: str,
    access_key: str = ACCESS_KEY_ID,
    secret_key: str = SECRET_ACCESS_KEY,
    session_token: str | None = None,
    region: str = DEFAULT_REGION,
) -> Any:
    """Return a boto3 client for `service` at `endpoint_url` (thread-safe to call).

    Args:
        service: boto3 service name (``s3``, ``sts``, ``iam``).
        endpoint_url: The moto server's URL.
        access_key: AWS access key id.
        secret_key: AWS secret access key.
        session_token: Session token of temporary credentials, if any.
        region: Region of the client.

    Returns:
        The boto3 client (S3 clients use path-style addressing).
    """
    with _session_lock:
        return _session.client(
            service,
            endpoint_url=endpoint_url,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            aws_session_token=session_token,
            region_name=region,
            config=CLIENT_CONFIG,
        )


def public_read_policy(bucket: str) -> str:
    """Return a bucket policy document letting anyone read `bucket`'s objects."""
    statement = {
        "Sid": "PublicRead",
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/*",
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


class MotoS3:
    """A moto server in a thread, with the sandbox's buckets and export role.

    Args:
        host: Loopback address to bind.
        port: Port to bind (0: a free one).
        verbose: Keep werkzeug's per-request log lines (quietened otherwise).

    Attributes:
        sts: What the server's STS was asked and minted (kept across `reset`, which only
            wipes moto; `SandboxState.reset` empties its log).
        delays: The S3 delay rules (`SandboxState.reset` clears them).
        s3_calls: The S3 request log (emptied by `reset`, after the seeding).
        export_kms_key_arn: The ARN of the seeded KMS key ``alias/domo-exports`` (new at each
            `reset`).
    """

    def __init__(self, host: str, port: int = 0, verbose: bool = False) -> None:
        self._host = host
        self._port = port
        self._verbose = verbose
        self.sts = StsLedger()
        self.delays = S3Delays()
        self.s3_calls = S3CallLog()
        self.export_kms_key_arn: str | None = None
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None
        self._admin: Any = None

    @property
    def url(self) -> str:
        """The server's URL (``http://127.0.0.1:PORT``)."""
        if self._url is None:
            raise RuntimeError("The moto server is not running")
        return self._url

    def start(self) -> None:
        """Start the server, reset moto's state and seed the buckets."""
        if not self._verbose:
            logging.getLogger("werkzeug").setLevel(logging.ERROR)
        # What moto's ThreadedMotoServer runs, with the STS middleware in front of moto's app,
        # the delay rules in front of both, and the S3 log and owner checks in front of all:
        # a request is logged as it arrived and answered, held or failed by a rule included.
        moto = StsMiddleware(DomainDispatcherApplication(create_backend_app), self.sts, ACCOUNT_ID)
        app = S3OwnerMiddleware(S3DelayMiddleware(moto, self.delays), self.s3_calls)
        self._server = make_server(
            self._host, self._port, app, threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=SERVER_THREAD_NAME, daemon=True
        )
        self._thread.start()
        host, port = self._server.server_address[:2]
        self._url = f"http://{host}:{port}"
        self._admin = make_client("s3", self._url)
        self.reset()

    def stop(self) -> None:
        """Stop the server and free its port (held requests are released first)."""
        self.delays.clear()
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._url = None

    def reset(self) -> None:
        """Wipe every moto backend of the process, then seed the KMS key, buckets and the role
        again, and empty the S3 request log."""
        request = urllib.request.Request(self.url + MOTO_RESET_PATH, method="POST")
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:
            response.read()
        self.export_kms_key_arn = self._create_kms_key()
        for seed in SEED_BUCKETS:
            self._create_bucket(seed)
        iam = make_client("iam", self.url)
        try:
            iam.create_role(
                RoleName=EXPORT_ROLE_NAME,
                AssumeRolePolicyDocument=json.dumps(TRUST_POLICY),
                MaxSessionDuration=EXPORT_ROLE_MAX_SESSION_DURATION,
            )
        finally:
            iam.close()
        self.s3_calls.clear()

    def _create_kms_key(self) -> str:
        """Create the export key and its alias; return its ARN."""
        kms = make_client("kms", self.url)
        try:
            key = kms.create_key(Description="domo_assets sandbox export key")["KeyMetadata"]
            kms.create_alias(AliasName=EXPORT_KMS_ALIAS, TargetKeyId=key["KeyId"])
        finally:
            kms.close()
        return str(key["Arn"])

    def bucket_region(self, bucket: str) -> str | None:
        """Return the region of `bucket`, or None if it does not exist (read from moto's
        state: an S3 call would show in the S3 request log as a call of the worker's key)."""
        return moto_bucket_region(bucket)

    def _create_bucket(self, seed: BucketSeed) -> None:
        s3 = self._admin
        if seed.region == DEFAULT_REGION:
            s3.create_bucket(Bucket=seed.name)
        else:
            s3.create_bucket(
                Bucket=seed.name, CreateBucketConfiguration={"LocationConstraint": seed.region}
            )
        if seed.block_public_access:
            s3.put_public_access_block(
                Bucket=seed.name, PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK
            )
        if seed.default_encryption:
            default = {"SSEAlgorithm": seed.default_encryption}
            if seed.default_encryption == KMS_DEFAULT:
                default["KMSMasterKeyID"] = str(self.export_kms_key_arn)
            rule = {"ApplyServerSideEncryptionByDefault": default}
            s3.put_bucket_encryption(
                Bucket=seed.name, ServerSideEncryptionConfiguration={"Rules": [rule]}
            )
        if seed.public_read:
            s3.put_bucket_policy(Bucket=seed.name, Policy=public_read_policy(seed.name))
