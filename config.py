"""The configuration contract: the only module that reads ``pulumi.Config``.

Every key of the ``cicd`` namespace is loaded into frozen, typed settings and validated before any
resource is registered. An error names the full key (``cicd:service.cpu``) and says what is allowed;
unknown keys are errors at every level, so a typo is never silently ignored. Defaults fill what a
stack file leaves out, and some of them depend on ``cicd:environment`` (prod is the safe one).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from components.observability import CHATBOT_REGIONS
from components.regions import SERVICE_NAMES, SERVICE_REGIONS
from components.service import DEPLOY_JOB_MAX_MINUTES, PROGRAM_VARIABLES, deploy_job_minutes, deploy_wait_seconds

NAMESPACE = "cicd"
# Set by every CI job that runs the program (deploy, drift, previews): no local image build there.
REQUIRE_IMAGE_VARIABLE = "CICD_REQUIRE_IMAGE"

ENVIRONMENTS = ("dev", "staging", "prod")
# Short environment codes keep physical names within AWS's 32-character limit for ALBs and target
# groups: a 20-character service name + "-stg" + "-green" is 30 characters.
ENVIRONMENT_CODES = {"dev": "dev", "staging": "stg", "prod": "prd"}

# Fargate task sizes, exactly as AWS documents them (Linux): CPU units -> allowed memory in MiB.
FARGATE_MEMORY = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}

# The values CloudWatch Logs accepts for retentionInDays (0, "never expire", is deliberately absent).
LOG_RETENTION_DAYS = (
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
)

STRATEGIES = ("BLUE_GREEN", "CANARY", "LINEAR")
NAT_STRATEGIES = ("none", "single", "perAz")
SOURCES = ("codecommit", "github")
ARCHITECTURES = ("ARM64", "X86_64")
TRIVY_SEVERITIES = ("UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL")
# The default Chatbot region for a stack elsewhere: the supported region on the same continent.
CHATBOT_REGION_BY_AREA = {
    "us": "us-east-2",
    "ca": "us-east-2",
    "sa": "us-east-2",
    "mx": "us-east-2",
    "eu": "eu-west-1",
    "me": "eu-west-1",
    "af": "eu-west-1",
    "il": "eu-west-1",
    "ap": "ap-southeast-1",
}
SECRET_NAME_WORDS = ("PASSWORD", "PASSWD", "SECRET", "TOKEN", "KEY", "CREDENTIAL", "PRIVATE")

SERVICE_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{1,19}$")
ENV_VAR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
ECR_DIGEST_RE = re.compile(
    r"^\d{12}\.dkr\.ecr\.[a-z]{2}(-[a-z]+)+-\d\.amazonaws\.com(\.cn)?/"
    r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*@sha256:[a-f0-9]{64}$"
)
CERTIFICATE_ARN_RE = re.compile(r"^arn:aws[a-z-]*:acm:[a-z]{2}(-[a-z]+)+-\d:\d{12}:certificate/[0-9a-f-]{36}$")
CONNECTION_ARN_RE = re.compile(
    r"^arn:aws[a-z-]*:(codeconnections|codestar-connections):[a-z]{2}(-[a-z]+)+-\d:\d{12}:connection/[0-9a-f-]{36}$"
)
GITHUB_REPO_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
CODECOMMIT_NAME_RE = re.compile(r"^[\w.-]{1,100}$")
BRANCH_RE = re.compile(r"^(?!/)(?!.*//)(?!.*\.\.)[A-Za-z0-9._/-]{1,255}(?<!/)$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
SLACK_WORKSPACE_RE = re.compile(r"^[0-9A-Z]{1,255}$")
SLACK_CHANNEL_RE = re.compile(r"^[A-Za-z0-9]{1,255}$")
ROLE_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
HTTPS_URL_RE = re.compile(r"^https://[A-Za-z0-9.-]+(:\d+)?(/[^\s]*)?$")
SONAR_ORG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,254}$")
SONAR_CLOUD_HOSTS = ("https://sonarcloud.io", "https://sonarqube.us")
SONAR_KEY_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,400}$")
BACKEND_RE = re.compile(r"^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?(\?[^\s]*)?|https://[^\s]+)$")
TAG_KEY_RE = re.compile(r"^[\w .:/=+\-@]{1,128}$")
TAG_VALUE_RE = re.compile(r"^[\w .:/=+\-@]{0,256}$")


# What the offline plan passes for a `secure:` value it cannot decrypt: accepted unchecked.
OFFLINE_SECRET = "[secret]"


class ConfigError(ValueError):
    """A configuration value breaks the contract; the message names the full key."""


# ---------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class ServiceSettings:
    """`cicd:service`: the container service itself."""

    name: str = "web"
    container_port: int = 8080
    health_check_path: str = "/health"
    cpu: int = 256
    memory: int = 512
    desired_count: int = 2
    min_count: int = 1
    max_count: int = 4
    architecture: str = "ARM64"
    spot: bool = False
    image: str = ""
    environment: tuple[tuple[str, str], ...] = (("LOG_LEVEL", "info"),)
    secrets: tuple[str, ...] = ()

    @property
    def environment_map(self) -> dict[str, str]:
        return dict(self.environment)


@dataclass(frozen=True)
class DeploymentSettings:
    """`cicd:deployment`: how ECS shifts traffic from blue to green."""

    strategy: str = "BLUE_GREEN"
    bake_time_minutes: int = 1
    canary_percent: float | None = None
    canary_bake_minutes: int | None = None
    linear_step_percent: float | None = None
    linear_step_bake_minutes: int | None = None
    deregistration_delay_seconds: int = 30
    health_check_interval_seconds: int = 10
    # AWS's minimum; the cost of a deploy is interval x this threshold before green is healthy.
    healthy_threshold: int = 2


@dataclass(frozen=True)
class NetworkSettings:
    """`cicd:network`: the VPC."""

    cidr: str = "10.0.0.0/16"
    availability_zones: int = 2
    nat_gateways: str = "single"


@dataclass(frozen=True)
class PipelineSettings:
    """`cicd:pipeline`: where the code lives and how it is built."""

    source: str = "codecommit"
    repository_name: str = "web"
    branch: str = "main"
    github_repository: str = ""
    connection_arn: str = ""
    require_approval: bool = False
    sonar_host_url: str = "https://sonarcloud.io"
    sonar_project_key: str = "web"
    # SonarQube Cloud (sonarcloud.io, sonarqube.us) needs the organization that owns the project.
    sonar_organization: str = ""
    trivy_severity: str = "HIGH,CRITICAL"
    backend_url: str = ""
    # The role the pipeline's Pulumi jobs (deploy, preview, drift) assume to read and change the stack.
    deploy_role_arn: str = ""
    # A read-only role for pull-request previews; empty: previews run the offline plan, without AWS.
    preview_role_arn: str = ""


@dataclass(frozen=True)
class ObservabilitySettings:
    """`cicd:observability`: logs, traces, alarms and where they go."""

    log_retention_days: int = 30
    alarm_email: str = ""
    slack_workspace_id: str = ""
    slack_channel_id: str = ""
    # Where the Slack channel configuration lives; see CHATBOT_REGIONS.
    chatbot_region: str = "us-east-2"
    xray_sampling_rate: float = 0.05
    p99_latency_ms: int = 500
    error_rate_percent: float = 1.0

    @property
    def slack_enabled(self) -> bool:
        return bool(self.slack_workspace_id and self.slack_channel_id)


@dataclass(frozen=True)
class Settings:
    """Everything the program needs, validated."""

    project: str
    stack: str
    environment: str
    region: str
    service: ServiceSettings
    deployment: DeploymentSettings
    network: NetworkSettings
    pipeline: PipelineSettings
    observability: ObservabilitySettings
    protect: bool
    certificate_arn: str
    waf: bool
    tags: tuple[tuple[str, str], ...]

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"

    @property
    def prefix(self) -> str:
        """The stem of every physical name: `<service>-<env code>`, at most 24 characters."""
        return f"{self.service.name}-{ENVIRONMENT_CODES[self.environment]}"

    @property
    def tag_map(self) -> dict[str, str]:
        return {
            **dict(self.tags),
            "project": self.project,
            "environment": self.environment,
            "service": self.service.name,
            "managed-by": "pulumi",
        }


# ---------------------------------------------------------------------------------------------
# Field readers: each checks one value and raises a ConfigError that names the key.


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _int(key: str, value: Any, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key} must be a whole number; got {value!r} ({_type_name(value)})")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(f"{key} must be between {lo} and {hi}; got {value}")
    return value


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key} must be a number; got {value!r} ({_type_name(value)})")
    return float(value)


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false; got {value!r} ({_type_name(value)})")
    return value


def _str(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a string; got {value!r} ({_type_name(value)})")
    return value


def _one_of(key: str, value: Any, allowed: tuple) -> Any:
    if value not in allowed:
        shown = ", ".join(str(a) for a in allowed)
        raise ConfigError(f"{key} must be one of {shown}; got {value!r}")
    return value


def _match(key: str, value: Any, pattern: re.Pattern, what: str) -> str:
    value = _str(key, value)
    if not pattern.match(value):
        raise ConfigError(f"{key} must be {what}; got {value!r}")
    return value


def _optional_match(key: str, value: Any, pattern: re.Pattern, what: str) -> str:
    value = _str(key, value)
    return _match(key, value, pattern, what) if value else ""


def _percent(key: str, value: Any, lo: float) -> float:
    number = _number(key, value)
    if not lo <= number < 100:
        raise ConfigError(f"{key} must be at least {lo:g} and below 100; got {value}")
    return number


def _object(key: str, value: Any, allowed: Mapping[str, Any]) -> dict:
    """An object whose keys must all be known."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{key} must be an object; got {value!r} ({_type_name(value)})")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]} is not a known key; allowed keys of {key}: {', '.join(sorted(allowed))}")
    return value


# ---------------------------------------------------------------------------------------------
# Sections


def _load_service(raw: Any, environment: str) -> ServiceSettings:
    key = f"{NAMESPACE}:service"
    fields = {
        "name": lambda k, v: _match(
            k, v, SERVICE_NAME_RE, "2 to 20 characters of a-z, 0-9 and '-', starting with a letter"
        ),
        "containerPort": lambda k, v: _int(k, v, 1, 65535),
        "healthCheckPath": lambda k, v: _match(
            k, v, re.compile(r"^/[\x21-\x7e]{0,1023}$"), "a path that starts with / (at most 1024 characters)"
        ),
        "cpu": lambda k, v: _one_of(k, v, tuple(FARGATE_MEMORY)),
        "memory": lambda k, v: _int(k, v, 512, 122880),
        "desiredCount": lambda k, v: _int(k, v, 1, 1000),
        "minCount": lambda k, v: _int(k, v, 1, 1000),
        "maxCount": lambda k, v: _int(k, v, 1, 1000),
        "architecture": lambda k, v: _one_of(k, v, ARCHITECTURES),
        "spot": _bool,
        "image": lambda k, v: _optional_match(
            k,
            v,
            ECR_DIGEST_RE,
            "an ECR image pinned by digest (<account>.dkr.ecr.<region>.amazonaws.com/<repo>@sha256:<64 hex>) or empty",
        ),
        "environment": _environment_variables,
        "secrets": _secret_names,
    }
    values = _read_fields(key, raw, fields)
    defaults = ServiceSettings()
    service = ServiceSettings(
        name=values.get("name", defaults.name),
        container_port=values.get("containerPort", defaults.container_port),
        health_check_path=values.get("healthCheckPath", defaults.health_check_path),
        cpu=values.get("cpu", defaults.cpu),
        memory=values.get("memory", defaults.memory),
        desired_count=values.get("desiredCount", defaults.desired_count),
        min_count=values.get("minCount", defaults.min_count),
        max_count=values.get("maxCount", defaults.max_count),
        architecture=values.get("architecture", defaults.architecture),
        # Spot can be interrupted with two minutes' notice: on by default outside prod only.
        spot=values.get("spot", environment != "prod"),
        image=values.get("image", defaults.image),
        environment=values.get("environment", defaults.environment),
        secrets=values.get("secrets", defaults.secrets),
    )
    for reserved, what in (("sg-", "security group names"), ("internal-", "load balancer names")):
        if service.name.startswith(reserved):
            raise ConfigError(
                f"{key}.name must not start with '{reserved}', which AWS reserves for {what}; got {service.name!r}"
            )
    allowed = FARGATE_MEMORY[service.cpu]
    if service.memory not in allowed:
        raise ConfigError(
            f"{key}.memory must be a Fargate size for cpu {service.cpu}: one of "
            f"{', '.join(str(m) for m in allowed)}; got {service.memory}"
        )
    if service.container_port == 80 or service.container_port < 1024:
        # The container runs as a non-root user, which cannot bind ports below 1024.
        raise ConfigError(
            f"{key}.containerPort must be 1024 or above (the container runs as a non-root user); "
            f"got {service.container_port}"
        )
    if not service.min_count <= service.desired_count <= service.max_count:
        raise ConfigError(
            f"{key}.minCount, {key}.desiredCount and {key}.maxCount must satisfy "
            f"1 <= minCount <= desiredCount <= maxCount; got {service.min_count}, "
            f"{service.desired_count}, {service.max_count}"
        )
    if environment == "prod" and service.spot:
        raise ConfigError(
            f"{key}.spot must be false when {NAMESPACE}:environment is prod "
            "(Fargate Spot tasks can be stopped with two minutes' notice)"
        )
    clash = sorted(set(service.secrets) & set(service.environment_map))
    if clash:
        raise ConfigError(f"{key}.secrets.{clash[0]} is also set in {key}.environment; a name may be one or the other")
    return service


def _environment_variables(key: str, value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise ConfigError(f"{key} must be an object of NAME: value; got {value!r} ({_type_name(value)})")
    result = []
    for name, val in sorted(value.items()):
        _match(f"{key}.{name}", name, ENV_VAR_RE, "a variable name of letters, digits and _")
        upper = name.upper()
        if upper in PROGRAM_VARIABLES:
            raise ConfigError(
                f"{key}.{name} is set by the program itself; choose another name (the program sets "
                f"{', '.join(PROGRAM_VARIABLES)})"
            )
        word = next((w for w in SECRET_NAME_WORDS if w in upper), None)
        if word or upper.startswith("AWS_"):
            raise ConfigError(
                f"{key}.{name} looks like a secret ({word or 'AWS_'} in the name); plain environment "
                f"variables are visible in the task definition. Put the name in {NAMESPACE}:service.secrets "
                "to inject it from Secrets Manager instead"
            )
        if not isinstance(val, str):
            raise ConfigError(f"{key}.{name} must be a string (quote it in YAML); got {val!r} ({_type_name(val)})")
        result.append((name, val))
    return tuple(result)


def _secret_names(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{key} must be a list of variable names; got {value!r} ({_type_name(value)})")
    names = []
    for i, name in enumerate(value):
        _match(
            f"{key}[{i}]",
            name,
            re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"),
            "a variable name of letters, digits and _",
        )
        clash = next((n for n in names if n.upper() == name.upper()), None)
        if clash is not None:
            # Each secret is a resource named after it in lower case: API_KEY and api_key would be one.
            raise ConfigError(f"{key}[{i}] repeats {clash!r} ({name!r}); each secret is listed once, whatever its case")
        if name.upper() in PROGRAM_VARIABLES:
            raise ConfigError(f"{key}[{i}] {name!r} is set by the program itself; choose another name")
        names.append(name)
    return tuple(names)


def _load_deployment(raw: Any) -> DeploymentSettings:
    key = f"{NAMESPACE}:deployment"
    fields = {
        "strategy": lambda k, v: _one_of(k, v, STRATEGIES),
        "bakeTimeMinutes": lambda k, v: _int(k, v, 0, 1440),
        # AWS accepts a canary of 0.1-100 % and a linear step of 3-100 %; 100 would be no canary.
        "canaryPercent": lambda k, v: _percent(k, v, 0.1),
        "canaryBakeMinutes": lambda k, v: _int(k, v, 0, 1440),
        "linearStepPercent": lambda k, v: _percent(k, v, 3),
        "linearStepBakeMinutes": lambda k, v: _int(k, v, 0, 1440),
        "deregistrationDelaySeconds": lambda k, v: _int(k, v, 0, 3600),
        "healthCheckIntervalSeconds": lambda k, v: _int(k, v, 5, 300),
    }
    values = _read_fields(key, raw, fields)
    strategy = values.get("strategy", "BLUE_GREEN")
    owned = {"CANARY": ("canaryPercent", "canaryBakeMinutes"), "LINEAR": ("linearStepPercent", "linearStepBakeMinutes")}
    for other, names in owned.items():
        if other == strategy:
            continue
        for name in names:
            if name in values:
                raise ConfigError(
                    f"{key}.{name} only applies when {key}.strategy is {other}; the strategy is {strategy}"
                )
    defaults = DeploymentSettings()
    deployment = DeploymentSettings(
        strategy=strategy,
        bake_time_minutes=values.get("bakeTimeMinutes", defaults.bake_time_minutes),
        canary_percent=values.get("canaryPercent", 10.0) if strategy == "CANARY" else None,
        canary_bake_minutes=values.get("canaryBakeMinutes", 5) if strategy == "CANARY" else None,
        linear_step_percent=values.get("linearStepPercent", 25.0) if strategy == "LINEAR" else None,
        linear_step_bake_minutes=values.get("linearStepBakeMinutes", 2) if strategy == "LINEAR" else None,
        deregistration_delay_seconds=values.get("deregistrationDelaySeconds", defaults.deregistration_delay_seconds),
        health_check_interval_seconds=values.get("healthCheckIntervalSeconds", defaults.health_check_interval_seconds),
    )
    waits = deploy_wait_seconds(deployment)
    job = deploy_job_minutes(waits)
    if job > DEPLOY_JOB_MAX_MINUTES:
        # The pipeline's deploy job runs `pulumi up`, which waits for the whole release.
        parts = ", ".join(
            f"{name} {seconds // 60} min" for name, seconds in waits.items() if name != "total" and seconds >= 60
        )
        raise ConfigError(
            f"{key}: a release would wait {waits['total'] // 60} minutes ({parts}), so the deploy job would "
            f"need {job} minutes; it may run at most {DEPLOY_JOB_MAX_MINUTES} minutes (a CodePipeline build "
            f"action). Lower {key}.bakeTimeMinutes or the canary or linear bake times"
        )
    return deployment


_PRIVATE_RANGES = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


def _cidr(key: str, value: Any) -> str:
    value = _str(key, value)
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as err:
        raise ConfigError(f"{key} must be an IPv4 network such as 10.0.0.0/16; got {value!r} ({err})") from None
    if network.version != 4 or not any(network.subnet_of(r) for r in _PRIVATE_RANGES):
        raise ConfigError(
            f"{key} must be inside a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16); got {value}"
        )
    if not 16 <= network.prefixlen <= 24:
        raise ConfigError(f"{key} must have a prefix from /16 to /24; got /{network.prefixlen}")
    return value


def _load_network(raw: Any) -> NetworkSettings:
    key = f"{NAMESPACE}:network"
    fields = {
        "cidr": _cidr,
        "availabilityZones": lambda k, v: _int(k, v, 2, 3),
        "natGateways": lambda k, v: _one_of(k, v, NAT_STRATEGIES),
    }
    values = _read_fields(key, raw, fields)
    d = NetworkSettings()
    return NetworkSettings(
        cidr=values.get("cidr", d.cidr),
        availability_zones=values.get("availabilityZones", d.availability_zones),
        nat_gateways=values.get("natGateways", d.nat_gateways),
    )


def _trivy_severity(key: str, value: Any) -> str:
    value = _str(key, value)
    levels = value.split(",")
    for level in levels:
        if level not in TRIVY_SEVERITIES:
            raise ConfigError(
                f"{key} must be a comma-separated list of {', '.join(TRIVY_SEVERITIES)} (no spaces); got {value!r}"
            )
    if len(set(levels)) != len(levels):
        raise ConfigError(f"{key} lists a severity twice; got {value!r}")
    return value


def _load_pipeline(raw: Any, environment: str) -> PipelineSettings:
    key = f"{NAMESPACE}:pipeline"
    fields = {
        "source": lambda k, v: _one_of(k, v, SOURCES),
        "repositoryName": lambda k, v: _match(
            k, v, CODECOMMIT_NAME_RE, "1 to 100 characters of letters, digits, '.', '_' and '-'"
        ),
        "branch": lambda k, v: _match(k, v, BRANCH_RE, "a git branch name"),
        "githubRepository": lambda k, v: _optional_match(k, v, GITHUB_REPO_RE, "owner/name"),
        "connectionArn": lambda k, v: _optional_match(
            k, v, CONNECTION_ARN_RE, "a CodeConnections connection ARN (arn:aws:codeconnections:…:connection/<id>)"
        ),
        "requireApproval": _bool,
        "sonarHostUrl": lambda k, v: _match(k, v, HTTPS_URL_RE, "an https:// URL"),
        "sonarProjectKey": lambda k, v: _match(k, v, SONAR_KEY_RE, "a SonarQube project key"),
        "sonarOrganization": lambda k, v: _optional_match(
            k, v, SONAR_ORG_RE, "a SonarQube Cloud organization key (a-z, 0-9, -, _) or empty"
        ),
        "trivySeverity": _trivy_severity,
        "backendUrl": lambda k, v: _optional_match(
            k, v, BACKEND_RE, "an s3://bucket state backend, an https:// Pulumi Cloud URL, or empty"
        ),
        "deployRoleArn": lambda k, v: _match(k, v, ROLE_ARN_RE, "an IAM role ARN (arn:aws:iam::<account>:role/<name>)"),
        "previewRoleArn": lambda k, v: _optional_match(k, v, ROLE_ARN_RE, "an IAM role ARN or empty"),
    }
    values = _read_fields(key, raw, fields)
    d = PipelineSettings()
    pipeline = PipelineSettings(
        source=values.get("source", d.source),
        repository_name=values.get("repositoryName", d.repository_name),
        branch=values.get("branch", d.branch),
        github_repository=values.get("githubRepository", d.github_repository),
        connection_arn=values.get("connectionArn", d.connection_arn),
        require_approval=values.get("requireApproval", environment == "prod"),
        sonar_host_url=values.get("sonarHostUrl", d.sonar_host_url),
        sonar_project_key=values.get("sonarProjectKey", d.sonar_project_key),
        sonar_organization=values.get("sonarOrganization", d.sonar_organization),
        trivy_severity=values.get("trivySeverity", d.trivy_severity),
        backend_url=values.get("backendUrl", d.backend_url),
        deploy_role_arn=values.get("deployRoleArn", d.deploy_role_arn),
        preview_role_arn=values.get("previewRoleArn", d.preview_role_arn),
    )
    if not pipeline.backend_url:
        raise ConfigError(
            f"{key}.backendUrl is required: the Pulumi state backend (s3://… or https://api.pulumi.com) the "
            "pipeline's deploy, preview and drift jobs log in to"
        )
    if not pipeline.deploy_role_arn:
        raise ConfigError(
            f"{key}.deployRoleArn is required: the IAM role the pipeline's Pulumi jobs assume to preview and "
            "deploy the stack (see the README's bootstrap section)"
        )
    cloud_host = next((h for h in SONAR_CLOUD_HOSTS if pipeline.sonar_host_url.rstrip("/") == h), None)
    if cloud_host and not pipeline.sonar_organization:
        raise ConfigError(
            f"{key}.sonarOrganization is required when {key}.sonarHostUrl is SonarQube Cloud ({cloud_host}): "
            "the key of the organization that owns the project"
        )
    if pipeline.preview_role_arn and pipeline.preview_role_arn == pipeline.deploy_role_arn:
        raise ConfigError(
            f"{key}.previewRoleArn must not be the deploy role: pull-request code runs in the preview, so its "
            "role must be read-only"
        )
    if pipeline.source == "github":
        for name, value in (
            ("githubRepository", pipeline.github_repository),
            ("connectionArn", pipeline.connection_arn),
        ):
            if not value:
                raise ConfigError(f"{key}.{name} is required when {key}.source is github")
    else:
        for name, value in (
            ("githubRepository", pipeline.github_repository),
            ("connectionArn", pipeline.connection_arn),
        ):
            if value:
                raise ConfigError(f"{key}.{name} only applies when {key}.source is github; the source is codecommit")
    return pipeline


def default_chatbot_region(region: str) -> str:
    """The stack's region when Chatbot serves it, else the supported region on the same continent."""
    if region in CHATBOT_REGIONS:
        return region
    area = region.split("-")[0]
    if region.startswith("us-west"):
        return "us-west-2"
    return CHATBOT_REGION_BY_AREA.get(area, "us-east-2")


def _load_observability(raw: Any, region: str = "us-east-1") -> ObservabilitySettings:
    key = f"{NAMESPACE}:observability"

    def sampling(k: str, v: Any) -> float:
        rate = _number(k, v)
        if not 0 <= rate <= 1:
            raise ConfigError(f"{k} must be between 0 and 1; got {v}")
        return rate

    def error_rate(k: str, v: Any) -> float:
        rate = _number(k, v)
        if not 0 < rate <= 100:
            raise ConfigError(f"{k} must be above 0 and at most 100; got {v}")
        return rate

    fields = {
        "logRetentionDays": lambda k, v: _one_of(k, v, LOG_RETENTION_DAYS),
        "alarmEmail": lambda k, v: _optional_match(k, v, EMAIL_RE, "an e-mail address or empty"),
        "slackWorkspaceId": lambda k, v: _optional_match(
            k, v, SLACK_WORKSPACE_RE, "a Slack workspace ID such as T0123ABCD, or empty"
        ),
        "slackChannelId": lambda k, v: _optional_match(
            k, v, SLACK_CHANNEL_RE, "a Slack channel ID such as C0123ABCD, or empty"
        ),
        "chatbotRegion": lambda k, v: _one_of(k, v, CHATBOT_REGIONS),
        "xraySamplingRate": sampling,
        "p99LatencyMs": lambda k, v: _int(k, v, 1, 600000),
        "errorRatePercent": error_rate,
    }
    values = _read_fields(key, raw, fields)
    d = ObservabilitySettings()
    obs = ObservabilitySettings(
        log_retention_days=values.get("logRetentionDays", d.log_retention_days),
        alarm_email=values.get("alarmEmail", d.alarm_email),
        slack_workspace_id=values.get("slackWorkspaceId", d.slack_workspace_id),
        slack_channel_id=values.get("slackChannelId", d.slack_channel_id),
        chatbot_region=values.get("chatbotRegion", default_chatbot_region(region)),
        xray_sampling_rate=values.get("xraySamplingRate", d.xray_sampling_rate),
        p99_latency_ms=values.get("p99LatencyMs", d.p99_latency_ms),
        error_rate_percent=values.get("errorRatePercent", d.error_rate_percent),
    )
    if bool(obs.slack_workspace_id) != bool(obs.slack_channel_id):
        raise ConfigError(f"{key}.slackWorkspaceId and {key}.slackChannelId must be set together (both or neither)")
    return obs


def _tags(key: str, value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise ConfigError(f"{key} must be an object of tag: value; got {value!r} ({_type_name(value)})")
    if len(value) > 40:
        raise ConfigError(
            f"{key} may hold at most 40 tags (AWS allows 50 and the program adds its own); got {len(value)}"
        )
    result = []
    for name, val in sorted(value.items()):
        _match(f"{key}.{name}", name, TAG_KEY_RE, "a tag key of at most 128 letters, digits and _ .:/=+-@")
        if name.lower().startswith("aws:"):
            raise ConfigError(f"{key}.{name} must not start with 'aws:', which AWS reserves")
        if name in ("project", "environment", "service", "managed-by"):
            raise ConfigError(f"{key}.{name} is set by the program; choose another tag key")
        _match(f"{key}.{name}", val, TAG_VALUE_RE, "a tag value of at most 256 letters, digits and _ .:/=+-@")
        result.append((name, val))
    return tuple(result)


def _read_fields(key: str, raw: Any, fields: Mapping[str, Callable[[str, Any], Any]]) -> dict:
    obj = _object(key, raw, fields)
    # A secret the offline plan could not decrypt stays unchecked (the plan lists it); `pulumi up` checks it.
    return {
        name: value if value == OFFLINE_SECRET else fields[name](f"{key}.{name}", value) for name, value in obj.items()
    }


# ---------------------------------------------------------------------------------------------
# Top level

TOP_LEVEL_KEYS = (
    "environment",
    "service",
    "deployment",
    "network",
    "pipeline",
    "observability",
    "protect",
    "certificateArn",
    "waf",
    "tags",
)
OBJECT_KEYS = ("service", "deployment", "network", "pipeline", "observability", "tags")


def _flag(name: str, text: Any, *, default: bool) -> bool:
    """A top-level true/false key, as the CLI passes it (a string) or parsed."""
    if text is None:
        return default
    if text in ("true", True):
        return True
    if text in ("false", False):
        return False
    raise ConfigError(f"{NAMESPACE}:{name} must be true or false; got {text!r}")


def _parse_raw(key: str, text: Any, is_object: bool) -> Any:
    """Values arrive as the CLI passes them: strings, with objects as JSON."""
    if text is None:
        return None
    if not is_object:
        return text
    if isinstance(text, (dict, list)):
        return text
    try:
        return json.loads(text)
    except (TypeError, json.JSONDecodeError):
        raise ConfigError(f"{key} must be an object; got {text!r}") from None


def load_settings(
    raw: Mapping[str, Any], *, project: str, stack: str, region: str, require_image: bool = False
) -> Settings:
    """Validate raw values keyed by their name inside the namespace (`service`, `protect`, ...).

    Objects may be given parsed or as JSON text; scalars as the CLI gives them (strings).
    ``require_image``: an empty ``cicd:service.image`` is an error instead of a local build (CI jobs).
    """
    unknown = sorted(set(raw) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise ConfigError(
            f"{NAMESPACE}:{unknown[0]} is not a known key; allowed keys: "
            + ", ".join(f"{NAMESPACE}:{k}" for k in TOP_LEVEL_KEYS)
        )
    values = {k: _parse_raw(f"{NAMESPACE}:{k}", raw.get(k), k in OBJECT_KEYS) for k in TOP_LEVEL_KEYS}

    environment = _one_of(f"{NAMESPACE}:environment", values["environment"] or "dev", ENVIRONMENTS)
    protect = _flag("protect", values["protect"], default=environment == "prod")
    # An AWS WAF web ACL on the internet-facing load balancer: on by default in prod.
    waf = _flag("waf", values["waf"], default=environment == "prod")
    if environment == "prod" and not protect:
        raise ConfigError(
            f"{NAMESPACE}:protect must be true when {NAMESPACE}:environment is prod "
            "(stateful resources are protected and retained so prod loses no data)"
        )

    certificate_arn = values["certificateArn"] or ""
    if certificate_arn != OFFLINE_SECRET:
        certificate_arn = _optional_match(
            f"{NAMESPACE}:certificateArn", certificate_arn, CERTIFICATE_ARN_RE, "an ACM certificate ARN or empty"
        )
    if environment == "prod" and not certificate_arn:
        raise ConfigError(
            f"{NAMESPACE}:certificateArn is required when {NAMESPACE}:environment is prod (prod serves HTTPS only)"
        )

    service = _load_service(values["service"], environment)
    settings = Settings(
        project=project,
        stack=stack,
        environment=environment,
        region=region,
        service=service,
        deployment=_load_deployment(values["deployment"]),
        network=_load_network(values["network"]),
        pipeline=_load_pipeline(values["pipeline"], environment),
        observability=_load_observability(values["observability"], region),
        protect=protect,
        certificate_arn=certificate_arn,
        waf=waf,
        tags=_tags(f"{NAMESPACE}:tags", values["tags"]) if values["tags"] is not None else (("team", "platform"),),
    )
    _check_region(region, settings.pipeline.source)
    if require_image and not service.image:
        raise ConfigError(
            f"{NAMESPACE}:service.image is empty, and this job must never build the image itself "
            f"({REQUIRE_IMAGE_VARIABLE} is set): deploy a digest (<repo>@sha256:…), as the pipeline's jobs do "
            "with the digest the stack runs now (buildspecs/scripts/pin-running-image.sh)"
        )
    if certificate_arn not in ("", OFFLINE_SECRET) and region and f":acm:{region}:" not in certificate_arn:
        raise ConfigError(
            f"{NAMESPACE}:certificateArn must be in the stack's region {region} (an ALB can only use a "
            f"certificate from its own region); got {certificate_arn}"
        )
    return settings


def _check_region(region: str, source: str) -> None:
    """Every service the stack needs must have an endpoint in its region (commercial partition)."""
    if not region or region.startswith(("cn-", "us-gov-", "us-iso")):
        return
    needed = [
        "codepipeline",
        "codebuild",
        "codestar-notifications",
        "codecommit" if source == "codecommit" else "codestar-connections",
    ]
    missing = [SERVICE_NAMES[s] for s in needed if region not in SERVICE_REGIONS[s]]
    if missing:
        usable = sorted(set.intersection(*(set(SERVICE_REGIONS[s]) for s in needed)))
        raise ConfigError(
            f"aws:region {region} has no {', '.join(missing)} endpoint (AWS's published endpoints); the pipeline "
            f"needs them. Choose a region with all of them: {', '.join(usable)}"
        )


def _all_config() -> dict[str, Any]:
    """Every config value the engine passed, keyed `namespace:key`."""
    from pulumi.runtime import config as runtime_config

    merged = dict(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())
    return merged


def load() -> Settings:
    """Read the `cicd` namespace of the running stack and validate all of it."""
    raw = {}
    for full_key, value in _all_config().items():
        namespace, _, name = full_key.partition(":")
        if namespace == NAMESPACE:
            raw[name] = value
    region = pulumi.Config("aws").get("region") or ""
    if not region:
        raise ConfigError("aws:region is required (for example `pulumi config set aws:region us-east-1`)")
    return load_settings(
        raw,
        project=pulumi.get_project(),
        stack=pulumi.get_stack(),
        region=region,
        require_image=os.environ.get(REQUIRE_IMAGE_VARIABLE, "") not in ("", "0"),
    )
