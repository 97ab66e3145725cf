"""Per-DataSet export behaviour that tests switch through the control API."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .datasets import DEFAULT_EXPORT_SECONDS, DatasetSpec

DEFAULT_ROWS_PER_FILE = 100_000
EXPORT_OUTCOMES = ("success", "error", "stuck")
URL_STYLES = ("s3", "virtual", "path")
TIMESTAMP_STYLES = ("epoch_ms", "iso")
BUSY_BEHAVIOURS = ("error", "return_running")
NEW_EXPORT_STATUS_CODES = (200, 201)
CHOICES: dict[str, tuple[object, ...]] = {
    "export_outcome": EXPORT_OUTCOMES,
    "url_style": URL_STYLES,
    "timestamp_style": TIMESTAMP_STYLES,
    "busy_behaviour": BUSY_BEHAVIOURS,
    "new_export_status_code": NEW_EXPORT_STATUS_CODES,
}
NON_NEGATIVE = ("export_seconds", "queue_seconds")


@dataclass
class Behaviour:
    """How exports of one DataSet behave.

    Attributes:
        export_outcome: ``success``; ``error`` (status error, errorCode EXPORT_FAILED);
            ``stuck`` (stays exporting until reset).
        export_seconds: Time spent ``exporting`` before the files are written.
        queue_seconds: Time a new export spends with status ``none`` (queued) first.
        misreport_rows: Added to the reported row count of the first file.
        omit_object: Report the files in urlRowCountMap but do not write them.
        url_style: ``s3``, ``virtual`` or ``path`` form of urlRowCountMap keys.
        timestamp_style: ``epoch_ms`` or ``iso`` form of started/finished.
        busy_behaviour: A POST while an export runs: ``error`` (400) or ``return_running``.
        new_export_status_code: 200 or 201 for a newly started export.
        rows_per_file: Maximum data rows per file; more rows are split into numbered files.
    """

    export_outcome: str = "success"
    export_seconds: float = DEFAULT_EXPORT_SECONDS
    queue_seconds: float = 0.0
    misreport_rows: int = 0
    omit_object: bool = False
    url_style: str = "s3"
    timestamp_style: str = "epoch_ms"
    busy_behaviour: str = "error"
    new_export_status_code: int = 200
    rows_per_file: int = DEFAULT_ROWS_PER_FILE

    @classmethod
    def for_dataset(cls, spec: DatasetSpec) -> Behaviour:
        """Return the default behaviour of a sample DataSet."""
        return cls(
            export_seconds=spec.export_seconds,
            url_style=spec.url_style,
            timestamp_style=spec.timestamp_style,
        )

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
