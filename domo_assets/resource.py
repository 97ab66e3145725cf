"""``DomoResource``: Dagster configuration over :class:`domo_assets.domo.client.DomoClient`, with
the two resources nested in it: ``S3ReaderResource`` (how the steps reach S3) and
``AwsCredentialsResource`` (which credentials Domo is handed).

Thin ``ConfigurableResource``s: they hold settings (secrets through ``EnvVar``, so none is
stored in run config or job snapshots, and read by Dagster alone when it initializes them) and
build clients. All HTTP lives in the client; the export work lives in ``execution``, which is
handed what these made and imports none of them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    ConfigurableResource,
    EnvVar,
    InitResourceContext,
    MaterializeResult,
    get_dagster_logger,
)
from pydantic import ConfigDict, Field, PrivateAttr, model_validator

from domo_assets.domo.defaults import (
    DEFAULT_API_URL,
    DEFAULT_BACKOFF_MAX,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_RETRIES,
    DEFAULT_POOL_SIZE,
    DEFAULT_POST_ATTEMPTS,
    DEFAULT_READ_TIMEOUT,
)
from domo_assets.domo.endpoints import (
    DEVELOPER_TOKEN_VAR,
    OAUTH_CANNOT_EXPORT,
    OAUTH_CANNOT_EXPORT_HINT,
    check_url,
)
from domo_assets.domo.errors import DomoAuthenticationError
from domo_assets.domo.models import AwsCredentials
from domo_assets.domo.polling import (
    DEFAULT_BACKOFF,
    DEFAULT_INITIAL_INTERVAL,
    DEFAULT_MAX_INTERVAL,
    DEFAULT_STALE_EXPORT_AFTER,
    DEFAULT_TIMEOUT,
    PollSchedule,
)
from domo_assets.s3.credentials import (
    STS_MAX_DURATION,
    STS_MIN_DURATION,
    CredentialLimits,
    CredentialProvider,
    CredentialsMode,
    actions_from,
    unscoped_refusal,
)

if TYPE_CHECKING:
    from domo_assets.domo.auth import DeveloperTokenAuth, OAuthClientCredentialsAuth
    from domo_assets.domo.client import DomoClient

DEFAULT_POLL_INITIAL_INTERVAL = DEFAULT_INITIAL_INTERVAL
DEFAULT_POLL_MAX_INTERVAL = DEFAULT_MAX_INTERVAL
DEFAULT_POLL_BACKOFF = DEFAULT_BACKOFF
DEFAULT_POLL_TIMEOUT = DEFAULT_TIMEOUT
# Domo recommends at most ~120 requests a minute. An export costs about 5 requests plus its
# status reads (about 9 for a one-minute export with history), so 8 exports of a minute each
# at once stay near that budget; shorter exports burst above it and 429s are retried with
# Retry-After. Raise it for a Domo instance with a larger allowance.
DEFAULT_MAX_CONCURRENT_EXPORTS = 8
# Attempts of each S3 call, as dagster-aws's S3Resource has them.
DEFAULT_S3_MAX_ATTEMPTS = 5
# What the resources log when Dagster tears them down after a step.
DOMO_CLOSED_MESSAGE = "Closed the Domo client's connections"
S3_CLOSED_MESSAGE = "Closed the S3 client's connections"


class S3ReaderResource(ConfigurableResource):
    """How the export steps reach S3 with the worker's own credentials: to read what Domo wrote
    (HEAD, the header, deep verification), copy it, and write the manifest, the pointer and
    Parquet.

    Nested in ``DomoResource`` (``DomoResource(s3=S3ReaderResource(...))``, or a component's
    ``s3:`` section), so Dagster initializes it with the Domo resource and tears it down after the
    step. Unset fields are boto3's own: its credential chain, ``AWS_DEFAULT_REGION`` and
    ``AWS_ENDPOINT_URL``. The client is made on first use (importing boto3 is a run's cost, not
    the code location's) and closed at teardown.
    """

    # A refused setting's message must not quote the settings given: they hold the secrets.
    model_config = ConfigDict(hide_input_in_errors=True)

    region_name: str | None = Field(
        default=None, description="The S3 client's region; boto3's default when omitted."
    )
    endpoint_url: str | None = Field(
        default=None,
        description="An S3-compatible endpoint (e.g. a VPC endpoint or a local S3); boto3's "
        "AWS_ENDPOINT_URL or AWS's own when omitted.",
    )
    profile_name: str | None = Field(
        default=None, description="A profile of the shared AWS config files."
    )
    aws_access_key_id: str | None = Field(
        default=None, description="Access key id instead of boto3's chain. Pass as EnvVar."
    )
    aws_secret_access_key: str | None = Field(
        default=None, repr=False, description="Secret access key for those keys. Pass as EnvVar."
    )
    aws_session_token: str | None = Field(
        default=None, repr=False, description="Session token, for temporary keys. Pass as EnvVar."
    )
    max_attempts: int = Field(
        default=DEFAULT_S3_MAX_ATTEMPTS,
        ge=1,
        description="Attempts of each S3 call (botocore's standard retry mode).",
    )

    _client: Any = PrivateAttr(default=None)

    @classmethod
    def _is_dagster_maintained(cls) -> bool:
        return False

    def get_client(self) -> Any:
        """The step's boto3 S3 client, made on first use and shared by its threads.

        Raises:
            UninitializedResourceError: A setting is an ``EnvVar`` Dagster has not read yet.
        """
        if self._client is None:
            require_initialized(self)
            # Imported here: boto3 costs a code-location load 0.16 s, and only runs use it.
            import boto3
            from botocore.config import Config

            session = boto3.Session(
                profile_name=self.profile_name,
                aws_access_key_id=self.aws_access_key_id,
                aws_secret_access_key=self.aws_secret_access_key,
                aws_session_token=self.aws_session_token,
                region_name=self.region_name,
            )
            self._client = session.client(
                "s3",
                endpoint_url=self.endpoint_url,
                # botocore's "max_attempts" counts retries; "total_max_attempts" counts calls.
                config=Config(
                    retries={"total_max_attempts": self.max_attempts, "mode": "standard"}
                ),
            )
        return self._client

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        """Close the client's pooled connections at the end of the step (logged, so a run's
        event log shows Dagster tore the resource down)."""
        if self._client is not None:
            endpoint = self._client.meta.endpoint_url
            self._client.close()
            self._client = None
            if context.log is not None:
                context.log.debug(f"{S3_CLOSED_MESSAGE} ({endpoint})")


class AwsCredentialsResource(ConfigurableResource):
    """Which AWS credentials are handed to Domo for writing into the bucket.

    ``scoped`` (default): for every export, STS mints temporary credentials whose inline session
    policy allows writing only under that export's prefix (AssumeRole with ``role_arn``,
    otherwise GetFederationToken from the worker's long-term IAM user keys); where neither can be
    minted the export fails before Domo is asked. ``assume_role`` is ``scoped`` with a required
    role. Unscoped credentials are handed over only with ``allow_unscoped_credentials``: then
    ``scoped`` falls back to GetSessionToken (or the worker's own temporary credentials), and
    ``chain`` (boto3's chain) and ``static`` (the keys given here) may be used; long-lived keys
    need ``allow_long_lived`` as well. A catalog entry's ``credentials:`` may only narrow these.
    """

    # A refused setting's message must not quote the settings given: they hold the secrets.
    model_config = ConfigDict(hide_input_in_errors=True)

    mode: CredentialsMode = Field(
        default=CredentialsMode.SCOPED,
        description="scoped, assume_role, or (with allow_unscoped_credentials) chain or static.",
    )
    aws_access_key_id: str | None = Field(
        default=None,
        description="Access key id of the worker's keys (static mode, or the base of scoped "
        "sessions instead of boto3's chain). Pass as EnvVar.",
    )
    aws_secret_access_key: str | None = Field(
        default=None, repr=False, description="Secret access key for those keys. Pass as EnvVar."
    )
    aws_session_token: str | None = Field(
        default=None, repr=False, description="Session token, for temporary static keys."
    )
    role_arn: str | None = Field(
        default=None,
        description="Role whose scoped sessions Domo is handed (AssumeRole; the worker needs "
        "sts:AssumeRole on it).",
    )
    external_id: str | None = Field(
        default=None, repr=False, description="External id the role's trust policy requires."
    )
    duration_seconds: int | None = Field(
        default=None,
        ge=STS_MIN_DURATION,
        le=STS_MAX_DURATION,
        description="Fixed lifetime of minted credentials, in seconds (900 to 129,600 for "
        "GetFederationToken, to 43,200 for AssumeRole, to 3,600 for role chaining); by default "
        "each export's expected duration twice plus 5 minutes, between 900 s and poll_timeout.",
    )
    allow_unscoped_credentials: bool = Field(
        default=False,
        description="Hand Domo credentials no session policy limits to the export's prefix: "
        "GetSessionToken credentials (or the worker's own temporary ones) where no scoped ones "
        "can be minted, and the modes chain and static. Warned in the log and recorded in the "
        "metadata (domo/credentials_scope: unscoped).",
    )
    allow_long_lived: bool = Field(
        default=False,
        description="With allow_unscoped_credentials, let the modes chain and static hand over "
        "long-lived access keys (warned and recorded as domo/credentials_kind: long-lived).",
    )
    domo_object_actions: list[str] | None = Field(
        default=None,
        description="S3 actions the session policy allows on <bucket>/<path>/*; default "
        "s3:PutObject, s3:AbortMultipartUpload, s3:ListMultipartUploadParts.",
    )
    domo_bucket_actions: list[str] | None = Field(
        default=None,
        description="S3 actions allowed on the bucket itself; default s3:GetBucketLocation.",
    )
    domo_kms_actions: list[str] | None = Field(
        default=None,
        description="KMS actions allowed on the key Domo's files are encrypted with (the "
        "export's kms_key_id, or the bucket's default SSE-KMS key); default kms:GenerateDataKey, "
        "kms:Decrypt.",
    )
    region_name: str | None = Field(
        default=None, description="Region for STS; boto3's default when omitted."
    )

    @classmethod
    def _is_dagster_maintained(cls) -> bool:
        return False

    @model_validator(mode="after")
    def _consistent(self) -> AwsCredentialsResource:
        refusal = unscoped_refusal(
            CredentialsMode(self.mode), self.allow_unscoped_credentials, self.allow_long_lived
        )
        if refusal is not None:
            raise ValueError(f"aws_credentials: {refusal}")
        return self

    @property
    def limits(self) -> CredentialLimits:
        """What these settings allow: a catalog entry's ``credentials:`` may only narrow them."""
        return CredentialLimits(
            CredentialsMode(self.mode),
            self.allow_unscoped_credentials,
            self.allow_long_lived,
            self.duration_seconds,
        )

    def get_provider(self) -> CredentialProvider:
        """The credential provider these settings describe.

        Raises:
            UninitializedResourceError: A setting is an ``EnvVar`` Dagster has not read yet.
        """
        require_initialized(self)
        static = None
        if self.aws_access_key_id and self.aws_secret_access_key:
            static = AwsCredentials(
                self.aws_access_key_id, self.aws_secret_access_key, self.aws_session_token
            )
        import boto3  # at run time: importing boto3 costs a code-location load 0.16 s

        return CredentialProvider(
            boto3.Session(region_name=self.region_name),
            CredentialsMode(self.mode),
            static=static,
            role_arn=self.role_arn,
            external_id=self.external_id,
            duration_seconds=self.duration_seconds,
            allow_unscoped_credentials=self.allow_unscoped_credentials,
            allow_long_lived=self.allow_long_lived,
            actions=actions_from(
                self.domo_object_actions, self.domo_bucket_actions, self.domo_kms_actions
            ),
        )


class DomoResource(ConfigurableResource):
    """Connection to a Domo instance for exporting DataSets to S3.

    A developer token is required: Domo documents the export API on the instance host with a
    developer token only. OAuth client credentials may be given beside it: their bearer token
    then reads DataSet metadata and schemas from the platform API (``api_url``), and is never
    sent to the instance. Both URLs must be https:// (http:// only to a loopback host). Pass
    secrets as ``EnvVar`` so that they never land in run config: Dagster reads them when it
    initializes the resource for a step or a sensor tick, and the URL checks run then.

    Two resources are nested in it, and Dagster initializes and tears them down with it on every
    path (the code location's resources, a component instance's, a sensor tick): ``s3`` (an
    ``S3ReaderResource``: how the steps read and write S3) and ``aws_credentials`` (an
    ``AwsCredentialsResource``: which credentials Domo is handed). Both default to their
    defaults.

    Example:
        .. code-block:: python

            DomoResource(
                instance_url=EnvVar("DOMO_INSTANCE_URL"),
                developer_token=EnvVar("DOMO_DEVELOPER_TOKEN"),
                s3=S3ReaderResource(region_name="us-east-1"),
                aws_credentials=AwsCredentialsResource(role_arn="arn:aws:iam::...:role/domo"),
            )
    """

    instance_url: str = Field(
        description="Base URL of the Domo instance, e.g. https://acme.domo.com."
    )
    developer_token: str | None = Field(
        default=None,
        repr=False,
        description="Developer token, sent as X-DOMO-Developer-Token to the instance API only "
        "(required: the export API takes no other credential). Pass as EnvVar.",
    )
    client_id: str | None = Field(
        default=None,
        description="OAuth client id (optional, beside the developer token): its bearer token "
        "reads DataSet metadata and schemas from the platform API.",
    )
    client_secret: str | None = Field(
        default=None, repr=False, description="OAuth client secret. Pass as EnvVar."
    )
    api_url: str = Field(
        default=DEFAULT_API_URL,
        description="Domo platform API URL: OAuth tokens are fetched from and sent to it only.",
    )
    connect_timeout: float = Field(
        default=DEFAULT_CONNECT_TIMEOUT, description="Seconds to wait for a connection to Domo."
    )
    read_timeout: float = Field(
        default=DEFAULT_READ_TIMEOUT, description="Seconds to wait for each Domo response."
    )
    max_retries: int = Field(
        default=DEFAULT_MAX_RETRIES,
        description="Retries of a read (GET) after a connection error, 429 or 5xx.",
    )
    post_attempts: int = Field(
        default=DEFAULT_POST_ATTEMPTS,
        ge=1,
        description="Tries of the export POST after failures that left no export in Domo.",
    )
    backoff_max: float = Field(
        default=DEFAULT_BACKOFF_MAX, description="Longest wait between two retries, in seconds."
    )
    poll_initial_interval: float = Field(
        default=DEFAULT_POLL_INITIAL_INTERVAL,
        description="First wait between two export status reads, in seconds.",
    )
    poll_max_interval: float = Field(
        default=DEFAULT_POLL_MAX_INTERVAL,
        description="Longest wait between two export status reads, in seconds.",
    )
    poll_backoff: float = Field(
        default=DEFAULT_POLL_BACKOFF, description="Growth factor of the status-read interval."
    )
    poll_timeout: float = Field(
        default=DEFAULT_POLL_TIMEOUT,
        gt=0,
        description="Longest wait of one attempt, and longest an asset's own export may run "
        "since it started (across every attempt and run that attaches to it), in seconds.",
    )
    stale_export_after: float = Field(
        default=DEFAULT_STALE_EXPORT_AFTER,
        gt=0,
        description="Seconds after which an export Domo still lists as running is stale: "
        "never waited for, and failing the asset if it is this asset's or blocks a new one.",
    )
    max_concurrent_exports: int = Field(
        default=DEFAULT_MAX_CONCURRENT_EXPORTS,
        ge=1,
        description="Exports one step drives at once (each is a few status reads a minute).",
    )

    s3: S3ReaderResource = Field(
        description="How the export steps reach S3 (default: boto3's chain, region and "
        "AWS_ENDPOINT_URL)."
    )
    aws_credentials: AwsCredentialsResource = Field(
        description="Which AWS credentials Domo is handed (default: scoped STS sessions)."
    )

    # A refused setting's message must not quote the settings given: they hold the secrets.
    model_config = ConfigDict(hide_input_in_errors=True)

    _client: DomoClient | None = PrivateAttr(default=None)

    def __init__(self, **settings: Any) -> None:
        # Dagster tracks a nested resource only when it is given to __init__ (a pydantic default
        # would be a plain value it never initializes), so the defaults are given here.
        settings.setdefault("s3", S3ReaderResource())
        settings.setdefault("aws_credentials", AwsCredentialsResource())
        super().__init__(**settings)

    @model_validator(mode="before")
    @classmethod
    def _documented_credentials_and_https(cls, data: Any) -> Any:
        """Refuse, when the resource is built, what would send a credential where Domo does not
        document it (OAuth without a developer token, a plain http:// URL), and half an OAuth
        client."""
        if not isinstance(data, dict):
            return data
        oauth = [bool(data.get("client_id")), bool(data.get("client_secret"))]
        if any(oauth) and not data.get("developer_token"):
            raise ValueError(f"{OAUTH_CANNOT_EXPORT}. {OAUTH_CANNOT_EXPORT_HINT}")
        if any(oauth) and not all(oauth):
            raise ValueError(
                "OAuth needs both client_id (DOMO_CLIENT_ID) and client_secret "
                "(DOMO_CLIENT_SECRET): give both, or neither (the developer token alone can do "
                "everything)"
            )
        for name, variable in (("instance_url", "DOMO_INSTANCE_URL"), ("api_url", "DOMO_API_URL")):
            url = _literal(data.get(name))
            if url:
                check_url(url, f"{name} ({variable})")
        return data

    @classmethod
    def _is_dagster_maintained(cls) -> bool:
        return False

    def with_nested(
        self,
        *,
        s3: S3ReaderResource | None = None,
        aws_credentials: AwsCredentialsResource | None = None,
    ) -> DomoResource:
        """The same connection with these nested resources instead (None keeps its own).

        Settings given as ``EnvVar`` stay ``EnvVar``: nothing is read from the environment.
        """
        settings = {name: getattr(self, name) for name in type(self).model_fields}
        if s3 is not None:
            settings["s3"] = s3
        if aws_credentials is not None:
            settings["aws_credentials"] = aws_credentials
        return type(self)(**settings)

    @property
    def poll_schedule(self) -> PollSchedule:
        """The status-read schedule these settings describe."""
        return PollSchedule(
            initial_interval=self.poll_initial_interval,
            max_interval=self.poll_max_interval,
            backoff=self.poll_backoff,
            timeout=self.poll_timeout,
        )

    def build_auth(self) -> DeveloperTokenAuth:
        """The instance API's credential: the developer token.

        Raises:
            DomoAuthenticationError: No developer token (an unset variable included); the
                message says that OAuth alone cannot export.
        """
        # Imported here, like the client below: they pull in requests, which a run needs but
        # loading the code location does not (see "Load time" in the README).
        from domo_assets.domo.auth import DeveloperTokenAuth

        token = self.developer_token
        if not token:
            summary = (
                f"DomoResource has no developer token ({DEVELOPER_TOKEN_VAR} is unset or empty): "
                "the export API needs one"
            )
            if self.client_id or self.client_secret:
                summary += f". {OAUTH_CANNOT_EXPORT}"
            raise DomoAuthenticationError(summary, hint=OAUTH_CANNOT_EXPORT_HINT)
        return DeveloperTokenAuth(token)

    def build_platform_auth(self) -> OAuthClientCredentialsAuth | None:
        """The platform API's credential: OAuth client credentials, when configured."""
        from domo_assets.domo.auth import OAuthClientCredentialsAuth

        client_id, secret = self.client_id, self.client_secret
        if not client_id and not secret:
            return None
        return OAuthClientCredentialsAuth(client_id or "", secret or "", api_url=self.api_url)

    def get_client(self, log: logging.Logger | None = None) -> DomoClient:
        """A client for this instance, shared by every call on this resource.

        Args:
            log: Where the client logs retries; Dagster's logger by default.

        Raises:
            UninitializedResourceError: A setting is an ``EnvVar`` Dagster has not read yet.
        """
        if self._client is None:
            require_initialized(self)
            from domo_assets.domo.client import DomoClient

            self._client = DomoClient(
                self.instance_url,
                self.build_auth(),
                platform_auth=self.build_platform_auth(),
                connect_timeout=self.connect_timeout,
                read_timeout=self.read_timeout,
                max_retries=self.max_retries,
                post_attempts=self.post_attempts,
                backoff_max=self.backoff_max,
                log=log or get_dagster_logger(),
                pool_size=max(DEFAULT_POOL_SIZE, self.max_concurrent_exports),
            )
        return self._client

    def export_and_poll(
        self, context: AssetExecutionContext
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        """Export the Domo exports a step selected and yield their results, like
        ``FivetranWorkspace.sync_and_poll``.

        For an asset built by ``domo_export_assets`` (or the built-in ones): each selected
        asset's catalog entry comes from its spec's ``DomoMetadataSet``. Each export is started
        (or attached to), polled, verified against its own request and, when every check
        passed, yielded as a ``MaterializeResult`` with its check results; otherwise its check
        results alone are yielded. After all of them, the step fails naming each failure.

        S3 is reached with the nested ``s3`` resource, and Domo is handed the credentials the
        nested ``aws_credentials`` resource chooses.

        Args:
            context: The asset step's context.

        Yields:
            The results of every selected export.

        Raises:
            Failure: Some exports failed; the description names each, and step retries are
                asked for only when a retry could mend one.
        """
        # Imported at run time: it pulls in requests and boto3, which loading does not need.
        # The execution layer knows no resource: it is handed what the resources made.
        from domo_assets.execution import ExportTools, export_selected

        tools = ExportTools(
            client=self.get_client(log=context.log),
            s3_client=self.s3.get_client(),
            credentials=self.aws_credentials.get_provider(),
            schedule=self.poll_schedule,
            stale_after=self.stale_export_after,
            max_concurrent_exports=self.max_concurrent_exports,
        )
        yield from export_selected(context, tools)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        """Close pooled connections at the end of a step or sensor tick (logged, so a run's
        event log shows Dagster tore the resource down)."""
        if self._client is not None:
            self._client.close()
            self._client = None
            if context.log is not None:
                context.log.debug(f"{DOMO_CLOSED_MESSAGE} ({self.instance_url})")


class UninitializedResourceError(RuntimeError):
    """A resource was used before Dagster initialized it: a setting is still an ``EnvVar``."""


def require_initialized(resource: ConfigurableResource) -> None:
    """Refuse to use a resource whose settings Dagster has not read yet.

    An ``EnvVar`` setting is read by Dagster when it initializes the resource (a step, a sensor
    tick, ``dagster.build_resources``); used before, it would be the variable's name, not its
    value.

    Raises:
        UninitializedResourceError: Naming the resource, the setting and the variable.
    """
    for name in type(resource).model_fields:
        value = getattr(resource, name)
        if isinstance(value, EnvVar):
            raise UninitializedResourceError(
                f"{type(resource).__name__}.{name} is EnvVar({value.env_var_name!r}), which "
                "Dagster reads when it initializes the resource: use the resource in a run or "
                "a sensor tick, or within dagster.build_resources({...})"
            )


def _literal(value: Any) -> str | None:
    """A setting's value when it is written out; None while it is an ``EnvVar``, which Dagster
    resolves when it initializes the resource (building it again, so the checks run then)."""
    return None if isinstance(value, EnvVar) or not value else value
