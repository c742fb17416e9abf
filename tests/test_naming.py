"""The pack's name and description rules, held against AWS's own API models (botocore), and both ways."""

import re

import botocore.session
import pytest
from conftest import POLICY_DIR  # noqa: F401 - puts policy/ on sys.path
from test_policies import Resource, findings

from policies import naming

SESSION = botocore.session.get_session()
# Where the pack is deliberately stricter than the model, or speaks Python's regex dialect.
DIALECT = {
    r"\p{Print}+": naming.PRINTABLE,
    r"^[a-zA-Z0-9:/_-]+$": r"^alias/(?!aws/)[a-zA-Z0-9:/_-]+$",  # AWS documents the alias/ prefix and aws/ as reserved
}


def _model(source):
    """(min, max, pattern) of a rule's source, 'service Operation Member' or 'service Shape [Member]'."""
    service, *names = source.split()
    model = SESSION.get_service_model(service)
    if names[0] in model.operation_names:
        shape = model.operation_model(names[0]).input_shape.members[names[1]]
    else:
        shape = model.shape_for(names[0])
        if len(names) > 1:
            shape = shape.members[names[1]]
    meta = shape.metadata
    return meta.get("min", 0), meta.get("max"), meta.get("pattern")


MODELLED = [(typ, rule) for typ, rules in naming.NAME_RULES.items() for rule in rules if "documentation" not in rule[4]]


@pytest.mark.parametrize("typ, rule", MODELLED, ids=[f"{t}.{r[0]}" for t, r in MODELLED])
def test_each_rule_is_what_the_api_model_says(typ, rule):
    prop, shortest, longest, pattern, source = rule
    low, high, model_pattern = _model(source)
    assert (shortest, longest) == (low, high), source
    if model_pattern is not None:
        assert pattern == DIALECT.get(model_pattern, model_pattern), source
    assert len(MODELLED) >= 25


GOOD_AND_BAD = [
    ("aws:iam/role:Role", {"name": "web-dev-task"}, {"name": "web dev task"}),
    ("aws:iam/role:Role", {"description": "Lets ECS pull the image layers"}, {"description": "x" * 1001}),
    ("aws:lb/loadBalancer:LoadBalancer", {"name": "web-dev-alb"}, {"name": "web_dev_alb"}),
    ("aws:lb/loadBalancer:LoadBalancer", {"name": "web-dev-alb"}, {"name": "internal-web"}),
    ("aws:lb/targetGroup:TargetGroup", {"name": "web-stg-green"}, {"name": "a" * 33}),
    ("aws:cloudwatch/logGroup:LogGroup", {"name": "/aws/codebuild/web-dev-image"}, {"name": "/ecs/web dev"}),
    ("aws:codebuild/project:Project", {"name": "web-dev-image"}, {"name": "web.dev.image"}),
    ("aws:secretsmanager/secret:Secret", {"name": "web-dev/API_KEY"}, {"name": "web-dev/API KEY"}),
    (
        "aws:wafv2/webAcl:WebAcl",
        {"name": "web-prd", "description": "Managed protections for web-prd"},
        {"name": "web-prd", "description": "Don't block us"},
    ),
    ("aws:cloudwatch/eventRule:EventRule", {"name": "web-dev-on-push"}, {"name": "x" * 65}),
    ("aws:lambda/function:Function", {"name": "web-dev-smoke-test"}, {"name": "web-dev-smoke-test" * 4}),
    (
        "aws:ecr/pullThroughCacheRule:PullThroughCacheRule",
        {"ecrRepositoryPrefix": "web-dev-pub"},
        {"ecrRepositoryPrefix": "a-twenty-character-service-pub"[:31] + "x"},
    ),
    ("aws:kms/alias:Alias", {"name": "alias/web-dev-data"}, {"name": "alias/aws/web"}),
    ("aws:s3/bucket:Bucket", {"bucket": "web-dev-artifacts-123456789012"}, {"bucket": "Web-Dev-Artifacts"}),
    ("aws:ecs/service:Service", {"name": "web-dev"}, {"name": "web.dev"}),
    (
        "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration",
        {"logDestinationConfigs": ["arn:aws:logs:us-east-1:1:log-group:aws-waf-logs-web-prd"]},
        {"logDestinationConfigs": ["arn:aws:logs:us-east-1:1:log-group:/waf/web-prd"]},
    ),
]


@pytest.mark.parametrize("typ, good, bad", GOOD_AND_BAD, ids=[f"{c[0]}-{i}" for i, c in enumerate(GOOD_AND_BAD)])
def test_names_both_ways(typ, good, bad, policy_server):
    policy_server.configure({})
    assert findings(policy_server, Resource(typ, good), "aws-names-and-descriptions") == []
    found = findings(policy_server, Resource(typ, bad), "aws-names-and-descriptions")
    assert len(found) == 1 and found[0].level == "mandatory" and not found[0].could_not_run, found


def test_a_name_unknown_at_preview_is_a_check_that_could_not_run(policy_server):
    policy_server.configure({})
    unknown = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
    found = findings(policy_server, Resource("aws:s3/bucket:Bucket", {"bucket": unknown}), "aws-names-and-descriptions")
    assert len(found) == 1 and found[0].could_not_run


def test_the_waf_description_rule_is_the_api_pattern():
    rule = {r[0]: r for r in naming.NAME_RULES["aws:wafv2/webAcl:WebAcl"]}["description"]
    assert re.fullmatch(rule[3], "Managed protections for the web-prd load balancer")
