"""How long the planning page takes to answer a what-if at the baseline's size.

Drives :class:`cssim.analysis.whatif.Planner` exactly as the page does (the widgets add only the drawing
of two charts, timed separately): the start once (which also starts the worker processes),
then a sequence of new settings a planning meeting would try — mid-market CSMs 3 → 4, 5, 6,
SMB moved to low-touch, the sub-$5k route moved to low-touch pooled, two more enterprise
CSMs — each a new simulation, and finally an earlier setting again (answered from the cache).
Goal (issue 15): every new what-if within 5 s on 2 cores. The machine may be shared: the
load average is printed with the figures, and the CPU time of one replication gives the
figure for an idle machine (replications × CPU time ÷ cores, plus the drawing).

Run: ``python benchmarks/bench_app.py [--replications 8] [--jobs 2] [--scenario baseline]``
"""

from __future__ import annotations

import argparse
import os
import time

GOAL_SECONDS = 5.0


def main() -> None:
    from cssim import plots
    from cssim.analysis.whatif import Planner

    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", default="baseline")
    ap.add_argument("--replications", type=int, default=None, help="default: what the page uses (at most 8)")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()

    planner = Planner(args.scenario, replications=args.replications, jobs=args.jobs)
    reps = planner.start.replications
    print(f"planning page what-ifs on {planner.name}: {reps} replications, {args.jobs} jobs, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    t = time.perf_counter()
    planner.what_if(planner.start)
    print(f"{'start (also starts the workers)':<44}{time.perf_counter() - t:>8.2f} s")

    settings = [
        planner.controls(headcount={"mid_market": 4}),
        planner.controls(headcount={"mid_market": 5}),
        planner.controls(headcount={"mid_market": 6}),
        planner.controls(headcount={"mid_market": 6}, touch_model={"smb": "low_touch"}),
        planner.controls(headcount={"mid_market": 6}, routes=["low_touch_pooled"]),
        planner.controls(headcount={"mid_market": 6, "enterprise": 6}),
    ]
    times, draw = [], []
    for controls in settings:
        w = planner.what_if(controls)
        assert not w.cached
        times.append(w.seconds)
        t = time.perf_counter()
        plots.fan_chart({"start": w.start, "what-if": w.results}, "arr")
        plots.cost_frontier(planner.frontier(reps), current="; ".join(w.changes))
        w.table_html()
        draw.append(time.perf_counter() - t)
        print(f"{'; '.join(w.changes):<44}{w.seconds:>8.2f} s   (+ {draw[-1]:.2f} s table and charts)")
    # Load-independent: CPU seconds of one replication in this process (what a worker spends per replication).
    from cssim.sim.engine import run_replication

    variant, _ = planner.scenario(settings[-1])
    cpu = time.process_time()
    run_replication(variant, 0)
    per_rep = time.process_time() - cpu
    idle = reps * per_rep / args.jobs + sorted(draw)[len(draw) // 2]
    print(f"{'one replication, CPU time':<44}{per_rep:>8.2f} s   → on an idle machine a what-if of {reps} "
          f"replications on {args.jobs} cores takes about {idle:.1f} s with table and charts")
    again = planner.what_if(settings[1])
    assert again.cached
    print(f"{'an earlier setting again (cache)':<44}{again.seconds:>8.3f} s")
    worst = max(t + d for t, d in zip(times, draw, strict=True))
    print(f"\nnew what-if: median {sorted(times)[len(times) // 2]:.2f} s, worst {worst:.2f} s with table and "
          f"charts; goal ≤ {GOAL_SECONDS:.0f} s: {'met' if worst <= GOAL_SECONDS else 'NOT met'} "
          f"(load average now {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
