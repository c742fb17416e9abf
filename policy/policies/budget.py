"""What a stack costs: its monthly estimate (the project's cost/estimate.py, from the planned resources,
the price table and the stack's usage assumptions) must stay within the stack's budget."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

from pulumi_policy import EnforcementLevel, PolicyConfigSchema, Severity

from ._util import is_unknown, plain, stack_policy, unknown

# The pack lives in the project (policy/): the estimate is the project's own, one definition for the
# plan and the budget; it needs nothing beyond the standard library. (A pack published with
# `pulumi policy publish` would not have the project beside it: this one runs from the checkout.)
PROJECT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if PROJECT not in sys.path:
    sys.path.append(PROJECT)

from cost import estimate  # noqa: E402


def stack_config() -> dict[str, Any]:
    """The stack's configuration: the engine hands it to the pack as PULUMI_CONFIG, as to a program
    (pkg/resource/plugin/analyzer_plugin.go, constructEnv)."""
    try:
        config = json.loads(os.environ.get("PULUMI_CONFIG") or "{}")
    except ValueError:
        return {}
    return config if isinstance(config, dict) else {}


def assumptions(config: dict[str, Any]) -> dict[str, Any]:
    """`cicd:cost` over the defaults (the program has validated it before any policy runs)."""
    raw = config.get("cicd:cost") or "{}"
    given = json.loads(raw) if isinstance(raw, str) else raw
    values = {**estimate.DEFAULTS, **(given if isinstance(given, dict) else {})}
    for key, value in values.items():
        if key not in estimate.DEFAULTS or isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"cicd:cost.{key} must be a whole number of the contract, got {value!r}")
    return values


def _region(resources: list, config: dict[str, Any]) -> str:
    if isinstance(config.get("aws:region"), str):
        return config["aws:region"]
    for r in resources:  # else the AWS provider's, which the engine sends with each resource
        provider = getattr(r, "provider", None)
        props = plain(provider.props) if provider is not None else {}
        if isinstance(props, dict) and isinstance(props.get("region"), str):
            return props["region"]
    return ""


def _has_unknown(value: Any, depth: int = 2) -> bool:
    """Whether `value`, or what the estimate reads of it (two levels: a list's items and their fields),
    is unknown. Deeper values (an alarm's dimensions, say) do not change the estimate."""
    if is_unknown(value):
        return True
    if depth == 0:
        return False
    if isinstance(value, dict):
        return any(_has_unknown(v, depth - 1) for v in value.values())
    if isinstance(value, list):
        return any(_has_unknown(v, depth - 1) for v in value)
    return False


def _budget(resources: list, args) -> Iterator[tuple[str, str | None]]:
    limit = (args.get_config() or {}).get("maxMonthlyUsd")
    if limit is None:
        return  # no budget set for this stack
    config = stack_config()
    region = _region(resources, config)
    if not region:
        yield "cannot estimate the stack's cost: neither aws:region nor a resource's AWS provider names a region", None
        return
    views = []
    for r in resources:
        props = plain(r.props)
        for key in estimate.READS.get(r.resource_type, ()):
            if _has_unknown(props.get(key)):
                # An estimate from a guessed value could pass a stack over budget: not run until it is known.
                raise unknown(f"{r.name}.{key}")
        views.append(SimpleNamespace(urn=r.urn, type=r.resource_type, inputs=props))
    found = estimate.estimate(views, region=region, assumptions=assumptions(config))
    missing = [note for note in found.unpriced if f"has no price for {region}" in note]
    if missing:
        # A price taken as zero would pass any stack: the budget cannot be checked without it.
        yield (
            f"the budget cannot be checked: the price table (cost/prices.json, prices of {found.compiled}) has no "
            f"price in {region} for {len(missing)} item(s), e.g. {missing[0]}. Add the region's prices "
            "(python -m cost.refresh) or remove this stack's monthly-budget",
            None,
        )
        return
    total = found.monthly_usd
    if total > float(limit):
        largest = sorted(found.items, key=lambda i: -i.monthly_usd)[:3]
        named = "; ".join(f"{i.resource} {i.what} {estimate.money(i.monthly_usd)}" for i in largest)
        yield (
            f"the estimated cost, {estimate.money(total)} a month in {region} (prices of {found.compiled}), is over "
            f"the budget of {estimate.money(float(limit))}; the largest items: {named}",
            None,
        )


POLICIES = [
    stack_policy(
        "monthly-budget",
        "Checks that the stack's monthly cost estimate stays within its budget (maxMonthlyUsd).",
        _budget,
        enforcement=EnforcementLevel.ADVISORY,
        severity=Severity.MEDIUM,
        config_schema=PolicyConfigSchema(properties={"maxMonthlyUsd": {"type": "number", "minimum": 0}}),
    )
]
