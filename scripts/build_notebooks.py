"""Write the notebooks in notebooks/ from the cell lists below, without outputs.

    python scripts/build_notebooks.py

The notebooks are generated so they stay clean (no outputs, no execution counts,
stable cell ids) and thin: every computation is a call into cssim. Each starts
with a cell tagged ``parameters`` (papermill-style) naming the scenario file, the
replications and a ``FAST`` flag the test suite sets.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

SETUP = """\
%matplotlib inline
%config InlineBackend.figure_format = "retina"
import pandas as pd
import cssim
from cssim import plots

pd.options.display.float_format = lambda v: f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"

REPLICATIONS = min(REPLICATIONS, 3) if FAST else REPLICATIONS"""


def md(text: str):
    return new_markdown_cell(text.strip("\n"))


def code(text: str):
    return new_code_cell(text.strip("\n"))


def params(text: str):
    cell = code(text)
    cell.metadata["tags"] = ["parameters"]
    return cell


QUICKSTART = [
    md("""
# Quickstart: simulate a scenario and read the results

Load a scenario file, run its Monte Carlo replications, and read the KPIs (each with an
interval) and the monthly series as fan charts. Change the parameters below to re-run the
notebook on another scenario.
"""),
    params("""
SCENARIO = "../scenarios/baseline.yaml"  # scenario file
REPLICATIONS = 20                         # Monte Carlo replications
JOBS = 2                                  # worker processes
FAST = False                              # small run (the test suite sets this)
"""),
    code(SETUP),
    md("## The scenario\n\nValidated on load; every field, unit and default is defined in `cssim/model/scenario.py`."),
    code("""
scenario = cssim.load_scenario(SCENARIO)
print(scenario.description)
print(f"{scenario.horizon_months} months from {scenario.start_date}; segments: {', '.join(scenario.segments)}; "
      f"pods: {', '.join(scenario.team.pods)}")
"""),
    md("## Simulate\n\nReplication *r* always uses the random streams keyed by (seed, *r*): the same numbers on any machine and any number of jobs."),
    code("""
results = cssim.simulate(scenario, replications=REPLICATIONS, jobs=JOBS)
print(results.summary())
"""),
    md("""
## KPIs with intervals

`lo`/`hi`: where the outcome may land (5th–95th percentile across replications);
`ci_lo`/`ci_hi`: how precisely the replications pin down the mean.
"""),
    code('results.kpis(scope="all")'),
    md("By segment (means):"),
    code("""
kpis = results.kpis()
kpis[kpis.kpi.isin(["grr", "nrr", "logo_retention", "ending_arr", "touch_miss_rate"])].pivot(
    index="kpi", columns="scope", values="mean")
"""),
    md("## ARR and customers over time\n\nMedian with 50 % and 90 % bands across replications."),
    code('plots.fan_chart(results, "arr").figure'),
    code('plots.fan_chart(results, "active").figure'),
    md("## Where ARR came from and went: the first year's bridge (means across replications)"),
    code("plots.arr_waterfall(results, months=(1, 12)).figure"),
    md("## Lifecycle stages and health"),
    code("plots.stage_occupancy(results).figure"),
    code("plots.health_share(results).figure"),
    md("## The CSM team: utilisation, backlog and missed touches per pod"),
    code("plots.csm_load(results)[0].figure"),
    md("""
## Next

- Save the run: `cssim.write_results(results, "results/baseline")` (or `cssim run` on the
  command line), then `cssim report results/baseline` for a one-page summary.
- Compare policies on the same customers: `03_touch_models`; size the team: `04_headcount_planning`.
"""),
]

FIT = [
    md("""
# Fit retention curves from data, and use them in a scenario

Two kinds of data. First a cohort retention table (customers of an acquisition cohort still
active after each renewal) is fitted with several models, checked against the periods held
out, and the best curve replaces a segment's churn curve in a scenario. Then a customer
history (one row per customer episode, with dates) is fitted per segment × lifecycle
transition against Kaplan–Meier, written as a curves file, and used by a scenario with
`family: fitted`.

The example is a published table (Fader & Hardie 2007, "How to Project Customer
Retention"): 1000 customers at year 0, calibrated on years 0–7, projected to year 12.
"""),
    params("""
SCENARIO = "../scenarios/baseline.yaml"                   # scenario whose churn curve is replaced
COHORT_TABLE = "../examples/contractual_cohort_regular.csv"  # cohort, period (or year), active
CALIBRATE_UNTIL = 7                                        # fit on periods 0..7, hold out the rest
SEGMENT = "smb"                                            # segment that gets the fitted churn curve
HISTORY = "../examples/history.csv"                        # customer history (`cssim synth` of the baseline)
TRANSITIONS = ("onboarding", "growth", "at_risk", "recovery", "churn")  # fitted per segment (FAST: onboarding, churn)
REPLICATIONS = 20
JOBS = 2
FAST = False
"""),
    code(SETUP),
    md("## Fit"),
    code("""
table = cssim.read_cohort_table(COHORT_TABLE)
fit = cssim.fit_cohorts(table, until=CALIBRATE_UNTIL, n_draws=300 if FAST else 2000)
print(fit.report())
"""),
    md("## Projection against the observed periods (the recommended projection, with its interval)\n\n"
       "When no model is clearly best by AIC the report recommends the model-averaged projection, whose "
       "interval also carries the choice of model."),
    code("plots.cohort_projection(fit.projection, model=fit.recommended).figure"),
    md("Every model side by side: a constant hazard (geometric) ignores that survivors are the loyal customers and under-projects."),
    code("plots.cohort_projection(fit.projection).figure"),
    md("## Use the fitted curve in a scenario\n\nThe continuous-time churn curve (days) the fit implies:"),
    code("""
curve = fit.curve_spec()
curve
"""),
    code("""
base = cssim.load_scenario(SCENARIO)
fitted = cssim.load_scenario(SCENARIO, {"name": "fitted_churn", f"segments.{SEGMENT}.lifecycle.churn": curve})
comparison = cssim.compare([base, fitted], replications=REPLICATIONS, jobs=JOBS)
print(comparison.summary())
"""),
    code('plots.fan_chart(comparison, "active", segment=SEGMENT).figure'),
    md("""
# From a customer history

One row per customer episode: dates of signing, kickoff, onboarding, at-risk, recovery and
churn, with segment, touch model and ARR (format: `docs/fitting.md`). The example is a
synthetic history of the baseline scenario (`cssim synth`), so the fits should land near the
baseline's own curves. Every row is validated first; `drop_bad_rows=True` drops bad rows and
says why instead of stopping at the first.
"""),
    code("""
history = cssim.read_history(HISTORY, drop_bad_rows=True)
print(f"{len(history.frame)} customer episodes ({', '.join(history.segments)}), extract date "
      f"{history.extract_date.date()}; {history.dropped} bad rows dropped")
print("\\n".join(history.problems[:5]))
"""),
    md("""
## Fit every segment × transition

Kaplan–Meier plus the parametric candidates cssim can simulate (durations in days, censored
at churn or the extract date, left-truncated at `observed_from`); the lowest AIC is chosen.
Touch-model hazard ratios come from a Cox model stratified by segment. In fast mode only the
transitions shown below are fitted.
"""),
    code("""
hfit = cssim.fit_history(history, transitions=("onboarding", "churn") if FAST else TRANSITIONS)
print(f"fitted: {', '.join(hfit.fits)}")
"""),
    md("## Candidates for the segment's churn and onboarding clocks (AIC, BIC; the spline is a benchmark only)"),
    code("""
hfit.fits[f"{SEGMENT}/churn"].candidates_[["family", "log_likelihood", "AIC", "BIC", "delta_AIC", "chosen"]]
"""),
    code("""
hfit.fits[f"{SEGMENT}/onboarding"].candidates_[["family", "log_likelihood", "AIC", "BIC", "delta_AIC", "chosen"]]
"""),
    md("## The chosen curves against Kaplan–Meier with its 95 % band"),
    code('hfit.plot_vs_km(f"{SEGMENT}/churn").figure'),
    code('hfit.plot_vs_km(f"{SEGMENT}/onboarding").figure'),
    md("## Touch-model hazard ratios (vs the most common touch model; with centred log ARR), 95 % CIs"),
    code("""
hfit.touch_effects[["transition", "covariate", "reference", "hr", "lower", "upper", "p", "events"]]
"""),
    md("""
## Write the curves file and simulate with it

`write_history_fit` writes `curves.json` (with `fit_report.md` and `km.csv`); a scenario
references a curve with `{family: fitted, file: .../curves.json, key: smb/churn}` (in a YAML
file the path is relative to the scenario). Here the fitted churn and onboarding curves
replace the segment's in the baseline, and both run on the same customers.

The fitted churn clock is the observed time from signing to churn, so it already contains
the extra churn of at-risk spells. The engine multiplies a segment's churn curve by
`at_risk_churn_hazard_ratio` while a customer is at risk; with a fitted curve that ratio is
set to 1, or at-risk churn is counted twice (about 10 % fewer SMB customers after three years).
With it, the fitted scenario should land close to the baseline the history came from.
"""),
    code("""
import tempfile
from pathlib import Path
from cssim.fitting.curvesfile import write_history_fit

out = write_history_fit(hfit, Path(tempfile.mkdtemp()) / "history-fit")
curves_file = str(out / "curves.json")
sorted(p.name for p in out.iterdir())
"""),
    code("""
from_history = cssim.load_scenario(SCENARIO, {
    "name": "fitted_from_history",
    f"segments.{SEGMENT}.lifecycle.churn": {"family": "fitted", "file": curves_file, "key": f"{SEGMENT}/churn"},
    f"segments.{SEGMENT}.lifecycle.onboarding": {"family": "fitted", "file": curves_file,
                                                 "key": f"{SEGMENT}/onboarding"},
    f"segments.{SEGMENT}.lifecycle.at_risk_churn_hazard_ratio": 1.0,  # at-risk churn is in the fitted curve
})
history_comparison = cssim.compare([base, from_history], replications=REPLICATIONS, jobs=JOBS)
print(history_comparison.summary())
"""),
    code('plots.fan_chart(history_comparison, "active", segment=SEGMENT).figure'),
    md("""
The same from the command line: `cssim fit examples/history.csv --out results/history-fit`, then
`churn: {family: fitted, file: results/history-fit/curves.json, key: smb/churn}` in a scenario.
`cssim.plots.survival_vs_km(km, curves)` draws any curve against a lifelines
`KaplanMeierFitter` or raw durations and event flags (see `05_validation`).
"""),
]

TOUCH = [
    md("""
# Touch models for one segment: high-touch vs low-touch vs tech-touch

Each variant moves the segment to another touch model (with the team that model needs)
and all variants run on **the same simulated customers** (common random numbers), so the
paired differences show what the policy changed, not how the draws fell.
"""),
    params("""
SCENARIO = "../scenarios/baseline.yaml"
SEGMENT = "smb"
# Each variant: scenario fields to override (the touch model, and the pod that serves it).
VARIANTS = {
    "smb_high_touch": {"segments.smb.touch_model": "high_touch", "team.pods.smb.headcount": 40,
                       "team.pods.smb.book_cap": 40, "team.pods.smb.cost_per_year": 150000},
    "smb_low_touch": {"segments.smb.touch_model": "low_touch", "team.pods.smb.headcount": 6,
                      "team.pods.smb.book_cap": 250},
    "smb_tech_touch": {"segments.smb.touch_model": "tech_touch", "team.pods.smb.headcount": 0},
}
REPLICATIONS = 20
JOBS = 2
FAST = False
"""),
    code(SETUP),
    code("""
base = cssim.load_scenario(SCENARIO)
variants = [cssim.load_scenario(SCENARIO, {"name": name, **fields}) for name, fields in VARIANTS.items()]
comparison = cssim.compare([base, *variants], replications=REPLICATIONS, jobs=JOBS)
print(comparison.summary())
"""),
    md("## Retention and revenue of the segment, per variant (means with 90 % intervals)"),
    code("""
table = comparison.table(scope=None)
table[table.scope.isin([SEGMENT]) & table.kpi.isin(["grr", "nrr", "logo_retention", "ending_arr", "touch_miss_rate"])
      ].pivot(index="kpi", columns="scenario", values="mean")
"""),
    md("## CSM time and cost (all pods)"),
    code("""
table[(table.scope == "all") & table.kpi.isin(["csm_cost", "csm_utilisation", "touches_delivered", "touches_missed",
                                              "cost_per_retained_arr"])].pivot(index="kpi", columns="scenario",
                                                                                values="mean")
"""),
    md("## Paired differences to the baseline\n\nFor the segment (ratios in percentage points), then the whole business in dollars; an interval that excludes 0 is a real difference."),
    code("""
differences = comparison.differences(scope=None)
plots.forest(differences, scope=SEGMENT).figure
"""),
    code("plots.forest(differences, kpis=plots.FOREST_MONEY_KPIS).figure"),
    md("## ARR and customers of the segment over time"),
    code('plots.fan_chart(comparison, "arr", segment=SEGMENT).figure'),
    code('plots.fan_chart(comparison, "active", segment=SEGMENT).figure'),
]

PLAN = [
    md("""
# Headcount planning: how many CSMs for a target?

A sweep over a pod's headcount shows the whole frontier (KPI with its interval, CSM cost);
`cssim.plan` finds the smallest headcount that meets a target with a stated confidence
(the current value, the far end of the range, then bisection; every value on the same
customers). Its table gives, for each value tried, the KPI met at that confidence, the CSM
cost per year and the ARR retained per extra CSM with its interval; a headcount that does
not move the KPI is reported as such after two values.
"""),
    params("""
SCENARIO = "../scenarios/baseline.yaml"
POD = "smb"                                  # the pod whose headcount is varied
HEADCOUNTS = [0, 1, 2, 3, 4]                 # the sweep
TARGET = "touch_miss_rate[smb] <= 0.05"      # KPI[scope] OP value
CONFIDENCE = 0.8                             # share of replications that must meet it
REPLICATIONS = 20
JOBS = 2
CACHE = ".cssim-cache"                       # finished batches, shared by the sweep and the plan
FAST = False
"""),
    code(SETUP),
    code("""
field = f"team.pods.{POD}.headcount"
scenario = cssim.load_scenario(SCENARIO, {"sweep": {"grid": {field: HEADCOUNTS}}})
swept = cssim.sweep(scenario, replications=REPLICATIONS, jobs=JOBS, cache=CACHE)
print(swept.summary())
"""),
    md("""
A plan's confidence needs enough replications to support it: with fewer than `min_replications(CONFIDENCE)`
(11 at 80 %), even every replication meeting the target would not show at 90 % that 80 % of futures do, and
`cssim.plan` refuses. The plan therefore runs at least that many.
"""),
    code("""
from cssim.analysis.plan import min_replications

plan_replications = max(REPLICATIONS, min_replications(CONFIDENCE))
result = cssim.plan(cssim.load_scenario(SCENARIO), TARGET, over=field, confidence=CONFIDENCE,
                    low=min(HEADCOUNTS), high=max(HEADCOUNTS), replications=plan_replications, jobs=JOBS, cache=CACHE)
print(result.summary())
"""),
    md("## The frontier: KPI with its interval, CSM cost, the target and the chosen headcount"),
    code("""
target = cssim.parse_target(TARGET)
plots.headcount_frontier(swept, kpi=target.kpi, scope=target.scope, target=target.value, chosen=result.answer,
                         xlabel=f"{POD} CSM headcount").figure
"""),
    md("## Marginal cost and ARR retained per extra CSM (between evaluated values)"),
    code('result.table()[["value", "kpi_at_confidence", "mean", "share_met", "csm_cost_per_year", "retained_arr",\n'
         '              "marginal_cost_per_csm", "marginal_arr_per_csm", "marginal_arr_per_csm_lo",\n'
         '              "marginal_arr_per_csm_hi"]]'),
    md("The same frontier for gross revenue retention (all customers):"),
    code('plots.headcount_frontier(swept, kpi="grr", xlabel=f"{POD} CSM headcount").figure'),
]

VALIDATION = [
    md("""
# Validation: the model against known answers

1. **Erlang C.** A pod whose tasks arrive as a Poisson stream with exponential durations,
   served first-come first-served, is an M/M/c queue: its utilisation, probability of
   waiting and mean wait are known in closed form.
2. **Input curve vs simulated churn.** With no interventions, the simulated time to churn
   must follow the curve the scenario gives (Kaplan–Meier of simulated lifetimes against it).
3. **A published cohort projection.** The shifted-beta-geometric fit of Fader & Hardie (2007)
   on years 0–7 of their "regular" cohort: alpha = 0.704, beta = 1.182, 170 customers at year 12
   (actual 173).
"""),
    params("""
QUEUE_SCENARIO = "data/mmc_queue.yaml"       # an M/M/c pod (see the comments in the file)
CHURN_SCENARIO = "data/churn_curve.yaml"     # churn only through the input curve
COHORT_TABLE = "../examples/contractual_cohort_regular.csv"
REPLICATIONS = 8
JOBS = 2
FAST = False
"""),
    code(SETUP + """
from cssim.sim.engine import run_replication
from cssim.model.queueing import erlang_c"""),
    md("## 1. Erlang C\n\nThe arrival and service rates follow from the scenario's fields (tasks per day):"),
    code("""
queue = cssim.load_scenario(QUEUE_SCENARIO)
segment, = queue.segments.values()
task, = queue.touch_models[segment.touch_model].tasks.values()
pod, = queue.team.pods.values()
lam = segment.initial_customers * task.rate_per_year / 365.25        # tasks per day
mu = pod.hours_per_week * pod.customer_facing_share / 7 / task.hours  # tasks per CSM-day
theory = erlang_c(lam, mu, pod.headcount)
theory
"""),
    code("""
sim = cssim.simulate(queue, replications=REPLICATIONS, jobs=JOBS)
k = sim.kpis(scope="all").set_index("kpi")
m = sim.monthly()
pd.DataFrame({
    "Erlang C": [theory.utilisation, theory.p_wait, theory.mean_wait],
    "simulated (mean)": [k.loc["csm_utilisation", "mean"], m.tasks_waited.sum() / m.tasks_delivered.sum(),
                         k.loc["mean_wait_days", "mean"]],
    "simulated 90 % CI": [f"{k.loc[n, 'ci_lo']:.3f} – {k.loc[n, 'ci_hi']:.3f}" if n else ""
                          for n in ("csm_utilisation", None, "mean_wait_days")],
}, index=["utilisation", "P(wait)", "mean wait (days)"])
"""),
    md("The simulation starts with an empty queue, so its figures sit slightly below the steady state; the gap shrinks with the horizon."),
    md("## 2. Input curve vs simulated churn\n\nLifetimes of the new logos of every replication, pooled (from signing; still active at the end = censored):"),
    code("""
churn = cssim.load_scenario(CHURN_SCENARIO)
records = [rec for rep in range(REPLICATIONS) for rec in run_replication(churn, rep, record=True)[1]]
horizon_days = churn.horizon_months * 365.25 / 12
lifetimes = pd.DataFrame(records).query("signed_day >= 0")
durations = lifetimes.churned_day.fillna(horizon_days) - lifetimes.signed_day
churned = lifetimes.churned_day.notna()
curve = churn.segments["monthly"].lifecycle.churn
plots.survival_vs_km((durations, churned), {f"input curve ({curve.family})": curve.build()},
                     title="Simulated time to churn vs the input curve").figure
"""),
    md("## 3. The published cohort projection"),
    code("""
fit = cssim.fit_cohorts(cssim.read_cohort_table(COHORT_TABLE), until=7, n_draws=300 if FAST else 2000)
sbg = fit.fits["sbg"]
pd.DataFrame({"published": [0.704, 1.182, 170], "cssim": [sbg.params["alpha"], sbg.params["beta"],
                                                      fit.projected("sbg").loc[12]]},
             index=["alpha", "beta", "customers at year 12"])
"""),
    code('plots.cohort_projection(fit.projection, model="sbg").figure'),
]

HONEST = [
    md("""
# Honest forecasts: how much to trust them, and is high-touch really reducing churn?

A forecast built on fitted curves is uncertain in two ways: which customers churn (process
noise, what Monte Carlo replications show) and what the curves are (estimation error: they
were fitted on a few hundred customers). And a touch-model effect read off a history may be
selection: big accounts get high-touch and churn less anyway. Three checks, each a call into cssim:

1. **Estimation uncertainty** — fit a churn curve on a short history, forecast with it, and
   measure how much of each interval is owed to not knowing the curve (`cssim.decompose`).
2. **Touch effects that are not just selection** — naive, covariate-adjusted and
   inverse-probability-weighted hazard ratios, with the balance diagnostic (`cssim.touch_effects`).
3. **Back-testing** — pretend it is an earlier date, forecast, and score the forecast against what
   happened next, next to the simple rates people use today (`cssim.backtest`).

The data are synthetic, so the truth is known: histories of a young SMB business written by
`cssim.sim.synth` from `data/young_smb.yaml` (20 new logos a month; a churn hazard that falls with
tenure), and a customer table with a known touch effect.
"""),
    params("""
TRUTH = "data/young_smb.yaml"   # the business behind the synthetic histories
HISTORY_MONTHS = 18             # months of history the curves are fitted on (also the back-test's cutoff)
FORECAST_MONTHS = 24            # part 1: months forecast with the fitted curve (FAST: 12)
BACKTEST_MONTHS = 30            # part 3: months of history; the last 30 - 18 = 12 are scored
CUSTOMERS = 3000                # part 2: customers in the touch-effect table (FAST: 1500)
TRUE_HR = 0.8                   # part 2: high-touch's true churn hazard ratio
SCENARIO = "../scenarios/baseline.yaml"  # part 2: where the estimated effect is pasted
SEED = 11
REPLICATIONS = 100
JOBS = 2
FAST = False
"""),
    code(SETUP + """
import tempfile
from pathlib import Path
import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure
from cssim.fitting.curvesfile import write_history_fit
from cssim.sim.synth import synthesize_history

truth = cssim.load_scenario(TRUTH)
work = Path(tempfile.mkdtemp())
if FAST:  # a few replications: worker processes would cost more to start than they save
    CUSTOMERS, FORECAST_MONTHS, JOBS = min(CUSTOMERS, 1500), min(FORECAST_MONTHS, 12), 1"""),
    md("""
## 1. Estimation uncertainty

An 18-month history of the business: one row per customer, censored at the extract date.
"""),
    code("""
history_file = work / "history.csv"
synthesize_history(truth, seed=SEED, months=HISTORY_MONTHS).to_csv(history_file, index=False)
history = cssim.read_history(history_file)
print(f"{len(history.frame)} customers signed in {HISTORY_MONTHS} months, {history.frame.churn_date.notna().sum()} "
      f"churned by the extract date {history.extract_date.date()}")
"""),
    md("""
Fit the churn clock (candidates by AIC, as in `02_fit_from_history`) and write the curves file.
Every fitted curve is stored with the covariance of its parameters.
"""),
    code("""
hfit = cssim.fit_history(history, transitions=("churn",))
curves_file = str(write_history_fit(hfit, work / "fit") / "curves.json")
hfit.fits["smb/churn"].candidates_[["family", "AIC", "delta_AIC", "chosen"]]
"""),
    md("""
The forecast: the customers the business will sign over the next 24 months (from the extract
date, at the same 20 a month), with the fitted churn curve in place of the true one —
`{family: fitted, file, key}`. Because the curve carries its covariance,
`parameter_uncertainty` is `asymptotic` by default: each replication draws the curve's parameters
once, then simulates its customers with that curve. (By default a fit with several credible
families is also averaged over them — each replication first draws a family by its Akaike
weight — and `decompose` then reports that share too; `model_uncertainty: best` keeps the chosen
family here, so that this comparison isolates estimation error.)
"""),
    code("""
forecast = cssim.load_scenario(TRUTH, {
    "name": "fitted_churn", "start_date": history.extract_date.date(), "horizon_months": FORECAST_MONTHS,
    "segments.smb.lifecycle.churn": {"family": "fitted", "file": curves_file, "key": "smb/churn",
                                     "model_uncertainty": "best"},
})
fitted = forecast.segments["smb"].lifecycle.churn.concrete()
print(f"fitted churn curve: {fitted.model_dump(exclude={'uncertainty', 'tail'})}")
print(f"covariance of log {', log '.join(fitted.uncertainty.names)}: "
      f"{np.round(fitted.uncertainty.covariance, 4).tolist()}")
print(f"parameter uncertainty: {forecast.uncertainty_mode}")
"""),
    md("""
`cssim.decompose` runs the forecast twice on the same seeds — the same customers and arrivals —
once drawing the curve per replication and once at the point estimate. The difference in
interval width is what estimation error adds; `share_estimation` = 1 − (without / with)² is its
share of the variance. With few replications the widths are noisy (a share near 0 is then
"not measurably different", not "none").
"""),
    code("""
dec = cssim.decompose(forecast, replications=REPLICATIONS, jobs=JOBS)
KPIS = ["logo_retention", "grr", "monthly_logo_churn", "ending_logos", "ending_arr", "churned_arr"]
dec.table().query("scope == 'all'").set_index("kpi").loc[KPIS, ["mean_with", "width_with", "width_without",
                                                              "share_estimation"]]
"""),
    md("""
Active customers over the forecast, both ways (left), and the width of the 90 % band month by month
(right). The two runs share every customer, so the medians nearly coincide; the band drawn with the
curve's uncertainty is the wider one, and the gap grows with the horizon: the longer customers live on
the fitted curve, the more its error compounds (and past 18 months of tenure the curve is extrapolated).
"""),
    code("""
runs = {"curve drawn per replication": dec.with_uncertainty, "point-estimate curve": dec.without_uncertainty}
with mpl.rc_context(plots.STYLE):
    fig = Figure(figsize=(15, 5.5), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[3, 2])
    plots.fan_chart(runs, "active", ax=left)
    for label, run in runs.items():
        band = run.series("active", level=0.9)
        right.plot(band["month"], band["hi"] - band["lo"], label=label)
    right.set(title="Width of the 90 % band", ylabel="Active customers (logos)", xlabel="Months into the forecast",
              xticks=range(0, FORECAST_MONTHS + 1, 6), ylim=(0, None))
    right.legend(loc="upper left")
fig
"""),
    md("""
Not only curves are drawn (`docs/model.md`, "Estimation uncertainty"):

- a renewal model fitted by `cssim fit` brings the covariance of its coefficients:
  `renewal: {fitted: {file: fit/curves.json, key: smb}}`;
- a touch effect may carry its 95 % interval, `effects: {churn: 0.82, intervals: {churn: [0.72, 0.93]}}`,
  drawn log-normally once per touch model and replication — part 2 produces exactly that fragment.

`cssim run --decompose` writes the same table (`uncertainty.csv`); `parameter_uncertainty: none` switches
the draws off.
"""),
    md("""
## 2. Touch effects that are not just selection

A customer table in the form `cssim.touch_effects` takes (one row per customer: duration in days,
churn event, touch model, covariates), built here with numpy so that the truth is known: bigger
accounts (log ARR) are more likely to get high-touch *and* churn less on their own, segment follows
size, and high-touch multiplies the churn hazard by `TRUE_HR`. (`cssim synth` histories do not fit
this purpose: the engine applies a touch model's effects task by task, so its overall hazard ratio is
not one known number.)
"""),
    code("""
rng = np.random.default_rng(SEED)
size = rng.normal(size=CUSTOMERS)                                          # standardised account size
high = rng.random(CUSTOMERS) < 1 / (1 + np.exp(0.4 - 1.2 * size))          # big accounts get high-touch
hazard = np.exp(-0.7 * size) * np.where(high, TRUE_HR, 1.0) / 900          # ...and churn less anyway
churn_day, end_day = rng.exponential(1 / hazard), rng.uniform(180, 900, CUSTOMERS)
customers = pd.DataFrame({
    "duration": np.ceil(np.minimum(churn_day, end_day)), "event": (churn_day <= end_day).astype(int),
    "touch_model": np.where(high, "high_touch", "low_touch"), "log_arr": np.log(20_000) + 0.9 * size,
    "segment": np.where(size + rng.normal(scale=0.7, size=CUSTOMERS) > 0.8, "enterprise", "mid_market"),
})
customers.groupby("touch_model").agg(customers=("event", "size"), churned=("event", "mean"),
                                     mean_log_arr=("log_arr", "mean"))
"""),
    md("""
Three estimates of high-touch's hazard ratio against low-touch: **naive** (touch model only) credits
high-touch with the loyalty of the big accounts it was given; **adjusted** (Cox with log ARR and
segment) is the ratio for customers of equal size and segment; **IPW** weights customers by the
inverse of their propensity for the touch model they got, giving a population-average ratio (close
to, but not the same quantity as, the adjusted one). Both corrections assume the covariates capture
why a customer got high-touch; an unrecorded reason would bias all three.
"""),
    code("""
effects = cssim.touch_effects(customers, covariates=["log_arr", "segment"], transition="churn")
print(effects.report())
"""),
    md("The dashed mark is the true ratio; the naive interval is far from it."),
    code("effects.plot_forest(truth=TRUE_HR).figure"),
    md("""
Is the weighting trustworthy? Before weighting, high-touch customers are much bigger (standardised
mean difference far above 0.1); after, both groups look alike on every covariate. Remaining imbalance,
poor overlap or a small effective sample size would be printed as warnings in the report above.
"""),
    code("effects.plot_balance().figure"),
    md("""
The estimate as a scenario fragment, with its 95 % interval so forecasts draw it
(`to_effects("ipw")` for the marginal one). The ratio is relative to low-touch, the reference; cssim
applies a task's effect while the task is in effect, so put it on the touch model's recurring task —
here the high-touch check-in of the baseline scenario.
"""),
    code("""
fragment = effects.to_effects("adjusted")
fragment
"""),
    code("""
high_touch = fragment["high_touch"]
pasted = cssim.load_scenario(SCENARIO, {
    "touch_models.high_touch.tasks.check_in.effects.churn": high_touch["churn"],
    "touch_models.high_touch.tasks.check_in.effects.intervals": high_touch["intervals"],
})
pasted.touch_models["high_touch"].tasks["check_in"].effects
"""),
    md("""
## 3. Back-testing

A longer history of the same business (another seed, 30 months). `cssim.backtest` censors it at the
cutoff — 18 months in, as much history as part 1 had — fits every lifecycle curve on what was known
then, starts from the book of customers active that day, forecasts 12 months and scores the forecast
against what the history says happened. As in part 1, each replication draws the fitted curves'
parameters (`parameter_uncertainty="asymptotic"`, the default), and the same replications run again at
the point estimates (method `cssim_point`). Two baselines are scored on the same split: a flat trailing
churn rate and a constant hazard.
"""),
    code("""
backtest_file = work / "history_long.csv"
synthesize_history(truth, seed=SEED + 1, months=BACKTEST_MONTHS).to_csv(backtest_file, index=False)
cutoff = (pd.Timestamp(truth.start_date) + pd.DateOffset(months=HISTORY_MONTHS) - pd.Timedelta(days=1)).date()
families = ("exponential", "weibull", "lognormal", "exponential_gamma") if FAST else None  # None: all candidates
bt = cssim.backtest(backtest_file, cutoff, BACKTEST_MONTHS - HISTORY_MONTHS, replications=REPLICATIONS,
                    seed=SEED, jobs=JOBS, families=families)
print(bt.summary())
"""),
    md("""
The forecast from the cutoff against the actual path (dash-dotted: cssim's band at the point-estimate
curves). Look for the actual points staying inside the band month after month, and for which mean
tracks them: a rate measured on last year's young customers over-forecasts churn for a book that has
since aged.
"""),
    code('bt.plot_fan("active_logos").figure'),
    code('bt.plot_fan("arr").figure'),
    md("""
Calibration: the share of months whose actual lies inside each nominal interval (50 % … 95 %). On the
diagonal is calibrated; below it the intervals are too narrow or the forecast is biased. One history's
months are strongly autocorrelated, so each line is close to all or nothing — a back-test on one
history is one draw, not a verdict; repeat it over cutoffs (or histories) before trusting a method.
"""),
    code("bt.plot_calibration().figure"),
    md("The scores: coverage of the 90 % interval, mean absolute percentage error of the mean, and bias."),
    code("""
bt.scores.query("metric in ['active_logos', 'arr']").pivot(
    index="method", columns="metric", values=["coverage", "mape", "bias"])
"""),
    md("""
With and without the curves' estimation error, on the same replications: the mean width of the 90 %
interval both ways, the share of it owed to estimation (as in part 1), and the coverage each achieved.
The means hardly differ — the draws are centred on the point estimates — but the intervals widen. On one
history both may cover every month, or neither; over many histories the difference is large (for 150
customers and a 12-month forecast, 92 % coverage with the draws against 34 % without: `docs/model.md`).
"""),
    code("""
coverage = bt.scores.query("method in ['cssim', 'cssim_point']").pivot(index="metric", columns="method",
                                                                        values="coverage")
coverage = coverage.rename(columns={"cssim": "coverage_with", "cssim_point": "coverage_without"})
bt.uncertainty.set_index("metric").join(coverage, how="inner").loc[["active_logos", "arr"]]
"""),
    md("""
## Reading it together

- The interval around a forecast from a short history should include the curve's estimation error:
  part 1 shows how much it adds, and it grows with the forecast horizon.
- A touch model's effect read from history is only as good as its adjustment for who got the touch
  model: compare naive with adjusted and IPW, check the balance, and paste the adjusted ratio *with its
  interval*.
- A back-test tells whether a forecasting method would have been right before — the only check that uses
  what actually happened. From the command line: `cssim backtest HISTORY --cutoff DATE --horizon 12`
  (`docs/backtest.md`).
"""),
]

DRIVERS = [
    md("""
# What drives the forecast? Ranking the baseline's assumptions

Every planning review asks which assumptions a forecast rests on before it trusts the number.
`scenarios/sensitivity.yaml` extends the baseline with a `sensitivity:` block: ranges (or
distributions) for renewal rates, SMB churn, a touch effect, mid-market headcount and a pod's
cost. `cssim.sensitivity` varies them three ways and ranks them for GRR, NRR and CSM cost:

- **one at a time**: each assumption at its low and high value, the others at the baseline's —
  the tornado chart; the swing (high − low) is paired on the same customers, with a 90 % interval;
- **Morris screening**: elementary effects along random trajectories (`mu*`: how far the output
  moves, in its units; SALib);
- **Sobol' indices**: the share of the output's variance each assumption accounts for, alone
  (`S1`) and with its interactions (`ST`), with 90 % bootstrap intervals (SALib). An assumption
  whose `ST` interval reaches 0 is not shown to matter.

Every point runs the same seed and replications (common random numbers), so an assumption that
cannot move an output changes it by exactly 0.
"""),
    params("""
SCENARIO = "../scenarios/sensitivity.yaml"
REPLICATIONS = 10                  # per point; 197 points (see the scenario file)
JOBS = 2
CACHE = ".cssim-cache"             # finished batches: an interrupted run resumes
FAST = False                       # a small book and few points (the test suite sets this)
"""),
    code(SETUP),
    code("""
# FAST: a small book over 18 months and few points — it shows the method, not the answer
# (with 4 Sobol' base points the indices are rough; trust the full run).
overrides = {} if not FAST else {
    "horizon_months": 18,
    "segments.enterprise.initial_customers": 6, "segments.enterprise.new_logos_per_month": 0.2,
    "segments.mid_market.initial_customers": 20, "segments.mid_market.new_logos_per_month": 0.5,
    "segments.smb.initial_customers": 80, "segments.smb.new_logos_per_month": 3,
    "sensitivity.sobol_n": 4, "sensitivity.morris_trajectories": 3,
}
scenario = cssim.load_scenario(SCENARIO, overrides)
result = cssim.sensitivity(scenario, replications=REPLICATIONS, jobs=JOBS, cache=CACHE)
print(result.summary())
"""),
    md("## Gross revenue retention (all customers)"),
    code('result.ranking("grr")'),
    code('result.plot_tornado("grr").figure'),
    code('result.plot_sobol("grr").figure'),
    md("## Net revenue retention (all customers)"),
    code('result.ranking("nrr")'),
    code('result.plot_tornado("nrr").figure'),
    code('result.plot_sobol("nrr").figure'),
    md("## CSM cost (all pods, total over the horizon)"),
    code('result.ranking("csm_cost")'),
    code('result.plot_tornado("csm_cost").figure'),
    md("""
The tidy table behind these figures (`sensitivity.csv` from `cssim sensitivity`): one row per
method, output, assumption and index, with its 90 % interval and each method's rank.
"""),
    code('result.table().head(12)'),
]

BOOKS = {
    "01_quickstart": QUICKSTART,
    "02_fit_from_history": FIT,
    "03_touch_models": TOUCH,
    "04_headcount_planning": PLAN,
    "05_validation": VALIDATION,
    "06_honest_forecasts": HONEST,
    "07_what_drives_the_forecast": DRIVERS,
}


def build(name: str, cells) -> nbformat.NotebookNode:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(nb.cells):
        cell.id = f"{name[:2]}-{i:02d}"
    nbformat.validate(nb)
    return nb


def main() -> int:
    NOTEBOOKS.mkdir(exist_ok=True)
    for name, cells in BOOKS.items():
        path = NOTEBOOKS / f"{name}.ipynb"
        nbformat.write(build(name, cells), path)
        print(f"wrote {path.relative_to(NOTEBOOKS.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
