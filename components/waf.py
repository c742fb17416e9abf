"""An AWS WAF web ACL in front of the internet-facing load balancer, with KMS-encrypted logs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from .common import AwsContext, child_opts, log_group, policy_document

# AWS's managed rule groups every public web application should have, in evaluation order, with the
# capacity (WCU) AWS documents for each: 925 in all, inside the 1,500 a web ACL gets without extra fees.
MANAGED_RULE_GROUPS = (
    ("AWSManagedRulesAmazonIpReputationList", 25),  # sources AWS has seen attacking
    ("AWSManagedRulesKnownBadInputsRuleSet", 200),  # request patterns of known exploits (Log4j among them)
    ("AWSManagedRulesCommonRuleSet", 700),  # the OWASP Top 10 kind of rules
)
# Headers that carry credentials are never written to the logs.
REDACTED_HEADERS = ("authorization", "cookie")
# WAF delivers logs only to log groups whose name starts with this.
LOG_GROUP_PREFIX = "aws-waf-logs-"


@dataclass(frozen=True)
class WebFirewallArgs:
    """Inputs of a WebFirewall.

    ``load_balancer_arn``: the ALB the web ACL protects. ``logs_key_arn`` encrypts the log group,
    kept ``log_retention_days``. ``protect``: protect and retain the log group; default False.
    """

    context: AwsContext
    prefix: str
    load_balancer_arn: pulumi.Input[str]
    logs_key_arn: pulumi.Input[str]
    log_retention_days: int
    protect: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)


def _metric(name: str) -> str:
    """A CloudWatch metric name WAF accepts: letters, digits, - and _."""
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:128]


class WebFirewall(pulumi.ComponentResource):
    """The web ACL, its association with the load balancer, and its logs."""

    def __init__(self, name: str, args: WebFirewallArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cicd:waf:WebFirewall", name, None, opts)
        ctx = args.context
        self.web_acl_name = args.prefix
        rules = [
            aws.wafv2.WebAclRuleArgs(
                name=group,
                priority=(i + 1) * 10,
                override_action=aws.wafv2.WebAclRuleOverrideActionArgs(
                    none=aws.wafv2.WebAclRuleOverrideActionNoneArgs()
                ),
                statement=aws.wafv2.WebAclRuleStatementArgs(
                    managed_rule_group_statement=aws.wafv2.WebAclRuleStatementManagedRuleGroupStatementArgs(
                        name=group, vendor_name="AWS"
                    )
                ),
                visibility_config=aws.wafv2.WebAclRuleVisibilityConfigArgs(
                    cloudwatch_metrics_enabled=True,
                    metric_name=_metric(f"{args.prefix}-{group}"),
                    sampled_requests_enabled=True,
                ),
            )
            for i, (group, _) in enumerate(MANAGED_RULE_GROUPS)
        ]
        self.web_acl = aws.wafv2.WebAcl(
            f"{name}-acl",
            name=self.web_acl_name,
            description=f"Managed protections for the {args.prefix} load balancer",
            scope="REGIONAL",
            default_action=aws.wafv2.WebAclDefaultActionArgs(allow=aws.wafv2.WebAclDefaultActionAllowArgs()),
            rules=rules,
            visibility_config=aws.wafv2.WebAclVisibilityConfigArgs(
                cloudwatch_metrics_enabled=True, metric_name=_metric(args.prefix), sampled_requests_enabled=True
            ),
            tags=dict(args.tags),
            opts=child_opts(self),
        )
        aws.wafv2.WebAclAssociation(
            f"{name}-association",
            resource_arn=args.load_balancer_arn,
            web_acl_arn=self.web_acl.arn,
            opts=child_opts(self),
        )
        log_group_name = f"{LOG_GROUP_PREFIX}{args.prefix}"
        self.log_group = log_group(
            self,
            f"{name}-logs",
            log_group_name=log_group_name,
            retention_days=args.log_retention_days,
            kms_key_arn=args.logs_key_arn,
            protect=args.protect,
            tags=args.tags,
        )
        log_group_arn = ctx.arn("logs", f"log-group:{log_group_name}")
        # WAF delivers through CloudWatch Logs' log delivery, which needs this grant on the group. Left to
        # itself WAF edits a shared account-wide policy (AWSWAF-LOGS), which can outgrow its size limit.
        delivery = aws.cloudwatch.LogResourcePolicy(
            f"{name}-logs-policy",
            policy_name=f"{args.prefix}-waf-logs",
            policy_document=policy_document(
                [
                    {
                        "Sid": "WafDeliversLogs",
                        "Effect": "Allow",
                        "Principal": {"Service": "delivery.logs.amazonaws.com"},
                        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                        "Resource": pulumi.Output.concat(log_group_arn, ":*"),
                        "Condition": {
                            "StringEquals": {"aws:SourceAccount": ctx.account_id},
                            "ArnLike": {"aws:SourceArn": ctx.arn("logs", "*")},
                        },
                    }
                ]
            ),
            opts=child_opts(self),
        )
        aws.wafv2.WebAclLoggingConfiguration(
            f"{name}-logging",
            resource_arn=self.web_acl.arn,
            # The log group's ARN without the ":*" that CloudWatch Logs appends elsewhere, from known
            # parts so the policy pack can check its prefix at a first preview (depends_on orders it).
            log_destination_configs=[log_group_arn],
            redacted_fields=[
                aws.wafv2.WebAclLoggingConfigurationRedactedFieldArgs(
                    single_header=aws.wafv2.WebAclLoggingConfigurationRedactedFieldSingleHeaderArgs(name=h)
                )
                for h in REDACTED_HEADERS
            ],
            opts=child_opts(self, depends_on=[delivery, self.log_group]),
        )
        self.web_acl_arn = self.web_acl.arn
        self.register_outputs({"web_acl_arn": self.web_acl_arn})
