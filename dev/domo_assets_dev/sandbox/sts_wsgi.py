"""WSGI middleware in front of moto: STS requests are logged, refused, or answered with
unique credentials; every other request reaches moto untouched.

Before moto answers, the rules AWS's STS enforces whatever the caller's permissions are
applied (`sts.rule_refusal`; moto enforces none of them): duration bounds (an assumed role's
``MaxSessionDuration`` read from moto's IAM), role chaining capped at one hour, GetFederationToken
and GetSessionToken refused to temporary credentials, a session policy of at most 2,048
characters.

An STS request is one signed for the ``sts`` service (``Authorization`` header or presigned
``X-Amz-Credential``), or an unsigned form POST with STS's API version. Its body is read
once and put back for moto. moto's answers to the credential-minting actions are rewritten:
GetFederationToken and GetSessionToken get a fresh ``ASIA`` access key id (moto answers a
fixed example key), and every minted secret and session token gets a fresh random value
that starts with `MINTED_SECRET_PREFIX` / `MINTED_TOKEN_PREFIX`; the expiration moto
computed from ``DurationSeconds`` is kept.
"""

from __future__ import annotations

import io
import json
import re
import time
import uuid
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from moto.iam.exceptions import NotFoundException
from moto.iam.models import iam_backends

from .policy import PolicyError, parse_policy
from .sts import (
    ACTION_PREFIX,
    ASSUME_ROLE,
    ASSUMED_ROLE,
    MINTING_ACTIONS,
    TEMPORARY_KEY_PREFIX,
    IssuedCredentials,
    StsCall,
    StsLedger,
    new_access_key_id,
    new_secret_access_key,
    new_session_token,
    rule_refusal,
)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Answer = tuple[str, list[tuple[str, str]], bytes]  # status line, headers, body

STS_SERVICE = "sts"
STS_API_VERSION = "2011-06-15"
STS_NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
XML_CONTENT_TYPE = "text/xml"
# Credential=AKID/date/region/service/aws4_request, in a SigV4 header or a presigned URL.
CREDENTIAL_PATTERN = re.compile(r"Credential=([^/,\s]+)/[^/]+/[^/]+/([^/,\s]+)/aws4_request")
PRESIGNED_CREDENTIAL = "X-Amz-Credential"
DEFAULT_CALLER_NAME = "moto"  # moto's name for a caller it does not know
DEFAULT_PARTITION = "aws"
DEFAULT_ROLE_MAX_DURATION = 3600  # a role's MaxSessionDuration unless set


class StsMiddleware:
    """Wraps moto's WSGI application (see the module docstring).

    Args:
        app: moto's WSGI application.
        ledger: Where calls, issued credentials and refusals are kept.
        account_id: The sandbox's AWS account (for the ARNs of refusals).
    """

    def __init__(self, app: WsgiApp, ledger: StsLedger, account_id: str) -> None:
        self._app = app
        self._ledger = ledger
        self._account_id = account_id

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        signer = signing_scope(environ)
        if signer is not None and signer[1] != STS_SERVICE:
            return self._app(environ, start_response)
        if signer is None and not _is_unsigned_form_post(environ):
            return self._app(environ, start_response)
        params = request_params(environ, take_body(environ))
        if signer is None and params.get("Version") != STS_API_VERSION:
            return self._app(environ, start_response)
        call = logged_call(params, signer[0] if signer else None)
        status, headers, body = self._answer(environ, call)
        start_response(status, headers)
        return [body]

    def _answer(self, environ: dict[str, Any], call: StsCall) -> Answer:
        """Refuse, reject or forward one STS request and log it."""
        caller = self._ledger.lookup(call.caller_access_key_id or "")
        refusal = rule_refusal(call, caller, self._role_max_duration(call))
        if refusal is not None:
            self._ledger.record(call.answered(refusal.status))
            return _error(HTTPStatus(refusal.status), refusal.code, refusal.message)
        if self._ledger.is_denied(call.action):
            self._ledger.record(call.answered(HTTPStatus.FORBIDDEN, denied=True))
            return _error(HTTPStatus.FORBIDDEN, "AccessDenied", self._refusal(call))
        policy = None
        if call.policy_text is not None:
            try:
                policy = parse_policy(call.policy_text)
            except PolicyError as exc:
                # STS refuses what it cannot read; moto would accept it and ignore it.
                self._ledger.record(call.answered(HTTPStatus.BAD_REQUEST))
                message = f"Syntax errors in policy: {exc}"
                return _error(HTTPStatus.BAD_REQUEST, "MalformedPolicyDocument", message)
        status, headers, body = forward(self._app, environ)
        code = int(status.split(" ", 1)[0])
        fields: dict[str, Any] = {}
        if code == HTTPStatus.OK and call.action in MINTING_ACTIONS:
            body, issued = mint(call.action, body, policy)
            self._ledger.remember(issued)
            fields = {
                "issued_access_key_id": issued.access_key_id,
                "expiration": _answer_text(body, "Expiration"),
            }
        self._ledger.record(call.answered(code, **fields))
        return status, _with_length(headers, len(body)), body

    def _role_max_duration(self, call: StsCall) -> int | None:
        """The MaxSessionDuration of the role an AssumeRole call names, from moto's IAM; None
        for another call or a role moto does not know (moto then answers as it does)."""
        if call.action != ASSUME_ROLE or not call.role_arn:
            return None
        account = call.role_arn.split(":")[4] if call.role_arn.count(":") >= 5 else ""
        try:
            role = iam_backends[account or self._account_id][DEFAULT_PARTITION].get_role_by_arn(
                call.role_arn
            )
        except NotFoundException:
            return None
        return int(role.max_session_duration or DEFAULT_ROLE_MAX_DURATION)

    def _refusal(self, call: StsCall) -> str:
        """AWS's AccessDenied message for a refused call."""
        issued = self._ledger.lookup(call.caller_access_key_id or "")
        user = (issued and issued.principal_arn) or (
            f"arn:aws:iam::{self._account_id}:user/{DEFAULT_CALLER_NAME}"
        )
        message = f"User: {user} is not authorized to perform: {ACTION_PREFIX}{call.action}"
        resource = call.role_arn or (
            f"arn:aws:sts::{self._account_id}:federated-user/{call.name}" if call.name else None
        )
        return f"{message} on resource: {resource}" if resource else message


def signing_scope(environ: Mapping[str, Any]) -> tuple[str, str] | None:
    """Return (access key id, service) of a SigV4-signed request, or None if unsigned."""
    match = CREDENTIAL_PATTERN.search(environ.get("HTTP_AUTHORIZATION", ""))
    if match is None:
        presigned = parse_qs(environ.get("QUERY_STRING", "")).get(PRESIGNED_CREDENTIAL)
        match = CREDENTIAL_PATTERN.search(f"Credential={presigned[0]}") if presigned else None
    return (match[1], match[2].lower()) if match else None


def _is_unsigned_form_post(environ: Mapping[str, Any]) -> bool:
    return environ.get("REQUEST_METHOD") == "POST" and environ.get("CONTENT_TYPE", "").startswith(
        FORM_CONTENT_TYPE
    )


def take_body(environ: dict[str, Any]) -> bytes:
    """Read the request body and put it back, so the application still reads all of it."""
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH") or ""
    if length.isdigit():
        body = stream.read(int(length))
    elif environ.get("wsgi.input_terminated"):  # chunked: the server ends the stream
        body = stream.read()
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


def request_params(environ: Mapping[str, Any], body: bytes) -> dict[str, str]:
    """Return the query-protocol parameters of a request: query string, then form body."""
    params: dict[str, str] = {}
    sources = [environ.get("QUERY_STRING", "")]
    if environ.get("CONTENT_TYPE", "").startswith(FORM_CONTENT_TYPE):
        sources.append(body.decode("utf-8", "replace"))
    for source in sources:
        for name, values in parse_qs(source, keep_blank_values=True).items():
            params[name] = values[0]
    return params


def logged_call(params: Mapping[str, str], caller: str | None) -> StsCall:
    """Return the log entry of a request, before its answer is known."""
    policy_text = params.get("Policy")
    duration = params.get("DurationSeconds")
    return StsCall(
        action=params.get("Action"),
        time=time.time(),
        role_arn=params.get("RoleArn"),
        role_session_name=params.get("RoleSessionName"),
        name=params.get("Name"),
        duration_seconds=int(duration) if duration and duration.isdigit() else duration,
        policy=_json_or_none(policy_text),
        policy_text=policy_text,
        external_id_given="ExternalId" in params,
        caller_access_key_id=caller,
    )


def _json_or_none(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def forward(app: WsgiApp, environ: dict[str, Any]) -> Answer:
    """Run the request through `app` and return its status line, headers and whole body."""
    answer: dict[str, Any] = {}
    chunks: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        answer["status"], answer["headers"] = status, list(headers)
        return chunks.append

    result = app(environ, start_response)
    try:
        chunks.extend(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return answer["status"], answer["headers"], b"".join(chunks)


def mint(
    action: str, body: bytes, policy: Mapping[str, Any] | None
) -> tuple[bytes, IssuedCredentials]:
    """Give moto's answer fresh credentials; return it with what was issued.

    AssumeRole keeps moto's (unique) access key id; GetFederationToken and GetSessionToken
    get a new one. Every answer gets a new marked secret and session token.
    """
    text = body.decode("utf-8")
    kind = MINTING_ACTIONS[action]
    access_key_id = _answer_text(body, "AccessKeyId") or ""
    # moto's assumed-role keys are unique ASIA keys; its other answers reuse an example key.
    if kind != ASSUMED_ROLE or not access_key_id.startswith(TEMPORARY_KEY_PREFIX):
        access_key_id = new_access_key_id()
    replacements = {
        "AccessKeyId": access_key_id,
        "SecretAccessKey": new_secret_access_key(),
        "SessionToken": new_session_token(),
    }
    for element, value in replacements.items():
        text = re.sub(
            rf"<{element}>[^<]*</{element}>", f"<{element}>{value}</{element}>", text, count=1
        )
    issued = IssuedCredentials(
        access_key_id=access_key_id,
        kind=kind,
        principal_arn=_answer_text(body, "Arn"),
        session_policy=policy,
        expiration=_parse_expiration(_answer_text(body, "Expiration")),
    )
    return text.encode("utf-8"), issued


def _answer_text(body: bytes, element: str) -> str | None:
    """Return the text of the first element named `element` (any namespace) of an answer."""
    for node in ElementTree.fromstring(body).iter():
        if node.tag.rsplit("}", 1)[-1] == element:
            return node.text
    return None


def _parse_expiration(text: str | None) -> datetime:
    """Parse STS's ISO-8601 expiration (``...Z``); a missing one means already expired."""
    if not text:
        return datetime.now(UTC)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _error(status: HTTPStatus, code: str, message: str) -> Answer:
    """An STS error answer: AWS's ``ErrorResponse`` XML (type Sender)."""
    request_id = str(uuid.uuid4())
    body = (
        f'<ErrorResponse xmlns="{STS_NAMESPACE}"><Error><Type>Sender</Type>'
        f"<Code>{code}</Code><Message>{escape(message)}</Message></Error>"
        f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    ).encode()
    headers = [("Content-Type", XML_CONTENT_TYPE), ("x-amzn-RequestId", request_id)]
    return f"{status.value} {status.phrase}", _with_length(headers, len(body)), body


def _with_length(headers: list[tuple[str, str]], length: int) -> list[tuple[str, str]]:
    """Return `headers` with Content-Length set to `length` (the body may have changed)."""
    kept = [(name, value) for name, value in headers if name.lower() != "content-length"]
    return [*kept, ("Content-Length", str(length))]
