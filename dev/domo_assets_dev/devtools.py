"""Local development commands behind ``make dev`` and ``make demo``, and the demo dg project's
code location.

``dev``: start the sandbox (Domo + S3 on loopback) and ``dg dev`` on the demo dg project (dev/,
whose defs folder holds the demo exports as a ``DomoExportsComponent``) pointed at it.
``demo``: start the sandbox, materialize every export headless, print a table.
``defs``: the demo dg project's ``Definitions`` (its ``code_location_target_module``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dagster import AssetKey, AssetsDefinition, Definitions, definitions, load_from_defs_folder

from domo_assets.catalog import EXPORTS_FILE_VAR
from domo_assets_dev import DEMO_PARTITIONED_CATALOG

DEV_UI_PORT = 3000
# The demo dg project: dev/, whose pyproject.toml holds [tool.dg] (this package is installed
# editable from there, so the folder is found from this file).
DG_PROJECT_DIR = Path(__file__).resolve().parent.parent
DEV_HOME = Path(".dagster_home")
DEV_ENV_FILE = Path(".sandbox.env")
DEV_INSTANCE_YAML = """\
# Written by `make dev`: local instance settings for dagster dev.
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 4
"""


def dev(ui_port: int = DEV_UI_PORT) -> int:
    """Run the sandbox and ``dg dev`` (the Dagster UI and daemon) until interrupted."""
    from domo_assets_dev.sandbox import Sandbox  # moto: only the commands that start it pay

    DEV_HOME.mkdir(exist_ok=True)
    (DEV_HOME / "dagster.yaml").write_text(DEV_INSTANCE_YAML)
    with Sandbox() as sandbox:
        env = {**os.environ, **sandbox.env(), "DAGSTER_HOME": str(DEV_HOME.resolve())}
        DEV_ENV_FILE.write_text("".join(f"{k}={v}\n" for k, v in sandbox.env().items()))
        print(f"Domo sandbox: {sandbox.domo_url}   S3 (moto): {sandbox.s3_url}")
        print(f"Its variables: set -a; . ./{DEV_ENV_FILE}; set +a   (then curl it, see README)")
        print(f"Dagster UI:   http://127.0.0.1:{ui_port}  (Ctrl-C stops both)")
        try:
            return subprocess.call(dg_dev_command(ui_port), env=env)
        except KeyboardInterrupt:
            return 0


def dg_dev_command(ui_port: int, host: str = "127.0.0.1") -> list[str]:
    """``dg dev`` on the demo dg project, serving the UI on ``host:ui_port``."""
    command = ["dg", "dev", "--target-path", str(DG_PROJECT_DIR), "-h", host, "-p", str(ui_port)]
    return _venv_command(command)


@definitions
def defs() -> Definitions:
    """The demo dg project's definitions: every component instance of its defs folder.

    Dagster calls this when it loads the code location (``dg dev``, ``dg check defs``), so
    importing this module for ``make dev`` or ``make demo`` loads nothing.
    """
    return load_from_defs_folder(path_within_project=DG_PROJECT_DIR)


def demo() -> int:
    """Materialize every export (one partition of each partitioned one) against the sandbox."""
    from domo_assets_dev.sandbox import Sandbox

    with Sandbox() as sandbox, tempfile.TemporaryDirectory() as home:
        os.environ.update(sandbox.env())
        os.environ.setdefault(EXPORTS_FILE_VAR, str(DEMO_PARTITIONED_CATALOG))
        os.environ["DAGSTER_HOME"] = home
        (Path(home) / "dagster.yaml").write_text(DEV_INSTANCE_YAML)
        from dagster import DagsterInstance, materialize

        from domo_assets.definitions import defs

        assets = list(defs.assets or [])
        resources = dict(defs.resources or {})
        with DagsterInstance.get() as instance:
            results = [
                materialize(
                    assets,
                    resources=resources,
                    instance=instance,
                    selection=_unpartitioned(assets),
                    raise_on_error=False,
                )
            ]
            for assets_def in _partitioned(assets):
                key = assets_def.partitions_def.get_last_partition_key()
                print(
                    f"materializing partition {key} of {', '.join(k.to_user_string() for k in assets_def.keys)}"
                )
                results.append(
                    materialize(
                        assets,
                        resources=resources,
                        instance=instance,
                        selection=list(assets_def.keys),
                        partition_key=key,
                        raise_on_error=False,
                    )
                )
            rows = [row for result in results for row in _summary(result)]
        print(_table(["asset", "partition", "rows", "files", "checks"], rows))
        ok = all(result.success for result in results)
        print("every run succeeded" if ok else "a run FAILED")
        return 0 if ok else 1


def _partitioned(assets: Sequence[object]) -> list[AssetsDefinition]:
    return [a for a in assets if isinstance(a, AssetsDefinition) and a.partitions_def is not None]


def _unpartitioned(assets: Sequence[object]) -> list[AssetKey]:
    return [
        key
        for a in assets
        if isinstance(a, AssetsDefinition) and a.partitions_def is None and a.is_executable
        for key in a.keys
    ]


def _summary(result) -> list[list[str]]:
    checks: dict[str, list[str]] = {}
    for evaluation in result.get_asset_check_evaluations():
        mark = "ok" if evaluation.passed else "FAILED"
        checks.setdefault(evaluation.asset_key.to_user_string(), []).append(
            f"{evaluation.check_name} {mark}"
        )
    rows = []
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        key = materialization.asset_key.to_user_string()
        metadata = materialization.metadata
        rows.append(
            [
                key,
                event.partition or "",
                str(metadata["dagster/row_count"].value),
                _files(metadata),
                ", ".join(sorted(checks.get(key, []))),
            ]
        )
    return sorted(rows)


def _files(metadata: Mapping[str, Any]) -> str:
    """How many files a materialization records: an export's CSV objects, or a Parquet
    asset's files."""
    for key in ("s3_uris", "parquet_uris"):
        if key in metadata:
            return str(len(metadata[key].value))
    return "-"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _venv_command(command: Sequence[str]) -> list[str]:
    """Prefer the executable next to this interpreter (the project's venv)."""
    local = Path(sys.executable).with_name(command[0])
    return [str(local) if local.exists() else command[0], *command[1:]]


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: ``python -m domo_assets_dev.devtools {dev,demo}``."""
    parser = argparse.ArgumentParser(prog="python -m domo_assets_dev.devtools")
    parser.add_argument("command", choices=["dev", "demo"])
    parser.add_argument("--ui-port", type=int, default=DEV_UI_PORT)
    args = parser.parse_args(argv)
    return dev(args.ui_port) if args.command == "dev" else demo()


if __name__ == "__main__":
    sys.exit(main())
