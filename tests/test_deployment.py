"""The production deployment (deployment/): instance config, compose, Helm values, smoke test.

The fast tests parse and validate the files: the instance configuration against this Dagster
version, the compose file and its secrets, the image (the production package only, no catalog),
the Helm values against the key schema in deployment/helm/schema/, and the export catalog that
compose and Helm must both provide (DOMO_EXPORTS_FILE has no default).

The smoke test (``pytest -m deployment``) runs the deployment for real on this machine:
a throwaway PostgreSQL cluster (installed from apt first if ``initdb`` is missing), the Domo + S3
sandbox, and the three Dagster processes (gRPC code server, daemon, webserver) with
deployment/dagster.yaml as the instance. It materializes one export asset through the
webserver's GraphQL API, as the UI's "Materialize" button does, and checks that the run's
events landed in PostgreSQL and its files in S3.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import pytest
import requests
import yaml
from domo_assets_dev import DEMO_CATALOG
from servers import (
    GraphQL,
    Postgres,
    Processes,
    free_port,
    location_loaded,
    wait_until,
)

REPO = Path(__file__).resolve().parents[1]
DEPLOYMENT = REPO / "deployment"
DAGSTER_YAML = DEPLOYMENT / "dagster.yaml"
RUN_LAUNCHER_YAML = DEPLOYMENT / "docker" / "run_launcher.yaml"
DOCKER = DEPLOYMENT / "docker"
COMPOSE_FILE = DOCKER / "docker-compose.yaml"
DOCKERFILE = DOCKER / "Dockerfile"
DOCKERIGNORE = DOCKER / "Dockerfile.dockerignore"
ENV_EXAMPLE = DOCKER / ".env.example"
DOCKER_WORKSPACE = DOCKER / "workspace.yaml"
HELM_VALUES = DEPLOYMENT / "helm" / "values.yaml"
HELM_SCHEMA_DIR = DEPLOYMENT / "helm" / "schema"
HELM_SUBSET_SCHEMA = HELM_SCHEMA_DIR / "values.subset.schema.json"

PG_ENV_VARS = {
    "hostname": "DAGSTER_PG_HOST",
    "port": "DAGSTER_PG_PORT",
    "username": "DAGSTER_PG_USER",
    "password": "DAGSTER_PG_PASSWORD",
    "db_name": "DAGSTER_PG_DB",
}
CATALOG_FILE_VAR = "DOMO_EXPORTS_FILE"
CODE_LOCATION_ENV_VARS = (
    "DOMO_INSTANCE_URL",
    "DOMO_DEVELOPER_TOKEN",
    "AWS_DEFAULT_REGION",
    CATALOG_FILE_VAR,
)
# The export catalog: compose mounts the folder DOMO_CATALOG_DIR (on the docker host), Helm the
# ConfigMap, both read-only at CATALOG_MOUNT in the image.
CATALOG_DIR_VAR = "DOMO_CATALOG_DIR"
CATALOG_MOUNT = "/opt/dagster/catalog"
CATALOG_CONFIGMAP = "domo-assets-catalog"
# What the image installs: the project with the deployment's extras, never the dev extra.
IMAGE_INSTALL = 'pip install -c constraints.txt ".[deploy,parquet,k8s]"'
# Repository folders that belong to development, never to the image's build context.
DEV_ONLY_FOLDERS = ("dev", "tests")
COMPOSE_SERVICES = {"postgres", "domo-assets", "dagster-webserver", "dagster-daemon"}
# The group of the Docker socket that the daemon mounts (required), and the compose variables
# with a default (the test in podman sets each).
DOCKER_GID_VAR = "DOCKER_GID"
COMPOSE_DEFAULTED_VARS = {
    "DOMO_ASSETS_IMAGE": "domo-assets:latest",
    "POSTGRES_IMAGE": "postgres:15",
    "DAGSTER_WEBSERVER_PORT": "3000",
    "DOCKER_SOCKET": "/var/run/docker.sock",
}
CODE_SERVER_PORT = 4000
CODE_SERVER_COMMAND = [
    "dagster",
    "code-server",
    "start",
    "-h",
    "0.0.0.0",
    "-p",
    str(CODE_SERVER_PORT),
    "-m",
    "domo_assets.definitions",
]
DOMO_POOL = "domo"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY", re.IGNORECASE)
INTERPOLATION = re.compile(r"^\$\{[A-Z0-9_]+(:?[-?][^}]*)?\}$")

# Smoke test.
LOCATION_NAME = "domo_assets"
ASSET_NAME = "pharmacy_claims"
EXPECTED_CHECKS = {"row_count", "s3_objects", "header"}
STARTUP_TIMEOUT_SECONDS = 90.0
RUN_TIMEOUT_SECONDS = 120.0
GRAPHQL_TIMEOUT_SECONDS = 60.0
TERMINAL_RUN_STATUSES = {"SUCCESS", "FAILURE", "CANCELED"}


def read_yaml(path: Path) -> Any:
    """Parse one YAML file."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def required_interpolation(name: str) -> re.Pattern[str]:
    """Compose's ``${NAME:?message}``: compose refuses to start, with the message, while NAME is
    unset or empty."""
    return re.compile(rf"^\$\{{{name}:\?.+\}}$")


def read_env_file(path: Path) -> dict[str, str]:
    """Parse ``KEY=VALUE`` lines (blank lines and ``#`` comments skipped)."""
    env: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip()
    return env


# --- deployment/dagster.yaml ------------------------------------------------------------------


def load_instance_config(dagster_home: Path) -> Mapping[str, Any]:
    """Validate ``dagster_home/dagster.yaml`` as Dagster itself does; return the config."""
    from dagster._core.instance.config import dagster_instance_config

    config, custom_instance_class = dagster_instance_config(str(dagster_home))
    assert custom_instance_class is None
    return config


def test_dagster_yaml_is_valid_instance_config(tmp_path: Path) -> None:
    """This Dagster version accepts deployment/dagster.yaml, with the settings the deployment
    relies on: PostgreSQL from env vars, the run queue and its limits, the pools, monitoring."""
    from dagster._core.instance.config import ConcurrencyConfig, PoolGranularity
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster._serdes import ConfigurableClassData

    shutil.copy(DAGSTER_YAML, tmp_path / "dagster.yaml")
    config = load_instance_config(tmp_path)

    postgres_db = dict(config["storage"]["postgres"]["postgres_db"])
    # SQLAlchemy 2.1 would pick psycopg 3 for a bare `postgresql` scheme; psycopg2 is installed.
    assert postgres_db.pop("scheme") == "postgresql+psycopg2"
    assert {key: value["env"] for key, value in postgres_db.items()} == PG_ENV_VARS
    assert config["telemetry"] == {"enabled": False}
    assert config["run_monitoring"]["enabled"] is True
    assert config["run_monitoring"]["free_slots_after_run_end_seconds"] > 0
    # A dead run worker fails its run, which run retries start again (not its failed steps).
    assert config["run_monitoring"]["max_resume_run_attempts"] == 0
    assert config["run_retries"] == {
        "enabled": True,
        "max_retries": 2,
        "retry_on_asset_or_op_failure": False,
    }

    coordinator_config = config["run_coordinator"]
    coordinator = ConfigurableClassData(
        coordinator_config["module"],
        coordinator_config["class"],
        yaml.safe_dump(coordinator_config.get("config", {})),
    ).rehydrate(QueuedRunCoordinator)
    assert isinstance(coordinator, QueuedRunCoordinator)

    # What DagsterInstance.get_concurrency_config() builds from the same two sections.
    concurrency = ConcurrencyConfig.from_concurrency_settings(
        config["concurrency"], coordinator.get_run_queue_config()
    )
    assert concurrency.run_queue_config is not None
    assert concurrency.run_queue_config.max_concurrent_runs == 10
    assert [limit["key"] for limit in concurrency.run_queue_config.tag_concurrency_limits] == [
        "dagster/backfill"
    ]
    assert concurrency.pool_config.default_pool_limit == 2
    assert concurrency.pool_config.pool_granularity == PoolGranularity.OP


def test_the_images_instance_launches_each_run_in_a_container(tmp_path: Path) -> None:
    """The image's dagster.yaml (deployment/dagster.yaml followed by run_launcher.yaml, as the
    Dockerfile writes it) is valid, with the DockerRunLauncher on the compose network, the code
    location's mounts, an init process, and only variables that compose's .env provides."""
    instance_text = DAGSTER_YAML.read_text(encoding="utf-8") + RUN_LAUNCHER_YAML.read_text(
        encoding="utf-8"
    )
    (tmp_path / "dagster.yaml").write_text(instance_text, encoding="utf-8")
    config = load_instance_config(tmp_path)

    launcher = config["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_docker", "DockerRunLauncher")
    assert launcher["config"]["network"] == {"env": "DAGSTER_RUN_NETWORK"}
    code_location = compose_services()["domo-assets"]
    assert launcher["config"]["container_kwargs"] == {
        "volumes_from": [code_location["container_name"]],
        "init": True,
    }
    example = read_env_file(ENV_EXAMPLE)
    assert set(launcher["config"]["env_vars"]) <= set(example), launcher["config"]["env_vars"]
    assert set(PG_ENV_VARS.values()) | {CATALOG_FILE_VAR} <= set(launcher["config"]["env_vars"])
    daemon = compose_services()["dagster-daemon"]
    assert daemon["env_file"] == [".env"]
    assert (
        daemon["environment"]["DAGSTER_RUN_NETWORK"]
        == read_yaml(COMPOSE_FILE)["networks"]["default"]["name"]
    )
    assert "${DOCKER_SOCKET:-/var/run/docker.sock}:/var/run/docker.sock" in daemon["volumes"]
    assert code_location["environment"]["DAGSTER_CONTAINER_IMAGE"] == code_location["image"]
    assert "run_launcher.yaml" in " ".join(dockerfile_arguments()["COPY"])


def test_run_limits_belong_under_concurrency_runs(tmp_path: Path) -> None:
    """Why dagster.yaml keeps max_concurrent_runs out of the run coordinator: with a
    `concurrency:` block, this Dagster version rejects run limits in both places."""
    from dagster._core.errors import DagsterInvalidConfigError

    config = read_yaml(DAGSTER_YAML)
    config["run_coordinator"]["config"]["max_concurrent_runs"] = 5
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")

    with pytest.raises(DagsterInvalidConfigError, match="max_concurrent_runs"):
        load_instance_config(tmp_path)


# --- deployment/docker/ -----------------------------------------------------------------------


def compose_services() -> dict[str, dict[str, Any]]:
    """The services of the compose file."""
    return read_yaml(COMPOSE_FILE)["services"]


def test_compose_file_has_the_four_services() -> None:
    """postgres, the code location, the webserver and the daemon; the last two load the code
    location from the gRPC server named in deployment/docker/workspace.yaml."""
    services = compose_services()
    assert set(services) == COMPOSE_SERVICES

    code_location = services["domo-assets"]
    assert code_location["build"]["dockerfile"] == "deployment/docker/Dockerfile"
    assert (DOCKER / code_location["build"]["context"] / "deployment/docker/Dockerfile").is_file()
    assert "grpc-health-check" in code_location["healthcheck"]["test"]

    (server,) = [entry["grpc_server"] for entry in read_yaml(DOCKER_WORKSPACE)["load_from"]]
    assert server == {
        "host": "domo-assets",
        "port": CODE_SERVER_PORT,
        "location_name": "domo_assets",
    }
    for name, binary in (
        ("dagster-webserver", "dagster-webserver"),
        ("dagster-daemon", "dagster-daemon"),
    ):
        service = services[name]
        assert service["command"][0] == binary
        assert "/opt/dagster/workspace.yaml" in service["command"]
        assert "./workspace.yaml:/opt/dagster/workspace.yaml:ro" in service["volumes"]
        assert service["depends_on"]["domo-assets"]["condition"] == "service_healthy"
        # The same image as the code location: one Dagster version everywhere.
        assert service["image"] == code_location["image"]
    assert services["dagster-webserver"]["ports"] == [
        "127.0.0.1:${DAGSTER_WEBSERVER_PORT:-3000}:3000"
    ]


def test_compose_secrets_come_only_from_the_env_file() -> None:
    """The code location reads the git-ignored .env; every other secret-looking variable is an
    interpolation from it, and no value of .env.example appears in the compose file."""
    services = compose_services()
    assert services["domo-assets"]["env_file"] == [".env"]
    for name, service in services.items():
        for variable, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(variable):
                assert INTERPOLATION.match(str(value)), f"{name}: {variable} is a literal"

    compose_text = COMPOSE_FILE.read_text(encoding="utf-8")
    for variable, value in read_env_file(ENV_EXAMPLE).items():
        if SECRET_NAME.search(variable):
            assert value not in compose_text, f"{variable}'s example value is in the compose file"

    ignored = (REPO / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "deployment/docker/.env" in ignored


def test_env_example_defines_every_variable_with_fake_values() -> None:
    """.env.example names every variable that dagster.yaml, the compose file and the code
    location need, and its secrets are obviously fake."""
    example = read_env_file(ENV_EXAMPLE)
    # `$${NAME}` is compose's escape for a variable of the container's own shell.
    compose_text = COMPOSE_FILE.read_text(encoding="utf-8")
    referenced = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", compose_text))
    required = set(PG_ENV_VARS.values()) | {CATALOG_DIR_VAR, CATALOG_FILE_VAR, DOCKER_GID_VAR}
    assert referenced == required | set(COMPOSE_DEFAULTED_VARS)
    for variable, default in COMPOSE_DEFAULTED_VARS.items():
        assert f"${{{variable}:-{default}}}" in compose_text, variable
    needed = set(PG_ENV_VARS.values()) | set(CODE_LOCATION_ENV_VARS) | {CATALOG_DIR_VAR}
    needed |= {DOCKER_GID_VAR}
    assert needed <= set(example), needed - set(example)

    for variable, value in example.items():
        if SECRET_NAME.search(variable):
            assert "fake" in value or "EXAMPLE" in value, f"{variable}={value} looks real"


def test_compose_mounts_the_required_catalog() -> None:
    """The code location gets an export catalog or compose does not start: the catalog folder
    (DOMO_CATALOG_DIR) is bind-mounted read-only and never created empty, DOMO_EXPORTS_FILE is a
    required variable, and .env.example points it at a file inside that mount."""
    code_location = compose_services()["domo-assets"]

    (mount,) = [
        volume
        for volume in code_location["volumes"]
        if isinstance(volume, dict) and volume["target"] == CATALOG_MOUNT
    ]
    assert mount["type"] == "bind"
    assert required_interpolation(CATALOG_DIR_VAR).match(mount["source"]), mount["source"]
    assert mount["read_only"] is True
    assert mount["bind"] == {"create_host_path": False}
    catalog_file = code_location["environment"][CATALOG_FILE_VAR]
    assert required_interpolation(CATALOG_FILE_VAR).match(catalog_file), catalog_file

    example = read_env_file(ENV_EXAMPLE)
    assert example[CATALOG_DIR_VAR]
    assert PurePosixPath(example[CATALOG_FILE_VAR]).is_relative_to(CATALOG_MOUNT)
    assert PurePosixPath(example[CATALOG_FILE_VAR]).suffix in {".yaml", ".yml"}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, arguments = line.partition(" ")
            instructions.append((instruction.upper(), arguments.strip()))
    return instructions


def dockerfile_arguments() -> dict[str, list[str]]:
    """The arguments of each Dockerfile instruction, in order, by instruction name."""
    by_name: dict[str, list[str]] = {}
    for instruction, arguments in dockerfile_instructions():
        by_name.setdefault(instruction, []).append(arguments)
    return by_name


def copied_sources() -> list[str]:
    """The build-context paths the Dockerfile's COPY instructions read."""
    return [
        source for arguments in dockerfile_arguments()["COPY"] for source in arguments.split()[:-1]
    ]


def dockerignore_includes() -> list[str]:
    """The paths Dockerfile.dockerignore lets into the build context: its ``!`` lines, after a
    leading ``*`` that excludes everything else."""
    lines = [line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    assert patterns[0] == "*", "the build context must start from nothing"
    return [pattern[1:].rstrip("/") for pattern in patterns if pattern.startswith("!")]


def test_dockerfile_builds_a_non_root_code_server_image() -> None:
    """python:3.11-slim (the ARG BASE's default), the project installed against the lock file, a
    non-root user, and the code server as the default command (a CMD: Kubernetes passes `args`, see the Dockerfile)."""
    instructions = dockerfile_instructions()
    by_name = dockerfile_arguments()

    # The official image by default; tests/test_containers.py builds on a Debian one.
    assert by_name["FROM"] == ["${BASE}"]
    assert by_name["ARG"][0] == "BASE=python:3.11-slim"
    assert instructions[0] == ("ARG", "BASE=python:3.11-slim")
    assert any("pip install -c constraints.txt" in run for run in by_name["RUN"])
    user = by_name["USER"][-1].split(":")[0]
    assert user not in {"root", "0"}
    assert [name for name, _ in instructions].index("USER") > max(
        index for index, (name, _) in enumerate(instructions) if name == "RUN"
    ), "every RUN runs before switching to the non-root user"
    assert json.loads(by_name["CMD"][-1]) == CODE_SERVER_COMMAND
    assert "ENTRYPOINT" not in by_name

    for source in copied_sources():
        assert (REPO / source).exists(), f"COPY source {source} is missing"


def test_image_ships_the_production_package_without_a_catalog() -> None:
    """The image installs `.[deploy,parquet,k8s]` (not the dev extra) from a build context that
    holds exactly what the Dockerfile copies: no dev/ (sandbox, demo catalogs), no tests/. It
    bakes in no catalog and no DOMO_EXPORTS_FILE, so the deployment has to provide both."""
    by_name = dockerfile_arguments()
    copied = copied_sources()

    assert any(IMAGE_INSTALL in run for run in by_name["RUN"])
    assert sorted(copied) == sorted(dockerignore_includes())
    assert [source for source in copied if PurePosixPath(source).parts[0] in DEV_ONLY_FOLDERS] == []
    for folder in DEV_ONLY_FOLDERS:
        assert (REPO / folder).is_dir(), f"{folder}/ exists, so leaving it out means something"
    settings = [*by_name.get("ENV", []), *by_name.get("ARG", [])]
    assert [setting for setting in settings if CATALOG_FILE_VAR in setting] == []


# --- deployment/helm/ -------------------------------------------------------------------------


def override_schema(schema: Any) -> Any:
    """`schema` turned into a schema for an override file, which helm merges over the chart's
    defaults: `required` dropped, and references outside the document (Kubernetes definitions
    on the network) replaced by "anything"."""
    if isinstance(schema, dict):
        result = {}
        for key, value in schema.items():
            if key == "required" and isinstance(value, list):
                continue
            if key == "$ref" and isinstance(value, str) and not value.startswith("#"):
                continue
            result[key] = override_schema(value)
        return result
    if isinstance(schema, list):
        return [override_schema(item) for item in schema]
    return schema


def schema_errors(values: Any, schema: Mapping[str, Any]) -> list[str]:
    """Every validation error of `values` against `schema`, as ``path: message``."""
    validator_class = jsonschema.validators.validator_for(
        schema, default=jsonschema.Draft202012Validator
    )
    validator_class.check_schema(schema)
    validator = validator_class(override_schema(schema))
    return [f"{error.json_path}: {error.message}" for error in validator.iter_errors(values)]


def helm_schemas() -> list[Path]:
    """The schemas in deployment/helm/schema/: the project's key schema and, if someone
    vendored it, the chart's own values.schema.json."""
    return sorted(HELM_SCHEMA_DIR.glob("*.schema.json"))


@pytest.mark.parametrize("schema_path", helm_schemas(), ids=lambda path: path.name)
def test_helm_values_match_the_chart_schema(schema_path: Path) -> None:
    """deployment/helm/values.yaml uses only keys of the Dagster chart, with the chart's types."""
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    assert schema_errors(read_yaml(HELM_VALUES), schema) == []


def test_helm_key_schema_rejects_typos_and_bad_values() -> None:
    """The key schema has teeth: a misspelt key, an unknown granularity and a Kubernetes-invalid
    deployment name are each reported."""
    values = read_yaml(HELM_VALUES)
    values["dagster-user-deployments"]["deployments"][0]["envSecret"] = [{"name": "x"}]
    values["concurrency"]["pools"]["granularity"] = "step"
    values["dagster-user-deployments"]["deployments"][0]["name"] = "domo_assets"

    errors = schema_errors(values, json.loads(HELM_SUBSET_SCHEMA.read_text(encoding="utf-8")))

    assert any("'envSecret' was unexpected" in error for error in errors), errors
    assert any("granularity" in error for error in errors), errors
    assert any(".name" in error and "does not match" in error for error in errors), errors


def test_override_schema_ignores_required_keys_and_remote_references() -> None:
    """A chart schema checks merged values: for an override file, its `required` lists and its
    remote Kubernetes references are dropped, everything else still applies."""
    chart_like = {
        "type": "object",
        "properties": {
            "affinity": {"$ref": "https://example.invalid/k8s.json#/definitions/Affinity"},
            "telemetry": {
                "type": "object",
                "properties": {"enabled": {"type": "boolean"}},
                "required": ["enabled"],
                "additionalProperties": False,
            },
        },
        "required": ["telemetry", "affinity"],
    }

    assert schema_errors({}, chart_like) == []
    assert schema_errors({"affinity": {"anything": 1}}, chart_like) == []
    assert len(schema_errors({"telemetry": {"enabled": "no", "extra": 1}}, chart_like)) == 2


def test_helm_values_wire_the_deployment() -> None:
    """The Helm values run our image as the code location with its secrets from a Kubernetes
    Secret, launch runs as pods, and set the same run and pool limits as dagster.yaml."""
    values = read_yaml(HELM_VALUES)
    instance = read_yaml(DAGSTER_YAML)

    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["codeServerArgs"] == CODE_SERVER_COMMAND[-2:]
    assert deployment["port"] == CODE_SERVER_PORT
    assert deployment["envSecrets"] == [{"name": "domo-assets-env"}]
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
    assert values["generatePostgresqlPasswordSecret"] is False
    assert (
        values["postgresql"]["postgresqlScheme"]
        == instance["storage"]["postgres"]["postgres_db"]["scheme"]
    )
    assert "postgresqlPassword" not in values["postgresql"]
    assert values["telemetry"] == {"enabled": False}

    daemon = values["dagsterDaemon"]
    monitoring, retries = instance["run_monitoring"], instance["run_retries"]
    assert daemon["runMonitoring"]["pollIntervalSeconds"] == monitoring["poll_interval_seconds"]
    assert daemon["runRetries"] == {
        "enabled": retries["enabled"],
        "maxRetries": retries["max_retries"],
        "retryOnAssetOrOpFailure": retries["retry_on_asset_or_op_failure"],
    }

    concurrency = values["concurrency"]
    assert concurrency["enabled"] is True
    assert concurrency["pools"]["defaultLimit"] == instance["concurrency"]["pools"]["default_limit"]
    assert concurrency["pools"]["granularity"] == instance["concurrency"]["pools"]["granularity"]
    assert (
        concurrency["runs"]["maxConcurrentRuns"]
        == instance["concurrency"]["runs"]["max_concurrent_runs"]
    )
    assert (
        concurrency["runs"]["tagConcurrencyLimits"]
        == instance["concurrency"]["runs"]["tag_concurrency_limits"]
    )


def test_helm_values_mount_the_catalog_from_a_configmap() -> None:
    """The code server, and every run pod (includeConfigInLaunchedRuns passes env, volumes and
    mounts on), gets the catalog: the ConfigMap mounted read-only as a folder, DOMO_EXPORTS_FILE
    naming a file in it (the same path as compose's), and the README creates that ConfigMap."""
    (deployment,) = read_yaml(HELM_VALUES)["dagster-user-deployments"]["deployments"]

    env = {item["name"]: item["value"] for item in deployment["env"]}
    volumes = {volume["name"]: volume for volume in deployment["volumes"]}
    (mount,) = [m for m in deployment["volumeMounts"] if m["mountPath"] == CATALOG_MOUNT]
    assert mount["readOnly"] is True
    # A folder, not a subPath: a catalog's `include`s are beside it, and ConfigMap edits arrive.
    assert "subPath" not in mount
    assert volumes[mount["name"]]["configMap"]["name"] == CATALOG_CONFIGMAP
    assert env[CATALOG_FILE_VAR] == read_env_file(ENV_EXAMPLE)[CATALOG_FILE_VAR]
    assert PurePosixPath(env[CATALOG_FILE_VAR]).is_relative_to(CATALOG_MOUNT)
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}
    readme = (DEPLOYMENT / "README.md").read_text(encoding="utf-8")
    assert f"create configmap {CATALOG_CONFIGMAP}" in readme


def test_helm_targets_the_installed_dagster_version() -> None:
    """The chart version of the VERSION note and of values.yaml's install command is the
    installed Dagster's: bumping Dagster means re-checking the Helm values."""
    from dagster.version import __version__

    note = (HELM_SCHEMA_DIR / "VERSION").read_text(encoding="utf-8")
    assert re.search(rf"^chart: dagster {re.escape(__version__)}$", note, re.MULTILINE)
    assert f"--version {__version__}" in HELM_VALUES.read_text(encoding="utf-8")


# --- smoke test: PostgreSQL -------------------------------------------------------------------


# --- smoke test: GraphQL ----------------------------------------------------------------------

ASSET_CHECKS_QUERY = """
query AssetChecks($assetKeys: [AssetKeyInput!]) {
  assetNodes(assetKeys: $assetKeys) {
    assetKey { path }
    assetChecksOrError { __typename ... on AssetChecks { checks { name } } }
  }
}
"""

LAUNCH_RUN_MUTATION = """
mutation LaunchPipelineExecution($executionParams: ExecutionParams!) {
  launchPipelineExecution(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on Error { message }
    ... on PythonError { stack }
  }
}
"""

RUN_STATUS_QUERY = """
query RunStatus($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { status }
    ... on Error { message }
  }
}
"""

RUN_LOGS_QUERY = """
query RunLogs($runId: ID!) {
  logsForRun(runId: $runId) {
    __typename
    ... on EventConnection {
      events {
        __typename
        ... on MessageEvent { message stepKey }
        ... on ErrorEvent { error { message stack causes { className message stack } } }
      }
    }
    ... on Error { message }
  }
}
"""


def run_failure_report(graphql: GraphQL, run_id: str) -> str:
    """The run's error events, each with its error's causes and the innermost stack's tail."""
    logs = graphql(RUN_LOGS_QUERY, {"runId": run_id})["logsForRun"]
    lines = []
    for event in logs.get("events", []):
        error = event.get("error")
        if not error:
            continue
        lines.append(f"{event['__typename']}: {event.get('message')}")
        innermost = error
        for cause in error.get("causes") or []:
            lines.append(f"  caused by {cause.get('className')}: {cause['message'].strip()}")
            innermost = cause
        lines.extend(f"    {line.rstrip()}" for line in (innermost.get("stack") or [])[-4:])
    return "\n".join(lines) or json.dumps(logs)[:4000]


# --- smoke test -------------------------------------------------------------------------------


def sandbox_env(
    processes: Processes, base_env: Mapping[str, str], env_file: Path
) -> dict[str, str]:
    """Start ``python -m domo_assets_dev.sandbox``; return the environment it writes once ready."""
    processes.start(
        "sandbox",
        [
            sys.executable,
            "-m",
            "domo_assets_dev.sandbox",
            "--port",
            "0",
            "--s3-port",
            "0",
            "--env-file",
            str(env_file),
        ],
        base_env,
    )
    wait_until(env_file.exists, "the sandbox's env file", STARTUP_TIMEOUT_SECONDS, processes)
    return read_env_file(env_file)


def dagster_binary(name: str) -> str:
    """A console script of this environment (next to its python)."""
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else name


def grpc_server_healthy(port: int, env: Mapping[str, str]) -> bool:
    """``dagster api grpc-health-check`` against the code server."""
    result = subprocess.run(
        [dagster_binary("dagster"), "api", "grpc-health-check", "-h", "127.0.0.1", "-p", str(port)],
        env=dict(env),
        capture_output=True,
        timeout=60,
    )
    return result.returncode == 0


def webserver_up(url: str, session: requests.Session) -> bool:
    """Whether the webserver answers ``/server_info``."""
    try:
        return session.get(f"{url}/server_info", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def check_instance_loads(dagster_home: Path, env: Mapping[str, str]) -> None:
    """Load the instance as the processes will (DagsterInstance.from_config, PostgreSQL
    storage); this also creates the schema once, before three processes race to."""
    from dagster import DagsterInstance
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

    saved = dict(os.environ)
    os.environ.update(env)
    try:
        with DagsterInstance.from_config(str(dagster_home)) as instance:
            assert isinstance(instance.run_storage, PostgresRunStorage)
            assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
            assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
            assert instance.run_monitoring_enabled
            assert not instance.telemetry_enabled
            assert instance.get_concurrency_config().pool_config.default_pool_limit == 2
    finally:
        os.environ.clear()
        os.environ.update(saved)


def launch_asset_run(graphql: GraphQL) -> str:
    """Launch a materialization of ASSET_NAME and its checks as the UI does; return the run id."""
    asset_key = {"path": [ASSET_NAME]}
    (node,) = graphql(ASSET_CHECKS_QUERY, {"assetKeys": [asset_key]})["assetNodes"]
    checks = {check["name"] for check in node["assetChecksOrError"]["checks"]}
    assert checks >= EXPECTED_CHECKS, checks
    result = graphql(
        LAUNCH_RUN_MUTATION,
        {
            "executionParams": {
                "mode": "default",
                "runConfigData": {},
                "executionMetadata": {"tags": []},
                "selector": {
                    "repositoryLocationName": LOCATION_NAME,
                    "repositoryName": "__repository__",
                    "pipelineName": "__ASSET_JOB",
                    "assetSelection": [asset_key],
                    "assetCheckSelection": [
                        {"assetKey": asset_key, "name": name} for name in sorted(checks)
                    ],
                },
            }
        },
    )["launchPipelineExecution"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return result["run"]["runId"]


def wait_for_run(graphql: GraphQL, run_id: str, processes: Processes) -> str:
    """Poll the run's status until it is terminal; return it."""

    def terminal_status() -> str | None:
        run = graphql(RUN_STATUS_QUERY, {"runId": run_id})["runOrError"]
        assert run["__typename"] == "Run", run
        return run["status"] if run["status"] in TERMINAL_RUN_STATUSES else None

    return wait_until(terminal_status, f"run {run_id}", RUN_TIMEOUT_SECONDS, processes)


def run_events(postgres: Postgres, run_id: str) -> list[Any]:
    """The run's event log entries, read back from PostgreSQL's event_logs table."""
    from dagster._core.events.log import EventLogEntry
    from dagster._serdes import deserialize_value

    with contextlib.closing(postgres.connect()) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT event FROM event_logs WHERE run_id = %s ORDER BY id", (run_id,))
        return [deserialize_value(row[0], EventLogEntry) for row in cursor.fetchall()]


def events_of_type(entries: Sequence[Any], event_type: Any) -> list[Any]:
    """The event-specific data of the entries of one DagsterEventType."""
    return [
        entry.dagster_event.event_specific_data
        for entry in entries
        if entry.dagster_event is not None and entry.dagster_event.event_type == event_type
    ]


def stored_run_status(postgres: Postgres, run_id: str) -> str | None:
    """The run's status in PostgreSQL's runs table."""
    with contextlib.closing(postgres.connect()) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,))
        row = cursor.fetchone()
    return row[0] if row else None


def pool_slots(postgres: Postgres, pool: str) -> int:
    """How many slots PostgreSQL holds for a pool."""
    with contextlib.closing(postgres.connect()) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM concurrency_slots WHERE concurrency_key = %s", (pool,))
        return cursor.fetchone()[0]


def exported_keys(env: Mapping[str, str]) -> list[str]:
    """The S3 keys under the asset's destination (from the bundled catalog) in the sandbox."""
    import boto3
    from domo_assets_dev import DEMO_CATALOG

    from domo_assets.catalog import load_catalog

    (config,) = [c for c in load_catalog(DEMO_CATALOG).exports if c.name == ASSET_NAME]
    client = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )
    try:
        listing = client.list_objects_v2(Bucket=config.bucket, Prefix=f"{config.path}/")
    finally:
        client.close()
    return [f"s3://{config.bucket}/{item['Key']}" for item in listing.get("Contents", [])]


@pytest.mark.deployment
@pytest.mark.slow
def test_deployment_smoke(postgres: Postgres, tmp_path: Path) -> None:
    """PostgreSQL + sandbox + code server + daemon + webserver, with deployment/dagster.yaml:
    one export asset materialized through GraphQL ends in SUCCESS, with its events (the
    materialization and both checks) in PostgreSQL and its files in S3."""
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(DAGSTER_YAML, dagster_home / "dagster.yaml")
    base_env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DAGSTER_", "DOMO_", "AWS_"))
    }
    base_env["PYTHONUNBUFFERED"] = "1"
    grpc_port, webserver_port = free_port(), free_port()
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        yaml.safe_dump(
            {
                "load_from": [
                    {
                        "grpc_server": {
                            "host": "127.0.0.1",
                            "port": grpc_port,
                            "location_name": LOCATION_NAME,
                        }
                    }
                ]
            }
        ),
        encoding="utf-8",
    )

    with Processes(tmp_path) as processes, requests.Session() as session:
        session.trust_env = False
        env = {
            **base_env,
            **sandbox_env(processes, base_env, tmp_path / "sandbox.env"),
            **postgres.env(),
            "DAGSTER_HOME": str(dagster_home),
            "DOMO_EXPORTS_FILE": str(DEMO_CATALOG),
        }
        check_instance_loads(dagster_home, env)

        dagster = dagster_binary("dagster")
        processes.start(
            "code-server",
            [
                *(dagster, "code-server", "start", "-h", "127.0.0.1", "-p", str(grpc_port)),
                *("-m", "domo_assets.definitions", "--location-name", LOCATION_NAME),
            ],
            env,
        )
        wait_until(
            lambda: grpc_server_healthy(grpc_port, env),
            "the code server",
            STARTUP_TIMEOUT_SECONDS,
            processes,
        )
        processes.start(
            "daemon", [dagster_binary("dagster-daemon"), "run", "-w", str(workspace)], env
        )
        processes.start(
            "webserver",
            [
                *(dagster_binary("dagster-webserver"), "-h", "127.0.0.1"),
                *("-p", str(webserver_port), "-w", str(workspace)),
            ],
            env,
        )
        url = f"http://127.0.0.1:{webserver_port}"
        wait_until(
            lambda: webserver_up(url, session), "the webserver", STARTUP_TIMEOUT_SECONDS, processes
        )
        graphql = GraphQL(f"{url}/graphql", session, GRAPHQL_TIMEOUT_SECONDS)
        wait_until(
            lambda: location_loaded(graphql, LOCATION_NAME),
            "the code location",
            STARTUP_TIMEOUT_SECONDS,
            processes,
        )

        run_id = launch_asset_run(graphql)
        status = wait_for_run(graphql, run_id, processes)
        assert status == "SUCCESS", (
            f"run {run_id} ended {status}:\n{run_failure_report(graphql, run_id)}\n"
            f"{processes.diagnostics()}"
        )

        from dagster import AssetKey, DagsterEventType

        entries = run_events(postgres, run_id)
        materializations = events_of_type(entries, DagsterEventType.ASSET_MATERIALIZATION)
        assert [m.materialization.asset_key for m in materializations] == [AssetKey(ASSET_NAME)]
        evaluations = events_of_type(entries, DagsterEventType.ASSET_CHECK_EVALUATION)
        assert {e.check_name: e.passed for e in evaluations} == dict.fromkeys(EXPECTED_CHECKS, True)
        assert {e.asset_key for e in evaluations} == {AssetKey(ASSET_NAME)}
        assert events_of_type(entries, DagsterEventType.RUN_SUCCESS)
        assert stored_run_status(postgres, run_id) == "SUCCESS"
        default_limit = read_yaml(DAGSTER_YAML)["concurrency"]["pools"]["default_limit"]
        assert pool_slots(postgres, DOMO_POOL) == default_limit, "the `domo` pool's slots"
        assert exported_keys(env), f"no export files of {ASSET_NAME} in the sandbox's S3"
