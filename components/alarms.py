"""The service's alarms to the team: errors, latency, saturation and tasks that fail to start.

(The rollback alarms of a release, per target group, are in releasechecks.py; both share the error
rate's metric math below.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from .common import Part, child_opts

ALB = "AWS/ApplicationELB"
ECS = "AWS/ECS"
INSIGHTS = "ECS/ContainerInsights"
CPU_HIGH_PERCENT = 80
MEMORY_HIGH_PERCENT = 80
# The percentage of requests answered with an error; no requests is no error (never a division by zero).
ERROR_RATE_EXPRESSION = "IF(requests > 0, 100 * errors / requests, 0)"


def error_rate_queries(errors_metric: str, dimensions: Mapping[str, Any]) -> list:
    """Metric math for an alarm on `errors_metric` as a percentage of the ALB's requests, per minute."""
    metric = lambda name: aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(  # noqa: E731
        namespace=ALB, metric_name=name, dimensions=dimensions, period=60, stat="Sum"
    )
    return [
        aws.cloudwatch.MetricAlarmMetricQueryArgs(id="errors", return_data=False, metric=metric(errors_metric)),
        aws.cloudwatch.MetricAlarmMetricQueryArgs(id="requests", return_data=False, metric=metric("RequestCount")),
        aws.cloudwatch.MetricAlarmMetricQueryArgs(
            id="rate", label="5xx %", return_data=True, expression=ERROR_RATE_EXPRESSION
        ),
    ]


@dataclass(frozen=True)
class ServiceAlarmsArgs:
    """Alarms on the load balancer (``load_balancer_arn_suffix``) and the ECS service, to ``topic_arn``
    (alarm and recovery). ``error_rate_percent`` and ``p99_latency_ms``: the thresholds."""

    prefix: str
    topic_arn: pulumi.Input[str]
    load_balancer_arn_suffix: pulumi.Input[str]
    cluster_name: str
    service_name: str
    error_rate_percent: float
    p99_latency_ms: int
    tags: Mapping[str, str] = field(default_factory=dict)


class ServiceAlarms(Part):
    """`alarms`: each alarm by its name."""

    def __init__(self, name: str, args: ServiceAlarmsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cicd:alarms:ServiceAlarms", name, opts)
        self.alarms: dict[str, aws.cloudwatch.MetricAlarm] = {}
        lb = {"LoadBalancer": args.load_balancer_arn_suffix}
        service = {"ClusterName": args.cluster_name, "ServiceName": args.service_name}
        sustained = {"comparison_operator": "GreaterThanThreshold", "evaluation_periods": 3, "datapoints_to_alarm": 3}
        saturated = {"comparison_operator": "GreaterThanThreshold", "evaluation_periods": 5, "datapoints_to_alarm": 5}
        alarm = lambda key, description, **kwargs: self._alarm(name, args, key, description, **kwargs)  # noqa: E731
        alarm(
            "alb-5xx-rate",
            f"5xx answered by the load balancer itself above {args.error_rate_percent}% of requests",
            threshold=args.error_rate_percent,
            metric_queries=error_rate_queries("HTTPCode_ELB_5XX_Count", lb),
            **sustained,
        )
        alarm(
            "target-5xx-rate",
            f"5xx answered by the service above {args.error_rate_percent}% of requests",
            threshold=args.error_rate_percent,
            metric_queries=error_rate_queries("HTTPCode_Target_5XX_Count", lb),
            **sustained,
        )
        alarm(
            "p99-latency",
            f"p99 target response time above {args.p99_latency_ms} ms",
            namespace=ALB,
            metric_name="TargetResponseTime",
            dimensions=lb,
            extended_statistic="p99",
            period=60,
            threshold=args.p99_latency_ms / 1000,
            **sustained,
        )
        for key, metric, what, threshold in (
            ("cpu-high", "CPUUtilization", f"CPU above {CPU_HIGH_PERCENT}% (autoscaling is not keeping up)",
             CPU_HIGH_PERCENT),
            ("memory-high", "MemoryUtilization", f"memory above {MEMORY_HIGH_PERCENT}%", MEMORY_HIGH_PERCENT),
        ):  # fmt: skip
            alarm(
                key,
                f"Service {what}",
                namespace=ECS,
                metric_name=metric,
                dimensions=service,
                statistic="Average",
                period=60,
                threshold=threshold,
                **saturated,
            )
        insight = lambda metric: aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(  # noqa: E731
            namespace=INSIGHTS, metric_name=metric, dimensions=service, period=60, stat="Average"
        )
        alarm(
            "running-below-desired",
            "Fewer tasks running than desired for 5 minutes (tasks failing to start?)",
            threshold=0,
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
            **saturated,
        )
        self.register_outputs({"alarm_names": sorted(self.alarms)})

    def _alarm(self, name: str, args: ServiceAlarmsArgs, key: str, description: str, **kwargs: Any) -> None:
        alarm_name = f"{args.prefix}-{key}"
        self.alarms[alarm_name] = aws.cloudwatch.MetricAlarm(
            f"{name}-{key}",
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
