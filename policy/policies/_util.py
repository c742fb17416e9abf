"""Helpers for reading resource properties as the engine sends them.

Properties are camelCase. During preview some values are unknown: they arrive as sentinel strings,
and pulumi_policy's proxy raises UnknownValueError when one is read. Policies here read the plain
values (``plain``) and decide deliberately: a presence check passes when a value is set but not yet
known; a check of the value itself raises ``unknown(path)``, which the analyzer reports as a check
that could not run during preview.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import (
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
    UnknownValueError,
)

UNKNOWNS = frozenset(
    {
        UNKNOWN_ARCHIVE_VALUE,
        UNKNOWN_ARRAY_VALUE,
        UNKNOWN_ASSET_VALUE,
        UNKNOWN_BOOLEAN_VALUE,
        UNKNOWN_NUMBER_VALUE,
        UNKNOWN_OBJECT_VALUE,
        UNKNOWN_STRING_VALUE,
    }
)

MANDATORY = EnforcementLevel.MANDATORY
ADVISORY = EnforcementLevel.ADVISORY


def plain(value: Any) -> Any:
    """The value under pulumi_policy's proxies, as plain dicts and lists (unknowns kept as sentinels)."""
    try:
        target = value["__target"]
    except (KeyError, TypeError, IndexError):
        target = value
    if isinstance(target, dict):
        return {k: plain(v) for k, v in target.items()}
    if isinstance(target, (list, tuple)):
        return [plain(v) for v in target]
    return target


def is_unknown(value: Any) -> bool:
    return isinstance(value, str) and value in UNKNOWNS


def contains_unknown(value: Any) -> bool:
    if is_unknown(value):
        return True
    if isinstance(value, dict):
        return any(contains_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_unknown(v) for v in value)
    return False


def unknown(path: str) -> UnknownValueError:
    return UnknownValueError(UNKNOWN_STRING_VALUE, path.split("."))


def known(value: Any, path: str) -> Any:
    """The value, or raise: this check needs it and it is not known yet."""
    if contains_unknown(value):
        raise unknown(path)
    return value


def dig(props: Any, *path: str) -> Any:
    """props[a][b]..., None where missing; raise unknown only if a value on this path is unknown."""
    value = props
    for i, key in enumerate(path):
        if is_unknown(value):
            raise unknown(".".join(path[:i]))
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    if is_unknown(value):
        raise unknown(".".join(path))
    return value


def is_set(value: Any) -> bool:
    """Set: present and not empty. An unknown value is set (it has a value, just not yet known)."""
    return is_unknown(value) or value not in (None, "", [], {})


def as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def parse_json(value: Any, path: str) -> Any:
    """Parse a JSON document property (container definitions, IAM and resource policies)."""
    value = known(value, path)
    if value is None or value == "":
        return None
    if isinstance(value, (dict, list)):
        return value
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return None


def statements(document: Any) -> list[dict]:
    """The statements of a policy document; `Statement` may be one object or a list."""
    if not isinstance(document, dict):
        return []
    return [s for s in as_list(document.get("Statement")) if isinstance(s, dict)]


def actions(statement: dict) -> list[str]:
    return [a for a in as_list(statement.get("Action")) if isinstance(a, str)]


def action_matches(pattern: str, action: str) -> bool:
    """Whether an IAM action pattern covers `action` as IAM reads it: case-insensitive, `*` any run of
    characters and `?` any one, inside the name too (`iam:Pass*`, `IAM:PASSROLE`, `iam:*Role`)."""
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern.lower())
    return re.fullmatch(regex, action.lower()) is not None


def aws_managed_key(key: Any) -> bool:
    """A KMS key reference that names an AWS-managed key (`alias/aws/...`, or its alias ARN), which the
    account cannot control or share: never a customer-managed key."""
    return isinstance(key, str) and not is_unknown(key) and "alias/aws/" in key


def principals(statement: dict) -> list[str]:
    """Every principal of a statement: "*" or the values of AWS, Service, Federated, CanonicalUser."""
    principal = statement.get("Principal")
    if principal is None:
        return []
    if isinstance(principal, str):
        return [principal]
    if isinstance(principal, dict):
        return [p for values in principal.values() for p in as_list(values) if isinstance(p, str)]
    return []


def is_public_principal(statement: dict) -> bool:
    """A principal of * (or AWS: *) with no condition that narrows it."""
    return "*" in principals(statement) and not statement.get("Condition")


# ---------------------------------------------------------------------------------------------
# Policy factories: a check yields the messages of its violations.

Check = Callable[[dict, ResourceValidationArgs], Iterable[str]]
StackCheck = Callable[[list, StackValidationArgs], Iterable[tuple[str, str]]]


def resource_policy(
    name: str,
    description: str,
    types: str | Sequence[str],
    check: Check,
    *,
    enforcement: EnforcementLevel = MANDATORY,
    severity: Severity = Severity.HIGH,
    config_schema: PolicyConfigSchema | None = None,
) -> ResourceValidationPolicy:
    wanted = {types} if isinstance(types, str) else set(types)

    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        if args.resource_type not in wanted:
            return
        for message in check(plain(args.props), args):
            report(message)

    return ResourceValidationPolicy(
        name=name,
        description=description,
        validate=validate,
        enforcement_level=enforcement,
        severity=severity,
        config_schema=config_schema,
    )


def stack_policy(
    name: str,
    description: str,
    check: StackCheck,
    *,
    enforcement: EnforcementLevel = MANDATORY,
    severity: Severity = Severity.HIGH,
    config_schema: PolicyConfigSchema | None = None,
) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        for message, urn in check(list(args.resources), args):
            report(message, urn)

    return StackValidationPolicy(
        name=name,
        description=description,
        validate=validate,
        enforcement_level=enforcement,
        severity=severity,
        config_schema=config_schema,
    )


def of_type(resources: list, typ: str) -> Iterator:
    return (r for r in resources if r.resource_type == typ)


# A copy of components/facts.py's rule (the pack runs in its own environment); a test holds them equal.
# Whether a variable name looks like it holds a secret. Secure by default: these fragments anywhere
# (DBPASSWORD, GITHUBTOKEN, CLIENT_SECRETS), the word PASS, and KEY as a word (SESSION_KEY, API_KEY,
# apiKey, HMACKEY) unless the word before it makes it a plain identifier (SONAR_PROJECT_KEY,
# CACHE_KEY). KEYCLOAK_URL and MONKEY_MODE stay plain.
SECRET_FRAGMENTS = (
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "SECRET",
    "TOKEN",
    "CREDENTIAL",
    "PRIVATE",
    "APIKEY",
    "ACCESSKEY",
)
PLAIN_KEY_QUALIFIERS = ("PROJECT", "CACHE", "PARTITION", "SORT", "PRIMARY", "FOREIGN", "OBJECT", "BUCKET", "ROUTING",
                        "IDEMPOTENCY", "LOOKUP", "GROUP", "DEDUPLICATION", "S3")  # fmt: skip
KEY_WORDS = ("HMACKEY", "SESSIONKEY", "SIGNINGKEY", "ENCRYPTIONKEY", "MASTERKEY", "LICENSEKEY", "CLIENTKEY")


def secret_word(name: str) -> str | None:
    """What makes a variable name look secret, or None (`DB_PASSWORD` -> PASSWORD, `HMAC_KEY` -> KEY)."""
    upper = name.upper()
    fragment = next((f for f in SECRET_FRAGMENTS if f in upper), None)
    if fragment:
        return fragment
    words = [w.upper() for w in re.split(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])", name) if w]
    for i, word in enumerate(words):
        if word == "PASS" or word in KEY_WORDS:
            return word
        if word == "KEY" and (i == 0 or words[i - 1] not in PLAIN_KEY_QUALIFIERS):
            return "KEY"
    return None


AWS_KEY_RE = re.compile(r"(AKIA|ASIA)[0-9A-Z]{16}")
