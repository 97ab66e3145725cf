"""Partitioned exports: a Dagster partitions definition and, per partition key, a filter and a prefix.

Each partition's export adds a ``where`` condition Domo documents (``EQUALS``, or ``IN`` with a
value list) and writes under ``<path>/<key>=<partition>/``, Hive style:

* ``daily`` on a DATE column: ``column = 'YYYY-MM-DD'``, prefix ``dt=2026-11-28``;
* ``monthly`` on a DATE column: ``column IN (every day of the month)``, prefix ``month=2026-11``;
* ``static`` values: ``column = 'value'``, prefix ``<column>=<value>``.

The value in a prefix is escaped as Hive escapes partition paths: every UTF-8 byte outside
``A-Z a-z 0-9 _ . -`` (``%`` included) becomes ``%XX`` in upper-case hex, so ``A/B`` is ``A%2FB``
and ``A B`` is ``A%20B``. The encoding is injective (two values never share a prefix), a value
can never add a path segment, and IAM's wildcard and policy-variable characters (``* ? $ { }``)
never appear raw in the prefix the session policy is scoped to. Readers that discover partitions
by listing decode ``%XX`` as Hive does; the Glue partitions this project registers name their
folder and carry the raw value.

A DATETIME column would need a range (``>=`` and ``<``), which Domo's documentation does not show
for the export endpoint, so time partitions are refused on DATETIME columns at run time.
"""

from __future__ import annotations

import calendar
import re
import string
from datetime import date
from enum import StrEnum
from typing import Self

from dagster import (
    DailyPartitionsDefinition,
    MonthlyPartitionsDefinition,
    PartitionsDefinition,
    StaticPartitionsDefinition,
)
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from domo_assets.domo.errors import ConfigurationError
from domo_assets.domo.models import Condition, FilterOp
from domo_assets.s3.target import check_prefix_text

DAILY_KEY = "dt"
MONTHLY_KEY = "month"
DAILY_FORMAT = "%Y-%m-%d"
MONTH_FORMAT = "%Y-%m"
TIME_COLUMN_TYPES = {"DATE"}
# Characters a prefix segment carries as they are; every other byte is escaped (see above).
HIVE_SAFE_CHARACTERS = frozenset(string.ascii_letters + string.digits + "_.-")
_HIVE_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class PartitionColumnError(ConfigurationError, ValueError):
    """A partition column is missing from the DataSet or of a type the scheme cannot use."""


class PartitionScheme(StrEnum):
    """How an export is split."""

    DAILY = "daily"
    MONTHLY = "monthly"
    STATIC = "static"


class PartitionSettings(BaseModel):
    """The ``partition:`` key of a catalog export."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str = Field(min_length=1, description="The column whose value selects a partition.")
    scheme: PartitionScheme = Field(description="daily, monthly or static.")
    start: date | None = Field(default=None, description="First day or month (daily, monthly).")
    end: date | None = Field(default=None, description="Day or month after the last (optional).")
    timezone: str = Field(default="UTC", description="Timezone of the partition boundaries.")
    values: list[str] = Field(default_factory=list, description="The partitions (static).")
    include_current: bool = Field(
        default=False,
        description="Also offer the current, still-filling day or month as a partition.",
    )
    key_name: str | None = Field(
        default=None,
        description="Hive key of the S3 prefix (default dt, month or the column); letters, "
        "digits, _ . -",
    )

    @field_validator("key_name")
    @classmethod
    def _valid_key_name(cls, value: str | None) -> str | None:
        if value is None:
            return value
        check_prefix_text(value, "key_name")
        unsafe = next((c for c in value if c not in HIVE_SAFE_CHARACTERS), None)
        if not value or unsafe is not None:
            found = f"{unsafe!r} is not allowed" if unsafe is not None else "it is empty"
            raise ValueError(
                f"key_name {value!r}: {found}; a Hive key is letters, digits, _ . - (it is the "
                "key of every partition's key=value prefix and the Glue partition column)"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.scheme is PartitionScheme.STATIC:
            if not self.values:
                raise ValueError("a static partition needs values")
            if len(set(self.values)) != len(self.values):
                raise ValueError("static partition values must be unique")
            if not self.hive_key:
                raise ValueError(
                    f"column {self.column!r} gives no Hive key (it has no letter or digit): "
                    "set key_name"
                )
            self._check_distinct_prefixes()
        elif self.start is None:
            raise ValueError(f"a {self.scheme.value} partition needs start (YYYY-MM-DD)")
        elif self.end is not None and self.end <= self.start:
            raise ValueError("partition end must come after start")
        return self

    @property
    def hive_key(self) -> str:
        """The ``key`` of ``key=value`` prefixes."""
        if self.key_name:
            return self.key_name
        if self.scheme is PartitionScheme.DAILY:
            return DAILY_KEY
        if self.scheme is PartitionScheme.MONTHLY:
            return MONTHLY_KEY
        return _HIVE_UNSAFE.sub("_", self.column).strip("_").lower()

    def definition(self) -> PartitionsDefinition:
        """The Dagster partitions definition."""
        if self.scheme is PartitionScheme.STATIC:
            return StaticPartitionsDefinition(self.values)
        if self.scheme is PartitionScheme.DAILY:
            return DailyPartitionsDefinition(
                start_date=_format(self.start, DAILY_FORMAT),
                end_date=_format(self.end, DAILY_FORMAT),
                timezone=self.timezone,
                end_offset=int(self.include_current),
            )
        return MonthlyPartitionsDefinition(
            start_date=_format(self.start, MONTH_FORMAT),
            end_date=_format(self.end, MONTH_FORMAT),
            timezone=self.timezone,
            fmt=MONTH_FORMAT,
            end_offset=int(self.include_current),
        )

    def condition(self, partition_key: str) -> Condition:
        """The filter that selects one partition's rows."""
        if self.scheme is PartitionScheme.MONTHLY:
            year, month = (int(part) for part in partition_key.split("-")[:2])
            days = calendar.monthrange(year, month)[1]
            values = tuple(date(year, month, day).isoformat() for day in range(1, days + 1))
            return Condition(self.column, FilterOp.IN, values)
        return Condition(self.column, FilterOp.EQUALS, (partition_key,))

    def prefix(self, partition_key: str) -> str:
        """The Hive-style path segment of one partition: ``<key>=<escaped value>``."""
        return f"{self.hive_key}={hive_escape(partition_key)}"

    def _check_distinct_prefixes(self) -> None:
        """Two static values never share a prefix (the encoding is injective; this states it
        where a catalog is read, so a future encoding cannot merge two partitions silently)."""
        seen: dict[str, str] = {}
        for value in self.values:
            prefix = self.prefix(value)
            if prefix in seen:
                raise ValueError(
                    f"static values {seen[prefix]!r} and {value!r} would both be written under "
                    f"{prefix}/; make them distinct"
                )
            seen[prefix] = value

    def check_column_type(self, column_type: str | None, export_name: str) -> None:
        """Refuse time partitions on columns other than DATE (see the module docstring).

        Raises:
            PartitionColumnError: The column is missing or of an unsupported type.
        """
        if column_type is None:
            raise PartitionColumnError(
                f"export {export_name!r}: partition column {self.column!r} is not in the DataSet"
            )
        if (
            self.scheme is not PartitionScheme.STATIC
            and column_type.upper() not in TIME_COLUMN_TYPES
        ):
            raise PartitionColumnError(
                f"export {export_name!r}: {self.scheme.value} partitions need a DATE column, but "
                f"{self.column!r} is {column_type}; a DATETIME column would need a range filter, "
                "which Domo's export endpoint does not document. Use a DATE column (e.g. one derived "
                "in a Domo DataFlow) or static partitions"
            )


def hive_escape(value: str) -> str:
    """A partition value as a path segment: every UTF-8 byte outside ``A-Z a-z 0-9 _ . -`` as
    ``%XX`` (upper-case hex), as Hive escapes partition paths; injective, and never holding a raw
    ``/``, ``%`` or IAM pattern character (``* ? $ { }``)."""
    return "".join(
        char if char in HIVE_SAFE_CHARACTERS else "".join(f"%{b:02X}" for b in char.encode())
        for char in value
    )


def _format(day: date | None, fmt: str) -> str | None:
    return day.strftime(fmt) if day else None
