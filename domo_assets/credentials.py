"""The AWS credentials handed to Domo so it can write into the bucket.

Three sources: boto3's credential chain (frozen, with the session token when temporary), static
keys, or STS AssumeRole, which mints fresh temporary credentials for every export. Domo
recommends temporary credentials; the role is the safest choice for production.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from domo_assets.errors import ConfigurationError
from domo_assets.models import AwsCredentials

if TYPE_CHECKING:
    import boto3

DEFAULT_SESSION_DURATION = 3600
SESSION_NAME_PREFIX = "domo-assets-"
_SESSION_NAME_UNSAFE = re.compile(r"[^\w+=,.@-]")


class CredentialsError(ConfigurationError):
    """No usable AWS credentials could be resolved."""


class CredentialsMode(StrEnum):
    """Where the credentials handed to Domo come from."""

    CHAIN = "chain"
    STATIC = "static"
    ASSUME_ROLE = "assume_role"


class CredentialProvider:
    """Resolves the credentials for one export.

    Args:
        session: The boto3 session whose chain (environment, profile, instance role...) is used.
        mode: Which source to use.
        static: The keys for ``static`` mode.
        role_arn: The role for ``assume_role`` mode.
        external_id: Optional external id the role's trust policy requires.
        duration_seconds: Lifetime of assumed-role credentials.
    """

    def __init__(
        self,
        session: boto3.Session,
        mode: CredentialsMode = CredentialsMode.CHAIN,
        *,
        static: AwsCredentials | None = None,
        role_arn: str | None = None,
        external_id: str | None = None,
        duration_seconds: int = DEFAULT_SESSION_DURATION,
    ):
        self.session = session
        self.mode = mode
        self.static = static
        self.role_arn = role_arn
        self.external_id = external_id
        self.duration_seconds = duration_seconds

    def __repr__(self) -> str:
        return f"CredentialProvider(mode={self.mode.value!r}, role_arn={self.role_arn!r})"

    def with_settings(
        self,
        mode: CredentialsMode,
        role_arn: str | None = None,
        external_id: str | None = None,
        duration_seconds: int = DEFAULT_SESSION_DURATION,
    ) -> CredentialProvider:
        """The same session with another mode (a catalog's per-export override)."""
        return CredentialProvider(
            self.session,
            mode,
            static=self.static,
            role_arn=role_arn,
            external_id=external_id,
            duration_seconds=duration_seconds,
        )

    def for_export(self, export_name: str) -> AwsCredentials:
        """Credentials for one export (fresh ones in ``assume_role`` mode).

        Raises:
            CredentialsError: None could be resolved; the message says what to set.
        """
        if self.mode is CredentialsMode.STATIC:
            if self.static is None:
                raise CredentialsError(
                    "credentials mode 'static' needs aws_access_key_id and aws_secret_access_key"
                )
            return self.static
        if self.mode is CredentialsMode.ASSUME_ROLE:
            return self._assume_role(export_name)
        return self._from_chain()

    def _from_chain(self) -> AwsCredentials:
        resolved = self.session.get_credentials()
        if resolved is None:
            raise CredentialsError(
                "boto3 found no AWS credentials to hand to Domo: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones), a profile, or a role"
            )
        frozen = resolved.get_frozen_credentials()
        return AwsCredentials(frozen.access_key, frozen.secret_key, frozen.token or None)

    def _assume_role(self, export_name: str) -> AwsCredentials:
        if not self.role_arn:
            raise CredentialsError("credentials mode 'assume_role' needs role_arn")
        kwargs = {
            "RoleArn": self.role_arn,
            "RoleSessionName": session_name(export_name),
            "DurationSeconds": self.duration_seconds,
        }
        if self.external_id:
            kwargs["ExternalId"] = self.external_id
        try:
            answer = self.session.client("sts").assume_role(**kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise CredentialsError(
                f"STS AssumeRole of {self.role_arn} failed: {exc}. Check the role's trust policy "
                "(and external id) allows this identity"
            ) from None
        creds = answer["Credentials"]
        return AwsCredentials(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])


def session_name(export_name: str) -> str:
    """An STS session name naming the export, so CloudTrail shows which export wrote what."""
    return (SESSION_NAME_PREFIX + _SESSION_NAME_UNSAFE.sub("-", export_name))[:64]
