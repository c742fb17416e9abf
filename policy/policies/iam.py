"""IAM: no admin statements, no service-wide wildcards, no open trust, PassRole only on named roles."""

from pulumi_policy import Severity

from ._util import ADVISORY, action_matches, actions, as_list, parse_json, principals, resource_policy, statements

ROLE = "aws:iam/role:Role"
DOCUMENT_TYPES = {
    "aws:iam/rolePolicy:RolePolicy": "policy",
    "aws:iam/policy:Policy": "policy",
    "aws:iam/userPolicy:UserPolicy": "policy",
    "aws:iam/groupPolicy:GroupPolicy": "policy",
}


def _documents(props, args):
    """(label, document) for every permission document the resource carries."""
    if args.resource_type in DOCUMENT_TYPES:
        key = DOCUMENT_TYPES[args.resource_type]
        yield key, parse_json(props.get(key), key)
    elif args.resource_type == ROLE:
        for i, inline in enumerate(as_list(props.get("inlinePolicies"))):
            yield f"inlinePolicies[{i}]", parse_json(inline.get("policy"), f"inlinePolicies[{i}].policy")


def _allowed(props, args):
    for label, document in _documents(props, args):
        for statement in statements(document):
            if statement.get("Effect") == "Allow":
                yield label, statement


def _everywhere(statement):
    """A statement on every resource: Resource "*", or NotResource (everything but a few)."""
    return "*" in as_list(statement.get("Resource")) or "NotResource" in statement


def _not_actions(statement):
    return [a for a in as_list(statement.get("NotAction")) if isinstance(a, str)]


def _no_admin(props, args):
    for label, statement in _allowed(props, args):
        if not _everywhere(statement):
            continue
        if any(set(a) <= {"*", ":"} for a in actions(statement)):  # "*", and the "*:*" IAM reads as it
            yield f"{label} must not allow * on *. Name the actions and resources the principal needs."
        elif "NotAction" in statement:
            # Allow + NotAction grants every action but those listed: all but admin in name.
            yield (
                f"{label} allows every action except {', '.join(_not_actions(statement)) or 'none'} on every "
                "resource (NotAction). Name the actions the principal needs instead."
            )


def _no_service_wildcards(props, args):
    for label, statement in _allowed(props, args):
        wild = [a for a in actions(statement) if a == "*" or a.endswith(":*") or a.split(":")[0] == "*"]
        if "NotAction" in statement:
            wild.append(f"NotAction {', '.join(_not_actions(statement))}")
        if wild:
            yield f"{label} allows every action of a service ({', '.join(wild)}). List the actions instead."


def _trust(props, _args):
    document = parse_json(props.get("assumeRolePolicy"), "assumeRolePolicy")
    for statement in statements(document):
        if statement.get("Effect") == "Allow" and "*" in principals(statement):
            yield "Role trust policies must not trust every principal. Name the service or account that assumes it."


def _pass_role(props, args):
    for label, statement in _allowed(props, args):
        # Any pattern that covers iam:PassRole as IAM matches it (case-insensitive, wildcards inside).
        passes = [a for a in actions(statement) if action_matches(a, "iam:PassRole")]
        if "NotAction" in statement and not any(action_matches(a, "iam:PassRole") for a in _not_actions(statement)):
            passes.append("NotAction")
        if passes and _everywhere(statement):
            yield f"{label} allows iam:PassRole on every role. Scope Resource to the roles that are passed."


POLICIES = [
    resource_policy(
        "iam-no-admin-statements",
        "Checks that no IAM statement allows * on *.",
        (*DOCUMENT_TYPES, ROLE),
        _no_admin,
        severity=Severity.CRITICAL,
    ),
    resource_policy(
        "iam-no-service-wildcard-actions",
        "Checks that IAM statements list actions, not service:*.",
        (*DOCUMENT_TYPES, ROLE),
        _no_service_wildcards,
        enforcement=ADVISORY,
        severity=Severity.MEDIUM,
    ),
    resource_policy(
        "iam-trust-no-wildcard-principal",
        "Checks that role trust policies name their principals.",
        ROLE,
        _trust,
        severity=Severity.CRITICAL,
    ),
    resource_policy(
        "iam-pass-role-scoped",
        "Checks that iam:PassRole is allowed only on specific roles.",
        (*DOCUMENT_TYPES, ROLE),
        _pass_role,
    ),
]
