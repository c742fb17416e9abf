"""A daily `pulumi preview --refresh --expect-no-changes` of the live stack; a failed run notifies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from .common import AwsContext, Part
from .events import event_rule

DRIFT_SCHEDULE = "cron(0 6 * * ? *)"  # daily, before the working day starts (UTC)


@dataclass(frozen=True)
class DriftDetectionArgs:
    """Starts ``project_arn`` (the drift job, named ``<prefix>-drift``) daily; its failure notifies
    ``topic_arn``."""

    context: AwsContext
    prefix: str
    stack: str
    project_arn: pulumi.Input[str]
    topic_arn: pulumi.Input[str]
    tags: Mapping[str, str] = field(default_factory=dict)


class DriftDetection(Part):
    """The schedule that starts the drift job and the rule that reports its failures."""

    def __init__(self, name: str, args: DriftDetectionArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cicd:drift:DriftDetection", name, opts)
        common = {"context": args.context, "prefix": args.prefix, "tags": args.tags}
        project = f"{args.prefix}-drift"
        event_rule(
            self,
            name,
            "drift-schedule",
            f"Checks daily that the live {args.stack} stack still matches git",
            target_arn=args.project_arn,
            schedule=DRIFT_SCHEDULE,
            start=("codebuild:StartBuild", args.context.arn("codebuild", f"project/{project}")),
            **common,
        )
        event_rule(
            self,
            name,
            "drift-detected",
            f"Tells the team when the live {args.stack} stack has drifted from git",
            target_arn=args.topic_arn,
            pattern={
                "source": ["aws.codebuild"],
                "detail-type": ["CodeBuild Build State Change"],
                "detail": {"project-name": [project], "build-status": ["FAILED"]},
            },
            transformer=aws.cloudwatch.EventTargetInputTransformerArgs(
                input_paths={"build": "$.detail.build-id"},
                # A placeholder inside the quoted string is replaced by the raw value.
                input_template=(
                    f'"Drift: the live {args.stack} stack no longer matches git, or the check failed. '
                    'See the build <build>, then reconcile through the pipeline or pulumi refresh."'
                ),
            ),
            **common,
        )
        self.register_outputs({})
