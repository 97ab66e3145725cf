"""The KMS key an export's files are encrypted with, named as IAM matches it: by its key ARN.

An IAM policy's ``Resource`` matches a KMS key by its key ARN only: an alias name or alias ARN
matches nothing, and a bare key id is not an ARN at all. So the key an export names
(``kms_key_id``), or the bucket's default SSE-KMS key when it names none, is resolved before
its session policy is written:

* a key ARN is used as it is (a key of another account can only be named this way, and its key
  policy may not let the worker describe it);
* an alias name (``alias/x``) or alias ARN is resolved with KMS ``DescribeKey``, with the
  worker's credentials, in the export's region; a missing or disabled key is refused;
* a bare key id names a key of the caller's own account: it is described the same way, and
  refused unless the key is in the worker's account (STS ``GetCallerIdentity``).

A key outside the export's region is refused: S3 encrypts with keys of the bucket's region only.
Domo is sent the key the policy grants (:meth:`ExportKey.for_writer`): its key id, as Domo
documents ``awsKmsKey``, when the credentials Domo writes with belong to the key's account (a
key id names a key of the writer's account); its key ARN otherwise, the only form by which S3
finds a key of another account.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from domo_assets.domo.errors import ConfigurationError

if TYPE_CHECKING:
    import boto3

KEY_ARN = re.compile(
    r"^arn:aws[a-z-]*:kms:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):key/(?P<id>.+)$"
)
ALIAS_ARN = re.compile(r"^arn:aws[a-z-]*:kms:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):alias/.+$")
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(?P<account>\d{12}):role/")
ALIAS_PREFIX = "alias/"
S3_MANAGED_KEY_ALIAS = "alias/aws/s3"
"""The AWS managed key SSE-KMS uses when a bucket's default names no key."""
KMS_ALGORITHMS = frozenset({"aws:kms", "aws:kms:dsse"})
"""The default-encryption algorithms that encrypt with a KMS key (SSE-KMS, DSSE-KMS)."""
EXPORT_SOURCE = "kms_key_id"
BUCKET_DEFAULT_SOURCE = "the bucket's default encryption"
_NOT_FOUND = {"NotFoundException"}
_DENIED = {"AccessDeniedException", "AccessDenied", "UnauthorizedOperation"}


class KmsKeyError(ConfigurationError):
    """An export's KMS key cannot be named in a session policy; the message says what to fix."""


class KmsLookupError(RuntimeError):
    """KMS or STS could not be reached, or failed, while resolving a key (a retry may pass)."""


@dataclass(frozen=True)
class ExportKey:
    """The KMS key an export's files are encrypted with.

    Attributes:
        arn: Its key ARN (what the session policy grants).
        given: How it was named (``kms_key_id``, or the bucket default's ``KMSMasterKeyID``).
        source: ``kms_key_id`` or ``the bucket's default encryption``.
    """

    arn: str
    given: str
    source: str

    @property
    def account(self) -> str:
        """The AWS account the key belongs to."""
        return _key_arn(self.arn)["account"]

    @property
    def key_id(self) -> str:
        """The key's id (the last part of its ARN)."""
        return _key_arn(self.arn)["id"]

    def for_writer(self, writer_account: str) -> str:
        """What to send Domo as ``awsKmsKey``: the key id when the credentials Domo writes with
        belong to the key's account, the key ARN otherwise."""
        return self.key_id if writer_account == self.account else self.arn


def default_kms_key(algorithm: str | None, key: str | None) -> str | None:
    """The key a bucket's default encryption uses, or None when it is not SSE-KMS.

    Args:
        algorithm: ``SSEAlgorithm`` of the default rule.
        key: Its ``KMSMasterKeyID``, if any (none means the AWS managed key ``aws/s3``).
    """
    if algorithm not in KMS_ALGORITHMS:
        return None
    return key or S3_MANAGED_KEY_ALIAS


def role_account(role_arn: str | None) -> str | None:
    """The account of an IAM role ARN, or None."""
    match = ROLE_ARN.match(role_arn or "")
    return match["account"] if match else None


class KeyResolver:
    """Resolves KMS keys to key ARNs with the worker's credentials (each key once per step).

    Args:
        session: The boto3 session whose credentials describe keys and name the worker's account.
    """

    def __init__(self, session: boto3.Session) -> None:
        self._session = session
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        self._keys: dict[tuple[str, str, str], ExportKey] = {}
        self._account: str | None = None

    def resolve(self, key: str, region: str, *, source: str, export_name: str) -> ExportKey:
        """The key ARN of ``key``, checked for use by an export in ``region``.

        Args:
            key: A key ARN, alias ARN, alias name or key id.
            region: The export's region.
            source: Where the key was named (``EXPORT_SOURCE`` or ``BUCKET_DEFAULT_SOURCE``).
            export_name: The export, for messages.

        Raises:
            KmsKeyError: The key cannot be resolved, is disabled, is of another region, or is
                a bare key id of another account.
            KmsLookupError: KMS or STS failed otherwise.
        """
        cache_key = (key, region, source)
        with self._lock:
            found = self._keys.get(cache_key)
        if found is None:
            found = ExportKey(self._arn(key, region, source, export_name), key, source)
            with self._lock:
                self._keys[cache_key] = found
        return found

    def account(self) -> str:
        """The worker's AWS account (STS ``GetCallerIdentity``, read once).

        Raises:
            KmsLookupError: STS could not answer.
        """
        with self._lock:
            if self._account is None:
                try:
                    identity = self._session.client("sts").get_caller_identity()
                except (BotoCoreError, ClientError) as exc:
                    raise KmsLookupError(
                        f"STS GetCallerIdentity failed ({_describe(exc)}): the worker's account "
                        "is needed to name its KMS keys"
                    ) from None
                self._account = str(identity["Account"])
            return self._account

    def _arn(self, key: str, region: str, source: str, export_name: str) -> str:
        where = f"export {export_name!r}: {source} names KMS key {key!r}"
        arn = KEY_ARN.match(key)
        if arn is not None:
            _check_region(arn["region"], region, where)
            return key
        alias_arn = ALIAS_ARN.match(key)
        if alias_arn is not None:
            _check_region(alias_arn["region"], region, where)
        elif key.startswith("arn:"):
            raise KmsKeyError(f"{where}, which is neither a key ARN nor an alias ARN")
        metadata = self._describe(key, region, where)
        resolved = str(metadata.get("Arn", ""))
        if KEY_ARN.match(resolved) is None:
            raise KmsKeyError(f"{where}: KMS DescribeKey answered no key ARN ({resolved!r})")
        _check_region(_key_arn(resolved)["region"], region, where)
        if metadata.get("Enabled") is False:
            raise KmsKeyError(
                f"{where}, which resolves to {resolved}, a key that is "
                f"{metadata.get('KeyState', 'disabled')}: S3 cannot encrypt with it. Enable it, "
                "or name another key"
            )
        if alias_arn is None and not key.startswith(ALIAS_PREFIX):
            # A bare key id names a key of the caller's account: hold it to the worker's.
            account = self.account()
            if _key_arn(resolved)["account"] != account:
                raise KmsKeyError(
                    f"{where}, a bare key id that resolves to {resolved}, outside the worker's "
                    f"account {account}. Name a key of another account by its key ARN"
                )
        return resolved

    def _describe(self, key: str, region: str, where: str) -> dict[str, Any]:
        try:
            answer = self._client(region).describe_key(KeyId=key)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _NOT_FOUND:
                account = self.account()
                bare = not key.startswith((ALIAS_PREFIX, "arn:"))
                raise KmsKeyError(
                    f"{where}, which KMS does not know in region {region} "
                    + (
                        f"of the worker's account {account}: a bare key id names a key of that "
                        "account only; name a key of another account by its key ARN"
                        if bare
                        else f"(asked as account {account}): check the alias"
                    )
                ) from None
            if code in _DENIED:
                raise KmsKeyError(
                    f"{where}, which the worker may not describe ({code}): grant kms:DescribeKey "
                    "on it to the worker's credentials (a session policy names a key by its key "
                    "ARN, so an alias or key id must be resolved), or name the key by its key ARN"
                ) from None
            raise KmsLookupError(f"{where}: KMS DescribeKey failed ({_describe(exc)})") from None
        except BotoCoreError as exc:
            raise KmsLookupError(f"{where}: KMS DescribeKey failed ({_describe(exc)})") from None
        return dict(answer.get("KeyMetadata", {}))

    def _client(self, region: str) -> Any:
        with self._lock:
            client = self._clients.get(region)
            if client is None:
                client = self._session.client("kms", region_name=region)
                self._clients[region] = client
            return client


def _key_arn(arn: str) -> re.Match[str]:
    match = KEY_ARN.match(arn)
    if match is None:
        raise ValueError(f"{arn!r} is not a KMS key ARN")
    return match


def _check_region(key_region: str, region: str, where: str) -> None:
    if key_region != region:
        raise KmsKeyError(
            f"{where}, a key of region {key_region}, but the export's region is {region}: S3 "
            "encrypts only with keys of the bucket's region"
        )


def _describe(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"
