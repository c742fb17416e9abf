"""Where the code lives: a CodeCommit repository with an approval rule, or GitHub via CodeConnections.

Note: AWS stopped offering CodeCommit to accounts that had never used it in July 2024; such accounts
use `source: github`, where pull requests and their approvals live in GitHub.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pulumi
import pulumi_aws as aws

from .common import AwsContext, child_opts, stateful_opts

if TYPE_CHECKING:
    from config import PipelineSettings

PR_EVENTS = (
    "codecommit-repository-pull-request-created",
    "codecommit-repository-pull-request-source-updated",
    "codecommit-repository-pull-request-status-changed",
    "codecommit-repository-pull-request-merged",
)


@dataclass(frozen=True)
class SourceRepositoryArgs:
    """Inputs of a SourceRepository.

    ``pipeline``: the validated `cicd:pipeline` section. With its source codecommit, its
    ``repository_name`` is created (encrypted with ``kms_key_arn``) with an approval rule for its
    ``branch`` needing ``approvals`` (default 1); with github, its ``github_repository`` (owner/name) is
    reached through its ``connection_arn``.
    ``notification_topic_arn``: pull-request events are published there; default none.
    """

    context: AwsContext
    prefix: str
    pipeline: PipelineSettings
    kms_key_arn: pulumi.Input[str]
    approvals: int = 1
    notification_topic_arn: pulumi.Input[str] | None = None
    protect: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 1 <= self.approvals <= 10:
            raise ValueError("SourceRepositoryArgs.approvals must be 1..10")


class SourceRepository(pulumi.ComponentResource):
    """The git repository the pipeline builds from: the single source of truth."""

    def __init__(self, name: str, args: SourceRepositoryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cicd:source:SourceRepository", name, None, opts)
        self.source = args.pipeline.source
        self.branch = args.pipeline.branch
        self.repository = None
        if args.pipeline.source == "codecommit":
            self._create_codecommit(name, args)
            # Known before the repository exists: policies, rules and roles can name it at preview.
            self.repository_arn = args.context.arn("codecommit", args.pipeline.repository_name)
            self.repository_name = args.pipeline.repository_name
            self.clone_url = self.repository.clone_url_http
        else:
            self.repository_arn = None
            self.repository_name = args.pipeline.github_repository
            self.clone_url = pulumi.Output.from_input(f"https://github.com/{args.pipeline.github_repository}.git")
        self.connection_arn = args.pipeline.connection_arn
        self.register_outputs({"repository_name": self.repository_name, "clone_url": self.clone_url})

    def _create_codecommit(self, name: str, args: SourceRepositoryArgs) -> None:
        self.repository = aws.codecommit.Repository(
            f"{name}-repo",
            repository_name=args.pipeline.repository_name,
            description=f"Source of {args.prefix}: every change reaches production from here",
            default_branch=args.pipeline.branch,
            kms_key_id=args.kms_key_arn,
            tags=dict(args.tags),
            opts=stateful_opts(self, args.protect),
        )
        self.approval_rule = aws.codecommit.ApprovalRuleTemplate(
            f"{name}-approval-rule",
            name=f"{args.prefix}-require-approval",
            description=f"Pull requests into {args.pipeline.branch} need {args.approvals} approval(s)",
            content=json.dumps(
                {
                    "Version": "2018-11-08",
                    "DestinationReferences": [f"refs/heads/{args.pipeline.branch}"],
                    "Statements": [{"Type": "Approvers", "NumberOfApprovalsNeeded": args.approvals}],
                }
            ),
            opts=child_opts(self),
        )
        aws.codecommit.ApprovalRuleTemplateAssociation(
            f"{name}-approval-rule-association",
            approval_rule_template_name=self.approval_rule.name,
            repository_name=self.repository.repository_name,
            opts=child_opts(self),
        )
        if args.notification_topic_arn is not None:
            aws.codestarnotifications.NotificationRule(
                f"{name}-pr-notifications",
                name=f"{args.prefix}-pull-requests",
                resource=self.repository.arn,
                detail_type="BASIC",
                event_type_ids=list(PR_EVENTS),
                targets=[
                    aws.codestarnotifications.NotificationRuleTargetArgs(
                        address=args.notification_topic_arn, type="SNS"
                    )
                ],
                tags=dict(args.tags),
                opts=child_opts(self),
            )
