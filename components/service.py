"""The Fargate service behind an ALB, released with ECS-native blue/green deployments.

Why ECS-native and not CodeDeploy: with CodeDeploy, CodeDeploy owns the task definition and every
`pulumi up` fights it (pulumi-aws issues 1096 and 3821). With the ECS deployment controller and a
BLUE_GREEN, CANARY or LINEAR strategy, a release is just `pulumi up` with a new task definition, so
git and Pulumi stay the single source of truth, and ECS moves traffic and rolls back on alarms.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from .bucket import private_bucket
from .common import (
    AwsContext,
    PolicyRole,
    assume_role_policy,
    child_opts,
    key_by_alias,
    log_group,
    role_with_policy,
    stateful_opts,
)
from .waf import WebFirewall, WebFirewallArgs

APP_CONTAINER = "app"
# The app's listen backlog; the kernel caps it at net.core.somaxconn (4096 on Fargate's kernels).
LISTEN_BACKLOG = 1024
# Variables the program sets in the app container itself; the configuration may not set them.
XRAY_CONTAINER = "xray-daemon"
APP_USER = "10001:10001"
XRAY_USER = "1337"
# TLS 1.3 with TLS 1.2 fallback: the ALB policy AWS recommends for internet-facing listeners.
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
LISTENER_RULE_PRIORITY = 100
HEALTH_CHECK_TIMEOUT_SECONDS = 5
CPU_TARGET_PERCENT = 60
REQUESTS_PER_TARGET = 500
# Beyond the configured waiting: starting and pulling tasks, the smoke test, ECS polling.
RELEASE_OVERHEAD_MINUTES = 15
# Installing the Pulumi CLI and the virtualenvs, then the preview with the policy pack.
DEPLOY_JOB_OVERHEAD_MINUTES = 20
# The longest deploy job we allow: CodeBuild accepts up to 2160 minutes; we hold a pipeline's build
# action to 8 hours, the limit we understand CodePipeline to set (not confirmed against its quota page).
DEPLOY_JOB_MAX_MINUTES = 480
LAMBDA_DIR = os.path.join(os.path.dirname(__file__), "lambdas")
ACCESS_LOG_PREFIX = "alb"
S3_ACCESS_LOG_PREFIX = "s3"
# The principal that delivers ALB access logs in regions opened since August 2022 (and beside the
# regional ELB account in older ones, where AWS documents both forms).
ELB_LOG_DELIVERY = "logdelivery.elasticloadbalancing.amazonaws.com"
# The regions opened before August 2022, where a regional ELB account writes the logs. No region is
# ever added to this set: every newer one uses the service principal.
LEGACY_ELB_LOG_REGIONS = frozenset(
    {
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
        "af-south-1",
        "ap-east-1",
        "ap-south-1",
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-northeast-3",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-southeast-3",
        "ca-central-1",
        "eu-central-1",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "eu-south-1",
        "eu-north-1",
        "me-south-1",
        "sa-east-1",
        "us-gov-west-1",
        "us-gov-east-1",
        "cn-north-1",
        "cn-northwest-1",
    }
)
# The first version of every service secret: not a secret, just something for ECS to inject until the
# team puts the real value (README, bootstrap).
SECRET_PLACEHOLDER = "placeholder: put the real value with aws secretsmanager put-secret-value"


@dataclass(frozen=True)
class FargateServiceArgs:
    """Inputs of a FargateService. Decisions are plain values; other resources' outputs are Inputs.

    ``strategy``: BLUE_GREEN | CANARY | LINEAR. ``bake_time_minutes``: 0..1440, how long green runs
    with all traffic before blue is stopped. ``certificate_arn``: HTTPS with TLS 1.3 on 443 and a
    redirect on 80; empty serves plain HTTP on 80 (not allowed in prod by the configuration).
    ``protect``: ALB deletion protection, and the log group and secrets are protected and retained.
    ``waf``: an AWS WAF web ACL with AWS's managed rule groups on the load balancer; default False.
    ``alarm_topic_arn``: where the deployment alarms notify; default none.
    ``xray_image``: the X-Ray daemon in the stack's pull-through cache, whose repositories are under
    ``image_cache_prefix``/ (the execution role may pull from them and create them on a first pull);
    the task definition waits for ``images_ready`` (the cache rule and its template, a local build).
    """

    context: AwsContext
    prefix: str
    vpc_id: pulumi.Input[str]
    vpc_cidr: str
    public_subnet_ids: pulumi.Input[Sequence[str]]
    private_subnet_ids: pulumi.Input[Sequence[str]]
    image_ref: pulumi.Input[str]
    repository_name: str
    xray_image: pulumi.Input[str]
    image_cache_prefix: str
    data_key_arn: pulumi.Input[str]
    data_key_alias: str
    logs_key_arn: pulumi.Input[str]
    log_retention_days: int
    container_port: int = 8080
    health_check_path: str = "/health"
    cpu: int = 256
    memory: int = 512
    architecture: str = "ARM64"
    desired_count: int = 2
    min_count: int = 1
    max_count: int = 4
    spot: bool = False
    environment: Mapping[str, str] = field(default_factory=dict)
    secrets: Sequence[str] = ()
    strategy: str = "BLUE_GREEN"
    bake_time_minutes: int = 1
    canary_percent: float | None = None
    canary_bake_minutes: int | None = None
    linear_step_percent: float | None = None
    linear_step_bake_minutes: int | None = None
    deregistration_delay_seconds: int = 30
    health_check_interval_seconds: int = 10
    healthy_threshold: int = 2
    certificate_arn: str = ""
    protect: bool = False
    waf: bool = False
    alarm_topic_arn: pulumi.Input[str] | None = None
    error_rate_percent: float = 1.0
    xray_sampling_rate: float = 0.05
    images_ready: Sequence[pulumi.Resource] = ()
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.strategy not in ("BLUE_GREEN", "CANARY", "LINEAR"):
            raise ValueError(f"FargateServiceArgs.strategy must be BLUE_GREEN, CANARY or LINEAR; got {self.strategy}")
        if self.strategy == "CANARY" and (self.canary_percent is None or self.canary_bake_minutes is None):
            raise ValueError("FargateServiceArgs.canary_percent and canary_bake_minutes are required with CANARY")
        if self.strategy == "LINEAR" and (self.linear_step_percent is None or self.linear_step_bake_minutes is None):
            raise ValueError(
                "FargateServiceArgs.linear_step_percent and linear_step_bake_minutes are required with LINEAR"
            )
        if not 5 <= self.health_check_interval_seconds <= 300:
            raise ValueError(
                "FargateServiceArgs.health_check_interval_seconds must be 5..300; "
                f"got {self.health_check_interval_seconds}"
            )
        if not 2 <= self.healthy_threshold <= 10:
            raise ValueError("FargateServiceArgs.healthy_threshold must be 2..10")
        if len(self.prefix) > 24:
            raise ValueError(f"FargateServiceArgs.prefix must be at most 24 characters; got {self.prefix!r}")
        if not self.min_count <= self.desired_count <= self.max_count:
            raise ValueError("FargateServiceArgs needs min_count <= desired_count <= max_count")
        job = deploy_job_minutes(deploy_wait_seconds(self))
        if job > DEPLOY_JOB_MAX_MINUTES:
            raise ValueError(
                f"FargateServiceArgs: a release needs a {job}-minute deploy job; at most "
                f"{DEPLOY_JOB_MAX_MINUTES} minutes are allowed (shorten the bake times)"
            )

    @property
    def https(self) -> bool:
        return bool(self.certificate_arn)

    @property
    def health_check_timeout(self) -> int:
        """AWS wants the timeout below the interval: 5 s, or less for the shortest intervals."""
        return min(HEALTH_CHECK_TIMEOUT_SECONDS, self.health_check_interval_seconds - 1)

    @property
    def test_port(self) -> int:
        return 8443 if self.https else 8080


def deploy_wait_seconds(args: FargateServiceArgs) -> dict[str, int]:
    """The configured waiting on a deployment's critical path, in seconds, by cause.

    Green must pass `healthy_threshold` health checks, traffic shifts (with a bake between canary or
    linear steps), the whole of green bakes, then blue drains for the deregistration delay.
    """
    waits = {
        "health checks": args.health_check_interval_seconds * args.healthy_threshold,
        "bake time": args.bake_time_minutes * 60,
        "deregistration delay": args.deregistration_delay_seconds,
    }
    if args.strategy == "CANARY":
        waits["canary bake"] = int(args.canary_bake_minutes or 0) * 60
    if args.strategy == "LINEAR":
        steps = math.ceil(100 / float(args.linear_step_percent or 100))
        waits["linear steps"] = (steps - 1) * int(args.linear_step_bake_minutes or 0) * 60
    waits["total"] = sum(waits.values())
    return waits


def worker_threads(cpu: int) -> int:
    """Request threads for a task of `cpu` units: 32 per vCPU, at least 32 (requests mostly wait on I/O)."""
    return max(32, 32 * cpu // 1024)


def elb_log_account_arn(region: str) -> str | None:
    """The ELB account that delivers ALB access logs in a region older than August 2022, as the provider
    publishes it (aws.elb.get_service_account); None in newer regions, where AWS delivers them as the
    log-delivery service principal alone. (A failed invoke fails the whole program in Pulumi, so the
    closed set of older regions decides whether to ask.)"""
    if region not in LEGACY_ELB_LOG_REGIONS:
        return None
    return aws.elb.get_service_account(region=region).arn


def release_timeout_minutes(waits: Mapping[str, int]) -> int:
    """How long `pulumi up` may wait for a release: the configured waiting plus the time ECS spends
    starting and pulling tasks, running the smoke test and polling (15 minutes), and never less than
    the provider's own 20-minute default."""
    return max(20, math.ceil(waits["total"] / 60) + RELEASE_OVERHEAD_MINUTES)


def deploy_job_minutes(waits: Mapping[str, int]) -> int:
    """The deploy job's build timeout: the release plus installing the tools and the preview."""
    return release_timeout_minutes(waits) + DEPLOY_JOB_OVERHEAD_MINUTES


class FargateService(pulumi.ComponentResource):
    """Cluster, ALB with blue and green target groups, task definition, service, scaling, smoke test."""

    def __init__(self, name: str, args: FargateServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cicd:service:FargateService", name, None, opts)
        self._name = name
        self._args = args
        ctx = args.context
        self.cluster_name = args.prefix
        self.service_name = args.prefix
        self.lb_name = f"{args.prefix}-alb"
        self.log_group_name = f"/ecs/{args.prefix}"
        self.function_name = f"{args.prefix}-smoke-test"
        self.log_group_arn = ctx.arn("logs", f"log-group:{self.log_group_name}")

        self._create_cluster()
        self._create_security_groups()
        self._create_load_balancer()
        self._create_logs_and_secrets()
        self._create_task_definition()
        self._create_deployment_alarms()
        self._create_smoke_test()
        self._create_service()
        self._create_autoscaling()
        self.deploy_wait = deploy_wait_seconds(args)
        self.deploy_job_minutes = deploy_job_minutes(self.deploy_wait)
        self.url = pulumi.Output.concat("https://" if args.https else "http://", self.load_balancer.dns_name)
        self.register_outputs(
            {
                "url": self.url,
                "cluster_name": self.cluster_name,
                "service_name": self.service_name,
                "load_balancer_arn": self.load_balancer.arn,
                "alarm_names": self.deployment_alarm_names,
            }
        )

    # -- cluster -----------------------------------------------------------------------------------

    def _create_cluster(self) -> None:
        args = self._args
        self.cluster = aws.ecs.Cluster(
            f"{self._name}-cluster",
            name=self.cluster_name,
            settings=[aws.ecs.ClusterSettingArgs(name="containerInsights", value="enabled")],
            tags=dict(args.tags),
            opts=child_opts(self),
        )
        if args.spot:
            # One task always on demand; the rest mostly on Spot, which costs about 70% less.
            strategy = [
                aws.ecs.ClusterCapacityProvidersDefaultCapacityProviderStrategyArgs(
                    capacity_provider="FARGATE", base=1, weight=1
                ),
                aws.ecs.ClusterCapacityProvidersDefaultCapacityProviderStrategyArgs(
                    capacity_provider="FARGATE_SPOT", weight=3
                ),
            ]
        else:
            strategy = [
                aws.ecs.ClusterCapacityProvidersDefaultCapacityProviderStrategyArgs(
                    capacity_provider="FARGATE", base=1, weight=1
                )
            ]
        self.capacity_providers = aws.ecs.ClusterCapacityProviders(
            f"{self._name}-capacity-providers",
            cluster_name=self.cluster.name,
            capacity_providers=["FARGATE", "FARGATE_SPOT"],
            default_capacity_provider_strategies=strategy,
            opts=child_opts(self),
        )
        self.capacity_provider_strategy = [
            aws.ecs.ServiceCapacityProviderStrategyArgs(
                capacity_provider=s.capacity_provider, base=s.base, weight=s.weight
            )
            for s in strategy
        ]

    # -- network access ----------------------------------------------------------------------------

    def _create_security_groups(self) -> None:
        args = self._args
        self.alb_security_group = aws.ec2.SecurityGroup(
            f"{self._name}-alb-sg",
            name=f"{args.prefix}-alb",
            description="The load balancer: its public listeners from the internet, the test listener from the VPC",
            vpc_id=args.vpc_id,
            tags=dict(args.tags),
            opts=child_opts(self),
        )
        self.task_security_group = aws.ec2.SecurityGroup(
            f"{self._name}-task-sg",
            name=f"{args.prefix}-tasks",
            description="The service tasks: the container port from the load balancer only",
            vpc_id=args.vpc_id,
            tags=dict(args.tags),
            opts=child_opts(self),
        )
        public_ports = [443, 80] if args.https else [80]
        self.ingress_rules = []
        for port in public_ports:
            for family, cidr in (("ipv4", "0.0.0.0/0"), ("ipv6", "::/0")):
                self.ingress_rules.append(
                    aws.vpc.SecurityGroupIngressRule(
                        f"{self._name}-alb-{port}-{family}",
                        security_group_id=self.alb_security_group.id,
                        description=f"{'HTTPS' if port == 443 else 'HTTP'} from the internet to the public listener",
                        ip_protocol="tcp",
                        from_port=port,
                        to_port=port,
                        **({"cidr_ipv4": cidr} if family == "ipv4" else {"cidr_ipv6": cidr}),
                        opts=child_opts(self),
                    )
                )
        self.ingress_rules.append(
            aws.vpc.SecurityGroupIngressRule(
                f"{self._name}-alb-test",
                security_group_id=self.alb_security_group.id,
                description="The test listener, from inside the VPC only (smoke tests of the green tasks)",
                ip_protocol="tcp",
                from_port=args.test_port,
                to_port=args.test_port,
                cidr_ipv4=args.vpc_cidr,
                opts=child_opts(self),
            )
        )
        aws.vpc.SecurityGroupEgressRule(
            f"{self._name}-alb-to-tasks",
            security_group_id=self.alb_security_group.id,
            description="To the container port of the tasks",
            ip_protocol="tcp",
            from_port=args.container_port,
            to_port=args.container_port,
            referenced_security_group_id=self.task_security_group.id,
            opts=child_opts(self),
        )
        self.ingress_rules.append(
            aws.vpc.SecurityGroupIngressRule(
                f"{self._name}-tasks-from-alb",
                security_group_id=self.task_security_group.id,
                description="The container port from the load balancer",
                ip_protocol="tcp",
                from_port=args.container_port,
                to_port=args.container_port,
                referenced_security_group_id=self.alb_security_group.id,
                opts=child_opts(self),
            )
        )
        aws.vpc.SecurityGroupEgressRule(
            f"{self._name}-tasks-https",
            security_group_id=self.task_security_group.id,
            description="HTTPS to AWS APIs (ECR, CloudWatch Logs, Secrets Manager, X-Ray)",
            ip_protocol="tcp",
            from_port=443,
            to_port=443,
            cidr_ipv4="0.0.0.0/0",
            opts=child_opts(self),
        )

    # -- load balancer -----------------------------------------------------------------------------

    def _create_access_logs(self) -> None:
        """The ALB access-log bucket: private, versioned, TLS-only, expiring with the log retention."""
        args = self._args
        ctx = args.context
        writer: dict[str, str] = {"Service": ELB_LOG_DELIVERY}
        legacy = elb_log_account_arn(ctx.region)
        if legacy:
            writer["AWS"] = legacy
        self.access_logs = private_bucket(
            self,
            f"{self._name}-access-logs",
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
        self.access_log_bucket = self.access_logs.name

    def _create_load_balancer(self) -> None:
        args = self._args
        self._create_access_logs()
        self.load_balancer = aws.lb.LoadBalancer(
            f"{self._name}-alb",
            name=self.lb_name,
            load_balancer_type="application",
            internal=False,
            security_groups=[self.alb_security_group.id],
            subnets=args.public_subnet_ids,
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
                f"{self._name}-{role}",
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
                    timeout=args.health_check_timeout,
                    healthy_threshold=args.healthy_threshold,
                    unhealthy_threshold=2,
                ),
                tags={**args.tags, "deployment-role": role},
                opts=child_opts(self),
            )
            for role in ("blue", "green")
        }
        not_found = aws.lb.ListenerDefaultActionArgs(
            type="fixed-response",
            fixed_response=aws.lb.ListenerDefaultActionFixedResponseArgs(
                content_type="text/plain", message_body="Not found", status_code="404"
            ),
        )
        tls = {"ssl_policy": TLS_POLICY, "certificate_arn": args.certificate_arn} if args.https else {}
        self.production_listener = aws.lb.Listener(
            f"{self._name}-production",
            load_balancer_arn=self.load_balancer.arn,
            port=443 if args.https else 80,
            protocol="HTTPS" if args.https else "HTTP",
            default_actions=[not_found],
            tags=dict(args.tags),
            opts=child_opts(self),
            **tls,
        )
        if args.https:
            self.redirect_listener = aws.lb.Listener(
                f"{self._name}-http-redirect",
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
        self.test_listener = aws.lb.Listener(
            f"{self._name}-test",
            load_balancer_arn=self.load_balancer.arn,
            port=args.test_port,
            protocol="HTTPS" if args.https else "HTTP",
            default_actions=[not_found],
            tags=dict(args.tags),
            opts=child_opts(self),
            **tls,
        )
        self.firewall = None
        if args.waf:
            self.firewall = WebFirewall(
                f"{self._name}-waf",
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
        self.production_rule = self._forward_rule("production-rule", self.production_listener)
        self.test_rule = self._forward_rule("test-rule", self.test_listener)

    def _forward_rule(self, role: str, listener: aws.lb.Listener) -> aws.lb.ListenerRule:
        return aws.lb.ListenerRule(
            f"{self._name}-{role}",
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
            tags=dict(self._args.tags),
            opts=child_opts(self, ignore_changes=["actions"]),
        )

    # -- logs and secrets --------------------------------------------------------------------------

    def _create_logs_and_secrets(self) -> None:
        args = self._args
        self.log_group = log_group(
            self,
            f"{self._name}-logs",
            log_group_name=self.log_group_name,
            retention_days=args.log_retention_days,
            kms_key_arn=args.logs_key_arn,
            protect=args.protect,
            tags=args.tags,
        )
        self.secrets = {}
        self.secret_placeholders: list[aws.secretsmanager.SecretVersion] = []
        for secret_name in args.secrets:
            # The real value is put out of band (`aws secretsmanager put-secret-value`), so it never
            # passes through Pulumi state or config. ECS cannot start a task whose secret has no
            # AWSCURRENT version, so each secret starts with a placeholder version that Pulumi then
            # leaves alone: the first `up` succeeds, and a real value replaces it without drift.
            self.secrets[secret_name] = aws.secretsmanager.Secret(
                f"{self._name}-secret-{secret_name.lower().replace('_', '-')}",
                name=f"{args.prefix}/{secret_name}",
                description=f"{secret_name} for the {args.prefix} service",
                kms_key_id=args.data_key_arn,
                recovery_window_in_days=30 if args.protect else 7,
                tags=dict(args.tags),
                opts=stateful_opts(self, args.protect),
            )
            self.secret_placeholders.append(
                aws.secretsmanager.SecretVersion(
                    f"{self._name}-secret-{secret_name.lower().replace('_', '-')}-placeholder",
                    secret_id=self.secrets[secret_name].id,
                    secret_string=SECRET_PLACEHOLDER,
                    # A put-secret-value moves AWSCURRENT to the real version: neither the string nor the
                    # labels are Pulumi's after creation, and removing this resource never touches a label.
                    opts=child_opts(self, ignore_changes=["secretString", "versionStages"], retain_on_delete=True),
                )
            )

    # -- task definition ---------------------------------------------------------------------------

    def _task_roles(self) -> None:
        args = self._args
        ctx = args.context
        cached = ctx.arn("ecr", f"repository/{args.image_cache_prefix}/*")
        trust = assume_role_policy(
            "ecs-tasks.amazonaws.com",
            {
                "StringEquals": {"aws:SourceAccount": ctx.account_id},
                "ArnLike": {"aws:SourceArn": ctx.arn("ecs", "*")},
            },
        )
        statements = [
            # GetAuthorizationToken has no resource-level permissions: AWS requires "*".
            {"Sid": "EcrLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
            {
                "Sid": "EcrPull",
                "Effect": "Allow",
                "Action": ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                "Resource": [ctx.arn("ecr", f"repository/{args.repository_name}"), cached],
            },
            # The first pull of a public image through the cache imports it and creates its repository.
            {
                "Sid": "EcrPullThroughCache",
                "Effect": "Allow",
                "Action": ["ecr:BatchImportUpstreamImage", "ecr:CreateRepository"],
                "Resource": cached,
            },
            {
                "Sid": "Logs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": pulumi.Output.concat(self.log_group_arn, ":log-stream:*"),
            },
            key_by_alias(ctx, args.data_key_alias, ["kms:Decrypt"], sid="DecryptImageLayersAndSecrets"),
        ]
        if args.secrets:
            statements.append(
                {
                    "Sid": "Secrets",
                    "Effect": "Allow",
                    "Action": "secretsmanager:GetSecretValue",
                    # Secrets Manager appends six random characters to a secret's ARN.
                    "Resource": [ctx.arn("secretsmanager", f"secret:{args.prefix}/{s}-??????") for s in args.secrets],
                }
            )
        self.execution_role = role_with_policy(
            self,
            f"{self._name}-execution",
            role_name=f"{args.prefix}-execution",
            description="Lets ECS pull the image, write logs and read the service's secrets",
            trust=trust,
            statements=statements,
            tags=args.tags,
        )
        self.task_role = role_with_policy(
            self,
            f"{self._name}-task",
            role_name=f"{args.prefix}-task",
            description="The application's own permissions: sending traces to X-Ray",
            trust=trust,
            statements=[
                {
                    "Sid": "XRay",
                    "Effect": "Allow",
                    "Action": [
                        "xray:GetSamplingRules",
                        "xray:GetSamplingStatisticSummaries",
                        "xray:GetSamplingTargets",
                        "xray:PutTelemetryRecords",
                        "xray:PutTraceSegments",
                    ],
                    # X-Ray's write and sampling APIs have no resource-level permissions: AWS requires "*".
                    "Resource": "*",
                }
            ],
            tags=args.tags,
        )

    def container_definitions(self) -> pulumi.Output[str]:
        args = self._args
        log_options = {
            "awslogs-group": self.log_group_name,
            "awslogs-region": args.context.region,
        }
        environment = [{"name": k, "value": v} for k, v in sorted(args.environment.items())]
        environment += [
            {"name": "AWS_XRAY_DAEMON_ADDRESS", "value": "127.0.0.1:2000"},
            # The sample service's listen backlog and thread pool, sized for the task (app/service/server.py).
            {"name": "LISTEN_BACKLOG", "value": str(LISTEN_BACKLOG)},
            {"name": "PORT", "value": str(args.container_port)},
            {"name": "SERVICE_NAME", "value": args.prefix},
            {"name": "WORKER_THREADS", "value": str(worker_threads(args.cpu))},
            {"name": "XRAY_SAMPLING_RATE", "value": str(args.xray_sampling_rate)},
        ]
        app = {
            "name": APP_CONTAINER,
            "image": args.image_ref,
            "essential": True,
            "user": APP_USER,
            "readonlyRootFilesystem": True,
            "privileged": False,
            "linuxParameters": {"capabilities": {"drop": ["ALL"]}, "initProcessEnabled": True},
            "portMappings": [{"name": "http", "containerPort": args.container_port, "protocol": "tcp"}],
            "environment": environment,
            # By name: ECS resolves a secret in the task's own region from its name.
            "secrets": [{"name": s, "valueFrom": f"{args.prefix}/{s}"} for s in args.secrets],
            "mountPoints": [{"sourceVolume": "tmp", "containerPath": "/tmp", "readOnly": False}],
            "healthCheck": {
                "command": ["CMD", "python", "-m", "service.healthcheck"],
                "interval": 10,
                "timeout": 5,
                "retries": 3,
                "startPeriod": 15,
            },
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {**log_options, "awslogs-stream-prefix": APP_CONTAINER},
            },
            "dependsOn": [{"containerName": XRAY_CONTAINER, "condition": "START"}],
        }
        xray = {
            "name": XRAY_CONTAINER,
            "image": args.xray_image,
            "essential": False,
            "user": XRAY_USER,
            "readonlyRootFilesystem": True,
            "privileged": False,
            "linuxParameters": {"capabilities": {"drop": ["ALL"]}},
            "cpu": 32,
            "memoryReservation": 64,
            "portMappings": [{"containerPort": 2000, "protocol": "udp"}],
            "command": ["--region", args.context.region, "--local-mode"],
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {**log_options, "awslogs-stream-prefix": XRAY_CONTAINER},
            },
        }
        return pulumi.Output.json_dumps([app, xray])

    def _create_task_definition(self) -> None:
        args = self._args
        self._task_roles()
        self.task_definition = aws.ecs.TaskDefinition(
            f"{self._name}-task",
            family=args.prefix,
            cpu=str(args.cpu),
            memory=str(args.memory),
            network_mode="awsvpc",
            requires_compatibilities=["FARGATE"],
            runtime_platform=aws.ecs.TaskDefinitionRuntimePlatformArgs(
                operating_system_family="LINUX", cpu_architecture=args.architecture
            ),
            execution_role_arn=self.execution_role.arn,
            task_role_arn=self.task_role.arn,
            container_definitions=self.container_definitions(),
            # Fargate task storage, the only writable path with a read-only root filesystem.
            volumes=[aws.ecs.TaskDefinitionVolumeArgs(name="tmp")],
            tags=dict(args.tags),
            opts=child_opts(self, depends_on=list(args.images_ready)),
        )

    # -- rollback alarms ---------------------------------------------------------------------------

    def _create_deployment_alarms(self) -> None:
        """Alarms that mean "this release is bad"; ECS rolls back when one fires during a deployment.

        Blue and green swap roles on every release, so each target group gets its own alarms.
        """
        args = self._args
        actions = [args.alarm_topic_arn] if args.alarm_topic_arn is not None else []
        self.deployment_alarms = []
        self.deployment_alarm_names = []
        for role, tg in self.target_groups.items():
            dims = {"LoadBalancer": self.load_balancer.arn_suffix, "TargetGroup": tg.arn_suffix}
            name_5xx = f"{args.prefix}-{role}-5xx-rate"
            self.deployment_alarms.append(
                aws.cloudwatch.MetricAlarm(
                    f"{self._name}-{role}-5xx-rate",
                    name=name_5xx,
                    alarm_description=f"Target 5xx above {args.error_rate_percent}% of requests on the {role} "
                    "target group; rolls back a deployment",
                    comparison_operator="GreaterThanThreshold",
                    threshold=args.error_rate_percent,
                    evaluation_periods=2,
                    datapoints_to_alarm=2,
                    treat_missing_data="notBreaching",
                    metric_queries=[
                        aws.cloudwatch.MetricAlarmMetricQueryArgs(
                            id="errors",
                            return_data=False,
                            metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
                                namespace="AWS/ApplicationELB",
                                metric_name="HTTPCode_Target_5XX_Count",
                                dimensions=dims,
                                period=60,
                                stat="Sum",
                            ),
                        ),
                        aws.cloudwatch.MetricAlarmMetricQueryArgs(
                            id="requests",
                            return_data=False,
                            metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
                                namespace="AWS/ApplicationELB",
                                metric_name="RequestCount",
                                dimensions=dims,
                                period=60,
                                stat="Sum",
                            ),
                        ),
                        aws.cloudwatch.MetricAlarmMetricQueryArgs(
                            id="rate",
                            label="5xx %",
                            return_data=True,
                            expression="IF(requests > 0, 100 * errors / requests, 0)",
                        ),
                    ],
                    alarm_actions=actions,
                    ok_actions=actions,
                    actions_enabled=True,
                    tags=dict(args.tags),
                    opts=child_opts(self),
                )
            )
            name_unhealthy = f"{args.prefix}-{role}-unhealthy-hosts"
            self.deployment_alarms.append(
                aws.cloudwatch.MetricAlarm(
                    f"{self._name}-{role}-unhealthy-hosts",
                    name=name_unhealthy,
                    alarm_description=f"Unhealthy targets in the {role} target group; rolls back a deployment",
                    namespace="AWS/ApplicationELB",
                    metric_name="UnHealthyHostCount",
                    dimensions=dims,
                    statistic="Maximum",
                    period=60,
                    evaluation_periods=2,
                    datapoints_to_alarm=2,
                    comparison_operator="GreaterThanOrEqualToThreshold",
                    threshold=1,
                    treat_missing_data="notBreaching",
                    alarm_actions=actions,
                    ok_actions=actions,
                    actions_enabled=True,
                    tags=dict(args.tags),
                    opts=child_opts(self),
                )
            )
            self.deployment_alarm_names += [name_5xx, name_unhealthy]

    # -- smoke test --------------------------------------------------------------------------------

    def _create_smoke_test(self) -> None:
        args = self._args
        ctx = args.context
        self.smoke_test_security_group = aws.ec2.SecurityGroup(
            f"{self._name}-smoke-test-sg",
            name=f"{args.prefix}-smoke-test",
            description="The smoke-test function: the test listener and AWS APIs, no ingress",
            vpc_id=args.vpc_id,
            tags=dict(args.tags),
            opts=child_opts(self),
        )
        aws.vpc.SecurityGroupEgressRule(
            f"{self._name}-smoke-test-to-alb",
            security_group_id=self.smoke_test_security_group.id,
            description="To the test listener on the private addresses of the load balancer",
            ip_protocol="tcp",
            from_port=args.test_port,
            to_port=args.test_port,
            cidr_ipv4=args.vpc_cidr,
            opts=child_opts(self),
        )
        aws.vpc.SecurityGroupEgressRule(
            f"{self._name}-smoke-test-https",
            security_group_id=self.smoke_test_security_group.id,
            description="HTTPS to the EC2 API to find the nodes of the load balancer",
            ip_protocol="tcp",
            from_port=443,
            to_port=443,
            cidr_ipv4="0.0.0.0/0",
            opts=child_opts(self),
        )
        function_log_group_name = f"/aws/lambda/{self.function_name}"
        function_log_group_arn = ctx.arn("logs", f"log-group:{function_log_group_name}")
        self.smoke_test_log_group = log_group(
            self,
            f"{self._name}-smoke-test-logs",
            log_group_name=function_log_group_name,
            retention_days=args.log_retention_days,
            kms_key_arn=args.logs_key_arn,
            protect=args.protect,
            tags=args.tags,
        )
        role = role_with_policy(
            self,
            f"{self._name}-smoke-test",
            role_name=f"{args.prefix}-smoke-test",
            description="The smoke-test function: VPC networking, its own logs",
            trust=assume_role_policy("lambda.amazonaws.com"),
            statements=[
                {
                    "Sid": "Logs",
                    "Effect": "Allow",
                    "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                    "Resource": pulumi.Output.concat(function_log_group_arn, ":log-stream:*"),
                },
                # The VPC-networking and describe actions have no resource-level permissions: "*" is required.
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
                # X-Ray's write APIs have no resource-level permissions: AWS requires "*".
                {
                    "Sid": "Tracing",
                    "Effect": "Allow",
                    "Action": ["xray:PutTelemetryRecords", "xray:PutTraceSegments"],
                    "Resource": "*",
                },
            ],
            tags=args.tags,
        )
        self.smoke_test_function = aws.lambda_.Function(
            f"{self._name}-smoke-test",
            name=self.function_name,
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
                    "LB_NAME": self.lb_name,
                    "TEST_PORT": str(args.test_port),
                    "HEALTH_PATH": args.health_check_path,
                    "SCHEME": "https" if args.https else "http",
                }
            ),
            vpc_config=aws.lambda_.FunctionVpcConfigArgs(
                subnet_ids=args.private_subnet_ids, security_group_ids=[self.smoke_test_security_group.id]
            ),
            tracing_config=aws.lambda_.FunctionTracingConfigArgs(mode="Active"),
            logging_config=aws.lambda_.FunctionLoggingConfigArgs(log_format="JSON", log_group=function_log_group_name),
            tags=dict(args.tags),
            opts=child_opts(self, depends_on=[self.smoke_test_log_group]),
        )
        function_arn = ctx.arn("lambda", f"function:{self.function_name}")
        self.hook_role = role_with_policy(
            self,
            f"{self._name}-hook",
            role_name=f"{args.prefix}-deploy-hooks",
            description="Lets ECS invoke the deployment lifecycle hooks",
            trust=assume_role_policy("ecs.amazonaws.com"),
            statements=[
                {
                    "Sid": "InvokeSmokeTest",
                    "Effect": "Allow",
                    "Action": "lambda:InvokeFunction",
                    "Resource": function_arn,
                }
            ],
            tags=args.tags,
        )

    # -- service -----------------------------------------------------------------------------------

    def _create_infrastructure_role(self) -> PolicyRole:
        """The role ECS assumes to move traffic between the target groups (blue/green)."""
        args = self._args
        ctx = args.context
        elb = lambda resource: ctx.arn("elasticloadbalancing", resource)  # noqa: E731
        # The actions of AWS's AmazonECSInfrastructureRolePolicyForLoadBalancers, scoped to this service.
        role = role_with_policy(
            self,
            f"{self._name}-ecs-lb",
            role_name=f"{args.prefix}-ecs-lb",
            description="Lets ECS shift traffic between the blue and green target groups",
            # The trust policy AWS documents for the ECS infrastructure role, without conditions.
            trust=assume_role_policy("ecs.amazonaws.com"),
            statements=[
                # The ELB describe APIs have no resource-level permissions: AWS requires "*".
                {
                    "Sid": "Describe",
                    "Effect": "Allow",
                    "Action": [
                        "elasticloadbalancing:DescribeListeners",
                        "elasticloadbalancing:DescribeRules",
                        "elasticloadbalancing:DescribeTargetGroups",
                        "elasticloadbalancing:DescribeTargetHealth",
                    ],
                    "Resource": "*",  # the ELB describe APIs have no resource-level permissions: AWS requires "*"
                },
                {
                    "Sid": "Targets",
                    "Effect": "Allow",
                    "Action": ["elasticloadbalancing:DeregisterTargets", "elasticloadbalancing:RegisterTargets"],
                    "Resource": [elb(f"targetgroup/{args.prefix}-{r}/*") for r in ("blue", "green")],
                },
                {
                    "Sid": "Listeners",
                    "Effect": "Allow",
                    "Action": "elasticloadbalancing:ModifyListener",
                    "Resource": elb(f"listener/app/{self.lb_name}/*"),
                },
                {
                    "Sid": "Rules",
                    "Effect": "Allow",
                    "Action": "elasticloadbalancing:ModifyRule",
                    "Resource": elb(f"listener-rule/app/{self.lb_name}/*"),
                },
            ],
            tags=args.tags,
        )
        return role

    def _deployment_configuration(self) -> aws.ecs.ServiceDeploymentConfigurationArgs:
        args = self._args
        extra = {}
        if args.strategy == "CANARY":
            extra["canary_configuration"] = aws.ecs.ServiceDeploymentConfigurationCanaryConfigurationArgs(
                canary_percent=args.canary_percent, canary_bake_time_in_minutes=str(args.canary_bake_minutes)
            )
        if args.strategy == "LINEAR":
            extra["linear_configuration"] = aws.ecs.ServiceDeploymentConfigurationLinearConfigurationArgs(
                step_percent=args.linear_step_percent, step_bake_time_in_minutes=str(args.linear_step_bake_minutes)
            )
        return aws.ecs.ServiceDeploymentConfigurationArgs(
            strategy=args.strategy,
            bake_time_in_minutes=str(args.bake_time_minutes),
            lifecycle_hooks=[
                aws.ecs.ServiceDeploymentConfigurationLifecycleHookArgs(
                    lifecycle_stages=["POST_TEST_TRAFFIC_SHIFT"],
                    hook_target_arn=self.smoke_test_function.arn,
                    role_arn=self.hook_role.arn,
                    target_type="AWS_LAMBDA",
                )
            ],
            **extra,
        )

    # What ECS owns once the service exists. Autoscaling sets the running count. And ECS-managed
    # blue/green decides which target group serves production: after a release the green group is
    # primary, and sending the creation-time `loadBalancers` again (as an update would when it sees a
    # difference) would point ECS back at the idle group. Upstream reports the provider's updates do
    # not alternate target groups (hashicorp/terraform-provider-aws#45678), so Pulumi sets the load
    # balancer block once and never again; changing the container port or the target groups needs
    # a replacement of the service (README, releases).
    ECS_OWNED = ["desiredCount", "loadBalancers"]

    def _create_service(self) -> None:
        args = self._args
        timeout = release_timeout_minutes(deploy_wait_seconds(args))
        self.infrastructure_role = self._create_infrastructure_role()
        self.service = aws.ecs.Service(
            f"{self._name}-service",
            name=self.service_name,
            cluster=self.cluster.arn,
            task_definition=self.task_definition.arn,
            desired_count=args.desired_count,
            capacity_provider_strategies=self.capacity_provider_strategy,
            platform_version="LATEST",
            deployment_controller=aws.ecs.ServiceDeploymentControllerArgs(type="ECS"),
            deployment_configuration=self._deployment_configuration(),
            deployment_circuit_breaker=aws.ecs.ServiceDeploymentCircuitBreakerArgs(enable=True, rollback=True),
            alarms=aws.ecs.ServiceAlarmsArgs(alarm_names=self.deployment_alarm_names, enable=True, rollback=True),
            deployment_minimum_healthy_percent=100,
            deployment_maximum_percent=200,
            health_check_grace_period_seconds=30,
            load_balancers=[
                aws.ecs.ServiceLoadBalancerArgs(
                    target_group_arn=self.target_groups["blue"].arn,
                    container_name=APP_CONTAINER,
                    container_port=args.container_port,
                    advanced_configuration=aws.ecs.ServiceLoadBalancerAdvancedConfigurationArgs(
                        alternate_target_group_arn=self.target_groups["green"].arn,
                        production_listener_rule=self.production_rule.arn,
                        test_listener_rule=self.test_rule.arn,
                        role_arn=self.infrastructure_role.arn,
                    ),
                )
            ],
            network_configuration=aws.ecs.ServiceNetworkConfigurationArgs(
                subnets=args.private_subnet_ids,
                security_groups=[self.task_security_group.id],
                assign_public_ip=False,
            ),
            propagate_tags="SERVICE",
            enable_ecs_managed_tags=True,
            # `pulumi up` returns only when the release is live or rolled back, which may take longer
            # than the provider's 20-minute default: the timeouts below follow the configured waits.
            wait_for_steady_state=True,
            tags=dict(args.tags),
            opts=child_opts(
                self,
                ignore_changes=self.ECS_OWNED,
                custom_timeouts=pulumi.CustomTimeouts(create=f"{timeout}m", update=f"{timeout}m"),
                # Tasks start only once every secret has a version to inject.
                depends_on=[
                    self.production_rule,
                    self.test_rule,
                    *self.deployment_alarms,
                    self.capacity_providers,
                    *self.secret_placeholders,
                ],
            ),
        )

    def _create_autoscaling(self) -> None:
        args = self._args
        self.scaling_target = aws.appautoscaling.Target(
            f"{self._name}-scaling",
            service_namespace="ecs",
            scalable_dimension="ecs:service:DesiredCount",
            resource_id=f"service/{self.cluster_name}/{self.service_name}",
            min_capacity=args.min_count,
            max_capacity=args.max_count,
            tags=dict(args.tags),
            opts=child_opts(self, depends_on=[self.service]),
        )
        self.scaling_policies = [
            aws.appautoscaling.Policy(
                f"{self._name}-scale-cpu",
                name=f"{args.prefix}-cpu",
                policy_type="TargetTrackingScaling",
                service_namespace="ecs",
                scalable_dimension="ecs:service:DesiredCount",
                resource_id=self.scaling_target.resource_id,
                target_tracking_scaling_policy_configuration=aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationArgs(
                    target_value=CPU_TARGET_PERCENT,
                    predefined_metric_specification=aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecificationArgs(
                        predefined_metric_type="ECSServiceAverageCPUUtilization"
                    ),
                    scale_in_cooldown=300,
                    scale_out_cooldown=60,
                ),
                opts=child_opts(self),
            )
        ]
        # One request-count policy per target group: whichever serves production traffic decides to
        # scale out, and the idle one never blocks it (target tracking scales in only when all agree).
        for role, tg in self.target_groups.items():
            self.scaling_policies.append(
                aws.appautoscaling.Policy(
                    f"{self._name}-scale-requests-{role}",
                    name=f"{args.prefix}-requests-{role}",
                    policy_type="TargetTrackingScaling",
                    service_namespace="ecs",
                    scalable_dimension="ecs:service:DesiredCount",
                    resource_id=self.scaling_target.resource_id,
                    target_tracking_scaling_policy_configuration=aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationArgs(
                        target_value=REQUESTS_PER_TARGET,
                        predefined_metric_specification=aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecificationArgs(
                            predefined_metric_type="ALBRequestCountPerTarget",
                            resource_label=pulumi.Output.concat(self.load_balancer.arn_suffix, "/", tg.arn_suffix),
                        ),
                        scale_in_cooldown=300,
                        scale_out_cooldown=60,
                    ),
                    opts=child_opts(self),
                )
            )
