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


BARE = """
import json, random, time
import simpy
n, total = {n}, {total}
env = simpy.Environment()
rng = random.Random(1)
per = max(1, total // n)
def proc(env):
    for _ in range(per):
        yield env.timeout(rng.expovariate(1 / 30))
for _ in range(n):
    env.process(proc(env))
t = time.perf_counter()
env.run()
print(json.dumps({{'us_per_event': (time.perf_counter() - t) / (per * n) * 1e6}}))
"""


def bare_simpy_us_per_event(n: int, total: int = 400_000) -> float:
    """A reference: bare SimPy's cost per event with ``n`` concurrent processes (heap and cache effects)."""
    return in_subprocess(BARE.format(n=n, total=total))["us_per_event"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 30000, 100000])
    args = ap.parse_args()
    base = baseline_dict()
    initial = sum(seg.get("initial_customers", 0) for seg in base["segments"].values())
    rows = []
    print(
        f"{'customers':>10}{'customer-years':>16}{'seconds':>10}{'µs per customer-year':>22}{'peak RSS MiB':>14}"
        f"{'bare SimPy µs/event':>21}"
    )
    bare = []
    for n in args.sizes:
        data = scaled(base, n / initial)
        r = in_subprocess(CODE.format(data=json.dumps(data, default=str)))
        per = r["seconds"] / r["customer_years"] * 1e6
        rows.append(per)
        bare.append(bare_simpy_us_per_event(n))
        print(
            f"{n:>10,}{r['customer_years']:>16,.0f}{r['seconds']:>10.1f}{per:>22.0f}{r['peak_rss_mib']:>14.0f}"
            f"{bare[-1]:>21.2f}",
            flush=True,
        )
    print(f"time per customer-year, largest / smallest size: {rows[-1] / rows[0]:.2f}x (goal within 1.3x)")
    print(
        f"bare SimPy with as many concurrent processes as customers: {bare[-1] / bare[0]:.2f}x per event "
        "(the event heap and memory locality, not cssim's model code)"
    )


if __name__ == "__main__":
    main()
