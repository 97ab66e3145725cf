"""The AWS credentials handed to Domo: by default, short-lived and scoped to one export's prefix.

Domo asks for temporary credentials "whenever possible", and whatever it is handed, it holds. So
by default (``scoped``) every export gets credentials minted for it alone by STS, with an inline
session policy (:func:`session_policy`) that allows only what an export needs on
``arn:aws:s3:::<bucket>/<path>/*`` (and the KMS key Domo's files are encrypted with, when there is
one; with a ``bucket_owner``, only on a bucket of that account), for about as long as the export
may take:

* with a role configured: ``AssumeRole`` with ``Policy`` (kind ``assumed-role``);
* otherwise, from the worker's long-term IAM user keys: ``GetFederationToken`` with ``Policy``
  (kind ``scoped-session``).

Where neither can be minted (no role, and STS refuses GetFederationToken or the worker's
credentials are themselves temporary, which GetFederationToken does not accept), the export
fails before Domo is asked, naming the fixes. Handing Domo unscoped credentials takes one
setting, ``allow_unscoped_credentials`` (warned, and recorded as ``domo/credentials_scope:
unscoped``): then the worker's long-term keys yield ``GetSessionToken`` credentials (kind
``session``: temporary, but no session policy can limit them: they carry every permission of
the worker's IAM user) and temporary worker credentials are handed over as they are (kind
``temporary``). The modes ``chain`` (boto3's chain as it resolves, frozen) and ``static`` (keys
given to the resource) hand over what is configured, so they need that setting too, and
long-lived keys need ``allow_long_lived`` as well. A catalog entry's settings may only narrow
the resource's (:class:`CredentialLimits`).

AWS's bounds are checked before any call to Domo (:meth:`CredentialProvider.check`): STS's
durations (900 s to 129,600 s for GetFederationToken, to 43,200 s for AssumeRole, 3,600 s when
a role session assumes a role: role chaining) and the session policy's 2,048 characters.

What Domo may do is listed in one place, :data:`EXPORT_OBJECT_ACTIONS`,
:data:`EXPORT_BUCKET_ACTIONS` and :data:`EXPORT_KMS_ACTIONS`, which the ``aws_credentials``
resource can widen (README: "What Domo can do with your AWS account").
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
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
FEDERATION_MAX_DURATION = 129_600
"""GetFederationToken's (and GetSessionToken's) longest session for an IAM user: 36 hours."""
ASSUME_ROLE_MAX_DURATION = 43_200
"""AssumeRole's longest session: a role's MaxSessionDuration (default 3,600 s) is at most 12 h."""
ROLE_CHAINING_MAX_DURATION = 3_600
"""A role session assuming a role (role chaining) gets at most one hour, whatever the role allows."""
STS_MAX_DURATION = FEDERATION_MAX_DURATION
"""The longest session any STS call here grants; each call's own bound is checked before it."""
SESSION_POLICY_MAX_CHARS = 2_048
"""AWS's limit on a session policy's plain text (the ``Policy`` of AssumeRole and
GetFederationToken); STS also limits its packed size (``PackedPolicyTooLarge``)."""
ROLE_SESSION_ARN_MARKER = ":assumed-role/"
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


UNSCOPED_MODES = (CredentialsMode.CHAIN, CredentialsMode.STATIC)
"""The modes that hand Domo the configured credentials as they are, with no session policy."""


def unscoped_refusal(
    mode: CredentialsMode, allow_unscoped_credentials: bool, allow_long_lived: bool
) -> str | None:
    """Why these settings are contradictory, or None: every unscoped hand-over needs
    ``allow_unscoped_credentials`` (long-lived keys are unscoped too)."""
    if mode in UNSCOPED_MODES and not allow_unscoped_credentials:
        return (
            f"credentials mode '{mode.value}' hands Domo the worker's credentials as they are, "
            "with no session policy limiting them to the export's prefix; set "
            "allow_unscoped_credentials: true on the aws_credentials resource to allow it "
            "(warned and recorded), or use mode 'scoped'"
        )
    if allow_long_lived and not allow_unscoped_credentials:
        return (
            "allow_long_lived needs allow_unscoped_credentials: true as well (long-lived keys "
            "are unscoped credentials); only the modes 'chain' and 'static' can hand them over"
        )
    return None


@dataclass(frozen=True)
class CredentialOverrides:
    """A catalog entry's ``credentials:`` settings (None keeps the resource's)."""

    mode: CredentialsMode | None = None
    role_arn: str | None = None
    external_id: str | None = None
    duration_seconds: int | None = None
    allow_unscoped_credentials: bool | None = None
    allow_long_lived: bool | None = None


@dataclass(frozen=True)
class CredentialLimits:
    """What the operator allows (the ``aws_credentials`` resource's settings): a catalog entry's
    ``credentials:`` may only narrow them."""

    mode: CredentialsMode = CredentialsMode.SCOPED
    allow_unscoped_credentials: bool = False
    allow_long_lived: bool = False
    duration_seconds: int | None = None

    def refusals(self, overrides: CredentialOverrides) -> list[str]:
        """What in `overrides` would widen these settings, each naming its field.

        Args:
            overrides: A catalog entry's ``credentials:`` settings.

        Returns:
            One sentence per refused field (``field 'credentials.<name>': ...``); empty when
            the overrides only narrow.
        """
        refused = []
        for field, wanted, allowed in (
            (
                "allow_unscoped_credentials",
                overrides.allow_unscoped_credentials,
                self.allow_unscoped_credentials,
            ),
            ("allow_long_lived", overrides.allow_long_lived, self.allow_long_lived),
        ):
            if wanted and not allowed:
                refused.append(
                    f"field 'credentials.{field}': true, but the aws_credentials resource does "
                    f"not set {field}; only the resource can allow it (a catalog entry may only "
                    "narrow the resource's credentials settings)"
                )
        narrowed = self.narrowed(overrides)
        if overrides.mode in UNSCOPED_MODES and not self.allow_unscoped_credentials:
            refused.append(
                f"field 'credentials.mode': '{overrides.mode.value}' hands Domo unscoped "
                "credentials, which the aws_credentials resource does not allow (its "
                "allow_unscoped_credentials is false); use mode 'scoped' or 'assume_role'"
            )
        if (
            overrides.duration_seconds is not None
            and self.duration_seconds is not None
            and overrides.duration_seconds > self.duration_seconds
        ):
            refused.append(
                f"field 'credentials.duration_seconds': {overrides.duration_seconds} s is longer "
                f"than the aws_credentials resource's duration_seconds ({self.duration_seconds} "
                "s); a catalog entry may only shorten it"
            )
        if not refused:
            contradiction = unscoped_refusal(
                narrowed.mode, narrowed.allow_unscoped_credentials, narrowed.allow_long_lived
            )
            if contradiction is not None:
                refused.append(f"field 'credentials': {contradiction}")
        return refused

    def narrowed(self, overrides: CredentialOverrides) -> CredentialLimits:
        """These settings with `overrides` applied (refused widenings aside: see
        :meth:`refusals`)."""
        return CredentialLimits(
            mode=overrides.mode or self.mode,
            allow_unscoped_credentials=self.allow_unscoped_credentials
            and overrides.allow_unscoped_credentials is not False,
            allow_long_lived=self.allow_long_lived and overrides.allow_long_lived is not False,
            duration_seconds=overrides.duration_seconds or self.duration_seconds,
        )


class _Source(StrEnum):
    """Where an export's credentials come from, as the settings and the worker decide."""

    AS_IS = "as configured"
    ASSUME_ROLE = "AssumeRole"
    ROLE_CHAINING = "AssumeRole from a role session (role chaining)"
    FEDERATION = "GetFederationToken"
    OWN_TEMPORARY = "the worker's own temporary credentials"


# The longest session each STS call grants (AWS's bounds, checked before the call).
_MAX_DURATION = {
    _Source.ASSUME_ROLE: ASSUME_ROLE_MAX_DURATION,
    _Source.ROLE_CHAINING: ROLE_CHAINING_MAX_DURATION,
    _Source.FEDERATION: FEDERATION_MAX_DURATION,
}


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


def session_duration(
    expected_seconds: float | None,
    poll_timeout: float,
    maximum: int = ASSUME_ROLE_MAX_DURATION,
) -> int:
    """How long an export's credentials live: the expected duration twice, plus a margin,
    between STS's minimum and ``poll_timeout`` (past which nothing waits for the export), and
    at most `maximum` (the STS call's own bound)."""
    ceiling = max(STS_MIN_DURATION, min(math.ceil(poll_timeout), maximum))
    if expected_seconds is None:
        return ceiling
    wanted = math.ceil(2 * expected_seconds + DURATION_MARGIN_SECONDS)
    return max(STS_MIN_DURATION, min(wanted, ceiling))


class _CallerIdentity:
    """Who the worker is (account, ARN), asked of STS once and shared by the providers derived
    from one (:meth:`CredentialProvider.with_settings`); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: tuple[str, str] | None = None

    def get(self, sts: Callable[[], Any], hint: str) -> tuple[str, str]:
        """The account and ARN, from GetCallerIdentity with `sts`'s client the first time.

        Raises:
            CredentialsError: STS could not answer; the message ends with `hint`.
        """
        with self._lock:
            if self._value is None:
                try:
                    answer = sts().get_caller_identity()
                except (BotoCoreError, ClientError) as exc:
                    raise CredentialsError(
                        f"STS GetCallerIdentity failed ({_describe(exc)}): {hint}"
                    ) from None
                self._value = (str(answer["Account"]), str(answer["Arn"]))
            return self._value


class _StsClient:
    """One STS client acting as the worker, made when first needed and shared by the providers
    derived from one (:meth:`CredentialProvider.with_settings`) and by a step's threads: boto3
    clients are thread-safe, and building one costs more CPU than the STS call itself."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._client: Any = None

    def __call__(self) -> Any:
        """The client (built under the lock: a boto3 session is not thread-safe)."""
        with self._lock:
            if self._client is None:
                self._client = self._make()
            return self._client


class CredentialProvider:
    """Resolves the credentials handed to Domo for each export.

    Args:
        session: The boto3 session whose chain (environment, profile, instance role...) is used,
            and whose STS client mints.
        mode: Which source to use (``scoped`` by default).
        static: Keys given to the resource, used instead of the chain (STS is called with them).
        role_arn: The role to assume (``assume_role``, or ``scoped`` with a role).
        external_id: The external id the role's trust policy requires.
        duration_seconds: A fixed lifetime of minted credentials; None sizes it per export.
        allow_unscoped_credentials: Hand Domo credentials no session policy limits where no
            scoped ones can be minted (and allow the modes ``chain`` and ``static``).
        allow_long_lived: With ``allow_unscoped_credentials``, let ``chain`` or ``static`` hand
            over long-lived keys.
        actions: What the session policy allows.

    Raises:
        CredentialsError: The settings contradict each other (:func:`unscoped_refusal`).
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
        allow_unscoped_credentials: bool = False,
        allow_long_lived: bool = False,
        actions: PolicyActions = PolicyActions(),
    ):
        refusal = unscoped_refusal(mode, allow_unscoped_credentials, allow_long_lived)
        if refusal is not None:
            raise CredentialsError(refusal)
        self.session = session
        self.mode = mode
        self.static = static
        self.role_arn = role_arn
        self.external_id = external_id
        self.duration_seconds = duration_seconds
        self.allow_unscoped_credentials = allow_unscoped_credentials
        self.allow_long_lived = allow_long_lived
        self.actions = actions
        self._identity = _CallerIdentity()
        self._sts = _StsClient(self._new_sts)

    def __repr__(self) -> str:
        return (
            f"CredentialProvider(mode={self.mode.value!r}, role_arn={self.role_arn!r}, "
            f"allow_unscoped_credentials={self.allow_unscoped_credentials}, "
            f"allow_long_lived={self.allow_long_lived})"
        )

    @property
    def limits(self) -> CredentialLimits:
        """What these settings allow: a catalog entry may only narrow them."""
        return CredentialLimits(
            self.mode,
            self.allow_unscoped_credentials,
            self.allow_long_lived,
            self.duration_seconds,
        )

    def with_settings(self, export_name: str, overrides: CredentialOverrides) -> CredentialProvider:
        """The same session and keys with a catalog entry's settings, which may only narrow these.

        Args:
            export_name: The export whose ``credentials:`` these are (named in errors).
            overrides: Its settings.

        Raises:
            CredentialsError: A setting would widen these (unscoped or long-lived credentials,
                ``mode: chain`` or ``static``, a longer ``duration_seconds``); the message names
                the export and each field.
        """
        refused = self.limits.refusals(overrides)
        if refused:
            raise CredentialsError(
                f"export {export_name!r}: its credentials settings may only narrow the "
                "aws_credentials resource's: " + "; ".join(refused)
            )
        narrowed = self.limits.narrowed(overrides)
        provider = CredentialProvider(
            self.session,
            narrowed.mode,
            static=self.static,
            role_arn=overrides.role_arn or self.role_arn,
            external_id=overrides.external_id or self.external_id,
            duration_seconds=narrowed.duration_seconds,
            allow_unscoped_credentials=narrowed.allow_unscoped_credentials,
            allow_long_lived=narrowed.allow_long_lived,
            actions=self.actions,
        )
        # The same worker: ask STS who it is once, with one client.
        provider._identity = self._identity
        provider._sts = self._sts
        return provider

    def check(self, export_name: str, scope: ExportScope, poll_timeout: float) -> None:
        """Refuse, before any call to Domo, what :meth:`grant` would refuse without asking STS
        for credentials: settings that cannot work, durations outside AWS's bounds for the STS
        call to be made (role chaining included), a session policy over its size limit.

        Args:
            export_name: The export's asset name.
            scope: Where the export writes.
            poll_timeout: How long the export may be waited for: the credentials must be able to
                live that long.

        Raises:
            CredentialsError: What to change, in words.
        """
        source = self._source()
        if source is _Source.AS_IS:
            self._as_is(export_name)
        elif source is not _Source.OWN_TEMPORARY:
            self._lifetime(source, None, poll_timeout)
            self._policy_text(scope)

    def grant(
        self,
        export_name: str,
        scope: ExportScope,
        expected_seconds: float | None,
        poll_timeout: float,
    ) -> CredentialGrant:
        """Credentials for one export.

        Args:
            export_name: The export's asset name (names the STS session).
            scope: Where the export writes.
            expected_seconds: How long the export is expected to take (its DataSet's recent
                exports), or None: the credentials then live ``poll_timeout``.
            poll_timeout: How long the export may be waited for.

        Raises:
            CredentialsError: None Domo may be handed could be resolved; the message says what
                to configure.
        """
        source = self._source()
        if source is _Source.AS_IS:
            return self._as_is(export_name)
        if source is _Source.OWN_TEMPORARY:
            return self._own_temporary(export_name)
        duration = self._lifetime(source, expected_seconds, poll_timeout)
        if source is _Source.FEDERATION:
            return self._federate(export_name, scope, duration)
        return self._assume_role(export_name, scope, duration)

    # -- sources ---------------------------------------------------------------------------

    def _source(self) -> _Source:
        """Which source these settings and the worker's credentials call for."""
        if self.mode is CredentialsMode.STATIC:
            if self.static is None:
                raise CredentialsError(
                    "credentials mode 'static' needs aws_access_key_id and aws_secret_access_key"
                )
            return _Source.AS_IS
        if self.mode is CredentialsMode.CHAIN:
            return _Source.AS_IS
        if self.role_arn:
            return _Source.ROLE_CHAINING if self._role_session() else _Source.ASSUME_ROLE
        if self.mode is CredentialsMode.ASSUME_ROLE:
            raise CredentialsError("credentials mode 'assume_role' needs role_arn")
        if not self._base().is_temporary:
            return _Source.FEDERATION
        if not self.allow_unscoped_credentials:
            raise CredentialsError(
                _no_scoped_credentials(
                    "the worker's AWS credentials are temporary (a role or session), and "
                    "GetFederationToken accepts only an IAM user's long-term keys",
                    "the worker's own temporary credentials (every permission of its role)",
                )
            )
        return _Source.OWN_TEMPORARY

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

    def _role_session(self) -> bool:
        """Whether the worker's credentials are a role session (so assuming a role chains)."""
        if not self._base().is_temporary:
            return False
        return ROLE_SESSION_ARN_MARKER in self._caller()[1]

    def _lifetime(
        self, source: _Source, expected_seconds: float | None, poll_timeout: float
    ) -> int:
        """The lifetime to ask STS for, within AWS's bounds for `source`'s call.

        Raises:
            CredentialsError: ``duration_seconds`` or ``poll_timeout`` is beyond them.
        """
        maximum = _MAX_DURATION[source]
        fixed = self.duration_seconds
        if fixed is not None and not STS_MIN_DURATION <= fixed <= maximum:
            raise CredentialsError(self._too_long(source, f"duration_seconds is {fixed} s"))
        if poll_timeout > maximum:
            raise CredentialsError(
                self._too_long(
                    source,
                    f"poll_timeout is {poll_timeout:g} s (Domo's credentials must outlive the "
                    "longest wait for the export)",
                )
            )
        if fixed is not None:
            return fixed
        return session_duration(expected_seconds, poll_timeout, maximum)

    def _too_long(self, source: _Source, what: str) -> str:
        maximum = _MAX_DURATION[source]
        if source is _Source.ROLE_CHAINING:
            return (
                f"the worker's AWS credentials are a role session ({self._caller()[1]}), so "
                f"assuming {self.role_arn} is role chaining, and AWS caps role chaining at one "
                f"hour ({maximum:,} s) whatever the role's MaxSessionDuration; {what}. Lower "
                f"poll_timeout and duration_seconds to {maximum:,} s or less, or run the worker "
                "with an IAM user's long-term keys"
            )
        return (
            f"STS {source.value} grants sessions of {STS_MIN_DURATION:,} to {maximum:,} s; "
            f"{what}. Set it within those bounds"
        )

    def _as_is(self, export_name: str) -> CredentialGrant:
        """Hand the configured credentials over unchanged (``chain``, ``static``)."""
        credentials = self._base()  # the resource's keys (static mode needs them), or the chain
        if credentials.is_temporary:
            return CredentialGrant(
                credentials,
                CredentialKind.TEMPORARY,
                warning=f"{export_name}: Domo is handed the worker's own temporary credentials, "
                f"not scoped to the export's prefix (credentials mode '{self.mode.value}', "
                "allow_unscoped_credentials is set); the default mode 'scoped' limits them to it",
            )
        if not self.allow_long_lived:
            raise CredentialsError(
                f"credentials mode '{self.mode.value}' would hand Domo long-lived access keys, "
                "which never expire; set allow_long_lived: true on the aws_credentials resource "
                "as well to allow it (warned and recorded), or use mode 'scoped'"
            )
        return CredentialGrant(
            credentials,
            CredentialKind.LONG_LIVED,
            warning=f"{export_name}: Domo is handed long-lived access keys (credentials mode "
            f"'{self.mode.value}'; allow_unscoped_credentials and allow_long_lived are set): "
            "they do not expire and are not scoped to the export",
        )

    def _own_temporary(self, export_name: str) -> CredentialGrant:
        """The worker's temporary credentials, unscoped (``allow_unscoped_credentials``)."""
        return CredentialGrant(
            self._base(),
            CredentialKind.TEMPORARY,
            warning=f"{export_name}: Domo is handed the worker's own temporary credentials, "
            "with every permission of its role and not scoped to the export's prefix "
            "(allow_unscoped_credentials is set): GetFederationToken accepts only an IAM "
            "user's long-term keys. Configure a role_arn to scope them",
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
                f"STS AssumeRole of {self.role_arn} failed: {_describe(exc)}. Check that this "
                "identity has sts:AssumeRole on the role, that the role's trust policy (and "
                f"external id) allows it, and that the role's MaxSessionDuration allows {duration} "
                f"s (at most {ASSUME_ROLE_MAX_DURATION:,} s; lower poll_timeout or "
                "duration_seconds otherwise)"
            ) from None
        return _grant(answer, CredentialKind.ASSUMED_ROLE, scope, name)

    def _federate(self, export_name: str, scope: ExportScope, duration: int) -> CredentialGrant:
        """GetFederationToken with the policy; where IAM refuses it, GetSessionToken only with
        ``allow_unscoped_credentials``."""
        name = federation_name(export_name)
        try:
            answer = self._sts().get_federation_token(
                Name=name, Policy=self._policy_text(scope), DurationSeconds=duration
            )
        except (BotoCoreError, ClientError) as exc:
            if not _denied(exc):
                raise CredentialsError(f"STS GetFederationToken failed: {_describe(exc)}") from None
            return self._session_token(export_name, duration, _describe(exc))
        return _grant(answer, CredentialKind.SCOPED_SESSION, scope, name)

    def _session_token(self, export_name: str, duration: int, refused: str) -> CredentialGrant:
        """GetSessionToken credentials, unscoped (``allow_unscoped_credentials``): AWS lets no
        policy refuse the call, nor limit what its credentials may do."""
        why = f"STS refused GetFederationToken ({refused})"
        if not self.allow_unscoped_credentials:
            raise CredentialsError(
                _no_scoped_credentials(
                    why,
                    "GetSessionToken credentials (temporary, but with every permission of the "
                    "worker's IAM user)",
                )
            )
        try:
            answer = self._sts().get_session_token(DurationSeconds=duration)
        except (BotoCoreError, ClientError) as exc:
            raise CredentialsError(f"STS GetSessionToken failed: {_describe(exc)}") from None
        grant = _grant(answer, CredentialKind.SESSION, None, None)
        return replace(
            grant,
            warning=f"{export_name}: Domo is handed unscoped GetSessionToken credentials "
            f"(allow_unscoped_credentials is set): {why}. They are temporary, but no session "
            "policy can apply to them, so they carry every permission of the worker's IAM "
            "user. Grant sts:GetFederationToken, or configure a role_arn, to scope them to the "
            "export's prefix",
        )

    # -- helpers ---------------------------------------------------------------------------

    def _new_sts(self) -> Any:
        """A new STS client acting as the worker: the resource's keys, or boto3's chain."""
        if self.static is None:
            return self.session.client("sts")
        return self.session.client(
            "sts",
            aws_access_key_id=self.static.access_key_id,
            aws_secret_access_key=self.static.secret_access_key,
            aws_session_token=self.static.session_token,
        )

    def _policy_text(self, scope: ExportScope) -> str:
        """The session policy as sent to STS, minified.

        Raises:
            CredentialsError: It is longer than AWS accepts (:data:`SESSION_POLICY_MAX_CHARS`).
        """
        policy = session_policy(scope, self.actions)
        text = json.dumps(policy, separators=(",", ":"))
        if len(text) > SESSION_POLICY_MAX_CHARS:
            raise CredentialsError(
                f"the session policy for s3://{scope.bucket}/{scope.path}/ is {len(text):,} "
                f"characters, and AWS accepts at most {SESSION_POLICY_MAX_CHARS:,} in a session "
                "policy (STS would refuse it). Shorten the export's path (or bucket name), or "
                "the action lists of the aws_credentials resource (domo_object_actions, "
                "domo_bucket_actions, domo_kms_actions)"
            )
        return text

    def _caller(self, hint: str = "check the worker's AWS credentials") -> tuple[str, str]:
        """The worker's account and ARN (STS GetCallerIdentity, asked once)."""
        return self._identity.get(self._sts, hint)


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


def _no_scoped_credentials(why: str, unscoped: str) -> str:
    """The refusal when no scoped credentials can be minted: why, the two fixes, the opt-in."""
    return (
        f"no scoped credentials can be minted for Domo: {why}. Domo was not asked to export. "
        "Fix it in one of two ways: grant sts:GetFederationToken to the IAM user whose "
        "long-term keys the worker uses (its federation token is limited to the export's "
        "prefix by the session policy), or configure a role to assume (role_arn on the "
        "aws_credentials resource, or the export's credentials: {role_arn: ...}; the worker "
        "needs sts:AssumeRole on it). To hand Domo unscoped credentials instead, "
        f"{unscoped}, set allow_unscoped_credentials: true on the aws_credentials resource "
        "(warned, and recorded as domo/credentials_scope: unscoped)"
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
