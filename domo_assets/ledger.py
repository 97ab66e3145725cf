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

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from dagster import (
    AssetKey,
    AssetObservation,
    AssetRecordsFilter,
    DagsterInstance,
    EventLogRecord,
)

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
        shared: Reads the latest materialization of many assets at once (a step's ledgers
            share it); used for an unpartitioned asset.
    """

    def __init__(
        self,
        instance: DagsterInstance,
        key: AssetKey,
        partition_key: str | None,
        run_id: str,
        shared: LatestMaterializations | None = None,
    ):
        self._instance = instance
        self._shared = shared if partition_key is None else None
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
        records = self._instance.fetch_materializations(self._filter, limit=limit).records
        return frozenset(
            m.export_id for m in map(_materialized, records) if m.export_id is not None
        )

    def last_materialized(self) -> str | None:
        """The export id the asset's latest materialization recorded, if any."""
        latest = self.latest_materialization()
        return latest.export_id if latest is not None else None

    def latest_materialization(self) -> Materialized | None:
        """The asset's latest materialization: its export id and run."""
        if self._shared is not None:
            return self._shared.latest(self._key)
        for record in self._instance.fetch_materializations(self._filter, limit=1).records:
            return _materialized(record)
        return None


def _materialized(record: EventLogRecord) -> Materialized:
    """The export, run and manifest a materialization record names."""
    materialization = record.asset_materialization
    metadata = materialization.metadata if materialization is not None else {}
    export_id = metadata.get(EXPORT_ID_KEY)
    manifest = metadata.get(MANIFEST_URI_KEY)
    return Materialized(
        str(export_id.value) if export_id is not None else None,
        record.run_id,
        str(manifest.value) if manifest is not None else None,
    )


class LatestMaterializations:
    """The latest materialization of unpartitioned assets, read for many callers at once.

    A step's publications each check that Dagster recorded their export before publishing it.
    One storage read per check would queue, on SQLite, behind every other check and the step's
    own event writes (one lock per process); here the callers that arrive while a read is under
    way are answered together by the next one (``get_asset_records``, one read for all their
    assets). Each caller's answer comes from a read that began after it asked, so it sees every
    record stored before it asked.

    Args:
        instance: The Dagster instance.
    """

    def __init__(self, instance: DagsterInstance) -> None:
        self._instance = instance
        self._changed = threading.Condition()
        self._queued: set[AssetKey] = set()
        self._answers: dict[AssetKey, Materialized | None] = {}
        self._reading = False
        # Reads are numbered: a caller waits for the first read numbered after its arrival.
        self._next_read = 0
        self._last_read = -1

    def latest(self, key: AssetKey) -> Materialized | None:
        """The asset's latest materialization, as recorded when this was called, or later."""
        with self._changed:
            self._queued.add(key)
            mine = self._next_read
            while self._last_read < mine:
                if self._reading:
                    self._changed.wait()
                    continue
                self._read_queued()
            return self._answers[key]

    def _read_queued(self) -> None:
        """Read every queued asset's latest materialization (called holding the condition)."""
        keys, self._queued = sorted(self._queued, key=str), set()
        number, self._next_read = self._next_read, self._next_read + 1
        self._reading = True
        self._changed.release()
        try:
            answers = self._read(keys)
        except BaseException:
            with self._changed:
                # The callers still waiting for these assets are answered by the next read.
                self._queued.update(keys)
            raise
        finally:
            self._changed.acquire()
            self._reading = False
            self._changed.notify_all()
        self._answers.update(answers)
        self._last_read = number

    def _read(self, keys: Sequence[AssetKey]) -> dict[AssetKey, Materialized | None]:
        found: dict[AssetKey, Materialized | None] = dict.fromkeys(keys)
        for record in self._instance.get_asset_records(keys):
            latest = record.asset_entry.last_materialization_record
            if latest is not None:
                found[record.asset_entry.asset_key] = _materialized(latest)
        return found
