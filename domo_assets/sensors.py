"""The DataSet change sensor: export what changed in Domo, and only that.

One sensor watches every DataSet of the catalog. Each tick reads the metadata of up to
``datasets_per_tick`` DataSets (round-robin from an offset kept in the cursor), compares each
one's last-updated time with the one in the cursor, and requests one run of every export of
every DataSet that changed. It records an ``AssetObservation`` of the DataSet's asset
(``domo/<dataset>``) with the last-updated time as its data version, so the UI shows when the
source changed and marks its exports stale.

The DataSet assets are observable source assets (:func:`build_dataset_assets`, the same specs as
``assets.build_dataset_specs`` plus an observe function reading the same last-updated time):
Dagster's staleness only reads observations of *observable* source assets, so on a plain
external ``AssetSpec`` the sensor's data versions would be recorded as each export's input but
ignored as the DataSet's current version, and every export would look "Unsynced" forever.

A DataSet the sensor reads for the first time (first tick after deploy, or newly added to the
catalog) is only recorded, not exported, unless the catalog's ``sensor: export_on_first_tick``
says otherwise. A Domo error skips the tick, naming the DataSet and Domo's answer, and leaves
the cursor as it was: the next tick reads the same DataSets again.
"""

import hashlib
import json
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Self

from dagster import (
    AssetKey,
    AssetObservation,
    AssetsDefinition,
    AssetSpec,
    BetaWarning,
    DataVersion,
    DefaultSensorStatus,
    MetadataValue,
    ObserveResult,
    OpExecutionContext,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    multi_observable_source_asset,
    sensor,
)

from domo_assets.assets import DOMO_RESOURCE_KEY, step_domo
from domo_assets.catalog import SensorSettings
from domo_assets.dagster_names import DATA_VERSION_TAG, IMPLICIT_ASSET_JOB_NAME
from domo_assets.domo.errors import DomoError
from domo_assets.domo.models import DataSetMetadata
from domo_assets.translator import DomoMetadataSet, DomoSpecs, dataset_node, export_config

if TYPE_CHECKING:
    from domo_assets.domo.client import DomoClient

SENSOR_NAME = "domo_dataset_change_sensor"
OBSERVE_OP_NAME = "domo_datasets"
CURSOR_VERSION = 1
RUN_KEY_PREFIX = "domo_changes_"
CHANGED_DATASETS_TAG = "domo_assets/changed_datasets"
_STATUSES = {"running": DefaultSensorStatus.RUNNING, "stopped": DefaultSensorStatus.STOPPED}


@dataclass(frozen=True)
class ChangeCursor:
    """What the sensor remembers between ticks (stored as JSON in the sensor's cursor).

    Attributes:
        versions: DataSet id -> its last-updated time (ISO 8601, UTC) when last read; ``None``
            when Domo reported none. A DataSet absent here has never been read.
        offset: Where the next tick starts in the sorted list of the catalog's DataSet ids.
    """

    versions: Mapping[str, str | None] = field(default_factory=dict)
    offset: int = 0

    @classmethod
    def from_json(cls, text: str | None) -> Self:
        """Parse a stored cursor; an empty, foreign or unreadable one starts afresh."""
        try:
            data = json.loads(text) if text else {}
        except ValueError:
            return cls()
        if not isinstance(data, dict) or data.get("version") != CURSOR_VERSION:
            return cls()
        versions = data.get("last_updated")
        offset = data.get("offset")
        return cls(
            versions=dict(versions) if isinstance(versions, dict) else {},
            offset=offset if isinstance(offset, int) and offset >= 0 else 0,
        )

    def to_json(self) -> str:
        """The cursor as stored: compact, keys sorted (so equal cursors are equal strings)."""
        return json.dumps(
            {"version": CURSOR_VERSION, "offset": self.offset, "last_updated": self.versions},
            sort_keys=True,
            separators=(",", ":"),
        )


@dataclass(frozen=True)
class DataSetReading:
    """One DataSet's metadata as one tick read it.

    Attributes:
        dataset_id: The DataSet id.
        version: Its last-updated time as ISO 8601 UTC, or None when Domo reports none.
        metadata: What Domo said about it.
        first_seen: The cursor had no entry for it.
        changed: Its last-updated time differs from the cursor's.
    """

    dataset_id: str
    version: str | None
    metadata: DataSetMetadata
    first_seen: bool
    changed: bool


@dataclass(frozen=True)
class DataSetExports:
    """What the sensor needs of one watched DataSet, from the translated specs.

    Attributes:
        dataset_key: The key of the DataSet's node (observed on each change).
        dataset_name: The DataSet's name in the catalog, for messages.
        export_keys: The exports requested when it changes (partitioned ones are left out: a
            run request of them would need a partition key).
    """

    dataset_key: AssetKey
    dataset_name: str | None
    export_keys: tuple[AssetKey, ...]


def build_change_sensor(
    specs: DomoSpecs, *, name: str = SENSOR_NAME, resource_key: str = DOMO_RESOURCE_KEY
) -> SensorDefinition:
    """The sensor that exports each DataSet's exports when the DataSet changes in Domo.

    Args:
        specs: The translated catalog; its ``sensor:`` section sets interval, budget,
            first-tick behaviour and default status. Partitioned exports are left out of run
            requests (a run request of them would need a partition key; backfill them instead).
        name: The sensor's name.
        resource_key: The key of the Domo resource a tick reads with (Dagster initializes it
            for the tick and tears it down after).

    Returns:
        The sensor.
    """
    settings = specs.catalog.sensor
    exports = exports_by_dataset(specs)
    dataset_ids = sorted(exports)

    def _change_sensor(context: SensorEvaluationContext) -> SensorResult | SkipReason:
        domo = step_domo(context, resource_key)
        cursor = ChangeCursor.from_json(context.cursor)
        window, next_offset = tick_window(dataset_ids, cursor.offset, settings.datasets_per_tick)
        try:
            client = domo.get_client(log=context.log)
            readings = read_datasets(client, window, cursor, exports)
        except (DataSetReadError, DomoError) as exc:
            reason = str(exc) if isinstance(exc, DataSetReadError) else f"Cannot use Domo: {exc}"
            context.log.warning(reason)
            return SkipReason(reason)
        next_cursor = ChangeCursor(_updated_versions(cursor, readings, exports), next_offset)
        result = tick_result(readings, next_cursor, exports, settings)
        for request in result.run_requests or ():
            context.log.info(f"Changed in Domo: {request.tags[CHANGED_DATASETS_TAG]}")
        return result

    return sensor(
        name=name,
        # Runs of Dagster's implicit asset job, like the UI's Materialize: a job of its own
        # (what `target=AssetSelection` builds) costs the code location 0.2 s at every load.
        job_name=IMPLICIT_ASSET_JOB_NAME,
        minimum_interval_seconds=settings.minimum_interval_seconds,
        default_status=_STATUSES[settings.default_status],
        description=(
            f"Reads up to {settings.datasets_per_tick} of the catalog's {len(dataset_ids)} Domo "
            "DataSets per tick and exports those whose last-updated time changed."
        ),
        required_resource_keys={resource_key},
    )(_change_sensor)


def build_dataset_assets(
    specs: DomoSpecs,
    *,
    name: str = OBSERVE_OP_NAME,
    resource_key: str = DOMO_RESOURCE_KEY,
    dataset_specs: Sequence[AssetSpec] | None = None,
) -> AssetsDefinition:
    """The catalog's Domo DataSets as observable source assets (one multi-asset).

    The translator's DataSet specs; observing one (the UI's "Observe" button, or a run that
    selects it) reads its last-updated time from Domo as its data version, exactly as the change
    sensor records it.

    Args:
        specs: The translated catalog.
        name: The op's name.
        resource_key: The key of the Domo resource the op reads with.
        dataset_specs: The DataSet nodes this op defines (default: all of the catalog's); a
            node another catalog of the project defines is left to it (``ownership.py``).
    """
    nodes = list(specs.datasets if dataset_specs is None else dataset_specs)
    dataset_ids = {s.key: DomoMetadataSet.extract(s.metadata).dataset_id for s in nodes}
    with warnings.catch_warnings():
        # multi_observable_source_asset is beta in dagster 1.13; we pin dagster exactly.
        warnings.simplefilter("ignore", BetaWarning)
        decorator = multi_observable_source_asset(
            name=name,
            specs=nodes,
            can_subset=True,
            description="Reads each Domo DataSet's last-updated time as its data version.",
            required_resource_keys={resource_key},
        )

    def _observe(context: OpExecutionContext) -> Iterator[ObserveResult]:
        client = step_domo(context, resource_key).get_client(log=context.log)
        for key in sorted(context.selected_asset_keys, key=lambda k: k.to_user_string()):
            metadata = client.get_dataset(dataset_ids[key])
            version = _version(metadata.last_updated)
            yield ObserveResult(
                asset_key=key,
                data_version=DataVersion(version) if version is not None else None,
                metadata=_observation_metadata(dataset_ids[key], metadata),
            )

    return decorator(_observe)


def tick_window(dataset_ids: Sequence[str], offset: int, size: int) -> tuple[list[str], int]:
    """The DataSets one tick reads, round-robin, and where the next tick starts.

    Args:
        dataset_ids: Every DataSet id, in a stable order.
        offset: Where this tick starts (taken modulo the number of DataSets).
        size: The most DataSets to read.

    Returns:
        The ids to read and the next offset.
    """
    if not dataset_ids:
        return [], 0
    start = offset % len(dataset_ids)
    count = min(size, len(dataset_ids))
    window = [dataset_ids[(start + i) % len(dataset_ids)] for i in range(count)]
    return window, (start + count) % len(dataset_ids)


class DataSetReadError(Exception):
    """Domo could not be read; the message names the DataSet and what Domo answered."""


def read_datasets(
    client: "DomoClient",
    dataset_ids: Sequence[str],
    cursor: ChangeCursor,
    exports: Mapping[str, DataSetExports],
) -> list[DataSetReading]:
    """Read each DataSet's metadata and compare it with the cursor.

    Args:
        client: The Domo client.
        dataset_ids: The DataSets to read.
        cursor: The stored cursor.
        exports: The catalog's exports of each DataSet (for names in messages).

    Raises:
        DataSetReadError: Domo failed for one of them (nothing of this tick is kept).
    """
    readings = []
    for dataset_id in dataset_ids:
        try:
            metadata = client.get_dataset(dataset_id)
        except DomoError as exc:
            name = exports[dataset_id].dataset_name if dataset_id in exports else None
            raise DataSetReadError(
                f"Could not read Domo DataSet {dataset_id}"
                + (f" ({name})" if name else "")
                + f": {exc}. Nothing was exported and the cursor is unchanged: the next tick "
                "reads the same DataSets again."
            ) from exc
        version = _version(metadata.last_updated)
        first_seen = dataset_id not in cursor.versions
        readings.append(
            DataSetReading(
                dataset_id=dataset_id,
                version=version,
                metadata=metadata,
                first_seen=first_seen,
                changed=not first_seen
                and version is not None
                and version != cursor.versions[dataset_id],
            )
        )
    return readings


def tick_result(
    readings: Sequence[DataSetReading],
    cursor: ChangeCursor,
    exports: Mapping[str, DataSetExports],
    settings: SensorSettings,
) -> SensorResult:
    """The tick's run request (if anything changed), observations and new cursor.

    Args:
        readings: What this tick read.
        cursor: The cursor to store.
        exports: The catalog's exports of each DataSet.
        settings: The sensor settings.
    """
    to_export = [
        r for r in readings if r.changed or (r.first_seen and settings.export_on_first_tick)
    ]
    observations = [
        _observation(r, r.version, exports[r.dataset_id].dataset_key)
        for r in readings
        if (r.first_seen or r.changed) and r.version is not None
    ]
    request = _run_request(to_export, exports)
    if request is None:
        return SensorResult(
            skip_reason=_quiet_reason(readings, to_export),
            cursor=cursor.to_json(),
            asset_events=observations,
        )
    return SensorResult(run_requests=[request], cursor=cursor.to_json(), asset_events=observations)


def _run_request(
    to_export: Sequence[DataSetReading],
    exports: Mapping[str, DataSetExports],
) -> RunRequest | None:
    keys = sorted(
        {key for r in to_export for key in exports[r.dataset_id].export_keys},
        key=lambda key: key.to_user_string(),
    )
    if not keys:
        return None
    changes = sorted(f"{r.dataset_id}={r.version}" for r in to_export)
    digest = hashlib.sha256("\n".join(changes).encode()).hexdigest()[:24]
    return RunRequest(
        run_key=f"{RUN_KEY_PREFIX}{digest}",
        asset_selection=keys,
        tags={CHANGED_DATASETS_TAG: ",".join(sorted(r.dataset_id for r in to_export))},
    )


def _observation(reading: DataSetReading, version: str, key: AssetKey) -> AssetObservation:
    return AssetObservation(
        asset_key=key,
        description="First read by the change sensor" if reading.first_seen else "Changed in Domo",
        metadata=_observation_metadata(reading.dataset_id, reading.metadata),
        tags={DATA_VERSION_TAG: version},
    )


def _observation_metadata(dataset_id: str, metadata: DataSetMetadata) -> dict[str, MetadataValue]:
    values: dict[str, MetadataValue] = {"domo/dataset_id": MetadataValue.text(dataset_id)}
    if metadata.last_updated is not None:
        values["domo/last_updated"] = MetadataValue.timestamp(metadata.last_updated)
    if metadata.row_count is not None:
        values["dagster/row_count"] = MetadataValue.int(metadata.row_count)
    return values


def _quiet_reason(readings: Sequence[DataSetReading], to_export: Sequence[DataSetReading]) -> str:
    if to_export:
        return (
            f"{len(to_export)} DataSet(s) changed, but all their exports are partitioned: "
            "nothing requested (backfill the partitions to export them)."
        )
    if any(r.first_seen for r in readings):
        first = sum(r.first_seen for r in readings)
        return (
            f"Recorded the last-updated time of {first} DataSet(s) read for the first time; "
            "nothing exported (sensor: export_on_first_tick is false)."
        )
    return f"Read {len(readings)} DataSet(s): none changed."


def _updated_versions(
    cursor: ChangeCursor,
    readings: Sequence[DataSetReading],
    exports: Mapping[str, DataSetExports],
) -> dict[str, str | None]:
    """The cursor's versions with this tick's readings, forgetting DataSets no longer listed."""
    versions = {k: v for k, v in cursor.versions.items() if k in exports}
    versions.update({r.dataset_id: r.version for r in readings})
    return versions


def exports_by_dataset(specs: DomoSpecs) -> dict[str, DataSetExports]:
    """Each watched DataSet (by id) with its node and its requestable exports (and their
    Parquet assets, which follow their exports)."""
    nodes: dict[str, tuple[AssetKey, str | None]] = {}
    keys: dict[str, list[AssetKey]] = {}
    for spec in (*specs.exports, *specs.parquets):
        config = export_config(spec)
        if config.dataset_id not in nodes:
            # Exports come first: a Parquet spec depends on its export, not on the DataSet.
            nodes[config.dataset_id] = (dataset_node(spec), config.dataset_name)
            keys[config.dataset_id] = []
        if spec.partitions_def is None:
            keys[config.dataset_id].append(spec.key)
    return {
        dataset_id: DataSetExports(node, name, tuple(keys[dataset_id]))
        for dataset_id, (node, name) in nodes.items()
    }


def _version(last_updated: datetime | None) -> str | None:
    return None if last_updated is None else last_updated.isoformat(timespec="milliseconds")
