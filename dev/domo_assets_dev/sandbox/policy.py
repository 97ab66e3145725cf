"""Session policies, evaluated as IAM evaluates them for one action on one resource.

A request is allowed only if an ``Allow`` statement applies to it, and an applicable ``Deny``
statement wins over every ``Allow``. A statement applies when its ``Action`` (or
``NotAction``) and ``Resource`` (or ``NotResource``) match, with IAM's wildcards: ``*`` is any
run of characters (``/`` and ``:`` included), ``?`` one character; action names are
case-insensitive, resources are not. A ``Condition`` applies as IAM applies it: every operator
and every key of it must hold, one of a key's values suffices; a key the request does not carry
fails ``StringEquals``/``StringLike`` and satisfies their negations. The request carries
``s3:ResourceAccount`` (the bucket owner's account) on S3 actions. Other operators (``Bool``,
``...IfExists``, ``ForAnyValue:``...) and policy variables are not modelled: a statement using
one that would otherwise apply is refused (`UnsupportedPolicyError`), so the sandbox never
allows or denies what AWS might not.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

ALLOW = "Allow"
DENY = "Deny"
EFFECTS = (ALLOW, DENY)
ACTION_KEYS = ("Action", "NotAction")
RESOURCE_KEYS = ("Resource", "NotResource")
CONDITION_KEY = "Condition"
S3_PUT_OBJECT = "s3:PutObject"
KMS_GENERATE_DATA_KEY = "kms:GenerateDataKey"
KMS_DECRYPT = "kms:Decrypt"
S3_RESOURCE_ACCOUNT = "s3:ResourceAccount"
# Condition operators: (does one policy value match the request's value, is it negated).
STRING_OPERATORS: Mapping[str, tuple[Callable[[str, str], bool], bool]] = {
    "StringEquals": (lambda pattern, value: pattern == value, False),
    "StringNotEquals": (lambda pattern, value: pattern == value, True),
    "StringLike": (lambda pattern, value: wildcard_match(pattern, value), False),
    "StringNotLike": (lambda pattern, value: wildcard_match(pattern, value), True),
}


class PolicyError(ValueError):
    """A policy document is not a valid IAM policy; the message says what is wrong."""


class UnsupportedPolicyError(PolicyError):
    """A policy uses what the sandbox does not evaluate (a ``Condition``)."""


@dataclass(frozen=True)
class Decision:
    """The outcome of evaluating a policy for one action on one resource.

    Attributes:
        allowed: An ``Allow`` statement applies and no ``Deny`` statement does.
        explicit_deny: A ``Deny`` statement applies.
        statement: The Sid (or ``Statement[i]``) of the deciding statement, or None.
    """

    allowed: bool
    explicit_deny: bool = False
    statement: str | None = None


def parse_policy(text: str) -> dict[str, Any]:
    """Parse and validate a policy document as STS does before it accepts one.

    Args:
        text: The ``Policy`` parameter: a JSON policy document.

    Returns:
        The parsed document.

    Raises:
        PolicyError: If it is not JSON, not an object, or a statement is malformed.
    """
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise PolicyError(f"the policy is not valid JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise PolicyError("the policy must be a JSON object with a Statement")
    for label, statement in _statements(document):
        _check_statement(label, statement)
    return document


def decide(
    policy: Mapping[str, Any],
    action: str,
    resource: str,
    context: Mapping[str, str] | None = None,
) -> Decision:
    """Evaluate `policy` for `action` on `resource`: explicit Deny, then Allow, else denied.

    Args:
        policy: The parsed policy.
        action: The action, e.g. ``s3:PutObject``.
        resource: The resource's ARN.
        context: The request's condition keys and values (``s3:ResourceAccount``...).

    Raises:
        UnsupportedPolicyError: If a statement that applies has a ``Condition`` the sandbox
            does not evaluate.
    """
    allow: str | None = None
    for label, statement in _statements(policy):
        if not _applies(label, statement, action, resource):
            continue
        if CONDITION_KEY in statement and not _conditions_hold(
            label, statement[CONDITION_KEY], context or {}
        ):
            continue
        if statement["Effect"] == DENY:
            return Decision(allowed=False, explicit_deny=True, statement=label)
        allow = allow or label
    return Decision(allowed=allow is not None, statement=allow)


def object_arn(bucket: str, key: str) -> str:
    """Return the ARN IAM evaluates for an object: ``arn:aws:s3:::bucket/key``."""
    return f"arn:aws:s3:::{bucket}/{key}"


def wildcard_match(pattern: str, value: str, ignore_case: bool = False) -> bool:
    """Return True if `value` matches an IAM pattern (``*`` any run, ``?`` one character)."""
    return _wildcard_regex(pattern, ignore_case).fullmatch(value) is not None


@functools.lru_cache(maxsize=1024)
def _wildcard_regex(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _conditions_hold(label: str, block: Any, context: Mapping[str, str]) -> bool:
    """Whether a statement's ``Condition`` holds for a request with `context`.

    Raises:
        UnsupportedPolicyError: For an operator the sandbox does not evaluate.
    """
    if not isinstance(block, Mapping):
        raise PolicyError(f"statement {label}: Condition must be an object")
    known = {key.lower(): value for key, value in context.items()}
    for operator, keys in block.items():
        if operator not in STRING_OPERATORS:
            raise UnsupportedPolicyError(
                f"statement {label} has a Condition with operator {operator!r}, which the "
                f"sandbox does not evaluate (it knows {', '.join(STRING_OPERATORS)}); remove "
                "it or extend domo_assets_dev/sandbox/policy.py"
            )
        matches, negated = STRING_OPERATORS[operator]
        if not isinstance(keys, Mapping):
            raise PolicyError(f"statement {label}: Condition {operator} must be an object")
        for key, values in keys.items():
            patterns = _patterns(values, label, f"Condition {operator} {key}")
            value = known.get(str(key).lower())
            if value is None:
                holds = negated  # a missing key fails a test and satisfies its negation
            else:
                hit = any(matches(pattern, value) for pattern in patterns)
                holds = not hit if negated else hit
            if not holds:
                return False
    return True


def _statements(policy: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """Return (label, statement) pairs; the label is the Sid or ``Statement[i]``."""
    raw = policy.get("Statement")
    if isinstance(raw, Mapping):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise PolicyError("the policy needs a Statement: an object or a non-empty list")
    pairs = []
    for index, statement in enumerate(raw):
        if not isinstance(statement, Mapping):
            raise PolicyError(f"Statement[{index}] must be an object")
        sid = statement.get("Sid")
        pairs.append(
            (repr(sid) if isinstance(sid, str) and sid else f"Statement[{index}]", statement)
        )
    return pairs


def _check_statement(label: str, statement: Mapping[str, Any]) -> None:
    if statement.get("Effect") not in EFFECTS:
        raise PolicyError(f"statement {label}: Effect must be Allow or Deny")
    for pair in (ACTION_KEYS, RESOURCE_KEYS):
        present = [name for name in pair if name in statement]
        if len(present) != 1:
            raise PolicyError(f"statement {label}: give exactly one of {' or '.join(pair)}")
        _patterns(statement[present[0]], label, present[0])


def _patterns(value: Any, label: str, name: str) -> list[str]:
    """Return an Action/Resource element as a list of patterns (a string or a list of them)."""
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise PolicyError(f"statement {label}: {name} must be a string or a list of strings")
    return values


def _applies(label: str, statement: Mapping[str, Any], action: str, resource: str) -> bool:
    return _element_matches(label, statement, ACTION_KEYS, action, ignore_case=True) and (
        _element_matches(label, statement, RESOURCE_KEYS, resource, ignore_case=False)
    )


def _element_matches(
    label: str,
    statement: Mapping[str, Any],
    keys: tuple[str, str],
    value: str,
    ignore_case: bool,
) -> bool:
    """Match an Action/NotAction (or Resource/NotResource) element against `value`."""
    positive, negative = keys
    name = positive if positive in statement else negative
    patterns = _patterns(statement.get(name), label, name)
    matched = any(wildcard_match(pattern, value, ignore_case) for pattern in patterns)
    return matched if name == positive else not matched
