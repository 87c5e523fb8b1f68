"""``cssim plan`` on the baseline against a full grid over the same range.

Searches (from the scenario's value, from 0 and from 30) the smallest SMB pod that keeps the SMB CSM-task miss rate at or
below 5 % for 80 % of replications, over headcounts 0..30. Reports the values
simulated by the bracket-and-bisect search against the 31 of a full grid
(goal, issue 4: ≥ 3× fewer), the plan's wall time, and the full grid's wall
time — measured with ``--full-grid``, otherwise estimated from the plan's
mean time per value (said so in the output). The machine may be shared.

Run: ``python benchmarks/bench_plan.py [--replications 4] [--jobs 2] [--full-grid]``
"""

from __future__ import annotations

import argparse
import time

from _montecarlo import BASELINE

TARGET = "touch_miss_rate[smb] <= 0.05"
OVER = "team.pods.smb.headcount"


def main() -> None:
    import cssim

    ap = argparse.ArgumentParser()
    ap.add_argument("--replications", type=int, default=4)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--max", type=int, default=30)
    ap.add_argument("--full-grid", action="store_true")
    args = ap.parse_args()
    scenario = cssim.load_scenario(BASELINE)
    grid_n = args.max + 1
    runs = []
    for start in (None, 0, args.max):
        t = time.perf_counter()
        result = cssim.plan(scenario, TARGET, over=OVER, high=args.max, replications=args.replications,
                            jobs=args.jobs, start=start)
        runs.append((result, time.perf_counter() - t))
        label = "the scenario's value" if start is None else str(start)
        print(f"plan from {label}: answer {result.answer}, {result.n_evaluated} values simulated "
              f"(order {result.evaluations}) in {runs[-1][1]:.1f} s", flush=True)
    result, plan_time = max(runs, key=lambda r: r[0].n_evaluated)
    print()
    print(result.summary())
    print(f"\nworst of the three starts: {result.n_evaluated} values simulated in {plan_time:.1f} s")
    if args.full_grid:
        data = scenario.model_dump(mode="json")
        data["sweep"] = {"grid": {OVER: list(range(grid_n))}}
        t = time.perf_counter()
        cssim.sweep(cssim.scenario_from_dict(data), replications=args.replications, jobs=args.jobs)
        grid_time = time.perf_counter() - t
        how = "measured"
    else:
        grid_time = plan_time / result.n_evaluated * grid_n
        how = "estimated from the plan's time per value"
    print(f"full grid: {grid_n} values, {grid_time:.1f} s ({how})")
    print(f"simulated points: {grid_n / result.n_evaluated:.1f}x fewer (goal >= 3x); "
          f"wall time {grid_time / plan_time:.1f}x less")


if __name__ == "__main__":
    main()
