"""Security groups: nothing open to the internet but the web ports, and every rule explained."""

from pulumi_policy import Severity

from ._util import ADVISORY, as_list, is_set, known, resource_policy

GROUP = "aws:ec2/securityGroup:SecurityGroup"
LEGACY_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS_RULE = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
OPEN = {"0.0.0.0/0", "::/0"}
WEB_PORTS = {80, 443}


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
            yield (f"Ingress from {', '.join(open_cidrs)} is allowed only on ports 80 and 443; this rule opens "
                   f"protocol {protocol} ports {from_port}-{to_port}. Restrict the source or the port.")


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


POLICIES = [
    resource_policy("sg-no-public-ingress", "Checks that no security group admits the internet except on 80 and 443.",
                    (GROUP, LEGACY_RULE, INGRESS_RULE), _no_public_ingress, severity=Severity.CRITICAL),
    resource_policy("sg-descriptions", "Checks that security groups and their rules have descriptions.",
                    (GROUP, LEGACY_RULE, INGRESS_RULE, EGRESS_RULE), _descriptions, enforcement=ADVISORY,
                    severity=Severity.LOW),
]
