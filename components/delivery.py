"""The delivery record behind the DORA numbers, with no custom code: EventBridge copies the deploy
action's state changes and the rollback alarms' state changes into a log group, and metric filters
count them. A deployment is a run of the pipeline's deploy action (PulumiUp): a red unit test is the
pipeline doing its job, not a failed change; a release ECS rolled back fails `pulumi up`, so it counts
as a failed deployment (DORA's change failure rate). Lead time comes from the release job's metric."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from .common import AwsContext, Part, child_opts, log_group, policy_document

# Metric filter patterns over the delivery-events log group (EventBridge events as JSON).
DEPLOY_ACTION = "PulumiUp"
SUCCEEDED_PATTERN = (
    f'{{ ($.source = "aws.codepipeline") && ($.detail.action = "{DEPLOY_ACTION}") && ($.detail.state = "SUCCEEDED") }}'
)
FAILED_PATTERN = (
    f'{{ ($.source = "aws.codepipeline") && ($.detail.action = "{DEPLOY_ACTION}") && ($.detail.state = "FAILED") }}'
)
STARTED_PATTERN = (
    f'{{ ($.source = "aws.codepipeline") && ($.detail.action = "{DEPLOY_ACTION}") && ($.detail.state = "STARTED") }}'
)
RESTORED_PATTERN = (
    '{ ($.source = "aws.cloudwatch") && ($.detail.state.value = "OK") && ($.detail.previousState.value = "ALARM") }'
)
METRICS = {
    "DeploymentsStarted": STARTED_PATTERN,
    "DeploymentsSucceeded": SUCCEEDED_PATTERN,
    "DeploymentsFailed": FAILED_PATTERN,
    "Restores": RESTORED_PATTERN,
}


@dataclass(frozen=True)
class DeliveryMetricsArgs:
    """Records the executions of ``pipeline_name`` and the episodes of ``rollback_alarm_names`` for at
    least 90 days (the DORA trends look back a quarter), counted as metrics in ``namespace``."""

    context: AwsContext
    prefix: str
    namespace: str
    pipeline_name: str
    rollback_alarm_names: Sequence[str]
    logs_key_arn: pulumi.Input[str]
    log_retention_days: int
    protect: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)


class DeliveryMetrics(Part):
    """`log_group_name` (the events, for Logs Insights) and the `metric_filters` by metric name."""

    def __init__(self, name: str, args: DeliveryMetricsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cicd:delivery:DeliveryMetrics", name, opts)
        self.log_group_name = f"/aws/events/{args.prefix}-delivery"
        events = log_group(
            self,
            f"{name}-delivery-events",
            log_group_name=self.log_group_name,
            # The DORA trends look back a quarter: keep these events at least 90 days.
            retention_days=max(args.log_retention_days, 90),
            kms_key_arn=args.logs_key_arn,
            protect=args.protect,
            tags=args.tags,
        )
        log_group_arn = args.context.arn("logs", f"log-group:{self.log_group_name}")
        # EventBridge writes to CloudWatch Logs only where a resource policy lets it.
        aws.cloudwatch.LogResourcePolicy(
            f"{name}-delivery-events-policy",
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
            # (The rule keeps its first name; it now records the deploy action's runs.)
            "pipeline-executions": {
                "source": ["aws.codepipeline"],
                "detail-type": ["CodePipeline Action Execution State Change"],
                "detail": {"pipeline": [args.pipeline_name], "action": [DEPLOY_ACTION]},
            },
            "rollback-alarms": {
                "source": ["aws.cloudwatch"],
                "detail-type": ["CloudWatch Alarm State Change"],
                "detail": {"alarmName": list(args.rollback_alarm_names)},
            },
        }
        for key, pattern in patterns.items():
            rule = aws.cloudwatch.EventRule(
                f"{name}-{key}",
                name=f"{args.prefix}-{key}",
                description=f"Records {key.replace('-', ' ')} for the delivery dashboard",
                event_pattern=json.dumps(pattern),
                tags=dict(args.tags),
                opts=child_opts(self),
            )
            aws.cloudwatch.EventTarget(
                f"{name}-{key}-target",
                rule=rule.name,
                arn=events.arn,
                retry_policy=aws.cloudwatch.EventTargetRetryPolicyArgs(
                    maximum_event_age_in_seconds=86400, maximum_retry_attempts=20
                ),
                opts=child_opts(self),
            )
        self.metric_filters = {
            metric: aws.cloudwatch.LogMetricFilter(
                f"{name}-{metric.lower()}",
                name=f"{args.prefix}-{metric}",
                log_group_name=events.name,
                pattern=pattern,
                metric_transformation=aws.cloudwatch.LogMetricFilterMetricTransformationArgs(
                    name=metric, namespace=args.namespace, value="1", default_value="0", unit="Count"
                ),
                opts=child_opts(self),
            )
            for metric, pattern in METRICS.items()
        }
        self.register_outputs({"log_group_name": self.log_group_name})
