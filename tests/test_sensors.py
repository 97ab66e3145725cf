"""Automation: the DataSet change sensor, cron schedules and freshness, against the sandbox.

Sensor ticks are evaluated for real (``SensorDefinition.evaluate_tick``, what the daemon calls)
with a real ``DomoResource`` talking HTTP to the sandbox; nothing of the project is mocked.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import (
    AssetKey,
    DagsterInstance,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    Definitions,
    SensorDefinition,
    build_schedule_context,
    build_sensor_context,
)
from dagster._core.definitions.assets.job.asset_job import IMPLICIT_ASSET_JOB_NAME
from dagster._core.definitions.data_version import DATA_VERSION_TAG
from dagster._core.definitions.sensor_definition import SensorExecutionData
from domo_assets_dev import DEMO_CATALOG
from domo_assets_dev.sandbox import Sandbox
from domo_assets_dev.sandbox.datasets import (
    AWKWARD_VALUES_ID,
    DAILY_ORDERS_ID,
    HR_SALARIES_ID,
    LARGE_EVENTS_ID,
    PHARMACY_CLAIMS_ID,
    REGIONAL_SALES_ID,
)
from support import dataset_key

from domo_assets.catalog import Catalog, CatalogError, load_catalog
from domo_assets.location import build_definitions
from domo_assets.resource import DomoResource
from domo_assets.schedules import build_export_schedules
from domo_assets.sensors import SENSOR_NAME, build_change_sensor
from domo_assets.translator import translate

# The sandbox DataSets the analyst's token may read (HR Salaries is hr_admin's only).
READABLE = (
    PHARMACY_CLAIMS_ID,
    AWKWARD_VALUES_ID,
    LARGE_EVENTS_ID,
    DAILY_ORDERS_ID,
    REGIONAL_SALES_ID,
)
DATASOURCE_PATH = "/api/data/v3/datasources/"
DEFAULTS = {"bucket": "domo-exports", "region": "us-east-1"}


def domo(sandbox: Sandbox, token: str | None = None, **settings: Any) -> DomoResource:
    """A resource for the sandbox; no retry backoff worth waiting for in tests."""
    settings.setdefault("backoff_max", 0.1)
    settings.setdefault("poll_initial_interval", 0.1)
    settings.setdefault("poll_max_interval", 0.5)
    return DomoResource(
        instance_url=sandbox.domo_url, developer_token=token or sandbox.token, **settings
    )


def tick(
    sensor: SensorDefinition, resource: DomoResource, cursor: str | None = None
) -> SensorExecutionData:
    """Evaluate one tick as the daemon does: resources initialised, SensorResult unpacked."""
    with (
        DagsterInstance.ephemeral() as instance,
        build_sensor_context(
            cursor=cursor, resources={"domo": resource}, instance=instance
        ) as context,
    ):
        return sensor.evaluate_tick(context)


def write_catalog(tmp_path: Path, exports: list[dict], **sections: Any) -> Catalog:
    path = tmp_path / "exports.yaml"
    path.write_text(yaml.safe_dump({"defaults": DEFAULTS, "exports": exports, **sections}))
    return load_catalog(path)


def export(name: str, dataset_id: str, **keys: Any) -> dict[str, Any]:
    return {"name": name, "dataset_id": dataset_id, "path": f"t/{name}", **keys}


def versions(data: SensorExecutionData) -> dict[str, str | None]:
    return json.loads(data.cursor or "{}")["last_updated"]


def selection(data: SensorExecutionData) -> set[str]:
    (request,) = data.run_requests
    return {key.to_user_string() for key in request.asset_selection or ()}


def sandbox_last_updated(sandbox: Sandbox) -> dict[str, int]:
    return {d["id"]: d["last_updated"] for d in sandbox.control.datasets()}


def datasource_reads(sandbox: Sandbox) -> list[str]:
    return [
        r["path"].removeprefix(DATASOURCE_PATH)
        for r in sandbox.control.requests()
        if r["method"] == "GET" and r["path"].startswith(DATASOURCE_PATH)
    ]


def test_first_tick_records_every_dataset_and_exports_nothing(sandbox: Sandbox) -> None:
    catalog = load_catalog(DEMO_CATALOG)

    data = tick(build_change_sensor(translate(catalog)), domo(sandbox))

    assert data.run_requests == []
    assert "first time" in (data.skip_message or "")
    stored = versions(data)
    assert set(stored) == set(READABLE)
    truth = sandbox_last_updated(sandbox)
    for dataset_id, version in stored.items():
        seen = datetime.fromisoformat(version).timestamp() * 1000
        assert abs(seen - truth[dataset_id]) < 1.5, dataset_id
    observed = {event.asset_key: event.tags[DATA_VERSION_TAG] for event in data.asset_events}
    assert observed == {dataset_key(c): stored[c.dataset_id] for c in catalog.exports}, (
        "one observation per DataSet, its data version the last-updated time"
    )


def test_export_on_first_tick_requests_every_export(tmp_path: Path, sandbox: Sandbox) -> None:
    catalog = write_catalog(
        tmp_path,
        [export("claims", PHARMACY_CLAIMS_ID), export("orders", DAILY_ORDERS_ID)],
        sensor={"export_on_first_tick": True},
    )

    data = tick(build_change_sensor(translate(catalog)), domo(sandbox))

    assert selection(data) == {"claims", "orders"}


def test_no_change_requests_nothing(sandbox: Sandbox) -> None:
    sensor = build_change_sensor(translate(load_catalog(DEMO_CATALOG)))
    first = tick(sensor, domo(sandbox))

    second = tick(sensor, domo(sandbox), first.cursor)

    assert second.run_requests == []
    assert second.asset_events == []
    assert "none changed" in (second.skip_message or "")
    assert versions(second) == versions(first)


def test_changed_dataset_requests_exactly_its_exports(sandbox: Sandbox) -> None:
    sensor = build_change_sensor(translate(load_catalog(DEMO_CATALOG)))
    baseline = tick(sensor, domo(sandbox))
    sandbox.control.change_dataset(PHARMACY_CLAIMS_ID, rows=3)

    data = tick(sensor, domo(sandbox), baseline.cursor)

    assert selection(data) == {"pharmacy_claims", "pharmacy_claims_supply"}
    (event,) = data.asset_events
    assert event.asset_key == AssetKey(["domo", "pharmacy_claims_dataset"])
    assert event.tags[DATA_VERSION_TAG] == versions(data)[PHARMACY_CLAIMS_ID]
    assert versions(data)[PHARMACY_CLAIMS_ID] != versions(baseline)[PHARMACY_CLAIMS_ID]
    retried = tick(sensor, domo(sandbox), baseline.cursor)
    assert retried.run_requests[0].run_key == data.run_requests[0].run_key, (
        "a retried tick must request the same run key, so Dagster does not launch it twice"
    )


def test_cursor_round_trip_over_three_ticks(sandbox: Sandbox) -> None:
    sensor = build_change_sensor(translate(load_catalog(DEMO_CATALOG)))
    first = tick(sensor, domo(sandbox))
    sandbox.control.change_dataset(DAILY_ORDERS_ID)
    sandbox.control.change_dataset(REGIONAL_SALES_ID)

    second = tick(sensor, domo(sandbox), first.cursor)
    third = tick(sensor, domo(sandbox), second.cursor)

    assert len(second.run_requests) == 1, "changes of one tick are batched into one run"
    assert selection(second) == {"daily_orders_by_region", "regional_sales"}
    assert third.run_requests == []
    assert versions(third) == versions(second)
    changed = {k for k in READABLE if versions(second)[k] != versions(first)[k]}
    assert changed == {DAILY_ORDERS_ID, REGIONAL_SALES_ID}


def test_domo_server_error_skips_tick_and_keeps_cursor(sandbox: Sandbox) -> None:
    sensor = build_change_sensor(translate(load_catalog(DEMO_CATALOG)))
    baseline = tick(sensor, domo(sandbox))
    sandbox.control.change_dataset(PHARMACY_CLAIMS_ID)
    sandbox.control.add_fault(
        method="GET", path_regex=DATASOURCE_PATH, action="status", status=503, times=10
    )

    failed = tick(sensor, domo(sandbox, max_retries=1), baseline.cursor)

    assert failed.run_requests == [] and failed.asset_events == []
    assert failed.cursor == baseline.cursor
    reason = failed.skip_message or ""
    assert PHARMACY_CLAIMS_ID in reason and "503" in reason and "Injected fault" in reason
    sandbox.control.clear_faults()
    recovered = tick(sensor, domo(sandbox), failed.cursor)
    assert selection(recovered) == {"pharmacy_claims", "pharmacy_claims_supply"}, (
        "the change seen during the outage is exported once Domo answers again"
    )


def test_wrong_token_skips_tick_naming_the_dataset(sandbox: Sandbox) -> None:
    sensor = build_change_sensor(translate(load_catalog(DEMO_CATALOG)))

    data = tick(sensor, domo(sandbox, token="not-a-valid-token"))

    assert data.run_requests == [] and data.asset_events == []
    assert data.cursor is None
    reason = data.skip_message or ""
    assert "401" in reason and "DOMO_DEVELOPER_TOKEN" in reason
    assert any(dataset_id in reason for dataset_id in READABLE)


def test_unreadable_dataset_skips_the_whole_tick(tmp_path: Path, sandbox: Sandbox) -> None:
    catalog = write_catalog(
        tmp_path, [export("claims", PHARMACY_CLAIMS_ID), export("salaries", HR_SALARIES_ID)]
    )

    data = tick(build_change_sensor(translate(catalog)), domo(sandbox))

    assert data.cursor is None, "the DataSets read before the failure are not half-recorded"
    assert data.asset_events == []
    assert HR_SALARIES_ID in (data.skip_message or "") and "403" in (data.skip_message or "")


def test_budget_reads_at_most_datasets_per_tick(tmp_path: Path, sandbox: Sandbox) -> None:
    exports = [export(f"e{i:03d}", READABLE[i % len(READABLE)]) for i in range(120)]
    catalog = write_catalog(tmp_path, exports, sensor={"datasets_per_tick": 2})
    sensor = build_change_sensor(translate(catalog))
    cursor, read = None, []

    for _ in range(3):
        sandbox.control.clear_requests()
        data = tick(sensor, domo(sandbox), cursor)
        read.append(datasource_reads(sandbox))
        cursor = data.cursor

    assert [len(reads) for reads in read] == [2, 2, 2]
    assert {d for reads in read for d in reads} == set(READABLE), "round-robin covers all"
    assert read[2][1] == read[0][0], "the third tick wraps around to the first DataSet"
    assert set(versions(data)) == set(READABLE)


DAILY_PARTITION = {
    "column": "Order Date",
    "scheme": "daily",
    "start": "2026-11-01",
    "end": "2026-12-01",
}
REGION_PARTITION = {"column": "Region", "scheme": "static", "values": ["East", "West"]}


def test_partitioned_exports_are_never_requested(tmp_path: Path, sandbox: Sandbox) -> None:
    exports = [
        export("orders", DAILY_ORDERS_ID),
        export("orders_daily", DAILY_ORDERS_ID, partition=DAILY_PARTITION),
        export("sales_by_region", REGIONAL_SALES_ID, partition=REGION_PARTITION),
    ]
    eager = build_change_sensor(
        translate(write_catalog(tmp_path, exports, sensor={"export_on_first_tick": True}))
    )
    lazy = build_change_sensor(translate(write_catalog(tmp_path, exports)))

    first = tick(eager, domo(sandbox))
    baseline = tick(lazy, domo(sandbox))
    sandbox.control.change_dataset(REGIONAL_SALES_ID)
    changed = tick(lazy, domo(sandbox), baseline.cursor)

    assert selection(first) == {"orders"}
    assert changed.run_requests == []
    assert "partitioned" in (changed.skip_message or "")
    sales = write_catalog(tmp_path, exports).by_name("sales_by_region")
    assert [e.asset_key for e in changed.asset_events] == [dataset_key(sales)]


def test_partitioned_export_cannot_take_a_schedule(tmp_path: Path) -> None:
    catalog = write_catalog(
        tmp_path,
        [export("orders_daily", DAILY_ORDERS_ID, partition=DAILY_PARTITION, schedule="@daily")],
    )

    with pytest.raises(CatalogError) as info:
        build_export_schedules(translate(catalog))

    message = str(info.value)
    assert "exports.yaml: export 'orders_daily': field 'schedule'" in message
    assert "partitioned" in message


def test_schedules_group_exports_by_cron_and_timezone(tmp_path: Path) -> None:
    path = tmp_path / "exports.yaml"
    document = {
        "defaults": {**DEFAULTS, "schedule": "0 6 * * *"},
        "exports": [
            export("a", PHARMACY_CLAIMS_ID),
            export("b", DAILY_ORDERS_ID),
            export("c", REGIONAL_SALES_ID, timezone="Europe/Paris"),
            export("d", AWKWARD_VALUES_ID, schedule="*/15 * * * *"),
        ],
    }
    path.write_text(yaml.safe_dump(document))
    catalog = load_catalog(path)
    defs = build_definitions(catalog, DomoResource(instance_url="http://127.0.0.1:9"))

    schedules = build_export_schedules(translate(catalog))
    requests = {}
    for schedule in schedules:
        with build_schedule_context() as context:
            (request,) = schedule.evaluate_tick(context).run_requests or ()
        requests[schedule.cron_schedule, schedule.execution_timezone] = request
    found = {
        group: {key.to_user_string() for key in request.asset_selection or ()}
        for group, request in requests.items()
    }

    assert found == {
        ("0 6 * * *", "UTC"): {"a", "b"},
        ("0 6 * * *", "Europe/Paris"): {"c"},
        ("*/15 * * * *", "UTC"): {"d"},
    }
    # Every schedule runs Dagster's implicit asset job: loading resolves no job per schedule.
    assert {s.job_name for s in schedules} == {IMPLICIT_ASSET_JOB_NAME}
    assert defs.get_repository_def().job_names == [IMPLICIT_ASSET_JOB_NAME]
    implicit = defs.resolve_implicit_global_asset_job_def()
    assert all(
        set(r.asset_selection or ()) <= implicit.asset_layer.executable_asset_keys
        for r in requests.values()
    )
    specs = {spec.key.to_user_string(): spec for spec in defs.resolve_all_asset_specs()}
    assert specs["c"].metadata["domo/schedule"] == "0 6 * * * (Europe/Paris)"
    assert specs["d"].metadata["domo/schedule"] == "*/15 * * * * (UTC)"
    assert [s.name for s in schedules] == [
        "domo_exports_schedule_0_6_x_x_x_UTC",
        "domo_exports_schedule_0_6_x_x_x_Europe_Paris",
        "domo_exports_schedule_x_every_15_x_x_x_x_UTC",
    ]
    assert all(s.default_status == DefaultScheduleStatus.RUNNING for s in schedules)


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("schedule", "every day at six", "not a valid cron string"),
        ("schedule", "0 25 * * *", "not a valid cron string"),
        ("timezone", "Mars/Olympus_Mons", "not an IANA timezone"),
        ("max_age", "6 hours", "not a duration"),
        ("max_age", "30s", "1-minute"),
    ],
)
def test_bad_automation_keys_name_file_export_and_field(
    tmp_path: Path, field: str, value: str, words: str
) -> None:
    with pytest.raises(CatalogError) as info:
        write_catalog(tmp_path, [export("claims", PHARMACY_CLAIMS_ID, **{field: value})])

    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'exports.yaml'}: export 'claims' (exports[0]): ")
    assert f"field '{field}'" in message and words in message


def test_bad_sensor_section_is_named(tmp_path: Path) -> None:
    with pytest.raises(CatalogError) as info:
        write_catalog(tmp_path, [export("claims", PHARMACY_CLAIMS_ID)], sensor={"per_tick": 5})

    assert "exports.yaml: sensor: field 'per_tick': unknown key" in str(info.value)


def test_the_sensor_stays_within_domos_rate_guidance(tmp_path: Path) -> None:
    """Domo recommends about 120 requests a minute: the defaults read 50 DataSets a minute, and
    a section that would read faster is refused unless it raises the limit on purpose."""
    claims = [export("claims", PHARMACY_CLAIMS_ID)]
    default = write_catalog(tmp_path, claims).sensor
    assert default.requests_per_minute == 50 <= default.max_requests_per_minute == 120
    with pytest.raises(CatalogError) as info:
        write_catalog(tmp_path, claims, sensor={"datasets_per_tick": 200})
    text = str(info.value)
    assert "exports.yaml: sensor:" in text and "200 Domo requests a minute" in text
    assert "lower datasets_per_tick or raise minimum_interval_seconds" in text
    raised = {"datasets_per_tick": 200, "max_requests_per_minute": 200}
    assert write_catalog(tmp_path, claims, sensor=raised).sensor.requests_per_minute == 200


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("6h", timedelta(hours=6)),
        ("30m", timedelta(minutes=30)),
        ("1d12h", timedelta(hours=36)),
        (5400, timedelta(minutes=90)),
    ],
)
def test_max_age_becomes_a_freshness_policy(
    tmp_path: Path, value: object, expected: object
) -> None:
    catalog = write_catalog(
        tmp_path,
        [export("claims", PHARMACY_CLAIMS_ID, max_age=value), export("orders", DAILY_ORDERS_ID)],
    )

    graph = build_definitions(
        catalog, DomoResource(instance_url="http://127.0.0.1:9")
    ).resolve_asset_graph()

    assert graph.get(AssetKey("claims")).freshness_policy.fail_window.to_timedelta() == expected
    assert graph.get(AssetKey("orders")).freshness_policy is None


def test_definitions_register_sensor_and_schedules() -> None:
    catalog = load_catalog(DEMO_CATALOG)

    defs = build_definitions(catalog, DomoResource(instance_url="http://127.0.0.1:9"))

    sensor = next(s for s in defs.sensors or () if s.name == SENSOR_NAME)
    assert sensor.default_status == DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 60
    assert [(s.cron_schedule, s.execution_timezone) for s in defs.schedules or ()] == [
        ("0 6 * * *", "America/New_York")
    ]
    stopped = catalog.model_copy(
        update={"sensor": catalog.sensor.model_copy(update={"default_status": "stopped"})}
    )
    assert build_change_sensor(translate(stopped)).default_status == DefaultSensorStatus.STOPPED


def test_sensor_requested_run_materializes(sandbox: Sandbox) -> None:
    catalog = load_catalog(DEMO_CATALOG)
    resource = domo(sandbox)
    defs = build_definitions(catalog, resource)
    sensor = next(s for s in defs.sensors or () if s.name == SENSOR_NAME)
    baseline = tick(sensor, resource)
    sandbox.control.change_dataset(AWKWARD_VALUES_ID)
    (request,) = tick(sensor, resource, baseline.cursor).run_requests

    with DagsterInstance.ephemeral() as instance:
        assert sensor.job_name == IMPLICIT_ASSET_JOB_NAME
        result = defs.resolve_job_def(sensor.job_name).execute_in_process(
            instance=instance, asset_selection=request.asset_selection
        )

    assert result.success
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    # The changed DataSet's export, and its Parquet asset, which follows it.
    assert materialized == {AssetKey("awkward_values"), AssetKey("awkward_values_parquet")}
    checks = {
        (e.asset_key.to_user_string(), e.check_name): e.passed
        for e in result.get_asset_check_evaluations()
    }
    assert {name for key, name in checks if key == "awkward_values"} >= {
        "row_count",
        "s3_objects",
        "header",
    }
    assert all(checks.values()), checks
    assert sandbox.control.export_count(AWKWARD_VALUES_ID) == 1
    assert sandbox.control.export_count(PHARMACY_CLAIMS_ID) == 0


def test_observing_a_dataset_records_the_sensors_data_version(sandbox: Sandbox) -> None:
    catalog = load_catalog(DEMO_CATALOG)
    resource = domo(sandbox)
    defs: Definitions = build_definitions(catalog, resource)
    sensor = next(s for s in defs.sensors or () if s.name == SENSOR_NAME)
    key = AssetKey(["domo", "daily_orders_dataset"])

    with DagsterInstance.ephemeral() as instance:
        result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance, asset_selection=[key]
        )
        record = instance.get_latest_data_version_record(key, True)

    assert result.success
    observed = record.event_log_entry.asset_observation.tags[DATA_VERSION_TAG]
    assert observed == versions(tick(sensor, resource))[DAILY_ORDERS_ID]
    assert datetime.fromisoformat(observed).tzinfo == UTC
