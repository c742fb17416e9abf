"""The cicd CrossGuard policy pack: `pulumi preview --policy-pack policy`."""

from pulumi_policy import EnforcementLevel, PolicyPack

from policies import ALL_POLICIES

PolicyPack(
    name="cicd-security",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=ALL_POLICIES,
    description="Security rules for the cicd delivery platform, enforced before every apply.",
)
