"""Run the Pulumi program of this project under mocks, with a stack's configuration."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import runpy
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from . import stackfile
from .mocks import ACCOUNT_ID, PlatformMocks, RecordingMonitor, Registration

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = "cicd"
# What a `secure:` value becomes offline; config.py accepts it unchecked (config.OFFLINE_SECRET).
SECRET_PLACEHOLDER = "[secret]"


@dataclass
class ProgramResult:
    stack: str
    config: dict[str, str]
    secret_keys: list[str]
    registrations: dict[str, Registration]
    outputs: dict[str, Any]
    first_preview: bool
    # The `secure:` values the plan could not decrypt, so could not check: `cicd:observability.alarmEmail`.
    unchecked_secrets: list[str] = field(default_factory=list)
    # Release records the plan stood in (by SSM parameter name): a promoting stack's upstream release.
    stand_in_releases: dict[str, str] = field(default_factory=dict)
    error: BaseException | None = None
    logs: list[str] = field(default_factory=list)

    def of_type(self, typ: str) -> list[Registration]:
        return [r for r in self.registrations.values() if r.type == typ]


def _replace_secure(value: Any, path: str, secret_paths: list[str]) -> Any:
    """`secure:` values cannot be decrypted offline: a placeholder stands in, never printed."""
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            secret_paths.append(path)
            return SECRET_PLACEHOLDER
        return {k: _replace_secure(v, f"{path}.{k}", secret_paths) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_secure(v, f"{path}[{i}]", secret_paths) for i, v in enumerate(value)]
    return value


def load_stack_config(stack: str, root: str = ROOT) -> tuple[dict[str, str], list[str]]:
    """The config map the CLI would pass to the program: strings, with objects as JSON."""
    document = stackfile.read(os.path.join(root, f"Pulumi.{stack}.yaml"))
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in document.items():
        secret_paths: list[str] = []
        value = _replace_secure(value, key, secret_paths)
        if secret_paths:
            secret_keys.append(key)
        if isinstance(value, (dict, list)):
            config[key] = json.dumps(value)
        elif isinstance(value, bool):
            config[key] = "true" if value else "false"
        elif value is None:
            config[key] = ""
        else:
            config[key] = str(value)
    return config, secret_keys


def preload(root: str = ROOT) -> None:
    """Import the SDKs and the program's modules now (before forking, or to time runs without them)."""
    import importlib

    import pulumi_awsx  # noqa: F401
    import pulumi_docker  # noqa: F401

    # pulumi_aws loads its service modules on first use; load the ones the program uses.
    for module in (
        "appautoscaling",
        "chatbot",
        "cloudwatch",
        "codebuild",
        "codecommit",
        "codepipeline",
        "elb",
        "codestarnotifications",
        "ec2",
        "ecr",
        "ecs",
        "iam",
        "kms",
        "lambda_",
        "lb",
        "s3",
        "secretsmanager",
        "sns",
        "vpc",
        "wafv2",
        "xray",
    ):
        importlib.import_module(f"pulumi_aws.{module}")

    if root not in sys.path:
        sys.path.insert(0, root)
    import components.monitoring  # noqa: F401
    import components.pipeline  # noqa: F401
    import components.service  # noqa: F401
    import config  # noqa: F401

    gc.freeze()  # what was just imported lives as long as the process


def tune_gc() -> None:
    """Fewer, cheaper garbage collections for a short-lived plan: the imported SDKs (hundreds of
    thousands of objects) move out of the collector's sight, and a program run, which allocates
    mostly objects that live until its end, triggers full collections less often. (Measured with
    `make bench`: about a third of a program run was collection.)"""
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def record(
    build: Callable[[], Any],
    *,
    stack: str = "test",
    first_preview: bool = False,
    config: dict[str, str] | None = None,
    secret_keys: list[str] | None = None,
    region: str = "us-east-1",
    parameters: dict[str, str] | None = None,
    account_id: str = ACCOUNT_ID,
) -> tuple[dict[str, Registration], dict[str, Any]]:
    """Run `build` (a program, or a test that builds one component) under recording mocks.

    Returns the registrations and the stack's exported outputs. Each call starts a fresh runtime:
    nothing of a previous run (root stack, config, registrations) leaks into the next.
    """
    # The SDK calls the monitor from the loop's default executor, and Pulumi's mock monitor gives each
    # of its threads an event loop it never closes (pulumi/runtime/mocks.py, `_ensure_event_loop()`): at
    # exit the collector may finalize such a loop's self-pipe socket before the loop, whose __del__ then
    # fails ("Invalid file descriptor: -1"). Each run owns its loops, made before the runtime is set up
    # (which binds to the current loop), and closes them.
    worker_loops: list[asyncio.AbstractEventLoop] = []

    def worker_loop() -> None:
        worker_loops.append(asyncio.new_event_loop())
        asyncio.set_event_loop(worker_loops[-1])

    loop = asyncio.new_event_loop()
    loop.set_default_executor(ThreadPoolExecutor(thread_name_prefix="pulumi-rpc", initializer=worker_loop))
    asyncio.set_event_loop(loop)
    saved = os.environ.get("PULUMI_CONFIG")
    try:
        mocks = PlatformMocks(first_preview=first_preview, region=region, parameters=parameters, account_id=account_id)
        monitor = RecordingMonitor(mocks)
        pulumi_settings.ROOT.set(None)
        pulumi.runtime.set_all_config(dict(config or {}), list(secret_keys or []))
        pulumi_mocks.set_mocks(mocks, project=PROJECT, stack=stack, preview=first_preview, monitor=monitor)
        # The Python language host also hands the program its config as PULUMI_CONFIG (what
        # `pulumi.runtime.get_config_env()` reads, and config.py lists the namespace's keys from).
        os.environ["PULUMI_CONFIG"] = json.dumps(dict(config or {}))
        _sync_await(run_pulumi_func(build))
        stack_resource = pulumi_settings.get_root_resource()
        outputs = {key: _resolve(value) for key, value in (getattr(stack_resource, "outputs", None) or {}).items()}
    finally:
        if saved is None:
            os.environ.pop("PULUMI_CONFIG", None)
        else:
            os.environ["PULUMI_CONFIG"] = saved
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())  # joins the worker threads
        finally:
            asyncio.set_event_loop(None)
            loop.close()
            for worker in worker_loops:
                worker.close()
    return canonical_order(monitor.registrations), outputs


def canonical_order(registrations: dict[str, Registration]) -> dict[str, Registration]:
    """The registrations parents first, siblings by name and type. They reach the monitor in the order
    the SDK's executor threads happen to finish their RPCs, which differs from run to run."""
    children: dict[str, list[Registration]] = {}
    for r in sorted(registrations.values(), key=lambda r: (r.name, r.type)):
        children.setdefault(r.parent, []).append(r)
    ordered: dict[str, Registration] = {}

    def walk(parent: str) -> None:
        for r in children.get(parent, []):
            ordered[r.urn] = r
            walk(r.urn)

    for root in sorted(set(children) - set(registrations)):
        walk(root)
    return ordered


def run(
    stack: str,
    *,
    first_preview: bool = False,
    config: dict[str, str] | None = None,
    secret_keys: list[str] | None = None,
    root: str = ROOT,
    parameters: dict[str, str] | None = None,
) -> ProgramResult:
    """Run `__main__.py` for `stack` under mocks; raise the program's own error if it fails.

    ``parameters``: SSM parameters that exist (release records by name); none, as before a first release.
    """
    if config is None:
        config, secret_keys = load_stack_config(stack, root)
    stand_ins = stand_in_releases(config, _upstream_account(config, stack, root)) if parameters is None else {}
    if parameters is None:
        parameters = stand_ins
    if root not in sys.path:
        sys.path.insert(0, root)
    registrations, outputs = record(
        lambda: runpy.run_path(os.path.join(root, "__main__.py"), run_name="__main__"),
        stack=stack,
        first_preview=first_preview,
        config=config,
        secret_keys=secret_keys,
        region=config.get("aws:region", "us-east-1"),
        parameters=parameters,
        # The credentials stand in for the account the stack names (cicd:accountId), as they must on AWS.
        account_id=_configured_account(config) or ACCOUNT_ID,
    )
    return ProgramResult(
        stack=stack,
        config=config,
        secret_keys=list(secret_keys or []),
        unchecked_secrets=_secret_paths(config, secret_keys or []),
        stand_in_releases=stand_ins,
        registrations=registrations,
        outputs=outputs,
        first_preview=first_preview,
    )


def _configured_account(config: dict[str, str]) -> str:
    value = config.get("cicd:accountId") or ""
    return value if value.isdigit() and len(value) == 12 else ""


def _upstream_account(config: dict[str, str], stack: str, root: str) -> str:
    """The account of the stack this one promotes from, when both name theirs and they differ (as the
    program finds it: `config.other_accounts` over the project's stack files)."""
    try:
        upstream = json.loads(config.get("cicd:pipeline") or "{}").get("promoteFrom")
    except (json.JSONDecodeError, AttributeError):
        return ""
    if not upstream:
        return ""
    if root not in sys.path:
        sys.path.insert(0, root)
    import config as contract

    try:
        stacks = contract.project_stacks()
    except contract.ConfigError:
        return ""  # the program reports it
    own = (config.get("cicd:environment") or "dev", upstream, _configured_account(config))
    return contract.other_accounts({**stacks, stack: own}, stack).get(upstream, "")


def stand_in_releases(config: dict[str, str], upstream_account: str = "") -> dict[str, str]:
    """The release record a promoting stack's upstream would have: offline there is none, so the plan
    stands in one (a digest of zeros in the upstream's repository) and says so (`plan.py`). With the
    upstream in another account (`upstream_account`), whose records this stack cannot read, it stands in
    this stack's own record of that image, as after its first promotion."""
    try:
        pipeline = json.loads(config.get("cicd:pipeline") or "{}")
        service = json.loads(config.get("cicd:service") or "{}")
    except json.JSONDecodeError:
        return {}
    upstream = pipeline.get("promoteFrom") if isinstance(pipeline, dict) else None
    if not upstream or not isinstance(service, dict):
        return {}
    name = service.get("name", "web")
    codes = {"dev": "dev", "staging": "stg", "prod": "prd"}
    region = config.get("aws:region", "us-east-1")
    registry = upstream_account or ACCOUNT_ID
    image = f"{registry}.dkr.ecr.{region}.amazonaws.com/{name}-{codes.get(upstream, upstream)}@sha256:{'0' * 64}"
    record = {"image": image, "commit": "0" * 40, "environment": upstream, "time": "2026-01-01T00:00:00Z"}
    if upstream_account:
        own = str(config.get("cicd:environment") or "dev")
        record = {**record, "environment": own, "promoted_from": upstream}
        return {f"/{PROJECT}/{name}/{own}/release": json.dumps(record)}
    return {f"/{PROJECT}/{name}/{upstream}/release": json.dumps(record)}


def _secret_paths(config: dict[str, str], secret_keys: list[str]) -> list[str]:
    """Where the placeholder stands in each secret key's value."""
    paths: list[str] = []

    def walk(value: Any, path: str) -> None:
        if value == SECRET_PLACEHOLDER:
            paths.append(path)
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{path}.{k}")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{path}[{i}]")

    for key in secret_keys:
        raw = config.get(key, "")
        try:
            walk(json.loads(raw) if raw.startswith(("{", "[")) else raw, key)
        except json.JSONDecodeError:
            walk(raw, key)
    return paths


def _resolve(value: Any) -> Any:
    output = pulumi.Output.from_input(value)
    known = _sync_await(output.is_known())
    if not known:
        return None
    if _sync_await(output.is_secret()):
        return SECRET_PLACEHOLDER
    return _sync_await(output.future())
