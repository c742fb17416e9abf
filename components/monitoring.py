"""What tells the team, within minutes, that a release is bad, that a pipeline failed, and how
delivery is trending: service alarms, the dashboard with DORA numbers, X-Ray, pipeline notifications.

The DORA numbers need no custom code: EventBridge copies CodePipeline execution-state changes and the
rollback alarms' state changes into a log group, and metric filters count them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from .common import AwsContext, child_opts, log_group, policy_document

ALB = "AWS/ApplicationELB"
ECS = "AWS/ECS"
INSIGHTS = "ECS/ContainerInsights"
CPU_HIGH_PERCENT = 80
MEMORY_HIGH_PERCENT = 80
PIPELINE_EVENTS = (
    "codepipeline-pipeline-pipeline-execution-failed",
    "codepipeline-pipeline-pipeline-execution-succeeded",
    "codepipeline-pipeline-manual-approval-needed",
)

# Metric filter patterns over the delivery-events log group (EventBridge events as JSON).
SUCCEEDED_PATTERN = '{ ($.source = "aws.codepipeline") && ($.detail.state = "SUCCEEDED") }'
FAILED_PATTERN = '{ ($.source = "aws.codepipeline") && ($.detail.state = "FAILED") }'
STARTED_PATTERN = '{ ($.source = "aws.codepipeline") && ($.detail.state = "STARTED") }'
# Logs Insights over the same events: an alarm's return to OK carries when it entered ALARM. The
# times of day are subtracted modulo a day, so an episode must be shorter than 24 hours.
TIME_TO_RESTORE_QUERY = (
    "filter source = 'aws.cloudwatch' and detail.state.value = 'OK' and detail.previousState.value = 'ALARM' "
    r"| parse detail.previousState.timestamp /T(?<h1>\d\d):(?<m1>\d\d):(?<s1>\d\d)/ "
    r"| parse detail.state.timestamp /T(?<h2>\d\d):(?<m2>\d\d):(?<s2>\d\d)/ "
    "| fields (((h2 * 3600 + m2 * 60 + s2) - (h1 * 3600 + m1 * 60 + s1) + 86400) % 86400) / 60 as minutes "
    "| stats avg(minutes) as mean_minutes, max(minutes) as longest_minutes, count(*) as restores by bin(1d)"
)
RESTORED_PATTERN = (
    '{ ($.source = "aws.cloudwatch") && ($.detail.state.value = "OK") && ($.detail.previousState.value = "ALARM") }'
)


@dataclass(frozen=True)
class MonitoringArgs:
    """Inputs of Monitoring.

    ``error_rate_percent`` and ``p99_latency_ms``: alarm thresholds. ``xray_sampling_rate``: the
    fixed rate of the service's sampling rule (0..1). ``rollback_alarm_names``: the service's
    deployment alarms, whose episodes are recorded for time to restore.
    """

    context: AwsContext
    prefix: str
    topic_arn: pulumi.Input[str]
    logs_key_arn: pulumi.Input[str]
    log_retention_days: int
    load_balancer_arn_suffix: pulumi.Input[str]
    target_group_arn_suffixes: Mapping[str, pulumi.Input[str]]
    cluster_name: str
    service_name: str
    pipeline_name: str
    pipeline_arn: pulumi.Input[str]
    rollback_alarm_names: Sequence[str]
    error_rate_percent: float = 1.0
    p99_latency_ms: int = 500
    xray_sampling_rate: float = 0.05
    protect: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 <= self.xray_sampling_rate <= 1:
            raise ValueError("MonitoringArgs.xray_sampling_rate must be 0..1")
        if not 0 < self.error_rate_percent <= 100:
            raise ValueError("MonitoringArgs.error_rate_percent must be above 0 and at most 100")


class Monitoring(pulumi.ComponentResource):
    """Alarms to the topic, the dashboard, DORA metric filters, X-Ray rule and group, notifications."""

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cicd:monitoring:Monitoring", name, None, opts)
        self._name = name
        self._args = args
        self.namespace = f"cicd/{args.prefix}"
        self.events_log_group_name = f"/aws/events/{args.prefix}-delivery"
        self.alarms: dict[str, aws.cloudwatch.MetricAlarm] = {}
        self._create_alarms()
        self._create_delivery_events()
        self._create_xray()
        self._create_pipeline_notifications()
        self.dashboard_name = args.prefix
        self.dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=self.dashboard_name,
            dashboard_body=self.dashboard_body(),
            opts=child_opts(self),
        )
        self.register_outputs({"dashboard_name": self.dashboard_name, "alarm_names": sorted(a for a in self.alarms)})

    # -- alarms ------------------------------------------------------------------------------------

    def _alarm(self, key: str, description: str, **kwargs: Any) -> None:
        args = self._args
        alarm_name = f"{args.prefix}-{key}"
        self.alarms[alarm_name] = aws.cloudwatch.MetricAlarm(
            f"{self._name}-{key}",
            name=alarm_name,
            alarm_description=description,
            treat_missing_data=kwargs.pop("treat_missing_data", "notBreaching"),
            alarm_actions=[args.topic_arn],
            ok_actions=[args.topic_arn],
            actions_enabled=True,
            tags=dict(args.tags),
            opts=child_opts(self),
            **kwargs,
        )

    def _rate_queries(self, numerator: str, dimensions: Mapping[str, Any]) -> list:
        metric = lambda name: aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(  # noqa: E731
            namespace=ALB, metric_name=name, dimensions=dimensions, period=60, stat="Sum"
        )
        return [
            aws.cloudwatch.MetricAlarmMetricQueryArgs(id="errors", return_data=False, metric=metric(numerator)),
            aws.cloudwatch.MetricAlarmMetricQueryArgs(id="requests", return_data=False, metric=metric("RequestCount")),
            aws.cloudwatch.MetricAlarmMetricQueryArgs(
                id="rate", label="5xx %", return_data=True, expression="IF(requests > 0, 100 * errors / requests, 0)"
            ),
        ]

    def _create_alarms(self) -> None:
        args = self._args
        lb = {"LoadBalancer": args.load_balancer_arn_suffix}
        service = {"ClusterName": args.cluster_name, "ServiceName": args.service_name}
        common = {"comparison_operator": "GreaterThanThreshold", "evaluation_periods": 3, "datapoints_to_alarm": 3}
        self._alarm(
            "alb-5xx-rate",
            f"5xx answered by the load balancer itself above {args.error_rate_percent}% of requests",
            threshold=args.error_rate_percent,
            metric_queries=self._rate_queries("HTTPCode_ELB_5XX_Count", lb),
            **common,
        )
        self._alarm(
            "target-5xx-rate",
            f"5xx answered by the service above {args.error_rate_percent}% of requests",
            threshold=args.error_rate_percent,
            metric_queries=self._rate_queries("HTTPCode_Target_5XX_Count", lb),
            **common,
        )
        self._alarm(
            "p99-latency",
            f"p99 target response time above {args.p99_latency_ms} ms",
            namespace=ALB,
            metric_name="TargetResponseTime",
            dimensions=lb,
            extended_statistic="p99",
            period=60,
            threshold=args.p99_latency_ms / 1000,
            **common,
        )
        self._alarm(
            "cpu-high",
            f"Service CPU above {CPU_HIGH_PERCENT}% (autoscaling is not keeping up)",
            namespace=ECS,
            metric_name="CPUUtilization",
            dimensions=service,
            statistic="Average",
            period=60,
            threshold=CPU_HIGH_PERCENT,
            evaluation_periods=5,
            datapoints_to_alarm=5,
            comparison_operator="GreaterThanThreshold",
        )
        self._alarm(
            "memory-high",
            f"Service memory above {MEMORY_HIGH_PERCENT}%",
            namespace=ECS,
            metric_name="MemoryUtilization",
            dimensions=service,
            statistic="Average",
            period=60,
            threshold=MEMORY_HIGH_PERCENT,
            evaluation_periods=5,
            datapoints_to_alarm=5,
            comparison_operator="GreaterThanThreshold",
        )
        insight = lambda name: aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(  # noqa: E731
            namespace=INSIGHTS, metric_name=name, dimensions=service, period=60, stat="Average"
        )
        self._alarm(
            "running-below-desired",
            "Fewer tasks running than desired for 5 minutes (tasks failing to start?)",
            comparison_operator="GreaterThanThreshold",
            threshold=0,
            evaluation_periods=5,
            datapoints_to_alarm=5,
            # No data means Container Insights stopped reporting: that is worth a look too.
            treat_missing_data="breaching",
            metric_queries=[
                aws.cloudwatch.MetricAlarmMetricQueryArgs(
                    id="desired", return_data=False, metric=insight("DesiredTaskCount")
                ),
                aws.cloudwatch.MetricAlarmMetricQueryArgs(
                    id="running", return_data=False, metric=insight("RunningTaskCount")
                ),
                aws.cloudwatch.MetricAlarmMetricQueryArgs(
                    id="missing", label="tasks missing", return_data=True, expression="desired - running"
                ),
            ],
        )

    # -- delivery events and DORA ------------------------------------------------------------------

    def _create_delivery_events(self) -> None:
        args = self._args
        ctx = args.context
        self.events_log_group = log_group(
            self,
            f"{self._name}-delivery-events",
            log_group_name=self.events_log_group_name,
            # The DORA trends look back a quarter: keep these events at least 90 days.
            retention_days=max(args.log_retention_days, 90),
            kms_key_arn=args.logs_key_arn,
            protect=args.protect,
            tags=args.tags,
        )
        log_group_arn = ctx.arn("logs", f"log-group:{self.events_log_group_name}")
        # EventBridge writes to CloudWatch Logs only where a resource policy lets it.
        aws.cloudwatch.LogResourcePolicy(
            f"{self._name}-delivery-events-policy",
            policy_name=f"{args.prefix}-delivery-events",
            policy_document=policy_document(
                [
                    {
                        "Sid": "EventBridgeWrites",
                        "Effect": "Allow",
                        "Principal": {"Service": ["events.amazonaws.com", "delivery.logs.amazonaws.com"]},
                        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                        "Resource": pulumi.Output.concat(log_group_arn, ":*"),
                    }
                ]
            ),
            opts=child_opts(self),
        )
        patterns = {
            "pipeline-executions": {
                "source": ["aws.codepipeline"],
                "detail-type": ["CodePipeline Pipeline Execution State Change"],
                "detail": {"pipeline": [args.pipeline_name]},
            },
            "rollback-alarms": {
                "source": ["aws.cloudwatch"],
                "detail-type": ["CloudWatch Alarm State Change"],
                "detail": {"alarmName": list(args.rollback_alarm_names)},
            },
        }
        for key, pattern in patterns.items():
            rule = aws.cloudwatch.EventRule(
                f"{self._name}-{key}",
                name=f"{args.prefix}-{key}",
                description=f"Records {key.replace('-', ' ')} for the delivery dashboard",
                event_pattern=json.dumps(pattern),
                tags=dict(args.tags),
                opts=child_opts(self),
            )
            aws.cloudwatch.EventTarget(
                f"{self._name}-{key}-target",
                rule=rule.name,
                arn=self.events_log_group.arn,
                retry_policy=aws.cloudwatch.EventTargetRetryPolicyArgs(
                    maximum_event_age_in_seconds=86400, maximum_retry_attempts=20
                ),
                opts=child_opts(self),
            )
        self.metric_filters = {}
        for metric, pattern in (
            ("DeploymentsStarted", STARTED_PATTERN),
            ("DeploymentsSucceeded", SUCCEEDED_PATTERN),
            ("DeploymentsFailed", FAILED_PATTERN),
            ("Restores", RESTORED_PATTERN),
        ):
            self.metric_filters[metric] = aws.cloudwatch.LogMetricFilter(
                f"{self._name}-{metric.lower()}",
                name=f"{args.prefix}-{metric}",
                log_group_name=self.events_log_group.name,
                pattern=pattern,
                metric_transformation=aws.cloudwatch.LogMetricFilterMetricTransformationArgs(
                    name=metric, namespace=self.namespace, value="1", default_value="0", unit="Count"
                ),
                opts=child_opts(self),
            )

    # -- tracing -----------------------------------------------------------------------------------

    def _create_xray(self) -> None:
        args = self._args
        self.sampling_rule = aws.xray.SamplingRule(
            f"{self._name}-sampling",
            rule_name=args.prefix,
            priority=1000,
            fixed_rate=args.xray_sampling_rate,
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
        self.xray_group = aws.xray.Group(
            f"{self._name}-traces",
            group_name=args.prefix,
            filter_expression=f'service("{args.prefix}")',
            insights_configuration=aws.xray.GroupInsightsConfigurationArgs(
                insights_enabled=True, notifications_enabled=False
            ),
            tags=dict(args.tags),
            opts=child_opts(self),
        )

    def _create_pipeline_notifications(self) -> None:
        args = self._args
        aws.codestarnotifications.NotificationRule(
            f"{self._name}-pipeline-notifications",
            name=f"{args.prefix}-pipeline",
            # The pipeline's own ARN (not one built from its name): the rule is created after it.
            resource=args.pipeline_arn,
            detail_type="FULL",
            event_type_ids=list(PIPELINE_EVENTS),
            targets=[aws.codestarnotifications.NotificationRuleTargetArgs(address=args.topic_arn, type="SNS")],
            tags=dict(args.tags),
            opts=child_opts(self),
        )

    # -- dashboard ---------------------------------------------------------------------------------

    def dashboard_body(self) -> pulumi.Output[str]:
        args = self._args
        region = args.context.region
        lb = args.load_balancer_arn_suffix
        svc = ["ClusterName", args.cluster_name, "ServiceName", args.service_name]
        ns = self.namespace

        def metric(
            x: int,
            y: int,
            title: str,
            metrics: list,
            *,
            stat: str = "Sum",
            period: int = 60,
            width: int = 8,
            **extra: Any,
        ) -> dict:
            return {
                "type": "metric",
                "x": x,
                "y": y,
                "width": width,
                "height": 6,
                "properties": {
                    "title": title,
                    "region": region,
                    "view": "timeSeries",
                    "stat": stat,
                    "period": period,
                    "metrics": metrics,
                    **extra,
                },
            }

        healthy = [
            [ALB, "HealthyHostCount", "TargetGroup", suffix, "LoadBalancer", lb, {"label": role}]
            for role, suffix in args.target_group_arn_suffixes.items()
        ]
        widgets = [
            {
                "type": "text",
                "x": 0,
                "y": 0,
                "width": 24,
                "height": 2,
                "properties": {
                    "markdown": (
                        f"# {args.prefix}\nService health, delivery pipeline and DORA numbers. Alarms notify the "
                        "alerts topic; the rollback alarms also roll a deployment back."
                    )
                },
            },
            metric(0, 2, "Requests", [[ALB, "RequestCount", "LoadBalancer", lb]]),
            metric(
                8,
                2,
                "5xx",
                [
                    [ALB, "HTTPCode_Target_5XX_Count", "LoadBalancer", lb, {"label": "target"}],
                    [ALB, "HTTPCode_ELB_5XX_Count", "LoadBalancer", lb, {"label": "load balancer"}],
                ],
            ),
            metric(
                16,
                2,
                "Latency (s)",
                [
                    [ALB, "TargetResponseTime", "LoadBalancer", lb, {"stat": f"p{p}", "label": f"p{p}"}]
                    for p in (50, 90, 99)
                ],
                stat="Average",
                annotations={"horizontal": [{"label": "p99 alarm", "value": args.p99_latency_ms / 1000}]},
            ),
            metric(0, 8, "Healthy hosts", healthy, stat="Minimum"),
            metric(
                8,
                8,
                "ECS CPU and memory (%)",
                [
                    [ECS, "CPUUtilization", *svc, {"label": "CPU"}],
                    [ECS, "MemoryUtilization", *svc, {"label": "memory"}],
                ],
                stat="Average",
            ),
            metric(
                16,
                8,
                "Tasks",
                [
                    [INSIGHTS, "RunningTaskCount", *svc, {"label": "running"}],
                    [INSIGHTS, "DesiredTaskCount", *svc, {"label": "desired"}],
                ],
                stat="Average",
            ),
            metric(
                0,
                14,
                "Pipeline executions",
                [
                    [ns, "DeploymentsStarted", {"label": "started"}],
                    [ns, "DeploymentsSucceeded", {"label": "succeeded"}],
                    [ns, "DeploymentsFailed", {"label": "failed"}],
                ],
                period=3600,
            ),
            metric(
                8,
                14,
                "DORA: deployments per day",
                [[ns, "DeploymentsSucceeded", {"label": "deployments"}]],
                period=86400,
                view="bar",
            ),
            metric(
                16,
                14,
                "DORA: change failure rate (%)",
                [
                    [ns, "DeploymentsSucceeded", {"id": "ok", "visible": False}],
                    [ns, "DeploymentsFailed", {"id": "failed", "visible": False}],
                    [
                        {
                            "expression": "IF(ok + failed > 0, 100 * failed / (ok + failed), 0)",
                            "id": "cfr",
                            "label": "change failure rate",
                        }
                    ],
                ],
                period=86400,
            ),
            {
                "type": "log",
                "x": 0,
                "y": 20,
                "width": 24,
                "height": 6,
                "properties": {
                    "title": "DORA: time to restore (minutes a rollback alarm stayed in ALARM)",
                    "region": region,
                    "view": "table",
                    "query": f"SOURCE '{self.events_log_group_name}' | {TIME_TO_RESTORE_QUERY}",
                },
            },
        ]
        return pulumi.Output.json_dumps({"widgets": widgets})
