"""A private S3 bucket as pulumi-aws 7 builds one: the bucket and the resources that secure it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from .common import child_opts, policy_document, stateful_opts


@dataclass
class PrivateBucket:
    bucket: aws.s3.Bucket
    name: pulumi.Output[str]
    arn: pulumi.Output[str]
    policy: aws.s3.BucketPolicy


def private_bucket(
    parent: pulumi.Resource,
    name: str,
    *,
    bucket_name: pulumi.Input[str],
    partition: str,
    expiration_days: int | None,
    protect: bool,
    tags: Mapping[str, str],
    kms_key_arn: pulumi.Input[str] | None = None,
    statements: Callable[[pulumi.Output[str]], Sequence[Mapping[str, Any]]] = lambda arn: (),
) -> PrivateBucket:
    """All public access blocked, ACLs disabled, default encryption (KMS when a key is given, else
    SSE-S3), versioning, TLS-only access, and objects that expire after `expiration_days` (None: kept;
    replaced versions expire after a week either way).

    `statements(bucket_arn)` adds statements to the bucket policy (who may write, for example).
    """
    bucket = aws.s3.Bucket(
        name,
        bucket=bucket_name,
        force_destroy=not protect,
        tags=dict(tags),
        opts=stateful_opts(parent, protect),
    )
    bucket_id = bucket.bucket
    bucket_arn = pulumi.Output.concat("arn:", partition, ":s3:::", bucket_name)
    block = aws.s3.BucketPublicAccessBlock(
        f"{name}-block",
        bucket=bucket_id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=child_opts(parent),
    )
    aws.s3.BucketOwnershipControls(
        f"{name}-ownership",
        bucket=bucket_id,
        rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
        opts=child_opts(parent),
    )
    if kms_key_arn is not None:
        default = aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
            sse_algorithm="aws:kms", kms_master_key_id=kms_key_arn
        )
    else:
        default = aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
            sse_algorithm="AES256"
        )
    aws.s3.BucketServerSideEncryptionConfiguration(
        f"{name}-encryption",
        bucket=bucket_id,
        rules=[
            aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=default, bucket_key_enabled=kms_key_arn is not None
            )
        ],
        opts=child_opts(parent),
    )
    aws.s3.BucketVersioning(
        f"{name}-versioning",
        bucket=bucket_id,
        versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
        opts=child_opts(parent),
    )
    aws.s3.BucketLifecycleConfiguration(
        f"{name}-lifecycle",
        bucket=bucket_id,
        rules=[
            aws.s3.BucketLifecycleConfigurationRuleArgs(
                id="expire",
                status="Enabled",
                filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=expiration_days)
                if expiration_days is not None
                else None,
                noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                    noncurrent_days=7
                ),
                abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                    days_after_initiation=1
                ),
            )
        ],
        opts=child_opts(parent),
    )
    policy = aws.s3.BucketPolicy(
        f"{name}-policy",
        bucket=bucket_id,
        policy=policy_document(
            [
                *statements(bucket_arn),
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": {"AWS": "*"},
                    "Action": "s3:*",
                    "Resource": [bucket_arn, pulumi.Output.concat(bucket_arn, "/*")],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                },
            ]
        ),
        # A bucket policy is refused while the public access block is being applied.
        opts=child_opts(parent, depends_on=[block]),
    )
    return PrivateBucket(bucket=bucket, name=bucket_id, arn=bucket_arn, policy=policy)
