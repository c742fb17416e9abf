"""The Fargate service behind an ALB, released with ECS-native blue/green deployments.

A composition of four parts, each a component of its own: the security groups, the load balancer
(listeners, target groups, the rules ECS shifts traffic with), the task definition (containers,
roles, logs, secrets), the release checks (rollback alarms and the smoke-test hook), and the
blue/green service itself (cluster, service, scaling). Until session 3 their resources were children
of FargateService; they keep their URNs through aliases (common.Part).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pulumi

from .bluegreen import BlueGreenService, BlueGreenServiceArgs
from .common import AwsContext, child_opts
from .deploytime import deploy_job_minutes, deploy_wait_seconds
from .loadbalancer import LoadBalancer, LoadBalancerArgs
from .releasechecks import ReleaseChecks, ReleaseChecksArgs
from .securitygroups import ServiceSecurityGroups, ServiceSecurityGroupsArgs
from .taskdefinition import APP_CONTAINER, TaskDefinition, TaskDefinitionArgs

if TYPE_CHECKING:
    from config import DeploymentSettings, ObservabilitySettings, ServiceSettings


@dataclass(frozen=True)
class FargateServiceArgs:
    """Inputs of a FargateService. ``service``, ``deployment`` and ``observability`` are the validated
    sections of the configuration; other resources' outputs are Inputs.

    ``certificate_arn``: HTTPS with TLS 1.3 on 443 and a redirect on 80; empty serves plain HTTP on 80
    (not allowed in prod by the configuration). ``protect``: ALB deletion protection, and the log
    groups, log bucket and secrets are protected and retained. ``waf``: an AWS WAF web ACL with AWS's
    managed rule groups on the load balancer; default False. ``alarm_topic_arn``: where the rollback
    alarms notify; default none. The task definition waits for ``images_ready``.
    """

    context: AwsContext
    prefix: str
    service: ServiceSettings
    deployment: DeploymentSettings
    observability: ObservabilitySettings
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
    # The account of ``repository_name`` when another's (a release promoted across accounts); "": this one.
    repository_account: str = ""
    certificate_arn: str = ""
    protect: bool = False
    waf: bool = False
    alarm_topic_arn: pulumi.Input[str] | None = None
    images_ready: Sequence[pulumi.Resource] = ()
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # `<prefix>-green` must fit a target group name (32 characters).
        if len(self.prefix) > 24:
            raise ValueError(f"FargateServiceArgs.prefix must be at most 24 characters; got {self.prefix!r}")

    @property
    def https(self) -> bool:
        return bool(self.certificate_arn)

    @property
    def test_port(self) -> int:
        return 8443 if self.https else 8080


class FargateService(pulumi.ComponentResource):
    """Security groups, load balancer, task definition, release checks and the blue/green service."""

    def __init__(self, name: str, args: FargateServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cicd:service:FargateService", name, None, opts)
        svc, dep, obs = args.service, args.deployment, args.observability
        groups = ServiceSecurityGroups(
            name,
            ServiceSecurityGroupsArgs(
                prefix=args.prefix,
                vpc_id=args.vpc_id,
                vpc_cidr=args.vpc_cidr,
                public_ports=[443, 80] if args.https else [80],
                test_port=args.test_port,
                container_port=svc.container_port,
                tags=args.tags,
            ),
            opts=child_opts(self),
        )
        lb = LoadBalancer(
            name,
            LoadBalancerArgs(
                context=args.context,
                prefix=args.prefix,
                vpc_id=args.vpc_id,
                subnet_ids=args.public_subnet_ids,
                security_group_id=groups.load_balancer.id,
                container_port=svc.container_port,
                health_check_path=svc.health_check_path,
                health_check_interval_seconds=dep.health_check_interval_seconds,
                healthy_threshold=dep.healthy_threshold,
                deregistration_delay_seconds=dep.deregistration_delay_seconds,
                test_port=args.test_port,
                logs_key_arn=args.logs_key_arn,
                log_retention_days=obs.log_retention_days,
                certificate_arn=args.certificate_arn,
                protect=args.protect,
                waf=args.waf,
                tags=args.tags,
            ),
            opts=child_opts(self),
        )
        task = TaskDefinition(
            name,
            TaskDefinitionArgs(
                context=args.context,
                prefix=args.prefix,
                service=svc,
                image_ref=args.image_ref,
                repository_name=args.repository_name,
                repository_account=args.repository_account,
                xray_image=args.xray_image,
                image_cache_prefix=args.image_cache_prefix,
                data_key_arn=args.data_key_arn,
                data_key_alias=args.data_key_alias,
                logs_key_arn=args.logs_key_arn,
                log_retention_days=obs.log_retention_days,
                xray_sampling_rate=obs.xray_sampling_rate,
                images_ready=args.images_ready,
                protect=args.protect,
                tags=args.tags,
            ),
            opts=child_opts(self),
        )
        suffixes = {role: tg.arn_suffix for role, tg in lb.target_groups.items()}
        checks = ReleaseChecks(
            name,
            ReleaseChecksArgs(
                context=args.context,
                prefix=args.prefix,
                vpc_id=args.vpc_id,
                vpc_cidr=args.vpc_cidr,
                subnet_ids=args.private_subnet_ids,
                load_balancer_name=lb.name,
                load_balancer_arn_suffix=lb.load_balancer.arn_suffix,
                target_group_arn_suffixes=suffixes,
                test_port=args.test_port,
                https=args.https,
                health_check_path=svc.health_check_path,
                error_rate_percent=obs.error_rate_percent,
                logs_key_arn=args.logs_key_arn,
                log_retention_days=obs.log_retention_days,
                alarm_topic_arn=args.alarm_topic_arn,
                protect=args.protect,
                tags=args.tags,
            ),
            opts=child_opts(self),
        )
        blue_green = BlueGreenService(
            name,
            BlueGreenServiceArgs(
                context=args.context,
                prefix=args.prefix,
                service=svc,
                deployment=dep,
                task_definition_arn=task.task_definition.arn,
                container_name=APP_CONTAINER,
                subnet_ids=args.private_subnet_ids,
                security_group_id=groups.tasks.id,
                load_balancer_name=lb.name,
                load_balancer_arn_suffix=lb.load_balancer.arn_suffix,
                target_group_arns={role: tg.arn for role, tg in lb.target_groups.items()},
                target_group_arn_suffixes=suffixes,
                production_rule_arn=lb.production_rule.arn,
                test_rule_arn=lb.test_rule.arn,
                hook_function_arn=checks.smoke_test_function.arn,
                hook_role_arn=checks.hook_role.arn,
                alarm_names=checks.alarm_names,
                ready=[lb.production_rule, lb.test_rule, *checks.alarms, *task.secret_placeholders],
                tags=args.tags,
            ),
            opts=child_opts(self),
        )
        self.load_balancer = lb.load_balancer
        self.target_groups = lb.target_groups
        self.access_log_bucket = lb.access_log_bucket
        self.url = lb.url
        self.cluster_name = blue_green.cluster_name
        self.service_name = blue_green.service_name
        self.deployment_alarm_names = checks.alarm_names
        self.deploy_wait = deploy_wait_seconds(dep)
        self.deploy_job_minutes = deploy_job_minutes(self.deploy_wait)
        self.register_outputs(
            {
                "url": self.url,
                "cluster_name": self.cluster_name,
                "service_name": self.service_name,
                "load_balancer_arn": self.load_balancer.arn,
                "alarm_names": self.deployment_alarm_names,
            }
        )
