"""The VPC: public subnets for the load balancer, private ones for the tasks, flow logs, endpoints."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pulumi
import pulumi_aws as aws
import pulumi_awsx as awsx

from .common import AwsContext, assume_role_policy, child_opts, log_group, role_with_policy

NAT_STRATEGIES = {
    "none": awsx.ec2.NatGatewayStrategy.NONE,
    "single": awsx.ec2.NatGatewayStrategy.SINGLE,
    "perAz": awsx.ec2.NatGatewayStrategy.ONE_PER_AZ,
}

# What a private Fargate task needs to reach without a NAT gateway: pull images (ecr.api, ecr.dkr and
# S3 for the layers), ship logs, read secrets, send traces, and (for the smoke test) find the ALB.
if TYPE_CHECKING:
    from config import NetworkSettings

INTERFACE_ENDPOINTS = ("ecr.api", "ecr.dkr", "logs", "secretsmanager", "xray", "ec2")


@dataclass(frozen=True)
class NetworkArgs:
    """Inputs of a Network.

    ``network``: the validated `cicd:network` section: a private IPv4 ``cidr`` (/16 to /24), 2 or 3
    ``availability_zones``, and ``nat_gateways`` none | single | perAz; with none, tasks sit in
    isolated subnets and reach AWS through VPC endpoints. ``log_retention_days`` and ``logs_key_arn``
    apply to the flow logs.
    ``protect``: protect and retain the flow-log group; default False.
    """

    context: AwsContext
    prefix: str
    network: NetworkSettings
    log_retention_days: int
    logs_key_arn: pulumi.Input[str]
    protect: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def subnet_masks(self) -> tuple[int, int]:
        """(public, private) masks that fit every AZ's subnets into the VPC.

        Public subnets hold the ALB, which AWS wants in subnets of /27 or larger.
        """
        prefix = ipaddress.ip_network(self.network.cidr).prefixlen
        private = prefix + (2 if self.network.availability_zones == 2 else 3)
        return prefix + 3, private


class Network(pulumi.ComponentResource):
    """A VPC from awsx with flow logs to an encrypted log group, an S3 gateway endpoint and, without NAT,
    the interface endpoints a task needs."""

    vpc_id: pulumi.Output[str]
    public_subnet_ids: pulumi.Output[list]
    private_subnet_ids: pulumi.Output[list]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cicd:network:Network", name, None, opts)
        self._args = args
        public_mask, private_mask = args.subnet_masks
        private_type = (
            awsx.ec2.SubnetType.ISOLATED if args.network.nat_gateways == "none" else awsx.ec2.SubnetType.PRIVATE
        )
        self.vpc = awsx.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.network.cidr,
            number_of_availability_zones=args.network.availability_zones,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            nat_gateways=awsx.ec2.NatGatewayConfigurationArgs(strategy=NAT_STRATEGIES[args.network.nat_gateways]),
            subnet_strategy=awsx.ec2.SubnetAllocationStrategy.AUTO,
            subnet_specs=[
                awsx.ec2.SubnetSpecArgs(type=awsx.ec2.SubnetType.PUBLIC, cidr_mask=public_mask, name="public"),
                awsx.ec2.SubnetSpecArgs(type=private_type, cidr_mask=private_mask, name="private"),
            ],
            tags={**args.tags, "Name": args.prefix},
            opts=child_opts(self),
        )
        self.vpc_id = self.vpc.vpc_id
        self.public_subnet_ids = self.vpc.public_subnet_ids
        self.private_subnet_ids = (
            self.vpc.isolated_subnet_ids if args.network.nat_gateways == "none" else self.vpc.private_subnet_ids
        )
        # Every VPC comes with a default security group that admits its own members and lets all out.
        # Nothing here uses it: adopting it with no rules strips AWS's defaults, so nothing can.
        self.default_security_group = aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg",
            vpc_id=self.vpc_id,
            tags={**args.tags, "Name": f"{args.prefix}-default-unused"},
            opts=child_opts(self),
        )
        self._create_flow_logs(name)
        self.endpoints: list[aws.ec2.VpcEndpoint] = []
        if args.network.nat_gateways == "none":
            self._create_endpoints(name)
        # In every mode: ECR keeps image layers in S3, and the gateway endpoint (free) carries them,
        # where a NAT gateway would bill every pulled GB.
        self.endpoints.append(self._s3_gateway_endpoint(name))
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "public_subnet_ids": self.public_subnet_ids,
                "private_subnet_ids": self.private_subnet_ids,
            }
        )

    def _create_flow_logs(self, name: str) -> None:
        args = self._args
        log_group_name = f"/aws/vpc/{args.prefix}/flow-logs"
        self.flow_log_group = log_group(
            self,
            f"{name}-flow-logs",
            log_group_name=log_group_name,
            retention_days=args.log_retention_days,
            kms_key_arn=args.logs_key_arn,
            protect=args.protect,
            tags=args.tags,
        )
        log_group_arn = args.context.arn("logs", f"log-group:{log_group_name}")
        source_arn = pulumi.Output.concat(
            "arn:",
            args.context.partition,
            ":ec2:",
            args.context.region,
            ":",
            args.context.account_id,
            ":vpc-flow-log/*",
        )
        role = role_with_policy(
            self,
            f"{name}-flow-logs",
            role_name=f"{args.prefix}-flow-logs",
            description="Lets VPC Flow Logs write to this VPC's log group",
            # The confused-deputy guard AWS documents for vpc-flow-logs.amazonaws.com.
            trust=assume_role_policy(
                "vpc-flow-logs.amazonaws.com",
                {
                    "StringEquals": {"aws:SourceAccount": args.context.account_id},
                    "ArnLike": {"aws:SourceArn": source_arn},
                },
            ),
            statements=[
                {
                    "Effect": "Allow",
                    "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                    "Resource": [log_group_arn, pulumi.Output.concat(log_group_arn, ":log-stream:*")],
                }
            ],
            tags=args.tags,
        )
        self.flow_log = aws.ec2.FlowLog(
            f"{name}-flow-log",
            vpc_id=self.vpc_id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=self.flow_log_group.arn,
            iam_role_arn=role.arn,
            max_aggregation_interval=60,
            tags=args.tags,
            opts=child_opts(self, depends_on=[self.flow_log_group]),
        )

    def _create_endpoints(self, name: str) -> None:
        args = self._args
        self.endpoint_security_group = aws.ec2.SecurityGroup(
            f"{name}-endpoints-sg",
            name=f"{args.prefix}-endpoints",
            description="HTTPS from inside the VPC to the AWS service endpoints",
            vpc_id=self.vpc_id,
            ingress=[
                aws.ec2.SecurityGroupIngressArgs(
                    description="HTTPS from the VPC",
                    protocol="tcp",
                    from_port=443,
                    to_port=443,
                    cidr_blocks=[args.network.cidr],
                )
            ],
            egress=[],
            tags=args.tags,
            opts=child_opts(self),
        )
        for service in INTERFACE_ENDPOINTS:
            self.endpoints.append(
                aws.ec2.VpcEndpoint(
                    f"{name}-{service.replace('.', '-')}-endpoint",
                    vpc_id=self.vpc_id,
                    service_name=f"{args.context.reverse_dns_prefix}.{args.context.region}.{service}",
                    vpc_endpoint_type="Interface",
                    private_dns_enabled=True,
                    subnet_ids=self.private_subnet_ids,
                    security_group_ids=[self.endpoint_security_group.id],
                    tags={**args.tags, "Name": f"{args.prefix}-{service}"},
                    opts=child_opts(self),
                )
            )

    def _s3_gateway_endpoint(self, name: str) -> aws.ec2.VpcEndpoint:
        """S3 through the private subnets' route tables (the route tables exist once awsx returns the
        subnet IDs: its outputs include the route table associations)."""
        args = self._args
        route_tables = aws.ec2.get_route_tables_output(
            vpc_id=self.vpc_id,
            filters=[aws.ec2.GetRouteTablesFilterArgs(name="association.subnet-id", values=self.private_subnet_ids)],
        )
        return aws.ec2.VpcEndpoint(
            f"{name}-s3-endpoint",
            vpc_id=self.vpc_id,
            service_name=f"{args.context.reverse_dns_prefix}.{args.context.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=route_tables.ids,
            tags={**args.tags, "Name": f"{args.prefix}-s3"},
            opts=child_opts(self),
        )
