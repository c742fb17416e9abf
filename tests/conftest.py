"""Shared fixtures: the program under recording mocks, and the policy pack as the CLI serves it."""

from __future__ import annotations

import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "policy"))

from offline import analyzer, program  # noqa: E402

POLICY_DIR = os.path.join(ROOT, "policy")
# The suite runs the program dozens of times in one process: collect garbage as the plan does.
program.preload()
program.tune_gc()


def policy_config(stack: str) -> dict:
    path = os.path.join(POLICY_DIR, "config", f"{stack}.json")
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


class Plan:
    """Recorded registrations (of a program or of components built alone), with helpers to read them."""

    def __init__(self, result: program.ProgramResult | None = None, *, registrations=None, outputs=None):
        self.result = result
        self.registrations = list((result.registrations if result else registrations).values())
        self.outputs = result.outputs if result else (outputs or {})

    def all(self, typ: str) -> list:
        found = [r for r in self.registrations if r.type == typ]
        assert found, f"no {typ} was registered"
        return found

    def one(self, typ: str, name: str | None = None):
        found = [r for r in self.all(typ) if name is None or r.name == name]
        assert len(found) == 1, f"expected one {typ} named {name}, found {[r.name for r in found]}"
        return found[0]

    def named(self, name: str):
        found = [r for r in self.registrations if r.name == name]
        assert len(found) == 1, f"expected one resource named {name}, found {len(found)}"
        return found[0]

    def children(self, parent) -> list:
        return [r for r in self.registrations if r.parent == parent.urn]


def run_plan(stack: str, **overrides) -> Plan:
    """Run the program for `stack`, with config keys replaced (objects merged one level deep)."""
    config, secret_keys = program.load_stack_config(stack)
    for key, value in overrides.items():
        if isinstance(value, dict) and key in config:
            merged = {**json.loads(config[key]), **value}
            config[key] = json.dumps({k: v for k, v in merged.items() if v is not None})
        elif value is None:
            config.pop(key, None)
        else:
            config[key] = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    return Plan(program.run(stack, config=config, secret_keys=secret_keys))


@pytest.fixture
def record():
    """Build components alone under the recording mocks: `record(lambda: KmsKey(...))` returns a Plan.

    Outputs the build exports with `pulumi.export` come back resolved in `Plan.outputs`.
    """

    def _record(build, **kwargs) -> Plan:
        registrations, outputs = program.record(build, **kwargs)
        return Plan(registrations=registrations, outputs=outputs)

    return _record


@pytest.fixture(scope="session")
def dev() -> Plan:
    return Plan(program.run("dev"))


@pytest.fixture(scope="session")
def prod() -> Plan:
    return Plan(program.run("prod"))


GITHUB = {
    "source": "github",
    "githubRepository": "acme/web",
    "connectionArn": "arn:aws:codeconnections:us-east-1:123456789012:connection/0f3c6d2e-8a4b-4c1d-9e2f-1a2b3c4d5e6f",
    "requireApproval": True,
}


@pytest.fixture(scope="session")
def variant() -> Plan:
    """dev with the other choices: GitHub, approval, no NAT, Slack and tighter alarm thresholds."""
    return run_plan(
        "dev",
        **{
            "cicd:pipeline": GITHUB,
            "cicd:network": {"natGateways": "none"},
            "cicd:observability": {
                "slackWorkspaceId": "T1",
                "slackChannelId": "C1",
                "p99LatencyMs": 250,
                "errorRatePercent": 2.5,
            },
        },
    )


@pytest.fixture(scope="session")
def policy_server():
    """One policy pack process for the session, served exactly as `pulumi preview --policy-pack` does."""
    with analyzer.PolicyServer(POLICY_DIR) as server:
        yield server
