"""Helpers shared by the tests that run real materializations against the sandbox."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from dagster import AssetKey, DagsterInstance, RetryPolicy, materialize
from dagster._core.execution.execute_in_process_result import ExecuteInProcessResult
from domo_assets_dev.sandbox import EXPORT_BUCKET, Sandbox

from domo_assets.assets import build_export_assets, build_partitioned_export_assets
from domo_assets.catalog import Catalog, ExportConfig, load_catalog
from domo_assets.parquet_assets import build_parquet_assets
from domo_assets.quality import build_quality_checks
from domo_assets.resource import AwsCredentialsResource, DomoResource
from domo_assets.translator import DagsterDomoTranslator, translate

DESTINATION = {"bucket": EXPORT_BUCKET, "region": "us-east-1"}
# Poll quickly: sandbox exports take a fraction of a second.
FAST_POLLING = {"poll_initial_interval": 0.1, "poll_max_interval": 0.3, "backoff_max": 1.0}


def dataset_key(config: ExportConfig) -> AssetKey:
    """The key of an export's DataSet node, as the default translator gives it."""
    return DagsterDomoTranslator().get_dataset_spec(config).key


def write_catalog(
    tmp_path: Path, *entries: Mapping[str, Any], defaults: Mapping[str, Any] = DESTINATION
) -> Catalog:
    """Write a catalog file of these entries and load it."""
    path = tmp_path / "exports.yaml"
    path.write_text(
        yaml.safe_dump({"defaults": dict(defaults), "exports": [dict(e) for e in entries]})
    )
    return load_catalog(path)


def domo_resource(sandbox: Sandbox, token: str | None = None, **settings: Any) -> DomoResource:
    """A DomoResource for the sandbox, polling quickly."""
    return DomoResource(
        instance_url=sandbox.domo_url,
        developer_token=token or sandbox.token,
        **{**FAST_POLLING, **settings},
    )


def materialize_catalog(
    catalog: Catalog,
    instance: DagsterInstance,
    domo: DomoResource,
    *,
    selection: Sequence[str] | None = None,
    partition_key: str | None = None,
    retry_policy: RetryPolicy | None = None,
    credentials: AwsCredentialsResource | None = None,
) -> ExecuteInProcessResult:
    """Materialize a catalog's exports (or a selection, or one partition) in process."""
    specs = translate(catalog)
    assets = [
        *specs.datasets,
        *(
            [build_export_assets(specs, retry_policy=retry_policy)]
            if any(e.partition is None for e in catalog.exports)
            else []
        ),
        *build_partitioned_export_assets(specs, retry_policy=retry_policy),
        *build_parquet_assets(specs),
        *build_quality_checks(specs),
    ]
    if credentials is not None:
        domo = domo.with_nested(aws_credentials=credentials)
    return materialize(
        assets,
        resources={"domo": domo},
        instance=instance,
        selection=selection,
        partition_key=partition_key,
        raise_on_error=False,
    )


def materializations(result: ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    """Each materialized asset's metadata values, by asset name."""
    return {
        event.materialization.asset_key.to_user_string(): {
            key: value.value for key, value in event.materialization.metadata.items()
        }
        for event in result.get_asset_materialization_events()
    }


def metadata_of(result: ExecuteInProcessResult, name: str) -> dict[str, Any]:
    """One asset's materialization metadata values; fails when it was not materialized."""
    found = materializations(result)
    assert name in found, f"{name} was not materialized"
    return found[name]


def check_outcomes(result: ExecuteInProcessResult) -> dict[tuple[str, str], bool]:
    """Whether each (asset, check) passed."""
    return {
        (e.asset_key.to_user_string(), e.check_name): e.passed
        for e in result.get_asset_check_evaluations()
    }


def refused_checks(result: ExecuteInProcessResult) -> dict[tuple[str, str], dict[str, Any]]:
    """Each refused export's verdicts, by (export, check), from the step failures' metadata
    (``refused_checks``): a refused export records no check result."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for event in result.all_events:
        if event.event_type_value != "STEP_FAILURE":
            continue
        data = event.step_failure_data.user_failure_data
        entry = data.metadata.get("refused_checks") if data is not None else None
        for name, verdicts in (entry.value if entry is not None else {}).items():
            for verdict in verdicts:
                found[(name, verdict["check"])] = verdict
    return found


def refused_outcomes(result: ExecuteInProcessResult) -> dict[tuple[str, str], bool]:
    """Whether each (export, check) of a refused export passed."""
    return {key: verdict["passed"] for key, verdict in refused_checks(result).items()}


def failure_text(result: ExecuteInProcessResult) -> str:
    """Every step failure's error, as text."""
    return "\n".join(
        str(e.event_specific_data.error)
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE"
    )


def read_json(s3: Any, uri: str) -> Any:
    """The JSON document at an ``s3://`` URI."""
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def log_messages(instance: DagsterInstance, result: ExecuteInProcessResult) -> list[str]:
    """The run's log messages."""
    return [e.user_message or "" for e in instance.all_logs(result.run_id)]


def error_chain(error: BaseException) -> Iterator[BaseException]:
    """An error and the errors it was raised from or during (each once, however they loop)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def caused_by(error: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``error`` is, or came from, an exception of type ``kind``."""
    return any(isinstance(e, kind) for e in error_chain(error))


def error_messages(error: BaseException) -> str:
    """Every message of an exception and of the exceptions it came from."""
    return "\n".join(str(e) for e in error_chain(error))


# The deployment's instance configuration (PostgreSQL storage read from DAGSTER_PG_*).
DEPLOYMENT_DAGSTER_YAML = Path(__file__).resolve().parents[1] / "deployment" / "dagster.yaml"


def deployment_storage() -> dict[str, Any]:
    """The ``storage`` section of the deployment's dagster.yaml."""
    return yaml.safe_load(DEPLOYMENT_DAGSTER_YAML.read_text(encoding="utf-8"))["storage"]


# Where Domo takes export requests (POST) and lists a DataSet's exports (GET).
DOMO_EXPORTS_PATH = "/api/query/v1/export/"


def export_posts(control: Any, dataset_id: str | None = None) -> list[dict[str, Any]]:
    """The export requests (POSTs) the sandbox's Domo received (for one DataSet, if given).

    Args:
        control: The sandbox's ``SandboxControl``.
        dataset_id: Only the POSTs for this DataSet.
    """
    return [
        request
        for request in control.requests()
        if request["method"] == "POST"
        and (
            request["path"] == f"{DOMO_EXPORTS_PATH}{dataset_id}"
            if dataset_id is not None
            else request["path"].startswith(DOMO_EXPORTS_PATH)
        )
    ]
