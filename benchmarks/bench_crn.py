"""Common random numbers: paired-difference interval width against independent streams.

Compares ``scenarios/baseline.yaml`` with ``scenarios/high_touch.yaml`` on the
same replications (paired, common random numbers), and again with the
variant run on another seed (independent: a Welch interval for the
difference of means). Same number of replications, 90 % intervals; prints the
width ratio paired / independent per KPI. The machine may be shared (timings
only; the widths are exact for the given seed).

Run: ``python benchmarks/bench_crn.py [--replications 10] [--jobs 2]``
"""

from __future__ import annotations

import argparse

import numpy as np
from _montecarlo import ROOT

KPIS = ("grr", "nrr", "logo_retention", "renewal_rate", "ending_arr", "churned_arr", "csm_cost")


def main() -> None:
    import cssim
    from cssim.analysis.compare import paired_difference, unpaired_difference

    ap = argparse.ArgumentParser()
    ap.add_argument("--replications", type=int, default=10)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    a = cssim.load_scenario(ROOT / "scenarios" / "baseline.yaml")
    b = cssim.load_scenario(ROOT / "scenarios" / "high_touch.yaml")
    paired = cssim.compare([a, b], replications=args.replications, jobs=args.jobs)
    independent = cssim.simulate(b, replications=args.replications, seed=a.seed + 1, jobs=args.jobs)
    ra, rb = paired.results
    print(f"baseline vs high_touch, {args.replications} replications, 90 % intervals of the difference (high_touch − baseline)")
    print(f"{'KPI':<16}{'paired diff':>14}{'paired width':>14}{'indep. width':>14}{'ratio':>8}")
    ratios = []
    for k in KPIS:
        p = paired_difference(ra.kpi(k), rb.kpi(k))
        u = unpaired_difference(ra.kpi(k), independent.kpi(k))
        wp, wu = p["ci_hi"] - p["ci_lo"], u["ci_hi"] - u["ci_lo"]
        ratios.append(wp / wu)
        print(f"{k:<16}{p['diff']:>14.4g}{wp:>14.4g}{wu:>14.4g}{wp / wu:>8.2f}")
    print(f"median width ratio paired / independent: {np.median(ratios):.2f} "
          f"(≈ {1 / np.median(ratios) ** 2:.0f}x fewer replications for the same precision)")


if __name__ == "__main__":
    main()
