"""``dg scaffold defs domo_assets.DomoExportsComponent <name>``: a commented ``defs.yaml``.

It holds the connection as ``{{ env.DOMO_... }}`` templates and one example export to fill in; it
loads as written (loading makes no Domo call), so ``dg check defs`` passes before the first edit.
Values can be given with ``--json-params '{"dataset_id": "...", "bucket": "..."}'``.
"""

from __future__ import annotations

import json
from typing import Any

import dagster as dg
import yaml
from pydantic import BaseModel, Field

DEFAULT_EXPORT_NAME = "my_export"
# A well-formed placeholder: the file loads, and the first export fails until it is replaced.
PLACEHOLDER_DATASET_ID = "00000000-0000-0000-0000-000000000000"
PLACEHOLDER_DATASET_NAME = "My DataSet"
PLACEHOLDER_BUCKET = "my-data-lake"
DEFAULT_REGION = "us-east-1"
DEFS_FILE_NAME = "defs.yaml"
INSTANCE_URL_TEMPLATE = "{{ env.DOMO_INSTANCE_URL }}"
DEVELOPER_TOKEN_TEMPLATE = "{{ env.DOMO_DEVELOPER_TOKEN }}"

DEFS_TEMPLATE = """\
type: {type_name}

attributes:
  # The Domo connection. Secrets come from the environment: a value written as
  # "{{{{ env.NAME }}}}" reaches Dagster as EnvVar("NAME"), read at run time and never stored in
  # run config or job snapshots. instance_url is e.g. https://acme.domo.com (https only).
  domo:
    instance_url: "{instance_url}"
    developer_token: "{developer_token}"
    # Optional, beside the token (which the export API requires): OAuth client credentials,
    # whose bearer token reads DataSet metadata and schemas from the platform API only.
    # client_id: "{{{{ env.DOMO_CLIENT_ID }}}}"
    # client_secret: "{{{{ env.DOMO_CLIENT_SECRET }}}}"

  # Keys every export takes unless it sets its own (the README's "The catalog" lists them all).
  # The bucket must exist, in that region.
  defaults:
    bucket: {bucket}
    region: {region}

  # Discover exports from Domo's DataSet listing instead of (or beside) listing them below:
  # `dg utils refresh-defs-state` reads the listing and stores it (`dg dev` does it itself);
  # loading reads what was stored. See the README's "Discovering DataSets".
  # discover:
  #   select:
  #     names: ["sales*"]              # glob patterns; also ids, exclude_names, owners, tags
  #   export:
  #     path: domo/{{slug}}             # {{slug}}, {{id}} and {{short_id}} of each DataSet

  # One asset per export: `name` is the asset's name (letters, digits, _), `dataset_id` the
  # DataSet's id as in its Domo URL, `dataset_name` names its lineage node, and `path` is the
  # S3 prefix Domo writes <path>/<exportId>/export/ under.
  exports:
    - name: {name}
      dataset_id: {dataset_id}
      dataset_name: {dataset_name}
      path: {path}
      # columns: [Customer ID, Date Filled]   # omitted: every column
      # where:
      #   - {{column: Days Supply, gte: 30}}
      # schedule: "0 6 * * *"                  # also export every day at 06:00 UTC

  # The DataSet change sensor; these are its defaults.
  # sensor:
  #   minimum_interval_seconds: 60
  #   datasets_per_tick: 50
  #   export_on_first_tick: false
  #   default_status: running

  # Dagster's asset attributes, applied to every export's spec (`props.config` is its entry).
  # translation:
  #   key: "lake/{{{{ props.config.name }}}}"
  #   group_name: domo_lake
"""


class DomoExportsScaffoldParams(BaseModel):
    """What ``--json-params`` may fill in (each has a placeholder otherwise)."""

    name: str = Field(default=DEFAULT_EXPORT_NAME, description="The example export's name.")
    dataset_id: str = Field(default=PLACEHOLDER_DATASET_ID, description="Its Domo DataSet id.")
    dataset_name: str = Field(default=PLACEHOLDER_DATASET_NAME, description="Its DataSet's name.")
    bucket: str = Field(default=PLACEHOLDER_BUCKET, description="The destination bucket.")
    region: str = Field(default=DEFAULT_REGION, description="The bucket's AWS region.")


class DomoExportsComponentScaffolder(dg.Scaffolder[DomoExportsScaffoldParams]):
    """Writes a commented ``defs.yaml`` for ``DomoExportsComponent``."""

    @classmethod
    def get_scaffold_params(cls) -> type[DomoExportsScaffoldParams]:
        """The parameters ``--json-params`` accepts."""
        return DomoExportsScaffoldParams

    def scaffold(self, request: dg.ScaffoldRequest[DomoExportsScaffoldParams]) -> None:
        """Write the instance's ``defs.yaml`` (or Dagster's default for other formats)."""
        if request.scaffold_format != "yaml" or request.append:
            # A Python instance, or a document appended to an existing file: no comments there.
            dg.scaffold_component(request, example_attributes(request.params))
            return
        (request.target_path / DEFS_FILE_NAME).write_text(
            render_defs_yaml(request.type_name, request.params), encoding="utf-8"
        )


def render_defs_yaml(type_name: str, params: DomoExportsScaffoldParams) -> str:
    """The commented ``defs.yaml`` text for these parameters.

    Args:
        type_name: The component's type, as ``defs.yaml`` names it.
        params: The example export's values.
    """
    attributes = example_attributes(params)
    (export,) = attributes["exports"]
    return DEFS_TEMPLATE.format(
        type_name=type_name,
        instance_url=INSTANCE_URL_TEMPLATE,
        developer_token=DEVELOPER_TOKEN_TEMPLATE,
        **{key: _scalar(value) for key, value in {**attributes["defaults"], **export}.items()},
    )


def example_attributes(params: DomoExportsScaffoldParams) -> dict[str, Any]:
    """The scaffolded attributes as data: the connection templates and one example export."""
    return {
        "domo": {
            "instance_url": INSTANCE_URL_TEMPLATE,
            "developer_token": DEVELOPER_TOKEN_TEMPLATE,
        },
        "defaults": {"bucket": params.bucket, "region": params.region},
        "exports": [
            {
                "name": params.name,
                "dataset_id": params.dataset_id,
                "dataset_name": params.dataset_name,
                "path": f"domo/{params.name}",
            }
        ],
    }


def _scalar(value: str) -> str:
    """A YAML scalar for a string: plain when YAML reads it back unchanged, else quoted."""
    plain = str(value)
    try:
        unchanged = yaml.safe_load(plain) == plain and ":" not in plain and "#" not in plain
    except yaml.YAMLError:
        unchanged = False
    return plain if unchanged else json.dumps(plain)
