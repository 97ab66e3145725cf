"""The code location: wires the catalog, the assets and the resources.

This is the only module that reads environment variables:

* ``DOMO_EXPORTS_FILE``: the catalog (required: there is no default catalog outside ``make dev``,
  ``make demo`` and the tests, which set it to a demo catalog of the sandbox's DataSets);
* ``DOMO_INSTANCE_URL`` and ``DOMO_DEVELOPER_TOKEN`` (required: the export API takes no other
  credential), and optionally ``DOMO_CLIENT_ID`` and ``DOMO_CLIENT_SECRET`` (with
  ``DOMO_API_URL``) for the platform API's metadata and schema reads;
* boto3's own variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
  ``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL``), read by boto3 itself.

Secrets reach resources as ``EnvVar``, resolved at run time, so none is stored in run config or
job snapshots. Loading makes no network call.
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster import EnvVar

from domo_assets.catalog import EXPORTS_FILE_VAR, Catalog, load_catalog
from domo_assets.domo.defaults import DEFAULT_API_URL
from domo_assets.domo.endpoints import OAUTH_CANNOT_EXPORT
from domo_assets.location import build_definitions, collector_paused
from domo_assets.ownership import DATASET_NODES, PREFIX_OWNERS
from domo_assets.resource import DomoResource

INSTANCE_URL_VAR = "DOMO_INSTANCE_URL"
TOKEN_VAR = "DOMO_DEVELOPER_TOKEN"
CLIENT_ID_VAR = "DOMO_CLIENT_ID"
CLIENT_SECRET_VAR = "DOMO_CLIENT_SECRET"
API_URL_VAR = "DOMO_API_URL"


class MissingEnvironmentError(RuntimeError):
    """A variable the code location needs is not set."""


def domo_resource_from_env() -> DomoResource:
    """A DomoResource whose settings come from the environment (secrets as EnvVar).

    Raises:
        MissingEnvironmentError: DOMO_INSTANCE_URL or DOMO_DEVELOPER_TOKEN is missing (OAuth
            client credentials alone cannot export), or one half of the OAuth client is.
        pydantic.ValidationError: A URL is plain http:// to a host other than loopback.
    """
    if not os.environ.get(INSTANCE_URL_VAR):
        raise MissingEnvironmentError(
            f"{INSTANCE_URL_VAR} is not set: export it (e.g. https://acme.domo.com, or the URL "
            "that `python -m domo_assets_dev.sandbox` prints)"
        )
    oauth = {name: bool(os.environ.get(name)) for name in (CLIENT_ID_VAR, CLIENT_SECRET_VAR)}
    if not os.environ.get(TOKEN_VAR):
        raise MissingEnvironmentError(
            f"{TOKEN_VAR} is not set: export a developer token of the instance (Admin > "
            "Authentication > Access tokens)"
            + (f". {OAUTH_CANNOT_EXPORT}" if any(oauth.values()) else "")
        )
    if not any(oauth.values()):
        return DomoResource(
            instance_url=EnvVar(INSTANCE_URL_VAR), developer_token=EnvVar(TOKEN_VAR)
        )
    missing = [name for name, present in oauth.items() if not present]
    if missing:
        raise MissingEnvironmentError(
            f"{missing[0]} is not set while {' and '.join(n for n in oauth if n not in missing)} "
            "is: export both OAuth variables (for the platform API's metadata and schema reads), "
            "or neither"
        )
    return DomoResource(
        instance_url=EnvVar(INSTANCE_URL_VAR),
        developer_token=EnvVar(TOKEN_VAR),
        client_id=EnvVar(CLIENT_ID_VAR),
        client_secret=EnvVar(CLIENT_SECRET_VAR),
        # Read by Dagster, like the other settings, when it initializes the resource.
        api_url=EnvVar(API_URL_VAR) if os.environ.get(API_URL_VAR) else DEFAULT_API_URL,
    )


def catalog_from_env() -> Catalog:
    """The catalog named by DOMO_EXPORTS_FILE.

    Raises:
        MissingEnvironmentError: DOMO_EXPORTS_FILE is not set.
    """
    path = os.environ.get(EXPORTS_FILE_VAR)
    if not path:
        raise MissingEnvironmentError(
            f"{EXPORTS_FILE_VAR} is not set: export it as the path of your export catalog (a "
            "YAML file, see the README's 'The catalog'), or configure the exports in a "
            "DomoExportsComponent's defs.yaml instead"
        )
    return load_catalog(path)


with collector_paused():
    _catalog = catalog_from_env()
    # Beside DomoExportsComponent instances in one process, no two may share a prefix either,
    # and a DataSet they export too has one node, defined by the first of them built.
    _owner = Path(_catalog.source).resolve()
    PREFIX_OWNERS.claim_for_classic(_catalog, owner=_owner)
    defs = build_definitions(
        _catalog,
        domo_resource_from_env(),
        claim_nodes=lambda specs: DATASET_NODES.claim_for_classic(
            specs.datasets, owner=_owner, source=_catalog.source
        ),
    )
