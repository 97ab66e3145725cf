"""Least privilege: Domo is handed short-lived credentials scoped to one export's prefix.

Against the sandbox's STS (moto's, whose calls the sandbox logs and whose session policies it
enforces on Domo's writes, as AWS would) and its KMS (moto's: a seeded key ``alias/domo-exports``,
a bucket whose default encryption is SSE-KMS with it, and keys the tests create, in the
sandbox's account or another).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster import DagsterInstance
from domo_assets_dev.sandbox import (
    ACCOUNT_ID,
    DAILY_ORDERS_ID,
    EXPORT_BUCKET,
    EXPORT_KMS_ALIAS,
    EXPORT_ROLE_ARN,
    KMS_EXPORT_BUCKET,
    PHARMACY_CLAIMS_ID,
    Sandbox,
)
from domo_assets_dev.sandbox.s3 import make_client
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
KMS_ACTIONS = ["kms:GenerateDataKey", "kms:Decrypt"]
OTHER_ACCOUNT = "210987654321"


def expected_policy(
    prefix: str,
    kms_key_arn: str | None = None,
    bucket: str = EXPORT_BUCKET,
    owner: str | None = None,
) -> dict[str, Any]:
    condition = {"Condition": {"StringEquals": {"s3:ResourceAccount": owner}}} if owner else {}
    statements: list[dict[str, Any]] = [
        {
            "Sid": "WriteThisExport",
            "Effect": "Allow",
            "Action": OBJECT_ACTIONS,
            "Resource": f"arn:aws:s3:::{bucket}/{prefix}/*",
            **condition,
        },
        {
            "Sid": "ReadTheBucketRegion",
            "Effect": "Allow",
            "Action": ["s3:GetBucketLocation"],
            "Resource": f"arn:aws:s3:::{bucket}",
            **condition,
        },
    ]
    if kms_key_arn is not None:
        statements.append(
            {
                "Sid": "EncryptWithTheExportKey",
                "Effect": "Allow",
                "Action": KMS_ACTIONS,
                "Resource": kms_key_arn,
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def key_of_another_account(sandbox: Sandbox) -> dict[str, Any]:
    """A KMS key created in another account (moto switches accounts on AssumeRole)."""
    sts = make_client("sts", sandbox.s3_url)
    role = f"arn:aws:iam::{OTHER_ACCOUNT}:role/key-admin"
    try:
        credentials = sts.assume_role(RoleArn=role, RoleSessionName="key-admin")["Credentials"]
    finally:
        sts.close()
    kms = make_client(
        "kms",
        sandbox.s3_url,
        credentials["AccessKeyId"],
        credentials["SecretAccessKey"],
        credentials["SessionToken"],
    )
    try:
        return kms.create_key(Description="another account's key")["KeyMetadata"]
    finally:
        kms.close()
        sandbox.control.clear_sts_calls()  # the test's own AssumeRole is not the worker's


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
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path, s3: Any
) -> None:
    """Whichever way the key is named, the policy grants GenerateDataKey and Decrypt on its key
    ARN only (IAM matches keys by key ARN), writes only under the export's prefix, and Domo is
    sent the key id (the credentials are of the key's account)."""
    key_arn = sandbox.export_kms_key_arn
    key_id = key_arn.rsplit("/", 1)[1]
    alias_arn = f"arn:aws:kms:us-east-1:{ACCOUNT_ID}:{EXPORT_KMS_ALIAS}"
    forms = [key_arn, EXPORT_KMS_ALIAS, alias_arn, key_id]
    for form in forms:
        sandbox.control.change_dataset(PHARMACY_CLAIMS_ID)
        result = run(write_catalog(tmp_path, {**CLAIMS, "kms_key_id": form}), sandbox, instance)
        assert result.success, failure_text(result)
        assert metadata_of(result, "claims")["s3/kms_key_arn"] == key_arn
    assert [c["policy"] for c in minting_calls(sandbox)] == [
        expected_policy("cred/claims", key_arn)
    ] * len(forms)
    exports = sandbox.control.exports(dataset_id=PHARMACY_CLAIMS_ID)
    assert [e["request"]["kms_key_id"] for e in exports] == [key_id] * len(forms)
    for export in exports:
        (key,) = export["object_keys"]
        head = s3.head_object(Bucket=EXPORT_BUCKET, Key=key)
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", key_id)


def test_kms_keys_that_a_policy_cannot_name_are_refused_before_domo_is_asked(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path
) -> None:
    foreign = key_of_another_account(sandbox)
    refusals = {
        foreign["KeyId"]: f"KMS does not know in region us-east-1 of the worker's account "
        f"{ACCOUNT_ID}: a bare key id names a key of that account only; name a key of another "
        "account by its key ARN",
        "alias/no-such-alias": "which KMS does not know in region us-east-1",
        f"arn:aws:kms:eu-west-1:{ACCOUNT_ID}:{EXPORT_KMS_ALIAS}": "a key of region eu-west-1, "
        "but the export's region is us-east-1",
    }
    for key, words in refusals.items():
        refused = run(write_catalog(tmp_path, {**CLAIMS, "kms_key_id": key}), sandbox, instance)
        assert not refused.success
        text = failure_text(refused)
        assert f"export 'claims': kms_key_id names KMS key {key!r}" in text
        assert words in text
    assert minting_calls(sandbox) == []
    assert sandbox.control.requests() == [], "no request may reach Domo"


def test_key_of_another_account_is_granted_and_sent_by_its_arn(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path, s3: Any
) -> None:
    """A key of another account can only be named by its key ARN: the policy grants that ARN,
    and Domo is sent the ARN too (a key id would name a key of the writer's own account)."""
    foreign = key_of_another_account(sandbox)
    result = run(
        write_catalog(tmp_path, {**CLAIMS, "kms_key_id": foreign["Arn"]}), sandbox, instance
    )
    assert result.success, failure_text(result)
    (call,) = minting_calls(sandbox)
    assert call["policy"] == expected_policy("cred/claims", foreign["Arn"])
    assert only_request(sandbox)["kms_key_id"] == foreign["Arn"]


def test_bucket_default_kms_key_is_granted_when_the_export_names_none(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path
) -> None:
    entry = {**CLAIMS, "bucket": KMS_EXPORT_BUCKET}
    result = run(write_catalog(tmp_path, entry), sandbox, instance)
    assert result.success, failure_text(result)
    key_arn = sandbox.export_kms_key_arn
    (call,) = minting_calls(sandbox)
    assert call["policy"] == expected_policy("cred/claims", key_arn, bucket=KMS_EXPORT_BUCKET)
    # Domo is sent no key: the bucket's default applies to its writes.
    assert only_request(sandbox)["kms_key_id"] is None
    metadata = metadata_of(result, "claims")
    assert metadata["s3/default_encryption"] == f"aws:kms ({key_arn})"
    assert metadata["s3/kms_key_arn"] == key_arn


def test_multipart_sse_kms_write_needs_decrypt_as_well(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path, s3: Any
) -> None:
    """Domo writes its files as multipart uploads (the sandbox's ``upload`` behaviour): S3
    decrypts the parts' data keys to complete them, so GenerateDataKey alone is refused."""
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, upload="multipart")
    catalog = write_catalog(tmp_path, {**CLAIMS, "kms_key_id": EXPORT_KMS_ALIAS})
    generate_only = AwsCredentialsResource(domo_kms_actions=["kms:GenerateDataKey"])
    refused = run(catalog, sandbox, instance, generate_only)
    assert not refused.success
    text = failure_text(refused)
    assert "S3_WRITE_FAILED" in text
    assert f'kms:Decrypt on resource: "{sandbox.export_kms_key_arn}"' in text
    assert s3.list_objects_v2(Bucket=EXPORT_BUCKET, Prefix="cred/claims/").get("KeyCount") == 0

    sandbox.control.change_dataset(PHARMACY_CLAIMS_ID)
    allowed = run(catalog, sandbox, instance)
    assert allowed.success, failure_text(allowed)
    (key,) = sandbox.control.exports(dataset_id=PHARMACY_CLAIMS_ID)[-1]["object_keys"]
    head = s3.head_object(Bucket=EXPORT_BUCKET, Key=key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["ETag"].strip('"').endswith("-1"), "written as a multipart upload"


def test_bucket_owner_holds_domos_s3_grants_to_that_account(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path
) -> None:
    result = run(write_catalog(tmp_path, {**CLAIMS, "bucket_owner": ACCOUNT_ID}), sandbox, instance)
    assert result.success, failure_text(result)
    (call,) = minting_calls(sandbox)
    assert call["policy"] == expected_policy("cred/claims", owner=ACCOUNT_ID)
    assert metadata_of(result, "claims")["s3/bucket_owner"] == ACCOUNT_ID


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
