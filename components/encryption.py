"""Customer-managed KMS keys with rotation and a key policy that names who may use them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from .common import AwsContext, child_opts, other_account_roles, policy_document, stateful_opts
from .facts import KMS_PUBLISH, KMS_USE

# Explicit actions instead of kms:*: the account (and through it IAM) administers and uses the key.
KEY_ADMIN_ACTIONS = (
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:CreateGrant",
    "kms:DeleteAlias",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListAliases",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:RetireGrant",
    "kms:RevokeGrant",
    "kms:RotateKeyOnDemand",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
)


@dataclass(frozen=True)
class ServiceGrant:
    """Lets an AWS service principal use the key, optionally under conditions."""

    service: str
    actions: Sequence[str] = KMS_PUBLISH
    conditions: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class RoleGrant:
    """Lets roles of another account use the key (`common.other_account_roles`), optionally only
    through one AWS service (`kms:ViaService`)."""

    sid: str
    account: str
    roles: Sequence[str]
    actions: Sequence[str]
    via_service: str = ""

    def statement(self, partition: str) -> dict[str, Any]:
        admitted = other_account_roles(partition, [(self.account, role) for role in self.roles])
        if self.via_service:
            admitted["Condition"]["StringEquals"] = {"kms:ViaService": self.via_service}
        # In a key policy, "*" means this key and nothing else.
        return {"Sid": self.sid, "Effect": "Allow", **admitted, "Action": list(self.actions), "Resource": "*"}


@dataclass(frozen=True)
class KmsKeyArgs:
    """Inputs of a KmsKey.

    ``protect`` keeps the key (and everything it encrypts) from being deleted; default False.
    ``deletion_window_days``: 30 days, AWS's maximum, gives a full month to cancel a deletion.
    """

    context: AwsContext
    alias: str
    description: str
    service_grants: Sequence[ServiceGrant] = ()
    role_grants: Sequence[RoleGrant] = ()
    protect: bool = False
    deletion_window_days: int = 30
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 7 <= self.deletion_window_days <= 30:
            raise ValueError(f"KmsKeyArgs.deletion_window_days must be 7..30; got {self.deletion_window_days}")
        if not self.alias.startswith("alias/") or self.alias.startswith("alias/aws/"):
            raise ValueError(f"KmsKeyArgs.alias must start with alias/ (and not alias/aws/); got {self.alias!r}")


class KmsKey(pulumi.ComponentResource):
    """A symmetric customer-managed key with yearly rotation, an alias and an explicit key policy."""

    key: aws.kms.Key
    arn: pulumi.Output[str]

    def __init__(self, name: str, args: KmsKeyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cicd:encryption:KmsKey", name, None, opts)
        ctx = args.context
        root = pulumi.Output.concat("arn:", ctx.partition, ":iam::", ctx.account_id, ":root")
        statements: list[dict[str, Any]] = [
            {
                "Sid": "AccountAdministersKey",
                "Effect": "Allow",
                "Principal": {"AWS": root},
                "Action": list(KEY_ADMIN_ACTIONS + KMS_USE),
                # In a key policy, "*" means this key and nothing else.
                "Resource": "*",
            }
        ]
        for grant in args.service_grants:
            statement: dict[str, Any] = {
                "Sid": "Service" + "".join(p.capitalize() for p in grant.service.split(".")[0].split("-")),
                "Effect": "Allow",
                "Principal": {"Service": grant.service},
                "Action": list(grant.actions),
                # In a key policy, "*" means this key and nothing else.
                "Resource": "*",
            }
            if grant.conditions:
                statement["Condition"] = grant.conditions
            statements.append(statement)
        statements += [grant.statement(ctx.partition) for grant in args.role_grants]

        self.key = aws.kms.Key(
            name,
            description=args.description,
            enable_key_rotation=True,
            rotation_period_in_days=365,
            deletion_window_in_days=args.deletion_window_days,
            policy=policy_document(statements),
            tags=dict(args.tags),
            opts=stateful_opts(self, args.protect),
        )
        self.alias = aws.kms.Alias(
            f"{name}-alias", name=args.alias, target_key_id=self.key.key_id, opts=child_opts(self)
        )
        self.arn = self.key.arn
        self.register_outputs({"arn": self.arn, "alias": self.alias.name})
