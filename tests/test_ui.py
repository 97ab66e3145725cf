"""End-to-end test of the Dagster UI in headless Chromium (issue 7).

Starts ``dagster dev`` (webserver and daemon) against the Domo + S3 sandbox with a fresh
instance, then, as a user would in a browser: opens the global asset lineage and finds each
Domo DataSet node joined by an edge to its export node; opens the ``pharmacy_claims`` export,
clicks **Materialize**, follows the run toast to the run page until the UI shows success and
every check succeeded; reads the row count and the S3 URIs on the asset's page (checked
against Domo and S3) and the passed checks on its Checks tab.

A second test starts ``dagster dev`` with the partitioned catalog
(``domo_assets/exports_with_partitions.yaml``) and backfills three daily partitions of
``daily_orders`` from its Materialize dialog: it follows the backfill toast to the backfill's
page until the UI shows it succeeded, finds exactly those partitions materialized on the asset's
Partitions tab, and one sandbox export per partition, each under its ``dt=<day>`` prefix.

It writes the README's screenshots to ``docs/screenshots/``: ``lineage.png``,
``materialization.png``, ``run-checks.png`` and ``backfill.png``.

Chromium is Debian's ``/usr/bin/chromium`` (Playwright's browser downloads are not used); the
test installs it with apt-get when it is missing and it can (root), and is skipped only when
it cannot.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
from domo_assets_dev import DEMO_CATALOG, DEMO_PARTITIONED_CATALOG
from domo_assets_dev.sandbox import DAILY_ORDERS_ID, EXPORT_BUCKET, Sandbox
from playwright.sync_api import BrowserContext, Locator, Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from servers import (
    GraphQL,
    Process,
    Processes,
    apt_get_install,
    free_port,
    location_loaded,
    wait_until,
)

from domo_assets.catalog import ExportConfig, load_catalog
from domo_assets.translator import DagsterDomoTranslator

if TYPE_CHECKING:
    from conftest import DomoHttp

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / "docs" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 900}
INSTANCE_YAML = "telemetry:\n  enabled: false\n"
LOCATION_NAME = "domo_assets"
EXPORT_NAME = "pharmacy_claims"
PARTITIONED_EXPORT_NAME = "daily_orders"
BACKFILL_PARTITIONS = ("2026-11-01", "2026-11-02", "2026-11-03")
COMMUNITY_DIALOG = "Join the Dagster community"

STARTUP_TIMEOUT_SECONDS = 180.0
RUN_TIMEOUT_SECONDS = 120.0
# The daemon checks backfills every 30 s or so and runs them one partition per run; the
# machine may be small and shared.
BACKFILL_TIMEOUT_SECONDS = 180.0
UI_TIMEOUT_MS = 60_000
POLL_MS = 500
APT_TIMEOUT_SECONDS = 600
GRAPHQL_TIMEOUT_SECONDS = 30.0
MAX_ZOOM_OUT_CLICKS = 40
# The graph's toolbar (search box, Materialize) floats over the top of the viewport, and the
# zoom controls over its right edge.
GRAPH_TOOLBAR_PX = 60
GRAPH_CONTROLS_PX = 60
# SVG units: an edge starts at its source node's right side and ends, with its arrow, just
# left of its target node.
EDGE_TOLERANCE = 12.0
TERMINAL_FAILURES = {"FAILURE", "CANCELED"}
BACKFILL_FAILURES = {"FAILED", "FAILING", "COMPLETED_FAILED", "CANCELED", "CANCELING"}

ASSET_CHECKS_QUERY = """
query AssetChecks($assetKeys: [AssetKeyInput!]) {
  assetNodes(assetKeys: $assetKeys) {
    assetChecksOrError { __typename ... on AssetChecks { checks { name } } }
  }
}
"""

RUN_QUERY = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { status }
  }
  logsForRun(runId: $runId) {
    ... on EventConnection {
      events {
        __typename
        ... on MessageEvent { message }
        ... on ErrorEvent { error { message causes { message } } }
      }
    }
  }
}
"""

BACKFILL_QUERY = """
query Backfill($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    __typename
    ... on PartitionBackfill { status error { message } runs { id status } }
    ... on PythonError { message }
  }
}
"""


# --- processes --------------------------------------------------------------------------------


@dataclass
class DagsterDev:
    """A running ``dagster dev`` (webserver + daemon) and a client of its webserver.

    Attributes:
        url: The webserver's base URL.
        process: The ``dagster dev`` process, leader of its own process group.
        graphql: A client of the webserver's GraphQL endpoint.
    """

    url: str
    process: Process
    graphql: GraphQL


def server_ready(dagster: DagsterDev) -> bool:
    """Whether the webserver answers ``/server_info``."""
    try:
        with requests.Session() as session:
            session.trust_env = False
            return session.get(f"{dagster.url}/server_info", timeout=5).ok
    except requests.RequestException:
        return False


@pytest.fixture
def dagster_dev(
    sandbox: Sandbox, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[DagsterDev]:
    """``dagster dev -w workspace.yaml`` on a free loopback port, run from the repository root
    against the sandbox, with a fresh DAGSTER_HOME; stopped with its whole process group.

    Its catalog is the demo catalog, or the file that a test's indirect parametrization of
    ``dagster_dev`` gives (as ``DOMO_EXPORTS_FILE``)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_YAML, encoding="utf-8")
    env = {**os.environ, **sandbox.env(), "DAGSTER_HOME": str(home)}
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        env.pop(name, None)  # the sandbox's static keys
    env["DOMO_EXPORTS_FILE"] = str(getattr(request, "param", None) or DEMO_CATALOG)
    port = free_port()
    executable = Path(sys.executable).with_name("dagster")
    command = [
        str(executable) if executable.exists() else "dagster",
        "dev",
        "-w",
        "workspace.yaml",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    url = f"http://127.0.0.1:{port}"
    with Processes(tmp_path) as processes, requests.Session() as session:
        session.trust_env = False
        process = processes.start("dagster-dev", command, env, cwd=REPO)
        dagster = DagsterDev(
            url, process, GraphQL(f"{url}/graphql", session, GRAPHQL_TIMEOUT_SECONDS)
        )
        wait_until(
            lambda: server_ready(dagster), "/server_info", STARTUP_TIMEOUT_SECONDS, processes
        )
        wait_until(
            lambda: location_loaded(dagster.graphql, LOCATION_NAME),
            f"code location {LOCATION_NAME}",
            STARTUP_TIMEOUT_SECONDS,
            processes,
        )
        yield dagster


# --- Chromium ---------------------------------------------------------------------------------


def install_chromium() -> str | None:
    """Install Debian's chromium with apt-get (root only); return why not, or None."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "apt-get cannot install it here (not root, or no apt-get)"
    return apt_get_install(["chromium"], APT_TIMEOUT_SECONDS, missing=lambda: not CHROMIUM.exists())


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium, installed with apt-get first when it is missing."""
    if not CHROMIUM.exists():
        reason = install_chromium()
        if reason:
            pytest.skip(f"{CHROMIUM} is missing and could not be installed: {reason}")
    assert CHROMIUM.exists(), f"apt-get installed chromium but {CHROMIUM} does not exist"
    return CHROMIUM


@pytest.fixture
def browser(chromium: Path, tmp_path: Path) -> Iterator[BrowserContext]:
    """A headless Chromium with a fresh profile, at the screenshots' viewport."""
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            user_data_dir=str(tmp_path / "chromium-profile"),
            executable_path=str(chromium),
            args=CHROMIUM_ARGS,
            viewport=VIEWPORT,
        )
        try:
            context.set_default_timeout(UI_TIMEOUT_MS)
            expect.set_options(timeout=UI_TIMEOUT_MS)
            yield context
        finally:
            expect.set_options(timeout=None)  # Playwright's default again
            context.close()


def open_page(browser: BrowserContext) -> Page:
    """A page that dismisses Dagster's one-time "Join the Dagster community" dialog (shown by a
    fresh instance) whenever it gets in the way, as a user would: with its Skip button."""
    page = browser.pages[0] if browser.pages else browser.new_page()
    page.add_locator_handler(
        page.get_by_role("button", name="Skip", exact=True), lambda skip: skip.click()
    )
    return page


# --- the lineage graph ------------------------------------------------------------------------


@dataclass(frozen=True)
class GraphNode:
    """One node of the lineage graph as drawn: its visible label, its box in SVG units, and
    whether it has the dashed border of an external (source) asset."""

    label: str
    x: float
    y: float
    width: float
    height: float
    dashed: bool

    def shows(self, name: str) -> bool:
        """Whether the label is `name`, or `name` shortened in the middle with an ellipsis."""
        if "…" not in self.label:
            return self.label == name
        head, _, tail = self.label.partition("…")
        return len(name) >= len(head) + len(tail) and name.startswith(head) and name.endswith(tail)


@dataclass(frozen=True)
class GraphEdge:
    """One edge of the lineage graph: where its SVG path starts and ends."""

    x0: float
    y0: float
    x1: float
    y1: float

    def joins(self, source: GraphNode, target: GraphNode) -> bool:
        """Whether it leaves `source` by its right side and enters `target` by its left."""
        return (
            abs(self.x0 - (source.x + source.width)) <= EDGE_TOLERANCE
            and source.y <= self.y0 <= source.y + source.height
            and target.x - EDGE_TOLERANCE <= self.x1 <= target.x
            and target.y <= self.y1 <= target.y + target.height
        )


READ_GRAPH_JS = """
(svg) => ({
  nodes: Array.from(svg.querySelectorAll('foreignObject')).map((node) => ({
    label: node.querySelector('div').innerText.trim().split('\\n')[0].trim(),
    x: Number(node.getAttribute('x')),
    y: Number(node.getAttribute('y')),
    width: Number(node.getAttribute('width')),
    height: Number(node.getAttribute('height')),
    dashed: Array.from(node.querySelectorAll('*')).some(
      (element) => getComputedStyle(element).borderTopStyle === 'dashed'),
  })),
  edges: Array.from(svg.querySelectorAll('path[marker-end]')).map((p) => p.getAttribute('d')),
})
"""


def read_graph(svg: Locator) -> tuple[list[GraphNode], list[GraphEdge]]:
    """The nodes and edges drawn in the lineage graph's SVG."""
    drawn = svg.evaluate(READ_GRAPH_JS)
    nodes = [GraphNode(**node) for node in drawn["nodes"]]
    edges = set()
    for path in drawn["edges"]:
        numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", path)]
        edges.add(GraphEdge(numbers[0], numbers[1], numbers[-2], numbers[-1]))
    return nodes, sorted(edges, key=lambda e: (e.y0, e.y1))


def fits(inner: dict[str, float], outer: dict[str, float]) -> bool:
    """Whether the graph's box lies in the viewport's, clear of the toolbar and controls."""
    return (
        inner["x"] >= outer["x"]
        and inner["y"] >= outer["y"] + GRAPH_TOOLBAR_PX
        and inner["x"] + inner["width"] <= outer["x"] + outer["width"] - GRAPH_CONTROLS_PX
        and inner["y"] + inner["height"] <= outer["y"] + outer["height"]
    )


def zoom_to_fit(page: Page, svg: Locator) -> None:
    """Click the graph's zoom-out button until the whole graph is in view."""
    viewport = svg.locator("xpath=ancestor::div[contains(@style, 'overflow: hidden')][1]")
    zoom_out = page.get_by_role("button", name="zoom_out")
    for _ in range(MAX_ZOOM_OUT_CLICKS):
        box, frame = svg.bounding_box(), viewport.bounding_box()
        assert box and frame, "the lineage graph is not displayed"
        if fits(box, frame):
            return
        zoom_out.click()
        # The click rescales the graph: wait for its box to change before measuring again.
        page.wait_for_function(
            "([svg, height]) => Math.abs(svg.getBoundingClientRect().height - height) > 0.5",
            arg=[svg.element_handle(), box["height"]],
        )
    pytest.fail(f"The lineage graph does not fit after {MAX_ZOOM_OUT_CLICKS} zoom-outs")


def check_lineage(page: Page, exports: list[ExportConfig]) -> None:
    """Each export's node is joined by an edge from its DataSet's (dashed) node, each Parquet
    asset's by an edge from its export's, and nothing else is drawn."""
    svg = page.locator("svg:has(foreignObject)")
    expect(svg.locator("foreignObject").first).to_be_visible()
    zoom_to_fit(page, svg)
    datasets = {DagsterDomoTranslator().get_dataset_spec(config).key for config in exports}
    parquet = [config for config in exports if config.parquet]
    expect(svg.locator("foreignObject")).to_have_count(len(datasets) + len(exports) + len(parquet))

    nodes, edges = read_graph(svg)
    assert len(edges) == len(exports) + len(parquet), (
        f"expected one edge per export and per Parquet asset, drawn: {edges}"
    )
    dashed = [n for n in nodes if n.dashed]
    assert len(dashed) == len(datasets), f"expected {len(datasets)} DataSet nodes: {nodes}"
    assert all(any(n.shows(key.path[-1]) for key in datasets) for n in dashed), (
        f"the dashed nodes are not the Domo DataSets: {nodes}"
    )
    for config in exports:
        dataset_label = DagsterDomoTranslator().get_dataset_spec(config).key.path[-1]
        (dataset_node,) = [n for n in nodes if n.dashed and n.shows(dataset_label)]
        (export_node,) = [n for n in nodes if not n.dashed and n.shows(config.name)]
        assert any(edge.joins(dataset_node, export_node) for edge in edges), (
            f"no edge from DataSet node {dataset_node} to export node {export_node}: {edges}"
        )
        if config.parquet:
            (parquet_node,) = [n for n in nodes if n.shows(f"{config.name}_parquet")]
            assert any(edge.joins(export_node, parquet_node) for edge in edges), (
                f"no edge from export node {export_node} to its Parquet node: {edges}"
            )


# --- runs -------------------------------------------------------------------------------------


def run_report(dagster: DagsterDev, run_id: str) -> str:
    """The run's status and error messages, and the tail of dagster dev's output."""
    data = dagster.graphql(RUN_QUERY, {"runId": run_id})
    lines = [f"run {run_id}: {json.dumps(data['runOrError'])}"]
    for event in (data.get("logsForRun") or {}).get("events", []):
        if event.get("error"):
            causes = [cause["message"].strip() for cause in event["error"].get("causes") or []]
            lines.append(f"{event['__typename']}: {event.get('message')} {causes}")
    return "\n".join([*lines, dagster.process.tail()])


def wait_for_run_success(page: Page, dagster: DagsterDev, run_id: str) -> None:
    """Wait until the run page shows the run's Success tag; fail at once if the run fails."""
    success = (
        page.locator("div", has=page.get_by_role("img", name="run_success"))
        .filter(has_text=re.compile(r"^Success$"))
        .first
    )
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while True:
        try:
            success.wait_for(state="visible", timeout=POLL_MS * 2)
            return
        except PlaywrightTimeoutError:
            pass
        status = dagster.graphql(RUN_QUERY, {"runId": run_id})["runOrError"].get("status")
        if status in TERMINAL_FAILURES or time.monotonic() > deadline:
            pytest.fail(
                f"The run page shows no success (run {status}):\n{run_report(dagster, run_id)}"
            )


def backfill_report(dagster: DagsterDev, backfill: dict[str, Any]) -> str:
    """The backfill's status and runs, the errors of one failed (else unfinished) run, and the
    tail of dagster dev's output."""
    runs = backfill.get("runs") or []
    failed = [run["id"] for run in runs if run["status"] in TERMINAL_FAILURES]
    unfinished = [run["id"] for run in runs if run["status"] != "SUCCESS"]
    lines = [f"backfill: {json.dumps(backfill)}"]
    lines += [run_report(dagster, run_id) for run_id in (failed or unfinished)[:1]]
    return "\n".join([*lines, dagster.process.tail()])


def wait_for_backfill_success(page: Page, dagster: DagsterDev, backfill_id: str) -> None:
    """Wait until the backfill's page shows the Succeeded status; fail at once if the backfill
    or one of its runs fails."""
    status = page.get_by_text("Status", exact=True).locator("xpath=following-sibling::*[1]")
    deadline = time.monotonic() + BACKFILL_TIMEOUT_SECONDS
    while True:
        try:
            expect(status).to_have_text("Succeeded", timeout=POLL_MS * 2)
            return
        except AssertionError:
            pass
        backfill = dagster.graphql(BACKFILL_QUERY, {"backfillId": backfill_id})
        backfill = backfill["partitionBackfillOrError"]
        failed_runs = [r for r in backfill.get("runs") or [] if r["status"] in TERMINAL_FAILURES]
        if (
            backfill.get("status") in BACKFILL_FAILURES
            or failed_runs
            or backfill["__typename"] != "PartitionBackfill"
            or time.monotonic() > deadline
        ):
            pytest.fail(
                f"The backfill page shows no success (page: {status.all_inner_texts()}):\n"
                + backfill_report(dagster, backfill)
            )


def metadata_value(page: Page, key: str) -> str:
    """The value the Events tab shows for materialization metadata `key`."""
    row = page.get_by_role("row").filter(has=page.get_by_role("cell", name=key, exact=True))
    expect(row).to_have_count(1)
    return row.get_by_role("cell").nth(1).inner_text().strip()


# --- the test ---------------------------------------------------------------------------------


def test_lineage_materialize_and_checks_in_the_ui(
    dagster_dev: DagsterDev, browser: BrowserContext, domo: DomoHttp, s3: Any
) -> None:
    """A user sees each DataSet joined to its export in the lineage graph, materializes
    ``pharmacy_claims`` with its Materialize button, watches the run succeed with its checks,
    and reads the row count, the S3 URIs and the passed checks on the asset's page."""
    exports = list(load_catalog(DEMO_CATALOG).exports)
    (config,) = [c for c in exports if c.name == EXPORT_NAME]
    checks = dagster_dev.graphql(ASSET_CHECKS_QUERY, {"assetKeys": [{"path": [EXPORT_NAME]}]})
    (node,) = checks["assetNodes"]
    check_names = sorted(check["name"] for check in node["assetChecksOrError"]["checks"])
    assert {"row_count", "s3_objects", "header"} <= set(check_names)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = open_page(browser)

    # The global asset lineage, from the navigation bar.
    page.goto(dagster_dev.url)
    page.get_by_role("link").filter(has_text=re.compile(r"^Lineage$")).click()
    expect(page).to_have_url(re.compile(r"/asset-groups$"))
    expect(page.get_by_text("Global asset lineage", exact=True)).to_be_visible()
    check_lineage(page, exports)
    page.screenshot(path=SCREENSHOTS / "lineage.png")

    # The export's page: its description and its DataSet upstream, under the DataSet's full key.
    dataset_key = DagsterDomoTranslator().get_dataset_spec(config).key
    page.goto(f"{dagster_dev.url}/assets/{EXPORT_NAME}")
    assert config.description
    expect(page.get_by_text(config.description, exact=True)).to_be_visible()
    upstream = page.locator(f'a[href="/assets/{dataset_key.to_user_string()}"]')
    expect(upstream).to_contain_text(" / ".join(dataset_key.path))
    columns = page.get_by_role("row").filter(
        has=page.get_by_role("cell", name="columns", exact=True)
    )
    expect(columns.get_by_role("cell").last).to_have_text("all")  # not a quoted JSON string

    # Materialize, follow the toast to the run, wait for the UI to show success.
    page.get_by_role("button").filter(has_text=re.compile(r"^Materialize$")).click()
    toast = page.get_by_text(re.compile(r"^Launched run [0-9a-f]{8}$"))
    expect(toast).to_be_visible()
    page.get_by_role("link", name="View", exact=True).click()
    page.mouse.move(0, 0)  # a hovered toast never times out
    expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]{36}$"))
    run_id = page.url.rsplit("/", 1)[-1]
    wait_for_run_success(page, dagster_dev, run_id)
    expect(page.get_by_text(f"{len(check_names)} checks", exact=True)).to_be_visible()
    log_filter = page.get_by_placeholder(re.compile(r"^Filter"))
    log_filter.fill("type:ASSET_CHECK_EVALUATION")
    log_filter.blur()
    for name in check_names:
        expect(
            page.get_by_text(f"Check {name} succeeded for materialization of {EXPORT_NAME}.")
        ).to_be_visible()
    expect(page.get_by_text(re.compile(r"^Check \S+ failed"))).to_have_count(0)
    page.screenshot(path=SCREENSHOTS / "run-checks.png")

    # The asset's page: the row count Domo has, and S3 objects that exist.
    domo_rows = domo.get(f"/api/data/v3/datasources/{config.dataset_id}").json()["rowCount"]
    page.goto(f"{dagster_dev.url}/assets/{EXPORT_NAME}")
    row_count_tag = page.get_by_text("Row count", exact=True).locator("xpath=..")
    expect(row_count_tag).to_contain_text(f"{domo_rows:,}")
    page.get_by_role("tab", name="Events").click()
    expect(page.get_by_text(f"Materialized in run {run_id[:8]}")).to_be_visible()
    assert metadata_value(page, "dagster/row_count") == str(domo_rows)
    uris = json.loads(metadata_value(page, "s3_uris"))
    prefix = f"s3://{EXPORT_BUCKET}/{config.path}/"
    assert uris and all(uri.startswith(prefix) for uri in uris), uris
    for uri in uris:
        key = uri.removeprefix(f"s3://{EXPORT_BUCKET}/")
        assert s3.head_object(Bucket=EXPORT_BUCKET, Key=key)["ContentLength"] > 0, uri
    page.screenshot(path=SCREENSHOTS / "materialization.png")

    # The Checks tab: every check succeeded, and its latest evaluation passed.
    page.get_by_role("tab", name="Checks").click()
    for name in check_names:
        item = page.get_by_title(name, exact=True).locator("xpath=..")
        expect(item).to_contain_text("Succeeded")
        item.click()
        expect(page.get_by_text("Evaluation result", exact=True)).to_be_visible()
        expect(page.get_by_text("Passed", exact=True)).to_be_visible()


@pytest.mark.parametrize(
    "dagster_dev", [DEMO_PARTITIONED_CATALOG], ids=["exports_with_partitions"], indirect=True
)
def test_backfill_from_the_ui(
    dagster_dev: DagsterDev, browser: BrowserContext, sandbox: Sandbox
) -> None:
    """A user backfills three daily partitions of ``daily_orders`` from its Materialize dialog,
    watches the backfill succeed, and finds those partitions materialized; the sandbox ran one
    export per partition, each written under its ``dt=<day>`` prefix."""
    (config,) = [
        c
        for c in load_catalog(DEMO_PARTITIONED_CATALOG).exports
        if c.name == PARTITIONED_EXPORT_NAME
    ]
    assert config.dataset_id == DAILY_ORDERS_ID
    first, last = BACKFILL_PARTITIONS[0], BACKFILL_PARTITIONS[-1]
    count = len(BACKFILL_PARTITIONS)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = open_page(browser)

    # A fresh instance greets the user with its community dialog a second after the page loads;
    # the page's handler skips it (it runs at the next assertion), before another dialog opens
    # over it and leaves its Skip button unclickable.
    page.goto(f"{dagster_dev.url}/assets/{PARTITIONED_EXPORT_NAME}")
    page.wait_for_function(f"() => document.body.innerText.includes({COMMUNITY_DIALOG!r})")
    expect(page.get_by_role("dialog").filter(has_text=COMMUNITY_DIALOG)).to_be_hidden()

    # Materialize… opens the partition dialog: select the range, launch the backfill.
    page.get_by_role("button").filter(has_text=re.compile(r"^Materialize…$")).click()
    dialog = page.get_by_role("dialog").filter(
        has_text=f"Launch runs to materialize {PARTITIONED_EXPORT_NAME}"
    )
    expect(dialog).to_be_visible()
    partition_selector = dialog.get_by_placeholder("No matching partitions")
    partition_selector.fill(f"[{first}...{last}]")
    partition_selector.blur()
    expect(dialog.get_by_text(f"{count} partitions", exact=True)).to_be_visible()
    dialog.get_by_role("button", name="Launch backfill", exact=True).click()

    # Follow the toast to the backfill's page and wait for the UI to show it succeeded.
    toast = page.get_by_text(re.compile(r"^Created backfill \w+$"))
    expect(toast).to_be_visible()
    page.get_by_role("link", name="View", exact=True).click()
    page.mouse.move(0, 0)  # a hovered toast never times out
    expect(page).to_have_url(re.compile(r"/runs/b/\w+$"))
    backfill_id = page.url.rsplit("/", 1)[-1]
    selection = page.get_by_text("Partition selection", exact=True)
    expect(selection.locator("xpath=following-sibling::*[1]")).to_have_text(f"{first}...{last}")
    wait_for_backfill_success(page, dagster_dev, backfill_id)
    expect(page.get_by_text("100% completed", exact=True)).to_be_visible()
    page.screenshot(path=SCREENSHOTS / "backfill.png")

    # The Partitions tab, showing only materialized partitions: exactly those three.
    page.goto(f"{dagster_dev.url}/assets/{PARTITIONED_EXPORT_NAME}")
    page.get_by_role("tab", name="Partitions").click()
    materialized = page.get_by_role("checkbox", name=f"Materialized ({count})", exact=True)
    expect(materialized).to_be_checked()
    for status in ("Failed", "Materializing", "Missing"):
        checkbox = page.get_by_role("checkbox", name=re.compile(rf"^{status} \(\d+\)$"))
        page.locator("label", has=checkbox).click()  # its input is hidden behind the label
        expect(checkbox).not_to_be_checked()
    expect(page.get_by_text(f"{count} Partitions Selected", exact=True)).to_be_visible()
    listed = page.get_by_title(re.compile(r"^\d{4}-\d{2}-\d{2}$"))
    expect(listed).to_have_count(count)
    assert sorted(listed.evaluate_all("items => items.map((item) => item.title)")) == list(
        BACKFILL_PARTITIONS
    )
    for key in BACKFILL_PARTITIONS:
        page.get_by_title(key, exact=True).first.click()
        # The details' heading (the list's items have no tag): the partition and its status.
        heading = page.locator(f'[data-tooltip="{key}"]')
        expect(heading.get_by_text("Materialized", exact=True)).to_be_visible()

    # The sandbox: one export per partition, each under its dt=<day> prefix.
    exports = sandbox.control.exports(DAILY_ORDERS_ID)
    assert sorted(export["request"]["path"] for export in exports) == [
        f"{config.path}/dt={key}" for key in BACKFILL_PARTITIONS
    ], exports
    assert all(export["status"] == "success" for export in exports), exports
