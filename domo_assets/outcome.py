"""The record of one finished export: what Domo did, what landed in S3, what to compare with."""

from __future__ import annotations

from dataclasses import dataclass

from domo_assets.catalog import ExportConfig
from domo_assets.guard import DestinationReport
from domo_assets.models import DataSetColumn, DataSetMetadata, DomoUser, Export, StartOutcome
from domo_assets.storage import StoredObject
from domo_assets.verify import VerificationReport


@dataclass(frozen=True)
class ExportOutcome:
    """Everything known about one finished export."""

    config: ExportConfig
    dataset: DataSetMetadata
    columns: tuple[DataSetColumn, ...]
    export: Export
    outcome: StartOutcome
    stored: tuple[StoredObject, ...]
    expected_rows: int | None
    """Rows the same token can see for the same filter; None for grouped exports."""
    destination: DestinationReport
    acting_user: DomoUser | None = None
    partition_key: str | None = None
    manifest_uri: str | None = None
    verification: VerificationReport | None = None
    """The deep verification, for exports with ``verify: deep`` whose objects are all there."""

    @property
    def path(self) -> str:
        """The S3 prefix this export was written under."""
        return self.config.export_path(self.partition_key)

    @property
    def reused_previous_export(self) -> bool:
        """Domo returned its previous export because the data had not changed."""
        return self.outcome == StartOutcome.REUSED_PREVIOUS

    @property
    def exported_columns(self) -> tuple[str, ...]:
        """The columns in the files, in order."""
        return tuple(self.config.columns or (c.name for c in self.columns))
