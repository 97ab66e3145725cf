"""Streaming CSV-to-Parquet conversion (domo_assets.s3.parquet) against the sandbox's moto S3.

Exports are real sandbox exports; the oracle is the CSV read with the ``csv`` module and typed
by hand from the Domo schema, never pyarrow's CSV reader (the code under test).
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from domo_assets_dev.sandbox import (
    AWKWARD_VALUES_ID,
    EXPORT_BUCKET,
    LARGE_EVENTS_ID,
    PHARMACY_CLAIMS_ID,
    Sandbox,
)

from domo_assets.domo.models import DataSetColumn, parse_columns, parse_url_row_count_map
from domo_assets.s3.glue import PARQUET, GlueTable, glue_columns
from domo_assets.s3.parquet import (
    CONTENT_TYPE,
    DEFAULT_DECIMAL_TYPE,
    MIN_PART_SIZE,
    ParquetConversionError,
    ParquetResult,
    arrow_schema,
    convert_export,
    parquet_key,
    parquet_schema,
)

if TYPE_CHECKING:
    from conftest import DomoHttp

PREFIX = "domo/converted/parquet"
SMALL_ROW_GROUP_BYTES = 256 * 1024
"""Small enough that the sandbox's exports make several row groups a file."""
WIDE_TEXT_CHARS = 300
WIDE_ROWS = 40_000
"""40,000 rows of 300 random hex characters: about 12 MB of Parquet, three 5 MiB parts."""
HAND_COLUMNS = (
    DataSetColumn("ID", "LONG"),
    DataSetColumn("Text", "STRING"),
    DataSetColumn("Amount", "DECIMAL"),
)


# --- helpers ----------------------------------------------------------------------------------


def export_of(
    domo: DomoHttp, dataset_id: str, **body: Any
) -> tuple[dict[str, Any], list[tuple[str, str]], tuple[DataSetColumn, ...]]:
    """Run a real export; return it, its objects in order and its columns with Domo types."""
    export = domo.export(dataset_id, domo.body(**body))
    assert export["exportStatus"] == "success", export
    objects = [
        (o.bucket, o.key)
        for o in parse_url_row_count_map(export["urlRowCountMap"], bucket_hint=EXPORT_BUCKET)
    ]
    schema = domo.get(f"/api/data/v2/datasources/{dataset_id}/schemas/latest", timeout=10)
    schema.raise_for_status()
    return export, objects, parse_columns(schema.json())


def typed(value: str, domo_type: str) -> object:
    """A CSV field as the Python value its Domo type means (an empty non-string: null)."""
    if domo_type == "STRING":
        return value
    if value == "":
        return None
    parse = {
        "LONG": int,
        "DOUBLE": float,
        "DECIMAL": Decimal,
        "DATE": date.fromisoformat,
        "DATETIME": datetime.fromisoformat,
    }[domo_type]
    return parse(value)


def expected_rows(
    rows: Sequence[Sequence[str]], columns: Sequence[DataSetColumn]
) -> list[tuple[object, ...]]:
    """The CSV rows typed by hand from the columns' Domo types."""
    return [tuple(typed(v, c.type) for v, c in zip(row, columns, strict=True)) for row in rows]


def read_parquet(s3: Any, bucket: str, key: str) -> pq.ParquetFile:
    """A Parquet object downloaded from S3, opened with pyarrow."""
    return pq.ParquetFile(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))


def parquet_rows(s3: Any, result: ParquetResult) -> list[tuple[object, ...]]:
    """Every row of every Parquet file of a result, in order, as tuples."""
    rows: list[tuple[object, ...]] = []
    for written in result.files:
        table = read_parquet(s3, result.bucket, written.key).read()
        rows.extend(zip(*(column.to_pylist() for column in table.columns), strict=True))
    return rows


def keys_under(s3: Any, prefix: str) -> list[str]:
    """The keys of the export bucket under ``prefix``."""
    listed = s3.list_objects_v2(Bucket=EXPORT_BUCKET, Prefix=prefix)
    return [o["Key"] for o in listed.get("Contents", [])]


def put_csv(
    s3: Any, key: str, header: Sequence[str], rows: Iterator[Sequence[object]] | list[Any]
) -> None:
    """Write a CSV object as Domo writes it (csv module, QUOTE_MINIMAL, CRLF)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    s3.put_object(Bucket=EXPORT_BUCKET, Key=key, Body=buffer.getvalue().encode("utf-8"))


def wide_rows(count: int, *, bad_last: bool = False) -> Iterator[tuple[object, ...]]:
    """Rows of random hex text (incompressible enough to make a Parquet file of many MiB)."""
    rng = random.Random(17)
    for index in range(count):
        text = rng.randbytes(WIDE_TEXT_CHARS // 2).hex()
        last = bad_last and index == count - 1
        yield ("not a number" if last else index, text, f"{rng.randrange(10**6)}.25")


def convert(
    s3: Any, objects: Sequence[tuple[str, str]], columns: Any, **kwargs: Any
) -> ParquetResult:
    """``convert_export`` into the sandbox's export bucket under ``PREFIX``, unless told."""
    settings: dict[str, Any] = {"compression": None, "bucket": EXPORT_BUCKET, "key_prefix": PREFIX}
    return convert_export(s3, objects, columns, **{**settings, **kwargs})


# --- real exports -----------------------------------------------------------------------------


@pytest.mark.parametrize("declared", [True, False], ids=["declared", "sniffed"])
def test_awkward_values_uncompressed_rows_equal_the_csv(
    domo: DomoHttp, s3: Any, declared: bool
) -> None:
    """Commas, quotes, LF and CRLF inside values, unicode, empty strings and nulls survive."""
    export, objects, columns = export_of(domo, AWKWARD_VALUES_ID)
    assert export["compression"] == "none"
    header, rows = domo.read(export)

    result = convert(s3, objects, columns, compression="none" if declared else None)

    assert [f.key for f in result.files] == [parquet_key(PREFIX, 0)]
    assert result.rows == len(rows) == 50
    stored = read_parquet(s3, EXPORT_BUCKET, result.files[0].key).schema_arrow
    # Named as the Glue table's columns (Athena reads Parquet by name), Domo's names kept.
    assert stored.names == ["id", "text", "note", "amount", "created"]
    assert [f.metadata[b"domo_assets.domo_name"].decode() for f in stored] == header
    assert stored.types == [pa.int64(), pa.string(), pa.string(), pa.float64(), pa.timestamp("us")]
    got = parquet_rows(s3, result)
    assert got == expected_rows(rows, columns)
    # Nulls of non-string columns are kept; empty strings stay strings.
    assert sum(r[3] is None for r in got) == sum(r[3] == "" for r in rows) > 0
    assert sum(r[4] is None for r in got) == sum(r[4] == "" for r in rows) > 0
    texts = {r[1] for r in got}
    assert {"", "windows\r\nnewline", "line one\nline two", 'double "quotes" inside'} <= texts
    assert "漢字テキスト" in texts


@pytest.mark.parametrize("declared", [True, False], ids=["declared", "sniffed"])
def test_pharmacy_claims_gzip_with_bom_keeps_dates_decimals_and_longs(
    domo: DomoHttp, s3: Any, declared: bool
) -> None:
    export, objects, columns = export_of(domo, PHARMACY_CLAIMS_ID, include_bom=True)
    assert export["compression"] == "gzip"
    bom, _ = domo.read_file(next(iter(export["urlRowCountMap"])))
    assert bom
    header, rows = domo.read(export)

    result = convert(s3, objects, columns, compression="gzip" if declared else None)

    stored = read_parquet(s3, EXPORT_BUCKET, result.files[0].key).schema_arrow
    domo_names = [f.metadata[b"domo_assets.domo_name"].decode() for f in stored]
    assert domo_names == header  # no BOM glued to the first name
    assert [f.metadata[b"domo_assets.domo_type"].decode() for f in stored] == [
        c.type for c in columns
    ]
    types = dict(zip(stored.names, stored.types, strict=True))
    assert types["customer_id"] == types["days_supply"] == pa.int64()
    assert types["date_filled"] == pa.date32()
    assert types["metric_quantity"] == DEFAULT_DECIMAL_TYPE
    assert types["cardholder_id"] == pa.string()  # leading zeros kept
    got = parquet_rows(s3, result)
    assert got == expected_rows(rows, columns)
    assert result.rows == export["urlRowCountMap"][next(iter(export["urlRowCountMap"]))] == 1000
    assert (
        result.files[0].source_bytes
        == s3.head_object(Bucket=objects[0][0], Key=objects[0][1])["ContentLength"]
    )


def test_multi_file_export_becomes_one_parquet_file_per_csv_object(domo: DomoHttp, s3: Any) -> None:
    export, objects, columns = export_of(domo, LARGE_EVENTS_ID)
    assert len(objects) == 3
    counts = parse_url_row_count_map(export["urlRowCountMap"], bucket_hint=EXPORT_BUCKET)
    _, rows = domo.read(export)

    result = convert(s3, objects, columns, row_group_bytes=SMALL_ROW_GROUP_BYTES)

    assert [f.key for f in result.files] == [parquet_key(PREFIX, i) for i in range(3)]
    assert [f.source_uri for f in result.files] == [f"s3://{b}/{k}" for b, k in objects]
    assert [f.rows for f in result.files] == [c.row_count for c in counts]
    assert result.rows == 300_000
    for written in result.files:
        stored = read_parquet(s3, EXPORT_BUCKET, written.key)
        assert stored.metadata.num_rows == written.rows
        assert stored.metadata.num_row_groups == written.row_groups > 1
        head = s3.head_object(Bucket=EXPORT_BUCKET, Key=written.key)
        assert head["ContentLength"] == written.size
        assert head["ContentType"] == CONTENT_TYPE
    assert parquet_rows(s3, result) == expected_rows(rows, columns)


def test_an_empty_export_becomes_a_parquet_file_with_the_schema_and_no_rows(
    domo: DomoHttp, s3: Any
) -> None:
    where = {
        "exprType": "GREATER_THAN",
        "leftExpr": {"column": "Days Supply", "exprType": "COLUMN"},
        "rightExpr": {"value": 1000, "exprType": "NUMERIC_VALUE"},
    }
    export, objects, columns = export_of(domo, PHARMACY_CLAIMS_ID, where=where)
    assert list(export["urlRowCountMap"].values()) == [0]

    result = convert(s3, objects, columns, compression="gzip")

    stored = read_parquet(s3, EXPORT_BUCKET, result.files[0].key)
    assert result.rows == stored.metadata.num_rows == 0
    assert stored.schema_arrow == parquet_schema(columns) == result.schema
    assert stored.schema_arrow.types == arrow_schema(columns).types


# --- hand-made objects: sizes, failures -------------------------------------------------------


def test_a_large_file_is_uploaded_in_parts_with_the_upload_arguments(
    sandbox: Sandbox, s3: Any
) -> None:
    put_csv(s3, "hand/wide.csv", [c.name for c in HAND_COLUMNS], wide_rows(WIDE_ROWS))
    client = sandbox.s3_client()
    parts: list[int] = []
    client.meta.events.register(
        "provide-client-params.s3.UploadPart",
        lambda params, **_: parts.append(params["PartNumber"]),
    )
    try:
        result = convert(
            client,
            [(EXPORT_BUCKET, "hand/wide.csv")],
            HAND_COLUMNS,
            part_size=MIN_PART_SIZE,
            row_group_bytes=SMALL_ROW_GROUP_BYTES,
            put_args={"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "parquet-key"},
        )
    finally:
        client.close()

    written = result.files[0]
    assert written.size > 2 * MIN_PART_SIZE
    assert parts == list(range(1, len(parts) + 1)) and len(parts) >= 3
    head = s3.head_object(Bucket=EXPORT_BUCKET, Key=written.key)
    assert head["ETag"].strip('"').endswith(f"-{len(parts)}")  # a completed multipart upload
    assert head["ContentLength"] == written.size
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith("parquet-key")
    expected = [(i, text, Decimal(amount)) for i, text, amount in wide_rows(WIDE_ROWS)]
    assert parquet_rows(s3, result) == expected


def test_a_failure_midway_removes_every_file_and_aborts_the_upload(
    sandbox: Sandbox, s3: Any
) -> None:
    """The second object has a bad LONG in its last row, after parts of it were uploaded."""
    names = [c.name for c in HAND_COLUMNS]
    put_csv(s3, "hand/good.csv", names, wide_rows(10))
    put_csv(s3, "hand/bad.csv", names, wide_rows(WIDE_ROWS, bad_last=True))
    client = sandbox.s3_client()
    calls: list[str] = []
    for operation in ("PutObject", "UploadPart", "AbortMultipartUpload", "DeleteObject"):
        client.meta.events.register(
            f"after-call.s3.{operation}", lambda operation=operation, **_: calls.append(operation)
        )
    try:
        with pytest.raises(ParquetConversionError) as raised:
            convert(
                client,
                [(EXPORT_BUCKET, "hand/good.csv"), (EXPORT_BUCKET, "hand/bad.csv")],
                HAND_COLUMNS,
                part_size=MIN_PART_SIZE,
                row_group_bytes=SMALL_ROW_GROUP_BYTES,
            )
    finally:
        client.close()

    message = str(raised.value)
    assert f"s3://{EXPORT_BUCKET}/hand/bad.csv" in message
    assert parquet_key(PREFIX, 1) in message
    assert "'ID' (Domo LONG -> int64)" in message
    # The good file was written, parts of the bad one uploaded, then all of it undone.
    assert calls[0] == "PutObject"
    assert calls.count("UploadPart") >= 2
    assert calls[-2:] == ["AbortMultipartUpload", "DeleteObject"]
    assert keys_under(s3, PREFIX) == []
    assert s3.list_multipart_uploads(Bucket=EXPORT_BUCKET).get("Uploads", []) == []


def test_a_header_that_is_not_the_columns_fails_and_writes_nothing(domo: DomoHttp, s3: Any) -> None:
    _, objects, columns = export_of(domo, AWKWARD_VALUES_ID)
    swapped = (columns[1], columns[0], *columns[2:])

    with pytest.raises(ParquetConversionError) as raised:
        convert(s3, objects, swapped)

    message = str(raised.value)
    assert objects[0][1] in message
    assert "column 1 is 'ID' where 'Text' is expected" in message
    assert "verified" in message
    assert keys_under(s3, PREFIX) == []


def test_a_decimal_beyond_the_default_scale_fails_naming_the_column_or_converts_as_float(
    s3: Any,
) -> None:
    put_csv(s3, "hand/precise.csv", ["ID", "Text", "Amount"], [(1, "x", "0." + "1" * 20)])
    objects = [(EXPORT_BUCKET, "hand/precise.csv")]

    with pytest.raises(ParquetConversionError) as raised:
        convert(s3, objects, HAND_COLUMNS)
    assert "'Amount' (Domo DECIMAL -> decimal128(38, 18))" in str(raised.value)
    assert "decimal_type=pyarrow.float64()" in str(raised.value)
    assert keys_under(s3, PREFIX) == []

    result = convert(s3, objects, HAND_COLUMNS, decimal_type=pa.float64())
    assert parquet_rows(s3, result) == [(1, "x", pytest.approx(0.1111111111111111))]


def test_only_empty_fields_are_nulls(s3: Any) -> None:
    """pyarrow's default null markers ("NA", "null", "NaN"...) are values here."""
    columns = (DataSetColumn("Text", "STRING"), DataSetColumn("Ratio", "DOUBLE"))
    put_csv(
        s3,
        "hand/nulls.csv",
        ["Text", "Ratio"],
        [("NA", "NaN"), ("null", ""), ("", "1.5"), ("N/A", "-inf")],
    )

    result = convert(s3, [(EXPORT_BUCKET, "hand/nulls.csv")], columns)

    rows = parquet_rows(s3, result)
    assert [r[0] for r in rows] == ["NA", "null", "", "N/A"]
    ratios = [r[1] for r in rows]
    assert ratios[0] != ratios[0]  # NaN
    assert ratios[1:] == [None, 1.5, float("-inf")]


def test_clashing_names_are_told_apart_as_the_glue_table_declares_them(s3: Any) -> None:
    """``Order ID`` and ``order_id`` both become ``order_id``: the files and the Parquet table
    tell them apart the same way (one function names both), each keeping its Domo name."""
    columns = (
        DataSetColumn("Order ID", "LONG"),
        DataSetColumn("order_id", "STRING"),
        DataSetColumn("Unit Price (€)", "DOUBLE"),
    )
    put_csv(s3, "hand/clash.csv", [c.name for c in columns], [(1, "a", "2.5"), (2, "b", "")])

    result = convert(s3, [(EXPORT_BUCKET, "hand/clash.csv")], columns)

    stored = read_parquet(s3, EXPORT_BUCKET, result.files[0].key).schema_arrow
    table = GlueTable(
        database="domo",
        name="clash_parquet",
        columns=columns,
        compression=None,
        file_format=PARQUET,
    )
    declared = glue_columns(table)
    assert stored.names == [c["Name"] for c in declared] == ["order_id", "order_id_2", "unit_price"]
    assert [c["Type"] for c in declared] == ["bigint", "string", "double"]
    assert [f.metadata[b"domo_assets.domo_name"].decode() for f in stored] == [
        c.name for c in columns
    ]
    assert parquet_rows(s3, result) == [(1, "a", 2.5), (2, "b", None)]


def test_arrow_schema_maps_every_domo_type() -> None:
    columns = [
        DataSetColumn("s", "STRING"),
        DataSetColumn("l", "LONG"),
        DataSetColumn("d", "decimal"),
        DataSetColumn("f", "DOUBLE"),
        DataSetColumn("day", "DATE"),
        DataSetColumn("at", "DATETIME"),
        DataSetColumn("odd", "GEOPOINT"),
    ]
    assert arrow_schema(columns).types == [
        pa.string(),
        pa.int64(),
        DEFAULT_DECIMAL_TYPE,
        pa.float64(),
        pa.date32(),
        pa.timestamp("us"),
        pa.string(),
    ]
    assert arrow_schema(columns, decimal_type=pa.float64()).field("d").type == pa.float64()


@pytest.mark.parametrize(
    ("objects", "columns", "prefix", "part_size", "fragment"),
    [
        ([], HAND_COLUMNS, PREFIX, MIN_PART_SIZE, "no CSV objects"),
        ([("b", "k")], (), PREFIX, MIN_PART_SIZE, "no columns"),
        ([("b", "k")], HAND_COLUMNS, "/", MIN_PART_SIZE, "key_prefix is empty"),
        ([("b", "k")], HAND_COLUMNS, PREFIX, MIN_PART_SIZE - 1, "part_size must be at least"),
    ],
)
def test_arguments_are_checked_before_anything_is_read(
    objects: list[tuple[str, str]],
    columns: tuple[DataSetColumn, ...],
    prefix: str,
    part_size: int,
    fragment: str,
) -> None:
    with pytest.raises(ValueError, match=fragment):
        convert_export(
            None,
            objects,
            columns,
            compression=None,
            bucket=EXPORT_BUCKET,
            key_prefix=prefix,
            part_size=part_size,
        )


@pytest.mark.parametrize("rows", [10, WIDE_ROWS], ids=["single-put", "multipart"])
def test_an_upload_s3_refuses_fails_naming_the_s3_error(s3: Any, rows: int) -> None:
    """S3's error reaches the caller whether it came from the last PUT or from a part."""
    put_csv(s3, "hand/wide.csv", [c.name for c in HAND_COLUMNS], wide_rows(rows))

    with pytest.raises(ParquetConversionError) as raised:
        convert(
            s3,
            [(EXPORT_BUCKET, "hand/wide.csv")],
            HAND_COLUMNS,
            bucket="no-such-bucket",
            part_size=MIN_PART_SIZE,
            row_group_bytes=SMALL_ROW_GROUP_BYTES,
        )

    message = str(raised.value)
    assert "s3://no-such-bucket/" + parquet_key(PREFIX, 0) in message
    assert "S3 NoSuchBucket" in message
    assert "PutObject, multipart upload" in message
