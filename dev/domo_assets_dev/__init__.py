"""Development tools of domo_assets, not shipped with it: the Domo + S3 sandbox, ``make dev`` and
``make demo``, and the demo catalogs of the sandbox's DataSets.

Installed (editable) by the Makefile beside domo_assets; a production install (``pip install .``)
has none of it.
"""

from pathlib import Path

CATALOGS = Path(__file__).with_name("catalogs")
DEMO_CATALOG = CATALOGS / "exports.yaml"
"""Every sample DataSet of the sandbox, unpartitioned (``--select '*'`` materializes it whole)."""
DEMO_PARTITIONED_CATALOG = CATALOGS / "exports_with_partitions.yaml"
"""The demo catalog plus partitioned examples (``make dev`` and ``make demo``)."""
