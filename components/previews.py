"""Every pull request into the release branch is previewed with the policy pack (CodeCommit; the
GitHub workflow in .github/ does the same for GitHub)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from .common import AwsContext, Part
from .events import event_rule


@dataclass(frozen=True)
class PullRequestPreviewsArgs:
    """Starts ``project_arn`` (the preview job, named ``<prefix>-preview``) on the source commit of
    every opened or updated pull request into ``branch`` of ``repository_arn``."""

    context: AwsContext
    prefix: str
    branch: str
    repository_arn: pulumi.Input[str]
    project_arn: pulumi.Input[str]
    tags: Mapping[str, str] = field(default_factory=dict)


class PullRequestPreviews(Part):
    """The rule that starts a preview for each pull request, told which pull request it is."""

    def __init__(self, name: str, args: PullRequestPreviewsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cicd:previews:PullRequestPreviews", name, opts)
        event_rule(
            self,
            name,
            "on-pull-request",
            f"Previews every pull request into {args.branch} with the policy pack",
            context=args.context,
            prefix=args.prefix,
            target_arn=args.project_arn,
            pattern={
                "source": ["aws.codecommit"],
                "detail-type": ["CodeCommit Pull Request State Change"],
                "resources": [args.repository_arn],
                "detail": {
                    "event": ["pullRequestCreated", "pullRequestSourceBranchUpdated"],
                    "destinationReference": [f"refs/heads/{args.branch}"],
                    "pullRequestStatus": ["Open"],
                },
            },
            start=("codebuild:StartBuild", args.context.arn("codebuild", f"project/{args.prefix}-preview")),
            # StartBuild on the pull request's source commit, told which pull request it is.
            transformer=aws.cloudwatch.EventTargetInputTransformerArgs(
                input_paths={
                    "pr": "$.detail.pullRequestId",
                    "source": "$.detail.sourceCommit",
                    "destination": "$.detail.destinationCommit",
                },
                input_template=(
                    '{"sourceVersion": <source>, "environmentVariablesOverride": ['
                    '{"name": "PR_ID", "value": <pr>, "type": "PLAINTEXT"}, '
                    '{"name": "SOURCE_COMMIT", "value": <source>, "type": "PLAINTEXT"}, '
                    '{"name": "DESTINATION_COMMIT", "value": <destination>, "type": "PLAINTEXT"}]}'
                ),
            ),
            tags=args.tags,
        )
        self.register_outputs({})
