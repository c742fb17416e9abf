"""What tells the team, within minutes, that a release is bad, that a pipeline failed, and how
delivery is trending: service alarms, the delivery record behind the DORA numbers, the dashboard,
X-Ray, and pipeline notifications.

A composition: the alarms and the delivery metrics are components of their own (until session 3
their resources were children of Monitoring; they keep their URNs through aliases).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pulumi
import pulumi_aws as aws

from .alarms import ServiceAlarms, ServiceAlarmsArgs
from .common import AwsContext, child_opts
from .dashboard import DashboardArgs, dashboard_body
from .delivery import DeliveryMetrics, DeliveryMetricsArgs

if TYPE_CHECKING:
    from config import ObservabilitySettings

PIPELINE_EVENTS = (
    "codepipeline-pipeline-pipeline-execution-failed",
    "codepipeline-pipeline-pipeline-execution-succeeded",
    "codepipeline-pipeline-manual-approval-needed",
)


@dataclass(frozen=True)
class MonitoringArgs:
    """Inputs of Monitoring.

    ``observability``: the validated `cicd:observability` section: the alarm thresholds
    (``error_rate_percent``, ``p99_latency_ms``), the fixed rate of the service's sampling rule
    (``xray_sampling_rate``) and the log retention. ``rollback_alarm_names``: the service's deployment
    alarms, whose episodes are recorded for time to restore.
    """

    context: AwsContext
    prefix: str
    topic_arn: pulumi.Input[str]
    logs_key_arn: pulumi.Input[str]
    observability: ObservabilitySettings
    load_balancer_arn_suffix: pulumi.Input[str]
    target_group_arn_suffixes: Mapping[str, pulumi.Input[str]]
    cluster_name: str
    service_name: str
    pipeline_name: str
    pipeline_arn: pulumi.Input[str]
    rollback_alarm_names: Sequence[str]
    protect: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)


class Monitoring(pulumi.ComponentResource):
    """Alarms to the topic, the delivery record, the dashboard, X-Ray rule and group, notifications."""

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cicd:monitoring:Monitoring", name, None, opts)
        namespace = f"cicd/{args.prefix}"
        alarms = ServiceAlarms(
            name,
            ServiceAlarmsArgs(
                prefix=args.prefix,
                topic_arn=args.topic_arn,
                load_balancer_arn_suffix=args.load_balancer_arn_suffix,
                cluster_name=args.cluster_name,
                service_name=args.service_name,
                error_rate_percent=args.observability.error_rate_percent,
                p99_latency_ms=args.observability.p99_latency_ms,
                tags=args.tags,
            ),
            opts=child_opts(self),
        )
        delivery = DeliveryMetrics(
            name,
            DeliveryMetricsArgs(
                context=args.context,
                prefix=args.prefix,
                namespace=namespace,
                pipeline_name=args.pipeline_name,
                rollback_alarm_names=args.rollback_alarm_names,
                logs_key_arn=args.logs_key_arn,
                log_retention_days=args.observability.log_retention_days,
                protect=args.protect,
                tags=args.tags,
            ),
            opts=child_opts(self),
        )
        aws.xray.SamplingRule(
            f"{name}-sampling",
            rule_name=args.prefix,
            priority=1000,
            fixed_rate=args.observability.xray_sampling_rate,
            # One traced request a second before the fixed rate applies: low traffic stays visible.
            reservoir_size=1,
            service_name=args.prefix,
            service_type="*",
            host="*",
            http_method="*",
            url_path="*",
            resource_arn="*",
            version=1,
            tags=dict(args.tags),
            opts=child_opts(self),
        )
        aws.xray.Group(
            f"{name}-traces",
            group_name=args.prefix,
            filter_expression=f'service("{args.prefix}")',
            insights_configuration=aws.xray.GroupInsightsConfigurationArgs(
                insights_enabled=True, notifications_enabled=False
            ),
            tags=dict(args.tags),
            opts=child_opts(self),
        )
        aws.codestarnotifications.NotificationRule(
            f"{name}-pipeline-notifications",
            name=f"{args.prefix}-pipeline",
            # The pipeline's own ARN (not one built from its name): the rule is created after it.
            resource=args.pipeline_arn,
            detail_type="FULL",
            event_type_ids=list(PIPELINE_EVENTS),
            targets=[aws.codestarnotifications.NotificationRuleTargetArgs(address=args.topic_arn, type="SNS")],
            tags=dict(args.tags),
            opts=child_opts(self),
        )
        self.alarms = alarms.alarms
        self.dashboard_name = args.prefix
        self.dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=self.dashboard_name,
            dashboard_body=dashboard_body(
                DashboardArgs(
                    prefix=args.prefix,
                    region=args.context.region,
                    load_balancer_arn_suffix=args.load_balancer_arn_suffix,
                    target_group_arn_suffixes=args.target_group_arn_suffixes,
                    cluster_name=args.cluster_name,
                    service_name=args.service_name,
                    namespace=namespace,
                    events_log_group_name=delivery.log_group_name,
                    p99_latency_ms=args.observability.p99_latency_ms,
                )
            ),
            opts=child_opts(self),
        )
        self.register_outputs({"dashboard_name": self.dashboard_name, "alarm_names": sorted(self.alarms)})
