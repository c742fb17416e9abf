"""Every region `aws:region` accepts plans, with what AWS documents for that region."""

from __future__ import annotations

import json

import botocore.session
import pytest
from conftest import POLICY_DIR, policy_config, run_plan

import config
from components import loadbalancer
from components.observability import CHATBOT_REGIONS
from cost import estimate
from offline import analyzer
from offline import plan as plan_cli

CERT_EU = "arn:aws:acm:eu-central-1:123456789012:certificate/0f3c6d2e-8a4b-4c1d-9e2f-1a2b3c4d5e6f"
BUILDING = {
    "pipeline": json.dumps(
        {"deployRoleArn": "arn:aws:iam::123456789012:role/d", "backendUrl": "s3://state-b", "sonarOrganization": "a"}
    ),
}


def _accepted(region: str) -> bool:
    try:
        config.load_settings(BUILDING, project="cicd", stack="t", region=region)
    except config.ConfigError:
        return False
    return True


COMMERCIAL = botocore.session.get_session().get_available_regions("ecs")
ACCEPTED = sorted(r for r in COMMERCIAL if _accepted(r))


def test_the_accepted_regions_are_those_with_every_pipeline_service():
    # CodePipeline, CodeBuild, CodeCommit and CodeStar Notifications (components/regions.py, checked
    # against botocore in test_config): 18 of botocore 1.43.11's 34 commercial regions.
    from components.regions import SERVICE_REGIONS

    needed = ("codepipeline", "codebuild", "codecommit", "codestar-notifications")
    assert sorted(set.intersection(*(set(SERVICE_REGIONS[s]) for s in needed))) == ACCEPTED
    assert "us-east-1" in ACCEPTED and "eu-central-2" not in ACCEPTED and len(COMMERCIAL) > len(ACCEPTED)


@pytest.mark.parametrize(
    "region, partition",
    [
        ("cn-north-1", "aws-cn"),
        ("cn-northwest-1", "aws-cn"),
        ("us-gov-west-1", "aws-us-gov"),
        ("us-iso-east-1", "aws-iso"),
        ("us-isob-east-1", "aws-iso-b"),
    ],
)
def test_regions_of_other_partitions_are_refused_by_name(region, partition):
    with pytest.raises(config.ConfigError) as err:
        config.load_settings(BUILDING, project="cicd", stack="t", region=region)
    assert str(err.value).startswith(f"aws:region {region} is in the {partition} partition;")
    assert "commercial partition (aws) only" in str(err.value)


@pytest.mark.parametrize("region", ACCEPTED)
def test_every_accepted_region_has_its_documented_alb_log_writer_and_a_chatbot_region(region):
    # All of today's accepted regions opened before August 2022: each has its ELB account (AWS's table).
    assert loadbalancer.elb_log_account_arn(region) == f"arn:aws:iam::{loadbalancer.ELB_LOG_ACCOUNTS[region]}:root"
    assert config.default_chatbot_region(region) in CHATBOT_REGIONS


def test_the_alb_log_writers_are_the_accounts_aws_documents():
    # Spot checks against AWS's page, and a region opened later that has none.
    assert loadbalancer.ELB_LOG_ACCOUNTS["us-east-1"] == "127311923021"
    assert loadbalancer.ELB_LOG_ACCOUNTS["ap-northeast-1"] == "582318560864"
    assert loadbalancer.ELB_LOG_ACCOUNTS["me-south-1"] == "076674570225"
    assert len(loadbalancer.ELB_LOG_ACCOUNTS) == 22 and len(set(loadbalancer.ELB_LOG_ACCOUNTS.values())) == 22
    assert loadbalancer.elb_log_account_arn("eu-central-2") is None  # Zurich, 2022-11: the principal alone


@pytest.fixture(scope="module")
def far_regions():
    """dev planned in two regions the price table does not cover: one whose Chatbot is elsewhere."""
    return {r: run_plan("dev", **{"aws:region": r}) for r in ("ap-east-1", "sa-east-1")}


@pytest.mark.parametrize("region", ["ap-east-1", "sa-east-1"])
def test_a_region_beyond_the_price_table_plans_and_passes_the_pack(far_regions, region, policy_server):
    plan = far_regions[region]
    policy = json.loads(plan.one("aws:s3/bucketPolicy:BucketPolicy", "service-access-logs-policy").inputs["policy"])
    (writer,) = [s["Principal"] for s in policy["Statement"] if s.get("Sid") == "AlbDeliversLogs"]
    assert writer == {
        "Service": "logdelivery.elasticloadbalancing.amazonaws.com",
        "AWS": f"arn:aws:iam::{loadbalancer.ELB_LOG_ACCOUNTS[region]}:root",
    }
    checked = analyzer.run_pack(
        POLICY_DIR, plan.registrations, policy_config=policy_config("dev"), server=policy_server, region=region
    )
    assert checked.mandatory == []
    # Prices the table lacks are named as unpriced, never taken as zero.
    cost = estimate.estimate(
        plan.registrations, region=region, assumptions=config.CostSettings().model_dump(by_alias=True)
    )
    assert cost.items == [] or all(i.unit_usd > 0 for i in cost.items)
    assert any(f"has no price for {region}" in note for note in cost.unpriced)
    # The plan's summary says so rather than show a bare $0.00.
    data = {"outputs": {}, "counts": {}, "findings": [], "mandatoryViolations": 0, "firstPreview": False}
    data |= {"policyPack": {"name": "p", "policies": 1}, "cost": cost.as_json({})}
    (line,) = [line for line in plan_cli.summary(data) if line.startswith("  cost:")]
    assert f"item(s) unpriced: the price table has no prices for {region}" in line


def test_prods_mandatory_budget_fails_in_a_region_beyond_the_price_table(policy_server):
    """The README says so: a stack with a budget there fails it until the table has the region."""
    plan = run_plan("prod", **{"aws:region": "eu-central-1", "cicd:certificateArn": CERT_EU})
    checked = analyzer.run_pack(
        POLICY_DIR, plan.registrations, policy_config=policy_config("prod"), server=policy_server, region="eu-central-1"
    )
    (budget,) = checked.mandatory
    assert budget.policy == "monthly-budget" and "the budget cannot be checked" in budget.message
