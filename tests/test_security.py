"""Security: credentials handed to Domo, the destination guard, access errors, PDP, secret hygiene."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from dagster import DagsterInstance, EnvVar, build_resources
from dagster._serdes import serialize_value
from domo_assets_dev.sandbox import (
    ACCESS_KEY_ID,
    ACCOUNT_ID,
    EU_EXPORT_BUCKET,
    EXPORT_BUCKET,
    EXPORT_KMS_ALIAS,
    EXPORT_ROLE_ARN,
    HR_SALARIES_ID,
    MINTED_SECRET_PREFIX,
    MINTED_TOKEN_PREFIX,
    PHARMACY_CLAIMS_ID,
    PUBLIC_EXPORT_BUCKET,
    REGIONAL_SALES_ID,
    Sandbox,
)
from domo_assets_dev.sandbox.faults import echoed_forms
from support import (
    DOMO_EXPORTS_PATH,
    domo_resource,
    error_messages,
    export_posts,
    failure_text,
    materialize_catalog,
    write_catalog,
)

from domo_assets.catalog import Catalog
from domo_assets.resource import AwsCredentialsResource, DomoResource

LOAD_TIMEOUT_SECONDS = 120


CLAIMS = {"name": "claims", "dataset_id": PHARMACY_CLAIMS_ID, "path": "sec/claims"}


def catalog_of(tmp_path: Path, **entry) -> Catalog:
    return write_catalog(tmp_path, {**CLAIMS, **entry})


def run(
    catalog: Catalog,
    domo: DomoResource,
    instance: DagsterInstance,
    credentials: AwsCredentialsResource | None = None,
):
    return materialize_catalog(catalog, instance, domo, credentials=credentials)


def only_export(sandbox: Sandbox, dataset_id: str = PHARMACY_CLAIMS_ID) -> dict:
    exports = sandbox.control.exports(dataset_id=dataset_id)
    assert len(exports) == 1
    return exports[0]["request"]


# -- credentials handed to Domo -----------------------------------------------------------------


def test_assume_role_mints_temporary_credentials_per_export(
    sandbox: Sandbox, instance, tmp_path: Path
) -> None:
    catalog = catalog_of(
        tmp_path,
        credentials={"mode": "assume_role", "role_arn": EXPORT_ROLE_ARN, "external_id": "ext-1"},
    )
    result = run(catalog, domo_resource(sandbox), instance)
    assert result.success, failure_text(result)
    request = only_export(sandbox)
    assert request["aws_access_key_id"].startswith("ASIA"), "STS credentials must be handed to Domo"
    assert request["had_session_token"] is True


def test_chain_passes_session_token_and_kms_key(
    sandbox: Sandbox, instance, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("AWS_SESSION_TOKEN", "chain-session-token-value")
    result = run(
        catalog_of(tmp_path, kms_key_id=EXPORT_KMS_ALIAS),
        domo_resource(sandbox),
        instance,
        AwsCredentialsResource(mode="chain", allow_unscoped_credentials=True),
    )
    assert result.success, failure_text(result)
    request = only_export(sandbox)
    assert request["had_session_token"] is True
    # The alias is resolved before the export: Domo is sent the key it names, by its id.
    assert request["kms_key_id"] == sandbox.export_kms_key_arn.rsplit("/", 1)[1]


def test_static_mode_requires_keys(sandbox: Sandbox, instance, tmp_path: Path) -> None:
    result = run(
        catalog_of(tmp_path),
        domo_resource(sandbox),
        instance,
        AwsCredentialsResource(mode="static", allow_unscoped_credentials=True),
    )
    assert not result.success
    assert "aws_access_key_id" in failure_text(result)
    assert sandbox.control.requests() == [], "no request may reach Domo"


# -- destination guard --------------------------------------------------------------------------


def test_cross_region_bucket_is_refused_before_any_domo_call(
    sandbox: Sandbox, instance, tmp_path: Path
) -> None:
    result = run(catalog_of(tmp_path, bucket=EU_EXPORT_BUCKET), domo_resource(sandbox), instance)
    assert not result.success
    text = failure_text(result)
    assert "eu-west-1" in text and "us-east-1" in text and "cross-region" in text
    assert sandbox.control.requests() == [], "no request may reach Domo when the guard fails"


def test_public_bucket_is_refused_unless_allowed(
    sandbox: Sandbox, instance, tmp_path: Path
) -> None:
    refused = run(
        catalog_of(tmp_path, bucket=PUBLIC_EXPORT_BUCKET), domo_resource(sandbox), instance
    )
    assert not refused.success
    assert "Public Access Block" in failure_text(
        refused
    ) and "allow_public_destination" in failure_text(refused)
    assert export_posts(sandbox.control) == []

    allowed = run(
        catalog_of(tmp_path, bucket=PUBLIC_EXPORT_BUCKET, allow_public_destination=True),
        domo_resource(sandbox),
        instance,
    )
    assert allowed.success, failure_text(allowed)
    metadata = allowed.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["s3/allow_public_destination"].value is True
    assert metadata["s3/public_access_blocked"].value is False
    warnings = [
        e.message for e in instance.all_logs(allowed.run_id) if "may be public" in (e.message or "")
    ]
    assert warnings, "an allowed public destination must be warned about"


def test_bucket_of_another_owner_is_refused_at_the_guards_first_call(
    sandbox: Sandbox, instance, tmp_path: Path
) -> None:
    """A mistyped or re-registered bucket name in another account: the first S3 call carries
    ExpectedBucketOwner, S3 refuses it, and nothing reaches Domo."""
    result = run(
        catalog_of(tmp_path, bucket_owner="111122223333"), domo_resource(sandbox), instance
    )
    assert not result.success
    text = failure_text(result)
    assert "S3 refused s3:GetBucketLocation on bucket domo-exports (AccessDenied) with " in text
    assert "ExpectedBucketOwner 111122223333: the bucket does not belong to account " in text
    assert "bucket_owner" in text and "Nothing was exported" in text
    assert sandbox.control.requests() == [], "no request may reach Domo"
    calls = [c for c in sandbox.control.s3_calls() if c["access_key_id"] == ACCESS_KEY_ID]
    assert [(c["bucket"], c["expected_owner"], c["status"]) for c in calls] == [
        (EXPORT_BUCKET, "111122223333", 403)
    ], "the guard's first call is refused, and no other is made"


def test_every_s3_call_of_the_worker_passes_the_bucket_owner(
    sandbox: Sandbox, instance, tmp_path: Path
) -> None:
    """Guard, HEAD, ranged GET, deep verification, copies (source owner too), manifests, the
    pointer, retention and Parquet writes: every call the worker makes to the bucket carries
    ExpectedBucketOwner, from one handler on its S3 client."""
    sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, previous_export="any_request")
    shared = {
        "dataset_id": PHARMACY_CLAIMS_ID,
        "bucket_owner": ACCOUNT_ID,
        "verify": "deep",
        "keep_exports": 1,
        "parquet": True,
    }
    catalog = write_catalog(
        tmp_path,
        {"name": "claims_a", "path": "owner/a", **shared},
        {"name": "claims_b", "path": "owner/b", **shared},
        defaults={"bucket": EXPORT_BUCKET, "region": "us-east-1"},
    )
    domo = domo_resource(sandbox)
    # Three exports: retention removes the first once no materialization (the Parquet asset's
    # included) names it.
    for _ in range(3):
        result = run(catalog, domo, instance)
        assert result.success, failure_text(result)
        sandbox.control.change_dataset(PHARMACY_CLAIMS_ID)

    calls = [c for c in sandbox.control.s3_calls() if c["access_key_id"] == ACCESS_KEY_ID]
    assert {c["bucket"] for c in calls} == {EXPORT_BUCKET}
    assert [c for c in calls if c["expected_owner"] != ACCOUNT_ID] == []
    copies = [c for c in calls if c["source_expected_owner"] is not None]
    assert copies and {c["source_expected_owner"] for c in copies} == {ACCOUNT_ID}
    assert {"GET", "HEAD", "PUT"} <= {c["method"] for c in calls}
    assert any(c["method"] == "POST" and c["key"] is None for c in calls), "retention deletes"
    assert any("parquet" in (c["key"] or "") and c["method"] == "PUT" for c in calls)


def test_default_encryption_is_recorded(sandbox: Sandbox, instance, tmp_path: Path) -> None:
    result = run(catalog_of(tmp_path), domo_resource(sandbox), instance)
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["s3/default_encryption"].value == "AES256"
    assert metadata["s3/public_access_blocked"].value is True


# -- access errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dataset_id", "token", "words"),
    [
        (PHARMACY_CLAIMS_ID, "wrong-token-for-this-test", "DOMO_DEVELOPER_TOKEN"),
        (HR_SALARIES_ID, None, "share it with the token's user"),
        ("0badc0de-0000-4000-8000-000000000000", None, "0badc0de-0000-4000-8000-000000000000"),
    ],
    ids=["401", "403", "404"],
)
def test_access_errors_fail_before_any_export(
    sandbox: Sandbox, instance, tmp_path: Path, dataset_id: str, token, words: str
) -> None:
    result = run(
        catalog_of(tmp_path, dataset_id=dataset_id), domo_resource(sandbox, token), instance
    )
    assert not result.success
    assert words in failure_text(result)
    assert export_posts(sandbox.control) == []


# -- PDP and identity ---------------------------------------------------------------------------


def test_pdp_restricted_token_passes_row_count_check(
    sandbox: Sandbox, instance, tmp_path: Path
) -> None:
    catalog = catalog_of(tmp_path, dataset_id=REGIONAL_SALES_ID, path="sec/west")
    result = run(catalog, domo_resource(sandbox, sandbox.tokens["west_manager"]), instance)
    assert result.success, failure_text(result)
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["dagster/row_count"].value == metadata["domo/rows_visible_to_token"].value
    assert metadata["domo/rows_visible_to_token"].value < metadata["domo/dataset_row_count"].value
    assert metadata["domo/acting_user"].value == "Wes Manager (1874021338)"
    assert all(e.passed for e in result.get_asset_check_evaluations())


# -- which credential goes where ----------------------------------------------------------------


def credentials_by_api(sandbox: Sandbox) -> dict[str, set[tuple[str, ...]]]:
    """The kinds of credential the sandbox saw on instance, platform and OAuth paths."""
    found: dict[str, set[tuple[str, ...]]] = {"/api/": set(), "/v1/": set(), "/oauth/": set()}
    for request in sandbox.control.requests():
        for prefix, kinds in found.items():
            if request["path"].startswith(prefix):
                kinds.add(tuple(request["credentials"]))
    return found


def test_oauth_alone_fails_at_load_naming_the_developer_token(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    with pytest.raises(Exception) as built:
        DomoResource(
            instance_url=sandbox.domo_url,
            client_id=sandbox.client_id,
            client_secret=sandbox.client_secret,
            api_url=sandbox.domo_url,
        )
    assert "DOMO_DEVELOPER_TOKEN" in str(built.value)
    assert "/api/query/v1/export/" in str(built.value)
    # The code location, configured by the environment with OAuth alone, does not load.
    env = {k: v for k, v in sandbox.env().items() if k != "DOMO_DEVELOPER_TOKEN"}
    catalog = catalog_of(tmp_path)
    loaded = subprocess.run(
        [sys.executable, "-c", "import domo_assets.definitions"],
        env={**os.environ, **env, "DOMO_EXPORTS_FILE": catalog.source},
        capture_output=True,
        text=True,
        timeout=LOAD_TIMEOUT_SECONDS,
    )
    assert loaded.returncode != 0
    assert "DOMO_DEVELOPER_TOKEN is not set" in loaded.stderr, loaded.stderr[-2000:]
    assert "OAuth client credentials alone cannot export" in loaded.stderr
    # Nothing reached Domo, so no bearer token reached an instance path.
    assert sandbox.control.requests() == []


def test_with_both_credentials_each_api_gets_only_its_own(
    sandbox: Sandbox, instance, tmp_path: Path
) -> None:
    domo = domo_resource(
        sandbox,
        client_id=sandbox.client_id,
        client_secret=sandbox.client_secret,
        api_url=sandbox.domo_url,
    )
    result = run(catalog_of(tmp_path), domo, instance)
    assert result.success, failure_text(result)
    seen = credentials_by_api(sandbox)
    # The export, its status, the row count and the user on the instance, with the token;
    # the DataSet's metadata and schema on the platform API, with the bearer token.
    assert seen == {"/api/": {("developer_token",)}, "/v1/": {("bearer",)}, "/oauth/": {("basic",)}}
    assert export_posts(sandbox.control), "the export went to the instance API"


@pytest.mark.parametrize(
    ("setting", "url"),
    [("instance_url", "http://domo.example.com"), ("api_url", "http://api.example.com:8080")],
)
def test_plain_http_urls_are_refused_at_load_or_when_dagster_reads_the_variable(
    sandbox: Sandbox, monkeypatch, setting: str, url: str
) -> None:
    """A URL written out is refused when the resource is built; one given as an EnvVar when
    Dagster initializes the resource (it reads the variable then; the library reads none)."""
    settings = {"instance_url": sandbox.domo_url, "developer_token": sandbox.token, setting: url}
    with pytest.raises(Exception) as literal:
        DomoResource(**settings)
    monkeypatch.setenv("HTTP_REFUSAL_URL", url)
    from_env_resource = DomoResource(**{**settings, setting: EnvVar("HTTP_REFUSAL_URL")})
    with pytest.raises(Exception) as from_env, build_resources({"domo": from_env_resource}):
        pass
    for refused in (literal.value, from_env.value):
        text = error_messages(refused)
        assert f"{setting} (DOMO_" in text and "https://" in text
        assert "loopback" in text
        assert sandbox.token not in text
    # The sandbox is plain http on 127.0.0.1: a loopback host is accepted.
    loopback = DomoResource(**{**settings, setting: "http://127.0.0.1:9"})
    assert getattr(loopback, setting) == "http://127.0.0.1:9"


@pytest.mark.parametrize(
    ("shape", "status", "words"),
    [
        ("domo", 400, ["HTTP 400 Bad Request", "Shape probe", "toe "]),
        ("oauth", 401, ["HTTP 401", "invalid_token: Shape probe"]),
        ("html", 403, ["HTTP 403", "403 Forbidden", "Shape probe"]),
        ("bearer_challenge", 401, ["HTTP 401", 'error_description="Shape probe"']),
    ],
)
def test_each_error_shape_reaches_the_step_failure(
    sandbox: Sandbox, instance, tmp_path: Path, shape: str, status: int, words: list[str]
) -> None:
    sandbox.control.add_fault(
        method="GET",
        path_regex="/api/data/v3/datasources/",
        status=status,
        shape=shape,
        message="Shape probe",
        times=None,
    )
    result = run(catalog_of(tmp_path), domo_resource(sandbox), instance)
    assert not result.success
    text = failure_text(result)
    for word in words:
        assert word in text, f"{word!r} missing from the failure: {text}"
    assert export_posts(sandbox.control) == []


# -- secret hygiene -----------------------------------------------------------------------------


def test_no_secret_in_event_log_output_reprs_or_snapshots(
    sandbox: Sandbox, tmp_path: Path, monkeypatch, capfd
) -> None:
    aws_secret = f"hygiene-secret-{uuid.uuid4().hex}"
    session_token = f"hygiene-session-{uuid.uuid4().hex}"
    # Long-lived keys in the chain: by default STS mints scoped credentials from them.
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", aws_secret)
    monkeypatch.setenv("DOMO_INSTANCE_URL", sandbox.domo_url)
    monkeypatch.setenv("HYGIENE_GOOD_TOKEN", sandbox.token)
    bad_token = f"hygiene-bad-token-{uuid.uuid4().hex}"
    monkeypatch.setenv("HYGIENE_BAD_TOKEN", bad_token)
    secrets = [sandbox.token, bad_token, aws_secret, session_token]

    def domo(token_var: str) -> DomoResource:
        return DomoResource(
            instance_url=EnvVar("DOMO_INSTANCE_URL"),
            developer_token=EnvVar(token_var),
            poll_initial_interval=0.1,
        )

    texts: list[str] = []
    with DagsterInstance.ephemeral() as instance:
        results = [
            run(catalog_of(tmp_path), domo("HYGIENE_GOOD_TOKEN"), instance),  # ok
            run(catalog_of(tmp_path, path="sec/bad"), domo("HYGIENE_BAD_TOKEN"), instance),  # 401
            run(
                catalog_of(tmp_path, bucket=PUBLIC_EXPORT_BUCKET),
                domo("HYGIENE_GOOD_TOKEN"),
                instance,
            ),  # guard
        ]
        sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, export_outcome="error")
        sandbox.control.change_dataset(PHARMACY_CLAIMS_ID)
        results.append(
            run(catalog_of(tmp_path, path="sec/err"), domo("HYGIENE_GOOD_TOKEN"), instance)
        )  # export error
        sandbox.control.set_behaviour(PHARMACY_CLAIMS_ID, export_outcome="success")
        sandbox.control.change_dataset(PHARMACY_CLAIMS_ID)
        monkeypatch.setenv("AWS_SESSION_TOKEN", session_token)
        results.append(
            run(
                catalog_of(tmp_path, path="sec/chain"),
                domo("HYGIENE_GOOD_TOKEN"),
                instance,
                AwsCredentialsResource(mode="chain", allow_unscoped_credentials=True),
            )
        )  # the chain's temporary credentials handed over as they are
        monkeypatch.delenv("AWS_SESSION_TOKEN")
        sandbox.control.deny_sts(["GetFederationToken"])
        results.append(
            run(
                catalog_of(tmp_path, path="sec/unscoped"),
                domo("HYGIENE_GOOD_TOKEN"),
                instance,
                AwsCredentialsResource(allow_unscoped_credentials=True),
            )
        )  # GetSessionToken credentials, allowed
        assert [r.success for r in results] == [True, False, False, False, True, True]
        minted = [c for c in sandbox.control.sts_calls() if c.get("issued_access_key_id")]
        assert minted, "the scan must cover credentials STS minted for Domo"
        for result in results:
            texts.extend(serialize_value(record) for record in instance.all_logs(result.run_id))
            run_record = instance.get_run_by_id(result.run_id)
            texts.append(serialize_value(run_record))
            texts.append(serialize_value(instance.get_job_snapshot(run_record.job_snapshot_id)))
            texts.append(failure_text(result))
    live = DomoResource(
        instance_url=sandbox.domo_url,
        developer_token=sandbox.token,
        client_id=sandbox.client_id,
        client_secret=aws_secret,
    )
    texts += [
        repr(live),
        str(live),
        repr(live.get_client()),
        repr(AwsCredentialsResource(aws_secret_access_key=aws_secret)),
    ]
    captured = capfd.readouterr()
    texts += [captured.out, captured.err]
    corpus = "\n".join(texts)
    assert "STEP_FAILURE" in corpus and "ASSET_MATERIALIZATION" in corpus, (
        "the scan must cover real runs"
    )
    for secret in secrets:
        assert secret not in corpus, f"a secret leaked (starts {secret[:12]})"
    # Every secret and session token the sandbox's STS mints carries a marker.
    for marker in (MINTED_SECRET_PREFIX, MINTED_TOKEN_PREFIX):
        assert marker not in corpus, f"a minted credential leaked ({marker}...)"


def escaped_forms(secret: str) -> set[str]:
    """A secret as it may appear in text: every form the sandbox's faults echo it in (as is,
    JSON-escaped, percent-encoded), and each of those JSON-escaped once more, as Dagster's
    serialized records hold text."""
    forms = set(echoed_forms(secret))
    return forms | {json.dumps(form)[1:-1] for form in forms}


def test_escaped_secrets_never_reach_the_event_log(
    sandbox: Sandbox, instance, tmp_path: Path, capfd
) -> None:
    marker = uuid.uuid4().hex
    # Secrets whose escaped forms differ from them: quotes, slashes, plus signs, non-ASCII.
    bad_token = f'dev"tok/en+é\\{marker}'
    aws_secret = f'aws/se"cr+et é{marker}'
    session_token = f"ses/sion+tok=en é{marker}"
    static = AwsCredentialsResource(
        mode="static",
        aws_access_key_id="ASIAESCAPEDSECRETS01",
        aws_secret_access_key=aws_secret,
        aws_session_token=session_token,
        allow_unscoped_credentials=True,
    )
    oauth = {
        "client_id": sandbox.client_id,
        "client_secret": sandbox.client_secret,
        "api_url": sandbox.domo_url,
    }
    echo = {"status": 400, "echo_secrets": True, "times": None}
    results = []
    # 1. The developer token echoed by the first call, the DataSet's metadata.
    sandbox.control.add_fault(method="GET", path_regex="/api/data/v3/datasources/", **echo)
    results.append(run(catalog_of(tmp_path), domo_resource(sandbox, bad_token), instance))
    sandbox.control.clear_faults()
    # 2. The AWS secret and session token echoed by the export POST, with the token.
    sandbox.control.add_fault(method="POST", path_regex=DOMO_EXPORTS_PATH, **echo)
    results.append(run(catalog_of(tmp_path), domo_resource(sandbox), instance, static))
    sandbox.control.clear_faults()
    # 3. The bearer token echoed by the platform API.
    sandbox.control.add_fault(method="GET", path_regex="/v1/datasets/", **echo)
    results.append(run(catalog_of(tmp_path), domo_resource(sandbox, **oauth), instance))
    sandbox.control.clear_faults()
    # 4. The OAuth client secret echoed by the token endpoint, OAuth-style.
    sandbox.control.add_fault(
        path_regex="/oauth/token", status=401, shape="oauth", echo_secrets=True, times=None
    )
    results.append(run(catalog_of(tmp_path), domo_resource(sandbox, **oauth), instance))

    assert [r.success for r in results] == [False] * 4
    echoes = [r for r in sandbox.control.requests() if r["fault"] == "status"]
    assert len(echoes) >= 4, "every run must have met its echoing fault"
    texts = [failure_text(r) for r in results]
    for result in results:
        texts.extend(serialize_value(record) for record in instance.all_logs(result.run_id))
    captured = capfd.readouterr()
    corpus = "\n".join([*texts, captured.out, captured.err])
    assert "Injected fault: ***" in corpus, "the echoes must have reached the messages, scrubbed"
    for secret in (bad_token, aws_secret, session_token, sandbox.token, sandbox.client_secret):
        for form in escaped_forms(secret):
            assert form not in corpus, f"a secret leaked as {form[:14]}..."
    # The sandbox's bearer tokens are JWT-shaped: none may appear, in any form.
    assert "eyJhbGci" not in corpus and marker not in corpus


def test_a_refused_aws_credentials_resource_does_not_quote_its_secrets() -> None:
    """pydantic quotes a model's input in a validation error; the resource holds keys."""
    secret = f"refused/{uuid.uuid4().hex}+secret"
    with pytest.raises(Exception) as refused:
        AwsCredentialsResource(
            mode="static",
            aws_access_key_id="AKIAREFUSEDSECRET001",
            aws_secret_access_key=secret,
        )
    text = str(refused.value)
    assert "allow_unscoped_credentials" in text, text
    assert secret not in text and secret[:20] not in text and secret[-12:] not in text
