"""Dagster software-defined assets for Domo DataSet exports to S3.

The package root serves the library's public names, each imported on first access (PEP 562):
every import of a submodule runs this file first, the Domo API layer (``domo_assets.domo``) must
import without Dagster, and a code location pays only for what it uses.

* the resources: ``DomoResource``, ``AwsCredentialsResource``, ``S3ReaderResource``;
* the translator: ``DagsterDomoTranslator``, ``DomoExportProps``, ``DomoMetadataSet``;
* the decorator: ``domo_export_assets`` (like ``@fivetran_assets``);
* the ``dg`` component: ``DomoExportsComponent`` (``dg list components`` finds it through the
  ``dagster_dg_cli.registry_modules`` entry point);
* the builders: ``load_catalog``, ``build_definitions``, ``build_export_assets``,
  ``build_partitioned_export_assets``, ``build_dataset_assets``, ``build_change_sensor``,
  ``build_export_schedules``, ``translate``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from domo_assets.version import __version__

if TYPE_CHECKING:
    from domo_assets.assets import (
        build_export_assets,
        build_partitioned_export_assets,
        domo_export_assets,
    )
    from domo_assets.catalog import load_catalog
    from domo_assets.component import DomoExportsComponent
    from domo_assets.location import build_definitions
    from domo_assets.resource import AwsCredentialsResource, DomoResource, S3ReaderResource
    from domo_assets.schedules import build_export_schedules
    from domo_assets.sensors import build_change_sensor, build_dataset_assets
    from domo_assets.translator import (
        DagsterDomoTranslator,
        DomoExportProps,
        DomoMetadataSet,
        translate,
    )

# Public names served lazily, and the module each lives in.
_LAZY_ATTRIBUTES = {
    "AwsCredentialsResource": "domo_assets.resource",
    "DagsterDomoTranslator": "domo_assets.translator",
    "DomoExportProps": "domo_assets.translator",
    "DomoExportsComponent": "domo_assets.component",
    "DomoMetadataSet": "domo_assets.translator",
    "DomoResource": "domo_assets.resource",
    "S3ReaderResource": "domo_assets.resource",
    "build_change_sensor": "domo_assets.sensors",
    "build_dataset_assets": "domo_assets.sensors",
    "build_definitions": "domo_assets.location",
    "build_export_assets": "domo_assets.assets",
    "build_export_schedules": "domo_assets.schedules",
    "build_partitioned_export_assets": "domo_assets.assets",
    "domo_export_assets": "domo_assets.assets",
    "load_catalog": "domo_assets.catalog",
    "translate": "domo_assets.translator",
}

__all__ = [
    "AwsCredentialsResource",
    "DagsterDomoTranslator",
    "DomoExportProps",
    "DomoExportsComponent",
    "DomoMetadataSet",
    "DomoResource",
    "S3ReaderResource",
    "__version__",
    "build_change_sensor",
    "build_dataset_assets",
    "build_definitions",
    "build_export_assets",
    "build_export_schedules",
    "build_partitioned_export_assets",
    "domo_export_assets",
    "load_catalog",
    "translate",
]


def __getattr__(name: str) -> Any:
    """Import a lazily served name on first access (PEP 562)."""
    module = _LAZY_ATTRIBUTES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later accesses skip this function
    return value


def __dir__() -> list[str]:
    """The module's names with the lazy ones, so ``dir()`` (and dg's discovery) sees them."""
    return sorted({*globals(), *_LAZY_ATTRIBUTES})
