"""Discovery: a DomoExportsComponent whose exports come from Domo's DataSet listing, stored by
``dg utils refresh-defs-state`` and read back with no Domo call; the listing itself, paged, in
both of Domo's documented forms, through the real client and the sandbox."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import requests
from domo_assets_dev.sandbox import Sandbox
from domo_assets_dev.sandbox.datasets import (
    AWKWARD_VALUES_ID,
    DAILY_ORDERS_ID,
    HR_SALARIES_ID,
    PHARMACY_CLAIMS_ID,
    SPECS_BY_ID,
    SYNTHETIC_TAG,
)
from domo_assets_dev.sandbox.users import ANALYST, HR_ADMIN, USERS
from servers import free_port
from support import error_messages
from test_component import (
    AWKWARD,
    CONNECTION,
    OAUTH_CONNECTION,
    ORDERS,
    _plain,
    _pythonpath,
    dg_env,
    instance_document,
    json_output,
    load_project,
    run_dg,
    typo_line,
    write_instance,
    write_project,
)

from domo_assets.component import DomoExportsComponent
from domo_assets.discovery import (
    COLUMN_SCHEMA_KEY,
    DATASET_URL_KEY,
    OWNER_KEY,
    DataSetSelector,
    DiscoveryError,
    refresh,
)
from domo_assets.domo.client import DomoClient
from domo_assets.domo.endpoints import dataset_page_url
from domo_assets.resource import DomoResource

SELECTED = {"names": ["pharmacy*", "daily*", "large*"], "exclude_names": ["large*"]}
TEMPLATE = {"path": "discovered/{slug}"}
# The state is refreshed by hand in these tests, so that every dg command loads what is stored.
NO_DEV_REFRESH = {"management_type": "LOCAL_FILESYSTEM", "refresh_if_dev": False}
LISTING_PATH = "/v1/datasets"
SEARCH_PATH = "/api/search/v1/query"
PAGE = 50


def project_env(sandbox: Sandbox, tmp_path: Path, project: Path) -> dict[str, str]:
    """A dg subprocess's environment for a project that is not installed: importable by path
    (``dg utils refresh-defs-state`` imports the project in its own process)."""
    return {**dg_env(sandbox, tmp_path / "dagster_home"), "PYTHONPATH": _pythonpath(project)}


def discovering_instance(*exports: dict[str, Any], connection: dict[str, Any] = CONNECTION) -> dict:
    """An instance that discovers SELECTED beside hand-listed `exports`."""
    document = instance_document(
        *exports,
        discover={"select": SELECTED, "export": TEMPLATE},
        defs_state=NO_DEV_REFRESH,
    )
    document["attributes"]["domo"] = connection
    return document


def client_of(sandbox: Sandbox, *, oauth: bool) -> DomoClient:
    """A real client of the sandbox, with OAuth (platform listing) or without (search API)."""
    settings: dict[str, Any] = {"instance_url": sandbox.domo_url, "developer_token": sandbox.token}
    if oauth:
        settings |= {
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
            "api_url": sandbox.domo_url,
        }
    return DomoResource(**settings).get_client()


def requests_to(sandbox: Sandbox, path: str) -> list[dict[str, Any]]:
    """The sandbox's logged Domo requests to `path`."""
    return [r for r in sandbox.control.requests() if r["path"] == path]


# --- the dg CLI: refresh, then load from state ------------------------------------------------


@pytest.mark.slow
def test_refresh_stores_the_selected_datasets_and_loading_makes_no_domo_call(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    # Daily Orders is selected and hand-listed: the hand-listed export wins.
    write_project(project, {"lake": discovering_instance(AWKWARD, ORDERS)})
    env = project_env(sandbox, tmp_path, project)

    missing = run_dg(project, env, "list", "defs", "--json", ok=False)
    assert missing.returncode != 0
    assert "discover: no DataSet listing is stored for this instance" in missing.stdout + (
        missing.stderr
    )
    assert "dg utils refresh-defs-state" in missing.stdout + missing.stderr

    sandbox.control.clear_requests()
    run_dg(project, env, "utils", "refresh-defs-state")
    assert len(requests_to(sandbox, SEARCH_PATH)) == 1  # no OAuth: the instance search API
    state_files = list(project.glob("*/defs/.local_defs_state/*/state"))
    assert len(state_files) == 1
    stored = json.loads(state_files[0].read_text(encoding="utf-8"))
    assert set(stored["selected"]) == {PHARMACY_CLAIMS_ID, DAILY_ORDERS_ID}

    sandbox.control.clear_requests()
    listed = json_output(run_dg(project, env, "list", "defs", "--json"))
    assert sandbox.control.requests() == []  # loading read the state, not Domo
    assets = {a["asset_key"]: a for a in listed["assets"]}
    exports = {key for key in assets if not key.startswith("domo/")}
    assert exports == {"pharmacy_claims", "awkward", "orders_regions"}
    claims = SPECS_BY_ID[PHARMACY_CLAIMS_ID]
    assert assets["pharmacy_claims"]["description"] == claims.description
    assert assets["awkward"]["description"] == SPECS_BY_ID[AWKWARD_VALUES_ID].description
    assert {"email": USERS[ANALYST].email} in assets["pharmacy_claims"]["owners"]

    # With Domo gone (nothing listens at its URL), the project still loads from the state.
    offline = {**env, "DOMO_INSTANCE_URL": f"http://127.0.0.1:{free_port()}"}
    again = json_output(run_dg(project, offline, "list", "defs", "--json"))
    assert {a["asset_key"] for a in again["assets"]} == set(assets)

    # In process: the specs carry the column schema (Domo's types), link and owner.
    for name, value in sandbox.env().items():
        monkeypatch.setenv(name, value)
    specs = {s.key: s for s in load_project(project, monkeypatch).resolve_all_asset_specs()}
    spec = specs[dg.AssetKey("pharmacy_claims")]
    schema = spec.metadata[COLUMN_SCHEMA_KEY]
    assert [(c.name, c.type) for c in schema.columns] == [
        (column.name, str(column.type)) for column in claims.columns
    ]
    assert spec.metadata[DATASET_URL_KEY].url == dataset_page_url(sandbox.domo_url, claims.id)
    assert spec.metadata[OWNER_KEY] == USERS[ANALYST].display_name
    assert spec.metadata["dagster/uri"] == "s3://domo-exports/discovered/pharmacy_claims/"
    orders = specs[dg.AssetKey("orders_regions")]  # hand-listed, with columns: [Region]
    assert [c.name for c in orders.metadata[COLUMN_SCHEMA_KEY].columns] == ["Region"]
    node = specs[dg.AssetKey(["domo", "pharmacy_claims_dataset"])]
    assert node.description == claims.description


@pytest.mark.slow
def test_a_hand_listed_dataset_the_token_cannot_read_fails_the_refresh_naming_it(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    salaries = {"name": "salaries", "dataset_id": HR_SALARIES_ID, "path": "hand/salaries"}
    module = write_project(project, {"lake": discovering_instance(salaries)})
    defs_yaml = project / module / "defs" / "lake" / "defs.yaml"
    env = project_env(sandbox, tmp_path, project)

    failed = run_dg(project, env, "utils", "refresh-defs-state", ok=False)

    output = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert (
        f"{defs_yaml}: export 'salaries' (exports[0]): field 'dataset_id': Domo does not let "
        f"these credentials read DataSet {HR_SALARIES_ID}"
    ) in output
    assert not list(project.glob("*/defs/.local_defs_state/*/state"))


@pytest.mark.slow
def test_a_misspelled_discover_field_fails_dg_check_yaml_naming_it(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    document = discovering_instance()
    document["attributes"]["discover"]["select"] = {"namez": ["pharmacy*"]}
    module = write_project(project, {"lake": document})
    defs_yaml = project / module / "defs" / "lake" / "defs.yaml"
    line = typo_line(defs_yaml, "namez")

    failed = run_dg(project, project_env(sandbox, tmp_path, project), "check", "yaml", ok=False)

    assert failed.returncode != 0
    assert (
        f"{defs_yaml}:{line} - domo_assets.DomoExportsComponent attributes.discover.select.namez "
        "Additional properties are not allowed ('namez' was unexpected)"
    ) in _plain(failed.stdout + failed.stderr)


def test_the_component_schema_describes_every_field() -> None:
    schema = DomoExportsComponent.get_model_cls().model_json_schema()
    definitions = schema["$defs"]
    for name in ("DomoExportModel", "DataSetSelector", "DomoExportTemplateModel", "DiscoverModel"):
        fields = definitions[name]["properties"]
        assert fields and all(field.get("description") for field in fields.values()), name
    assert {"discover", "exports", "defaults", "sensor", "defs_state"} <= set(schema["properties"])
    assert "regoin" not in definitions["DomoExportModel"]["properties"]
    assert {"bucket", "region", "path", "columns"} <= set(
        definitions["DomoExportModel"]["properties"]
    )


# --- the listing --------------------------------------------------------------------------


@pytest.mark.parametrize("oauth", [True, False], ids=["platform", "search"])
def test_the_listing_is_read_in_pages_of_fifty(sandbox: Sandbox, oauth: bool) -> None:
    sandbox.control.add_synthetic_datasets(120)
    client = client_of(sandbox, oauth=oauth)
    sandbox.control.clear_requests()

    listing = client.list_datasets()

    readable = 5 + 120  # every sample the analyst may read (not hr-salaries), and the synthetic
    assert len(listing) == len({d.dataset_id for d in listing}) == readable
    path = LISTING_PATH if oauth else SEARCH_PATH
    pages = requests_to(sandbox, path)
    assert len(pages) == 3 == -(-readable // PAGE)
    assert all(page["status"] == 200 for page in pages)
    assert HR_SALARIES_ID not in {d.dataset_id for d in listing}
    claims = next(d for d in listing if d.dataset_id == PHARMACY_CLAIMS_ID)
    assert claims.name == SPECS_BY_ID[PHARMACY_CLAIMS_ID].name
    assert claims.owner is not None and claims.owner.name == USERS[ANALYST].display_name
    # The platform listing carries no tags (None: not said); the search API's does.
    assert claims.tags == (None if oauth else SPECS_BY_ID[PHARMACY_CLAIMS_ID].tags)


def test_the_platform_listing_refuses_pages_above_fifty(sandbox: Sandbox) -> None:
    client = client_of(sandbox, oauth=True)

    answer = requests.get(
        f"{sandbox.domo_url}{LISTING_PATH}",
        params={"limit": 51},
        auth=client.platform_auth,
        timeout=10,
    )
    assert answer.status_code == 400
    assert "limit must be between 1 and 50" in answer.text


def test_the_search_api_takes_both_documented_bodies(sandbox: Sandbox) -> None:
    headers = {"X-DOMO-Developer-Token": sandbox.token}
    bodies = [
        {"query": "pharmacy*", "entityList": [["dataset"]], "count": 10, "offset": 0},
        {"query": "pharmacy", "entities": ["DATASET"], "count": 10, "offset": 0},
    ]
    for body in bodies:
        answer = requests.post(
            f"{sandbox.domo_url}{SEARCH_PATH}", json=body, headers=headers, timeout=10
        )
        assert answer.status_code == 200
        hits = answer.json()["searchObjects"]
        assert [hit["databaseId"] for hit in hits] == [PHARMACY_CLAIMS_ID]


def test_a_selector_filters_by_owner_and_tags_and_refuses_tags_it_cannot_see(
    sandbox: Sandbox,
) -> None:
    sandbox.control.add_synthetic_datasets(3)
    listing = client_of(sandbox, oauth=False).list_datasets()

    by_tag = DataSetSelector(tags=["certified"]).select(listing, "defs.yaml")
    assert {d.dataset_id for d in by_tag} == {PHARMACY_CLAIMS_ID, DAILY_ORDERS_ID}
    by_owner = DataSetSelector(owners=[USERS[ANALYST].display_name], tags=[SYNTHETIC_TAG])
    assert len(by_owner.select(listing, "defs.yaml")) == 3
    # By e-mail address, which only Domo's user record has: the refresh reads it first.
    by_email = DataSetSelector(owners=[USERS[HR_ADMIN].email.upper()], names=["*"])
    hr = refresh(client_of(sandbox, oauth=False), by_email, [], "defs.yaml")
    assert hr.selected == ()  # the analyst's token cannot see hr-salaries, HR's only DataSet
    mine = DataSetSelector(owners=[USERS[ANALYST].email], names=["synthetic*"])
    state = refresh(client_of(sandbox, oauth=False), mine, [], "defs.yaml")
    assert len(state.selected) == 3
    assert {d.owner.email for d in state.datasets if d.owner} == {USERS[ANALYST].email}

    platform = client_of(sandbox, oauth=True).list_datasets()
    with pytest.raises(DiscoveryError, match="carries no tags"):
        DataSetSelector(tags=["certified"]).select(platform, "defs.yaml")
    with pytest.raises(DiscoveryError, match="selects nothing"):
        DataSetSelector().select(listing, "defs.yaml")
    with pytest.raises(DiscoveryError, match="not in Domo's listing"):
        DataSetSelector(ids=[HR_SALARIES_ID]).select(listing, "defs.yaml")


def test_loading_with_oauth_state_and_a_changed_selector_asks_for_a_refresh(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The state is refreshed in process (as dg's refresh does, through the component), then
    the selector changes: the load fails saying the state is stale."""
    for name, value in sandbox.env().items():
        monkeypatch.setenv(name, value)
    module = write_project(tmp_path, {"lake": discovering_instance(connection=OAUTH_CONNECTION)})
    defs_yaml = tmp_path / module / "defs" / "lake" / "defs.yaml"
    monkeypatch.syspath_prepend(str(tmp_path))
    tree = dg.ComponentTree.for_project(tmp_path)
    (component,) = tree.get_all_components(of_type=DomoExportsComponent)
    sandbox.control.clear_requests()
    asyncio.run(component.refresh_state(tmp_path))
    assert requests_to(sandbox, LISTING_PATH)  # OAuth: the platform listing
    # A second refresh in the same process reads every schema again (none kept from the first).
    sandbox.control.clear_requests()
    asyncio.run(component.refresh_state(tmp_path))
    schema_reads = [
        r for r in sandbox.control.requests() if r["path"].startswith(f"{LISTING_PATH}/")
    ]
    assert len(schema_reads) == 2  # pharmacy-claims and daily-orders (large-events excluded)

    keys = {s.key for s in load_project(tmp_path, monkeypatch).resolve_all_asset_specs()}
    assert {dg.AssetKey("pharmacy_claims"), dg.AssetKey("daily_orders")} <= keys

    document = discovering_instance(connection=OAUTH_CONNECTION)
    document["attributes"]["discover"]["select"] = {"names": ["awkward*"]}
    write_instance(defs_yaml.parent, document)
    with pytest.raises(Exception) as failure:
        load_project(tmp_path, monkeypatch)
    assert f"{defs_yaml}: discover.select changed since the DataSet listing was stored" in (
        error_messages(failure.value)
    )
