"""Every resource keeps its identity across refactors: an existing stack's next `up` replaces nothing.

tests/data/resource-urns.json holds the URN of every resource and component of both stacks as the
engine names them (whole parent type chain, root stack left out), at commit 65cee1a, before the
components were split (session 3). The check below matches the program's registrations against them
the way the engine's step generator does (pulumi/pulumi pkg/resource/deploy/step_generator.go):
a resource matches by its own URN, else by one of its aliases (an alias's parent stands for that
parent's matched former URN), else by the alias it inherits from a parent that itself matched
through an alias. A deployed URN nothing matches is a delete; so the test fails on a moved resource
without an alias, and on a component moved deeper whose own alias is missing.
"""

from __future__ import annotations

import json
import os

import pytest
from conftest import ROOT

from offline.identity import _chain, match

with open(os.path.join(ROOT, "tests", "data", "resource-urns.json"), encoding="utf-8") as handle:
    DEPLOYED = json.load(handle)

# prod promotes dev's releases since session 3 and never builds: what only a building stack has goes.
# Each of these is named here on purpose; the stateful ones among them are protected and retained in
# prod, so `pulumi up` stops at them until an operator releases them (README, promotion).
REMOVED_BY_PROMOTION = {
    "prod": (
        "source",
        "image-repo",
        "image-lifecycle",
        "image-image",
        "pipeline-unit-tests",
        "pipeline-sonarqube",
        "pipeline-trivy",
        "pipeline-image",
        "pipeline-preview",
        "pipeline-sonar-token",
        "pipeline-on-push",
        "pipeline-on-pull-request",
    )
}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_deployed_resource_keeps_its_identity(stack, dev, prod):
    plan = {"dev": dev, "prod": prod}[stack]
    deployed = set(DEPLOYED[stack])
    matched = match(plan.registrations, deployed, stack)
    claimed = list(matched.values())
    assert len(claimed) == len(set(claimed)), "two resources claim one deployed URN"
    removed = sorted(deployed - set(claimed))
    expected = REMOVED_BY_PROMOTION.get(stack, ())
    assert [u for u in removed if not u.split("::")[-1].startswith(expected)] == []
    # Nothing deployed is replaced: a registration with a deployed name under a new parent must match it.
    names = {(_chain(u).split("$")[-1], u.split("::")[-1]) for u in removed}
    for r in plan.registrations:
        if r.urn not in matched:
            assert (r.type, r.name) not in names, f"{r.name} would be replaced: no alias to its deployed URN"


def test_a_component_moved_deeper_without_its_alias_is_caught(record):
    """The check itself, with URNs as the engine makes them: a component moved under a new parent
    without an alias loses its children too; with one, they follow it."""
    import pulumi
    import pulumi_aws as aws

    def build(with_alias: bool):
        outer = pulumi.ComponentResource("cicd:test:Outer", "svc")
        part = pulumi.ComponentResource("cicd:test:Part", "svc", opts=pulumi.ResourceOptions(parent=outer))
        moved = pulumi.ComponentResource(
            "cicd:test:Waf",
            "waf",
            opts=pulumi.ResourceOptions(parent=part, aliases=[pulumi.Alias(parent=outer)] if with_alias else None),
        )
        aws.sns.Topic("topic", opts=pulumi.ResourceOptions(parent=moved))

    deployed = {
        "urn:pulumi:t::cicd::cicd:test:Outer::svc",
        "urn:pulumi:t::cicd::cicd:test:Outer$cicd:test:Waf::waf",
        "urn:pulumi:t::cicd::cicd:test:Outer$cicd:test:Waf$aws:sns/topic:Topic::topic",
    }
    kept = record(lambda: build(True), stack="t")
    assert set(match(kept.registrations, deployed, "t").values()) == deployed
    lost = record(lambda: build(False), stack="t")
    assert set(match(lost.registrations, deployed, "t").values()) == {"urn:pulumi:t::cicd::cicd:test:Outer::svc"}
    topic = lost.one("aws:sns/topic:Topic")
    assert topic.urn == "urn:pulumi:t::cicd::cicd:test:Outer$cicd:test:Part$cicd:test:Waf$aws:sns/topic:Topic::topic"
