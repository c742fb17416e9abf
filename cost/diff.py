"""A pull request's change to a stack's monthly cost, as a Markdown section for its comment:

    python -m cost.diff --stack dev --base base.json --head head.json

`base.json` and `head.json` are `python -m offline.plan --stack dev --json FILE` of the target branch
and of the pull request (buildspecs/scripts/cost-diff.sh makes both). A side without an estimate (its
plan failed, or it predates estimates) is named, never taken as $0.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

from .estimate import money


def _cost(path: str) -> tuple[dict[str, Any] | None, str]:
    """The plan's `cost`, or None and why not."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return None, "no plan"
    except json.JSONDecodeError as err:
        return None, f"its plan is not JSON ({err.msg})"
    if data.get("errors"):
        return None, f"its plan failed: {data['errors'][0]}"
    if not data.get("cost"):
        return None, "its plan has no cost estimate"
    return data["cost"], ""


def _signed(usd: float) -> str:
    return ("+" if usd > 0.005 else "-" if usd < -0.005 else "±") + money(abs(usd))


def section(
    stack: str,
    base: Mapping[str, Any] | None,
    head: Mapping[str, Any] | None,
    *,
    base_missing: str = "",
    head_missing: str = "",
) -> str:
    """The comment's cost section for `stack`: both totals, the difference, and per component."""
    title = f"**Monthly cost of stack {stack}**"
    if head is None:
        return f"{title}: no estimate for this pull request ({head_missing}).\n"
    if base is None:
        return (
            f"{title}: {money(head['monthlyUsd'])} with this pull request; no estimate of the base ({base_missing}).\n"
        )
    change = head["monthlyUsd"] - base["monthlyUsd"]
    lines = [
        f"{title}: {money(base['monthlyUsd'])} → {money(head['monthlyUsd'])} ({_signed(change)} a month; "
        f"prices of {head['pricesCompiled']}, usage as cicd:cost assumes)",
        "",
        "| component | base | this pull request | difference |",
        "|---|---:|---:|---:|",
    ]
    names = sorted(
        set(base["components"]) | set(head["components"]),
        key=lambda n: (-abs(head["components"].get(n, 0) - base["components"].get(n, 0)), n),
    )
    same = 0
    for name in names:
        before, after = base["components"].get(name, 0.0), head["components"].get(name, 0.0)
        if round(before, 2) == round(after, 2):
            same += 1
            continue
        lines.append(f"| {name} | {money(before)} | {money(after)} | {_signed(after - before)} |")
    if same:
        lines.append(f"| {same} other component(s), unchanged | | | |")
    added = [n for n in head.get("unpriced", []) if n not in base.get("unpriced", [])]
    gone = [n for n in base.get("unpriced", []) if n not in head.get("unpriced", [])]
    if added or gone:
        lines += ["", "Not in either estimate, and changed by this pull request:"]
        lines += [f"- now: {n}" for n in added] + [f"- no longer: {n}" for n in gone]
    if base.get("pricesCompiled") != head.get("pricesCompiled"):
        lines += [
            "",
            f"The base priced with the table of {base.get('pricesCompiled')}; part of the difference is prices.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--base", required=True, help="the offline plan's --json of the target branch")
    parser.add_argument("--head", required=True, help="the offline plan's --json of the pull request")
    args = parser.parse_args(argv)
    base, base_missing = _cost(args.base)
    head, head_missing = _cost(args.head)
    sys.stdout.write(section(args.stack, base, head, base_missing=base_missing, head_missing=head_missing))
    return 0


if __name__ == "__main__":
    sys.exit(main())
