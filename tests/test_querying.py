"""A queryable landing, end to end against the sandbox (moto's S3 and Glue): the Glue table and
the pointer move only on a verified export, partitions register, retention removes only what
it may, the Parquet rows equal the CSV rows, a Glue outage loses nothing, and the tables'
definitions, read back from Glue, read what the files hold (a port of Trino's OpenCSVSerde
reader for the CSV tables, pyarrow for the Parquet ones)."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path
from typing import Any

import boto3
import pyarrow.parquet as pq
from dagster import DagsterInstance
from domo_assets_dev.sandbox import (
    AWKWARD_VALUES_ID,
    DAILY_ORDERS_ID,
    EXPORT_BUCKET,
    PHARMACY_CLAIMS_ID,
    Sandbox,
)
from domo_assets_dev.sandbox.datasets import AWKWARD_TEXTS
from opencsv_port import lines, parse_line, read_table, serde_characters
from support import (
    check_outcomes,
    domo_resource,
    failure_text,
    log_messages,
    materialize_catalog,
    metadata_of,
    read_json,
    write_catalog,
)

UTF8_BOM = "\ufeff"
# The Glue type each Arrow type of the Parquet files is declared as (s3/parquet.py's types).
GLUE_TYPE_OF_ARROW = {
    "int64": "bigint",
    "string": "string",
    "double": "double",
    "decimal128(38, 18)": "decimal(38,18)",
    "date32[day]": "date",
    "timestamp[us]": "timestamp",
}
CLAIMS_NAMES = [
    "customer_id",
    "cardholder_id",
    "sex_of_patient",
    "date_filled",
    "label_name",
    "metric_quantity",
    "days_supply",
]
AWKWARD_NAMES = ["id", "text", "note", "amount", "created"]
WITH_LINE_BREAKS = [t for t in AWKWARD_TEXTS if t is not None and ("\n" in t or "\r" in t)]
CLAIMS = {
    "name": "claims",
    "dataset_id": PHARMACY_CLAIMS_ID,
    "path": "lake/claims",
    "table": {"database": "domo"},
    "keep_exports": 1,
    "parquet": True,
}


def run(tmp_path: Path, sandbox: Sandbox, instance: DagsterInstance, *entries: Any, **kw: Any):
    return materialize_catalog(
        write_catalog(tmp_path, *entries), instance, domo_resource(sandbox), **kw
    )


def table_location(name: str) -> str:
    glue = boto3.client("glue", region_name="us-east-1")
    return glue.get_table(DatabaseName="domo", Name=name)["Table"]["StorageDescriptor"]["Location"]


def keys(s3: Any, prefix: str) -> list[str]:
    found = s3.list_objects_v2(Bucket=EXPORT_BUCKET, Prefix=prefix).get("Contents", [])
    return sorted(o["Key"] for o in found)


def test_parquet_converts_an_export_whose_compression_domo_did_not_state(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path, s3: Any
) -> None:
    """Domo lists ``compression`` but does not say it is always there: without it the export is
    recorded as ``unknown`` and the Parquet step reads each object's own encoding (gzip here)."""
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, omit_compression=True)
    result = run(tmp_path, sandbox, instance, {**CLAIMS, "table": None})
    assert result.success, failure_text(result)
    export = metadata_of(result, "claims")
    assert export["compression"] == "unknown"
    assert all(uri.endswith(".csv.gz") for uri in export["s3_uris"])
    parquet = metadata_of(result, "claims_parquet")
    assert check_outcomes(result)[("claims_parquet", "parquet_row_count")] is True
    assert parquet["dagster/row_count"] == export["dagster/row_count"] == 1000


def test_table_pointer_parquet_and_retention_follow_verified_exports(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path, s3: Any
) -> None:
    first = run(tmp_path, sandbox, instance, CLAIMS)
    assert first.success, failure_text(first)
    export = metadata_of(first, "claims")
    e1 = export["export_id"]
    # Basic verification does not read the values: the Parquet table is the one known to read
    # them all, so it is the one advertised; the CSV table is registered and named.
    assert export["dagster/table_name"] == "domo.claims_parquet"
    assert export["glue/csv_table"] == "domo.claims"
    assert "glue/csv_table_readable" not in export
    assert "basic verification does not look for" in export["glue/query"]
    assert export["latest_pointer"] == f"s3://{EXPORT_BUCKET}/lake/claims/_latest.json"
    assert any(
        f"published export {e1}" in m and "Glue table domo.claims: registered" in m
        for m in log_messages(instance, first)
    )
    assert table_location("claims") == f"s3://{EXPORT_BUCKET}/lake/claims/{e1}/export/"
    latest = read_json(s3, f"s3://{EXPORT_BUCKET}/lake/claims/_latest.json")
    assert latest["export_id"] == e1 and latest["row_count"] == export["dagster/row_count"]
    redshift = read_json(s3, export["redshift_manifest_uri"])
    assert [e["url"] for e in redshift["entries"]] == export["s3_uris"]
    # Parquet: the same rows, typed, beside the export, with its own table.
    parquet = metadata_of(first, "claims_parquet")
    assert check_outcomes(first)[("claims_parquet", "parquet_row_count")] is True
    assert parquet["dagster/row_count"] == export["dagster/row_count"] == 1000
    (uri,) = parquet["parquet_uris"]
    assert uri.startswith(f"s3://{EXPORT_BUCKET}/lake/claims/{e1}/parquet/")
    body = s3.get_object(Bucket=EXPORT_BUCKET, Key=uri.split("/", 3)[3])["Body"].read()
    rows = pq.read_table(io.BytesIO(body))
    assert rows.num_rows == 1000 and str(rows.schema.field("days_supply").type) == "int64"
    assert table_location("claims_parquet") == f"s3://{EXPORT_BUCKET}/lake/claims/{e1}/parquet/"

    # A newer verified export: the table and the pointer move. Retention keeps the old folder
    # while the Parquet asset's latest materialization still names its Parquet files (the
    # export is published before its Parquet step runs), and removes it on the next export.
    sandbox.control.change_dataset(PHARMACY_CLAIMS_ID, rows=2)
    second = run(tmp_path, sandbox, instance, CLAIMS)
    assert second.success, failure_text(second)
    e2 = metadata_of(second, "claims")["export_id"]
    assert table_location("claims") == f"s3://{EXPORT_BUCKET}/lake/claims/{e2}/export/"
    assert keys(s3, f"lake/claims/{e1}/parquet/"), "the Parquet asset's files were kept"
    assert metadata_of(second, "claims_parquet")["dagster/row_count"] == 1002
    sandbox.control.change_dataset(PHARMACY_CLAIMS_ID, rows=1)
    again = run(tmp_path, sandbox, instance, CLAIMS)
    assert again.success, failure_text(again)
    e2 = metadata_of(again, "claims")["export_id"]
    assert keys(s3, f"lake/claims/{e1}/") == [], "the old export folder is gone"
    assert any(
        f"retention removed s3://{EXPORT_BUCKET}/lake/claims/{e1}/" in m
        for m in log_messages(instance, again)
    )

    # An export that fails its checks moves nothing.
    sandbox.control.change_dataset(PHARMACY_CLAIMS_ID)
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, misreport_rows=3)
    third = run(tmp_path, sandbox, instance, CLAIMS, selection=["claims"])
    assert not third.success
    assert table_location("claims") == f"s3://{EXPORT_BUCKET}/lake/claims/{e2}/export/"
    latest = read_json(s3, f"s3://{EXPORT_BUCKET}/lake/claims/_latest.json")
    assert latest["export_id"] == e2
    assert keys(s3, f"lake/claims/{e2}/export/_manifest.json"), "the current export is kept"


def test_partitions_register_one_glue_partition_each(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path
) -> None:
    entry = {
        "name": "orders",
        "dataset_id": DAILY_ORDERS_ID,
        "path": "lake/orders",
        "table": {"database": "domo"},
        "partition": {"column": "Order Date", "scheme": "daily", "start": "2026-11-01"},
    }
    for day in ("2026-11-05", "2026-11-06"):
        result = run(tmp_path, sandbox, instance, entry, selection=["orders"], partition_key=day)
        assert result.success, failure_text(result)
    glue = boto3.client("glue", region_name="us-east-1")
    table = glue.get_table(DatabaseName="domo", Name="orders")["Table"]
    assert [k["Name"] for k in table["PartitionKeys"]] == ["dt"]
    partitions = glue.get_partitions(DatabaseName="domo", TableName="orders")["Partitions"]
    locations = {p["Values"][0]: p["StorageDescriptor"]["Location"] for p in partitions}
    assert sorted(locations) == ["2026-11-05", "2026-11-06"]
    assert all(
        loc.startswith(f"s3://{EXPORT_BUCKET}/lake/orders/dt={day}/")
        for day, loc in locations.items()
    )


def test_a_glue_outage_loses_nothing(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path, monkeypatch: Any, s3: Any
) -> None:
    # Glue answers from the Domo sandbox's fault injection: every call a 503.
    monkeypatch.setenv("AWS_ENDPOINT_URL_GLUE", f"{sandbox.domo_url}/glue-outage")
    sandbox.control.add_fault(method="POST", path_regex="^/glue-outage", status=503, times=None)
    entry = {**CLAIMS, "parquet": False, "keep_exports": None}
    entry.pop("keep_exports")
    result = run(tmp_path, sandbox, instance, entry)
    assert result.success, "a Glue outage does not fail the export"
    metadata = metadata_of(result, "claims")
    assert any(
        "not updated" in m and "registers it again" in m for m in log_messages(instance, result)
    )
    assert (
        json.loads(
            s3.get_object(Bucket=EXPORT_BUCKET, Key="lake/claims/_latest.json")["Body"].read()
        )["export_id"]
        == metadata["export_id"]
    )


def test_retention_never_removes_what_the_parquet_asset_names(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path, s3: Any
) -> None:
    """keep_exports: 1 with parquet: materialize all, then only the export, twice, on changed
    data: the Parquet asset's latest files (and its pointer and table) stay readable."""
    first = run(tmp_path, sandbox, instance, CLAIMS)
    assert first.success, failure_text(first)
    parquet_uris = metadata_of(first, "claims_parquet")["parquet_uris"]
    for rows in (2, 3):
        sandbox.control.change_dataset(PHARMACY_CLAIMS_ID, rows=rows)
        only_export = run(tmp_path, sandbox, instance, CLAIMS, selection=["claims"])
        assert only_export.success, failure_text(only_export)
        for uri in parquet_uris:
            assert keys(s3, uri.split("/", 3)[3]), f"{uri} was deleted after {rows} changes"
        pointer = read_json(s3, f"s3://{EXPORT_BUCKET}/lake/claims/_latest_parquet.json")
        assert pointer["files"] == parquet_uris
        location = table_location("claims_parquet")
        assert keys(s3, location.split("/", 3)[3]), "the Parquet table reads existing files"
    # The export folders in between were not the Parquet asset's: retention removed them.
    latest = read_json(s3, f"s3://{EXPORT_BUCKET}/lake/claims/_latest.json")["export_id"]
    parquet_export = metadata_of(first, "claims_parquet")["export_id"]
    folders = {k.split("/")[2] for k in keys(s3, "lake/claims/") if k.count("/") > 2}
    assert folders == {latest, parquet_export}


# --- the tables read what was written ---------------------------------------------------------

TABLES = {"database": "domo"}
NAMES = {
    "name": "claims_names",
    "dataset_id": PHARMACY_CLAIMS_ID,
    "path": "lake/names",
    "include_bom": True,
    "verify": "deep",
    "table": TABLES,
    "parquet": True,
}
FLAT = {
    "name": "awkward_flat",
    "dataset_id": AWKWARD_VALUES_ID,
    "path": "lake/flat",
    "include_bom": True,
    "verify": "deep",
    "table": TABLES,
    # Every awkward value but the ones holding line breaks.
    "where": [
        {"column": column, "not_equals": text}
        for column in ("Text", "Note")
        for text in WITH_LINE_BREAKS
    ],
}
LINES = {
    "name": "awkward_lines",
    "dataset_id": AWKWARD_VALUES_ID,
    "path": "lake/lines",
    "include_bom": True,
    "verify": "deep",
    "table": TABLES,
    "parquet": True,
}
# What the CSV tables declared before: Hive and Trino read this escapeChar as a backslash.
OLD_SERDE_PARAMETERS = {"separatorChar": ",", "quoteChar": '"', "escapeChar": '"'}


def glue_table(name: str) -> dict[str, Any]:
    glue = boto3.client("glue", region_name="us-east-1")
    return glue.get_table(DatabaseName="domo", Name=name)["Table"]


def objects(s3: Any, uris: list[str]) -> list[tuple[str, bytes]]:
    """Each object's key and bytes, read from S3."""
    found = []
    for uri in uris:
        bucket, key = uri.removeprefix("s3://").split("/", 1)
        found.append((key, s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
    return found


def csv_records(files: list[tuple[str, bytes]]) -> tuple[list[str], list[list[str]]]:
    """The first file's header (BOM kept) and every file's records, read with the csv module
    (RFC 4180, as Domo writes it): what the table must read."""
    header: list[str] = []
    records: list[list[str]] = []
    for key, data in files:
        text = (gzip.decompress(data) if key.endswith(".gz") else data).decode("utf-8")
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
        header = header or rows[0]
        records.extend(rows[1:])
    return header, records


def csv_table_rows(table: dict[str, Any], files: list[tuple[str, bytes]], **serde: str) -> Any:
    """The rows the CSV table returns over the files, with its own SerDe settings (or others)."""
    descriptor = table["StorageDescriptor"]
    parameters = serde or descriptor["SerdeInfo"]["Parameters"]
    return read_table(files, len(descriptor["Columns"]), parameters, table["Parameters"])


def test_the_opencsv_port_reads_as_the_serde_does() -> None:
    """The oracle's own rules, on lines whose reading opencsv's parser fixes."""
    now = serde_characters({"separatorChar": ",", "quoteChar": '"', "escapeChar": "\n"})
    old = serde_characters(OLD_SERDE_PARAMETERS)
    assert old == (",", '"', "\\")  # Hive's and Trino's swap
    assert parse_line('1,"a ""b"", c",', 3, *now) == ["1", 'a "b", c', ""]
    assert parse_line("1,back\\slash,x", 3, *now) == ["1", "back\\slash", "x"]
    assert parse_line("1,back\\slash,x", 3, *old) == ["1", "backslash", "x"]
    assert parse_line('1,"ends\\",x', 3, *old) == ["1", None, None]
    assert parse_line("1,2,3,4", 2, *now) == ["1", "2"]  # extra fields dropped
    assert parse_line("1", 2, *now) == ["1", None]  # missing ones are NULL
    assert list(lines(b"\xef\xbb\xbfa\rb\r\nc\nd")) == ["a", "b", "c", "d"]


def test_the_tables_read_back_exactly_what_the_files_hold(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path, s3: Any
) -> None:
    """Names with spaces, a BOM, backslashes, quotes, commas, empty strings and line breaks:
    each table's definition, read back from Glue, is checked against the files' header and
    Parquet schema, and read as Athena reads it."""
    result = run(tmp_path, sandbox, instance, NAMES, FLAT, LINES)
    assert result.success, failure_text(result)

    for entry, names in ((NAMES, CLAIMS_NAMES), (FLAT, AWKWARD_NAMES), (LINES, AWKWARD_NAMES)):
        name = entry["name"]
        export = metadata_of(result, name)
        files = objects(s3, export["s3_uris"])
        header, records = csv_records(files)
        assert header[0].startswith(UTF8_BOM), "the files start with a BOM"
        domo_names = [header[0].removeprefix(UTF8_BOM), *header[1:]]
        table = glue_table(name)
        declared = table["StorageDescriptor"]["Columns"]
        # The CSV table reads by position: one column per field, in order, named for Athena,
        # the Domo name (without the BOM) in the comment.
        assert [c["Name"] for c in declared] == names
        assert [c["Comment"].rsplit(" (Domo ", 1)[0] for c in declared] == domo_names
        read = csv_table_rows(table, files)
        line_breaks = sum(v.count("\n") + v.count("\r") for r in records for v in r)
        if entry is LINES:
            # A value with a line break arrives as two lines: fragment rows. So the table is not
            # the one advertised, and the metadata says which one to query.
            assert len(read) > len(records) and line_breaks > 0
            assert export["glue/csv_table_readable"] is False
            assert export["glue/csv_table"] == "domo.awkward_lines"
            assert export["dagster/table_name"] == "domo.awkward_lines_parquet"
            assert f"found {line_breaks} line break(s) inside values" in export["glue/query"]
        else:
            assert read == records, f"{name}: the CSV table reads every value exactly"
            assert line_breaks == 0
            assert export["glue/csv_table_readable"] is True
            assert export["dagster/table_name"] == f"domo.{name}"

    # The values that broke the old SerDe settings are there, and read exactly now.
    flat_files = objects(s3, metadata_of(result, "awkward_flat")["s3_uris"])
    _, flat = csv_records(flat_files)
    texts = {r[1] for r in flat} | {r[2] for r in flat}
    assert {"back\\slash", "ends in a backslash, \\", '"', "comma, inside", ""} <= texts
    assert 'double "quotes" inside' in texts
    # The port is no straw man: with escapeChar '"' it loses what Athena lost.
    old = csv_table_rows(glue_table("awkward_flat"), flat_files, **OLD_SERDE_PARAMETERS)
    old_texts = {r[1] for r in old} | {r[2] for r in old}
    assert "back\\slash" not in old_texts and "backslash" in old_texts
    assert any(None in row for row in old), "a quoted value ending in \\ swallows its row"

    # The Parquet tables: declared with exactly the files' names and types, so Athena's
    # by-name resolution finds every column, with the CSV's values (line breaks too).
    for entry in (NAMES, LINES):
        name = entry["name"]
        parquet = metadata_of(result, f"{name}_parquet")
        assert parquet["dagster/table_name"] == f"domo.{name}_parquet"
        declared = glue_table(f"{name}_parquet")["StorageDescriptor"]["Columns"]
        header, records = csv_records(objects(s3, metadata_of(result, name)["s3_uris"]))
        domo_names = [header[0].removeprefix(UTF8_BOM), *header[1:]]
        for _, body in objects(s3, parquet["parquet_uris"]):
            schema = pq.read_schema(io.BytesIO(body))
            assert schema.names == [c["Name"] for c in declared]
            assert [GLUE_TYPE_OF_ARROW[str(f.type)] for f in schema] == [
                c["Type"] for c in declared
            ]
            assert [f.metadata[b"domo_assets.domo_name"].decode() for f in schema] == domo_names
            by_name = pq.read_table(io.BytesIO(body), columns=[c["Name"] for c in declared])
            for index, column in enumerate(declared):
                if column["Type"] == "string":
                    values = by_name.column(column["Name"]).to_pylist()
                    assert values == [r[index] for r in records], column["Name"]
        column_schema = parquet["dagster/column_schema"]
        assert [c.name for c in column_schema.columns] == [c["Name"] for c in declared]
        assert [c.description for c in column_schema.columns] == [c["Comment"] for c in declared]
