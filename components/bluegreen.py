"""The ECS service, released blue/green by ECS itself, and how it scales.

Why ECS-native and not CodeDeploy: with CodeDeploy, CodeDeploy owns the task definition and every
`pulumi up` fights it (pulumi-aws issues 1096 and 3821). With the ECS deployment controller and a
BLUE_GREEN, CANARY or LINEAR strategy, a release is just `pulumi up` with a new task definition, so
git and Pulumi stay the single source of truth, and ECS moves traffic and rolls back on alarms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pulumi
import pulumi_aws as aws

from .common import AwsContext, Part, PolicyRole, assume_role_policy, child_opts, role_with_policy
from .deploytime import deploy_wait_seconds, release_timeout_minutes

if TYPE_CHECKING:
    from config import DeploymentSettings, ServiceSettings

CPU_TARGET_PERCENT = 60
REQUESTS_PER_TARGET = 500
SCALING = aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationArgs
METRIC = aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecificationArgs


@dataclass(frozen=True)
class BlueGreenServiceArgs:
    """``service`` and ``deployment``: the validated `cicd:service` and `cicd:deployment` sections.
    ECS serves ``container_name``:``container_port`` of ``task_definition_arn`` through
    ``target_group_arns`` (blue first), moves traffic with the two listener rules, calls
    ``hook_function_arn`` after test traffic shifts, and rolls back when one of ``alarm_names`` fires.
    The service is created once everything in ``ready`` exists (rules, alarms, secret versions)."""

    context: AwsContext
    prefix: str
    service: ServiceSettings
    deployment: DeploymentSettings
    task_definition_arn: pulumi.Input[str]
    container_name: str
    subnet_ids: pulumi.Input[Sequence[str]]
    security_group_id: pulumi.Input[str]
    load_balancer_name: str
    load_balancer_arn_suffix: pulumi.Input[str]
    target_group_arns: Mapping[str, pulumi.Input[str]]
    target_group_arn_suffixes: Mapping[str, pulumi.Input[str]]
    production_rule_arn: pulumi.Input[str]
    test_rule_arn: pulumi.Input[str]
    hook_function_arn: pulumi.Input[str]
    hook_role_arn: pulumi.Input[str]
    alarm_names: Sequence[str]
    ready: Sequence[pulumi.Resource] = ()
    tags: Mapping[str, str] = field(default_factory=dict)


class BlueGreenService(Part):
    """`cluster`, `service` and its `scaling_target`; `cluster_name` and `service_name` are known names."""

    # What ECS owns once the service exists. Autoscaling sets the running count. And ECS-managed
    # blue/green decides which target group serves production: after a release the green group is
    # primary, and sending the creation-time `loadBalancers` again (as an update would when it sees a
    # difference) would point ECS back at the idle group. Upstream reports the provider's updates do
    # not alternate target groups (hashicorp/terraform-provider-aws#45678), so Pulumi sets the load
    # balancer block once and never again; changing the container port or the target groups needs
    # a replacement of the service (README, releases).
    ECS_OWNED = ["desiredCount", "loadBalancers"]

    def __init__(self, name: str, args: BlueGreenServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cicd:bluegreen:BlueGreenService", name, opts)
        self.cluster_name = self.service_name = args.prefix
        self.cluster = aws.ecs.Cluster(
            f"{name}-cluster",
            name=self.cluster_name,
            settings=[aws.ecs.ClusterSettingArgs(name="containerInsights", value="enabled")],
            tags=dict(args.tags),
            opts=child_opts(self),
        )
        provider = aws.ecs.ClusterCapacityProvidersDefaultCapacityProviderStrategyArgs
        strategy = [provider(capacity_provider="FARGATE", base=1, weight=1)]
        if args.service.spot:
            # One task always on demand; the rest mostly on Spot, which costs about 70% less.
            strategy.append(provider(capacity_provider="FARGATE_SPOT", weight=3))
        capacity_providers = aws.ecs.ClusterCapacityProviders(
            f"{name}-capacity-providers",
            cluster_name=self.cluster.name,
            capacity_providers=["FARGATE", "FARGATE_SPOT"],
            default_capacity_provider_strategies=strategy,
            opts=child_opts(self),
        )
        infrastructure_role = self._infrastructure_role(name, args)
        timeout = release_timeout_minutes(deploy_wait_seconds(args.deployment))
        self.service = aws.ecs.Service(
            f"{name}-service",
            name=self.service_name,
            cluster=self.cluster.arn,
            task_definition=args.task_definition_arn,
            desired_count=args.service.desired_count,
            capacity_provider_strategies=[
                aws.ecs.ServiceCapacityProviderStrategyArgs(
                    capacity_provider=s.capacity_provider, base=s.base, weight=s.weight
                )
                for s in strategy
            ],
            platform_version="LATEST",
            deployment_controller=aws.ecs.ServiceDeploymentControllerArgs(type="ECS"),
            deployment_configuration=_deployment_configuration(args),
            deployment_circuit_breaker=aws.ecs.ServiceDeploymentCircuitBreakerArgs(enable=True, rollback=True),
            alarms=aws.ecs.ServiceAlarmsArgs(alarm_names=list(args.alarm_names), enable=True, rollback=True),
            deployment_minimum_healthy_percent=100,
            deployment_maximum_percent=200,
            health_check_grace_period_seconds=30,
            load_balancers=[
                aws.ecs.ServiceLoadBalancerArgs(
                    target_group_arn=args.target_group_arns["blue"],
                    container_name=args.container_name,
                    container_port=args.service.container_port,
                    advanced_configuration=aws.ecs.ServiceLoadBalancerAdvancedConfigurationArgs(
                        alternate_target_group_arn=args.target_group_arns["green"],
                        production_listener_rule=args.production_rule_arn,
                        test_listener_rule=args.test_rule_arn,
                        role_arn=infrastructure_role.arn,
                    ),
                )
            ],
            network_configuration=aws.ecs.ServiceNetworkConfigurationArgs(
                subnets=args.subnet_ids, security_groups=[args.security_group_id], assign_public_ip=False
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
                depends_on=[*args.ready, capacity_providers],
            ),
        )
        self.scaling_target = self._autoscaling(name, args)
        self.register_outputs({"cluster_name": self.cluster_name, "service_name": self.service_name})

    def _infrastructure_role(self, name: str, args: BlueGreenServiceArgs) -> PolicyRole:
        """The role ECS assumes to move traffic between the target groups (blue/green)."""
        elb = lambda resource: args.context.arn("elasticloadbalancing", resource)  # noqa: E731
        # The actions of AWS's AmazonECSInfrastructureRolePolicyForLoadBalancers, scoped to this service.
        return role_with_policy(
            self,
            f"{name}-ecs-lb",
            role_name=f"{args.prefix}-ecs-lb",
            description="Lets ECS shift traffic between the blue and green target groups",
            # The trust policy AWS documents for the ECS infrastructure role, without conditions.
            trust=assume_role_policy("ecs.amazonaws.com"),
            statements=[
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
                    "Resource": [elb(f"targetgroup/{args.prefix}-{r}/*") for r in args.target_group_arns],
                },
                {
                    "Sid": "Listeners",
                    "Effect": "Allow",
                    "Action": "elasticloadbalancing:ModifyListener",
                    "Resource": elb(f"listener/app/{args.load_balancer_name}/*"),
                },
                {
                    "Sid": "Rules",
                    "Effect": "Allow",
                    "Action": "elasticloadbalancing:ModifyRule",
                    "Resource": elb(f"listener-rule/app/{args.load_balancer_name}/*"),
                },
            ],
            tags=args.tags,
        )

    def _autoscaling(self, name: str, args: BlueGreenServiceArgs) -> aws.appautoscaling.Target:
        """CPU target tracking, and one request-count policy per target group: whichever serves
        production traffic decides to scale out, and the idle one never blocks it (target tracking
        scales in only when all policies agree)."""
        target = aws.appautoscaling.Target(
            f"{name}-scaling",
            service_namespace="ecs",
            scalable_dimension="ecs:service:DesiredCount",
            resource_id=f"service/{self.cluster_name}/{self.service_name}",
            min_capacity=args.service.min_count,
            max_capacity=args.service.max_count,
            tags=dict(args.tags),
            opts=child_opts(self, depends_on=[self.service]),
        )
        metrics = {
            "cpu": (
                f"{name}-scale-cpu",
                CPU_TARGET_PERCENT,
                METRIC(predefined_metric_type="ECSServiceAverageCPUUtilization"),
            )
        }
        for role, suffix in args.target_group_arn_suffixes.items():
            label = pulumi.Output.concat(args.load_balancer_arn_suffix, "/", suffix)
            metrics[f"requests-{role}"] = (
                f"{name}-scale-requests-{role}",
                REQUESTS_PER_TARGET,
                METRIC(predefined_metric_type="ALBRequestCountPerTarget", resource_label=label),
            )
        for policy_name, (resource_name, value, metric) in metrics.items():
            aws.appautoscaling.Policy(
                resource_name,
                name=f"{args.prefix}-{policy_name}",
                policy_type="TargetTrackingScaling",
                service_namespace="ecs",
                scalable_dimension="ecs:service:DesiredCount",
                resource_id=target.resource_id,
                target_tracking_scaling_policy_configuration=SCALING(
                    target_value=value,
                    predefined_metric_specification=metric,
                    scale_in_cooldown=300,
                    scale_out_cooldown=60,
                ),
                opts=child_opts(self),
            )
        return target


def _deployment_configuration(args: BlueGreenServiceArgs) -> aws.ecs.ServiceDeploymentConfigurationArgs:
    deployment = args.deployment
    extra = {}
    if deployment.strategy == "CANARY":
        extra["canary_configuration"] = aws.ecs.ServiceDeploymentConfigurationCanaryConfigurationArgs(
            canary_percent=deployment.canary_percent,
            canary_bake_time_in_minutes=str(deployment.canary_bake_minutes),
        )
    if deployment.strategy == "LINEAR":
        extra["linear_configuration"] = aws.ecs.ServiceDeploymentConfigurationLinearConfigurationArgs(
            step_percent=deployment.linear_step_percent,
            step_bake_time_in_minutes=str(deployment.linear_step_bake_minutes),
        )
    return aws.ecs.ServiceDeploymentConfigurationArgs(
        strategy=deployment.strategy,
        bake_time_in_minutes=str(deployment.bake_time_minutes),
        lifecycle_hooks=[
            aws.ecs.ServiceDeploymentConfigurationLifecycleHookArgs(
                lifecycle_stages=["POST_TEST_TRAFFIC_SHIFT"],
                hook_target_arn=args.hook_function_arn,
                role_arn=args.hook_role_arn,
                target_type="AWS_LAMBDA",
            )
        ],
        **extra,
    )
