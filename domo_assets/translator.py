"""From catalog entries to Dagster asset specs: the translator, and the metadata that maps back.

Like ``DagsterFivetranTranslator``: :class:`DagsterDomoTranslator` turns each export's
:class:`DomoExportProps` into an ``AssetSpec`` (key, group, description, kinds, freshness...) and
each Domo DataSet into the spec of its lineage node. Subclass it to choose other keys or groups
(or use a component's ``translation``). Every spec carries :class:`DomoMetadataSet` (``domo/...``
metadata), which names the catalog entry it stands for: the assets, the sensor, the schedules and
``DomoResource.export_and_poll`` find an entry from its spec, never by rebuilding a key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dagster import (
    AssetKey,
    AssetSpec,
    FreshnessPolicy,
    MetadataValue,
    PartitionsDefinition,
)

from domo_assets.catalog import DATASET_KEY_PREFIX, DEFAULT_TIMEZONE, Catalog, ExportConfig
from domo_assets.s3.target import prefix_uri

DATASET_KEY_SUFFIX = "_dataset"
KIND_DOMO = "domo"
KIND_S3 = "s3"
KIND_PARQUET = "parquet"
PARQUET_SUFFIX = "_parquet"
PARQUET_ASSET_KEY = "domo/parquet_asset"
"""Export spec metadata: the key of its Parquet asset (``parquet: true``)."""
METADATA_NAMESPACE = "domo"


@dataclass(frozen=True)
class DomoMetadataSet:
    """The ``domo/...`` metadata every spec of this integration carries.

    Attributes:
        dataset_id: The Domo DataSet.
        export: The catalog entry, for an export's spec (None on a DataSet's spec). It is kept
            as the object itself, like dagster-fivetran keeps its translator in spec metadata:
            free at load time, there in the run worker, and shown in the UI only by its type.
    """

    dataset_id: str
    export: ExportConfig | None = None

    DATASET_ID_KEY = f"{METADATA_NAMESPACE}/dataset_id"
    EXPORT_NAME_KEY = f"{METADATA_NAMESPACE}/export_name"
    EXPORT_CONFIG_KEY = f"{METADATA_NAMESPACE}/export_config"

    def to_metadata(self) -> dict[str, Any]:
        """The metadata entries."""
        metadata: dict[str, Any] = {self.DATASET_ID_KEY: self.dataset_id}
        if self.export is not None:
            metadata[self.EXPORT_NAME_KEY] = self.export.name
            metadata[self.EXPORT_CONFIG_KEY] = self.export
        return metadata

    @classmethod
    def extract(cls, metadata: Mapping[str, Any]) -> DomoMetadataSet:
        """Read the set back from a spec's metadata.

        Raises:
            KeyError: The metadata is not a domo_assets spec's.
        """
        export = metadata.get(cls.EXPORT_CONFIG_KEY)
        return cls(
            dataset_id=str(_plain(metadata[cls.DATASET_ID_KEY])),
            export=export if isinstance(export, ExportConfig) else None,
        )


@dataclass(frozen=True)
class DomoExportProps:
    """What the translator knows of one export.

    Attributes:
        config: The validated catalog entry.
        dataset_key: The key of its DataSet's node (the spec's dependency).
        partitions_def: Its partitions, for a partitioned export.
    """

    config: ExportConfig
    dataset_key: AssetKey
    partitions_def: PartitionsDefinition | None = None


class DagsterDomoTranslator:
    """Translates catalog entries into asset specs; subclass to customize keys, groups, tags.

    The default keys: an export is ``[name]``; its DataSet's node is
    ``domo/<dataset_name>_dataset`` (the suffix keeps a DataSet's node apart from an export named
    like it, since the UI labels nodes with a key's last part).
    """

    def get_asset_spec(self, props: DomoExportProps) -> AssetSpec:
        """The spec of one export asset, downstream of its DataSet's node."""
        config = props.config
        destination = prefix_uri(config.bucket, config.path)
        metadata: dict[str, Any] = {
            **DomoMetadataSet(config.dataset_id, config).to_metadata(),
            "dagster/uri": destination,
            "s3/region": config.region,
            # A JSON string would show in the UI as "all", quotes included.
            "columns": (
                MetadataValue.json(list(config.columns))
                if config.columns
                else MetadataValue.text("all")
            ),
        }
        if config.schedule:
            # Schedules run Dagster's implicit asset job, so the asset page names its cron here.
            metadata["domo/schedule"] = f"{config.schedule} ({config.timezone or DEFAULT_TIMEZONE})"
        return AssetSpec(
            key=AssetKey([config.name]),
            deps=[props.dataset_key],
            partitions_def=props.partitions_def,
            description=config.description or _default_description(config, destination),
            group_name=config.group,
            owners=config.owners,
            tags=config.tags,
            kinds={KIND_DOMO, KIND_S3},
            metadata=metadata,
            freshness_policy=(
                FreshnessPolicy.time_window(fail_window=config.max_age) if config.max_age else None
            ),
        )

    def get_parquet_spec(self, props: DomoExportProps, export: AssetSpec) -> AssetSpec:
        """The spec of an export's Parquet asset (``parquet: true``), downstream of it.

        Args:
            props: The export's props.
            export: The export's own spec (as this translator made it).
        """
        config = props.config
        *parent, last = export.key.path
        return AssetSpec(
            key=AssetKey([*parent, f"{last}{PARQUET_SUFFIX}"]),
            deps=[export.key],
            partitions_def=props.partitions_def,
            description=f"The verified export {export.key.to_user_string()} as Parquet, beside "
            f"it under {prefix_uri(config.bucket, config.path)}<exportId>/parquet/.",
            group_name=export.group_name,
            owners=export.owners,
            tags=export.tags,
            kinds={KIND_S3, KIND_PARQUET},
            metadata=DomoMetadataSet(config.dataset_id, config).to_metadata(),
        )

    def get_dataset_spec(self, config: ExportConfig) -> AssetSpec:
        """The spec of the lineage node standing for a Domo DataSet (called with the first
        catalog entry that exports it: its other exports share the node)."""
        label = config.dataset_name or config.dataset_id
        return AssetSpec(
            key=AssetKey([DATASET_KEY_PREFIX, f"{config.dataset_key}{DATASET_KEY_SUFFIX}"]),
            description=f"Domo DataSet {label} (id {config.dataset_id}), the source of its S3 "
            "exports.",
            group_name=config.group,
            kinds={KIND_DOMO},
            metadata=DomoMetadataSet(config.dataset_id).to_metadata(),
        )


@dataclass(frozen=True)
class DomoSpecs:
    """A catalog translated once: each entry's export spec and each DataSet's spec.

    Attributes:
        catalog: The catalog.
        exports: One export spec per entry, in catalog order (``deps``: its DataSet's node).
        datasets: One spec per distinct DataSet node, in order of first appearance.
        parquets: One Parquet spec per entry with ``parquet: true``, in catalog order.
    """

    catalog: Catalog
    exports: tuple[AssetSpec, ...]
    datasets: tuple[AssetSpec, ...]
    parquets: tuple[AssetSpec, ...] = ()


def dataset_node(spec: AssetSpec) -> AssetKey:
    """The key of an export spec's DataSet node: the spec's only dependency.

    Raises:
        ValueError: The spec does not depend on exactly one asset.
    """
    if len(spec.deps) != 1:
        raise ValueError(
            f"asset {spec.key.to_user_string()} depends on {len(spec.deps)} assets: a domo_assets "
            "export depends on its DataSet's node alone (keep the deps DagsterDomoTranslator "
            "gives it)"
        )
    (dep,) = spec.deps
    return dep.asset_key


def export_config(spec: AssetSpec) -> ExportConfig:
    """The catalog entry an export spec stands for, from its ``DomoMetadataSet``.

    Raises:
        ValueError: The spec is not a domo_assets export's.
    """
    try:
        found = DomoMetadataSet.extract(spec.metadata).export
    except KeyError:
        found = None
    if found is None:
        raise ValueError(
            f"asset {spec.key.to_user_string()} carries no domo/export metadata: it is not a "
            "domo_assets export (build its spec with DagsterDomoTranslator)"
        )
    return found


def translate(catalog: Catalog, translator: DagsterDomoTranslator | None = None) -> DomoSpecs:
    """Translate every entry of a catalog once.

    Args:
        catalog: The validated catalog.
        translator: The translator (``DagsterDomoTranslator()`` by default).

    Raises:
        ValueError: Two entries got one key.
    """
    translator = translator or DagsterDomoTranslator()
    exports: list[AssetSpec] = []
    parquets: list[AssetSpec] = []
    datasets: dict[str, AssetSpec] = {}
    for config in catalog.exports:
        dataset = datasets.get(config.dataset_id)
        if dataset is None:
            dataset = datasets[config.dataset_id] = translator.get_dataset_spec(config)
        partitions = config.partition.definition() if config.partition is not None else None
        props = DomoExportProps(config, dataset.key, partitions)
        exports.append(translator.get_asset_spec(props))
        if config.parquet:
            parquets.append(translator.get_parquet_spec(props, exports[-1]))
            # Retention keeps what the Parquet asset's latest materialization names: the export
            # step finds that asset by this key, whatever the translator named it.
            exports[-1] = exports[-1].merge_attributes(
                metadata={PARQUET_ASSET_KEY: parquets[-1].key.to_user_string()}
            )
    keys = [spec.key for spec in (*exports, *parquets)]
    if len(set(keys)) != len(keys):
        twice = sorted({k.to_user_string() for k in keys if keys.count(k) > 1})
        raise ValueError(f"{catalog.source}: the translator gave several exports the key {twice}")
    return DomoSpecs(catalog, tuple(exports), tuple(datasets.values()), tuple(parquets))


def _default_description(config: ExportConfig, destination: str) -> str:
    source = config.dataset_name or config.dataset_id
    columns = ", ".join(config.columns) if config.columns else "all columns"
    text = f"CSV export of Domo DataSet {source} to {destination} ({columns})"
    if config.where:
        text += ", filtered"
    if config.group_by:
        text += f", grouped by {', '.join(config.group_by)}"
    return text + "."


def _plain(value: Any) -> Any:
    """A metadata entry's value, whether given raw (a spec) or as a MetadataValue (an event)."""
    return value.value if isinstance(value, MetadataValue) else value
