"""The configuration contract: the only module that reads ``pulumi.Config``.

Every key of the ``cicd`` namespace is a field of a pydantic model below: its camelCase name, its type,
its default and its checks in one place. Unknown keys are errors at every level, so a typo is never
silently ignored; every error of a stack file is reported at once, each naming the full key
(``cicd:service.cpu``) and what is allowed, before any resource is registered. Some defaults depend on
``cicd:environment`` (prod is the safe one).
"""

from __future__ import annotations

import contextvars
import ipaddress
import json
import os
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar

import pulumi
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from components.deploytime import DEPLOY_JOB_MAX_MINUTES, deploy_job_minutes, deploy_wait_seconds
from components.facts import ARCHITECTURES, FARGATE_MEMORY, PROGRAM_VARIABLES, XRAY_DAEMON_PORT, secret_word
from components.observability import CHATBOT_REGIONS
from components.regions import SERVICE_NAMES, SERVICE_REGIONS
from cost.estimate import DEFAULTS as COST_DEFAULTS

NAMESPACE = "cicd"
# Set by every CI job that runs the program (deploy, drift, previews): no local image build there.
REQUIRE_IMAGE_VARIABLE = "CICD_REQUIRE_IMAGE"

ENVIRONMENTS = ("dev", "staging", "prod")
# Short environment codes keep physical names within AWS's 32-character limit for ALBs and target
# groups: a 20-character service name + "-stg" + "-green" is 30 characters.
ENVIRONMENT_CODES = {"dev": "dev", "staging": "stg", "prod": "prd"}

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
PROGRAM_TAGS = ("project", "environment", "service", "managed-by")

ECR_DIGEST_RE = re.compile(
    r"^\d{12}\.dkr\.ecr\.[a-z]{2}(-[a-z]+)+-\d\.amazonaws\.com(\.cn)?/"
    r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*@sha256:[a-f0-9]{64}$"
)
CERTIFICATE_ARN_RE = re.compile(r"^arn:aws[a-z-]*:acm:[a-z]{2}(-[a-z]+)+-\d:\d{12}:certificate/[0-9a-f-]{36}$")
CONNECTION_ARN_RE = re.compile(
    r"^arn:aws[a-z-]*:(codeconnections|codestar-connections):[a-z]{2}(-[a-z]+)+-\d:\d{12}:connection/[0-9a-f-]{36}$"
)
SONAR_CLOUD_HOSTS = ("https://sonarcloud.io", "https://sonarqube.us")
_PRIVATE_RANGES = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))

# What the offline plan passes for a `secure:` value it cannot decrypt: accepted unchecked (the plan
# lists it; `pulumi preview` checks the real value).
OFFLINE_SECRET = "[secret]"


class ConfigError(ValueError):
    """The configuration breaks the contract; each line of the message names a full key."""

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        if len(self.errors) == 1:
            super().__init__(self.errors[0])
        else:
            super().__init__(f"{len(self.errors)} configuration errors:\n" + "\n".join(f"  {e}" for e in self.errors))


# ---------------------------------------------------------------------------------------------
# Constrained types: each check says what is allowed; the key is added where errors are reported.


def _error(message: str, key: str | None = None, *, full_key: str | None = None) -> PydanticCustomError:
    """A validation error; `key` names a field below the one being validated, `full_key` another namespace's."""
    return PydanticCustomError("cicd", "{message}", {"message": message, "key": key, "full_key": full_key})


# Set while the rules across sections are checked again after a section failed (`_stack_rule_errors`).
_STACK_RULES_ONLY: contextvars.ContextVar[bool] = contextvars.ContextVar("stack_rules_only", default=False)


class _Problems:
    """A validator's errors, collected so that all of them are reported at once."""

    def __init__(self) -> None:
        self.found: list[dict[str, str | None]] = []

    def add(self, message: str, key: str | None = None, *, full_key: str | None = None) -> None:
        self.found.append({"message": message, "key": key, "full_key": full_key})

    def raise_any(self) -> None:
        if len(self.found) == 1:
            raise _error(**self.found[0])  # type: ignore[arg-type]
        if self.found:
            raise PydanticCustomError("cicd_all", "{count} errors", {"count": len(self.found), "errors": self.found})


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _matching(pattern: str, what: str, *, optional: bool = False) -> Callable[[str], str]:
    regex = re.compile(pattern)

    def check(value: str) -> str:
        if value == OFFLINE_SECRET or (optional and not value) or regex.match(value):
            return value
        raise _error(f"must be {what}; got {value!r}")

    check.takes_offline_secret = True  # type: ignore[attr-defined]
    return check


def Matching(pattern: str, what: str) -> Any:  # noqa: N802 - a type
    """A string that matches `pattern` (a secret the offline plan cannot read is taken unchecked)."""
    return Annotated[str, AfterValidator(_matching(pattern, what))]


def OptionalMatching(pattern: str, what: str) -> Any:  # noqa: N802 - a type
    """Empty, or a string that matches `pattern`."""
    return Annotated[str, AfterValidator(_matching(pattern, what, optional=True))]


def Between(lo: int, hi: int) -> Any:  # noqa: N802 - a type
    """A whole number from `lo` to `hi`."""

    def check(value: int) -> int:
        if not lo <= value <= hi:
            raise _error(f"must be between {lo} and {hi}; got {value}")
        return value

    return Annotated[int, AfterValidator(check)]


def OneOf(*allowed: Any) -> Any:  # noqa: N802 - a type
    """One of `allowed` (a value of the same type: true is not 1)."""

    def check(value: Any) -> Any:
        if type(value) is not type(allowed[0]) or value not in allowed:
            raise _error(f"must be one of {', '.join(str(a) for a in allowed)}; got {value!r}")
        return value

    return Annotated[type(allowed[0]), BeforeValidator(check)]


def _percent(lo: float) -> Any:
    def check(value: float) -> float:
        if not lo <= value < 100:
            raise _error(f"must be at least {lo:g} and below 100; got {value:g}")
        return value

    return Annotated[float, AfterValidator(check)]


def _cidr(value: str) -> str:
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as err:
        raise _error(f"must be an IPv4 network such as 10.0.0.0/16; got {value!r} ({err})") from None
    if network.version != 4 or not any(network.subnet_of(r) for r in _PRIVATE_RANGES):
        raise _error(f"must be inside a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16); got {value}")
    if not 16 <= network.prefixlen <= 24:
        raise _error(f"must have a prefix from /16 to /24; got /{network.prefixlen}")
    return value


def _trivy_severity(value: str) -> str:
    levels = value.split(",")
    if any(level not in TRIVY_SEVERITIES for level in levels):
        raise _error(f"must be a comma-separated list of {', '.join(TRIVY_SEVERITIES)} (no spaces); got {value!r}")
    if len(set(levels)) != len(levels):
        raise _error(f"lists a severity twice; got {value!r}")
    return value


def _environment_variables(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _error(f"must be an object of NAME: value; got {value!r} ({_type_name(value)})")
    for name, val in sorted(value.items()):
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$", name):
            raise _error(f"must be a variable name of letters, digits and _; got {name!r}", name)
        if name.upper() in PROGRAM_VARIABLES:
            raise _error(
                f"is set by the program itself; choose another name (the program sets {', '.join(PROGRAM_VARIABLES)})",
                name,
            )
        word = secret_word(name) or ("AWS_" if name.upper().startswith("AWS_") else None)
        if word:
            raise _error(
                f"looks like a secret ({word} in the name); plain environment variables are visible in the task "
                f"definition. Put the name in {NAMESPACE}:service.secrets to inject it from Secrets Manager instead",
                name,
            )
        if not isinstance(val, str):
            raise _error(f"must be a string (quote it in YAML); got {val!r} ({_type_name(val)})", name)
        if re.search(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b", val):
            raise _error(
                "holds what looks like an AWS access key ID: plain environment variables are visible in the task "
                f"definition. Put it in {NAMESPACE}:service.secrets (Secrets Manager), or give the task a role",
                name,
            )
    return dict(sorted(value.items()))


def _secret_names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _error(f"must be a list of variable names; got {value!r} ({_type_name(value)})")
    names: list[str] = []
    # A name the offline plan could not decrypt is left out there (the plan lists it as unchecked).
    value = [name for name in value if name != OFFLINE_SECRET]
    for i, name in enumerate(value):
        if not isinstance(name, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$", name):
            raise _error(f"must be a variable name of letters, digits and _; got {name!r}", f"[{i}]")
        clash = next((n for n in names if n.upper() == name.upper()), None)
        if clash is not None:
            # Each secret is a resource named after it in lower case: API_KEY and api_key would be one.
            raise _error(f"repeats {clash!r} ({name!r}); each secret is listed once, whatever its case", f"[{i}]")
        if name.upper() in PROGRAM_VARIABLES:
            raise _error(f"{name!r} is set by the program itself; choose another name", f"[{i}]")
        names.append(name)
    return tuple(names)


def _tags(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _error(f"must be an object of tag: value; got {value!r} ({_type_name(value)})")
    if len(value) > 40:
        raise _error(f"may hold at most 40 tags (AWS allows 50 and the program adds its own); got {len(value)}")
    for name, val in sorted(value.items()):
        if not re.match(r"^[\w .:/=+\-@]{1,128}$", name):
            raise _error(f"must be a tag key of at most 128 letters, digits and _ .:/=+-@; got {name!r}", name)
        if name.lower().startswith("aws:"):
            raise _error("must not start with 'aws:', which AWS reserves", name)
        if name in PROGRAM_TAGS:
            raise _error("is set by the program; choose another tag key", name)
        same = next((t for t in (*PROGRAM_TAGS, "Name") if t.lower() == name.lower()), None)
        if same:
            raise _error(
                f"differs only in case from the tag {same!r}, which the program sets: AWS tag keys are case-sensitive, "
                "so resources would carry both, and tools that read keys without case (cost allocation, many "
                "scanners) see one tag with two values. Choose another tag key",
                name,
            )
        if not isinstance(val, str):
            raise _error(f"must be a string; got {val!r} ({_type_name(val)})", name)
        if val != OFFLINE_SECRET and not re.match(r"^[\w .:/=+\-@]{0,256}$", val):
            raise _error(f"must be a tag value of at most 256 letters, digits and _ .:/=+-@; got {val!r}", name)
    return dict(sorted(value.items()))


def _flag(value: Any) -> bool:
    """A top-level true/false key, as the CLI passes it (a string) or parsed."""
    if value in ("true", True):
        return True
    if value in ("false", False):
        return False
    raise _error(f"must be true or false; got {value!r}")


# ---------------------------------------------------------------------------------------------
# Sections


def _snake(camel: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", camel).lower()


class Section(BaseModel):
    """A config object: camelCase keys, no unknown ones, strict types (no "8080" for 8080), frozen."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=True,
        extra="forbid",
        frozen=True,
        strict=True,
    )

    @model_validator(mode="before")
    @classmethod
    def _unreadable_secrets(cls, data: Any) -> Any:
        """A secret the offline plan could not decrypt: kept where a string is expected (and taken
        unchecked), else left to its default; the plan lists it either way."""
        if not isinstance(data, dict):
            return data
        fields = {f.alias or n: f for n, f in cls.model_fields.items()}

        def takes(name: str) -> bool:
            field = fields.get(name)
            return field is not None and any(getattr(getattr(m, "func", None), "takes_offline_secret", False)
                                             for m in field.metadata)  # fmt: skip

        return {k: v for k, v in data.items() if v != OFFLINE_SECRET or takes(k)}


def _service_name(value: str) -> str:
    for reserved, what in (("sg-", "security group names"), ("internal-", "load balancer names")):
        if value.startswith(reserved):
            raise _error(f"must not start with '{reserved}', which AWS reserves for {what}; got {value!r}")
    return value


def _container_port(value: int) -> int:
    if value == XRAY_DAEMON_PORT:
        raise _error(
            f"must not be {XRAY_DAEMON_PORT}: the task's X-Ray daemon sidecar listens there, in the network "
            "namespace every container of the task shares"
        )
    if value < 1024:
        # The container runs as a non-root user, which cannot bind ports below 1024.
        raise _error(f"must be 1024 or above (the container runs as a non-root user); got {value}")
    return value


class ServiceSettings(Section):
    """`cicd:service`: the container service itself."""

    name: Annotated[
        Matching(r"^[a-z][a-z0-9-]{1,19}$", "2 to 20 characters of a-z, 0-9 and '-', starting with a letter"),
        AfterValidator(_service_name),
    ] = "web"
    container_port: Annotated[Between(1, 65535), AfterValidator(_container_port)] = 8080
    health_check_path: Matching(r"^/[\x21-\x7e]{0,1023}$", "a path that starts with / (at most 1024 characters)") = (
        "/health"
    )
    cpu: OneOf(*FARGATE_MEMORY) = 256
    memory: Between(512, 122880) = 512
    desired_count: Between(1, 1000) = 2
    min_count: Between(1, 1000) = 1
    max_count: Between(1, 1000) = 4
    architecture: OneOf(*ARCHITECTURES) = "ARM64"
    # Spot can be interrupted with two minutes' notice: the default is on outside prod only.
    spot: bool = False
    image: OptionalMatching(
        ECR_DIGEST_RE.pattern,
        "an ECR image pinned by digest (<account>.dkr.ecr.<region>.amazonaws.com/<repo>@sha256:<64 hex>) or empty",
    ) = ""
    environment: Annotated[dict[str, str], BeforeValidator(_environment_variables)] = Field(
        default_factory=lambda: {"LOG_LEVEL": "info"}
    )
    secrets: Annotated[tuple[str, ...], BeforeValidator(_secret_names)] = ()

    @model_validator(mode="after")
    def _consistent(self) -> ServiceSettings:
        if _STACK_RULES_ONLY.get():
            return self  # reported already
        problems = _Problems()
        allowed = FARGATE_MEMORY[self.cpu]
        if self.memory not in allowed:
            problems.add(
                f"must be a Fargate size for cpu {self.cpu}: one of {', '.join(map(str, allowed))}; got {self.memory}",
                "memory",
            )
        if not self.min_count <= self.desired_count <= self.max_count:
            key = "minCount" if self.min_count > self.desired_count else "desiredCount"
            problems.add(
                f"must lie within the others (1 <= minCount <= desiredCount <= maxCount); got minCount "
                f"{self.min_count}, desiredCount {self.desired_count}, maxCount {self.max_count}",
                key,
            )
        clash = sorted(set(self.secrets) & set(self.environment))
        if clash:
            problems.add(
                f"is also in {NAMESPACE}:service.secrets; a name may be one or the other", f"environment.{clash[0]}"
            )
        problems.raise_any()
        return self


class DeploymentSettings(Section):
    """`cicd:deployment`: how ECS shifts traffic from blue to green."""

    strategy: OneOf(*STRATEGIES) = "BLUE_GREEN"
    bake_time_minutes: Between(0, 1440) = 1
    # AWS accepts a canary of 0.1-100 % and a linear step of 3-100 %; 100 would be no canary.
    canary_percent: _percent(0.1) | None = None
    canary_bake_minutes: Between(0, 1440) | None = None
    linear_step_percent: _percent(3) | None = None
    linear_step_bake_minutes: Between(0, 1440) | None = None
    deregistration_delay_seconds: Between(0, 3600) = 30
    health_check_interval_seconds: Between(5, 300) = 10
    # AWS's minimum, not configurable: green must pass this many health checks before it is healthy.
    healthy_threshold: ClassVar[int] = 2

    @model_validator(mode="before")
    @classmethod
    def _strategy_defaults(cls, data: Any) -> Any:
        """Each strategy's own settings: refused under another strategy, defaulted under their own."""
        if not isinstance(data, dict):
            return data
        problems = _Problems()
        strategy = data.get("strategy", "BLUE_GREEN")
        owned = {
            "CANARY": {"canaryPercent": 10.0, "canaryBakeMinutes": 5},
            "LINEAR": {"linearStepPercent": 25.0, "linearStepBakeMinutes": 2},
        }
        for other, defaults in owned.items():
            for name, default in defaults.items():
                given = name in data or _snake(name) in data  # a stack file's key, or Python's field name
                if other != strategy and given:
                    problems.add(
                        f"only applies when {NAMESPACE}:deployment.strategy is {other}; the strategy is {strategy}",
                        name,
                    )
                if other == strategy and not given:
                    data = {name: default, **data}
        problems.raise_any()
        return data

    @model_validator(mode="after")
    def _fits_a_deploy_job(self) -> DeploymentSettings:
        if _STACK_RULES_ONLY.get():
            return self  # reported already
        waits = deploy_wait_seconds(self)
        job = deploy_job_minutes(waits)
        if job > DEPLOY_JOB_MAX_MINUTES:
            # The pipeline's deploy job runs `pulumi up`, which waits for the whole release.
            parts = ", ".join(
                f"{name} {seconds // 60} min" for name, seconds in waits.items() if name != "total" and seconds >= 60
            )
            raise _error(
                f"(with the canary or linear bake times) makes a release wait {waits['total'] // 60} minutes "
                f"({parts}), so the deploy job would need {job} minutes; it may run at most {DEPLOY_JOB_MAX_MINUTES} "
                "minutes (a CodePipeline build action). Lower the bake times",
                "bakeTimeMinutes",
            )
        return self


class NetworkSettings(Section):
    """`cicd:network`: the VPC."""

    cidr: Annotated[str, AfterValidator(_cidr)] = "10.0.0.0/16"
    availability_zones: Between(2, 3) = 2
    nat_gateways: OneOf(*NAT_STRATEGIES) = "single"


ROLE_ARN = r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$"


# What only a building stack configures: where the code lives, how it is tested and scanned.
BUILD_ONLY = (
    "source",
    "repository_name",
    "branch",
    "github_repository",
    "connection_arn",
    "sonar_host_url",
    "sonar_project_key",
    "sonar_organization",
    "trivy_severity",
    "preview_role_arn",
)


ACCOUNT_ID_RE = r"^\d{12}$"


def _account_id(value: Any) -> Any:
    # YAML reads 012345678901 as a number, and an account ID may start with 0: only a quoted string is exact.
    if isinstance(value, int) and not isinstance(value, bool):
        raise _error(
            "must be a quoted string of 12 digits (YAML reads an unquoted ID as a number, which loses leading "
            f"zeros); got the number {value}"
        )
    return value


def _promote_from(value: Any) -> str:
    if value == "" or value in ENVIRONMENTS:
        return value
    raise _error(f"must be empty (this stack builds) or one of {', '.join(ENVIRONMENTS)}; got {value!r}")


class PipelineSettings(Section):
    """`cicd:pipeline`: where the code lives and how it is built."""

    source: OneOf(*SOURCES) = "codecommit"
    repository_name: Matching(r"^[\w.-]{1,100}$", "1 to 100 characters of letters, digits, '.', '_' and '-'") = "web"
    branch: Matching(
        r"^(?!refs/)(?!/)(?!.*//)(?!.*\.\.)[A-Za-z0-9._/-]{1,255}(?<!/)$",
        "a git branch name, without refs/heads/ (CodeCommit's events and CodePipeline name the branch alone)",
    ) = "main"
    github_repository: OptionalMatching(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$", "owner/name") = ""
    connection_arn: OptionalMatching(
        CONNECTION_ARN_RE.pattern, "a CodeConnections connection ARN (arn:aws:codeconnections:…:connection/<id>)"
    ) = ""
    # The default is on in prod.
    require_approval: bool = False
    sonar_host_url: Matching(r"^https://[A-Za-z0-9.-]+(:\d+)?(/[^\s]*)?$", "an https:// URL") = "https://sonarcloud.io"
    sonar_project_key: Matching(r"^[A-Za-z0-9_.:-]{1,400}$", "a SonarQube project key") = "web"
    # SonarQube Cloud (sonarcloud.io, sonarqube.us) needs the organization that owns the project.
    sonar_organization: OptionalMatching(
        r"^[a-z0-9][a-z0-9_-]{0,254}$", "a SonarQube Cloud organization key (a-z, 0-9, -, _) or empty"
    ) = ""
    trivy_severity: Annotated[str, AfterValidator(_trivy_severity)] = "HIGH,CRITICAL"
    backend_url: OptionalMatching(
        r"^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?(\?[^\s]*)?|https://[^\s]+)$",
        "an s3://bucket state backend, an https:// Pulumi Cloud URL, or empty",
    ) = ""
    # The role the pipeline's Pulumi jobs (deploy, preview, drift) assume to read and change the stack.
    deploy_role_arn: OptionalMatching(ROLE_ARN, "an IAM role ARN (arn:aws:iam::<account>:role/<name>)") = ""
    # A read-only role for pull-request previews; empty: previews run the offline plan, without AWS.
    preview_role_arn: OptionalMatching(ROLE_ARN, "an IAM role ARN or empty") = ""
    # The environment this stack takes its releases from; empty: this stack builds them (from git).
    promote_from: Annotated[str, BeforeValidator(_promote_from)] = ""

    @property
    def builds(self) -> bool:
        return not self.promote_from

    @model_validator(mode="after")
    def _consistent(self) -> PipelineSettings:
        if _STACK_RULES_ONLY.get():
            return self  # reported already
        problems = _Problems()
        if self.promote_from:
            given = sorted(to_camel(f) for f in self.model_fields_set & set(BUILD_ONLY))
            if given:
                others = f" (and {', '.join(given[1:])})" if len(given) > 1 else ""
                problems.add(
                    f"only applies to a stack that builds{others}; this one promotes releases of "
                    f"{self.promote_from} ({NAMESPACE}:pipeline.promoteFrom) and never builds. Remove it",
                    given[0],
                )
            for name, value in (("backendUrl", self.backend_url), ("deployRoleArn", self.deploy_role_arn)):
                if not value:
                    problems.add("is required: the Pulumi state and role the deploy job uses", name)
            problems.raise_any()
            return self
        if not self.backend_url:
            problems.add(
                "is required: the Pulumi state backend (s3://… or https://api.pulumi.com) the pipeline's "
                "deploy, preview and drift jobs log in to",
                "backendUrl",
            )
        if not self.deploy_role_arn:
            problems.add(
                "is required: an IAM role ARN the pipeline's Pulumi jobs assume to preview and deploy the "
                "stack (see the README's bootstrap section)",
                "deployRoleArn",
            )
        cloud_host = next((h for h in SONAR_CLOUD_HOSTS if self.sonar_host_url.rstrip("/") == h), None)
        if cloud_host and not self.sonar_organization:
            problems.add(
                f"is required when {NAMESPACE}:pipeline.sonarHostUrl is SonarQube Cloud ({cloud_host}): the "
                "key of the organization that owns the project",
                "sonarOrganization",
            )
        if self.preview_role_arn and self.preview_role_arn == self.deploy_role_arn:
            problems.add(
                "must not be the deploy role: pull-request code runs in the preview, so its role must be read-only",
                "previewRoleArn",
            )
        for name, value in (("githubRepository", self.github_repository), ("connectionArn", self.connection_arn)):
            if self.source == "github" and not value:
                problems.add(f"is required when {NAMESPACE}:pipeline.source is github", name)
            if self.source != "github" and value:
                problems.add(f"only applies when {NAMESPACE}:pipeline.source is github; the source is codecommit", name)
        problems.raise_any()
        return self


def default_chatbot_region(region: str) -> str:
    """The stack's region when Chatbot serves it, else the supported region on the same continent."""
    if region in CHATBOT_REGIONS:
        return region
    if region.startswith("us-west"):
        return "us-west-2"
    return CHATBOT_REGION_BY_AREA.get(region.split("-")[0], "us-east-2")


def _rate(lo: float, hi: float, *, above: bool = False) -> Any:
    def check(value: float) -> float:
        if not (lo < value if above else lo <= value) or value > hi:
            raise _error(
                f"must be {'above' if above else 'between'} {lo:g} {'and at most' if above else 'and'} "
                f"{hi:g}; got {value:g}"
            )
        return value

    return Annotated[float, AfterValidator(check)]


class ObservabilitySettings(Section):
    """`cicd:observability`: logs, traces, alarms and where they go."""

    log_retention_days: OneOf(*LOG_RETENTION_DAYS) = 30
    alarm_email: OptionalMatching(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$", "an e-mail address or empty") = ""
    slack_workspace_id: OptionalMatching(r"^[0-9A-Z]{1,255}$", "a Slack workspace ID such as T0123ABCD, or empty") = ""
    slack_channel_id: OptionalMatching(r"^[A-Za-z0-9]{1,255}$", "a Slack channel ID such as C0123ABCD, or empty") = ""
    # Where the Slack channel configuration lives; see CHATBOT_REGIONS. The default is chosen by region.
    chatbot_region: OneOf(*CHATBOT_REGIONS) = "us-east-2"
    xray_sampling_rate: _rate(0, 1) = 0.05
    p99_latency_ms: Between(1, 600000) = 500
    error_rate_percent: _rate(0, 100, above=True) = 1.0

    @model_validator(mode="after")
    def _slack_pair(self) -> ObservabilitySettings:
        if _STACK_RULES_ONLY.get():
            return self  # reported already
        if bool(self.slack_workspace_id) != bool(self.slack_channel_id):
            raise _error(
                f"and {NAMESPACE}:observability.slackChannelId must be set together (both or neither)",
                "slackWorkspaceId",
            )
        return self


class CostSettings(Section):
    """`cicd:cost`: the usage the monthly estimate assumes (cost/estimate.py, whose DEFAULTS these are);
    prices are in cost/prices.json."""

    requests_per_month: Between(0, 10**12) = COST_DEFAULTS["requestsPerMonth"]
    # The mean response size: the load balancer's processed bytes (its LCUs) come from it.
    response_kb: Between(0, 10**6) = COST_DEFAULTS["responseKb"]
    log_gb_per_month: Between(0, 10**6) = COST_DEFAULTS["logGbPerMonth"]
    nat_gb_per_month: Between(0, 10**7) = COST_DEFAULTS["natGbPerMonth"]
    # Pipeline executions a day (a building stack: pushes to the branch; a promoting one: promotions).
    builds_per_day: Between(0, 1000) = COST_DEFAULTS["buildsPerDay"]
    # Minutes each CodeBuild job of an execution runs (unit tests, scans, image, deploy, release).
    build_minutes: Between(1, 2160) = COST_DEFAULTS["buildMinutes"]
    image_mb: Between(1, 10**5) = COST_DEFAULTS["imageMb"]
    s3_gb: Between(0, 10**7) = COST_DEFAULTS["s3Gb"]
    # Fargate Spot is not in the Price List: an assumed discount off on-demand (AWS says "up to 70%").
    spot_discount_percent: Between(0, 90) = COST_DEFAULTS["spotDiscountPercent"]


# ---------------------------------------------------------------------------------------------
# The stack


OBJECT_KEYS = ("service", "deployment", "network", "pipeline", "observability", "cost", "tags")


class Settings(Section):
    """Everything the program needs, validated: the `cicd` namespace plus the stack's identity."""

    # The stack's identity, set by `load_settings`, never by config keys (those are checked first).
    project: str = Field(exclude=True)
    stack: str = Field(exclude=True)
    region: str = Field(exclude=True)
    require_image: bool = Field(default=False, exclude=True)
    # The environments that promote this one's releases (from the project's stack files).
    promoted_to: tuple[str, ...] = Field(default=(), exclude=True)
    # The accounts of the stacks this one promotes from or to, when another than this one's
    # (both stack files set cicd:accountId, and they differ): {environment: account ID}.
    other_accounts: dict[str, str] = Field(default_factory=dict, exclude=True)

    environment: OneOf(*ENVIRONMENTS) = "dev"
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    deployment: DeploymentSettings = Field(default_factory=DeploymentSettings)
    network: NetworkSettings = Field(default_factory=NetworkSettings)
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    cost: CostSettings = Field(default_factory=CostSettings)
    # Protected and retained stateful resources; the default (and the only choice) in prod.
    protect: Annotated[bool, BeforeValidator(_flag)] = False
    certificate_arn: OptionalMatching(CERTIFICATE_ARN_RE.pattern, "an ACM certificate ARN or empty") = ""
    # The AWS account the stack deploys to: the program refuses credentials of another, and a stack
    # promoting across accounts is set up for it (both stacks set it).
    account_id: Annotated[
        OptionalMatching(ACCOUNT_ID_RE, "12 digits, quoted (an AWS account ID), or empty"), BeforeValidator(_account_id)
    ] = ""
    # An AWS WAF web ACL on the internet-facing load balancer: on by default in prod.
    waf: Annotated[bool, BeforeValidator(_flag)] = False
    tags: Annotated[dict[str, str], BeforeValidator(_tags)] = Field(default_factory=lambda: {"team": "platform"})

    @model_validator(mode="before")
    @classmethod
    def _environment_defaults(cls, data: Any) -> Any:
        """The defaults that depend on the environment (prod: the safe ones) and on the region."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        prod = data.get("environment") == "prod"
        # A value the offline plan could not decrypt takes the environment's default, as if unset.
        for flag in ("protect", "waf"):
            if data.get(flag) in (None, OFFLINE_SECRET):
                data[flag] = prod
        for section, key, default in (
            ("service", "spot", not prod),
            ("pipeline", "requireApproval", prod),
            ("observability", "chatbotRegion", default_chatbot_region(data.get("region") or "")),
        ):
            value = data.get(section) or {}
            if isinstance(value, dict):
                data[section] = {**value, key: default} if value.get(key) == OFFLINE_SECRET else {key: default, **value}
        return data

    @model_validator(mode="after")
    def _stack_rules(self) -> Settings:
        problems = _Problems()
        prod = f"when {NAMESPACE}:environment is prod"
        if self.is_prod and not self.protect:
            problems.add(
                f"must be true {prod} (stateful resources are protected and retained so prod loses no data)", "protect"
            )
        if self.is_prod and not self.certificate_arn:
            problems.add(f"is required {prod} (prod serves HTTPS only)", "certificateArn")
        if self.is_prod and self.service.spot:
            problems.add(
                f"must be false {prod} (Fargate Spot tasks can be stopped with two minutes' notice)", "service.spot"
            )
        if self.certificate_arn not in ("", OFFLINE_SECRET) and f":acm:{self.region}:" not in self.certificate_arn:
            problems.add(
                f"must be in the stack's region {self.region} (an ALB can only use a certificate from its "
                f"own region); got {self.certificate_arn}",
                "certificateArn",
            )
        if self.account_id and self.account_id != OFFLINE_SECRET:
            for key, arn in (
                ("pipeline.deployRoleArn", self.pipeline.deploy_role_arn),
                ("pipeline.previewRoleArn", self.pipeline.preview_role_arn),
                ("certificateArn", self.certificate_arn),
            ):
                owner = arn.split(":")[4] if arn.count(":") >= 5 else ""
                if owner.isdigit() and owner != self.account_id:
                    problems.add(
                        f"is in account {owner}, but {NAMESPACE}:accountId is {self.account_id}: the stack's roles "
                        "and certificate must be in its own account",
                        key,
                    )
        if self.pipeline.promote_from == self.environment:
            problems.add(
                f"must name another environment: a stack cannot promote its own releases (this one is "
                f"{self.environment})",
                "pipeline.promoteFrom",
            )
        problem = self.image_problem()
        if problem:
            problems.add(problem, "service.image")
        region = _region_problem(self.region, self.pipeline.source if self.pipeline.builds else "")
        if region:
            problems.add(region, full_key="aws:region")
        problems.raise_any()
        return self

    def image_problem(self, image_account: str = "") -> str | None:
        """Why the task execution role could not pull `cicd:service.image`, if it could not: it pulls from
        one repository, in the stack's region (the stack's own, or for a promoting stack its upstream's),
        of ``image_account`` when that is known (the stack's, or its upstream's in another account)."""
        image = self.service.image
        if not image or image == OFFLINE_SECRET:
            return None
        host, _, path = image.partition("/")
        account, region = host.split(".")[0], host.split(".")[3] if host.count(".") >= 4 else ""
        repository = path.partition("@")[0]
        expected = self.prefix if self.pipeline.builds else self.upstream_prefix
        whose = "this stack's" if self.pipeline.builds else f"{self.pipeline.promote_from}'s"
        if repository != expected or region != self.region:
            return (
                f"is in repository {repository} of {region}; the task execution role pulls from {whose} repository "
                f"{expected} in {self.region} only: deploy a digest of {expected} (got {image})"
            )
        if image_account and account != image_account:
            return (
                f"is in account {account}; the task execution role pulls {expected} of account {image_account} "
                f"only: deploy a digest of that account's repository (got {image})"
            )
        return None

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"

    @property
    def upstream_prefix(self) -> str:
        """The physical-name prefix of the environment this stack promotes from ("" when it builds)."""
        source = self.pipeline.promote_from
        return f"{self.service.name}-{ENVIRONMENT_CODES[source]}" if source else ""

    @property
    def upstream_account(self) -> str:
        """The account of the environment this stack promotes from, when it is another ("": this one)."""
        return self.other_accounts.get(self.pipeline.promote_from, "") if self.pipeline.promote_from else ""

    @property
    def cross_account_downstreams(self) -> dict[str, tuple[str, str]]:
        """The environments in other accounts that promote this one's releases: {env: (account, prefix)}."""
        return {
            env: (self.other_accounts[env], f"{self.service.name}-{ENVIRONMENT_CODES[env]}")
            for env in self.promoted_to
            if env in self.other_accounts
        }

    @property
    def release_environments(self) -> list[str]:
        """Whose release record gives the image when none is configured: this environment's own
        newest release, then (for a promoting stack, before its first) its upstream's, when the
        upstream is in this account (another account's Parameter Store is not readable here)."""
        upstream = self.pipeline.promote_from
        return [self.environment] + ([upstream] if upstream and not self.upstream_account else [])

    @property
    def prefix(self) -> str:
        """The stem of every physical name: `<service>-<env code>`, at most 24 characters."""
        return f"{self.service.name}-{ENVIRONMENT_CODES[self.environment]}"

    @property
    def tag_map(self) -> dict[str, str]:
        return {
            **self.tags,
            "project": self.project,
            "environment": self.environment,
            "service": self.service.name,
            "managed-by": "pulumi",
        }


TOP_LEVEL_KEYS = tuple(
    f.alias or n
    for n, f in Settings.model_fields.items()
    if n not in ("project", "stack", "region", "require_image", "promoted_to", "other_accounts")
)


def promotion_errors(stacks: Mapping[str, tuple[str, ...]], only: str | None = None) -> list[str]:
    """What is wrong with a project's promotion chain: `stacks` maps each stack to its environment,
    the environment it promotes from (empty: it builds) and optionally its account ID. A stack may
    promote only from an environment some stack of the project has, and that stack must build: one
    level of promotion is built (a promoting stack records its releases but publishes no bundles to
    promote further). The chain may not loop. `only`: just that stack's chain."""
    errors = []
    environments = {facts[0]: stack for stack, facts in stacks.items()}
    upstream = {facts[0]: facts[1] for facts in stacks.values()}
    for stack, (_env, source, *_) in sorted(stacks.items()):
        if only is not None and stack != only:
            continue
        if source and source not in environments:
            errors.append(
                f"{NAMESPACE}:pipeline.promoteFrom of stack {stack} is {source}, but no stack of this project has "
                f"{NAMESPACE}:environment {source} (stacks: {', '.join(sorted(stacks))})"
            )
    starts = [stacks[only][0]] if only is not None and only in stacks else list(upstream)
    looping: set[str] = set()
    for env in starts:
        seen, current = [env], upstream.get(env)
        while current:
            if current in seen:
                cycle = seen[seen.index(current) :]
                first = cycle.index(min(cycle))
                cycle = cycle[first:] + cycle[:first]
                loop = " -> ".join([*cycle, cycle[0]])
                message = f"{NAMESPACE}:pipeline.promoteFrom makes a loop ({loop}): one stack must build"
                if message not in errors:
                    errors.append(message)
                looping.update(cycle)
                break
            seen.append(current)
            current = upstream.get(current)
    for stack, (env, source, *_) in sorted(stacks.items()):
        if (only is None or stack == only) and upstream.get(source) and env not in looping:
            errors.append(
                f"{NAMESPACE}:pipeline.promoteFrom of stack {stack} is {source}, which itself promotes from "
                f"{upstream[source]}: promote from a stack that builds ({NAMESPACE}:pipeline.promoteFrom: "
                f"{upstream[source]}); one level of promotion is built"
            )
    return errors + _account_errors(stacks, only)


def _account_errors(stacks: Mapping[str, tuple[str, ...]], only: str | None) -> list[str]:
    """Promotion across accounts is set up from both stack files: either both of a promoting pair name
    their account (cicd:accountId) or neither does (both in one account)."""
    errors = []
    by_env = {facts[0]: (stack, facts[2] if len(facts) > 2 else "") for stack, facts in stacks.items()}
    for stack, (_env, source, *rest) in sorted(stacks.items()):
        if not source or source not in by_env:
            continue
        upstream_stack, upstream_account = by_env[source]
        if only is not None and only not in (stack, upstream_stack):
            continue
        account = rest[0] if rest else ""
        if bool(account) != bool(upstream_account):
            has, lacks = (stack, upstream_stack) if account else (upstream_stack, stack)
            errors.append(
                f"{NAMESPACE}:accountId is set in stack {has} but not in stack {lacks}, which "
                f"{'it promotes from' if has == stack else 'promotes from it'}: set it in both (promotion across "
                "accounts) or in neither (one account)"
            )
    return errors


def other_accounts(stacks: Mapping[str, tuple[str, ...]], stack: str) -> dict[str, str]:
    """The accounts of the environments `stack` promotes from or to, where another than its own."""
    env, source, *rest = stacks[stack]
    own = rest[0] if rest else ""
    found = {}
    for other_env, other_source, *other in stacks.values():
        account = other[0] if other else ""
        if (other_env == source or other_source == env) and own and account and account != own:
            found[other_env] = account
    return found


def require_account(settings: Settings, account: str) -> None:
    """The credentials must be of the account the stack names (cicd:accountId)."""
    if account != settings.account_id:
        raise ConfigError(
            [
                f"{NAMESPACE}:accountId is {settings.account_id}, but the AWS credentials are of account {account}: "
                f"use credentials of {settings.account_id} for stack {settings.stack} (AWS_PROFILE), or fix the key"
            ]
        )


def image_to_deploy(settings: Settings, released: str) -> str:
    """The image the stack runs: `cicd:service.image`, else the release record's (`released`); empty
    means a local build of app/, which only a building stack outside CI may do."""
    image = settings.service.image or released
    if image:
        return image
    if settings.pipeline.promote_from and settings.upstream_account:
        upstream = settings.pipeline.promote_from
        raise ConfigError(
            [
                f"{NAMESPACE}:service.image is empty and this stack has recorded no release yet: it promotes releases "
                f"of {upstream}, whose records are in account {settings.upstream_account}, which this program does "
                f"not read. For this first `up`, set it to a digest {upstream} released (with credentials of "
                f"{settings.upstream_account}: aws ssm get-parameter --name "
                f"/{settings.project}/{settings.service.name}/{upstream}/release); README, Two accounts"
            ]
        )
    if settings.pipeline.promote_from:
        raise ConfigError(
            [
                f"{NAMESPACE}:service.image is empty and {settings.pipeline.promote_from} has recorded no release "
                f"yet: this stack promotes releases of {settings.pipeline.promote_from} and never builds. Release "
                f"{settings.pipeline.promote_from} first (README, bootstrap), or set a digest"
            ]
        )
    if settings.require_image:
        raise ConfigError(
            [
                f"{NAMESPACE}:service.image is empty and the stack has no release record, and this job must never "
                f"build the image itself ({REQUIRE_IMAGE_VARIABLE} is set): deploy a digest (<repo>@sha256:…), as "
                "the pipeline's jobs do with the digest the stack runs now (buildspecs/scripts/pin-running-image.sh)"
            ]
        )
    return ""


OTHER_PARTITIONS = {
    "cn-": "aws-cn",
    "us-gov-": "aws-us-gov",
    "us-isob-": "aws-iso-b",
    "us-iso-": "aws-iso",
    "eu-isoe-": "aws-iso-e",
    "us-isof-": "aws-iso-f",
}


def _region_problem(region: str, source: str) -> str | None:
    """What is wrong with the region, if anything: every service the stack needs must have an endpoint
    there, in AWS's commercial partition (the one whose endpoints, log-delivery accounts and prices the
    program is built and checked for)."""
    if not region:
        return None
    other = next((p for prefix, p in OTHER_PARTITIONS.items() if region.startswith(prefix)), None)
    if other:
        return (
            f"{region} is in the {other} partition; this program is built and checked for AWS's commercial "
            "partition (aws) only: its service endpoints, log-delivery accounts and prices. Choose a region such "
            "as us-east-1"
        )
    needed = ["codepipeline", "codebuild", "codestar-notifications"]
    if source:  # a building stack's source; a promoting stack reads its upstream's releases
        needed.append("codecommit" if source == "codecommit" else "codestar-connections")
    missing = [SERVICE_NAMES[s] for s in needed if region not in SERVICE_REGIONS[s]]
    if missing:
        usable = sorted(set.intersection(*(set(SERVICE_REGIONS[s]) for s in needed)))
        return (
            f"{region} has no {', '.join(missing)} endpoint (AWS's published endpoints); the pipeline needs "
            f"them. Choose a region with all of them: {', '.join(usable)}"
        )
    return None


# ---------------------------------------------------------------------------------------------
# Errors as the user wrote the keys


def _describe(error: Mapping[str, Any]) -> list[str]:
    """A pydantic error as `<full key> <what is allowed>` lines (a validator's collected errors, one each)."""
    if error["type"] == "cicd_all":
        return [
            line
            for found in error["ctx"]["errors"]
            for line in _describe({**error, "type": "cicd", "ctx": found, "msg": found["message"]})
        ]
    return [_describe_one(error)]


def _describe_one(error: Mapping[str, Any]) -> str:
    path = [str(p) for p in error["loc"]]
    ctx = error.get("ctx") or {}
    kind, value = error["type"], error.get("input")
    if kind == "cicd":
        message, key = ctx["message"], ctx.get("key")
        if ctx.get("full_key"):
            return f"{ctx['full_key']} {message}"
        if key:
            path += [key]
    elif kind == "extra_forbidden":
        parent = path[:-1]
        model = _model_at(parent)
        allowed = ", ".join(sorted(f.alias or n for n, f in model.model_fields.items() if not f.exclude))
        message = f"is not a known key; allowed keys of {_key(parent)}: {allowed}"
    elif kind in ("int_type", "int_from_float", "int_parsing"):
        message = f"must be a whole number; got {value!r} ({_type_name(value)})"
    elif kind in ("float_type", "float_parsing"):
        message = f"must be a number; got {value!r} ({_type_name(value)})"
    elif kind == "bool_type":
        message = f"must be true or false; got {value!r} ({_type_name(value)})"
    elif kind == "string_type":
        message = f"must be a string; got {value!r} ({_type_name(value)})"
    elif kind in ("model_type", "dict_type", "model_attributes_type"):
        message = f"must be an object; got {value!r} ({_type_name(value)})"
    else:
        message = f"is not valid: {error['msg']}; got {value!r}"
    return f"{_key(path)} {message}"


def _key(path: list[str]) -> str:
    """`cicd:service.secrets[1]` from ["service", "secrets", "[1]"]."""
    text = ""
    for part in path:
        if part.isdigit():
            part = f"[{part}]"
        text += part if part.startswith("[") or not text else f".{part}"
    return f"{NAMESPACE}:{text}"


def _model_at(path: list[str]) -> type[BaseModel]:
    model: type[BaseModel] = Settings
    for part in path:
        field = next(f for n, f in model.model_fields.items() if (f.alias or n) == part)
        model = field.annotation  # type: ignore[assignment]
    return model


def _parse(key: str, value: Any) -> Any:
    """Objects arrive as the CLI passes them: JSON text (or already parsed)."""
    if key not in OBJECT_KEYS or not isinstance(value, str) or value == OFFLINE_SECRET:
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value  # reported as "must be an object"


def load_settings(
    raw: Mapping[str, Any],
    *,
    project: str,
    stack: str,
    region: str,
    require_image: bool = False,
    promoted_to: tuple[str, ...] = (),
) -> Settings:
    """Validate raw values keyed by their name inside the namespace (`service`, `protect`, ...).

    Objects may be given parsed or as JSON text; scalars as the CLI gives them (strings).
    ``require_image``: an empty ``cicd:service.image`` is an error instead of a local build (CI jobs).
    Raises a ConfigError listing every error, each naming its full key.
    """
    unknown = sorted(set(raw) - set(TOP_LEVEL_KEYS))
    errors = [
        f"{NAMESPACE}:{k} is not a known key; allowed keys: " + ", ".join(f"{NAMESPACE}:{t}" for t in TOP_LEVEL_KEYS)
        for k in unknown
    ]
    # An object set to null, or an empty environment, is as if unset (the defaults apply).
    values = {k: _parse(k, v) for k, v in raw.items() if k in TOP_LEVEL_KEYS and v is not None}
    values = {k: v for k, v in values.items() if v is not None and not (k == "environment" and v == "")}
    identity = {
        "project": project,
        "stack": stack,
        "region": region,
        "requireImage": require_image,
        "promotedTo": tuple(promoted_to),
    }
    try:
        # A stack file uses the camelCase names only (Python code may build sections by field name).
        settings = Settings.model_validate({**values, **identity}, by_alias=True, by_name=False)
    except ValidationError as err:
        found = err.errors(include_url=False)
        errors += [line for e in found for line in _describe(e)]
        errors += [e for e in _stack_rule_errors(values, identity, found) if e not in errors]
        settings = None
    if errors:
        raise ConfigError(errors)
    return settings


def _stack_rule_errors(values: Mapping[str, Any], identity: Mapping[str, Any], found: list) -> list[str]:
    """The rules across sections, which pydantic skips once a section fails: checked again with each
    failing value left out (its default stands in) and each section whose own rules failed taken as
    given, so that a stack file's errors are all reported at once. Only errors of a key not already
    reported are kept (a default that stands in must not be blamed)."""
    if any(not e["loc"] for e in found):
        return []  # the stack's own rules ran
    failed: dict[str, set[str]] = {}
    for e in found:
        top, *rest = [str(p) for p in e["loc"]]
        failed.setdefault(top, set()).update(rest[:1])
    # Each failing value left out (its default stands in); a failing scalar or a section of the wrong
    # kind left out whole. The sections' own rules were reported already: they do not run again.
    retry: dict[str, Any] = dict(values)
    for top, keys in failed.items():
        value = retry.get(top)
        field = Settings.model_fields.get(_snake(top))
        section = field is not None and isinstance(field.annotation, type) and issubclass(field.annotation, Section)
        if isinstance(value, dict) and keys:
            retry[top] = {k: v for k, v in value.items() if k not in keys}
        elif not (isinstance(value, dict) and section):
            retry.pop(top, None)  # a scalar, a section of the wrong kind, or a map such as cicd:tags
    token = _STACK_RULES_ONLY.set(True)
    try:
        Settings.model_validate({**retry, **identity}, by_alias=True, by_name=False)
    except ValidationError as err:
        return [line for e in err.errors(include_url=False) if not e["loc"] for line in _describe(e)]
    except (TypeError, AttributeError, KeyError, ValueError):
        return []  # a value of the wrong kind that only its own error explains
    finally:
        _STACK_RULES_ONLY.reset(token)
    return []


def _undeclared_keys() -> list[str]:
    """`cicd:` keys the CLI passed that the contract does not have (a typo must not be ignored).

    The Python language host hands the program its config as PULUMI_CONFIG, which
    `pulumi.runtime.get_config_env()` reads; `pulumi.Config` reads declared keys only.
    """
    keys = pulumi.runtime.get_config_env()
    return sorted(k.partition(":")[2] for k in keys if k.partition(":")[0] == NAMESPACE)


def project_stacks(root: str = os.path.dirname(os.path.abspath(__file__))) -> dict[str, tuple[str, str, str]]:
    """Each stack file's environment, promoteFrom and accountId, as promotion_errors takes them."""
    import glob

    import yaml

    stacks = {}
    for path in sorted(glob.glob(os.path.join(root, "Pulumi.*.yaml"))):
        stack = os.path.basename(path)[len("Pulumi.") : -len(".yaml")]
        try:
            with open(path, encoding="utf-8") as handle:
                document = yaml.safe_load(handle) or {}
            values = document.get("config") or {} if isinstance(document, dict) else None
        except yaml.YAMLError as err:
            raise ConfigError([f"{os.path.basename(path)}: not YAML ({' '.join(str(err).split())})"]) from None
        if not isinstance(values, dict):
            raise ConfigError([f"{os.path.basename(path)}: its config must be a mapping of keys to values"])
        pipeline = values.get(f"{NAMESPACE}:pipeline")
        source = pipeline.get("promoteFrom", "") if isinstance(pipeline, dict) else ""
        account = values.get(f"{NAMESPACE}:accountId")
        account = (
            # A number is refused (load names it): YAML drops leading zeros, and reads some IDs as octal.
            f"unquoted {account}" if isinstance(account, int) and not isinstance(account, bool) else str(account or "")
        )
        stacks[stack] = (str(values.get(f"{NAMESPACE}:environment") or "dev"), str(source or ""), account)
    return stacks


def stack_file_facts(root: str = os.path.dirname(os.path.abspath(__file__))) -> dict[str, dict[str, str]]:
    """What two stack files of the project must not share, read from each `Pulumi.<stack>.yaml`: its
    environment, service name, account and deploy role (an unreadable file is left to its own run)."""
    import glob

    import yaml

    facts = {}
    for path in sorted(glob.glob(os.path.join(root, "Pulumi.*.yaml"))):
        stack = os.path.basename(path)[len("Pulumi.") : -len(".yaml")]
        try:
            with open(path, encoding="utf-8") as handle:
                values = (yaml.safe_load(handle) or {}).get("config") or {}
        except (yaml.YAMLError, AttributeError, OSError):
            continue
        if not isinstance(values, dict):
            continue
        service = values.get(f"{NAMESPACE}:service")
        pipeline = values.get(f"{NAMESPACE}:pipeline")
        facts[stack] = {
            "file": os.path.basename(path),
            "environment": str(values.get(f"{NAMESPACE}:environment") or "dev"),
            "service": str((service.get("name") if isinstance(service, dict) else None) or "web"),
            "account": str(values.get(f"{NAMESPACE}:accountId") or ""),
            "deployRole": str((pipeline.get("deployRoleArn") if isinstance(pipeline, dict) else None) or ""),
        }
    return facts


def sibling_errors(settings: Settings, facts: Mapping[str, Mapping[str, str]]) -> list[str]:
    """A stack file copied from another and not changed enough: the same deploy role (one pipeline could
    then deploy the other stack), or the same physical names in one account (the same environment and
    service: the second `up` would fail on names the first owns, or take them over)."""
    errors = []
    own = f"Pulumi.{settings.stack}.yaml"
    for stack, other in sorted(facts.items()):
        if stack == settings.stack:
            continue
        role = settings.pipeline.deploy_role_arn
        if role and role != OFFLINE_SECRET and role == other["deployRole"]:
            errors.append(
                f"{NAMESPACE}:pipeline.deployRoleArn of stack {settings.stack} ({own}) is also the deploy role of "
                f"stack {stack} ({other['file']}): give each stack a role of its own, trusted by its own jobs only "
                "(a shared role lets one stack's pipeline change the other stack)"
            )
        same_account = not settings.account_id or not other["account"] or settings.account_id == other["account"]
        if same_account and (other["environment"], other["service"]) == (settings.environment, settings.service.name):
            errors.append(
                f"{NAMESPACE}:environment {settings.environment} and {NAMESPACE}:service.name {settings.service.name} "
                f"of stack {settings.stack} ({own}) are also those of stack {stack} ({other['file']}), in one "
                f"account: both would create the same physical names ({settings.prefix}-…). Change the "
                "environment or the service name of one of them"
            )
    return errors


ROOT = os.path.dirname(os.path.abspath(__file__))
_FULL_KEY = re.compile(r"^((?:cicd|aws):[\w.\[\]-]+)")


def key_lines(path: str) -> dict[str, int]:
    """Where each key of a stack file's `config:` is: {full key: line}, for `cicd:service`,
    `cicd:service.cpu` and `cicd:service.secrets[1]` alike (lines count from 1)."""
    import yaml

    try:
        with open(path, encoding="utf-8") as handle:
            document = yaml.compose(handle, Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError):
        return {}
    lines: dict[str, int] = {}

    def walk(node: Any, key: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value in node.value:
                name = f"{key}.{key_node.value}" if key else str(key_node.value)
                lines.setdefault(name, key_node.start_mark.line + 1)
                walk(value, name)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines.setdefault(f"{key}[{i}]", item.start_mark.line + 1)
                walk(item, f"{key}[{i}]")

    if isinstance(document, yaml.MappingNode):
        config = next((v for k, v in document.value if k.value == "config"), None)
        if isinstance(config, yaml.MappingNode):
            walk(config, "")
    return lines


def located(errors: list[str], stack: str, root: str = ROOT) -> list[str]:
    """Each error that names a key, prefixed with `Pulumi.<stack>.yaml:<line>:` of that key in the stack
    file (or of the nearest enclosing key it has, e.g. its section for a missing required key)."""
    name = f"Pulumi.{stack}.yaml"
    lines = key_lines(os.path.join(root, name))
    if not lines:
        return list(errors)
    out = []
    for error in errors:
        match = _FULL_KEY.match(error)
        if not match:
            out.append(error)
            continue
        key = match.group(1).rstrip(".")
        while key and key not in lines:
            key = re.sub(r"(\.[^.\[]*|\[\d+\])$", "", key) if re.search(r"[.\[]", key.split(":", 1)[1]) else ""
        out.append(f"{name}:{lines[key]}: {error}" if key else f"{name}: {error}")
    return out


def load() -> Settings:
    """Read the `cicd` namespace of the running stack and validate all of it; every error names the
    key and where the stack file sets it (or would)."""
    try:
        return _load()
    except ConfigError as err:
        raise ConfigError(located(err.errors, pulumi.get_stack())) from None


def _load() -> Settings:
    cfg = pulumi.Config(NAMESPACE)
    raw: dict[str, Any] = {key: cfg.get(key) for key in TOP_LEVEL_KEYS}
    raw.update({key: "" for key in _undeclared_keys() if key not in raw})
    region = pulumi.Config("aws").get("region") or ""
    if not region:
        raise ConfigError(["aws:region is required (for example `pulumi config set aws:region us-east-1`)"])
    # The other stacks of the project are files beside this one: who promotes from this environment,
    # and (an error here as in the offline plan) a chain that loops or an upstream no stack has.
    stacks = project_stacks()
    environment = str(raw.get("environment") or "dev")
    promoted_to = tuple(
        sorted(
            {env for name, (env, source, *_) in stacks.items() if source == environment and name != pulumi.get_stack()}
        )
    )
    provider = provider_key_errors(pulumi.runtime.get_config_env())
    try:
        settings = load_settings(
            raw,
            project=pulumi.get_project(),
            stack=pulumi.get_stack(),
            region=region,
            require_image=os.environ.get(REQUIRE_IMAGE_VARIABLE, "") not in ("", "0"),
            promoted_to=promoted_to,
        )
    except ConfigError as err:
        raise ConfigError(provider + err.errors) from None
    stacks[settings.stack] = (settings.environment, settings.pipeline.promote_from, settings.account_id)
    errors = provider + promotion_errors(stacks, only=settings.stack)
    errors += [
        f"{NAMESPACE}:accountId of stack {name} must be 12 digits, quoted; got {account!r}"
        for name, (_env, _source, account) in sorted(stacks.items())
        if name != settings.stack and account and not re.match(ACCOUNT_ID_RE, account)
    ]
    errors += sibling_errors(settings, stack_file_facts())
    settings = settings.model_copy(update={"other_accounts": other_accounts(stacks, settings.stack)})
    own_account = settings.account_id if settings.account_id != OFFLINE_SECRET else ""
    problem = settings.image_problem(settings.upstream_account or own_account)
    if problem:
        errors.append(f"{NAMESPACE}:service.image {problem}")
    if errors:
        raise ConfigError(errors)
    return settings


# The AWS provider's configuration keys (pulumi-aws 7.51.1's `config/vars.py`; a test holds them equal):
# a key under `aws:` that is not one of them is passed on by the CLI and read by nothing.
AWS_PROVIDER_KEYS = (
    "accessKey", "allowedAccountIds", "assumeRoleWithWebIdentity", "assumeRoles", "customCaBundle", "defaultTags",
    "ec2MetadataServiceEndpoint", "ec2MetadataServiceEndpointMode", "endpoints", "forbiddenAccountIds", "httpProxy",
    "httpsProxy", "ignoreTags", "insecure", "maxRetries", "noProxy", "profile", "region", "retryMode",
    "s3UsEast1RegionalEndpoint", "s3UsePathStyle", "secretKey", "sharedConfigFiles", "sharedCredentialsFiles",
    "skipCredentialsValidation", "skipMetadataApiCheck", "skipRegionValidation", "skipRequestingAccountId",
    "stsRegion", "tagPolicyCompliance", "token", "tokenBucketRateLimiterCapacity", "useDualstackEndpoint",
    "useFipsEndpoint", "userAgents",
)  # fmt: skip


def provider_key_errors(keys: Mapping[str, Any] | list[str]) -> list[str]:
    """`aws:` keys the AWS provider does not have (a typo such as aws:regoin, or a key of another tool)."""
    import difflib

    errors = []
    for key in sorted(keys):
        namespace, _, name = key.partition(":")
        if namespace == "aws" and name not in AWS_PROVIDER_KEYS:
            close = difflib.get_close_matches(name, AWS_PROVIDER_KEYS, n=1)
            hint = f"; did you mean aws:{close[0]}?" if close else ""
            errors.append(
                f"aws:{name} is not a configuration key of the AWS provider (pulumi-aws): the CLI would pass it "
                f"on and nothing would read it{hint}"
            )
    return errors
