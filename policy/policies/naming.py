"""Names and descriptions within what AWS's APIs accept: a preview cannot see these rules, `up` fails on them.

Each rule is (property, shortest, longest, pattern, source). Where AWS's API model states the
constraint (botocore's service models, which the tests compare against this table), the source names
the model shape; the others come from the service's documentation, named too. A missing property is
skipped: Pulumi names the resource itself, or AWS's default applies.
"""

from __future__ import annotations

import re

from pulumi_policy import Severity

from ._util import known, resource_policy

# The IAM description character set, and Application Auto Scaling's \\p{Print}, in Python's syntax.
IAM_TEXT = r"[\u0009\u000A\u000D\u0020-\u007E\u00A1-\u00FF]*"
PRINTABLE = r"[\x20-\x7E\u00A0-\uFFFF]+"
ELB_NAME = r"(?!-)(?!internal-)[A-Za-z0-9-]*(?<!-)"  # ELB documentation: no leading or trailing hyphen

NAME_RULES: dict[str, tuple[tuple[str, int, int, str, str], ...]] = {
    "aws:iam/role:Role": (
        ("name", 1, 64, r"[\w+=,.@-]+", "iam CreateRole RoleName"),
        ("description", 0, 1000, IAM_TEXT, "iam CreateRole Description"),
    ),
    "aws:iam/rolePolicy:RolePolicy": (("name", 1, 128, r"[\w+=,.@-]+", "iam PutRolePolicy PolicyName"),),
    "aws:cloudwatch/logGroup:LogGroup": (("name", 1, 512, r"[\.\-_/#A-Za-z0-9]+", "logs CreateLogGroup logGroupName"),),
    "aws:codebuild/project:Project": (
        ("name", 2, 150, r"[A-Za-z0-9][A-Za-z0-9\-_]{1,149}", "codebuild CreateProject name"),
        ("description", 0, 255, r"(?s).*", "codebuild CreateProject description"),
    ),
    "aws:codepipeline/pipeline:Pipeline": (("name", 1, 100, r"[A-Za-z0-9.@\-_]+", "codepipeline PipelineName"),),
    "aws:cloudwatch/metricAlarm:MetricAlarm": (
        ("name", 1, 255, r"(?s).+", "cloudwatch PutMetricAlarm AlarmName"),
        ("alarmDescription", 0, 1024, r"(?s).*", "cloudwatch PutMetricAlarm AlarmDescription"),
    ),
    "aws:secretsmanager/secret:Secret": (
        ("name", 1, 512, r"[A-Za-z0-9/_+=.@-]+", "Secrets Manager documentation: CreateSecret Name"),
        ("description", 0, 2048, r"(?s).*", "secretsmanager CreateSecret Description"),
    ),
    "aws:wafv2/webAcl:WebAcl": (
        ("name", 1, 128, r"^[\w\-]+$", "wafv2 CreateWebACL Name"),
        (
            "description",
            1,
            256,
            r"^[\w+=:#@/\-,\.][\w+=:#@/\-,\.\s]+[\w+=:#@/\-,\.]$",
            "wafv2 CreateWebACL Description",
        ),
    ),
    "aws:cloudwatch/eventRule:EventRule": (
        ("name", 1, 64, r"[\.\-_A-Za-z0-9]+", "events PutRule Name"),
        ("description", 0, 512, r"(?s).*", "events PutRule Description"),
    ),
    "aws:lambda/function:Function": (
        ("name", 1, 64, r"[a-zA-Z0-9-_]+", "Lambda documentation: a function name is at most 64 characters"),
        ("description", 0, 256, r"(?s).*", "lambda CreateFunction Description"),
    ),
    "aws:sns/topic:Topic": (("name", 1, 256, r"[A-Za-z0-9_-]+", "SNS documentation: CreateTopic Name"),),
    "aws:ecs/cluster:Cluster": (("name", 1, 255, r"[A-Za-z0-9_-]+", "ECS documentation: CreateCluster clusterName"),),
    "aws:ecs/service:Service": (("name", 1, 255, r"[A-Za-z0-9_-]+", "ECS documentation: CreateService serviceName"),),
    "aws:ecs/taskDefinition:TaskDefinition": (
        ("family", 1, 255, r"[A-Za-z0-9_-]+", "ECS documentation: RegisterTaskDefinition family"),
    ),
    "aws:ecr/repository:Repository": (
        (
            "name",
            2,
            256,
            r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*",
            "ecr CreateRepository repositoryName",
        ),
    ),
    "aws:kms/alias:Alias": (("name", 1, 256, r"^alias/(?!aws/)[a-zA-Z0-9:/_-]+$", "kms CreateAlias AliasName"),),
    "aws:ecr/pullThroughCacheRule:PullThroughCacheRule": (
        (
            "ecrRepositoryPrefix",
            2,
            30,
            r"^([a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*\/?|ROOT)$",
            "ecr CreatePullThroughCacheRule ecrRepositoryPrefix",
        ),
    ),
    "aws:ecr/repositoryCreationTemplate:RepositoryCreationTemplate": (
        (
            "prefix",
            1,
            256,
            r"^([a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*\/?|ROOT)$",
            "ecr CreateRepositoryCreationTemplate prefix",
        ),
        ("description", 0, 256, r"(?s).*", "ecr CreateRepositoryCreationTemplate description"),
    ),
    "aws:xray/group:Group": (("groupName", 1, 32, r"(?s).+", "xray CreateGroup GroupName"),),
    "aws:xray/samplingRule:SamplingRule": (("ruleName", 1, 32, r"(?s).+", "xray SamplingRule RuleName"),),
    "aws:s3/bucket:Bucket": (
        (
            "bucket",
            3,
            63,
            r"(?!xn--)(?!sthree-)[a-z0-9][a-z0-9.-]*[a-z0-9](?<!-s3alias)(?<!--ol-s3)",
            "S3 documentation: general purpose bucket naming rules",
        ),
    ),
    "aws:codecommit/repository:Repository": (
        ("repositoryName", 1, 100, r"[\w\.-]+", "codecommit CreateRepository repositoryName"),
        ("description", 0, 1000, r"(?s).*", "codecommit CreateRepository repositoryDescription"),
    ),
    "aws:codecommit/approvalRuleTemplate:ApprovalRuleTemplate": (
        ("name", 1, 100, r"(?s).+", "codecommit CreateApprovalRuleTemplate approvalRuleTemplateName"),
        ("description", 0, 1000, r"(?s).*", "codecommit CreateApprovalRuleTemplate approvalRuleTemplateDescription"),
    ),
    "aws:chatbot/slackChannelConfiguration:SlackChannelConfiguration": (
        ("configurationName", 1, 128, r"[A-Za-z0-9-_]+", "chatbot CreateSlackChannelConfiguration ConfigurationName"),
    ),
    "aws:codestarnotifications/notificationRule:NotificationRule": (
        ("name", 1, 64, r"[A-Za-z0-9\-_ ]+$", "codestar-notifications CreateNotificationRule Name"),
    ),
    "aws:cloudwatch/dashboard:Dashboard": (
        ("dashboardName", 1, 255, r"[A-Za-z0-9_-]+", "CloudWatch documentation: PutDashboard DashboardName"),
    ),
    "aws:cloudwatch/logMetricFilter:LogMetricFilter": (("name", 1, 512, r"[^:*]*", "logs PutMetricFilter filterName"),),
    "aws:appautoscaling/policy:Policy": (
        ("name", 1, 256, PRINTABLE, "application-autoscaling PutScalingPolicy PolicyName"),
    ),
    "aws:lb/loadBalancer:LoadBalancer": (("name", 1, 32, ELB_NAME, "ELB documentation: load balancer name"),),
    "aws:lb/targetGroup:TargetGroup": (
        ("name", 1, 32, r"(?!-)[A-Za-z0-9-]*(?<!-)", "ELB documentation: target group name"),
    ),
}
# WAF delivers logs to CloudWatch Logs only in log groups named so.
WAF_LOG_GROUP = re.compile(r":log-group:aws-waf-logs-[^:]+$")


def _names(props, args):
    for prop, shortest, longest, pattern, source in NAME_RULES.get(args.resource_type, ()):
        value = known(props.get(prop), prop)
        if value is None or not isinstance(value, str):
            continue
        if not shortest <= len(value) <= longest:
            yield (
                f"{prop} is {len(value)} characters; AWS accepts {shortest} to {longest} ({source}). Shorten {prop}."
            )
        elif not re.fullmatch(pattern, value):
            yield f"{prop} {value!r} has characters or a form AWS rejects ({source}: {pattern}). Rename it."
    if args.resource_type == "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration":
        for destination in known(props.get("logDestinationConfigs"), "logDestinationConfigs") or []:
            if ":logs:" in str(destination) and not WAF_LOG_GROUP.search(str(destination)):
                yield (
                    "WAF delivers logs only to log groups whose name starts with aws-waf-logs-, given by ARN "
                    f"without :*; got {destination}. Rename the log group."
                )


POLICIES = [
    resource_policy(
        "aws-names-and-descriptions",
        "Checks that names and descriptions use only the characters and lengths AWS's APIs accept.",
        tuple(NAME_RULES) + ("aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration",),
        _names,
        severity=Severity.HIGH,
    ),
]
