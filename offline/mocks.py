"""Pulumi mocks that return what AWS would: ARNs in each service's format, URLs and IDs.

`RecordingMonitor` keeps every registration as the engine would see it (type, parent, options and the
serialized inputs), so the plan can show the tree and hand the same properties to the policy pack.
With ``first_preview=True`` a resource's computed outputs are left unknown, as in a first
`pulumi preview`, where nothing exists yet.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import struct_pb2
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"


def route_table_of(subnet: str) -> str:
    """The mock route table a subnet is associated with (the offline plan's getRouteTables answer)."""
    return f"rtb-{_hex(subnet, 17)}"


@dataclass
class Registration:
    """One resource as the engine sees it when the program registers it."""

    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    protect: bool
    retain_on_delete: bool
    ignore_changes: list[str]
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    inputs: dict[str, Any]
    object: Any  # the google.protobuf Struct sent to the engine (and to analyzers)
    custom_timeouts: dict[str, str] = field(default_factory=dict)
    # What the engine hands stack policies: the inputs (with secrets and unknowns as marked) and the
    # outputs the provider computes; at a first preview only the inputs.
    output_object: Any = None
    outputs: dict[str, Any] = field(default_factory=dict)
    resource_id: str = ""
    # The resource's former identities (`aliases` option): each a URN, or a spec the engine resolves
    # ({"parentUrn", "noParent", "name", "type"}, empty where unchanged).
    aliases: list[dict[str, Any]] = field(default_factory=list)


def _hex(seed: str, length: int) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:length]


def _uuid(seed: str) -> str:
    h = _hex(seed, 32)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _physical_name(inputs: dict, name: str, key: str = "name", max_len: int = 64) -> str:
    value = inputs.get(key)
    if isinstance(value, str) and value:
        return value
    # Pulumi's auto-naming: the logical name and seven random characters.
    return f"{name}-{_hex(name, 7)}"[:max_len]


class PlatformMocks(pulumi_mocks.Mocks):
    """Realistic outputs for every resource type and invoke the program uses."""

    def __init__(
        self,
        *,
        first_preview: bool = False,
        account_id: str = ACCOUNT_ID,
        region: str = REGION,
        parameters: dict[str, str] | None = None,
    ):
        self.first_preview = first_preview
        # SSM parameters that exist (release records); none by default, as before a first release.
        self.parameters = dict(parameters or {})
        self.account_id = account_id
        self.region = region

    @property
    def partition(self) -> str:
        return "aws-cn" if self.region.startswith("cn-") else "aws"

    @property
    def dns_suffix(self) -> str:
        return "amazonaws.com.cn" if self.region.startswith("cn-") else "amazonaws.com"

    def arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        where = self.region if region else ""
        owner = self.account_id if account else ""
        return f"arn:{self.partition}:{service}:{where}:{owner}:{resource}"

    # -- invokes -----------------------------------------------------------------------------------

    def call(self, args: pulumi_mocks.MockCallArgs):
        token = args.token
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": self.account_id,
                "arn": self.arn("iam", "user/deployer", region=False),
                "id": self.account_id,
                "userId": "AIDAEXAMPLEUSERID",
            }
        if token == "aws:index/getPartition:getPartition":
            if self.region.startswith("cn-"):
                return {
                    "partition": "aws-cn",
                    "dnsSuffix": "amazonaws.com.cn",
                    "id": "aws-cn",
                    "reverseDnsPrefix": "cn.com.amazonaws",
                }
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws", "reverseDnsPrefix": "com.amazonaws"}
        if token == "aws:index/getRegion:getRegion":
            return {
                "name": self.region,
                "region": self.region,
                "id": self.region,
                "endpoint": f"ec2.{self.region}.{self.dns_suffix}",
            }
        if token == "aws:ecr/getAuthorizationToken:getAuthorizationToken":
            return {
                "authorizationToken": "bW9jazptb2Nr",
                "userName": "AWS",
                "password": "mock-ecr-password",
                "proxyEndpoint": f"https://{self.account_id}.dkr.ecr.{self.region}.{self.dns_suffix}",
                "expiresAt": "2030-01-01T00:00:00Z",
                "id": self.region,
            }
        if token == "aws:ssm/getParametersByPath:getParametersByPath":
            path = args.args.get("path") or "/"
            found = {k: v for k, v in self.parameters.items() if k.rsplit("/", 1)[0] + "/" == path}
            return {
                "arns": [self.arn("ssm", f"parameter{k}") for k in found],
                "names": list(found),
                "types": ["String"] * len(found),
                "values": list(found.values()),
                "insecureValues": list(found.values()),
                "path": path,
                "id": path,
            }
        if token == "aws:ec2/getRouteTables:getRouteTables":
            # The route tables of the subnets the filter names: one each, named after the subnet.
            subnets = [v for f in args.args.get("filters") or [] for v in f.get("values") or []]
            vpc = args.args.get("vpcId") or "vpc"
            return {"ids": [route_table_of(s) for s in subnets] or [f"rtb-{_hex(vpc, 17)}"], "id": self.region}
        raise NotImplementedError(f"the offline plan has no mock for the invoke {token}")

    # -- resources ---------------------------------------------------------------------------------

    def new_resource(self, args: pulumi_mocks.MockResourceArgs):
        inputs = dict(args.inputs)
        seed = f"{args.typ}::{args.name}"
        # awsx components are built by their own provider: their outputs are resources and IDs, not
        # an echo of their inputs (which have other types).
        echoed = {} if args.typ.startswith("awsx:") else inputs
        if self.first_preview:
            # Nothing exists yet: only what the program set is known.
            return "", echoed
        resource_id, computed = self._computed(args.typ, args.name, inputs, seed)
        return resource_id, {**echoed, **computed}

    def _computed(self, typ: str, name: str, inputs: dict, seed: str) -> tuple[str, dict]:  # noqa: C901
        a = self.arn
        if typ == "awsx:ec2:Vpc":
            azs = int(inputs.get("numberOfAvailabilityZones") or 2)
            strategy = (inputs.get("natGateways") or {}).get("strategy", "Single")
            subnets = lambda kind: [f"subnet-{_hex(seed + kind + str(i), 17)}" for i in range(azs)]  # noqa: E731
            vpc_id = f"vpc-{_hex(seed, 17)}"
            return vpc_id, {
                "vpcId": vpc_id,
                "publicSubnetIds": subnets("public"),
                "privateSubnetIds": [] if strategy == "None" else subnets("private"),
                "isolatedSubnetIds": subnets("isolated") if strategy == "None" else [],
            }
        if typ == "aws:kms/key:Key":
            key_id = _uuid(seed)
            return key_id, {"keyId": key_id, "arn": a("kms", f"key/{key_id}")}
        if typ == "aws:kms/alias:Alias":
            return inputs["name"], {"arn": a("kms", inputs["name"]), "targetKeyArn": a("kms", "key/" + _uuid(seed))}
        if typ == "aws:ecr/repository:Repository":
            repo = inputs["name"]
            return repo, {
                "arn": a("ecr", f"repository/{repo}"),
                "registryId": self.account_id,
                "repositoryUrl": f"{self.account_id}.dkr.ecr.{self.region}.{self.dns_suffix}/{repo}",
            }
        if typ == "docker:index/image:Image":
            base = str(inputs.get("imageName", "image")).rsplit(":", 1)[0]
            digest = "sha256:" + hashlib.sha256(seed.encode()).hexdigest()
            return f"{base}@{digest}", {
                "repoDigest": f"{base}@{digest}",
                "baseImageName": inputs.get("imageName"),
                "registryServer": base.split("/")[0],
            }
        if typ == "aws:ecs/cluster:Cluster":
            n = _physical_name(inputs, name)
            return a("ecs", f"cluster/{n}"), {"arn": a("ecs", f"cluster/{n}"), "name": n}
        if typ == "aws:ecs/taskDefinition:TaskDefinition":
            fam = inputs["family"]
            return fam, {
                "arn": a("ecs", f"task-definition/{fam}:1"),
                "revision": 1,
                "arnWithoutRevision": a("ecs", f"task-definition/{fam}"),
            }
        if typ == "aws:ecs/service:Service":
            cluster = str(inputs.get("cluster", "")).rsplit("/", 1)[-1]
            arn = a("ecs", f"service/{cluster}/{inputs['name']}")
            return arn, {"arn": arn}
        if typ == "aws:lb/loadBalancer:LoadBalancer":
            n = _physical_name(inputs, name, max_len=32)
            suffix = f"app/{n}/{_hex(seed, 16)}"
            return a("elasticloadbalancing", f"loadbalancer/{suffix}"), {
                "arn": a("elasticloadbalancing", f"loadbalancer/{suffix}"),
                "arnSuffix": suffix,
                "name": n,
                "dnsName": f"{n}-{int(_hex(seed, 8), 16) % 10**10}.{self.region}.elb.{self.dns_suffix}",
                "zoneId": "Z35SXDOTRQ7X7K",
            }
        if typ == "aws:lb/targetGroup:TargetGroup":
            n = _physical_name(inputs, name, max_len=32)
            suffix = f"targetgroup/{n}/{_hex(seed, 16)}"
            return a("elasticloadbalancing", suffix), {
                "arn": a("elasticloadbalancing", suffix),
                "arnSuffix": suffix,
                "name": n,
            }
        if typ == "aws:lb/listener:Listener":
            lb = str(inputs.get("loadBalancerArn", "")).split("loadbalancer/", 1)[-1]
            arn = a("elasticloadbalancing", f"listener/{lb}/{_hex(seed, 16)}")
            return arn, {"arn": arn}
        if typ == "aws:lb/listenerRule:ListenerRule":
            listener = str(inputs.get("listenerArn", "")).split("listener/", 1)[-1]
            arn = a("elasticloadbalancing", f"listener-rule/{listener}/{_hex(seed, 16)}")
            return arn, {"arn": arn}
        if typ == "aws:iam/role:Role":
            n = _physical_name(inputs, name)
            return n, {
                "arn": a("iam", f"role/{n}", region=False),
                "name": n,
                "uniqueId": "AROA" + _hex(seed, 17).upper(),
            }
        if typ == "aws:iam/rolePolicy:RolePolicy":
            return f"{inputs.get('role')}:{_physical_name(inputs, name)}", {"name": _physical_name(inputs, name)}
        if typ == "aws:cloudwatch/logGroup:LogGroup":
            n = _physical_name(inputs, name, max_len=512)
            return n, {"arn": a("logs", f"log-group:{n}"), "name": n}
        if typ == "aws:cloudwatch/metricAlarm:MetricAlarm":
            n = _physical_name(inputs, name)
            return n, {"arn": a("cloudwatch", f"alarm:{n}"), "name": n}
        if typ == "aws:sns/topic:Topic":
            n = _physical_name(inputs, name, max_len=256)
            return a("sns", n), {"arn": a("sns", n), "name": n}
        if typ == "aws:sns/topicSubscription:TopicSubscription":
            arn = f"{inputs.get('topic')}:{_uuid(seed)}"
            return arn, {"arn": arn}
        if typ == "aws:secretsmanager/secret:Secret":
            n = _physical_name(inputs, name)
            arn = a("secretsmanager", f"secret:{n}-{_hex(seed, 6)}")
            return arn, {"arn": arn}
        if typ == "aws:secretsmanager/secretVersion:SecretVersion":
            version = _uuid(seed)
            return f"{inputs.get('secretId')}|{version}", {
                "arn": inputs.get("secretId"),
                "versionId": version,
                "versionStages": ["AWSCURRENT"],
            }
        if typ == "aws:wafv2/webAcl:WebAcl":
            web_acl_id = _uuid(seed)
            arn = a("wafv2", f"regional/webacl/{inputs.get('name')}/{web_acl_id}")
            return web_acl_id, {"arn": arn, "capacity": 925, "lockToken": _uuid(seed + "lock")}
        if typ == "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup":
            sg = f"sg-{_hex(seed, 17)}"
            return sg, {"arn": a("ec2", f"security-group/{sg}"), "name": "default", "ownerId": self.account_id}
        if typ == "aws:ec2/securityGroup:SecurityGroup":
            sg = f"sg-{_hex(seed, 17)}"
            return sg, {"arn": a("ec2", f"security-group/{sg}"), "ownerId": self.account_id}
        if typ in (
            "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
            "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
        ):
            rule = f"sgr-{_hex(seed, 17)}"
            return rule, {"arn": a("ec2", f"security-group-rule/{rule}"), "securityGroupRuleId": rule}
        if typ == "aws:ec2/vpcEndpoint:VpcEndpoint":
            vpce = f"vpce-{_hex(seed, 17)}"
            return vpce, {"arn": a("ec2", f"vpc-endpoint/{vpce}")}
        if typ == "aws:ec2/flowLog:FlowLog":
            fl = f"fl-{_hex(seed, 17)}"
            return fl, {"arn": a("ec2", f"vpc-flow-log/{fl}")}
        if typ == "aws:lambda/function:Function":
            n = _physical_name(inputs, name)
            arn = a("lambda", f"function:{n}")
            return n, {
                "arn": arn,
                "qualifiedArn": f"{arn}:$LATEST",
                "version": "$LATEST",
                "invokeArn": f"arn:aws:apigateway:{self.region}:lambda:path/2015-03-31/functions/{arn}/invocations",
            }
        if typ == "aws:appautoscaling/target:Target":
            return inputs["resourceId"], {"arn": a("application-autoscaling", f"scalable-target/{_hex(seed, 22)}")}
        if typ == "aws:appautoscaling/policy:Policy":
            n = _physical_name(inputs, name)
            return n, {
                "arn": a(
                    "autoscaling", f"scalingPolicy:{_uuid(seed)}:resource/ecs/{inputs.get('resourceId')}:policyName/{n}"
                )
            }
        if typ == "aws:chatbot/slackChannelConfiguration:SlackChannelConfiguration":
            n = inputs.get("configurationName", name)
            arn = f"arn:aws:chatbot::{self.account_id}:chat-configuration/slack-channel/{n}"
            return arn, {"chatConfigurationArn": arn}
        if typ == "aws:s3/bucket:Bucket":
            n = _physical_name(inputs, name, key="bucket", max_len=63)
            return n, {
                "arn": f"arn:aws:s3:::{n}",
                "bucket": n,
                "bucketRegionalDomainName": f"{n}.s3.{self.region}.{self.dns_suffix}",
            }
        if typ == "aws:codecommit/repository:Repository":
            n = inputs["repositoryName"]
            return _uuid(seed), {
                "arn": a("codecommit", n),
                "repositoryId": _uuid(seed),
                "cloneUrlHttp": f"https://git-codecommit.{self.region}.{self.dns_suffix}/v1/repos/{n}",
                "cloneUrlSsh": f"ssh://git-codecommit.{self.region}.{self.dns_suffix}/v1/repos/{n}",
            }
        if typ == "aws:codebuild/project:Project":
            n = _physical_name(inputs, name)
            return a("codebuild", f"project/{n}"), {"arn": a("codebuild", f"project/{n}"), "name": n}
        if typ == "aws:codepipeline/pipeline:Pipeline":
            n = _physical_name(inputs, name)
            return n, {"arn": a("codepipeline", n), "name": n}
        if typ == "aws:cloudwatch/eventRule:EventRule":
            n = _physical_name(inputs, name)
            return n, {"arn": a("events", f"rule/{n}"), "name": n}
        if typ == "aws:codestarnotifications/notificationRule:NotificationRule":
            arn = a("codestar-notifications", f"notificationrule/{_hex(seed, 40)}")
            return arn, {"arn": arn}
        if typ == "aws:cloudwatch/dashboard:Dashboard":
            n = inputs["dashboardName"]
            return n, {"dashboardArn": a("cloudwatch", f"dashboard/{n}", region=False)}
        if typ == "aws:xray/samplingRule:SamplingRule":
            n = inputs["ruleName"]
            return n, {"arn": a("xray", f"sampling-rule/{n}")}
        if typ == "aws:xray/group:Group":
            arn = a("xray", f"group/{inputs['groupName']}/{_hex(seed, 26).upper()}")
            return arn, {"arn": arn}
        if typ == "aws:codecommit/approvalRuleTemplate:ApprovalRuleTemplate":
            return inputs["name"], {"approvalRuleTemplateId": _uuid(seed), "ruleContentSha256": _hex(seed, 64)}
        if typ == "aws:cloudwatch/logMetricFilter:LogMetricFilter":
            return inputs["name"], {}
        if typ == "aws:cloudwatch/eventTarget:EventTarget":
            return f"{inputs.get('rule')}-{_hex(seed, 8)}", {"targetId": _hex(seed, 20)}
        # Any other type: an ID and an ARN in the service's usual shape.
        service = typ.split(":")[1].split("/")[0]
        resource_id = _physical_name(inputs, name)
        return resource_id, {"arn": a(service, resource_id)}


def _with_outputs(inputs: struct_pb2.Struct, state: dict[str, Any]) -> struct_pb2.Struct:
    """The inputs, plus each output the program did not set (an unknown stays the engine's sentinel)."""
    merged = struct_pb2.Struct()
    merged.CopyFrom(inputs)
    for key, value in state.items():
        if key not in merged.fields and _plain(value):
            merged.update({key: value})
    return merged


def _plain(value: Any) -> bool:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return True
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def _alias(alias: Any) -> dict[str, Any]:
    if alias.WhichOneof("alias") == "urn":
        return {"urn": alias.urn}
    spec = alias.spec
    return {"parentUrn": spec.parentUrn, "noParent": spec.noParent, "name": spec.name, "type": spec.type}


class DuplicateResourceError(Exception):
    """Two registrations with one URN, which the engine rejects."""


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A mock engine that records each registration with its parent, options and wire properties."""

    def __init__(self, mocks: PlatformMocks):
        super().__init__(mocks)
        self.registrations: dict[str, Registration] = {}
        self._seen: set[str] = set()
        self._seen_lock = threading.Lock()

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        """The URN the engine gives: the whole type chain of the parents, the root stack left out
        (Pulumi's mock monitor keeps only the parent's own type, which hides a component moved deeper)."""
        if parent:
            chain = parent.split("::")[2]
            if chain != "pulumi:pulumi:Stack":
                type_ = f"{chain}${type_}"
        return f"urn:pulumi:{pulumi_mocks.get_stack()}::{pulumi_mocks.get_project()}::{type_}::{name}"

    def RegisterResource(self, request):
        if request.type != "pulumi:pulumi:Stack":
            urn = self.make_urn(request.parent, request.type, request.name)
            with self._seen_lock:  # registrations arrive from several threads at once
                duplicate = urn in self._seen
                self._seen.add(urn)
            if duplicate:
                # The engine refuses a second resource with the same URN (type and name under one
                # parent); the mocks alone would silently replace the first.
                raise DuplicateResourceError(
                    f"Duplicate resource URN '{urn}': two resources of type {request.type} are named "
                    f"{request.name!r}; give each a unique name"
                )
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        registered = self.resources[response.urn]
        self.registrations[response.urn] = Registration(
            urn=response.urn,
            type=request.type,
            name=request.name,
            parent=request.parent,
            custom=request.custom,
            protect=request.protect,
            retain_on_delete=request.retainOnDelete,
            ignore_changes=list(request.ignoreChanges),
            dependencies=list(request.dependencies),
            property_dependencies={k: list(v.urns) for k, v in request.propertyDependencies.items()},
            inputs=rpc.deserialize_properties(request.object, keep_unknowns=True),
            object=request.object,
            custom_timeouts={
                k: v
                for k, v in (
                    ("create", request.customTimeouts.create),
                    ("update", request.customTimeouts.update),
                    ("delete", request.customTimeouts.delete),
                )
                if v
            },
            outputs=dict(registered.state),
            output_object=_with_outputs(request.object, self._planned_state(request, registered.state)),
            resource_id=registered.id,
            aliases=[_alias(a) for a in request.aliases],
        )
        return response

    def _planned_state(self, request, state: dict[str, Any]) -> dict[str, Any]:
        """The state the engine plans for a resource: at a first preview, what the provider computes
        (ARNs, IDs, URLs) is unknown, so a stack policy that reads it cannot run rather than see None."""
        mocks = self.mocks
        if not (isinstance(mocks, PlatformMocks) and mocks.first_preview) or request.type.startswith("awsx:"):
            return state
        inputs = rpc.deserialize_properties(request.object)
        _, computed = mocks._computed(request.type, request.name, inputs, f"{request.type}::{request.name}")
        return {**state, **{key: rpc.UNKNOWN for key in computed if key not in state}}
