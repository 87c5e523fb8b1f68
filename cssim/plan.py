"""Headcount planning: the smallest value of a field that meets a KPI target with a stated confidence.

``plan(scenario, "grr >= 0.90", over="team.pods.smb.headcount", confidence=0.8)``
answers "how many SMB CSMs do we need to keep GRR at or above 90 %, with 80 %
confidence?".

What "meets with confidence" means
----------------------------------
Default (``criterion="share"``): the share of replications in which the KPI
meets the target is at least ``confidence``. Each replication is one possible
future of the same business, so this is the forecast probability that the
period's *outcome* meets the target — the question a plan is judged by
("will GRR be at least 90 % next year?"). It does not shrink towards a coin
flip as replications are added, unlike a bound on the mean.

Alternative (``criterion="mean"``): a one-sided ``confidence`` t-bound on the
mean KPI meets the target (lower bound for ``>=``/``>``, upper for
``<=``/``<``). That asks whether the *expected* KPI meets the target, which
is the weaker promise: with many replications a team that misses the target
almost half the time still passes. It is offered for targets that are
themselves averages.

A replication where the KPI is undefined (NaN, e.g. no renewals were due)
counts as not meeting the target.

How the value is found
----------------------
The search assumes that meeting the target is monotone in the field (more
CSMs never make it worse) and that the field is an integer. It starts at the
scenario's current value, brackets the answer by doubling steps (up while the
target fails, down while it holds) and then bisects the bracket, so a range of
``n`` values costs about ``2·log2(n)`` evaluated values instead of ``n``.
Every value runs the same seed and replication ids (common random numbers),
so a replication's outcome moves with the field, not with the draws, and the
search is not misled by noise between values. Evaluated values are kept in
the result with their cost and KPI, and the marginal ARR retained per extra
CSM between successive evaluated values.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import ValidationError
from scipy import stats

from .errors import PlanError
from .metrics import KPI_NAMES, KPIS
from .results import SimulationResults, _fmt
from .scenario import Scenario

__all__ = ["Target", "parse_target", "plan", "PlanResults"]

OPERATORS = (">=", "<=", ">", "<")
_TARGET = re.compile(
    r"^\s*(?P<kpi>[A-Za-z_][A-Za-z0-9_]*)\s*(?:\[\s*(?P<scope>[^\]]*?)\s*\])?\s*(?P<op>[<>=!]+)\s*(?P<value>[^\s<>=!]\S*)\s*$"
)


@dataclass(frozen=True)
class Target:
    """A KPI target such as ``grr >= 0.90`` or ``touch_miss_rate[smb] < 0.05``."""

    kpi: str
    op: str
    value: float
    scope: str = "all"

    def met(self, values: np.ndarray) -> np.ndarray:
        """Elementwise: does each value meet the target (NaN never does)?"""
        v = np.asarray(values, dtype=float)
        with np.errstate(invalid="ignore"):
            out = {">=": v >= self.value, "<=": v <= self.value, ">": v > self.value, "<": v < self.value}[self.op]
        return out & np.isfinite(v)

    @property
    def higher_is_better(self) -> bool:
        return self.op in (">=", ">")

    def __str__(self) -> str:
        scope = f"[{self.scope}]" if self.scope != "all" else ""
        return f"{self.kpi}{scope} {self.op} {self.value:g}"


#: KPIs that are shares (0..1); every other KPI is at least 0 (NRR is a ratio that may exceed 1).
SHARE_KPIS = (
    "grr", "logo_retention", "renewal_rate", "renewal_grr", "monthly_logo_churn", "touch_miss_rate", "csm_utilisation",
)


def _check_range(text: str, kpi: str, op: str, value: float) -> None:
    """Refuse a target no outcome can meet, or every outcome meets (e.g. ``grr >= 90``: a percent typed as a number)."""
    low, high = (0.0, 1.0) if kpi in SHARE_KPIS else (0.0, math.inf)
    never = (op in (">=",) and value > high) or (op == ">" and value >= high) or \
        (op == "<=" and value < low) or (op == "<" and value <= low)
    always = (op in ("<=",) and value >= high) or (op == "<" and value > high) or \
        (op == ">=" and value <= low) or (op == ">" and value < low)
    if not (never or always):
        return
    hint = ""
    if kpi in SHARE_KPIS and 1.0 < value <= 100.0:
        hint = f"; {kpi} is a share: write {value / 100:g} or {value:g}%"
    what = "no outcome can meet it" if never else "every outcome meets it"
    span = f"{low:g}..{high:g}" if math.isfinite(high) else f"at least {low:g}"
    raise PlanError(f"target {text!r}: {kpi} is {span}, so {what}{hint}")


def parse_target(text: str, scopes: list[str] | None = None) -> Target:
    """Parse ``"kpi[scope] OP value"``; OP is one of ``>= <= > <``; value may end in ``%``.

    Raises PlanError (one line) for a malformed target, an unknown KPI, a bad
    operator or (when ``scopes`` is given) an unknown scope.
    """
    if not isinstance(text, str) or not text.strip():
        raise PlanError("target: empty; write e.g. \"grr >= 0.90\" or \"touch_miss_rate[smb] < 0.05\"")
    m = _TARGET.match(text)
    if not m:
        raise PlanError(
            f"target {text!r}: cannot read it; write KPI[scope] OPERATOR VALUE, e.g. \"grr >= 0.90\" "
            f"(operators: {', '.join(OPERATORS)})"
        )
    kpi, scope, op, raw = m.group("kpi"), m.group("scope"), m.group("op"), m.group("value")
    if kpi not in KPI_NAMES:
        hint = difflib.get_close_matches(kpi, KPI_NAMES, n=1)
        tip = f"; did you mean {hint[0]!r}?" if hint else f"; known: {', '.join(KPI_NAMES)}"
        raise PlanError(f"target {text!r}: unknown KPI {kpi!r}{tip}")
    if op not in OPERATORS:
        raise PlanError(f"target {text!r}: bad comparison operator {op!r}; use one of {', '.join(OPERATORS)}")
    try:
        value = float(raw[:-1]) / 100.0 if raw.endswith("%") else float(raw)
    except ValueError:
        raise PlanError(f"target {text!r}: {raw!r} is not a number") from None
    if not math.isfinite(value):
        raise PlanError(f"target {text!r}: the value must be a finite number, got {raw!r}")
    _check_range(text, kpi, op, value)
    scope = scope if scope else "all"
    if scopes is not None and scope not in scopes:
        raise PlanError(f"target {text!r}: unknown scope {scope!r} for {kpi}; known: {', '.join(scopes)}")
    return Target(kpi=kpi, op=op, value=value, scope=scope)


def _scopes(scenario: Scenario, kpi: str) -> list[str]:
    by = next(k.by for k in KPIS if k.name == kpi)
    return ["all", *(scenario.team.pods if by == "pod" else scenario.segments)]


def _retained_arr(res: SimulationResults) -> np.ndarray:
    """Annual ARR retained from window cohorts (start − churn − contraction), per replication."""
    w = res.arrays["window"]
    years = w["start_arr"].shape[1] if res.scenario.horizon_months >= 12 else res.scenario.horizon_months / 12.0
    return (w["start_arr"] - w["churned_arr"] - w["contraction_arr"]).sum(axis=(1, 2)) / years


@dataclass
class PlanResults:
    """The outcome of a target search.

    Attributes
    ----------
    answer : int or None
        The smallest value in ``[low, high]`` that meets the target, or None.
    target : Target
    over : str
        The field path searched.
    table : DataFrame
        One row per evaluated value (sorted): value, kpi mean and interval,
        share of replications meeting the target, whether it meets, annual CSM
        cost, annual retained ARR, and the marginals to the previous row.
    evaluations : list of int
        Values in the order they were simulated.
    """

    answer: int | None
    target: Target
    over: str
    confidence: float
    criterion: str
    low: int
    high: int
    table: pd.DataFrame
    evaluations: list[int]
    results: dict[int, SimulationResults] = field(repr=False, default_factory=dict)
    manifest: dict = field(default_factory=dict, repr=False)

    @property
    def n_evaluated(self) -> int:
        return len(self.evaluations)

    def summary(self) -> str:
        pct = int(round(self.confidence * 100))
        crit = (
            f"at least {pct}% of replications meet it"
            if self.criterion == "share"
            else f"the one-sided {pct}% bound on the mean meets it"
        )
        n = next(iter(self.results.values())).n_replications if self.results else 0
        if self.answer is None:
            head = (
                f"No value of {self.over} in [{self.low}, {self.high}] meets {self.target} ({crit}); "
                f"the best tried is shown below."
            )
        else:
            head = f"Smallest {self.over} meeting {self.target} ({crit}): {self.answer}"
        unit = next(k.unit for k in KPIS if k.name == self.target.kpi)
        lines = [
            head,
            f"{self.n_evaluated} of {self.high - self.low + 1} values simulated, {n} replications each, "
            f"common random numbers; bracket + bisection assuming the target is monotone in {self.over}.",
            f"{'value':>7}{'kpi mean':>12}{'90% CI of mean':>26}{'share met':>11}{'meets':>7}"
            f"{'CSM cost/yr':>14}{'retained ARR/yr':>17}{'Δ ARR per extra CSM':>21}",
        ]
        for r in self.table.itertuples():
            ci = f"[{_fmt(r.ci_lo, unit)}, {_fmt(r.ci_hi, unit)}]"
            lines.append(
                f"{r.value:>7}{_fmt(r.mean, unit):>12}{ci:>26}{r.share_met * 100:>10.0f}%{'yes' if r.meets else 'no':>7}"
                f"{_fmt(r.csm_cost_per_year, 'currency'):>14}{_fmt(r.retained_arr, 'currency'):>17}"
                f"{_fmt(r.marginal_arr_per_csm, 'currency'):>21}"
            )
        return "\n".join(lines)


def _evaluate_table(target: Target, over: str, criterion: str, confidence: float, results: dict) -> pd.DataFrame:
    rows = []
    for value in sorted(results):
        res = results[value]
        v = res.kpi(target.kpi, target.scope)
        finite = v[np.isfinite(v)]
        met = target.met(v)
        n = finite.size
        mean = float(finite.mean()) if n else np.nan
        half = stats.t.ppf(0.95, n - 1) * finite.std(ddof=1) / np.sqrt(n) if n > 1 else np.nan
        years = res.scenario.horizon_months / 12.0
        rows.append(
            {
                "value": value,
                "mean": mean,
                "ci_lo": mean - half,
                "ci_hi": mean + half,
                "share_met": float(met.mean()) if v.size else 0.0,
                "meets": _meets(target, criterion, confidence, v),
                "csm_cost_per_year": float(np.mean(res.kpi("csm_cost", "all"))) / years,
                "retained_arr": float(np.mean(_retained_arr(res))),
                "n": int(v.size),
            }
        )
    table = pd.DataFrame(rows)
    dv = table["value"].diff()
    table["marginal_cost_per_csm"] = table["csm_cost_per_year"].diff() / dv
    table["marginal_arr_per_csm"] = table["retained_arr"].diff() / dv
    return table


def _meets(target: Target, criterion: str, confidence: float, values: np.ndarray) -> bool:
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return False
    if criterion == "share":
        return bool(target.met(values).mean() >= confidence - 1e-12)
    finite = values[np.isfinite(values)]
    if finite.size < 2 or finite.size < values.size:
        return False
    se = finite.std(ddof=1) / np.sqrt(finite.size)
    q = stats.t.ppf(confidence, finite.size - 1)
    bound = finite.mean() - q * se if target.higher_is_better else finite.mean() + q * se
    return bool(target.met(np.array([bound]))[0])


def plan(
    scenario: Scenario | str | Path,
    target: str | Target,
    over: str,
    confidence: float = 0.8,
    low: int = 0,
    high: int = 30,
    criterion: str = "share",
    replications: int | None = None,
    seed: int | None = None,
    jobs: int | None = 1,
    dask=None,
    progress: bool = False,
    cache: str | Path | None = None,
    start: int | None = None,
) -> PlanResults:
    """Find the smallest integer value of ``over`` in ``[low, high]`` that meets ``target``.

    Parameters
    ----------
    scenario : Scenario or path
    target : str or Target
        ``"kpi[scope] OP value"``, e.g. ``"grr >= 0.9"``, ``"touch_miss_rate[smb] < 5%"``.
    over : str
        Dotted path of an integer field, e.g. ``team.pods.smb.headcount``.
    confidence : float
        See the module docstring: share of replications meeting the target
        (``criterion="share"``) or the level of a one-sided bound on the mean
        (``criterion="mean"``).
    low, high : int
        The range searched.
    replications, seed : int, optional
        Override the scenario's values (every value uses the same ones).
    jobs, dask
        Where to run; results do not depend on it.
    cache : path, optional
        Batch cache (see :mod:`cssim.cache`), so a rerun reuses evaluated values.
    start : int, optional
        Where the bracketing starts (default: the scenario's current value).
    """
    from .loader import load_scenario, scenario_hash
    from .simulate import versions
    from .sweep import _with_run_settings, point_scenario, resolve_path, run_points

    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    scenario = _with_run_settings(scenario, replications, seed)
    if isinstance(target, str):
        target = parse_target(target)
    scopes = _scopes(scenario, target.kpi)
    if target.scope not in scopes:
        raise PlanError(f"target {str(target)!r}: unknown scope {target.scope!r} for {target.kpi}; known: {', '.join(scopes)}")
    if criterion not in ("share", "mean"):
        raise PlanError(f"criterion: expected 'share' or 'mean', got {criterion!r}")
    if not 0.0 < confidence < 1.0 and not (criterion == "share" and confidence == 1.0):
        raise PlanError(f"confidence: must be in (0, 1), got {confidence}")
    if low > high:
        raise PlanError(f"--min {low} is above --max {high}")
    base = scenario.model_dump(mode="json", exclude={"sweep"})
    if over.split(".", 1)[0] in ("seed", "replications", "sweep"):
        raise PlanError(f"--over {over}: cannot search over {over.split('.', 1)[0]!r}")
    try:
        current = resolve_path(base, over)
    except ValueError as exc:
        raise PlanError(f"--over {over}: unknown field path ({exc})") from None
    if isinstance(current, bool) or not isinstance(current, int):
        raise PlanError(f"--over {over}: expected an integer field (like a headcount), its value is {current!r}")

    reps = list(range(scenario.replications))
    results: dict[int, SimulationResults] = {}
    order: list[int] = []
    verdict: dict[int, bool] = {}

    def meets(value: int) -> bool:
        if value not in verdict:
            try:
                point = point_scenario(base, {over: value})
            except ValidationError as exc:
                err = exc.errors(include_url=False)[0]
                where = ".".join(str(p) for p in err.get("loc", ())) or "(top level)"
                raise PlanError(f"--over {over}={value}: not a valid scenario: {where}: {err['msg']}") from None
            (res,), _ = run_points([point], reps, jobs=jobs, dask=dask, progress=progress, cache=cache,
                                    desc=f"{over}={value}")
            results[value] = res
            order.append(value)
            verdict[value] = _meets(target, criterion, confidence, res.kpi(target.kpi, target.scope))
        return verdict[value]

    start = min(max(current if start is None else start, low), high)
    good: int | None = None
    bad: int | None = None
    step = 1
    if meets(start):
        good = start
        while good > low:
            v = max(low, good - step)
            if meets(v):
                good, step = v, step * 2
            else:
                bad = v
                break
    else:
        bad = start
        while bad < high:
            v = min(high, bad + step)
            if meets(v):
                good = v
                break
            bad, step = v, step * 2
    if good is not None and bad is not None:
        while good - bad > 1:
            mid = (good + bad) // 2
            if meets(mid):
                good = mid
            else:
                bad = mid

    table = _evaluate_table(target, over, criterion, confidence, results)
    manifest = {
        "kind": "plan",
        "scenario_name": scenario.name,
        "scenario_hash": scenario_hash(scenario),
        "target": str(target),
        "over": over,
        "confidence": confidence,
        "criterion": criterion,
        "range": [low, high],
        "answer": good,
        "evaluations": order,
        "seed": scenario.seed,
        "replications": len(reps),
        "versions": versions(),
        "scenario": scenario.model_dump(mode="json"),
    }
    return PlanResults(
        answer=good, target=target, over=over, confidence=confidence, criterion=criterion, low=low, high=high,
        table=table, evaluations=order, results=results, manifest=manifest,
    )
