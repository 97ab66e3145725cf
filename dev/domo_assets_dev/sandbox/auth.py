"""Authentication: developer tokens, the OAuth client-credentials flow and bearer tokens.

Each credential is accepted only where Domo documents it: a developer token
(``X-DOMO-Developer-Token``) on instance paths (``/api/...``), a bearer token on platform paths
(``/v1/...``), issued by ``/oauth/token`` (HTTP Basic client credentials). A request carrying
the other API's credential is refused with a 401, even beside the right one, so that a client
sending a credential where it does not belong is seen. The 401s differ as on Domo: a bad
developer token (or none) gets Domo's JSON error body; a bad or expired bearer token gets an
empty body and ``WWW-Authenticate: Bearer error="invalid_token"``; the token endpoint answers in
the OAuth ``{"error", "error_description"}`` form.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from .users import MAIN_USER, USERS, User
from .web import ApiError, Request, Response, json_response

DEFAULT_EXPIRES_IN = 3600
DEVELOPER_TOKEN_BYTES = 24
CLIENT_SECRET_BYTES = 32
CUSTOMER = "sandbox"
GRANT_TYPE = "client_credentials"
KNOWN_SCOPES = frozenset({"data", "user", "audit", "dashboard", "account", "workflow"})
DEFAULT_SCOPE = "data"
DEVELOPER_TOKEN_HEADER = "X-DOMO-Developer-Token"
MISSING_AUTH_MESSAGE = "Full authentication is required to access this resource"
INSTANCE_PREFIX = "/api/"
PLATFORM_PREFIX = "/v1/"
BEARER_CHALLENGE = 'Bearer realm="api"'
# What the request log records of a request's credentials (their kinds, never their values).
DEVELOPER_TOKEN_KIND = "developer_token"
BEARER_KIND = "bearer"
BASIC_KIND = "basic"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class Credentials:
    """Every secret of one sandbox run.

    Attributes:
        tokens: User name to developer token.
        client_id: OAuth client id (belongs to the main user).
        client_secret: OAuth client secret.
    """

    tokens: Mapping[str, str] = field(repr=False)
    client_id: str
    client_secret: str = field(repr=False)

    @classmethod
    def generate(cls, main_token: str | None = None) -> Credentials:
        """Return random credentials; the main user's token is `main_token` when given."""
        tokens = {name: secrets.token_hex(DEVELOPER_TOKEN_BYTES) for name in USERS}
        if main_token:
            tokens[MAIN_USER] = main_token
        return cls(
            tokens=tokens,
            client_id=str(uuid.uuid4()),
            client_secret=secrets.token_hex(CLIENT_SECRET_BYTES),
        )


@dataclass(frozen=True)
class AccessToken:
    """An issued bearer token: its user and expiry (epoch seconds)."""

    user: str
    expires_at: float


class Authenticator:
    """Checks request credentials and issues OAuth access tokens (thread-safe).

    Args:
        credentials: The run's secrets.
    """

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials
        self._users_by_token = {token: name for name, token in credentials.tokens.items()}
        self._access_tokens: dict[str, AccessToken] = {}
        self._lock = threading.Lock()
        self.expires_in = DEFAULT_EXPIRES_IN

    def reset(self) -> None:
        """Restore the default token lifetime (issued tokens stay valid)."""
        self.expires_in = DEFAULT_EXPIRES_IN

    def authenticate(self, request: Request) -> User:
        """Return the user a request's credentials belong to: a developer token on an instance
        path, a bearer token on a platform path.

        Raises:
            ApiError: 401 for missing, unknown or expired credentials, and for a credential of
                the other API.
        """
        authorization = request.header("Authorization") or ""
        scheme, _, value = authorization.partition(" ")
        token = request.header(DEVELOPER_TOKEN_HEADER)
        if request.path.startswith(PLATFORM_PREFIX):
            if token is not None:
                raise ApiError(
                    401,
                    "Developer tokens are not accepted by the platform API: send "
                    "Authorization: bearer <access_token> from /oauth/token",
                    headers={"WWW-Authenticate": BEARER_CHALLENGE},
                )
            if scheme.lower() != "bearer":
                raise ApiError(
                    401, MISSING_AUTH_MESSAGE, headers={"WWW-Authenticate": BEARER_CHALLENGE}
                )
            return self._bearer_user(value.strip())
        if authorization:
            raise ApiError(
                401,
                f"The instance API does not accept an Authorization header ({scheme or 'empty'}): "
                f"send {DEVELOPER_TOKEN_HEADER}",
            )
        if token is None:
            raise ApiError(401, MISSING_AUTH_MESSAGE)
        name = self._users_by_token.get(token)
        if name is None:
            raise ApiError(401, "Invalid developer token")
        return USERS[name]

    def _bearer_user(self, token: str) -> User:
        with self._lock:
            issued = self._access_tokens.get(token)
        if issued is None or issued.expires_at <= time.time():
            problem = "Access token expired" if issued else "Invalid access token"
            header = f'Bearer error="invalid_token", error_description="{problem}"'
            raise ApiError(401, problem, headers={"WWW-Authenticate": header}, body=b"")
        return USERS[issued.user]

    def issue(self, request: Request) -> Response:
        """Answer ``/oauth/token``: client credentials in HTTP Basic auth, grant type and
        scope in the query string or a form body.

        Returns:
            The token response, or an OAuth-style error response.
        """
        client_ok = self._client_credentials(request.header("Authorization") or "")
        if client_ok is None:
            return _oauth_error(401, "unauthorized", MISSING_AUTH_MESSAGE, basic_challenge=True)
        if not client_ok:
            return _oauth_error(401, "unauthorized", "Bad credentials", basic_challenge=True)
        params = _form_params(request)
        grant_type = params.get("grant_type")
        if not grant_type:
            return _oauth_error(400, "invalid_request", "Missing grant type")
        if grant_type != GRANT_TYPE:
            return _oauth_error(
                400, "unsupported_grant_type", f"Unsupported grant type: {grant_type}"
            )
        scopes = (params.get("scope") or DEFAULT_SCOPE).split()
        unknown = [scope for scope in scopes if scope not in KNOWN_SCOPES]
        if unknown:
            return _oauth_error(400, "invalid_scope", f"Invalid scope: {' '.join(unknown)}")
        return json_response(self._new_token(scopes))

    def _client_credentials(self, authorization: str) -> bool | None:
        """Return None without Basic credentials, else whether they are the client's."""
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        client_id, _, client_secret = decoded.partition(":")
        return secrets.compare_digest(
            client_id, self._credentials.client_id
        ) and secrets.compare_digest(client_secret, self._credentials.client_secret)

    def _new_token(self, scopes: list[str]) -> dict[str, object]:
        user = USERS[MAIN_USER]
        jti = str(uuid.uuid4())
        expires_in = self.expires_in
        claims = {
            "role": user.role,
            "customer": CUSTOMER,
            "userId": user.id,
            "scope": scopes,
            "exp": int(time.time()) + expires_in,
            "jti": jti,
            "clientId": self._credentials.client_id,
        }
        header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        token = (
            f"{header}.{_b64url(json.dumps(claims).encode())}.{_b64url(secrets.token_bytes(32))}"
        )
        with self._lock:
            self._access_tokens[token] = AccessToken(user.name, time.time() + expires_in)
        return {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": expires_in,
            "scope": " ".join(scopes),
            "customer": CUSTOMER,
            "env": "prod",
            "userId": user.id,
            "role": user.role,
            "jti": jti,
        }


def credential_kinds(headers: Mapping[str, str]) -> list[str]:
    """The kinds of credential a request carries (``developer_token``, ``bearer``, ``basic``,
    or the Authorization header's scheme), never their values.

    Args:
        headers: The request's headers, any case.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    kinds = []
    if DEVELOPER_TOKEN_HEADER.lower() in lowered:
        kinds.append(DEVELOPER_TOKEN_KIND)
    scheme = (lowered.get("authorization") or "").partition(" ")[0].lower()
    if scheme:
        kinds.append({"bearer": BEARER_KIND, "basic": BASIC_KIND}.get(scheme, scheme))
    return kinds


def request_secrets(request: Request) -> list[str]:
    """Every secret a request carries: its developer token, bearer token or Basic password, and
    an export request's AWS secret key and session token."""
    found = [request.header(DEVELOPER_TOKEN_HEADER)]
    scheme, _, value = (request.header("Authorization") or "").partition(" ")
    if scheme.lower() == "bearer":
        found.append(value.strip())
    elif scheme.lower() == "basic":
        # An unreadable Basic header carries no secret the sandbox could echo.
        with contextlib.suppress(binascii.Error, UnicodeDecodeError):
            found.append(base64.b64decode(value.strip()).decode("utf-8").partition(":")[2])
    try:
        body = json.loads(request.body) if request.body.strip() else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        body = None
    if isinstance(body, dict):
        found += [body.get("awsAccessSecret"), body.get("sessionToken")]
    return [secret for secret in found if isinstance(secret, str) and secret]


def _form_params(request: Request) -> dict[str, str]:
    """Merge query-string and form-body parameters (first value of each)."""
    params = {name: values[0] for name, values in request.query.items() if values}
    content_type = request.header("Content-Type") or ""
    if request.body and "application/x-www-form-urlencoded" in content_type:
        form = parse_qs(request.body.decode("utf-8", "replace"), keep_blank_values=True)
        params.update({name: values[0] for name, values in form.items() if values})
    return params


def _oauth_error(
    status: int, error: str, description: str, basic_challenge: bool = False
) -> Response:
    headers = {"WWW-Authenticate": 'Basic realm="oauth2/client"'} if basic_challenge else {}
    return json_response({"error": error, "error_description": description}, status, headers)
