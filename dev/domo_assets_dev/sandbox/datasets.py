"""The sample DataSets: fixed ids, schemas, permissions, PDP policies and seeded row data.

Rows hold typed Python values (`int`, `float`, `Decimal`, `str`, `date`, `datetime`, or None
for a null). The seeded base rows of each DataSet are generated once per process, on first
use, and shared by every `Dataset`; `Dataset.append` adds rows on top of them.
"""

from __future__ import annotations

import functools
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType

from .users import ANALYST, HR_ADMIN, WEST_MANAGER

Row = tuple[object, ...]
RowFactory = Callable[[random.Random, int], Row]

PHARMACY_CLAIMS_ID = "5f0e7f4c-3b1d-4c2a-9a61-2f7d0c8e1a01"
AWKWARD_VALUES_ID = "a3c9e2d1-6b7f-4e80-8d15-7c4b2a9f3e02"
LARGE_EVENTS_ID = "c71b5e93-0f2a-4d6c-b8e4-1a9d3f5c7b03"
DAILY_ORDERS_ID = "d4e8a1f6-2c9b-4f3e-a7d0-5b1c8e6f2a04"
REGIONAL_SALES_ID = "e9b2c7d5-8a4f-4b1e-9c63-0d7f2a5e8b05"
HR_SALARIES_ID = "f16d3a8e-5c2b-4e9f-b0a7-3e8c1d6b9f06"

CREATED_MS = 1_767_603_600_000  # 2026-01-05T09:00:00Z
INITIAL_LAST_UPDATED_MS = 1_795_755_600_000  # 2026-11-27T05:00:00Z
UPDATE_INTERVAL_MS = 24 * 3600 * 1000
DEFAULT_EXPORT_SECONDS = 0.3
REGIONS = ("East", "West", "North", "South")


class ColumnType(StrEnum):
    """Domo column types."""

    STRING = "STRING"
    DECIMAL = "DECIMAL"
    LONG = "LONG"
    DOUBLE = "DOUBLE"
    DATE = "DATE"
    DATETIME = "DATETIME"


@dataclass(frozen=True)
class Column:
    """A DataSet column: name and Domo type."""

    name: str
    type: ColumnType


@dataclass(frozen=True)
class PdpPolicy:
    """A PDP policy: the rows whose `column` is one of `values` are visible to `users`.

    A policy without a column is Domo's "All Rows" policy.
    """

    id: int
    name: str
    users: tuple[str, ...]
    column: str | None = None
    values: tuple[str, ...] = ()

    @property
    def all_rows(self) -> bool:
        """True for an "All Rows" policy (no filter)."""
        return self.column is None


@dataclass(frozen=True)
class DatasetSpec:
    """The fixed definition of a sample DataSet.

    Attributes:
        id: DataSet id (UUID string).
        name: DataSet name.
        description: Description.
        columns: Schema.
        row_count: Number of seeded base rows.
        seed: Seed of the row generator.
        make_row: Builds row number `index` from a seeded random generator.
        compression: ``gzip`` or ``none``: how exports of this DataSet are written.
        owner: Owner's user name.
        readers: Users with READ on the DataSet.
        policies: PDP policies (PDP is enabled when there are any).
        url_style: Default form of ``urlRowCountMap`` keys (``s3``, ``virtual``, ``path``).
        timestamp_style: Default form of ``started``/``finished`` (``epoch_ms`` or ``iso``).
        export_seconds: Default time an export spends ``exporting`` before writing files.
        tags: Domo tags (the instance search API's listing shows them; the platform API's
            listing does not).
    """

    id: str
    name: str
    description: str
    columns: tuple[Column, ...]
    row_count: int
    seed: int
    make_row: RowFactory
    compression: str
    owner: str
    readers: frozenset[str]
    policies: tuple[PdpPolicy, ...] = ()
    url_style: str = "s3"
    timestamp_style: str = "epoch_ms"
    export_seconds: float = DEFAULT_EXPORT_SECONDS
    tags: tuple[str, ...] = ()

    @property
    def pdp_enabled(self) -> bool:
        """True when PDP policies restrict what users see."""
        return bool(self.policies)


@functools.cache
def base_rows(spec: DatasetSpec) -> tuple[Row, ...]:
    """Return the seeded base rows of `spec`, generated once per process."""
    rng = random.Random(spec.seed)
    return tuple(spec.make_row(rng, index) for index in range(spec.row_count))


def now_ms() -> int:
    """Return the current time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


class Dataset:
    """A sample DataSet's mutable state: rows appended by `change`, data version, times.

    Not thread-safe on its own: the sandbox state's lock guards it.
    """

    def __init__(self, spec: DatasetSpec) -> None:
        self.spec = spec
        self._extra_rows: list[Row] = []
        self.version = 1
        self.last_updated_ms = INITIAL_LAST_UPDATED_MS

    def rows(self) -> Sequence[Row]:
        """Return a snapshot of every row (base rows plus appended ones)."""
        base = base_rows(self.spec)
        return base + tuple(self._extra_rows) if self._extra_rows else base

    @property
    def row_count(self) -> int:
        """Total number of rows, PDP ignored."""
        return self.spec.row_count + len(self._extra_rows)

    def append(self, count: int) -> None:
        """Append `count` seeded rows, bump the data version and set lastUpdated to now."""
        rng = random.Random(f"{self.spec.seed}:{self.version}")
        start = self.row_count
        self._extra_rows.extend(self.spec.make_row(rng, start + i) for i in range(count))
        self.version += 1
        self.last_updated_ms = max(now_ms(), self.last_updated_ms + 1)


def _day(start: date, offset: int) -> date:
    return start + timedelta(days=offset)


def _money(rng: random.Random, low: int, high: int) -> Decimal:
    """Return a random amount with two decimals between `low` and `high`."""
    return Decimal(rng.randrange(low * 100, high * 100)).scaleb(-2)


PHARMACY_LABELS = (
    "LIPITOR 20MG TAB",
    "AMOXICILLIN 500MG CAP",
    "LISINOPRIL 10MG TAB",
    "METFORMIN HCL 500MG TAB",
    "SYNTHROID 50MCG TAB",
    "ZOLOFT 50MG TAB",
    "PREDNISONE 10MG TAB",
    "OMEPRAZOLE DR 20MG CAP",
    "PROAIR HFA 90MCG INH",
    "ATORVASTATIN 40MG TAB",
)


def _pharmacy_row(rng: random.Random, index: int) -> Row:
    return (
        2_000 + rng.randrange(400),
        f"{rng.randrange(10**9):09d}",
        rng.choice("MF"),
        _day(date(2026, 1, 1), rng.randrange(330)),
        rng.choice(PHARMACY_LABELS),
        Decimal(rng.randrange(1, 1800)).scaleb(-1),
        rng.choice((7, 14, 30, 60, 90)),
    )


AWKWARD_TEXTS: tuple[str | None, ...] = (
    "plain",
    "comma, inside",
    'double "quotes" inside',
    "line one\nline two",
    "windows\r\nnewline",
    "café au lait",
    "漢字テキスト",
    "emoji 🎉🚀",
    "",
    None,
    "  leading spaces",
    "trailing spaces  ",
    '"',
    ",",
    "tab\tinside",
    "back\\slash",
    'mixed, "all"\r\nof it: é 漢 🎉 ',
    # Quoted (a comma) and ending in a backslash: a CSV reader that takes \ as an escape reads
    # the closing quote as data and the rest of the record as this value.
    "ends in a backslash, \\",
)


def _awkward_row(rng: random.Random, index: int) -> Row:
    size = len(AWKWARD_TEXTS)
    created = datetime(2026, 3, 1, 12, 0, 0) + timedelta(minutes=rng.randrange(100_000))
    return (
        index + 1,
        AWKWARD_TEXTS[index % size],
        AWKWARD_TEXTS[(index * 7 + 3) % size],
        None if index % 9 == 4 else round(rng.uniform(-1000, 1000), 3),
        None if index % 11 == 6 else created,
    )


EVENT_TYPES = ("page_view", "click", "signup", "purchase", "logout")
EVENTS_START = datetime(2026, 10, 1)


def _event_row(rng: random.Random, index: int) -> Row:
    return (
        index + 1,
        EVENTS_START + timedelta(seconds=index * 7),
        rng.randrange(1, 5_000),
        EVENT_TYPES[rng.randrange(len(EVENT_TYPES))],
        round(rng.random() * 100, 2),
    )


ORDERS_PER_DAY = 12
ORDER_DAYS = 30


def _order_row(rng: random.Random, index: int) -> Row:
    return (
        _day(date(2026, 11, 1), (index // ORDERS_PER_DAY) % ORDER_DAYS),
        rng.choice(REGIONS),
        500_000 + index,
        _money(rng, 5, 900),
    )


PRODUCTS = ("Widget", "Gadget", "Gizmo", "Doohickey", "Sprocket", "Thingamajig")


def _sales_row(rng: random.Random, index: int) -> Row:
    return (REGIONS[index % len(REGIONS)], rng.choice(PRODUCTS), _money(rng, 1_000, 90_000))


FIRST_NAMES = ("Alex", "Sam", "Kim", "Jordan", "Priya", "Chen", "Maria", "Ole", "Fatima", "Yuki")
LAST_NAMES = ("Smith", "Garcia", "Nguyen", "Müller", "Okafor", "Rossi", "Tanaka", "Silva")
DEPARTMENTS = ("Finance", "Engineering", "Sales", "Support", "People")


def _salary_row(rng: random.Random, index: int) -> Row:
    return (
        10_000 + index,
        f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
        rng.choice(DEPARTMENTS),
        _money(rng, 45_000, 210_000),
    )


def _columns(*pairs: tuple[str, ColumnType]) -> tuple[Column, ...]:
    return tuple(Column(name, kind) for name, kind in pairs)


T = ColumnType
ANALYST_ONLY = frozenset({ANALYST})

SPECS: tuple[DatasetSpec, ...] = (
    DatasetSpec(
        id=PHARMACY_CLAIMS_ID,
        name="pharmacy-claims",
        tags=("healthcare", "certified"),
        description="Pharmacy claims, after Domo's own export example.",
        columns=_columns(
            ("Customer ID", T.LONG),
            ("Cardholder ID", T.STRING),
            ("Sex of Patient", T.STRING),
            ("Date Filled", T.DATE),
            ("Label Name", T.STRING),
            ("Metric Quantity", T.DECIMAL),
            ("Days Supply", T.LONG),
        ),
        row_count=1_000,
        seed=101,
        make_row=_pharmacy_row,
        compression="gzip",
        owner=ANALYST,
        readers=ANALYST_ONLY,
        url_style="s3",
        timestamp_style="epoch_ms",
    ),
    DatasetSpec(
        id=AWKWARD_VALUES_ID,
        name="awkward-values",
        tags=("testing",),
        description="Strings that break naive CSV handling: commas, quotes, newlines, unicode.",
        columns=_columns(
            ("ID", T.LONG),
            ("Text", T.STRING),
            ("Note", T.STRING),
            ("Amount", T.DOUBLE),
            ("Created", T.DATETIME),
        ),
        row_count=50,
        seed=202,
        make_row=_awkward_row,
        compression="none",
        owner=ANALYST,
        readers=ANALYST_ONLY,
        url_style="virtual",
        timestamp_style="iso",
    ),
    DatasetSpec(
        id=LARGE_EVENTS_ID,
        name="large-events",
        tags=("events",),
        description="Enough events that an export takes seconds and is split into files.",
        columns=_columns(
            ("Event ID", T.LONG),
            ("Event Time", T.DATETIME),
            ("User ID", T.LONG),
            ("Event Type", T.STRING),
            ("Value", T.DOUBLE),
        ),
        row_count=300_000,
        seed=303,
        make_row=_event_row,
        compression="gzip",
        owner=ANALYST,
        readers=ANALYST_ONLY,
        url_style="path",
        timestamp_style="epoch_ms",
    ),
    DatasetSpec(
        id=DAILY_ORDERS_ID,
        name="daily-orders",
        tags=("sales", "certified"),
        description="Orders of November 2026, several a day, for partitioned exports.",
        columns=_columns(
            ("Order Date", T.DATE),
            ("Region", T.STRING),
            ("Order ID", T.LONG),
            ("Amount", T.DECIMAL),
        ),
        row_count=ORDERS_PER_DAY * ORDER_DAYS,
        seed=404,
        make_row=_order_row,
        compression="gzip",
        owner=ANALYST,
        readers=ANALYST_ONLY,
        url_style="s3",
        timestamp_style="iso",
    ),
    DatasetSpec(
        id=REGIONAL_SALES_ID,
        name="regional-sales",
        tags=("sales",),
        description="Revenue by region and product; PDP limits west_manager to the West.",
        columns=_columns(("Region", T.STRING), ("Product", T.STRING), ("Revenue", T.DECIMAL)),
        row_count=48,
        seed=505,
        make_row=_sales_row,
        compression="gzip",
        owner=ANALYST,
        readers=frozenset({ANALYST, WEST_MANAGER}),
        policies=(
            PdpPolicy(id=1, name="All Rows", users=(ANALYST,)),
            PdpPolicy(
                id=2, name="West only", users=(WEST_MANAGER,), column="Region", values=("West",)
            ),
        ),
        url_style="virtual",
        timestamp_style="epoch_ms",
    ),
    DatasetSpec(
        id=HR_SALARIES_ID,
        name="hr-salaries",
        tags=("hr",),
        description="Salaries: only hr_admin may read them.",
        columns=_columns(
            ("Employee ID", T.LONG),
            ("Name", T.STRING),
            ("Department", T.STRING),
            ("Salary", T.DECIMAL),
        ),
        row_count=40,
        seed=606,
        make_row=_salary_row,
        compression="gzip",
        owner=HR_ADMIN,
        readers=frozenset({HR_ADMIN}),
        url_style="path",
        timestamp_style="iso",
    ),
)

# Synthetic DataSets: many small, identical-shaped DataSets for fan-out benchmarks and tests
# (Domo runs one export per DataSet at a time, so N concurrent exports need N DataSets).
SYNTHETIC_NAMESPACE = uuid.UUID("6f1c2b9e-4d7a-5e3f-8a21-9c0d4b6e7f10")
SYNTHETIC_NAME_PREFIX = "synthetic-"
SYNTHETIC_SEED_BASE = 10_000
DEFAULT_SYNTHETIC_ROWS = 20
SYNTHETIC_TAG = "synthetic"
MAX_SYNTHETIC_DATASETS = 10_000
MAX_SYNTHETIC_ROWS = 1_000_000
SYNTHETIC_COLUMNS = _columns(("ID", T.LONG), ("Label", T.STRING), ("Amount", T.DECIMAL))


def _synthetic_row(rng: random.Random, index: int) -> Row:
    return (index + 1, rng.choice(PRODUCTS), _money(rng, 1, 1_000))


def synthetic_dataset_id(index: int) -> str:
    """Return the id of synthetic DataSet number `index` (a uuid5: the same on every run)."""
    return str(uuid.uuid5(SYNTHETIC_NAMESPACE, f"{SYNTHETIC_NAME_PREFIX}{index}"))


def synthetic_spec(index: int, rows: int = DEFAULT_SYNTHETIC_ROWS) -> DatasetSpec:
    """Return the spec of synthetic DataSet number `index`: `rows` small rows, readable by
    the main user, the default export time.

    Raises:
        ValueError: If `index` or `rows` is out of range.
    """
    if not 0 <= index < MAX_SYNTHETIC_DATASETS:
        raise ValueError(f"synthetic DataSet index must be in [0, {MAX_SYNTHETIC_DATASETS})")
    if not 0 <= rows <= MAX_SYNTHETIC_ROWS:
        raise ValueError(f"synthetic DataSet rows must be in [0, {MAX_SYNTHETIC_ROWS}]")
    return DatasetSpec(
        id=synthetic_dataset_id(index),
        name=f"{SYNTHETIC_NAME_PREFIX}{index:04d}",
        description=f"Synthetic DataSet {index}: {rows} small rows, for fan-out tests.",
        columns=SYNTHETIC_COLUMNS,
        row_count=rows,
        seed=SYNTHETIC_SEED_BASE + index,
        make_row=_synthetic_row,
        compression="gzip",
        owner=ANALYST,
        readers=ANALYST_ONLY,
        tags=(SYNTHETIC_TAG,),
    )


SPECS_BY_ID: MappingProxyType[str, DatasetSpec] = MappingProxyType({s.id: s for s in SPECS})
SAMPLE_DATASETS: MappingProxyType[str, str] = MappingProxyType({s.name: s.id for s in SPECS})


def iso_from_ms(epoch_ms: int) -> str:
    """Return epoch milliseconds as ISO-8601 UTC with millisecond precision and a ``Z``."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
