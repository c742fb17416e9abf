"""What a stack costs: its monthly estimate (the project's cost/estimate.py, from the planned resources,
the price table and the usage assumptions) must stay within the stack's budget."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from types import SimpleNamespace

from pulumi_policy import EnforcementLevel, PolicyConfigSchema, Severity

from ._util import plain, stack_policy

# The pack lives in the project (policy/): the estimate is the project's own, one definition for the
# plan and the budget. It needs nothing beyond the standard library.
PROJECT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if PROJECT not in sys.path:
    sys.path.append(PROJECT)

from cost import estimate  # noqa: E402


def _region(resources: list) -> str:
    for r in resources:
        provider = getattr(r, "provider", None)
        props = plain(provider.props) if provider is not None else {}
        if isinstance(props, dict) and isinstance(props.get("region"), str):
            return props["region"]
    return ""


def _budget(resources: list, args) -> Iterator[tuple[str, str | None]]:
    config = args.get_config() or {}
    limit = config.get("maxMonthlyUsd")
    if limit is None:
        return  # no budget set for this stack
    region = _region(resources)
    if not region:
        yield "cannot estimate the stack's cost: no resource names its AWS provider's region", None
        return
    assumptions = {**estimate.DEFAULTS, **(config.get("assumptions") or {})}
    found = estimate.estimate(
        [SimpleNamespace(urn=r.urn, type=r.resource_type, inputs=plain(r.props)) for r in resources],
        region=region,
        assumptions=assumptions,
    )
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
        config_schema=PolicyConfigSchema(
            properties={
                "maxMonthlyUsd": {"type": "number", "minimum": 0},
                # The usage the estimate assumes: the keys of cicd:cost (defaults: cost/estimate.py).
                "assumptions": {"type": "object"},
            }
        ),
    )
]
