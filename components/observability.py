"""Where alerts go: an encrypted SNS topic, e-mail, and Slack through AWS Chatbot."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from .common import AwsContext, assume_role_policy, child_opts, policy_document, role_with_policy
from .encryption import KmsKey, KmsKeyArgs, ServiceGrant
from .facts import KMS_PUBLISH, KMS_USE

# AWS Chatbot (Amazon Q Developer in chat applications) serves its API only in these regions; a
# configuration there can still subscribe to topics in any region.
CHATBOT_REGIONS = ("us-east-2", "us-west-2", "eu-west-1", "ap-southeast-1")
PUBLISHERS = ("cloudwatch.amazonaws.com", "events.amazonaws.com", "codestar-notifications.amazonaws.com")


@dataclass(frozen=True)
class ObservabilityArgs:
    """Inputs of Observability.

    ``alarm_email``: subscribe this address to the topic; default none.
    ``slack_workspace_id`` and ``slack_channel_id``: both set adds AWS Chatbot; default none.
    ``chatbot_region``: where the Slack channel configuration is created, one of the regions Chatbot
    serves (us-east-2, us-west-2, eu-west-1, ap-southeast-1); default us-east-2.
    ``protect``: protect the telemetry key, which every log group depends on.
    """

    context: AwsContext
    prefix: str
    alarm_email: str = ""
    slack_workspace_id: str = ""
    slack_channel_id: str = ""
    chatbot_region: str = "us-east-2"
    protect: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if bool(self.slack_workspace_id) != bool(self.slack_channel_id):
            raise ValueError("ObservabilityArgs.slack_workspace_id and slack_channel_id go together")
        if self.chatbot_region not in CHATBOT_REGIONS:
            raise ValueError(
                f"ObservabilityArgs.chatbot_region must be one of {', '.join(CHATBOT_REGIONS)}; "
                f"got {self.chatbot_region!r}"
            )


class Observability(pulumi.ComponentResource):
    """The telemetry KMS key and the alert topic with its subscribers."""

    def __init__(self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cicd:observability:Observability", name, None, opts)
        ctx = args.context
        region = ctx.region
        self.key_alias = f"alias/{args.prefix}-telemetry"
        self.key = KmsKey(
            f"{name}-key",
            KmsKeyArgs(
                context=ctx,
                alias=self.key_alias,
                description=f"Logs and alerts of {args.prefix}",
                protect=args.protect,
                tags=dict(args.tags),
                service_grants=[
                    ServiceGrant(
                        f"logs.{region}.{ctx.dns_suffix}",
                        KMS_USE,
                        {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": ctx.arn("logs", "log-group:*")}},
                    ),
                    # Alarms, EventBridge and CodeStar Notifications publish to the encrypted topic, and may
                    # use the key only through SNS in this region.
                    *[
                        ServiceGrant(
                            p,
                            KMS_PUBLISH,
                            {"StringEquals": {"kms:ViaService": f"sns.{region}.{ctx.dns_suffix}"}},
                        )
                        for p in PUBLISHERS
                    ],
                ],
            ),
            opts=child_opts(self),
        )
        self.key_arn = self.key.arn
        self.topic = aws.sns.Topic(
            f"{name}-alerts",
            name=f"{args.prefix}-alerts",
            kms_master_key_id=self.key.arn,
            tags=dict(args.tags),
            opts=child_opts(self),
        )
        topic_arn = ctx.arn("sns", f"{args.prefix}-alerts")
        aws.sns.TopicPolicy(
            f"{name}-alerts-policy",
            arn=self.topic.arn,
            policy=policy_document(
                [
                    {
                        "Sid": "ServicesPublish",
                        "Effect": "Allow",
                        "Principal": {"Service": list(PUBLISHERS)},
                        "Action": "sns:Publish",
                        "Resource": topic_arn,
                        "Condition": {"StringEquals": {"aws:SourceAccount": ctx.account_id}},
                    },
                    {
                        "Sid": "DenyInsecureTransport",
                        "Effect": "Deny",
                        "Principal": {"AWS": "*"},
                        "Action": "sns:Publish",
                        "Resource": topic_arn,
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    },
                ]
            ),
            opts=child_opts(self),
        )
        if args.alarm_email:
            aws.sns.TopicSubscription(
                f"{name}-alerts-email",
                topic=self.topic.arn,
                protocol="email",
                endpoint=args.alarm_email,
                opts=child_opts(self),
            )
        if args.slack_workspace_id:
            self._create_slack(name, args)
        self.topic_arn = self.topic.arn
        # The same ARN from known parts, for IAM documents that must be complete at preview.
        self.topic_arn_for_policies = topic_arn
        self.register_outputs({"topic_arn": self.topic_arn, "key_arn": self.key_arn})

    def _create_slack(self, name: str, args: ObservabilityArgs) -> None:
        role = role_with_policy(
            self,
            f"{name}-chatbot",
            role_name=f"{args.prefix}-chatbot",
            description="AWS Chatbot posts alerts to Slack; read-only",
            trust=assume_role_policy("chatbot.amazonaws.com"),
            statements=[
                {
                    "Sid": "ReadAlarms",
                    "Effect": "Allow",
                    "Action": "cloudwatch:DescribeAlarms",
                    "Resource": args.context.arn("cloudwatch", f"alarm:{args.prefix}-*"),
                },
                {
                    "Sid": "ReadMetrics",
                    "Effect": "Allow",
                    "Action": "cloudwatch:GetMetricData",
                    # GetMetricData has no resource-level permissions: AWS requires "*".
                    "Resource": "*",
                },
            ],
            tags=args.tags,
        )
        aws.chatbot.SlackChannelConfiguration(
            f"{name}-slack",
            configuration_name=f"{args.prefix}-alerts",
            iam_role_arn=role.arn,
            slack_team_id=args.slack_workspace_id,
            slack_channel_id=args.slack_channel_id,
            sns_topic_arns=[self.topic.arn],
            # The guardrail caps what anyone in the channel can do through the bot: read only.
            guardrail_policy_arns=[f"arn:{args.context.partition}:iam::aws:policy/ReadOnlyAccess"],
            logging_level="ERROR",
            # Chatbot has no API in most regions (us-east-1 among them); the topic may be elsewhere.
            region=args.chatbot_region,
            tags=dict(args.tags),
            opts=child_opts(self),
        )
