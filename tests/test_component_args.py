"""Components built alone under the recording mocks, and the checks their Args make up front."""

import json
import os

import pulumi
import pytest
from conftest import ROOT

import config
from components.common import AwsContext
from components.encryption import KmsKey, KmsKeyArgs, ServiceGrant
from components.image import ContainerImage, ContainerImageArgs, context_hash
from components.loadbalancer import health_check_timeout
from components.network import NetworkArgs
from components.pipeline import BuildPipelineArgs
from components.service import FargateServiceArgs
from components.source import SourceRepositoryArgs

CTX = AwsContext(account_id="123456789012", region="us-east-1")
DIGEST = "123456789012.dkr.ecr.us-east-1.amazonaws.com/web-dev@sha256:" + "b" * 64
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
PIPELINE = config.PipelineSettings(
    backend_url="s3://b-state", deploy_role_arn="arn:aws:iam::123456789012:role/d", sonar_organization="o"
)
SIG_KEY = "4dabf18193072939515e22adb298388d"


def test_a_configured_digest_is_deployed_without_building(record):
    def build():
        image = ContainerImage(
            "image",
            ContainerImageArgs(
                repository_name="web-dev",
                kms_key_arn="arn:aws:kms:us-east-1:123456789012:key/k",
                architecture="ARM64",
                context=CTX,
                kms_key_alias="alias/web-dev-data",
                image=DIGEST,
            ),
        )
        pulumi.export("ref", image.image_ref)

    plan = record(build)
    assert plan.outputs["ref"] == DIGEST
    assert not [r for r in plan.registrations if r.type == "docker:index/image:Image"]
    assert plan.one("aws:ecr/repository:Repository").inputs["forceDelete"] is True


def test_a_local_build_targets_the_architecture_and_keeps_the_registry_password_secret(record):
    def build():
        image = ContainerImage(
            "image",
            ContainerImageArgs(
                repository_name="web-dev",
                kms_key_arn="arn:aws:kms:us-east-1:123456789012:key/k",
                architecture="X86_64",
                context=CTX,
                kms_key_alias="alias/web-dev-data",
                build_context=os.path.join(ROOT, "app"),
                protect=True,
            ),
        )
        pulumi.export("ref", image.image_ref)

    plan = record(build)
    docker = plan.one("docker:index/image:Image")
    assert docker.inputs["build"]["platform"] == "linux/amd64"
    tag = context_hash(os.path.join(ROOT, "app"))
    assert docker.inputs["imageName"].endswith(f"/web-dev:{tag}")
    assert docker.inputs["build"]["cacheFrom"]["images"] == [docker.inputs["imageName"]]
    password = docker.object.fields["registry"].struct_value.fields["password"].struct_value.fields
    assert password[SIG_KEY].string_value == SECRET_SIG
    assert "@sha256:" in plan.outputs["ref"]
    repo = plan.one("aws:ecr/repository:Repository")
    assert repo.protect and repo.inputs["forceDelete"] is False


def test_context_hash_changes_with_the_content(tmp_path):
    (tmp_path / "a.py").write_text("print(1)\n")
    first = context_hash(str(tmp_path))
    (tmp_path / "a.py").write_text("print(2)\n")
    second = context_hash(str(tmp_path))
    assert second != first
    # Bytecode caches are not content: they must not change the tag.
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"x")
    (tmp_path / "b.pyc").write_bytes(b"y")
    assert context_hash(str(tmp_path)) == second


def test_a_kms_key_alone_rotates_and_names_its_users(record):
    plan = record(
        lambda: KmsKey(
            "key",
            KmsKeyArgs(
                context=CTX,
                alias="alias/web-dev-test",
                description="test",
                service_grants=[ServiceGrant("logs.us-east-1.amazonaws.com")],
            ),
        )
    )
    key = plan.one("aws:kms/key:Key").inputs
    assert key["enableKeyRotation"] is True and key["deletionWindowInDays"] == 30
    statements = json.loads(key["policy"])["Statement"]
    assert [s["Principal"] for s in statements] == [
        {"AWS": "arn:aws:iam::123456789012:root"},
        {"Service": "logs.us-east-1.amazonaws.com"},
    ]
    assert all("*" not in a for s in statements for a in s["Action"])
    assert plan.one("aws:kms/alias:Alias").inputs["name"] == "alias/web-dev-test"


SERVICE_ARGS = {
    "context": CTX,
    "prefix": "web-dev",
    "vpc_id": "vpc",
    "vpc_cidr": "10.0.0.0/16",
    "public_subnet_ids": [],
    "private_subnet_ids": [],
    "image_ref": DIGEST,
    "repository_name": "web-dev",
    "data_key_arn": "k",
    "xray_image": "x",
    "image_cache_prefix": "web-dev-pub",
    "data_key_alias": "alias/k",
    "logs_key_arn": "k",
    "service": config.ServiceSettings(),
    "deployment": config.DeploymentSettings(),
    "observability": config.ObservabilitySettings(),
}


@pytest.mark.parametrize(
    "make,field",
    [
        (lambda: KmsKeyArgs(context=CTX, alias="web", description="x"), "KmsKeyArgs.alias"),
        (
            lambda: KmsKeyArgs(context=CTX, alias="alias/x", description="x", deletion_window_days=3),
            "KmsKeyArgs.deletion_window_days",
        ),
        (
            lambda: ContainerImageArgs(
                repository_name="r", kms_key_arn="k", architecture="arm", context=CTX, kms_key_alias="alias/k"
            ),
            "ContainerImageArgs.architecture",
        ),
        (
            lambda: ContainerImageArgs(
                repository_name="r",
                kms_key_arn="k",
                architecture="ARM64",
                context=CTX,
                kms_key_alias="alias/k",
                keep_tagged_images=0,
            ),
            "ContainerImageArgs.keep_tagged_images",
        ),
        (lambda: FargateServiceArgs(**{**SERVICE_ARGS, "prefix": "x" * 25}), "FargateServiceArgs.prefix"),
        (
            lambda: SourceRepositoryArgs(
                context=CTX,
                prefix="p",
                pipeline=PIPELINE,
                kms_key_arn="k",
                approvals=0,
            ),
            "SourceRepositoryArgs.approvals",
        ),
        (
            lambda: BuildPipelineArgs(
                context=CTX,
                prefix="p",
                stack="dev",
                project="cicd",
                environment="dev",
                service_name="p",
                pipeline=config.PipelineSettings(
                    backend_url="s3://b-state",
                    deploy_role_arn="arn:aws:iam::123456789012:role/d",
                    sonar_organization="o",
                ),
                ecr_repository_name="r",
                architecture="ARM64",
                data_key_arn="k",
                data_key_alias="alias/k",
                logs_key_arn="k",
                log_retention_days=7,
                notification_topic_arn="t",
                notification_topic_policy_arn="t",
                notification_key_alias="alias/t",
                xray_image="x",
                image_cache_prefix="r-pub",
            ),
            "BuildPipelineArgs.clone_url",
        ),
    ],
)
def test_args_reject_bad_decisions_by_field(make, field):
    with pytest.raises(ValueError) as err:
        make()
    assert field in str(err.value)


def test_the_shortest_health_check_interval_gets_a_shorter_timeout():
    assert health_check_timeout(5) == 4
    assert health_check_timeout(10) == 5


def test_service_sections_refuse_what_the_old_args_checked():
    """Decisions come as validated config sections: a bad one cannot even be built."""
    import pydantic

    for make in (
        lambda: config.DeploymentSettings(strategy="ROLLING"),
        lambda: config.DeploymentSettings(health_check_interval_seconds=4),
        lambda: config.ServiceSettings(min_count=3),
    ):
        with pytest.raises(pydantic.ValidationError):
            make()
    canary = config.DeploymentSettings(strategy="CANARY")
    assert (canary.canary_percent, canary.canary_bake_minutes) == (10.0, 5)


@pytest.mark.parametrize(
    "cidr,azs,masks", [("10.0.0.0/16", 2, (19, 18)), ("10.0.0.0/16", 3, (19, 19)), ("10.0.0.0/24", 3, (27, 27))]
)
def test_subnets_fit_the_vpc_and_alb_subnets_stay_at_least_slash_27(cidr, azs, masks):
    args = NetworkArgs(
        context=CTX,
        prefix="p",
        network=config.NetworkSettings(cidr=cidr, availability_zones=azs),
        log_retention_days=7,
        logs_key_arn="k",
    )
    public, private = args.subnet_masks
    assert (public, private) == masks
    prefix = int(cidr.split("/")[1])
    assert azs * (2 ** (32 - public) + 2 ** (32 - private)) <= 2 ** (32 - prefix)
    assert public <= 27


def test_the_approval_rule_asks_for_the_configured_number_of_approvals(record):
    from components.source import SourceRepository, SourceRepositoryArgs

    plan = record(
        lambda: SourceRepository(
            "source",
            SourceRepositoryArgs(
                context=CTX,
                prefix="web-dev",
                pipeline=PIPELINE,
                kms_key_arn="arn:aws:kms:us-east-1:123456789012:key/k",
                approvals=2,
            ),
        )
    )
    content = json.loads(plan.one("aws:codecommit/approvalRuleTemplate:ApprovalRuleTemplate").inputs["content"])
    assert content["Statements"] == [{"Type": "Approvers", "NumberOfApprovalsNeeded": 2}]
