"""What decides that a release is bad, so ECS rolls it back: alarms on each target group, and a
smoke test of the green tasks through the test listener before production traffic moves."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from .alarms import error_rate_queries
from .common import AwsContext, Part, assume_role_policy, child_opts, log_group, role_with_policy

LAMBDA_DIR = os.path.join(os.path.dirname(__file__), "lambdas")


@dataclass(frozen=True)
class ReleaseChecksArgs:
    """``target_group_arn_suffixes``: blue and green (they swap roles on every release, so each has its
    alarms). A 5xx rate above ``error_rate_percent`` or one unhealthy target for two minutes fails a
    release; the alarms notify ``alarm_topic_arn`` (default none). The smoke test calls
    ``health_check_path`` on ``test_port`` of the load balancer named ``load_balancer_name``, from
    ``subnet_ids``; ``protect`` keeps its log group."""

    context: AwsContext
    prefix: str
    vpc_id: pulumi.Input[str]
    vpc_cidr: str
    subnet_ids: pulumi.Input[Sequence[str]]
    load_balancer_name: str
    load_balancer_arn_suffix: pulumi.Input[str]
    target_group_arn_suffixes: Mapping[str, pulumi.Input[str]]
    test_port: int
    https: bool
    health_check_path: str
    error_rate_percent: float
    logs_key_arn: pulumi.Input[str]
    log_retention_days: int
    alarm_topic_arn: pulumi.Input[str] | None = None
    protect: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)


class ReleaseChecks(Part):
    """`alarms` and their `alarm_names` (for the service's rollback), the `smoke_test_function` and the
    `hook_role` ECS invokes it with."""

    def __init__(self, name: str, args: ReleaseChecksArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cicd:releasechecks:ReleaseChecks", name, opts)
        self.alarms, self.alarm_names = self._alarms(name, args)
        self.smoke_test_function = self._smoke_test(name, args)
        self.hook_role = role_with_policy(
            self,
            f"{name}-hook",
            role_name=f"{args.prefix}-deploy-hooks",
            description="Lets ECS invoke the deployment lifecycle hooks",
            trust=assume_role_policy("ecs.amazonaws.com"),
            statements=[
                {
                    "Sid": "InvokeSmokeTest",
                    "Effect": "Allow",
                    "Action": "lambda:InvokeFunction",
                    "Resource": args.context.arn("lambda", f"function:{args.prefix}-smoke-test"),
                }
            ],
            tags=args.tags,
        )
        self.register_outputs({"alarm_names": self.alarm_names})

    def _alarms(self, name: str, args: ReleaseChecksArgs) -> tuple[list[aws.cloudwatch.MetricAlarm], list[str]]:
        """Alarms that mean "this release is bad"; ECS rolls back when one fires during a deployment."""
        actions = [args.alarm_topic_arn] if args.alarm_topic_arn is not None else []
        alarms, names = [], []
        for role, suffix in args.target_group_arn_suffixes.items():
            dims = {"LoadBalancer": args.load_balancer_arn_suffix, "TargetGroup": suffix}
            common = lambda: {  # noqa: E731 - fresh options for each alarm
                "evaluation_periods": 2,
                "datapoints_to_alarm": 2,
                "treat_missing_data": "notBreaching",
                "alarm_actions": actions,
                "ok_actions": actions,
                "actions_enabled": True,
                "tags": dict(args.tags),
                "opts": child_opts(self),
            }
            alarms.append(
                aws.cloudwatch.MetricAlarm(
                    f"{name}-{role}-5xx-rate",
                    name=f"{args.prefix}-{role}-5xx-rate",
                    alarm_description=f"Target 5xx above {args.error_rate_percent}% of requests on the {role} "
                    "target group; rolls back a deployment",
                    comparison_operator="GreaterThanThreshold",
                    threshold=args.error_rate_percent,
                    metric_queries=error_rate_queries("HTTPCode_Target_5XX_Count", dims),
                    **common(),
                )
            )
            alarms.append(
                aws.cloudwatch.MetricAlarm(
                    f"{name}-{role}-unhealthy-hosts",
                    name=f"{args.prefix}-{role}-unhealthy-hosts",
                    alarm_description=f"Unhealthy targets in the {role} target group; rolls back a deployment",
                    namespace="AWS/ApplicationELB",
                    metric_name="UnHealthyHostCount",
                    dimensions=dims,
                    statistic="Maximum",
                    period=60,
                    comparison_operator="GreaterThanOrEqualToThreshold",
                    threshold=1,
                    **common(),
                )
            )
            names += [f"{args.prefix}-{role}-5xx-rate", f"{args.prefix}-{role}-unhealthy-hosts"]
        return alarms, names

    def _smoke_test(self, name: str, args: ReleaseChecksArgs) -> aws.lambda_.Function:
        """A function in the VPC that calls the test listener; it fails the hook if green is not healthy."""
        ctx = args.context
        function_name = f"{args.prefix}-smoke-test"
        group = aws.ec2.SecurityGroup(
            f"{name}-smoke-test-sg",
            name=f"{args.prefix}-smoke-test",
            description="The smoke-test function: the test listener and AWS APIs, no ingress",
            vpc_id=args.vpc_id,
            tags=dict(args.tags),
            opts=child_opts(self),
        )
        for suffix, description, port, cidr in (
            ("to-alb", "To the test listener on the private addresses of the load balancer", args.test_port,
             args.vpc_cidr),
            ("https", "HTTPS to the EC2 API to find the nodes of the load balancer", 443, "0.0.0.0/0"),
        ):  # fmt: skip
            aws.vpc.SecurityGroupEgressRule(
                f"{name}-smoke-test-{suffix}",
                security_group_id=group.id,
                description=description,
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                cidr_ipv4=cidr,
                opts=child_opts(self),
            )
        log_group_name = f"/aws/lambda/{function_name}"
        logs = log_group(
            self,
            f"{name}-smoke-test-logs",
            log_group_name=log_group_name,
            retention_days=args.log_retention_days,
            kms_key_arn=args.logs_key_arn,
            protect=args.protect,
            tags=args.tags,
        )
        role = role_with_policy(
            self,
            f"{name}-smoke-test",
            role_name=f"{args.prefix}-smoke-test",
            description="The smoke-test function: VPC networking, its own logs",
            trust=assume_role_policy("lambda.amazonaws.com"),
            statements=[
                {
                    "Sid": "Logs",
                    "Effect": "Allow",
                    "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                    "Resource": ctx.arn("logs", f"log-group:{log_group_name}:log-stream:*"),
                },
                {
                    "Sid": "VpcNetworking",
                    "Effect": "Allow",
                    "Action": [
                        "ec2:AssignPrivateIpAddresses",
                        "ec2:CreateNetworkInterface",
                        "ec2:DeleteNetworkInterface",
                        "ec2:DescribeNetworkInterfaces",
                        "ec2:UnassignPrivateIpAddresses",
                    ],
                    # AWS requires "*" here: these actions have no resource-level permissions.
                    "Resource": "*",
                },
                {
                    "Sid": "Tracing",
                    "Effect": "Allow",
                    "Action": ["xray:PutTelemetryRecords", "xray:PutTraceSegments"],
                    # X-Ray's write APIs have no resource-level permissions: AWS requires "*".
                    "Resource": "*",
                },
            ],
            tags=args.tags,
        )
        return aws.lambda_.Function(
            f"{name}-smoke-test",
            name=function_name,
            description="ECS lifecycle hook: fails a deployment whose green tasks fail the test listener",
            runtime="python3.12",
            architectures=["arm64"],
            handler="smoke_test.handler",
            code=pulumi.AssetArchive({"smoke_test.py": pulumi.FileAsset(os.path.join(LAMBDA_DIR, "smoke_test.py"))}),
            role=role.arn,
            timeout=60,
            memory_size=128,
            environment=aws.lambda_.FunctionEnvironmentArgs(
                variables={
                    "LB_NAME": args.load_balancer_name,
                    "TEST_PORT": str(args.test_port),
                    "HEALTH_PATH": args.health_check_path,
                    "SCHEME": "https" if args.https else "http",
                }
            ),
            vpc_config=aws.lambda_.FunctionVpcConfigArgs(subnet_ids=args.subnet_ids, security_group_ids=[group.id]),
            tracing_config=aws.lambda_.FunctionTracingConfigArgs(mode="Active"),
            logging_config=aws.lambda_.FunctionLoggingConfigArgs(log_format="JSON", log_group=log_group_name),
            tags=dict(args.tags),
            opts=child_opts(self, depends_on=[logs]),
        )
