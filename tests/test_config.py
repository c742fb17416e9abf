"""Every rule of the configuration contract: a bad value fails with the full key named."""

import json
import os
import re

import pytest
from conftest import run_plan

import config

ROLE = "arn:aws:iam::123456789012:role/cicd-deployer"
PROD = {
    "environment": "prod",
    "certificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/0f3c6d2e-8a4b-4c1d-9e2f-1a2b3c4d5e6f",
}


def load(**raw):
    pipeline = {
        "deployRoleArn": ROLE,
        "backendUrl": "s3://state-bucket",
        "sonarOrganization": "acme",
        **raw.get("pipeline", {}),
    }
    raw["pipeline"] = {k: v for k, v in pipeline.items() if v is not None}  # None: leave the key out
    values = {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in raw.items()}
    return config.load_settings(values, project="cicd", stack="test", region="us-east-1")


def with_section(section, **values):
    return {section: values}


BAD = [
    # (raw config, the key the error must name, a phrase of what is allowed)
    (with_section("service", cpu=300), "cicd:service.cpu", "one of 256"),
    (with_section("service", cpu=256, memory=4096), "cicd:service.memory", "512, 1024, 2048"),
    (with_section("service", cpu=1024, memory=1024), "cicd:service.memory", "2048"),
    (with_section("service", cpu=8192, memory=18432), "cicd:service.memory", "16384, 20480"),
    (with_section("service", name="Web"), "cicd:service.name", "starting with a letter"),
    (with_section("service", name="w"), "cicd:service.name", "2 to 20"),
    (with_section("service", name="a-very-long-service-name"), "cicd:service.name", "2 to 20"),
    (with_section("service", name="sg-web"), "cicd:service.name", "AWS reserves"),
    (with_section("service", name="internal-web"), "cicd:service.name", "AWS reserves"),
    (with_section("service", containerPort=70000), "cicd:service.containerPort", "between 1 and 65535"),
    (with_section("service", containerPort=80), "cicd:service.containerPort", "1024 or above"),
    (with_section("service", containerPort="8080"), "cicd:service.containerPort", "whole number"),
    (with_section("service", healthCheckPath="health"), "cicd:service.healthCheckPath", "starts with /"),
    (
        with_section("service", minCount=3, desiredCount=2, maxCount=4),
        "cicd:service.minCount",
        "minCount <= desiredCount",
    ),
    (
        with_section("service", minCount=1, desiredCount=5, maxCount=4),
        "cicd:service.desiredCount",
        "desiredCount <= maxCount",
    ),
    (with_section("service", desiredCount=0), "cicd:service.desiredCount", "between 1"),
    (with_section("service", architecture="arm"), "cicd:service.architecture", "ARM64, X86_64"),
    (with_section("service", spot="yes"), "cicd:service.spot", "true or false"),
    (with_section("service", image="nginx:latest"), "cicd:service.image", "pinned by digest"),
    (
        with_section("service", image="123456789012.dkr.ecr.us-east-1.amazonaws.com/web:v1"),
        "cicd:service.image",
        "@sha256",
    ),
    (
        with_section("service", environment={"DB_PASSWORD": "x"}),
        "cicd:service.environment.DB_PASSWORD",
        "cicd:service.secrets",
    ),
    (
        with_section("service", environment={"STRIPE_API_KEY": "x"}),
        "cicd:service.environment.STRIPE_API_KEY",
        "looks like a secret",
    ),
    (
        with_section("service", environment={"GITHUB_TOKEN": "x"}),
        "cicd:service.environment.GITHUB_TOKEN",
        "looks like a secret",
    ),
    (
        with_section("service", environment={"AWS_REGION_OVERRIDE": "x"}),
        "cicd:service.environment.AWS_REGION_OVERRIDE",
        "AWS_",
    ),
    (
        with_section("service", environment={"MAX_ITEMS": 8080}),
        "cicd:service.environment.MAX_ITEMS",
        "must be a string",
    ),
    (with_section("service", environment={"1BAD": "x"}), "cicd:service.environment.1BAD", "variable name"),
    (with_section("service", secrets=["API_KEY", "API_KEY"]), "cicd:service.secrets[1]", "listed once"),
    (with_section("service", secrets="API_KEY"), "cicd:service.secrets", "list"),
    (
        with_section("service", secrets=["API_KEY"], environment={"API_KEY": "x"}),
        "cicd:service.environment.API_KEY",
        "looks like a secret",
    ),
    (with_section("service", colour="blue"), "cicd:service.colour", "not a known key"),
    (with_section("deployment", strategy="ROLLING"), "cicd:deployment.strategy", "BLUE_GREEN, CANARY, LINEAR"),
    (with_section("deployment", bakeTimeMinutes=2000), "cicd:deployment.bakeTimeMinutes", "between 0 and 1440"),
    (with_section("deployment", canaryPercent=10), "cicd:deployment.canaryPercent", "only applies when"),
    (with_section("deployment", canaryBakeMinutes=3), "cicd:deployment.canaryBakeMinutes", "only applies when"),
    (
        with_section("deployment", strategy="CANARY", linearStepPercent=10),
        "cicd:deployment.linearStepPercent",
        "only applies when",
    ),
    (
        with_section("deployment", strategy="LINEAR", linearStepBakeMinutes=-1),
        "cicd:deployment.linearStepBakeMinutes",
        "between 0",
    ),
    (with_section("deployment", strategy="CANARY", canaryPercent=100), "cicd:deployment.canaryPercent", "below 100"),
    (with_section("deployment", strategy="CANARY", canaryPercent=0), "cicd:deployment.canaryPercent", "at least 0.1"),
    (
        with_section("deployment", strategy="LINEAR", linearStepPercent=2),
        "cicd:deployment.linearStepPercent",
        "at least 3",
    ),
    (
        with_section("deployment", deregistrationDelaySeconds=4000),
        "cicd:deployment.deregistrationDelaySeconds",
        "between 0 and 3600",
    ),
    (
        with_section("deployment", healthCheckIntervalSeconds=4),
        "cicd:deployment.healthCheckIntervalSeconds",
        "between 5 and 300",
    ),
    (with_section("deployment", bakeTime=1), "cicd:deployment.bakeTime", "not a known key"),
    (with_section("network", cidr="8.8.0.0/16"), "cicd:network.cidr", "private range"),
    (with_section("network", cidr="10.0.0.0/8"), "cicd:network.cidr", "/16 to /24"),
    (with_section("network", cidr="10.0.0.0/25"), "cicd:network.cidr", "/16 to /24"),
    (with_section("network", cidr="10.0.0.1/16"), "cicd:network.cidr", "IPv4 network"),
    (with_section("network", availabilityZones=4), "cicd:network.availabilityZones", "between 2 and 3"),
    (with_section("network", natGateways="two"), "cicd:network.natGateways", "none, single, perAz"),
    (with_section("network", ipv6=True), "cicd:network.ipv6", "not a known key"),
    (with_section("pipeline", source="gitlab"), "cicd:pipeline.source", "codecommit, github"),
    (with_section("pipeline", source="github"), "cicd:pipeline.githubRepository", "required when"),
    (
        with_section("pipeline", source="github", githubRepository="acme/web"),
        "cicd:pipeline.connectionArn",
        "required when",
    ),
    (with_section("pipeline", githubRepository="acme/web"), "cicd:pipeline.githubRepository", "only applies when"),
    (
        with_section("pipeline", source="github", githubRepository="acme/web", connectionArn="arn:aws:s3:::x"),
        "cicd:pipeline.connectionArn",
        "CodeConnections",
    ),
    (
        with_section("pipeline", source="github", githubRepository="not a repo", connectionArn=""),
        "cicd:pipeline.githubRepository",
        "owner/name",
    ),
    (with_section("pipeline", repositoryName="has space"), "cicd:pipeline.repositoryName", "1 to 100"),
    (with_section("pipeline", branch="bad..branch"), "cicd:pipeline.branch", "branch name"),
    (with_section("pipeline", requireApproval="no"), "cicd:pipeline.requireApproval", "true or false"),
    (with_section("pipeline", sonarHostUrl="http://sonar"), "cicd:pipeline.sonarHostUrl", "https://"),
    (with_section("pipeline", trivySeverity="HIGH, CRITICAL"), "cicd:pipeline.trivySeverity", "comma-separated"),
    (
        with_section("pipeline", sonarOrganization=""),
        "cicd:pipeline.sonarOrganization",
        "required when cicd:pipeline.sonarHostUrl is SonarQube Cloud",
    ),
    (
        with_section("pipeline", sonarHostUrl="https://sonarqube.us", sonarOrganization=""),
        "cicd:pipeline.sonarOrganization",
        "the key of the organization",
    ),
    (with_section("pipeline", sonarOrganization="Acme Corp"), "cicd:pipeline.sonarOrganization", "organization key"),
    (
        with_section("deployment", strategy="CANARY", bakeTimeMinutes=300, canaryBakeMinutes=200),
        "cicd:deployment.bakeTimeMinutes",
        "at most 480 minutes",
    ),
    (with_section("pipeline", trivySeverity="SEVERE"), "cicd:pipeline.trivySeverity", "CRITICAL"),
    (with_section("pipeline", backendUrl="file:///tmp/state"), "cicd:pipeline.backendUrl", "s3://"),
    (with_section("pipeline", deployRoleArn=""), "cicd:pipeline.deployRoleArn", "IAM role ARN"),
    (with_section("pipeline", backendUrl=""), "cicd:pipeline.backendUrl", "is required"),
    (with_section("pipeline", previewRoleArn=ROLE), "cicd:pipeline.previewRoleArn", "read-only"),
    (with_section("pipeline", previewRoleArn="role"), "cicd:pipeline.previewRoleArn", "IAM role ARN"),
    (
        with_section("pipeline", deployRoleArn="arn:aws:iam::123456789012:user/me"),
        "cicd:pipeline.deployRoleArn",
        "IAM role ARN",
    ),
    (with_section("observability", logRetentionDays=10), "cicd:observability.logRetentionDays", "1, 3, 5, 7, 14"),
    (with_section("observability", logRetentionDays=0), "cicd:observability.logRetentionDays", "one of"),
    (with_section("observability", alarmEmail="oncall"), "cicd:observability.alarmEmail", "e-mail"),
    (with_section("observability", slackWorkspaceId="T0123"), "cicd:observability.slackWorkspaceId", "set together"),
    (with_section("observability", slackChannelId="C0123"), "cicd:observability.slackWorkspaceId", "set together"),
    (with_section("observability", xraySamplingRate=1.5), "cicd:observability.xraySamplingRate", "between 0 and 1"),
    (with_section("observability", p99LatencyMs=0), "cicd:observability.p99LatencyMs", "between 1"),
    (with_section("observability", errorRatePercent=0), "cicd:observability.errorRatePercent", "above 0"),
    (
        with_section("observability", chatbotRegion="us-east-1"),
        "cicd:observability.chatbotRegion",
        "us-east-2, us-west-2, eu-west-1, ap-southeast-1",
    ),
    (with_section("service", environment={"PORT": "9090"}), "cicd:service.environment.PORT", "set by the program"),
    (
        with_section("service", environment={"worker_threads": "8"}),
        "cicd:service.environment.worker_threads",
        "set by the program",
    ),
    (with_section("service", secrets=["API_KEY", "api_key"]), "cicd:service.secrets[1]", "whatever its case"),
    (with_section("observability", pagerDuty="x"), "cicd:observability.pagerDuty", "not a known key"),
    ({"environment": "qa"}, "cicd:environment", "dev, staging, prod"),
    ({"environment": "prod"}, "cicd:certificateArn", "required when"),
    ({**PROD, "protect": "false"}, "cicd:protect", "must be true when"),
    ({**PROD, "service": {"spot": True}}, "cicd:service.spot", "must be false when"),
    ({"protect": "maybe"}, "cicd:protect", "true or false"),
    (
        {"certificateArn": "arn:aws:acm:eu-west-1:123456789012:certificate/0f3c6d2e-8a4b-4c1d-9e2f-1a2b3c4d5e6f"},
        "cicd:certificateArn",
        "region us-east-1",
    ),
    ({"certificateArn": "not-an-arn"}, "cicd:certificateArn", "ACM certificate ARN"),
    ({"tags": {"aws:owner": "x"}}, "cicd:tags.aws:owner", "reserves"),
    ({"tags": {"environment": "x"}}, "cicd:tags.environment", "set by the program"),
    ({"tags": {"team": 5}}, "cicd:tags.team", "must be a string"),
    ({"tags": ["team"]}, "cicd:tags", "must be an object"),
    ({"service": "web"}, "cicd:service", "must be an object"),
    ({"servce": {}}, "cicd:servce", "not a known key"),
]


@pytest.mark.parametrize("raw,key,allowed", BAD, ids=[f"{b[1]}-{i}" for i, b in enumerate(BAD)])
def test_bad_value_names_its_key(raw, key, allowed):
    with pytest.raises(config.ConfigError) as err:
        load(**raw)
    message = str(err.value)
    assert message.startswith(key) or f"{key} " in message or f"{key}," in message, message
    assert allowed in message, message


def test_every_error_of_a_stack_file_is_reported_at_once():
    with pytest.raises(config.ConfigError) as err:
        load(
            service={"cpu": 300, "colour": "blue", "environment": {"DB_PASSWORD": "x"}},
            network={"cidr": "8.8.0.0/16"},
            observability={"xraySamplingRate": 2},
            protect="maybe",
            servce={},
        )
    keys = sorted(line.split(" ")[0] for line in err.value.errors)
    assert keys == [
        "cicd:network.cidr",
        "cicd:observability.xraySamplingRate",
        "cicd:protect",
        "cicd:servce",
        "cicd:service.colour",
        "cicd:service.cpu",
        "cicd:service.environment.DB_PASSWORD",
    ]
    assert str(err.value).startswith("7 configuration errors:\n  cicd:servce is not a known key")


@pytest.mark.parametrize(
    "name", ["KEYCLOAK_URL", "MONKEY_MODE", "PASSPORT_STRATEGY", "SONAR_PROJECT_KEY", "CACHE_KEY_PREFIX", "LOG_LEVEL"]
)
def test_names_that_only_contain_a_secret_word_are_plain_variables(name):
    assert load(service={"environment": {name: "x"}}).service.environment[name] == "x"


@pytest.mark.parametrize(
    "name",
    [
        "API_KEY",
        "db_password",
        "apiKey",
        "SMTP_PASS",
        "OAUTH_CLIENT_SECRET",
        "KEY",
        "STRIPE_SECRET_KEY",
        # Run-together and plural forms (cold review of session 3).
        "DBPASSWORD",
        "GITHUBTOKEN",
        "AUTH_TOKENS",
        "CLIENT_SECRETS",
        "APP_PASSWORDS",
        "STRIPE_SECRETKEY",
        "SESSION_KEY",
        "HMAC_KEY",
        "HMACKEY",
    ],
)
def test_names_with_a_secret_word_are_refused(name):
    with pytest.raises(config.ConfigError, match=f"cicd:service.environment.{name} looks like a secret"):
        load(service={"environment": {name: "x"}})


def test_snake_case_keys_are_not_taken_for_their_camel_case_names():
    with pytest.raises(config.ConfigError, match="cicd:service.container_port is not a known key"):
        load(service={"container_port": 9000})


def test_every_fargate_pair_aws_documents_is_accepted():
    accepted = 0
    for cpu, memories in config.FARGATE_MEMORY.items():
        for memory in memories:
            settings = load(service={"cpu": cpu, "memory": memory})
            assert (settings.service.cpu, settings.service.memory) == (cpu, memory)
            accepted += 1
    # 3 + 4 + 7 + 13 + 23 + 12 + 12 valid task sizes on Linux.
    assert accepted == 74


def test_defaults_fill_what_the_stack_file_leaves_out():
    settings = load()
    assert settings.environment == "dev"
    assert settings.service == config.ServiceSettings(spot=True)
    assert settings.deployment.strategy == "BLUE_GREEN"
    assert settings.deployment.canary_percent is None
    assert settings.network == config.NetworkSettings()
    assert settings.observability.log_retention_days == 30
    assert settings.protect is False
    assert settings.pipeline.require_approval is False


def test_prod_defaults_are_the_safe_ones():
    settings = load(**PROD)
    assert settings.protect is True
    assert settings.pipeline.require_approval is True
    assert settings.service.spot is False


def test_strategy_settings_get_their_own_defaults():
    canary = load(deployment={"strategy": "CANARY"}).deployment
    assert (canary.canary_percent, canary.canary_bake_minutes) == (10.0, 5)
    linear = load(deployment={"strategy": "LINEAR", "linearStepPercent": 20}).deployment
    assert (linear.linear_step_percent, linear.linear_step_bake_minutes) == (20.0, 2)


@pytest.mark.parametrize(
    "region, expected",
    [
        ("us-east-1", "us-east-2"),
        ("us-east-2", "us-east-2"),
        ("us-west-1", "us-west-2"),
        ("ca-central-1", "us-east-2"),
        ("eu-central-1", "eu-west-1"),
        ("eu-west-1", "eu-west-1"),
        ("ap-northeast-1", "ap-southeast-1"),
        ("ap-southeast-1", "ap-southeast-1"),
        ("me-south-1", "eu-west-1"),
    ],
)
def test_chatbot_region_defaults_to_a_region_chatbot_serves(region, expected):
    settings = config.load_settings(
        {
            "pipeline": json.dumps(
                {"deployRoleArn": ROLE, "backendUrl": "s3://state-bucket", "sonarOrganization": "acme"}
            )
        },
        project="cicd",
        stack="test",
        region=region,
    )
    assert settings.observability.chatbot_region == expected
    assert expected in config.CHATBOT_REGIONS


def test_the_valid_boundaries_are_accepted():
    assert load(network={"cidr": "10.0.0.0/24"}).network.cidr == "10.0.0.0/24"
    assert load(network={"cidr": "10.0.0.0/16"}).network.cidr == "10.0.0.0/16"
    assert load(service={"containerPort": 1024}).service.container_port == 1024
    assert load(service={"containerPort": 65535}).service.container_port == 65535
    assert load(deployment={"healthCheckIntervalSeconds": 5}).deployment.health_check_interval_seconds == 5
    assert load(deployment={"strategy": "CANARY", "canaryPercent": 0.1}).deployment.canary_percent == 0.1
    assert load(deployment={"strategy": "LINEAR", "linearStepPercent": 3}).deployment.linear_step_percent == 3
    # Spot is the default everywhere but prod (staging too), and never in prod.
    assert load(environment="staging").service.spot is True
    assert load(**PROD).service.spot is False


def test_a_self_hosted_sonarqube_needs_no_organization():
    settings = load(pipeline={"sonarHostUrl": "https://sonar.acme.example", "sonarOrganization": ""})
    assert settings.pipeline.sonar_organization == ""


def test_the_longest_release_a_ci_job_can_wait_for_is_accepted():
    # 400 min of bake + 20 s of health checks -> 401 min, + 15 for the release, + 20 for the job: 436 <= 480.
    settings = load(deployment={"bakeTimeMinutes": 400, "deregistrationDelaySeconds": 0})
    assert settings.deployment.bake_time_minutes == 400


def test_ci_jobs_never_fall_back_to_a_local_build():
    raw = {
        "pipeline": json.dumps({"deployRoleArn": ROLE, "backendUrl": "s3://state-bucket", "sonarOrganization": "acme"})
    }
    settings = config.load_settings(raw, project="cicd", stack="dev", region="us-east-1", require_image=True)
    with pytest.raises(config.ConfigError) as err:
        config.image_to_deploy(settings, released="")
    assert str(err.value).startswith("cicd:service.image is empty") and "CICD_REQUIRE_IMAGE" in str(err.value)
    # A release record is enough: the job deploys what the stack released.
    released = "123456789012.dkr.ecr.us-east-1.amazonaws.com/web-dev@sha256:" + "b" * 64
    assert config.image_to_deploy(settings, released=released) == released
    digest = "123456789012.dkr.ecr.us-east-1.amazonaws.com/web-dev@sha256:" + "a" * 64
    raw["service"] = json.dumps({"image": digest})
    assert (
        config.load_settings(raw, project="cicd", stack="dev", region="us-east-1", require_image=True).service.image
        == digest
    )


def test_settings_are_frozen():
    settings = load()
    import pydantic

    with pytest.raises(pydantic.ValidationError, match="frozen"):
        settings.service.cpu = 512  # type: ignore[misc]


def test_physical_names_fit_aws_limits_for_the_longest_name():
    settings = load(environment="staging", service={"name": "a" * 20})
    assert len(f"{settings.prefix}-green") <= 32
    assert len(f"{settings.prefix}-alb") <= 32


def test_program_fails_before_registering_anything():
    from offline import program

    config_map, secrets = program.load_stack_config("dev")
    config_map["cicd:service"] = json.dumps({"cpu": 300})
    with pytest.raises(config.ConfigError, match=r"cicd:service\.cpu"):
        program.run("dev", config=config_map, secret_keys=secrets)


def test_unknown_top_level_key_fails_the_program():
    with pytest.raises(config.ConfigError, match="cicd:colour is not a known key"):
        run_plan("dev", **{"cicd:colour": "blue"})


def test_secure_values_are_replaced_and_marked_secret(tmp_path):
    from offline import program

    (tmp_path / "Pulumi.s.yaml").write_text(
        "config:\n  aws:region: us-east-1\n  cicd:observability:\n    alarmEmail:\n      secure: AAABAxyz\n"
    )
    config_map, secret_keys = program.load_stack_config("s", root=str(tmp_path))
    assert secret_keys == ["cicd:observability"]
    assert "AAABAxyz" not in config_map["cicd:observability"]
    assert json.loads(config_map["cicd:observability"])["alarmEmail"] == program.SECRET_PLACEHOLDER


def test_a_secret_the_plan_cannot_decrypt_is_listed_not_rejected(tmp_path, monkeypatch):
    """alarmEmail and the certificate as `secure:` values: the placeholder is no e-mail nor ARN, but the
    plan must pass and say what it could not check."""
    from offline import plan as plan_cli
    from offline import program

    with open(os.path.join(program.ROOT, "Pulumi.prod.yaml"), encoding="utf-8") as handle:
        text = handle.read()
    text = text.replace("alarmEmail: oncall@example.com", "alarmEmail:\n      secure: AAABAxyz")
    text = re.sub(r"cicd:certificateArn: \S+", "cicd:certificateArn:\n    secure: AAABAabc", text)
    (tmp_path / "Pulumi.prod.yaml").write_text(text)
    config_map, secret_keys = program.load_stack_config("prod", root=str(tmp_path))
    result = program.run("prod", config=config_map, secret_keys=secret_keys)
    assert result.unchecked_secrets == ["cicd:observability.alarmEmail", "cicd:certificateArn"]
    data = plan_cli.plan("prod", result=result)
    assert data["mandatoryViolations"] == 0
    rendered = plan_cli.render(data)
    assert "did not check (`pulumi preview` does): cicd:observability.alarmEmail, cicd:certificateArn" in rendered


def test_a_region_without_the_pipeline_services_is_refused():
    raw = {
        "pipeline": json.dumps({"deployRoleArn": ROLE, "backendUrl": "s3://state-bucket", "sonarOrganization": "acme"})
    }
    with pytest.raises(config.ConfigError) as err:
        config.load_settings(raw, project="cicd", stack="t", region="mx-central-1")
    message = str(err.value)
    assert message.startswith("aws:region mx-central-1 has no CodePipeline") and "us-east-1" in message
    assert config.load_settings(raw, project="cicd", stack="t", region="eu-central-1").region == "eu-central-1"


@pytest.mark.parametrize(
    "service", ["codepipeline", "codebuild", "codecommit", "codestar-notifications", "codestar-connections"]
)
def test_the_region_table_is_the_endpoint_data_aws_publishes(service):
    import botocore.session

    from components.regions import SERVICE_REGIONS

    assert SERVICE_REGIONS[service] == frozenset(botocore.session.get_session().get_available_regions(service))


def test_the_offline_plan_stands_in_for_secrets_with_what_config_accepts_unchecked():
    from offline import program

    assert program.SECRET_PLACEHOLDER == config.OFFLINE_SECRET


def test_the_policy_pack_judges_variable_names_as_config_does():
    """The pack keeps its own copy of the secret-name rule (it runs in its own environment)."""
    from components import facts
    from policies import _util

    shared = ("SECRET_FRAGMENTS", "PLAIN_KEY_QUALIFIERS", "KEY_WORDS")
    assert [getattr(_util, n) for n in shared] == [getattr(facts, n) for n in shared]
    names = ["API_KEY", "apiKey", "KEY", "DB_PASSWORD", "SONAR_PROJECT_KEY", "KEYCLOAK_URL", "MONKEY", "GITHUB_TOKEN",
             "ACCESS_KEY_ID", "LOG_LEVEL", "clientSecret", "SIGNING_KEY", "PASSPORT"]  # fmt: skip
    assert [_util.secret_word(n) for n in names] == [facts.secret_word(n) for n in names]
    assert [n for n in names if facts.secret_word(n)] == [
        "API_KEY", "apiKey", "KEY", "DB_PASSWORD", "GITHUB_TOKEN", "ACCESS_KEY_ID", "clientSecret", "SIGNING_KEY"
    ]  # fmt: skip


def test_an_unreadable_secret_takes_the_environments_default_offline():
    """The offline plan cannot decrypt a `secure:` value: a flag or a section key it stands for takes
    the default of the environment (prod: the safe one), never a looser class default."""
    settings = load(**PROD, waf=config.OFFLINE_SECRET, protect=config.OFFLINE_SECRET,
                    pipeline={"requireApproval": config.OFFLINE_SECRET})  # fmt: skip
    assert (settings.waf, settings.protect, settings.pipeline.require_approval) == (True, True, True)


def test_null_sections_and_an_empty_environment_mean_the_defaults():
    settings = load(environment="", deployment=None, tags=None)
    assert settings.environment == "dev" and settings.deployment.strategy == "BLUE_GREEN"
    assert settings.tags == {"team": "platform"}


# -- the promotion chain ----------------------------------------------------------------------------


def test_a_promoting_stack_configures_nothing_only_a_builder_uses():
    settings = load(pipeline={"promoteFrom": "dev", "sonarOrganization": None}, environment="staging")
    assert settings.pipeline.promote_from == "dev" and not settings.pipeline.builds
    assert settings.upstream_prefix == "web-dev" and settings.release_environments == ["staging", "dev"]
    with pytest.raises(config.ConfigError) as err:
        load(pipeline={"promoteFrom": "dev", "sonarOrganization": None, "trivySeverity": "HIGH"}, environment="staging")
    assert str(err.value).startswith("cicd:pipeline.trivySeverity only applies to a stack that builds")


@pytest.mark.parametrize(
    "raw,message",
    [
        (
            {"pipeline": {"promoteFrom": "dev", "sonarOrganization": None}},
            "cicd:pipeline.promoteFrom must name another",
        ),
        ({"pipeline": {"promoteFrom": "qa"}}, "cicd:pipeline.promoteFrom must be empty (this stack builds) or one of"),
    ],
)
def test_a_stack_cannot_promote_from_itself_nor_from_an_unknown_environment(raw, message):
    with pytest.raises(config.ConfigError) as err:
        load(**raw)
    assert str(err.value).startswith(message), str(err.value)


def test_the_chain_of_a_project_must_reach_a_stack_that_builds():
    ok = {"dev": ("dev", ""), "prod": ("prod", "dev"), "stg": ("staging", "dev")}
    assert config.promotion_errors(ok) == []
    missing = {"dev": ("dev", ""), "prod": ("prod", "staging")}
    assert config.promotion_errors(missing) == [
        "cicd:pipeline.promoteFrom of stack prod is staging, but no stack of this project has cicd:environment "
        "staging (stacks: dev, prod)"
    ]
    loop = {"a": ("dev", "prod"), "b": ("prod", "staging"), "c": ("staging", "dev")}
    assert config.promotion_errors(loop) == [
        "cicd:pipeline.promoteFrom makes a loop (dev -> prod -> staging -> dev): one stack must build"
    ]
    # One level: a stack promotes from one that builds, not from one that promotes itself.
    chain = {"dev": ("dev", ""), "stg": ("staging", "dev"), "prod": ("prod", "staging")}
    assert config.promotion_errors(chain) == [
        "cicd:pipeline.promoteFrom of stack prod is staging, which itself promotes from dev: promote from a "
        "stack that builds (cicd:pipeline.promoteFrom: dev); one level of promotion is built"
    ]
    # A stack checks only its own chain: an unrelated stack's mistake does not stop it.
    assert config.promotion_errors({**ok, "x": ("staging", "qa")}, only="prod") == []


def test_the_projects_stack_files_form_a_valid_chain():
    stacks = config.project_stacks()
    # Both in one account: neither stack file names its account.
    assert stacks["dev"] == ("dev", "", "") and stacks["prod"] == ("prod", "dev", "")
    assert config.promotion_errors(stacks) == []


def test_a_promoting_stack_without_any_release_cannot_deploy():
    settings = load(pipeline={"promoteFrom": "dev", "sonarOrganization": None}, environment="staging")
    with pytest.raises(config.ConfigError) as err:
        config.image_to_deploy(settings, released="")
    assert "dev has recorded no release yet" in str(err.value)


def test_aws_variables_are_refused_whatever_their_case():
    with pytest.raises(config.ConfigError, match="cicd:service.environment.aws_region looks like a secret"):
        load(service={"environment": {"aws_region": "x"}})


def test_no_secure_value_is_refused_for_what_the_plan_cannot_read():
    """A `secure:` value offline is a placeholder: choices, networks, tags and names take their default
    or are left out, and the plan lists them as unchecked; nothing is refused for it."""
    secret = config.OFFLINE_SECRET
    settings = load(
        service={"architecture": secret, "secrets": ["API_KEY", secret]},
        deployment={"strategy": secret},
        network={"cidr": secret, "natGateways": secret},
        observability={"logRetentionDays": secret},
        tags={"team": secret},
    )
    assert (settings.service.architecture, settings.deployment.strategy) == ("ARM64", "BLUE_GREEN")
    assert (settings.network.cidr, settings.network.nat_gateways) == ("10.0.0.0/16", "single")
    assert settings.service.secrets == ("API_KEY",) and settings.tags["team"] == secret


@pytest.mark.parametrize("key", ["aws:owner", "AWS:owner", "Aws:x"])
def test_the_aws_tag_prefix_is_reserved_in_any_case(key):
    with pytest.raises(config.ConfigError, match=f"cicd:tags.{key} must not start with 'aws:'"):
        load(tags={key: "x"})


# -- stack files copied from one another -------------------------------------------------------------


def _stack_file(directory, stack, environment="dev", name="web", role=ROLE, account=None):
    lines = ["config:", "  aws:region: us-east-1", f"  cicd:environment: {environment}"]
    lines += ["  cicd:service:", f"    name: {name}", "  cicd:pipeline:", f"    deployRoleArn: {role}"]
    if account:
        lines.append(f'  cicd:accountId: "{account}"')
    (directory / f"Pulumi.{stack}.yaml").write_text("\n".join(lines) + "\n")


def test_a_deploy_role_shared_by_two_stack_files_is_refused_naming_both(tmp_path):
    _stack_file(tmp_path, "dev")
    _stack_file(tmp_path, "prod", environment="prod")
    settings = load().model_copy(update={"stack": "prod", "environment": "prod"})
    errors = config.sibling_errors(settings, config.stack_file_facts(str(tmp_path)))
    assert errors == [
        "cicd:pipeline.deployRoleArn of stack prod (Pulumi.prod.yaml) is also the deploy role of stack dev "
        "(Pulumi.dev.yaml): give each stack a role of its own, trusted by its own jobs only (a shared role lets "
        "one stack's pipeline change the other stack)"
    ]
    _stack_file(tmp_path, "dev", role=ROLE + "-dev")
    assert config.sibling_errors(settings, config.stack_file_facts(str(tmp_path))) == []


def test_a_copied_stack_file_with_the_same_environment_and_service_is_refused(tmp_path):
    _stack_file(tmp_path, "dev", role=ROLE + "-a")
    _stack_file(tmp_path, "dev2", role=ROLE + "-b")
    settings = load().model_copy(update={"stack": "dev2"})
    (error,) = config.sibling_errors(settings, config.stack_file_facts(str(tmp_path)))
    assert error.startswith("cicd:environment dev and cicd:service.name web of stack dev2 (Pulumi.dev2.yaml) are")
    assert "stack dev (Pulumi.dev.yaml), in one account: both would create the same physical names (web-dev-…)" in error
    # Another service name, or another account, makes other names.
    _stack_file(tmp_path, "dev", name="api", role=ROLE + "-a")
    assert config.sibling_errors(settings, config.stack_file_facts(str(tmp_path))) == []
    _stack_file(tmp_path, "dev", role=ROLE + "-a", account="222222222222")
    elsewhere = settings.model_copy(update={"account_id": "111111111111"})
    assert config.sibling_errors(elsewhere, config.stack_file_facts(str(tmp_path))) == []
    assert config.sibling_errors(settings, config.stack_file_facts(str(tmp_path)))  # one account unknown


def test_the_sample_stack_files_have_a_deploy_role_each():
    facts = config.stack_file_facts()
    assert facts["dev"]["deployRole"] != facts["prod"]["deployRole"]
    assert facts["dev"]["deployRole"].endswith("/cicd-deployer-dev")
    assert facts["prod"]["deployRole"].endswith("/cicd-deployer-prod")


# -- every error at once, where the stack file has it -------------------------------------------------


def _errors(**raw):
    with pytest.raises(config.ConfigError) as err:
        load(**raw)
    return err.value.errors


def test_the_rules_across_keys_are_all_reported_at_once():
    errors = _errors(**{**PROD, "certificateArn": ""}, protect="false", service={"spot": True})
    assert [e.split(" ", 1)[0] for e in errors] == ["cicd:protect", "cicd:certificateArn", "cicd:service.spot"]


def test_a_failing_section_does_not_hide_the_stacks_own_rules():
    """pydantic skips the rules across sections once a section fails: they are checked again."""
    errors = _errors(
        environment="prod", service={"cpu": 300}, pipeline={"promoteFrom": "dev", "sonarOrganization": None}
    )
    assert errors == [
        "cicd:service.cpu must be one of 256, 512, 1024, 2048, 4096, 8192, 16384; got 300",
        "cicd:certificateArn is required when cicd:environment is prod (prod serves HTTPS only)",
    ]
    # A default that stands in for a failing value is not blamed: spot is prod's default (false).
    errors = _errors(**PROD, service={"spot": "yes"}, pipeline={"promoteFrom": "dev", "sonarOrganization": None})
    assert errors == ["cicd:service.spot must be true or false; got 'yes' (str)"]


def test_a_bad_tag_does_not_hide_the_stacks_own_rules():
    errors = _errors(
        environment="prod", tags={"Environment": "x"}, pipeline={"promoteFrom": "dev", "sonarOrganization": None}
    )
    assert [e.split(" ", 1)[0] for e in errors] == ["cicd:tags.Environment", "cicd:certificateArn"]


def test_rules_of_one_key_are_reported_beside_the_other_keys_errors():
    errors = _errors(service={"memory": 333, "containerPort": 2000, "name": "sg-x"})
    assert [e.split(" ", 1)[0] for e in errors] == [
        "cicd:service.name",
        "cicd:service.containerPort",
        "cicd:service.memory",
    ]


def test_a_sections_own_rules_are_all_reported_at_once():
    errors = _errors(pipeline={"backendUrl": None, "deployRoleArn": None, "sonarOrganization": None})
    assert [e.split(" ", 1)[0] for e in errors] == [
        "cicd:pipeline.backendUrl",
        "cicd:pipeline.deployRoleArn",
        "cicd:pipeline.sonarOrganization",
    ]
    errors = _errors(service={"cpu": 256, "memory": 4096, "minCount": 3, "desiredCount": 2})
    assert [e.split(" ", 1)[0] for e in errors] == ["cicd:service.memory", "cicd:service.minCount"]


def test_errors_name_the_line_of_the_stack_file_that_sets_the_key(tmp_path):
    (tmp_path / "Pulumi.x.yaml").write_text(
        "config:\n  aws:region: us-east-1\n  cicd:service:\n    cpu: 300\n    secrets:\n      - API_KEY\n"
        "      - api_key\n  cicd:pipeline:\n    branch: main\n"
    )
    errors = [
        "cicd:service.cpu must be one of 256",
        "cicd:service.secrets[1] repeats 'API_KEY'",
        "cicd:pipeline.backendUrl is required",  # not in the file: its section's line
        "cicd:protect must be true",  # nor its section: the file
        "aws:region x has no CodePipeline",
        "cicd:pipeline.promoteFrom of stack prod is x",  # names a key and a stack: the key's nearest line
        "a message naming no key",
    ]
    assert config.located(errors, "x", root=str(tmp_path)) == [
        "Pulumi.x.yaml:4: cicd:service.cpu must be one of 256",
        "Pulumi.x.yaml:7: cicd:service.secrets[1] repeats 'API_KEY'",
        "Pulumi.x.yaml:8: cicd:pipeline.backendUrl is required",
        "Pulumi.x.yaml: cicd:protect must be true",
        "Pulumi.x.yaml:2: aws:region x has no CodePipeline",
        "Pulumi.x.yaml:8: cicd:pipeline.promoteFrom of stack prod is x",
        "a message naming no key",
    ]
    assert config.located(["cicd:service.cpu bad"], "missing", root=str(tmp_path)) == ["cicd:service.cpu bad"]


# -- mistakes a hurried user makes, refused before anything is registered -----------------------------


def test_the_container_port_cannot_be_the_sidecars():
    with pytest.raises(config.ConfigError, match=r"cicd:service.containerPort must not be 2000: the task's X-Ray"):
        load(service={"containerPort": 2000})
    assert load(service={"containerPort": 2001}).service.container_port == 2001
    assert load(service={"containerPort": 1999}).service.container_port == 1999


@pytest.mark.parametrize(
    "key, program", [("Environment", "environment"), ("NAME", "Name"), ("Managed-By", "managed-by")]
)
def test_a_tag_that_differs_from_the_programs_only_in_case_is_refused(key, program):
    with pytest.raises(config.ConfigError) as err:
        load(tags={"team": "a", key: "x"})
    assert str(err.value).startswith(f"cicd:tags.{key} differs only in case from the tag {program!r}")
    assert load(tags={"team": "a", "environments": "x"}).tags["environments"] == "x"


def test_an_access_key_in_a_plain_variable_is_refused():
    for key in ("AKIAABCDEFGHIJKLMNOP", "ASIAABCDEFGHIJKLMNOP"):  # a long-term key, a temporary (STS) one
        with pytest.raises(config.ConfigError, match="cicd:service.environment.UPSTREAM holds what looks like an AWS"):
            load(service={"environment": {"UPSTREAM": f"id={key}"}})
    # Fifteen characters after AKIA is no key ID: not refused.
    assert load(service={"environment": {"UPSTREAM": "AKIAABCDEFGHIJKLMNO"}}).service.environment["UPSTREAM"]


def test_a_branch_given_as_a_ref_is_refused():
    with pytest.raises(
        config.ConfigError, match=r"cicd:pipeline.branch must be a git branch name, without refs/heads/"
    ):
        load(pipeline={"branch": "refs/heads/main"})
    assert load(pipeline={"branch": "release/refs"}).pipeline.branch == "release/refs"


DIGEST = "@sha256:" + "a" * 64


@pytest.mark.parametrize(
    "image, phrase",
    [
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com/api" + DIGEST, "is in repository api of us-east-1"),
        ("123456789012.dkr.ecr.us-west-2.amazonaws.com/web-dev" + DIGEST, "is in repository web-dev of us-west-2"),
    ],
)
def test_an_image_the_execution_role_cannot_pull_is_refused(image, phrase):
    with pytest.raises(config.ConfigError) as err:
        load(service={"image": image})
    assert str(err.value).startswith(f"cicd:service.image {phrase}; the task execution role pulls from this stack's")
    assert load(service={"image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/web-dev" + DIGEST}).service.image


def test_an_image_of_another_account_is_refused_once_the_account_is_known():
    settings = load(service={"image": "222222222222.dkr.ecr.us-east-1.amazonaws.com/web-dev" + DIGEST})
    assert settings.image_problem() is None  # no account named: the account is not known here
    problem = settings.image_problem("123456789012")
    assert problem.startswith("is in account 222222222222; the task execution role pulls web-dev of account 1234")
    # A promoting stack runs its upstream's images: one of its own repository name is refused.
    with pytest.raises(config.ConfigError, match="pulls from dev's repository web-dev in us-east-1 only"):
        load(
            environment="staging",
            service={"image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/web-stg" + DIGEST},
            pipeline={"promoteFrom": "dev", "sonarOrganization": None},
        )


def test_keys_the_aws_provider_does_not_have_are_refused():
    assert config.provider_key_errors(["aws:region", "aws:profile", "cicd:service", "awsx:x"]) == []
    assert config.provider_key_errors(["aws:regoin"]) == [
        "aws:regoin is not a configuration key of the AWS provider (pulumi-aws): the CLI would pass it on and "
        "nothing would read it; did you mean aws:region?"
    ]


def test_the_provider_keys_are_the_installed_sdks():
    import importlib.util

    path = os.path.join(os.path.dirname(importlib.util.find_spec("pulumi_aws").origin), "config", "vars.py")
    with open(path, encoding="utf-8") as handle:
        declared = set(re.findall(r"__config__\.get\w*\('(\w+)'\)", handle.read()))
    assert declared == set(config.AWS_PROVIDER_KEYS)


def test_the_program_refuses_an_unknown_aws_key_and_an_unpullable_image_with_their_lines():
    with pytest.raises(config.ConfigError) as err:
        run_plan("dev", **{"aws:regoin": "us-east-2"})
    assert err.value.errors == [
        "Pulumi.dev.yaml: aws:regoin is not a configuration key of the AWS provider (pulumi-aws): the CLI would pass "
        "it on and nothing would read it; did you mean aws:region?"
    ]
    with pytest.raises(config.ConfigError) as err:
        run_plan("dev", **{"cicd:service": {"image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/api" + DIGEST}})
    (error,) = err.value.errors
    assert error.startswith("Pulumi.dev.yaml:16: cicd:service.image is in repository api of us-east-1")
