"""Benchmark of code-location load time: our definitions versus Dagster's bare primitives.

Writes a catalog of ``--exports`` exports over ``--datasets`` DataSets (some filtered, some with
a ``max_age``, ``--scheduled`` of them on a few crons), then loads it ``--repeat`` times each
way, alternating, each load in a fresh subprocess (medians reported):

* (i) **ours**: ``import domo_assets.definitions`` with ``DOMO_EXPORTS_FILE`` naming the
  catalog (reads and validates it, builds the export multi-asset with its checks, the
  observable DataSet assets, the change sensor and the schedules with their jobs), then
  ``defs.resolve_asset_graph()``, ``defs.get_repository_def()`` and
  ``load_all_definitions()`` (what Dagster's code server does on load: every job resolved);
* (ii) **primitives**: the same graph written by hand from Dagster's primitives, from the same
  data read as JSON (no YAML parsing, no validation): an external ``AssetSpec`` per DataSet, an
  ``AssetSpec`` per export with a dep on its DataSet, three ``AssetCheckSpec`` per export, one
  subsettable ``multi_asset``; resolved the same way.

Through the ``dg`` component, in a dg project loaded as ``dg dev`` loads it
(``load_from_defs_folder``: Dagster discovers every installed component package, then builds the
defs folder):

* (iii) **ours, exports inline**: ``DomoExportsComponent`` with the catalog's exports written in
  its ``defs.yaml``; its floor (ii-y) is (ii)'s primitives built by the smallest component a
  user could write, from the same exports inline (Dagster parses a defs.yaml with source
  positions, about 0.6 to 0.8 ms an export, whichever component reads it);
* (iv) **ours, catalog file**: the component naming the YAML catalog (``catalog:``); its floor
  (ii-f) is the same small component naming the catalog as a JSON file (no validation).

For information, (ii-c) is (ii)'s primitives as a Python defs module of a dg project: what
Dagster's component machinery costs (discovering every installed component package) without a
YAML component instance, whose loading costs Dagster some more.

For information, (ii+) adds to (ii) the same automation built the usual way from primitives (a
sensor targeting every export, one asset job and schedule per cron): Dagster resolves one asset
job per schedule group and one for the sensor at load, at a cost that grows with the
multi-asset. Ours requests runs of Dagster's implicit asset job instead, so it resolves none.

Bytecode: pip byte-compiles installed packages (dagster's ``.pyc`` files exist), but this
project is installed in editable mode and this machine sets ``PYTHONDONTWRITEBYTECODE=1``, so
without care every child would compile our modules from source (about 0.03 s a load, charged to
(i) only). The parent byte-compiles ``domo_assets`` first, as an installed package would be.

Each child times ``import dagster`` apart (the same for both), the definitions, and then the
repository snapshot the webserver and daemon read (``RepositorySnap``, for information). The
goal's ratio is reported on the definitions alone (strict) and on the whole process (import of
dagster included: what a fresh code server pays). One more child times the steps of (i) apart.

No network: every child makes socket connects and name lookups raise (and counts attempts),
and ``DOMO_INSTANCE_URL`` points at a closed loopback port; a load that touched the network
would fail or show attempts.

Ours pauses Python's cyclic garbage collector while it reads and builds the catalog
(``domo_assets.location.collector_paused``). Each floor is measured twice: as a user would write
it, and built under the same pause (``, collector paused``), which charges ours only for its
own work; the goals are reported against both.

Goals: (i) <= 1.3 x (ii), (iii) <= 1.3 x (ii-y) and (iv) <= 1.3 x (ii-f), on the definitions
and on the whole process; no network call during load.

Usage::

    .venv/bin/python benchmarks/bench_load.py
    .venv/bin/python benchmarks/bench_load.py --exports 1000 --datasets 500 --repeat 5
"""

from __future__ import annotations

import argparse
import compileall
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_EXPORTS = 1_000
DEFAULT_DATASETS = 500
DEFAULT_SCHEDULED = 100
DEFAULT_REPEAT = 5
MAX_RATIO = 1.3
CRONS = ("0 6 * * *", "0 * * * *", "30 2 * * 1", "15 */4 * * *")
BUCKET = "acme-data-lake"
REGION = "us-east-1"
DATASET_NAMESPACE = uuid.UUID("0b6a3c52-1f4e-4d0a-9e77-5a2f0c1d9e33")
CLOSED_PORT_URL = "http://127.0.0.1:9"
CHILD_FLAG = "--child"
PHASES = "phases"


@dataclass(frozen=True)
class LoadTimes:
    """One load, in seconds.

    Attributes:
        dagster_import: ``import dagster`` (the same for both builds).
        load: Building and resolving the definitions, ``dagster`` already imported.
        snapshot: Building the repository snapshot after that (information).
        network_attempts: Socket connects or name lookups attempted.
    """

    dagster_import: float
    load: float
    snapshot: float
    network_attempts: int

    @property
    def process(self) -> float:
        """What a fresh process pays: the import of dagster plus the definitions."""
        return self.dagster_import + self.load


# -- the catalog --------------------------------------------------------------------------------


def dataset_id(index: int) -> str:
    """A DataSet id (deterministic)."""
    return str(uuid.uuid5(DATASET_NAMESPACE, str(index)))


def catalog_document(exports: int, datasets: int, scheduled: int) -> dict[str, Any]:
    """A catalog of `exports` exports spread over `datasets` DataSets."""
    entries = []
    for index in range(exports):
        source = index % datasets
        entry: dict[str, Any] = {
            "name": f"export_{index:04d}",
            "dataset_id": dataset_id(source),
            "dataset_name": f"Dataset {source:04d}",
            "path": f"domo/export_{index:04d}",
        }
        if index % 5 == 1:
            entry["columns"] = ["Region", "Amount"]
            entry["where"] = [{"column": "Amount", "gte": 10}]
        if index % 10 == 2:
            entry["max_age"] = "1d"
        if index < scheduled:
            entry["schedule"] = CRONS[index % len(CRONS)]
        entries.append(entry)
    return {"defaults": {"bucket": BUCKET, "region": REGION}, "exports": entries}


# -- what the children measure ------------------------------------------------------------------


def build_ours(catalog_path: Path) -> Any:
    """(i): the code location's own module, as ``dagster`` loads it."""
    os.environ["DOMO_EXPORTS_FILE"] = str(catalog_path.with_suffix(".yaml"))
    import domo_assets.definitions

    return domo_assets.definitions.defs


def build_component(catalog_path: Path) -> Any:
    """(iii): the same catalog as a DomoExportsComponent instance of a dg project (its exports
    inline in defs.yaml), loaded as ``dg`` loads a project's defs folder."""
    return _load_project(catalog_path.parent / COMPONENT_PROJECT)


def build_component_catalog(catalog_path: Path) -> Any:
    """(iv): the same component, its defs.yaml naming the YAML catalog (``catalog:``)."""
    return _load_project(catalog_path.parent / COMPONENT_CATALOG_PROJECT)


def build_primitives_in_component(catalog_path: Path) -> Any:
    """(ii-y): the primitives of (ii), built by the smallest component a user could write, its
    defs.yaml carrying the same exports inline: the floor for (iii). Dagster parses that
    defs.yaml with source positions whichever component reads it; this one passes the exports
    through untouched (no templating, no validation) to :func:`primitives_definitions`."""
    return _load_project(catalog_path.parent / PRIMITIVES_COMPONENT_PROJECT)


def build_primitives_in_component_file(catalog_path: Path) -> Any:
    """(ii-f): the same component, its defs.yaml naming the catalog file (read as JSON): the
    floor for (iv), which Dagster loads the same way (a YAML component instance)."""
    return _load_project(catalog_path.parent / PRIMITIVES_COMPONENT_FILE_PROJECT)


def build_primitives_in_project(catalog_path: Path) -> Any:
    """(ii-c), for information: the primitives graph of (ii) as a Python defs module of a dg
    project (what Dagster's component machinery costs without a YAML component instance)."""
    return _load_project(catalog_path.parent / PRIMITIVES_PROJECT)


def _load_project(project: Path) -> Any:
    import dagster as dg

    os.environ.setdefault("BENCH_TOKEN", "bench-token")  # the defs.yaml's {{ env.BENCH_TOKEN }}
    sys.path.insert(0, str(project))
    return dg.load_from_defs_folder(path_within_project=project)


def write_component_projects(stem: Path) -> None:
    """The dg projects beside the catalog: the component with its exports inline, the component
    naming the catalog file, and the primitives as a Python defs module."""
    connection = {"instance_url": CLOSED_PORT_URL, "developer_token": "{{ env.BENCH_TOKEN }}"}
    document = json.loads(stem.with_suffix(".json").read_text())
    inline = {"type": COMPONENT_TYPE, "attributes": {"domo": connection, **document}}
    defs = dg_project(stem.parent / COMPONENT_PROJECT, "bench_component_inline")
    (defs / "defs.yaml").write_text(yaml.safe_dump(inline, sort_keys=False))
    named = {"type": COMPONENT_TYPE, "attributes": {"domo": connection, "catalog": "c.yaml"}}
    defs = dg_project(stem.parent / COMPONENT_CATALOG_PROJECT, "bench_component_catalog")
    (defs / "defs.yaml").write_text(yaml.safe_dump(named, sort_keys=False))
    (defs / "c.yaml").write_text(stem.with_suffix(".yaml").read_text())
    defs = dg_project(stem.parent / PRIMITIVES_PROJECT, "bench_primitives_project")
    (defs / "defs.py").write_text(
        f"{_IMPORT_BENCH_LOAD}defs = bench_load.build_primitives(Path({str(stem)!r}))\n"
    )
    for project, module, attributes in (
        (PRIMITIVES_COMPONENT_PROJECT, "bench_primitives_component", document),
        (
            PRIMITIVES_COMPONENT_FILE_PROJECT,
            "bench_primitives_component_file",
            {"catalog": "c.json"},
        ),
    ):
        defs = dg_project(stem.parent / project, module)
        (defs.parents[1] / "component.py").write_text(_IMPORT_BENCH_LOAD + _FLOOR_COMPONENT)
        floor = {"type": f"{module}.component.PrimitivesComponent", "attributes": attributes}
        (defs / "defs.yaml").write_text(yaml.safe_dump(floor, sort_keys=False))
        if "catalog" in attributes:
            (defs / attributes["catalog"]).write_text(stem.with_suffix(".json").read_text())


_IMPORT_BENCH_LOAD = (
    "import sys\nfrom pathlib import Path\n"
    f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
    "import bench_load\n"
)
# The floors' component ((ii-y), (ii-f)): the exports inline, passed through as parsed (the
# cheapest resolution there is), or a JSON catalog file beside defs.yaml.
_FLOOR_COMPONENT = """
import json
from typing import Annotated, Any

import dagster as dg

AS_PARSED = dg.Resolver(lambda context, value: value, model_field_type=Any)


class PrimitivesComponent(dg.Component, dg.Model, dg.Resolvable):
    defaults: Annotated[dict[str, Any], AS_PARSED] = {}
    exports: Annotated[list[dict[str, Any]], AS_PARSED] = []
    catalog: str | None = None

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        exports = self.exports
        if self.catalog is not None:
            exports = json.loads((context.path / self.catalog).read_text())["exports"]
        return bench_load.primitives_definitions(exports)
"""


def dg_project(root: Path, module: str) -> Path:
    """A dg project at ``root`` whose root module is ``module``; returns its one defs folder."""
    defs = root / module / "defs" / "exports"
    defs.mkdir(parents=True)
    (root / module / "__init__.py").write_text("")
    (root / "pyproject.toml").write_text(
        f"[project]\nname = '{module}'\nversion = '0'\n[tool.dg]\n"
        f"directory_type = 'project'\n[tool.dg.project]\nroot_module = '{module}'\n"
    )
    return defs


def build_primitives(catalog_path: Path) -> Any:
    """(ii): the same graph from Dagster's primitives, from the catalog's data (JSON: no YAML
    parsing and no validation is charged to it)."""
    return primitives_definitions(
        json.loads(catalog_path.with_suffix(".json").read_text())["exports"]
    )


def primitives_definitions(exports: Sequence[dict[str, Any]]) -> Any:
    """(ii)'s graph for these catalog entries (plain dicts); built with the cyclic garbage
    collector paused, as ours is, when the environment sets ``PAUSE_COLLECTOR_VAR``.

    The pause is written out rather than ``domo_assets.location.collector_paused``: importing
    domo_assets would charge the floor with our own import.
    """
    if not os.environ.get(PAUSE_COLLECTOR_VAR):
        return _primitives_definitions(exports)
    gc.disable()
    try:
        return _primitives_definitions(exports)
    finally:
        gc.enable()


def _primitives_definitions(exports: Sequence[dict[str, Any]]) -> Any:
    from dagster import AssetCheckSpec, AssetKey, AssetSpec, Definitions, multi_asset

    def dataset_key(entry: dict[str, Any]) -> AssetKey:
        return AssetKey(["domo", entry["dataset_name"].lower().replace(" ", "_")])

    datasets = {dataset_key(e): e["dataset_id"] for e in exports}
    dataset_specs = [
        AssetSpec(key=key, kinds={"domo"}, metadata={"domo/dataset_id": source})
        for key, source in datasets.items()
    ]
    export_specs = [
        AssetSpec(
            key=e["name"],
            deps=[dataset_key(e)],
            kinds={"domo", "s3"},
            metadata={"domo/dataset_id": e["dataset_id"], "dagster/uri": e["path"]},
        )
        for e in exports
    ]
    check_specs = [
        AssetCheckSpec(name, asset=e["name"])
        for e in exports
        for name in ("row_count", "s3_objects", "header")
    ]

    @multi_asset(specs=export_specs, check_specs=check_specs, can_subset=True, name="domo_exports")
    def _exports() -> Iterator[Any]:
        yield from ()

    return Definitions(assets=[*dataset_specs, _exports])


def build_primitives_automated(catalog_path: Path) -> Any:
    """(ii+): (ii) plus what Dagster builds for the same automation: a sensor targeting every
    export (an anonymous asset job) and one asset job and schedule per cron (information:
    separates Dagster's per-job cost from ours)."""
    from dagster import (
        AssetSelection,
        Definitions,
        ScheduleDefinition,
        SkipReason,
        define_asset_job,
        sensor,
    )

    base = build_primitives(catalog_path)
    exports = json.loads(catalog_path.with_suffix(".json").read_text())["exports"]
    groups: dict[str, list[str]] = {}
    for entry in exports:
        if "schedule" in entry:
            groups.setdefault(entry["schedule"], []).append(entry["name"])
    schedules = [
        ScheduleDefinition(
            name=f"exports_schedule_{index}",
            cron_schedule=cron,
            job=define_asset_job(f"exports_job_{index}", selection=AssetSelection.assets(*names)),
        )
        for index, (cron, names) in enumerate(groups.items())
    ]

    @sensor(name="changes", asset_selection=AssetSelection.assets(*(e["name"] for e in exports)))
    def _changes() -> Any:
        return SkipReason("benchmark")

    return Definitions.merge(base, Definitions(sensors=[_changes], schedules=schedules))


OURS, PRIMITIVES, AUTOMATED = "ours", "primitives", "primitives+automation"
COMPONENT = "component"
COMPONENT_CATALOG = "component, catalog file"
PRIMITIVES_IN_PROJECT = "primitives in a dg project"
COMPONENT_TYPE = "domo_assets.DomoExportsComponent"
COMPONENT_PROJECT = "component_project"
COMPONENT_CATALOG_PROJECT = "component_catalog_project"
PRIMITIVES_PROJECT = "primitives_project"
PRIMITIVES_IN_COMPONENT = "primitives in a component (exports inline)"
PRIMITIVES_COMPONENT_PROJECT = "primitives_component_project"
PRIMITIVES_IN_COMPONENT_FILE = "primitives in a component (catalog file)"
PRIMITIVES_COMPONENT_FILE_PROJECT = "primitives_component_file_project"
OWN_BUILDS = (OURS, COMPONENT, COMPONENT_CATALOG)

# The floors again, built with the collector paused as ours are (domo_assets.location's
# collector_paused): the strictest comparison, charging ours only for its own work.
PAUSED = ", collector paused"
PAUSE_COLLECTOR_VAR = "BENCH_LOAD_PAUSE_COLLECTOR"
FLOORS = (PRIMITIVES, PRIMITIVES_IN_COMPONENT, PRIMITIVES_IN_COMPONENT_FILE)

BUILDERS: dict[str, Callable[[Path], Any]] = {
    OURS: build_ours,
    COMPONENT: build_component,
    COMPONENT_CATALOG: build_component_catalog,
    PRIMITIVES_IN_PROJECT: build_primitives_in_project,
    PRIMITIVES_IN_COMPONENT: build_primitives_in_component,
    PRIMITIVES_IN_COMPONENT_FILE: build_primitives_in_component_file,
    PRIMITIVES: build_primitives,
    AUTOMATED: build_primitives_automated,
}
BUILDERS.update({f"{floor}{PAUSED}": BUILDERS[floor] for floor in FLOORS})


def resolve(defs: Any) -> Any:
    """Resolve everything the code server resolves on load; return the repository."""
    defs.resolve_asset_graph()
    repository = defs.get_repository_def()
    repository.load_all_definitions()
    return repository


def snapshot(repository: Any) -> None:
    """Build the repository snapshot the webserver and the daemon read."""
    from dagster._core.remote_representation.external_data import RepositorySnap

    RepositorySnap.from_def(repository)


def forbid_network() -> list[str]:
    """Make socket connects and name lookups raise; return the list attempts are logged in."""
    import socket

    attempts: list[str] = []

    def refuse(kind: str) -> Callable[..., Any]:
        def refused(*args: Any, **kwargs: Any) -> Any:
            attempts.append(kind)
            raise OSError(f"network disabled during load ({kind})")

        return refused

    socket.socket.connect = refuse("connect")  # type: ignore[method-assign]
    socket.socket.connect_ex = refuse("connect_ex")  # type: ignore[method-assign]
    socket.getaddrinfo = refuse("getaddrinfo")  # type: ignore[assignment]
    socket.create_connection = refuse("create_connection")  # type: ignore[assignment]
    return attempts


def child(kind: str, catalog_path: Path) -> None:
    """Measure one load in this (fresh) process and print it as JSON."""
    attempts = forbid_network()
    if kind.endswith(PAUSED):
        os.environ[PAUSE_COLLECTOR_VAR] = "1"
    began = time.perf_counter()
    import dagster  # noqa: F401  (paid by both: reported apart)

    imported = time.perf_counter()
    repository = resolve(BUILDERS[kind](catalog_path))
    loaded = time.perf_counter()
    snapshot(repository)
    done = time.perf_counter()
    print(
        json.dumps(
            {
                "dagster_import": imported - began,
                "load": loaded - imported,
                "snapshot": done - loaded,
                "network": attempts,
            }
        )
    )


def child_phases(catalog_path: Path) -> None:
    """Time the steps of (i) apart (the same steps ``definitions.py`` takes) and print them."""
    forbid_network()
    import dagster  # noqa: F401

    clock = time.perf_counter
    phases: dict[str, float] = {}
    began = clock()
    from domo_assets.catalog import load_catalog
    from domo_assets.location import build_definitions
    from domo_assets.resource import DomoResource

    phases["import domo_assets (its pydantic models; no requests, boto3 or dagster_aws)"] = (
        clock() - began
    )
    began = clock()
    catalog = load_catalog(catalog_path.with_suffix(".yaml"))
    phases["read and validate the catalog"] = clock() - began
    began = clock()
    defs = build_definitions(catalog, DomoResource(instance_url=CLOSED_PORT_URL))
    phases["build assets, checks, sensor, schedules"] = clock() - began
    began = clock()
    defs.resolve_asset_graph()
    repository = defs.get_repository_def()
    phases["resolve the asset graph and repository"] = clock() - began
    for name in repository.job_names:
        began = clock()
        repository.get_job(name)
        phases[f"resolve job {name}"] = clock() - began
    print(json.dumps(phases))


# -- the parent ---------------------------------------------------------------------------------


def run_child(*args: str) -> dict[str, Any]:
    """Run this file as a child process and return the JSON it prints."""
    env = {
        **os.environ,
        "DOMO_INSTANCE_URL": CLOSED_PORT_URL,
        "DOMO_DEVELOPER_TOKEN": "load-benchmark-token",
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    completed = subprocess.run(
        [sys.executable, __file__, CHILD_FLAG, *args],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{args[0]} load failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def measure(kind: str, catalog_path: Path) -> LoadTimes:
    """One load in a fresh subprocess."""
    result = run_child(kind, str(catalog_path))
    return LoadTimes(
        result["dagster_import"], result["load"], result["snapshot"], len(result["network"])
    )


def median_times(runs: Sequence[LoadTimes]) -> LoadTimes:
    """Medians of each figure (network attempts: the most seen)."""
    return LoadTimes(
        statistics.median(r.dagster_import for r in runs),
        statistics.median(r.load for r in runs),
        statistics.median(r.snapshot for r in runs),
        max(r.network_attempts for r in runs),
    )


def write_catalog(directory: Path, args: argparse.Namespace) -> Path:
    """Write the catalog as YAML (for ours), JSON (for the primitives) and a component's
    defs.yaml (for the component); return its stem."""
    document = catalog_document(args.exports, args.datasets, args.scheduled)
    stem = directory / "exports"
    stem.with_suffix(".yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    stem.with_suffix(".json").write_text(json.dumps(document))
    write_component_projects(stem)
    return stem


LABELS = {
    "(i) ours": OURS,
    "(iii) ours, through the component (exports inline)": COMPONENT,
    "(iv) ours, through the component (catalog file)": COMPONENT_CATALOG,
    "(ii) primitives": PRIMITIVES,
    "(ii-c) primitives, loaded from a dg project": PRIMITIVES_IN_PROJECT,
    "(ii-y) primitives, from a component with the exports inline": PRIMITIVES_IN_COMPONENT,
    "(ii-f) primitives, from a component naming the catalog file": PRIMITIVES_IN_COMPONENT_FILE,
    "(ii+) primitives, same sensor and schedule jobs": AUTOMATED,
    "(ii) primitives, collector paused": f"{PRIMITIVES}{PAUSED}",
    "(ii-y) primitives, from a component with the exports inline, collector paused": (
        f"{PRIMITIVES_IN_COMPONENT}{PAUSED}"
    ),
    "(ii-f) primitives, from a component naming the catalog file, collector paused": (
        f"{PRIMITIVES_IN_COMPONENT_FILE}{PAUSED}"
    ),
}


def report(medians: dict[str, LoadTimes]) -> list[str]:
    """Table lines: each build's figures and ratios to (ii)."""
    lines = [
        "| build | definitions s | / (ii) | incl. `import dagster` s | / (ii) | snapshot s "
        "| network attempts |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    primitives = medians[PRIMITIVES]
    for label, kind in LABELS.items():
        times = medians[kind]
        lines.append(
            f"| {label} | {times.load:.2f} | {times.load / primitives.load:.2f} | "
            f"{times.process:.2f} | {times.process / primitives.process:.2f} | "
            f"{times.snapshot:.2f} | {times.network_attempts} |"
        )
    return lines


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exports", type=int, default=DEFAULT_EXPORTS)
    parser.add_argument("--datasets", type=int, default=DEFAULT_DATASETS)
    parser.add_argument("--scheduled", type=int, default=DEFAULT_SCHEDULED)
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; exit status 0 when every goal passes."""
    args = parse_args(argv)
    compileall.compile_dir(PROJECT_ROOT / "domo_assets", quiet=1)
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        stem = write_catalog(Path(tmp), args)
        runs: dict[str, list[LoadTimes]] = {kind: [] for kind in BUILDERS}
        for _ in range(args.repeat):  # interleaved, so machine noise hits both alike
            for kind in BUILDERS:
                runs[kind].append(measure(kind, stem))
        phases = run_child(PHASES, str(stem))
    medians = {kind: median_times(times) for kind, times in runs.items()}
    ours, automated = medians[OURS], medians[AUTOMATED]
    print(
        f"Load: {args.exports} exports over {args.datasets} DataSets, {args.scheduled} of them "
        f"on {len(CRONS)} crons; median of {args.repeat} fresh processes each"
    )
    print("\n".join(report(medians)))
    print("\nWhere (i)'s definitions time goes (one process):")
    print("| step | s |\n| --- | ---: |")
    print("\n".join(f"| {step} | {seconds:.2f} |" for step, seconds in phases.items()))
    silent = all(medians[kind].network_attempts == 0 for kind in OWN_BUILDS)
    print()
    ratios = [
        (f"{build} <= {MAX_RATIO:g} x {name}{paused}, {label}", ratio)
        for build, times, floor, name in (
            ("(i)", ours, PRIMITIVES, "(ii)"),
            ("(iii)", medians[COMPONENT], PRIMITIVES_IN_COMPONENT, "(ii-y)"),
            ("(iv)", medians[COMPONENT_CATALOG], PRIMITIVES_IN_COMPONENT_FILE, "(ii-f)"),
        )
        for paused in ("", PAUSED)
        for base in (medians[f"{floor}{paused}"],)
        for label, ratio in (
            ("definitions (dagster pre-imported)", times.load / base.load),
            ("whole process (incl. import dagster)", times.process / base.process),
        )
    ]
    for goal, ratio in ratios:
        print(f"Goal {goal}: ratio {ratio:.2f} -> {'PASS' if ratio <= MAX_RATIO else 'MISS'}")
    print(
        f"For information, (i) / (ii+) (same automation on both sides): "
        f"{ours.load / automated.load:.2f} (definitions), {ours.process / automated.process:.2f} "
        "(whole process)"
    )
    attempts = sum(medians[kind].network_attempts for kind in OWN_BUILDS)
    print(
        f"No network call during load of (i), (iii), (iv): {attempts} attempts -> "
        f"{'PASS' if silent else 'MISS'}"
    )
    return 0 if silent and all(ratio <= MAX_RATIO for _, ratio in ratios) else 1


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == CHILD_FLAG and sys.argv[2] == PHASES:
        child_phases(Path(sys.argv[3]))
    elif len(sys.argv) == 4 and sys.argv[1] == CHILD_FLAG:
        child(sys.argv[2], Path(sys.argv[3]))
    else:
        sys.exit(main())
