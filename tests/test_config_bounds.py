"""Every bound of the configuration contract, both ways: the last valid value passes its own check and
the first invalid one fails it, with the message naming the key and the bound. The bounds are stated
here from AWS's limits and the README, independently of config.py's declarations."""

from __future__ import annotations

import json

import pytest

import config

ROLE = "arn:aws:iam::123456789012:role/cicd-deployer"
PIPELINE = {"deployRoleArn": ROLE, "backendUrl": "s3://state-bucket", "sonarOrganization": "acme"}


def errors(section: str, values: dict) -> list[str]:
    raw = {"pipeline": json.dumps(PIPELINE)}
    raw[section] = json.dumps({**(json.loads(raw.get(section, "{}"))), **values})
    try:
        config.load_settings(raw, project="cicd", stack="t", region="us-east-1")
    except config.ConfigError as err:
        return err.errors
    return []


# (section, key, last valid low, last valid high, the message's range, context the key needs)
WHOLE = [
    ("service", "containerPort", 1024, 65535, None, {}),
    ("service", "desiredCount", 1, 1000, "between 1 and 1000", {"maxCount": 1000}),
    ("service", "minCount", 1, 1000, "between 1 and 1000", {"desiredCount": 1000, "maxCount": 1000}),
    ("service", "maxCount", 1, 1000, "between 1 and 1000", {"desiredCount": 1, "minCount": 1}),
    ("deployment", "bakeTimeMinutes", 0, 1440, "between 0 and 1440", {}),
    ("deployment", "canaryBakeMinutes", 0, 1440, "between 0 and 1440", {"strategy": "CANARY"}),
    ("deployment", "linearStepBakeMinutes", 0, 1440, "between 0 and 1440", {"strategy": "LINEAR"}),
    ("deployment", "deregistrationDelaySeconds", 0, 3600, "between 0 and 3600", {}),
    ("deployment", "healthCheckIntervalSeconds", 5, 300, "between 5 and 300", {}),
    ("network", "availabilityZones", 2, 3, "between 2 and 3", {}),
    ("observability", "p99LatencyMs", 1, 600000, "between 1 and 600000", {}),
    ("cost", "requestsPerMonth", 0, 10**12, f"between 0 and {10**12}", {}),
    ("cost", "responseKb", 0, 10**6, f"between 0 and {10**6}", {}),
    ("cost", "logGbPerMonth", 0, 10**6, f"between 0 and {10**6}", {}),
    ("cost", "natGbPerMonth", 0, 10**7, f"between 0 and {10**7}", {}),
    ("cost", "buildsPerDay", 0, 1000, "between 0 and 1000", {}),
    ("cost", "buildMinutes", 1, 2160, "between 1 and 2160", {}),
    ("cost", "imageMb", 1, 10**5, f"between 1 and {10**5}", {}),
    ("cost", "s3Gb", 0, 10**7, f"between 0 and {10**7}", {}),
    ("cost", "spotDiscountPercent", 0, 90, "between 0 and 90", {}),
]


def _own(errs: list[str], section: str, key: str) -> list[str]:
    return [e for e in errs if e.startswith(f"cicd:{section}.{key} ")]


@pytest.mark.parametrize("section, key, low, high, message, context", WHOLE, ids=[f"{s}.{k}" for s, k, *_ in WHOLE])
def test_each_whole_number_bound_both_ways(section, key, low, high, message, context):
    for valid in (low, high):
        # The last valid values pass the key's own check (a rule across keys, such as the deploy job's
        # length for the bake times, may still refuse a whole stack with them).
        assert not [e for e in _own(errors(section, {**context, key: valid}), section, key) if "between" in e], valid
    for invalid in (low - 1, high + 1):
        own = _own(errors(section, {**context, key: invalid}), section, key)
        assert own, (key, invalid)
        if message:
            assert own == [f"cicd:{section}.{key} must be {message}; got {invalid}"]


def test_the_container_port_bounds_name_what_each_one_protects():
    assert errors("service", {"containerPort": 1023}) == [
        "cicd:service.containerPort must be 1024 or above (the container runs as a non-root user); got 1023"
    ]
    assert errors("service", {"containerPort": 65536}) == [
        "cicd:service.containerPort must be between 1 and 65535; got 65536"
    ]
    assert errors("service", {"containerPort": 0}) == ["cicd:service.containerPort must be between 1 and 65535; got 0"]


@pytest.mark.parametrize(
    "section, key, valid, invalid, phrase, context",
    [
        # AWS accepts a canary of 0.1-100 % and a linear step of 3-100 %; 100 would be no canary.
        (
            "deployment",
            "canaryPercent",
            (0.1, 99.9),
            (0.09, 100.0),
            "at least 0.1 and below 100",
            {"strategy": "CANARY"},
        ),
        (
            "deployment",
            "linearStepPercent",
            (3.0, 99.9),
            (2.9, 100.0),
            "at least 3 and below 100",
            {"strategy": "LINEAR"},
        ),
        ("observability", "xraySamplingRate", (0.0, 1.0), (-0.01, 1.01), "between 0 and 1", {}),
        ("observability", "errorRatePercent", (0.01, 100.0), (0.0, 100.5), "above 0 and at most 100", {}),
    ],
)
def test_each_fraction_bound_both_ways(section, key, valid, invalid, phrase, context):
    for value in valid:
        assert _own(errors(section, {**context, key: value}), section, key) == [], value
    for value in invalid:
        (own,) = _own(errors(section, {**context, key: value}), section, key)
        assert phrase in own, own


@pytest.mark.parametrize(
    "section, key, last_valid, first_invalid",
    [
        ("service", "name", "w" + "a" * 19, "w" + "a" * 20),  # 20 characters: the ALB's 32 less its suffixes
        ("service", "name", "wa", "w"),
        ("pipeline", "repositoryName", "r" * 100, "r" * 101),  # CodeCommit: 1-100
        ("pipeline", "branch", "b" * 255, "b" * 256),
        ("service", "healthCheckPath", "/" + "h" * 1023, "/" + "h" * 1024),  # ELB: at most 1024
        ("pipeline", "sonarProjectKey", "k" * 400, "k" * 401),
    ],
)
def test_each_length_bound_both_ways(section, key, last_valid, first_invalid):
    context = {}
    assert _own(errors(section, {**context, key: last_valid}), section, key) == []
    assert _own(errors(section, {**context, key: first_invalid}), section, key), first_invalid


DIGEST = "123456789012.dkr.ecr.us-east-1.amazonaws.com/web-dev@sha256:"


def test_an_image_digest_is_exactly_64_hex_characters():
    assert _own(errors("service", {"image": DIGEST + "a" * 64}), "service", "image") == []
    for wrong in ("a" * 63, "a" * 65, "A" * 64, "g" * 64):
        assert _own(errors("service", {"image": DIGEST + wrong}), "service", "image"), wrong


def test_the_network_prefix_is_16_to_24_both_ways():
    for cidr in ("10.0.0.0/16", "10.0.0.0/24"):
        assert _own(errors("network", {"cidr": cidr}), "network", "cidr") == []
    for cidr, phrase in (("10.0.0.0/15", "from /16 to /24"), ("10.0.0.0/25", "from /16 to /24")):
        (own,) = _own(errors("network", {"cidr": cidr}), "network", "cidr")
        assert phrase in own
    (public,) = _own(errors("network", {"cidr": "11.0.0.0/16"}), "network", "cidr")
    assert "private range" in public


def test_tags_and_secrets_are_counted_and_unique():
    forty = {f"t{i}": "v" for i in range(40)}
    assert not [e for e in errors("service", {}) if "tags" in e]
    raw = {"pipeline": json.dumps(PIPELINE), "tags": json.dumps(forty)}
    assert config.load_settings(raw, project="cicd", stack="t", region="us-east-1").tags == forty
    with pytest.raises(config.ConfigError, match="cicd:tags may hold at most 40 tags"):
        config.load_settings(
            {**raw, "tags": json.dumps({**forty, "t40": "v"})}, project="cicd", stack="t", region="us-east-1"
        )
    assert _own(errors("service", {"secrets": ["API_KEY", "api_key"]}), "service", "secrets[1]")
    assert _own(errors("pipeline", {"trivySeverity": "HIGH,HIGH"}), "pipeline", "trivySeverity")
    assert _own(errors("pipeline", {"trivySeverity": "HIGH,CRITICAL"}), "pipeline", "trivySeverity") == []


def test_retention_is_one_of_cloudwatchs_values_both_sides_of_each():
    for days in (
        1,
        3,
        5,
        7,
        14,
        30,
        60,
        90,
        120,
        150,
        180,
        365,
        400,
        545,
        731,
        1096,
        1827,
        2192,
        2557,
        2922,
        3288,
        3653,
    ):
        assert _own(errors("observability", {"logRetentionDays": days}), "observability", "logRetentionDays") == [], (
            days
        )
    for days in (0, 2, 6, 13, 29, 366, 3654):
        assert _own(errors("observability", {"logRetentionDays": days}), "observability", "logRetentionDays"), days
