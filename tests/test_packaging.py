"""The production package: what `pip install .` ships, proven in a clean virtual environment.

The repository is built as a wheel (``pip wheel --no-deps``, from a copy of the work tree with
its local environments and build output left out) and the wheel is inspected: it holds the
``domo_assets`` package and nothing else (no sandbox, no ``domo_assets_dev``, no demo catalog, no
tests). The wheel is then installed, pinned by constraints.txt and WITHOUT extras, into a fresh
virtual environment that has never seen the dev install, and run there: the code location loads
from a small catalog and materializes one export against the sandbox, while the development
tools (moto, pytest, playwright, domo_assets_dev) cannot be imported. The extras' distributions
(``deploy``: the webserver, PostgreSQL storage and Docker run launcher; ``parquet``: pyarrow) are
not installed either: a catalog without ``parquet:`` loads and exports, one with ``parquet: true``
fails to load naming the extra to install.

pip reaches the package index (or the wheels it has cached); the Domo and S3 traffic of the
materialization stays on loopback (the sandbox).
"""

from __future__ import annotations

import email.parser
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from domo_assets_dev.sandbox import EXPORT_BUCKET, PHARMACY_CLAIMS_ID, Sandbox
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from servers import file_lock

REPO = Path(__file__).resolve().parents[1]
CONSTRAINTS = REPO / "constraints.txt"
PACKAGE = "domo_assets"
# Left out of the copy that is built: local environments, VCS data, build output (setuptools
# would reuse a stale build/ folder) and local secrets. Everything else of the work tree, dev/
# and tests/ included, is in the build context, as it is for `pip install .` in the repository.
SOURCE_IGNORE = (
    ".venv",
    ".git",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".dagster_home",
    ".sandbox.env",
    ".env",
)
# Path parts that belong to the development distribution or the test suite, never to the wheel.
DEV_ONLY_PARTS = frozenset({"sandbox", "domo_assets_dev", "catalogs", "tests", "conftest.py"})
DEMO_CATALOG_NAME = re.compile(r"^exports.*\.ya?ml$")
DEV_ONLY_MODULES = ("moto", "pytest", "playwright", "domo_assets_dev")
DEV_ONLY_DISTRIBUTIONS = frozenset({"moto", "pytest", "playwright"})
# The extras the Dockerfile installs (`.[deploy,parquet,k8s]`): they must bring no development
# tool either.
IMAGE_EXTRAS = ("deploy", "parquet", "k8s")
# What only the extras bring: a production install without them has none of these.
EXTRA_DISTRIBUTIONS = {
    "deploy": frozenset({"dagster-webserver", "dagster-postgres", "dagster-docker"}),
    "parquet": frozenset({"pyarrow"}),
}
EXTRA_MODULES = ("pyarrow", "dagster_webserver", "dagster_postgres", "dagster_docker")
# Not required at all: the library reads S3 with its own S3ReaderResource (boto3).
UNREQUIRED_MODULES = ("dagster_aws",)
PARQUET_EXTRA_MESSAGE = "pip install 'domo_assets[parquet]'"
# The environment of a production process is built from scratch: nothing of the dev venv, the
# sandbox fixture or the developer's shell may leak into it.
STRIPPED_PREFIXES = ("DOMO_", "AWS_", "DAGSTER_")
STRIPPED_VARIABLES = frozenset({"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV"})

EXPORT_NAME = "pharmacy_claims"
EXPORT_PATH = "packaging/pharmacy_claims"
# An unreachable Domo for the tests that only load the code location (loading makes no call).
UNREACHABLE_DOMO_URL = "http://127.0.0.1:9"
PIP_TIMEOUT_SECONDS = 600
COMMAND_TIMEOUT_SECONDS = 300
MISSING_CATALOG_MESSAGE = "DOMO_EXPORTS_FILE is not set"
LOCATION = ("-m", "domo_assets.definitions")

pytestmark = pytest.mark.slow

IMPORT_PROBE = """
import importlib, json, sys
results = {}
for name in sys.argv[1:]:
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as error:
        results[name] = "missing: " + str(error.name)
    else:
        results[name] = getattr(module, "__file__", None) or "namespace package"
print(json.dumps(results))
"""


def run(
    command: Sequence[str],
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = COMMAND_TIMEOUT_SECONDS,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion with its output captured as text."""
    return subprocess.run(
        list(command),
        cwd=cwd,
        env=None if env is None else dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def report(done: subprocess.CompletedProcess[str]) -> str:
    """The tail of a command's output, for an assertion message."""
    return f"exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"


def production_env(dagster_home: Path, **variables: str) -> dict[str, str]:
    """This process's environment without any Domo, AWS, Dagster or Python-path setting, plus
    DAGSTER_HOME and `variables`."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(STRIPPED_PREFIXES) and name not in STRIPPED_VARIABLES
    }
    return {**env, "DAGSTER_HOME": str(dagster_home), **variables}


def write_catalog(folder: Path, region: str, **settings: Any) -> Path:
    """A one-export catalog of the sandbox's Pharmacy Claims DataSet, under its own S3 prefix,
    with the export's further `settings` (e.g. ``parquet=True``)."""
    path = folder / "exports.yaml"
    document = {
        "defaults": {"bucket": EXPORT_BUCKET, "region": region},
        "exports": [
            {
                "name": EXPORT_NAME,
                "dataset_id": PHARMACY_CLAIMS_ID,
                "dataset_name": "Pharmacy Claims",
                "path": EXPORT_PATH,
                **settings,
            }
        ],
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def wheel_names(wheel: Path) -> list[str]:
    """The files of a wheel (directory entries left out)."""
    with zipfile.ZipFile(wheel) as archive:
        return [name for name in archive.namelist() if not name.endswith("/")]


def wheel_requirements(wheel: Path) -> list[Requirement]:
    """The Requires-Dist entries of a wheel's METADATA."""
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        message = email.parser.Parser().parsestr(archive.read(metadata).decode("utf-8"))
    return [Requirement(line) for line in message.get_all("Requires-Dist") or []]


def required_names(requirements: Sequence[Requirement], *extras: str) -> set[str]:
    """The distributions an install with `extras` (or none) pulls in directly."""
    return {
        canonicalize_name(requirement.name)
        for requirement in requirements
        for extra in extras or ("",)
        if requirement.marker is None or requirement.marker.evaluate({"extra": extra})
    }


def site_packages(venv: Path) -> Path:
    """The site-packages folder of a virtual environment."""
    (folder,) = (venv / "lib").glob("python3*/site-packages")
    return folder


# --- fixtures ---------------------------------------------------------------------------------
#
# The copy, the wheel and the production venv take about 50 s to make. They are made once per
# test run, in a folder of the run's own: under pytest-xdist, the workers' common temporary
# folder, where the first worker to need one makes it while the others wait (a file lock) and
# then use it; they only read it. (Not `xdist_group`, which would keep the module on one worker:
# with pytest 9.2, pytest-xdist 3.8's --dist loadgroup silently stops grouping, its issue 1386.)


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This run's folder for the copy, the wheel and the production venv: under pytest-xdist,
    in the parent of the worker's base temporary folder (this run's, shared by its workers)."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    folder = base / "packaging"
    folder.mkdir(exist_ok=True)
    return folder


def made_once(build_dir: Path, name: str, make: Callable[[Path], None]) -> Path:
    """``build_dir/name``, made by ``make(path)`` unless a process of this run already made it.

    One process at a time, under a lock; the made thing is recorded only once `make` returns,
    so after a failure the next process tries again, and fails with its own message."""
    path = build_dir / name
    made = build_dir / f"{name}.made"
    with file_lock(build_dir / "lock"):
        if not made.exists():
            shutil.rmtree(path, ignore_errors=True)
            make(path)
            made.touch()
    return path


@pytest.fixture(scope="module")
def source_tree(build_dir: Path) -> Path:
    """A copy of the work tree as `pip wheel .` sees it, without local environments and build
    output (so a stale build/ folder or another process's build cannot change the result)."""

    def copy(source: Path) -> None:
        shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*SOURCE_IGNORE))

    return made_once(build_dir, "source", copy)


@pytest.fixture(scope="module")
def wheel(build_dir: Path, source_tree: Path) -> Path:
    """The project built as a wheel with `pip wheel --no-deps`."""

    def build(wheel_dir: Path) -> None:
        done = run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(wheel_dir), "."],
            cwd=source_tree,
            timeout=PIP_TIMEOUT_SECONDS,
        )
        assert done.returncode == 0, f"pip wheel failed: {report(done)}"

    (built,) = made_once(build_dir, "wheels", build).glob(f"{PACKAGE}-*.whl")
    return built


@pytest.fixture(scope="module")
def production_venv(build_dir: Path, wheel: Path) -> Path:
    """A fresh virtual environment with the wheel installed as production installs it: pinned
    by constraints.txt, no extras. The environment gets no pip of its own: this process's pip
    installs into it (``--python``), and skips byte-compiling, which together save about half a
    minute and change nothing that is installed."""

    def install(venv: Path) -> None:
        done = run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=build_dir)
        assert done.returncode == 0, f"python -m venv failed: {report(done)}"
        done = run(
            [
                *(sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python")),
                *("install", "--no-compile", "-c", str(CONSTRAINTS), str(wheel)),
            ],
            cwd=build_dir,
            # Without PYTHONPATH: a work tree on it (its domo_assets.egg-info) would make pip
            # take the wheel as installed already, and skip it.
            env=production_env(build_dir),
            timeout=PIP_TIMEOUT_SECONDS,
        )
        assert done.returncode == 0, f"installing the wheel failed: {report(done)}"

    return made_once(build_dir, "production-venv", install)


# --- the wheel --------------------------------------------------------------------------------


def test_wheel_ships_the_domo_assets_package_and_nothing_else(
    source_tree: Path, wheel: Path
) -> None:
    """Every file of domo_assets/ is in the wheel, and nothing else is: not the sandbox, not
    domo_assets_dev, not a demo catalog, not the tests (all of which were in the build context)."""
    assert (source_tree / "dev" / "domo_assets_dev" / "sandbox").is_dir()
    assert (source_tree / "tests" / "conftest.py").is_file()

    names = wheel_names(wheel)
    dist_info = re.compile(rf"^{PACKAGE}-[^/]+\.dist-info/")
    shipped = {name for name in names if not dist_info.match(name)}
    package_files = {
        path.relative_to(source_tree).as_posix()
        for path in (source_tree / PACKAGE).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert shipped == package_files
    assert f"{PACKAGE}/definitions.py" in shipped

    dev_only = [
        name
        for name in names
        if DEV_ONLY_PARTS & set(name.split("/")) or DEMO_CATALOG_NAME.match(name.split("/")[-1])
    ]
    assert dev_only == []
    with zipfile.ZipFile(wheel) as archive:
        (top_level,) = [n for n in archive.namelist() if n.endswith(".dist-info/top_level.txt")]
        assert archive.read(top_level).decode("utf-8").split() == [PACKAGE]


def test_wheel_requirements_bring_no_development_tool(wheel: Path) -> None:
    """Neither a plain install nor the image's extras require moto, pytest or playwright; the
    `dev` extra does (so the check reads the real requirement lists)."""
    requirements = wheel_requirements(wheel)

    plain = required_names(requirements)
    image = required_names(requirements, *IMAGE_EXTRAS)

    assert "dagster" in plain
    assert {"dagster-k8s", "dagster-docker"} <= image - plain
    assert plain & DEV_ONLY_DISTRIBUTIONS == set()
    assert image & DEV_ONLY_DISTRIBUTIONS == set()
    assert required_names(requirements, "dev") & DEV_ONLY_DISTRIBUTIONS


def test_the_webserver_postgres_and_pyarrow_are_extras(wheel: Path) -> None:
    """The library's own requirements leave out what a deployment or Parquet needs: `deploy`
    brings the webserver, PostgreSQL storage and Docker run launcher, `parquet` pyarrow, and
    `dev` (what `make test` installs) both extras."""
    requirements = wheel_requirements(wheel)
    plain = required_names(requirements)

    for extra, distributions in EXTRA_DISTRIBUTIONS.items():
        assert plain & distributions == set(), extra
        assert required_names(requirements, extra) - plain == distributions, extra
    (itself,) = [r for r in requirements if canonicalize_name(r.name) == "domo-assets"]
    assert itself.marker is not None and itself.marker.evaluate({"extra": "dev"})
    assert itself.extras == {"deploy", "parquet"}


# --- the clean production install -------------------------------------------------------------


def test_production_install_cannot_import_the_development_tools(
    production_venv: Path, tmp_path: Path
) -> None:
    """In the production venv, domo_assets comes from the installed wheel, and moto, pytest,
    playwright and domo_assets_dev are not importable."""
    done = run(
        [str(production_venv / "bin" / "python"), "-c", IMPORT_PROBE, PACKAGE, *DEV_ONLY_MODULES],
        cwd=tmp_path,
        env=production_env(tmp_path),
    )

    assert done.returncode == 0, report(done)
    results = json.loads(done.stdout.strip().splitlines()[-1])
    package_file = Path(results.pop(PACKAGE))
    assert package_file.is_relative_to(site_packages(production_venv)), package_file
    assert results == {name: f"missing: {name}" for name in DEV_ONLY_MODULES}


def test_production_install_has_no_extra_and_serves_every_public_name(
    production_venv: Path, tmp_path: Path
) -> None:
    """Without extras, neither pyarrow, the webserver, PostgreSQL storage nor the Docker run
    launcher is installed (nor dagster-aws, which the library does not use), and every name the
    package root serves imports all the same."""
    probe = (
        "import json, domo_assets; "
        "print(json.dumps({n: type(getattr(domo_assets, n)).__name__ "
        "for n in domo_assets.__all__}))"
    )
    modules = run(
        [
            *(str(production_venv / "bin" / "python"), "-c", IMPORT_PROBE),
            *EXTRA_MODULES,
            *UNREQUIRED_MODULES,
        ],
        cwd=tmp_path,
        env=production_env(tmp_path),
    )
    names = run(
        [str(production_venv / "bin" / "python"), "-c", probe],
        cwd=tmp_path,
        env=production_env(tmp_path),
    )

    assert modules.returncode == 0, report(modules)
    missing = json.loads(modules.stdout.strip().splitlines()[-1])
    assert missing == {name: f"missing: {name}" for name in (*EXTRA_MODULES, *UNREQUIRED_MODULES)}
    assert names.returncode == 0, report(names)
    served = json.loads(names.stdout.strip().splitlines()[-1])
    assert {"DomoResource", "DagsterDomoTranslator", "domo_export_assets"} <= set(served)
    assert served["DomoExportsComponent"] != "NoneType"


def test_production_install_refuses_a_parquet_catalog_naming_the_extra(
    production_venv: Path, tmp_path: Path
) -> None:
    """A catalog with `parquet: true` does not load without the `parquet` extra: the error names
    the file, the export, the field and the pip command (no silent CSV-only fallback)."""
    catalog = write_catalog(tmp_path, "us-east-1", parquet=True)
    env = production_env(
        tmp_path,
        DOMO_INSTANCE_URL=UNREACHABLE_DOMO_URL,
        DOMO_DEVELOPER_TOKEN="not-a-real-token",
        DOMO_EXPORTS_FILE=str(catalog),
    )

    done = run(
        [str(production_venv / "bin" / "dagster"), "definitions", "validate", *LOCATION],
        cwd=tmp_path,
        env=env,
    )

    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert PARQUET_EXTRA_MESSAGE in output, report(done)
    assert f"{catalog}: export '{EXPORT_NAME}'" in output, report(done)
    assert "field 'parquet'" in output, report(done)


def test_production_install_loads_the_code_location_and_materializes_an_export(
    production_venv: Path, sandbox: Sandbox, s3: Any, tmp_path: Path
) -> None:
    """With DOMO_INSTANCE_URL, DOMO_DEVELOPER_TOKEN and DOMO_EXPORTS_FILE set, the production
    install validates the definitions and materializes one export end to end (runs import
    boto3 and requests, which loading leaves out): the export succeeds and its
    files and verified manifest are in S3."""
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    sandbox_env = sandbox.env()
    catalog = write_catalog(tmp_path, sandbox_env["AWS_DEFAULT_REGION"])
    env = production_env(tmp_path, **sandbox_env, DOMO_EXPORTS_FILE=str(catalog))
    dagster = str(production_venv / "bin" / "dagster")
    location = LOCATION

    validate = run([dagster, "definitions", "validate", *location], cwd=tmp_path, env=env)
    assert validate.returncode == 0, report(validate)
    materialize = run(
        [dagster, "asset", "materialize", "--select", EXPORT_NAME, *location],
        cwd=tmp_path,
        env=env,
    )
    assert materialize.returncode == 0, report(materialize)

    exports = [e for e in sandbox.control.exports() if e["request"]["path"] == EXPORT_PATH]
    assert [e["status"] for e in exports] == ["success"], exports
    listing = s3.list_objects_v2(Bucket=EXPORT_BUCKET, Prefix=f"{EXPORT_PATH}/")
    keys = [item["Key"] for item in listing.get("Contents", [])]
    assert any("/export/" in key for key in keys), keys
    assert any(key.endswith("/_manifest.json") for key in keys), keys


def test_production_install_without_a_catalog_fails_saying_what_to_set(
    production_venv: Path, tmp_path: Path
) -> None:
    """No default catalog in production: without DOMO_EXPORTS_FILE the code location does not
    load, and the error names the variable to set."""
    env = production_env(
        tmp_path, DOMO_INSTANCE_URL=UNREACHABLE_DOMO_URL, DOMO_DEVELOPER_TOKEN="not-a-real-token"
    )

    done = run(
        [str(production_venv / "bin" / "python"), "-c", "import domo_assets.definitions"],
        cwd=tmp_path,
        env=env,
    )

    assert done.returncode != 0
    assert MISSING_CATALOG_MESSAGE in done.stderr, report(done)
