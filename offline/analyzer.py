"""Serve the policy pack exactly as the Pulumi CLI does, and call it over the analyzer protocol.

The CLI starts `python -u -m pulumi.policy <engine address> <pack dir>`, reads the port the pack
prints, then calls GetAnalyzerInfo, Configure, Analyze for each resource and AnalyzeStack once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc, engine_pb2_grpc

LEVELS = {
    analyzer_pb2.ADVISORY: "advisory",
    analyzer_pb2.MANDATORY: "mandatory",
    analyzer_pb2.REMEDIATE: "remediate",
    analyzer_pb2.DISABLED: "disabled",
}
LEVEL_VALUES = {name: value for value, name in LEVELS.items()}
SEVERITIES = {
    analyzer_pb2.POLICY_SEVERITY_LOW: "low",
    analyzer_pb2.POLICY_SEVERITY_MEDIUM: "medium",
    analyzer_pb2.POLICY_SEVERITY_HIGH: "high",
    analyzer_pb2.POLICY_SEVERITY_CRITICAL: "critical",
    analyzer_pb2.POLICY_SEVERITY_UNSPECIFIED: "",
}
PREVIEW_PREFIX = "can't run policy"


@dataclass
class Finding:
    policy: str
    level: str
    severity: str
    message: str
    urn: str

    @property
    def could_not_run(self) -> bool:
        return self.message.startswith(PREVIEW_PREFIX)


@dataclass
class AnalyzerResult:
    pack: str
    version: str
    policies: list[dict]
    findings: list[Finding] = field(default_factory=list)

    @property
    def violations(self) -> list[Finding]:
        return [f for f in self.findings if not f.could_not_run]

    @property
    def mandatory(self) -> list[Finding]:
        return [f for f in self.violations if f.level == "mandatory"]

    @property
    def not_run(self) -> list[Finding]:
        return [f for f in self.findings if f.could_not_run]


class _Engine(engine_pb2_grpc.EngineServicer):
    """The engine's log endpoint, so anything the pack logs is kept rather than lost."""

    def __init__(self) -> None:
        self.logs: list[str] = []

    def Log(self, request, _context):
        self.logs.append(request.message)
        return empty_pb2.Empty()

    def GetRootResource(self, request, _context):
        return engine_pb2_grpc.engine__pb2.GetRootResourceResponse()

    def SetRootResource(self, request, _context):
        return engine_pb2_grpc.engine__pb2.SetRootResourceResponse()


class PolicyConfigError(Exception):
    """A `--policy-pack-config` file the CLI would refuse; the message names the file and the policy."""


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "number": (int, float),
    "integer": (int,),
    "string": (str,),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


def schema_errors(where: str, value: Any, schema: Mapping[str, Any]) -> list[str]:
    """What is wrong with `value` under the JSON schema subset policy configs use (type, minimum,
    maximum, enum, items), one line each naming `where` (the CLI checks a pack's config against each
    policy's schema before anything runs)."""
    kind = schema.get("type")
    if kind in _JSON_TYPES:
        types = _JSON_TYPES[kind]
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            return [
                f"{where} must be of type {kind}; got {value!r} ({'null' if value is None else type(value).__name__})"
            ]
    errors = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where} must be one of {', '.join(map(json.dumps, schema['enum']))}; got {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{where} must be at least {schema['minimum']:g}; got {value:g}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{where} must be at most {schema['maximum']:g}; got {value:g}")
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for i, item in enumerate(value):
            errors += schema_errors(f"{where}[{i}]", item, schema["items"])
    return errors


def load_policy_config(
    path: str | None,
    policies: Iterable[str] | Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A `--policy-pack-config` file: {policy: level} or {policy: {enforcementLevel?, ...properties}}.

    With `policies` (the pack's names), a policy the pack does not have is an error too; given as
    {name: config schema properties}, each property is checked against its schema, and a property
    the policy does not have is an error (a typo would be ignored, and a budget not applied). All of
    a file's errors are reported at once, one line each.
    """
    if not path:
        return {}
    name = os.path.relpath(path)
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except OSError as err:
        raise PolicyConfigError(f"{name}: cannot read it: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise PolicyConfigError(f"{name}:{err.lineno}:{err.colno}: not valid JSON: {err.msg}") from None
    if not isinstance(config, dict):
        raise PolicyConfigError(f"{name}: must be a JSON object of policy names")
    known = set(policies) if policies is not None else None
    allowed = ", ".join(LEVEL_VALUES)
    for policy, value in config.items():
        if known is not None and policy not in known and policy != "all":
            close = [p for p in sorted(known) if p.split("-")[0] == policy.split("-")[0]][:3]
            hint = f" (the pack has {', '.join(close)})" if close else ""
            raise PolicyConfigError(f"{name}: {policy} is not a policy of the pack{hint}")
        level = value if isinstance(value, str) else value.get("enforcementLevel") if isinstance(value, dict) else None
        if not isinstance(value, (str, dict)):
            raise PolicyConfigError(f"{name}: {policy} must be a level ({allowed}) or an object; got {value!r}")
        if level is not None and level not in LEVEL_VALUES:
            raise PolicyConfigError(f"{name}: {policy} has enforcement level {level!r}; allowed: {allowed}")
        if policy == "all" and isinstance(value, dict) and set(value) - {"enforcementLevel"}:
            raise PolicyConfigError(f"{name}: all sets only an enforcementLevel; got {', '.join(sorted(value))}")
    if isinstance(policies, Mapping):
        errors = []
        for policy, value in config.items():
            if not isinstance(value, dict) or policy == "all":
                continue
            properties = policies.get(policy) or {}
            for key, given in value.items():
                if key == "enforcementLevel":
                    continue
                if key not in properties:
                    known = ", ".join(sorted(properties)) or "none"
                    errors.append(f"{name}: {policy}.{key} is not a property of the policy (it has: {known})")
                    continue
                errors += [f"{name}: {e}" for e in schema_errors(f"{policy}.{key}", given, properties[key])]
        if errors:
            raise PolicyConfigError("\n".join(errors))
    return config


class PolicyServer:
    """The policy pack as a running analyzer plugin; use as a context manager."""

    def __init__(
        self,
        pack_dir: str,
        *,
        project: str = "cicd",
        stack: str = "dev",
        dry_run: bool = True,
        config: dict[str, str] | None = None,
    ) -> None:
        self.pack_dir = pack_dir
        self.env = {
            **os.environ,
            "PULUMI_PROJECT": project,
            "PULUMI_STACK": stack,
            "PULUMI_DRY_RUN": "true" if dry_run else "false",
            "PULUMI_CONFIG": json.dumps(config or {}),
        }
        self.engine = _Engine()

    def __enter__(self) -> PolicyServer:
        self._engine_server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        engine_pb2_grpc.add_EngineServicer_to_server(self.engine, self._engine_server)
        engine_port = self._engine_server.add_insecure_port("127.0.0.1:0")
        self._engine_server.start()
        self.process = subprocess.Popen(
            [sys.executable, "-u", "-m", "pulumi.policy", f"127.0.0.1:{engine_port}", self.pack_dir],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
        )
        line = self.process.stdout.readline().decode().strip()
        if not line.isdigit():
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            errors = [e for e in self.process.stderr.read().decode().splitlines() if e.strip()]
            reason = errors[-1].strip() if errors else line or "it printed no port"
            self.__exit__(None, None, None)
            raise PolicyConfigError(f"the policy pack in {self.pack_dir} did not start: {reason}")
        self.channel = grpc.insecure_channel(
            f"127.0.0.1:{line}", options=[("grpc.max_receive_message_length", 400 * 1024 * 1024)]
        )
        self.stub = analyzer_pb2_grpc.AnalyzerStub(self.channel)
        return self

    def __exit__(self, *exc: Any) -> None:
        if getattr(self, "channel", None):
            self.channel.close()
        if getattr(self, "process", None) and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if getattr(self, "process", None):
            self.process.stdout.close()
            self.process.stderr.close()
        self._engine_server.stop(0)

    # -- the protocol ------------------------------------------------------------------------------

    def info(self) -> analyzer_pb2.AnalyzerInfo:
        return self.stub.GetAnalyzerInfo(empty_pb2.Empty())

    def config_schemas(self) -> dict[str, dict[str, Any]]:
        """Each policy's config schema properties, as the pack declares them ({} for none)."""
        return {
            p.name: json_format.MessageToDict(p.configSchema.properties) if p.HasField("configSchema") else {}
            for p in self.info().policies
        }

    def configure(self, policy_config: dict[str, Any]) -> None:
        request = analyzer_pb2.ConfigureAnalyzerRequest()
        policy_config = self._with_all(policy_config)
        for name, value in policy_config.items():
            config = analyzer_pb2.PolicyConfig()
            if isinstance(value, str):
                config.enforcementLevel = LEVEL_VALUES[value]
            else:
                value = dict(value)
                level = value.pop("enforcementLevel", None)
                # Without a level the CLI keeps the policy's own (its pack's default) and sends that.
                config.enforcementLevel = LEVEL_VALUES[level] if level else self._default_level(name)
                config.properties.update(value)
            request.policyConfig[name].CopyFrom(config)
        self.stub.Configure(request)

    def _with_all(self, policy_config: dict[str, Any]) -> dict[str, Any]:
        """`all` sets the level of every policy of the pack, as the CLI reads it; a policy's own entry
        overrides it (its level, or its properties at the `all` level)."""
        if "all" not in policy_config:
            return policy_config
        given = policy_config["all"]
        level = given if isinstance(given, str) else (given or {}).get("enforcementLevel")
        expanded: dict[str, Any] = {p.name: level for p in self.info().policies} if level else {}
        for name, value in policy_config.items():
            if name == "all":
                continue
            if isinstance(value, dict) and "enforcementLevel" not in value and level:
                value = {**value, "enforcementLevel": level}
            expanded[name] = value
        return expanded

    def _default_level(self, policy: str) -> int:
        levels = {p.name: p.enforcementLevel for p in self.info().policies}
        return levels.get(policy, analyzer_pb2.MANDATORY)

    def analyze(self, resources: Iterable[Any], *, region: str | None = None) -> list[Finding]:
        """Each resource, then the stack. `region`: the default AWS provider's, which the engine sends
        with every aws resource to stack policies (the budget reads its prices by it)."""
        findings = []
        resources = list(resources)
        provider = (
            analyzer_pb2.AnalyzerProviderResource(
                type="pulumi:providers:aws",
                urn="urn:pulumi:stack::cicd::pulumi:providers:aws::default",
                name="default",
                properties=struct({"region": region}),
            )
            if region
            else None
        )
        for r in resources:
            response = self.stub.Analyze(
                analyzer_pb2.AnalyzeRequest(
                    type=r.type, properties=r.object, urn=r.urn, name=r.name, options=_options(r)
                )
            )
            findings += _findings(response, r.urn)
        # Stack policies see each resource with its outputs, as the engine sends them after the plan.
        stack = analyzer_pb2.AnalyzeStackRequest(
            resources=[
                analyzer_pb2.AnalyzerResource(
                    type=r.type,
                    properties=getattr(r, "output_object", None) or r.object,
                    urn=r.urn,
                    name=r.name,
                    options=_options(r),
                    parent=r.parent,
                    dependencies=r.dependencies,
                    propertyDependencies={
                        k: analyzer_pb2.AnalyzerPropertyDependencies(urns=v) for k, v in r.property_dependencies.items()
                    },
                    provider=provider if r.type.startswith("aws:") else None,
                )
                for r in resources
            ]
        )
        findings += _findings(self.stub.AnalyzeStack(stack), "")
        return findings


def _options(r: Any) -> analyzer_pb2.AnalyzerResourceOptions:
    return analyzer_pb2.AnalyzerResourceOptions(protect=r.protect, ignoreChanges=r.ignore_changes, parent=r.parent)


def _findings(response: analyzer_pb2.AnalyzeResponse, default_urn: str) -> list[Finding]:
    return [
        Finding(
            policy=d.policyName,
            level=LEVELS.get(d.enforcementLevel, "advisory"),
            severity=SEVERITIES.get(d.severity, ""),
            message=d.message,
            urn=d.urn or default_urn,
        )
        for d in response.diagnostics
    ]


def struct(properties: dict[str, Any]) -> struct_pb2.Struct:
    """A properties Struct from plain values, for crafted resources in tests."""
    result = struct_pb2.Struct()
    json_format.ParseDict(properties, result)
    return result


def run_pack(
    pack_dir: str,
    resources: Iterable[Any],
    *,
    policy_config: dict[str, Any] | None = None,
    stack: str = "dev",
    config: dict[str, str] | None = None,
    server: PolicyServer | None = None,
    region: str | None = None,
) -> AnalyzerResult:
    """Configure the pack, analyze `resources`; serve the pack for this call unless `server` runs it."""
    if server is None:
        with PolicyServer(pack_dir, stack=stack, config=config) as own:
            return run_pack(pack_dir, resources, policy_config=policy_config, server=own, region=region)
    info = server.info()
    server.configure(policy_config or {})
    try:
        findings = server.analyze(resources, region=region)
    finally:
        server.configure({})
    policies = [
        {
            "name": p.name,
            "description": p.description,
            "level": LEVELS.get(p.enforcementLevel, ""),
            "severity": SEVERITIES.get(p.severity, ""),
            "type": "stack" if p.policy_type == analyzer_pb2.POLICY_TYPE_STACK else "resource",
        }
        for p in info.policies
    ]
    return AnalyzerResult(pack=info.name, version=info.version, policies=policies, findings=findings)


__all__ = ["AnalyzerResult", "Finding", "PolicyConfigError", "PolicyServer", "load_policy_config", "run_pack", "struct"]
