"""The Domo client against the sandbox, over real HTTP (nothing of requests is patched)."""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
from domo_assets_dev.sandbox import Sandbox
from domo_assets_dev.sandbox.datasets import (
    AWKWARD_VALUES_ID,
    HR_SALARIES_ID,
    LARGE_EVENTS_ID,
    PHARMACY_CLAIMS_ID,
    REGIONAL_SALES_ID,
)
from support import export_posts

from domo_assets.domo.auth import DeveloperTokenAuth, OAuthClientCredentialsAuth
from domo_assets.domo.client import DomoClient, PollSchedule
from domo_assets.domo.endpoints import InsecureUrlError
from domo_assets.domo.errors import (
    DomoAuthenticationError,
    DomoExportFailedError,
    DomoExportInProgressError,
    DomoExportTimeoutError,
    DomoInvalidRequestError,
    DomoNotFoundError,
    DomoPermissionError,
    DomoRateLimitError,
    DomoResponseError,
    DomoServerError,
    DomoTimeoutError,
)
from domo_assets.domo.models import (
    AwsCredentials,
    Condition,
    ExportQuery,
    ExportRequest,
    ExportStart,
    ExportStatus,
    FilterOp,
    RowFilter,
    StartOutcome,
    normalize_s3_url,
    parse_timestamp,
)

if TYPE_CHECKING:
    from conftest import DomoHttp

FAST = PollSchedule(initial_interval=0.05, max_interval=0.2, timeout=30)
EXPORT_PATH = "/api/query/v1/export/"
QUERY_PATH = "/api/query/v1/execute/"
CLIENT_LOGGER = "domo_assets.domo.client"
# A column name and a value with every character Domo's MySQL-like SQL must quote or escape.
AWKWARD_COLUMN = "Odd `name` with \"double\" and 'single' quotes"
AWKWARD_VALUE = "it's a \\ path"


def make_client(sandbox: Sandbox, token: str | None = None, **kwargs) -> DomoClient:
    """A client with short backoffs so retries stay quick."""
    kwargs.setdefault("backoff_factor", 0.05)
    kwargs.setdefault("backoff_max", 0.5)
    return DomoClient(sandbox.domo_url, DeveloperTokenAuth(token or sandbox.token), **kwargs)


def make_request(sandbox: Sandbox, path: str = "tests/client", **query) -> ExportRequest:
    env = sandbox.env()
    return ExportRequest(
        credentials=AwsCredentials(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]),
        bucket="domo-exports",
        path=path,
        region="us-east-1",
        query=ExportQuery(**query),
    )


@pytest.fixture
def client(sandbox: Sandbox):
    domo = make_client(sandbox)
    yield domo
    domo.close()


def run_export(client: DomoClient, sandbox: Sandbox, dataset_id: str, **query) -> ExportStart:
    start = client.start_export(dataset_id, make_request(sandbox, **query))
    export = client.wait_for_export(dataset_id, start.export.export_id, FAST)
    return ExportStart(export, start.outcome)


# -- operations ---------------------------------------------------------------------------------


def test_get_dataset_reads_metadata(client: DomoClient, sandbox: Sandbox) -> None:
    truth = {d["id"]: d for d in sandbox.control.datasets()}[PHARMACY_CLAIMS_ID]
    metadata = client.get_dataset(PHARMACY_CLAIMS_ID)
    assert metadata.dataset_id == PHARMACY_CLAIMS_ID
    assert metadata.name == truth["name"]
    assert metadata.row_count == truth["row_count"]
    assert metadata.last_updated is not None and metadata.last_updated.tzinfo is UTC
    columns = [c.name for c in client.get_columns(PHARMACY_CLAIMS_ID)]
    assert columns[:3] == ["Customer ID", "Cardholder ID", "Sex of Patient"]
    assert "Days Supply" in columns


def test_export_lifecycle_and_find_by_id(client: DomoClient, sandbox: Sandbox) -> None:
    start = run_export(client, sandbox, PHARMACY_CLAIMS_ID)
    assert start.outcome is StartOutcome.STARTED
    export = start.export
    assert export.status is ExportStatus.SUCCESS
    assert export.row_count == client.count_rows(PHARMACY_CLAIMS_ID)
    assert all(
        obj.uri.startswith(f"s3://domo-exports/tests/client/{export.export_id}/export/")
        for obj in export.objects
    )
    assert (
        export.started is not None
        and export.finished is not None
        and export.finished >= export.started
    )
    found = client.get_export(PHARMACY_CLAIMS_ID, export.export_id)
    assert found.export_id == export.export_id
    assert export.export_id in {e.export_id for e in client.list_exports(PHARMACY_CLAIMS_ID)}


@pytest.mark.parametrize("url_style", ["s3", "virtual", "path"])
@pytest.mark.parametrize("timestamp_style", ["epoch_ms", "iso"])
def test_url_and_timestamp_forms_are_normalised(
    client: DomoClient, sandbox: Sandbox, url_style: str, timestamp_style: str
) -> None:
    sandbox.control.set_behaviour(
        AWKWARD_VALUES_ID, url_style=url_style, timestamp_style=timestamp_style
    )
    export = run_export(client, sandbox, AWKWARD_VALUES_ID).export
    assert export.objects, "the export reported no object"
    for obj in export.objects:
        assert obj.bucket == "domo-exports"
        head = sandbox.s3_client().head_object(Bucket=obj.bucket, Key=obj.key)
        assert head["ContentLength"] > 0
    assert isinstance(export.started, datetime) and export.started.tzinfo is not None


def test_columns_and_filter_are_sent(client: DomoClient, sandbox: Sandbox) -> None:
    where = RowFilter((Condition("Sex of Patient", FilterOp.EQUALS, ("F",)),))
    export = run_export(
        client, sandbox, PHARMACY_CLAIMS_ID, columns=("Customer ID", "Sex of Patient"), where=where
    ).export
    assert export.row_count == client.count_rows(PHARMACY_CLAIMS_ID, where)
    assert 0 < export.row_count < client.count_rows(PHARMACY_CLAIMS_ID)
    body = (
        sandbox.s3_client()
        .get_object(Bucket="domo-exports", Key=export.objects[0].key)["Body"]
        .read()
    )
    import gzip

    text = gzip.decompress(body).decode("utf-8-sig")
    assert text.splitlines()[0] == "Customer ID,Sex of Patient"


def test_in_filter_counts_through_query_endpoint(client: DomoClient) -> None:
    where = RowFilter((Condition("Days Supply", FilterOp.IN, (30, 90)),))
    both = client.count_rows(PHARMACY_CLAIMS_ID, where)
    thirty = client.count_rows(
        PHARMACY_CLAIMS_ID, RowFilter((Condition("Days Supply", FilterOp.EQUALS, (30,)),))
    )
    assert 0 < thirty < both <= client.count_rows(PHARMACY_CLAIMS_ID)


def test_unchanged_data_returns_previous_export(client: DomoClient, sandbox: Sandbox) -> None:
    first = run_export(client, sandbox, PHARMACY_CLAIMS_ID)
    second = client.start_export(PHARMACY_CLAIMS_ID, make_request(sandbox))
    assert second.outcome is StartOutcome.REUSED_PREVIOUS
    assert second.export.export_id == first.export.export_id
    sandbox.control.change_dataset(PHARMACY_CLAIMS_ID, rows=5)
    third = run_export(client, sandbox, PHARMACY_CLAIMS_ID)
    assert third.outcome is StartOutcome.STARTED
    assert third.export.export_id != first.export.export_id


# -- errors -------------------------------------------------------------------------------------


def test_bad_token_is_authentication_error(sandbox: Sandbox) -> None:
    client = make_client(sandbox, token="not-a-valid-token-0123456789")
    with pytest.raises(DomoAuthenticationError) as info:
        client.get_dataset(PHARMACY_CLAIMS_ID)
    assert info.value.status == 401
    assert "DOMO_DEVELOPER_TOKEN" in str(info.value)
    assert "not-a-valid-token-0123456789" not in str(info.value) + repr(client)


def test_no_read_permission_is_permission_error(client: DomoClient) -> None:
    with pytest.raises(DomoPermissionError) as info:
        client.get_dataset(HR_SALARIES_ID)
    assert info.value.status == 403
    assert info.value.toe, "Domo's toe must be carried for support"
    assert info.value.toe in str(info.value)


def test_unknown_dataset_is_not_found(client: DomoClient) -> None:
    with pytest.raises(DomoNotFoundError) as info:
        client.get_dataset("00000000-0000-0000-0000-000000000000")
    assert info.value.status == 404
    assert "dataset_id" in str(info.value)


def test_invalid_request_names_domo_message(client: DomoClient, sandbox: Sandbox) -> None:
    with pytest.raises(DomoInvalidRequestError) as info:
        client.start_export(PHARMACY_CLAIMS_ID, make_request(sandbox, columns=("No Such Column",)))
    assert info.value.status == 400
    assert "No Such Column" in str(info.value)


def test_second_export_while_one_runs_is_in_progress_error(
    client: DomoClient, sandbox: Sandbox
) -> None:
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, export_seconds=3, busy_behaviour="error")
    first = client.start_export(PHARMACY_CLAIMS_ID, make_request(sandbox, path="tests/a"))
    with pytest.raises(DomoExportInProgressError) as info:
        client.start_export(PHARMACY_CLAIMS_ID, make_request(sandbox, path="tests/b"))
    assert info.value.active_export_id == first.export.export_id
    # The running export rides on the error, so the runner need not list the exports again.
    assert info.value.active_export is not None
    assert info.value.active_export.export_id == first.export.export_id
    assert info.value.active_export.is_active


def test_second_export_returning_running_one_is_flagged(
    client: DomoClient, sandbox: Sandbox
) -> None:
    sandbox.control.set_behaviour(
        PHARMACY_CLAIMS_ID, export_seconds=3, busy_behaviour="return_running"
    )
    first = client.start_export(PHARMACY_CLAIMS_ID, make_request(sandbox, path="tests/a"))
    second = client.start_export(PHARMACY_CLAIMS_ID, make_request(sandbox, path="tests/b"))
    assert second.outcome is StartOutcome.ALREADY_RUNNING
    assert second.export.export_id == first.export.export_id
    assert sandbox.control.export_count(PHARMACY_CLAIMS_ID) == 1


def test_export_error_status_raises_with_code(client: DomoClient, sandbox: Sandbox) -> None:
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, export_outcome="error")
    start = client.start_export(PHARMACY_CLAIMS_ID, make_request(sandbox))
    with pytest.raises(DomoExportFailedError) as info:
        client.wait_for_export(PHARMACY_CLAIMS_ID, start.export.export_id, FAST)
    assert start.export.export_id in str(info.value)
    assert "errorCode" in str(info.value)


def test_stuck_export_times_out_naming_export(client: DomoClient, sandbox: Sandbox) -> None:
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, export_outcome="stuck")
    start = client.start_export(PHARMACY_CLAIMS_ID, make_request(sandbox))
    with pytest.raises(DomoExportTimeoutError) as info:
        client.wait_for_export(
            PHARMACY_CLAIMS_ID, start.export.export_id, PollSchedule(0.05, 0.1, timeout=0.5)
        )
    assert start.export.export_id in str(info.value)
    assert "exporting" in str(info.value)


# -- retries ------------------------------------------------------------------------------------


def test_get_retries_429_honouring_retry_after(client: DomoClient, sandbox: Sandbox) -> None:
    sandbox.control.add_fault(
        method="GET",
        path_regex="/api/data/v3/datasources/",
        action="status",
        status=429,
        retry_after=1,
        times=2,
    )
    began = time.monotonic()
    metadata = client.get_dataset(PHARMACY_CLAIMS_ID)
    elapsed = time.monotonic() - began
    assert metadata.dataset_id == PHARMACY_CLAIMS_ID
    assert elapsed >= 1.9, f"Retry-After: 1 twice should wait about 2 s, waited {elapsed:.2f}"
    statuses = [r["status"] for r in sandbox.control.requests() if "/datasources/" in r["path"]]
    assert statuses == [429, 429, 200]


def test_get_retries_5xx_burst_and_resets(client: DomoClient, sandbox: Sandbox) -> None:
    sandbox.control.add_fault(
        method="GET", path_regex=EXPORT_PATH, action="status", status=503, times=2
    )
    sandbox.control.add_fault(method="GET", path_regex=EXPORT_PATH, action="reset", times=1)
    assert isinstance(client.list_exports(PHARMACY_CLAIMS_ID), tuple)
    gets = [
        r for r in sandbox.control.requests() if r["method"] == "GET" and EXPORT_PATH in r["path"]
    ]
    assert len(gets) >= 3


def test_retries_are_bounded(sandbox: Sandbox) -> None:
    client = make_client(sandbox, max_retries=2)
    sandbox.control.add_fault(
        method="GET", path_regex="/api/data/v3/datasources/", action="status", status=500, times=10
    )
    with pytest.raises((DomoServerError, DomoTimeoutError)) as info:
        client.get_dataset(PHARMACY_CLAIMS_ID)
    assert "500" in str(info.value) or "retry" in str(info.value)
    hits = [r for r in sandbox.control.requests() if "/datasources/" in r["path"]]
    assert len(hits) == 3


def test_persistent_429_is_rate_limit_error(sandbox: Sandbox) -> None:
    client = make_client(sandbox, max_retries=1)
    sandbox.control.add_fault(
        method="GET",
        path_regex="/api/data/v3/datasources/",
        action="status",
        status=429,
        retry_after=0,
        times=5,
    )
    with pytest.raises(DomoRateLimitError) as info:
        client.get_dataset(PHARMACY_CLAIMS_ID)
    assert "concurrency" in str(info.value)


def test_slow_response_times_out(sandbox: Sandbox) -> None:
    client = make_client(sandbox, read_timeout=0.3, max_retries=1)
    sandbox.control.add_fault(
        method="GET", path_regex="/api/data/v3/datasources/", action="delay", delay=1.5, times=5
    )
    with pytest.raises(DomoTimeoutError) as info:
        client.get_dataset(PHARMACY_CLAIMS_ID)
    assert "DOMO_INSTANCE_URL" in str(info.value)


def test_lost_post_response_yields_exactly_one_export(client: DomoClient, sandbox: Sandbox) -> None:
    sandbox.control.add_fault(
        method="POST", path_regex=EXPORT_PATH, action="drop_response", times=1
    )
    start = client.start_export(LARGE_EVENTS_ID, make_request(sandbox))
    assert start.outcome is StartOutcome.RECOVERED
    assert sandbox.control.export_count(LARGE_EVENTS_ID) == 1
    posts = export_posts(sandbox.control)
    assert len(posts) == 1, "the client must not post again once it found the accepted export"


def test_post_reset_before_acceptance_is_retried_once(client: DomoClient, sandbox: Sandbox) -> None:
    sandbox.control.add_fault(method="POST", path_regex=EXPORT_PATH, action="reset", times=1)
    start = client.start_export(PHARMACY_CLAIMS_ID, make_request(sandbox))
    assert start.outcome is StartOutcome.STARTED
    assert sandbox.control.export_count(PHARMACY_CLAIMS_ID) == 1


def test_post_is_not_retried_on_400(client: DomoClient, sandbox: Sandbox) -> None:
    sandbox.control.add_fault(
        method="POST", path_regex=EXPORT_PATH, action="status", status=400, times=1
    )
    with pytest.raises(DomoInvalidRequestError):
        client.start_export(PHARMACY_CLAIMS_ID, make_request(sandbox))
    posts = [r for r in sandbox.control.requests() if r["method"] == "POST"]
    assert len(posts) == 1
    assert sandbox.control.export_count(PHARMACY_CLAIMS_ID) == 0


# -- OAuth and PDP ------------------------------------------------------------------------------


def oauth_client(sandbox: Sandbox, auth: OAuthClientCredentialsAuth) -> DomoClient:
    """A client with the developer token for the instance API and OAuth for the platform API
    (in the sandbox both APIs are one server, told apart by their paths)."""
    return DomoClient(sandbox.domo_url, DeveloperTokenAuth(sandbox.token), platform_auth=auth)


def test_oauth_token_rejected_after_renewal_fails_once(sandbox: Sandbox) -> None:
    sandbox.control.set_oauth_expires_in(0)  # every token Domo issues is already expired
    auth = OAuthClientCredentialsAuth(
        sandbox.client_id, sandbox.client_secret, api_url=sandbox.domo_url
    )
    client = oauth_client(sandbox, auth)
    with pytest.raises(DomoAuthenticationError) as info:
        client.get_dataset(PHARMACY_CLAIMS_ID)
    assert info.value.status == 401
    assert auth.tokens_issued == 2, "one renewal after a 401, then the error (no loop)"
    assert sandbox.client_secret not in str(info.value)
    # The platform API's empty 401 is described by its challenge.
    assert 'error="invalid_token"' in str(info.value)


def test_oauth_client_credentials_renew_before_expiry(sandbox: Sandbox) -> None:
    now = [0.0]
    auth = OAuthClientCredentialsAuth(
        sandbox.client_id, sandbox.client_secret, api_url=sandbox.domo_url, clock=lambda: now[0]
    )
    client = oauth_client(sandbox, auth)
    assert client.get_dataset(PHARMACY_CLAIMS_ID).dataset_id == PHARMACY_CLAIMS_ID
    client.get_dataset(PHARMACY_CLAIMS_ID)
    assert auth.tokens_issued == 1, "a valid token must be reused"
    now[0] = 3600.0
    client.get_dataset(PHARMACY_CLAIMS_ID)
    assert auth.tokens_issued == 2, "a token about to expire must be renewed"
    assert sandbox.client_secret not in repr(auth) + repr(client)


def test_oauth_alone_cannot_be_the_instance_credential(sandbox: Sandbox) -> None:
    auth = OAuthClientCredentialsAuth(
        sandbox.client_id, sandbox.client_secret, api_url=sandbox.domo_url
    )
    with pytest.raises(DomoAuthenticationError) as info:
        DomoClient(sandbox.domo_url, auth)
    assert "DOMO_DEVELOPER_TOKEN" in str(info.value)
    assert "/api/query/v1/export/" in str(info.value), "the message names the export API"
    assert sandbox.control.requests() == [], "refused before any request"


def test_each_call_carries_only_the_credential_of_its_api(sandbox: Sandbox) -> None:
    auth = OAuthClientCredentialsAuth(
        sandbox.client_id, sandbox.client_secret, api_url=sandbox.domo_url
    )
    client = oauth_client(sandbox, auth)
    # A DataSet no other test of this module delays: a delayed request of an earlier test may
    # still reach the log after the reset.
    dataset = AWKWARD_VALUES_ID
    assert client.get_dataset(dataset).row_count == 50
    assert client.get_columns(dataset)[0].name == "ID"
    export = run_export(client, sandbox, dataset).export
    assert export.row_count == client.count_rows(dataset)
    assert client.get_me() is not None

    log = [
        r
        for r in sandbox.control.requests()
        if dataset in r["path"] or r["path"].startswith(("/oauth/", "/api/content/"))
    ]
    by_api = {
        prefix: [r for r in log if r["path"].startswith(prefix)]
        for prefix in ("/api/", "/v1/", "/oauth/")
    }
    assert all(by_api.values()), f"every API must have been called: {log}"
    assert {tuple(r["credentials"]) for r in by_api["/api/"]} == {("developer_token",)}
    assert {tuple(r["credentials"]) for r in by_api["/v1/"]} == {("bearer",)}
    assert {tuple(r["credentials"]) for r in by_api["/oauth/"]} == {("basic",)}
    # Metadata and schema come from the platform API (one read serves both), the rest from
    # the instance: the export, its status, the row count (as the export's user), the user.
    assert [r["path"] for r in by_api["/v1/"]] == [f"/v1/datasets/{dataset}"]
    assert not [r for r in log if "/datasources/" in r["path"]]
    assert any(QUERY_PATH in r["path"] for r in by_api["/api/"])


@pytest.mark.parametrize(
    "url", ["http://domo.example.com", "http://10.1.2.3:8080", "ftp://acme.domo.com", "acme"]
)
def test_urls_that_would_send_credentials_in_clear_text_are_refused(
    sandbox: Sandbox, url: str
) -> None:
    with pytest.raises(InsecureUrlError) as instance:
        DomoClient(url, DeveloperTokenAuth(sandbox.token))
    assert "instance_url (DOMO_INSTANCE_URL)" in str(instance.value)
    assert "https://" in str(instance.value)
    with pytest.raises(InsecureUrlError) as platform:
        OAuthClientCredentialsAuth(sandbox.client_id, sandbox.client_secret, api_url=url)
    assert "api_url (DOMO_API_URL)" in str(platform.value)
    assert sandbox.token not in str(instance.value) + str(platform.value)


@pytest.mark.parametrize("url", ["http://localhost:9", "http://127.8.9.10:9", "http://[::1]:9"])
def test_plain_http_is_accepted_for_loopback_hosts(sandbox: Sandbox, url: str) -> None:
    assert DomoClient(url, DeveloperTokenAuth(sandbox.token)).instance_url == url
    # The sandbox itself is plain http on 127.0.0.1.
    assert make_client(sandbox).get_dataset(PHARMACY_CLAIMS_ID).row_count == 1_000


@pytest.mark.parametrize(
    ("shape", "status", "error", "expected"),
    [
        ("domo", 400, DomoInvalidRequestError, ["HTTP 400", "Bad Request", "shape probe", "toe "]),
        ("oauth", 401, DomoAuthenticationError, ["HTTP 401", "invalid_token: shape probe"]),
        ("html", 403, DomoPermissionError, ["HTTP 403", "403 Forbidden", "shape probe"]),
        (
            "bearer_challenge",
            401,
            DomoAuthenticationError,
            ["HTTP 401", 'error="invalid_token"', 'error_description="shape probe"'],
        ),
    ],
)
def test_every_error_shape_reaches_the_message(
    client: DomoClient, sandbox: Sandbox, shape: str, status: int, error: type, expected: list
) -> None:
    sandbox.control.add_fault(
        method="GET",
        path_regex="/api/data/v3/datasources/",
        status=status,
        shape=shape,
        message="shape probe",
    )
    with pytest.raises(error) as info:
        client.get_dataset(PHARMACY_CLAIMS_ID)
    text = str(info.value)
    assert info.value.status == status
    for words in expected:
        assert words in text, f"{words!r} missing from {text!r}"
    if shape == "domo":
        assert info.value.toe and info.value.toe in text, "Domo's toe must be carried"


def test_pdp_filtered_count_matches_filtered_export(sandbox: Sandbox) -> None:
    client = make_client(sandbox, token=sandbox.tokens["west_manager"])
    full = make_client(sandbox).count_rows(REGIONAL_SALES_ID)
    visible = client.count_rows(REGIONAL_SALES_ID)
    assert 0 < visible < full
    export = run_export(client, sandbox, REGIONAL_SALES_ID).export
    assert export.row_count == visible
    me = client.get_me()
    assert me is not None and me.id


# -- statuses, history, SQL and query answers as Domo documents them ----------------------------


def test_unknown_status_is_not_running_but_fails_the_export_followed(
    client: DomoClient, sandbox: Sandbox
) -> None:
    cancelled, _, _ = sandbox.control.add_history(PHARMACY_CLAIMS_ID, "malformed")
    listed = {e.export_id: e for e in client.list_exports(PHARMACY_CLAIMS_ID)}
    assert listed[cancelled].status is ExportStatus.UNKNOWN
    assert listed[cancelled].raw_status == "CANCELLED"
    assert client.active_export(PHARMACY_CLAIMS_ID) is None
    # Not taken for a running export: a new one starts at once.
    assert run_export(client, sandbox, PHARMACY_CLAIMS_ID).outcome is StartOutcome.STARTED
    with pytest.raises(DomoExportFailedError) as info:
        client.wait_for_export(PHARMACY_CLAIMS_ID, cancelled, FAST)
    assert cancelled in str(info.value)
    assert "'CANCELLED'" in str(info.value)
    assert info.value.export is not None and info.value.export.status is ExportStatus.UNKNOWN


def test_post_answered_with_failed_export_raises_with_domos_reason(
    client: DomoClient, sandbox: Sandbox
) -> None:
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, post_answer="error")
    request = make_request(sandbox)
    with pytest.raises(DomoExportFailedError) as info:
        client.start_export(PHARMACY_CLAIMS_ID, request)
    (record,) = sandbox.control.exports(PHARMACY_CLAIMS_ID)
    text = str(info.value)
    toe = re.search(r"toe: ([A-Z0-9-]+)", record["message"])
    assert toe is not None, record["message"]
    for part in (PHARMACY_CLAIMS_ID, record["export_id"], "'error'", record["error_code"]):
        assert part in text
    assert record["message"] in text
    assert info.value.toe == toe[1] and f"toe {toe[1]}: quote it to Domo support" in text
    assert "materialize again" in text
    assert info.value.export is not None and info.value.export.export_id == record["export_id"]
    assert request.credentials.secret_access_key not in text + repr(info.value.export)


def test_unreadable_history_entries_are_skipped_with_one_warning_each(
    client: DomoClient, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    cancelled, null_rows, bad_time = sandbox.control.add_history(PHARMACY_CLAIMS_ID, "malformed")
    sandbox.control.add_history(PHARMACY_CLAIMS_ID, entries=["not an export object"])
    caplog.set_level(logging.WARNING, logger=CLIENT_LOGGER)
    export = run_export(client, sandbox, PHARMACY_CLAIMS_ID).export  # lists, then polls
    for _ in range(3):
        listed = {e.export_id for e in client.list_exports(PHARMACY_CLAIMS_ID)}
        found = client.get_export(PHARMACY_CLAIMS_ID, export.export_id)
    assert listed == {export.export_id, cancelled}
    assert found.status is ExportStatus.SUCCESS and found.row_count == export.row_count
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    expected = {
        null_rows: "no row count",
        bad_time: "'started'",
        "unreadable": "where an object (export object) was expected",
    }
    assert len(warnings) == len(expected), warnings
    for export_id, reason in expected.items():
        (warning,) = (w for w in warnings if f"(exportId {export_id})" in w)
        assert re.search(rf"entry \d+ \(exportId {export_id}\)", warning)
        assert reason in warning and PHARMACY_CLAIMS_ID in warning


def test_get_export_of_unreadable_entry_names_it(client: DomoClient, sandbox: Sandbox) -> None:
    _, null_rows, bad_time = sandbox.control.add_history(PHARMACY_CLAIMS_ID, "malformed")
    for export_id, problem in ((null_rows, "no row count"), (bad_time, "'not a time'")):
        with pytest.raises(DomoResponseError) as info:
            client.get_export(PHARMACY_CLAIMS_ID, export_id)
        assert export_id in str(info.value)
        assert problem in str(info.value)
        assert PHARMACY_CLAIMS_ID in str(info.value)


@pytest.mark.parametrize("sql_quotes", ["lenient", "mysql"])
def test_count_rows_escapes_string_values(
    client: DomoClient, sandbox: Sandbox, sql_quotes: str
) -> None:
    sandbox.control.set_behaviour(AWKWARD_VALUES_ID, sql_quotes=sql_quotes)
    where = RowFilter(
        (Condition("Text", FilterOp.IN, (AWKWARD_VALUE, "back\\slash", 'double "quotes" inside')),)
    )
    # The export filters with Domo's JSON expression, no SQL: the count to compare with.
    exported = run_export(client, sandbox, AWKWARD_VALUES_ID, where=where).export.row_count
    assert 0 < exported < client.count_rows(AWKWARD_VALUES_ID)
    assert client.count_rows(AWKWARD_VALUES_ID, where) == exported
    only_awkward = RowFilter((Condition("Text", FilterOp.EQUALS, (AWKWARD_VALUE,)),))
    assert client.count_rows(AWKWARD_VALUES_ID, only_awkward) == 0


@pytest.mark.parametrize("sql_quotes", ["lenient", "mysql"])
def test_count_rows_quotes_column_names(
    client: DomoClient, sandbox: Sandbox, sql_quotes: str
) -> None:
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, sql_quotes=sql_quotes)
    where = RowFilter((Condition("Days Supply", FilterOp.GREATER_THAN_EQUAL, (30,)),))
    exported = run_export(client, sandbox, PHARMACY_CLAIMS_ID, where=where).export.row_count
    assert 0 < exported < client.count_rows(PHARMACY_CLAIMS_ID)
    assert client.count_rows(PHARMACY_CLAIMS_ID, where) == exported
    # Domo reads the awkward name back whole: it names it as the column it cannot find.
    awkward = RowFilter((Condition(AWKWARD_COLUMN, FilterOp.EQUALS, (AWKWARD_VALUE,)),))
    with pytest.raises(DomoInvalidRequestError) as info:
        client.count_rows(PHARMACY_CLAIMS_ID, awkward)
    assert info.value.detail is not None
    assert f"'{AWKWARD_COLUMN}'" in (info.value.detail.message or "")


def test_count_rows_reads_an_array_of_row_objects(
    client: DomoClient, sandbox: Sandbox, domo: DomoHttp
) -> None:
    where = RowFilter((Condition("Sex of Patient", FilterOp.EQUALS, ("F",)),))
    columnar = (client.count_rows(PHARMACY_CLAIMS_ID), client.count_rows(PHARMACY_CLAIMS_ID, where))
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, query_shape="objects")
    answer = domo.post(
        QUERY_PATH + PHARMACY_CLAIMS_ID, json={"sql": "SELECT COUNT(*) FROM table"}, timeout=10
    ).json()
    assert isinstance(answer, list) and isinstance(answer[0], dict), answer
    objects = (client.count_rows(PHARMACY_CLAIMS_ID), client.count_rows(PHARMACY_CLAIMS_ID, where))
    assert objects == columnar
    assert 0 < objects[1] < objects[0]


# -- parsing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://bucket-a/p/x/export/data.csv.gz", ("bucket-a", "p/x/export/data.csv.gz")),
        # An s3:// URI names its key as written, escapes of a partition prefix included.
        ("s3://bucket-a/p/k=A%2FB/data.csv", ("bucket-a", "p/k=A%2FB/data.csv")),
        ("s3://bucket-a/p/a b#c?d.csv", ("bucket-a", "p/a b#c?d.csv")),
        (
            "https://bucket-a.s3.us-east-1.amazonaws.com/p/k%3DA%252FB/data.csv",
            ("bucket-a", "p/k=A%2FB/data.csv"),
        ),
        (
            "https://bucket-a.s3.us-east-1.amazonaws.com/p/data.csv.gz",
            ("bucket-a", "p/data.csv.gz"),
        ),
        ("https://bucket-a.s3.amazonaws.com/p/data.csv.gz", ("bucket-a", "p/data.csv.gz")),
        (
            "https://bucket.with.dots.s3-eu-west-1.amazonaws.com/p/d.csv",
            ("bucket.with.dots", "p/d.csv"),
        ),
        (
            "https://s3.eu-west-1.amazonaws.com/bucket-a/p/data%20file.csv",
            ("bucket-a", "p/data file.csv"),
        ),
        ("https://s3.amazonaws.com/bucket-a/p/data.csv", ("bucket-a", "p/data.csv")),
    ],
)
def test_normalize_s3_url_forms(url: str, expected: tuple[str, str]) -> None:
    assert normalize_s3_url(url) == expected


@pytest.mark.parametrize(
    "value",
    [
        1764288000000,
        "1764288000000",
        "2025-11-28T00:00:00Z",
        "2025-11-28T00:00:00.000+00:00",
        "2025-11-28T00:00:00",
    ],
)
def test_timestamp_forms(value: object) -> None:
    assert parse_timestamp(value) == datetime(2025, 11, 28, tzinfo=UTC)


def test_credentials_repr_hides_secrets() -> None:
    creds = AwsCredentials("AKIAEXAMPLE", "secret-value-123456", "session-token-123456")
    assert "secret-value-123456" not in repr(creds) + str(creds)
    assert "session-token-123456" not in repr(creds) + str(creds)
    assert creds.is_temporary
