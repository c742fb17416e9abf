"""KMS, SNS and Secrets Manager: customer-managed keys that rotate."""

from pulumi_policy import Severity

from ._util import aws_managed_key, is_set, known, resource_policy

KEY = "aws:kms/key:Key"
TOPIC = "aws:sns/topic:Topic"
SECRET = "aws:secretsmanager/secret:Secret"


def _rotation(props, _args):
    spec = known(props.get("customerMasterKeySpec") or props.get("keySpec") or "SYMMETRIC_DEFAULT", "keySpec")
    if spec == "SYMMETRIC_DEFAULT" and known(props.get("enableKeyRotation"), "enableKeyRotation") is not True:
        yield "KMS keys must rotate. Set enableKeyRotation to true."


def _customer_key(key_property, aws_alias):
    def check(props, _args):
        value = props.get(key_property)
        if not is_set(value) or aws_managed_key(value):
            yield (
                f"{key_property} must name a customer-managed KMS key (not the AWS-managed {aws_alias}). "
                "Set it to the key's ARN."
            )

    return check


POLICIES = [
    resource_policy("kms-key-rotation", "Checks that symmetric KMS keys rotate.", KEY, _rotation),
    resource_policy(
        "sns-topic-cmk",
        "Checks that SNS topics are encrypted with a customer-managed key.",
        TOPIC,
        _customer_key("kmsMasterKeyId", "alias/aws/sns"),
        severity=Severity.MEDIUM,
    ),
    resource_policy(
        "secretsmanager-cmk",
        "Checks that secrets are encrypted with a customer-managed key.",
        SECRET,
        _customer_key("kmsKeyId", "alias/aws/secretsmanager"),
        severity=Severity.MEDIUM,
    ),
]
