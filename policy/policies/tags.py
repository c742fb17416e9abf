"""Tags: every taggable resource carries the tags cost and ownership reports rely on."""

from pulumi_policy import PolicyConfigSchema, Severity

from ._util import is_unknown, resource_policy

DEFAULT_REQUIRED_TAGS = ["environment", "project"]
# The resource types of this platform that take tags.
TAGGABLE = (
    "aws:ecr/repository:Repository",
    "aws:ecs/cluster:Cluster",
    "aws:ecs/service:Service",
    "aws:ecs/taskDefinition:TaskDefinition",
    "aws:lb/loadBalancer:LoadBalancer",
    "aws:lb/targetGroup:TargetGroup",
    "aws:lb/listener:Listener",
    "aws:ec2/securityGroup:SecurityGroup",
    "aws:iam/role:Role",
    "aws:cloudwatch/logGroup:LogGroup",
    "aws:cloudwatch/metricAlarm:MetricAlarm",
    "aws:sns/topic:Topic",
    "aws:kms/key:Key",
    "aws:secretsmanager/secret:Secret",
    "aws:lambda/function:Function",
    "aws:s3/bucket:Bucket",
    "aws:codebuild/project:Project",
    "aws:codepipeline/pipeline:Pipeline",
    "aws:codecommit/repository:Repository",
)


def _required_tags(props, args):
    required = (args.get_config() or {}).get("tags", DEFAULT_REQUIRED_TAGS)
    tags = props.get("tags")
    if is_unknown(tags):
        return
    missing = [t for t in required if t not in (tags or {})]
    if missing:
        yield f"Resources must carry the tags {', '.join(required)}; missing {', '.join(missing)}. Add them to tags."


POLICIES = [
    resource_policy(
        "required-tags",
        "Checks that taggable resources carry the required tags.",
        TAGGABLE,
        _required_tags,
        severity=Severity.LOW,
        config_schema=PolicyConfigSchema(
            properties={"tags": {"type": "array", "items": {"type": "string"}, "default": DEFAULT_REQUIRED_TAGS}}
        ),
    ),
]
