"""An independent reader of the CSV Glue tables: what Athena (Trino) and Hive do with an
``OpenCSVSerde`` table, ported to Python, so a test can read the exported files the way a query
engine reads the table that Glue declares over them.

Ported from Trino's ``hive-formats`` (``TextLineReader``, ``CsvDeserializerFactory``,
``CsvDeserializer``), which is written to behave bug for bug like Hive's ``OpenCSVSerde`` over
opencsv 2.3's ``CSVParser``:

- **the SerDe parameters**: the first character of ``separatorChar``, ``quoteChar`` and
  ``escapeChar`` (defaults ``,``, ``"`` and a backslash); an ``escapeChar`` of ``"`` is replaced
  by a backslash (Hive's behaviour, which Trino copies);
- **the text input format**: a ``.gz`` file is gunzipped (the codec follows the file name), a
  UTF-8 BOM at the start of a file is skipped, a line ends at LF, CR or CRLF (so a record holding
  a line break arrives as several lines), and ``skip.header.line.count`` lines are skipped at the
  start of each file;
- **each line** is parsed on its own with opencsv's rules (:func:`parse_line`); a row has as
  many values as the table has columns: missing ones are NULL (None), extra ones dropped.

Nothing here comes from the project's own code: it is the oracle the Glue tables are checked
against.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Mapping, Sequence

DEFAULT_SEPARATOR = ","
DEFAULT_QUOTE = '"'
DESERIALIZER_DEFAULT_ESCAPE = "\\"
# What Hive (and Trino after it) swap for DESERIALIZER_DEFAULT_ESCAPE when set as escapeChar.
SERIALIZER_DEFAULT_ESCAPE = '"'
UTF8_BOM = b"\xef\xbb\xbf"
HEADER_COUNT_KEY = "skip.header.line.count"

Row = list[str | None]


def serde_characters(parameters: Mapping[str, str]) -> tuple[str, str, str]:
    """``(separator, quote, escape)`` as the deserializer uses them, from the SerDe parameters.

    Raises:
        ValueError: Settings the deserializer refuses (two roles for one character).
    """
    separator = parameters.get("separatorChar", DEFAULT_SEPARATOR)[:1] or DEFAULT_SEPARATOR
    quote = parameters.get("quoteChar", DEFAULT_QUOTE)[:1] or DEFAULT_QUOTE
    escape = parameters.get("escapeChar", DESERIALIZER_DEFAULT_ESCAPE)[:1]
    if escape == SERIALIZER_DEFAULT_ESCAPE:
        escape = DESERIALIZER_DEFAULT_ESCAPE
    if separator in (quote, escape) or (quote == escape and quote != "\0"):
        raise ValueError(f"separator, quote and escape must differ: {separator!r} {quote!r}")
    return separator, quote, escape


def lines(data: bytes) -> Iterator[str]:
    """The lines of one file as the text input format cuts them: BOM skipped, LF, CR or CRLF
    ending a line, a last line without an end kept, each decoded as UTF-8."""
    if data.startswith(UTF8_BOM):
        data = data[len(UTF8_BOM) :]
    start = 0
    position = 0
    size = len(data)
    while position < size:
        byte = data[position]
        if byte in (0x0A, 0x0D):
            yield data[start:position].decode("utf-8")
            if byte == 0x0D and position + 1 < size and data[position + 1] == 0x0A:
                position += 1
            start = position + 1
        position += 1
    if start < size:
        yield data[start:].decode("utf-8")


def parse_line(line: str, columns: int, separator: str, quote: str, escape: str) -> Row:
    """One line's values, as opencsv's parser (in Trino's port) reads it.

    An escape character is dropped, and a quote or escape character right after it (inside a
    field) is taken literally. A quote starts or ends quoting; two quotes inside a field are
    one quote; a quote in the middle of a field (not in the first three characters of the line,
    not next to a separator, not last) is kept as data. A separator outside quotes ends a
    value. A last value left inside quotes is dropped (NULL).
    """
    values: Row = [None] * columns
    if not line or columns == 0:
        return values
    buffer: list[str] = []
    column = 0
    in_quotes = False
    in_field = False
    position = 0
    while position < len(line) and column < columns:
        char = line[position]
        following = line[position + 1] if position + 1 < len(line) else None
        if char == escape:
            if (in_quotes or in_field) and following in (quote, escape):
                buffer.append(following)
                position += 1
        elif char == quote:
            if (in_quotes or in_field) and following == quote:
                buffer.append(following)
                position += 1
            else:
                embedded = (
                    position > 2
                    and line[position - 1] != separator
                    and following is not None
                    and following != separator
                )
                if embedded:
                    if buffer and "".join(buffer).isspace():
                        buffer.clear()
                    else:
                        buffer.append(char)
                in_quotes = not in_quotes
            in_field = not in_field
        elif char == separator and not in_quotes:
            values[column] = "".join(buffer)
            column += 1
            buffer.clear()
            in_field = False
        else:
            buffer.append(char)
            in_field = True
        position += 1
    if column < columns and not in_quotes:
        values[column] = "".join(buffer)
    return values


def read_table_file(
    name: str,
    data: bytes,
    columns: int,
    serde_parameters: Mapping[str, str],
    table_parameters: Mapping[str, str],
) -> list[Row]:
    """The rows a CSV table (its SerDe and table parameters) returns for one file.

    Args:
        name: The object's key (``.gz``: gunzipped, as the codec follows the name).
        data: The object's bytes.
        columns: How many columns the table declares.
        serde_parameters: ``SerdeInfo.Parameters``.
        table_parameters: The table's (or storage descriptor's) ``Parameters``.
    """
    if name.endswith(".gz"):
        data = gzip.decompress(data)
    separator, quote, escape = serde_characters(serde_parameters)
    skip = int(table_parameters.get(HEADER_COUNT_KEY, "0"))
    rows: list[Row] = []
    for index, line in enumerate(lines(data)):
        if index >= skip:
            rows.append(parse_line(line, columns, separator, quote, escape))
    return rows


def read_table(
    files: Sequence[tuple[str, bytes]],
    columns: int,
    serde_parameters: Mapping[str, str],
    table_parameters: Mapping[str, str],
) -> list[Row]:
    """The rows a CSV table returns over several files, in the order given."""
    return [
        row
        for name, data in files
        for row in read_table_file(name, data, columns, serde_parameters, table_parameters)
    ]
