"""What the sandbox's STS was asked and what it minted: the call log, the credentials it
issued (with their session policies and expirations) and the STS actions it refuses.

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
# What an identity may be refused; AWS answers GetCallerIdentity for every identity.
DENIABLE_ACTIONS = (*MINTING_ACTIONS, "DecodeAuthorizationMessage", "GetAccessKeyInfo")
ACTION_PREFIX = "sts:"


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
    if bare.lower() == GET_CALLER_IDENTITY.lower():
        raise ValueError("GetCallerIdentity cannot be denied: AWS answers it for every identity")
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
