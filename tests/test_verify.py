"""Deep verification over real bytes: plain and gzip CSV, awkward values, chunk boundaries, S3."""

from __future__ import annotations

import csv
import gzip
import io
import random
import re
import socket
import tracemalloc
from collections.abc import Iterator, Sequence

import boto3
import pytest
from moto.server import ThreadedMotoServer

from domo_assets.s3.verify import (
    CsvCount,
    MalformedCsvError,
    count_csv_records,
    header_mismatch,
    verify_objects,
)

BOM = "\ufeff"
COLUMNS = ("id", "naïve name", "note, with comma", 'say "hi"')
AWKWARD_VALUES = (
    "",
    "plain",
    "comma, inside",
    'doubled "quotes"',
    '""',
    '"',
    "line\nfeed",
    "crlf\r\nbreak",
    "ends with newline\n",
    "\r\n",
    "é日本🎉",
    " spaced ",
    "tab\there",
    'trailing quote"',
    ",",
)


def render(
    rows: Sequence[Sequence[object]], *, terminator: str = "\r\n", bom: bool = False
) -> bytes:
    """CSV bytes written by the stdlib writer (QUOTE_MINIMAL), as an export would be."""
    buffer = io.StringIO()
    buffer.write(BOM if bom else "")
    csv.writer(buffer, lineterminator=terminator).writerows(rows)
    return buffer.getvalue().encode("utf-8")


def oracle(data: bytes) -> tuple[tuple[str, ...], int]:
    """Header and data record count according to the stdlib csv module."""
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""), strict=True))
    return tuple(rows[0]), len(rows) - 1


def oracle_line_breaks(data: bytes) -> int:
    """Line feeds and carriage returns inside the fields (header too), per the csv module."""
    rows = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""), strict=True)
    return sum(value.count("\n") + value.count("\r") for row in rows for value in row)


def count(data: bytes, **kwargs: object) -> CsvCount:
    return count_csv_records(io.BytesIO(data), **kwargs)  # type: ignore[arg-type]


# The awkward document: every boundary of it is tried below.
AWKWARD = render(
    [
        COLUMNS,
        [1, 'a "quoted" word', "x,y", "multi\r\nline"],
        [2, "", '""', "lf\nonly"],
        [3, "日本語", "é", "🎉,\n"],
    ],
    bom=True,
)


def test_plain_csv_header_records_and_metadata() -> None:
    data = render([("a", "b"), (1, 2), (3, 4), (5, 6)])

    found = count(data)

    assert found.header == ("a", "b")
    assert found.records == 3
    assert found.bytes_read == len(data) == found.data_bytes
    assert (found.compressed, found.had_bom) == (False, False)


def test_gzip_is_sniffed_and_decompressed() -> None:
    data = render([("a", "b"), (1, 2), (3, 4)])
    packed = gzip.compress(data)

    sniffed = count(packed)
    declared = count(packed, gzip=True)

    assert sniffed == declared
    assert (sniffed.header, sniffed.records, sniffed.compressed) == (("a", "b"), 2, True)
    assert sniffed.bytes_read == len(packed)
    assert sniffed.data_bytes == len(data)


def test_bom_is_stripped_from_the_first_column() -> None:
    found = count(gzip.compress(render([("id", "x"), (1, 2)], bom=True)))

    assert found.header == ("id", "x")
    assert found.had_bom
    assert found.records == 1


def test_quoted_newlines_doubled_quotes_and_unicode() -> None:
    found = count(AWKWARD)

    assert (found.header, found.records) == oracle(AWKWARD) == (COLUMNS, 3)


@pytest.mark.parametrize("packed", [False, True], ids=["plain", "gzip"])
def test_every_chunk_boundary_gives_the_same_answer(packed: bool) -> None:
    """Chunk sizes 1..len split inside quotes, "" pairs, \\r\\n pairs and multi-byte chars."""
    data = gzip.compress(AWKWARD) if packed else AWKWARD
    expected = oracle(AWKWARD)
    assert b"\r\n" in AWKWARD and b'""' in AWKWARD and "日".encode() in AWKWARD

    answers = {
        size: (found.header, found.records, found.quoted_line_breaks)
        for size in range(1, len(AWKWARD) + 2)
        for found in [count(data, chunk_size=size)]
    }

    assert set(answers.values()) == {(*expected, oracle_line_breaks(AWKWARD))}
    assert oracle_line_breaks(AWKWARD) == 4  # CRLF (2), LF, LF; none in the header


def test_multi_byte_header_split_at_every_byte() -> None:
    data = render([("日本", "é🎉", "naïve"), ("x", "y", "z")])

    headers = {count(data, chunk_size=size).header for size in range(1, 12)}

    assert headers == {("日本", "é🎉", "naïve")}


@pytest.mark.parametrize("seed", range(12))
def test_random_awkward_data_matches_the_csv_module(seed: int) -> None:
    rng = random.Random(seed)
    width = rng.randint(1, 5)
    rows = [[f"c{i}" for i in range(width)]]
    rows += [
        ["".join(rng.choices(AWKWARD_VALUES, k=rng.randint(0, 3))) for _ in range(width)]
        for _ in range(rng.randint(0, 60))
    ]
    data = render(rows, terminator=rng.choice(("\r\n", "\n")), bom=rng.random() < 0.5)
    if rng.random() < 0.3:
        data = data.removesuffix(b"\n").removesuffix(b"\r")  # last record without a terminator
    payload = gzip.compress(data) if rng.random() < 0.5 else data

    found = count(payload, chunk_size=rng.randint(1, 64))

    assert (found.header, found.records) == oracle(data)
    assert found.quoted_line_breaks == oracle_line_breaks(data)


def test_line_breaks_inside_values_are_counted_where_a_csv_table_would_split_them() -> None:
    """What makes a CSV Glue table return fragment rows: a CR or LF inside a quoted field,
    in the data or in a column name; record ends do not count."""
    assert count(render([("a", "b"), (1, 2), (3, 4)])).quoted_line_breaks == 0
    assert count(render([("a", "b"), ("x\ny", "z\r\n")])).quoted_line_breaks == 3
    assert count(render([("a", "line\nname"), (1, 2)])).quoted_line_breaks == 1


def test_last_record_without_line_end_is_counted() -> None:
    assert count(b"a,b\r\n1,2\r\n3,4").records == 2
    assert count(b'a,b\n1,"2\n"').records == 1
    assert count(b"a,b\r\n1,2\r", chunk_size=1).records == 1


@pytest.mark.parametrize("data", [b"a,b", b"a,b\r\n", b"\xef\xbb\xbfa,b\n"])
def test_header_only_file_has_no_records(data: bytes) -> None:
    found = count(data)

    assert (found.header, found.records) == (("a", "b"), 0)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty object (0 bytes)"),
        (gzip.compress(b""), "no header row"),
        (b"\xef\xbb\xbf", "no header row"),
        (b"\r\n1,2\r\n", "no header row"),
        (b'a,b\r\n1,"open\r\n2,3\r\n', "unterminated quote"),
        (b'a,"b\r\n1,2\r\n', "header row ends inside a quoted field"),
        (b"a,b\r\n1,2\r\n3\r\n", "found 1"),
        (b"a,b\r\n1,2,3\r\n", "found 2"),
        (b"a,b\r\n1,2\r3,4\r\n", "2 carriage return(s) outside quotes where 1 are expected"),
        (b"a,b\n1,x\ry\n", "1 carriage return(s) outside quotes where 0 are expected"),
        (b"a,b\r\n1,2\n3,4\r\n", "1 carriage return(s) outside quotes where 2 are expected"),
        (b"a,b\r\r\n1,2\r\n", "the header row ends with a lone carriage return"),
        (b"a,b\r1,2\r", "the header row parses as 2 rows"),
        (b"a,\xff\r\n", "not UTF-8"),
        (b'a,"b"c\r\n', "not valid CSV"),
    ],
    ids=[
        "empty",
        "empty-gzip",
        "bom-only",
        "blank-header",
        "unterminated-quote",
        "header-unterminated",
        "short-row",
        "long-row",
        "bare-cr-record-end",
        "bare-cr-in-field",
        "mixed-record-ends",
        "header-lone-cr",
        "bare-cr-only",
        "bad-utf8",
        "bad-header-quoting",
    ],
)
def test_malformed_data_is_an_error_not_a_count(data: bytes, message: str) -> None:
    with pytest.raises(MalformedCsvError, match=re.escape(message)):
        count(data, chunk_size=3)


def test_gzip_damage_is_detected() -> None:
    packed = gzip.compress(render([("a",), (1,), (2,)]))

    with pytest.raises(MalformedCsvError, match="truncated"):
        count(packed[:-9])
    with pytest.raises(MalformedCsvError, match="trailing bytes"):
        count(packed + b"garbage")
    with pytest.raises(MalformedCsvError, match="corrupt gzip"):
        count(packed[:10] + bytes(len(packed) - 10))


def test_concatenated_gzip_members_are_read_like_zcat() -> None:
    packed = gzip.compress(b"a,b\n1,2\n") + gzip.compress(b"3,4\n5,6\n")

    assert count(packed, chunk_size=4).records == 3


def test_declared_compression_must_match_the_bytes() -> None:
    with pytest.raises(MalformedCsvError, match="declared gzip"):
        count(b"a,b\n", gzip=True)
    with pytest.raises(MalformedCsvError, match="declared uncompressed"):
        count(gzip.compress(b"a,b\n"), gzip=False)


class _LazyCsv(io.RawIOBase):
    """A large CSV made on demand, recording every read size asked for."""

    def __init__(self, rows: int) -> None:
        self._parts: Iterator[bytes] = iter(
            [b"id,text\n", *(b'%d,"x, ""y""\nz"\n' % i for i in range(rows))]
        )
        self._pending = b""
        self.sizes: list[int] = []

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        self.sizes.append(size)
        while len(self._pending) < size and (part := next(self._parts, None)) is not None:
            self._pending += part
        data, self._pending = self._pending[:size], self._pending[size:]
        return data


def test_memory_stays_bounded_and_reads_are_chunked() -> None:
    stream = _LazyCsv(rows=600_000)  # about 12 MB
    tracemalloc.start()
    try:
        found = count_csv_records(stream, chunk_size=64 * 1024)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert found.records == 600_000
    assert found.data_bytes > 10_000_000
    assert peak < 2_000_000
    assert set(stream.sizes) == {64 * 1024}


def test_header_mismatch_descriptions() -> None:
    assert "missing ['c']; unexpected ['x']" in header_mismatch(("a", "b", "c"), ("a", "b", "x"))
    assert "column 1 is 'b' where 'a' is expected" in header_mismatch(("a", "b"), ("b", "a"))
    assert "repeated" in header_mismatch(("a", "b", "a"), ("a", "b"))


# --- against a real S3 protocol endpoint ------------------------------------------------------


@pytest.fixture(scope="module")
def s3() -> Iterator[object]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket="verify-tests")
    try:
        yield client
    finally:
        server.stop()


def test_verify_objects_over_s3(s3: object) -> None:
    first = render([COLUMNS, *([i, "a\r\nb", '"q"', "é"] for i in range(500))], bom=True)
    second = render([COLUMNS, *([i, "x,y", "", "日本\n"] for i in range(250))])
    s3.put_object(  # type: ignore[attr-defined]
        Bucket="verify-tests",
        Key="export/data-00000.csv.gz",
        Body=gzip.compress(first),
        ContentType="application/gzip",
    )
    s3.put_object(Bucket="verify-tests", Key="export/data-00001.csv.gz", Body=gzip.compress(second))  # type: ignore[attr-defined]
    objects = [
        ("verify-tests", "export/data-00000.csv.gz"),
        ("verify-tests", "export/data-00001.csv.gz"),
    ]

    report = verify_objects(s3, objects, COLUMNS)

    assert report.problems == ()
    assert report.ok and report.header_ok
    assert report.records == 750
    assert [(f.uri, f.records, f.compressed, f.had_bom) for f in report.files] == [
        ("s3://verify-tests/export/data-00000.csv.gz", 500, True, True),
        ("s3://verify-tests/export/data-00001.csv.gz", 250, True, False),
    ]
    assert report.files[0].bytes_read == len(gzip.compress(first))


def test_verify_objects_reports_problems_by_uri(s3: object) -> None:
    put = s3.put_object  # type: ignore[attr-defined]
    put(Bucket="verify-tests", Key="bad/reordered.csv", Body=b"b,a\n1,2\n")
    put(Bucket="verify-tests", Key="bad/open-quote.csv", Body=b'a,b\n1,"2\n')
    put(Bucket="verify-tests", Key="bad/empty.csv", Body=b"")
    put(Bucket="verify-tests", Key="bad/good.csv", Body=b"a,b\n1,2\n3,4\n")
    keys = ["reordered.csv", "open-quote.csv", "empty.csv", "missing.csv", "good.csv"]

    report = verify_objects(s3, [("verify-tests", f"bad/{k}") for k in keys], ["a", "b"])

    assert [f.uri.rsplit("/", 1)[1] for f in report.files] == ["reordered.csv", "good.csv"]
    assert report.records == 3
    assert not report.header_ok and not report.ok
    assert len(report.problems) == 4
    reordered, open_quote, empty, missing = report.problems
    assert reordered.startswith("s3://verify-tests/bad/reordered.csv: ")
    assert "column 1 is 'b' where 'a' is expected" in reordered
    assert open_quote.startswith("s3://verify-tests/bad/open-quote.csv: ")
    assert "unterminated quote" in open_quote
    assert empty == "s3://verify-tests/bad/empty.csv: empty object (0 bytes)"
    assert missing.startswith("s3://verify-tests/bad/missing.csv: S3 NoSuchKey on GET")


def test_verify_objects_checks_the_declared_compression(s3: object) -> None:
    s3.put_object(Bucket="verify-tests", Key="plain/data.csv", Body=b"a\n1\n")  # type: ignore[attr-defined]
    objects = [("verify-tests", "plain/data.csv")]

    declared_gzip = verify_objects(s3, objects, ["a"], compression="GZIP")
    declared_none = verify_objects(s3, objects, ["a"], compression="none")

    assert declared_gzip.problems == (
        "s3://verify-tests/plain/data.csv: declared gzip, but it does not start with the gzip "
        "magic bytes",
    )
    assert declared_none.ok and declared_none.records == 1


def test_verify_objects_without_objects_is_a_problem(s3: object) -> None:
    report = verify_objects(s3, [], ["a"])

    assert report.problems == ("no objects to verify",)
    assert not report.header_ok


def test_chunk_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="chunk_size must be positive"):
        count(b"a\n1\n", chunk_size=0)
