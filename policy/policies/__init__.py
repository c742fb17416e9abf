"""The policies of the cicd pack, by domain."""

from . import budget, cloudwatch, codebuild, ec2, ecr, ecs, encryption, events, iam, lb, naming, s3, tags

ALL_POLICIES = [
    *ecr.POLICIES,
    *ecs.POLICIES,
    *lb.POLICIES,
    *ec2.POLICIES,
    *iam.POLICIES,
    *cloudwatch.POLICIES,
    *encryption.POLICIES,
    *events.POLICIES,
    *s3.POLICIES,
    *codebuild.POLICIES,
    *tags.POLICIES,
    *naming.POLICIES,
    *budget.POLICIES,
]
