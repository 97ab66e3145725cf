"""The export catalog: which Domo DataSets to export where, read from YAML and validated.

Shape::

    defaults:            # optional: keys applied to every export (an export's own keys win)
      bucket: my-lake
      region: us-east-1
    exports:
      - name: pharmacy_claims          # the asset's name
        dataset_id: 7d5c...            # the Domo DataSet
        path: domo/pharmacy_claims     # the S3 prefix
        columns: [Customer ID, Days Supply]   # optional: omitted means all columns

Any unknown key, duplicate name, missing field or malformed value raises :class:`CatalogError`
naming the file, the export and the field, so a code location never loads half a catalog. So
does a prefix with IAM pattern characters, and two exports (included catalogs' too) whose
``s3://<bucket>/<path>/`` are equal or nested: each export owns its prefix (its pointer, table and
retention act on everything under it). :mod:`domo_assets.ownership` extends that check across
the catalogs of one project.
This module reads files it is given; it does not read environment variables.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import ipaddress
import itertools
import re
import zoneinfo
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from dagster import DagsterInvalidDefinitionError, ScheduleDefinition
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from domo_assets.domo.models import Condition, ExportQuery, FilterOp, OrderBy, RowFilter
from domo_assets.partitions import PartitionSettings
from domo_assets.s3.credentials import (
    STS_MAX_DURATION,
    STS_MIN_DURATION,
    CredentialLimits,
    CredentialOverrides,
    CredentialsMode,
)
from domo_assets.s3.target import ExportTarget, check_prefix_path, prefix_uri

# The environment variable naming the catalog file (read by definitions.py only).
EXPORTS_FILE_VAR = "DOMO_EXPORTS_FILE"
DEFAULT_GROUP = "domo_exports"
DEFAULT_MIN_ROWS = 1
DATASET_KEY_PREFIX = "domo"
DEFAULT_TIMEZONE = "UTC"
# The change sensor (catalog section ``sensor:``): a tick at most every minute, reading at most
# 50 DataSets, so a 500-DataSet catalog is read in ten ticks rather than in one burst.
DEFAULT_SENSOR_INTERVAL_SECONDS = 60
DEFAULT_DATASETS_PER_TICK = 50
# Domo's rate guidance ("about 120 requests a minute"); the sensor's reads must stay within it.
DEFAULT_SENSOR_REQUESTS_PER_MINUTE = 120
# Dagster evaluates time-window freshness at minute granularity and rejects shorter windows.
MIN_MAX_AGE = timedelta(minutes=1)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d+$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_ACCOUNT_ID = re.compile(r"^\d{12}$")
_KMS_ARN = re.compile(
    r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key/[A-Za-z0-9-]+|alias/[\w/+=,.@-]+)$"
)
_KMS_NAME = re.compile(r"^(alias/[\w/+=,.@-]+|[A-Za-z0-9-]+)$")
_TAG_VALUE = re.compile(r"^[A-Za-z0-9_.-]{0,63}$")
_DURATION = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_DURATION_UNITS = ("weeks", "days", "hours", "minutes", "seconds")
# libyaml's safe loader when PyYAML was built with it: the same documents, ~10x faster to parse
# (a 1,000-export catalog in tens of milliseconds instead of ~0.4 s at each code-location load).
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# `parquet: true` needs pyarrow, which only the `parquet` extra installs.
PARQUET_MODULE = "pyarrow"
PARQUET_INSTALL = "pip install 'domo_assets[parquet]'"


class CatalogError(ValueError):
    """The catalog file cannot be used; the message names the file, export and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class WhereCondition(_Strict):
    """One condition of an export's ``where``: a column and exactly one comparison."""

    column: str = Field(min_length=1, description="The column to compare.")
    equals: str | int | float | None = Field(default=None, description="Keep rows equal to this.")
    not_equals: str | int | float | None = Field(
        default=None, description="Drop rows equal to this."
    )
    in_: list[str | int | float] | None = Field(
        default=None, alias="in", min_length=1, description="Keep rows whose value is in this list."
    )
    gt: str | int | float | None = Field(default=None, description="Keep rows greater than this.")
    gte: str | int | float | None = Field(default=None, description="Keep rows at least this.")
    lt: str | int | float | None = Field(default=None, description="Keep rows less than this.")
    lte: str | int | float | None = Field(default=None, description="Keep rows at most this.")

    @model_validator(mode="after")
    def _one_comparison(self) -> WhereCondition:
        given = [name for name in _COMPARISONS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of {', '.join(n.rstrip('_') for n in _COMPARISONS)} "
                f"for column {self.column!r} (got {len(given)})"
            )
        return self

    def to_condition(self) -> Condition:
        """The typed condition."""
        name = next(n for n in _COMPARISONS if getattr(self, n) is not None)
        value = getattr(self, name)
        values = tuple(value) if isinstance(value, list) else (value,)
        return Condition(column=self.column, op=_COMPARISONS[name], values=values)


_COMPARISONS: dict[str, FilterOp] = {
    "equals": FilterOp.EQUALS,
    "not_equals": FilterOp.NOT_EQUALS,
    "in_": FilterOp.IN,
    "gt": FilterOp.GREATER_THAN,
    "gte": FilterOp.GREATER_THAN_EQUAL,
    "lt": FilterOp.LESS_THAN,
    "lte": FilterOp.LESS_THAN_EQUAL,
}


class OrderColumn(_Strict):
    """One ``order_by`` entry; a plain string means ascending."""

    column: str = Field(min_length=1, description="The column to sort by.")
    direction: Literal["asc", "desc"] = Field(default="asc", description="Sort direction.")


class CredentialsSettings(_Strict):
    """Which AWS credentials to hand to Domo for this export: may only narrow the
    ``aws_credentials`` resource's settings (checked when the definitions are built, and again
    when the export runs)."""

    mode: CredentialsMode | None = Field(
        default=None,
        description="scoped or assume_role (chain and static only where the resource allows "
        "unscoped credentials); default: the resource's.",
    )
    role_arn: str | None = Field(
        default=None, description="The role whose scoped sessions Domo is handed."
    )
    external_id: str | None = Field(default=None, description="External id the role requires.")
    duration_seconds: int | None = Field(
        default=None,
        ge=STS_MIN_DURATION,
        le=STS_MAX_DURATION,
        description="Fixed credential lifetime (at most the resource's, when it fixes one); "
        "default: sized to the export.",
    )
    allow_unscoped_credentials: bool | None = Field(
        default=None,
        description="false refuses unscoped credentials for this export; true only where the "
        "resource allows them. Default: the resource's.",
    )
    allow_long_lived: bool | None = Field(
        default=None,
        description="false refuses long-lived keys for this export; true only where the "
        "resource allows them. Default: the resource's.",
    )

    @model_validator(mode="after")
    def _role_for_assume_role(self) -> CredentialsSettings:
        if self.mode is CredentialsMode.ASSUME_ROLE and not self.role_arn:
            raise ValueError("mode assume_role needs role_arn")
        if self.role_arn and not _ROLE_ARN.match(self.role_arn):
            raise ValueError(
                f"{self.role_arn!r} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)"
            )
        return self

    def to_overrides(self) -> CredentialOverrides:
        """These settings as overrides of the resource's."""
        return CredentialOverrides(
            mode=self.mode,
            role_arn=self.role_arn,
            external_id=self.external_id,
            duration_seconds=self.duration_seconds,
            allow_unscoped_credentials=self.allow_unscoped_credentials,
            allow_long_lived=self.allow_long_lived,
        )


Severity = Literal["warn", "error"]
_GLUE_NAME = re.compile(r"^[a-z0-9_]{1,255}$")
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


class SchemaChangeCheck(_Strict):
    """``quality.schema_change``: columns added, removed or retyped since the last export."""

    severity: Severity = Field(default="warn", description="warn or error.")


class MinRowsCheck(_Strict):
    """``quality.min_rows``: the latest export has at least ``bound`` rows."""

    bound: int = Field(ge=0, description="Least rows.")
    severity: Severity = Field(default="error", description="warn or error.")


class RowDropCheck(_Strict):
    """``quality.max_row_drop``: the row count fell by at most ``bound`` since the last export."""

    bound: str | float = Field(description="A percentage such as 50% (or a fraction, 0.5).")
    severity: Severity = Field(default="error", description="warn or error.")

    @field_validator("bound")
    @classmethod
    def _valid_bound(cls, value: str | float) -> str | float:
        fraction = _fraction(value)
        if fraction is None or not 0 <= fraction <= 1:
            raise ValueError(f"{value!r} is not a drop between 0% and 100% (e.g. 50%)")
        return value

    @property
    def fraction(self) -> float:
        """The bound as a fraction of the previous row count."""
        found = _fraction(self.bound)
        assert found is not None  # validated
        return found


def _fraction(value: str | float) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _PERCENT.match(str(value))
    return float(match.group(1)) / 100 if match else None


class TableSettings(_Strict):
    """``table:``: register the export as an AWS Glue Data Catalog table."""

    database: str = Field(min_length=1, description="The Glue database (created if missing).")
    name: str | None = Field(
        default=None, description="The table's name; default: the export's name."
    )

    @field_validator("database", "name")
    @classmethod
    def _valid_glue_name(cls, value: str | None) -> str | None:
        if value is not None and not _GLUE_NAME.match(value):
            raise ValueError(
                f"{value!r} is not a Glue name (lowercase letters, digits and underscores)"
            )
        return value


class QualitySettings(_Strict):
    """Data-quality checks beyond transfer integrity, each with its severity (off if absent)."""

    schema_change: SchemaChangeCheck | None = Field(
        default=None, description="Check the columns against the previous export."
    )
    max_row_drop: RowDropCheck | None = Field(
        default=None, description="Bound the row-count drop against the previous export."
    )
    min_rows: MinRowsCheck | None = Field(
        default=None, description="Least rows of every export (not only grouped ones)."
    )


class ExportSettings(_Strict):
    """Keys an export may take from ``defaults:``."""

    bucket: str | None = Field(default=None, description="Destination S3 bucket (must exist).")
    path: str | None = Field(
        default=None, description="S3 prefix; Domo writes <path>/<exportId>/export/."
    )
    region: str | None = Field(default=None, description="The bucket's AWS region.")
    columns: list[str] | None = Field(default=None, description="Columns to export; omitted: all.")
    group_by: list[str] = Field(default_factory=list, description="Columns to group by.")
    order_by: list[str | OrderColumn] = Field(default_factory=list, description="Sort order.")
    where: list[WhereCondition] = Field(
        default_factory=list, description="Row filter (all must hold)."
    )
    include_bom: bool = Field(default=False, description="Start each file with a UTF-8 BOM.")
    use_cache: bool = Field(default=True, description="Let Domo answer from its query cache.")
    description: str | None = Field(default=None, description="The asset's description.")
    group: str = Field(default=DEFAULT_GROUP, description="The asset group in the Dagster UI.")
    owners: list[str] = Field(
        default_factory=list, description="Asset owners (emails or team:name)."
    )
    tags: dict[str, str] = Field(default_factory=dict, description="Asset tags.")
    min_rows: int = Field(
        default=DEFAULT_MIN_ROWS,
        ge=0,
        description="Least rows a filtered or grouped export must have to pass its row-count check.",
    )
    blocking_checks: bool = Field(
        default=False, description="Fail the run (and skip downstream) when a check fails."
    )
    credentials: CredentialsSettings | None = Field(
        default=None, description="AWS credentials for Domo; default: the aws_credentials resource."
    )
    kms_key_id: str | None = Field(
        default=None,
        description="KMS key Domo encrypts the objects with (SSE-KMS): a key ARN, alias ARN, "
        "alias/<name> or key id of the worker's account; resolved to its key ARN before the "
        "export (awsKmsKey).",
    )
    bucket_owner: str | None = Field(
        default=None,
        description="The AWS account id (12 digits) the bucket must belong to: every S3 call "
        "passes ExpectedBucketOwner and Domo's session policy holds it to that account.",
    )
    verify: Literal["basic", "deep"] = Field(
        default="basic",
        description="deep: also stream every object, parse its CSV and count its records.",
    )
    allow_public_destination: bool = Field(
        default=False,
        description="Export even if the bucket may be public (warned about and recorded).",
    )
    schedule: str | None = Field(
        default=None,
        description="Cron string (e.g. '0 6 * * *'): export on this schedule; exports sharing "
        "a schedule and timezone run together.",
    )
    timezone: str | None = Field(
        default=None,
        description="IANA timezone the schedule's cron is read in (e.g. Europe/Paris); default UTC.",
    )
    table: TableSettings | None = Field(
        default=None,
        description="Register a Glue table ({database, name}) pointing at the newest verified "
        "export (one Glue partition per Dagster partition).",
    )
    keep_exports: int | None = Field(
        default=None,
        ge=1,
        description="Keep the N newest verified export folders under the asset's prefix and "
        "remove older ones this project wrote (off by default).",
    )
    parquet: bool = Field(
        default=False,
        description="Also write the verified export as Parquet, in a downstream asset "
        "<name>_parquet.",
    )
    quality: QualitySettings | None = Field(
        default=None,
        description="Data-quality checks against the previous export: schema_change, "
        "max_row_drop, min_rows, each with a severity (warn or error).",
    )
    max_age: timedelta | None = Field(
        default=None,
        description="Freshness: the export is overdue when its last materialization is older "
        "than this (seconds, or e.g. 30m, 6h, 1d, 1d12h; at least 1 minute).",
    )

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, value: str | None) -> str | None:
        if value is None:
            return value
        normalized = " ".join(value.split())
        if not _is_valid_cron(normalized):
            raise ValueError(
                f"{value!r} is not a valid cron string (five fields such as '0 6 * * *', "
                "or @hourly/@daily/@weekly/@monthly)"
            )
        return normalized

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not an IANA timezone name such as UTC or America/New_York"
            ) from None
        return value

    @field_validator("max_age", mode="before")
    @classmethod
    def _parse_max_age(cls, value: Any) -> Any:
        age = value if value is None or isinstance(value, timedelta) else parse_duration(value)
        if age is not None and age < MIN_MAX_AGE:
            raise ValueError(f"{value!r} is shorter than Dagster's 1-minute freshness minimum")
        return age

    @field_validator("bucket")
    @classmethod
    def _valid_bucket(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not _BUCKET.match(value) or ".." in value or _is_ip(value):
            raise ValueError(
                f"{value!r} is not a valid S3 bucket name (3-63 lowercase letters, digits, dots or "
                "hyphens, starting and ending with a letter or digit)"
            )
        return value

    @field_validator("kms_key_id")
    @classmethod
    def _valid_kms_key(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if value.startswith("arn:"):
            if not _KMS_ARN.match(value):
                raise ValueError(
                    f"{value!r} is neither a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>) "
                    "nor an alias ARN (arn:aws:kms:<region>:<account>:alias/<name>)"
                )
        elif not _KMS_NAME.match(value):
            raise ValueError(f"{value!r} is not a KMS key id, alias/<name>, key ARN or alias ARN")
        return value

    @field_validator("bucket_owner", mode="before")
    @classmethod
    def _valid_bucket_owner(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            # YAML reads an unquoted id as a number: lossless only without leading zeros.
            if not _ACCOUNT_ID.match(str(value)):
                raise ValueError(
                    f"{value!r} is not an AWS account id (12 digits): quote it (e.g. "
                    "'012345678901'), as YAML drops the leading zeros of an unquoted number"
                )
            return str(value)
        if value is not None and not (isinstance(value, str) and _ACCOUNT_ID.match(value)):
            raise ValueError(f"{value!r} is not an AWS account id (12 digits)")
        return value

    @field_validator("region")
    @classmethod
    def _valid_region(cls, value: str | None) -> str | None:
        if value is not None and not _REGION.match(value):
            raise ValueError(f"{value!r} is not an AWS region name such as us-east-1")
        return value

    @field_validator("path")
    @classmethod
    def _clean_path(cls, value: str | None) -> str | None:
        if value is None:
            return value
        cleaned = value.strip().strip("/")
        if not cleaned:
            raise ValueError("path must be a non-empty S3 prefix")
        check_prefix_path(cleaned)
        return cleaned

    @field_validator("group")
    @classmethod
    def _valid_group(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"{value!r} is not a valid group name (letters, digits, underscores)")
        return value

    @field_validator("tags")
    @classmethod
    def _valid_tags(cls, value: dict[str, str]) -> dict[str, str]:
        for key, tag in value.items():
            if not _TAG_VALUE.match(str(tag)):
                raise ValueError(f"tag {key}={tag!r}: values are at most 63 letters, digits, _ . -")
        return value


class ExportConfig(ExportSettings):
    """One catalog entry: a DataSet export that becomes one asset."""

    name: str = Field(description="The asset's name (letters, digits, underscores).")
    dataset_id: str = Field(min_length=1, description="The Domo DataSet id.")
    dataset_name: str | None = Field(
        default=None, description="The DataSet's name in Domo, used to name its lineage node."
    )
    bucket: str = Field(description="Destination S3 bucket (must exist).")
    path: str = Field(description="S3 prefix; Domo writes <path>/<exportId>/export/.")
    region: str = Field(description="The bucket's AWS region.")
    partition: PartitionSettings | None = Field(
        default=None,
        description="Split the export into Dagster partitions (daily, monthly, static).",
    )

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"{value!r} is not a valid asset name (letters, digits, underscores)")
        return value

    @model_validator(mode="after")
    def _row_drop_unpartitioned(self) -> ExportConfig:
        if self.partition is not None and self.quality and self.quality.max_row_drop:
            raise ValueError(
                "quality.max_row_drop compares an export with the asset's previous one, which "
                "for a partitioned export is another partition's: remove it from this export"
            )
        return self

    @field_validator("dataset_id")
    @classmethod
    def _valid_dataset_id(cls, value: str) -> str:
        if value != value.strip() or "/" in value or " " in value:
            raise ValueError(f"{value!r} is not a Domo DataSet id")
        return value

    @property
    def dataset_key(self) -> str:
        """The name of the DataSet's lineage node."""
        return (
            _slug(self.dataset_name) if self.dataset_name else f"dataset_{_slug(self.dataset_id)}"
        )

    def to_query(self, partition_key: str | None = None) -> ExportQuery:
        """The typed export query this entry describes, for one partition if given."""
        conditions = tuple(c.to_condition() for c in self.where)
        if partition_key is not None and self.partition is not None:
            conditions += (self.partition.condition(partition_key),)
        return ExportQuery(
            columns=tuple(self.columns or ()),
            group_by=tuple(self.group_by),
            order_by=tuple(_order(entry) for entry in self.order_by),
            where=RowFilter(conditions),
        )

    def export_path(self, partition_key: str | None = None) -> str:
        """The S3 prefix, with the Hive-style partition segment when partitioned."""
        if partition_key is not None and self.partition is not None:
            return f"{self.path}/{self.partition.prefix(partition_key)}"
        return self.path

    def to_target(self, partition_key: str | None, dataset_columns: Sequence[str]) -> ExportTarget:
        """The request an export of this entry (and partition) must answer.

        Args:
            partition_key: The partition, for a partitioned entry.
            dataset_columns: The DataSet's columns, in order (exported when none are chosen).
        """
        return ExportTarget(
            dataset_id=self.dataset_id,
            bucket=self.bucket,
            path=self.export_path(partition_key),
            query=self.to_query(partition_key),
            columns=tuple(self.columns or dataset_columns),
            include_bom=self.include_bom,
            partition_key=partition_key,
        )


class SensorSettings(_Strict):
    """The catalog's optional ``sensor:`` section: how the DataSet change sensor polls Domo."""

    minimum_interval_seconds: int = Field(
        default=DEFAULT_SENSOR_INTERVAL_SECONDS,
        ge=1,
        description="Least seconds between two ticks (the daemon ticks at most every ~30 s).",
    )
    datasets_per_tick: int = Field(
        default=DEFAULT_DATASETS_PER_TICK,
        ge=1,
        description="Most DataSets read per tick; larger catalogs are read round-robin.",
    )
    export_on_first_tick: bool = Field(
        default=False,
        description="Export a DataSet the first time the sensor reads it (after a deploy, or "
        "when it is added to the catalog) instead of only recording its last-updated time.",
    )
    default_status: Literal["running", "stopped"] = Field(
        default="running",
        description="Whether the sensor runs as soon as the code location loads (a UI toggle "
        "overrides it).",
    )
    max_requests_per_minute: int = Field(
        default=DEFAULT_SENSOR_REQUESTS_PER_MINUTE,
        ge=1,
        description="Most Domo requests a minute the sensor may make (one per DataSet read): "
        "Domo recommends about 120. datasets_per_tick over minimum_interval_seconds must stay "
        "within it; raise it only if your instance allows more.",
    )

    @model_validator(mode="after")
    def _within_rate(self) -> SensorSettings:
        if self.requests_per_minute > self.max_requests_per_minute:
            raise ValueError(
                f"the sensor would read up to {self.datasets_per_tick} DataSets every "
                f"{self.minimum_interval_seconds} s, {self.requests_per_minute:g} Domo requests a "
                f"minute, above max_requests_per_minute ({self.max_requests_per_minute}; Domo "
                "recommends about 120): lower datasets_per_tick or raise "
                "minimum_interval_seconds (or raise max_requests_per_minute if your Domo "
                "instance allows more)"
            )
        return self

    @property
    def requests_per_minute(self) -> float:
        """The most Domo requests a minute the sensor makes (one per DataSet read)."""
        return self.datasets_per_tick * 60 / self.minimum_interval_seconds


class EntryOrigin(_Strict):
    """Where a catalog entry was declared, for messages that name it."""

    source: str = Field(description="The file it is declared in.")
    index: int = Field(description="Its position in that file's exports list.")
    name: str = Field(description="The export's name.")
    path_from_defaults: bool = Field(
        default=False, description="Whether its path comes from the file's defaults."
    )

    @property
    def label(self) -> str:
        """``<file>: export '<name>' (exports[<index>])``, as every catalog message names it."""
        return f"{self.source}: export {self.name!r} (exports[{self.index}])"


@dataclasses.dataclass(frozen=True)
class PrefixClaim:
    """One export's claim on its prefix, ``s3://<bucket>/<path>/`` (its partitions lie under it).

    Attributes:
        bucket: The destination bucket.
        path: The export's path.
        origin: Where the export is declared.
    """

    bucket: str
    path: str
    origin: EntryOrigin

    @property
    def uri(self) -> str:
        """``s3://<bucket>/<path>/``."""
        return prefix_uri(self.bucket, self.path)


class Catalog(_Strict):
    """A validated catalog."""

    source: str = Field(description="Where the catalog was read from.")
    exports: tuple[ExportConfig, ...] = Field(description="The exports, in file order.")
    origins: tuple[EntryOrigin, ...] = Field(
        description="Where each export is declared, one per export in the same order."
    )
    sensor: SensorSettings = Field(
        default_factory=SensorSettings, description="The DataSet change sensor's settings."
    )

    @property
    def prefix_claims(self) -> tuple[PrefixClaim, ...]:
        """Each export's claim on its prefix, in catalog order."""
        return tuple(
            PrefixClaim(export.bucket, export.path, origin)
            for export, origin in zip(self.exports, self.origins, strict=True)
        )

    def by_name(self, name: str) -> ExportConfig:
        """The export of that name."""
        for export in self.exports:
            if export.name == name:
                return export
        raise KeyError(name)


def check_credentials(catalog: Catalog, limits: CredentialLimits) -> None:
    """Refuse exports whose ``credentials:`` would widen what the ``aws_credentials`` resource
    allows (unscoped or long-lived credentials, ``mode: chain`` or ``static``, a longer
    ``duration_seconds``): the operator's settings win.

    Args:
        catalog: The validated catalog.
        limits: The resource's settings (``AwsCredentialsResource.limits``).

    Raises:
        CatalogError: Naming the file, the export and each refused field.
    """
    for export, origin in zip(catalog.exports, catalog.origins, strict=True):
        if export.credentials is None:
            continue
        refused = limits.refusals(export.credentials.to_overrides())
        if refused:
            raise CatalogError(f"{origin.label}: " + "; ".join(refused))


@functools.cache
def _is_valid_cron(cron: str) -> bool:
    """Whether Dagster accepts a cron string: the schedule it would build is the judge (Dagster
    exposes no public cron validator; ``ScheduleDefinition`` is public and validates it)."""
    try:
        ScheduleDefinition(name="cron_check", cron_schedule=cron, job_name="cron_check")
    except DagsterInvalidDefinitionError:
        return False
    return True


def load_catalog(path: str | Path, _seen: frozenset[Path] = frozenset()) -> Catalog:
    """Read and validate a catalog file, with the catalogs it ``include``s.

    Args:
        path: The YAML file.

    Returns:
        The validated catalog.

    Raises:
        CatalogError: The file is missing, malformed or invalid; the message says where.
    """
    path = Path(path)
    document = _read_yaml(path)
    included = _load_includes(document, path, _seen | {path.resolve()})
    return parse_catalog(document, source=str(path), included=included)


def _load_includes(document: Any, path: Path, seen: frozenset[Path]) -> tuple[Catalog, ...]:
    """The catalogs a catalog includes (paths relative to it; each with its own defaults)."""
    if not isinstance(document, Mapping) or "include" not in document:
        return ()
    names = document["include"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise CatalogError(f"{path}: field 'include': must be a list of catalog file names")
    catalogs: list[Catalog] = []
    for name in names:
        target = path.parent / name
        if target.resolve() in seen:
            raise CatalogError(f"{path}: field 'include': {name} includes itself")
        catalogs.append(load_catalog(target, seen))
    return tuple(catalogs)


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read the export catalog ({exc.strerror})") from None
    try:
        document = yaml.load(text, Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: not valid YAML: {exc}") from None
    return document


def parse_catalog(document: Any, source: str, included: Sequence[Catalog] = ()) -> Catalog:
    """Validate a decoded catalog document.

    Args:
        document: The decoded YAML.
        source: The file name, for messages.
        included: The catalogs it includes (already validated); their exports come first.

    Raises:
        CatalogError: The document is invalid, two exports share a name, or two exports'
            prefixes are equal or nested; the message names the file(s), the export(s) and the
            field.
    """
    if not isinstance(document, Mapping):
        raise CatalogError(f"{source}: the catalog must be a mapping with an 'exports:' list")
    unknown = set(document) - {"defaults", "exports", "sensor", "include"}
    if unknown:
        raise CatalogError(
            f"{source}: unknown top-level key(s) {sorted(unknown)}; only 'defaults', 'exports', "
            "'include' and 'sensor' are allowed"
        )
    defaults = _parse_defaults(document.get("defaults") or {}, source)
    sensor = _parse_sensor(document.get("sensor") or {}, source)
    entries = document.get("exports")
    if not isinstance(entries, list):
        raise CatalogError(f"{source}: 'exports' must be a list of exports")
    parsed = [_parse_export(entry, index, defaults, source) for index, entry in enumerate(entries)]
    exports = (
        *(export for catalog in included for export in catalog.exports),
        *(export for export, _ in parsed),
    )
    origins = (
        *(origin for catalog in included for origin in catalog.origins),
        *(origin for _, origin in parsed),
    )
    _check_unique_names(exports, origins)
    _check_dataset_names(exports, origins)
    _check_bucket_owners(exports, origins)
    _check_parquet_installed(exports, origins)
    catalog = Catalog(source=source, exports=exports, origins=origins, sensor=sensor)
    check_prefix_owners(catalog.prefix_claims)
    return catalog


def _parse_sensor(section: Any, source: str) -> SensorSettings:
    if not isinstance(section, Mapping):
        raise CatalogError(f"{source}: 'sensor' must be a mapping")
    try:
        return SensorSettings.model_validate(section)
    except ValidationError as exc:
        raise CatalogError(_describe(exc, source, "sensor")) from None


def _parse_defaults(defaults: Any, source: str) -> dict[str, Any]:
    if not isinstance(defaults, Mapping):
        raise CatalogError(f"{source}: 'defaults' must be a mapping")
    try:
        ExportSettings.model_validate(defaults)
    except ValidationError as exc:
        raise CatalogError(_describe(exc, source, "defaults")) from None
    return dict(defaults)


def _parse_export(
    entry: Any, index: int, defaults: Mapping[str, Any], source: str
) -> tuple[ExportConfig, EntryOrigin]:
    label = f"exports[{index}]"
    if not isinstance(entry, Mapping):
        raise CatalogError(f"{source}: {label} must be a mapping, not {type(entry).__name__}")
    if entry.get("name"):
        label = f"export {entry['name']!r} ({label})"
    try:
        export = ExportConfig.model_validate({**defaults, **entry})
    except ValidationError as exc:
        raise CatalogError(_describe(exc, source, label)) from None
    origin = EntryOrigin(
        source=source,
        index=index,
        name=export.name,
        path_from_defaults="path" not in entry and "path" in defaults,
    )
    return export, origin


def _describe(exc: ValidationError, source: str, label: str) -> str:
    problems = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "(entry)"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key (check its spelling against the README's catalog reference)"
        elif error["type"] == "missing":
            message = "required field is missing"
        problems.append(f"field '{field}': {message}")
    return f"{source}: {label}: " + "; ".join(problems)


def _check_unique_names(exports: Sequence[ExportConfig], origins: Sequence[EntryOrigin]) -> None:
    """Names are unique, across included catalogs too."""
    seen: dict[str, EntryOrigin] = {}
    for export, origin in zip(exports, origins, strict=True):
        first = seen.setdefault(export.name, origin)
        if first is not origin:
            raise CatalogError(
                f"{origin.label}: field 'name': duplicate of {first.label}; asset names must "
                "be unique"
            )


def _check_dataset_names(exports: Sequence[ExportConfig], origins: Sequence[EntryOrigin]) -> None:
    """Exports of one DataSet share its lineage node, so they must agree on its name."""
    keys: dict[str, tuple[str, EntryOrigin]] = {}
    for export, origin in zip(exports, origins, strict=True):
        key, first = keys.setdefault(export.dataset_id, (export.dataset_key, origin))
        if key != export.dataset_key:
            raise CatalogError(
                f"{origin.label}: field 'dataset_name': DataSet {export.dataset_id} is named "
                f"differently by {first.label}; give every export of it the same dataset_name"
            )


def _check_parquet_installed(
    exports: Sequence[ExportConfig], origins: Sequence[EntryOrigin]
) -> None:
    """An export asking for Parquet fails at load, not at its first run, without pyarrow."""
    first = next((o for e, o in zip(exports, origins, strict=True) if e.parquet), None)
    # Looked up once a catalog: find_spec searches sys.path, and a catalog may have 1,000 entries.
    if first is not None and importlib.util.find_spec(PARQUET_MODULE) is None:
        raise CatalogError(
            f"{first.label}: field 'parquet': Parquet output needs {PARQUET_MODULE}, which "
            f"is not installed: install the parquet extra ({PARQUET_INSTALL}), or remove "
            "parquet: true"
        )


def _check_bucket_owners(exports: Sequence[ExportConfig], origins: Sequence[EntryOrigin]) -> None:
    """A bucket belongs to one account: exports naming its owner must agree on it."""
    owners: dict[str, tuple[str, EntryOrigin]] = {}
    for export, origin in zip(exports, origins, strict=True):
        if export.bucket_owner is None:
            continue
        owner, first = owners.setdefault(export.bucket, (export.bucket_owner, origin))
        if owner != export.bucket_owner:
            raise CatalogError(
                f"{origin.label}: field 'bucket_owner': bucket {export.bucket} belongs to account "
                f"{owner} according to {first.label}, not {export.bucket_owner}; a bucket has one "
                "owner: give every export of it the same bucket_owner"
            )


def check_prefix_owners(claims: Sequence[PrefixClaim]) -> None:
    """Refuse two claims whose prefixes are equal or nested (``domo/x`` and ``domo/x/sub``).

    Sorted by ``<bucket>, <path>/``, every key between a prefix and one nested in it starts with
    that prefix, so a prefix's successor is nested in it whenever anything is: comparing
    neighbours finds an overlap if there is one, in O(n log n) for thousands of exports.

    Args:
        claims: The prefixes of every export that must not overlap.

    Raises:
        CatalogError: Naming both exports, the prefixes and what to do.
    """
    ordered = sorted(claims, key=lambda claim: (claim.bucket, f"{claim.path}/"))
    for outer, inner in itertools.pairwise(ordered):
        if outer.bucket == inner.bucket and f"{inner.path}/".startswith(f"{outer.path}/"):
            raise CatalogError(_overlap_message(outer, inner))


def _overlap_message(outer: PrefixClaim, inner: PrefixClaim) -> str:
    if inner.path == outer.path:
        where = f"{inner.uri} is also the prefix of {outer.origin.label}"
    else:
        where = f"{inner.uri} lies inside {outer.uri}, the prefix of {outer.origin.label}"
    from_defaults = [c.origin.name for c in (inner, outer) if c.origin.path_from_defaults]
    note = ""
    if len(from_defaults) == 2:
        note = " (both take their path from defaults)"
    elif from_defaults:
        note = f" ({from_defaults[0]!r} takes its path from defaults)"
    return (
        f"{inner.origin.label}: field 'path': {where}{note}. Each export must own its prefix: "
        "its _latest.json, Glue table and retention act on everything under it, so two exports "
        "there would replace or delete each other's data. Give each export a path of its own, "
        "neither equal to nor inside another export's (partitions lie under their export's path)"
    )


def parse_duration(value: Any) -> timedelta:
    """A duration from seconds (an int, or a string of digits) or units, e.g. ``30m``, ``1d12h``.

    Raises:
        ValueError: The value is not such a duration.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return timedelta(seconds=value)
    text = value.strip().lower() if isinstance(value, str) else ""
    if text.isdigit():
        return timedelta(seconds=int(text))
    match = _DURATION.match(text)
    if not text or match is None:
        raise ValueError(
            f"{value!r} is not a duration: give seconds, or a number with a unit such as 30m, "
            "6h, 1d or 1d12h (units w, d, h, m, s)"
        )
    return timedelta(
        **{u: int(n) for u, n in zip(_DURATION_UNITS, match.groups(), strict=True) if n}
    )


def _order(entry: str | OrderColumn) -> OrderBy:
    if isinstance(entry, str):
        return OrderBy(column=entry)
    return OrderBy(column=entry.column, descending=entry.direction == "desc")


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()
    return slug if slug and not slug[0].isdigit() else f"_{slug}"


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
