"""First sightings of exports Domo lists without a start time, kept in the Dagster instance.

Domo's export list may hold an entry still ``exporting`` (or without a status, read as queued)
that gives no ``started`` time: a ghost of an export that never finished, or one just queued.
Its age, which decides when it is stale (``stale_export_after``), is counted from when this
project first saw it listed. That moment must outlive the run that saw it, or every run would
wait for the ghost again (for up to ``poll_timeout``) before its age ran out.

It is recorded on the DataSet's own node (its observable source asset, the export spec's only
dependency), since the entry may belong to no asset of this project: an ``AssetObservation``
written through ``DagsterInstance.report_runless_asset_event`` whose ``domo/first_seen``
metadata maps each such export id to when it was first seen, read back with
``DagsterInstance.fetch_observations``. Both are public API and work on every storage, so every
process of the same instance reads the same sightings.

The observation repeats the latest observation of the node (its data version tag, so Dagster's
view of the DataSet's version does not change, and its metadata), adding the sightings. The
change sensor's and the observe op's later observations carry none, so sightings are read from
the newest observation that has them among the node's latest ``SCAN_LIMIT``; a run that finds
them older than the latest observation writes them again. Bounded: the record lists only the
exports the list still shows active without a start time; sightings older than
``SCAN_LIMIT`` observations of the DataSet (a DataSet observed that often between two runs that
list the entry) are forgotten, and the entry counts as first seen again. A runner reads them
once per DataSet (``ExportRunner``), and writes only when it sees a new entry.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import datetime

from dagster import (
    AssetKey,
    AssetObservation,
    AssetRecordsFilter,
    DagsterInstance,
    EventLogRecord,
    MetadataValue,
)

FIRST_SEEN_KEY = "domo/first_seen"
"""The observation metadata holding ``{export id: ISO-8601 time first seen}``."""
SCAN_LIMIT = 100
"""How many of a DataSet node's latest observations are searched for the sightings."""


class InstanceSightings:
    """The first sightings of undated exports, per DataSet, in a Dagster instance.

    Args:
        instance: The Dagster instance.
        nodes: Gives the key of a DataSet's node from its id (``translator.dataset_node`` of an
            export spec); called only for a DataSet whose list shows such an entry.
    """

    def __init__(self, instance: DagsterInstance, nodes: Callable[[str], AssetKey]):
        self._instance = instance
        self._nodes = nodes

    def first_seen(
        self, dataset_id: str, export_ids: Collection[str], now: datetime
    ) -> Mapping[str, datetime]:
        """When each export was first seen listed; new ones are recorded as first seen ``now``.

        Args:
            dataset_id: The DataSet whose export list was read.
            export_ids: Every export the list shows active without a start time.
            now: The current time.
        """
        if not export_ids:
            return {}
        key = self._nodes(dataset_id)
        records = self._instance.fetch_observations(
            AssetRecordsFilter(asset_key=key), limit=SCAN_LIMIT
        ).records
        known = next((found for found in map(_sightings, records) if found is not None), {})
        seen = {export_id: known.get(export_id, now) for export_id in export_ids}
        latest = records[0] if records else None
        if latest is None or _sightings(latest) != seen:
            self._instance.report_runless_asset_event(_observation(key, latest, seen))
        return seen


def _sightings(record: EventLogRecord) -> dict[str, datetime] | None:
    """The sightings an observation records, or None when it records none (or unreadable ones:
    then the entries count as first seen again, never as older than they are)."""
    observation = record.asset_observation
    value = observation.metadata.get(FIRST_SEEN_KEY) if observation is not None else None
    document = value.value if value is not None else None
    if not isinstance(document, Mapping):
        return None
    try:
        return {str(k): datetime.fromisoformat(str(v)) for k, v in document.items()}
    except ValueError:
        return None


def _observation(
    key: AssetKey, latest: EventLogRecord | None, seen: Mapping[str, datetime]
) -> AssetObservation:
    """The latest observation of the node again (data version tag and metadata), with the
    sightings."""
    previous = latest.asset_observation if latest is not None else None
    metadata = dict(previous.metadata) if previous is not None else {}
    metadata[FIRST_SEEN_KEY] = MetadataValue.json(
        {export_id: when.isoformat() for export_id, when in sorted(seen.items())}
    )
    listed = ", ".join(f"{i} (first seen {w.isoformat()})" for i, w in sorted(seen.items()))
    return AssetObservation(
        asset_key=key,
        description=(
            f"Domo lists {len(seen)} export(s) of this DataSet as running without a start time: "
            f"{listed}. Each is stale once stale_export_after has passed since then"
        ),
        metadata=metadata,
        tags=dict(previous.tags) if previous is not None and previous.tags else None,
    )
