"""The export ledger: which Domo export each asset started, kept in the Dagster instance.

The runner records every export it starts as an ``AssetObservation`` of the export's asset
("Domo export <id> started", with the request's fingerprint), written at once to the instance's
event log through ``DagsterInstance.report_runless_asset_event``; it reads the latest back with
``DagsterInstance.fetch_observations``. Both are public API of the pinned Dagster and work on
every storage (SQLite, PostgreSQL, in-memory), so any process of the same instance (a retried
step, a re-executed run, a second ``dagster asset materialize``) finds the export a killed
process left running and attaches to it instead of starting another. The asset's latest
materialization (``fetch_materializations``) tells which export is already recorded and in
which run, so a step retry skips the exports an earlier attempt materialized.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from dagster import AssetKey, AssetObservation, AssetRecordsFilter, DagsterInstance

from domo_assets.domo.models import Export
from domo_assets.runner import StartRecord

STARTED_EXPORT_KEY = "domo/started_export_id"
REQUEST_KEY = "domo/request"
RUN_ID_KEY = "domo/run_id"
# How many of an asset's recorded starts are searched for the one that started an export.
REQUEST_LOOKBACK = 100
# How many of an asset's materializations retention reads to tell recorded exports from ones a
# run may be about to record.
RECORDED_LOOKBACK = 100
EXPORT_ID_KEY = "export_id"
"""The materialization metadata key naming the export (see ``metadata.py``)."""
MANIFEST_URI_KEY = "manifest_uri"
"""The materialization metadata key naming the export's ``_manifest.json``."""


@dataclass(frozen=True)
class Materialized:
    """The export an asset's latest materialization recorded, the run that recorded it, and
    the export's manifest (publication is read from it)."""

    export_id: str | None
    run_id: str
    manifest_uri: str | None = None


class InstanceLedger:
    """The ledger of one asset (and partition) in a Dagster instance.

    Args:
        instance: The Dagster instance.
        key: The export asset's key.
        partition_key: The partition, for a partitioned asset.
        run_id: The run recording starts.
    """

    def __init__(
        self, instance: DagsterInstance, key: AssetKey, partition_key: str | None, run_id: str
    ):
        self._instance = instance
        self._key = key
        self._partition_key = partition_key
        self._run_id = run_id
        self._filter = AssetRecordsFilter(
            asset_key=key,
            asset_partitions=[partition_key] if partition_key is not None else None,
        )

    def last_started(self) -> StartRecord | None:
        """The export this asset last started (in any process of the instance), if any."""
        for record in self._instance.fetch_observations(self._filter, limit=1).records:
            observation = record.asset_observation
            metadata = observation.metadata if observation is not None else {}
            export_id = metadata.get(STARTED_EXPORT_KEY)
            request = metadata.get(REQUEST_KEY)
            if export_id is None or request is None:
                return None
            run_id = metadata.get(RUN_ID_KEY)
            return StartRecord(
                export_id=str(export_id.value),
                request=str(request.value),
                recorded_at=datetime.fromtimestamp(record.timestamp, UTC),
                run_id=str(run_id.value) if run_id is not None else None,
            )
        return None

    def record_start(self, export: Export, request: str) -> None:
        """Record, durably and at once, that this asset started ``export`` for ``request``."""
        self._instance.report_runless_asset_event(
            AssetObservation(
                asset_key=self._key,
                partition=self._partition_key,
                description=f"Domo export {export.export_id} started",
                metadata={
                    STARTED_EXPORT_KEY: export.export_id,
                    REQUEST_KEY: request,
                    RUN_ID_KEY: self._run_id,
                },
            )
        )

    def request_of(self, export_id: str) -> str | None:
        """The request fingerprint this asset recorded when it started ``export_id`` (among its
        latest ``REQUEST_LOOKBACK`` starts), or None when it did not start it."""
        for record in self._instance.fetch_observations(
            self._filter, limit=REQUEST_LOOKBACK
        ).records:
            observation = record.asset_observation
            metadata = observation.metadata if observation is not None else {}
            started = metadata.get(STARTED_EXPORT_KEY)
            request = metadata.get(REQUEST_KEY)
            if started is not None and request is not None and started.value == export_id:
                return str(request.value)
        return None

    def recorded_exports(self, limit: int = RECORDED_LOOKBACK) -> frozenset[str]:
        """The export ids of the asset's latest ``limit`` materializations."""
        found = set()
        for record in self._instance.fetch_materializations(self._filter, limit=limit).records:
            materialization = record.asset_materialization
            export_id = materialization.metadata.get(EXPORT_ID_KEY) if materialization else None
            if export_id is not None:
                found.add(str(export_id.value))
        return frozenset(found)

    def last_materialized(self) -> str | None:
        """The export id the asset's latest materialization recorded, if any."""
        latest = self.latest_materialization()
        return latest.export_id if latest is not None else None

    def latest_materialization(self) -> Materialized | None:
        """The asset's latest materialization: its export id and run."""
        for record in self._instance.fetch_materializations(self._filter, limit=1).records:
            materialization = record.asset_materialization
            metadata = materialization.metadata if materialization is not None else {}
            export_id = metadata.get(EXPORT_ID_KEY)
            manifest = metadata.get(MANIFEST_URI_KEY)
            return Materialized(
                str(export_id.value) if export_id is not None else None,
                record.run_id,
                str(manifest.value) if manifest is not None else None,
            )
        return None
