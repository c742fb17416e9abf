"""ECS: Container Insights, hardened task definitions, private services that roll back."""

import re

from ._util import (ADVISORY, as_list, dig, is_set, is_unknown, known, of_type, parse_json, plain, resource_policy,
                    stack_policy)
from pulumi_policy import Severity

CLUSTER = "aws:ecs/cluster:Cluster"
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
SERVICE = "aws:ecs/service:Service"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
SECRET_WORDS = ("PASSWORD", "PASSWD", "SECRET", "TOKEN", "CREDENTIAL", "PRIVATE_KEY", "API_KEY", "ACCESS_KEY")
AWS_KEY_RE = re.compile(r"(AKIA|ASIA)[0-9A-Z]{16}")


def _containers(props):
    containers = parse_json(props.get("containerDefinitions"), "containerDefinitions")
    return [c for c in as_list(containers) if isinstance(c, dict)]


def _insights(props, _args):
    settings = as_list(known(props.get("settings"), "settings"))
    values = [s.get("value") for s in settings if isinstance(s, dict) and s.get("name") == "containerInsights"]
    if not values or values[0] not in ("enabled", "enhanced"):
        yield "ECS clusters must have Container Insights. Add settings [{name: containerInsights, value: enabled}]."


def _privileged(props, _args):
    for c in _containers(props):
        if c.get("privileged") is True:
            yield f"Container {c.get('name')} must not be privileged. Remove privileged: true."


def _readonly_root(props, _args):
    for c in _containers(props):
        if c.get("readonlyRootFilesystem") is not True:
            yield (f"Container {c.get('name')} must have a read-only root filesystem. Set readonlyRootFilesystem "
                   "to true and mount a volume where it must write.")


def _host_namespaces(props, _args):
    for key in ("pidMode", "ipcMode"):
        if known(props.get(key), key) == "host":
            yield f"Task definitions must not share the host's {key[:3].upper()} namespace. Remove {key}: host."


def _awsvpc(props, _args):
    # The default network mode on EC2 is bridge.
    if known(props.get("networkMode") or "bridge", "networkMode") != "awsvpc":
        yield "Task definitions must use awsvpc networking. Set networkMode to awsvpc."


def _logging(props, _args):
    for c in _containers(props):
        if not (c.get("logConfiguration") or {}).get("logDriver"):
            yield f"Container {c.get('name')} must send its logs somewhere. Add a logConfiguration (awslogs)."


def _non_root(props, _args):
    for c in _containers(props):
        user = str(c.get("user") or "")
        if user.split(":")[0] in ("", "0", "root"):
            yield f"Container {c.get('name')} should run as a non-root user. Set user to a UID such as 10001."


def _plaintext_secrets(props, _args):
    for c in _containers(props):
        for variable in as_list(c.get("environment")):
            name = str(variable.get("name", "")).upper()
            value = str(variable.get("value", ""))
            if any(word in name for word in SECRET_WORDS) or AWS_KEY_RE.search(value):
                yield (f"Container {c.get('name')} must not carry {variable.get('name')} in plain environment. "
                       "Move it to secrets (valueFrom a Secrets Manager secret).")


def _no_public_ip(props, _args):
    if dig(props, "networkConfiguration", "assignPublicIp") is True:
        yield "ECS services must not assign public IPs. Set assignPublicIp to false and use private subnets."


def _platform_version(props, _args):
    version = known(props.get("platformVersion") or "LATEST", "platformVersion")
    if version == "LATEST":
        return
    parts = [int(p) for p in re.findall(r"\d+", version)]
    if parts < [1, 4, 0]:
        yield f"Fargate services must run platform 1.4.0 or later; got {version}. Set platformVersion to LATEST."


def _rollback(resources, _args):
    alarm_names = {plain(a.props).get("name") for a in of_type(resources, ALARM)}
    for service in of_type(resources, SERVICE):
        for message in _service_rollback(plain(service.props), alarm_names):
            yield message, service.urn


def _service_rollback(props, alarm_names):
    if not is_set(props.get("loadBalancers")):
        return
    if not (dig(props, "deploymentCircuitBreaker", "enable") is True
            and dig(props, "deploymentCircuitBreaker", "rollback") is True):
        yield "Load-balanced services must roll back failed deployments. Set deploymentCircuitBreaker to enable and rollback."
    strategy = dig(props, "deploymentConfiguration", "strategy")
    if strategy in ("BLUE_GREEN", "CANARY", "LINEAR"):
        enabled = dig(props, "alarms", "enable") is True and dig(props, "alarms", "rollback") is True
        names = dig(props, "alarms", "alarmNames")
        if not (enabled and is_set(names)):
            yield (f"{strategy} deployments must roll back on alarms. Set alarms to the deployment alarms' names "
                   "with enable and rollback true.")
        elif isinstance(names, list):
            missing = [n for n in names if isinstance(n, str) and not is_unknown(n) and n not in alarm_names]
            if missing:
                yield (f"The deployment alarms {', '.join(missing)} are not in the stack, so nothing would roll "
                       "the deployment back. Create them or fix alarms.alarmNames.")


POLICIES = [
    resource_policy("ecs-cluster-container-insights", "Checks that ECS clusters have Container Insights.",
                    CLUSTER, _insights, severity=Severity.MEDIUM),
    resource_policy("ecs-no-privileged-containers", "Checks that no container runs privileged.", TASK_DEFINITION,
                    _privileged, severity=Severity.CRITICAL),
    resource_policy("ecs-readonly-root-filesystem", "Checks that containers have a read-only root filesystem.",
                    TASK_DEFINITION, _readonly_root),
    resource_policy("ecs-no-host-namespaces", "Checks that task definitions do not share the host's PID or IPC.",
                    TASK_DEFINITION, _host_namespaces),
    resource_policy("ecs-awsvpc-network-mode", "Checks that task definitions use awsvpc networking.",
                    TASK_DEFINITION, _awsvpc, severity=Severity.MEDIUM),
    resource_policy("ecs-container-logging", "Checks that every container has a log configuration.",
                    TASK_DEFINITION, _logging, severity=Severity.MEDIUM),
    resource_policy("ecs-non-root-user", "Checks that containers run as a non-root user.", TASK_DEFINITION,
                    _non_root, enforcement=ADVISORY, severity=Severity.MEDIUM),
    resource_policy("ecs-no-plaintext-secrets", "Checks that containers carry no secrets in plain environment.",
                    TASK_DEFINITION, _plaintext_secrets, severity=Severity.CRITICAL),
    resource_policy("ecs-service-no-public-ip", "Checks that ECS services assign no public IPs.", SERVICE,
                    _no_public_ip),
    resource_policy("ecs-fargate-platform-version", "Checks that Fargate services run platform 1.4.0 or later.",
                    SERVICE, _platform_version, severity=Severity.MEDIUM),
    stack_policy("ecs-service-rollback",
                 "Checks that load-balanced services roll back bad deployments on a circuit breaker and on alarms "
                 "that exist in the stack.", _rollback),
]
