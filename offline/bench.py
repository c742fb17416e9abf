"""`make bench`: time the offline plan of both stacks (program and policy pack), several runs.

Prints the median per stack and for both together, warm (in one process, as CI re-plans) and cold
(a fresh `python -m offline.plan` per stack, imports included), with the resource counts. Timing
lives here and not in the tests.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time

from . import analyzer, plan, program

STACKS = ("dev", "prod")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    program.tune_gc()
    warm: dict[str, list[float]] = {s: [] for s in STACKS}
    counts: dict[str, int] = {}
    serving = []
    parallel = []
    print(
        f"timing the offline plan of {' and '.join(STACKS)}: {args.runs} warm runs in this process, each "
        f"stack alone and both in parallel, then {max(1, args.runs // 2)} cold runs of `python -m offline.plan` ...",
        flush=True,
    )
    program.preload()
    plan.plan("dev")  # first-use costs (type hints, caches) are paid once per process, not measured
    for run in range(args.runs):
        started = time.perf_counter()
        with analyzer.PolicyServer(plan.POLICY_DIR) as server:
            serving.append(time.perf_counter() - started)
            for stack in STACKS:
                began = time.perf_counter()
                data = plan.plan(stack, server=server, inputs=False)
                warm[stack].append(time.perf_counter() - began)
                counts[stack] = sum(data["counts"].values())
                assert data["mandatoryViolations"] == 0, f"{stack} has mandatory violations"
        began = time.perf_counter()
        with contextlib.ExitStack() as cleanup:
            runs, servers = plan.run_programs(list(STACKS), False, lambda: plan.serve_packs(list(STACKS), cleanup))
            for stack, (result, error) in zip(STACKS, runs, strict=True):
                assert error is None, error
                assert plan.plan(stack, server=servers[stack], result=result, inputs=False)["mandatoryViolations"] == 0
        parallel.append(time.perf_counter() - began)
        print(
            f"  warm run {run + 1}/{args.runs}: dev {warm['dev'][-1]:.2f} s, prod {warm['prod'][-1]:.2f} s, "
            f"both in parallel {parallel[-1]:.2f} s",
            flush=True,
        )
    cold = []
    colds = max(1, args.runs // 2)
    for run in range(colds):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "offline.plan", "--stack", ",".join(STACKS)],
            cwd=program.ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        cold.append(time.perf_counter() - started)
        print(f"  cold run {run + 1}/{colds}: {cold[-1]:.2f} s", flush=True)
    both = [s + d + p for s, d, p in zip(serving, warm["dev"], warm["prod"], strict=True)]
    print(f"offline plan, median of {args.runs} runs (program under mocks + policy pack over gRPC)")
    for stack in STACKS:
        print(f"  {stack:5s} {statistics.median(warm[stack]):6.2f} s  {counts[stack]} resources")
    print(f"  pack  {statistics.median(serving):6.2f} s  starting the policy pack process")
    print(f"  both  {statistics.median(both):6.2f} s  one after the other, the pack started once, imports loaded")
    print(
        f"  both  {statistics.median(parallel):6.2f} s  programs in parallel processes, as `make plan "
        "STACK=dev,prod` runs them (target: 3 s)"
    )
    print(
        f"  both  {statistics.median(cold):6.2f} s  cold: `python -m offline.plan --stack dev,prod`, imports included"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
