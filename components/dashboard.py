"""The service's dashboard: traffic, errors, latency, capacity, the pipeline and the DORA numbers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from .alarms import ALB, ECS, INSIGHTS

# Logs Insights over the delivery events: an alarm's return to OK carries when it entered ALARM. The
# times of day are subtracted modulo a day, so an episode must be shorter than 24 hours.
TIME_TO_RESTORE_QUERY = (
    "filter source = 'aws.cloudwatch' and detail.state.value = 'OK' and detail.previousState.value = 'ALARM' "
    r"| parse detail.previousState.timestamp /T(?<h1>\d\d):(?<m1>\d\d):(?<s1>\d\d)/ "
    r"| parse detail.state.timestamp /T(?<h2>\d\d):(?<m2>\d\d):(?<s2>\d\d)/ "
    "| fields (((h2 * 3600 + m2 * 60 + s2) - (h1 * 3600 + m1 * 60 + s1) + 86400) % 86400) / 60 as minutes "
    "| stats avg(minutes) as mean_minutes, max(minutes) as longest_minutes, count(*) as restores by bin(1d)"
)


@dataclass(frozen=True)
class DashboardArgs:
    """What the widgets show: the load balancer and its target groups, the ECS service, the delivery
    metrics in ``namespace`` and the events in ``events_log_group_name``."""

    prefix: str
    region: str
    load_balancer_arn_suffix: pulumi.Input[str]
    target_group_arn_suffixes: Mapping[str, pulumi.Input[str]]
    cluster_name: str
    service_name: str
    namespace: str
    events_log_group_name: str
    p99_latency_ms: int


def dashboard_body(args: DashboardArgs) -> pulumi.Output[str]:
    """The dashboard as CloudWatch's JSON (an Output: the ARN suffixes are known after apply)."""
    region = args.region
    lb = args.load_balancer_arn_suffix
    svc = ["ClusterName", args.cluster_name, "ServiceName", args.service_name]
    ns = args.namespace

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
            "Deployments (the deploy action)",
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
        metric(
            0,
            20,
            "DORA: lead time for changes (minutes, commit to release)",
            [
                [ns, "LeadTimeMinutes", {"stat": "p50", "label": "median"}],
                [ns, "LeadTimeMinutes", {"stat": "Maximum", "label": "longest"}],
            ],
            period=86400,
        ),
        {
            "type": "log",
            "x": 8,
            "y": 20,
            "width": 16,
            "height": 6,
            "properties": {
                "title": "DORA: time to restore (minutes a rollback alarm stayed in ALARM)",
                "region": region,
                "view": "table",
                "query": f"SOURCE '{args.events_log_group_name}' | {TIME_TO_RESTORE_QUERY}",
            },
        },
    ]
    return pulumi.Output.json_dumps({"widgets": widgets})
