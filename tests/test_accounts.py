"""Promotion across accounts: dev (account D) builds and releases, prod (account P) promotes.

Both stack files name their account (`cicd:accountId`); each stack learns the other's from the
project's stack files. What crosses the boundary: prod's task execution role pulls dev's released images
(dev's repository policy), dev's release job copies each bundle into prod's releases bucket (prod's
bucket and key policies; the copy of the newest starts prod's pipeline, through S3's own events in prod's
account), and prod's deploy job reads dev's record history through a role dev keeps for it.
"""

from __future__ import annotations

import json

import pytest
from conftest import Plan, policy_config, run_plan

import config
from offline import program

D, P = "111111111111", "222222222222"
TWO_ACCOUNTS = {"dev": ("dev", "", D), "prod": ("prod", "dev", P)}


def in_account(account: str) -> dict:
    """A stack file's keys for `account`: its ID, and its deploy role there."""
    return {
        "cicd:accountId": account,
        "cicd:pipeline": {"deployRoleArn": f"arn:aws:iam::{account}:role/cicd-deployer"},
    }


@pytest.fixture(scope="module")
def accounts():
    """Both plans with the two stack files naming their accounts."""
    saved = config.project_stacks
    config.project_stacks = lambda root=None: dict(TWO_ACCOUNTS)
    try:
        plans = (
            run_plan("dev", **in_account(D)),
            run_plan(
                "prod",
                **in_account(P),
                **{
                    "cicd:certificateArn": f"arn:aws:acm:us-east-1:{P}:certificate/0f3c6d2e-8a4b-4c1d-9e2f-1a2b3c4d5e6f"
                },
            ),
        )
    finally:
        config.project_stacks = saved
    return plans


def statements(resource, key="policy"):
    return json.loads(resource.inputs[key])["Statement"]


def by_sid(plan: Plan, policy_name: str) -> dict:
    return {s["Sid"]: s for s in statements(plan.named(policy_name))}


def mentions(plan: Plan, account: str) -> set[str]:
    return {r.name for r in plan.registrations if account in json.dumps(r.inputs, default=str)}


def test_each_stack_says_where_its_releases_come_from_and_go(accounts):
    dev, prod = accounts
    assert dev.outputs["releaseRole"] == f"builds; prod promotes from it in account {P}"
    assert prod.outputs["releaseRole"] == f"promotes from dev (in account {D})"
    # prod cannot read dev's Parameter Store: the offline plan stands in prod's own record of dev's image.
    assert prod.outputs["imageSource"] == "release record of prod"
    assert prod.outputs["imageRef"].startswith(f"{D}.dkr.ecr.us-east-1.amazonaws.com/web-dev@sha256:")


def test_nothing_else_names_the_other_account(accounts):
    dev, prod = accounts
    assert mentions(dev, P) == {
        "image-policy",
        "pipeline-reader-prod-role",
        "pipeline-release",
        "pipeline-release-policy",
    }
    assert mentions(prod, D) == {
        "data-key",
        "pipeline-pipeline",  # the approval's question says where dev's record is
        "pipeline-releases-policy",
        "pipeline-deploy",
        "pipeline-deploy-policy",
        # The job that shows the approver the release reads dev's records as the deploy does.
        "pipeline-choose",
        "pipeline-choose-policy",
        "service-execution-policy",
        "service-task",
    }


def test_only_prods_execution_role_may_pull_devs_images(accounts):
    dev, _ = accounts
    [statement] = statements(dev.named("image-policy"))
    assert statement["Principal"] == {"AWS": [f"arn:aws:iam::{P}:root"]}
    assert statement["Action"] == ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    assert statement["Condition"] == {"ArnEquals": {"aws:PrincipalArn": [f"arn:aws:iam::{P}:role/web-prd-execution"]}}
    assert dev.named("image-policy").inputs["repository"] == "web-dev"


def test_every_prod_role_that_assumes_devs_reader_role_is_admitted_by_its_trust(accounts):
    """A grant to assume a role is useless unless the role's trust admits the grantee."""
    dev, prod = accounts
    reader = f"arn:aws:iam::{D}:role/web-dev-reader-web-prd"
    [trust] = statements(dev.named("pipeline-reader-prod-role"), "assumeRolePolicy")
    admitted = set(trust["Condition"]["ArnEquals"]["aws:PrincipalArn"])
    assuming = set()
    for policy in prod.all("aws:iam/rolePolicy:RolePolicy"):
        if any(s["Action"] == "sts:AssumeRole" and s["Resource"] == reader for s in statements(policy)):
            role = policy.name.removesuffix("-policy")
            assuming.add(f"arn:aws:iam::{P}:role/{prod.named(role + '-role').inputs['name']}")
    assert assuming == {f"arn:aws:iam::{P}:role/web-prd-deploy-build", f"arn:aws:iam::{P}:role/web-prd-choose-build"}
    assert assuming <= admitted


def test_prods_execution_role_pulls_from_devs_repository(accounts):
    _, prod = accounts
    pull = by_sid(prod, "service-execution-policy")["EcrPull"]
    assert pull["Resource"][0] == f"arn:aws:ecr:us-east-1:{D}:repository/web-dev"


def test_the_reader_role_admits_only_prods_deploy_jobs_and_reads_only_devs_record_history(accounts):
    dev, _ = accounts
    role = dev.named("pipeline-reader-prod-role")
    assert role.inputs["name"] == "web-dev-reader-web-prd"
    [trust] = statements(role, "assumeRolePolicy")
    assert trust["Principal"] == {"AWS": [f"arn:aws:iam::{P}:root"]}
    assert trust["Condition"] == {
        "ArnEquals": {
            "aws:PrincipalArn": [
                f"arn:aws:iam::{P}:role/web-prd-choose-build",
                f"arn:aws:iam::{P}:role/web-prd-deploy-build",
            ]
        }
    }
    assert statements(dev.named("pipeline-reader-prod-policy")) == [
        {
            "Sid": "ReleaseHistory",
            "Effect": "Allow",
            "Action": "ssm:GetParameterHistory",
            "Resource": f"arn:aws:ssm:us-east-1:{D}:parameter/cicd/web/dev/release",
        }
    ]


def test_prods_deploy_job_reads_devs_history_through_that_role_only(accounts):
    _, prod = accounts
    deploy = by_sid(prod, "pipeline-deploy-policy")
    reader = f"arn:aws:iam::{D}:role/web-dev-reader-web-prd"
    assert deploy["UpstreamReleases"] == {
        "Sid": "UpstreamReleases",
        "Effect": "Allow",
        "Action": "sts:AssumeRole",
        "Resource": reader,
    }
    variables = {
        v["name"]: v["value"] for v in prod.named("pipeline-deploy").inputs["environment"]["environmentVariables"]
    }
    assert variables["UPSTREAM_ROLE_ARN"] == reader
    # The bundles are the copies in prod's own bucket, under prod's own key.
    assert variables["UPSTREAM_RELEASES_BUCKET"] == f"web-prd-releases-{P}"
    assert deploy["UpstreamBundles"]["Resource"] == f"arn:aws:s3:::web-prd-releases-{P}/dev/*"
    assert deploy["UpstreamKey"]["Condition"] == {
        "ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/web-prd-data"}
    }
    assert not [s for s in statements(prod.named("pipeline-deploy-policy")) if s["Action"] == "ssm:GetParameterHistory"]


def test_dev_copies_each_bundle_into_prods_bucket_and_nowhere_else(accounts):
    dev, prod = accounts
    release = by_sid(dev, "pipeline-release-policy")
    assert release["DownstreamCopies"]["Action"] == "s3:PutObject"
    assert release["DownstreamCopies"]["Resource"] == [f"arn:aws:s3:::web-prd-releases-{P}/dev/*"]
    # Only into a bucket prod's account owns: the name alone could be anyone's.
    assert release["DownstreamCopies"]["Condition"] == {"StringEquals": {"s3:ResourceAccount": [P]}}
    assert release["DownstreamKeys"]["Resource"] == [f"arn:aws:kms:us-east-1:{P}:key/*"]
    assert release["DownstreamKeys"]["Condition"] == {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}
    variables = {
        v["name"]: v["value"] for v in dev.named("pipeline-release").inputs["environment"]["environmentVariables"]
    }
    assert variables["DOWNSTREAM_BUCKETS"] == f"{P}/web-prd-releases-{P}"
    # prod's side admits exactly dev's release job: puts under dev/ in its bucket, its key only through S3.
    devs_release_job = {"ArnEquals": {"aws:PrincipalArn": [f"arn:aws:iam::{D}:role/web-dev-release-build"]}}
    bucket = {s.get("Sid"): s for s in statements(prod.named("pipeline-releases-policy"))}
    copies = bucket["UpstreamReleaseCopies"]
    assert (copies["Principal"], copies["Action"], copies["Condition"]) == (
        {"AWS": [f"arn:aws:iam::{D}:root"]},
        "s3:PutObject",
        devs_release_job,
    )
    assert copies["Resource"] == f"arn:aws:s3:::web-prd-releases-{P}/dev/*"
    key = {s["Sid"]: s for s in statements(prod.one("aws:kms/key:Key", "data-key"))}["UpstreamReleaseCopies"]
    assert key["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert key["Principal"] == {"AWS": [f"arn:aws:iam::{D}:root"]}
    assert key["Condition"] == {**devs_release_job, "StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}


def test_devs_copy_of_its_newest_bundle_starts_prods_pipeline(accounts):
    dev, prod = accounts
    # Nothing crosses as an event: no rule of dev targets prod, no bus of prod admits dev.
    assert not [r for r in dev.all("aws:cloudwatch/eventTarget:EventTarget") if P in json.dumps(r.inputs)]
    assert "aws:cloudwatch/eventPermission:EventPermission" not in {r.type for r in prod.registrations}
    # dev's own bucket announces nothing: prod's pipeline starts on its copy in prod's bucket.
    assert "aws:s3/bucketNotification:BucketNotification" not in {r.type for r in dev.registrations}
    notification = prod.named("pipeline-releases-events").inputs
    assert notification == {"bucket": f"web-prd-releases-{P}", "eventbridge": True}
    pattern = json.loads(prod.named("pipeline-on-release").inputs["eventPattern"])
    assert pattern == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [f"web-prd-releases-{P}"]}, "object": {"key": ["dev/latest.zip"]}},
    }
    source = prod.named("pipeline-pipeline").inputs["stages"][0]["actions"][0]["configuration"]
    assert source["S3Bucket"] == f"web-prd-releases-{P}" and source["S3ObjectKey"] == "dev/latest.zip"
    approval = prod.named("pipeline-pipeline").inputs["stages"][1]["actions"][1]["configuration"]["CustomData"]
    assert f"with credentials of account {D}" in approval


def test_both_stacks_pass_every_mandatory_policy(accounts, policy_server):
    for plan, stack in zip(accounts, ("dev", "prod"), strict=True):
        policy_server.configure(policy_config(stack))
        try:
            findings = policy_server.analyze(plan.registrations, region="us-east-1")
        finally:
            policy_server.configure({})
        assert [f for f in findings if f.level == "mandatory"] == [], stack


def test_one_account_creates_none_of_it(dev, prod):
    for plan in (dev, prod):
        types = {r.type for r in plan.registrations}
        assert "aws:ecr/repositoryPolicy:RepositoryPolicy" not in types
    # In one account prod starts on dev's own bucket's events, and announces nothing of its own.
    assert "aws:s3/bucketNotification:BucketNotification" not in {r.type for r in prod.registrations}
    assert "UPSTREAM_ROLE_ARN" not in json.dumps(prod.named("pipeline-deploy").inputs)


@pytest.mark.parametrize(
    ("stacks", "message"),
    [
        (
            {"dev": ("dev", "", D), "prod": ("prod", "dev", "")},
            "cicd:accountId is set in stack dev but not in stack prod, which promotes from it: set it in both",
        ),
        (
            {"dev": ("dev", "", ""), "prod": ("prod", "dev", P)},
            "cicd:accountId is set in stack prod but not in stack dev, which it promotes from: set it in both",
        ),
    ],
)
def test_an_account_named_on_one_side_only_is_an_error(stacks, message):
    assert any(e.startswith(message) for e in config.promotion_errors(stacks))


def test_the_same_account_on_both_sides_is_one_account():
    stacks = {"dev": ("dev", "", D), "prod": ("prod", "dev", D)}
    assert config.promotion_errors(stacks) == []
    assert config.other_accounts(stacks, "prod") == {} and config.other_accounts(stacks, "dev") == {}
    assert config.other_accounts(TWO_ACCOUNTS, "prod") == {"dev": D}
    assert config.other_accounts(TWO_ACCOUNTS, "dev") == {"prod": P}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (111111111111, "must be a quoted string of 12 digits (YAML reads an unquoted ID as a number"),
        (12345678901, "got the number 12345678901"),
        ("12345", "must be 12 digits, quoted (an AWS account ID), or empty"),
    ],
)
def test_an_account_id_must_be_twelve_quoted_digits(value, message):
    with pytest.raises(config.ConfigError) as raised:
        config.load_settings({"accountId": value}, project="cicd", stack="dev", region="us-east-1")
    [error] = [e for e in raised.value.errors if e.startswith("cicd:accountId")]
    assert message in error


def test_credentials_of_another_account_are_refused_before_anything_is_registered(monkeypatch):
    # The mocks answer for the account the stack names; here they answer for another.
    monkeypatch.setattr(program, "_configured_account", lambda config: "")
    monkeypatch.setattr(config, "project_stacks", lambda root=None: dict(TWO_ACCOUNTS))
    with pytest.raises(config.ConfigError) as raised:
        run_plan("dev", **in_account(D))
    assert raised.value.errors == [
        f"cicd:accountId is {D}, but the AWS credentials are of account 123456789012: use credentials of {D} "
        "for stack dev (AWS_PROFILE), or fix the key"
    ]


def test_the_plan_names_each_stacks_place_in_a_chain_across_accounts(policy_server):
    from offline import plan as plan_cli

    data = plan_cli.plan("prod", server=policy_server)
    data["outputs"]["releaseRole"] = f"promotes from dev (in account {D})"
    assert (
        f"  releases:  this stack promotes from dev (in account {D}) (a dev release -> approval -> deploy -> release;"
        in plan_cli.render(data)
    )
    data["outputs"]["releaseRole"] = f"builds; prod promotes from it in account {P}"
    assert f"  releases:  this stack builds; prod promotes from it in account {P} (git -> tests" in plan_cli.render(
        data
    )


def test_roles_and_certificate_of_another_account_are_refused():
    with pytest.raises(config.ConfigError) as raised:
        config.load_settings(
            {
                "accountId": P,
                "pipeline": {
                    "deployRoleArn": f"arn:aws:iam::{D}:role/cicd-deployer",
                    "backendUrl": "s3://state",
                    "promoteFrom": "dev",
                },
                "environment": "prod",
                "protect": True,
                "certificateArn": f"arn:aws:acm:us-east-1:{P}:certificate/0f3c6d2e-8a4b-4c1d-9e2f-1a2b3c4d5e6f",
                "service": {"spot": False},
            },
            project="cicd",
            stack="prod",
            region="us-east-1",
        )
    assert any(
        e.startswith(f"cicd:pipeline.deployRoleArn is in account {D}, but cicd:accountId is {P}")
        for e in raised.value.errors
    ), raised.value.errors


def test_an_unquoted_account_in_another_stack_file_is_refused(tmp_path):
    (tmp_path / "Pulumi.dev.yaml").write_text("config:\n  cicd:environment: dev\n  cicd:accountId: 012345670123\n")
    stacks = config.project_stacks(str(tmp_path))
    # YAML 1.1 reads it as an octal number: never taken for an account, the program names it.
    assert stacks["dev"][2].startswith("unquoted ") and stacks["dev"][2] != "unquoted 12345670123"
