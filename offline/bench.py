"""`make bench`: time the offline plan of both stacks (program and policy pack), several runs.

Prints the median per stack and for both together, warm (in one process, as CI re-plans) and cold
(a fresh `python -m offline.plan` per stack, imports included), with the resource counts. Timing
lives here and not in the tests.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from . import plan, program

STACKS = ("dev", "prod")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    warm: dict[str, list[float]] = {s: [] for s in STACKS}
    counts: dict[str, int] = {}
    plan.plan("dev")  # imports and first-use costs, not measured
    for _ in range(args.runs):
        for stack in STACKS:
            started = time.perf_counter()
            data = plan.plan(stack)
            warm[stack].append(time.perf_counter() - started)
            counts[stack] = sum(data["counts"].values())
            assert data["mandatoryViolations"] == 0, f"{stack} has mandatory violations"
    cold = []
    for _ in range(max(1, args.runs // 2)):
        started = time.perf_counter()
        for stack in STACKS:
            subprocess.run([sys.executable, "-m", "offline.plan", "--stack", stack], cwd=program.ROOT, check=True,
                           stdout=subprocess.DEVNULL)
        cold.append(time.perf_counter() - started)
    print(f"offline plan, median of {args.runs} runs (program under mocks + policy pack over gRPC)")
    for stack in STACKS:
        print(f"  {stack:5s} {statistics.median(warm[stack]):6.2f} s  {counts[stack]} resources")
    both = [d + p for d, p in zip(warm["dev"], warm["prod"])]
    print(f"  both  {statistics.median(both):6.2f} s  warm (target: 3 s)")
    print(f"  both  {statistics.median(cold):6.2f} s  cold: two fresh processes, imports included")
    return 0


if __name__ == "__main__":
    sys.exit(main())
