"""Least privilege: Domo is handed short-lived credentials scoped to one export's prefix.

Against the sandbox's STS (moto's, whose calls the sandbox logs and whose session policies it
enforces on Domo's writes, as AWS would).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster import DagsterInstance
from domo_assets_dev.sandbox import DAILY_ORDERS_ID, EXPORT_ROLE_ARN, PHARMACY_CLAIMS_ID, Sandbox
from support import (
    domo_resource,
    failure_text,
    log_messages,
    materialize_catalog,
    metadata_of,
    write_catalog,
)

from domo_assets.catalog import Catalog
from domo_assets.resource import AwsCredentialsResource

CLAIMS = {"name": "claims", "dataset_id": PHARMACY_CLAIMS_ID, "path": "cred/claims"}
OBJECT_ACTIONS = ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
KMS_KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
KMS_KEY_ARN = f"arn:aws:kms:us-east-1:123456789012:key/{KMS_KEY_ID}"


def expected_policy(prefix: str, kms_key_arn: str | None = None) -> dict[str, Any]:
    statements: list[dict[str, Any]] = [
        {
            "Sid": "WriteThisExport",
            "Effect": "Allow",
            "Action": OBJECT_ACTIONS,
            "Resource": f"arn:aws:s3:::domo-exports/{prefix}/*",
        },
        {
            "Sid": "ReadTheBucketRegion",
            "Effect": "Allow",
            "Action": ["s3:GetBucketLocation"],
            "Resource": "arn:aws:s3:::domo-exports",
        },
    ]
    if kms_key_arn is not None:
        statements.append(
            {
                "Sid": "EncryptWithTheExportKey",
                "Effect": "Allow",
                "Action": ["kms:GenerateDataKey", "kms:Encrypt"],
                "Resource": kms_key_arn,
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def run(
    catalog: Catalog,
    sandbox: Sandbox,
    instance: DagsterInstance,
    credentials: AwsCredentialsResource | None = None,
    **kwargs: Any,
) -> Any:
    return materialize_catalog(
        catalog, instance, domo_resource(sandbox), credentials=credentials, **kwargs
    )


def minting_calls(sandbox: Sandbox) -> list[dict[str, Any]]:
    return [c for c in sandbox.control.sts_calls() if c["action"] != "GetCallerIdentity"]


def only_request(sandbox: Sandbox, dataset_id: str = PHARMACY_CLAIMS_ID) -> dict[str, Any]:
    (export,) = sandbox.control.exports(dataset_id=dataset_id)
    return export["request"]


def test_default_hands_domo_a_federation_token_scoped_to_the_export_prefix(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path
) -> None:
    result = run(write_catalog(tmp_path, CLAIMS), sandbox, instance)
    assert result.success, failure_text(result)
    (call,) = minting_calls(sandbox)
    assert call["action"] == "GetFederationToken"
    assert call["name"] == "domo-claims"
    assert call["policy"] == expected_policy("cred/claims")
    # No history yet: the credentials live as long as anything waits for the export.
    assert call["duration_seconds"] == 3600
    request = only_request(sandbox)
    assert request["aws_access_key_id"] == call["issued_access_key_id"]
    assert request["aws_access_key_id"].startswith("ASIA")
    assert request["credential_kind"] == "federation-token"
    assert request["session_policy"] == expected_policy("cred/claims")
    metadata = metadata_of(result, "claims")
    assert metadata["domo/credentials_kind"] == "scoped-session"
    assert metadata["domo/credentials_scope"] == "arn:aws:s3:::domo-exports/cred/claims/*"
    assert metadata["domo/credentials_session"] == "domo-claims"
    assert metadata["domo/credentials_expiry"] > metadata["started"]


def test_credentials_live_about_as_long_as_the_export_is_expected_to(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path
) -> None:
    catalog = write_catalog(tmp_path, CLAIMS)
    assert run(catalog, sandbox, instance).success
    sandbox.control.change_dataset(PHARMACY_CLAIMS_ID)
    sandbox.control.clear_sts_calls()
    assert run(catalog, sandbox, instance).success
    (call,) = minting_calls(sandbox)
    # The last export took under a second: twice that plus 5 minutes is under STS's minimum.
    assert call["duration_seconds"] == 900


def test_partitioned_export_is_scoped_to_its_partition_prefix(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path
) -> None:
    entry = {
        "name": "orders",
        "dataset_id": DAILY_ORDERS_ID,
        "path": "cred/orders",
        "partition": {"column": "Order Date", "scheme": "daily", "start": "2026-11-01"},
    }
    result = run(
        write_catalog(tmp_path, entry),
        sandbox,
        instance,
        selection=["orders"],
        partition_key="2026-11-05",
    )
    assert result.success, failure_text(result)
    (call,) = minting_calls(sandbox)
    assert call["policy"] == expected_policy("cred/orders/dt=2026-11-05")


def test_kms_export_may_use_its_key_and_no_other(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path
) -> None:
    by_arn = run(write_catalog(tmp_path, {**CLAIMS, "kms_key_id": KMS_KEY_ARN}), sandbox, instance)
    assert by_arn.success, failure_text(by_arn)
    sandbox.control.change_dataset(PHARMACY_CLAIMS_ID)
    by_id = run(write_catalog(tmp_path, {**CLAIMS, "kms_key_id": KMS_KEY_ID}), sandbox, instance)
    assert by_id.success, failure_text(by_id)
    # A bare key id is named by its ARN, in the worker's account (GetCallerIdentity).
    assert [c["policy"] for c in minting_calls(sandbox)] == [
        expected_policy("cred/claims", KMS_KEY_ARN)
    ] * 2
    refused = run(
        write_catalog(tmp_path, {**CLAIMS, "kms_key_id": "alias/domo-exports"}), sandbox, instance
    )
    assert not refused.success
    assert "a session policy cannot name a KMS key by its alias" in failure_text(refused)


def test_role_is_assumed_with_the_export_session_policy(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path
) -> None:
    entry = {**CLAIMS, "credentials": {"role_arn": EXPORT_ROLE_ARN, "external_id": "ext-1"}}
    result = run(write_catalog(tmp_path, entry), sandbox, instance)
    assert result.success, failure_text(result)
    (call,) = minting_calls(sandbox)
    assert call["action"] == "AssumeRole"
    assert call["role_arn"] == EXPORT_ROLE_ARN
    assert call["role_session_name"] == "domo-assets-claims"
    assert call["external_id_given"] is True
    assert call["policy"] == expected_policy("cred/claims")
    assert only_request(sandbox)["credential_kind"] == "assumed-role"
    assert metadata_of(result, "claims")["domo/credentials_kind"] == "assumed-role"


def test_domos_writes_are_held_to_the_session_policy(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path
) -> None:
    """A policy that does not allow writing the files: Domo's write is refused, as S3 would."""
    too_narrow = AwsCredentialsResource(domo_object_actions=["s3:GetObject"])
    result = run(write_catalog(tmp_path, CLAIMS), sandbox, instance, too_narrow)
    assert not result.success
    text = failure_text(result)
    assert "S3_WRITE_FAILED" in text and "session policy" in text


def test_long_lived_keys_are_never_handed_over_silently(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path
) -> None:
    sandbox.control.deny_sts(["GetFederationToken", "GetSessionToken"])
    refused = run(write_catalog(tmp_path, CLAIMS), sandbox, instance)
    assert not refused.success
    text = failure_text(refused)
    assert "long-lived keys are never handed to Domo unless allowed" in text
    assert "allow_long_lived: true" in text and "role_arn" in text
    assert sandbox.control.exports(dataset_id=PHARMACY_CLAIMS_ID) == []

    allowed = run(
        write_catalog(tmp_path, {**CLAIMS, "credentials": {"allow_long_lived": True}}),
        sandbox,
        instance,
    )
    assert allowed.success, failure_text(allowed)
    assert only_request(sandbox)["credential_kind"] == "long-lived"
    metadata = metadata_of(allowed, "claims")
    assert metadata["domo/credentials_kind"] == "long-lived"
    assert metadata["domo/credentials_scope"] == "unscoped"
    assert any(
        "Domo is handed long-lived access keys" in m for m in log_messages(instance, allowed)
    )


def test_session_token_where_no_federation_token_can_be_minted_is_warned(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path
) -> None:
    sandbox.control.deny_sts(["GetFederationToken"])
    result = run(write_catalog(tmp_path, CLAIMS), sandbox, instance)
    assert result.success, failure_text(result)
    assert only_request(sandbox)["credential_kind"] == "session-token"
    metadata = metadata_of(result, "claims")
    assert metadata["domo/credentials_kind"] == "session"
    assert metadata["domo/credentials_scope"] == "unscoped"
    assert any("no session policy can apply to them" in m for m in log_messages(instance, result))
