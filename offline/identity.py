"""Which deployed resource each registration is, the way the engine decides it.

pulumi/pulumi pkg/resource/deploy/step_generator.go: a resource matches by its own URN, else by one of
its aliases (an alias's parent stands for that parent's matched former URN), else by the alias it
inherits from a parent that itself matched through an alias. A deployed URN nothing matches is a delete.
"""

from __future__ import annotations


def _chain(urn: str) -> str:
    return urn.split("::")[2]


def _urn(parent_urn: str, typ: str, name: str, stack: str) -> str:
    """The URN the engine gives a resource of `typ` named `name` under `parent_urn` ("" or the stack)."""
    if not parent_urn or _chain(parent_urn) == "pulumi:pulumi:Stack":
        return f"urn:pulumi:{stack}::cicd::{typ}::{name}"
    return f"urn:pulumi:{stack}::cicd::{_chain(parent_urn)}${typ}::{name}"


def match(registrations: list, deployed: set[str], stack: str) -> dict[str, str]:
    """Each registration's matched former URN, in registration order (parents come first)."""
    matched: dict[str, str] = {}
    through_alias: set[str] = set()
    for r in registrations:
        if r.urn in deployed:
            matched[r.urn] = r.urn
            continue
        candidates = []
        for alias in r.aliases:
            if "urn" in alias:
                candidates.append(alias["urn"])
                continue
            if alias["noParent"]:
                parent = ""
            else:
                parent = alias["parentUrn"] or r.parent
                parent = matched.get(parent, parent)
            candidates.append(_urn(parent, alias["type"] or r.type, alias["name"] or r.name, stack))
        if r.parent in through_alias:
            candidates.append(_urn(matched[r.parent], r.type, r.name, stack))
        hit = next((c for c in candidates if c in deployed), None)
        if hit is not None:
            matched[r.urn] = hit
            through_alias.add(r.urn)
    return matched
