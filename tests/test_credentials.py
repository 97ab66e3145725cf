"""Least privilege: Domo is handed short-lived credentials scoped to one export's prefix.

Against the sandbox's STS (moto's, whose calls the sandbox logs and whose session policies it
enforces on Domo's writes, as AWS would) and its KMS (moto's: a seeded key ``alias/domo-exports``,
a bucket whose default encryption is SSE-KMS with it, and keys the tests create, in the
sandbox's account or another).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
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
from pydantic import ValidationError
from support import (
    domo_resource,
    export_posts,
    failure_text,
    log_messages,
    materialize_catalog,
    metadata_of,
    write_catalog,
)

from domo_assets.catalog import Catalog, CatalogError
from domo_assets.location import build_definitions
from domo_assets.resource import AwsCredentialsResource, DomoResource

CLAIMS = {"name": "claims", "dataset_id": PHARMACY_CLAIMS_ID, "path": "cred/claims"}
OBJECT_ACTIONS = ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
# What an operator might widen the session policy with (domo_object_actions and
# domo_bucket_actions): with a deep path, more than AWS accepts in a session policy.
WIDE_OBJECT_ACTIONS = [
    *OBJECT_ACTIONS,
    "s3:GetObject",
    *(f"s3:{verb}Object{what}" for verb in ("Get", "Put") for what in ("Acl", "Tagging")),
    *(f"s3:{verb}Object{what}" for verb in ("Get", "Put") for what in ("Retention", "LegalHold")),
    *(f"s3:{verb}ObjectVersion{what}" for verb in ("Get", "Put") for what in ("Acl", "Tagging")),
    "s3:GetObjectVersion",
    "s3:GetObjectAttributes",
    "s3:GetObjectVersionAttributes",
    "s3:DeleteObject",
    "s3:DeleteObjectTagging",
    "s3:DeleteObjectVersion",
    "s3:RestoreObject",
    "s3:ReplicateObject",
    "s3:ReplicateDelete",
    "s3:BypassGovernanceRetention",
]
WIDE_BUCKET_ACTIONS = [
    "s3:GetBucketLocation",
    "s3:ListBucket",
    "s3:ListBucketMultipartUploads",
    *(
        f"s3:GetBucket{what}"
        for what in ("Policy", "Acl", "Versioning", "Tagging", "OwnershipControls", "Logging")
    ),
    *(f"s3:Get{what}Configuration" for what in ("Encryption", "Lifecycle", "Replication")),
]
DEEP_PATH = "cred/" + "/".join(["a-rather-long-folder-name"] * 36)  # 940 characters
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


def worker_on(monkeypatch: pytest.MonkeyPatch, credentials: dict[str, Any]) -> None:
    """Make `credentials` (boto3's STS Credentials) the worker's own, as boto3's chain finds
    them (an instance or pod role's, for example)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", credentials["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", credentials["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", credentials["SessionToken"])


def sandbox_sts(sandbox: Sandbox) -> Any:
    """An STS client of the sandbox, signed with its long-term IAM user keys."""
    return make_client("sts", sandbox.s3_url)


def test_refused_federation_token_and_no_role_exports_nothing_and_names_the_fixes(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path
) -> None:
    """AWS: GetSessionToken credentials carry every permission of the IAM user and no policy can
    limit them, so they are no fallback: without the opt-in the export fails before its POST."""
    sandbox.control.deny_sts(["GetFederationToken"])
    result = run(write_catalog(tmp_path, CLAIMS), sandbox, instance)
    assert not result.success
    text = failure_text(result)
    assert "no scoped credentials can be minted for Domo: STS refused GetFederationToken" in text
    assert "grant sts:GetFederationToken" in text
    assert "configure a role to assume (role_arn" in text and "sts:AssumeRole" in text
    assert "allow_unscoped_credentials: true on the aws_credentials resource" in text
    assert export_posts(sandbox.control) == []
    assert sandbox.control.exports(dataset_id=PHARMACY_CLAIMS_ID) == []
    assert [c["action"] for c in minting_calls(sandbox)] == ["GetFederationToken"]


def test_unscoped_credentials_only_with_the_resource_opt_in_warned_and_recorded(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path
) -> None:
    sandbox.control.deny_sts(["GetFederationToken"])
    opted_in = AwsCredentialsResource(allow_unscoped_credentials=True)
    result = run(write_catalog(tmp_path, CLAIMS), sandbox, instance, opted_in)
    assert result.success, failure_text(result)
    assert [c["action"] for c in minting_calls(sandbox)] == [
        "GetFederationToken",
        "GetSessionToken",
    ]
    assert only_request(sandbox)["credential_kind"] == "session-token"
    metadata = metadata_of(result, "claims")
    assert metadata["domo/credentials_kind"] == "session"
    assert metadata["domo/credentials_scope"] == "unscoped"
    warnings = [m for m in log_messages(instance, result) if "unscoped GetSessionToken" in m]
    assert warnings and "every permission of the worker's IAM user" in warnings[0]


def test_temporary_worker_credentials_without_a_role_are_refused_before_domo(
    sandbox: Sandbox,
    instance: DagsterInstance,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """AWS: GetFederationToken must be called with an IAM user's long-term keys."""
    sts = sandbox_sts(sandbox)
    try:
        worker_on(monkeypatch, sts.get_session_token(DurationSeconds=3600)["Credentials"])
    finally:
        sts.close()
    catalog = write_catalog(tmp_path, CLAIMS)
    refused = run(catalog, sandbox, instance)
    assert not refused.success
    text = failure_text(refused)
    assert "the worker's AWS credentials are temporary" in text
    assert "GetFederationToken accepts only an IAM user's long-term keys" in text
    assert "allow_unscoped_credentials: true" in text
    assert sandbox.control.requests() == [], "no request may reach Domo"

    allowed = run(
        catalog, sandbox, instance, AwsCredentialsResource(allow_unscoped_credentials=True)
    )
    assert allowed.success, failure_text(allowed)
    metadata = metadata_of(allowed, "claims")
    assert metadata["domo/credentials_kind"] == "temporary"
    assert metadata["domo/credentials_scope"] == "unscoped"
    assert any(
        "the worker's own temporary credentials" in m for m in log_messages(instance, allowed)
    )


def test_role_chaining_is_capped_at_one_hour_before_any_call_to_domo(
    sandbox: Sandbox,
    instance: DagsterInstance,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """AWS: a role session assuming a role gets at most 3,600 s, whatever the role allows (the
    sandbox's export role allows 12 h, which a worker with long-term keys gets)."""
    sts = sandbox_sts(sandbox)
    try:
        pod_role = sts.assume_role(RoleArn=EXPORT_ROLE_ARN, RoleSessionName="pod")["Credentials"]
    finally:
        sts.close()
    worker_on(monkeypatch, pod_role)
    sandbox.control.clear_sts_calls()
    catalog = write_catalog(tmp_path, CLAIMS)
    role = AwsCredentialsResource(role_arn=EXPORT_ROLE_ARN)
    fixed = AwsCredentialsResource(role_arn=EXPORT_ROLE_ARN, duration_seconds=7200)
    for domo, credentials, named in (
        (domo_resource(sandbox, poll_timeout=7200), role, "poll_timeout is 7200 s"),
        (domo_resource(sandbox), fixed, "duration_seconds is 7200 s"),
    ):
        result = materialize_catalog(catalog, instance, domo, credentials=credentials)
        assert not result.success
        text = failure_text(result)
        assert "role chaining" in text and "AWS caps role chaining at one hour (3,600 s)" in text
        assert ":assumed-role/domo-export/pod" in text and named in text
    assert sandbox.control.requests() == [], "no request may reach Domo"
    assert minting_calls(sandbox) == [], "STS is not asked for what it would refuse"

    within = run(catalog, sandbox, instance, role)  # poll_timeout 3600, the default
    assert within.success, failure_text(within)
    (call,) = minting_calls(sandbox)
    assert (call["action"], call["duration_seconds"], call["status"]) == ("AssumeRole", 3600, 200)


def test_oversize_session_policy_is_refused_before_sts_and_domo(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path
) -> None:
    """AWS: a session policy's plain text holds at most 2,048 characters (the default policy of
    a 940-character path is about 1,300; widened action lists pass the limit)."""
    widened = AwsCredentialsResource(
        domo_object_actions=WIDE_OBJECT_ACTIONS, domo_bucket_actions=WIDE_BUCKET_ACTIONS
    )
    entry = {**CLAIMS, "path": DEEP_PATH}
    result = run(write_catalog(tmp_path, entry), sandbox, instance, widened)
    assert not result.success
    text = failure_text(result)
    assert f"the session policy for s3://domo-exports/{DEEP_PATH}/ is 2," in text
    assert "AWS accepts at most 2,048 in a session policy" in text
    assert minting_calls(sandbox) == []
    assert sandbox.control.requests() == []

    within = run(write_catalog(tmp_path, entry), sandbox, instance)
    assert within.success, failure_text(within)
    (call,) = minting_calls(sandbox)
    assert 1000 < len(call["policy_text"]) <= 2048


@pytest.mark.parametrize(
    ("settings", "field", "words"),
    [
        ({"allow_long_lived": True}, "credentials.allow_long_lived", "only the resource can"),
        (
            {"allow_unscoped_credentials": True},
            "credentials.allow_unscoped_credentials",
            "only the resource can",
        ),
        ({"mode": "chain"}, "credentials.mode", "'chain' hands Domo unscoped credentials"),
        ({"mode": "static"}, "credentials.mode", "'static' hands Domo unscoped credentials"),
    ],
)
def test_catalog_credentials_cannot_widen_the_resource_at_load(
    tmp_path: Path, settings: dict[str, Any], field: str, words: str
) -> None:
    catalog = write_catalog(tmp_path, {**CLAIMS, "credentials": settings})
    domo = DomoResource(instance_url="https://acme.domo.com", developer_token="unused")
    with pytest.raises(CatalogError) as refused:
        build_definitions(catalog, domo)
    message = str(refused.value)
    assert f"exports.yaml: export 'claims' (exports[0]): field '{field}'" in message
    assert words in message
    # Where the operator allows it, the same entry loads.
    allowing = AwsCredentialsResource(allow_unscoped_credentials=True, allow_long_lived=True)
    assert build_definitions(catalog, domo.with_nested(aws_credentials=allowing)).assets


def test_catalog_credentials_cannot_widen_the_resource_at_run_time(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path
) -> None:
    """The resource a run is given is checked too, before any call to Domo."""
    strict = AwsCredentialsResource(duration_seconds=1800)
    for settings, field in (
        ({"mode": "chain"}, "credentials.mode"),
        ({"allow_long_lived": True}, "credentials.allow_long_lived"),
        ({"duration_seconds": 3600}, "credentials.duration_seconds"),
    ):
        entry = {**CLAIMS, "credentials": settings}
        result = run(write_catalog(tmp_path, entry), sandbox, instance, strict)
        assert not result.success
        text = failure_text(result)
        assert "export 'claims': its credentials settings may only narrow" in text
        assert f"field '{field}'" in text
    assert sandbox.control.requests() == [] and minting_calls(sandbox) == []
    # Narrowing is honoured: the opt-in the resource gives, the entry takes back.
    sandbox.control.deny_sts(["GetFederationToken"])
    narrowed = {**CLAIMS, "credentials": {"allow_unscoped_credentials": False}}
    result = run(
        write_catalog(tmp_path, narrowed),
        sandbox,
        instance,
        AwsCredentialsResource(allow_unscoped_credentials=True),
    )
    assert not result.success
    assert "no scoped credentials can be minted" in failure_text(result)
    assert export_posts(sandbox.control) == []


def test_long_lived_keys_need_both_opt_ins(
    sandbox: Sandbox, instance: DagsterInstance, tmp_path: Path
) -> None:
    """Mode chain hands over the worker's keys as they are: unscoped, here long-lived."""
    with pytest.raises(ValidationError, match="allow_unscoped_credentials: true"):
        AwsCredentialsResource(mode="chain")
    with pytest.raises(ValidationError, match="allow_long_lived needs allow_unscoped_credentials"):
        AwsCredentialsResource(allow_long_lived=True)
    catalog = write_catalog(tmp_path, CLAIMS)
    unscoped = AwsCredentialsResource(mode="chain", allow_unscoped_credentials=True)
    refused = run(catalog, sandbox, instance, unscoped)
    assert not refused.success
    assert "set allow_long_lived: true on the aws_credentials resource" in failure_text(refused)
    assert sandbox.control.requests() == []

    both = AwsCredentialsResource(
        mode="chain", allow_unscoped_credentials=True, allow_long_lived=True
    )
    allowed = run(catalog, sandbox, instance, both)
    assert allowed.success, failure_text(allowed)
    assert only_request(sandbox)["credential_kind"] == "long-lived"
    metadata = metadata_of(allowed, "claims")
    assert metadata["domo/credentials_kind"] == "long-lived"
    assert metadata["domo/credentials_scope"] == "unscoped"
    assert any(
        "Domo is handed long-lived access keys" in m for m in log_messages(instance, allowed)
    )
