"""ECR: scanning, immutable tags, KMS, lifecycle, never public."""

from ._util import (
    as_list,
    aws_managed_key,
    dig,
    is_public_principal,
    is_set,
    is_unknown,
    known,
    of_type,
    parse_json,
    plain,
    resource_policy,
    stack_policy,
    statements,
)

REPOSITORY = "aws:ecr/repository:Repository"
LIFECYCLE = "aws:ecr/lifecyclePolicy:LifecyclePolicy"
REPOSITORY_POLICY = "aws:ecr/repositoryPolicy:RepositoryPolicy"


def _scan_on_push(props, _args):
    if dig(props, "imageScanningConfiguration", "scanOnPush") is not True:
        yield "ECR repositories must scan images on push. Set imageScanningConfiguration.scanOnPush to true."


def _immutable(props, _args):
    # The provider's default is MUTABLE.
    if known(props.get("imageTagMutability") or "MUTABLE", "imageTagMutability") != "IMMUTABLE":
        yield "ECR image tags must be immutable. Set imageTagMutability to IMMUTABLE."


def _kms(props, _args):
    configs = as_list(
        known(props.get("encryptionConfigurations"), "encryptionConfigurations")
        if is_unknown(props.get("encryptionConfigurations"))
        else props.get("encryptionConfigurations")
    )
    config = configs[0] if configs else {}
    config = {
        "encryptionType": known(config.get("encryptionType"), "encryptionConfigurations.encryptionType"),
        "kmsKey": config.get("kmsKey"),
    }
    # KMS without a key (or with alias/aws/ecr) is ECR's AWS-managed key.
    if config.get("encryptionType") != "KMS" or not is_set(config.get("kmsKey")) or aws_managed_key(config["kmsKey"]):
        yield (
            "ECR repositories must be encrypted with a customer-managed KMS key. Set "
            "encryptionConfigurations to [{encryptionType: KMS, kmsKey: <key ARN>}]."
        )


def _lifecycle(resources, _args):
    covered = set()
    for policy in of_type(resources, LIFECYCLE):
        repo = plain(policy.props).get("repository")
        covered.add(repo)
    for repo in of_type(resources, REPOSITORY):
        name = plain(repo.props).get("name")
        if name not in covered:
            yield (
                f"ECR repository {name} must have a lifecycle policy. Add an aws.ecr.LifecyclePolicy "
                "that expires untagged images and keeps a bounded number of tagged ones.",
                repo.urn,
            )


def _not_public(props, _args):
    document = parse_json(props.get("policy"), "policy")
    for statement in statements(document):
        if statement.get("Effect") == "Allow" and is_public_principal(statement):
            yield "ECR repository policies must not allow a public principal. Name the accounts or roles that pull."


POLICIES = [
    resource_policy("ecr-scan-on-push", "Checks that ECR repositories scan images on push.", REPOSITORY, _scan_on_push),
    resource_policy(
        "ecr-immutable-tags", "Checks that ECR repositories have immutable image tags.", REPOSITORY, _immutable
    ),
    resource_policy(
        "ecr-kms-encryption", "Checks that ECR repositories use a customer-managed KMS key.", REPOSITORY, _kms
    ),
    stack_policy("ecr-lifecycle-policy", "Checks that every ECR repository has a lifecycle policy.", _lifecycle),
    resource_policy(
        "ecr-no-public-repository-policy",
        "Checks that ECR repository policies are never public.",
        REPOSITORY_POLICY,
        _not_public,
    ),
]
