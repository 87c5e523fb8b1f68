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
from IPython.display import Markdown, display
import cssim
from cssim import plots
from cssim.core.formatting import fmt_change

pd.options.display.float_format = lambda v: f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"

# FAST (the test suite's quick run) makes the run small, and prints what it changed.
FAST_VALUES = {fast}
if FAST:
    changed = {k: (globals()[k], v) for k, v in FAST_VALUES.items() if globals()[k] != v}
    globals().update({k: v for k, (_, v) in changed.items()})
    print("FAST mode changed: " + ("; ".join(f"{k} {old!r} → {new!r}" for k, (old, new) in changed.items())
                                   or "nothing (the parameters are already small)"))"""


def setup(fast: str, extra: str = "") -> str:
    """The cell after the parameters: ``fast`` is the dict literal of the parameters FAST shrinks."""
    return SETUP.replace("{fast}", fast) + (f"\n{extra}" if extra else "")


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

Load a scenario, run its Monte Carlo replications, and read the KPIs (each with an interval) and
the monthly series as fan charts. Change the parameters below to re-run the notebook on another
scenario: a shipped one by name (`baseline`, `high_touch`, `low_touch`) or a YAML file by path.
"""),
    params("""
SCENARIO = "baseline"   # a shipped scenario's name, or the path of a scenario file
REPLICATIONS = 20       # Monte Carlo replications
JOBS = 2                # worker processes
FAST = False            # small run (the test suite sets this)
"""),
    code(setup('{"REPLICATIONS": min(REPLICATIONS, 3)}')),
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
    md("## What this showed"),
    code("""
k = results.kpis(scope="all").set_index("kpi")
pods = results.pods_monthly().groupby("pod")["utilisation"].mean()
busiest = pods.idxmax()


def between(kpi, fmt):
    return f"{fmt(k.loc[kpi, 'mean'])} (90 % of replications between {fmt(k.loc[kpi, 'lo'])} and {fmt(k.loc[kpi, 'hi'])})"


pct = "{:.1%}".format
display(Markdown(f\"\"\"
- **{scenario.name}**, {scenario.horizon_months} months, {results.n_replications} replications: ending ARR
  {between("ending_arr", plots.money)}; gross revenue retention {between("grr", pct)}; net revenue retention
  {between("nrr", pct)}.
- The CSM team costs {plots.money(k.loc["csm_cost", "mean"])} over the horizon; {pct(k.loc["touch_miss_rate", "mean"])}
  of CSM touches are missed; the busiest pod is **{busiest}** at {pct(pods[busiest])} mean utilisation.
\"\"\"))
"""),
    md("""
## Next

- Save the run: `cssim.write_results(results, "results/baseline")` (or `cssim run` on the
  command line), then `cssim report results/baseline` for a one-page summary.
- Try a change on the planning page: `cssim app` (headcount and touch models, with the difference to
  this scenario and whether it is within noise).
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

The cohort example is a published table (Fader & Hardie 2007, "How to Project Customer
Retention"), shipped with cssim: the fit uses the periods up to `CALIBRATE_UNTIL` and the
later ones are held out to check the projection.
"""),
    params("""
from cssim.shipped import example_path

SCENARIO = "baseline"                                       # scenario whose churn curve is replaced
COHORT_TABLE = example_path("contractual_cohort_regular.csv")  # cohort, period (or year), active
CALIBRATE_UNTIL = 7                                         # fit on periods 0..7, hold out the rest
SEGMENT = "smb"                                             # segment that gets the fitted churn curve
HISTORY = example_path("history.csv")                       # customer history (`cssim synth` of the baseline)
TRANSITIONS = ("onboarding", "growth", "at_risk", "recovery", "churn")  # fitted per segment
N_DRAWS = 2000                                              # parameter draws behind the projection's interval
REPLICATIONS = 20
JOBS = 2
FAST = False
"""),
    code(setup('{"REPLICATIONS": min(REPLICATIONS, 3), "N_DRAWS": min(N_DRAWS, 300), '
               '"TRANSITIONS": ("onboarding", "churn")}')),
    md("## Fit"),
    code("""
table = cssim.read_cohort_table(COHORT_TABLE)
fit = cssim.fit_cohorts(table, until=CALIBRATE_UNTIL, n_draws=N_DRAWS)
print(fit.report())
"""),
    md("## Projection against the observed periods (the recommended projection, with its interval)\n\n"
       "When no model is clearly best by AIC the report recommends the model-averaged projection, whose "
       "interval also carries the choice of model."),
    code("plots.cohort_projection(fit.projection, model=fit.recommended).figure"),
    md("Every model side by side; past the end of the fit each projection starts from the customers observed then:"),
    code("plots.cohort_projection(fit.projection).figure"),
    code("""
p = fit.projection[fit.projection.cohort == fit.projection.cohort.iloc[0]]
last = int(p.period.max())
at = p[p.period == last].set_index("model")
observed = at["observed"].iloc[0]
constant, recommended = at.loc["geometric", "projected"], at.loc[fit.recommended, "projected"]
name = plots.cohort_model_name
if pd.isna(observed):
    verdict = f"The table has no observation at period {last} to check the projections against."
else:
    verdict = (f"At period {last}, {observed:,.0f} customers are still active. The {name('geometric')} projects "
               f"{constant:,.0f} ({constant / observed - 1:+.1%}): it "
               + ("under-projects, because it ignores that the customers who stay are the loyal ones (their hazard "
                  "is lower than the average the fit saw)" if constant < observed else "over-projects")
               + f". The recommended {name(fit.recommended)} projection gives {recommended:,.0f} "
               f"({recommended / observed - 1:+.1%}).")
display(Markdown(verdict))
"""),
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
baseline's own curves; the comparison at the end of this part checks it. Every row is validated
first; `drop_bad_rows=True` drops bad rows and says why instead of stopping at the first.
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
Touch-model hazard ratios come from a Cox model stratified by segment. Only the transitions in
`TRANSITIONS` are fitted (printed below).
"""),
    code("""
hfit = cssim.fit_history(history, transitions=TRANSITIONS)
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
set to 1, or at-risk churn is counted twice.
"""),
    code("""
import tempfile
from pathlib import Path
from cssim.fitting.curvesfile import write_history_fit

scratch = tempfile.TemporaryDirectory(prefix="cssim-fit-")  # removed when the kernel stops
out = write_history_fit(hfit, Path(scratch.name) / "history-fit")
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
    md("## What this showed"),
    code("""
d = history_comparison.differences(scope=SEGMENT).set_index("kpi")
checked = ["logo_retention", "grr", "ending_logos", "ending_arr"]
apart = [k for k in checked if d.loc[k, "distinguishable"]]
lines = [f"- `{k}` ({SEGMENT}): fitted − baseline {fmt_change(d.loc[k, 'diff'], d.loc[k, 'unit'])} "
         f"[{fmt_change(d.loc[k, 'ci_lo'], d.loc[k, 'unit'])}, {fmt_change(d.loc[k, 'ci_hi'], d.loc[k, 'unit'])}]"
         for k in checked]
display(Markdown(
    f"- The cohort table: the recommended projection is {plots.cohort_model_name(fit.recommended)} "
    + ("" if pd.isna(observed) else f"({recommended / observed - 1:+.0%} at period {last}, against "
       f"{constant / observed - 1:+.0%} for a constant hazard)") + ".\\n"
    + f"- The history: the scenario with the curves fitted from it against the baseline that wrote it, on the same "
    f"{history_comparison.results[0].n_replications} replications:\\n" + "\\n".join("  " + line for line in lines) + "\\n"
    + (f"- No difference is distinguishable from noise at {history_comparison.results[0].n_replications} "
       "replications: nothing here shows the fitted scenario departing from the baseline (more replications "
       "narrow the intervals)."
       if not apart else f"- Distinguishable from noise: {', '.join(apart)} — the fitted curves do not fully "
       "recover the baseline (look at the candidates and the Kaplan–Meier plots above).")
))
scratch.cleanup()  # the temporary files this notebook wrote
"""),
    md("""
## Next

- Your own data: `cssim fit history.csv --out results/history-fit` (or a cohort table:
  `cssim fit cohorts.csv --until 7`), then `churn: {family: fitted, file: results/history-fit/curves.json,
  key: smb/churn}` in a scenario.
- How much of a forecast's interval comes from fitting on little data, and whether a touch model's
  effect is real: `06_honest_forecasts`. Checks against known answers: `05_validation`.
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
SCENARIO = "baseline"   # a shipped scenario's name, or the path of a scenario file
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
    code(setup('{"REPLICATIONS": min(REPLICATIONS, 3)}')),
    code("""
base = cssim.load_scenario(SCENARIO)
variants = [cssim.load_scenario(SCENARIO, {"name": name, **fields}) for name, fields in VARIANTS.items()]
comparison = cssim.compare([base, *variants], replications=REPLICATIONS, jobs=JOBS)
print(comparison.summary())
"""),
    md("## Retention and revenue of the segment, per variant (means)\n\n"
       "A KPI with nothing to measure shows as NaN: the touch-miss rate of a segment that gets no CSM touches."),
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
    md("## What this showed"),
    code("""
d = differences.set_index(["scenario", "kpi", "scope"])


def change(name, kpi, scope):
    r = d.loc[(name, kpi, scope)]
    verdict = "distinguishable" if r["distinguishable"] else "within noise"
    return (f"{fmt_change(r['diff'], r['unit'])} [{fmt_change(r['ci_lo'], r['unit'])}, "
            f"{fmt_change(r['ci_hi'], r['unit'])}], {verdict}")


lines = [f"Against {comparison.reference}, on the same {comparison.results[0].n_replications} replications "
         "(paired 90 % intervals):"]
for name in VARIANTS:
    lines.append(f"- **{name}**: {SEGMENT} GRR {change(name, 'grr', SEGMENT)}; {SEGMENT} logo retention "
                 f"{change(name, 'logo_retention', SEGMENT)}; CSM cost over the horizon {change(name, 'csm_cost', 'all')}.")
trade = comparison.tradeoff().set_index("scenario")
kept = trade["d_retained_arr_per_year"]
best = kept.idxmax()
lines.append("\\nCost against ARR:")
lines += [f"- {line}" for line in comparison.tradeoff_lines()]
lines.append(f"\\nOf the variants, **{best}** keeps the most ARR a year against the baseline "
             f"({plots.money(kept[best])}/yr, interval "
             f"{plots.money(trade.loc[best, 'd_retained_arr_per_year_lo'])} to "
             f"{plots.money(trade.loc[best, 'd_retained_arr_per_year_hi'])}); the trade-off lines say what each "
             "extra CSM dollar buys.")
display(Markdown("\\n".join(lines)))
"""),
    md("""
## Next

- A difference marked *within noise* needs more replications (`REPLICATIONS`) before it is read.
- Size the team for the touch model you choose: `04_headcount_planning` (`cssim plan`), or move the
  headcount and touch models together on the planning page (`cssim app`).
- The effects behind each touch model are assumptions: `07_what_drives_the_forecast` shows how much
  they drive the answer, `06_honest_forecasts` how to estimate them from a history.
"""),
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
SCENARIO = "baseline"                        # a shipped scenario's name, or the path of a scenario file
POD = "smb"                                  # the pod whose headcount is varied
HEADCOUNTS = [0, 1, 2, 3, 4]                 # the sweep
TARGET = "touch_miss_rate[smb] <= 0.05"      # KPI[scope] OP value
CONFIDENCE = 0.8                             # share of replications that must meet it
REPLICATIONS = 20
JOBS = 2
CACHE = None                                 # folder for finished batches (resumable); None: a temporary one
FAST = False
"""),
    code(setup('{"REPLICATIONS": min(REPLICATIONS, 3)}', extra="""
import tempfile

scratch = tempfile.TemporaryDirectory(prefix="cssim-cache-")  # removed when the kernel stops
cache = CACHE or scratch.name  # shared by the sweep and the plan"""),
    ),
    code("""
field = f"team.pods.{POD}.headcount"
scenario = cssim.load_scenario(SCENARIO, {"sweep": {"grid": {field: HEADCOUNTS}}})
swept = cssim.sweep(scenario, replications=REPLICATIONS, jobs=JOBS, cache=cache)
print(swept.summary())
"""),
    md("""
A plan's confidence needs enough replications to support it: with fewer than `min_replications(CONFIDENCE)`
(printed below), even every replication meeting the target would not show at 90 % that a share
`CONFIDENCE` of futures do, and `cssim.plan` refuses. The plan therefore runs at least that many.
"""),
    code("""
from cssim.analysis.plan import min_replications

plan_replications = max(REPLICATIONS, min_replications(CONFIDENCE))
print(f"min_replications({CONFIDENCE}) = {min_replications(CONFIDENCE)}; the plan runs {plan_replications}")
result = cssim.plan(cssim.load_scenario(SCENARIO), TARGET, over=field, confidence=CONFIDENCE,
                    low=min(HEADCOUNTS), high=max(HEADCOUNTS), replications=plan_replications, jobs=JOBS, cache=cache)
print(result.summary())
"""),
    md("## The frontier: KPI with its interval, CSM cost, the target and the chosen headcount"),
    code("""
target = cssim.parse_target(TARGET)
plots.headcount_frontier(swept, kpi=target.kpi, scope=target.scope, target=target.value, chosen=result.answer,
                         xlabel=f"{POD} CSM headcount").figure
"""),
    md("## Marginal cost and ARR retained per extra CSM (between evaluated values)\n\n"
       "The first value tried has no marginals (NaN): there is no smaller value to compare it with."),
    code('result.table()[["value", "kpi_at_confidence", "mean", "share_met", "csm_cost_per_year", "retained_arr",\n'
         '              "marginal_cost_per_csm", "marginal_arr_per_csm", "marginal_arr_per_csm_lo",\n'
         '              "marginal_arr_per_csm_hi"]]'),
    md("The same frontier for gross revenue retention (all customers):"),
    code('plots.headcount_frontier(swept, kpi="grr", xlabel=f"{POD} CSM headcount").figure'),
    md("## What this showed"),
    code("""
from cssim.analysis.results import paired_interval

rows = result.table().set_index("value")
grr = plots.frontier_from_sweep(swept, "grr").set_index("value")
lo_hc, hi_hc = grr.index.min(), grr.index.max()
by_value = {point.values[field]: res for point, res in zip(swept.points, swept.results)}
step, step_lo, step_hi = paired_interval(by_value[lo_hc].kpi("grr"), by_value[hi_hc].kpi("grr"))
moves = step_lo > 0 or step_hi < 0
if result.answer is None:
    found = (f"No {POD} headcount in {min(HEADCOUNTS)}..{max(HEADCOUNTS)} meets `{TARGET}` in at least "
             f"{CONFIDENCE:.0%} of replications: widen the range or change the target.")
else:
    r = rows.loc[result.answer]
    found = (f"The smallest {POD} headcount that meets `{TARGET}` in at least {CONFIDENCE:.0%} of replications is "
             f"**{result.answer}** ({r['share_met']:.0%} of {plan_replications} replications meet it; CSM cost "
             f"{plots.money(r['csm_cost_per_year'])} a year, all pods).")
display(Markdown(
    f"- {found}\\n"
    f"- Gross revenue retention (all customers) goes from {grr.loc[lo_hc, 'mean']:.1%} at {lo_hc} {POD} CSMs to "
    f"{grr.loc[hi_hc, 'mean']:.1%} at {hi_hc}: paired on the same customers, {fmt_change(step, 'ratio')} "
    f"[{fmt_change(step_lo, 'ratio')}, {fmt_change(step_hi, 'ratio')}], "
    + ("distinguishable from noise: headcount moves GRR here." if moves else
       "within noise: over this range this pod's headcount is not shown to move GRR.")
))
scratch.cleanup()  # the temporary files this notebook wrote
"""),
    md("""
## Next

- Check the chosen headcount against the other KPIs on the planning page (`cssim app`), which also
  shows the cost vs retained-ARR frontier of every setting you try.
- `--criterion mean` asks for a bound on the mean instead of a share of futures; more replications
  narrow every interval. From the command line: `cssim plan SCENARIO --target ... --over ...`.
"""),
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
   on years 0–7 of their "regular" cohort (the published figures are in `PUBLISHED` below; the
   notebook asserts that cssim reproduces them).
"""),
    params("""
from cssim.shipped import example_path, notebook_data_path

QUEUE_SCENARIO = notebook_data_path("mmc_queue.yaml")    # an M/M/c pod (see the comments in the file)
CHURN_SCENARIO = notebook_data_path("churn_curve.yaml")  # churn only through the input curve
COHORT_TABLE = example_path("contractual_cohort_regular.csv")
N_DRAWS = 2000                                           # parameter draws behind the projection's interval
REPLICATIONS = 8
JOBS = 2
FAST = False
"""),
    code(setup('{"REPLICATIONS": min(REPLICATIONS, 3), "N_DRAWS": min(N_DRAWS, 300)}', extra="""
from cssim.sim.engine import run_replication
from cssim.model.queueing import erlang_c""")),
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
erlang = pd.DataFrame({
    "Erlang C": [theory.utilisation, theory.p_wait, theory.mean_wait],
    "simulated (mean)": [k.loc["csm_utilisation", "mean"], m.tasks_waited.sum() / m.tasks_delivered.sum(),
                         k.loc["mean_wait_days", "mean"]],
    "simulated 90 % CI": [f"{k.loc[n, 'ci_lo']:.3f} – {k.loc[n, 'ci_hi']:.3f}" if n else ""
                          for n in ("csm_utilisation", None, "mean_wait_days")],
}, index=["utilisation", "P(wait)", "mean wait (days)"])
erlang
"""),
    code("""
def against(name, kpi):
    sim_mean, th = erlang.loc[name, "simulated (mean)"], erlang.loc[name, "Erlang C"]
    inside = k.loc[kpi, "ci_lo"] <= th <= k.loc[kpi, "ci_hi"]
    side = "below" if sim_mean < th else "above"
    return (f"simulated {name} {sim_mean:.3f} is {abs(sim_mean / th - 1):.1%} {side} Erlang C's {th:.3f}; "
            + ("the steady-state value is inside the 90 % interval of the simulated mean" if inside else
               "outside the 90 % interval of the simulated mean"))


notes = [against("utilisation", "csm_utilisation"), against("mean wait (days)", "mean_wait_days")]
below = erlang.loc["mean wait (days)", "simulated (mean)"] < erlang.loc["mean wait (days)", "Erlang C"]
notes.append("A simulation that starts with an empty queue is expected to sit below the steady state, by less "
             "the longer the horizon" + (": it does here." if below else "; here it does not, so the gap is noise "
                                         "of a few replications, not the start-up."))
display(Markdown("\\n".join(f"- {n}" for n in notes)))
"""),
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
    code("""
import numpy as np
from lifelines import KaplanMeierFitter

km = KaplanMeierFitter(alpha=0.05).fit(durations, churned)
grid = np.linspace(0, durations.max() * 0.95, 60)[1:]
band = km.confidence_interval_survival_function_.reindex(km.survival_function_.index)
lo = np.interp(grid, band.index, band.iloc[:, 0])
hi = np.interp(grid, band.index, band.iloc[:, 1])
expected = np.asarray(curve.build().survival(grid))
inside = float(np.mean((expected >= lo) & (expected <= hi)))
gap = float(np.max(np.abs(np.asarray(km.survival_function_at_times(grid)) - expected)))
display(Markdown(f"{len(durations):,} simulated lifetimes ({int(churned.sum()):,} churned): the input curve lies inside "
                 f"the Kaplan–Meier 95 % band at {inside:.0%} of {grid.size} times checked, and the largest gap "
                 f"between them is {gap:.3f} (survival share)."))
"""),
    md("## 3. The published cohort projection"),
    code("""
PUBLISHED = {"alpha": 0.704, "beta": 1.182, "customers at year 12": 170}   # Fader & Hardie (2007); actual: 173
fit = cssim.fit_cohorts(cssim.read_cohort_table(COHORT_TABLE), until=7, n_draws=N_DRAWS)
sbg = fit.fits["sbg"]
ours = {"alpha": sbg.params["alpha"], "beta": sbg.params["beta"], "customers at year 12": fit.projected("sbg").loc[12]}
assert abs(ours["alpha"] / PUBLISHED["alpha"] - 1) < 0.01 and abs(ours["beta"] / PUBLISHED["beta"] - 1) < 0.01
assert abs(ours["customers at year 12"] - PUBLISHED["customers at year 12"]) < 2
pd.DataFrame({"published": PUBLISHED, "cssim": ours})
"""),
    code('plots.cohort_projection(fit.projection, model="sbg").figure'),
    md("## What this showed"),
    code("""
display(Markdown(
    f"- Queueing: {notes[0]}.\\n"
    f"- Churn clock: the input curve lies inside the Kaplan–Meier band of the simulated lifetimes at {inside:.0%} of "
    f"the times checked (largest gap {gap:.3f}).\\n"
    f"- Cohort fit: alpha {ours['alpha']:.3f}, beta {ours['beta']:.3f} and {ours['customers at year 12']:.0f} customers "
    f"at year 12, against the published {PUBLISHED['alpha']}, {PUBLISHED['beta']} and {PUBLISHED['customers at year 12']} "
    "(asserted above to within 1 % and 2 customers)."
))
"""),
    md("""
## Next

- The same checks run in the test suite, with more replications and other queue sizes
  (`tests/test_known_answers.py`; the cohort fit in `tests/test_fit_cohorts.py`).
- Fit your own curves and check them against Kaplan–Meier: `02_fit_from_history`; test a forecasting
  method against what happened: the back-test in `06_honest_forecasts`.
"""),
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
`cssim.sim.synth` from the shipped `young_smb.yaml` (no customers at the start, new logos every month; a
churn hazard that falls with tenure), and a customer table with a known touch effect. Every
statement about the results below is computed from them.
"""),
    params("""
from cssim.shipped import notebook_data_path

TRUTH = notebook_data_path("young_smb.yaml")  # the business behind the synthetic histories
HISTORY_MONTHS = 18             # months of history the curves are fitted on (also the back-test's cutoff)
FORECAST_MONTHS = 24            # part 1: months forecast with the fitted curve
BACKTEST_MONTHS = 30            # part 3: months of history; the months after HISTORY_MONTHS are scored
FAMILIES = None                 # part 3: candidate families of the back-test's fits (None: all)
CUSTOMERS = 3000                # part 2: customers in the touch-effect table
TRUE_HR = 0.8                   # part 2: high-touch's true churn hazard ratio
SCENARIO = "baseline"           # part 2: where the estimated effect is pasted
SEED = 11
REPLICATIONS = 100
JOBS = 2
FAST = False
"""),
    code(setup('{"REPLICATIONS": min(REPLICATIONS, 8), "CUSTOMERS": min(CUSTOMERS, 1500), '
               '"FORECAST_MONTHS": min(FORECAST_MONTHS, 12), "JOBS": 1, '
               '"FAMILIES": ("exponential", "weibull", "lognormal", "exponential_gamma")}', extra="""
import tempfile
from pathlib import Path
import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure
from cssim.fitting.curvesfile import write_history_fit
from cssim.sim.synth import synthesize_history

truth = cssim.load_scenario(TRUTH)
scratch = tempfile.TemporaryDirectory(prefix="cssim-honest-")  # removed when the kernel stops
work = Path(scratch.name)""")),
    md("""
## 1. Estimation uncertainty

A history of the business over its first `HISTORY_MONTHS` months: one row per customer, censored at
the extract date.
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
The forecast: the customers the business will sign over the next `FORECAST_MONTHS` months (from the
extract date, at the same rate), with the fitted churn curve in place of the true one —
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
wanted = ["logo_retention", "grr", "monthly_logo_churn", "ending_logos", "ending_arr", "churned_arr"]
table = dec.table().query("scope == 'all'").set_index("kpi")
KPIS = [k for k in wanted if k in table.index]
if dec.undefined:
    why = []
    if sum(seg.initial_customers for seg in forecast.segments.values()) == 0:
        why.append("the forecast starts with no customers (it follows those signed from the extract date on), so no "
                   "retention window has a starting book")
    if not forecast.team.pods:
        why.append("the business has no CSM pod, so there are no CSM touches or CSM costs")
    display(Markdown(f"Left out, undefined in every replication: {', '.join(dec.undefined)}"
                     + (f" — {'; and '.join(why)}." if why else ".")))
table.loc[KPIS, ["mean_with", "width_with", "width_without", "share_estimation"]]
"""),
    code("""
row = table.loc["ending_logos"]
if row["width_with"] > row["width_without"]:
    how = (f"wider with the curve's uncertainty ({row['width_with']:,.1f} against {row['width_without']:,.1f} "
           f"logos): estimation error accounts for {row['share_estimation']:.0%} of its variance")
elif row["width_with"] < row["width_without"]:
    how = (f"narrower with the curve's uncertainty ({row['width_with']:,.1f} against {row['width_without']:,.1f} "
           f"logos) — with {dec.with_uncertainty.n_replications} replications the widths are too noisy to measure "
           "what estimation error adds; run more replications before reading the share")
else:
    how = f"the same width both ways ({row['width_with']:,.1f} logos)"
display(Markdown(f"The 90 % interval of the customers active after {FORECAST_MONTHS} months is {how}."))
"""),
    md("""
Active customers over the forecast, both ways (left), and the width of the 90 % band month by month
(right). The two runs share every customer, so any difference between the bands comes from the curve
being drawn; the longer customers live on the fitted curve, the more its error can compound (and past
`HISTORY_MONTHS` months of tenure the curve is extrapolated).
"""),
    code("""
runs = {"curve drawn per replication": dec.with_uncertainty, "point-estimate curve": dec.without_uncertainty}
widths = {}
with mpl.rc_context(plots.STYLE):
    fig = Figure(figsize=(15, 5.5), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[3, 2])
    plots.fan_chart(runs, "active", ax=left)
    for label, run in runs.items():
        band = run.series("active", level=0.9)
        widths[label] = (band["hi"] - band["lo"]).to_numpy()
        right.plot(band["month"], widths[label], label=label)
    right.set(title="Width of the 90 % band", ylabel="Active customers (logos)", xlabel="Months into the forecast",
              xticks=range(0, FORECAST_MONTHS + 1, 6), ylim=(0, None))
    right.legend(loc="upper left")
fig
"""),
    code("""
gap = widths["curve drawn per replication"] - widths["point-estimate curve"]
third = max(1, gap.size // 3)
early, late = gap[:third].mean(), gap[-third:].mean()
wider = (gap > 0).mean()
display(Markdown(
    f"The band with the curve drawn is wider in {wider:.0%} of the months; on average it is "
    f"{abs(early):.1f} logos {'wider' if early > 0 else 'narrower'} than the point-estimate band in the first third "
    f"of the forecast and {abs(late):.1f} logos {'wider' if late > 0 else 'narrower'} in the last third"
    + (" — the gap grows with the horizon." if late > early and late > 0 else
       " — no growing gap is visible at this number of replications.")
))
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
inverse of their propensity for the touch model they got, giving a population-average ratio (a
different quantity from the adjusted, conditional one: hazard ratios do not collapse over covariates,
so the two can differ even when both corrections are right). Both corrections assume the covariates capture
why a customer got high-touch; an unrecorded reason would bias all three.
"""),
    code("""
effects = cssim.touch_effects(customers, covariates=["log_arr", "segment"], transition="churn")
print(effects.report())
"""),
    md("The dashed mark is the true ratio, `TRUE_HR`:"),
    code("effects.plot_forest(truth=TRUE_HR).figure"),
    code("""
ratios = effects.estimates().set_index("method")
covers = {m: r.lo <= TRUE_HR <= r.hi for m, r in ratios.iterrows()}
display(Markdown("\\n".join(
    f"- **{m}**: {r.hazard_ratio:.2f} [{r.lo:.2f}, {r.hi:.2f}] — the interval "
    + ("contains" if covers[m] else "misses") + f" the true {TRUE_HR}" for m, r in ratios.iterrows())))
"""),
    md("""
Is the weighting trustworthy? The balance plot shows each covariate's standardised mean difference
(SMD) between the touch models before and after weighting; above 0.1 is conventionally imbalanced.
Remaining imbalance, poor overlap or a small effective sample size would be printed as warnings in the
report above.
"""),
    code("effects.plot_balance().figure"),
    code("""
b = effects.balance_
worst_before = b.loc[b.smd_before.abs().idxmax()]
worst_after = b.loc[b.smd_after.abs().idxmax()]
display(Markdown(
    f"Before weighting the largest imbalance is `{worst_before.covariate}` (SMD {worst_before.smd_before:+.2f}); "
    f"after, the largest is `{worst_after.covariate}` ({worst_after.smd_after:+.2f}): "
    + ("every covariate is within 0.1 after weighting." if abs(worst_after.smd_after) <= 0.1 else
       "some covariate is still above 0.1 — read the IPW estimate with care.")
))
"""),
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

A longer history of the same business (another seed, `BACKTEST_MONTHS` months). `cssim.backtest`
censors it at the cutoff — `HISTORY_MONTHS` months in, as much history as part 1 had — fits every
lifecycle curve on what was known then, starts from the book of customers active that day, forecasts
the remaining months and scores the forecast against what the history says happened. As in part 1,
each replication draws the fitted curves' parameters (`parameter_uncertainty="asymptotic"`, the
default), and the same replications run again at the point estimates (method `cssim_point`). Two
baselines are scored on the same split: a flat trailing churn rate and a constant hazard.
"""),
    code("""
backtest_file = work / "history_long.csv"
synthesize_history(truth, seed=SEED + 1, months=BACKTEST_MONTHS).to_csv(backtest_file, index=False)
cutoff = (pd.Timestamp(truth.start_date) + pd.DateOffset(months=HISTORY_MONTHS) - pd.Timedelta(days=1)).date()
bt = cssim.backtest(backtest_file, cutoff, BACKTEST_MONTHS - HISTORY_MONTHS, replications=REPLICATIONS,
                    seed=SEED, jobs=JOBS, families=FAMILIES)
print(bt.summary())
"""),
    md("""
The forecast from the cutoff against the actual path (dash-dotted: cssim's band at the point-estimate
curves). Look for the actual points staying inside the band month after month, and for which mean
tracks them.
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
scores = bt.scores.query("metric in ['active_logos', 'arr']").pivot(
    index="method", columns="metric", values=["coverage", "mape", "bias"])
scores
"""),
    code("""
mape = scores["mape"]["active_logos"].dropna().rename(index=plots.BACKTEST_LABELS)
best_method = mape.idxmin()
display(Markdown(f"Closest to what happened (lowest MAPE of active logos): **{best_method}** ({mape[best_method]:.1%}); "
                 "then " + "; ".join(f"{m}: {v:.1%}" for m, v in mape.drop(best_method).sort_values().items()) + "."))
"""),
    md("""
With and without the curves' estimation error, on the same replications: the mean width of the 90 %
interval both ways, the share of it owed to estimation (as in part 1), and the coverage each achieved.
Whether the draws make intervals honest shows over many histories (`docs/model.md`, "Estimation
uncertainty", repeats the fit hundreds of times); on one history both may cover every month, or neither.
"""),
    code("""
coverage = bt.scores.query("method in ['cssim', 'cssim_point']").pivot(index="metric", columns="method",
                                                                        values="coverage")
coverage = coverage.rename(columns={"cssim": "coverage_with", "cssim_point": "coverage_without"})
both = bt.uncertainty.set_index("metric").join(coverage, how="inner").loc[["active_logos", "arr"]]
both
"""),
    code("""
r = both.loc["active_logos"]
width = ("wider" if r.width_with > r.width_without else "narrower" if r.width_with < r.width_without else "as wide")
cover = ("more" if r.coverage_with > r.coverage_without else "fewer" if r.coverage_with < r.coverage_without
         else "as many")
display(Markdown(
    f"For active logos the interval with the curves' estimation error is {width} than without "
    f"({r.width_with:,.1f} against {r.width_without:,.1f} logos on average) and covers {cover} of the scored months "
    f"({r.coverage_with:.0%} against {r.coverage_without:.0%})"
    + ("." if (r.width_with >= r.width_without) == (r.coverage_with >= r.coverage_without) else
       " — on one history and few replications coverage and width need not move together; repeat over cutoffs.")
))
"""),
    md("## What this showed"),
    code("""
e = table.loc["ending_logos"]
adjusted = ratios.loc["adjusted"]
hits = [m for m, c in covers.items() if c]
covering = ("no method's interval contains it" if not hits else f"the interval of {hits[0]} contains it"
            if len(hits) == 1 else f"the intervals of {' and '.join(hits)} contain it")
display(Markdown(f\"\"\"
- **Estimation error** (part 1): after {FORECAST_MONTHS} months the interval of active customers is
  {e.width_with:,.1f} logos wide with the fitted curve's uncertainty and {e.width_without:,.1f} without, on
  {dec.with_uncertainty.n_replications} replications (estimation share {e.share_estimation:.0%}).
- **Touch effects** (part 2): naive {ratios.loc['naive', 'hazard_ratio']:.2f}, adjusted {adjusted.hazard_ratio:.2f}
  [{adjusted.lo:.2f}, {adjusted.hi:.2f}], IPW {ratios.loc['ipw', 'hazard_ratio']:.2f}, against the true {TRUE_HR};
  {covering}.
- **Back-test** (part 3): the lowest error on active logos is that of *{best_method}*; cssim's interval covered
  {r.coverage_with:.0%} of the scored months with the curves' estimation error and {r.coverage_without:.0%} without.
\"\"\"))
scratch.cleanup()  # the temporary files this notebook wrote
"""),
    md("""
## Next

- Before trusting a forecast from a short history, run it with `parameter_uncertainty: asymptotic`
  (the default for fitted curves) and `cssim run --decompose`; with a share near 0 on few replications,
  add replications rather than conclude there is no estimation error.
- Read a touch model's effect from history only with an adjustment for who got it: compare naive with
  adjusted and IPW, check the balance, and paste the adjusted ratio *with its interval*.
- Back-test your own history over several cutoffs: `cssim backtest HISTORY --cutoff DATE --horizon 12`
  (`docs/backtest.md`).
"""),
]

DRIVERS = [
    md("""
# What drives the forecast? Ranking the baseline's assumptions

Every planning review asks which assumptions a forecast rests on before it trusts the number.
The shipped `sensitivity.yaml` extends the baseline with a `sensitivity:` block: ranges (or
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
SCENARIO = "sensitivity"           # a shipped scenario's name, or the path of a scenario file
REPLICATIONS = 10                  # per point (the number of points follows from the scenario's block)
JOBS = 2
CACHE = None                       # folder for finished batches (resumable); None: a temporary one
OVERRIDES = {}                     # scenario fields to change before the run
FAST = False                       # a small book and few points (the test suite sets this)
"""),
    code(setup(
        '{"REPLICATIONS": min(REPLICATIONS, 3), "OVERRIDES": {\n'
        '    # a small book over 18 months and few points: it shows the method, not the answer\n'
        '    "horizon_months": 18,\n'
        '    "segments.enterprise.initial_customers": 6, "segments.enterprise.new_logos_per_month": 0.2,\n'
        '    "segments.mid_market.initial_customers": 20, "segments.mid_market.new_logos_per_month": 0.5,\n'
        '    "segments.smb.initial_customers": 80, "segments.smb.new_logos_per_month": 3,\n'
        '    "sensitivity.sobol_n": 4, "sensitivity.morris_trajectories": 3,\n'
        '}}', extra="""
import tempfile

scratch = tempfile.TemporaryDirectory(prefix="cssim-cache-")  # removed when the kernel stops
cache = CACHE or scratch.name""")),
    code("""
scenario = cssim.load_scenario(SCENARIO, OVERRIDES)
result = cssim.sensitivity(scenario, replications=REPLICATIONS, jobs=JOBS, cache=cache)
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
    md("## What this showed"),
    code("""
lines = []
for kpi in ("grr", "nrr", "csm_cost"):
    ranked = result.ranking(kpi)
    top = ranked.iloc[0]
    method = next(m for m in ("sobol", "morris", "oat") if f"{m}_rank" in ranked)
    stat = {"sobol": "ST", "morris": "mu_star", "oat": "swing"}[method]
    lo, hi = top[f"{method}_{stat}_lo"], top[f"{method}_{stat}_hi"]
    shown = pd.notna(lo) and lo > 0
    lines.append(f"- **{kpi}**: first by {method} `{stat}` is `{top['field']}` ({top[f'{method}_{stat}']:.3g}, 90 % "
                 f"interval {lo:.3g} to {hi:.3g})" + ("" if shown else " — its interval reaches 0, so even the first "
                                                      "is not shown to matter at this size of run"))
display(Markdown(f"{len(result.fields)} assumptions, {REPLICATIONS} replications per point:\\n" + "\\n".join(lines)))
scratch.cleanup()  # the temporary files this notebook wrote
"""),
    md("""
## Next

- Pin down the assumptions at the top of each ranking first: fit them from data (`02_fit_from_history`,
  `06_honest_forecasts`) or argue their ranges in the planning review.
- An assumption whose interval reaches 0 is not shown to matter at this run's size; more replications or
  Sobol' points (`sensitivity.sobol_n`) narrow the intervals. From the command line:
  `cssim sensitivity sensitivity --out results/sensitivity` and `cssim report results/sensitivity`.
"""),
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
