"""Where each Domo call goes: the API (host) and the credential Domo documents it with.

Domo has two APIs, each with its own credential:

* the **instance API**, ``https://{instance}.domo.com/api/...``, authenticated by a developer
  token (``X-DOMO-Developer-Token``). The export endpoint lives only here;
* the **platform API**, ``https://api.domo.com/v1/...``, authenticated by an OAuth bearer token
  that its own ``/oauth/token`` endpoint issues.

A credential is sent only to the API that documents it. Every URL is https, except a loopback
host (the sandbox). No ``requests`` here: the resource checks its URLs when the code location
loads, which imports no HTTP library.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from domo_assets.domo.errors import ConfigurationError

SECURE_SCHEME = "https"
# Plain http is accepted for these hosts only (and any 127.0.0.0/8 or ::1 address): nothing
# leaves the machine, which is what the sandbox needs.
LOOPBACK_NAMES = frozenset({"localhost"})
DEVELOPER_TOKEN_VAR = "DOMO_DEVELOPER_TOKEN"


class Api(StrEnum):
    """One of Domo's two APIs: where a request goes, and so which credential it carries."""

    INSTANCE = "instance"
    PLATFORM = "platform"

    @property
    def credential(self) -> str:
        """The credential Domo documents for this API, for messages."""
        if self is Api.INSTANCE:
            return f"a developer token (X-DOMO-Developer-Token, {DEVELOPER_TOKEN_VAR})"
        return "an OAuth bearer token (DOMO_CLIENT_ID and DOMO_CLIENT_SECRET)"


@dataclass(frozen=True)
class Endpoint:
    """A Domo endpoint: the API that documents it and its path template.

    Attributes:
        api: The API (host and credential).
        template: The path, with ``{dataset_id}`` where the DataSet goes.
    """

    api: Api
    template: str

    def path(self, dataset_id: str = "", **fields: str) -> str:
        """The path for one DataSet (or the object ``fields`` name, e.g. ``user_id``)."""
        return self.template.format(dataset_id=dataset_id, **fields)


# Instance API: documented with the developer token only.
EXPORTS = Endpoint(Api.INSTANCE, "/api/query/v1/export/{dataset_id}")  # POST start, GET list
DATASOURCE = Endpoint(Api.INSTANCE, "/api/data/v3/datasources/{dataset_id}")
SCHEMA = Endpoint(Api.INSTANCE, "/api/data/v2/datasources/{dataset_id}/schemas/latest")
QUERY = Endpoint(Api.INSTANCE, "/api/query/v1/execute/{dataset_id}")
ME = Endpoint(Api.INSTANCE, "/api/content/v2/users/me")
USER = Endpoint(Api.INSTANCE, "/api/content/v2/users/{user_id}")
# The instance's search API: the DataSet listing a developer token may read (count + offset
# reach at most SEARCH_RESULTS_MAX results in all).
SEARCH = Endpoint(Api.INSTANCE, "/api/search/v1/query")
SEARCH_RESULTS_MAX = 10_000
# Platform API: documented with the OAuth bearer token. One answer carries the DataSet's
# metadata and its schema. (Its query endpoint, /v1/datasets/query/execute/{id}, is not used:
# the row count must be counted by the user the export acts as, see DomoClient.count_rows.)
PLATFORM_DATASET = Endpoint(Api.PLATFORM, "/v1/datasets/{dataset_id}")
OAUTH_TOKEN = Endpoint(Api.PLATFORM, "/oauth/token")
# The platform's DataSet listing: pages of at most LISTING_PAGE_MAX (limit + offset), a bare array.
DATASET_LIST = Endpoint(Api.PLATFORM, "/v1/datasets")
LISTING_PAGE_MAX = 50
PLATFORM_USER = Endpoint(Api.PLATFORM, "/v1/users/{user_id}")

# Domo's own page of a DataSet, on the instance host (for people, not for API calls).
DATASET_PAGE = "/datasources/{dataset_id}/details/overview"


def dataset_page_url(instance_url: str, dataset_id: str) -> str:
    """The URL of a DataSet's page in Domo."""
    return f"{instance_url.rstrip('/')}{DATASET_PAGE.format(dataset_id=dataset_id)}"


OAUTH_CANNOT_EXPORT = (
    "OAuth client credentials alone cannot export: Domo documents its export API "
    f"(POST {EXPORTS.template}, on the instance host) only with {Api.INSTANCE.credential}, and "
    "an OAuth bearer token belongs to the platform API (api.domo.com) only"
)
OAUTH_CANNOT_EXPORT_HINT = (
    f"Set {DEVELOPER_TOKEN_VAR} (developer_token) to a developer token of the instance (Admin > "
    "Authentication > Access tokens); OAuth client credentials may stay beside it, for the "
    "platform API's DataSet metadata and schema"
)


class InsecureUrlError(ConfigurationError, ValueError):
    """A Domo URL that would carry credentials in clear text, or that is not a URL.

    A configuration error (no retry mends it), and a ``ValueError`` so that a resource's
    validation reports it as an invalid setting.
    """


def check_url(url: str, setting: str) -> str:
    """The URL without its trailing slash, if credentials may be sent to it.

    Args:
        url: An instance or platform API URL.
        setting: What the URL is called where it was set (e.g. ``DOMO_INSTANCE_URL``).

    Raises:
        InsecureUrlError: Not an ``https://`` URL with a host, unless ``http://`` to a
            loopback host (127.0.0.0/8, ::1, localhost).
    """
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError as exc:
        raise InsecureUrlError(f"{setting} is not a URL ({exc})") from None
    shown = f"{parts.scheme}://{host}" if parts.scheme and host else repr(url)
    if not host or parts.scheme not in (SECURE_SCHEME, "http"):
        raise InsecureUrlError(
            f"{setting} is {shown}, not an https:// URL: set it to e.g. https://acme.domo.com"
        )
    if parts.scheme == "http" and not is_loopback(host):
        raise InsecureUrlError(
            f"{setting} is {shown}: Domo is reached over https:// only, since every request "
            "carries a credential (the developer token or an OAuth token, and the export request "
            "the AWS credentials handed to Domo) that plain http:// would send in clear text. "
            f"Use https://{host}; http:// is accepted only for a loopback host (127.0.0.1, ::1, "
            "localhost), such as the sandbox"
        )
    return url.strip().rstrip("/")


def is_loopback(host: str) -> bool:
    """Whether a URL's host is this machine (a loopback address, or ``localhost``)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
