"""The offline plan: `python -m offline.plan --stack dev`.

Runs the program under Pulumi's mocks with the stack's configuration, serves the policy pack as the
CLI does, and prints the plan (resources under their components, counts by type) and the policy
findings. Exits 1 on a program error or a mandatory violation.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections import Counter
from typing import Any

from . import analyzer, program

POLICY_DIR = os.path.join(program.ROOT, "policy")


def policy_config_path(stack: str) -> str | None:
    path = os.path.join(POLICY_DIR, "config", f"{stack}.json")
    return path if os.path.exists(path) else None


def plan(stack: str, *, first_preview: bool = False) -> dict[str, Any]:
    """Run the program and the pack for `stack`; return the plan as data."""
    started = time.perf_counter()
    result = program.run(stack, first_preview=first_preview)
    program_seconds = time.perf_counter() - started
    config_path = policy_config_path(stack)
    checked = analyzer.run_pack(POLICY_DIR, result.registrations.values(),
                                policy_config=analyzer.load_policy_config(config_path), stack=stack,
                                config=result.config)
    return {
        "stack": stack,
        "firstPreview": first_preview,
        "policyConfig": os.path.relpath(config_path, program.ROOT) if config_path else None,
        "resources": [{
            "urn": r.urn, "type": r.type, "name": r.name, "parent": r.parent, "custom": r.custom,
            "protect": r.protect, "retainOnDelete": r.retain_on_delete, "ignoreChanges": r.ignore_changes,
        } for r in result.registrations.values()],
        "counts": dict(sorted(Counter(r.type for r in result.registrations.values() if r.custom).items())),
        "outputs": result.outputs,
        "policyPack": {"name": checked.pack, "policies": len(checked.policies)},
        "findings": [vars(f) for f in checked.violations],
        "notRun": [vars(f) for f in checked.not_run],
        "mandatoryViolations": len(checked.mandatory),
        "seconds": {"program": round(program_seconds, 3), "total": round(time.perf_counter() - started, 3)},
    }


def _tree(resources: list[dict]) -> list[str]:
    children: dict[str, list[dict]] = {}
    for r in resources:
        children.setdefault(r["parent"], []).append(r)
    lines: list[str] = []

    def walk(parent: str, depth: int) -> None:
        for r in children.get(parent, []):
            marks = []
            if r["protect"]:
                marks.append("protected")
            if r["retainOnDelete"]:
                marks.append("retained")
            if r["ignoreChanges"]:
                marks.append("ignores " + ",".join(r["ignoreChanges"]))
            suffix = f"  [{'; '.join(marks)}]" if marks else ""
            kind = "" if r["custom"] else "  (component)"
            lines.append(f"{'  ' * depth}{'+ ' if r['custom'] else '▸ '}{r['name']}  {r['type']}{kind}{suffix}")
            walk(r["urn"], depth + 1)

    roots = {r["parent"] for r in resources} - {r["urn"] for r in resources}
    for root in sorted(roots):
        walk(root, 0)
    return lines


def render(data: dict[str, Any]) -> str:
    out = [f"Plan for stack {data['stack']}" + (" (first preview: computed outputs unknown)"
                                                 if data["firstPreview"] else "")]
    out.append("")
    out += _tree(data["resources"])
    out.append("")
    out.append(f"Resources: {sum(data['counts'].values())} to create")
    for typ, count in data["counts"].items():
        out.append(f"  {count:3d}  {typ}")
    wait = data["outputs"].get("deployWaitSeconds")
    if isinstance(wait, dict):
        out.append("")
        parts = ", ".join(f"{k} {v} s" for k, v in wait.items() if k != "total")
        out.append(f"Cost of a deploy: {wait.get('total')} s of configured waiting ({parts})")
    out.append("")
    out.append("Outputs:")
    for key, value in data["outputs"].items():
        shown = "(known after apply)" if value is None else json.dumps(value) if isinstance(value, dict) else value
        out.append(f"  {key}: {shown}")
    out.append("")
    cfg = data["policyConfig"] or "none (every policy at its default level)"
    out.append(f"Policies: {data['policyPack']['name']}, {data['policyPack']['policies']} policies; config {cfg}")
    if not data["findings"]:
        out.append("  no violations")
    for f in sorted(data["findings"], key=lambda f: (f["level"] != "mandatory", f["policy"], f["urn"])):
        where = f["urn"].split("::")[-1] if f["urn"] else "stack"
        message = f["message"].splitlines()[-1]
        out.append(f"  [{f['level']}] {f['policy']} ({f['severity'] or '-'}) {where}: {message}")
    if data["firstPreview"]:
        out.append("")
        out.append(f"Checks a first preview cannot run: {len(data['notRun'])}")
        for f in data["notRun"]:
            out.append(f"  {f['policy']}: {f['message'].split(' during preview: ')[-1]}")
    out.append("")
    verdict = "FAILED" if data["mandatoryViolations"] else "passed"
    out.append(f"Policy check {verdict}: {data['mandatoryViolations']} mandatory violation(s), "
               f"{sum(1 for f in data['findings'] if f['level'] == 'advisory')} advisory")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make plan", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="dev", help="the stack whose Pulumi.<stack>.yaml to plan")
    parser.add_argument("--json", metavar="FILE", help="also write the plan as JSON to FILE")
    parser.add_argument("--first-preview", action="store_true",
                        help="leave computed outputs unknown, as in a first `pulumi preview`")
    args = parser.parse_args(argv)
    try:
        data = plan(args.stack, first_preview=args.first_preview)
    except Exception as err:  # noqa: BLE001 - the plan reports any program error and fails
        if type(err).__name__ == "ConfigError":
            print(f"error: {err}", file=sys.stderr)
        else:
            traceback.print_exc()
            print(f"error: the program failed for stack {args.stack}: {err}", file=sys.stderr)
        return 1
    print(render(data))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, default=str)
    return 1 if data["mandatoryViolations"] else 0


if __name__ == "__main__":
    sys.exit(main())
