"""Scaling with the number of customers: time per customer-year and peak memory.

The baseline is scaled so its initial book has N customers (new logos and
headcounts scale with it) and one replication runs in a fresh subprocess.
A customer-year is one customer active for one year (Σ month-end active
logos / 12). Goal (issue 4): time per customer-year within 1.3× from 1,000 to
100,000 customers. The machine may be shared: figures are noisy.

Run: ``python benchmarks/bench_scaling.py [--sizes 1000 10000 30000 100000]``
"""

from __future__ import annotations

import argparse
import json

from _montecarlo import baseline_dict, in_subprocess, scaled

CODE = """
import json, time
from cssim import scenario_from_dict
from cssim.engine import run_replication
data = json.loads({data!r})
s = scenario_from_dict(data)
t = time.perf_counter()
arrays, _ = run_replication(s, 0)
elapsed = time.perf_counter() - t
cy = float(arrays['segment']['active'].sum() / 12.0)
print(json.dumps({{'seconds': elapsed, 'customer_years': cy}}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 30000, 100000])
    args = ap.parse_args()
    base = baseline_dict()
    initial = sum(seg.get("initial_customers", 0) for seg in base["segments"].values())
    rows = []
    print(f"{'customers':>10}{'customer-years':>16}{'seconds':>10}{'µs per customer-year':>22}{'peak RSS MiB':>14}")
    for n in args.sizes:
        data = scaled(base, n / initial)
        r = in_subprocess(CODE.format(data=json.dumps(data, default=str)))
        per = r["seconds"] / r["customer_years"] * 1e6
        rows.append(per)
        print(f"{n:>10,}{r['customer_years']:>16,.0f}{r['seconds']:>10.1f}{per:>22.0f}{r['peak_rss_mib']:>14.0f}", flush=True)
    print(f"time per customer-year, largest / smallest size: {rows[-1] / rows[0]:.2f}x (goal within 1.3x)")


if __name__ == "__main__":
    main()
