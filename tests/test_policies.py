"""Policies through the analyzer protocol, on crafted resources: compliant, violating, property missing.

Each case is served to the real pack process exactly as `pulumi preview --policy-pack` would send it.
A test below checks that every policy of the pack has its cases here.
"""

import json
import re
from dataclasses import dataclass, field

import pytest

from offline.analyzer import LEVELS, struct


@dataclass
class Resource:
    type: str
    props: dict
    name: str = "r"
    parent: str = ""
    protect: bool = False
    ignore_changes: list = field(default_factory=list)
    dependencies: list = field(default_factory=list)
    property_dependencies: dict = field(default_factory=dict)

    @property
    def urn(self):
        return f"urn:pulumi:test::cicd::{self.type}::{self.name}"

    @property
    def object(self):
        return struct(self.props)


TD = "aws:ecs/taskDefinition:TaskDefinition"
GOOD_CONTAINER = {
    "name": "app",
    "image": "x",
    "user": "10001",
    "readonlyRootFilesystem": True,
    "logConfiguration": {"logDriver": "awslogs"},
    "environment": [{"name": "LOG_LEVEL", "value": "info"}],
}


def td(**changes):
    return {"containerDefinitions": json.dumps([{**GOOD_CONTAINER, **changes}]), "networkMode": "awsvpc"}


def doc(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


# policy, type, compliant props, violating props, props with the key property missing, missing violates?
RULE = "aws:cloudwatch/eventRule:EventRule"

CASES = [
    (
        "ecr-scan-on-push",
        "aws:ecr/repository:Repository",
        {"imageScanningConfiguration": {"scanOnPush": True}},
        {"imageScanningConfiguration": {"scanOnPush": False}},
        {},
        True,
    ),
    (
        "ecr-immutable-tags",
        "aws:ecr/repository:Repository",
        {"imageTagMutability": "IMMUTABLE"},
        {"imageTagMutability": "MUTABLE"},
        {},
        True,
    ),
    (
        "ecr-kms-encryption",
        "aws:ecr/repository:Repository",
        {"encryptionConfigurations": [{"encryptionType": "KMS", "kmsKey": "arn:aws:kms:us-east-1:1:key/k"}]},
        {"encryptionConfigurations": [{"encryptionType": "AES256"}]},
        {},
        True,
    ),
    (
        "ecs-cluster-container-insights",
        "aws:ecs/cluster:Cluster",
        {"settings": [{"name": "containerInsights", "value": "enabled"}]},
        {"settings": [{"name": "containerInsights", "value": "disabled"}]},
        {},
        True,
    ),
    ("ecs-no-privileged-containers", TD, td(), td(privileged=True), td(), False),
    (
        "ecs-readonly-root-filesystem",
        TD,
        td(),
        td(readonlyRootFilesystem=False),
        {"containerDefinitions": json.dumps([{"name": "app"}])},
        True,
    ),
    (
        "ecs-awsvpc-network-mode",
        TD,
        td(),
        {**td(), "networkMode": "bridge"},
        {"containerDefinitions": td()["containerDefinitions"]},
        True,
    ),
    ("ecs-container-logging", TD, td(), td(logConfiguration=None), {"containerDefinitions": '[{"name":"a"}]'}, True),
    (
        "ecs-no-plaintext-secrets",
        TD,
        td(),
        td(environment=[{"name": "DB_PASSWORD", "value": "x"}]),
        td(environment=None),
        False,
    ),
    (
        "ecs-service-no-public-ip",
        "aws:ecs/service:Service",
        {"networkConfiguration": {"assignPublicIp": False}},
        {"networkConfiguration": {"assignPublicIp": True}},
        {},
        False,
    ),
    (
        "ecs-fargate-platform-version",
        "aws:ecs/service:Service",
        {"platformVersion": "1.4.0"},
        {"platformVersion": "1.3.0"},
        {},
        False,
    ),
    (
        "alb-drop-invalid-headers",
        "aws:lb/loadBalancer:LoadBalancer",
        {"dropInvalidHeaderFields": True},
        {"dropInvalidHeaderFields": False},
        {},
        True,
    ),
    (
        "alb-desync-mitigation",
        "aws:lb/loadBalancer:LoadBalancer",
        {"desyncMitigationMode": "strictest"},
        {"desyncMitigationMode": "monitor"},
        {},
        False,
    ),
    (
        "lb-tls-policy",
        "aws:lb/listener:Listener",
        {"protocol": "HTTPS", "sslPolicy": "ELBSecurityPolicy-TLS13-1-2-2021-06"},
        {"protocol": "HTTPS", "sslPolicy": "ELBSecurityPolicy-2016-08"},
        {"protocol": "HTTPS"},
        True,
    ),
    (
        "lb-http-redirects-to-https",
        "aws:lb/listener:Listener",
        {"protocol": "HTTP", "defaultActions": [{"type": "redirect", "redirect": {"protocol": "HTTPS"}}]},
        {"protocol": "HTTP", "defaultActions": [{"type": "forward"}]},
        {"defaultActions": [{"type": "forward"}]},
        True,
    ),
    (
        "lb-deletion-protection",
        "aws:lb/loadBalancer:LoadBalancer",
        {"enableDeletionProtection": True},
        {"enableDeletionProtection": False},
        {},
        True,
    ),
    (
        "lb-access-logs",
        "aws:lb/loadBalancer:LoadBalancer",
        {"accessLogs": {"enabled": True, "bucket": "logs"}},
        {"accessLogs": {"enabled": False, "bucket": "logs"}},
        {},
        True,
    ),
    (
        "lb-target-group-health-check",
        "aws:lb/targetGroup:TargetGroup",
        {"healthCheck": {"enabled": True, "path": "/health"}},
        {"healthCheck": {"enabled": False}},
        {},
        True,
    ),
    (
        "sg-no-public-ingress",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        {"cidrIpv4": "0.0.0.0/0", "ipProtocol": "tcp", "fromPort": 443, "toPort": 443},
        {"cidrIpv4": "0.0.0.0/0", "ipProtocol": "tcp", "fromPort": 22, "toPort": 22},
        {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22},
        False,
    ),
    (
        "ec2-security-group-text",
        "aws:ec2/securityGroup:SecurityGroup",
        {
            "name": "web-dev-tasks",
            "description": "The tasks: port 8080 from the ALB (blue/green) #1, [x] & {y}!",
            "ingress": [{"description": "HTTPS from the VPC", "protocol": "tcp"}],
        },
        {"name": "web-dev-tasks", "description": "The service's tasks"},
        {"name": "web-dev-tasks"},
        False,
    ),
    ("aws-names-and-descriptions", "aws:ecs/cluster:Cluster", {"name": "web-dev"}, {"name": "web dev"}, {}, False),
    (
        "iam-no-admin-statements",
        "aws:iam/rolePolicy:RolePolicy",
        {"policy": doc({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})},
        {"policy": doc({"Effect": "Allow", "Action": "*", "Resource": "*"})},
        {},
        False,
    ),
    (
        "iam-trust-no-wildcard-principal",
        "aws:iam/role:Role",
        {
            "assumeRolePolicy": doc(
                {"Effect": "Allow", "Principal": {"Service": "ecs.amazonaws.com"}, "Action": "sts:AssumeRole"}
            )
        },
        {"assumeRolePolicy": doc({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"})},
        {},
        False,
    ),
    (
        "iam-pass-role-scoped",
        "aws:iam/rolePolicy:RolePolicy",
        {"policy": doc({"Effect": "Allow", "Action": "iam:PassRole", "Resource": "arn:aws:iam::1:role/x"})},
        {"policy": doc({"Effect": "Allow", "Action": ["iam:PassRole"], "Resource": ["*"]})},
        {},
        False,
    ),
    (
        "cloudwatch-log-group-retention",
        "aws:cloudwatch/logGroup:LogGroup",
        {"retentionInDays": 30},
        {"retentionInDays": 1},
        {},
        True,
    ),
    (
        "cloudwatch-log-group-kms",
        "aws:cloudwatch/logGroup:LogGroup",
        {"kmsKeyId": "arn:aws:kms:us-east-1:1:key/k"},
        {"kmsKeyId": ""},
        {},
        True,
    ),
    (
        "cloudwatch-alarm-actions",
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        {"alarmActions": ["arn:aws:sns:x"]},
        {"alarmActions": ["arn:aws:sns:x"], "actionsEnabled": False},
        {},
        True,
    ),
    ("kms-key-rotation", "aws:kms/key:Key", {"enableKeyRotation": True}, {"enableKeyRotation": False}, {}, True),
    (
        "sns-topic-cmk",
        "aws:sns/topic:Topic",
        {"kmsMasterKeyId": "arn:aws:kms:us-east-1:1:key/k"},
        {"kmsMasterKeyId": "alias/aws/sns"},
        {},
        True,
    ),
    (
        "secretsmanager-cmk",
        "aws:secretsmanager/secret:Secret",
        {"kmsKeyId": "arn:aws:kms:us-east-1:1:key/k"},
        {"kmsKeyId": "alias/aws/secretsmanager"},
        {},
        True,
    ),
    (
        "ecr-no-public-repository-policy",
        "aws:ecr/repositoryPolicy:RepositoryPolicy",
        {
            "policy": doc(
                {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::1:root"}, "Action": "ecr:BatchGetImage"}
            )
        },
        {"policy": doc({"Effect": "Allow", "Principal": "*", "Action": "ecr:BatchGetImage"})},
        {},
        False,
    ),
    ("ecs-no-host-namespaces", TD, td(), {**td(), "pidMode": "host"}, td(), False),
    ("ecs-non-root-user", TD, td(), td(user="root"), td(user=None), True),
    (
        "sg-descriptions",
        "aws:ec2/securityGroup:SecurityGroup",
        {"description": "The tasks", "ingress": [{"description": "from the ALB", "protocol": "tcp"}]},
        {"description": "Managed by Pulumi"},
        {},
        True,
    ),
    (
        "iam-no-service-wildcard-actions",
        "aws:iam/rolePolicy:RolePolicy",
        {"policy": doc({"Effect": "Allow", "Action": ["ecs:UpdateService"], "Resource": "arn:aws:ecs:x"})},
        {"policy": doc({"Effect": "Allow", "Action": "ecs:*", "Resource": "arn:aws:ecs:x"})},
        {},
        False,
    ),
    (
        "eventbridge-schedule-expression",
        "aws:cloudwatch/eventRule:EventRule",
        {"scheduleExpression": "cron(0 6 * * ? *)"},
        {"scheduleExpression": "cron(0 6 * * *)"},
        {},
        False,
    ),
    (
        "eventbridge-target-dlq-or-retry",
        "aws:cloudwatch/eventTarget:EventTarget",
        {"retryPolicy": {"maximumRetryAttempts": 3}},
        {"arn": "arn:aws:sns:x", "retryPolicy": None},
        {},
        True,
    ),
    ("s3-no-public-acl", "aws:s3/bucketAcl:BucketAcl", {"acl": "private"}, {"acl": "public-read"}, {}, False),
    (
        "s3-no-public-bucket-policy",
        "aws:s3/bucketPolicy:BucketPolicy",
        {
            "policy": doc(
                {
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": "*",
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            )
        },
        {"policy": doc({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "s3:GetObject", "Resource": "*"})},
        {},
        False,
    ),
    (
        "required-tags",
        "aws:sns/topic:Topic",
        {"tags": {"environment": "dev", "project": "cicd"}},
        {"tags": {"environment": "dev"}},
        {},
        True,
    ),
    (
        "codebuild-no-plaintext-credentials",
        "aws:codebuild/project:Project",
        {
            "environment": {
                "environmentVariables": [{"name": "SONAR_TOKEN", "value": "x/sonar", "type": "SECRETS_MANAGER"}]
            }
        },
        {"environment": {"environmentVariables": [{"name": "GITHUB_TOKEN", "value": "ghp_x"}]}},
        {"environment": {}},
        False,
    ),
    (
        "codebuild-logs-enabled",
        "aws:codebuild/project:Project",
        {"logsConfig": {"cloudwatchLogs": {"status": "ENABLED"}}},
        {"logsConfig": {"cloudwatchLogs": {"status": "DISABLED"}}},
        {},
        False,
    ),
    (
        "codebuild-kms-key",
        "aws:codebuild/project:Project",
        {"encryptionKey": "arn:aws:kms:us-east-1:1:key/k"},
        {"encryptionKey": "arn:aws:kms:us-east-1:1:alias/aws/s3"},
        {},
        True,
    ),
    (
        "codebuild-artifact-encryption",
        "aws:codebuild/project:Project",
        {"artifacts": {"type": "CODEPIPELINE"}},
        {"artifacts": {"type": "S3", "encryptionDisabled": True}},
        {},
        False,
    ),
    (
        "codebuild-privileged-only-for-images",
        "aws:codebuild/project:Project",
        {"name": "web-dev-image", "environment": {"privilegedMode": True}},
        {"name": "web-dev-unit-tests", "environment": {"privilegedMode": True}},
        {"name": "web-dev-unit-tests"},
        False,
    ),
    (
        "codebuild-image-matches-environment",
        "aws:codebuild/project:Project",
        {"environment": {"image": "aws/codebuild/amazonlinux-aarch64-standard:3.0", "type": "ARM_CONTAINER"}},
        {"environment": {"image": "aws/codebuild/amazonlinux-aarch64-standard:3.0", "type": "LINUX_CONTAINER"}},
        {"environment": {"type": "ARM_CONTAINER"}},
        False,
    ),
    (
        "codepipeline-artifact-store-kms",
        "aws:codepipeline/pipeline:Pipeline",
        {"artifactStores": [{"type": "S3", "location": "b", "encryptionKey": {"type": "KMS", "id": "arn:k"}}]},
        {"artifactStores": [{"type": "S3", "location": "b"}]},
        {},
        True,
    ),
]

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
SERVICE = "aws:ecs/service:Service"
BG_SERVICE = {
    "loadBalancers": [{"targetGroupArn": "tg"}],
    "deploymentCircuitBreaker": {"enable": True, "rollback": True},
    "deploymentConfiguration": {"strategy": "BLUE_GREEN"},
    "alarms": {"enable": True, "rollback": True, "alarmNames": ["green-5xx"]},
}


def bucket_set(*skip, **changes):
    """A bucket with everything a bucket needs, less the companions named in `skip`."""
    parts = {
        "block": Resource(
            "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
            {
                "bucket": "logs",
                "blockPublicAcls": True,
                "blockPublicPolicy": True,
                "ignorePublicAcls": True,
                "restrictPublicBuckets": True,
            },
            name="block",
        ),
        "encryption": Resource(
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
            {"bucket": "logs", "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]},
            name="encryption",
        ),
        "versioning": Resource(
            "aws:s3/bucketVersioning:BucketVersioning",
            {"bucket": "logs", "versioningConfiguration": {"status": "Enabled"}},
            name="versioning",
        ),
        "policy": Resource(
            "aws:s3/bucketPolicy:BucketPolicy",
            {
                "bucket": "logs",
                "policy": doc(
                    {
                        "Effect": "Deny",
                        "Principal": {"AWS": "*"},
                        "Action": "s3:*",
                        "Resource": "*",
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    }
                ),
            },
            name="policy",
        ),
        "logging": Resource(
            "aws:s3/bucketLogging:BucketLogging", {"bucket": "logs", "targetBucket": "central"}, name="logging"
        ),
    }
    for key, props in changes.items():
        parts[key] = Resource(parts[key].type, {**parts[key].props, **props}, name=key)
    return [Resource("aws:s3/bucket:Bucket", {"bucket": "logs"}, name="logs")] + [
        r for k, r in parts.items() if k not in skip
    ]


# -- ECS blue/green wiring ---------------------------------------------------------------------------


def _wiring(**changes):
    """A blue/green service with its target groups, listeners and rules; `changes` edits one part."""
    forward = lambda *arns: [{"type": "forward", "forward": {"targetGroups": [{"arn": a} for a in arns]}}]  # noqa: E731
    parts = {
        "blue": {"arn": "tg-blue", "name": "web-dev-blue"},
        "green": {"arn": "tg-green", "name": "web-dev-green"},
        "production": {"arn": "l-prod", "loadBalancerArn": "lb", "port": 80},
        "test": {"arn": "l-test", "loadBalancerArn": "lb", "port": 8080},
        "production-rule": {"arn": "r-prod", "listenerArn": "l-prod", "actions": forward("tg-blue", "tg-green")},
        "test-rule": {"arn": "r-test", "listenerArn": "l-test", "actions": forward("tg-blue", "tg-green")},
        "service": {
            "loadBalancers": [
                {
                    "targetGroupArn": "tg-blue",
                    "advancedConfiguration": {
                        "alternateTargetGroupArn": "tg-green",
                        "productionListenerRule": "r-prod",
                        "testListenerRule": "r-test",
                        "roleArn": "role",
                    },
                }
            ],
            "deploymentConfiguration": {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": "5"},
        },
    }
    for key, value in changes.items():
        parts[key] = value(parts[key]) if callable(value) else {**parts[key], **value}
    types = {
        "blue": "aws:lb/targetGroup:TargetGroup",
        "green": "aws:lb/targetGroup:TargetGroup",
        "production": "aws:lb/listener:Listener",
        "test": "aws:lb/listener:Listener",
        "production-rule": "aws:lb/listenerRule:ListenerRule",
        "test-rule": "aws:lb/listenerRule:ListenerRule",
        "service": "aws:ecs/service:Service",
    }
    return [Resource(types[k], v, name=k) for k, v in parts.items()]


def _lb(**advanced):
    return lambda svc: {
        **svc,
        "loadBalancers": [
            {
                **svc["loadBalancers"][0],
                "advancedConfiguration": {**svc["loadBalancers"][0]["advancedConfiguration"], **advanced},
            }
        ],
    }


# stack policy, compliant resources, violating resources, resources with the companion missing
STACK_CASES = [
    (
        "ecr-lifecycle-policy",
        [
            Resource("aws:ecr/repository:Repository", {"name": "web"}, name="repo"),
            Resource("aws:ecr/lifecyclePolicy:LifecyclePolicy", {"repository": "web", "policy": "{}"}, name="lc"),
        ],
        [
            Resource("aws:ecr/repository:Repository", {"name": "web"}, name="repo"),
            Resource("aws:ecr/lifecyclePolicy:LifecyclePolicy", {"repository": "other", "policy": "{}"}, name="lc"),
        ],
        [Resource("aws:ecr/repository:Repository", {"name": "web"}, name="repo")],
    ),
    (
        "ecs-service-rollback",
        [Resource(SERVICE, BG_SERVICE, name="svc"), Resource(ALARM, {"name": "green-5xx"}, name="alarm")],
        [
            Resource(
                SERVICE, {**BG_SERVICE, "deploymentCircuitBreaker": {"enable": True, "rollback": False}}, name="svc"
            ),
            Resource(ALARM, {"name": "green-5xx"}, name="alarm"),
        ],
        [Resource(SERVICE, BG_SERVICE, name="svc")],
    ),
    (
        "ecs-service-rollback",
        [Resource(SERVICE, BG_SERVICE, name="svc"), Resource(ALARM, {"name": "green-5xx"}, name="alarm")],
        [
            Resource(SERVICE, {**BG_SERVICE, "alarms": {**BG_SERVICE["alarms"], "rollback": False}}, name="svc"),
            Resource(ALARM, {"name": "green-5xx"}, name="alarm"),
        ],
        [Resource(SERVICE, {k: v for k, v in BG_SERVICE.items() if k != "alarms"}, name="svc")],
    ),
    ("s3-public-access-block", bucket_set(), bucket_set(block={"ignorePublicAcls": False}), bucket_set("block")),
    ("s3-default-encryption", bucket_set(), bucket_set(encryption={"bucket": "other"}), bucket_set("encryption")),
    (
        "s3-versioning",
        bucket_set(),
        bucket_set(versioning={"versioningConfiguration": {"status": "Suspended"}}),
        bucket_set("versioning"),
    ),
    ("s3-access-logging", bucket_set(), bucket_set(logging={"bucket": "other"}), bucket_set("logging")),
    (
        "s3-ssl-only",
        bucket_set(),
        bucket_set(
            policy={
                "policy": doc({"Effect": "Allow", "Principal": {"AWS": "x"}, "Action": "s3:GetObject", "Resource": "*"})
            }
        ),
        bucket_set("policy"),
    ),
    (
        "codecommit-approval-rule",
        [
            Resource("aws:codecommit/repository:Repository", {"repositoryName": "web"}, name="repo"),
            Resource(
                "aws:codecommit/approvalRuleTemplateAssociation:ApprovalRuleTemplateAssociation",
                {"repositoryName": "web", "approvalRuleTemplateName": "t"},
                name="assoc",
            ),
        ],
        [
            Resource("aws:codecommit/repository:Repository", {"repositoryName": "web"}, name="repo"),
            Resource(
                "aws:codecommit/approvalRuleTemplateAssociation:ApprovalRuleTemplateAssociation",
                {"repositoryName": "api", "approvalRuleTemplateName": "t"},
                name="assoc",
            ),
        ],
        [Resource("aws:codecommit/repository:Repository", {"repositoryName": "web"}, name="repo")],
    ),
    (
        "ecs-blue-green-wiring",
        _wiring(),
        _wiring(test={"port": 80}),
        _wiring(service=lambda s: {**s, "loadBalancers": [{"targetGroupArn": "tg-blue"}]}),
    ),
]


def findings(server, resource, policy):
    return [f for f in server.analyze([resource]) if f.policy == policy]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_policy_both_ways_and_with_the_property_missing(case, policy_server):
    policy, typ, good, bad, missing, missing_violates = case
    policy_server.configure({})
    assert findings(policy_server, Resource(typ, good), policy) == []
    violations = findings(policy_server, Resource(typ, bad), policy)
    assert len(violations) >= 1 and not violations[0].could_not_run
    assert "." in violations[0].message.splitlines()[-1]  # a message that says how to fix it
    assert bool(findings(policy_server, Resource(typ, missing), policy)) is missing_violates


@pytest.mark.parametrize("case", STACK_CASES, ids=[c[0] for c in STACK_CASES])
def test_stack_policy_both_ways_and_with_the_companion_missing(case, policy_server):
    policy, good, bad, missing = case
    policy_server.configure({})
    found = lambda resources: [f for f in policy_server.analyze(resources) if f.policy == policy]  # noqa: E731
    assert found(good) == []
    violations = found(bad)
    assert len(violations) == 1 and violations[0].urn.startswith("urn:pulumi:")
    assert len(found(missing)) == 1


def test_every_policy_in_the_pack_is_tested_both_ways(policy_server):
    names = {p.name for p in policy_server.info().policies}
    # monthly-budget needs a whole stack and a budget: tests/test_cost.py tests it both ways.
    tested = {c[0] for c in CASES} | {c[0] for c in STACK_CASES} | {"monthly-budget"}
    assert len(names) >= 35
    assert names - tested == set()


def test_every_policy_is_described_and_leveled(policy_server):
    for info in policy_server.info().policies:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)+", info.name), info.name
        assert info.description.startswith("Checks that"), info.name
        assert LEVELS[info.enforcementLevel] in ("advisory", "mandatory"), info.name
        assert info.severity != 0, f"{info.name} has no severity"


@pytest.mark.parametrize(
    "typ, props",
    [
        (
            "aws:ec2/securityGroup:SecurityGroup",
            {"description": "ok", "egress": [{"description": "To the tasks' port"}]},
        ),
        ("aws:ec2/securityGroup:SecurityGroup", {"description": "ok", "name": "webé"}),
        ("aws:ec2/securityGroup:SecurityGroup", {"description": "x" * 256}),
        ("aws:ec2/securityGroupRule:SecurityGroupRule", {"type": "ingress", "description": 'say "hi"'}),
        ("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", {"description": "<ALB>"}),
        ("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule", {"description": "100% of it?"}),
        # "&" is allowed in a group's description but not in a rule's.
        ("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", {"description": "ALB & tasks"}),
        ("aws:ec2/securityGroup:SecurityGroup", {"description": "ok", "ingress": [{"description": "ALB & tasks"}]}),
    ],
)
def test_ec2_text_rejects_what_ec2_rejects_on_every_type(typ, props, policy_server):
    policy_server.configure({})
    found = findings(policy_server, Resource(typ, props), "ec2-security-group-text")
    assert len(found) == 1 and found[0].level == "mandatory" and not found[0].could_not_run


def test_ec2_text_accepts_the_longest_allowed_rule_description(policy_server):
    policy_server.configure({})
    props = {"description": "a" * 255}
    assert (
        findings(
            policy_server,
            Resource("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule", props),
            "ec2-security-group-text",
        )
        == []
    )


def test_configured_minimum_retention_applies(policy_server):
    policy_server.configure({"cloudwatch-log-group-retention": {"minimumRetentionDays": 90}})
    try:
        found = findings(
            policy_server,
            Resource("aws:cloudwatch/logGroup:LogGroup", {"retentionInDays": 30}),
            "cloudwatch-log-group-retention",
        )
    finally:
        policy_server.configure({})
    assert len(found) == 1 and "90" in found[0].message


def test_unknown_values_are_deliberate(policy_server):
    unknown = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
    policy_server.configure({})
    # A presence check passes when the key ARN is set but not yet known...
    assert (
        findings(
            policy_server,
            Resource("aws:cloudwatch/logGroup:LogGroup", {"retentionInDays": 30, "kmsKeyId": unknown}),
            "cloudwatch-log-group-kms",
        )
        == []
    )
    # ...while a check of an unknown document reports that it could not run.
    found = findings(
        policy_server,
        Resource(TD, {"containerDefinitions": unknown, "networkMode": "awsvpc"}),
        "ecs-readonly-root-filesystem",
    )
    assert len(found) == 1 and found[0].could_not_run and found[0].level == "advisory"


def test_stack_policies_see_missing_companions(policy_server):
    policy_server.configure({})
    bucket = Resource("aws:s3/bucket:Bucket", {"bucket": "logs"}, name="logs")
    repo = Resource("aws:ecr/repository:Repository", {"name": "web"}, name="repo")
    names = {f.policy for f in policy_server.analyze([bucket, repo]) if f.level == "mandatory"}
    assert {
        "s3-public-access-block",
        "s3-default-encryption",
        "s3-versioning",
        "s3-ssl-only",
        "s3-access-logging",
        "ecr-lifecycle-policy",
    } <= names


def test_a_log_destination_bucket_need_not_log_itself(policy_server):
    policy_server.configure({})
    central = Resource("aws:s3/bucket:Bucket", {"bucket": "central"}, name="central")
    logged = [f.urn for f in policy_server.analyze([*bucket_set(), central]) if f.policy == "s3-access-logging"]
    assert logged == []  # central receives the logs of `logs`
    lb = Resource("aws:lb/loadBalancer:LoadBalancer", {"accessLogs": {"bucket": "central", "enabled": True}})
    assert not [f for f in policy_server.analyze([central, lb]) if f.policy == "s3-access-logging"]
    off = Resource("aws:lb/loadBalancer:LoadBalancer", {"accessLogs": {"bucket": "central", "enabled": False}})
    (found,) = [f for f in policy_server.analyze([central, off]) if f.policy == "s3-access-logging"]
    assert found.urn == central.urn and "central must log access" in found.message


@pytest.mark.parametrize(
    "changes, phrase",
    [
        ({"test": {"port": 80}}, "different ports"),
        ({"test": {"loadBalancerArn": "other-lb"}}, "same load balancer"),
        ({"service": _lb(alternateTargetGroupArn="tg-blue")}, "must differ"),
        ({"service": _lb(testListenerRule="r-prod")}, "listener rules must differ"),
        ({"test-rule": {"actions": [{"type": "forward", "targetGroupArn": "tg-blue"}]}}, "forward to both"),
        (
            {
                "service": lambda s: {
                    **s,
                    "deploymentConfiguration": {
                        "strategy": "CANARY",
                        "bakeTimeInMinutes": "5",
                        "canaryConfiguration": {"canaryPercent": 0},
                    },
                }
            },
            "canaryPercent",
        ),
        (
            {
                "service": lambda s: {
                    **s,
                    "deploymentConfiguration": {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": "2000"},
                }
            },
            "bake time of 0 to 1440",
        ),
    ],
)
def test_blue_green_wiring_mistakes_are_each_caught(changes, phrase, policy_server):
    policy_server.configure({})
    found = [f for f in policy_server.analyze(_wiring(**changes)) if f.policy == "ecs-blue-green-wiring"]
    assert len(found) == 1 and phrase in found[0].message and found[0].level == "mandatory", found


def test_blue_green_wiring_reads_the_program_as_planned(dev, policy_server):
    """Through the outputs the engine gives stack policies: the program passes, and one wrong port fails."""
    import copy

    policy_server.configure({})
    resources = [copy.copy(r) for r in dev.registrations]
    assert [f for f in policy_server.analyze(resources) if f.policy == "ecs-blue-green-wiring"] == []
    test_listener = next(r for r in resources if r.name == "service-test")
    moved = type(test_listener.output_object)()
    moved.CopyFrom(test_listener.output_object)
    moved.fields["port"].number_value = 80
    test_listener.output_object = moved
    found = [f for f in policy_server.analyze(resources) if f.policy == "ecs-blue-green-wiring"]
    assert len(found) == 1 and "different ports" in found[0].message


@pytest.mark.parametrize(
    "kind, compute, allowed",
    [
        ("ARM_CONTAINER", "BUILD_GENERAL1_SMALL", True),
        ("ARM_CONTAINER", "BUILD_GENERAL1_2XLARGE", True),
        ("LINUX_GPU_CONTAINER", "BUILD_GENERAL1_MEDIUM", False),
        ("ARM_CONTAINER", "BUILD_LAMBDA_1GB", False),
        ("LINUX_LAMBDA_CONTAINER", "BUILD_LAMBDA_4GB", True),
    ],
)
def test_compute_types_fit_the_environment_type(kind, compute, allowed, policy_server):
    policy_server.configure({})
    project = Resource("aws:codebuild/project:Project", {"environment": {"type": kind, "computeType": compute}})
    found = findings(policy_server, project, "codebuild-image-matches-environment")
    assert (found == []) is allowed, found


def test_an_x86_image_in_an_arm_environment_is_refused(policy_server):
    policy_server.configure({})
    project = Resource(
        "aws:codebuild/project:Project",
        {"environment": {"image": "aws/codebuild/amazonlinux-x86_64-standard:5.0", "type": "ARM_CONTAINER"}},
    )
    found = findings(policy_server, project, "codebuild-image-matches-environment")
    assert len(found) == 1 and "built for x86" in found[0].message


# -- edge forms: each policy must see through the forms a document or rule may take -----------------


def _role_policy(*statements):
    return Resource("aws:iam/rolePolicy:RolePolicy", {"policy": doc(*statements)})


@pytest.mark.parametrize(
    "policy, resource, violates",
    [
        ("iam-no-admin-statements", _role_policy({"Effect": "Allow", "Action": "*", "Resource": "*"}), True),
        (
            "iam-no-admin-statements",
            _role_policy({"Effect": "Allow", "Action": ["s3:GetObject", "*"], "Resource": ["arn:aws:s3:::b/*", "*"]}),
            True,
        ),
        ("iam-no-admin-statements", _role_policy({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}), True),
        (
            "iam-no-admin-statements",
            _role_policy({"Effect": "Allow", "Action": "*", "NotResource": "arn:aws:s3:::b"}),
            True,
        ),
        (
            "iam-no-admin-statements",
            _role_policy(
                {"Effect": "Deny", "Action": "*", "Resource": "*"},
                {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
            ),
            False,
        ),
        ("iam-pass-role-scoped", _role_policy({"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"}), True),
        (
            "iam-pass-role-scoped",
            _role_policy({"Effect": "Allow", "Action": "iam:PassRole", "Resource": "arn:aws:iam::1:role/x"}),
            False,
        ),
        (
            "iam-trust-no-wildcard-principal",
            Resource(
                "aws:iam/role:Role",
                {"assumeRolePolicy": doc({"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"})},
            ),
            True,
        ),
        (
            "iam-trust-no-wildcard-principal",
            Resource(
                "aws:iam/role:Role",
                {
                    "assumeRolePolicy": doc(
                        {
                            "Effect": "Allow",
                            "Principal": {"AWS": ["arn:aws:iam::1:root", "*"]},
                            "Action": "sts:AssumeRole",
                        }
                    )
                },
            ),
            True,
        ),
        (
            "sg-no-public-ingress",
            Resource(
                "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
                {"cidrIpv4": "0.0.0.0/0", "ipProtocol": "-1"},
            ),
            True,
        ),
        (
            "sg-no-public-ingress",
            Resource(
                "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
                {"cidrIpv4": "0.0.0.0/0", "ipProtocol": "tcp", "fromPort": 0, "toPort": 65535},
            ),
            True,
        ),
        (
            "sg-no-public-ingress",
            Resource(
                "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
                {"cidrIpv6": "::/0", "ipProtocol": "tcp", "fromPort": 22, "toPort": 22},
            ),
            True,
        ),
        (
            "sg-no-public-ingress",
            Resource(
                "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
                {"cidrIpv4": "0.0.0.0/0", "ipProtocol": "tcp", "fromPort": 443, "toPort": 65535},
            ),
            True,
        ),  # starts on a web port, opens the rest
        (
            "sg-no-public-ingress",
            Resource(
                "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
                {"cidrIpv6": "::/0", "ipProtocol": "tcp", "fromPort": 443, "toPort": 443},
            ),
            False,
        ),
        # Inline rules of a security group open to IPv6 everywhere; protocol -1 whatever its ports.
        (
            "sg-no-public-ingress",
            Resource(
                "aws:ec2/securityGroup:SecurityGroup",
                {"ingress": [{"ipv6CidrBlocks": ["::/0"], "protocol": "tcp", "fromPort": 22, "toPort": 22}]},
            ),
            True,
        ),
        (
            "sg-no-public-ingress",
            Resource(
                "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
                {"cidrIpv4": "0.0.0.0/0", "ipProtocol": "-1", "fromPort": 443, "toPort": 443},
            ),
            True,
        ),
        # An unrelated Deny with a wildcard principal is no trust to flag.
        (
            "iam-trust-no-wildcard-principal",
            Resource(
                "aws:iam/role:Role",
                {
                    "assumeRolePolicy": doc(
                        {"Effect": "Allow", "Principal": {"Service": "ecs.amazonaws.com"}, "Action": "sts:AssumeRole"},
                        {"Effect": "Deny", "Principal": "*", "Action": "sts:AssumeRole"},
                    )
                },
            ),
            False,
        ),
        ("eventbridge-schedule-expression", Resource(RULE, {"scheduleExpression": "rate(5 minutes)"}), False),
        ("eventbridge-schedule-expression", Resource(RULE, {"scheduleExpression": "rate(1 hour)"}), False),
        ("eventbridge-schedule-expression", Resource(RULE, {"scheduleExpression": "rate(1 minutes)"}), True),
        ("eventbridge-schedule-expression", Resource(RULE, {"scheduleExpression": "cron(0 6 ? * MON-FRI *)"}), False),
        ("eventbridge-schedule-expression", Resource(RULE, {"scheduleExpression": "cron(0 6 ? * ? *)"}), True),
        ("eventbridge-schedule-expression", Resource(RULE, {"scheduleExpression": "cron(0 6 1 * 2 *)"}), True),
        (
            "sg-no-public-ingress",
            Resource(
                "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
                {"cidrIpv4": "0.0.0.0/0", "ipProtocol": "tcp", "fromPort": 80, "toPort": 443},
            ),
            True,
        ),  # both ends are web ports, the range between them is not
        (
            "sg-no-public-ingress",
            Resource(
                "aws:ec2/securityGroupRule:SecurityGroupRule",
                {"type": "ingress", "ipv6CidrBlocks": ["::/0"], "protocol": "tcp", "fromPort": 3389, "toPort": 3389},
            ),
            True,
        ),
        (
            "sg-no-public-ingress",
            Resource(
                "aws:ec2/securityGroup:SecurityGroup",
                {
                    "ingress": [
                        {"cidrBlocks": ["0.0.0.0/0"], "protocol": "tcp", "fromPort": 443, "toPort": 443},
                        {
                            "cidrBlocks": ["10.0.0.0/8", "0.0.0.0/0"],
                            "protocol": "tcp",
                            "fromPort": 5432,
                            "toPort": 5432,
                        },
                    ]
                },
            ),
            True,
        ),
        (
            "lb-http-redirects-to-https",
            Resource(
                "aws:lb/listener:Listener",
                {
                    "protocol": "HTTP",
                    "defaultActions": [{"type": "redirect", "redirect": {"protocol": "HTTP", "port": "8080"}}],
                },
            ),
            True,
        ),
        (
            "ecs-no-privileged-containers",
            Resource(
                TD,
                {
                    "containerDefinitions": json.dumps(
                        [GOOD_CONTAINER, {**GOOD_CONTAINER, "name": "sidecar", "privileged": True}]
                    )
                },
            ),
            True,
        ),
        (
            "ecs-readonly-root-filesystem",
            Resource(
                TD,
                {
                    "containerDefinitions": json.dumps(
                        [GOOD_CONTAINER, {**GOOD_CONTAINER, "name": "sidecar", "readonlyRootFilesystem": False}]
                    )
                },
            ),
            True,
        ),
        (
            "ecs-container-logging",
            Resource(
                TD,
                {
                    "containerDefinitions": json.dumps(
                        [GOOD_CONTAINER, {**GOOD_CONTAINER, "name": "sidecar", "logConfiguration": None}]
                    )
                },
            ),
            True,
        ),
        (
            "ecs-no-plaintext-secrets",
            Resource(
                TD,
                {
                    "containerDefinitions": json.dumps(
                        [
                            GOOD_CONTAINER,
                            {
                                **GOOD_CONTAINER,
                                "name": "sidecar",
                                "environment": [{"name": "UPSTREAM", "value": "AKIAIOSFODNN7EXAMPLE"}],
                            },
                        ]
                    )
                },
            ),
            True,
        ),
    ],
)
def test_policies_see_through_edge_forms(policy, resource, violates, policy_server):
    policy_server.configure({})
    found = [f for f in findings(policy_server, resource, policy) if not f.could_not_run]
    assert bool(found) is violates, found


# -- edge forms, as IAM and the APIs read them ----------------------------------------------------


@pytest.mark.parametrize(
    "action, violates",
    [
        ("iam:PassRole", True),
        ("IAM:PASSROLE", True),  # IAM reads action names without case
        ("iam:Pass*", True),
        ("iam:P*", True),
        ("iam:*Role", True),
        ("iam:Pas?Role", True),
        ("*:PassRole", True),
        ("iam:*", True),
        ("*", True),
        ("iam:PassRoles", False),
        ("iam:GetRole", False),
        ("iam:Pass", False),
        ("iam:Get*", False),
    ],
)
def test_pass_role_in_any_form_iam_reads_is_refused_on_every_role(action, violates, policy_server):
    policy_server.configure({})
    found = findings(
        policy_server, _role_policy({"Effect": "Allow", "Action": action, "Resource": "*"}), "iam-pass-role-scoped"
    )
    assert bool(found) is violates
    scoped = _role_policy({"Effect": "Allow", "Action": action, "Resource": "arn:aws:iam::1:role/x"})
    assert findings(policy_server, scoped, "iam-pass-role-scoped") == []


@pytest.mark.parametrize(
    "excluded, violates",
    [(["s3:*"], True), (["iam:PassRole"], False), (["IAM:pass*"], False), (["iam:Get*"], True), (["iam:*"], False)],
)
def test_not_action_grants_pass_role_unless_it_excludes_it_in_any_form(excluded, violates, policy_server):
    policy_server.configure({})
    statement = {"Effect": "Allow", "NotAction": excluded, "Resource": "*"}
    assert bool(findings(policy_server, _role_policy(statement), "iam-pass-role-scoped")) is violates


@pytest.mark.parametrize("action", ["*", "*:*"])
def test_every_action_on_every_resource_in_either_spelling_is_admin(action, policy_server):
    policy_server.configure({})
    statement = {"Effect": "Allow", "Action": action, "Resource": "*"}
    assert findings(policy_server, _role_policy(statement), "iam-no-admin-statements")


@pytest.mark.parametrize(
    "container, violates",
    [
        ({"privileged": True}, True),
        ({"linuxParameters": {"capabilities": {"add": ["SYS_ADMIN"]}}}, True),
        ({"linuxParameters": {"capabilities": {"add": ["CAP_NET_ADMIN"]}}}, True),
        ({"linuxParameters": {"capabilities": {"add": ["all"]}}}, True),
        ({"linuxParameters": {"devices": [{"hostPath": "/dev/fuse"}]}}, True),
        ({"linuxParameters": {"capabilities": {"add": ["NET_BIND_SERVICE"]}}}, False),
        ({"linuxParameters": {"capabilities": {"drop": ["ALL"]}, "initProcessEnabled": True}}, False),
        ({"privileged": False}, False),
    ],
)
def test_every_privilege_setting_of_a_container_is_refused(container, violates, policy_server):
    policy_server.configure({})
    resource = Resource(TD, td(**container))
    assert bool(findings(policy_server, resource, "ecs-no-privileged-containers")) is violates


@pytest.mark.parametrize(
    "task, violates",
    [
        ({"pidMode": "host"}, True),
        ({"ipcMode": "host"}, True),
        ({"ipcMode": "HOST"}, True),
        ({"volumes": [{"name": "root", "hostPath": "/"}]}, True),
        ({"pidMode": "task", "ipcMode": "none"}, False),
        ({"volumes": [{"name": "tmp"}]}, False),
    ],
)
def test_every_host_namespace_of_a_task_is_refused(task, violates, policy_server):
    policy_server.configure({})
    assert bool(findings(policy_server, Resource(TD, {**td(), **task}), "ecs-no-host-namespaces")) is violates


@pytest.mark.parametrize(
    "policy, typ, key",
    [
        ("sns-topic-cmk", "aws:sns/topic:Topic", "kmsMasterKeyId"),
        ("secretsmanager-cmk", "aws:secretsmanager/secret:Secret", "kmsKeyId"),
        ("codebuild-kms-key", "aws:codebuild/project:Project", "encryptionKey"),
    ],
)
@pytest.mark.parametrize(
    "value", ["alias/aws/sns", "alias/aws/secretsmanager", "alias/aws/s3", "arn:aws:kms:us-east-1:1:alias/aws/s3"]
)
def test_any_aws_managed_key_is_not_a_customer_managed_one(policy, typ, key, value, policy_server):
    policy_server.configure({})
    props = {key: value}
    if typ == "aws:codebuild/project:Project":
        props = {**props, "environment": {"type": "LINUX_CONTAINER"}}
    assert findings(policy_server, Resource(typ, props), policy)
    assert not findings(policy_server, Resource(typ, {**props, key: "arn:aws:kms:us-east-1:1:key/k"}), policy)


@pytest.mark.parametrize(
    "configuration, violates",
    [
        ([{"encryptionType": "KMS"}], True),  # KMS without a key is ECR's AWS-managed key
        ([{"encryptionType": "KMS", "kmsKey": "arn:aws:kms:us-east-1:1:alias/aws/ecr"}], True),
        ([{"encryptionType": "AES256"}], True),
        ([], True),
        ([{"encryptionType": "KMS", "kmsKey": "arn:aws:kms:us-east-1:1:key/k"}], False),
    ],
)
def test_ecr_kms_means_a_customer_managed_key(configuration, violates, policy_server):
    policy_server.configure({})
    resource = Resource("aws:ecr/repository:Repository", {"encryptionConfigurations": configuration})
    assert bool(findings(policy_server, resource, "ecr-kms-encryption")) is violates


@pytest.mark.parametrize("minimum", [7, 90])
def test_retention_one_day_under_the_configured_minimum_is_refused(minimum, policy_server):
    policy_server.configure({"cloudwatch-log-group-retention": {"minimumRetentionDays": minimum}})
    try:
        group = "aws:cloudwatch/logGroup:LogGroup"
        under = {7: 6, 90: 89}[minimum]
        assert findings(policy_server, Resource(group, {"retentionInDays": under}), "cloudwatch-log-group-retention")
        assert not findings(
            policy_server, Resource(group, {"retentionInDays": minimum}), "cloudwatch-log-group-retention"
        )
    finally:
        policy_server.configure({})


@pytest.mark.parametrize("value", ["false", "False", False])
def test_a_tls_only_deny_is_recognised_in_each_spelling_iam_accepts(value, policy_server):
    """IAM reads a Bool condition's "false", "False" and JSON false alike: each is a TLS-only bucket."""
    policy_server.configure({})
    deny = {
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Action": "s3:*",
        "Resource": "*",
        "Condition": {"Bool": {"aws:SecureTransport": value}},
    }
    resources = bucket_set(policy={"policy": doc(deny)})
    assert [f for f in policy_server.analyze(resources) if f.policy == "s3-ssl-only"] == []
    allow = {**deny, "Condition": {"Bool": {"aws:SecureTransport": "true"}}}
    resources = bucket_set(policy={"policy": doc(allow)})
    assert [f for f in policy_server.analyze(resources) if f.policy == "s3-ssl-only"]


def test_only_the_documented_policies_are_advisory_by_default(policy_server):
    """Every policy is mandatory unless the README lists it as advisory: a rule quietly made advisory
    (a secret in plain environment, say) would stop failing deploys."""
    from offline.analyzer import analyzer_pb2

    levels = {p.name: p.enforcementLevel for p in policy_server.info().policies}
    advisory = sorted(name for name, level in levels.items() if level != analyzer_pb2.MANDATORY)
    assert advisory == [
        "codebuild-privileged-only-for-images",
        "codecommit-approval-rule",
        "ecs-non-root-user",
        "eventbridge-target-dlq-or-retry",
        "iam-no-service-wildcard-actions",
        "monthly-budget",
        "sg-descriptions",
    ]
    assert all(levels[name] == analyzer_pb2.ADVISORY for name in advisory)
    assert levels["ecs-no-plaintext-secrets"] == levels["iam-pass-role-scoped"] == analyzer_pb2.MANDATORY


@pytest.mark.parametrize(
    "policy, typ, props",
    [
        ("ecs-service-no-public-ip", SERVICE, {"networkConfiguration": {"assignPublicIp": "UNKNOWN"}}),
        (
            "ecr-scan-on-push",
            "aws:ecr/repository:Repository",
            {"imageScanningConfiguration": {"scanOnPush": "UNKNOWN"}},
        ),
    ],
)
def test_a_nested_value_unknown_at_preview_is_a_check_that_could_not_run(policy, typ, props, policy_server):
    """Not a pass and not a violation: the leaf itself is unknown, as at a first preview."""
    from pulumi_policy.proxy import UNKNOWN_BOOLEAN_VALUE, UNKNOWN_STRING_VALUE

    def unknown(value):
        if isinstance(value, dict):
            return {k: unknown(v) for k, v in value.items()}
        return (
            (UNKNOWN_BOOLEAN_VALUE if policy != "ecs-service-no-public-ip" else UNKNOWN_STRING_VALUE)
            if value == "UNKNOWN"
            else value
        )

    policy_server.configure({})
    found = findings(policy_server, Resource(typ, unknown(props)), policy)
    assert found and all(f.could_not_run for f in found), found


@pytest.mark.parametrize(
    "typ",
    [
        "aws:iam/rolePolicy:RolePolicy",
        "aws:iam/policy:Policy",
        "aws:iam/userPolicy:UserPolicy",
        "aws:iam/groupPolicy:GroupPolicy",
    ],
)
def test_every_kind_of_permission_document_is_read(typ, policy_server):
    """A managed policy attached to a role grants as much as an inline one."""
    policy_server.configure({})
    admin = Resource(typ, {"policy": doc({"Effect": "Allow", "Action": "*", "Resource": "*"})})
    assert findings(policy_server, admin, "iam-no-admin-statements")
    passes = Resource(typ, {"policy": doc({"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"})})
    assert findings(policy_server, passes, "iam-pass-role-scoped")


def test_a_statement_given_as_one_object_is_read_like_a_list_of_one(policy_server):
    """IAM, S3 and KMS accept "Statement": {...}: it must be checked as well."""
    policy_server.configure({})
    single = json.dumps({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}})
    assert findings(
        policy_server, Resource("aws:iam/rolePolicy:RolePolicy", {"policy": single}), "iam-no-admin-statements"
    )
    public = json.dumps({"Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*"}})
    assert findings(
        policy_server, Resource("aws:s3/bucketPolicy:BucketPolicy", {"policy": public}), "s3-no-public-bucket-policy"
    )


@pytest.mark.parametrize("action", ["iam:PassRole*", "iam:*PassRole", "*iam:PassRole", "iam:Pass*Role"])
def test_a_star_matches_no_characters_too(action, policy_server):
    policy_server.configure({})
    statement = {"Effect": "Allow", "Action": action, "Resource": "*"}
    assert findings(policy_server, _role_policy(statement), "iam-pass-role-scoped"), action


@pytest.mark.parametrize(
    "ssl_policy",
    [
        "ELBSecurityPolicy-TLS-1-1-2017-01",  # TLS 1.1 and up
        "ELBSecurityPolicy-2016-08",  # TLS 1.0 and up: the API's default
        "ELBSecurityPolicy-TLS13-1-1-2021-06",  # TLS 1.3 named, but 1.1 still offered
        "ELBSecurityPolicy-TLS13-1-0-2021-06",
        "ELBSecurityPolicy-FS-1-1-2019-08",
    ],
)
def test_a_listener_policy_that_still_negotiates_tls_below_1_2_is_refused(ssl_policy, policy_server):
    policy_server.configure({})
    listener = Resource("aws:lb/listener:Listener", {"protocol": "HTTPS", "sslPolicy": ssl_policy})
    assert findings(policy_server, listener, "lb-tls-policy"), ssl_policy
