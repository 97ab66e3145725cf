"""The layers are real: the Domo API layer works with Dagster (and boto3) absent."""

from __future__ import annotations

import subprocess
import sys

# A meta path finder that refuses the named top-level packages, so an import of them (direct or
# through another module) fails loudly instead of quietly succeeding.
BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {blocked!r}:
            raise ImportError(f'{{name}} is blocked: this layer must not import it')
        return None
sys.meta_path.insert(0, Block())
"""


def import_with_blocked(modules: list[str], blocked: set[str]) -> subprocess.CompletedProcess[str]:
    code = BLOCKER.format(blocked=sorted(blocked)) + "".join(f"import {m}\n" for m in modules)
    code += f"print(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(blocked)!r}))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_domo_layer_imports_neither_dagster_nor_aws() -> None:
    modules = [
        "domo_assets.domo.client",
        "domo_assets.domo.auth",
        "domo_assets.domo.models",
        "domo_assets.domo.errors",
        "domo_assets.domo.polling",
        "domo_assets.domo.defaults",
        "domo_assets.domo.endpoints",
        "domo_assets.domo.redaction",
        "domo_assets.domo.replies",
    ]
    done = import_with_blocked(modules, {"dagster", "dagster_aws", "boto3", "botocore"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_the_blocker_blocks() -> None:
    """The probe above would catch an import of Dagster (it is not vacuous)."""
    done = import_with_blocked(["domo_assets.catalog"], {"dagster"})
    assert done.returncode != 0
    assert "dagster is blocked" in done.stderr


# Every module of the Dagster layer: the S3 layer must import none of them.
DAGSTER_LAYER = [
    "domo_assets.assets",
    "domo_assets.catalog",
    "domo_assets.checks",
    "domo_assets.component",
    "domo_assets.definitions",
    "domo_assets.execution",
    "domo_assets.ledger",
    "domo_assets.location",
    "domo_assets.metadata",
    "domo_assets.outcome",
    "domo_assets.parquet_assets",
    "domo_assets.partitions",
    "domo_assets.publish",
    "domo_assets.resource",
    "domo_assets.runner",
    "domo_assets.sensors",
    "domo_assets.translator",
    "domo_assets.verdicts",
]
MODULE_BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in {blocked!r} or name.split('.')[0] == 'dagster':
            raise ImportError(f'{{name}} is blocked: the S3 layer must not import it')
        return None
sys.meta_path.insert(0, Block())
"""


def test_s3_layer_imports_nothing_of_the_dagster_layer() -> None:
    """``domo_assets/s3/`` stands on the Domo layer and boto3 only: the record that crosses
    from the Dagster layer (``ExportManifest``) lives in it, so no import runs upward."""
    import pkgutil

    import domo_assets.s3

    modules = [f"domo_assets.s3.{m.name}" for m in pkgutil.iter_modules(domo_assets.s3.__path__)]
    assert "domo_assets.s3.manifest" in modules and "domo_assets.s3.landing" in modules
    code = MODULE_BLOCKER.format(blocked=sorted(DAGSTER_LAYER))
    code += "".join(f"import {m}\n" for m in modules)
    code += f"print(sorted(m for m in sys.modules if m in {sorted(DAGSTER_LAYER)!r}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_the_module_blocker_blocks() -> None:
    """The probe above would catch an upward import (it is not vacuous)."""
    code = MODULE_BLOCKER.format(blocked=["domo_assets.outcome"]) + "import domo_assets.outcome\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "domo_assets.outcome is blocked" in done.stderr


RESOURCE_BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == 'domo_assets.resource':
            raise ImportError(f'{name} is blocked: execution must not import it')
        return None
sys.meta_path.insert(0, Block())
"""


def test_execution_imports_no_resource() -> None:
    """No resource/execution import circle: the execution layer (and the runner under it) is
    handed what ``DomoResource`` made, and imports no resource module."""
    code = RESOURCE_BLOCKER + "import domo_assets.execution, domo_assets.runner\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    # The probe is not vacuous: the package root's DomoResource is refused.
    code = RESOURCE_BLOCKER + "from domo_assets import DomoResource\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "domo_assets.resource is blocked" in done.stderr
