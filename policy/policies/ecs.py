"""ECS: Container Insights, hardened task definitions, private services that roll back."""

import re

from pulumi_policy import Severity

from ._util import (
    ADVISORY,
    AWS_KEY_RE,
    as_list,
    contains_unknown,
    dig,
    is_set,
    is_unknown,
    known,
    of_type,
    parse_json,
    plain,
    resource_policy,
    secret_word,
    stack_policy,
)

CLUSTER = "aws:ecs/cluster:Cluster"
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
SERVICE = "aws:ecs/service:Service"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


def _containers(props):
    containers = parse_json(props.get("containerDefinitions"), "containerDefinitions")
    return [c for c in as_list(containers) if isinstance(c, dict)]


def _insights(props, _args):
    settings = as_list(known(props.get("settings"), "settings"))
    values = [s.get("value") for s in settings if isinstance(s, dict) and s.get("name") == "containerInsights"]
    if not values or values[0] not in ("enabled", "enhanced"):
        yield "ECS clusters must have Container Insights. Add settings [{name: containerInsights, value: enabled}]."


# Linux capabilities that give a container the host's powers (Docker's own default set adds none of them).
HOST_CAPABILITIES = frozenset(
    {"ALL", "SYS_ADMIN", "SYS_PTRACE", "SYS_MODULE", "SYS_RAWIO", "SYS_BOOT", "NET_ADMIN", "DAC_READ_SEARCH", "BPF"}
)


def _privileged(props, _args):
    """Every way a container definition asks for the host's privileges, not only `privileged`."""
    for c in _containers(props):
        name = c.get("name")
        if c.get("privileged") is True:
            yield f"Container {name} must not be privileged. Remove privileged: true."
        linux = c.get("linuxParameters") or {}
        added = {str(cap).upper().removeprefix("CAP_") for cap in as_list((linux.get("capabilities") or {}).get("add"))}
        if added & HOST_CAPABILITIES:
            yield (
                f"Container {name} must not add the capabilities {', '.join(sorted(added & HOST_CAPABILITIES))}, "
                "which give it the host's powers. Remove them from linuxParameters.capabilities.add."
            )
        if as_list(linux.get("devices")):
            yield f"Container {name} must not map host devices. Remove linuxParameters.devices."


def _readonly_root(props, _args):
    for c in _containers(props):
        if c.get("readonlyRootFilesystem") is not True:
            yield (
                f"Container {c.get('name')} must have a read-only root filesystem. Set readonlyRootFilesystem "
                "to true and mount a volume where it must write."
            )


def _host_namespaces(props, _args):
    for key in ("pidMode", "ipcMode"):
        if str(known(props.get(key), key) or "").lower() == "host":
            yield f"Task definitions must not share the host's {key[:3].upper()} namespace. Remove {key}: host."
    # A volume bound to a path of the host (EC2 only) reaches the host's filesystem.
    for volume in as_list(props.get("volumes")):
        if isinstance(volume, dict) and volume.get("hostPath"):
            yield f"Task definitions must not mount the host's {volume['hostPath']}. Use a task volume."


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
            name = str(variable.get("name", ""))
            value = str(variable.get("value", ""))
            if secret_word(name) or AWS_KEY_RE.search(value):
                yield (
                    f"Container {c.get('name')} must not carry {variable.get('name')} in plain environment. "
                    "Move it to secrets (valueFrom a Secrets Manager secret)."
                )


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
    if not (
        dig(props, "deploymentCircuitBreaker", "enable") is True
        and dig(props, "deploymentCircuitBreaker", "rollback") is True
    ):
        yield (
            "Load-balanced services must roll back failed deployments. "
            "Set deploymentCircuitBreaker to enable and rollback."
        )
    strategy = dig(props, "deploymentConfiguration", "strategy")
    if strategy in ("BLUE_GREEN", "CANARY", "LINEAR"):
        enabled = dig(props, "alarms", "enable") is True and dig(props, "alarms", "rollback") is True
        names = dig(props, "alarms", "alarmNames")
        if not (enabled and is_set(names)):
            yield (
                f"{strategy} deployments must roll back on alarms. Set alarms to the deployment alarms' names "
                "with enable and rollback true."
            )
        elif isinstance(names, list):
            missing = [n for n in names if isinstance(n, str) and not is_unknown(n) and n not in alarm_names]
            if missing:
                yield (
                    f"The deployment alarms {', '.join(missing)} are not in the stack, so nothing would roll "
                    "the deployment back. Create them or fix alarms.alarmNames."
                )


LISTENER = "aws:lb/listener:Listener"
LISTENER_RULE = "aws:lb/listenerRule:ListenerRule"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
BLUE_GREEN = ("BLUE_GREEN", "CANARY", "LINEAR")


def _by_arn(resources, typ):
    """The stack's resources of a type by their ARN (known once planned; a first preview has none)."""
    return {plain(r.props).get("arn"): plain(r.props) for r in of_type(resources, typ) if plain(r.props).get("arn")}


def _forwarded(rule):
    """The target groups a listener rule forwards to."""
    groups = []
    for action in as_list(rule.get("actions")):
        if not isinstance(action, dict):
            continue
        groups += [action.get("targetGroupArn")] if action.get("targetGroupArn") else []
        groups += [g.get("arn") for g in as_list(dig(action, "forward", "targetGroups")) if isinstance(g, dict)]
    return groups


def _blue_green(resources, _args):
    rules, listeners, groups = (_by_arn(resources, t) for t in (LISTENER_RULE, LISTENER, TARGET_GROUP))
    for service in of_type(resources, SERVICE):
        props = plain(service.props)
        config = props.get("deploymentConfiguration") or {}
        strategy = config.get("strategy")
        if strategy not in BLUE_GREEN or not is_set(props.get("loadBalancers")):
            continue
        if contains_unknown(props.get("loadBalancers")):
            # A first preview: the ARNs are not known yet, but the engine says which resources feed them.
            messages = _blue_green_by_dependencies(service)
        else:
            messages = _blue_green_service(props, config, strategy, rules, listeners, groups)
        for message in [*_blue_green_settings(config, strategy), *messages]:
            yield message, service.urn


def _deps(resource, prop, typ):
    return {d.urn: d for d in (resource.property_dependencies or {}).get(prop, []) if d.resource_type == typ}


def _blue_green_by_dependencies(service):
    groups = _deps(service, "loadBalancers", TARGET_GROUP)
    rules = _deps(service, "loadBalancers", LISTENER_RULE)
    if len(groups) < 2:
        yield "The primary and alternate target groups must differ: ECS moves traffic between them."
    if len(rules) < 2:
        yield "The production and test listener rules must differ. Give the test listener its own rule."
    owners = []
    for rule in rules.values():
        if set(groups) - set(_deps(rule, "actions", TARGET_GROUP)):
            yield (
                "Each blue/green listener rule must forward to both the primary and the alternate target "
                "group (ECS shifts their weights). Add both to the rule's forward action."
            )
        owners += list(_deps(rule, "listenerArn", LISTENER).values())
    if len(owners) == 2:
        balancers = [set(_deps(o, "loadBalancerArn", "aws:lb/loadBalancer:LoadBalancer")) for o in owners]
        if balancers[0] != balancers[1]:
            yield "The production and test listener rules must be on listeners of the same load balancer."
        if plain(owners[0].props).get("port") == plain(owners[1].props).get("port"):
            yield (
                "The production and test listeners must listen on different ports. Give the test listener its own port."
            )


def _blue_green_settings(config, strategy):
    bake = known(config.get("bakeTimeInMinutes"), "deploymentConfiguration.bakeTimeInMinutes")
    if bake is not None and not 0 <= int(bake) <= 1440:
        yield f"ECS accepts a bake time of 0 to 1440 minutes; got {bake}. Set bakeTimeInMinutes within it."
    canary = config.get("canaryConfiguration") or {}
    if strategy == "CANARY" and not 0.1 <= float(known(canary.get("canaryPercent"), "canaryPercent") or 0) <= 100:
        yield "CANARY needs canaryPercent from 0.1 to 100. Set canaryConfiguration.canaryPercent."
    linear = config.get("linearConfiguration") or {}
    if strategy == "LINEAR" and not 3 <= float(known(linear.get("stepPercent"), "stepPercent") or 0) <= 100:
        yield "LINEAR needs stepPercent from 3 to 100. Set linearConfiguration.stepPercent."


def _blue_green_service(props, config, strategy, rules, listeners, groups):
    for lb in as_list(props.get("loadBalancers")):
        advanced = lb.get("advancedConfiguration") if isinstance(lb, dict) else None
        needed = ("alternateTargetGroupArn", "productionListenerRule", "roleArn")
        if not isinstance(advanced, dict) or not all(is_set(advanced.get(k)) for k in needed):
            yield (
                f"{strategy} deployments need advancedConfiguration with alternateTargetGroupArn, "
                "productionListenerRule and roleArn on the load balancer. Set them."
            )
            continue
        primary = known(lb.get("targetGroupArn"), "loadBalancers.targetGroupArn")
        alternate = known(advanced.get("alternateTargetGroupArn"), "alternateTargetGroupArn")
        production = known(advanced.get("productionListenerRule"), "productionListenerRule")
        test = known(advanced.get("testListenerRule"), "testListenerRule")
        if primary == alternate:
            yield "The primary and alternate target groups must differ: ECS moves traffic between them."
        if test and test == production:
            yield "The production and test listener rules must differ. Give the test listener its own rule."
        wired = [r for r in dict.fromkeys((production, test)) if r]
        if not all(r in rules for r in wired):
            continue  # rules managed outside the stack: nothing here to compare with
        for arn in wired:
            forwarded = set(_forwarded(rules[arn]))
            if {primary, alternate} - forwarded:
                yield (
                    "Each blue/green listener rule must forward to both the primary and the alternate target "
                    "group (ECS shifts their weights). Add both to the rule's forward action."
                )
        owners = [listeners.get(rules[arn].get("listenerArn")) for arn in wired]
        if all(owners):
            if len({o.get("loadBalancerArn") for o in owners}) > 1:
                yield "The production and test listener rules must be on listeners of the same load balancer."
            if len(owners) == 2 and owners[0].get("port") == owners[1].get("port"):
                yield (
                    "The production and test listeners must listen on different ports. Give the test "
                    "listener its own port."
                )


POLICIES = [
    resource_policy(
        "ecs-cluster-container-insights",
        "Checks that ECS clusters have Container Insights.",
        CLUSTER,
        _insights,
        severity=Severity.MEDIUM,
    ),
    resource_policy(
        "ecs-no-privileged-containers",
        "Checks that no container runs privileged, adds host capabilities or maps host devices.",
        TASK_DEFINITION,
        _privileged,
        severity=Severity.CRITICAL,
    ),
    resource_policy(
        "ecs-readonly-root-filesystem",
        "Checks that containers have a read-only root filesystem.",
        TASK_DEFINITION,
        _readonly_root,
    ),
    resource_policy(
        "ecs-no-host-namespaces",
        "Checks that task definitions do not share the host's PID or IPC, nor mount its paths.",
        TASK_DEFINITION,
        _host_namespaces,
    ),
    resource_policy(
        "ecs-awsvpc-network-mode",
        "Checks that task definitions use awsvpc networking.",
        TASK_DEFINITION,
        _awsvpc,
        severity=Severity.MEDIUM,
    ),
    resource_policy(
        "ecs-container-logging",
        "Checks that every container has a log configuration.",
        TASK_DEFINITION,
        _logging,
        severity=Severity.MEDIUM,
    ),
    resource_policy(
        "ecs-non-root-user",
        "Checks that containers run as a non-root user.",
        TASK_DEFINITION,
        _non_root,
        enforcement=ADVISORY,
        severity=Severity.MEDIUM,
    ),
    resource_policy(
        "ecs-no-plaintext-secrets",
        "Checks that containers carry no secrets in plain environment.",
        TASK_DEFINITION,
        _plaintext_secrets,
        severity=Severity.CRITICAL,
    ),
    resource_policy(
        "ecs-service-no-public-ip", "Checks that ECS services assign no public IPs.", SERVICE, _no_public_ip
    ),
    resource_policy(
        "ecs-fargate-platform-version",
        "Checks that Fargate services run platform 1.4.0 or later.",
        SERVICE,
        _platform_version,
        severity=Severity.MEDIUM,
    ),
    stack_policy(
        "ecs-service-rollback",
        "Checks that load-balanced services roll back bad deployments on a circuit breaker and on alarms "
        "that exist in the stack.",
        _rollback,
    ),
    stack_policy(
        "ecs-blue-green-wiring",
        "Checks that ECS blue/green services have distinct target groups, listener rules that forward to "
        "both on one load balancer with distinct ports, and bake and step settings ECS accepts.",
        _blue_green,
    ),
]
