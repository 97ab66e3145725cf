"""Dagster software-defined assets for Domo DataSet exports to S3.

``domo_assets.DomoExportsComponent`` is the ``dg`` component (``dg list components`` finds it
through the ``dagster_dg_cli.registry_modules`` entry point). It is imported on first access:
every import of a submodule runs this file first, and the Domo API layer
(``domo_assets.domo``) must import without Dagster.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from domo_assets.version import __version__

if TYPE_CHECKING:
    from domo_assets.component import DomoExportsComponent

# Public names served lazily, and the module each lives in.
_LAZY_ATTRIBUTES = {"DomoExportsComponent": "domo_assets.component"}

__all__ = ["DomoExportsComponent", "__version__"]


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
