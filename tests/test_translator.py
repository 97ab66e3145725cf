"""The translator, the metadata set, the exporting resource and the decorator, in real runs."""

from pathlib import Path

import pytest
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    DagsterInstance,
    Definitions,
    build_sensor_context,
    materialize,
)
from domo_assets_dev.sandbox import PHARMACY_CLAIMS_ID, REGIONAL_SALES_ID, Sandbox
from support import DESTINATION, check_outcomes, domo_resource, failure_text, write_catalog

from domo_assets.assets import domo_export_assets
from domo_assets.location import build_definitions
from domo_assets.resource import DomoResource
from domo_assets.translator import (
    DagsterDomoTranslator,
    DomoExportProps,
    DomoMetadataSet,
    export_config,
    translate,
)

CLAIMS = {"name": "claims", "dataset_id": PHARMACY_CLAIMS_ID, "path": "tr/claims"}
SALES = {"name": "sales", "dataset_id": REGIONAL_SALES_ID, "path": "tr/sales"}


class LakeTranslator(DagsterDomoTranslator):
    """Keys under ``lake/`` and one group, as a user's subclass would."""

    def get_asset_spec(self, props: DomoExportProps) -> AssetSpec:
        spec = super().get_asset_spec(props)
        return spec.replace_attributes(key=AssetKey(["lake", *spec.key.path]), group_name="lake")


def test_custom_keys_and_group_materialize(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path
) -> None:
    catalog = write_catalog(tmp_path, CLAIMS, SALES)
    defs = build_definitions(catalog, domo_resource(sandbox), translator=LakeTranslator())
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=instance, asset_selection=[AssetKey(["lake", "claims"])], raise_on_error=False
    )
    assert result.success, failure_text(result)
    (event,) = result.get_asset_materialization_events()
    assert event.asset_key == AssetKey(["lake", "claims"])
    assert event.materialization.metadata["export_id"].value
    assert check_outcomes(result) == {
        ("lake/claims", "row_count"): True,
        ("lake/claims", "s3_objects"): True,
        ("lake/claims", "header"): True,
    }
    graph = defs.resolve_asset_graph()
    assert graph.get(AssetKey(["lake", "sales"])).group_name == "lake"
    # The sensor finds the exports from their specs: a change requests the prefixed keys.
    sensor = defs.resolve_sensor_def("domo_dataset_change_sensor")
    with build_sensor_context(
        instance=instance, resources={"domo": domo_resource(sandbox)}
    ) as context:
        first = sensor.evaluate_tick(context)
    sandbox.control.change_dataset(REGIONAL_SALES_ID)
    with build_sensor_context(
        instance=instance, cursor=first.cursor, resources={"domo": domo_resource(sandbox)}
    ) as context:
        changed = sensor.evaluate_tick(context)
    (request,) = changed.run_requests
    assert request.asset_selection == [AssetKey(["lake", "sales"])]


def test_every_spec_carries_the_domo_metadata_set(tmp_path: Path) -> None:
    catalog = write_catalog(tmp_path, CLAIMS, SALES)
    specs = translate(catalog, LakeTranslator())
    assert [export_config(s).name for s in specs.exports] == ["claims", "sales"]
    assert [DomoMetadataSet.extract(s.metadata).dataset_id for s in specs.datasets] == [
        PHARMACY_CLAIMS_ID,
        REGIONAL_SALES_ID,
    ]
    with pytest.raises(ValueError, match="carries no domo/export metadata"):
        export_config(AssetSpec("foreign"))


def test_a_users_own_asset_exports_through_the_resource(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path
) -> None:
    """The README's example: a decorated asset whose body calls ``export_and_poll``."""
    catalog = write_catalog(tmp_path, CLAIMS)
    calls: list[str] = []

    @domo_export_assets(catalog=catalog, name="my_exports")
    def my_exports(context: AssetExecutionContext, domo: DomoResource):
        calls.append(context.op_def.name)
        yield from domo.export_and_poll(context)

    result = materialize(
        [my_exports], resources={"domo": domo_resource(sandbox)}, instance=instance
    )
    assert result.success, failure_text(result)
    assert calls == ["my_exports"]
    (event,) = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert metadata["verified_location"].value.startswith(
        f"s3://{DESTINATION['bucket']}/tr/claims/"
    )
    assert all(check_outcomes(result).values()) and len(check_outcomes(result)) == 3


def test_two_scoped_catalogs_live_in_one_project(sandbox: Sandbox, tmp_path: Path) -> None:
    domo = domo_resource(sandbox)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = build_definitions(write_catalog(tmp_path / "a", CLAIMS), domo, scope="first")
    second = build_definitions(
        write_catalog(tmp_path / "b", {**SALES, "schedule": "0 6 * * *"}), domo, scope="second"
    )
    merged = Definitions.merge(first, second)
    merged.resolve_all_job_defs()  # names must not collide
    assert {s.name for s in merged.sensors} == {
        "first__domo_dataset_change_sensor",
        "second__domo_dataset_change_sensor",
    }
    assert [s.name for s in merged.schedules] == ["second__domo_exports_schedule_0_6_x_x_x_UTC"]
    ops = {a.op.name for a in merged.resolve_asset_graph().assets_defs if a.is_executable}
    assert {"first__domo_exports", "second__domo_exports"} <= ops
