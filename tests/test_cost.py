"""The monthly estimate, checked against figures worked out by hand from cost/prices.json (us-east-1,
prices compiled 2026-11-27) and the default usage assumptions of cicd:cost."""

from __future__ import annotations

import contextlib
import io
import json
import os
from types import SimpleNamespace

import pytest
from conftest import POLICY_DIR, policy_config, run_plan

import config
from cost import diff as cost_diff
from cost import estimate, refresh
from offline import analyzer
from offline import plan as plan_cli

DEFAULTS = config.CostSettings().model_dump(by_alias=True)
H = 730  # hours in AWS's month


def cost_of(plan, **assumptions):
    return estimate.estimate(plan.registrations, region="us-east-1", assumptions={**DEFAULTS, **assumptions}).as_json(
        {**DEFAULTS, **assumptions}
    )


def lines(cost, resource):
    return {i["what"]: i["monthlyUsd"] for i in cost["items"] if i["resource"] == resource}


# dev: one ARM64 task of 0.25 vCPU / 0.5 GB (its base of one runs on-demand), one NAT gateway, six
# build actions per execution, 5 executions a day, 5 minutes each, on arm1.small ($0.0034/min).
DEV_BY_HAND = {
    "fargate": 0.25 * H * 0.03238 + 0.5 * H * 0.00356,
    "alb": H * 0.0225 + (1e6 * 20 / 1e6 / H) * H * 0.008,  # LCUs from 20 GB a month of responses
    "nat": H * 0.045 + 10 * 0.045,
    "ipv4": (1 + 2) * H * 0.005,  # the NAT gateway's Elastic IP, the load balancer's address in 2 zones
    "kms": 2 * 1.0,
    "secrets": 2 * 0.40,
    "alarms": (2 + 1 + 2 + 1 + 1 + 1 + 2 + 2 + 2 + 1) * 0.10,  # metric-math alarms count their metrics
    "dashboard": 3.0,
    "logs": 5 * 0.50 + 5 * (14 * 24 / H) * 0.03,  # 14 days of retention
    "pipeline": 150 * (6 * 5 + 1) * 0.002,  # the source action is billed too: a minute
    "codebuild": (150 * 6 * 5 + 30 * 5 + 150 * 5) * 0.0034,  # pipeline jobs, daily drift, a preview per change
    "ecr": 30 * 200 / 1024 * 0.10,
    "xray": 1e6 * 0.2 / 1e6 * 5.0,  # the service samples 20 % of requests itself
    "metrics": 4 * 0.30,  # the delivery metric filters' custom metrics
    "s3": 1 * 0.023,
}


def test_dev_estimate_is_the_sum_worked_out_by_hand(dev):
    cost = cost_of(dev)
    assert cost["monthlyUsd"] == round(sum(DEV_BY_HAND.values()), 2) == 108.38
    assert lines(cost, "service-service") == {
        "1 on-demand ARM64 task(s), vCPU": round(0.25 * H * 0.03238, 2),
        "1 on-demand ARM64 task(s), GB": round(0.5 * H * 0.00356, 2),
    }
    assert lines(cost, "network-vpc") == {
        "1 NAT gateway(s)": 32.85,
        "data through NAT": 0.45,
        "1 NAT gateway Elastic IP(s)": 3.65,
    }
    # The S3 gateway endpoint carries the image layers each deploy's task pulls: 150 deploys of one
    # 200 MB image, priced as NAT data only to show what it saves.
    (avoided,) = cost["avoided"]
    assert avoided["quantity"] == round(150 * 1 * 200 / 1024, 4) and avoided["unitUsd"] == 0.045
    assert avoided["monthlyUsd"] == round(150 * 200 / 1024 * 0.045, 2) == 1.32
    # What the stack is billed for beyond the model is named, not left out silently.
    assert cost["unpriced"] == [
        "Container Insights metrics of the cluster (per metric-month)",
        "VPC flow log data (ingested and stored in CloudWatch Logs)",
        "KMS requests ($0.03 per 10,000 after 20,000 free a month per account), and $1 a month per key for "
        "each of its first two yearly rotations",
        "data transfer out to the internet (the responses)",
        "CodeBuild and pipeline logs (CloudWatch Logs)",
    ]


def test_the_baseline_is_on_demand_x86_with_a_nat_gateway_per_az(dev):
    cost = cost_of(dev)
    x86 = 0.25 * H * 0.04048 + 0.5 * H * 0.004445
    # A second NAT gateway, and its Elastic IP.
    baseline = sum(DEV_BY_HAND.values()) - DEV_BY_HAND["fargate"] + x86 + H * 0.045 + H * 0.005
    assert cost["baseline"]["monthlyUsd"] == round(baseline, 2)
    assert cost["baseline"]["savingsUsd"] == round(baseline - sum(DEV_BY_HAND.values()), 2)


def test_prod_estimate_is_the_sum_worked_out_by_hand(prod):
    by_hand = {
        "fargate": 3 * 0.5 * H * 0.03238 + 3 * 1.0 * H * 0.00356,
        "alb": H * 0.0225 + 20 * 0.008,
        "nat": 3 * H * 0.045 + 10 * 0.045,
        "ipv4": (3 + 3) * H * 0.005,
        "waf": 5.0 + 3 * 1.0 + 1e6 / 1e6 * 0.60,
        "kms": 2 * 1.0,
        "secrets": 1 * 0.40,  # prod builds nothing: no SonarQube token
        "alarms": 15 * 0.10,
        "dashboard": 3.0,
        "logs": 5 * 0.50 + 5 * (365 * 24 / H) * 0.03,
        # source, choose, deploy and record: the approval is not billed
        "pipeline": 150 * (3 * 5 + 1) * 0.002,
        "codebuild": (150 * 3 * 5 + 30 * 5) * 0.0034,
        "xray": 1e6 * 0.05 / 1e6 * 5.0,
        "metrics": 4 * 0.30,
        "s3": 0.023,
    }
    cost = cost_of(prod)
    assert cost["monthlyUsd"] == round(sum(by_hand.values()), 2) == 214.97
    # The baseline: x86 tasks instead of ARM64 (prod already has a NAT gateway per zone).
    x86 = 3 * 0.5 * H * 0.04048 + 3 * 1.0 * H * 0.004445
    baseline = sum(by_hand.values()) - by_hand["fargate"] + x86
    assert cost["baseline"]["monthlyUsd"] == round(baseline, 2) and cost["baseline"]["savingsUsd"] == 10.81
    assert "ContainerImage" not in cost["components"]  # prod runs dev's images: no repository of its own


def test_spot_tasks_are_priced_at_the_assumed_discount():
    plan = run_plan("dev", **{"cicd:service": {"desiredCount": 3, "minCount": 3, "maxCount": 4}})
    cost = cost_of(plan, spotDiscountPercent=60)
    # A base of one on-demand task, the other two shared 1:3 between FARGATE and FARGATE_SPOT.
    service = lines(cost, "service-service")
    assert service["1.5 on-demand ARM64 task(s), vCPU"] == round(1.5 * 0.25 * H * 0.03238, 2)
    assert service["1.5 Spot ARM64 task(s), vCPU at 60% off (assumed)"] == round(1.5 * 0.25 * H * 0.03238 * 0.4, 2)


def test_a_price_the_table_lacks_is_listed_never_taken_as_zero(dev):
    prices = estimate.load_prices()
    del prices["prices"]["nat.hour"]["usd"]["us-east-1"]
    cost = estimate.estimate(dev.registrations, region="us-east-1", assumptions=DEFAULTS, prices=prices).as_json(
        DEFAULTS
    )
    assert "network-vpc: 1 NAT gateway(s) (nat.hour has no price for us-east-1)" in cost["unpriced"]
    assert cost["monthlyUsd"] == round(sum(DEV_BY_HAND.values()) - H * 0.045, 2)


def test_every_price_names_its_source_and_covers_the_four_regions():
    prices = estimate.load_prices()
    assert prices["compiled"] == "2026-11-27"
    for key, entry in prices["prices"].items():
        assert entry["unit"] and entry["offer"], key
        # A region without a price says why (no source found): never a number made up to fill the gap.
        assert set(entry["usd"]) | set(entry.get("missing", {})) == {"us-east-1", "us-east-2", "us-west-2", "eu-west-1"}
        assert not set(entry["usd"]) & set(entry.get("missing", {})), key
        for region, (usd, source) in entry["usd"].items():
            assert usd > 0 and source in prices["sources"], (key, region)


def test_the_configs_defaults_are_the_estimates():
    assert config.CostSettings().model_dump(by_alias=True) == estimate.DEFAULTS


def test_assumptions_are_validated_with_the_key_named():
    with pytest.raises(config.ConfigError) as raised:
        config.load_settings(
            {"cost": {"requestsPerMonth": -1, "spotDiscountPercent": 95, "buildsPerDay": "5"}},
            project="cicd",
            stack="dev",
            region="us-east-1",
        )
    errors = [e for e in raised.value.errors if e.startswith("cicd:cost")]
    assert [e.split(" ", 1)[0] for e in errors] == [
        "cicd:cost.requestsPerMonth",
        "cicd:cost.buildsPerDay",
        "cicd:cost.spotDiscountPercent",
    ]


def test_the_plan_prints_the_estimate_and_json_carries_it(tmp_path, capsys):
    out = tmp_path / "plan.json"
    assert plan_cli.main(["--stack", "dev", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Monthly estimate: $108.38 in us-east-1" in text
    assert "this stack's choices save $" in text
    cost = json.loads(out.read_text())["cost"]
    assert cost["monthlyUsd"] == 108.38
    assert {"component", "resource", "monthlyUsd"} <= set(cost["items"][0])
    assert round(sum(i["monthlyUsd"] for i in cost["items"]), 2) == pytest.approx(108.38, abs=0.05)


# -- the refresh script, on a recorded Price List answer ----------------------------------------------

RECORDED = os.path.join(os.path.dirname(__file__), "data", "pricing", "AmazonECS-us-east-1.json")


class RecordedClient:
    """Answers get_products from recorded responses by (service, region); nothing for the rest."""

    def __init__(self, answers):
        self.answers, self.asked = answers, []

    def get_paginator(self, operation):
        assert operation == "get_products"
        client = self

        class Paginator:
            def paginate(self, **params):
                region = params["Filters"][0]["Value"]
                client.asked.append((params["ServiceCode"], region))
                return [client.answers.get((params["ServiceCode"], region), {"PriceList": []})]

        return Paginator()


def test_refresh_reads_the_recorded_fargate_prices_and_keeps_what_it_cannot_read():
    with open(RECORDED, encoding="utf-8") as handle:
        recorded = json.load(handle)
    table = estimate.load_prices()
    client = RecordedClient({("AmazonECS", "us-east-1"): recorded})
    new, missing = refresh.refresh(client, table, "2026-12-07")
    usd = {k: v["usd"]["us-east-1"] for k, v in new["prices"].items()}
    assert usd["fargate.vcpuHour.X86_64"] == [0.04048, "PRICE-LIST-API"]
    assert usd["fargate.gbHour.X86_64"] == [0.004445, "PRICE-LIST-API"]
    assert usd["fargate.vcpuHour.ARM64"] == [0.03238, "PRICE-LIST-API"]
    assert usd["fargate.gbHour.ARM64"] == [0.00356, "PRICE-LIST-API"]
    # Not answered (here: every other service and region): kept as they were, and reported.
    assert usd["alb.hour"] == table["prices"]["alb.hour"]["usd"]["us-east-1"]
    assert "alb.hour in us-east-1: 0 prices for LoadBalancerUsage (kept the table's)" in missing
    assert "fargate.vcpuHour.X86_64 in us-east-2: 0 prices for Fargate-vCPU-Hours:perCPU (kept the table's)" in missing
    # Windows and ARM rows of the same offer are not taken for the Linux x86 ones.
    assert not [m for m in missing if m.startswith("fargate.") and "us-east-1" in m]
    assert ("AmazonECS", "us-east-1") in client.asked and "PRICE-LIST-API" in new["sources"]
    # Not every price was refreshed: the table keeps its date, not the day of a partial refresh.
    assert new["compiled"] == table["compiled"] == "2026-11-27"
    assert new["sources"]["PRICE-LIST-API"]["published"] == "2026-12-07"


def test_refresh_takes_the_application_load_balancers_price_of_the_usagetype_all_balancers_share():
    """A made-up answer (not a recording): the same usagetype in two product families."""

    def product(family, usd):
        term = {"priceDimensions": {"d": {"beginRange": "0", "unit": "Hrs", "pricePerUnit": {"USD": usd}}}}
        return json.dumps(
            {
                "product": {"productFamily": family, "attributes": {"usagetype": "USE2-LoadBalancerUsage"}},
                "terms": {"OnDemand": {"t": term}},
            }
        )

    page = {"PriceList": [product("Load Balancer-Network", "0.0225"), product("Load Balancer-Application", "0.0226")]}
    table = estimate.load_prices()
    new, missing = refresh.refresh(RecordedClient({("AWSELB", "us-east-2"): page}), table, "2026-11-27")
    assert new["prices"]["alb.hour"]["usd"]["us-east-2"] == [0.0226, "PRICE-LIST-API"]
    assert not [m for m in missing if m.startswith("alb.hour in us-east-2")]


def test_refresh_asks_the_api_as_botocore_models_it():
    import botocore.session
    from botocore.stub import Stubber

    with open(RECORDED, encoding="utf-8") as handle:
        recorded = json.load(handle)
    session = botocore.session.get_session()
    client = session.create_client("pricing", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    with Stubber(client) as stub:
        stub.add_response(
            "get_products",
            {"FormatVersion": recorded["FormatVersion"], "PriceList": recorded["PriceList"]},
            {
                "ServiceCode": "AmazonECS",
                "Filters": [
                    {"Type": "TERM_MATCH", "Field": "regionCode", "Value": "us-east-1"},
                    {"Type": "TERM_MATCH", "Field": "usagetype", "Value": "USE1-Fargate-GB-Hours"},
                ],
                "FormatVersion": "aws_v1",
            },
        )
        found = list(refresh.products(client, "AmazonECS", "us-east-1", "USE1-Fargate-GB-Hours"))
    assert len(found) == 11
    assert {p["product"]["attributes"]["usagetype"] for p in found} >= {"USE1-Fargate-ARM-GB-Hours"}


@pytest.mark.parametrize(
    ("usagetype", "region", "wanted", "expected"),
    [
        ("USE1-Fargate-GB-Hours", "us-east-1", "Fargate-GB-Hours", True),
        ("USE1-Fargate-ARM-GB-Hours", "us-east-1", "Fargate-GB-Hours", False),
        ("NatGateway-Hours", "us-east-1", "NatGateway-Hours", True),
        ("NatGateway-Hours", "eu-west-1", "NatGateway-Hours", False),
        ("EU-NatGateway-Hours", "eu-west-1", "NatGateway-Hours", True),
        ("us-west-2-KMS-Keys", "us-west-2", "KMS-Keys", True),
        ("USE2-LCUUsage", "us-west-2", "LCUUsage", False),
    ],
)
def test_a_usagetype_matches_only_its_region(usagetype, region, wanted, expected):
    assert refresh.matches(usagetype, region, wanted) is expected


def test_a_price_far_from_the_tables_is_reported_not_written():
    with open(RECORDED, encoding="utf-8") as handle:
        recorded = json.load(handle)
    table = estimate.load_prices()
    table["prices"]["fargate.gbHour.ARM64"]["usd"]["us-east-1"] = [0.0356, "QPW"]  # ten times the recorded
    new, missing = refresh.refresh(RecordedClient({("AmazonECS", "us-east-1"): recorded}), table, "2026-11-27")
    assert new["prices"]["fargate.gbHour.ARM64"]["usd"]["us-east-1"] == [0.0356, "QPW"]
    assert "fargate.gbHour.ARM64 in us-east-1: 0.00356 per hours against 0.0356 (over 3x apart" in " ".join(missing)


@pytest.mark.parametrize(
    ("rules", "kept"),
    [
        ([{"selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 12}}], 12),
        ([{"selection": {"tagStatus": "tagged", "countType": "imageCountMoreThan", "countNumber": 1000}}], 30),
    ],
)
def test_ecr_storage_counts_the_images_the_lifecycle_keeps(rules, kept):
    class Policy:
        inputs = {"policy": json.dumps({"rules": rules})}

    assert estimate._images_kept([Policy()]) == kept


# -- the budget in the policy pack -----------------------------------------------------------------


def budget_findings(server, plan, region="us-east-1", **config):
    server.configure({"monthly-budget": {"enforcementLevel": "mandatory", **config}})
    try:
        return [f for f in server.analyze(plan.registrations, region=region) if f.policy == "monthly-budget"]
    finally:
        server.configure({})


def test_a_stack_over_its_budget_fails_naming_the_largest_items(prod, policy_server):
    [finding] = budget_findings(policy_server, prod, maxMonthlyUsd=150)
    assert finding.level == "mandatory"
    message = finding.message.splitlines()[-1]
    # The pack's estimate is the plan's: one definition.
    assert (
        "the estimated cost, $214.97 a month in us-east-1 (prices of 2026-11-27), is over the budget of $150.00"
        in message
    )
    assert (
        "the largest items: network-vpc 3 NAT gateway(s) $98.55; service-service 3 on-demand ARM64 task(s)" in message
    )


def test_a_stack_within_its_budget_passes(prod, policy_server):
    assert budget_findings(policy_server, prod, maxMonthlyUsd=214.98) == []


def test_the_budget_reads_the_stacks_region_and_usage_as_the_engine_hands_them(dev):
    # The engine starts the pack with the stack's config in PULUMI_CONFIG: here 100 GB of logs a month
    # instead of 5 ($47.50 more ingestion, 14 days of storage), and no provider region at all.
    config = {"aws:region": "us-east-1", "cicd:cost": json.dumps({"logGbPerMonth": 100})}
    with analyzer.PolicyServer(POLICY_DIR, stack="dev", config=config) as server:
        [finding] = budget_findings(server, dev, region=None, maxMonthlyUsd=100)
    extra = 95 * 0.50 + 95 * (14 * 24 / H) * 0.03
    assert f"${round(sum(DEV_BY_HAND.values()) + extra, 2):,.2f} a month in us-east-1" in finding.message


def test_a_budget_before_the_values_it_needs_are_known_says_it_could_not_run(policy_server):
    from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

    task = SimpleNamespace(
        type="aws:ecs/taskDefinition:TaskDefinition",
        urn="urn:pulumi:dev::cicd::aws:ecs/taskDefinition:TaskDefinition::task",
        name="task",
        object=analyzer.struct({"cpu": UNKNOWN_STRING_VALUE, "memory": "512"}),
        parent="",
        protect=False,
        ignore_changes=[],
        dependencies=[],
        property_dependencies={},
    )
    [finding] = budget_findings(policy_server, SimpleNamespace(registrations=[task]), maxMonthlyUsd=1)
    assert finding.could_not_run and "task.cpu" in finding.message


def test_a_budget_in_a_region_the_price_table_lacks_fails_rather_than_pricing_at_zero(dev):
    with analyzer.PolicyServer(POLICY_DIR, stack="dev", config={"aws:region": "sa-east-1"}) as server:
        [finding] = budget_findings(server, dev, region=None, maxMonthlyUsd=10**6)
    assert finding.level == "mandatory" and not finding.could_not_run
    assert "the budget cannot be checked: the price table" in finding.message
    assert "has no price in sa-east-1" in finding.message and "python -m cost.refresh" in finding.message


def test_without_a_budget_or_a_region_the_policy_says_so(dev, policy_server):
    assert budget_findings(policy_server, dev) == []
    [finding] = budget_findings(policy_server, dev, region=None, maxMonthlyUsd=100)
    assert "neither aws:region nor a resource's AWS provider names a region" in finding.message


def test_the_sample_stacks_have_budgets_their_estimates_meet(dev, prod):
    budgets = {s: policy_config(s)["monthly-budget"] for s in ("dev", "prod")}
    assert budgets["dev"] == {"enforcementLevel": "advisory", "maxMonthlyUsd": 150}
    assert budgets["prod"] == {"enforcementLevel": "mandatory", "maxMonthlyUsd": 300}
    for plan, stack in ((dev, "dev"), (prod, "prod")):
        assert cost_of(plan)["monthlyUsd"] <= budgets[stack]["maxMonthlyUsd"], stack


def test_tasks_are_priced_at_the_autoscaling_floor_not_the_live_count(prod):
    """A refreshed preview hands the policy the service's live desired count (ECS and autoscaling own
    it): a deploy during a spike must not price the spike. The floor is cicd:service.minCount."""
    scaled = [
        SimpleNamespace(urn=r.urn, type=r.type, inputs={**r.inputs, "desiredCount": 12.0})
        if r.type == "aws:ecs/service:Service"
        else r
        for r in prod.registrations
    ]
    assert cost_of(SimpleNamespace(registrations=scaled))["monthlyUsd"] == cost_of(prod)["monthlyUsd"] == 214.97


def test_the_plan_shows_the_budget_its_policy_config_sets(dev):
    cost = plan_cli.monthly_cost(dev.result, {"monthly-budget": {"maxMonthlyUsd": 150}})
    assert cost["budget"] == {"maxMonthlyUsd": 150}
    assert "Budget (policy monthly-budget): $150.00 a month" in estimate.render(cost)
    assert "budget" not in plan_cli.monthly_cost(dev.result, {})


# -- the pull request's cost section -----------------------------------------------------------------

BASE = {"monthlyUsd": 95.93, "pricesCompiled": "2026-11-27", "components": {"Network": 33.30, "FargateService": 27.36}}
HEAD = {
    "monthlyUsd": 130.13,
    "pricesCompiled": "2026-11-27",
    "components": {"Network": 66.15, "FargateService": 28.71, "WebFirewall": 0.0},
}


def test_the_cost_section_shows_both_totals_and_the_difference_per_component():
    text = cost_diff.section("dev", BASE, HEAD)
    lines = text.splitlines()
    assert lines[0].startswith("**Monthly cost of stack dev**: $95.93 → $130.13 (+$34.20 a month; prices of 2026-11-27")
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| component")]
    # The largest change first; a component only one side has counts as $0 on the other.
    assert rows == [
        "| Network | $33.30 | $66.15 | +$32.85 |",
        "| FargateService | $27.36 | $28.71 | +$1.35 |",
        "| 1 other component(s), unchanged | | | |",
    ]
    cheaper = cost_diff.section("dev", HEAD, BASE)
    assert "(-$34.20 a month" in cheaper and "| Network | $66.15 | $33.30 | -$32.85 |" in cheaper


def test_a_side_without_an_estimate_is_named_not_taken_as_zero(tmp_path):
    failed = tmp_path / "base.json"
    failed.write_text(json.dumps({"stack": "dev", "errors": ["cicd:service.cpu must be one of 256, 512"]}))
    head = tmp_path / "head.json"
    head.write_text(json.dumps({"stack": "dev", "cost": HEAD}))
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert cost_diff.main(["--stack", "dev", "--base", str(failed), "--head", str(head)]) == 0
    assert buffer.getvalue() == (
        "**Monthly cost of stack dev**: $130.13 with this pull request; no estimate of the base "
        "(its plan failed: cicd:service.cpu must be one of 256, 512).\n"
    )
    assert cost_diff.section("dev", BASE, None, head_missing="no plan") == (
        "**Monthly cost of stack dev**: no estimate for this pull request (no plan).\n"
    )


def test_nat_gateways_as_a_deployment_registers_them():
    """The engine sends awsx's own NAT gateways and subnets, and the VPC component with its outputs
    (a list of gateways, no strategy): the estimate counts the gateways, the baseline one per zone."""
    from types import SimpleNamespace as R

    net = "urn:pulumi:prod::cicd::cicd:network:Network$awsx:ec2:Vpc$aws:ec2/"
    subnets = [
        R(urn=f"{net}subnet:Subnet::s{i}", type="aws:ec2/subnet:Subnet", inputs={"availabilityZone": f"us-east-1{z}"})
        for i, z in enumerate("abcabc")
    ]
    vpc = R(
        urn="urn:pulumi:prod::cicd::cicd:network:Network$awsx:ec2:Vpc::network-vpc",
        type="awsx:ec2:Vpc",
        inputs={"natGateways": [{"urn": "x"}]},
    )
    nat = R(urn=f"{net}natGateway:NatGateway::n0", type="aws:ec2/natGateway:NatGateway", inputs={})
    found = estimate.estimate([*subnets, vpc, nat], region="eu-west-1", assumptions=DEFAULTS)
    assert [(i.resource, i.quantity, i.monthly_usd) for i in found.items] == [
        ("nat-gateways", H, H * 0.048),
        ("nat-gateways", 10, 10 * 0.048),
        ("nat-gateways", H, H * 0.005),
    ]
    assert found.baseline_usd == pytest.approx(3 * H * 0.048 + 10 * 0.048 + 3 * H * 0.005)
    none = estimate.estimate([*subnets, vpc], region="eu-west-1", assumptions=DEFAULTS)
    assert none.items == [] and none.baseline_usd == pytest.approx(3 * H * 0.048 + 10 * 0.048 + 3 * H * 0.005)


def test_a_budget_config_without_a_level_keeps_the_policys_advisory_one_as_the_cli_does(prod, policy_server):
    policy_server.configure({"monthly-budget": {"maxMonthlyUsd": 100}})
    try:
        findings = [
            f for f in policy_server.analyze(prod.registrations, region="us-east-1") if f.policy == "monthly-budget"
        ]
    finally:
        policy_server.configure({})
    assert [f.level for f in findings] == ["advisory"]


def test_what_the_estimate_leaves_out_is_compared_too():
    head = {**HEAD, "unpriced": ["WAF log data (CloudWatch Logs)"]}
    text = cost_diff.section("dev", {**BASE, "unpriced": []}, head)
    assert text.endswith(
        "Not in either estimate, and changed by this pull request:\n- now: WAF log data (CloudWatch Logs)\n"
    )


def test_refresh_writes_nothing_when_the_api_answers_nothing(tmp_path, monkeypatch):
    import botocore.session

    class Session:
        def create_client(self, service, region_name):
            assert (service, region_name) == ("pricing", "us-east-1")  # the API answers only there
            return RecordedClient({})

    monkeypatch.setattr(botocore.session, "get_session", lambda: Session())
    out = tmp_path / "prices.json"
    assert refresh.main(["--out", str(out)]) == 2
    assert not out.exists()


def test_without_the_s3_gateway_endpoint_image_layers_are_billed_as_nat_data(dev):
    gateway = next(r for r in dev.registrations if r.type == "aws:ec2/vpcEndpoint:VpcEndpoint")
    without = [r for r in dev.registrations if r is not gateway]
    cost = estimate.estimate(without, region="us-east-1", assumptions=DEFAULTS).as_json(DEFAULTS)
    assert cost["avoided"] == []
    layers = {k: v for k, v in lines(cost, "network-vpc").items() if k.startswith("image layers")}
    assert layers == {"image layers (1 task(s) x 150 deploys) through NAT: no S3 gateway endpoint": 1.32}
    assert cost["monthlyUsd"] == round(cost_of(dev)["monthlyUsd"] + 1.32, 2)
    # Ten deploys a day of a 1 GB image to three tasks: 900 GB a month, $40.50 through NAT.
    busy = {**DEFAULTS, "buildsPerDay": 10, "imageMb": 1024}
    floor = "aws:appautoscaling/target:Target"
    heavy = estimate.estimate(
        [r for r in without if r.type != floor] + [_with_floor(dev, 3)], region="us-east-1", assumptions=busy
    ).as_json(busy)
    assert [v for k, v in lines(heavy, "network-vpc").items() if k.startswith("image layers")] == [40.5]


def _with_floor(plan, count):
    """The service's autoscaling target with another floor (the estimate prices tasks at the floor)."""
    floor = next(r for r in plan.registrations if r.type == "aws:appautoscaling/target:Target")
    assert floor.inputs["minCapacity"] == 1
    return SimpleNamespace(urn=floor.urn, type=floor.type, inputs={**floor.inputs, "minCapacity": count})


def test_interface_endpoints_are_priced_per_zone_hour_and_their_data_named():
    plan = run_plan("dev", **{"cicd:network": {"natGateways": "none"}})
    cost = cost_of(plan)
    endpoints = [i for i in cost["items"] if i["unit"] == "endpoint-AZ-hour"]
    # natGateways none: the tasks reach AWS through interface endpoints, each in both zones.
    assert endpoints and all(i["quantity"] == 2 * H and i["monthlyUsd"] == round(2 * H * 0.01, 2) for i in endpoints)
    assert "data processed by the interface endpoints (endpoint.gb in the price table)" in cost["unpriced"]
    assert not [i for i in cost["items"] if i["unit"].startswith("NAT")]


# -- units: each price unit converted as worked out by hand -----------------------------------------


@pytest.mark.parametrize(
    "key, service, usagetype, unit, per_unit, table_usd",
    [
        # Made-up answers (not recordings), in the Price List's own units; the table's unit beside.
        ("nat.hour", "AmazonEC2", "USE1-NatGateway-Hours", "Hrs", "0.045", 0.045),  # per hour
        ("s3.storageGbMonth", "AmazonS3", "USE1-TimedStorage-ByteHrs", "GB-Mo", "0.023", 0.023),  # per GB-month
        ("kms.requests10k", "awskms", "us-east-1-KMS-Requests", "Requests", "0.000003", 0.03),  # per 10,000
        ("xray.tracesMillion", "AWSXRay", "USE1-XRay-TracesStored", "Traces", "0.000005", 5.0),  # per million
        ("waf.requestsMillion", "awswaf", "USE1-RequestV2-Tier1", "Request", "0.0000006", 0.6),  # per million
    ],
)
def test_refresh_converts_each_price_unit_to_the_tables(key, service, usagetype, unit, per_unit, table_usd):
    term = {"priceDimensions": {"d": {"beginRange": "0", "unit": unit, "pricePerUnit": {"USD": per_unit}}}}
    product = {
        "product": {"productFamily": "f", "attributes": {"usagetype": usagetype}},
        "terms": {"OnDemand": {"t": term}},
    }
    table = estimate.load_prices()
    new, _ = refresh.refresh(
        RecordedClient({(service, "us-east-1"): {"PriceList": [json.dumps(product)]}}), table, "2026-12-07"
    )
    assert new["prices"][key]["usd"]["us-east-1"] == [table_usd, "PRICE-LIST-API"]


def test_each_priced_unit_of_the_estimate_as_worked_out_by_hand(dev):
    """One line of each kind of unit: per hour, per GB-month, per action-minute, per build-minute, per
    million traces, per metric-month."""
    cost = cost_of(dev)
    items = {(i["resource"], i["what"]): i for i in cost["items"]}
    nat = items[("network-vpc", "1 NAT gateway(s)")]
    assert (nat["quantity"], nat["unitUsd"], nat["monthlyUsd"]) == (730, 0.045, round(730 * 0.045, 2))  # hours
    ecr = next(i for i in cost["items"] if i["unit"].startswith("GB-month") and i["resource"] == "image-repo")
    assert ecr["quantity"] == round(30 * 200 / 1024, 4) and ecr["monthlyUsd"] == round(30 * 200 / 1024 * 0.10, 2)
    pipeline = next(i for i in cost["items"] if i["resource"] == "pipeline-pipeline")
    assert pipeline["quantity"] == 150 * (6 * 5 + 1) and pipeline["monthlyUsd"] == round(150 * 31 * 0.002, 2)
    builds = [i for i in cost["items"] if i["unit"] == "build-minute"]
    assert builds and all(i["unitUsd"] == 0.0034 for i in builds)
    assert sum(i["quantity"] for i in builds) == 150 * 6 * 5 + 30 * 5 + 150 * 5
    traces = next(i for i in cost["items"] if i["resource"] == "monitoring-sampling")
    assert traces["quantity"] == 1e6 * 0.2 / 1e6 and traces["monthlyUsd"] == round(0.2 * 5.0, 2)  # per million
    logs = next(i for i in cost["items"] if i["what"].startswith("log data kept"))
    assert logs["quantity"] == round(5 * 14 * 24 / 730, 4)  # GB kept for 14 days, in GB-months


@pytest.mark.parametrize(
    "typ, props, unknown_at",
    [
        (
            "aws:ecs/service:Service",
            {"name": "s", "capacityProviderStrategies": [{"weight": "?"}]},
            "capacityProviderStrategies",
        ),
        (
            "aws:ecs/taskDefinition:TaskDefinition",
            {"cpu": "256", "memory": "512", "runtimePlatform": {"cpuArchitecture": "?"}},
            "runtimePlatform",
        ),
    ],
)
def test_a_budget_with_an_unknown_inside_a_list_or_object_it_reads_could_not_run(typ, props, unknown_at, policy_server):
    """A value the estimate reads one level down (a strategy's weight, the task's architecture) unknown:
    an estimate from a guess could pass a stack over budget."""
    from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

    def fill(value):
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        return UNKNOWN_STRING_VALUE if value == "?" else value

    resource = SimpleNamespace(
        type=typ, urn=f"urn:pulumi:dev::cicd::{typ}::r", name="r", object=analyzer.struct(fill(props)),
        parent="", protect=False, ignore_changes=[], dependencies=[], property_dependencies={},
    )  # fmt: skip
    [finding] = budget_findings(policy_server, SimpleNamespace(registrations=[resource]), maxMonthlyUsd=1)
    assert finding.could_not_run and f"r.{unknown_at}" in finding.message
