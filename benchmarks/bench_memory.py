"""Peak memory against the number of replications: 50 vs 500 of the baseline.

Each measurement is a fresh subprocess (peak resident set via
``resource.getrusage``) that simulates in-process (``jobs=1``, so the peak is
this process's) and derives the KPI table — and, second column, also writes
the full results folder (whose ``monthly.csv`` has a row per replication ×
month × segment, so it is expected to grow). Results are aggregated per
replication as each finishes (:class:`cssim.sim.backends.ReplicationStack`).

By default the baseline's customer counts and headcounts are scaled by
``--scale 0.02``: the per-replication aggregates (months × segments × pods) —
what could grow with the replication count — are the same as the full
baseline's, and 500 full-size replications take ~15 CPU-minutes. Use
``--scale 1`` for the full baseline. Goal (issue 4): equal within 10 %.

Run: ``python benchmarks/bench_memory.py [--scale 0.02] [--counts 50 500]``
"""

from __future__ import annotations

import argparse
import json
import tempfile

from _montecarlo import baseline_dict, in_subprocess, scaled

CODE = """
import json, time
from cssim import scenario_from_dict, simulate, write_results
s = scenario_from_dict(json.loads({data!r}))
t = time.perf_counter()
r = simulate(s, replications={n}, jobs=1)
k = r.kpis()
if {write}:
    write_results(r, {out!r}, force=True)
print(json.dumps({{'seconds': time.perf_counter() - t}}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=0.02)
    ap.add_argument("--counts", type=int, nargs="+", default=[50, 500])
    args = ap.parse_args()
    data = json.dumps(scaled(baseline_dict(), args.scale) if args.scale != 1 else baseline_dict(), default=str)
    print(f"baseline scaled by {args.scale}; jobs=1; peak RSS of a fresh process")
    print(f"{'replications':>13}{'simulate+kpis MiB':>19}{'seconds':>9}{'+ write folder MiB':>20}")
    peaks = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.counts:
            a = in_subprocess(CODE.format(data=data, n=n, write=False, out=f"{tmp}/x"))
            b = in_subprocess(CODE.format(data=data, n=n, write=True, out=f"{tmp}/r{n}"))
            peaks.append((a["peak_rss_mib"], b["peak_rss_mib"]))
            print(f"{n:>13}{a['peak_rss_mib']:>19.0f}{a['seconds']:>9.1f}{b['peak_rss_mib']:>20.0f}", flush=True)
    (a0, b0), (a1, b1) = peaks[0], peaks[-1]
    print(f"simulate+kpis: {args.counts[-1]} vs {args.counts[0]} replications: {a1 / a0 - 1:+.1%} (goal within 10 %)")
    print(f"with the results folder written: {b1 / b0 - 1:+.1%}")


if __name__ == "__main__":
    main()
