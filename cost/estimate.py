"""A stack's monthly cost: the planned resources, usage assumptions (`cicd:cost`) and the dated price
table (`cost/prices.json`) give one line per priced quantity.

Pure functions over what the engine registers (type, URN, inputs as camelCase properties), so the
same estimate can be made from a plan, a preview's resources or a policy's view of them. A month is
730 hours, as AWS's pricing pages count it. Account-wide free tiers (CodePipeline's 100 minutes, three
dashboards, KMS's 20,000 requests, X-Ray's 100,000 traces) are not subtracted: other stacks of the
account share them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

HOURS = 730
DAYS = 30
PRICES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "prices.json")
BASELINE = "on-demand X86_64 Fargate and a NAT gateway per AZ, everything else the same"
# The properties the estimate reads, by resource type: a stack policy that runs it before they are
# known (a first preview) reports that it could not run rather than estimating from a guess. (The
# subnets of a load balancer or an endpoint are not among them: while unknown, the network's zones
# count, which is what they will be.)
READS: dict[str, tuple[str, ...]] = {
    "aws:ecs/service:Service": ("name", "desiredCount", "capacityProviderStrategies"),
    "aws:appautoscaling/target:Target": ("resourceId", "minCapacity", "scalableDimension"),
    "aws:ecs/taskDefinition:TaskDefinition": ("cpu", "memory", "runtimePlatform"),
    "aws:lb/loadBalancer:LoadBalancer": ("internal",),
    "aws:ec2/vpcEndpoint:VpcEndpoint": ("vpcEndpointType", "serviceName"),
    "aws:ec2/subnet:Subnet": ("availabilityZone",),
    "aws:cloudwatch/metricAlarm:MetricAlarm": ("metricQueries",),
    "aws:cloudwatch/logGroup:LogGroup": ("name", "retentionInDays"),
    "aws:codepipeline/pipeline:Pipeline": ("stages",),
    "aws:codebuild/project:Project": ("name", "environment"),
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": ("policy",),
    "aws:xray/samplingRule:SamplingRule": ("fixedRate",),
    "aws:wafv2/webAcl:WebAcl": ("rules",),
}
# The usage assumed when a stack sets none (`cicd:cost`, validated by config.CostSettings, which takes
# its defaults from here; the policy pack's budget uses them too).
DEFAULTS: dict[str, int] = {
    "requestsPerMonth": 1_000_000,
    "responseKb": 20,
    "logGbPerMonth": 5,
    "natGbPerMonth": 10,
    "buildsPerDay": 5,
    "buildMinutes": 5,
    "imageMb": 200,
    "s3Gb": 1,
    "spotDiscountPercent": 50,
}


class Resource(Protocol):
    urn: str
    type: str
    inputs: Mapping[str, Any]


@dataclass(frozen=True)
class Item:
    component: str
    resource: str
    what: str
    quantity: float
    unit: str
    unit_usd: float
    monthly_usd: float
    source: str

    def as_json(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "resource": self.resource,
            "what": self.what,
            "quantity": round(self.quantity, 4),
            "unit": self.unit,
            "unitUsd": self.unit_usd,
            "monthlyUsd": round(self.monthly_usd, 2),
            "source": self.source,
        }


@dataclass
class Estimate:
    region: str
    compiled: str
    items: list[Item] = field(default_factory=list)
    unpriced: list[str] = field(default_factory=list)
    # What a choice of the stack keeps off the bill (priced as it would be without that choice).
    avoided: list[Item] = field(default_factory=list)
    baseline_usd: float = 0.0

    @property
    def monthly_usd(self) -> float:
        return sum(i.monthly_usd for i in self.items)

    def by_component(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for item in self.items:
            totals[item.component] = totals.get(item.component, 0.0) + item.monthly_usd
        return dict(sorted(totals.items(), key=lambda kv: -kv[1]))

    def as_json(self, assumptions: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "currency": "USD",
            "monthlyUsd": round(self.monthly_usd, 2),
            "region": self.region,
            "pricesCompiled": self.compiled,
            "components": {k: round(v, 2) for k, v in self.by_component().items()},
            "items": [i.as_json() for i in self.items],
            "unpriced": list(self.unpriced),
            "avoided": [i.as_json() for i in self.avoided],
            "baseline": {
                "what": BASELINE,
                "monthlyUsd": round(self.baseline_usd, 2),
                "savingsUsd": round(self.baseline_usd - self.monthly_usd, 2),
            },
            "assumptions": dict(assumptions),
        }


def load_prices(path: str = PRICES) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


class _Pricer:
    def __init__(self, prices: Mapping[str, Any], region: str, estimate: Estimate) -> None:
        self.table, self.region, self.estimate = prices["prices"], region, estimate

    def add(
        self,
        component: str,
        resource: str,
        what: str,
        key: str,
        quantity: float,
        *,
        discount: float = 0.0,
        avoided: bool = False,
    ) -> None:
        """One line: `quantity` of price `key`, less `discount` (a share, for assumed Spot prices). A
        price the table lacks for the region is listed as unpriced, never taken as zero. `avoided`: a
        line the stack does not pay, listed beside the estimate as what its choice saves."""
        if quantity <= 0:
            return
        entry = self.table.get(key)
        found = entry and entry["usd"].get(self.region)
        if not found:
            note = f"{resource}: {what} ({key} has no price for {self.region})"
            if note not in self.estimate.unpriced:
                self.estimate.unpriced.append(note)
            return
        usd, source = found
        if discount:
            usd, source = round(usd * (1 - discount), 8), f"{source} less the assumed Spot discount"
        item = Item(component, resource, what, quantity, entry["unit"], usd, quantity * usd, source)
        (self.estimate.avoided if avoided else self.estimate.items).append(item)


def component_of(urn: str) -> str:
    """The top-level component a resource belongs to (`FargateService`), from its URN's type chain."""
    chain = urn.split("::")[2] if urn.count("::") >= 3 else ""
    first = chain.split("$")[0]
    return first.rsplit(":", 1)[-1] if first.startswith("cicd:") else "stack"


def _name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def _number(value: Any, default: float = 0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def fargate_tasks(service: Mapping[str, Any], count: float | None = None) -> tuple[float, float]:
    """(on-demand tasks, Spot tasks) of a service running `count` tasks (default its desired count): a
    strategy's base goes to its provider first, the rest is shared by weight (as ECS places them)."""
    desired = _number(service.get("desiredCount"), 1.0) if count is None else count
    strategy = service.get("capacityProviderStrategies") or []
    if not strategy:
        return desired, 0.0
    remaining, tasks = desired, {"FARGATE": 0.0, "FARGATE_SPOT": 0.0}
    for entry in strategy:
        base = min(_number(entry.get("base")), remaining)
        tasks[entry.get("capacityProvider", "FARGATE")] = tasks.get(entry.get("capacityProvider", "FARGATE"), 0) + base
        remaining -= base
    weights = {e.get("capacityProvider", "FARGATE"): _number(e.get("weight")) for e in strategy}
    total = sum(weights.values())
    for provider, weight in weights.items():
        if total:
            tasks[provider] = tasks.get(provider, 0.0) + remaining * weight / total
    return tasks.get("FARGATE", 0.0), tasks.get("FARGATE_SPOT", 0.0)


def estimate(
    resources: Iterable[Resource],
    *,
    region: str,
    assumptions: Mapping[str, Any],
    prices: Mapping[str, Any] | None = None,
) -> Estimate:
    """The monthly estimate of `resources` in `region`, and (as `baseline_usd`) of the same stack on
    on-demand X86_64 Fargate with a NAT gateway per availability zone."""
    prices = prices or load_prices()
    resources = list(resources)
    actual = _estimate(resources, region, assumptions, prices, baseline=False)
    actual.baseline_usd = _estimate(resources, region, assumptions, prices, baseline=True).monthly_usd
    return actual


def _estimate(resources, region, a, prices, *, baseline: bool) -> Estimate:
    result = Estimate(region=region, compiled=prices.get("compiled", ""))
    price = _Pricer(prices, region, result)
    by_type: dict[str, list[Resource]] = {}
    for r in resources:
        by_type.setdefault(r.type, []).append(r)

    def each(typ: str) -> list[Resource]:
        return by_type.get(typ, [])

    requests = float(a["requestsPerMonth"])
    # Fargate: every service's tasks at its desired count, around the clock (the program has one task
    # definition; a stack with more is not estimated here and says so).
    tasks = each("aws:ecs/taskDefinition:TaskDefinition")
    # The count the program owns: autoscaling's floor (minCount). ECS and autoscaling own the desired
    # count once the service runs, and a refreshed preview would price whatever load it had then.
    floors = {
        str(t.inputs.get("resourceId")): _number(t.inputs.get("minCapacity"), 1.0)
        for t in each("aws:appautoscaling/target:Target")
        if t.inputs.get("scalableDimension") == "ecs:service:DesiredCount"
    }
    running = 0.0  # tasks at autoscaling's floor, of every service: each deploy starts as many
    for service in each("aws:ecs/service:Service"):
        if len(tasks) != 1:
            result.unpriced.append(f"{_name(service.urn)}: {len(tasks)} task definitions, which one it runs is unknown")
            continue
        vcpu = _number(tasks[0].inputs.get("cpu")) / 1024
        gb = _number(tasks[0].inputs.get("memory")) / 1024
        arch = (tasks[0].inputs.get("runtimePlatform") or {}).get("cpuArchitecture", "X86_64")
        floor = next((n for rid, n in floors.items() if rid.endswith(f"/{service.inputs.get('name')}")), None)
        on_demand, spot = fargate_tasks(service.inputs, floor)
        running += on_demand + spot
        if baseline:
            on_demand, spot, arch = on_demand + spot, 0.0, "X86_64"
        component, name = component_of(service.urn), _name(service.urn)
        share = a["spotDiscountPercent"] / 100
        for kind, count, discount in (("on-demand", on_demand, 0.0), ("Spot", spot, share)):
            off = f" at {a['spotDiscountPercent']}% off (assumed)" if discount else ""
            for dimension, size, unit in (("vcpuHour", vcpu, "vCPU"), ("gbHour", gb, "GB")):
                what = f"{count:g} {kind} {arch} task(s), {unit}{off}"
                price.add(component, name, what, f"fargate.{dimension}.{arch}", count * size * HOURS, discount=discount)
    # Load balancers: hours, and LCUs from the larger of new connections (25/s each) and processed
    # bytes (1 GB/hour each), taking every request as a new connection.
    for lb in each("aws:lb/loadBalancer:LoadBalancer"):
        component, name = component_of(lb.urn), _name(lb.urn)
        price.add(component, name, "load balancer hours", "alb.hour", HOURS)
        per_second = requests / (HOURS * 3600)
        gb_per_hour = requests * a["responseKb"] / 1e6 / HOURS
        lcus = max(per_second / 25, gb_per_hour)
        price.add(component, name, f"{lcus:.4f} LCU on average", "alb.lcuHour", lcus * HOURS)
    # NAT gateways: hours, and the GB they process: the assumed traffic, and the image layers each
    # deploy's new tasks pull from ECR (stored in S3) unless an S3 gateway endpoint carries them.
    networks = _nat_gateways(each)
    s3_gateway = any(
        e.inputs.get("vpcEndpointType") == "Gateway" and str(e.inputs.get("serviceName", "")).endswith(".s3")
        for e in each("aws:ec2/vpcEndpoint:VpcEndpoint")
    )
    pulled_gb = a["buildsPerDay"] * DAYS * running * a["imageMb"] / 1024
    for component, name, count, zones in networks:
        if baseline:
            count = zones
        price.add(component, name, f"{count} NAT gateway(s)", "nat.hour", count * HOURS)
        if count:
            price.add(component, name, "data through NAT", "nat.gb", float(a["natGbPerMonth"]))
            layers = f"image layers ({running:g} task(s) x {a['buildsPerDay'] * DAYS:g} deploys)"
            if s3_gateway:
                what = f"{layers} through the S3 gateway endpoint, not NAT"
                price.add(component, name, what, "nat.gb", pulled_gb, avoided=True)
            else:
                price.add(component, name, f"{layers} through NAT: no S3 gateway endpoint", "nat.gb", pulled_gb)
            price.add(component, name, f"{count} NAT gateway Elastic IP(s)", "ipv4.hour", count * HOURS)
    # An internet-facing load balancer has a public IPv4 address in each of its subnets' zones.
    for lb in each("aws:lb/loadBalancer:LoadBalancer"):
        if lb.inputs.get("internal") is not True:
            count = len(_list(lb.inputs.get("subnets"))) or (networks[0][3] if networks else 0)
            price.add(
                component_of(lb.urn), _name(lb.urn), f"{count} public IPv4 address(es)", "ipv4.hour", count * HOURS
            )
    interface = [e for e in each("aws:ec2/vpcEndpoint:VpcEndpoint") if e.inputs.get("vpcEndpointType") == "Interface"]
    if interface:  # gateway endpoints (S3) are free
        result.unpriced.append("data processed by the interface endpoints (endpoint.gb in the price table)")
    for endpoint in interface:
        # Unknown before the VPC exists: then one per zone of the network.
        zones = len(_list(endpoint.inputs.get("subnetIds"))) or (networks[0][3] if networks else 1)
        service = str(endpoint.inputs.get("serviceName", "")).rsplit(".", 1)[-1]
        price.add(
            component_of(endpoint.urn),
            _name(endpoint.urn),
            f"{service} endpoint in {zones} AZ(s)",
            "endpoint.hour",
            zones * HOURS,
        )
    for key in each("aws:kms/key:Key"):
        price.add(component_of(key.urn), _name(key.urn), "customer managed key", "kms.keyMonth", 1)
    for secret in each("aws:secretsmanager/secret:Secret"):
        price.add(component_of(secret.urn), _name(secret.urn), "secret", "secretsmanager.secretMonth", 1)
    for alarm in each("aws:cloudwatch/metricAlarm:MetricAlarm"):
        queries = _list(alarm.inputs.get("metricQueries"))
        metrics = sum(1 for q in queries if isinstance(q, dict) and q.get("metric")) or 1
        price.add(
            component_of(alarm.urn),
            _name(alarm.urn),
            f"alarm on {metrics} metric(s)",
            "cloudwatch.alarmMetricMonth",
            metrics,
        )
    for dashboard in each("aws:cloudwatch/dashboard:Dashboard"):
        price.add(component_of(dashboard.urn), _name(dashboard.urn), "dashboard", "cloudwatch.dashboardMonth", 1)
    # Logs: the service's log group takes the assumed volume, kept for its retention.
    services_logs = [
        g for g in each("aws:cloudwatch/logGroup:LogGroup") if str(g.inputs.get("name", "")).startswith("/ecs/")
    ]
    for group in services_logs[:1]:
        component, name = component_of(group.urn), _name(group.urn)
        ingested = float(a["logGbPerMonth"])
        price.add(component, name, "log data ingested", "logs.ingestGb", ingested)
        months = _number(group.inputs.get("retentionInDays"), 3653) * 24 / HOURS
        price.add(component, name, f"log data kept {months:.1f} month(s)", "logs.storageGbMonth", ingested * months)
    # The pipeline: each execution runs each CodeBuild action for the assumed minutes.
    executions = a["buildsPerDay"] * DAYS
    projects = {str(p.inputs.get("name")): p for p in each("aws:codebuild/project:Project")}
    for pipeline in each("aws:codepipeline/pipeline:Pipeline"):
        component, name = component_of(pipeline.urn), _name(pipeline.urn)
        every = [act for stage in _list(pipeline.inputs.get("stages")) for act in _list(stage.get("actions"))]
        actions = [act for act in every if act.get("provider") == "CodeBuild"]
        # V2 bills every action but manual approvals, each rounded up to a minute: a source action
        # takes one.
        sources = [act for act in every if act.get("category") == "Source"]
        minutes = executions * (len(actions) * a["buildMinutes"] + len(sources))
        price.add(
            component,
            name,
            f"{executions:g} executions x {len(actions)} build actions and {len(sources)} source action(s)",
            "codepipeline.actionMinute",
            minutes,
        )
        for act in actions:
            project = projects.get(str((act.get("configuration") or {}).get("ProjectName")))
            if project is not None:
                _build_minutes(price, project, executions * a["buildMinutes"], f"{executions:g} runs")
    # Jobs beside the pipeline: the drift check daily, a pull-request preview per change.
    for project in projects.values():
        role = str(project.inputs.get("name", "")).rsplit("-", 1)[-1]
        if role == "drift":
            _build_minutes(price, project, DAYS * a["buildMinutes"], "daily drift check")
        elif role == "preview":
            _build_minutes(price, project, executions * a["buildMinutes"], "a preview per change")
    for repository in each("aws:ecr/repository:Repository"):
        kept = _images_kept(each("aws:ecr/lifecyclePolicy:LifecyclePolicy"))
        gb = kept * a["imageMb"] / 1024
        price.add(component_of(repository.urn), _name(repository.urn), f"{kept} images kept", "ecr.storageGbMonth", gb)
    for rule in each("aws:xray/samplingRule:SamplingRule"):
        # The service samples each request itself at the rule's fixed rate (app/service/tracing.py); the
        # rule's reservoir applies to SDKs that ask X-Ray for sampling decisions, which it does not.
        rate = _number(rule.inputs.get("fixedRate"))
        price.add(
            component_of(rule.urn),
            _name(rule.urn),
            f"{rate:g} of requests traced",
            "xray.tracesMillion",
            requests * rate / 1e6,
        )
    for acl in each("aws:wafv2/webAcl:WebAcl"):
        component, name = component_of(acl.urn), _name(acl.urn)
        price.add(component, name, "web ACL", "waf.webAclMonth", 1)
        price.add(component, name, "rules", "waf.ruleMonth", len(acl.inputs.get("rules") or []))
        price.add(component, name, "requests inspected", "waf.requestsMillion", requests / 1e6)
    if each("aws:s3/bucket:Bucket"):
        buckets = len(each("aws:s3/bucket:Bucket"))
        price.add("stack", "buckets", f"objects stored in its {buckets} buckets", "s3.storageGbMonth", float(a["s3Gb"]))
    # Log metric filters publish custom metrics.
    for metric_filter in each("aws:cloudwatch/logMetricFilter:LogMetricFilter"):
        price.add(
            component_of(metric_filter.urn), _name(metric_filter.urn), "custom metric", "cloudwatch.metricMonth", 1
        )
    result.unpriced += [note for typ, note in NOT_ESTIMATED if each(typ)]
    return result


# What the stack is billed for that the estimate does not model (no usage to price it by yet).
NOT_ESTIMATED = (
    ("aws:ecs/cluster:Cluster", "Container Insights metrics of the cluster (per metric-month)"),
    ("aws:ec2/flowLog:FlowLog", "VPC flow log data (ingested and stored in CloudWatch Logs)"),
    ("aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration", "WAF log data (CloudWatch Logs)"),
    (
        "aws:kms/key:Key",
        "KMS requests ($0.03 per 10,000 after 20,000 free a month per account), and $1 a month per key for "
        "each of its first two yearly rotations",
    ),
    ("aws:lb/loadBalancer:LoadBalancer", "data transfer out to the internet (the responses)"),
    ("aws:codebuild/project:Project", "CodeBuild and pipeline logs (CloudWatch Logs)"),
)


def _nat_gateways(each) -> list[tuple[str, str, int, int]]:
    """(component, resource, NAT gateways, availability zones) of the stack's network. A deployment
    registers awsx's NatGateway and Subnet resources, which the engine sends; the offline plan's mocks
    create none, so there the VPC component's own inputs (strategy and zone count) tell."""
    nats, subnets, vpcs = (
        each("aws:ec2/natGateway:NatGateway"),
        each("aws:ec2/subnet:Subnet"),
        each("awsx:ec2:Vpc"),
    )
    zones = len(
        {s.inputs.get("availabilityZone") for s in subnets if isinstance(s.inputs.get("availabilityZone"), str)}
    )
    if nats:
        first = nats[0]
        return [(component_of(first.urn), "nat-gateways", len(nats), max(zones, len(nats)))]
    found = []
    for vpc in vpcs:
        declared = vpc.inputs.get("natGateways")
        strategy = declared.get("strategy") if isinstance(declared, dict) else None
        if strategy is None:
            continue  # a VPC's outputs, not its inputs: its NAT gateways are resources of their own
        zones = zones or int(_number(vpc.inputs.get("numberOfAvailabilityZones"), 3))
        count = {"None": 0, "Single": 1, "OnePerAz": zones}.get(strategy, zones)
        found.append((component_of(vpc.urn), _name(vpc.urn), count, zones))
    if not found and subnets:  # no NAT gateway at all: the baseline still has one per zone
        found.append((component_of(subnets[0].urn), "nat-gateways", 0, zones))
    return found


def _list(value: Any) -> list:
    """A list property, or [] for a missing or not yet known one (an unknown is a sentinel string)."""
    return value if isinstance(value, list) else []


def _images_kept(policies: list[Resource]) -> int:
    """How many images the repository's lifecycle keeps (its "any" rule's count; 30 without one).
    Released images a downstream stack runs are kept beyond it and not counted."""
    for policy in policies:
        try:
            rules = json.loads(policy.inputs.get("policy") or "{}").get("rules", [])
        except (TypeError, ValueError):
            continue
        for rule in rules:
            selection = rule.get("selection", {})
            if selection.get("tagStatus") == "any" and selection.get("countType") == "imageCountMoreThan":
                return int(selection["countNumber"])
    return 30


def _build_minutes(price: _Pricer, project: Resource, minutes: float, why: str) -> None:
    env = project.inputs.get("environment") or {}
    key = f"codebuild.minute.{env.get('computeType')}.{env.get('type')}"
    price.add(component_of(project.urn), _name(project.urn), why, key, minutes)


def money(usd: float) -> str:
    return f"${usd:,.2f}"


def render(cost: Mapping[str, Any]) -> list[str]:
    """The plan's text for a `cost` document (as_json)."""
    out = [
        f"Monthly estimate: {money(cost['monthlyUsd'])} in {cost['region']} (prices of {cost['pricesCompiled']}, "
        "cost/prices.json; usage assumed as cicd:cost says)"
    ]
    for component, usd in cost["components"].items():
        out.append(f"  {component:<18} {money(usd):>10}")
        for item in (i for i in cost["items"] if i["component"] == component):
            out.append(
                f"      {item['resource']:<34} {item['quantity']:>12,.2f} {item['unit']} x ${item['unitUsd']:g}"
                f" = {money(item['monthlyUsd'])}  ({item['what']})"
            )
    for note in cost["unpriced"]:
        out.append(f"  not in the estimate: {note}")
    for item in cost.get("avoided", []):
        out.append(
            f"  not billed: {item['quantity']:,.2f} {item['unit']} of {item['what']} ({item['resource']}): "
            f"{money(item['monthlyUsd'])} a month saved"
        )
    budget = cost.get("budget")
    if budget:
        out.append(f"Budget (policy monthly-budget): {money(budget['maxMonthlyUsd'])} a month")
    base = cost["baseline"]
    out.append(
        f"Against {base['what']}: {money(base['monthlyUsd'])}; "
        f"this stack's choices save {money(base['savingsUsd'])} a month"
        + (f" ({base['savingsUsd'] / base['monthlyUsd']:.0%})" if base["monthlyUsd"] else "")
    )
    return out
