"""Security groups: nothing open to the internet but the web ports, and every rule explained."""

import re

from pulumi_policy import Severity

from ._util import ADVISORY, as_list, is_set, known, resource_policy

GROUP = "aws:ec2/securityGroup:SecurityGroup"
LEGACY_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS_RULE = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
OPEN = {"0.0.0.0/0", "::/0"}
WEB_PORTS = {80, 443}
# What EC2 accepts in a security group's name and description and in a rule's description (VPC groups):
# anything else (an apostrophe, say) fails CreateSecurityGroup or the rule call at `up`.
EC2_TEXT = re.compile(r"^[a-zA-Z0-9. _\-:/()#,@\[\]+=&;{}!$*]*$")
# A rule's description (the IP range, group pair or prefix list it names) may not hold "&".
EC2_RULE_TEXT = re.compile(r"^[a-zA-Z0-9. _\-:/()#,@\[\]+=;{}!$*]*$")
EC2_TEXT_MAX = 255


def _web_only(protocol, from_port, to_port):
    if str(protocol) in ("-1", "all"):
        return False
    return from_port == to_port and from_port in WEB_PORTS


def _open_rules(props, args):
    """(cidrs, protocol, from, to) for each ingress rule of the resource."""
    if args.resource_type == GROUP:
        for rule in as_list(known(props.get("ingress"), "ingress")):
            cidrs = as_list(rule.get("cidrBlocks")) + as_list(rule.get("ipv6CidrBlocks"))
            yield cidrs, rule.get("protocol"), rule.get("fromPort"), rule.get("toPort")
    elif args.resource_type == LEGACY_RULE:
        if props.get("type") == "ingress":
            cidrs = as_list(known(props.get("cidrBlocks"), "cidrBlocks")) + as_list(props.get("ipv6CidrBlocks"))
            yield cidrs, props.get("protocol"), props.get("fromPort"), props.get("toPort")
    else:
        cidrs = [known(props.get("cidrIpv4"), "cidrIpv4"), known(props.get("cidrIpv6"), "cidrIpv6")]
        yield cidrs, props.get("ipProtocol"), props.get("fromPort"), props.get("toPort")


def _no_public_ingress(props, args):
    for cidrs, protocol, from_port, to_port in _open_rules(props, args):
        open_cidrs = sorted(OPEN & {c for c in cidrs if isinstance(c, str)})
        if open_cidrs and not _web_only(protocol, from_port, to_port):
            yield (
                f"Ingress from {', '.join(open_cidrs)} is allowed only on ports 80 and 443; this rule opens "
                f"protocol {protocol} ports {from_port}-{to_port}. Restrict the source or the port."
            )


def _descriptions(props, args):
    if args.resource_type == GROUP:
        if (props.get("description") or "Managed by Pulumi") == "Managed by Pulumi":
            yield "Security groups should say what they are for. Set description."
        for rule in as_list(props.get("ingress")) + as_list(props.get("egress")):
            if not is_set(rule.get("description")):
                yield "Every security group rule should have a description. Set description on each rule."
                return
    elif not is_set(props.get("description")):
        yield "Every security group rule should have a description. Set description."


def _text_problem(value, what, rule=False):
    if not isinstance(value, str):
        return None
    allowed, shown = (EC2_RULE_TEXT, "._-:/()#,@[]+=;{}!$*") if rule else (EC2_TEXT, "._-:/()#,@[]+=&;{}!$*")
    bad = sorted({c for c in value if not allowed.match(c)})
    if bad:
        return (
            f"{what} contains {', '.join(repr(c) for c in bad)}, which EC2 rejects: use only a-z, A-Z, 0-9, "
            f"spaces and {shown}. Rewrite {what}."
        )
    if len(value) > EC2_TEXT_MAX:
        return f"{what} is {len(value)} characters; EC2 allows at most {EC2_TEXT_MAX}. Shorten it."
    return None


def _valid_text(props, args):
    group = args.resource_type == GROUP
    texts = [("description", known(props.get("description"), "description"), not group)]
    if group:
        texts.append(("name", known(props.get("name"), "name"), False))
        for kind in ("ingress", "egress"):
            for i, rule in enumerate(as_list(known(props.get(kind), kind))):
                if isinstance(rule, dict):
                    texts.append((f"{kind}[{i}].description", rule.get("description"), True))
    for what, value, rule in texts:
        problem = _text_problem(value, what, rule)
        if problem:
            yield problem


POLICIES = [
    resource_policy(
        "ec2-security-group-text",
        "Checks that security group names and group and rule descriptions "
        "use only the characters and length EC2 accepts.",
        (GROUP, LEGACY_RULE, INGRESS_RULE, EGRESS_RULE),
        _valid_text,
        severity=Severity.HIGH,
    ),
    resource_policy(
        "sg-no-public-ingress",
        "Checks that no security group admits the internet except on 80 and 443.",
        (GROUP, LEGACY_RULE, INGRESS_RULE),
        _no_public_ingress,
        severity=Severity.CRITICAL,
    ),
    resource_policy(
        "sg-descriptions",
        "Checks that security groups and their rules have descriptions.",
        (GROUP, LEGACY_RULE, INGRESS_RULE, EGRESS_RULE),
        _descriptions,
        enforcement=ADVISORY,
        severity=Severity.LOW,
    ),
]
