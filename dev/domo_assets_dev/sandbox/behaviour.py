"""Per-DataSet export behaviour that tests switch through the control API, and the
sandbox-level modes that preset some of it for every DataSet."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .datasets import DEFAULT_EXPORT_SECONDS, DatasetSpec
from .sql import LENIENT_QUOTES, MYSQL_QUOTES, SQL_QUOTE_MODES

DEFAULT_ROWS_PER_FILE = 100_000
EXPORT_OUTCOMES = ("success", "error", "stuck")
URL_STYLES = ("s3", "virtual", "path")
TIMESTAMP_STYLES = ("epoch_ms", "iso")
BUSY_BEHAVIOURS = ("error", "return_running")
NEW_EXPORT_STATUS_CODES = (200, 201)
SAME_REQUEST = "same_request"
ANY_REQUEST = "any_request"
PREVIOUS_EXPORT_RULES = (SAME_REQUEST, ANY_REQUEST)
ACCEPT_POST = "accept"
REJECT_POST = "error"
POST_ANSWERS = (ACCEPT_POST, REJECT_POST)
COLUMNAR_SHAPE = "columnar"
OBJECTS_SHAPE = "objects"
QUERY_SHAPES = (COLUMNAR_SHAPE, OBJECTS_SHAPE)
EXPORT_LAYOUT = "export"
NESTED_LAYOUT = "nested"
BARE_LAYOUT = "bare"
KEY_LAYOUTS = (EXPORT_LAYOUT, NESTED_LAYOUT, BARE_LAYOUT)
SINGLE_UPLOAD = "single"
MULTIPART_UPLOAD = "multipart"
UPLOADS = (SINGLE_UPLOAD, MULTIPART_UPLOAD)
CHOICES: dict[str, tuple[object, ...]] = {
    "export_outcome": EXPORT_OUTCOMES,
    "url_style": URL_STYLES,
    "timestamp_style": TIMESTAMP_STYLES,
    "busy_behaviour": BUSY_BEHAVIOURS,
    "new_export_status_code": NEW_EXPORT_STATUS_CODES,
    "previous_export": PREVIOUS_EXPORT_RULES,
    "post_answer": POST_ANSWERS,
    "query_shape": QUERY_SHAPES,
    "sql_quotes": SQL_QUOTE_MODES,
    "key_layout": KEY_LAYOUTS,
    "upload": UPLOADS,
}
NON_NEGATIVE = ("export_seconds", "queue_seconds", "wrong_header_files")

DEFAULT_MODE = "default"
STRICT_MODE = "strict"
# What each sandbox mode sets in every DataSet's behaviour: "strict" reads Domo's documentation
# at its harshest; "default" puts the same fields back to their defaults.
MODE_PRESETS: MappingProxyType[str, MappingProxyType[str, str]] = MappingProxyType(
    {
        DEFAULT_MODE: MappingProxyType(
            {
                "previous_export": SAME_REQUEST,
                "query_shape": COLUMNAR_SHAPE,
                "sql_quotes": LENIENT_QUOTES,
            }
        ),
        STRICT_MODE: MappingProxyType(
            {
                "previous_export": ANY_REQUEST,
                "query_shape": OBJECTS_SHAPE,
                "sql_quotes": MYSQL_QUOTES,
            }
        ),
    }
)
MODES = tuple(MODE_PRESETS)


def check_mode(mode: str) -> str:
    """Return `mode` if it is a sandbox mode.

    Raises:
        ValueError: Naming the known modes otherwise.
    """
    if not isinstance(mode, str) or mode not in MODE_PRESETS:
        raise ValueError(f"Unknown sandbox mode {mode!r}; use one of {', '.join(MODES)}")
    return mode


@dataclass
class Behaviour:
    """How exports (and queries) of one DataSet behave.

    Attributes:
        export_outcome: ``success``; ``error`` (status error, errorCode EXPORT_FAILED);
            ``stuck`` (stays exporting until reset).
        export_seconds: Time spent ``exporting`` before the files are written.
        queue_seconds: Time a new export spends with status ``none`` (queued) first.
        misreport_rows: Added to the reported row count of the first file.
        omit_object: Report the files in urlRowCountMap but do not write them.
        omit_compression: Leave ``compression`` out of the export object (Domo lists the field
            but does not say it is always there).
        url_style: ``s3``, ``virtual`` or ``path`` form of urlRowCountMap keys.
        timestamp_style: ``epoch_ms`` or ``iso`` form of started/finished.
        busy_behaviour: A POST while an export runs: ``error`` (400) or ``return_running``.
        new_export_status_code: 200 or 201 for a newly started export.
        rows_per_file: Maximum data rows per file; more rows are split into numbered files.
        previous_export: Which earlier export a POST on unchanged data returns:
            ``same_request`` (one made for the same user, query, bucket, path and BOM) or
            ``any_request`` (the latest successful one, whatever request made it).
        post_answer: ``accept`` (start the export) or ``error`` (answer an export record
            that is already ``error``, errorCode EXPORT_REJECTED).
        query_shape: Body of the query endpoints: ``columnar`` (columns, rows, numRows...)
            or ``objects`` (an array of row objects).
        sql_quotes: ``lenient`` (``"Name"`` is a column) or ``mysql`` (``"Name"`` is a
            string literal; only back-ticks quote names).
        key_layout: Where an export's files go under ``<path>/<exportId>/``: ``export``
            (``export/<file>``, as Domo documents), ``nested`` (``export/<n>/<file>``: one
            sub-folder per file, every file with the same name) or ``bare`` (``<file>``, no
            ``export/`` folder).
        wrong_header_files: The last N files of an export name their first column otherwise
            (``<name> (renamed)``); the first file keeps the right header unless N covers it.
        flip_bom: Write the files with a UTF-8 BOM when the request asked for none, and
            without one when it asked for one (a Domo that ignores ``includeBOM``).
        upload: How each file is written: ``single`` (one PutObject) or ``multipart`` (create,
            upload part, complete, as SDK transfer managers write large files; with SSE-KMS
            it needs ``kms:Decrypt`` besides ``kms:GenerateDataKey``).
    """

    export_outcome: str = "success"
    export_seconds: float = DEFAULT_EXPORT_SECONDS
    queue_seconds: float = 0.0
    misreport_rows: int = 0
    omit_object: bool = False
    omit_compression: bool = False
    url_style: str = "s3"
    timestamp_style: str = "epoch_ms"
    busy_behaviour: str = "error"
    new_export_status_code: int = 200
    rows_per_file: int = DEFAULT_ROWS_PER_FILE
    previous_export: str = SAME_REQUEST
    post_answer: str = ACCEPT_POST
    query_shape: str = COLUMNAR_SHAPE
    sql_quotes: str = LENIENT_QUOTES
    key_layout: str = EXPORT_LAYOUT
    wrong_header_files: int = 0
    flip_bom: bool = False
    upload: str = SINGLE_UPLOAD

    @classmethod
    def for_dataset(cls, spec: DatasetSpec, mode: str = DEFAULT_MODE) -> Behaviour:
        """Return the default behaviour of a DataSet under a sandbox mode."""
        return cls(
            export_seconds=spec.export_seconds,
            url_style=spec.url_style,
            timestamp_style=spec.timestamp_style,
        ).with_mode(mode)

    def with_mode(self, mode: str) -> Behaviour:
        """Return a copy with the fields a sandbox mode presets set to its values.

        Raises:
            ValueError: For an unknown mode.
        """
        return dataclasses.replace(self, **MODE_PRESETS[check_mode(mode)])

    def updated(self, changes: Mapping[str, Any]) -> Behaviour:
        """Return a copy with `changes` applied.

        Raises:
            ValueError: For an unknown field or a value of the wrong type or range.
        """
        fields = {field.name: field for field in dataclasses.fields(self)}
        for name, value in changes.items():
            if name not in fields:
                raise ValueError(f"Unknown behaviour {name!r}; known: {', '.join(fields)}")
            _check(name, value, type(fields[name].default))
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Return the behaviour as JSON-ready data."""
        return dataclasses.asdict(self)


def _check(name: str, value: Any, kind: type) -> None:
    valid_type = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
    if kind is float:
        valid_type = isinstance(value, int | float) and not isinstance(value, bool)
    if not valid_type:
        raise ValueError(f"Behaviour {name!r} must be a {kind.__name__}, got {value!r}")
    if name in CHOICES and value not in CHOICES[name]:
        raise ValueError(f"Behaviour {name!r} must be one of {CHOICES[name]}, got {value!r}")
    if name in NON_NEGATIVE and value < 0:
        raise ValueError(f"Behaviour {name!r} must not be negative")
    if name == "rows_per_file" and value < 1:
        raise ValueError("Behaviour 'rows_per_file' must be at least 1")
