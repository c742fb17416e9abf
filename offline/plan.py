"""The offline plan: `python -m offline.plan --stack dev`.

Runs the program under Pulumi's mocks with the stack's configuration, serves the policy pack as the
CLI does, and prints the plan (resources under their components, counts by type) and the policy
findings. Exits 1 on a program error or a mandatory violation.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from typing import Any

from . import analyzer, program

POLICY_DIR = os.path.join(program.ROOT, "policy")


def policy_config_path(stack: str) -> str | None:
    path = os.path.join(POLICY_DIR, "config", f"{stack}.json")
    return path if os.path.exists(path) else None


def plan(
    stack: str,
    *,
    first_preview: bool = False,
    server: analyzer.PolicyServer | None = None,
    result: program.ProgramResult | None = None,
    inputs: bool = True,
) -> dict[str, Any]:
    """Run the program and the pack for `stack`; return the plan as data.

    `server` is a running policy pack to reuse (planning several stacks serves the pack once);
    `result` is the program's run when it has already happened (in another process); `inputs`: each
    resource with its inputs, secrets masked (for --json and --diff).
    """
    started = time.perf_counter()
    if result is None:
        result = program.run(stack, first_preview=first_preview)
    program_seconds = time.perf_counter() - started
    config_path = policy_config_path(stack)
    schemas = server.config_schemas() if server is not None else None
    policy_config = analyzer.load_policy_config(config_path, schemas)
    checked = analyzer.run_pack(
        POLICY_DIR,
        result.registrations.values(),
        policy_config=policy_config,
        stack=stack,
        config=result.config,
        server=server,
        region=result.config.get("aws:region"),
    )
    return {
        "stack": stack,
        "firstPreview": first_preview,
        "policyConfig": os.path.relpath(config_path, program.ROOT) if config_path else None,
        "resources": [
            {
                "urn": r.urn,
                "type": r.type,
                "name": r.name,
                "parent": r.parent,
                "custom": r.custom,
                "protect": r.protect,
                "retainOnDelete": r.retain_on_delete,
                "ignoreChanges": r.ignore_changes,
                **({"inputs": masked_inputs(r.object)} if inputs else {}),
            }
            for r in result.registrations.values()
        ],
        "counts": dict(sorted(Counter(r.type for r in result.registrations.values() if r.custom).items())),
        "notShown": [awsx_children(r) for r in result.registrations.values() if r.type == "awsx:ec2:Vpc"],
        "outputs": result.outputs,
        "policyPack": {"name": checked.pack, "policies": len(checked.policies)},
        "findings": [vars(f) for f in checked.violations],
        "notRun": [vars(f) for f in checked.not_run],
        "mandatoryViolations": len(checked.mandatory),
        "uncheckedSecrets": result.unchecked_secrets,
        "standInReleases": {k: json.loads(v) for k, v in result.stand_in_releases.items()},
        "cost": monthly_cost(result, policy_config),
        "seconds": {"program": round(program_seconds, 3), "total": round(time.perf_counter() - started, 3)},
    }


SECRET_SIG, SPECIAL_SIG_KEY = "1b47061264138c4ac30d75fd1eb44270", "4dabf18193072939515e22adb298388d"
UNKNOWN_VALUE = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # the engine's unknown, as the SDK sends it


def masked_inputs(obj: Any) -> Any:
    """A resource's inputs as the engine receives them, with every secret value as "[secret]" and every
    unknown as "(known after apply)": what --json carries, so two plans can be compared by a tool."""
    from google.protobuf import json_format

    def mask(value: Any) -> Any:
        if isinstance(value, dict):
            if value.get(SPECIAL_SIG_KEY) == SECRET_SIG:
                return "[secret]"
            return {k: mask(v) for k, v in sorted(value.items())}
        if isinstance(value, list):
            return [mask(v) for v in value]
        return "(known after apply)" if value == UNKNOWN_VALUE else value

    return mask(json_format.MessageToDict(obj)) if obj is not None else {}


def changes(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[str]:
    """What an edit changed, stack by stack: resources added and removed (by URN), and for the others
    the inputs and options that differ, by name. `old` and `new` are --json documents' stacks."""
    before = {d["stack"]: d for d in old}
    out = []
    for data in new:
        stack = data["stack"]
        if stack not in before:
            out.append(f"  {stack}: not in the old plan")
            continue
        if "resources" not in before[stack] or "resources" not in data:
            out.append(f"  {stack}: no plan to compare (a failed stack)")
            continue
        was = {r["urn"]: r for r in before[stack]["resources"]}
        now = {r["urn"]: r for r in data["resources"]}
        lines = [f"    + {now[u]['name']}  {now[u]['type']}" for u in now if u not in was]
        lines += [f"    - {was[u]['name']}  {was[u]['type']}" for u in was if u not in now]
        for urn in (u for u in now if u in was):
            a, b = was[urn], now[urn]
            keys = sorted(k for k in set(a.get("inputs", {})) | set(b.get("inputs", {})) if
                          a.get("inputs", {}).get(k) != b.get("inputs", {}).get(k))  # fmt: skip
            keys += [f"({o})" for o in ("protect", "retainOnDelete", "ignoreChanges", "parent") if a.get(o) != b.get(o)]
            if keys:
                lines.append(f"    ~ {b['name']}  {b['type']}: {', '.join(keys)}")
        added, removed = sum(line[4] == "+" for line in lines), sum(line[4] == "-" for line in lines)
        out.append(
            f"  {stack}: {added} to add, {removed} to remove, {len(lines) - added - removed} changed"
            + ("" if lines else " (no change)")
        )
        out += lines
    return out


def monthly_cost(result: program.ProgramResult, policy_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The stack's monthly estimate (cost/estimate.py) from its registrations and `cicd:cost`, and the
    budget its policy config sets (policy `monthly-budget`, which makes the same estimate)."""
    import config as contract
    from cost import estimate

    raw = json.loads(result.config.get("cicd:cost") or "{}")
    assumptions = contract.CostSettings.model_validate(raw, by_alias=True, by_name=False).model_dump(by_alias=True)
    region = result.config.get("aws:region", "us-east-1")
    found = estimate.estimate(result.registrations.values(), region=region, assumptions=assumptions)
    cost = found.as_json(assumptions)
    budget = (policy_config or {}).get("monthly-budget")
    if isinstance(budget, dict) and "maxMonthlyUsd" in budget:
        cost["budget"] = {"maxMonthlyUsd": budget["maxMonthlyUsd"]}
    return cost


def awsx_children(vpc: Any) -> str:
    """What awsx's Vpc creates inside its own provider, which neither the mocks nor the pack see."""
    inputs = vpc.inputs
    azs = int(inputs.get("numberOfAvailabilityZones") or 3)
    specs = len(inputs.get("subnetSpecs") or []) or 2
    strategy = (inputs.get("natGateways") or {}).get("strategy", "Single")
    nats = {"None": 0, "Single": 1, "OnePerAz": azs}.get(strategy, 1)
    return (
        f"{vpc.name} (awsx:ec2:Vpc) creates inside its own provider the VPC, {specs * azs} subnets, "
        f"{specs * azs} route tables with their associations and routes, an internet gateway, "
        f"{nats} NAT gateway(s) and {nats} Elastic IP(s): the offline plan neither shows nor checks them "
        "(`pulumi preview` does)"
    )


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


def summary(data: dict[str, Any]) -> list[str]:
    """What a newcomer reads first: the stack's place in the release chain, its size, its monthly cost
    and the policy verdict (the details follow)."""
    out = []
    role = data["outputs"].get("releaseRole")
    if role:
        out.append(
            f"  releases:  this stack {role}"
            + (
                " (git -> tests, scans, image -> deploy -> release)"
                if role.startswith("builds")
                else f" (a {role.split()[2]} release -> approval -> deploy -> release; never builds)"
            )
        )
    out.append(f"  resources: {sum(data['counts'].values())} to create, in {len(data['counts'])} types")
    cost = data.get("cost")
    if cost:
        from cost import estimate

        budget = (cost.get("budget") or {}).get("maxMonthlyUsd")
        missing = sum(1 for note in cost["unpriced"] if f"has no price for {cost['region']}" in note)
        out.append(
            f"  cost:      {estimate.money(cost['monthlyUsd'])} a month in {cost['region']}"
            + (f" (budget {estimate.money(budget)})" if budget is not None else "")
            + (f"; {missing} item(s) unpriced: the price table has no prices for {cost['region']}" if missing else "")
        )
    advisory = sum(1 for f in data["findings"] if f["level"] == "advisory")
    verdict = "FAILED" if data["mandatoryViolations"] else "passed"
    out.append(
        f"  policies:  {verdict}: {data['mandatoryViolations']} mandatory violation(s), {advisory} advisory "
        f"({data['policyPack']['name']}, {data['policyPack']['policies']} policies)"
        + (f"; {len(data['notRun'])} check(s) a first preview cannot run" if data["firstPreview"] else "")
    )
    return out


def render(data: dict[str, Any]) -> str:
    out = [
        f"Plan for stack {data['stack']}"
        + (" (first preview: computed outputs unknown)" if data["firstPreview"] else "")
    ]
    out += summary(data)
    out.append("")
    out.append("Resources, under their components (+ a resource, ▸ a component):")
    out += _tree(data["resources"])
    out.append("")
    out.append(f"Resources: {sum(data['counts'].values())} to create")
    for typ, count in data["counts"].items():
        out.append(f"  {count:3d}  {typ}")
    for note in data.get("notShown", []):
        out.append(f"  and, not shown: {note}")
    if data.get("cost"):
        from cost import estimate

        out.append("")
        out += estimate.render(data["cost"])
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
    for name, record in data.get("standInReleases", {}).items():
        out.append("")
        out.append(
            f"Release record stood in (offline there is none; `pulumi preview` reads {name}): "
            + (
                f"{record['environment']} runs {record['image']}, promoted from {record['promoted_from']}"
                if record.get("promoted_from")
                else f"{record['environment']} released {record['image']}"
            )
        )
    if data["uncheckedSecrets"]:
        out.append("")
        out.append(
            "Secret values the offline plan cannot decrypt, so did not check (`pulumi preview` does): "
            + ", ".join(data["uncheckedSecrets"])
        )
    out.append("")
    verdict = "FAILED" if data["mandatoryViolations"] else "passed"
    out.append(
        f"Policy check {verdict}: {data['mandatoryViolations']} mandatory violation(s), "
        f"{sum(1 for f in data['findings'] if f['level'] == 'advisory')} advisory"
    )
    return "\n".join(out)


def _run_program(job: tuple[str, bool]) -> tuple[program.ProgramResult | None, tuple[str, str, str] | None]:
    stack, first_preview = job
    # (program.record runs each program on a loop of its own, so a forked child never drives the parent's.)
    try:
        return program.run(stack, first_preview=first_preview), None
    except Exception as err:  # noqa: BLE001 - sent back to the parent, which reports it
        return None, (type(err).__name__, "\n".join(messages(err)), traceback.format_exc())


# Errors that are the user's to fix: their message says what and where, with no traceback.
USER_ERRORS = ("ConfigError", "StackFileError", "PolicyConfigError", "DuplicateResourceError")


def messages(err: BaseException) -> list[str]:
    """An error's messages, one line each: a configuration error lists every key at fault."""
    listed = getattr(err, "errors", None)
    if isinstance(listed, list) and listed and all(isinstance(e, str) for e in listed):
        return [" ".join(e.split()) for e in listed]
    return [one_line(err)]


def one_line(err: BaseException) -> str:
    """An error's message on one line (Pulumi wraps some in several)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return " ".join(lines) if lines else type(err).__name__


def serve_packs(stacks: list[str], cleanup: contextlib.ExitStack) -> dict[str, analyzer.PolicyServer]:
    """The policy pack once per stack, started as the engine starts it: with the stack's name and its
    config in the environment (the budget reads the region and `cicd:cost` there)."""
    servers = {}
    for stack in stacks:
        try:
            config, _ = program.load_stack_config(stack)
        except Exception:  # noqa: BLE001 - a stack file the program reports itself
            config = {}
        servers[stack] = cleanup.enter_context(analyzer.PolicyServer(POLICY_DIR, stack=stack, config=config))
        # The policy config against the pack's schemas, as the CLI checks it before the program runs.
        try:
            analyzer.load_policy_config(policy_config_path(stack), servers[stack].config_schemas())
        except analyzer.PolicyConfigError as err:
            lines = "\n".join(f"stack {stack}: {line}" for line in str(err).splitlines())
            raise analyzer.PolicyConfigError(lines) from None
    return servers


def run_programs(
    stacks: list[str], first_preview: bool, while_running: Callable[[], Any] = lambda: None
) -> tuple[list[tuple], Any]:
    """Each stack's program, in parallel processes when there are several stacks and cores.

    The processes fork after the SDKs are imported, so the import is paid once; each runs its own
    Pulumi runtime, as each `pulumi preview` would. `while_running()` runs meanwhile in this process
    (starting the policy pack, say), after the fork: gRPC must not be running when a process forks.
    """
    jobs = [(stack, first_preview) for stack in stacks]
    workers = min(len(jobs), os.cpu_count() or 1)
    if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        extra = while_running()
        return [_run_program(job) for job in jobs], extra
    program.preload()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        pending = pool.map_async(_run_program, jobs)
        extra = while_running()
        return pending.get(), extra


def _check_writable(path: str) -> None:
    """Fail before planning when --json cannot be written."""
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as err:
        raise analyzer.PolicyConfigError(f"--json {path}: cannot write it: {err.strerror}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make plan", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--stack", default="dev", help="the stack whose Pulumi.<stack>.yaml to plan; several separated by commas"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the plan as JSON to FILE")
    parser.add_argument(
        "--first-preview", action="store_true", help="leave computed outputs unknown, as in a first `pulumi preview`"
    )
    parser.add_argument("--verbose", action="store_true", help="print the traceback of a program error")
    parser.add_argument(
        "--diff",
        metavar="OLD.json",
        help="also print what changed against an earlier --json plan: resources added, removed and changed",
    )
    args = parser.parse_args(argv)
    program.tune_gc()
    stacks = [s.strip() for s in args.stack.split(",") if s.strip()]
    old_plan = None
    if args.diff:
        try:
            with open(args.diff, encoding="utf-8") as handle:
                old_plan = json.load(handle)
        except (OSError, ValueError) as err:
            print(f"error: --diff {args.diff}: not a plan written with --json ({err})", file=sys.stderr)
            return 1
        old_plan = old_plan if isinstance(old_plan, list) else [old_plan]
    if args.json:
        try:
            _check_writable(args.json)
        except analyzer.PolicyConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    # A policy config that is not JSON, or names a level the CLI does not know, fails before any program runs.
    for stack in stacks:
        try:
            analyzer.load_policy_config(policy_config_path(stack))
        except analyzer.PolicyConfigError as err:
            print(f"error: stack {stack}: {err}", file=sys.stderr)
            return 1
    summary: list[str] = []
    results = []
    failures: list[dict[str, Any]] = []  # stacks with no plan: their errors, for --json
    with contextlib.ExitStack() as cleanup:
        try:
            runs, servers = run_programs(stacks, args.first_preview, lambda: serve_packs(stacks, cleanup))
        except analyzer.PolicyConfigError as err:
            for line in str(err).splitlines():
                print(f"error: {line}", file=sys.stderr)
            return 1
        for stack, (result, error) in zip(stacks, runs, strict=True):
            if error:
                kind, message, trace = error
                if args.verbose:
                    print(trace, file=sys.stderr)
                lines = message.split("\n")
                for line in lines:
                    print(
                        f"error: stack {stack}: {line}"
                        if kind in USER_ERRORS
                        else f"error: stack {stack}: the program failed: {kind}: {line}"
                        + ("" if args.verbose else " (--verbose shows the traceback)"),
                        file=sys.stderr,
                    )
                more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
                summary.append(f"  {stack}: FAILED: {lines[0]}{more}")
                failures.append({"stack": stack, "errors": lines})
                continue
            try:
                data = plan(
                    stack,
                    first_preview=args.first_preview,
                    server=servers[stack],
                    result=result,
                    inputs=bool(args.json or args.diff),  # what only a document or a diff shows
                )
            except analyzer.PolicyConfigError as err:
                lines = str(err).splitlines()
                for line in lines:
                    print(f"error: stack {stack}: {line}", file=sys.stderr)
                more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
                summary.append(f"  {stack}: FAILED: {lines[0]}{more}")
                failures.append({"stack": stack, "errors": lines})
                continue
            print(render(data))
            print()
            results.append(data)
            advisory = sum(1 for f in data["findings"] if f["level"] == "advisory")
            verdict = "FAILED" if data["mandatoryViolations"] else "passed"
            summary.append(
                f"  {stack}: {verdict}: {sum(data['counts'].values())} resources, "
                f"{data['mandatoryViolations']} mandatory violation(s), {advisory} advisory"
            )
    if old_plan is not None:
        print(f"Changes against {args.diff}:")
        print("\n".join(changes(old_plan, results)))
        print()
    if len(stacks) > 1 or len(summary) != len(results):
        print("Summary:")
        print("\n".join(summary))
    if args.json:
        # One stack: its plan (or its errors); several: a list in the order given, failed ones included.
        planned = {d["stack"]: d for d in results} | {f["stack"]: f for f in failures}
        document = [planned[s] for s in stacks if s in planned]
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(document[0] if len(stacks) == 1 else document, handle, indent=2, default=str)
    failed = len(results) < len(stacks) or any(d["mandatoryViolations"] for d in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
