"""`python -m offline.snapshot write FILE` / `compare FILE`: what a refactor must not change.

`write` records every registration of both stacks, as an update and as a first preview: type, parent,
options, dependencies, timeouts, inputs and the stack outputs. `compare` runs the program again and
reports every difference resource by resource, matching each resource to its recorded one through its
URN or its aliases the way the engine does (offline/identity.py), so a component split that keeps every
resource shows no difference. It exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from . import identity, program

RUNS = (("dev", False), ("prod", False), ("dev", True), ("prod", True))


def _plain(value: Any) -> Any:
    return json.loads(re.sub(r" at 0x[0-9a-f]+", "", json.dumps(value, sort_keys=True, default=str)))


def take(runs: tuple[tuple[str, bool], ...] = RUNS) -> dict[str, Any]:
    snapshot = {}
    for stack, first in runs:
        result = program.run(stack, first_preview=first)
        snapshot[f"{stack}{'-first' if first else ''}"] = {
            "registrations": {
                urn: {
                    "type": r.type,
                    "custom": r.custom,
                    "protect": r.protect,
                    "retain": r.retain_on_delete,
                    "ignore": sorted(r.ignore_changes),
                    "deps": sorted(r.dependencies),
                    "timeouts": r.custom_timeouts,
                    "inputs": _plain(r.inputs),
                }
                for urn, r in result.registrations.items()
            },
            "outputs": _plain(result.outputs),
        }
    return snapshot


def compare(before: dict[str, Any]) -> list[str]:
    problems = []
    for key, recorded in before.items():
        stack, first = key.split("-")[0], key.endswith("-first")
        result = program.run(stack, first_preview=first)
        old = recorded["registrations"]
        matched = identity.match(list(result.registrations.values()), set(old), stack)

        def to_old(urn: str, matched: dict[str, str] = matched) -> str:
            return matched.get(urn, urn)

        def rename(text: str, to_old=to_old) -> str:
            return re.sub(r"urn:pulumi:[^\"\s,\]]+", lambda m: to_old(m.group(0)), text)

        for urn, r in result.registrations.items():
            if urn not in matched:
                if r.custom:
                    problems.append(f"{key}: new resource {urn}")
                continue
            was = old[matched[urn]]
            now = {
                "type": r.type,
                "protect": r.protect,
                "retain": r.retain_on_delete,
                "ignore": sorted(r.ignore_changes),
                "timeouts": r.custom_timeouts,
                "inputs": _plain(r.inputs),
            }
            for field, value in now.items():
                if json.dumps(was[field], sort_keys=True) != rename(json.dumps(value, sort_keys=True)):
                    problems.append(f"{key}: {urn.split('::')[-1]}: {field} not as recorded")
            # Dependencies on resources (components in between are structure, not order).
            was_deps = {d for d in was["deps"] if old.get(d, {}).get("custom")}
            now_deps = {
                to_old(d) for d in r.dependencies if result.registrations.get(d) and result.registrations[d].custom
            }
            if was_deps != now_deps:
                problems.append(f"{key}: {urn.split('::')[-1]}: dependencies not as recorded")
        for urn in sorted(set(old) - set(matched.values())):
            if old[urn]["custom"]:
                problems.append(f"{key}: deleted {urn}")
        if json.dumps(recorded["outputs"], sort_keys=True) != json.dumps(_plain(result.outputs), sort_keys=True):
            problems.append(f"{key}: stack outputs differ")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m offline.snapshot", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("write", "compare"))
    parser.add_argument("file")
    args = parser.parse_args(argv)
    program.tune_gc()
    if args.command == "write":
        with open(args.file, "w", encoding="utf-8") as handle:
            json.dump(take(), handle, indent=1, sort_keys=True)
        print(f"wrote {args.file}")
        return 0
    with open(args.file, encoding="utf-8") as handle:
        problems = compare(json.load(handle))
    for problem in problems:
        print(problem)
    print(f"{len(problems)} difference(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
