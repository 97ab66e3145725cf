"""Deep verification of an export's CSV objects in S3: each file's header and data record count.

Opt-in per export, because it reads every byte the export wrote. Each object is streamed in
chunks (never read whole: memory stays at a few MB whatever the object's size), gunzipped when it
is gzip (as the export or the object's headers declare, or as its magic bytes say; concatenated
members are read like ``zcat`` does), stripped of a UTF-8 BOM, and read as RFC 4180 CSV: quoted
fields may hold commas, doubled quotes and LF or CRLF line breaks. Every file carries its own
header row, which is parsed with the :mod:`csv` module and compared with the expected columns
(names and order); the data records after it are counted.

Counting does not parse fields. A quote-aware byte scanner counts the line feeds, carriage
returns and commas outside quoted fields, carrying the quote state from one chunk to the next.
Records are the line feeds (plus a last record without one). What would make that count differ
from a CSV reader's is an error, never a silent count: data ending inside a quoted field, a
carriage return outside quotes that is not part of a record end like the header row's (the
:mod:`csv` module ends a record at a lone CR), or commas outside quotes that are not exactly
``records * (columns - 1)`` (a record with another field count, a stray quote). That last check
is a total: two compensating records (one field short, one over) pass it. The line breaks
inside quoted fields are counted too: a CSV Glue table cuts such records into fragment rows
(``glue.csv_table_reading``). Per chunk the scan is
a few C-level byte operations: ``bytes.translate`` keeps only quotes, commas, CRs and LFs;
adjacent quote pairs cancel; what is left between quotes is dropped; the rest is counted. UTF-8
needs no decoding for that (none of those bytes occurs inside a multi-byte sequence), so only the
header is decoded: the data's UTF-8 validity is not checked. ``benchmarks/README.md`` ("Deep
verification") compares it with the :mod:`csv` module and pyarrow's streaming reader.

Plain Python over a boto3 S3 client: no Dagster, no Domo HTTP.
"""

from __future__ import annotations

import csv
import io
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, NamedTuple

from botocore.exceptions import BotoCoreError, ClientError

CHUNK_SIZE = 256 * 1024
"""Bytes read from a stream at once, and the most decompressed bytes scanned at once."""
HEADER_RANGE_BYTES = 64 * 1024
"""Bytes fetched per ranged GET when only the header row is read."""
MAX_HEADER_BYTES = 1024 * 1024
"""A header row longer than this is reported as malformed rather than buffered further."""
INVALID_RANGE = "InvalidRange"
GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
QUOTE = b'"'
DELIMITER = b","
LINE_FEED = b"\n"
CARRIAGE_RETURN = b"\r"
CRLF = CARRIAGE_RETURN + LINE_FEED
GZIP_WBITS = 16 + zlib.MAX_WBITS
"""``zlib`` window bits selecting the gzip container (one member per decompressor)."""
GZIP_CONTENT_TYPES = frozenset({"application/gzip", "application/x-gzip"})
COMPRESSIONS = {"gzip": True, "none": False}
"""Export compression names (case-insensitive) and whether the objects are gzip."""

_PAIR = QUOTE + QUOTE
_MARKS = QUOTE + DELIMITER + CRLF
_NOT_MARKS = bytes(b for b in range(256) if b not in _MARKS)
"""Every byte but the four the scanner looks at, for ``bytes.translate(None, delete)``."""


class MalformedCsvError(ValueError):
    """A stream is not a well-formed CSV file (or gzip of one); the message says what is wrong."""


class CsvCount(NamedTuple):
    """What :func:`count_csv_records` found in one stream."""

    header: tuple[str, ...]
    records: int
    """Data records, the header row excluded."""
    bytes_read: int
    """Bytes read from the stream (compressed bytes for gzip)."""
    compressed: bool
    had_bom: bool
    data_bytes: int
    """Decompressed bytes, BOM and header included."""
    quoted_line_breaks: int | None = None
    """Line feeds and carriage returns inside quoted fields, header included (a CRLF counts
    two): a CSV table splits such records into fragment rows. None: not counted."""


@dataclass(frozen=True)
class FileVerification:
    """One object that could be read to its end, and what it holds."""

    uri: str
    header: tuple[str, ...]
    records: int
    bytes_read: int
    compressed: bool
    had_bom: bool
    quoted_line_breaks: int | None = None
    """Line breaks inside quoted fields (see :class:`CsvCount`); None: not counted."""


@dataclass(frozen=True)
class VerificationReport:
    """The verification of every object of one export."""

    files: tuple[FileVerification, ...]
    """The objects read to their end, in the order given (unreadable ones are problems)."""
    records: int
    """Data records over ``files``."""
    header_ok: bool
    """Every object was read and its header equals the expected columns."""
    problems: tuple[str, ...]
    """One message per thing wrong, each naming the object's URI."""
    wrong_headers: tuple[str, ...] = ()
    """The URIs of the objects read whose header is not the expected columns."""

    @property
    def ok(self) -> bool:
        """Every object was read, well formed, with the expected header."""
        return not self.problems

    @property
    def quoted_line_breaks(self) -> int | None:
        """Line breaks inside quoted fields over every object; None unless each was counted."""
        counts = [f.quoted_line_breaks for f in self.files]
        if not self.ok or any(count is None for count in counts):
            return None
        return sum(count for count in counts if count is not None)


RecordCounter = Callable[..., CsvCount]
"""``counter(stream, gzip=...)``: :func:`count_csv_records` or an alternative (benchmarks)."""


def count_csv_records(
    stream: BinaryIO, *, gzip: bool | None = None, chunk_size: int = CHUNK_SIZE
) -> CsvCount:
    """Read a CSV stream to its end and count its data records.

    Args:
        stream: Any binary stream with ``read(n)``: a file, or a boto3 ``StreamingBody``.
        gzip: True if the stream must be gzip, False if it must not, None to sniff the magic
            bytes. A declaration the bytes contradict is an error.
        chunk_size: Bytes read at once, and the most decompressed bytes handled at once.

    Returns:
        The header's column names and the data records after it, with what was read.

    Raises:
        MalformedCsvError: The stream is empty, not valid gzip, has no parsable header, ends
            inside a quoted field, has a lone carriage return or another record end than the
            header row's, or records with another field count than the header.
        ValueError: ``chunk_size`` is not positive.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, not {chunk_size}")
    raw = _CountingReader(stream, chunk_size)
    chunks = iter(raw)
    first = next(chunks, b"")
    while 0 < len(first) < len(GZIP_MAGIC):
        more = next(chunks, b"")
        if not more:
            break
        first += more
    if not first:
        raise MalformedCsvError("empty object (0 bytes)")
    compressed = _is_gzip(first, gzip)
    data: Iterable[bytes] = _prepend(first, chunks)
    if compressed:
        data = _gunzip(data, chunk_size)
    data = _DataMeter(data)
    header_bytes, crlf, body = _split_header(iter(data))
    had_bom = header_bytes.startswith(UTF8_BOM)
    header = _parse_header(header_bytes[len(UTF8_BOM) :] if had_bom else header_bytes)
    scanner = _Scanner()
    for chunk in body:
        scanner.feed(chunk)
    records = scanner.finish(len(header), crlf)
    # The header's record end is removed: a CR or LF left in it lies inside a quoted name.
    header_breaks = header_bytes.count(LINE_FEED) + header_bytes.count(CARRIAGE_RETURN)
    line_breaks = header_breaks + scanner.quoted_line_breaks
    return CsvCount(header, records, raw.bytes_read, compressed, had_bom, data.bytes, line_breaks)


def verify_objects(
    s3_client: Any,
    objects: Sequence[tuple[str, str]],
    expected_columns: Sequence[str],
    *,
    compression: str | None = None,
    counter: RecordCounter = count_csv_records,
) -> VerificationReport:
    """Stream every object of an export from S3, check its header and count its records.

    Args:
        s3_client: A boto3 S3 client.
        objects: ``(bucket, key)`` of every object of the export.
        expected_columns: The column names every file's header must hold, in order.
        compression: The export's compression (``gzip`` or ``none``), if known; otherwise each
            object's ``Content-Encoding``/``Content-Type`` or its magic bytes decide.
        counter: Reads one object's stream (a hook for benchmarks; keep the default).

    Returns:
        Per-file results and totals; a problem for every object that could not be read, is
        malformed, or has another header. An empty ``objects`` is a problem too.
    """
    expected = tuple(expected_columns)
    files: list[FileVerification] = []
    problems: list[str] = [] if objects else ["no objects to verify"]
    wrong_headers: list[str] = []
    for bucket, key in objects:
        uri = f"s3://{bucket}/{key}"
        try:
            found = _verify_object(s3_client, bucket, key, compression, counter)
        except (MalformedCsvError, ClientError, BotoCoreError) as exc:
            problems.append(f"{uri}: {_describe(exc)}")
            continue
        files.append(
            FileVerification(
                uri,
                found.header,
                found.records,
                found.bytes_read,
                found.compressed,
                found.had_bom,
                found.quoted_line_breaks,
            )
        )
        if found.header != expected:
            wrong_headers.append(uri)
            problems.append(f"{uri}: {header_mismatch(expected, found.header)}")
    header_ok = bool(objects) and len(files) == len(objects) and not wrong_headers
    records = sum(f.records for f in files)
    return VerificationReport(
        tuple(files), records, header_ok, tuple(problems), tuple(wrong_headers)
    )


@dataclass(frozen=True)
class HeaderRead:
    """The header row of one object, read with ranged GETs."""

    uri: str
    columns: tuple[str, ...]
    had_bom: bool
    bytes_read: int
    """Bytes fetched from S3 (compressed bytes for gzip)."""


def read_header(
    s3_client: Any,
    bucket: str,
    key: str,
    *,
    compression: str | None = None,
    range_bytes: int = HEADER_RANGE_BYTES,
) -> HeaderRead:
    """Read an object's header row without downloading the object.

    The object is fetched in ranges of ``range_bytes`` (one GET for any ordinary header),
    gunzipped as far as needed, and its first record parsed as CSV.

    Args:
        s3_client: A boto3 S3 client.
        bucket: The object's bucket.
        key: The object's key.
        compression: The export's compression (``gzip`` or ``none``), if known; otherwise the
            object's headers or magic bytes decide.
        range_bytes: Bytes per ranged GET.

    Raises:
        MalformedCsvError: The object is empty, not valid gzip, or has no parsable header.
        ClientError: S3 refused the read (missing object, access denied).
        BotoCoreError: The read failed.
    """
    ranges = _RangedObject(s3_client, bucket, key, range_bytes)
    chunks = iter(ranges)
    first = next(chunks, b"")
    if not first:
        raise MalformedCsvError("empty object (0 bytes)")
    compressed = _is_gzip(first, _declared_gzip(compression, ranges.response))
    data: Iterable[bytes] = _prepend(first, chunks)
    if compressed:
        data = _gunzip(data, CHUNK_SIZE)
    header_bytes, _, _ = _split_header(iter(data))
    had_bom = header_bytes.startswith(UTF8_BOM)
    columns = _parse_header(header_bytes[len(UTF8_BOM) :] if had_bom else header_bytes)
    return HeaderRead(f"s3://{bucket}/{key}", columns, had_bom, ranges.bytes_read)


class _RangedObject:
    """Iterates an S3 object's bytes one ranged GET at a time, fetching only what is consumed."""

    def __init__(self, s3_client: Any, bucket: str, key: str, range_bytes: int) -> None:
        if range_bytes < 1:
            raise ValueError(f"range_bytes must be positive, not {range_bytes}")
        self._client = s3_client
        self._bucket = bucket
        self._key = key
        self._range = range_bytes
        self.bytes_read = 0
        self.response: Mapping[str, Any] = {}

    def __iter__(self) -> Iterator[bytes]:
        size: int | None = None
        while size is None or self.bytes_read < size:
            end = self.bytes_read + self._range - 1
            try:
                response = self._client.get_object(
                    Bucket=self._bucket, Key=self._key, Range=f"bytes={self.bytes_read}-{end}"
                )
            except ClientError as exc:
                # S3 answers 416 for a range past the end: an empty object, or nothing left.
                if exc.response.get("Error", {}).get("Code") == INVALID_RANGE:
                    return
                raise
            if not self.response:
                self.response = response
            body = response["Body"]
            try:
                chunk = body.read()
            finally:
                body.close()
            if not chunk:
                return
            self.bytes_read += len(chunk)
            size = _object_size(response, self.bytes_read)
            yield chunk


def _object_size(response: Mapping[str, Any], fallback: int) -> int:
    """The whole object's size from ``Content-Range: bytes a-b/size``."""
    content_range = str(response.get("ContentRange") or "")
    total = content_range.rpartition("/")[2]
    return int(total) if total.isdigit() else fallback


def header_mismatch(expected: Sequence[str], found: Sequence[str]) -> str:
    """Describe how a header differs from the expected columns (assumes it does).

    Args:
        expected: The expected column names, in order.
        found: The header's column names, in order.

    Returns:
        A one-line description: missing and unexpected columns, or the first position that
        differs when only the order does.
    """
    missing = [c for c in expected if c not in found]
    extra = [c for c in found if c not in expected]
    summary = f"header has {len(found)} column(s), expected {len(expected)}"
    if missing or extra:
        return f"{summary}; missing {missing}; unexpected {extra}"
    position = next(
        (i for i, (e, f) in enumerate(zip(expected, found, strict=False)) if e != f), None
    )
    if position is None:
        return f"{summary}; the same names, repeated a different number of times"
    return (
        f"{summary}; the same names in another order: column {position + 1} is "
        f"{found[position]!r} where {expected[position]!r} is expected"
    )


def _verify_object(
    s3_client: Any, bucket: str, key: str, compression: str | None, counter: RecordCounter
) -> CsvCount:
    response = s3_client.get_object(Bucket=bucket, Key=key)
    body = response["Body"]
    try:
        return counter(body, gzip=_declared_gzip(compression, response))
    finally:
        body.close()


def _declared_gzip(compression: str | None, response: Mapping[str, Any]) -> bool | None:
    """Whether the export or the object's headers say it is gzip; None if nothing says."""
    if compression is not None:
        try:
            return COMPRESSIONS[compression.lower()]
        except KeyError:
            raise MalformedCsvError(f"unsupported compression {compression!r}") from None
    encoding = str(response.get("ContentEncoding") or "").lower()
    content_type = str(response.get("ContentType") or "").split(";")[0].strip().lower()
    if "gzip" in encoding or content_type in GZIP_CONTENT_TYPES:
        return True
    return None


def _describe(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code") or "error"
        return f"S3 {code} on GET: {exc}"
    if isinstance(exc, BotoCoreError):
        return f"reading from S3 failed: {exc}"
    return str(exc)


def _is_gzip(first: bytes, declared: bool | None) -> bool:
    sniffed = first.startswith(GZIP_MAGIC)
    if declared is None or declared == sniffed:
        return sniffed
    if declared:
        raise MalformedCsvError("declared gzip, but it does not start with the gzip magic bytes")
    raise MalformedCsvError("declared uncompressed, but it starts with the gzip magic bytes")


class _CountingReader:
    """Iterates a stream's chunks, counting the bytes read."""

    def __init__(self, stream: BinaryIO, chunk_size: int) -> None:
        self._stream = stream
        self._chunk_size = chunk_size
        self.bytes_read = 0

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self._stream.read(self._chunk_size):
            self.bytes_read += len(chunk)
            yield chunk


class _DataMeter:
    """Passes chunks through, counting their bytes."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks
        self.bytes = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self.bytes += len(chunk)
            yield chunk


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _gunzip(chunks: Iterable[bytes], out_size: int) -> Iterator[bytes]:
    """Decompress gzip (one or more members, as ``zcat`` does), at most ``out_size`` at once.

    Raises:
        MalformedCsvError: Corrupt data, a truncated member, or bytes after the last member
            that do not start another one.
    """
    inflater: Any = None
    try:
        for chunk in chunks:
            data = chunk
            while data:
                if inflater is None:
                    if not GZIP_MAGIC.startswith(data[:2]):
                        raise MalformedCsvError("trailing bytes after the gzip data")
                    inflater = zlib.decompressobj(GZIP_WBITS)
                out = inflater.decompress(data, out_size)
                while len(out) == out_size:  # drain output held back by the size bound
                    yield out
                    out = inflater.decompress(inflater.unconsumed_tail, out_size)
                if out:
                    yield out
                data = inflater.unused_data if inflater.eof else b""
                if inflater.eof:
                    inflater = None
        if inflater is not None:
            tail = inflater.flush()
            if not inflater.eof:
                raise MalformedCsvError("gzip data ends early (truncated object)")
            if tail:
                yield tail
    except zlib.error as exc:
        raise MalformedCsvError(f"corrupt gzip data: {exc}") from None


def _split_header(chunks: Iterator[bytes]) -> tuple[bytes, bool, Iterator[bytes]]:
    """Split the decompressed data into the header row and the chunks after it.

    The header row ends at its first line feed outside quotes or at the end of the data.

    Returns:
        The header row's bytes without its record end, whether that was CRLF, and the rest.
    """
    buffer = bytearray()
    finder = _RecordEndFinder()
    for chunk in chunks:
        start = len(buffer)
        buffer += chunk
        end = finder.find(buffer, start)
        if end >= 0:
            header = bytes(buffer[:end])
            crlf = header.endswith(CARRIAGE_RETURN)
            return (
                header.removesuffix(CARRIAGE_RETURN),
                crlf,
                _prepend(bytes(buffer[end + 1 :]), chunks),
            )
        if len(buffer) > MAX_HEADER_BYTES:
            raise MalformedCsvError(f"no end of the header row in its first {len(buffer)} bytes")
    if finder.in_quotes:
        raise MalformedCsvError("the header row ends inside a quoted field")
    return bytes(buffer).removesuffix(CARRIAGE_RETURN), False, iter(())


class _RecordEndFinder:
    """Finds the first line feed outside quotes, over a growing buffer."""

    def __init__(self) -> None:
        self.in_quotes = False

    def find(self, data: bytearray, start: int) -> int:
        """Index of the first record-ending line feed at or after ``start``, or -1."""
        pos = start
        while True:
            quote = data.find(QUOTE, pos)
            if self.in_quotes:
                if quote < 0:
                    return -1
                self.in_quotes, pos = False, quote + 1
                continue
            line_feed = data.find(LINE_FEED, pos, quote if quote >= 0 else len(data))
            if line_feed >= 0:
                return line_feed
            if quote < 0:
                return -1
            self.in_quotes, pos = True, quote + 1


def _parse_header(raw: bytes) -> tuple[str, ...]:
    """Column names of a header row's bytes (BOM and record end removed)."""
    if not raw:
        raise MalformedCsvError("no header row (no data, or a blank first line)")
    if raw.endswith(CARRIAGE_RETURN):
        raise MalformedCsvError("the header row ends with a lone carriage return")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedCsvError(f"the header row is not UTF-8: {exc}") from None
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as exc:
        raise MalformedCsvError(f"the header row is not valid CSV: {exc}") from None
    if len(rows) != 1:
        raise MalformedCsvError(f"the header row parses as {len(rows)} rows")
    return tuple(rows[0])


class _Scanner:
    """Counts the line feeds, carriage returns and commas outside quoted fields, and the line
    breaks inside them."""

    def __init__(self) -> None:
        self.in_quotes = False
        self.line_feeds = 0
        self.carriage_returns = 0
        self.delimiters = 0
        self.quoted_line_breaks = 0
        self.last_byte = LINE_FEED
        """The data's last byte so far (as if a line feed before any: no record yet)."""

    def feed(self, chunk: bytes) -> None:
        """Account for the next chunk of the data after the header row."""
        if not chunk:
            return
        # Only quotes, commas, CRs and LFs matter. Two adjacent quotes (an escaped quote, an
        # empty field, or one field's closing quote and the next one's opening quote once the
        # bytes between them are gone) flip the state twice around nothing: drop them.
        marks = chunk.translate(None, _NOT_MARKS).replace(_PAIR, b"")
        if QUOTE in marks:
            parts = marks.split(QUOTE)
            outside = b"".join(parts[1::2] if self.in_quotes else parts[::2])
            inside = b"".join(parts[::2] if self.in_quotes else parts[1::2])
            self.in_quotes ^= len(parts) % 2 == 0
        else:
            outside, inside = (b"", marks) if self.in_quotes else (marks, b"")
        # Inside quotes only commas and line breaks are left.
        self.quoted_line_breaks += len(inside) - inside.count(DELIMITER)
        line_feeds = outside.count(LINE_FEED)
        carriage_returns = outside.count(CARRIAGE_RETURN) if CARRIAGE_RETURN in marks else 0
        self.line_feeds += line_feeds
        self.carriage_returns += carriage_returns
        self.delimiters += len(outside) - line_feeds - carriage_returns
        self.last_byte = chunk[-1:]

    def finish(self, columns: int, crlf: bool) -> int:
        """The data records seen, after checking the data ended well.

        Args:
            columns: The header's field count.
            crlf: Whether the header row ended with CRLF (else LF): records must end alike.

        Raises:
            MalformedCsvError: The data ends inside a quoted field, records end otherwise than
                the header row, or the commas outside quotes are not ``columns - 1`` per record.
        """
        if self.in_quotes:
            raise MalformedCsvError("the data ends inside a quoted field (unterminated quote)")
        records = self.line_feeds + (self.last_byte != LINE_FEED)
        self._check_line_ends(crlf)
        expected = records * (columns - 1)
        if self.delimiters != expected:
            raise MalformedCsvError(
                f"{records} data record(s) of {columns} column(s) should hold {expected} "
                f"delimiter(s) outside quotes, found {self.delimiters}: at least one record "
                "has another field count (or a stray quote)"
            )
        return records

    def _check_line_ends(self, crlf: bool) -> None:
        """Check every record ends like the header row: CRLF, or LF without a CR.

        A CR may end the data. A lone CR outside quotes ends a record for the csv module but
        not for this count, so it must not pass silently.
        """
        expected = (self.line_feeds if crlf else 0) + (self.last_byte == CARRIAGE_RETURN)
        if self.carriage_returns != expected:
            style = "CRLF" if crlf else "LF"
            raise MalformedCsvError(
                f"{self.carriage_returns} carriage return(s) outside quotes where {expected} "
                f"are expected with {self.line_feeds} {style} record end(s) (as the header "
                "row's): a lone CR, or mixed record ends"
            )
