"""The Domo sandbox, exercised over real HTTP with `requests` and boto3 against moto."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import botocore
import botocore.config
import domo_assets_dev.sandbox.__main__ as sandbox_cli
import pytest
import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from botocore.exceptions import ClientError
from domo_assets_dev.sandbox import (
    ACCESS_KEY_ID,
    ACCOUNT_ID,
    AWKWARD_VALUES_ID,
    DAILY_ORDERS_ID,
    EU_EXPORT_BUCKET,
    EXPORT_BUCKET,
    EXPORT_KMS_ALIAS,
    EXPORT_ROLE_ARN,
    HR_ADMIN,
    HR_SALARIES_ID,
    KMS_EXPORT_BUCKET,
    LARGE_EVENTS_ID,
    MINTED_SECRET_PREFIX,
    MINTED_TOKEN_PREFIX,
    PHARMACY_CLAIMS_ID,
    PUBLIC_EXPORT_BUCKET,
    REGIONAL_SALES_ID,
    SAMPLE_DATASETS,
    WEST_MANAGER,
    Sandbox,
    SandboxControlError,
)
from domo_assets_dev.sandbox.auth import Credentials
from domo_assets_dev.sandbox.datasets import (
    AWKWARD_TEXTS,
    ORDER_DAYS,
    ORDERS_PER_DAY,
    synthetic_dataset_id,
)
from domo_assets_dev.sandbox.policy import UnsupportedPolicyError, decide, parse_policy
from domo_assets_dev.sandbox.s3 import MotoS3, make_client
from domo_assets_dev.sandbox.state import SandboxState

if TYPE_CHECKING:
    from conftest import DomoHttp

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CLI_READY_TIMEOUT_SECONDS = 30.0
CLI_EXIT_TIMEOUT_SECONDS = 15.0
TOE_PATTERN = re.compile(r"[A-Z0-9]{10}-[A-Z0-9]{5}-[A-Z0-9]{5}")
ISO_Z_PATTERN = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
PHARMACY_COLUMNS = [
    "Customer ID",
    "Cardholder ID",
    "Sex of Patient",
    "Date Filled",
    "Label Name",
    "Metric Quantity",
    "Days Supply",
]
ORDER_COUNT = ORDERS_PER_DAY * ORDER_DAYS
CLI = (sys.executable, "-m", "domo_assets_dev.sandbox")


def fast(sandbox: Sandbox, *dataset_ids: str, **behaviour: Any) -> None:
    """Make exports of these DataSets finish almost at once (plus any other behaviour)."""
    for dataset_id in dataset_ids:
        sandbox.control.set_behaviour(dataset_id, export_seconds=0.0, **behaviour)


def assert_domo_error(response: requests.Response, status: int, text: str = "") -> dict:
    """Check a Domo JSON error body and return it."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status
    assert body["statusReason"]
    assert TOE_PATTERN.fullmatch(body["toe"])
    assert text in body["message"]
    return body


def equals(column: str, value: Any, kind: str = "STRING_VALUE") -> dict[str, Any]:
    """Return a Domo EQUALS where expression."""
    return {
        "exprType": "EQUALS",
        "leftExpr": {"column": column, "exprType": "COLUMN"},
        "rightExpr": {"value": value, "exprType": kind},
    }


# Export lifecycle and files


def test_export_lifecycle_writes_gzip_csv_to_s3(domo: DomoHttp, sandbox: Sandbox) -> None:
    response = domo.start_export(PHARMACY_CLAIMS_ID)
    assert response.status_code == 200
    started = response.json()
    assert started["exportStatus"] == "exporting"
    assert started["urlRowCountMap"] is None
    assert "queuePosition" in started  # an undocumented extra field

    export = domo.wait(PHARMACY_CLAIMS_ID, started["exportId"])

    assert export["exportStatus"] == "success"
    assert export["compression"] == "gzip"
    assert export["exportFormat"] == "csv"
    assert export["bucket"] == EXPORT_BUCKET
    assert isinstance(export["started"], int)
    assert export["finished"] >= export["started"]
    ((url, count),) = export["urlRowCountMap"].items()
    assert url == (
        f"s3://{EXPORT_BUCKET}/{PHARMACY_CLAIMS_ID}/{export['exportId']}/export/data.csv.gz"
    )
    header, rows = domo.read(export)
    assert header == PHARMACY_COLUMNS
    assert len(rows) == count == 1_000
    assert {row[2] for row in rows} == {"M", "F"}
    assert all(date.fromisoformat(row[3]) for row in rows)


def test_uncompressed_export_round_trips_awkward_values(domo: DomoHttp, sandbox: Sandbox) -> None:
    fast(sandbox, AWKWARD_VALUES_ID)

    export = domo.export(AWKWARD_VALUES_ID)

    assert export["compression"] == "none"
    ((url, _),) = export["urlRowCountMap"].items()
    assert url.endswith("/export/data.csv")
    assert url.startswith(f"https://{EXPORT_BUCKET}.s3.us-east-1.amazonaws.com/")
    assert ISO_Z_PATTERN.fullmatch(export["started"])
    assert ISO_Z_PATTERN.fullmatch(export["finished"])
    header, rows = domo.read(export)
    assert header == ["ID", "Text", "Note", "Amount", "Created"]
    assert len(rows) == 50
    expected_texts = {"" if text is None else text for text in AWKWARD_TEXTS}
    assert {row[1] for row in rows} == expected_texts
    assert "windows\r\nnewline" in {row[1] for row in rows}
    assert "" in {row[3] for row in rows}  # nulls are empty fields


def test_include_bom_adds_a_utf8_bom(domo: DomoHttp, sandbox: Sandbox) -> None:
    fast(sandbox, REGIONAL_SALES_ID)

    with_bom = domo.export(REGIONAL_SALES_ID, domo.body(include_bom=True))
    without_bom = domo.export(REGIONAL_SALES_ID, domo.body(include_bom=False))

    assert with_bom["exportId"] != without_bom["exportId"]
    assert domo.read_file(next(iter(with_bom["urlRowCountMap"])))[0] is True
    had_bom, rows = domo.read_file(next(iter(without_bom["urlRowCountMap"])))
    assert had_bom is False
    assert rows[0] == ["Region", "Product", "Revenue"]


def test_large_export_is_split_into_numbered_files(domo: DomoHttp) -> None:
    export = domo.export(LARGE_EVENTS_ID)

    counts = export["urlRowCountMap"]
    names = sorted(url.rsplit("/", 1)[1] for url in counts)
    assert names == ["data-00000.csv.gz", "data-00001.csv.gz", "data-00002.csv.gz"]
    assert all(
        url.startswith(f"https://s3.us-east-1.amazonaws.com/{EXPORT_BUCKET}/") for url in counts
    )
    assert sum(counts.values()) == 300_000
    header, rows = domo.read(export)
    assert header[0] == "Event ID"
    assert [int(row[0]) for row in rows[:3]] == [1, 2, 3]
    assert len(rows) == 300_000


def test_rows_per_file_and_custom_path(domo: DomoHttp, sandbox: Sandbox) -> None:
    fast(sandbox, DAILY_ORDERS_ID, rows_per_file=100)
    body = {**domo.body(), "path": "/team/orders/"}

    export = domo.export(DAILY_ORDERS_ID, body)

    counts = export["urlRowCountMap"]
    assert sorted(counts.values()) == [60, 100, 100, 100]
    prefix = f"s3://{EXPORT_BUCKET}/team/orders/{export['exportId']}/export/data-0000"
    assert all(url.startswith(prefix) for url in counts)
    assert len(domo.read(export)[1]) == ORDER_COUNT


# Queries: columns, where, group by, order by


def test_columns_where_and_order_by(domo: DomoHttp, sandbox: Sandbox) -> None:
    fast(sandbox, DAILY_ORDERS_ID)
    where = {
        "exprType": "AND",
        "leftExpr": {
            "exprType": "IN",
            "leftExpr": {"column": "Region", "exprType": "COLUMN"},
            "rightExpr": {"values": [{"value": "East", "exprType": "STRING_VALUE"}, "West"]},
        },
        "rightExpr": {
            "exprType": "GREATER_THAN_EQUAL",
            "leftExpr": {"column": "Order Date", "exprType": "COLUMN"},
            "rightExpr": {"value": "2026-11-15", "exprType": "DATE_VALUE"},
        },
    }
    order = [
        {"expression": {"column": "Amount", "exprType": "COLUMN"}, "order": "DESCENDING"},
        {"column": "Order ID", "exprType": "COLUMN"},
    ]
    body = domo.body(
        columns=domo.columns("Order Date", "Region", "Amount"), where=where, orderByColumns=order
    )

    header, rows = domo.read(domo.export(DAILY_ORDERS_ID, body))

    assert header == ["Order Date", "Region", "Amount"]
    assert {row[1] for row in rows} == {"East", "West"}
    assert min(row[0] for row in rows) >= "2026-11-15"
    amounts = [Decimal(row[2]) for row in rows]
    assert amounts == sorted(amounts, reverse=True)
    expected = sandbox.control.true_row_count(
        DAILY_ORDERS_ID, "Region IN ('East', 'West') AND \"Order Date\" >= '2026-11-15'"
    )
    assert len(rows) == expected > 0


def test_group_by_gives_distinct_rows(domo: DomoHttp, sandbox: Sandbox) -> None:
    fast(sandbox, DAILY_ORDERS_ID)
    body = domo.body(
        columns=domo.columns("Region"),
        groupByColumns=domo.columns("Region"),
        orderByColumns=[
            {"expression": {"column": "Region", "exprType": "COLUMN"}, "order": "DESCENDING"}
        ],
    )

    header, rows = domo.read(domo.export(DAILY_ORDERS_ID, body))

    assert header == ["Region"]
    assert rows == [["West"], ["South"], ["North"], ["East"]]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"columns": [{"column": "Nope", "exprType": "COLUMN"}]}, "Nope"),
        ({"where": equals("Missing Column", "x")}, "Missing Column"),
        ({"where": {"exprType": "LIKE_MAGIC"}}, "where"),
        ({"where": equals("Amount", "not a number", "NUMERIC_VALUE")}, "Amount"),
        ({"columns": [{"column": "Region"}], "groupByColumns": [{"column": "Amount"}]}, "Region"),
    ],
)
def test_bad_queries_are_400(domo: DomoHttp, query: dict[str, Any], message: str) -> None:
    response = domo.start_export(DAILY_ORDERS_ID, domo.body(**query))

    assert_domo_error(response, 400, message)


@pytest.mark.parametrize("field", ["awsAccessKey", "awsAccessSecret", "bucket", "region"])
def test_missing_required_field_is_400(domo: DomoHttp, field: str) -> None:
    body = domo.body()
    del body[field]

    assert_domo_error(domo.start_export(PHARMACY_CLAIMS_ID, body), 400, field)


def test_bucket_must_exist_and_be_in_the_request_region(domo: DomoHttp, sandbox: Sandbox) -> None:
    fast(sandbox, PHARMACY_CLAIMS_ID)

    missing = domo.start_export(PHARMACY_CLAIMS_ID, domo.body(bucket="no-such-bucket"))
    cross = domo.start_export(PHARMACY_CLAIMS_ID, domo.body(bucket=EU_EXPORT_BUCKET))
    same = domo.export(PHARMACY_CLAIMS_ID, domo.body(bucket=EU_EXPORT_BUCKET, region="eu-west-1"))

    assert_domo_error(missing, 400, "no-such-bucket")
    assert "Cross-region exports are not supported" in assert_domo_error(cross, 400)["message"]
    assert same["exportStatus"] == "success"
    assert sandbox.control.export_count(PHARMACY_CLAIMS_ID) == 1


# Export rules: reuse, one active export, outcomes


def test_unchanged_data_returns_the_previous_export(domo: DomoHttp, sandbox: Sandbox) -> None:
    fast(sandbox, DAILY_ORDERS_ID)
    first = domo.export(DAILY_ORDERS_ID)

    again = domo.start_export(DAILY_ORDERS_ID)

    assert again.status_code == 200
    assert again.json()["exportId"] == first["exportId"]
    assert again.json()["exportStatus"] == "success"
    assert sandbox.control.export_count(DAILY_ORDERS_ID) == 1
    assert sandbox.control.exports(DAILY_ORDERS_ID)[0]["times_returned"] == 1


def test_changed_data_starts_a_new_export(domo: DomoHttp, sandbox: Sandbox) -> None:
    fast(sandbox, DAILY_ORDERS_ID)
    first = domo.export(DAILY_ORDERS_ID)

    last_updated = sandbox.control.change_dataset(DAILY_ORDERS_ID, rows=5)
    second = domo.export(DAILY_ORDERS_ID)

    assert second["exportId"] != first["exportId"]
    assert sum(second["urlRowCountMap"].values()) == ORDER_COUNT + 5
    metadata = domo.get(f"/api/data/v3/datasources/{DAILY_ORDERS_ID}").json()
    assert metadata["lastUpdated"] == last_updated
    assert metadata["rowCount"] == ORDER_COUNT + 5
    assert len(domo.list_exports(DAILY_ORDERS_ID)) == 2


def test_export_list_holds_history_in_no_order(domo: DomoHttp, sandbox: Sandbox) -> None:
    fast(sandbox, REGIONAL_SALES_ID)
    ids = [
        domo.export(REGIONAL_SALES_ID, {**domo.body(), "path": f"p{i}"})["exportId"]
        for i in range(4)
    ]

    listed = [export["exportId"] for export in domo.list_exports(REGIONAL_SALES_ID)]

    assert sorted(listed) == sorted(ids)
    assert listed != ids


def test_second_post_while_exporting_is_400_by_default(domo: DomoHttp, sandbox: Sandbox) -> None:
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, export_outcome="stuck")
    running = domo.start_export(PHARMACY_CLAIMS_ID).json()

    second = domo.start_export(PHARMACY_CLAIMS_ID, {**domo.body(), "path": "elsewhere"})

    assert_domo_error(second, 400, "already in progress")
    assert [e["exportStatus"] for e in domo.list_exports(PHARMACY_CLAIMS_ID)] == ["exporting"]
    assert running["exportStatus"] == "exporting"


def test_second_post_can_return_the_running_export(domo: DomoHttp, sandbox: Sandbox) -> None:
    sandbox.control.set_behaviour(
        PHARMACY_CLAIMS_ID, export_outcome="stuck", busy_behaviour="return_running"
    )
    running = domo.start_export(PHARMACY_CLAIMS_ID).json()

    second = domo.start_export(PHARMACY_CLAIMS_ID, {**domo.body(), "path": "elsewhere"})

    assert second.status_code == 200
    assert second.json()["exportId"] == running["exportId"]
    assert sandbox.control.export_count(PHARMACY_CLAIMS_ID) == 1


def test_new_export_can_be_201_and_queued(domo: DomoHttp, sandbox: Sandbox) -> None:
    fast(sandbox, REGIONAL_SALES_ID, new_export_status_code=201, queue_seconds=0.3)

    response = domo.start_export(REGIONAL_SALES_ID)

    assert response.status_code == 201
    assert response.json()["exportStatus"] == "none"
    assert domo.wait(REGIONAL_SALES_ID, response.json()["exportId"])["exportStatus"] == "success"


def test_error_outcome_reports_code_and_message(domo: DomoHttp, sandbox: Sandbox) -> None:
    fast(sandbox, PHARMACY_CLAIMS_ID, export_outcome="error")

    export = domo.export(PHARMACY_CLAIMS_ID)

    assert export["exportStatus"] == "error"
    assert export["errorCode"] == "EXPORT_FAILED"
    assert TOE_PATTERN.search(export["message"])
    assert export["urlRowCountMap"] is None


def test_misreported_rows_and_omitted_objects(domo: DomoHttp, sandbox: Sandbox) -> None:
    fast(sandbox, REGIONAL_SALES_ID, misreport_rows=3)
    fast(sandbox, HR_SALARIES_ID, omit_object=True)

    misreported = domo.export(REGIONAL_SALES_ID)
    omitted = domo.export(HR_SALARIES_ID, token=sandbox.tokens[HR_ADMIN])

    ((url, count),) = misreported["urlRowCountMap"].items()
    assert count == len(domo.read_file(url)[1]) - 1 + 3
    ((omitted_url, _),) = omitted["urlRowCountMap"].items()
    assert omitted_url.startswith(f"https://s3.us-east-1.amazonaws.com/{EXPORT_BUCKET}/")
    with pytest.raises(domo.s3.exceptions.NoSuchKey):
        domo.read_file(omitted_url)


@pytest.mark.parametrize(
    ("style", "pattern"),
    [
        ("s3", r"s3://domo-exports/[^ ]+/export/data\.csv\.gz"),
        ("virtual", r"https://domo-exports\.s3\.us-east-1\.amazonaws\.com/.+/data\.csv\.gz"),
        ("path", r"https://s3\.us-east-1\.amazonaws\.com/domo-exports/.+/data\.csv\.gz"),
    ],
)
def test_url_styles(domo: DomoHttp, sandbox: Sandbox, style: str, pattern: str) -> None:
    fast(sandbox, REGIONAL_SALES_ID, url_style=style, timestamp_style="iso")

    export = domo.export(REGIONAL_SALES_ID)

    ((url, count),) = export["urlRowCountMap"].items()
    assert re.fullmatch(pattern, url)
    assert len(domo.read_file(url)[1]) - 1 == count == 48
    assert ISO_Z_PATTERN.fullmatch(export["finished"])


def test_temporary_credentials_and_kms_key(domo: DomoHttp, sandbox: Sandbox) -> None:
    fast(sandbox, PHARMACY_CLAIMS_ID)
    sts = make_client("sts", sandbox.s3_url)
    credentials = sts.assume_role(RoleArn=EXPORT_ROLE_ARN, RoleSessionName="domo-export")[
        "Credentials"
    ]
    sts.close()
    body = {
        **domo.body(),
        "awsAccessKey": credentials["AccessKeyId"],
        "awsAccessSecret": credentials["SecretAccessKey"],
        "sessionToken": credentials["SessionToken"],
        "awsKmsKey": "alias/domo-exports",
    }

    export = domo.export(PHARMACY_CLAIMS_ID, body)

    (record,) = sandbox.control.exports(PHARMACY_CLAIMS_ID)
    head = domo.s3.head_object(Bucket=EXPORT_BUCKET, Key=record["object_keys"][0])
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith("alias/domo-exports")
    assert export["exportStatus"] == "success"
    assert record["request"]["had_session_token"] is True
    assert record["request"]["kms_key_id"] == "alias/domo-exports"
    assert record["request"]["aws_access_key_id"].startswith("ASIA")
    dumped = json.dumps(sandbox.control.exports())
    assert credentials["SecretAccessKey"] not in dumped
    assert credentials["SessionToken"] not in dumped


def test_temporary_key_without_session_token_fails_the_export(
    domo: DomoHttp, sandbox: Sandbox
) -> None:
    fast(sandbox, PHARMACY_CLAIMS_ID)
    body = {**domo.body(), "awsAccessKey": "ASIAEXAMPLEEXAMPLE00"}

    export = domo.export(PHARMACY_CLAIMS_ID, body)

    assert export["exportStatus"] == "error"
    assert export["errorCode"] == "S3_WRITE_FAILED"
    assert "sessionToken" in export["message"]


# Authentication, permissions, PDP


def test_auth_and_permission_errors(domo: DomoHttp, sandbox: Sandbox) -> None:
    path = f"/api/data/v3/datasources/{PHARMACY_CLAIMS_ID}"

    no_token = domo.session.get(sandbox.domo_url + path)
    bad_token = domo.get(path, token="not-a-token")
    bad_bearer = domo.session.get(
        f"{sandbox.domo_url}/v1/datasets/{PHARMACY_CLAIMS_ID}",
        headers={"Authorization": "Bearer not-a-token"},
    )
    unknown = domo.get("/api/data/v3/datasources/00000000-0000-4000-8000-000000000000")
    forbidden = domo.start_export(HR_SALARIES_ID)
    allowed = domo.get(f"/api/data/v3/datasources/{HR_SALARIES_ID}", token=sandbox.tokens[HR_ADMIN])

    assert_domo_error(no_token, 401)
    assert_domo_error(bad_token, 401)
    assert bad_bearer.status_code == 401
    assert bad_bearer.content == b""
    assert 'error="invalid_token"' in bad_bearer.headers["WWW-Authenticate"]
    assert_domo_error(unknown, 404)
    assert_domo_error(forbidden, 403)
    assert allowed.status_code == 200
    assert allowed.json()["name"] == "hr-salaries"


def issue_bearer(domo: DomoHttp, sandbox: Sandbox) -> dict[str, str]:
    """An Authorization header with a fresh bearer token from the sandbox's OAuth endpoint."""
    token = domo.session.post(
        f"{sandbox.domo_url}/oauth/token",
        params={"grant_type": "client_credentials", "scope": "data"},
        auth=(sandbox.client_id, sandbox.client_secret),
    ).json()["access_token"]
    return {"Authorization": f"bearer {token}"}


def test_each_credential_is_accepted_only_on_its_own_api(domo: DomoHttp, sandbox: Sandbox) -> None:
    bearer = issue_bearer(domo, sandbox)
    developer = domo.headers()
    instance = f"{sandbox.domo_url}/api/data/v3/datasources/{PHARMACY_CLAIMS_ID}"
    platform = f"{sandbox.domo_url}/v1/datasets/{PHARMACY_CLAIMS_ID}"

    assert domo.session.get(instance, headers=developer).status_code == 200
    assert domo.session.get(platform, headers=bearer).status_code == 200
    # The other API's credential is refused, alone or beside the right one.
    refused_bearer = assert_domo_error(domo.session.get(instance, headers=bearer), 401)
    assert "X-DOMO-Developer-Token" in refused_bearer["message"]
    assert_domo_error(domo.session.get(instance, headers={**developer, **bearer}), 401)
    refused_token = domo.session.get(platform, headers=developer)
    assert "not accepted by the platform API" in assert_domo_error(refused_token, 401)["message"]
    assert refused_token.headers["WWW-Authenticate"].startswith("Bearer")
    assert_domo_error(domo.session.get(platform, headers={**developer, **bearer}), 401)
    # The request log says which kinds of credential each request carried, never a value.
    log = sandbox.control.requests()
    assert [tuple(r["credentials"]) for r in log] == [
        ("basic",),
        ("developer_token",),
        ("bearer",),
        ("bearer",),
        ("developer_token", "bearer"),
        ("developer_token",),
        ("developer_token", "bearer"),
    ]
    assert sandbox.token not in json.dumps(log)


def test_pdp_limits_exports_and_queries(domo: DomoHttp, sandbox: Sandbox) -> None:
    fast(sandbox, REGIONAL_SALES_ID)
    manager = sandbox.tokens[WEST_MANAGER]

    _, all_rows = domo.read(domo.export(REGIONAL_SALES_ID))
    _, west_rows = domo.read(domo.export(REGIONAL_SALES_ID, token=manager))
    count = domo.post(
        f"/api/query/v1/execute/{REGIONAL_SALES_ID}",
        token=manager,
        json={"sql": "SELECT COUNT(*) FROM table"},
    ).json()
    metadata = domo.get(f"/api/data/v3/datasources/{REGIONAL_SALES_ID}", token=manager).json()

    expected_west = [row for row in all_rows if row[0] == "West"]
    assert sorted(west_rows) == sorted(expected_west)
    assert count["rows"] == [[len(expected_west)]]
    assert sandbox.control.true_row_count(REGIONAL_SALES_ID, user=WEST_MANAGER) == len(
        expected_west
    )
    assert metadata["rowCount"] == len(all_rows) == 48
    assert_domo_error(domo.start_export(PHARMACY_CLAIMS_ID, token=manager), 403)


def test_oauth_client_credentials_flow(domo: DomoHttp, sandbox: Sandbox) -> None:
    basic = base64.b64encode(f"{sandbox.client_id}:{sandbox.client_secret}".encode()).decode()
    token_url = f"{sandbox.domo_url}/oauth/token"

    issued = domo.session.post(
        token_url,
        params={"grant_type": "client_credentials", "scope": "data"},
        headers={"Authorization": f"Basic {basic}"},
    )
    bad_client = domo.session.post(
        token_url, params={"grant_type": "client_credentials"}, auth=(sandbox.client_id, "wrong")
    )

    assert issued.status_code == 200
    token = issued.json()
    assert token["token_type"] == "bearer"
    assert token["expires_in"] == 3600
    assert {"access_token", "scope", "customer", "userId", "role", "jti"} <= set(token)
    assert bad_client.status_code == 401
    bearer = {"Authorization": f"bearer {token['access_token']}"}
    dataset = domo.session.get(
        f"{sandbox.domo_url}/v1/datasets/{REGIONAL_SALES_ID}", headers=bearer
    )
    assert dataset.status_code == 200
    assert dataset.json()["rows"] == 48
    assert dataset.json()["pdpEnabled"] is True
    assert ISO_Z_PATTERN.fullmatch(dataset.json()["dataCurrentAt"])
    policies = domo.session.get(
        f"{sandbox.domo_url}/v1/datasets/{REGIONAL_SALES_ID}/policies", headers=bearer
    ).json()
    west = next(p for p in policies if p["type"] == "user")
    assert west["filters"] == [
        {"column": "Region", "values": ["West"], "operator": "EQUALS", "not": False}
    ]


def test_expired_access_token_is_rejected(domo: DomoHttp, sandbox: Sandbox) -> None:
    sandbox.control.set_oauth_expires_in(0)
    token = domo.session.get(
        f"{sandbox.domo_url}/oauth/token",
        params={"grant_type": "client_credentials", "scope": "data"},
        auth=(sandbox.client_id, sandbox.client_secret),
    ).json()

    response = domo.session.get(
        f"{sandbox.domo_url}/v1/datasets/{PHARMACY_CLAIMS_ID}",
        headers={"Authorization": f"Bearer {token['access_token']}"},
    )

    assert token["expires_in"] == 0
    assert response.status_code == 401
    assert "expired" in response.headers["WWW-Authenticate"]


# Metadata and query endpoints


def test_metadata_schema_and_current_user(domo: DomoHttp, sandbox: Sandbox) -> None:
    metadata = domo.get(f"/api/data/v3/datasources/{PHARMACY_CLAIMS_ID}?part=core,permission")
    schema = domo.get(f"/api/data/v2/datasources/{PHARMACY_CLAIMS_ID}/schemas/latest")
    me = domo.get("/api/content/v2/users/me")

    body = metadata.json()
    assert body["rowCount"] == 1_000
    assert body["columnCount"] == 7
    assert body["status"] == body["state"] == "SUCCESS"
    assert body["nextUpdate"] > body["lastUpdated"]
    assert set(body["owner"]) == {"id", "name", "type"}
    columns = schema.json()["schema"]["columns"]
    assert [c["name"] for c in columns] == PHARMACY_COLUMNS
    assert [c["type"] for c in columns][:4] == ["LONG", "STRING", "STRING", "DATE"]
    assert all(c["visible"] is True for c in columns)
    assert me.json()["id"] == body["owner"]["id"]
    assert me.json()["displayName"] == "Ana Lyst"


def test_count_queries_match_the_exported_data(domo: DomoHttp, sandbox: Sandbox) -> None:
    fast(sandbox, DAILY_ORDERS_ID)
    _, rows = domo.read(domo.export(DAILY_ORDERS_ID))
    by_region = Counter(row[1] for row in rows)
    cases = {
        "SELECT COUNT(*) FROM table": len(rows),
        "SELECT COUNT(*) FROM table WHERE \"Region\" = 'West'": by_region["West"],
        "select count(*) from table where `Region` in ('East', 'North');": by_region["East"]
        + by_region["North"],
        "SELECT COUNT(*) FROM table WHERE Region = 'West' OR Region = 'South'": by_region["West"]
        + by_region["South"],
        'SELECT COUNT(*) FROM table WHERE "Order Date" >= \'2026-11-10\' AND "Order Date" < '
        "'2026-11-12'": sum(1 for row in rows if "2026-11-10" <= row[0] < "2026-11-12"),
        "SELECT COUNT(*) FROM table WHERE Amount > 500": sum(
            1 for row in rows if Decimal(row[3]) > 500
        ),
    }

    for sql, expected in cases.items():
        response = domo.post(f"/api/query/v1/execute/{DAILY_ORDERS_ID}", json={"sql": sql})
        assert response.status_code == 200, sql
        assert response.json()["rows"] == [[expected]], sql
        assert response.json()["numRows"] == response.json()["numColumns"] == 1


def test_select_with_limit_and_bad_sql(domo: DomoHttp) -> None:
    url = f"/api/query/v1/execute/{PHARMACY_CLAIMS_ID}"

    rows = domo.post(url, json={"sql": "SELECT * FROM table LIMIT 3"}).json()
    bad = domo.post(url, json={"sql": "SELECT COUNT(*) FROM table WHERE"})
    wrong_table = domo.post(url, json={"sql": "SELECT COUNT(*) FROM claims"})

    assert rows["columns"] == PHARMACY_COLUMNS
    assert rows["numRows"] == len(rows["rows"]) == 3
    assert_domo_error(bad, 400, "SQL syntax error")
    assert_domo_error(wrong_table, 400, "table")


# Faults


def test_status_fault_with_retry_after(domo: DomoHttp, sandbox: Sandbox) -> None:
    sandbox.control.add_fault(path_regex=r"^/api/query/v1/export/", status=429, retry_after=2)

    throttled = domo.start_export(PHARMACY_CLAIMS_ID)
    accepted = domo.start_export(PHARMACY_CLAIMS_ID)

    assert_domo_error(throttled, 429)
    assert throttled.headers["Retry-After"] == "2"
    assert accepted.status_code == 200
    assert [(r["status"], r["fault"]) for r in sandbox.control.requests()] == [
        (429, "status"),
        (200, None),
    ]
    assert sandbox.control.export_count(PHARMACY_CLAIMS_ID) == 1


def test_reset_fault_closes_the_connection_before_processing(
    domo: DomoHttp, sandbox: Sandbox
) -> None:
    sandbox.control.add_fault(method="POST", path_regex="/export/", action="reset")

    with pytest.raises(requests.ConnectionError):
        domo.start_export(PHARMACY_CLAIMS_ID)

    assert sandbox.control.export_count(PHARMACY_CLAIMS_ID) == 0
    assert domo.start_export(PHARMACY_CLAIMS_ID).status_code == 200
    assert sandbox.control.requests()[0]["fault"] == "reset"


def test_delay_fault_slows_the_response(domo: DomoHttp, sandbox: Sandbox) -> None:
    sandbox.control.add_fault(
        method="GET", path_regex="/datasources/", action="delay", delay=0.5, times=2
    )
    path = f"/api/data/v3/datasources/{PHARMACY_CLAIMS_ID}"

    with pytest.raises(requests.Timeout):
        domo.get(path, timeout=0.1)
    started = time.monotonic()
    slow = domo.get(path, timeout=5)

    assert slow.status_code == 200
    assert time.monotonic() - started >= 0.5


def test_a_request_held_across_a_clear_is_not_logged_after_it(
    domo: DomoHttp, sandbox: Sandbox
) -> None:
    """A request a delay fault holds while the log is cleared (a test's reset) belongs to the
    log before it: it never shows up in the next one."""
    sandbox.control.add_fault(method="GET", path_regex="/datasources/", action="delay", delay=1.0)
    path = f"/api/data/v3/datasources/{PHARMACY_CLAIMS_ID}"
    held = threading.Thread(target=lambda: domo.get(path, timeout=10))
    held.start()
    deadline = time.monotonic() + 10
    while not any(f["hits"] for f in sandbox.control.faults()) and time.monotonic() < deadline:
        time.sleep(0.05)
    sandbox.control.clear_requests()
    held.join(timeout=10)
    assert not held.is_alive()
    assert sandbox.control.requests() == []
    domo.get(path)
    assert [r["path"] for r in sandbox.control.requests()] == [path]


def test_drop_response_fault_processes_then_drops(domo: DomoHttp, sandbox: Sandbox) -> None:
    fast(sandbox, PHARMACY_CLAIMS_ID)
    sandbox.control.add_fault(method="POST", path_regex="/export/", action="drop_response")

    with pytest.raises(requests.ConnectionError):
        domo.start_export(PHARMACY_CLAIMS_ID)

    (record,) = sandbox.control.exports(PHARMACY_CLAIMS_ID)
    listed = domo.list_exports(PHARMACY_CLAIMS_ID)
    assert [e["exportId"] for e in listed] == [record["export_id"]]
    assert sandbox.control.wait_for_export(record["export_id"])["status"] == "success"


def test_fault_rules_match_method_and_count(domo: DomoHttp, sandbox: Sandbox) -> None:
    rule = sandbox.control.add_fault(method="POST", path_regex="/export/", status=500, times=None)

    get = domo.get(f"/api/query/v1/export/{PHARMACY_CLAIMS_ID}")
    posts = [domo.start_export(PHARMACY_CLAIMS_ID).status_code for _ in range(3)]

    assert get.status_code == 200
    assert posts == [500, 500, 500]
    (listed,) = sandbox.control.faults()
    assert listed["id"] == rule["id"]
    assert listed["hits"] == 3
    sandbox.control.clear_faults()
    assert domo.start_export(PHARMACY_CLAIMS_ID).status_code == 200


@pytest.mark.parametrize("shape", ["domo", "oauth", "html", "bearer_challenge"])
def test_status_fault_answers_in_each_error_shape(
    domo: DomoHttp, sandbox: Sandbox, shape: str
) -> None:
    sandbox.control.add_fault(
        path_regex="/datasources/", status=401, shape=shape, message="Token rejected"
    )

    response = domo.get(f"/api/data/v3/datasources/{PHARMACY_CLAIMS_ID}")

    assert response.status_code == 401
    if shape == "domo":
        assert assert_domo_error(response, 401)["message"] == "Token rejected"
    elif shape == "oauth":
        assert response.json() == {"error": "invalid_token", "error_description": "Token rejected"}
    elif shape == "html":
        assert response.headers["Content-Type"].startswith("text/html")
        assert "<title>401 Unauthorized</title>" in response.text
        assert "Token rejected" in response.text
    else:
        assert response.content == b""
        assert response.headers["WWW-Authenticate"] == (
            'Bearer error="invalid_token", error_description="Token rejected"'
        )
    assert sandbox.control.faults()[0]["shape"] == shape


def test_status_fault_can_echo_the_secrets_of_the_request(domo: DomoHttp, sandbox: Sandbox) -> None:
    secret = 'aws/se"cr+et é'
    sandbox.control.add_fault(method="POST", path_regex="/export/", status=400, echo_secrets=True)

    response = domo.start_export(PHARMACY_CLAIMS_ID, {**domo.body(), "awsAccessSecret": secret})

    message = assert_domo_error(response, 400)["message"]
    for form in (
        secret,
        sandbox.token,
        'aws/se\\"cr+et \\u00e9',
        'aws/se\\"cr+et é',
        'aws\\/se\\"cr+et \\u00e9',
        "aws%2Fse%22cr%2Bet%20%C3%A9",
        "aws/se%22cr%2Bet%20%C3%A9",
        "aws%2Fse%22cr%2Bet+%C3%A9",
    ):
        assert form in message, form
    with pytest.raises(SandboxControlError) as both:
        sandbox.control.add_fault(body={"x": 1}, shape="html")
    assert both.value.status == 400


# Control API and S3 seeding


def test_control_api_validates_input(sandbox: Sandbox) -> None:
    with pytest.raises(SandboxControlError) as unknown_behaviour:
        sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, colour="blue")
    with pytest.raises(SandboxControlError) as bad_style:
        sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, url_style="ftp")
    with pytest.raises(SandboxControlError) as bad_action:
        sandbox.control.add_fault(action="explode")

    assert (
        unknown_behaviour.value.status == bad_style.value.status == bad_action.value.status == 400
    )
    assert sandbox.control.behaviour(PHARMACY_CLAIMS_ID)["url_style"] == "s3"


def test_datasets_listing_and_default_styles(sandbox: Sandbox) -> None:
    listing = {d["name"]: d for d in sandbox.control.datasets()}

    assert {name: d["id"] for name, d in listing.items()} == dict(SAMPLE_DATASETS)
    assert listing["large-events"]["row_count"] == 300_000
    styles = {
        (d["behaviour"]["url_style"], d["behaviour"]["timestamp_style"]) for d in listing.values()
    }
    assert {style for style, _ in styles} == {"s3", "virtual", "path"}
    assert {stamp for _, stamp in styles} == {"epoch_ms", "iso"}
    assert {d["compression"] for d in listing.values()} == {"gzip", "none"}


def test_reset_restores_the_initial_state(domo: DomoHttp, sandbox: Sandbox) -> None:
    fast(sandbox, REGIONAL_SALES_ID, url_style="path")
    domo.export(REGIONAL_SALES_ID)
    sandbox.control.change_dataset(REGIONAL_SALES_ID, rows=2)
    sandbox.control.add_fault(path_regex="nothing-matches")

    sandbox.control.reset()

    assert sandbox.control.exports() == []
    assert sandbox.control.faults() == []
    assert sandbox.control.requests() == []
    regional = next(d for d in sandbox.control.datasets() if d["id"] == REGIONAL_SALES_ID)
    assert regional["row_count"] == 48
    assert regional["behaviour"]["url_style"] == "virtual"
    assert domo.s3.list_objects_v2(Bucket=EXPORT_BUCKET)["KeyCount"] == 0


def test_seeded_buckets(sandbox: Sandbox, s3: Any) -> None:
    locations = {
        bucket: s3.get_bucket_location(Bucket=bucket)["LocationConstraint"]
        for bucket in (EXPORT_BUCKET, EU_EXPORT_BUCKET, PUBLIC_EXPORT_BUCKET)
    }
    block = s3.get_public_access_block(Bucket=EXPORT_BUCKET)["PublicAccessBlockConfiguration"]
    encryption = s3.get_bucket_encryption(Bucket=EXPORT_BUCKET)
    policy = json.loads(s3.get_bucket_policy(Bucket=PUBLIC_EXPORT_BUCKET)["Policy"])

    assert locations == {
        EXPORT_BUCKET: None,
        EU_EXPORT_BUCKET: "eu-west-1",
        PUBLIC_EXPORT_BUCKET: None,
    }
    assert all(block.values())
    rule = encryption["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert s3.get_public_access_block(Bucket=EU_EXPORT_BUCKET)["PublicAccessBlockConfiguration"]
    assert policy["Statement"][0]["Principal"] == "*"
    with pytest.raises(s3.exceptions.ClientError):
        s3.get_public_access_block(Bucket=PUBLIC_EXPORT_BUCKET)


def test_env_points_at_the_sandbox(sandbox: Sandbox) -> None:
    env = sandbox.env()

    assert env["DOMO_INSTANCE_URL"] == env["DOMO_API_URL"] == sandbox.domo_url
    assert env["AWS_ENDPOINT_URL"] == sandbox.s3_url
    assert env["DOMO_DEVELOPER_TOKEN"] == sandbox.token == sandbox.tokens["analyst"]
    assert env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert (env["DOMO_CLIENT_ID"], env["DOMO_CLIENT_SECRET"]) == (
        sandbox.client_id,
        sandbox.client_secret,
    )
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sandbox.domo_url)


# Lifecycle


def _port_is_free(url: str) -> bool:
    port = int(url.rsplit(":", 1)[1])
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_another_sandbox_starts_and_stops_cleanly(sandbox: Sandbox) -> None:
    with Sandbox(token="fixed-token") as other, requests.Session() as session:
        session.trust_env = False
        urls = (other.domo_url, other.s3_url)
        response = session.get(
            f"{other.domo_url}/api/content/v2/users/me",
            headers={"X-DOMO-Developer-Token": "fixed-token"},
        )
        assert response.json()["displayName"] == "Ana Lyst"
        assert other.domo_url != sandbox.domo_url

    assert all(_port_is_free(url) for url in urls)
    servers = [t for t in threading.enumerate() if t.name == "domo-sandbox-http"]
    assert len(servers) == 1  # only the session's sandbox is still serving
    sandbox.control.reset()  # the other sandbox reset moto's process-global state


def test_cli_runs_until_sigterm(tmp_path: Path) -> None:
    env_file = tmp_path / "sandbox.env"
    process = subprocess.Popen(
        [*CLI, "--port", "0", "--s3-port", "0", "--env-file", str(env_file)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )
    try:
        deadline = time.monotonic() + CLI_READY_TIMEOUT_SECONDS
        while not env_file.exists():
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the env file never appeared"
            time.sleep(0.1)
        env = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
        with requests.Session() as session:
            session.trust_env = False
            response = session.get(
                f"{env['DOMO_INSTANCE_URL']}/api/query/v1/export/{PHARMACY_CLAIMS_ID}",
                headers={"X-DOMO-Developer-Token": env["DOMO_DEVELOPER_TOKEN"]},
            )
        assert response.status_code == 200
        assert response.json() == []
        assert env["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=CLI_EXIT_TIMEOUT_SECONDS)

    assert process.returncode == 0
    assert f"export DOMO_DEVELOPER_TOKEN={env['DOMO_DEVELOPER_TOKEN']}" in stdout
    assert f"$DOMO_INSTANCE_URL/api/query/v1/export/{PHARMACY_CLAIMS_ID}" in stdout
    assert not env_file.exists()


def test_synthetic_datasets_are_deterministic_readable_and_reset(
    domo: DomoHttp, sandbox: Sandbox
) -> None:
    ids = sandbox.control.add_synthetic_datasets(3, rows=5)
    again = sandbox.control.add_synthetic_datasets(3, rows=5)
    listing = {d["id"]: d for d in sandbox.control.datasets()}
    export = domo.export(ids[1])
    header, rows = domo.read(export)
    with pytest.raises(SandboxControlError) as refused:
        sandbox.control.add_synthetic_datasets(-1)
    sandbox.control.reset()

    assert ids == again == [synthetic_dataset_id(i) for i in range(3)]
    assert len(listing) == len(SAMPLE_DATASETS) + 3
    assert [listing[i]["row_count"] for i in ids] == [5, 5, 5]
    assert listing[ids[0]]["readers"] == ["analyst"]
    assert export["exportStatus"] == "success"
    assert header == ["ID", "Label", "Amount"] and len(rows) == 5
    assert refused.value.status == 400
    assert {d["id"] for d in sandbox.control.datasets()} == set(SAMPLE_DATASETS.values())


def test_synthetic_datasets_of_the_constructor_survive_reset() -> None:
    state = SandboxState(Credentials.generate(None), MotoS3("127.0.0.1"), synthetic_datasets=2)
    added = state.add_synthetic_datasets(4)
    state.reset(s3=False)
    state.stop()

    assert added[:2] == [synthetic_dataset_id(0), synthetic_dataset_id(1)]
    assert set(state.datasets) == {*SAMPLE_DATASETS.values(), *added[:2]}


# Harsh readings of Domo's documentation: behaviours, injected history, modes

HARSH_FIELDS = ("previous_export", "query_shape", "sql_quotes")
STRICT_FIELDS = {"previous_export": "any_request", "query_shape": "objects", "sql_quotes": "mysql"}
DEFAULT_FIELDS = {
    "previous_export": "same_request",
    "query_shape": "columnar",
    "sql_quotes": "lenient",
}
THREE_DAYS_MS = 259_200_000


def query(domo: DomoHttp, dataset_id: str, sql: str, platform: bool = False) -> Any:
    """POST `sql` to an instance query endpoint with the developer token (or to the platform's
    with a bearer token); return the JSON answer."""
    if platform:
        response = domo.session.post(
            f"{domo.sandbox.domo_url}/v1/datasets/query/execute/{dataset_id}",
            json={"sql": sql},
            headers=issue_bearer(domo, domo.sandbox),
        )
    else:
        response = domo.post(f"/api/query/v1/execute/{dataset_id}", json={"sql": sql})
    assert response.status_code == 200, response.text
    return response.json()


def count(domo: DomoHttp, dataset_id: str, where: str) -> int:
    """Return ``SELECT COUNT(*) FROM table WHERE <where>`` in the columnar shape."""
    return query(domo, dataset_id, f"SELECT COUNT(*) FROM table WHERE {where}")["rows"][0][0]


def date_ms(value: int | str) -> float:
    """Return an export timestamp (epoch ms or ISO-8601 with a Z) as epoch milliseconds."""
    if isinstance(value, int):
        return value
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000


@pytest.fixture
def strict(sandbox: Sandbox) -> Iterator[Sandbox]:
    """The session's sandbox in strict mode, switched back to default afterwards (reset
    keeps the mode, so it would leak into later tests)."""
    sandbox.control.set_mode("strict")
    yield sandbox
    sandbox.control.set_mode("default")


def test_any_request_returns_the_latest_export_whatever_the_request(
    domo: DomoHttp, sandbox: Sandbox
) -> None:
    fast(sandbox, REGIONAL_SALES_ID, previous_export="any_request")
    first = domo.export(REGIONAL_SALES_ID)
    other_request = {
        **domo.body(include_bom=True, columns=domo.columns("Region")),
        "path": "west/only",
    }

    reused = domo.start_export(REGIONAL_SALES_ID, other_request, sandbox.tokens[WEST_MANAGER])
    sandbox.control.change_dataset(REGIONAL_SALES_ID)
    fresh = domo.start_export(REGIONAL_SALES_ID, other_request, sandbox.tokens[WEST_MANAGER])

    assert reused.status_code == 200
    assert reused.json()["exportId"] == first["exportId"]
    assert reused.json()["urlRowCountMap"] == first["urlRowCountMap"]
    header, rows = domo.read(reused.json())  # the analyst's files: every column and region
    assert header == ["Region", "Product", "Revenue"]
    assert {row[0] for row in rows} == {"East", "West", "North", "South"}
    assert fresh.json()["exportId"] != first["exportId"]
    records = sandbox.control.exports(REGIONAL_SALES_ID)
    assert [r["times_returned"] for r in records] == [1, 0]
    assert records[1]["request"]["path"] == "west/only"


def test_same_request_is_still_the_default(domo: DomoHttp, sandbox: Sandbox) -> None:
    fast(sandbox, REGIONAL_SALES_ID)
    first = domo.export(REGIONAL_SALES_ID)

    other = domo.start_export(REGIONAL_SALES_ID, {**domo.body(), "path": "elsewhere"})

    assert sandbox.control.behaviour(REGIONAL_SALES_ID)["previous_export"] == "same_request"
    assert other.json()["exportId"] != first["exportId"]


def test_post_answer_error_answers_a_rejected_export_and_writes_nothing(
    domo: DomoHttp, sandbox: Sandbox
) -> None:
    fast(sandbox, PHARMACY_CLAIMS_ID, post_answer="error")

    response = domo.start_export(PHARMACY_CLAIMS_ID)
    time.sleep(0.2)  # what a worker would need to write the files with export_seconds 0

    assert response.status_code == 200
    export = response.json()
    assert export["exportStatus"] == "error"
    assert export["errorCode"] == "EXPORT_REJECTED"
    assert re.search(rf"\(toe: {TOE_PATTERN.pattern}\)$", export["message"])
    assert export["finished"] >= export["started"]
    assert export["urlRowCountMap"] is None
    assert domo.list_exports(PHARMACY_CLAIMS_ID) == [export]
    (record,) = sandbox.control.exports(PHARMACY_CLAIMS_ID)
    assert (record["status"], record["object_keys"]) == ("error", [])
    assert domo.s3.list_objects_v2(Bucket=EXPORT_BUCKET)["KeyCount"] == 0


def test_objects_query_shape_on_both_query_endpoints(domo: DomoHttp, sandbox: Sandbox) -> None:
    sandbox.control.set_behaviour(DAILY_ORDERS_ID, query_shape="objects")
    count_sql = "SELECT COUNT(*) FROM table"

    instance = query(domo, DAILY_ORDERS_ID, count_sql)
    platform = query(domo, DAILY_ORDERS_ID, count_sql, platform=True)
    rows = query(domo, DAILY_ORDERS_ID, "SELECT `Region`, `Order ID` FROM table LIMIT 2")
    columnar = query(domo, PHARMACY_CLAIMS_ID, count_sql)

    assert instance == platform == [{"COUNT(*)": ORDER_COUNT}]
    assert len(rows) == 2
    assert [list(row) for row in rows] == [["Region", "Order ID"]] * 2
    assert rows[0]["Region"] in {"East", "West", "North", "South"}
    assert columnar["rows"] == [[1_000]]


def test_mysql_quotes_make_double_quoted_names_string_literals(
    domo: DomoHttp, sandbox: Sandbox
) -> None:
    true_long_supply = sandbox.control.true_row_count(PHARMACY_CLAIMS_ID, '"Days Supply" >= 30')
    true_west = sandbox.control.true_row_count(DAILY_ORDERS_ID, "\"Region\" IN ('West')")
    lenient = count(domo, PHARMACY_CLAIMS_ID, '"Days Supply" >= 30')
    for dataset_id in (PHARMACY_CLAIMS_ID, DAILY_ORDERS_ID):
        sandbox.control.set_behaviour(dataset_id, sql_quotes="mysql")

    assert 0 < true_long_supply < 1_000 and 0 < true_west < ORDER_COUNT
    assert lenient == true_long_supply
    assert count(domo, PHARMACY_CLAIMS_ID, '"Days Supply" >= 30') == 0  # '' -> 0 >= 30
    assert count(domo, PHARMACY_CLAIMS_ID, "`Days Supply` >= 30") == true_long_supply
    assert count(domo, DAILY_ORDERS_ID, "\"Region\" IN ('West')") == 0
    assert count(domo, DAILY_ORDERS_ID, "`Region` IN ('West')") == true_west
    assert count(domo, DAILY_ORDERS_ID, '`Region` = "West"') == true_west  # a string literal
    assert count(domo, DAILY_ORDERS_ID, "'31 days' > 30 AND `Region` = 'West'") == true_west
    assert count(domo, DAILY_ORDERS_ID, "'b' > 'a' AND 'no digits' = 0") == ORDER_COUNT
    named = domo.post(
        f"/api/query/v1/execute/{DAILY_ORDERS_ID}", json={"sql": 'SELECT "Region" FROM table'}
    )
    assert_domo_error(named, 400, "back-ticks")


@pytest.mark.parametrize("quotes", ["lenient", "mysql"])
def test_string_literals_and_back_ticked_names_read_mysql_escapes(
    domo: DomoHttp, sandbox: Sandbox, quotes: str
) -> None:
    sandbox.control.set_behaviour(AWKWARD_VALUES_ID, sql_quotes=quotes)
    texts = Counter(AWKWARD_TEXTS[index % len(AWKWARD_TEXTS)] for index in range(50))
    literals = {
        r"'back\\slash'": "back\\slash",
        r"'tab\tinside'": "tab\tinside",
        r"'line one\nline two'": "line one\nline two",
        r"'windows\r\nnewline'": "windows\r\nnewline",
        r"'double \"quotes\" inside'": 'double "quotes" inside',
        "'double \"quotes\" inside'": 'double "quotes" inside',
        r"'\"'": '"',
        r"'caf\é au \l\ait'": "café au lait",  # any other \x is x
    }
    constants = {
        r"'\'' = ''''": True,
        r"'a\%' = 'a%'": False,  # \% keeps its backslash
        r"'a\_' = 'a\\_'": True,
        r"'\0' = '0'": False,  # \0 is NUL
    }

    for literal, text in literals.items():
        assert count(domo, AWKWARD_VALUES_ID, f"`Text` = {literal}") == texts[text] > 0, literal
    for condition, holds in constants.items():
        assert count(domo, AWKWARD_VALUES_ID, condition) == (50 if holds else 0), condition
    doubled = domo.post(
        f"/api/query/v1/execute/{AWKWARD_VALUES_ID}",
        json={"sql": "SELECT COUNT(*) FROM table WHERE `Te``xt` = 'plain'"},
    )
    assert_domo_error(doubled, 400, "'Te`xt'")


def test_double_quoted_tokens_in_each_quote_mode(domo: DomoHttp, sandbox: Sandbox) -> None:
    url = f"/api/query/v1/execute/{AWKWARD_VALUES_ID}"
    plain = Counter(AWKWARD_TEXTS[index % len(AWKWARD_TEXTS)] for index in range(50))["plain"]
    lenient_sql = 'SELECT COUNT(*) FROM table WHERE "Te""x\\t" = \'plain\''
    lenient = domo.post(url, json={"sql": lenient_sql})
    sandbox.control.set_behaviour(AWKWARD_VALUES_ID, sql_quotes="mysql")

    assert_domo_error(lenient, 400, "'Te\"x\\t'")  # "" is a quote, a backslash is itself
    assert count(domo, AWKWARD_VALUES_ID, '`Text` = "pla""in"') == 0
    assert count(domo, AWKWARD_VALUES_ID, '\'say "hi"\' = "say ""hi"""') == 50
    assert count(domo, AWKWARD_VALUES_ID, r'`Text` = "pl\ain"') == plain > 0


def test_malformed_history_is_listed_but_never_reused(domo: DomoHttp, sandbox: Sandbox) -> None:
    fast(sandbox, PHARMACY_CLAIMS_ID)
    ids = sandbox.control.add_history(PHARMACY_CLAIMS_ID, "malformed")

    listed = {e["exportId"]: e for e in domo.list_exports(PHARMACY_CLAIMS_ID)}
    started = domo.start_export(PHARMACY_CLAIMS_ID)

    assert len(set(ids)) == 3 and set(listed) == set(ids)
    cancelled, null_count, bad_time = (listed[export_id] for export_id in ids)
    assert cancelled["exportStatus"] == "CANCELLED"
    assert null_count["exportStatus"] == "success"
    ((url, rows),) = null_count["urlRowCountMap"].items()
    assert rows is None and url.startswith(f"s3://{EXPORT_BUCKET}/{PHARMACY_CLAIMS_ID}/")
    assert bad_time["started"] == "not a time"
    assert isinstance(bad_time["finished"], int) and bad_time["finished"] < time.time() * 1000
    assert started.status_code == 200
    assert started.json()["exportId"] not in ids
    assert sandbox.control.export_count(PHARMACY_CLAIMS_ID) == 1  # injected: not records
    sandbox.control.reset()
    assert domo.list_exports(PHARMACY_CLAIMS_ID) == []


def test_stale_exporting_ghost_does_not_block(domo: DomoHttp, sandbox: Sandbox) -> None:
    before_ms = time.time() * 1000
    (ghost_id,) = sandbox.control.add_history(DAILY_ORDERS_ID, "stale_exporting")

    response = domo.start_export(DAILY_ORDERS_ID)
    (ghost,) = [e for e in domo.list_exports(DAILY_ORDERS_ID) if e["exportId"] == ghost_id]

    assert response.status_code == 200
    assert response.json()["exportId"] != ghost_id
    assert ghost["exportStatus"] == "exporting"
    assert ghost["finished"] is None and ghost["urlRowCountMap"] is None
    assert ISO_Z_PATTERN.fullmatch(ghost["started"])  # daily-orders' timestamp style
    started_ms = date_ms(ghost["started"])
    assert abs(before_ms - THREE_DAYS_MS - started_ms) < 60_000


def test_blocking_stale_export_refuses_posts_until_reset(domo: DomoHttp, sandbox: Sandbox) -> None:
    fast(sandbox, PHARMACY_CLAIMS_ID, busy_behaviour="return_running")
    (ghost_id,) = sandbox.control.add_history(
        PHARMACY_CLAIMS_ID, "stale_exporting", age_seconds=60, blocking=True
    )

    refused = domo.start_export(PHARMACY_CLAIMS_ID)
    (ghost,) = domo.list_exports(PHARMACY_CLAIMS_ID)
    sandbox.control.reset()
    accepted = domo.start_export(PHARMACY_CLAIMS_ID)

    assert_domo_error(refused, 400, f"already in progress for DataSet {PHARMACY_CLAIMS_ID}")
    assert ghost["exportId"] == ghost_id
    assert abs(time.time() * 1000 - 60_000 - ghost["started"]) < 60_000
    assert sandbox.control.export_count(PHARMACY_CLAIMS_ID) == 1
    assert accepted.status_code == 200


def test_finished_history_of_ten_thousand_is_listed(domo: DomoHttp, sandbox: Sandbox) -> None:
    """Ten thousand finished entries are injected and listed whole (how fast is measured by
    benchmarks/bench_history.py, not here: this machine is shared)."""
    sandbox.control.set_behaviour(AWKWARD_VALUES_ID, export_seconds=0.0)
    ids = sandbox.control.add_history(AWKWARD_VALUES_ID, "finished", count=10_000)
    listed = domo.list_exports(AWKWARD_VALUES_ID)
    fresh = domo.start_export(AWKWARD_VALUES_ID)

    assert len(set(ids)) == 10_000
    assert {e["exportId"] for e in listed} == set(ids)
    assert [e["exportId"] for e in listed] != ids  # mixed, not in injection order
    now_ms = time.time() * 1000
    for export in listed[:50]:
        assert export["exportStatus"] == "success"
        ((url, rows),) = export["urlRowCountMap"].items()
        assert url == (
            f"https://{EXPORT_BUCKET}.s3.us-east-1.amazonaws.com/{AWKWARD_VALUES_ID}/"
            f"{export['exportId']}/export/data.csv"  # awkward-values: virtual, uncompressed
        )
        assert rows == 50
        assert date_ms(export["started"]) < date_ms(export["finished"]) < now_ms
    assert fresh.json()["exportId"] not in ids


def test_raw_history_entries_and_their_validation(domo: DomoHttp, sandbox: Sandbox) -> None:
    entries = [{"exportId": "raw-1", "exportStatus": "queued?"}, 42, "text", None, {"x": 1}]

    ids = sandbox.control.add_history(REGIONAL_SALES_ID, entries=entries)
    listed = domo.list_exports(REGIONAL_SALES_ID)
    problems = [
        {"preset": "noise"},
        {"preset": "finished", "count": -1},
        {"preset": "stale_exporting", "blocking": "yes"},
        {"preset": "malformed", "count": 3},
        {"entries": "not a list"},
    ]
    errors = []
    for body in problems:
        with pytest.raises(SandboxControlError) as refused:
            sandbox.control.add_history(REGIONAL_SALES_ID, **body)
        errors.append(refused.value)

    assert ids == ["raw-1"]
    assert sorted(map(json.dumps, listed)) == sorted(map(json.dumps, entries))
    assert [error.status for error in errors] == [400] * len(problems)
    assert "malformed" in errors[0].body and "count" in errors[3].body


def test_strict_mode_presets_every_behaviour_and_survives_reset(
    domo: DomoHttp, strict: Sandbox
) -> None:
    control = strict.control
    control.set_behaviour(DAILY_ORDERS_ID, query_shape="columnar")
    overridden = control.behaviour(DAILY_ORDERS_ID)
    synthetic = control.add_synthetic_datasets(1)[0]
    synthetic_behaviour = control.behaviour(synthetic)

    control.reset()

    assert control.mode() == "strict"
    assert overridden["query_shape"] == "columnar"
    assert overridden["sql_quotes"] == "mysql"
    listing = control.datasets()
    assert {d["id"] for d in listing} == set(SAMPLE_DATASETS.values())
    for dataset in listing:
        assert {f: dataset["behaviour"][f] for f in HARSH_FIELDS} == STRICT_FIELDS
    assert {f: synthetic_behaviour[f] for f in HARSH_FIELDS} == STRICT_FIELDS
    assert query(domo, DAILY_ORDERS_ID, "SELECT COUNT(*) FROM table WHERE \"Region\" = 'West'") == [
        {"COUNT(*)": 0}
    ]
    control.set_mode("default")
    behaviour = control.behaviour(DAILY_ORDERS_ID)
    assert {f: behaviour[f] for f in HARSH_FIELDS} == DEFAULT_FIELDS
    with pytest.raises(SandboxControlError) as unknown:
        control.set_mode("harsh")
    assert unknown.value.status == 400 and "strict" in unknown.value.body


def test_strict_mode_reuses_any_previous_export(domo: DomoHttp, strict: Sandbox) -> None:
    fast(strict, PHARMACY_CLAIMS_ID)
    first = domo.export(PHARMACY_CLAIMS_ID)

    again = domo.start_export(PHARMACY_CLAIMS_ID, {**domo.body(), "path": "somewhere/else"})

    assert again.json()["exportId"] == first["exportId"]


def test_sandbox_and_cli_take_a_mode(sandbox: Sandbox) -> None:
    with pytest.raises(ValueError, match="strict"):
        Sandbox(mode="harsh")
    assert sandbox_cli.parse_args(["--mode", "strict"]).mode == "strict"
    assert sandbox_cli.parse_args([]).mode == "default"
    with Sandbox(mode="strict") as other:
        mode = other.control.mode()
        behaviour = other.control.behaviour(PHARMACY_CLAIMS_ID)
        banner = sandbox_cli.banner(other)
    sandbox.control.reset()  # the other sandbox reset moto's process-global state

    assert mode == "strict"
    assert {f: behaviour[f] for f in HARSH_FIELDS} == STRICT_FIELDS
    assert "Mode: strict" in banner
    assert sandbox.control.mode() == "default"


# STS: short-lived credentials, session policies and refusals

SOME_PREFIX_ARN = f"arn:aws:s3:::{EXPORT_BUCKET}/some/prefix/*"
ASIA_KEY_PATTERN = re.compile(r"ASIA[A-Z0-9]{16}")
OTHER_ACCOUNT = "210987654321"
EXPIRY_SLACK_SECONDS = 60


def policy_document(*statements: dict[str, Any]) -> dict[str, Any]:
    """Return an IAM policy document holding `statements`."""
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: str | list[str], resource: str | list[str]) -> dict[str, Any]:
    """Return an Allow statement."""
    return {"Effect": "Allow", "Action": action, "Resource": resource}


SOME_PREFIX_POLICY = policy_document(allow("s3:PutObject", SOME_PREFIX_ARN))


@pytest.fixture
def sts(sandbox: Sandbox) -> Iterator[Any]:
    """A boto3 STS client for the sandbox's moto server (signed with the long-lived key)."""
    client = make_client("sts", sandbox.s3_url)
    yield client
    client.close()


def mint(sts: Any, kind: str, policy: dict[str, Any] | None = None) -> dict[str, Any]:
    """Mint credentials of `kind` (``federation-token``, ``assumed-role``, ``session-token``)
    with `policy` as their session policy; return boto3's Credentials."""
    extra = {"Policy": json.dumps(policy)} if policy is not None else {}
    if kind == "federation-token":
        return sts.get_federation_token(Name="domo-export", DurationSeconds=900, **extra)[
            "Credentials"
        ]
    if kind == "assumed-role":
        answer = sts.assume_role(
            RoleArn=EXPORT_ROLE_ARN, RoleSessionName="domo-export", DurationSeconds=900, **extra
        )
        return answer["Credentials"]
    assert policy is None, "GetSessionToken takes no session policy"
    return sts.get_session_token(DurationSeconds=900)["Credentials"]


def body_with(
    domo: DomoHttp, credentials: dict[str, Any], path: str, **extra: Any
) -> dict[str, Any]:
    """Return an export request body handing Domo `credentials`, writing under `path`."""
    return {
        **domo.body(),
        "awsAccessKey": credentials["AccessKeyId"],
        "awsAccessSecret": credentials["SecretAccessKey"],
        "sessionToken": credentials["SessionToken"],
        "path": path,
        **extra,
    }


def keys_under(s3: Any, prefix: str) -> list[str]:
    """Return the keys of the export bucket under `prefix`."""
    listing = s3.list_objects_v2(Bucket=EXPORT_BUCKET, Prefix=prefix)
    return [item["Key"] for item in listing.get("Contents", [])]


def control_answers(sandbox: Sandbox, domo: DomoHttp) -> str:
    """Return every control API answer (and Domo's export list of pharmacy-claims, the
    DataSet the STS tests export) as one text."""
    control = sandbox.control
    answers = [
        control.exports(),
        control.requests(),
        control.faults(),
        control.datasets(),
        control.sts_calls(),
        control.mode(),
        domo.list_exports(PHARMACY_CLAIMS_ID),
    ]
    return json.dumps(answers)


def assert_no_secret(text: str, *credentials: dict[str, Any]) -> None:
    """Check that no minted secret or session token, nor any of `credentials`', is in text."""
    assert MINTED_SECRET_PREFIX not in text
    assert MINTED_TOKEN_PREFIX not in text
    for minted in credentials:
        assert minted["SecretAccessKey"] not in text
        assert minted["SessionToken"] not in text


def test_sts_log_records_each_action_with_its_exact_policy(sandbox: Sandbox, sts: Any) -> None:
    policy_text = json.dumps(SOME_PREFIX_POLICY, indent=1)  # kept as sent, whitespace too
    before = time.time()
    assumed = sts.assume_role(
        RoleArn=EXPORT_ROLE_ARN,
        RoleSessionName="domo-export-1",
        Policy=policy_text,
        ExternalId="ext-1",
        DurationSeconds=900,
    )["Credentials"]
    federated = sts.get_federation_token(
        Name="domo-export", Policy=policy_text, DurationSeconds=1200
    )["Credentials"]
    session = sts.get_session_token(DurationSeconds=900)["Credentials"]
    sts.get_caller_identity()

    calls = sandbox.control.sts_calls()

    common = {
        "role_arn": None,
        "role_session_name": None,
        "name": None,
        "duration_seconds": None,
        "policy": None,
        "policy_text": None,
        "external_id_given": False,
        "caller_access_key_id": ACCESS_KEY_ID,
        "issued_access_key_id": None,
        "expiration": None,
        "status": 200,
        "denied": False,
    }
    with_policy = {"policy": SOME_PREFIX_POLICY, "policy_text": policy_text}
    expected = [
        {
            **common,
            **with_policy,
            "action": "AssumeRole",
            "role_arn": EXPORT_ROLE_ARN,
            "role_session_name": "domo-export-1",
            "duration_seconds": 900,
            "external_id_given": True,
            "issued_access_key_id": assumed["AccessKeyId"],
        },
        {
            **common,
            **with_policy,
            "action": "GetFederationToken",
            "name": "domo-export",
            "duration_seconds": 1200,
            "issued_access_key_id": federated["AccessKeyId"],
        },
        {
            **common,
            "action": "GetSessionToken",
            "duration_seconds": 900,
            "issued_access_key_id": session["AccessKeyId"],
        },
        {**common, "action": "GetCallerIdentity"},
    ]
    assert [{k: v for k, v in c.items() if k not in ("time", "expiration")} for c in calls] == [
        {k: v for k, v in e.items() if k != "expiration"} for e in expected
    ]
    minted = (assumed, federated, session)
    for call, credentials in zip(calls[:3], minted, strict=True):
        assert date_ms(call["expiration"]) == credentials["Expiration"].timestamp() * 1000
    assert calls[3]["expiration"] is None
    assert all(before <= call["time"] <= time.time() for call in calls)
    assert_no_secret(json.dumps(calls), *minted)

    sandbox.control.clear_sts_calls()
    assert sandbox.control.sts_calls() == []
    sts.get_caller_identity()
    sandbox.control.reset()
    assert sandbox.control.sts_calls() == []


def test_minted_credentials_are_unique_temporary_and_marked(sandbox: Sandbox, sts: Any) -> None:
    kinds = ["federation-token", "session-token", "assumed-role"] * 2
    minted = [mint(sts, kind) for kind in kinds]

    keys = [c["AccessKeyId"] for c in minted]
    assert all(ASIA_KEY_PATTERN.fullmatch(key) for key in keys), keys
    assert len(set(keys)) == len(keys)
    for name, prefix in (
        ("SecretAccessKey", MINTED_SECRET_PREFIX),
        ("SessionToken", MINTED_TOKEN_PREFIX),
    ):
        values = [c[name] for c in minted]
        assert all(value.startswith(prefix) for value in values)
        assert len(set(values)) == len(values)
    assert {len(c["SecretAccessKey"]) for c in minted} == {len(MINTED_SECRET_PREFIX) + 40}
    lifetime = minted[0]["Expiration"].timestamp() - time.time()
    assert abs(lifetime - 900) < EXPIRY_SLACK_SECONDS
    # AssumeRole keeps moto's own key: moto still knows whose it is.
    assumed = minted[2]
    as_role = make_client(
        "sts",
        sandbox.s3_url,
        assumed["AccessKeyId"],
        assumed["SecretAccessKey"],
        assumed["SessionToken"],
    )
    try:
        identity = as_role.get_caller_identity()
    finally:
        as_role.close()
    assert identity["Arn"].endswith(":assumed-role/domo-export/domo-export")
    # moto's S3 accepts any key: minted credentials write and read.
    federated = minted[0]
    s3 = make_client(
        "s3",
        sandbox.s3_url,
        federated["AccessKeyId"],
        federated["SecretAccessKey"],
        federated["SessionToken"],
    )
    try:
        s3.put_object(Bucket=EXPORT_BUCKET, Key="minted/check.txt", Body=b"ok")
        assert s3.get_object(Bucket=EXPORT_BUCKET, Key="minted/check.txt")["Body"].read() == b"ok"
    finally:
        s3.close()


@pytest.mark.parametrize("kind", ["federation-token", "assumed-role"])
def test_session_policy_limits_domo_writes_to_its_prefix(
    domo: DomoHttp, sandbox: Sandbox, sts: Any, kind: str
) -> None:
    fast(sandbox, PHARMACY_CLAIMS_ID)
    credentials = mint(sts, kind, SOME_PREFIX_POLICY)

    allowed = domo.export(PHARMACY_CLAIMS_ID, body_with(domo, credentials, "some/prefix"))
    refused = domo.export(PHARMACY_CLAIMS_ID, body_with(domo, credentials, "other/prefix"))

    assert allowed["exportStatus"] == "success"
    assert keys_under(domo.s3, "some/prefix/") == [
        f"some/prefix/{allowed['exportId']}/export/data.csv.gz"
    ]
    assert refused["exportStatus"] == "error"
    assert refused["errorCode"] == "S3_WRITE_FAILED"
    message = refused["message"]
    resource = f"arn:aws:s3:::{EXPORT_BUCKET}/other/prefix/{refused['exportId']}/export/data.csv.gz"
    assert "s3:PutObject" in message and resource in message
    assert "because no session policy allows" in message
    assert TOE_PATTERN.search(message)
    assert keys_under(domo.s3, "other/") == []
    records = {r["export_id"]: r for r in sandbox.control.exports()}
    assert records[refused["exportId"]]["object_keys"] == []
    for record in records.values():
        assert record["request"]["credential_kind"] == kind
        assert record["request"]["session_policy"] == SOME_PREFIX_POLICY
    assert_no_secret(control_answers(sandbox, domo), credentials)


def test_kms_export_needs_generate_data_key_on_the_key_arn(
    domo: DomoHttp, sandbox: Sandbox, sts: Any
) -> None:
    fast(sandbox, PHARMACY_CLAIMS_ID)
    key_arn = sandbox.export_kms_key_arn
    put_only = mint(sts, "federation-token", SOME_PREFIX_POLICY)
    with_kms = mint(
        sts,
        "federation-token",
        policy_document(
            allow("s3:PutObject", SOME_PREFIX_ARN), allow("kms:GenerateDataKey", key_arn)
        ),
    )
    by_alias = {"awsKmsKey": EXPORT_KMS_ALIAS}  # S3 resolves it; IAM checks the key ARN

    refused = domo.export(
        PHARMACY_CLAIMS_ID, body_with(domo, put_only, "some/prefix/a", **by_alias)
    )
    allowed = domo.export(
        PHARMACY_CLAIMS_ID, body_with(domo, with_kms, "some/prefix/b", **by_alias)
    )
    missing = {"awsKmsKey": f"arn:aws:kms:us-east-1:{ACCOUNT_ID}:key/9999"}
    no_key = domo.export(PHARMACY_CLAIMS_ID, body_with(domo, with_kms, "some/prefix/c", **missing))

    assert refused["exportStatus"] == "error"
    assert f'kms:GenerateDataKey on resource: "{key_arn}"' in refused["message"]
    assert "session policy" in refused["message"]
    assert keys_under(domo.s3, "some/prefix/a/") == []
    assert allowed["exportStatus"] == "success"
    (key,) = keys_under(domo.s3, "some/prefix/b/")
    assert domo.s3.head_object(Bucket=EXPORT_BUCKET, Key=key)["ServerSideEncryption"] == "aws:kms"
    assert no_key["exportStatus"] == "error"
    assert "KMS.NotFoundException" in no_key["message"]
    assert missing["awsKmsKey"] in no_key["message"]


def test_multipart_sse_kms_write_needs_decrypt_too(
    domo: DomoHttp, sandbox: Sandbox, sts: Any
) -> None:
    """S3 decrypts the parts' data keys to complete a multipart upload with SSE-KMS."""
    key_arn = sandbox.export_kms_key_arn
    generate_only = mint(
        sts,
        "federation-token",
        policy_document(
            allow("s3:PutObject", SOME_PREFIX_ARN), allow("kms:GenerateDataKey", key_arn)
        ),
    )
    both = mint(
        sts,
        "federation-token",
        policy_document(
            allow("s3:PutObject", SOME_PREFIX_ARN),
            allow(["kms:GenerateDataKey", "kms:Decrypt"], key_arn),
        ),
    )
    kms = {"awsKmsKey": key_arn}

    fast(sandbox, PHARMACY_CLAIMS_ID, upload="single")
    single = domo.export(PHARMACY_CLAIMS_ID, body_with(domo, generate_only, "some/prefix/a", **kms))
    sandbox.control.change_dataset(PHARMACY_CLAIMS_ID)
    fast(sandbox, PHARMACY_CLAIMS_ID, upload="multipart")
    refused = domo.export(
        PHARMACY_CLAIMS_ID, body_with(domo, generate_only, "some/prefix/b", **kms)
    )
    multipart = domo.export(PHARMACY_CLAIMS_ID, body_with(domo, both, "some/prefix/c", **kms))

    assert single["exportStatus"] == "success"
    assert refused["exportStatus"] == "error"
    assert f'kms:Decrypt on resource: "{key_arn}"' in refused["message"]
    assert keys_under(domo.s3, "some/prefix/b/") == []
    assert multipart["exportStatus"] == "success"
    (key,) = keys_under(domo.s3, "some/prefix/c/")
    head = domo.s3.head_object(Bucket=EXPORT_BUCKET, Key=key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["ETag"].strip('"').endswith("-1"), "written as a multipart upload"


def test_bucket_default_kms_key_needs_the_grant_too(
    domo: DomoHttp, sandbox: Sandbox, sts: Any
) -> None:
    """Without awsKmsKey, S3 encrypts with the bucket's default key: the writer needs it."""
    fast(sandbox, PHARMACY_CLAIMS_ID)
    key_arn = sandbox.export_kms_key_arn
    prefix = f"arn:aws:s3:::{KMS_EXPORT_BUCKET}/some/prefix/*"
    put_only = mint(sts, "federation-token", policy_document(allow("s3:PutObject", prefix)))
    with_kms = mint(
        sts,
        "federation-token",
        policy_document(allow("s3:PutObject", prefix), allow("kms:GenerateDataKey", key_arn)),
    )

    refused = domo.export(
        PHARMACY_CLAIMS_ID,
        {**body_with(domo, put_only, "some/prefix/a"), "bucket": KMS_EXPORT_BUCKET},
    )
    allowed = domo.export(
        PHARMACY_CLAIMS_ID,
        {**body_with(domo, with_kms, "some/prefix/b"), "bucket": KMS_EXPORT_BUCKET},
    )

    assert refused["exportStatus"] == "error"
    assert f'kms:GenerateDataKey on resource: "{key_arn}"' in refused["message"]
    assert allowed["exportStatus"] == "success"


def test_resource_account_condition_holds_writes_to_the_bucket_owners_account(
    domo: DomoHttp, sandbox: Sandbox, sts: Any
) -> None:
    fast(sandbox, PHARMACY_CLAIMS_ID)

    def held_to(account: str) -> dict[str, Any]:
        statement = allow("s3:PutObject", SOME_PREFIX_ARN) | {
            "Condition": {"StringEquals": {"s3:ResourceAccount": account}}
        }
        return mint(sts, "federation-token", policy_document(statement))

    own = domo.export(PHARMACY_CLAIMS_ID, body_with(domo, held_to(ACCOUNT_ID), "some/prefix/a"))
    other = domo.export(
        PHARMACY_CLAIMS_ID, body_with(domo, held_to(OTHER_ACCOUNT), "some/prefix/b")
    )

    assert own["exportStatus"] == "success"
    assert other["exportStatus"] == "error"
    assert "because no session policy allows the s3:PutObject action" in other["message"]
    assert keys_under(domo.s3, "some/prefix/b/") == []


@pytest.mark.parametrize(
    ("condition", "context", "allowed"),
    [
        ({"StringEquals": {"s3:ResourceAccount": "1"}}, {"s3:ResourceAccount": "1"}, True),
        ({"StringEquals": {"S3:resourceaccount": ["2", "1"]}}, {"s3:ResourceAccount": "1"}, True),
        ({"StringEquals": {"s3:ResourceAccount": "2"}}, {"s3:ResourceAccount": "1"}, False),
        ({"StringEquals": {"s3:ResourceAccount": "1"}}, {}, False),
        ({"StringNotEquals": {"s3:ResourceAccount": "2"}}, {"s3:ResourceAccount": "1"}, True),
        ({"StringNotEquals": {"s3:ResourceAccount": "1"}}, {}, True),
        ({"StringLike": {"s3:ResourceAccount": "12*"}}, {"s3:ResourceAccount": "123"}, True),
        (
            {"StringEquals": {"s3:ResourceAccount": "1"}, "StringLike": {"s3:x": "a*"}},
            {"s3:ResourceAccount": "1", "s3:x": "b"},
            False,
        ),
    ],
)
def test_policy_conditions_follow_iam(
    condition: dict[str, Any], context: dict[str, str], allowed: bool
) -> None:
    policy = parse_policy(
        json.dumps({"Statement": allow("s3:PutObject", "*") | {"Condition": condition}})
    )

    assert decide(policy, "s3:PutObject", "arn:aws:s3:::b/k", context).allowed is allowed


def test_expected_bucket_owner_is_enforced_and_logged(sandbox: Sandbox, s3: Any) -> None:
    s3.put_object(Bucket=EXPORT_BUCKET, Key="owner/a.txt", Body=b"a")
    source = {"Bucket": EXPORT_BUCKET, "Key": "owner/a.txt"}
    sandbox.control.clear_s3_calls()

    own = s3.head_object(Bucket=EXPORT_BUCKET, Key="owner/a.txt", ExpectedBucketOwner=ACCOUNT_ID)
    with pytest.raises(ClientError) as head:
        s3.head_object(Bucket=EXPORT_BUCKET, Key="owner/a.txt", ExpectedBucketOwner=OTHER_ACCOUNT)
    with pytest.raises(ClientError) as put:
        s3.put_object(
            Bucket=EXPORT_BUCKET, Key="owner/b.txt", Body=b"b", ExpectedBucketOwner=OTHER_ACCOUNT
        )
    with pytest.raises(ClientError) as copy:
        s3.copy_object(
            Bucket=EXPORT_BUCKET,
            Key="owner/c.txt",
            CopySource=source,
            ExpectedBucketOwner=ACCOUNT_ID,
            ExpectedSourceBucketOwner=OTHER_ACCOUNT,
        )
    copied = s3.copy_object(
        Bucket=EXPORT_BUCKET,
        Key="owner/d.txt",
        CopySource=source,
        ExpectedSourceBucketOwner=ACCOUNT_ID,
    )

    assert own["ContentLength"] == 1
    assert head.value.response["Error"]["Code"] == "403"
    for refused in (put, copy):
        assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert copied["CopyObjectResult"]["ETag"]
    assert keys_under(s3, "owner/") == ["owner/a.txt", "owner/d.txt"]
    calls = [
        (c["method"], c["key"], c["expected_owner"], c["source_expected_owner"], c["status"])
        for c in sandbox.control.s3_calls()
        if c["key"] != "owner/" and c["method"] != "GET"
    ]
    assert calls == [
        ("HEAD", "owner/a.txt", ACCOUNT_ID, None, 200),
        ("HEAD", "owner/a.txt", OTHER_ACCOUNT, None, 403),
        ("PUT", "owner/b.txt", OTHER_ACCOUNT, None, 403),
        ("PUT", "owner/c.txt", ACCOUNT_ID, OTHER_ACCOUNT, 403),
        ("PUT", "owner/d.txt", None, ACCOUNT_ID, 200),
    ]


def test_explicit_deny_wins_over_any_allow(domo: DomoHttp, sandbox: Sandbox, sts: Any) -> None:
    fast(sandbox, PHARMACY_CLAIMS_ID)
    policy = policy_document(
        allow("s3:*", "*"),
        {
            "Sid": "NoPrivate",
            "Effect": "Deny",
            "Action": ["s3:GetObject", "S3:PutObj?ct"],  # case-insensitive, ? is one character
            "Resource": f"arn:aws:s3:::{EXPORT_BUCKET}/some/prefix/private/*",
        },
    )
    credentials = mint(sts, "assumed-role", policy)

    public = domo.export(PHARMACY_CLAIMS_ID, body_with(domo, credentials, "some/prefix/public"))
    private = domo.export(PHARMACY_CLAIMS_ID, body_with(domo, credentials, "some/prefix/private"))

    assert public["exportStatus"] == "success"
    assert private["exportStatus"] == "error"
    assert private["errorCode"] == "S3_WRITE_FAILED"
    assert "explicit deny in a session policy" in private["message"]
    assert "s3:PutObject" in private["message"]
    assert keys_under(domo.s3, "some/prefix/private/") == []


@pytest.mark.parametrize(
    ("statement", "action", "resource", "allowed"),
    [
        (allow("s3:Put*", "arn:aws:s3:::b/p/*"), "s3:PutObject", "arn:aws:s3:::b/p/x/y.csv", True),
        (allow("S3:PUTOBJECT", "arn:aws:s3:::b/p/*"), "s3:PutObject", "arn:aws:s3:::b/p/k", True),
        (allow("s3:PutObject", "arn:aws:s3:::B/p/*"), "s3:PutObject", "arn:aws:s3:::b/p/k", False),
        (allow("s3:PutObject", "arn:aws:s3:::b/p?/*"), "s3:PutObject", "arn:aws:s3:::b/p1/k", True),
        (
            allow("s3:PutObject", "arn:aws:s3:::b/p?/*"),
            "s3:PutObject",
            "arn:aws:s3:::b/p12/k",
            False,
        ),
        (allow(["s3:GetObject", "s3:PutObject"], ["x", "*"]), "s3:PutObject", "arn:x", True),
        (allow("s3:GetObject", "*"), "s3:PutObject", "arn:aws:s3:::b/k", False),
        (
            {"Effect": "Allow", "NotAction": "s3:Delete*", "Resource": "*"},
            "s3:PutObject",
            "arn:aws:s3:::b/k",
            True,
        ),
        (
            {"Effect": "Allow", "Action": "*", "NotResource": "arn:aws:s3:::b/*"},
            "s3:PutObject",
            "arn:aws:s3:::b/k",
            False,
        ),
    ],
)
def test_session_policy_matching_follows_iam_wildcards(
    statement: dict[str, Any], action: str, resource: str, allowed: bool
) -> None:
    policy = parse_policy(json.dumps({"Statement": statement}))

    assert decide(policy, action, resource).allowed is allowed


def test_policies_sts_cannot_read_or_sandbox_cannot_evaluate(sandbox: Sandbox, sts: Any) -> None:
    with pytest.raises(ClientError) as not_json:
        sts.get_federation_token(Name="domo-export", Policy="{not json")
    with pytest.raises(ClientError) as no_effect:
        sts.assume_role(
            RoleArn=EXPORT_ROLE_ARN,
            RoleSessionName="domo-export",
            Policy=json.dumps({"Statement": [{"Action": "s3:*", "Resource": "*"}]}),
        )
    conditional = allow("s3:PutObject", "*") | {
        "Condition": {"Bool": {"aws:SecureTransport": "true"}}
    }

    assert not_json.value.response["Error"]["Code"] == "MalformedPolicyDocument"
    assert no_effect.value.response["Error"]["Code"] == "MalformedPolicyDocument"
    assert [(c["status"], c["policy"]) for c in sandbox.control.sts_calls()] == [
        (400, None),
        (400, {"Statement": [{"Action": "s3:*", "Resource": "*"}]}),
    ]
    with pytest.raises(UnsupportedPolicyError, match="Condition"):
        decide(policy_document(conditional), "s3:PutObject", "arn:aws:s3:::b/k")


def test_credential_kinds_and_keys_without_a_session_policy(
    domo: DomoHttp, sandbox: Sandbox, sts: Any
) -> None:
    fast(sandbox, PHARMACY_CLAIMS_ID)
    unknown = {"AccessKeyId": "ASIAEXAMPLEEXAMPLE00", "SecretAccessKey": "s", "SessionToken": "t"}
    long_lived = {"AccessKeyId": ACCESS_KEY_ID, "SecretAccessKey": "s", "SessionToken": ""}
    handed = {
        "long-lived": long_lived,
        "session-token": mint(sts, "session-token"),
        "assumed-role": mint(sts, "assumed-role"),
        "unknown-temporary": unknown,
    }

    exports = {
        kind: domo.export(PHARMACY_CLAIMS_ID, body_with(domo, credentials, f"anywhere/{kind}"))
        for kind, credentials in handed.items()
    }
    no_policy = domo.export(
        PHARMACY_CLAIMS_ID,
        body_with(domo, mint(sts, "federation-token"), "anywhere/federated"),
    )

    assert {kind: e["exportStatus"] for kind, e in exports.items()} == dict.fromkeys(
        handed, "success"
    )
    records = {r["export_id"]: r["request"] for r in sandbox.control.exports()}
    for kind, export in exports.items():
        assert records[export["exportId"]]["credential_kind"] == kind
        assert records[export["exportId"]]["session_policy"] is None
    # A federation token minted without a policy has no permissions, as in AWS.
    assert no_policy["exportStatus"] == "error"
    assert "because no session policy allows the s3:PutObject action" in no_policy["message"]
    assert records[no_policy["exportId"]]["credential_kind"] == "federation-token"


def test_expired_credentials_fail_the_write(domo: DomoHttp, sandbox: Sandbox, sts: Any) -> None:
    fast(sandbox, PHARMACY_CLAIMS_ID)
    credentials = mint(sts, "federation-token", SOME_PREFIX_POLICY)

    expiration = sandbox.control.expire_credentials(credentials["AccessKeyId"])
    export = domo.export(PHARMACY_CLAIMS_ID, body_with(domo, credentials, "some/prefix"))

    assert date_ms(expiration) <= time.time() * 1000
    assert export["exportStatus"] == "error"
    assert export["errorCode"] == "S3_WRITE_FAILED"
    assert "ExpiredToken" in export["message"]
    assert keys_under(domo.s3, "some/") == []
    with pytest.raises(SandboxControlError) as unknown:
        sandbox.control.expire_credentials("ASIANEVERMINTED00000")
    assert unknown.value.status == 404


def test_denied_sts_actions_answer_access_denied_until_reset(sandbox: Sandbox, sts: Any) -> None:
    denied = sandbox.control.deny_sts(["AssumeRole", "sts:GetFederationToken"])

    with pytest.raises(ClientError) as assume:
        mint(sts, "assumed-role")
    with pytest.raises(ClientError) as federate:
        mint(sts, "federation-token", SOME_PREFIX_POLICY)
    session = mint(sts, "session-token")

    assert denied == ["AssumeRole", "GetFederationToken"]
    for refused, action in ((assume, "AssumeRole"), (federate, "GetFederationToken")):
        error = refused.value.response["Error"]
        assert error["Code"] == "AccessDenied" and error["Type"] == "Sender"
        assert f"is not authorized to perform: sts:{action}" in error["Message"]
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert EXPORT_ROLE_ARN in assume.value.response["Error"]["Message"]
    calls = sandbox.control.sts_calls()
    assert [(c["action"], c["status"], c["denied"]) for c in calls] == [
        ("AssumeRole", 403, True),
        ("GetFederationToken", 403, True),
        ("GetSessionToken", 200, False),
    ]
    assert calls[0]["issued_access_key_id"] is None
    assert calls[1]["policy"] == SOME_PREFIX_POLICY
    assert calls[2]["issued_access_key_id"] == session["AccessKeyId"]
    # AWS: no IAM policy can refuse GetCallerIdentity or GetSessionToken.
    for bad, words in (
        ("GetCallerIdentity", "GetCallerIdentity cannot be denied"),
        ("sts:GetSessionToken", "GetSessionToken cannot be denied"),
        ("Explode", "Explode"),
    ):
        with pytest.raises(SandboxControlError) as refused_call:
            sandbox.control.deny_sts([bad])
        assert refused_call.value.status == 400
        assert words in refused_call.value.body

    sandbox.control.reset()

    assert ASIA_KEY_PATTERN.fullmatch(mint(sts, "assumed-role")["AccessKeyId"])


def unvalidated_sts(sandbox: Sandbox, credentials: dict[str, Any] | None = None) -> Any:
    """Return an STS client that sends what it is given (botocore checks some bounds itself),
    signed with `credentials` (boto3's Credentials) or the sandbox's long-term key."""
    keys = (
        {
            "aws_access_key_id": credentials["AccessKeyId"],
            "aws_secret_access_key": credentials["SecretAccessKey"],
            "aws_session_token": credentials["SessionToken"],
        }
        if credentials is not None
        else {"aws_access_key_id": ACCESS_KEY_ID, "aws_secret_access_key": "long-term"}
    )
    return boto3.session.Session().client(
        "sts",
        endpoint_url=sandbox.s3_url,
        region_name="us-east-1",
        config=botocore.config.Config(parameter_validation=False),
        **keys,
    )


def sts_error(call: Any, **kwargs: Any) -> tuple[int, str, str]:
    """Return (HTTP status, error code, message) of an STS call that must fail."""
    with pytest.raises(ClientError) as refused:
        call(**kwargs)
    error = refused.value.response["Error"]
    return (
        refused.value.response["ResponseMetadata"]["HTTPStatusCode"],
        error["Code"],
        error["Message"],
    )


def test_sts_keeps_aws_rules_whatever_the_permissions(sandbox: Sandbox, sts: Any) -> None:
    """What AWS's STS refuses to every caller: long sessions for chained roles, federation or
    session tokens from temporary credentials, durations out of bounds, long session policies."""
    long_term = unvalidated_sts(sandbox)
    role_session = mint(sts, "assumed-role")
    session_token = mint(sts, "session-token")
    as_role = unvalidated_sts(sandbox, role_session)
    as_session = unvalidated_sts(sandbox, session_token)
    iam = make_client("iam", sandbox.s3_url)
    try:
        iam.create_role(RoleName="default-max", AssumeRolePolicyDocument="{}")
        default_max = iam.get_role(RoleName="default-max")["Role"]["Arn"]
        chained = {"RoleArn": EXPORT_ROLE_ARN, "RoleSessionName": "chained"}
        assert sts_error(as_role.assume_role, **chained, DurationSeconds=3601) == (
            400,
            "ValidationError",
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed "
            "by role chaining.",
        )
        assert as_role.assume_role(**chained, DurationSeconds=3600)["Credentials"]
        # Not chained, the role's MaxSessionDuration bounds it (the export role's is 12 h).
        assert long_term.assume_role(**chained, DurationSeconds=43200)["Credentials"]
        assert sts_error(
            long_term.assume_role,
            RoleArn=default_max,
            RoleSessionName="s",
            DurationSeconds=3601,
        ) == (
            400,
            "ValidationError",
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
        )
        for temporary in (as_role, as_session):
            for call, name in (
                (temporary.get_federation_token, "GetFederationToken"),
                (temporary.get_session_token, "GetSessionToken"),
            ):
                kwargs = {"Name": "domo-x"} if name == "GetFederationToken" else {}
                assert sts_error(call, **kwargs) == (
                    403,
                    "AccessDenied",
                    f"Cannot call {name} with session credentials",
                )
        bounds = [
            (long_term.get_federation_token, {"Name": "n"}, 899, ">= 900"),
            (long_term.get_federation_token, {"Name": "n"}, 129601, "<= 129600"),
            (long_term.get_session_token, {}, 129601, "<= 129600"),
            (long_term.assume_role, chained, 43201, "<= 43200"),
            (long_term.assume_role, chained, 899, ">= 900"),
        ]
        for call, kwargs, duration, bound in bounds:
            status, code, message = sts_error(call, **kwargs, DurationSeconds=duration)
            assert (status, code) == (400, "ValidationError")
            word = "greater" if bound.startswith(">") else "less"
            assert f"Value '{duration}' at 'durationSeconds'" in message
            assert f"{word} than or equal to {bound.split()[1]}" in message
        assert long_term.get_federation_token(Name="n", DurationSeconds=129600)["Credentials"]
        assert long_term.get_session_token(DurationSeconds=129600)["Credentials"]
        statement = allow("s3:PutObject", SOME_PREFIX_ARN)
        padded = policy_document(*[statement] * 40)
        text = json.dumps(padded)
        assert len(text) > 2048
        for call, kwargs in (
            (long_term.get_federation_token, {"Name": "n"}),
            (
                long_term.assume_role,
                chained,
            ),
        ):
            status, code, message = sts_error(call, **kwargs, Policy=text)
            assert (status, code) == (400, "ValidationError")
            assert "Member must have length less than or equal to 2048" in message
    finally:
        for client in (long_term, as_role, as_session, iam):
            client.close()
    refused = [c for c in sandbox.control.sts_calls() if c["status"] != 200]
    assert {c["status"] for c in refused} == {400, 403}
    assert all(c["issued_access_key_id"] is None for c in refused)


def test_moto_serves_everything_else_through_the_sts_middleware(sandbox: Sandbox, s3: Any) -> None:
    s3.put_object(Bucket=EXPORT_BUCKET, Key="virtual/host.txt", Body=b"virtual")
    signed = AWSRequest(
        method="GET", url=f"http://{EXPORT_BUCKET}.s3.amazonaws.com/virtual/host.txt"
    )
    S3SigV4Auth(BotoCredentials(ACCESS_KEY_ID, "secret"), "s3", "us-east-1").add_auth(signed)
    headers = {**dict(signed.headers.items()), "Host": f"{EXPORT_BUCKET}.s3.amazonaws.com"}
    web = make_client("sts", sandbox.s3_url)
    web.meta.events.register("choose-signer.sts.*", lambda **_: botocore.UNSIGNED)

    with requests.Session() as session:
        session.trust_env = False
        virtual = session.get(f"{sandbox.s3_url}/virtual/host.txt", headers=headers, timeout=10)
    try:
        minted = web.assume_role_with_web_identity(
            RoleArn=EXPORT_ROLE_ARN, RoleSessionName="web-user", WebIdentityToken="token-" * 3
        )["Credentials"]
    finally:
        web.close()

    assert virtual.status_code == 200 and virtual.content == b"virtual"
    assert minted["SecretAccessKey"].startswith(MINTED_SECRET_PREFIX)
    (call,) = sandbox.control.sts_calls()  # the unsigned STS call is seen too; S3 calls are not
    assert (call["action"], call["caller_access_key_id"]) == ("AssumeRoleWithWebIdentity", None)
    assert call["issued_access_key_id"] == minted["AccessKeyId"]
