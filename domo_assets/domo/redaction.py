"""Scrubbing secrets from text: the one function every message, log line and record goes through.

A secret Domo echoes back may arrive in another form than the one sent: inside a JSON string
(quotes, backslashes, ``/`` and non-ASCII characters escaped), or percent-encoded (from a query
string or form: ``quote`` and ``quote_plus``, with or without ``/`` kept, hex digits in either
case). Each form of each secret is replaced, longest first.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "***"
# Shorter values are not scrubbed: they would mask ordinary words, and no credential is so short.
MIN_SECRET_LENGTH = 4
# Hex digits after '%' (percent-encoding) and '\u' (JSON) may come in either case.
_HEX_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}|\\u[0-9A-Fa-f]{4}")


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every form of every secret replaced by ``***``.

    Args:
        text: Any text that may echo a secret (an error body, a log line, a message).
        secrets: The secrets; empty ones and ones shorter than 4 characters are ignored.
    """
    pattern = _pattern(
        tuple(sorted({s for s in secrets if s is not None and len(s) >= MIN_SECRET_LENGTH}))
    )
    return pattern.sub(MASK, text) if pattern is not None and text else text


def secret_forms(secret: str) -> frozenset[str]:
    """The forms a secret may take in transit: as is, JSON-escaped and percent-encoded."""
    json_forms = {json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    # Some JSON encoders (Java's among them, optionally) escape '/' as well.
    json_forms |= {form.replace("/", "\\/") for form in json_forms}
    url_forms = {
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        quote_plus(secret, safe="/"),
    }
    return frozenset({secret, *json_forms, *url_forms})


@functools.lru_cache(maxsize=64)
def _pattern(secrets: tuple[str, ...]) -> re.Pattern[str] | None:
    forms = {form for secret in secrets for form in secret_forms(secret)}
    if not forms:
        return None
    return re.compile("|".join(_form_regex(f) for f in sorted(forms, key=len, reverse=True)))


def _form_regex(form: str) -> str:
    """A regex matching ``form`` literally, except that escaped hex digits match either case."""
    pieces, last = [], 0
    for escape in _HEX_ESCAPE.finditer(form):
        pieces.append(re.escape(form[last : escape.start()]))
        pieces.append(
            "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in escape[0])
        )
        last = escape.end()
    pieces.append(re.escape(form[last:]))
    return "".join(pieces)
