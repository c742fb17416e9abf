"""CodeBuild, CodePipeline and CodeCommit: no plaintext secrets, logs, KMS everywhere, reviews."""

from pulumi_policy import Severity

from ._util import (
    ADVISORY,
    AWS_KEY_RE,
    as_list,
    aws_managed_key,
    dig,
    is_set,
    is_unknown,
    known,
    of_type,
    plain,
    resource_policy,
    secret_word,
    stack_policy,
    unknown,
)

PROJECT = "aws:codebuild/project:Project"
PIPELINE = "aws:codepipeline/pipeline:Pipeline"
REPOSITORY = "aws:codecommit/repository:Repository"
ASSOCIATION = "aws:codecommit/approvalRuleTemplateAssociation:ApprovalRuleTemplateAssociation"
IMAGE_BUILD_HINTS = ("image", "docker", "container")


def _variables(props):
    return [
        v
        for v in as_list(known(dig(props, "environment", "environmentVariables"), "environment.environmentVariables"))
        if isinstance(v, dict)
    ]


def _no_plaintext_credentials(props, _args):
    for variable in _variables(props):
        if (variable.get("type") or "PLAINTEXT") != "PLAINTEXT":
            continue
        name, value = str(variable.get("name", "")), str(variable.get("value", ""))
        if name.upper() in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN") or AWS_KEY_RE.search(
            value
        ):
            yield f"CodeBuild variable {name} must not carry AWS credentials. Use the project's service role."
        elif secret_word(name):
            yield (
                f"CodeBuild variable {name} looks like a secret in plain text. Use type SECRETS_MANAGER or "
                "PARAMETER_STORE."
            )


def _logs(props, _args):
    cloudwatch = dig(props, "logsConfig", "cloudwatchLogs") or {}
    s3 = dig(props, "logsConfig", "s3Logs") or {}
    # With no logsConfig CodeBuild logs to CloudWatch Logs (status ENABLED by default).
    if cloudwatch.get("status") == "DISABLED" and s3.get("status") != "ENABLED":
        yield "CodeBuild projects must keep build logs. Enable logsConfig.cloudwatchLogs (or S3 logs)."


def _kms(props, _args):
    key = props.get("encryptionKey")
    if not is_set(key) or aws_managed_key(key):
        yield "CodeBuild projects must encrypt artifacts with a customer-managed KMS key. Set encryptionKey."


def _artifact_encryption(props, _args):
    artifacts = [props.get("artifacts") or {}] + as_list(props.get("secondaryArtifacts"))
    for artifact in artifacts:
        if isinstance(artifact, dict) and artifact.get("encryptionDisabled") is True:
            yield "CodeBuild artifacts must stay encrypted. Remove encryptionDisabled: true."
            return


def _privileged_only_for_images(props, _args):
    if dig(props, "environment", "privilegedMode") is not True:
        return
    text = " ".join(str(props.get(k) or "") for k in ("name", "description")).lower()
    if not any(hint in text for hint in IMAGE_BUILD_HINTS):
        yield (
            "Privileged mode should be reserved for projects that build container images. Turn off "
            "environment.privilegedMode, or name the project for the image it builds."
        )


def _artifact_store_kms(props, _args):
    stores = props.get("artifactStores")
    if is_unknown(stores):
        raise unknown("artifactStores")
    stores = [s for s in as_list(stores) if isinstance(s, dict)]
    if not stores:
        yield "Pipelines must have an artifact store encrypted with a KMS key."
    for store in stores:
        if (store.get("encryptionKey") or {}).get("type") != "KMS" or not is_set(
            (store.get("encryptionKey") or {}).get("id")
        ):
            yield (
                "Pipeline artifact stores must be encrypted with a customer-managed KMS key. Set "
                "artifactStores[].encryptionKey to {type: KMS, id: <key ARN>}."
            )


# CodeBuild's curated images are built for one architecture, named in the image: an aarch64 image
# runs only in an ARM environment, an x86_64 one only in a Linux x86 environment.
ARM_TYPES = ("ARM_CONTAINER", "ARM_LAMBDA_CONTAINER", "ARM_EC2")
X86_TYPES = ("LINUX_CONTAINER", "LINUX_LAMBDA_CONTAINER", "LINUX_GPU_CONTAINER", "LINUX_EC2")


# On-demand compute types per environment type, as CodeBuild's "About environment types" table lists them.
GENERAL = {f"BUILD_GENERAL1_{size}" for size in ("SMALL", "MEDIUM", "LARGE", "XLARGE", "2XLARGE")}
LAMBDA = {f"BUILD_LAMBDA_{size}" for size in ("1GB", "2GB", "4GB", "8GB", "10GB")}
COMPUTE_TYPES = {
    "ARM_CONTAINER": GENERAL,
    "LINUX_CONTAINER": GENERAL,
    "LINUX_GPU_CONTAINER": {"BUILD_GENERAL1_SMALL", "BUILD_GENERAL1_LARGE"},
    "ARM_LAMBDA_CONTAINER": LAMBDA,
    "LINUX_LAMBDA_CONTAINER": LAMBDA,
}


def _image_matches_environment(props, _args):
    environment = props.get("environment") or {}
    compute = known(environment.get("computeType"), "environment.computeType")
    allowed = COMPUTE_TYPES.get(known(environment.get("type"), "environment.type"))
    if compute and allowed is not None and compute not in allowed:
        yield (
            f"{environment.get('type')} has no compute type {compute}; it offers {', '.join(sorted(allowed))}. "
            "Set environment.computeType to one of them."
        )
    image = known(environment.get("image"), "environment.image")
    kind = known(environment.get("type"), "environment.type")
    if not isinstance(image, str) or not image.startswith("aws/codebuild/"):
        return
    if "aarch64" in image and kind not in ARM_TYPES:
        yield (
            f"The image {image} is built for ARM but the environment type is {kind}; the build would not "
            "start. Set environment.type to ARM_CONTAINER."
        )
    elif ("x86_64" in image or image.startswith("aws/codebuild/standard:")) and kind not in X86_TYPES:
        yield (
            f"The image {image} is built for x86 but the environment type is {kind}; the build would not "
            "start. Set environment.type to LINUX_CONTAINER."
        )


def _approval_rules(resources, _args):
    associated = {plain(a.props).get("repositoryName") for a in of_type(resources, ASSOCIATION)}
    for repo in of_type(resources, REPOSITORY):
        name = plain(repo.props).get("repositoryName")
        if name not in associated:
            yield (
                f"CodeCommit repository {name} should require pull-request approvals. Associate an "
                "approval rule template with it.",
                repo.urn,
            )


POLICIES = [
    resource_policy(
        "codebuild-no-plaintext-credentials",
        "Checks that CodeBuild projects carry no credentials or secrets in plain variables.",
        PROJECT,
        _no_plaintext_credentials,
        severity=Severity.CRITICAL,
    ),
    resource_policy(
        "codebuild-logs-enabled",
        "Checks that CodeBuild projects keep their build logs.",
        PROJECT,
        _logs,
        severity=Severity.MEDIUM,
    ),
    resource_policy(
        "codebuild-kms-key",
        "Checks that CodeBuild projects encrypt with a customer-managed key.",
        PROJECT,
        _kms,
        severity=Severity.MEDIUM,
    ),
    resource_policy(
        "codebuild-artifact-encryption",
        "Checks that CodeBuild artifact encryption is never disabled.",
        PROJECT,
        _artifact_encryption,
    ),
    resource_policy(
        "codebuild-privileged-only-for-images",
        "Checks that only image-building CodeBuild projects run privileged.",
        PROJECT,
        _privileged_only_for_images,
        enforcement=ADVISORY,
        severity=Severity.MEDIUM,
    ),
    resource_policy(
        "codepipeline-artifact-store-kms",
        "Checks that pipeline artifact stores use a KMS key.",
        PIPELINE,
        _artifact_store_kms,
    ),
    resource_policy(
        "codebuild-image-matches-environment",
        "Checks that a CodeBuild project's curated image and compute type fit its environment type.",
        PROJECT,
        _image_matches_environment,
    ),
    stack_policy(
        "codecommit-approval-rule",
        "Checks that CodeCommit repositories require pull-request approvals.",
        _approval_rules,
        enforcement=ADVISORY,
        severity=Severity.MEDIUM,
    ),
]
