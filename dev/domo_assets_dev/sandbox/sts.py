"""What the sandbox's STS was asked and what it minted: the call log, the credentials it
issued (with their session policies and expirations), the STS actions it refuses, and the
rules AWS's STS enforces whatever the caller's permissions (`rule_refusal`): durations within
each action's bounds, role chaining capped at one hour, GetFederationToken and GetSessionToken
only from long-term keys, a session policy of at most 2,048 characters.

Nothing here holds a secret: an issued credential is remembered by its access key id only,
and the minted secrets and session tokens go to the caller and nowhere else.
"""

from __future__ import annotations

import base64
import secrets
import string
import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from .policy import decide

MINTED_SECRET_PREFIX = "SANDBOXSECRET"
MINTED_TOKEN_PREFIX = "SANDBOXTOKEN"
TEMPORARY_KEY_PREFIX = "ASIA"
LONG_LIVED_KEY_PREFIX = "AKIA"
ACCESS_KEY_ID_LENGTH = 20
ACCESS_KEY_ALPHABET = string.ascii_uppercase + string.digits
SECRET_RANDOM_LENGTH = 40  # the length of an AWS secret access key
SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"
TOKEN_RANDOM_BYTES = 264  # 352 base64 characters, about an STS session token's length
EXPIRED_AGO = timedelta(seconds=1)

LONG_LIVED = "long-lived"
ASSUMED_ROLE = "assumed-role"
FEDERATION_TOKEN = "federation-token"
SESSION_TOKEN = "session-token"
UNKNOWN_TEMPORARY = "unknown-temporary"
# The STS actions whose answers carry credentials, and the kind of credentials each mints.
MINTING_ACTIONS: Mapping[str, str] = {
    "AssumeRole": ASSUMED_ROLE,
    "AssumeRoleWithSAML": ASSUMED_ROLE,
    "AssumeRoleWithWebIdentity": ASSUMED_ROLE,
    "GetFederationToken": FEDERATION_TOKEN,
    "GetSessionToken": SESSION_TOKEN,
}
GET_CALLER_IDENTITY = "GetCallerIdentity"
GET_SESSION_TOKEN = "GetSessionToken"
GET_FEDERATION_TOKEN = "GetFederationToken"
ASSUME_ROLE = "AssumeRole"
# Actions no IAM policy can refuse: AWS answers GetCallerIdentity for every identity, and
# GetSessionToken needs no permission (IAM user guide: it "cannot be denied by a policy").
UNDENIABLE_ACTIONS: Mapping[str, str] = {
    GET_CALLER_IDENTITY: "AWS answers it for every identity",
    GET_SESSION_TOKEN: "it needs no permission, and no IAM policy can refuse it",
}
# What an identity may be refused.
DENIABLE_ACTIONS = (
    *(action for action in MINTING_ACTIONS if action not in UNDENIABLE_ACTIONS),
    "DecodeAuthorizationMessage",
    "GetAccessKeyInfo",
)
ACTION_PREFIX = "sts:"

# AWS's bounds (STS API reference), in seconds.
MIN_DURATION = 900
FEDERATION_MAX_DURATION = 129_600  # GetFederationToken and GetSessionToken, IAM user
ASSUME_ROLE_MAX_DURATION = 43_200  # the highest MaxSessionDuration a role may have
ROLE_CHAINING_MAX_DURATION = 3_600
MAX_DURATION: Mapping[str, int] = {
    ASSUME_ROLE: ASSUME_ROLE_MAX_DURATION,
    GET_FEDERATION_TOKEN: FEDERATION_MAX_DURATION,
    GET_SESSION_TOKEN: FEDERATION_MAX_DURATION,
}
POLICY_MAX_CHARS = 2_048  # a session policy's plain text (AssumeRole, GetFederationToken)
# The actions AWS refuses to callers with temporary credentials.
LONG_TERM_KEYS_ONLY = (GET_FEDERATION_TOKEN, GET_SESSION_TOKEN)
VALIDATION_ERROR = "ValidationError"
ACCESS_DENIED = "AccessDenied"
CHAINING_MESSAGE = (
    "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role "
    "chaining."
)
MAX_SESSION_MESSAGE = (
    "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
)


def new_access_key_id() -> str:
    """Return a fresh temporary access key id: ``ASIA`` and 16 random characters."""
    size = ACCESS_KEY_ID_LENGTH - len(TEMPORARY_KEY_PREFIX)
    return TEMPORARY_KEY_PREFIX + "".join(secrets.choice(ACCESS_KEY_ALPHABET) for _ in range(size))


def new_secret_access_key() -> str:
    """Return a fresh secret access key: the marker, then 40 random characters."""
    return MINTED_SECRET_PREFIX + "".join(
        secrets.choice(SECRET_ALPHABET) for _ in range(SECRET_RANDOM_LENGTH)
    )


def new_session_token() -> str:
    """Return a fresh session token: the marker, then random base64."""
    return MINTED_TOKEN_PREFIX + base64.b64encode(secrets.token_bytes(TOKEN_RANDOM_BYTES)).decode()


@dataclass(frozen=True)
class IssuedCredentials:
    """Temporary credentials the sandbox's STS minted, known by their access key id.

    Attributes:
        access_key_id: The access key id handed out.
        kind: ``assumed-role``, ``federation-token`` or ``session-token``.
        principal_arn: Who the credentials act as (assumed-role or federated-user ARN), or
            None when STS did not say (GetSessionToken).
        session_policy: The parsed session policy they were minted with, or None.
        expiration: When they stop working (UTC).
    """

    access_key_id: str
    kind: str
    principal_arn: str | None
    session_policy: Mapping[str, Any] | None
    expiration: datetime

    def expired(self, now: datetime | None = None) -> bool:
        """Return True once the credentials are past their expiration."""
        return (now or datetime.now(UTC)) >= self.expiration

    def denial(
        self, action: str, resource: str, context: Mapping[str, str] | None = None
    ) -> str | None:
        """Return AWS's AccessDenied sentence if the session policy refuses `action` on
        `resource` (for a request with the condition keys of `context`), or None when it
        allows it (or no session policy applies).

        A federation token minted without a policy has no permissions, as in AWS.

        Raises:
            UnsupportedPolicyError: If the policy needs what the sandbox does not evaluate.
        """
        if self.session_policy is None:
            if self.kind != FEDERATION_TOKEN:
                return None
            reason = f"because no session policy allows the {action} action"
        else:
            decision = decide(self.session_policy, action, resource, context)
            if decision.allowed:
                return None
            reason = (
                "with an explicit deny in a session policy"
                if decision.explicit_deny
                else f"because no session policy allows the {action} action"
            )
        principal = self.principal_arn or self.access_key_id
        return (
            f"User: {principal} is not authorized to perform: {action} on resource: "
            f'"{resource}" {reason}'
        )

    @property
    def account_id(self) -> str | None:
        """The account the credentials act in (from their principal's ARN), if STS said."""
        parts = (self.principal_arn or "").split(":")
        return parts[4] if len(parts) > 5 and parts[4] else None


@dataclass(frozen=True)
class StsCall:
    """One STS request as the STS log shows it (never a secret).

    Attributes:
        action: The ``Action`` parameter.
        time: Epoch seconds when the request arrived.
        role_arn: ``RoleArn``, or None.
        role_session_name: ``RoleSessionName``, or None.
        name: ``Name`` (the federated user's), or None.
        duration_seconds: ``DurationSeconds`` (an int when it is one), or None.
        policy: ``Policy`` parsed as JSON, or None (absent or not JSON).
        policy_text: ``Policy`` as sent, or None.
        external_id_given: Whether an ``ExternalId`` was sent (its value is not kept).
        caller_access_key_id: The access key id that signed the request, or None.
        issued_access_key_id: The access key id handed out, or None.
        expiration: The expiration STS answered (ISO-8601), or None.
        status: The HTTP status answered.
        denied: Refused because the action was denied (`StsLedger.deny`).
    """

    action: str | None
    time: float
    role_arn: str | None
    role_session_name: str | None
    name: str | None
    duration_seconds: int | str | None
    policy: Any
    policy_text: str | None
    external_id_given: bool
    caller_access_key_id: str | None
    issued_access_key_id: str | None = None
    expiration: str | None = None
    status: int = 200
    denied: bool = False

    def answered(self, status: int, **fields: Any) -> StsCall:
        """Return this call with its answer's status (and issued key, expiration...)."""
        return replace(self, status=int(status), **fields)


def canonical_action(name: str) -> str:
    """Return the STS action named `name` (``AssumeRole`` or ``sts:AssumeRole``, any case).

    Raises:
        ValueError: If it is not an STS action that can be refused.
    """
    bare = name[len(ACTION_PREFIX) :] if name.lower().startswith(ACTION_PREFIX) else name
    for action, why in UNDENIABLE_ACTIONS.items():
        if action.lower() == bare.lower():
            raise ValueError(f"{action} cannot be denied: {why}")
    for action in DENIABLE_ACTIONS:
        if action.lower() == bare.lower():
            return action
    raise ValueError(f"Unknown STS action {name!r}: give one of {', '.join(DENIABLE_ACTIONS)}")


def credential_kind(access_key_id: str, issued: IssuedCredentials | None) -> str:
    """Return what kind of credentials `access_key_id` is: the kind STS minted it as,
    ``long-lived`` for an ``AKIA`` key, ``unknown-temporary`` otherwise."""
    if issued is not None:
        return issued.kind
    if access_key_id.startswith(LONG_LIVED_KEY_PREFIX):
        return LONG_LIVED
    return UNKNOWN_TEMPORARY


@dataclass(frozen=True)
class Refusal:
    """An STS error answer: HTTP status, AWS's error code and message."""

    status: int
    code: str
    message: str


def is_temporary(access_key_id: str, issued: IssuedCredentials | None) -> bool:
    """Return True for STS credentials: minted here, or an ``ASIA`` key (AWS's temporary keys)."""
    return issued is not None or access_key_id.startswith(TEMPORARY_KEY_PREFIX)


def rule_refusal(
    call: StsCall, caller: IssuedCredentials | None, role_max_duration: int | None
) -> Refusal | None:
    """Return how AWS's STS refuses `call` whatever the caller's permissions, or None.

    Args:
        call: The request.
        caller: What STS minted the calling key as, or None (long-term, or not minted here).
        role_max_duration: The assumed role's MaxSessionDuration, when the call is AssumeRole
            of a known role.
    """
    if call.policy_text is not None and len(call.policy_text) > POLICY_MAX_CHARS:
        return _validation(
            f"Value at 'policy' failed to satisfy constraint: Member must have length less "
            f"than or equal to {POLICY_MAX_CHARS}"
        )
    duration = call.duration_seconds
    maximum = MAX_DURATION.get(call.action or "")
    if isinstance(duration, int) and maximum is not None:
        if duration < MIN_DURATION:
            return _validation(
                f"Value '{duration}' at 'durationSeconds' failed to satisfy constraint: Member "
                f"must have value greater than or equal to {MIN_DURATION}"
            )
        if duration > maximum:
            return _validation(
                f"Value '{duration}' at 'durationSeconds' failed to satisfy constraint: Member "
                f"must have value less than or equal to {maximum}"
            )
    key = call.caller_access_key_id
    if call.action in LONG_TERM_KEYS_ONLY and key is not None and is_temporary(key, caller):
        return Refusal(403, ACCESS_DENIED, f"Cannot call {call.action} with session credentials")
    if call.action == ASSUME_ROLE and isinstance(duration, int):
        chained = caller is not None and caller.kind == ASSUMED_ROLE
        if chained and duration > ROLE_CHAINING_MAX_DURATION:
            return Refusal(400, VALIDATION_ERROR, CHAINING_MESSAGE)
        if role_max_duration is not None and duration > role_max_duration:
            return Refusal(400, VALIDATION_ERROR, MAX_SESSION_MESSAGE)
    return None


def _validation(constraint: str) -> Refusal:
    return Refusal(400, VALIDATION_ERROR, f"1 validation error detected: {constraint}")


class StsLedger:
    """The STS call log, the credentials STS issued and the refused actions; thread-safe.

    `reset` empties the log and lifts the refusals. Issued credentials are kept (with their
    policies and expirations): like real STS credentials they stay valid until they expire.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[StsCall] = []
        self._issued: dict[str, IssuedCredentials] = {}
        self._denied: set[str] = set()

    def record(self, call: StsCall) -> None:
        """Append a call to the log."""
        with self._lock:
            self._calls.append(call)

    def calls(self) -> list[dict[str, Any]]:
        """Return the log, oldest first, as JSON-ready data."""
        with self._lock:
            return [asdict(call) for call in self._calls]

    def clear_calls(self) -> None:
        """Empty the log."""
        with self._lock:
            self._calls.clear()

    def deny(self, actions: Iterable[str]) -> list[str]:
        """Refuse these STS actions from now on (until `reset`); return every refused one.

        Raises:
            ValueError: For a name that is not an STS action that can be refused (nothing is
                changed then).
        """
        canonical = {canonical_action(name) for name in actions}
        with self._lock:
            self._denied |= canonical
            return sorted(self._denied)

    def is_denied(self, action: str | None) -> bool:
        """Return True if `action` is refused."""
        with self._lock:
            return action in self._denied

    def remember(self, issued: IssuedCredentials) -> None:
        """Remember credentials STS handed out."""
        with self._lock:
            self._issued[issued.access_key_id] = issued

    def lookup(self, access_key_id: str) -> IssuedCredentials | None:
        """Return the credentials STS issued under `access_key_id`, or None."""
        with self._lock:
            return self._issued.get(access_key_id)

    def expire(self, access_key_id: str) -> IssuedCredentials:
        """Make issued credentials expired now (for tests of expiry); return them.

        Raises:
            KeyError: If STS issued no credentials with that access key id.
        """
        with self._lock:
            issued = self._issued[access_key_id]
            issued = replace(issued, expiration=datetime.now(UTC) - EXPIRED_AGO)
            self._issued[access_key_id] = issued
            return issued

    def reset(self) -> None:
        """Empty the log and lift every refusal (issued credentials stay valid)."""
        with self._lock:
            self._calls.clear()
            self._denied.clear()
