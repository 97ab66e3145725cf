"""Shared fixtures: one Domo sandbox (with moto S3) per test session, and HTTP helpers.

`sandbox` starts lazily, only for tests that ask for it, and is reset before each of them
(exports, faults, behaviours, data, request log and moto's buckets).
`domo` talks to the sandbox with plain `requests` (never through the project's client).

Under pytest-xdist (`make test`) each worker is its own pytest session, with its own sandbox;
the tests marked ``slow`` are handed out first, so that the workers finish together.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import requests
from dagster import DagsterInstance
from domo_assets_dev.sandbox import ACCESS_KEY_ID, EXPORT_BUCKET, Sandbox
from servers import Postgres, PostgresUnavailable, postgres_cluster

EXPORT_TIMEOUT_SECONDS = 30.0
POLL_SECONDS = 0.05
UTF8_BOM = "\ufeff"
FINISHED = ("success", "error")
SANDBOX_MODES = ("default", "strict")
AWS_ENV_VARS = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
)
URL_FORMS = (
    re.compile(r"s3://(?P<bucket>[^/]+)/(?P<key>.+)"),
    re.compile(r"https://(?P<bucket>[^/]+)\.s3\.[a-z0-9-]+\.amazonaws\.com/(?P<key>.+)"),
    re.compile(r"https://s3\.[a-z0-9-]+\.amazonaws\.com/(?P<bucket>[^/]+)/(?P<key>.+)"),
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """In a pytest-xdist worker, put the tests marked ``slow`` first (in their own order).

    xdist hands the tests out in collection order (one at a time with `make test`'s
    ``--maxschedchunk 1``); slow ones (15 s to over a minute each) at the end would leave one
    worker running them while the others idle. Every worker sorts the same collection the same
    way, as xdist requires."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """A running sandbox shared by the whole session.

    While it runs, the process's AWS environment (endpoint, keys, region) points at its
    moto server, so boto3 clients built without arguments reach the sandbox's S3.
    """
    with Sandbox() as running, pytest.MonkeyPatch.context() as patch:
        env = running.env()
        for name in AWS_ENV_VARS:
            patch.setenv(name, env[name])
        patch.delenv("AWS_SESSION_TOKEN", raising=False)
        yield running


@pytest.fixture(autouse=True)
def _reset_sandbox(request: pytest.FixtureRequest) -> None:
    """Before each test that uses the sandbox (directly or through another fixture), put it
    back to its initial state: exports, faults, behaviours, data, request log, S3 buckets."""
    if "sandbox" in request.fixturenames:
        request.getfixturevalue("sandbox").control.reset()


@pytest.fixture(params=SANDBOX_MODES)
def domo_mode(request: pytest.FixtureRequest, sandbox: Sandbox) -> Iterator[str]:
    """Run the test against the sandbox in each mode: ``default``, and ``strict``, which reads
    Domo's documentation at its harshest (a previous export returned for any request while the
    data is unchanged, query answers as arrays of row objects, double-quoted SQL tokens read as
    strings). The sandbox is our model of Domo, not Domo: end-to-end tests pass under both."""
    sandbox.control.set_mode(request.param)
    yield request.param
    sandbox.control.set_mode("default")


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    """A throwaway PostgreSQL cluster (servers.postgres_cluster) with fsync off, since the tests
    using it measure nothing; skipped when PostgreSQL cannot be installed (CI installs it)."""
    with contextlib.ExitStack() as stack:
        try:
            cluster = stack.enter_context(postgres_cluster(durable=False))
        except PostgresUnavailable as error:
            pytest.skip(f"PostgreSQL is unavailable: {error}")
        yield cluster


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[DagsterInstance]:
    """A Dagster instance on SQLite in a temporary folder, as a deployed instance persists runs
    and events (the export ledger is read back from its event log)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    with DagsterInstance.local_temp(str(home)) as dagster_instance:
        yield dagster_instance


@pytest.fixture(scope="session")
def s3(sandbox: Sandbox) -> Iterator[Any]:
    """A boto3 S3 client for the sandbox's moto server."""
    client = sandbox.s3_client()
    yield client
    client.close()


@pytest.fixture
def domo(sandbox: Sandbox, s3: Any) -> Iterator[DomoHttp]:
    """HTTP helpers for the sandbox's Domo API."""
    with requests.Session() as session:
        session.trust_env = False
        yield DomoHttp(session, sandbox, s3)


def bucket_and_key(url: str) -> tuple[str, str]:
    """Return the bucket and key of a urlRowCountMap key in any of its three forms."""
    for form in URL_FORMS:
        match = form.fullmatch(url)
        if match:
            return match["bucket"], unquote(match["key"])
    raise AssertionError(f"Unrecognised export URL {url!r}")


class DomoHttp:
    """Plain-HTTP calls to the sandbox, authenticated as ``analyst`` unless told otherwise.

    Args:
        session: The `requests` session.
        sandbox: The running sandbox.
        s3: A boto3 S3 client for its moto server.
    """

    def __init__(self, session: requests.Session, sandbox: Sandbox, s3: Any) -> None:
        self.session = session
        self.sandbox = sandbox
        self.s3 = s3

    @staticmethod
    def body(
        bucket: str = EXPORT_BUCKET,
        region: str = "us-east-1",
        include_bom: bool = False,
        **query: Any,
    ) -> dict[str, Any]:
        """Return an export request body; `query` fills ``queryRequest.query``."""
        return {
            "awsAccessKey": ACCESS_KEY_ID,
            "awsAccessSecret": "not-checked-by-moto",
            "bucket": bucket,
            "region": region,
            "source": "domo_assets tests",
            "queryRequest": {"includeBOM": include_bom, "useCache": True, "query": query},
        }

    @staticmethod
    def columns(*names: str) -> list[dict[str, str]]:
        """Return Domo column expressions for `names`."""
        return [{"column": name, "exprType": "COLUMN"} for name in names]

    def headers(self, token: str | None = None) -> dict[str, str]:
        """Return the developer-token header (the analyst's token by default)."""
        return {"X-DOMO-Developer-Token": token or self.sandbox.token}

    def get(self, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        """GET `path` with a developer token."""
        headers = {**self.headers(token), **kwargs.pop("headers", {})}
        return self.session.get(self.sandbox.domo_url + path, headers=headers, **kwargs)

    def post(self, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        """POST to `path` with a developer token."""
        headers = {**self.headers(token), **kwargs.pop("headers", {})}
        return self.session.post(self.sandbox.domo_url + path, headers=headers, **kwargs)

    def start_export(
        self, dataset_id: str, body: dict[str, Any] | None = None, token: str | None = None
    ) -> requests.Response:
        """``POST /api/query/v1/export/{id}``."""
        return self.post(
            f"/api/query/v1/export/{dataset_id}", token, json=body or self.body(), timeout=10
        )

    def list_exports(self, dataset_id: str, token: str | None = None) -> list[dict[str, Any]]:
        """``GET /api/query/v1/export/{id}``."""
        response = self.get(f"/api/query/v1/export/{dataset_id}", token, timeout=10)
        response.raise_for_status()
        return response.json()

    def wait(self, dataset_id: str, export_id: str, token: str | None = None) -> dict[str, Any]:
        """Poll the export list until the export is success or error; return it."""
        deadline = time.monotonic() + EXPORT_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            exports = {e["exportId"]: e for e in self.list_exports(dataset_id, token)}
            if exports[export_id]["exportStatus"] in FINISHED:
                return exports[export_id]
            time.sleep(POLL_SECONDS)
        raise TimeoutError(f"Export {export_id} did not finish")

    def export(
        self, dataset_id: str, body: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        """Start an export (expecting 200 or 201) and return its finished export object."""
        response = self.start_export(dataset_id, body, token)
        assert response.status_code in (200, 201), response.text
        return self.wait(dataset_id, response.json()["exportId"], token)

    def read_file(self, url: str) -> tuple[bool, list[list[str]]]:
        """Download one export file; return (it had a BOM, CSV rows including the header)."""
        bucket, key = bucket_and_key(url)
        data = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        if key.endswith(".gz"):
            data = gzip.decompress(data)
        text = data.decode("utf-8")
        rows = list(csv.reader(io.StringIO(text.removeprefix(UTF8_BOM), newline="")))
        return text.startswith(UTF8_BOM), rows

    def read(self, export: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
        """Download every file of a successful export, checking each reported row count.

        Returns:
            The header and the data rows of all files, in file order.
        """
        header: list[str] = []
        data: list[list[str]] = []
        for url, count in sorted(export["urlRowCountMap"].items()):
            _, rows = self.read_file(url)
            assert len(rows) - 1 == count, f"{url}: {len(rows) - 1} rows, reported {count}"
            header = rows[0]
            data.extend(rows[1:])
        return header, data
