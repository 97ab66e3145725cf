"""The record of one finished export: what Domo did, what landed in S3, what to compare with.

Plain Python: the asset layer turns an :class:`ExportOutcome` into events, and its checks'
verdicts (``verdicts.py``) decide whether it is recorded as the asset's data at all.
"""

from __future__ import annotations

from dataclasses import dataclass

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
from domo_assets.s3.kms import ExportKey
from domo_assets.s3.manifest import ExportManifest, ManifestFile
from domo_assets.s3.storage import StoredObject
from domo_assets.s3.target import ExportTarget
from domo_assets.s3.verify import HeaderRead, VerificationReport


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
    """The ``_manifest.json`` written for it (verified exports only)."""
    redshift_manifest_uri: str | None = None
    """The ``_redshift_manifest.json`` written beside it (verified exports only)."""
    verification: VerificationReport | None = None
    """The deep verification, for exports with ``verify: deep`` whose objects are all there."""
    credentials: CredentialGrant | None = None
    """The credentials handed to Domo, when this run sent the export request."""
    kms_key: ExportKey | None = None
    """The KMS key Domo's files are encrypted with (the export's, or the bucket's default)."""

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

    @property
    def exported_schema(self) -> tuple[DataSetColumn, ...]:
        """The columns in the files, in order, with the DataSet's types (STRING if unknown)."""
        by_name = {c.name: c for c in self.columns}
        return tuple(
            by_name.get(name, DataSetColumn(name, "STRING")) for name in self.exported_columns
        )

    def to_manifest(self) -> ExportManifest:
        """The record of this export that the S3 layer writes and publishes from."""
        stored = {s.reported.uri: s for s in self.stored}
        return ExportManifest(
            export_id=self.export.export_id,
            dataset_id=self.target.dataset_id,
            dataset_name=self.dataset.name,
            partition_key=self.target.partition_key,
            query=self.target.query_document,
            include_bom=self.target.include_bom,
            request=self.target.fingerprint,
            schema=self.exported_schema,
            compression=self.export.compression,
            files=tuple(
                ManifestFile(
                    uri=obj.uri,
                    bucket=obj.bucket,
                    key=obj.key,
                    rows=obj.row_count,
                    bytes=stored[obj.uri].size if obj.uri in stored else None,
                    etag=stored[obj.uri].etag if obj.uri in stored else None,
                )
                for obj in self.objects
            ),
            started=self.export.started,
            finished=self.export.finished,
            copied_from=self.copied_from,
        )
