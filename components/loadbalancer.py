"""The internet-facing ALB of a blue/green service: listeners, both target groups, the rules ECS
shifts traffic with, access logs and (optionally) a WAF web ACL."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from .bucket import private_bucket
from .common import AwsContext, Part, child_opts
from .waf import WebFirewall, WebFirewallArgs

# TLS 1.3 with TLS 1.2 fallback: the ALB policy AWS recommends for internet-facing listeners.
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
LISTENER_RULE_PRIORITY = 100
HEALTH_CHECK_TIMEOUT_SECONDS = 5
ACCESS_LOG_PREFIX = "alb"
S3_ACCESS_LOG_PREFIX = "s3"
ROLES = ("blue", "green")
# The principal that delivers ALB access logs in regions opened since August 2022 (and beside the
# regional ELB account in older ones, where AWS documents both forms).
ELB_LOG_DELIVERY = "logdelivery.elasticloadbalancing.amazonaws.com"
# The regions opened before August 2022 and the ELB account that writes ALB access logs there, as
# AWS's "Enable access logs" page lists them (the same table as the provider's aws.elb.get_service_account,
# which the program no longer calls: a table is known at preview and offline, an invoke is not). AWS
# recommends the service principal in every region and still honours these; no region is ever added.
ELB_LOG_ACCOUNTS = {
    "us-east-1": "127311923021",
    "us-east-2": "033677994240",
    "us-west-1": "027434742980",
    "us-west-2": "797873946194",
    "af-south-1": "098369216593",
    "ap-east-1": "754344448648",
    "ap-southeast-3": "589379963580",
    "ap-south-1": "718504428378",
    "ap-northeast-3": "383597477331",
    "ap-northeast-2": "600734575887",
    "ap-southeast-1": "114774131450",
    "ap-southeast-2": "783225319266",
    "ap-northeast-1": "582318560864",
    "ca-central-1": "985666609251",
    "eu-central-1": "054676820928",
    "eu-west-1": "156460612806",
    "eu-west-2": "652711504416",
    "eu-south-1": "635631232127",
    "eu-west-3": "009996457667",
    "eu-north-1": "897822967062",
    "me-south-1": "076674570225",
    "sa-east-1": "507241528517",
}


def elb_log_account_arn(region: str, partition: str = "aws") -> str | None:
    """The ELB account that delivers ALB access logs in a region older than August 2022; None in newer
    regions, where AWS delivers them as the log-delivery service principal alone."""
    account = ELB_LOG_ACCOUNTS.get(region)
    return f"arn:{partition}:iam::{account}:root" if account else None


def health_check_timeout(interval_seconds: int) -> int:
    """AWS wants the timeout below the interval: 5 s, or less for the shortest intervals."""
    return min(HEALTH_CHECK_TIMEOUT_SECONDS, interval_seconds - 1)


@dataclass(frozen=True)
class LoadBalancerArgs:
    """``certificate_arn``: HTTPS with TLS 1.3 on 443, a redirect on 80 and the test listener on 8443;
    empty serves plain HTTP on 80 and tests on 8080. ``protect``: deletion protection, and the log
    bucket is protected and retained. ``waf``: AWS's managed rule groups in front; default off.
    The target groups check ``health_check_path`` every ``health_check_interval_seconds``."""

    context: AwsContext
    prefix: str
    vpc_id: pulumi.Input[str]
    subnet_ids: pulumi.Input[Sequence[str]]
    security_group_id: pulumi.Input[str]
    container_port: int
    health_check_path: str
    health_check_interval_seconds: int
    healthy_threshold: int
    deregistration_delay_seconds: int
    test_port: int
    logs_key_arn: pulumi.Input[str]
    log_retention_days: int
    certificate_arn: str = ""
    protect: bool = False
    waf: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)


class LoadBalancer(Part):
    """`load_balancer`, `target_groups` (blue, green), `production_rule` and `test_rule`, `url`."""

    def __init__(self, name: str, args: LoadBalancerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cicd:loadbalancer:LoadBalancer", name, opts)
        https = bool(args.certificate_arn)
        self.name = f"{args.prefix}-alb"
        self.access_logs = self._access_logs(name, args)
        self.access_log_bucket = self.access_logs.name
        self.load_balancer = aws.lb.LoadBalancer(
            f"{name}-alb",
            name=self.name,
            load_balancer_type="application",
            internal=False,
            security_groups=[args.security_group_id],
            subnets=args.subnet_ids,
            drop_invalid_header_fields=True,
            desync_mitigation_mode="defensive",
            enable_deletion_protection=args.protect,
            enable_http2=True,
            idle_timeout=60,
            access_logs=aws.lb.LoadBalancerAccessLogsArgs(
                bucket=self.access_logs.name, prefix=ACCESS_LOG_PREFIX, enabled=True
            ),
            tags=dict(args.tags),
            # AWS checks that it may write to the bucket when access logs are switched on.
            opts=child_opts(self, depends_on=[self.access_logs.policy]),
        )
        self.target_groups = {
            role: aws.lb.TargetGroup(
                f"{name}-{role}",
                name=f"{args.prefix}-{role}",
                port=args.container_port,
                protocol="HTTP",
                target_type="ip",
                vpc_id=args.vpc_id,
                deregistration_delay=args.deregistration_delay_seconds,
                health_check=aws.lb.TargetGroupHealthCheckArgs(
                    enabled=True,
                    path=args.health_check_path,
                    protocol="HTTP",
                    port="traffic-port",
                    matcher="200",
                    interval=args.health_check_interval_seconds,
                    timeout=health_check_timeout(args.health_check_interval_seconds),
                    healthy_threshold=args.healthy_threshold,
                    unhealthy_threshold=2,
                ),
                tags={**args.tags, "deployment-role": role},
                opts=child_opts(self),
            )
            for role in ROLES
        }
        not_found = aws.lb.ListenerDefaultActionArgs(
            type="fixed-response",
            fixed_response=aws.lb.ListenerDefaultActionFixedResponseArgs(
                content_type="text/plain", message_body="Not found", status_code="404"
            ),
        )
        tls = {"ssl_policy": TLS_POLICY, "certificate_arn": args.certificate_arn} if https else {}
        listener = lambda suffix, port: aws.lb.Listener(  # noqa: E731
            f"{name}-{suffix}",
            load_balancer_arn=self.load_balancer.arn,
            port=port,
            protocol="HTTPS" if https else "HTTP",
            default_actions=[not_found],
            tags=dict(args.tags),
            opts=child_opts(self),
            **tls,
        )
        production_listener = listener("production", 443 if https else 80)
        if https:
            aws.lb.Listener(
                f"{name}-http-redirect",
                load_balancer_arn=self.load_balancer.arn,
                port=80,
                protocol="HTTP",
                default_actions=[
                    aws.lb.ListenerDefaultActionArgs(
                        type="redirect",
                        redirect=aws.lb.ListenerDefaultActionRedirectArgs(
                            protocol="HTTPS", port="443", status_code="HTTP_301"
                        ),
                    )
                ],
                tags=dict(args.tags),
                opts=child_opts(self),
            )
        test_listener = listener("test", args.test_port)
        self.firewall = None
        if args.waf:
            self.firewall = WebFirewall(
                f"{name}-waf",
                WebFirewallArgs(
                    context=args.context,
                    prefix=args.prefix,
                    load_balancer_arn=self.load_balancer.arn,
                    logs_key_arn=args.logs_key_arn,
                    log_retention_days=args.log_retention_days,
                    protect=args.protect,
                    tags=args.tags,
                ),
                opts=child_opts(self),
            )
        # ECS rewrites the weights of these rules while it shifts traffic, so Pulumi sets them once
        # and then ignores `actions`; otherwise the next `pulumi up` would undo a deployment.
        self.production_rule = self._forward_rule(f"{name}-production-rule", production_listener, args.tags)
        self.test_rule = self._forward_rule(f"{name}-test-rule", test_listener, args.tags)
        self.url = pulumi.Output.concat("https://" if https else "http://", self.load_balancer.dns_name)
        self.register_outputs({"url": self.url, "load_balancer_arn": self.load_balancer.arn})

    def _access_logs(self, name: str, args: LoadBalancerArgs):
        """The access-log bucket: private, versioned, TLS-only, expiring with the log retention."""
        ctx = args.context
        writer: dict[str, pulumi.Input[str]] = {"Service": ELB_LOG_DELIVERY}
        legacy = elb_log_account_arn(ctx.region, ctx.partition)
        if legacy:
            writer["AWS"] = legacy
        return private_bucket(
            self,
            f"{name}-access-logs",
            bucket_name=pulumi.Output.concat(args.prefix, "-alb-logs-", ctx.account_id),
            partition=ctx.partition,
            expiration_days=args.log_retention_days,
            protect=args.protect,
            tags=args.tags,
            # ALB access logs can only be delivered to SSE-S3 buckets, not SSE-KMS: no key here.
            kms_key_arn=None,
            statements=lambda arn: [
                {
                    "Sid": "AlbDeliversLogs",
                    "Effect": "Allow",
                    "Principal": writer,
                    "Action": "s3:PutObject",
                    "Resource": pulumi.Output.concat(arn, f"/{ACCESS_LOG_PREFIX}/AWSLogs/", ctx.account_id, "/*"),
                },
                {
                    # S3 server access logs of the stack's other buckets (the pipeline's artifacts).
                    "Sid": "S3DeliversAccessLogs",
                    "Effect": "Allow",
                    "Principal": {"Service": "logging.s3.amazonaws.com"},
                    "Action": "s3:PutObject",
                    "Resource": pulumi.Output.concat(arn, f"/{S3_ACCESS_LOG_PREFIX}/*"),
                    "Condition": {
                        "StringEquals": {"aws:SourceAccount": ctx.account_id},
                        "ArnLike": {"aws:SourceArn": f"arn:{ctx.partition}:s3:::{args.prefix}-*"},
                    },
                },
            ],
        )

    def _forward_rule(self, name: str, listener: aws.lb.Listener, tags: Mapping[str, str]) -> aws.lb.ListenerRule:
        """All paths to blue (100) and green (0); ECS owns the weights from then on."""
        return aws.lb.ListenerRule(
            name,
            listener_arn=listener.arn,
            priority=LISTENER_RULE_PRIORITY,
            conditions=[
                aws.lb.ListenerRuleConditionArgs(
                    path_pattern=aws.lb.ListenerRuleConditionPathPatternArgs(values=["/*"])
                )
            ],
            actions=[
                aws.lb.ListenerRuleActionArgs(
                    type="forward",
                    forward=aws.lb.ListenerRuleActionForwardArgs(
                        target_groups=[
                            aws.lb.ListenerRuleActionForwardTargetGroupArgs(
                                arn=self.target_groups["blue"].arn, weight=100
                            ),
                            aws.lb.ListenerRuleActionForwardTargetGroupArgs(
                                arn=self.target_groups["green"].arn, weight=0
                            ),
                        ]
                    ),
                )
            ],
            tags=dict(tags),
            opts=child_opts(self, ignore_changes=["actions"]),
        )
