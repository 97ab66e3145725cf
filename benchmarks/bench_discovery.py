"""Benchmark of discovery: refreshing the stored DataSet state, and loading exports from it.

Starts the sandbox with ``--datasets`` synthetic DataSets (and its six samples) and writes
dg projects with one ``DomoExportsComponent`` instance each:

* **discovered**: ``discover: {select: {names: ["synthetic-*"]}, export: {path:
  bench/{slug}}}``, so every synthetic DataSet becomes an export;
* **by hand, inline**: the same exports (same names, paths, DataSet names) written in
  ``defs.yaml``'s ``exports:``, no state;
* **by hand, inline, with state**: the same, refreshed too, so every spec carries Domo's
  details (what the discovered exports carry);
* **by hand, catalog file**: the same exports in a catalog file (``catalog:``), no state.

Refresh: ``write_state_to_path`` (what ``dg utils refresh-defs-state`` calls per instance),
timed in this process ``--repeat`` times for each listing (the instance search API with the
developer token; the platform API with OAuth), with the Domo requests it made (the sandbox's
request log) and the state file's size.

Load: each project loaded ``--repeat`` times in fresh processes, interleaved
(``load_from_defs_folder`` and ``resolve_asset_graph()``, as ``dg dev`` loads it, after ``import
dagster``, timed apart), every socket connect and name lookup refused and counted, and
``DOMO_INSTANCE_URL`` pointing at a closed port: the load must read the state, not Domo.
One discarded load of each comes first (the first process pays cold file caches). Medians
reported. Goal: discovered <= 1.3 x by hand (inline), on the definitions.

Usage::

    .venv/bin/python benchmarks/bench_discovery.py
    .venv/bin/python benchmarks/bench_discovery.py --datasets 1000 --repeat 5
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

# Run as a script from benchmarks/ (its folder is on sys.path): the load benchmark's network ban.
from bench_load import CHILD_FLAG, CLOSED_PORT_URL, PROJECT_ROOT, dg_project, forbid_network

DEFAULT_DATASETS = 1_000
DEFAULT_REPEAT = 5
MAX_RATIO = 1.3
BUCKET = "domo-exports"
REGION = "us-east-1"
PATH_PATTERN = "bench/{slug}"
SELECT = {"names": ["synthetic-*"]}
NO_DEV_REFRESH = {"management_type": "LOCAL_FILESYSTEM", "refresh_if_dev": False}
CONNECTION = {
    "instance_url": "{{ env.DOMO_INSTANCE_URL }}",
    "developer_token": "{{ env.DOMO_DEVELOPER_TOKEN }}",
}
OAUTH_CONNECTION = {
    **CONNECTION,
    "client_id": "{{ env.DOMO_CLIENT_ID }}",
    "client_secret": "{{ env.DOMO_CLIENT_SECRET }}",
    "api_url": "{{ env.DOMO_API_URL }}",
}
DISCOVERED = "discovered"
INLINE = "by hand, inline"
INLINE_STATE = "by hand, inline, with state"
CATALOG_FILE = "by hand, catalog file"


def write_project(root: Path, module: str, attributes: Mapping[str, Any]) -> Path:
    """A dg project at `root` whose one instance (``defs/exports``) has `attributes`."""
    folder = dg_project(root, module)
    document = {"type": "domo_assets.DomoExportsComponent", "attributes": dict(attributes)}
    (folder / "defs.yaml").write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return folder


def hand_exports(datasets: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    """The exports discovery makes of `datasets`, written out by hand."""
    from domo_assets.discovery import slug

    return [
        {
            "name": slug(d["name"]),
            "dataset_id": d["id"],
            "dataset_name": d["name"],
            "path": PATH_PATTERN.format(slug=slug(d["name"])),
        }
        for d in datasets
    ]


def component_of(project: Path) -> Any:
    """The project's component instance, loaded as dg loads it."""
    import dagster as dg

    from domo_assets.component import DomoExportsComponent

    sys.path.insert(0, str(project))
    (component,) = dg.ComponentTree.for_project(project).get_all_components(
        of_type=DomoExportsComponent
    )
    return component


def time_refresh(project: Path, sandbox: Any, repeat: int) -> tuple[float, int, int]:
    """Median seconds of a refresh of the project's instance, its Domo requests and the state
    file's bytes."""
    component = component_of(project)
    seconds = []
    for _ in range(repeat):
        sandbox.control.clear_requests()
        began = time.perf_counter()
        asyncio.run(component.refresh_state(project))
        seconds.append(time.perf_counter() - began)
    requests = len(sandbox.control.requests())
    (state,) = project.glob("*/defs/.local_defs_state/*/state")
    return statistics.median(seconds), requests, state.stat().st_size


def child(project: Path) -> None:
    """Load the project in this (fresh) process and print the times as JSON."""
    attempts = forbid_network()
    began = time.perf_counter()
    import dagster as dg

    imported = time.perf_counter()
    defs = dg.load_from_defs_folder(path_within_project=project)
    graph = defs.resolve_asset_graph()
    loaded = time.perf_counter()
    exports = [k for k in graph.get_all_asset_keys() if k.path[0] != "domo"]
    print(
        json.dumps(
            {
                "dagster_import": imported - began,
                "load": loaded - imported,
                "exports": len(exports),
                "network": len(attempts),
            }
        )
    )


def measure(project: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """One load of `project` in a fresh process."""
    done = subprocess.run(
        [sys.executable, __file__, CHILD_FLAG, str(project)],
        env={**env, "PYTHONPATH": os.pathsep.join([str(project), env.get("PYTHONPATH", "")])},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"load of {project} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", type=int, default=DEFAULT_DATASETS)
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; exit status 0 when the goal passes and no load used the network."""
    from domo_assets_dev.sandbox import Sandbox
    from domo_assets_dev.sandbox.datasets import synthetic_dataset_id, synthetic_spec

    args = parse_args(argv)
    compileall.compile_dir(PROJECT_ROOT / "domo_assets", quiet=1)
    datasets = [
        {"id": synthetic_dataset_id(i), "name": synthetic_spec(i).name}
        for i in range(args.datasets)
    ]
    exports = hand_exports(datasets)
    common = {"defaults": {"bucket": BUCKET, "region": REGION}, "defs_state": NO_DEV_REFRESH}
    with (
        tempfile.TemporaryDirectory(prefix="bench-discovery-") as tmp,
        Sandbox(synthetic_datasets=args.datasets) as sandbox,
    ):
        os.environ.update(sandbox.env())
        root = Path(tmp)
        projects = {
            DISCOVERED: {
                **common,
                "domo": CONNECTION,
                "discover": {"select": SELECT, "export": {"path": PATH_PATTERN}},
            },
            f"{DISCOVERED} (OAuth)": {
                **common,
                "domo": OAUTH_CONNECTION,
                "discover": {"select": SELECT, "export": {"path": PATH_PATTERN}},
            },
            INLINE: {**common, "domo": CONNECTION, "exports": exports},
            INLINE_STATE: {**common, "domo": CONNECTION, "exports": exports},
            CATALOG_FILE: {"domo": CONNECTION, "defs_state": NO_DEV_REFRESH, "catalog": "c.yaml"},
        }
        folders = {}
        for index, (label, attributes) in enumerate(projects.items()):
            folders[label] = write_project(root / f"p{index}", f"bench_disco_{index}", attributes)
        (folders[CATALOG_FILE] / "c.yaml").write_text(
            yaml.safe_dump({"defaults": common["defaults"], "exports": exports}), encoding="utf-8"
        )
        refreshed = {}
        for label in (DISCOVERED, f"{DISCOVERED} (OAuth)", INLINE_STATE):
            project = folders[label].parents[2]
            refreshed[label] = time_refresh(project, sandbox, args.repeat)
        env = {**os.environ, "DOMO_INSTANCE_URL": CLOSED_PORT_URL, "DOMO_API_URL": CLOSED_PORT_URL}
        loaded = [DISCOVERED, INLINE, INLINE_STATE, CATALOG_FILE]
        runs: dict[str, list[dict[str, Any]]] = {label: [] for label in loaded}
        for label in loaded:  # one discarded load each: the first process pays cold caches
            measure(folders[label].parents[2], env)
        for _ in range(args.repeat):  # interleaved, so machine noise hits every build alike
            for label in loaded:
                runs[label].append(measure(folders[label].parents[2], env))

    print(
        f"Refresh: {args.datasets} synthetic DataSets selected (of {args.datasets + 6}); "
        f"median of {args.repeat}"
    )
    print("| instance | listing | refresh s | Domo requests | state bytes | bytes a DataSet |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for label, (seconds, requests, size) in refreshed.items():
        listing = "platform (OAuth)" if "OAuth" in label else "instance search"
        print(
            f"| {label} | {listing} | {seconds:.2f} | {requests} | {size:,} | "
            f"{size / args.datasets:.0f} |"
        )
    # Times are medians; a network attempt or a missing export in any run counts (the worst).
    medians = {
        label: {
            **{
                key: statistics.median(run[key] for run in times)
                for key in ("dagster_import", "load")
            },
            "exports": min(run["exports"] for run in times),
            "network": max(run["network"] for run in times),
        }
        for label, times in runs.items()
    }
    print(f"\nLoad: median of {args.repeat} fresh processes each, network refused")
    print(
        "| build | exports (fewest) | definitions s | / by hand | incl. import dagster s | network (most) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    base = medians[INLINE]
    for label, m in medians.items():
        print(
            f"| {label} | {m['exports']:.0f} | {m['load']:.2f} | {m['load'] / base['load']:.2f} | "
            f"{m['dagster_import'] + m['load']:.2f} | {m['network']:.0f} |"
        )
    ratio = medians[DISCOVERED]["load"] / base["load"]
    silent = all(m["network"] == 0 for m in medians.values())
    complete = all(m["exports"] == args.datasets for m in medians.values())
    print(
        f"\nGoal discovered <= {MAX_RATIO:g} x by hand (inline), definitions: ratio {ratio:.2f} "
        f"-> {'PASS' if ratio <= MAX_RATIO else 'MISS'}"
    )
    print(f"Every build has {args.datasets} exports: {'PASS' if complete else 'MISS'}")
    print(f"No network call during any load: {'PASS' if silent else 'MISS'}")
    return 0 if ratio <= MAX_RATIO and silent and complete else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == CHILD_FLAG:
        child(Path(sys.argv[2]))
    else:
        sys.exit(main())
