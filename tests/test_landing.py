"""The queryable landing's S3 side: Glue tables, the ``_latest.json`` pointer, retention and the
Redshift COPY manifest, against the sandbox's moto server (real S3, Glue and IAM over loopback).

Export folders are real exports of the sandbox where the files matter (the table's location, the
Redshift manifest's sizes), and otherwise objects written here with realistic keys and a
``_manifest.json`` in manifest.py's format.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
import requests
from botocore.config import Config
from domo_assets_dev.sandbox import EXPORT_BUCKET, PHARMACY_CLAIMS_ID, Sandbox
from test_layers import import_with_blocked

from domo_assets.domo.errors import is_permanent
from domo_assets.domo.models import (
    DataSetColumn,
    Export,
    parse_columns,
    parse_timestamp,
)
from domo_assets.s3.columns import table_column_names
from domo_assets.s3.glue import (
    GluePermissionError,
    GlueTable,
    GlueTableConflictError,
    GlueUnavailableError,
    TableChange,
    register_export,
    table_reference,
)
from domo_assets.s3.landing import (
    LATEST_FORMAT,
    PARQUET_LATEST_NAME,
    REDSHIFT_MANIFEST_NAME,
    LandingError,
    PointerFormatError,
    apply_retention,
    export_location,
    publish_pointer,
    read_latest,
    write_redshift_manifest,
)
from domo_assets.s3.manifest import MANIFEST_FORMAT, ExportManifest, ManifestFile, manifest_key
from domo_assets.s3.storage import inspect_objects

if TYPE_CHECKING:
    from conftest import DomoHttp

REGION = "us-east-1"
# The request fingerprint of the exports these tests plant (an asset's own).
REQUEST = "0123456789abcdef"
ACCOUNT = "123456789012"
CLAIMS_PATH = "domo/pharmacy_claims"
SERDE = "org.apache.hadoop.hive.serde2.OpenCSVSerde"
CSV_PARAMETERS = {
    "classification": "csv",
    "compressionType": "gzip",
    "skip.header.line.count": "1",
    "use.null.for.invalid.data": "true",
}
# What pharmacy-claims' schema becomes: Hive names and types, the Domo name and type in comments.
CLAIMS_COLUMNS = [
    {"Name": "customer_id", "Type": "bigint", "Comment": "Customer ID (Domo LONG)"},
    {"Name": "cardholder_id", "Type": "string", "Comment": "Cardholder ID (Domo STRING)"},
    {"Name": "sex_of_patient", "Type": "string", "Comment": "Sex of Patient (Domo STRING)"},
    {"Name": "date_filled", "Type": "string", "Comment": "Date Filled (Domo DATE)"},
    {"Name": "label_name", "Type": "string", "Comment": "Label Name (Domo STRING)"},
    {"Name": "metric_quantity", "Type": "double", "Comment": "Metric Quantity (Domo DECIMAL)"},
    {"Name": "days_supply", "Type": "bigint", "Comment": "Days Supply (Domo LONG)"},
]
ORDER_COLUMNS = (
    DataSetColumn("Order Date", "DATE"),
    DataSetColumn("Region", "STRING"),
    DataSetColumn("Order ID", "LONG"),
    DataSetColumn("Amount", "DECIMAL"),
)
# Identities moto refuses some actions (its refusal names the user, whose ARN gives the account).
GLUE_READER_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["glue:GetDatabase", "glue:CreateDatabase", "glue:GetTable"],
            "Resource": "*",
        }
    ],
}
S3_READER_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetObject"], "Resource": "*"}
    ],
}
# Glue's own answer to a refused call (HTTP 400, JSON protocol), for an identity in another
# account and region than the sandbox's.
AWS_DENIAL = {
    "__type": "AccessDeniedException",
    "Message": (
        "User: arn:aws:sts::111122223333:assumed-role/dagster-runs/run-42 is not authorized to "
        "perform: glue:GetDatabase on resource: arn:aws:glue:eu-west-1:111122223333:catalog "
        "because no identity-based policy allows the glue:GetDatabase action"
    ),
}
# moto's reset-auth takes the number of requests served before IAM is checked.
MOTO_AUTH_ON = "0"
MOTO_AUTH_OFF = "inf"
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=2)
# Domo's start times of the exports registered below, an hour apart.
T0 = datetime(2026, 11, 27, 5, 0, tzinfo=UTC)


def at(hours: int) -> datetime:
    """``hours`` after ``T0``."""
    return T0 + timedelta(hours=hours)


@pytest.fixture
def glue(sandbox: Sandbox) -> Iterator[Any]:
    """A Glue client for moto (the sandbox fixture points boto3 at it)."""
    client = boto3.client("glue", region_name=REGION)
    yield client
    client.close()


@pytest.fixture
def iam_enforced(sandbox: Sandbox) -> Iterator[None]:
    """moto checks IAM policies on every request while this runs (its server's reset-auth)."""
    with _moto_auth(sandbox, MOTO_AUTH_ON):
        yield


@contextlib.contextmanager
def _disabled_auth(sandbox: Sandbox) -> Iterator[None]:
    """moto's IAM checks off for set-up and inspection inside an ``iam_enforced`` test."""
    with _moto_auth(sandbox, MOTO_AUTH_OFF):
        yield


@contextlib.contextmanager
def _moto_auth(sandbox: Sandbox, requests_before_auth: str) -> Iterator[None]:
    """Set how many requests moto serves before checking IAM; put the old value back after."""
    previous = _set_moto_auth(sandbox, requests_before_auth)
    try:
        yield
    finally:
        _set_moto_auth(sandbox, previous)


def _set_moto_auth(sandbox: Sandbox, requests_before_auth: str) -> str:
    with requests.Session() as session:
        session.trust_env = False  # loopback only, never through a proxy
        response = session.post(
            f"{sandbox.s3_url}/moto-api/reset-auth", data=requests_before_auth, timeout=10
        )
    response.raise_for_status()
    return str(response.json()["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"])


def restricted_identity(sandbox: Sandbox, user: str, policy: dict[str, Any]) -> dict[str, str]:
    """An IAM user of moto with only ``policy``; its access key."""
    with _disabled_auth(sandbox):
        iam = boto3.client("iam", region_name=REGION)
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="only", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        iam.close()
    return {"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]}


def client_as(service: str, key: dict[str, str]) -> Any:
    """A boto3 client of moto acting as ``key``'s identity."""
    return boto3.client(
        service,
        region_name=REGION,
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
        config=Config(s3={"addressing_style": "path"}),
    )


def run_export(domo: DomoHttp, path: str) -> Export:
    """A real pharmacy-claims export of the sandbox under ``path``."""
    body = domo.body()
    body["path"] = path
    return Export.from_api(domo.export(PHARMACY_CLAIMS_ID, body))


def claims_table(domo: DomoHttp, **overrides: Any) -> GlueTable:
    """The Glue table of pharmacy-claims, with its schema read from the sandbox."""
    response = domo.get(f"/api/data/v2/datasources/{PHARMACY_CLAIMS_ID}/schemas/latest")
    response.raise_for_status()
    settings = {"database": "domo", "name": "pharmacy_claims", "compression": "gzip"}
    return GlueTable(columns=parse_columns(response.json()), **{**settings, **overrides})


def orders_table() -> GlueTable:
    """A daily-partitioned table over ``domo/orders/dt=<day>/``."""
    return GlueTable(
        database="domo",
        name="orders",
        columns=ORDER_COLUMNS,
        compression="gzip",
        partition_key="dt",
        root=f"s3://{EXPORT_BUCKET}/domo/orders/",
    )


def put_export(
    s3: Any,
    prefix: str,
    export_id: str,
    written_at: str,
    *,
    files: tuple[str, ...] = ("data.csv.gz",),
    manifest_export_id: str | None = None,
    manifest_format: str = MANIFEST_FORMAT,
    manifest: bool = True,
    request: str = REQUEST,
) -> list[str]:
    """Write an export folder as Domo and this project leave it; return its keys."""
    folder = f"{prefix}/{export_id}/export"
    keys = []
    for name in files:
        keys.append(f"{folder}/{name}")
        s3.put_object(Bucket=EXPORT_BUCKET, Key=keys[-1], Body=b"ID,Label\r\n1,a\r\n")
    if manifest:
        keys.append(manifest_key(folder))
        document = {
            "format": manifest_format,
            "export_id": manifest_export_id or export_id,
            "dataset": {"id": PHARMACY_CLAIMS_ID, "name": "Pharmacy Claims"},
            "partition_key": None,
            "query": {"columns": [], "groupByColumns": [], "orderByColumns": []},
            "include_bom": False,
            "request": request,
            "columns": ["ID", "Label"],
            "compression": "gzip",
            "row_count": len(files),
            "files": [
                {
                    "uri": f"s3://{EXPORT_BUCKET}/{folder}/{name}",
                    "bucket": EXPORT_BUCKET,
                    "key": f"{folder}/{name}",
                    "rows": 1,
                    "bytes": 15,
                }
                for name in files
            ],
            "started": written_at,
            "finished": written_at,
            "written_at": written_at,
            "written_by": "domo_assets test",
        }
        s3.put_object(Bucket=EXPORT_BUCKET, Key=keys[-1], Body=json.dumps(document).encode())
    return keys


def manifest_of(
    prefix: str,
    export_id: str,
    started: str,
    files: tuple[tuple[str, int], ...] = (("data.csv.gz", 1),),
    request: str = REQUEST,
    partition_key: str | None = None,
) -> ExportManifest:
    """The record of a verified export under ``prefix``, started by Domo at ``started``."""
    folder = f"{prefix}/{export_id}/export"
    return ExportManifest(
        export_id=export_id,
        dataset_id=PHARMACY_CLAIMS_ID,
        dataset_name="Pharmacy Claims",
        partition_key=partition_key,
        query={"columns": [], "groupByColumns": [], "orderByColumns": []},
        include_bom=False,
        request=request,
        schema=(DataSetColumn("ID", "LONG"), DataSetColumn("Label", "STRING")),
        compression="gzip",
        files=tuple(
            ManifestFile(f"s3://{EXPORT_BUCKET}/{folder}/{n}", EXPORT_BUCKET, f"{folder}/{n}", r, 9)
            for n, r in files
        ),
        started=parse_timestamp(started),
        finished=parse_timestamp(started),
    )


def bucket_keys(s3: Any, prefix: str = "") -> set[str]:
    """Every key of the export bucket under ``prefix``."""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=EXPORT_BUCKET, Prefix=prefix)
    return {obj["Key"] for page in pages for obj in page.get("Contents", [])}


def day(n: int) -> str:
    """An ISO-8601 manifest time, ``n`` days into November 2026."""
    return f"2026-11-{n:02d}T06:00:00.000Z"


# Glue tables


def test_table_created_with_the_expected_storage_descriptor(
    domo: DomoHttp, glue: Any, s3: Any
) -> None:
    export = run_export(domo, CLAIMS_PATH)
    location = export_location(EXPORT_BUCKET, CLAIMS_PATH, export.export_id)

    done = register_export(
        glue, claims_table(domo), location, export.export_id, started=export.started
    )

    table = glue.get_table(DatabaseName="domo", Name="pharmacy_claims")["Table"]
    assert table["StorageDescriptor"] == {
        "Columns": CLAIMS_COLUMNS,
        "Location": f"s3://{EXPORT_BUCKET}/{CLAIMS_PATH}/{export.export_id}/export/",
        "InputFormat": "org.apache.hadoop.mapred.TextInputFormat",
        "OutputFormat": "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
        "Compressed": True,
        "SerdeInfo": {
            "SerializationLibrary": SERDE,
            # A line feed as the escape character: none reaches the SerDe (see glue.py).
            "Parameters": {"separatorChar": ",", "quoteChar": '"', "escapeChar": "\n"},
        },
        "Parameters": CSV_PARAMETERS,
    }
    assert table["TableType"] == "EXTERNAL_TABLE"
    assert table.get("PartitionKeys", []) == []
    assert table["Parameters"] == {
        "EXTERNAL": "TRUE",
        **CSV_PARAMETERS,
        "domo_assets.include_bom": "false",
        "domo_assets.managed_by": "domo_assets",
        "domo_assets.export_id": export.export_id,
        "domo_assets.export_started": export.started.isoformat(timespec="microseconds"),
    }
    assert table["Description"].startswith("CSV files of a Domo export")
    # The table reads the folder in S3 that holds the export's file.
    assert bucket_keys(s3, f"{CLAIMS_PATH}/{export.export_id}/export/") == {
        f"{CLAIMS_PATH}/{export.export_id}/export/data.csv.gz"
    }
    assert (done.database_created, done.table, done.partition) == (True, TableChange.CREATED, None)
    assert done.reference.table_name == "domo.pharmacy_claims"
    assert done.reference.console_url == (
        "https://us-east-1.console.aws.amazon.com/glue/home?region=us-east-1"
        "#/v2/data-catalog/tables/view/pharmacy_claims?database=domo"
    )


def test_table_updated_in_place_on_a_newer_export(domo: DomoHttp, glue: Any) -> None:
    table = claims_table(domo, compression="none", include_bom=True)
    first = export_location(EXPORT_BUCKET, CLAIMS_PATH, "e1")
    register_export(glue, table, first, "e1", started=at(0))
    created = glue.get_table(DatabaseName="domo", Name="pharmacy_claims")["Table"]

    newer = export_location(EXPORT_BUCKET, CLAIMS_PATH, "e2")
    moved = register_export(glue, table, newer, "e2", started=at(1))
    again = register_export(glue, table, newer, "e2", started=at(1))

    updated = glue.get_table(DatabaseName="domo", Name="pharmacy_claims")["Table"]
    assert (moved.database_created, moved.table, again.table) == (
        False,
        TableChange.UPDATED,
        TableChange.UNCHANGED,
    )
    assert updated["StorageDescriptor"]["Location"] == newer
    assert updated["StorageDescriptor"]["Compressed"] is False
    assert updated["Parameters"]["compressionType"] == "none"
    assert updated["Parameters"]["domo_assets.include_bom"] == "true"
    assert updated["Parameters"]["domo_assets.export_id"] == "e2"
    # The same table, changed in place: not dropped and created again.
    assert updated["CreateTime"] == created["CreateTime"]
    assert len(glue.get_tables(DatabaseName="domo")["TableList"]) == 1


def test_partitions_registered_and_moved_to_the_newest_export(glue: Any) -> None:
    table = orders_table()

    def partition_folder(dt: str, export_id: str) -> str:
        return export_location(EXPORT_BUCKET, f"domo/orders/dt={dt}", export_id)

    def register(dt: str, export_id: str, hours: int) -> Any:
        folder = partition_folder(dt, export_id)
        return register_export(glue, table, folder, export_id, dt, started=at(hours))

    first = register("2026-11-28", "a", 0)
    second = register("2026-11-29", "b", 1)
    moved = register("2026-11-28", "c", 2)

    assert (first.table, first.partition) == (TableChange.CREATED, TableChange.CREATED)
    # The table itself only changes with its schema: partitions name their exports.
    assert (second.table, second.partition) == (TableChange.UNCHANGED, TableChange.CREATED)
    assert (moved.table, moved.partition) == (TableChange.UNCHANGED, TableChange.UPDATED)
    found = glue.get_table(DatabaseName="domo", Name="orders")["Table"]
    assert found["PartitionKeys"] == [{"Name": "dt", "Type": "string"}]
    assert found["StorageDescriptor"]["Location"] == f"s3://{EXPORT_BUCKET}/domo/orders/"
    assert "domo_assets.export_id" not in found["Parameters"]
    assert [c["Name"] for c in found["StorageDescriptor"]["Columns"]] == [
        "order_date",
        "region",
        "order_id",
        "amount",
    ]
    partitions = glue.get_partitions(DatabaseName="domo", TableName="orders")["Partitions"]
    located = {p["Values"][0]: p["StorageDescriptor"]["Location"] for p in partitions}
    assert located == {
        "2026-11-28": f"s3://{EXPORT_BUCKET}/domo/orders/dt=2026-11-28/c/export/",
        "2026-11-29": f"s3://{EXPORT_BUCKET}/domo/orders/dt=2026-11-29/b/export/",
    }
    moved_partition = next(p for p in partitions if p["Values"] == ["2026-11-28"])
    assert moved_partition["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"] == SERDE
    assert moved_partition["Parameters"]["domo_assets.export_id"] == "c"


def test_a_table_is_never_moved_to_an_older_export(domo: DomoHttp, glue: Any) -> None:
    """Two runs finishing out of order: the slower, older export leaves the table alone."""
    table = claims_table(domo)

    def register(export_id: str, started: datetime | None) -> Any:
        location = export_location(EXPORT_BUCKET, CLAIMS_PATH, export_id)
        return register_export(glue, table, location, export_id, started=started)

    def shown() -> tuple[str, str, str | None]:
        found = glue.get_table(DatabaseName="domo", Name="pharmacy_claims")["Table"]
        parameters = found["Parameters"]
        return (
            found["StorageDescriptor"]["Location"],
            parameters["domo_assets.export_id"],
            parameters.get("domo_assets.export_started"),
        )

    newer = register("e2", at(2))
    older = register("e1", at(1))
    assert (newer.table, older.table) == (TableChange.CREATED, TableChange.LEFT_ON_NEWER)
    assert older.left_on_newer and older.shown.export_id == "e2"
    assert older.location == export_location(EXPORT_BUCKET, CLAIMS_PATH, "e2")
    e2 = (older.location, "e2", "2026-11-27T07:00:00.000000+00:00")
    assert shown() == e2
    # An export without a start time cannot be shown newer: the table stays.
    assert register("e9", None).table == TableChange.LEFT_ON_NEWER
    # The same start time: the export id decides, the same way every time.
    assert register("e0", at(2)).table == TableChange.LEFT_ON_NEWER
    assert shown() == e2
    assert register("e3", at(2)).table == TableChange.UPDATED
    assert shown()[1] == "e3"
    # Re-registering the export shown is allowed (it refreshes the definition).
    assert register("e3", at(2)).table == TableChange.UNCHANGED
    # A later export moves it.
    assert register("e4", at(3)).table == TableChange.UPDATED
    assert shown()[1:] == ("e4", "2026-11-27T08:00:00.000000+00:00")


def test_a_table_without_a_recorded_start_is_moved_by_any_export(domo: DomoHttp, glue: Any) -> None:
    """A table registered without a start time (Domo gave none, or an earlier version of this
    project wrote it) is not shown newer by anything, so the next export moves it."""
    table = claims_table(domo)
    first = export_location(EXPORT_BUCKET, CLAIMS_PATH, "e1")
    register_export(glue, table, first, "e1", started=None)
    found = glue.get_table(DatabaseName="domo", Name="pharmacy_claims")["Table"]
    assert "domo_assets.export_started" not in found["Parameters"]

    second = export_location(EXPORT_BUCKET, CLAIMS_PATH, "e0")
    assert register_export(glue, table, second, "e0", started=None).table == TableChange.UPDATED
    third = export_location(EXPORT_BUCKET, CLAIMS_PATH, "e5")
    assert register_export(glue, table, third, "e5", started=at(0)).table == TableChange.UPDATED
    found = glue.get_table(DatabaseName="domo", Name="pharmacy_claims")["Table"]
    assert found["StorageDescriptor"]["Location"] == third


def test_a_partition_is_never_moved_to_an_older_export(glue: Any) -> None:
    table = orders_table()

    def register(export_id: str, hours: int) -> Any:
        folder = export_location(EXPORT_BUCKET, "domo/orders/dt=2026-11-28", export_id)
        return register_export(glue, table, folder, export_id, "2026-11-28", started=at(hours))

    assert register("b", 2).partition == TableChange.CREATED
    left = register("a", 1)
    assert (left.table, left.partition) == (TableChange.UNCHANGED, TableChange.LEFT_ON_NEWER)
    assert left.shown.export_id == "b" and left.location.endswith("/b/export/")
    partition = glue.get_partition(
        DatabaseName="domo", TableName="orders", PartitionValues=["2026-11-28"]
    )["Partition"]
    assert partition["Parameters"]["domo_assets.export_id"] == "b"
    assert partition["StorageDescriptor"]["Location"].endswith("/b/export/")
    assert register("c", 3).partition == TableChange.UPDATED


def test_an_edited_start_time_is_refused_not_guessed(domo: DomoHttp, glue: Any) -> None:
    table = claims_table(domo)
    register_export(glue, table, "s3://lake/e1/export/", "e1", started=at(0))
    found = glue.get_table(DatabaseName="domo", Name="pharmacy_claims")["Table"]
    edited = {k: found[k] for k in ("Name", "StorageDescriptor", "TableType")}
    edited["Parameters"] = {**found["Parameters"], "domo_assets.export_started": "yesterday"}
    glue.update_table(DatabaseName="domo", TableInput=edited)

    with pytest.raises(GlueTableConflictError, match="'yesterday', not an ISO-8601 time"):
        register_export(glue, table, "s3://lake/e2/export/", "e2", started=at(1))


def test_column_names_are_the_tables_and_the_files(domo: DomoHttp, glue: Any) -> None:
    """One function names the Glue columns (and the Parquet files' columns): lower snake case,
    a BOM dropped, clashes told apart deterministically, a column's own name never taken."""
    names = ["\ufeffOrder ID", "order_id", "Order-ID!", "order_id_2", "漢字", "%", "x" * 300]
    assert table_column_names(names) == (
        "order_id",
        "order_id_3",
        "order_id_4",
        "order_id_2",
        "_",
        "__2",
        "x" * 255,
    )
    assert table_column_names(names) == table_column_names(list(names))  # deterministic
    columns = tuple(DataSetColumn(name, "LONG") for name in names)
    table = GlueTable(database="domo", name="clashing", columns=columns, compression="gzip")
    register_export(glue, table, "s3://lake/clashing/e1/export/", "e1", started=at(0))
    found = glue.get_table(DatabaseName="domo", Name="clashing")["Table"]
    declared = found["StorageDescriptor"]["Columns"]
    assert [c["Name"] for c in declared] == list(table_column_names(names))
    assert declared[0]["Comment"] == "Order ID (Domo LONG)"  # the Domo name, without the BOM
    assert declared[3]["Comment"] == "order_id_2 (Domo LONG)"


def test_access_denied_names_the_permission_to_grant(
    sandbox: Sandbox, glue: Any, iam_enforced: None
) -> None:
    """moto enforcing IAM: an identity without glue:CreateTable is refused, for real."""
    key = restricted_identity(sandbox, "glue-reader", GLUE_READER_POLICY)
    restricted = client_as("glue", key)
    table = GlueTable(database="domo", name="claims", columns=ORDER_COLUMNS, compression="gzip")
    location = export_location(EXPORT_BUCKET, "domo/claims", "e1")

    with pytest.raises(GluePermissionError) as refused:
        register_export(restricted, table, location, "e1", started=at(0))
    restricted.close()

    message = str(refused.value)
    assert f"glue:CreateTable on arn:aws:glue:{REGION}:{ACCOUNT}:table/domo/claims" in message
    assert f"arn:aws:glue:{REGION}:{ACCOUNT}:database/domo" in message
    assert "glue-reader" in message
    assert key["SecretAccessKey"] not in message and key["AccessKeyId"] not in message
    assert refused.value.permission == "glue:CreateTable"
    assert not refused.value.retryable and is_permanent(refused.value)
    with _disabled_auth(sandbox):
        assert glue.get_tables(DatabaseName="domo")["TableList"] == []


def test_access_denied_exception_in_glues_own_words(sandbox: Sandbox) -> None:
    """Glue's JSON refusal (AccessDeniedException), served over HTTP by the sandbox's faults."""
    sandbox.control.add_fault(method="POST", path_regex="^/$", status=400, body=AWS_DENIAL)
    aws_glue = boto3.client(
        "glue", region_name="eu-west-1", endpoint_url=sandbox.domo_url, config=NO_RETRIES
    )
    table = GlueTable(database="domo", name="claims", columns=ORDER_COLUMNS, compression="gzip")

    with pytest.raises(GluePermissionError) as refused:
        register_export(aws_glue, table, "s3://lake/domo/claims/e1/export/", "e1", started=None)
    aws_glue.close()

    assert str(refused.value).startswith(
        "Glue refused glue:GetDatabase on database domo (User: arn:aws:sts::111122223333:"
    )
    assert (
        "Grant glue:GetDatabase on arn:aws:glue:eu-west-1:111122223333:database/domo "
        "(Glue also checks it on arn:aws:glue:eu-west-1:111122223333:catalog)"
    ) in str(refused.value)


def test_a_glue_outage_is_retryable_and_leaves_the_export_in_s3(
    domo: DomoHttp, sandbox: Sandbox, s3: Any
) -> None:
    export = run_export(domo, CLAIMS_PATH)
    files = bucket_keys(s3, CLAIMS_PATH)
    sandbox.control.add_fault(method="POST", path_regex="^/$", status=503, times=None)
    down = boto3.client(
        "glue", region_name=REGION, endpoint_url=sandbox.domo_url, config=NO_RETRIES
    )
    location = export_location(EXPORT_BUCKET, CLAIMS_PATH, export.export_id)

    with pytest.raises(GlueUnavailableError) as failed:
        register_export(down, claims_table(domo), location, export.export_id, started=at(0))
    down.close()

    assert failed.value.retryable and not is_permanent(failed.value)
    assert "glue:GetDatabase on database domo failed" in str(failed.value)
    assert "tried again on the next materialization" in str(failed.value)
    assert bucket_keys(s3, CLAIMS_PATH) == files != set()


def test_a_table_this_project_did_not_create_is_left_alone(domo: DomoHttp, glue: Any) -> None:
    glue.create_database(DatabaseInput={"Name": "domo"})
    theirs = {"Name": "pharmacy_claims", "Parameters": {"owner": "finance"}}
    glue.create_table(DatabaseName="domo", TableInput=theirs)
    location = export_location(EXPORT_BUCKET, CLAIMS_PATH, "e1")

    with pytest.raises(GlueTableConflictError, match="was not created by domo_assets"):
        register_export(glue, claims_table(domo), location, "e1", started=at(0))

    table = glue.get_table(DatabaseName="domo", Name="pharmacy_claims")["Table"]
    assert table["Parameters"] == {"owner": "finance"}
    assert "StorageDescriptor" not in table or not table["StorageDescriptor"].get("Location")


def test_bad_names_and_partition_values_fail_before_any_glue_call() -> None:
    with pytest.raises(GlueTableConflictError, match="the partition key's name"):
        GlueTable(
            database="domo",
            name="orders",
            columns=(DataSetColumn("DT", "DATE"),),
            compression="gzip",
            partition_key="dt",
            root="s3://lake/domo/orders/",
        )
    with pytest.raises(ValueError, match="lower-case letters"):
        GlueTable(database="Domo-Lake", name="orders", columns=(), compression="gzip")
    with pytest.raises(ValueError, match="exactly when the table has a partition key"):
        register_export(
            None, orders_table(), "s3://lake/domo/orders/dt=x/e1/export/", "e1", started=None
        )
    with pytest.raises(ValueError, match="has no time zone"):
        register_export(
            None,
            orders_table(),
            "s3://lake/domo/orders/dt=x/e1/export/",
            "e1",
            "x",
            started=datetime(2026, 11, 27, 5, 0),
        )


def test_table_reference_for_dagster_table_name() -> None:
    reference = table_reference("lake", "daily_orders", "eu-west-1")
    assert reference.table_name == "lake.daily_orders"
    assert reference.console_url == (
        "https://eu-west-1.console.aws.amazon.com/glue/home?region=eu-west-1"
        "#/v2/data-catalog/tables/view/daily_orders?database=lake"
    )


def test_the_glue_module_imports_without_dagster() -> None:
    done = import_with_blocked(["domo_assets.s3.glue"], {"dagster", "dagster_aws"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


# The stable pointer


def test_pointer_written_and_read_back(sandbox: Sandbox, s3: Any) -> None:
    prefix = "domo/orders/dt=2026-11-28"
    assert read_latest(s3, EXPORT_BUCKET, prefix) is None
    first = manifest_of(prefix, "e1", day(1), partition_key="2026-11-28")
    second = manifest_of(
        prefix,
        "e2",
        day(2),
        (("data-00000.csv.gz", 100_000), ("data-00001.csv.gz", 360)),
        partition_key="2026-11-28",
    )
    manifest = f"s3://{EXPORT_BUCKET}/{prefix}/e2/export/_manifest.json"

    assert publish_pointer(s3, EXPORT_BUCKET, prefix, first, "s3://x/_manifest.json").moved
    move = publish_pointer(s3, EXPORT_BUCKET, f"/{prefix}/", second, manifest)
    written = move.pointer

    body = s3.get_object(Bucket=EXPORT_BUCKET, Key=f"{prefix}/_latest.json")
    document = json.loads(body["Body"].read())
    assert body["ContentType"] == "application/json"
    assert move.moved and move.superseded_by is None
    assert document == {
        "format": LATEST_FORMAT,
        "export_id": "e2",
        "partition_key": "2026-11-28",
        "location": f"s3://{EXPORT_BUCKET}/{prefix}/e2/export/",
        "manifest": manifest,
        "request": REQUEST,
        "started": "2026-11-02T06:00:00Z",
        "finished": "2026-11-02T06:00:00Z",
        "row_count": 100_360,
        "files": [f.uri for f in second.files],
        "written_at": written.written_at,
    }
    assert written.written_at.endswith("Z")
    read = read_latest(s3, EXPORT_BUCKET, prefix)
    assert read is not None and read.etag == body["ETag"]
    assert read == replace(written, etag=read.etag)
    assert written.uri == f"s3://{EXPORT_BUCKET}/{prefix}/_latest.json"
    # Publishing the older export again (a slower run finishing last) leaves the pointer.
    late = publish_pointer(s3, EXPORT_BUCKET, prefix, first, "s3://x/_manifest.json")
    assert not late.moved and late.superseded_by == "e2"
    assert read_latest(s3, EXPORT_BUCKET, prefix).export_id == "e2"


def test_a_pointer_this_project_did_not_write_is_refused(sandbox: Sandbox, s3: Any) -> None:
    s3.put_object(Bucket=EXPORT_BUCKET, Key="domo/claims/_latest.json", Body=b'{"v": 1}')
    with pytest.raises(PointerFormatError, match=re.escape(LATEST_FORMAT)):
        read_latest(s3, EXPORT_BUCKET, "domo/claims")
    s3.put_object(Bucket=EXPORT_BUCKET, Key="domo/claims/_latest.json", Body=b"not json")
    with pytest.raises(
        PointerFormatError, match=re.escape("s3://domo-exports/domo/claims/_latest.json")
    ):
        read_latest(s3, EXPORT_BUCKET, "domo/claims")


def test_refused_writes_and_deletions_name_the_permission(
    sandbox: Sandbox, s3: Any, iam_enforced: None
) -> None:
    with _disabled_auth(sandbox):
        for n in (1, 2):
            put_export(s3, "domo/claims", f"e{n}", day(n))
        before = bucket_keys(s3)
    reader = client_as("s3", restricted_identity(sandbox, "lake-reader", S3_READER_POLICY))

    current = manifest_of("domo/claims", "e2", day(2))
    with pytest.raises(LandingError) as write_refused:
        publish_pointer(reader, EXPORT_BUCKET, "domo/claims", current, "s3://m")
    with pytest.raises(LandingError) as delete_refused:
        apply_retention(reader, EXPORT_BUCKET, "domo/claims", keep=1, current=current)
    reader.close()

    assert "grant s3:PutObject on arn:aws:s3:::domo-exports/domo/claims/_latest.json" in str(
        write_refused.value
    )
    assert "s3:DeleteObject on arn:aws:s3:::domo-exports/domo/claims/e1/*" in str(
        delete_refused.value
    )
    assert not write_refused.value.retryable and not delete_refused.value.retryable
    with _disabled_auth(sandbox):
        assert bucket_keys(s3) == before


# Retention


def test_retention_removes_exactly_the_older_verified_exports(sandbox: Sandbox, s3: Any) -> None:
    prefix = "domo/claims"
    exports = {f"e{n}": put_export(s3, prefix, f"e{n}", day(n)) for n in (1, 3, 4, 5)}
    exports["e2"] = put_export(s3, prefix, "e2", day(2), files=("data-00000.csv.gz", "d1.csv.gz"))
    survivors = {
        *put_export(s3, "domo/claims_supply", "s1", day(1)),  # a sibling prefix, older
        *put_export(s3, f"{prefix}/manual-upload", "x", day(1), manifest=False),
        *put_export(s3, prefix, "unverified", day(1), manifest=False),
        *put_export(s3, prefix, "old-format", day(1), manifest_format="domo_assets.manifest/v1"),
        *put_export(s3, prefix, "moved", day(1), manifest_export_id="e1"),
        *put_export(s3, prefix, "other-request", day(1), request="fedcba9876543210"),
        *exports["e4"],
        *exports["e5"],
    }
    s3.put_object(Bucket=EXPORT_BUCKET, Key=f"{prefix}/_latest.json", Body=b"{}")
    survivors.add(f"{prefix}/_latest.json")

    report = apply_retention(
        s3, EXPORT_BUCKET, prefix, keep=2, current=manifest_of(prefix, "e5", day(5))
    )

    assert bucket_keys(s3) == survivors
    assert report.kept == ("e5", "e4")
    assert [(r.folder, r.objects) for r in report.removed] == [
        (f"s3://{EXPORT_BUCKET}/{prefix}/e3/", 2),
        (f"s3://{EXPORT_BUCKET}/{prefix}/e2/", 3),
        (f"s3://{EXPORT_BUCKET}/{prefix}/e1/", 2),
    ]
    assert report.removed_objects == 7 and report.removed_bytes > 0
    assert report.prefix == f"s3://{EXPORT_BUCKET}/{prefix}/"
    assert {i.folder.rsplit("/", 2)[-2]: i.reason.split(":")[0] for i in report.ignored} == {
        "manual-upload": "no _manifest.json of format domo_assets.manifest/v2",
        "unverified": "no _manifest.json of format domo_assets.manifest/v2",
        "old-format": "no _manifest.json of format domo_assets.manifest/v2",
        "moved": "its _manifest.json names export 'e1', not this folder",
        "other-request": f"its _manifest.json answers request fedcba9876543210, not this asset's ({REQUEST})",
    }


def test_retention_never_removes_the_current_pointed_protected_or_newer_export(
    sandbox: Sandbox, s3: Any
) -> None:
    for n in range(1, 8):
        put_export(s3, "domo/claims", f"e{n}", day(n))
    publish_pointer(
        s3, EXPORT_BUCKET, "domo/claims", manifest_of("domo/claims", "e2", day(2)), "s3://m"
    )
    publish_pointer(
        s3,
        EXPORT_BUCKET,
        "domo/claims",
        manifest_of("domo/claims", "e4", day(4)),
        "s3://m",
        name=PARQUET_LATEST_NAME,
        folder="parquet",
    )

    report = apply_retention(
        s3,
        EXPORT_BUCKET,
        "domo/claims",
        keep=1,
        current=manifest_of("domo/claims", "e5", day(5)),
        protected={"e3"},
    )

    # e6 and e7 are newer than the export being published (a run that recorded them has yet to
    # publish): kept. e3 is protected (a live materialization names it), e2 the pointer's, e4
    # the Parquet pointer's.
    assert report.kept == ("e7", "e6", "e5", "e4", "e3", "e2")
    assert [r.export_id for r in report.removed] == ["e1"]
    assert {k.split("/")[2] for k in bucket_keys(s3)} == {
        "e2",
        "e3",
        "e4",
        "e5",
        "e6",
        "e7",
        "_latest.json",
        "_latest_parquet.json",
    }


def test_retention_on_a_partition_leaves_its_siblings_alone(sandbox: Sandbox, s3: Any) -> None:
    base = "domo/orders"
    for dt in ("2026-11-28", "2026-11-29"):
        for n in range(1, 4):
            put_export(s3, f"{base}/dt={dt}", f"{dt[-2:]}-e{n}", day(n))
    everything = bucket_keys(s3)

    at_base = apply_retention(
        s3, EXPORT_BUCKET, base, keep=1, current=manifest_of(base, "none", day(9))
    )
    in_partition = apply_retention(
        s3,
        EXPORT_BUCKET,
        f"{base}/dt=2026-11-28",
        keep=1,
        current=manifest_of(f"{base}/dt=2026-11-28", "28-e3", day(3)),
    )

    assert at_base.removed == () and len(at_base.ignored) == 2
    assert [r.export_id for r in in_partition.removed] == ["28-e2", "28-e1"]
    remaining = bucket_keys(s3)
    assert {k for k in everything - remaining} == {
        k for k in everything if "/28-e1/" in k or "/28-e2/" in k
    }
    assert {k for k in remaining if "dt=2026-11-29" in k} == {
        k for k in everything if "dt=2026-11-29" in k
    }


def test_retention_refuses_to_keep_nothing(sandbox: Sandbox, s3: Any) -> None:
    current = manifest_of("domo/claims", "e1", day(1))
    with pytest.raises(ValueError, match="at least 1"):
        apply_retention(s3, EXPORT_BUCKET, "domo/claims", keep=0, current=current)
    with pytest.raises(ValueError, match="not the bucket's root"):
        apply_retention(s3, EXPORT_BUCKET, "/", keep=1, current=current)


# The Redshift COPY manifest


def test_redshift_manifest_of_a_real_export(domo: DomoHttp, s3: Any) -> None:
    export = run_export(domo, CLAIMS_PATH)
    stored = inspect_objects(s3, export.objects)
    files = tuple(
        ManifestFile(o.reported.uri, o.reported.bucket, o.reported.key, 1, o.size) for o in stored
    )

    current = manifest_of(CLAIMS_PATH, export.export_id, day(1))
    uri = write_redshift_manifest(s3, replace(current, files=files))

    folder = f"{CLAIMS_PATH}/{export.export_id}/export"
    assert uri == f"s3://{EXPORT_BUCKET}/{folder}/{REDSHIFT_MANIFEST_NAME}"
    size = s3.head_object(Bucket=EXPORT_BUCKET, Key=f"{folder}/data.csv.gz")["ContentLength"]
    body = s3.get_object(Bucket=EXPORT_BUCKET, Key=f"{folder}/_redshift_manifest.json")
    assert json.loads(body["Body"].read()) == {
        "entries": [
            {
                "url": f"s3://{EXPORT_BUCKET}/{folder}/data.csv.gz",
                "mandatory": True,
                "meta": {"content_length": size},
            }
        ]
    }


def test_redshift_manifest_lists_every_file_in_order(sandbox: Sandbox, s3: Any) -> None:
    folder = "domo/events/e9/export"
    sizes = {"data-00000.csv.gz": 1024, "data-00001.csv.gz": 2048, "data-00002.csv.gz": 7}
    for name, size in sizes.items():
        s3.put_object(Bucket=EXPORT_BUCKET, Key=f"{folder}/{name}", Body=b"x" * size)
    manifest = manifest_of("domo/events", "e9", day(9))
    files = tuple(
        ManifestFile(f"s3://{EXPORT_BUCKET}/{folder}/{n}", EXPORT_BUCKET, f"{folder}/{n}", 1, size)
        for n, size in sizes.items()
    )

    write_redshift_manifest(s3, replace(manifest, files=files))

    body = s3.get_object(Bucket=EXPORT_BUCKET, Key=f"{folder}/{REDSHIFT_MANIFEST_NAME}")
    assert json.loads(body["Body"].read()) == {
        "entries": [
            {
                "url": f"s3://{EXPORT_BUCKET}/{folder}/{name}",
                "mandatory": True,
                "meta": {"content_length": size},
            }
            for name, size in sizes.items()
        ]
    }
    gone = ManifestFile(f"s3://{EXPORT_BUCKET}/{folder}/gone.csv.gz", EXPORT_BUCKET, "k", 1)
    with pytest.raises(ValueError, match=re.escape("gone.csv.gz")):
        write_redshift_manifest(s3, replace(manifest, files=(gone,)))
    assert write_redshift_manifest(s3, replace(manifest, files=())) is None
