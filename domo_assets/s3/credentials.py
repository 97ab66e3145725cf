"""The AWS credentials handed to Domo: by default, short-lived and scoped to one export's prefix.

Domo asks for temporary credentials "whenever possible", and whatever it is handed, it holds. So
by default (``scoped``) every export gets credentials minted for it alone by STS, with an inline
session policy (:func:`session_policy`) that allows only what an export needs on
``arn:aws:s3:::<bucket>/<path>/*`` (and the KMS key Domo's files are encrypted with, when there is
one; with a ``bucket_owner``, only on a bucket of that account), for about as long as the export
may take:

* with a role configured: ``AssumeRole`` with ``Policy`` (kind ``assumed-role``);
* otherwise, from the worker's long-lived keys: ``GetFederationToken`` with ``Policy`` (kind
  ``scoped-session``); where that is refused, ``GetSessionToken`` (kind ``session``: temporary,
  but no session policy can apply to it), with a warning saying so.

Long-lived keys are never handed to Domo silently: if no temporary credentials can be minted the
export fails saying what to configure, unless ``allow_long_lived`` is set (warned and recorded).
The other modes hand over what is configured: ``chain`` (boto3's chain as it resolves, frozen),
``static`` (keys given to the resource), ``assume_role`` (``scoped`` with a required role).

What Domo may do is listed in one place, :data:`EXPORT_OBJECT_ACTIONS`,
:data:`EXPORT_BUCKET_ACTIONS` and :data:`EXPORT_KMS_ACTIONS`, which the ``aws_credentials``
resource can widen (README: "What Domo can do with your AWS account").
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from domo_assets.domo.errors import ConfigurationError
from domo_assets.domo.models import AwsCredentials

if TYPE_CHECKING:
    import boto3

STS_MIN_DURATION = 900
"""STS's shortest session, in seconds (AssumeRole, GetFederationToken, GetSessionToken)."""
STS_MAX_DURATION = 43200
DURATION_MARGIN_SECONDS = 300
"""Added to twice the expected export duration: Domo writes the files at the end."""
SESSION_NAME_PREFIX = "domo-assets-"
FEDERATION_NAME_PREFIX = "domo-"
FEDERATION_NAME_MAX = 32
SESSION_NAME_MAX = 64
POLICY_VERSION = "2012-10-17"
EXPORT_OBJECT_ACTIONS: tuple[str, ...] = (
    "s3:PutObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
)
"""On ``<bucket>/<path>/*``: write the files (multipart uploads included; their create, part and
complete calls are authorised by ``s3:PutObject``)."""
EXPORT_BUCKET_ACTIONS: tuple[str, ...] = ("s3:GetBucketLocation",)
"""On the bucket itself: Domo refuses exports across regions, so it may read the bucket's region."""
EXPORT_KMS_ACTIONS: tuple[str, ...] = ("kms:GenerateDataKey", "kms:Decrypt")
"""On the key SSE-KMS encrypts the files with (the export's, or the bucket's default key): a
PutObject needs a data key; a multipart upload also needs ``kms:Decrypt``, as S3 decrypts the
parts' data keys to complete it. S3 never calls ``kms:Encrypt``."""
RESOURCE_ACCOUNT_KEY = "s3:ResourceAccount"
"""The condition key that holds S3 actions to buckets of one account (``bucket_owner``)."""
_ACCESS_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}
_SESSION_NAME_UNSAFE = re.compile(r"[^\w+=,.@-]")


class CredentialsError(ConfigurationError):
    """No credentials Domo may be handed could be resolved; the message says what to set."""


class CredentialsMode(StrEnum):
    """Where the credentials handed to Domo come from."""

    SCOPED = "scoped"
    CHAIN = "chain"
    STATIC = "static"
    ASSUME_ROLE = "assume_role"


class CredentialKind(StrEnum):
    """What Domo was handed (recorded in the materialization metadata)."""

    SCOPED_SESSION = "scoped-session"
    """GetFederationToken with the export's session policy."""
    ASSUMED_ROLE = "assumed-role"
    """AssumeRole with the export's session policy."""
    SESSION = "session"
    """GetSessionToken: temporary, not scoped (no session policy can apply)."""
    TEMPORARY = "temporary"
    """The worker's own temporary credentials (``chain`` or ``static``), not scoped."""
    LONG_LIVED = "long-lived"
    """Long-lived access keys (``allow_long_lived``)."""


@dataclass(frozen=True)
class ExportScope:
    """Where one export may write: its bucket, its prefix (partition included), the KMS key its
    files are encrypted with, and the account the bucket must belong to."""

    bucket: str
    path: str
    region: str
    kms_key_arn: str | None = None
    """The key ARN (IAM matches keys by key ARN only; ``domo_assets.s3.kms`` resolves it)."""
    bucket_owner: str | None = None
    """The AWS account id the bucket must belong to (``s3:ResourceAccount``)."""

    @property
    def objects_arn(self) -> str:
        """``arn:aws:s3:::<bucket>/<path>/*``."""
        return f"arn:aws:s3:::{self.bucket}/{self.path}/*"

    @property
    def bucket_arn(self) -> str:
        """``arn:aws:s3:::<bucket>``."""
        return f"arn:aws:s3:::{self.bucket}"


@dataclass(frozen=True)
class CredentialGrant:
    """Credentials minted (or resolved) for one export, with what they may do.

    The credentials' secret and session token never appear in ``repr``.
    """

    credentials: AwsCredentials
    kind: CredentialKind
    scope: str | None = None
    """The objects ARN the session policy allows writing to, when scoped."""
    session_name: str | None = None
    expires_at: datetime | None = None
    warning: str | None = None
    """Why these credentials are weaker than a scoped session, when they are."""

    @property
    def scoped(self) -> bool:
        """Whether a session policy limits the credentials to the export's prefix."""
        return self.scope is not None


@dataclass(frozen=True)
class PolicyActions:
    """The actions Domo is allowed, the one configurable place (defaults above)."""

    objects: tuple[str, ...] = EXPORT_OBJECT_ACTIONS
    bucket: tuple[str, ...] = EXPORT_BUCKET_ACTIONS
    kms: tuple[str, ...] = EXPORT_KMS_ACTIONS


def session_policy(scope: ExportScope, actions: PolicyActions = PolicyActions()) -> dict[str, Any]:
    """The inline session policy of one export's credentials.

    The S3 statements carry ``s3:ResourceAccount`` when the export names a ``bucket_owner``; the
    KMS statement is there when the files are encrypted with a KMS key (``scope.kms_key_arn``).

    Args:
        scope: Where the export writes.
        actions: The allowed actions.
    """
    statements: list[dict[str, Any]] = [
        _s3_statement("WriteThisExport", actions.objects, scope.objects_arn, scope.bucket_owner)
    ]
    if actions.bucket:
        statements.append(
            _s3_statement(
                "ReadTheBucketRegion", actions.bucket, scope.bucket_arn, scope.bucket_owner
            )
        )
    if scope.kms_key_arn is not None and actions.kms:
        statements.append(
            {
                "Sid": "EncryptWithTheExportKey",
                "Effect": "Allow",
                "Action": list(actions.kms),
                "Resource": scope.kms_key_arn,
            }
        )
    return {"Version": POLICY_VERSION, "Statement": statements}


def _s3_statement(
    sid: str, actions: Sequence[str], resource: str, owner: str | None
) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Sid": sid,
        "Effect": "Allow",
        "Action": list(actions),
        "Resource": resource,
    }
    if owner is not None:
        statement["Condition"] = {"StringEquals": {RESOURCE_ACCOUNT_KEY: owner}}
    return statement


def session_duration(expected_seconds: float | None, poll_timeout: float) -> int:
    """How long an export's credentials live: the expected duration twice, plus a margin,
    between STS's minimum and ``poll_timeout`` (past which nothing waits for the export)."""
    ceiling = max(STS_MIN_DURATION, min(math.ceil(poll_timeout), STS_MAX_DURATION))
    if expected_seconds is None:
        return ceiling
    wanted = math.ceil(2 * expected_seconds + DURATION_MARGIN_SECONDS)
    return max(STS_MIN_DURATION, min(wanted, ceiling))


class CredentialProvider:
    """Resolves the credentials handed to Domo for each export.

    Args:
        session: The boto3 session whose chain (environment, profile, instance role...) is used,
            and whose STS client mints.
        mode: Which source to use (``scoped`` by default).
        static: Keys given to the resource, used instead of the chain.
        role_arn: The role to assume (``assume_role``, or ``scoped`` with a role).
        external_id: The external id the role's trust policy requires.
        duration_seconds: A fixed lifetime of minted credentials; None sizes it per export.
        allow_long_lived: Hand long-lived keys to Domo when nothing temporary can be minted.
        actions: What the session policy allows.
    """

    def __init__(
        self,
        session: boto3.Session,
        mode: CredentialsMode = CredentialsMode.SCOPED,
        *,
        static: AwsCredentials | None = None,
        role_arn: str | None = None,
        external_id: str | None = None,
        duration_seconds: int | None = None,
        allow_long_lived: bool = False,
        actions: PolicyActions = PolicyActions(),
    ):
        self.session = session
        self.mode = mode
        self.static = static
        self.role_arn = role_arn
        self.external_id = external_id
        self.duration_seconds = duration_seconds
        self.allow_long_lived = allow_long_lived
        self.actions = actions

    def __repr__(self) -> str:
        return (
            f"CredentialProvider(mode={self.mode.value!r}, role_arn={self.role_arn!r}, "
            f"allow_long_lived={self.allow_long_lived})"
        )

    def with_settings(
        self,
        mode: CredentialsMode | None = None,
        role_arn: str | None = None,
        external_id: str | None = None,
        duration_seconds: int | None = None,
        allow_long_lived: bool | None = None,
    ) -> CredentialProvider:
        """The same session and keys with a catalog entry's overrides (None: keep this one's)."""
        return CredentialProvider(
            self.session,
            mode or self.mode,
            static=self.static,
            role_arn=role_arn or self.role_arn,
            external_id=external_id or self.external_id,
            duration_seconds=duration_seconds or self.duration_seconds,
            allow_long_lived=self.allow_long_lived
            if allow_long_lived is None
            else allow_long_lived,
            actions=self.actions,
        )

    def grant(self, export_name: str, scope: ExportScope, duration_seconds: int) -> CredentialGrant:
        """Credentials for one export.

        Args:
            export_name: The export's asset name (names the STS session).
            scope: Where the export writes.
            duration_seconds: The lifetime to ask STS for (``duration_seconds`` overrides it).

        Raises:
            CredentialsError: None Domo may be handed could be resolved; the message says what
                to configure.
        """
        duration = self.duration_seconds or duration_seconds
        if self.mode is CredentialsMode.STATIC:
            if self.static is None:
                raise CredentialsError(
                    "credentials mode 'static' needs aws_access_key_id and aws_secret_access_key"
                )
            return self._as_is(self.static, export_name)
        if self.mode is CredentialsMode.CHAIN:
            return self._as_is(self._base(), export_name)
        if self.role_arn:
            return self._assume_role(export_name, scope, duration)
        if self.mode is CredentialsMode.ASSUME_ROLE:
            raise CredentialsError("credentials mode 'assume_role' needs role_arn")
        return self._federate(export_name, scope, duration)

    # -- sources ---------------------------------------------------------------------------

    def _base(self) -> AwsCredentials:
        """The worker's own credentials: the resource's keys, or boto3's chain."""
        if self.static is not None:
            return self.static
        resolved = self.session.get_credentials()
        if resolved is None:
            raise CredentialsError(
                "boto3 found no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(and AWS_SESSION_TOKEN for temporary ones), a profile, or a role"
            )
        frozen = resolved.get_frozen_credentials()
        return AwsCredentials(frozen.access_key, frozen.secret_key, frozen.token or None)

    def _as_is(self, credentials: AwsCredentials, export_name: str) -> CredentialGrant:
        """Hand the configured credentials over unchanged (``chain``, ``static``)."""
        if credentials.is_temporary:
            return CredentialGrant(
                credentials,
                CredentialKind.TEMPORARY,
                warning=f"{export_name}: Domo is handed the worker's own temporary credentials, "
                "not scoped to the export's prefix (credentials mode "
                f"'{self.mode.value}'); the default mode 'scoped' limits them to it",
            )
        return self._long_lived(
            credentials,
            export_name,
            f"credentials mode '{self.mode.value}' hands over long-lived access keys",
        )

    def _long_lived(
        self, credentials: AwsCredentials, export_name: str, why: str
    ) -> CredentialGrant:
        if not self.allow_long_lived:
            raise CredentialsError(
                f"{why}, and long-lived keys are never handed to Domo unless "
                "allowed. Configure a role Domo's credentials are minted from "
                "(credentials: {role_arn: ...}), grant this identity sts:GetFederationToken, or "
                "set credentials: {allow_long_lived: true} to hand these keys over (warned and "
                "recorded)"
            )
        return CredentialGrant(
            credentials,
            CredentialKind.LONG_LIVED,
            warning=f"{export_name}: Domo is handed long-lived access keys ({why}; "
            "allow_long_lived is set): they do not expire and are not scoped to the export",
        )

    def _assume_role(self, export_name: str, scope: ExportScope, duration: int) -> CredentialGrant:
        name = session_name(export_name)
        kwargs: dict[str, Any] = {
            "RoleArn": self.role_arn,
            "RoleSessionName": name,
            "DurationSeconds": duration,
            "Policy": self._policy_text(scope),
        }
        if self.external_id:
            kwargs["ExternalId"] = self.external_id
        try:
            answer = self._sts().assume_role(**kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise CredentialsError(
                f"STS AssumeRole of {self.role_arn} failed: {_describe(exc)}. Check "
                "the role's trust policy (and external id) allows this identity, and that its "
                f"maximum session duration allows {duration} s"
            ) from None
        return _grant(answer, CredentialKind.ASSUMED_ROLE, scope, name)

    def _federate(self, export_name: str, scope: ExportScope, duration: int) -> CredentialGrant:
        """GetFederationToken with the policy; GetSessionToken where that is refused."""
        base = self._base()
        if base.is_temporary:
            raise CredentialsError(
                "The worker's AWS credentials are temporary (a role session), and "
                "STS mints no scoped session from them without a role. Configure "
                "credentials: {role_arn: ...} (a role this identity may assume: its session is "
                "scoped to the export's prefix), or credentials: {mode: chain} to hand Domo the "
                "worker's own temporary credentials, unscoped"
            )
        name = federation_name(export_name)
        sts = self._sts()
        try:
            answer = sts.get_federation_token(
                Name=name, Policy=self._policy_text(scope), DurationSeconds=duration
            )
            return _grant(answer, CredentialKind.SCOPED_SESSION, scope, name)
        except (BotoCoreError, ClientError) as exc:
            if not _denied(exc):
                raise CredentialsError(f"STS GetFederationToken failed: {_describe(exc)}") from None
            refused = _describe(exc)
        try:
            answer = sts.get_session_token(DurationSeconds=duration)
        except (BotoCoreError, ClientError) as exc:
            if not _denied(exc):
                raise CredentialsError(f"STS GetSessionToken failed: {_describe(exc)}") from None
            return self._long_lived(
                base,
                export_name,
                f"STS refused both GetFederationToken ({refused}) and GetSessionToken "
                f"({_describe(exc)})",
            )
        grant = _grant(answer, CredentialKind.SESSION, None, None)
        return CredentialGrant(
            grant.credentials,
            grant.kind,
            expires_at=grant.expires_at,
            warning=f"{export_name}: STS refused GetFederationToken ({refused}), so Domo is "
            "handed GetSessionToken credentials: temporary, but no session policy can apply to "
            "them, so they carry every permission of the worker's keys. Grant "
            "sts:GetFederationToken, or configure a role, to scope them to the export's prefix",
        )

    # -- helpers ---------------------------------------------------------------------------

    def _sts(self) -> Any:
        return self.session.client("sts")

    def _policy_text(self, scope: ExportScope) -> str:
        policy = session_policy(scope, self.actions)
        return json.dumps(policy, separators=(",", ":"))


def session_name(export_name: str) -> str:
    """An STS role session name naming the export, so CloudTrail shows which export wrote what."""
    return (SESSION_NAME_PREFIX + _SESSION_NAME_UNSAFE.sub("-", export_name))[:SESSION_NAME_MAX]


def federation_name(export_name: str) -> str:
    """A federated user name naming the export (STS allows 2 to 32 characters)."""
    return (FEDERATION_NAME_PREFIX + _SESSION_NAME_UNSAFE.sub("-", export_name))[
        :FEDERATION_NAME_MAX
    ]


def _grant(
    answer: Any, kind: CredentialKind, scope: ExportScope | None, name: str | None
) -> CredentialGrant:
    creds = answer["Credentials"]
    return CredentialGrant(
        AwsCredentials(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]),
        kind,
        scope=scope.objects_arn if scope is not None else None,
        session_name=name,
        expires_at=creds.get("Expiration"),
    )


def _denied(exc: Exception) -> bool:
    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in (
        _ACCESS_DENIED
    )


def _describe(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".strip()
    return type(exc).__name__


def actions_from(
    objects: Sequence[str] | None, bucket: Sequence[str] | None, kms: Sequence[str] | None
) -> PolicyActions:
    """Policy actions with the resource's overrides (None keeps the default)."""
    default = PolicyActions()
    return PolicyActions(
        objects=tuple(objects) if objects is not None else default.objects,
        bucket=tuple(bucket) if bucket is not None else default.bucket,
        kms=tuple(kms) if kms is not None else default.kms,
    )
