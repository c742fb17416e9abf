"""EventBridge rules that start things: one helper, so every rule has a retried target and a role
that may start exactly one thing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_aws as aws

from .common import AwsContext, assume_role_policy, child_opts, role_with_policy


def event_rule(
    parent: pulumi.Resource,
    name: str,
    key: str,
    description: str,
    *,
    context: AwsContext,
    prefix: str,
    target_arn: pulumi.Input[str],
    pattern: Mapping[str, Any] | None = None,
    schedule: str | None = None,
    start: tuple[str, pulumi.Input[str]] | None = None,
    transformer: aws.cloudwatch.EventTargetInputTransformerArgs | None = None,
    tags: Mapping[str, str],
) -> aws.cloudwatch.EventRule:
    """A rule `<prefix>-<key>` and its target, retried for up to a day.

    `start` is the (action, resource) a role lets EventBridge call on the target; a topic needs
    none, its own policy admits EventBridge.
    """
    rule = aws.cloudwatch.EventRule(
        f"{name}-{key}",
        name=f"{prefix}-{key}",
        description=description,
        event_pattern=pulumi.Output.json_dumps(pattern) if pattern is not None else None,
        schedule_expression=schedule,
        tags=dict(tags),
        opts=child_opts(parent),
    )
    role = None
    if start is not None:
        action, resource = start
        role = role_with_policy(
            parent,
            f"{name}-{key}-events",
            role_name=f"{prefix}-{key}-events",
            description=f"Lets EventBridge {action.split(':')[1]} for {prefix}-{key}",
            trust=assume_role_policy(
                "events.amazonaws.com", {"StringEquals": {"aws:SourceAccount": context.account_id}}
            ),
            statements=[{"Sid": "Start", "Effect": "Allow", "Action": action, "Resource": resource}],
            tags=tags,
        )
    aws.cloudwatch.EventTarget(
        f"{name}-{key}-target",
        rule=rule.name,
        arn=target_arn,
        role_arn=role.arn if role is not None else None,
        retry_policy=aws.cloudwatch.EventTargetRetryPolicyArgs(
            maximum_event_age_in_seconds=86400, maximum_retry_attempts=20
        ),
        input_transformer=transformer,
        opts=child_opts(parent),
    )
    return rule
