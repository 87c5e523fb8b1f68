"""Regenerate the README's figures (docs/figures/*.png) from the shipped scenarios.

    python scripts/make_figures.py [--replications 6] [--jobs 2] [--out docs/figures]

Replication counts are small so the whole script runs in a minute or two; the
figures illustrate the plots, the numbers are the shipped scenarios' own.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

import cssim  # noqa: E402
from cssim import plots  # noqa: E402
from cssim.analysis.compare import compare  # noqa: E402
from cssim.analysis.sweep import sweep  # noqa: E402
from cssim.fitting.cohorts import fit_cohorts, read_cohort_table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "scenarios"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", "-n", type=int, default=6)
    parser.add_argument("--jobs", "-j", type=int, default=2)
    parser.add_argument("--out", "-o", default=str(REPO / "docs" / "figures"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    def done(name, ax):
        path = plots.save(ax, out / f"{name}.png")
        print(f"{time.perf_counter() - t0:6.1f}s  {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")

    # Three shipped policies on the same customers (common random numbers).
    cr = compare(
        [SCENARIOS / "baseline.yaml", SCENARIOS / "low_touch.yaml", SCENARIOS / "high_touch.yaml"],
        replications=args.replications, jobs=args.jobs,
    )
    base = cr.results[0]
    done("fan_arr", plots.fan_chart(cr, "arr"))
    done("forest", plots.forest(cr.differences()))
    done("waterfall", plots.arr_waterfall(base, months=(1, 12)))
    done("stages", plots.stage_occupancy(base))
    done("at_risk", plots.health_share(base))
    done("csm_load", plots.csm_load(base))

    # Headcount planning over one year: a sweep of the SMB pod's headcount (the frontier), and the
    # smallest team whose 90 % interval of the mean SMB touch-miss rate stays under 5 % (the chosen point).
    overrides = {"horizon_months": 12, "team.pods.enterprise.hires": [],
                 "sweep": {"grid": {"team.pods.smb.headcount": [0, 1, 2, 3, 4]}}}
    scenario = cssim.load_scenario(SCENARIOS / "baseline.yaml", overrides)
    swept = sweep(scenario, replications=max(4, args.replications), jobs=args.jobs)
    frontier = plots.frontier_from_sweep(swept, "touch_miss_rate", "smb")
    meets = frontier[frontier["ci_hi"] <= 0.05]
    chosen = int(meets["value"].min()) if len(meets) else None
    done("frontier", plots.headcount_frontier(frontier, kpi="touch_miss_rate", scope="smb", target=0.05, chosen=chosen,
                                              xlabel="SMB CSM headcount"))

    # Survival: the SMB churn curve of the baseline (heterogeneous customers) against the
    # Kaplan–Meier of lifetimes drawn from it and a Weibull fitted to them.
    from lifelines import KaplanMeierFitter, WeibullFitter

    curve = scenario.segments["smb"].lifecycle.churn.build()
    rng = np.random.default_rng(20270101)
    lifetimes = curve.sample(rng, 800)
    follow_up = rng.uniform(365.0, 3 * 365.25, lifetimes.size)  # staggered sign-up dates
    observed = lifetimes <= follow_up
    durations = np.minimum(lifetimes, follow_up)
    km = KaplanMeierFitter().fit(durations, observed)
    weibull = WeibullFitter().fit(durations, observed)
    done("survival_vs_km", plots.survival_vs_km(
        km, {"input curve (exponential–gamma)": curve, "Weibull fitted to the same data": weibull},
        title="SMB time to churn: input curve, Kaplan–Meier and a Weibull fit",
    ))

    # A published cohort table: fit on the first 7 periods, project the rest.
    cohort = fit_cohorts(read_cohort_table(REPO / "tests" / "data" / "contractual_cohort_regular.csv"), until=7,
                         n_draws=500)
    done("cohort_projection", plots.cohort_projection(cohort.projection, model=cohort.best))
    print(f"done in {time.perf_counter() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
