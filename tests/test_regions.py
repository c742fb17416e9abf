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
    # 18 of botocore's 34 commercial regions have CodePipeline, CodeBuild, CodeCommit and CodeStar
    # Notifications (components/regions.py, checked against botocore in test_config).
    assert len(ACCEPTED) == 18 and "us-east-1" in ACCEPTED and "eu-central-2" not in ACCEPTED


@pytest.mark.parametrize("region", ["cn-north-1", "cn-northwest-1", "us-gov-west-1", "us-isob-east-1"])
def test_regions_of_other_partitions_are_refused_by_name(region):
    with pytest.raises(config.ConfigError) as err:
        config.load_settings(BUILDING, project="cicd", stack="t", region=region)
    assert str(err.value).startswith(f"aws:region {region} is in the aws-")
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
