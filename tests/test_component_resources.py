"""Resources Dagster manages, on the component path above all: a ``DomoExportsComponent`` instance's Domo
resource, with the ``s3:`` and ``aws:`` sections of its ``defs.yaml`` nested in it, is bound
under the instance's own key, so Dagster initializes it (and them) for every step and tears it
down after; the S3 reader a step uses is the one the YAML configures.

Real dg projects, real runs against the sandbox and moto's S3 server.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from botocore.exceptions import ClientError
from domo_assets_dev.sandbox import EXPORT_BUCKET, Sandbox
from domo_assets_dev.sandbox.datasets import PHARMACY_CLAIMS_ID
from support import domo_resource, error_messages, failure_text, log_messages
from test_component import (
    CLAIMS,
    domo_env,  # noqa: F401 (a fixture)
    exported_paths,
    instance_document,
    load_project,
    materialize,
    write_project,
)

from domo_assets.resource import (
    DOMO_CLOSED_MESSAGE,
    S3_CLOSED_MESSAGE,
    DomoResource,
    S3ReaderResource,
    UninitializedResourceError,
)

# boto3's own variable for S3's endpoint alone: pointed at a closed port, every S3 client that
# follows boto3's defaults fails, while STS and Glue keep the sandbox's AWS_ENDPOINT_URL.
S3_ENDPOINT_VAR = "AWS_ENDPOINT_URL_S3"
CLOSED_PORT_URL = "http://127.0.0.1:9"
RESOURCE_KEY = "lake__domo"


def project_defs(
    root: Path, monkeypatch: pytest.MonkeyPatch, document: dict[str, Any]
) -> dg.Definitions:
    """A dg project in `root` whose one instance (``defs/lake``) is `document`, loaded."""
    root.mkdir(parents=True, exist_ok=True)
    write_project(root, {"lake": document})
    return load_project(root, monkeypatch)


def test_the_s3_reader_configured_in_yaml_is_the_one_a_run_uses(
    domo_env: Sandbox,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    instance: dg.DagsterInstance,
) -> None:
    """With boto3's S3 endpoint pointed at a closed port, an instance without an ``s3:``
    section cannot check its bucket and asks Domo nothing; with ``s3: {endpoint_url: <moto>, region_name: ...}`` the
    same export succeeds: the step read S3 through the YAML's endpoint, and Dagster tore that
    client down after the step (the event log names the endpoint)."""
    monkeypatch.setenv(S3_ENDPOINT_VAR, CLOSED_PORT_URL)
    defs = project_defs(tmp_path / "without", monkeypatch, instance_document(CLAIMS))

    failed = materialize(defs, instance, [dg.AssetKey(CLAIMS["name"])])

    assert not failed.success
    assert "cannot reach S3 to check bucket" in failure_text(failed)
    assert CLOSED_PORT_URL in failure_text(failed)
    assert exported_paths(domo_env) == set(), "refused before Domo was asked"

    s3_section = {"endpoint_url": domo_env.s3_url, "region_name": "us-east-1"}
    document = instance_document({**CLAIMS, "path": "component/yaml_s3"}, s3=s3_section)
    defs = project_defs(tmp_path / "with", monkeypatch, document)

    result = materialize(defs, instance, [dg.AssetKey(CLAIMS["name"])])

    assert result.success
    assert exported_paths(domo_env) == {"component/yaml_s3"}
    messages = log_messages(instance, result)
    assert f"{S3_CLOSED_MESSAGE} ({domo_env.s3_url})" in messages


def test_dagster_initializes_and_tears_down_an_instances_resources_in_a_run(
    domo_env: Sandbox,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    instance: dg.DagsterInstance,
) -> None:
    """The instance's Domo resource is the project's resource ``lake__domo``: the run's event
    log shows Dagster initializing it before the step and its teardown closing the Domo and S3
    clients after it, and the ``aws:`` section's settings are the ones the run applied."""
    aws = {"duration_seconds": 900}
    defs = project_defs(tmp_path, monkeypatch, instance_document(CLAIMS, aws=aws))
    assert set(defs.resources or {}) == {RESOURCE_KEY}

    result = materialize(defs, instance, [dg.AssetKey(CLAIMS["name"])])

    assert result.success
    messages = log_messages(instance, result)
    init = next(i for i, m in enumerate(messages) if m.startswith("Finished initialization"))
    assert RESOURCE_KEY in messages[init]
    domo_closed = messages.index(f"{DOMO_CLOSED_MESSAGE} ({domo_env.domo_url})")
    s3_closed = next(i for i, m in enumerate(messages) if m.startswith(S3_CLOSED_MESSAGE))
    step_end = next(i for i, m in enumerate(messages) if "Finished execution of step" in m)
    assert init < step_end < domo_closed
    assert step_end < s3_closed
    # The STS session Domo was handed lasts the aws: section's 900 s.
    durations = {c["duration_seconds"] for c in domo_env.control.sts_calls()}
    assert durations == {aws["duration_seconds"]}


def test_a_secret_written_out_in_the_s3_section_is_refused(
    domo_env: Sandbox,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Like the Domo token: the file is committed, so AWS secrets come from the environment."""
    secret = "not-a-real-secret-key"
    s3_section = {"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": secret}
    write_project(tmp_path, {"lake": instance_document(CLAIMS, s3=s3_section)})

    with pytest.raises(Exception) as failure:
        load_project(tmp_path, monkeypatch)

    text = error_messages(failure.value)
    assert "s3.aws_secret_access_key: a secret written out in the YAML" in text
    assert secret not in text


def test_a_resource_dagster_has_not_initialized_refuses_to_make_a_client(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An EnvVar setting is read by Dagster alone: used directly, the resource names the setting
    and the variable instead of connecting to the variable's name; initialized by Dagster
    (``build_resources``), the same resource reaches the sandbox."""
    monkeypatch.setenv("DOMO_INSTANCE_URL", sandbox.domo_url)
    monkeypatch.setenv("DOMO_DEVELOPER_TOKEN", sandbox.token)
    domo = DomoResource(
        instance_url=dg.EnvVar("DOMO_INSTANCE_URL"),
        developer_token=dg.EnvVar("DOMO_DEVELOPER_TOKEN"),
        s3=S3ReaderResource(region_name=dg.EnvVar("AWS_DEFAULT_REGION")),
    )

    with pytest.raises(UninitializedResourceError, match=r"DomoResource\.instance_url is EnvVar"):
        domo.get_client()
    with pytest.raises(UninitializedResourceError, match=r"S3ReaderResource\.region_name"):
        domo.s3.get_client()
    assert sandbox.control.requests() == []

    with dg.build_resources({"domo": domo}) as resources:
        metadata = resources.domo.get_client().get_dataset(PHARMACY_CLAIMS_ID)
        region = resources.domo.s3.get_client().meta.region_name

    assert metadata.row_count is not None
    assert region == os.environ["AWS_DEFAULT_REGION"]
    assert sandbox.control.requests() != []


@pytest.mark.parametrize("attempts", [1, 3])
def test_the_s3_readers_max_attempts_counts_calls_not_retries(
    sandbox: Sandbox, attempts: int
) -> None:
    """``max_attempts`` is how many times one S3 call is sent (botocore's own ``max_attempts``
    counts retries, one more): S3 failing every try of a read sees exactly that many, then the
    read fails with S3's error."""
    sandbox.control.add_s3_delay(
        method="GET", path_regex=r"/attempts/object$", delay=0, fail_status=503, times=None
    )
    domo = domo_resource(sandbox, s3=S3ReaderResource(max_attempts=attempts))
    with dg.build_resources({"domo": domo}) as resources:
        client = resources.domo.s3.get_client()
        with pytest.raises(ClientError, match="SlowDown"):
            client.get_object(Bucket=EXPORT_BUCKET, Key="attempts/object")
    assert [rule["hits"] for rule in sandbox.control.s3_delays()] == [attempts]
