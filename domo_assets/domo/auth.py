"""How requests to Domo authenticate: a developer token, and OAuth client credentials.

Each belongs to one of Domo's APIs (``endpoints.Api``): the developer token to the instance API,
OAuth bearer tokens to the platform API; the client sends each only there. Both are ``requests``
auth objects whose ``repr`` never shows a secret, and both list their secrets so that the client
can scrub them from any text Domo echoes back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import ClassVar

import requests
from requests.auth import AuthBase, HTTPBasicAuth

from domo_assets.domo.defaults import DEFAULT_API_URL
from domo_assets.domo.endpoints import (
    DEVELOPER_TOKEN_VAR,
    OAUTH_TOKEN,
    Api,
    check_url,
)
from domo_assets.domo.errors import DomoAuthenticationError, DomoErrorDetail, DomoResponseError
from domo_assets.domo.replies import error_detail

DEVELOPER_TOKEN_HEADER = "X-DOMO-Developer-Token"
DEFAULT_OAUTH_SCOPE = "data"
# Renew a cached OAuth token this many seconds before Domo says it expires.
TOKEN_RENEWAL_MARGIN = 60.0
DEFAULT_TOKEN_TIMEOUT = 30.0


class DomoAuth(AuthBase):
    """Base of the authentication methods; ``api`` is the one API Domo documents it for."""

    api: ClassVar[Api]

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in logs or messages."""
        return ()

    def refresh(self) -> bool:
        """Renew the credential after a 401; True when a retry may succeed."""
        return False


class DeveloperTokenAuth(DomoAuth):
    """Sends a developer token as ``X-DOMO-Developer-Token``, to the instance API only.

    Args:
        token: The developer token.
    """

    api = Api.INSTANCE

    def __init__(self, token: str):
        if not token:
            raise DomoAuthenticationError(
                "No Domo developer token was given: the export API needs one",
                hint=f"Set {DEVELOPER_TOKEN_VAR} to a developer token of the instance",
            )
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers[DEVELOPER_TOKEN_HEADER] = self._token
        return request

    def __repr__(self) -> str:
        return "DeveloperTokenAuth(token=<redacted>)"

    @property
    def secrets(self) -> tuple[str, ...]:
        """The token."""
        return (self._token,)


class OAuthClientCredentialsAuth(DomoAuth):
    """Bearer tokens from Domo's OAuth client-credentials flow, cached and renewed before expiry.

    The tokens are for the platform API (``api_url``) only, where they are issued.

    Args:
        client_id: The OAuth client id.
        client_secret: The OAuth client secret.
        api_url: The platform API, ``https://api.domo.com`` unless testing.
        scope: The scopes to request.
        clock: Monotonic clock (seconds), replaceable in tests.

    Raises:
        DomoAuthenticationError: The id or secret is missing.
        InsecureUrlError: ``api_url`` is not https (nor loopback).
    """

    api = Api.PLATFORM

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        api_url: str = DEFAULT_API_URL,
        scope: str = DEFAULT_OAUTH_SCOPE,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not client_id or not client_secret:
            raise DomoAuthenticationError(
                "OAuth needs both a client id and a client secret",
                hint="Set DOMO_CLIENT_ID and DOMO_CLIENT_SECRET",
            )
        self.api_url = check_url(api_url, "api_url (DOMO_API_URL)")
        self._client_id = client_id
        self._client_secret = client_secret
        self.scope = scope
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self.user_id: str | None = None
        self.tokens_issued = 0

    def __repr__(self) -> str:
        return (
            f"OAuthClientCredentialsAuth(client_id={self._client_id!r}, client_secret=<redacted>)"
        )

    @property
    def secrets(self) -> tuple[str, ...]:
        """The client secret and the current access token."""
        return tuple(s for s in (self._client_secret, self._token) if s)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"bearer {self._current_token()}"
        return request

    def refresh(self) -> bool:
        """Forget the cached token so the next request fetches a new one."""
        with self._lock:
            had_token = self._token is not None
            self._token = None
        return had_token

    def _current_token(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._expires_at - TOKEN_RENEWAL_MARGIN:
                self._token, self._expires_at = self._fetch_token()
            return self._token

    def _fetch_token(self) -> tuple[str, float]:
        path = OAUTH_TOKEN.path()
        url = f"{self.api_url}{path}"
        try:
            response = requests.post(
                url,
                params={"grant_type": "client_credentials", "scope": self.scope},
                auth=HTTPBasicAuth(self._client_id, self._client_secret),
                timeout=DEFAULT_TOKEN_TIMEOUT,
                allow_redirects=False,
            )
        except requests.exceptions.RequestException as exc:
            raise DomoAuthenticationError(
                f"Could not reach Domo's OAuth endpoint ({type(exc).__name__})",
                DomoErrorDetail("POST", path),
                hint="Check DOMO_API_URL and the network",
            ) from None
        if response.status_code != 200:
            raise DomoAuthenticationError(
                "Domo refused the OAuth client credentials",
                error_detail(response, "POST", path, self.secrets),
                hint="Check DOMO_CLIENT_ID and DOMO_CLIENT_SECRET and that the client has the 'data' scope",
            )
        try:
            body = response.json()
            token = str(body["access_token"])
            expires_in = float(body.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError):
            raise DomoResponseError("Domo's OAuth endpoint returned no access_token") from None
        self.user_id = str(body.get("userId")) if body.get("userId") is not None else None
        self.tokens_issued += 1
        return token, self._clock() + expires_in
