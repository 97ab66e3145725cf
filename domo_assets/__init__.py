"""Dagster software-defined assets for Domo DataSet exports to S3."""

from domo_assets.version import __version__

__all__ = ["__version__"]
