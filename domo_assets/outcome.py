"""The record of one finished export: what Domo did, what landed in S3, what to compare with.

Plain Python: the asset layer turns an :class:`ExportOutcome` into events, and its checks'
verdicts (``verdicts.py``) decide whether it is recorded as the asset's data at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from domo_assets.catalog import ExportConfig
from domo_assets.domo.models import (
    DataSetColumn,
    DataSetMetadata,
    DomoUser,
    Export,
    S3Object,
    StartOutcome,
)
from domo_assets.s3.credentials import CredentialGrant
from domo_assets.s3.guard import DestinationReport
from domo_assets.s3.storage import StoredObject
from domo_assets.s3.target import ExportTarget
from domo_assets.s3.verify import HeaderRead, VerificationReport

if TYPE_CHECKING:
    from domo_assets.publish import Publication


@dataclass(frozen=True)
class ExportOutcome:
    """Everything known about one finished export."""

    config: ExportConfig
    target: ExportTarget
    """The request the export must answer."""
    dataset: DataSetMetadata
    columns: tuple[DataSetColumn, ...]
    """The DataSet's schema."""
    export: Export
    outcome: StartOutcome
    objects: tuple[S3Object, ...]
    """The files recorded as this asset's: Domo's, or copies of them under this asset's prefix."""
    stored: tuple[StoredObject, ...]
    """``objects`` as S3 sees them."""
    expected_rows: int | None
    """Rows the same token can see for the same filter; None for grouped exports."""
    destination: DestinationReport
    header: HeaderRead | None = None
    """The first object's header row, when it could be read."""
    header_problem: str | None = None
    """Why the header could not be read, when it could not."""
    copied_from: tuple[str, ...] = ()
    """Source URIs, when Domo handed back another request's export and it was copied."""
    acting_user: DomoUser | None = None
    manifest_uri: str | None = None
    verification: VerificationReport | None = None
    """The deep verification, for exports with ``verify: deep`` whose objects are all there."""
    credentials: CredentialGrant | None = None
    """The credentials handed to Domo, when this run sent the export request."""
    publication: Publication | None = None
    """What made the verified export current (pointer, Glue table, retention)."""

    @property
    def partition_key(self) -> str | None:
        """The partition exported, for a partitioned asset."""
        return self.target.partition_key

    @property
    def path(self) -> str:
        """The S3 prefix this export belongs under."""
        return self.target.path

    @property
    def row_count(self) -> int:
        """Data rows Domo reports in the recorded files."""
        return sum(obj.row_count for obj in self.objects)

    @property
    def reused_previous_export(self) -> bool:
        """Domo returned its previous export because the data had not changed."""
        return self.outcome == StartOutcome.REUSED_PREVIOUS

    @property
    def exported_columns(self) -> tuple[str, ...]:
        """The columns in the files, in order."""
        return self.target.columns
