"""Transport-neutral HTTP pieces: requests, responses, Domo error bodies and a tiny router.

The handlers of the Domo API and of the control API are plain functions from a `Request`
to a `Response`; `domo_server.py` moves bytes between sockets and these objects.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

JSON_CONTENT_TYPE = "application/json;charset=UTF-8"
TOE_ALPHABET = string.ascii_uppercase + string.digits
TOE_GROUPS = (10, 5, 5)


def new_toe() -> str:
    """Return a random Domo "thread of execution" id such as ``A1B2C3D4E5-F6G7H-8I9J0``."""
    return "-".join(
        "".join(secrets.choice(TOE_ALPHABET) for _ in range(size)) for size in TOE_GROUPS
    )


@dataclass(frozen=True)
class Request:
    """An HTTP request as the route handlers see it.

    Attributes:
        method: Upper-case HTTP method.
        path: Path without the query string.
        query: Parsed query string (every value is a list, as from `urllib.parse.parse_qs`).
        headers: Header names lower-cased to their values.
        body: Raw request body.
    """

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes = b""

    @classmethod
    def build(cls, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Request:
        """Build a request from the request line's target (path plus query) and raw headers.

        Args:
            method: HTTP method.
            target: Request target, e.g. ``/api/x?part=core``.
            headers: Header names to values (any case).
            body: Raw body.

        Returns:
            The request.
        """
        path, _, query = target.partition("?")
        return cls(
            method=method.upper(),
            path=path,
            query=parse_qs(query, keep_blank_values=True),
            headers={name.lower(): value for name, value in headers.items()},
            body=body,
        )

    def header(self, name: str) -> str | None:
        """Return a header's value by case-insensitive name, or None."""
        return self.headers.get(name.lower())

    def param(self, name: str) -> str | None:
        """Return the first value of a query-string parameter, or None."""
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        """Return the body parsed as JSON (an empty body is None).

        Raises:
            ApiError: 400 if the body is not valid JSON.
        """
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ApiError(400, f"Could not read JSON: {exc}") from exc

    def json_object(self) -> dict[str, Any]:
        """Return the body as a JSON object (an empty body is an empty object).

        Raises:
            ApiError: 400 if the body is not a JSON object.
        """
        data = self.json()
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ApiError(400, "The request body must be a JSON object")
        return data


@dataclass
class Response:
    """An HTTP response ready to be written: status, headers and body bytes."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """Return a response whose body is `data` serialised as JSON."""
    return Response(
        status=status,
        headers={"Content-Type": JSON_CONTENT_TYPE, **(headers or {})},
        body=json.dumps(data).encode("utf-8"),
    )


def status_reason(status: int) -> str:
    """Return the standard reason phrase of an HTTP status ("Unknown" if none)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def error_body(status: int, message: str, **extra: Any) -> dict[str, Any]:
    """Return Domo's error body: status, statusReason, message, toe (plus any extra fields)."""
    return {
        "status": status,
        "statusReason": status_reason(status),
        "message": message,
        "toe": new_toe(),
        **extra,
    }


class ApiError(Exception):
    """An error a route handler answers with; `response()` renders it.

    Args:
        status: HTTP status.
        message: Human-readable message (Domo's ``message`` field).
        headers: Extra response headers.
        body: A complete response instead of Domo's JSON error body; ``b""`` for an empty body.
        extra: Extra fields for the JSON error body.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})
        self.body = body
        self.extra = dict(extra or {})

    def response(self) -> Response:
        """Render the error as a response."""
        if self.body is not None:
            return Response(self.status, dict(self.headers), self.body)
        return json_response(
            error_body(self.status, self.message, **self.extra), self.status, self.headers
        )


Handler = Callable[[Request, re.Match[str]], Response]


@dataclass(frozen=True)
class Route:
    """One route: method, full-match path pattern and handler."""

    method: str
    pattern: re.Pattern[str]
    handler: Handler


class Router:
    """Dispatches requests to handlers by method and path regex."""

    def __init__(self) -> None:
        self._routes: list[Route] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        """Register `handler` for `method` and paths fully matching `pattern`."""
        self._routes.append(Route(method.upper(), re.compile(pattern), handler))

    def dispatch(self, request: Request) -> Response:
        """Run the matching handler; unknown paths give 404 and wrong methods 405.

        `ApiError`s raised by handlers are rendered as their responses.
        """
        path_matched = False
        for route in self._routes:
            match = route.pattern.fullmatch(request.path)
            if match is None:
                continue
            path_matched = True
            if route.method == request.method:
                try:
                    return route.handler(request, match)
                except ApiError as exc:
                    return exc.response()
        if path_matched:
            return ApiError(405, f"Request method '{request.method}' not supported").response()
        return ApiError(404, f"No handler found for {request.method} {request.path}").response()
