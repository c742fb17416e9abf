"""The service's two security groups: the load balancer's and the tasks'.

Public ingress is the load balancer's listeners alone; the tasks admit the container port from the
load balancer only. (The smoke-test function's group lives with the smoke test.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from .common import Part, child_opts


@dataclass(frozen=True)
class ServiceSecurityGroupsArgs:
    """``public_ports``: the listeners open to the internet (IPv4 and IPv6). ``test_port``: the test
    listener, open to ``vpc_cidr`` only. ``container_port``: what the load balancer reaches on the tasks."""

    prefix: str
    vpc_id: pulumi.Input[str]
    vpc_cidr: str
    public_ports: Sequence[int]
    test_port: int
    container_port: int
    tags: Mapping[str, str] = field(default_factory=dict)


class ServiceSecurityGroups(Part):
    """`load_balancer` and `tasks`: the two groups, each admitting exactly what the other needs."""

    def __init__(self, name: str, args: ServiceSecurityGroupsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cicd:securitygroups:ServiceSecurityGroups", name, opts)
        self.load_balancer = aws.ec2.SecurityGroup(
            f"{name}-alb-sg",
            name=f"{args.prefix}-alb",
            description="The load balancer: its public listeners from the internet, the test listener from the VPC",
            vpc_id=args.vpc_id,
            tags=dict(args.tags),
            opts=child_opts(self),
        )
        self.tasks = aws.ec2.SecurityGroup(
            f"{name}-task-sg",
            name=f"{args.prefix}-tasks",
            description="The service tasks: the container port from the load balancer only",
            vpc_id=args.vpc_id,
            tags=dict(args.tags),
            opts=child_opts(self),
        )
        self.ingress_rules = [
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-alb-{port}-{family}",
                security_group_id=self.load_balancer.id,
                description=f"{'HTTPS' if port == 443 else 'HTTP'} from the internet to the public listener",
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                **({"cidr_ipv4": cidr} if family == "ipv4" else {"cidr_ipv6": cidr}),
                opts=child_opts(self),
            )
            for port in args.public_ports
            for family, cidr in (("ipv4", "0.0.0.0/0"), ("ipv6", "::/0"))
        ]
        self.ingress_rules.append(
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-alb-test",
                security_group_id=self.load_balancer.id,
                description="The test listener, from inside the VPC only (smoke tests of the green tasks)",
                ip_protocol="tcp",
                from_port=args.test_port,
                to_port=args.test_port,
                cidr_ipv4=args.vpc_cidr,
                opts=child_opts(self),
            )
        )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-alb-to-tasks",
            security_group_id=self.load_balancer.id,
            description="To the container port of the tasks",
            ip_protocol="tcp",
            from_port=args.container_port,
            to_port=args.container_port,
            referenced_security_group_id=self.tasks.id,
            opts=child_opts(self),
        )
        self.ingress_rules.append(
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-tasks-from-alb",
                security_group_id=self.tasks.id,
                description="The container port from the load balancer",
                ip_protocol="tcp",
                from_port=args.container_port,
                to_port=args.container_port,
                referenced_security_group_id=self.load_balancer.id,
                opts=child_opts(self),
            )
        )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-tasks-https",
            security_group_id=self.tasks.id,
            description="HTTPS to AWS APIs (ECR, CloudWatch Logs, Secrets Manager, X-Ray)",
            ip_protocol="tcp",
            from_port=443,
            to_port=443,
            cidr_ipv4="0.0.0.0/0",
            opts=child_opts(self),
        )
        self.register_outputs({"load_balancer_id": self.load_balancer.id, "tasks_id": self.tasks.id})
