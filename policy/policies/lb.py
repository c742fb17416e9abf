"""Load balancing: header hygiene, HTTPS with modern TLS, deletion protection, access logs, health checks."""

from pulumi_policy import Severity

from ._util import as_list, is_set, known, resource_policy

LOAD_BALANCER = ("aws:lb/loadBalancer:LoadBalancer", "aws:alb/loadBalancer:LoadBalancer")
LISTENER = ("aws:lb/listener:Listener", "aws:alb/listener:Listener")
TARGET_GROUP = ("aws:lb/targetGroup:TargetGroup", "aws:alb/targetGroup:TargetGroup")
# ALB policies that allow only TLS 1.2 and 1.3.
TLS12_POLICIES = {
    "ELBSecurityPolicy-TLS13-1-2-2021-06",
    "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
    "ELBSecurityPolicy-TLS13-1-2-Ext1-2021-06",
    "ELBSecurityPolicy-TLS13-1-2-Ext2-2021-06",
    "ELBSecurityPolicy-TLS13-1-3-2021-06",
    "ELBSecurityPolicy-TLS13-1-2-FIPS-2023-04",
    "ELBSecurityPolicy-TLS13-1-2-Res-FIPS-2023-04",
    "ELBSecurityPolicy-TLS13-1-3-FIPS-2023-04",
    "ELBSecurityPolicy-TLS13-1-2-PQ-2025-09",
    "ELBSecurityPolicy-TLS13-1-3-PQ-2025-09",
    "ELBSecurityPolicy-TLS-1-2-2017-01",
    "ELBSecurityPolicy-TLS-1-2-Ext-2018-06",
    "ELBSecurityPolicy-FS-1-2-2019-08",
    "ELBSecurityPolicy-FS-1-2-Res-2019-08",
    "ELBSecurityPolicy-FS-1-2-Res-2020-10",
}


def _is_alb(props):
    return (props.get("loadBalancerType") or "application") == "application"


def _drop_invalid_headers(props, _args):
    if _is_alb(props) and known(props.get("dropInvalidHeaderFields"), "dropInvalidHeaderFields") is not True:
        yield "ALBs must drop invalid HTTP header fields. Set dropInvalidHeaderFields to true."


def _desync(props, _args):
    if _is_alb(props) and known(props.get("desyncMitigationMode") or "defensive", "desyncMitigationMode") == "monitor":
        yield "ALBs must mitigate HTTP desync attacks. Set desyncMitigationMode to defensive or strictest."


def _http_redirects(props, _args):
    if known(props.get("protocol") or "HTTP", "protocol") != "HTTP":
        return
    for action in as_list(known(props.get("defaultActions"), "defaultActions")):
        redirect = action.get("redirect") or {}
        if action.get("type") != "redirect" or redirect.get("protocol") != "HTTPS":
            yield "HTTP listeners must only redirect to HTTPS. Use a redirect action to protocol HTTPS on port 443."
            return


def _tls_policy(props, _args):
    if known(props.get("protocol"), "protocol") != "HTTPS":
        return
    # Without sslPolicy AWS applies ELBSecurityPolicy-2016-08, which still allows TLS 1.0.
    policy = known(props.get("sslPolicy") or "ELBSecurityPolicy-2016-08", "sslPolicy")
    if policy not in TLS12_POLICIES:
        yield f"HTTPS listeners must use a TLS 1.2+ policy; got {policy}. Use ELBSecurityPolicy-TLS13-1-2-2021-06."


def _deletion_protection(props, _args):
    if known(props.get("enableDeletionProtection"), "enableDeletionProtection") is not True:
        yield "Load balancers must have deletion protection. Set enableDeletionProtection to true."


def _access_logs(props, _args):
    logs = known(props.get("accessLogs") or {}, "accessLogs")
    if logs.get("enabled") is not True or not is_set(logs.get("bucket")):
        yield "Load balancers must write access logs. Set accessLogs to {enabled: true, bucket: <log bucket>}."


def _health_check(props, _args):
    if known(props.get("targetType") or "instance", "targetType") == "lambda":
        return
    check = known(props.get("healthCheck") or {}, "healthCheck")
    protocol = check.get("protocol") or "HTTP"
    if check.get("enabled") is False:
        yield "Target groups must have an enabled health check. Set healthCheck.enabled to true."
    elif protocol in ("HTTP", "HTTPS") and not is_set(check.get("path")):
        yield "Target groups must check health on a path. Set healthCheck.path (for example /health)."


POLICIES = [
    resource_policy(
        "alb-drop-invalid-headers",
        "Checks that ALBs drop invalid header fields.",
        LOAD_BALANCER,
        _drop_invalid_headers,
        severity=Severity.MEDIUM,
    ),
    resource_policy(
        "alb-desync-mitigation",
        "Checks that ALBs do not only monitor HTTP desync.",
        LOAD_BALANCER,
        _desync,
        severity=Severity.MEDIUM,
    ),
    resource_policy(
        "lb-http-redirects-to-https", "Checks that HTTP listeners only redirect to HTTPS.", LISTENER, _http_redirects
    ),
    resource_policy(
        "lb-tls-policy", "Checks that HTTPS listeners use a TLS 1.2+ security policy.", LISTENER, _tls_policy
    ),
    resource_policy(
        "lb-deletion-protection",
        "Checks that load balancers have deletion protection.",
        LOAD_BALANCER,
        _deletion_protection,
        severity=Severity.MEDIUM,
    ),
    resource_policy(
        "lb-access-logs",
        "Checks that load balancers write access logs.",
        LOAD_BALANCER,
        _access_logs,
        severity=Severity.MEDIUM,
    ),
    resource_policy(
        "lb-target-group-health-check",
        "Checks that target groups have an enabled health check on a path.",
        TARGET_GROUP,
        _health_check,
        severity=Severity.MEDIUM,
    ),
]
