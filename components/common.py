"""Small helpers shared by the components: IAM documents, resource options, the AWS context."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True)
class AwsContext:
    """Where the stack runs. `account_id` comes from an invoke, so it is known during preview."""

    account_id: pulumi.Input[str]
    region: str
    partition: str = "aws"
    dns_suffix: str = "amazonaws.com"
    # The prefix of VPC endpoint service names (com.amazonaws, or cn.com.amazonaws in China).
    reverse_dns_prefix: str = "com.amazonaws"

    def arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> pulumi.Output[str]:
        """An ARN built from known parts, e.g. arn(\"logs\", \"log-group:/ecs/web\")."""
        return pulumi.Output.concat(
            "arn:",
            self.partition,
            ":",
            service,
            ":",
            self.region if region else "",
            ":",
            self.account_id if account else "",
            ":",
            resource,
        )

    def s3_arn(self, bucket: pulumi.Input[str], path: str = "") -> pulumi.Output[str]:
        """A bucket's ARN, or of the objects under `path` ("dev/*"); S3 ARNs name no region or account."""
        return pulumi.Output.concat("arn:", self.partition, ":s3:::", bucket, f"/{path}" if path else "")

    @classmethod
    def of_provider(cls, region: str) -> AwsContext:
        """The account, partition and DNS suffix as the provider's credentials and region report them."""
        partition = aws.get_partition()
        return cls(
            account_id=aws.get_caller_identity_output().account_id,
            region=region,
            partition=partition.partition,
            dns_suffix=partition.dns_suffix,
            reverse_dns_prefix=partition.reverse_dns_prefix,
        )


def policy_document(statements: Sequence[Mapping[str, Any]]) -> pulumi.Output[str]:
    """An IAM policy document as JSON; statements may hold Outputs."""
    return pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": list(statements)})


def assume_role_policy(service: str, conditions: Mapping[str, Any] | None = None) -> pulumi.Output[str]:
    """A trust policy that lets one AWS service assume the role."""
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
    }
    if conditions:
        statement["Condition"] = conditions
    return policy_document([statement])


def other_account_roles(partition: str, roles: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """The Principal and Condition of a resource policy statement admitting roles of other accounts,
    given as (account ID, role name). The principal is each account: a role that does not exist yet
    (before that stack's first `up`) is refused as a principal by ECR, S3, KMS and IAM, but not in a
    condition, which narrows it to exactly those roles."""
    return {
        "Principal": {"AWS": sorted({f"arn:{partition}:iam::{account}:root" for account, _ in roles})},
        "Condition": {
            "ArnEquals": {"aws:PrincipalArn": sorted(f"arn:{partition}:iam::{a}:role/{r}" for a, r in roles)}
        },
    }


class Part(pulumi.ComponentResource):
    """A component split out of a larger one (session 3). Its children were the larger one's until
    then: `child_opts` and `stateful_opts` give each an alias to that former parent, so an existing
    stack keeps every resource (tests/test_identity.py)."""

    def __init__(self, type_: str, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(type_, name, None, opts)
        self.former_parent = opts.parent if opts else None
        # The aliases name the component that held these resources: a Part is always built by it.
        if self.former_parent is None or isinstance(self.former_parent, Part):
            raise ValueError(f"{type_} {name!r} must be created with its former owner as parent (not a Part)")


def _moved(parent: pulumi.Resource) -> list[pulumi.Alias] | None:
    former = getattr(parent, "former_parent", None)
    return [pulumi.Alias(parent=former)] if former is not None else None


def child_opts(parent: pulumi.Resource, **kwargs: Any) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(parent=parent, aliases=_moved(parent), **kwargs)


def stateful_opts(parent: pulumi.Resource, protect: bool, **kwargs: Any) -> pulumi.ResourceOptions:
    """Stateful resources in a protected stack can be neither deleted nor lost with the stack."""
    return pulumi.ResourceOptions(
        parent=parent, protect=protect, retain_on_delete=protect, aliases=_moved(parent), **kwargs
    )


def key_by_alias(context: AwsContext, alias: str, actions: Sequence[str], sid: str = "DataKey") -> dict[str, Any]:
    """A statement on a KMS key named by its alias, which is known before the key exists, so the
    document (and the policies that read it) are complete at the first preview."""
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": list(actions),
        "Resource": context.arn("kms", "key/*"),
        "Condition": {"ForAnyValue:StringEquals": {"kms:ResourceAliases": alias}},
    }


def log_group(
    parent: pulumi.Resource,
    name: str,
    *,
    log_group_name: str,
    retention_days: int,
    kms_key_arn: pulumi.Input[str],
    protect: bool,
    tags: Mapping[str, str],
) -> aws.cloudwatch.LogGroup:
    """A log group with an explicit retention and a KMS key; protected and retained with the stack."""
    return aws.cloudwatch.LogGroup(
        name,
        name=log_group_name,
        retention_in_days=retention_days,
        kms_key_id=kms_key_arn,
        tags=dict(tags),
        opts=stateful_opts(parent, protect),
    )


@dataclass(frozen=True)
class PolicyRole:
    """A role and its inline policy. `arn` resolves only once the policy exists, so whatever takes it
    (a service, a build project, a hook) is created after the role can do its job: AWS checks some
    roles when the resource is created, and a first task or build would otherwise race the policy."""

    role: aws.iam.Role
    policy: aws.iam.RolePolicy
    arn: pulumi.Output[str]


def role_with_policy(
    parent: pulumi.Resource,
    name: str,
    *,
    role_name: str,
    description: str,
    trust: pulumi.Input[str],
    statements: Sequence[Mapping[str, Any]],
    tags: Mapping[str, str],
) -> PolicyRole:
    """A role with one inline policy: `<name>-role` and `<name>-policy`, children of `parent`."""
    role = aws.iam.Role(
        f"{name}-role",
        name=role_name,
        description=description,
        assume_role_policy=trust,
        tags=dict(tags),
        opts=child_opts(parent),
    )
    policy = aws.iam.RolePolicy(
        f"{name}-policy", role=role.name, policy=policy_document(statements), opts=child_opts(parent)
    )
    return PolicyRole(role=role, policy=policy, arn=pulumi.Output.all(role.arn, policy.id).apply(lambda v: v[0]))
