"""Streaming conversion of a verified export's CSV objects in S3 into Parquet objects in S3.

Each CSV object of an export becomes one Parquet object, ``<key_prefix>/part-00000.parquet``,
``part-00001.parquet``... in the order given, so a Parquet file's rows can be compared with its
CSV object's (``urlRowCountMap`` counts per file). Nothing is ever held whole:

* **Reading**: the object is streamed from S3 (one GET) into pyarrow's streaming CSV reader
  (``pyarrow.csv.open_csv``), gunzipped by pyarrow when it is gzip (concatenated members too),
  in blocks of ``block_size`` bytes. pyarrow skips a UTF-8 BOM and reads RFC 4180 quoting with
  embedded LF and CRLF (``newlines_in_values``), as Domo writes it (Python's ``csv`` module,
  QUOTE_MINIMAL, CRLF). The header row must list the DataSet's columns, in order.
* **Names**: the Parquet columns carry the Glue table's names (:func:`parquet_schema`:
  ``Customer ID`` is written as ``customer_id``, from ``s3/columns.py``, the function the Glue
  table's columns come from), since Athena resolves Parquet columns by name and takes only
  lower-case names; each field's metadata keeps the Domo name and type.
* **Types**: an explicit schema from the Domo types (see :func:`arrow_schema`), never inferred.
  An empty field is a null in a non-string column; in a STRING column it stays an empty string
  (Domo writes nulls and empty strings alike, so they cannot be told apart).
* **Row groups**: record batches are gathered until they hold ``row_group_bytes`` of Arrow data,
  then written as one row group (Athena, Spark and Trino skip and read per row group), encoded
  in a background thread while the next one is parsed. At most two row groups of batches are
  held at once.
* **Writing**: a multipart upload fed as the Parquet writer writes, ``part_size`` bytes a part,
  one part uploading in a background thread while the next fills. Memory stays at about two
  parts, no local disk is used (run pods often have little), and the object appears only when
  the upload completes, so a reader never sees half a file. A file smaller than one part is a
  single PUT. On any failure the upload is aborted (no orphaned parts are billed) and the files
  this call already wrote are deleted: a conversion writes all its files or none.

``benchmarks/README.md`` ("Parquet") measures throughput and peak memory on a 1 GiB export.

pyarrow's CSV reader counts some malformed inputs silently wrong (a file cut inside a quoted
field reads as fewer rows), so convert only exports already verified (header and row count), and
compare :attr:`ParquetResult.rows` with the export's row count.

Plain Python over a boto3 S3 client: no Dagster, no Domo HTTP.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from botocore.exceptions import BotoCoreError, ClientError

from domo_assets.domo.models import DataSetColumn
from domo_assets.s3.columns import domo_column_name, table_column_names
from domo_assets.s3.verify import (
    MalformedCsvError,
    _declared_gzip,
    _is_gzip,
    header_mismatch,
)

DEFAULT_DECIMAL_TYPE = pa.decimal128(38, 18)
"""Arrow type of Domo DECIMAL columns. Domo's schema gives no precision or scale, so the widest
that Parquet readers take as a decimal (38 digits: Athena, Trino, Spark, Redshift, Hive) with
Spark's default scale for unbounded decimals (``DecimalType(38, 18)``): 20 integer digits (the
whole int64 range) and 18 fractional ones. A value that does not fit fails the conversion
(pyarrow never rounds); pass ``decimal_type=pyarrow.float64()`` to trade exactness for range."""
DATETIME_TYPE = pa.timestamp("us")
"""Arrow type of Domo DATETIME columns: Domo writes ``YYYY-MM-DDTHH:MM:SS`` with no zone offset,
so the timestamps carry no time zone (Parquet ``isAdjustedToUTC=false``). Microseconds hold any
fractional seconds too."""
DOMO_TYPES: Mapping[str, pa.DataType] = {
    "STRING": pa.string(),
    "LONG": pa.int64(),
    "DOUBLE": pa.float64(),
    "DATE": pa.date32(),
    "DATETIME": DATETIME_TYPE,
}
"""Arrow type of each Domo column type but DECIMAL (see ``DEFAULT_DECIMAL_TYPE``)."""
DECIMAL = "DECIMAL"
FALLBACK_TYPE = pa.string()
"""A type Domo does not document is kept as text: lossless, whatever its values look like."""
PARQUET_CODEC = "snappy"
"""Parquet compression: every Parquet reader has it, and it costs the least CPU."""
CSV_BLOCK_SIZE = 1024 * 1024
"""Bytes of CSV pyarrow parses at once; also the longest record it can read (a value with a
line break cannot be split across blocks). pyarrow reads several blocks ahead, so memory grows
with it: reading with 4 MiB blocks took about three times the memory of 1 MiB ones (pyarrow's
default), for no speed."""
ROW_GROUP_BYTES = 32 * 1024 * 1024
"""Arrow bytes gathered into one Parquet row group (about 10 MB of snappy Parquet). Memory
grows with it: a 1 GiB conversion peaked at 257 MB with 32 MiB, 317 MB with 64 MiB."""
PART_SIZE = 8 * 1024 * 1024
"""Bytes of each multipart-upload part (S3: at least 5 MiB, at most 10,000 parts)."""
MAX_PARTS = 10_000
MIN_PART_SIZE = 5 * 1024 * 1024
PART_NAME = "part-{index:05d}.parquet"
CONTENT_TYPE = "application/vnd.apache.parquet"
DOMO_NAME_KEY = b"domo_assets.domo_name"
"""Parquet field metadata: the column's name in Domo (the field is named as the table's)."""
DOMO_TYPE_KEY = b"domo_assets.domo_type"
"""Parquet field metadata: the column's Domo type."""
MAX_CAUSE_CHARS = 500
"""An error's cause is cut to this length (pyarrow quotes whole records in parse errors)."""
_SNIFF_BYTES = 2
_ARROW_COLUMN = re.compile(r"CSV column #(\d+)")


class ParquetConversionError(RuntimeError):
    """An export could not be converted; the message names the object and what to do."""


class _PartLimitError(ValueError):
    """The Parquet file outgrew S3's part count at this part size."""


@dataclass(frozen=True)
class ParquetFile:
    """One Parquet object written from one CSV object."""

    uri: str
    """``s3://bucket/key`` of the Parquet object."""
    key: str
    source_uri: str
    """``s3://bucket/key`` of the CSV object it holds."""
    rows: int
    row_groups: int
    size: int
    """Bytes of the Parquet object."""
    source_bytes: int
    """Bytes read from the CSV object (compressed bytes for gzip)."""


@dataclass(frozen=True)
class ParquetResult:
    """Every Parquet object a conversion wrote, in the order of the CSV objects."""

    bucket: str
    files: tuple[ParquetFile, ...]
    schema: pa.Schema
    """The files' schema (:func:`parquet_schema`): the table's names, the Domo ones in metadata."""

    @property
    def rows(self) -> int:
        """Rows over every file: compare with the export's row count."""
        return sum(f.rows for f in self.files)


_FAILURES = (pa.ArrowException, MalformedCsvError, _PartLimitError, ClientError, BotoCoreError)
"""What converting one object can raise that :class:`ParquetConversionError` reports."""


def arrow_schema(
    columns: Sequence[DataSetColumn], *, decimal_type: pa.DataType = DEFAULT_DECIMAL_TYPE
) -> pa.Schema:
    """The Arrow schema of a DataSet's columns, from their Domo types.

    STRING -> string, LONG -> int64, DOUBLE -> float64, DECIMAL -> ``decimal_type``, DATE ->
    date32, DATETIME -> timestamp[us] (no time zone). Type names are matched case-insensitively;
    a type Domo does not document is read as string.

    Args:
        columns: The DataSet's columns (or the exported ones), in file order.
        decimal_type: The Arrow type of DECIMAL columns.

    Returns:
        A schema with one nullable field per column.
    """
    types = {**DOMO_TYPES, DECIMAL: decimal_type}
    return pa.schema(
        pa.field(c.name, types.get(c.type.strip().upper(), FALLBACK_TYPE)) for c in columns
    )


def parquet_schema(
    columns: Sequence[DataSetColumn], *, decimal_type: pa.DataType = DEFAULT_DECIMAL_TYPE
) -> pa.Schema:
    """The schema the Parquet files are written with: :func:`arrow_schema`'s types under the
    Glue table's column names (``s3/columns.py``), the Domo name and type in each field's
    metadata (``DOMO_NAME_KEY``, ``DOMO_TYPE_KEY``).

    Args:
        columns: The exported columns, in file order.
        decimal_type: The Arrow type of DECIMAL columns.
    """
    typed = arrow_schema(columns, decimal_type=decimal_type)
    names = table_column_names([c.name for c in columns])
    return pa.schema(
        pa.field(
            name,
            field.type,
            metadata={
                DOMO_NAME_KEY: domo_column_name(column.name).encode(),
                DOMO_TYPE_KEY: column.type.encode(),
            },
        )
        for name, field, column in zip(names, typed, columns, strict=True)
    )


def parquet_key(key_prefix: str, index: int) -> str:
    """The key of the ``index``-th Parquet file: ``<key_prefix>/part-00000.parquet``..."""
    return f"{key_prefix.strip('/')}/{PART_NAME.format(index=index)}"


def convert_export(
    s3_client: Any,
    objects: Sequence[tuple[str, str]],
    columns: Sequence[DataSetColumn],
    *,
    compression: str | None,
    bucket: str,
    key_prefix: str,
    decimal_type: pa.DataType = DEFAULT_DECIMAL_TYPE,
    parquet_compression: str = PARQUET_CODEC,
    row_group_bytes: int = ROW_GROUP_BYTES,
    part_size: int = PART_SIZE,
    block_size: int = CSV_BLOCK_SIZE,
    put_args: Mapping[str, Any] | None = None,
) -> ParquetResult:
    """Stream every CSV object of a verified export into one Parquet object each, in S3.

    Args:
        s3_client: A boto3 S3 client that may read the export and write under ``key_prefix``.
        objects: ``(bucket, key)`` of every CSV object of the export, in order.
        columns: The exported columns with their Domo types, in the files' order.
        compression: The export's compression (``gzip`` or ``none``); None lets each object's
            headers or magic bytes decide.
        bucket: The bucket to write the Parquet files into.
        key_prefix: Their prefix: the files are ``<key_prefix>/part-00000.parquet``...
        decimal_type: The Arrow type of DECIMAL columns (see ``DEFAULT_DECIMAL_TYPE``).
        parquet_compression: The Parquet codec (``snappy``, ``zstd``, ``gzip``, ``none``...).
        row_group_bytes: Arrow bytes gathered into one row group.
        part_size: Bytes per multipart-upload part (at least 5 MiB).
        block_size: Bytes of CSV parsed at once; a record longer than this cannot be read.
        put_args: Extra arguments of every upload, such as ``ServerSideEncryption`` and
            ``SSEKMSKeyId`` (``ContentType`` is set already).

    Returns:
        The files written (columns named as :func:`parquet_schema` says) and their rows.

    Raises:
        ParquetConversionError: An object could not be read, parsed, typed or written; nothing
            is left under ``key_prefix`` from this call.
        ValueError: No objects, no columns, an empty ``key_prefix`` or a size out of range.
    """
    _check_arguments(objects, columns, key_prefix, part_size, row_group_bytes, block_size)
    schema = arrow_schema(columns, decimal_type=decimal_type)
    options = _CsvOptions(schema, parquet_schema(columns, decimal_type=decimal_type), block_size)
    settings = _WriteSettings(parquet_compression, row_group_bytes, part_size, dict(put_args or {}))
    written: list[ParquetFile] = []
    for index, (source_bucket, source_key) in enumerate(objects):
        key = parquet_key(key_prefix, index)
        source = _Source(source_bucket, source_key)
        try:
            written.append(
                _convert_object(s3_client, source, compression, options, settings, bucket, key)
            )
        except _FAILURES as exc:
            leftovers = _remove(s3_client, bucket, [f.key for f in written])
            raise ParquetConversionError(
                _failure_message(source, f"s3://{bucket}/{key}", exc, columns, schema, leftovers)
            ) from exc
    return ParquetResult(bucket, tuple(written), options.written)


def _check_arguments(
    objects: Sequence[tuple[str, str]],
    columns: Sequence[DataSetColumn],
    key_prefix: str,
    part_size: int,
    row_group_bytes: int,
    block_size: int,
) -> None:
    if not objects:
        raise ValueError("no CSV objects to convert: pass the export's (bucket, key) pairs")
    if not columns:
        raise ValueError("no columns: pass the exported columns with their Domo types")
    if not key_prefix.strip("/"):
        raise ValueError("key_prefix is empty: name the folder the Parquet files go into")
    if part_size < MIN_PART_SIZE:
        raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3's minimum part)")
    if row_group_bytes < 1 or block_size < 1:
        raise ValueError("row_group_bytes and block_size must be positive")


@dataclass(frozen=True)
class _Source:
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class _WriteSettings:
    codec: str
    row_group_bytes: int
    part_size: int
    put_args: Mapping[str, Any] = field(repr=False)  # may hold an SSE-C key


class _CsvOptions:
    """pyarrow's reader options for Domo's CSV with a fixed schema (``schema``, Domo's names),
    and the schema its batches are written with (``written``, the table's names)."""

    def __init__(self, schema: pa.Schema, written: pa.Schema, block_size: int) -> None:
        self.schema = schema
        self.written = written
        self.read = pacsv.ReadOptions(block_size=block_size, use_threads=True)
        # Domo quotes values holding line breaks (QUOTE_MINIMAL), so records span lines.
        self.parse = pacsv.ParseOptions(newlines_in_values=True)
        self.convert = pacsv.ConvertOptions(
            column_types=schema,
            # Only the empty field is a null: "NA" or "null" are values (pyarrow's default list
            # would turn them into nulls in numeric columns, or fail on them).
            null_values=[""],
            strings_can_be_null=False,
            quoted_strings_can_be_null=True,
        )

    def open(self, stream: Any) -> pacsv.CSVStreamingReader:
        """A streaming reader over ``stream`` (a pyarrow input stream)."""
        return pacsv.open_csv(
            stream, read_options=self.read, parse_options=self.parse, convert_options=self.convert
        )


def _convert_object(
    s3_client: Any,
    source: _Source,
    compression: str | None,
    options: _CsvOptions,
    settings: _WriteSettings,
    bucket: str,
    key: str,
) -> ParquetFile:
    response = s3_client.get_object(Bucket=source.bucket, Key=source.key)
    body = _Body(response["Body"])
    try:
        gzip = _is_gzip(body.peek(_SNIFF_BYTES), _declared_gzip(compression, response))
        stream: Any = pa.PythonFile(body, mode="r")
        if gzip:
            stream = pa.CompressedInputStream(stream, "gzip")
        reader = options.open(stream)
        _check_header(reader.schema.names, options.schema.names)
        with _MultipartSink(s3_client, bucket, key, settings.part_size, settings.put_args) as sink:
            rows, row_groups = _write_parquet(reader, sink, options, settings)
            size = sink.finish()
    finally:
        body.close()
    return ParquetFile(
        f"s3://{bucket}/{key}", key, source.uri, rows, row_groups, size, body.bytes_read
    )


def _check_header(found: Sequence[str], expected: Sequence[str]) -> None:
    if tuple(found) != tuple(expected):
        raise MalformedCsvError(
            f"{header_mismatch(expected, found)}: convert only an export verified against "
            "the columns passed"
        )


def _write_parquet(
    batches: Iterable[pa.RecordBatch], sink: Any, options: _CsvOptions, settings: _WriteSettings
) -> tuple[int, int]:
    """Write the batches as row groups; return the rows and row groups written.

    pyarrow gunzips in a read-ahead thread but parses and converts in the thread that asks for
    the next batch, and encodes Parquet in the thread that writes. So each row group is encoded
    in a background thread while this one parses the next: with a core free, the two run at
    once. At most two row groups of batches are held: the one encoded, the one gathered.
    """
    rows = row_groups = 0
    written = options.written
    with (
        pq.ParquetWriter(
            sink, written, compression=settings.codec, use_dictionary=_dictionary_columns(written)
        ) as writer,
        # Leaving this block waits for the row group in flight, so the writer closes idle.
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet-encode") as encoder,
    ):
        writing: Future[int] | None = None
        for group in _row_groups(batches, settings.row_group_bytes):
            if writing is not None:
                rows += writing.result()
            writing = encoder.submit(_write_row_group, writer, group, options)
            row_groups += 1
            del group  # the encoder holds it; gathering the next must not keep it alive
        if writing is not None:
            rows += writing.result()
    return rows, row_groups


def _row_groups(
    batches: Iterable[pa.RecordBatch], row_group_bytes: int
) -> Iterator[list[pa.RecordBatch]]:
    """The batches in groups of at least ``row_group_bytes`` Arrow bytes (the last: the rest)."""
    group: list[pa.RecordBatch] = []
    size = 0
    for batch in batches:
        group.append(batch)
        size += batch.nbytes
        if size >= row_group_bytes:
            yield group
            group, size = [], 0
    if group:
        yield group


def _write_row_group(
    writer: pq.ParquetWriter, batches: list[pa.RecordBatch], options: _CsvOptions
) -> int:
    read = pa.Table.from_batches(batches, schema=options.schema)
    # The same columns under the table's names (no copy of the data).
    table = pa.Table.from_arrays(read.columns, schema=options.written)
    # One WriteTable call closes its row groups, so the whole table goes in one call.
    writer.write_table(table, row_group_size=max(table.num_rows, 1))
    return table.num_rows


class _Body:
    """A boto3 response body with a peek at its first bytes, counting what was read."""

    def __init__(self, body: Any) -> None:
        self._body = body
        self._head = b""
        self.bytes_read = 0
        self.closed = False

    def peek(self, size: int) -> bytes:
        """The first ``size`` bytes (fewer at the end), left to be read again."""
        while len(self._head) < size:
            more = self._body.read(size - len(self._head))
            if not more:
                break
            self._head += more
            self.bytes_read += len(more)
        return self._head[:size]

    def read(self, size: int = -1) -> bytes:
        if self._head:
            head, self._head = self._head, b""
            if size < 0:
                return head + self.read()
            if len(head) >= size:
                self._head = head[size:]
                return head[:size]
            return head + self.read(size - len(head))
        data = self._body.read() if size < 0 else self._body.read(size)
        self.bytes_read += len(data)
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._body.close()


class _MultipartSink:
    """A write-only file that uploads to S3 as it fills, completing only on :meth:`finish`.

    Parts of ``part_size`` bytes are uploaded by one background thread, at most one at a time
    while the next fills. Leaving the ``with`` block without :meth:`finish` (an error) aborts the
    upload. ``close`` (which pyarrow may call) completes nothing.
    """

    def __init__(
        self, client: Any, bucket: str, key: str, part_size: int, put_args: Mapping[str, Any]
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._part_size = part_size
        self._put_args = {"ContentType": CONTENT_TYPE, **put_args}
        self._buffer = bytearray()
        self._position = 0
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._in_flight: Future[dict[str, Any]] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet-upload")
        self._finished = False
        self.closed = False

    def __enter__(self) -> _MultipartSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            if not self._finished:
                self._abort()
        finally:
            self._executor.shutdown(wait=True)

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        """Nothing to do: parts go out as they fill."""

    def close(self) -> None:
        self.closed = True

    def write(self, data: Any) -> int:
        """Buffer ``data``, uploading every whole part it completes."""
        view = memoryview(data).cast("B")
        self._buffer += view
        self._position += len(view)
        while len(self._buffer) >= self._part_size:
            part = bytes(memoryview(self._buffer)[: self._part_size])
            del self._buffer[: self._part_size]
            self._send(part)
        return len(view)

    def finish(self) -> int:
        """Upload what is left and complete the object; return its size in bytes."""
        if self._upload_id is None:
            self._client.put_object(
                Bucket=self._bucket, Key=self._key, Body=bytes(self._buffer), **self._put_args
            )
        else:
            self._send(bytes(self._buffer))
            self._collect()
            self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        self._buffer.clear()
        self._finished = True
        return self._position

    def _send(self, part: bytes) -> None:
        """Upload ``part`` in the background, after the previous one is done."""
        if self._upload_id is None:
            created = self._client.create_multipart_upload(
                Bucket=self._bucket, Key=self._key, **self._put_args
            )
            self._upload_id = created["UploadId"]
        self._collect()
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise _PartLimitError(
                f"the Parquet file needs more than {MAX_PARTS} parts of {self._part_size} "
                "bytes: raise part_size"
            )
        self._in_flight = self._executor.submit(self._upload_part, number, part)

    def _upload_part(self, number: int, part: bytes) -> dict[str, Any]:
        answer = self._client.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=part,
            **_part_args(self._put_args),
        )
        return {"PartNumber": number, "ETag": answer["ETag"]}

    def _collect(self) -> None:
        """Wait for the part in flight; record it (or raise its error)."""
        if self._in_flight is not None:
            future, self._in_flight = self._in_flight, None
            self._parts.append(future.result())

    def _abort(self) -> None:
        if self._in_flight is not None:
            self._in_flight.exception()  # wait: the part must not land after the abort
            self._in_flight = None
        if self._upload_id is not None:
            # The conversion's own error is the one to report; S3's lifecycle rule for
            # incomplete uploads is the backstop for parts an abort could not remove.
            with contextlib.suppress(ClientError, BotoCoreError):
                self._client.abort_multipart_upload(
                    Bucket=self._bucket, Key=self._key, UploadId=self._upload_id
                )


_SSE_CUSTOMER_ARGS = ("SSECustomerAlgorithm", "SSECustomerKey", "SSECustomerKeyMD5")


def _part_args(put_args: Mapping[str, Any]) -> dict[str, Any]:
    """The upload arguments ``UploadPart`` takes too (a customer-provided key must repeat)."""
    return {name: put_args[name] for name in _SSE_CUSTOMER_ARGS if name in put_args}


def _remove(s3_client: Any, bucket: str, keys: Sequence[str]) -> list[str]:
    """Delete the objects; return the keys that could not be deleted."""
    left: list[str] = []
    for key in keys:
        try:
            s3_client.delete_object(Bucket=bucket, Key=key)
        except (ClientError, BotoCoreError):
            left.append(key)
    return left


def _failure_message(
    source: _Source,
    target: str,
    exc: Exception,
    columns: Sequence[DataSetColumn],
    schema: pa.Schema,
    leftovers: Sequence[str],
) -> str:
    cause = _describe(exc, columns, schema)
    if len(cause) > MAX_CAUSE_CHARS:
        cause = cause[:MAX_CAUSE_CHARS] + "..."
    message = f"{source.uri}: converting to Parquet {target} failed: {cause}"
    if leftovers:
        message += (
            f"; the Parquet files already written could not all be deleted: {list(leftovers)} "
            "(delete them before reading the folder)"
        )
    return message


def _describe(exc: Exception, columns: Sequence[DataSetColumn], schema: pa.Schema) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code") or "error"
        return (
            f"S3 {code} ({error.get('Message') or exc}): check that the worker may read the "
            "export's objects and write (PutObject, multipart upload) under the Parquet prefix"
        )
    if isinstance(exc, BotoCoreError):
        return f"S3 could not be reached ({exc}); try again"
    if isinstance(exc, pa.ArrowException):
        return _describe_arrow(str(exc), columns, schema)
    return str(exc)


def _describe_arrow(text: str, columns: Sequence[DataSetColumn], schema: pa.Schema) -> str:
    """Name the column pyarrow numbers, with its Domo and Arrow types, and say what to do."""
    match = _ARROW_COLUMN.search(text)
    if match is None or int(match.group(1)) >= len(columns):
        return f"{text} (is the object well-formed CSV, and every record shorter than block_size?)"
    index = int(match.group(1))
    column, arrow_type = columns[index], schema.field(index).type
    advice = "its values must be of the column's Domo type: is the schema passed the export's?"
    if pa.types.is_decimal(arrow_type):
        advice = (
            f"a value has more digits than {arrow_type} holds: pass a decimal_type that holds "
            "them, or decimal_type=pyarrow.float64()"
        )
    return f"column {column.name!r} (Domo {column.type} -> {arrow_type}): {text}; {advice}"


def _dictionary_columns(schema: pa.Schema) -> list[str]:
    """The columns worth dictionary encoding: strings and dates, which repeat (codes, labels,
    days). Numbers are left plain: trying a dictionary on every column cost about a third of the
    encoding time of a 1 GiB export (benchmarks/README.md, "Parquet")."""
    wanted = (pa.types.is_string, pa.types.is_large_string, pa.types.is_date)
    return [field.name for field in schema if any(test(field.type) for test in wanted)]
