"""Every resource keeps its identity across refactors: an existing stack's next `up` replaces nothing.

tests/data/resource-urns.json holds the URN of every resource of both stacks as deployed before the
components were split (session 3). A resource that moved to a new parent must carry an alias to its
former URN; the engine also derives a child's former URNs from its parent's aliases.
"""

from __future__ import annotations

import json
import os

import pytest
from conftest import ROOT

with open(os.path.join(ROOT, "tests", "data", "resource-urns.json"), encoding="utf-8") as handle:
    DEPLOYED = json.load(handle)


def _urn(parent_urn: str, typ: str, name: str, stack: str) -> str:
    """The URN the engine gives a resource of `typ` named `name` under `parent_urn` (or the stack)."""
    if not parent_urn or parent_urn.split("::")[-2].endswith("pulumi:pulumi:Stack"):
        return f"urn:pulumi:{stack}::cicd::{typ}::{name}"
    parent_types = parent_urn.split("::")[-2]
    return f"urn:pulumi:{stack}::cicd::{parent_types}${typ}::{name}"


def identities(registrations: dict, stack: str) -> dict[str, set[str]]:
    """Each resource's URN with every former URN its aliases (and its parents' aliases) give it."""
    known: dict[str, set[str]] = {}

    def of(urn: str) -> set[str]:
        if urn in known:
            return known[urn]
        r = registrations[urn]
        parents = of(r.parent) if r.parent in registrations else {r.parent}
        names = {urn} | {_urn(p, r.type, r.name, stack) for p in parents}
        for alias in r.aliases:
            if "urn" in alias:
                names.add(alias["urn"])
                continue
            former_parents = {""} if alias["noParent"] else of(alias["parentUrn"]) if alias["parentUrn"] else parents
            for p in former_parents:
                names.add(_urn(p, alias["type"] or r.type, alias["name"] or r.name, stack))
        known[urn] = names
        return names

    for urn in registrations:
        of(urn)
    return known


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_deployed_resource_keeps_its_identity(stack, dev, prod):
    plan = {"dev": dev, "prod": prod}[stack]
    registrations = {r.urn: r for r in plan.registrations}
    names = identities(registrations, stack)
    now = {urn for urn, r in registrations.items() if r.custom}
    claimed = {urn: names[urn] & set(DEPLOYED[stack]) for urn in now}
    assert not [urn for urn, former in claimed.items() if len(former) != 1], "a resource with no or two identities"
    # One to one: nothing deployed is left to be deleted, nothing new would be created.
    assert sorted(f for former in claimed.values() for f in former) == sorted(DEPLOYED[stack])


def test_a_moved_resource_without_an_alias_is_caught(record):
    """The check itself: a resource under a new parent and no alias has no deployed identity."""
    import pulumi
    import pulumi_aws as aws

    def build():
        old = pulumi.ComponentResource("cicd:test:Old", "owner")
        new = pulumi.ComponentResource("cicd:test:New", "owner", opts=pulumi.ResourceOptions(parent=old))
        aws.sns.Topic("kept", opts=pulumi.ResourceOptions(parent=new, aliases=[pulumi.Alias(parent=old)]))
        aws.sns.Topic("lost", opts=pulumi.ResourceOptions(parent=new))

    plan = record(build, stack="t")
    registrations = {r.urn: r for r in plan.registrations}
    names = identities(registrations, "t")
    kept = plan.one("aws:sns/topic:Topic", "kept")
    lost = plan.one("aws:sns/topic:Topic", "lost")
    assert "urn:pulumi:t::cicd::cicd:test:Old$aws:sns/topic:Topic::kept" in names[kept.urn]
    assert "urn:pulumi:t::cicd::cicd:test:Old$aws:sns/topic:Topic::lost" not in names[lost.urn]
