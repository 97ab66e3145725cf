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
    ]
    done = import_with_blocked(modules, {"dagster", "dagster_aws", "boto3", "botocore"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_the_blocker_blocks() -> None:
    """The probe above would catch an import of Dagster (it is not vacuous)."""
    done = import_with_blocked(["domo_assets.catalog"], {"dagster"})
    assert done.returncode != 0
    assert "dagster is blocked" in done.stderr
