"""What Domo's error answers say, in every shape Domo is seen to use, secrets scrubbed.

Shapes: Domo's JSON (``status``, ``statusReason``, ``message``, ``toe``); OAuth-style JSON
(``error``, ``error_description``); an HTML error page; any other text; an empty body with a
``WWW-Authenticate: Bearer error="invalid_token"`` challenge. The message carries whichever is
there, with the ``toe`` (from the body, or found in the message) that Domo support asks for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from html.parser import HTMLParser
from typing import Any

import requests

from domo_assets.domo.errors import DomoErrorDetail
from domo_assets.domo.redaction import redact

# Domo's toe ("thread of execution") inside a message, e.g. "... (toe: A1B2C3D4E5-F6G7H-8I9J0)".
TOE_IN_MESSAGE = re.compile(r"\btoe\b\W{0,3}(?P<toe>[A-Za-z0-9]+(?:-[A-Za-z0-9]+)+)", re.IGNORECASE)
# The most of a non-JSON body (an HTML page can be long) quoted in a message.
MAX_QUOTED_CHARS = 300
_SPACE = re.compile(r"\s+")


def error_detail(
    response: requests.Response, method: str, path: str, secrets: Iterable[str | None]
) -> DomoErrorDetail:
    """Domo's answer to a failed request, as an error detail with every secret scrubbed.

    Args:
        response: The error response.
        method: The request's method.
        path: The request's path (no host, no query string).
        secrets: Values to scrub from whatever Domo sent back.
    """
    secrets = tuple(secrets)
    body = json_or_none(response)
    if isinstance(body, dict):
        message = _text(body.get("message")) or _oauth_message(body)
        reason = _text(body.get("statusReason"))
        toe = _text(body.get("toe"))
    else:
        message, reason, toe = _page_text(response), None, None
    message = redact(message or _www_authenticate(response) or "", secrets)
    # A page is cut short (Domo's own messages are kept whole), after scrubbing, so that no
    # part of a secret survives the cut.
    if not isinstance(body, dict) and len(message) > MAX_QUOTED_CHARS:
        message = message[:MAX_QUOTED_CHARS] + "..."
    found = TOE_IN_MESSAGE.search(message)
    return DomoErrorDetail(
        method=method,
        path=path,
        status=response.status_code,
        status_reason=redact(reason or response.reason or "", secrets) or None,
        message=message or None,
        toe=redact(toe, secrets) if toe else (found["toe"] if found else None),
        retry_after=retry_after(response),
    )


def json_or_none(response: requests.Response) -> Any:
    """The decoded JSON body, or None when the body is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None


def retry_after(response: requests.Response) -> float | None:
    """``Retry-After`` in seconds, when given as a number."""
    value = (response.headers.get("Retry-After") or "").strip()
    return float(value) if value.isdigit() else None


def _oauth_message(body: dict[str, Any]) -> str | None:
    """``error: error_description`` of an OAuth-style error body."""
    parts = [_text(body.get("error")), _text(body.get("error_description"))]
    return ": ".join(p for p in parts if p) or None


def _page_text(response: requests.Response) -> str | None:
    """The readable text of a non-JSON body (an HTML page's title and text), if any."""
    text = response.text.strip() if response.content else ""
    if not text:
        return None
    if "html" in (response.headers.get("Content-Type") or "").lower() or text.startswith("<"):
        reader = _PageReader()
        reader.feed(text)
        reader.close()
        text = " ".join(reader.parts)
    return _SPACE.sub(" ", text).strip() or None


def _www_authenticate(response: requests.Response) -> str | None:
    header = response.headers.get("WWW-Authenticate")
    return f"WWW-Authenticate: {header}" if header else None


def _text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


class _PageReader(HTMLParser):
    """Collects an HTML page's text, leaving out scripts and styles."""

    SKIPPED = frozenset({"script", "style"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIPPED:
            self._skipping += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIPPED and self._skipping:
            self._skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self._skipping and data.strip():
            self.parts.append(data.strip())
