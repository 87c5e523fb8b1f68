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
CSMs never make it worse) and that the field is an integer. It evaluates the
scenario's current value, then the far end of the range in the direction that
matters (``high`` if the current value fails, ``low`` if it meets) and bisects
between the two, so a range of ``n`` values costs about ``2 + log2(n)``
evaluated values instead of ``n``. Every value runs the same seed and
replication ids (common random numbers), so a replication's outcome moves with
the field, not with the draws, and the search is not misled by noise between
values.

A lever that does not move the KPI is found after those two values: if the
paired difference of the KPI between them (replication by replication) has a
90 % interval that includes 0, the KPI does not respond to the field over
that range, and the search stops there and says so instead of bisecting.

What each value is reported with
--------------------------------
For every evaluated value: the KPI *at the chosen confidence* — the value the
KPI reaches in at least ``confidence`` of replications (an order statistic of
the replications; for ``criterion="mean"`` the one-sided bound on the mean) —
next to its mean and the 90 % interval of the mean; the share of replications
meeting the target; the annual CSM cost of all pods; the annual ARR retained
from window cohorts; and the marginal ARR retained per extra unit of the field
(per extra CSM) between successive evaluated values, a paired difference with
its 90 % interval.

Replications a claim needs
--------------------------
A share criterion at confidence ``c`` needs at least
``ceil(ln 0.1 / ln c)`` replications: with fewer, even a clean sweep (every
replication meets the target) would not show at 90 % confidence that the
share of futures meeting it is at least ``c`` (one-sided Clopper–Pearson).
The mean criterion needs at least 2 (a t-bound). Fewer are refused with the
number needed (:func:`min_replications`).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError
from scipy import stats

from ..core.contract import Results, Summary
from ..core.errors import PlanError
from ..core.formatting import fmt_change, fmt_value
from ..core.output import build_manifest
from ..model.loader import load_scenario, scenario_hash
from ..model.metrics import KPI_NAMES, KPI_UNITS, KPIS
from ..model.scenario import RESOLVED, Scenario
from ..sim.backends import progress_bar_class
from .results import SimulationResults, mean_interval, paired_interval
from .sweep import _with_run_settings, point_scenario, resolve_path, run_points

__all__ = ["Target", "parse_target", "plan", "PlanResults", "min_replications", "kpi_at_confidence"]

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
    return res.retained_arr()


def min_replications(confidence: float, criterion: str = "share") -> int:
    """Replications a ``confidence`` claim needs (see the module docstring).

    Share criterion: the smallest ``n`` with ``confidence**n <= 0.1`` — below
    it, even every replication meeting the target would not show at 90 %
    (one-sided Clopper–Pearson) that the share of futures meeting it is at
    least ``confidence``. Mean criterion: 2 (a t-bound needs a spread).
    """
    if criterion == "mean":
        return 2
    if confidence <= 0.1:
        return 1
    if confidence >= 1.0:
        raise PlanError("confidence 1.0: no finite number of replications shows that every future meets a target; "
                        "use a confidence below 1")
    return int(math.ceil(math.log(0.1) / math.log(confidence) - 1e-12))


def kpi_at_confidence(target: Target, criterion: str, confidence: float, values: np.ndarray) -> float:
    """The KPI level met with ``confidence``: what a plan can count on at this value.

    Share criterion: the largest level ``x`` such that at least ``confidence``
    of replications have a KPI at least ``x`` (for ``>=``/``>``; at most ``x``
    for ``<=``/``<``) — the ``ceil(confidence·n)``-th best replication. An
    undefined (NaN) replication counts as the worst. Mean criterion: the
    one-sided ``confidence`` t-bound on the mean. NaN if it cannot be said.
    """
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return np.nan
    if criterion == "mean":
        finite = v[np.isfinite(v)]
        if finite.size < 2 or finite.size < v.size:
            return np.nan
        se = finite.std(ddof=1) / np.sqrt(finite.size)
        q = stats.t.ppf(confidence, finite.size - 1)
        return float(finite.mean() - q * se if target.higher_is_better else finite.mean() + q * se)
    worst = -np.inf if target.higher_is_better else np.inf
    ranked = np.sort(np.where(np.isfinite(v), v, worst))
    if target.higher_is_better:
        ranked = ranked[::-1]
    # The fewest replications whose share reaches the confidence, with the same tolerance as _meets.
    k = max(1, int(math.ceil(confidence * v.size)))
    while k > 1 and (k - 1) / v.size >= confidence - 1e-12:
        k -= 1
    while k < v.size and k / v.size < confidence - 1e-12:
        k += 1
    x = float(ranked[k - 1])
    return x if np.isfinite(x) else np.nan


def scope_label(target: Target) -> str:
    """``grr (all customers)``, ``touch_miss_rate (segment smb)`` or ``csm_utilisation (pod smb)``."""
    by = next(k.by for k in KPIS if k.name == target.kpi)
    if target.scope == "all":
        return f"{target.kpi} (all customers)" if by != "pod" else f"{target.kpi} (all pods)"
    return f"{target.kpi} ({'pod' if by == 'pod' else 'segment'} {target.scope})"


@dataclass
class PlanResults(Results):
    """The outcome of a target search.

    Attributes
    ----------
    answer : int or None
        The smallest value in ``[low, high]`` that meets the target, or None.
    target : Target
    over : str
        The field path searched.
    evaluated : DataFrame
        :meth:`table`: one row per evaluated value (sorted): value; the KPI at the chosen
        confidence (``kpi_at_confidence``), its mean with the 90 % interval of
        the mean; share of replications meeting the target; whether it meets;
        annual CSM cost (all pods); annual retained ARR; and the marginals to
        the previous row (``marginal_arr_per_csm`` with ``_lo``/``_hi``, a
        paired 90 % interval).
    evaluations : list of int
        Values in the order they were simulated.
    no_response : bool
        The KPI did not move between the two ends searched (the paired 90 %
        interval of the change includes 0); the search stopped there.
    response : dict
        The paired change of the KPI between the first value and the far end
        evaluated: ``from``, ``to``, ``diff``, ``ci_lo``, ``ci_hi``.
    """

    answer: int | None
    target: Target
    over: str
    confidence: float
    criterion: str
    low: int
    high: int
    evaluated: pd.DataFrame
    evaluations: list[int]
    results: dict[int, SimulationResults] = field(repr=False, default_factory=dict)
    manifest: dict = field(default_factory=dict, repr=False)
    no_response: bool = False
    response: dict = field(default_factory=dict)

    KIND = "plan"

    @property
    def n_evaluated(self) -> int:
        return len(self.evaluations)

    def table(self) -> pd.DataFrame:
        """One row per evaluated value (see the class docstring)."""
        return self.evaluated

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"plan": self.table()}

    def summary(self) -> Summary:
        pct = int(round(self.confidence * 100))
        label = scope_label(self.target)
        crit = (
            f"at least {pct}% of replications meet it"
            if self.criterion == "share"
            else f"the one-sided {pct}% bound on the mean meets it"
        )
        n = next(iter(self.results.values())).n_replications if self.results else 0
        unit = KPI_UNITS[self.target.kpi]
        lines = []
        if self.answer is None:
            lines.append(
                f"No value of {self.over} in [{self.low}, {self.high}] meets {self.target} — {label} ({crit})."
            )
        else:
            lines.append(f"Smallest {self.over} meeting {self.target} ({crit}): {self.answer} — {label}.")
        r = self.response
        if r:
            change = (f"{label} changes by {fmt_change(r['diff'], unit)} "
                      f"[90% CI {fmt_change(r['ci_lo'], unit)}, {fmt_change(r['ci_hi'], unit)}] "
                      f"from {self.over}={r['from']} to {r['to']} (paired, same customers)")
            if self.no_response:
                then = (f"more of {self.over} will not reach the target — change another lever or the target"
                        if self.answer is None else f"the target is met across the range, so {self.answer} is enough")
                lines.append(f"This lever does not move this KPI: {change}; the interval includes 0, so the change "
                             f"is within noise. Search stopped after {self.n_evaluated} values; {then}.")
                hint = self._scope_hint()
                if hint:
                    lines.append(hint)
            elif self.answer is None:
                lines.append(f"{change}, not enough to reach the target within the range.")
            elif r["ci_lo"] <= 0.0 <= r["ci_hi"]:
                lines.append(f"Caution: {change}; the interval includes 0, so the answer rests on a change "
                             f"within noise — run more replications before acting on it.")
        lines.append(
            f"{self.n_evaluated} of {self.high - self.low + 1} values simulated, {n} replications each, "
            f"common random numbers; assumes the target is monotone in {self.over}."
        )
        at = f"{label[: label.index(' (')]} met in {pct}%" if self.criterion == "share" else f"{pct}% bound on mean"
        lines.append(
            f"{'value':>7}{at:>30}{'mean [90% CI of mean]':>32}{'share met':>11}{'meets':>7}"
            f"{'CSM cost/yr, all pods':>23}{'retained ARR/yr':>17}{'Δ retained ARR/yr per +1 [90% CI]':>38}"
        )
        for row in self.evaluated.itertuples():
            mean = f"{fmt_value(row.mean, unit)} [{fmt_value(row.ci_lo, unit)}, {fmt_value(row.ci_hi, unit)}]"
            marg = "" if not np.isfinite(row.marginal_arr_per_csm) else (
                f"{fmt_change(row.marginal_arr_per_csm, 'currency')} "
                f"[{fmt_change(row.marginal_arr_per_csm_lo, 'currency')}, "
                f"{fmt_change(row.marginal_arr_per_csm_hi, 'currency')}]")
            lines.append(
                f"{row.value:>7}{fmt_value(row.kpi_at_confidence, unit):>30}{mean:>32}{row.share_met * 100:>10.0f}%"
                f"{'yes' if row.meets else 'no':>7}{fmt_value(row.csm_cost_per_year, 'currency'):>23}"
                f"{fmt_value(row.retained_arr, 'currency'):>17}{marg:>38}"
            )
        lines.append(
            f"'{at}': the level {label} reaches in at least {pct}% of replications"
            if self.criterion == "share"
            else f"'{at}': one-sided {pct}% t-bound on the mean of {label}"
        )
        lines.append("Retained ARR: annual ARR kept from each window's starting customers (all customers); "
                     "Δ per +1: paired difference to the previous value tried, per unit of the field.")
        return Summary(self.evaluated.set_index("value"), text="\n".join(lines))


    def _scope_hint(self) -> str:
        """For a pod's field and an all-customer target: the segments that pod serves, to target instead."""
        parts = self.over.split(".")
        if self.target.scope != "all" or len(parts) < 3 or parts[:2] != ["team", "pods"] or not self.results:
            return ""
        pod = next(iter(self.results.values())).scenario.team.pods.get(parts[2])
        by = next(k.by for k in KPIS if k.name == self.target.kpi)
        if pod is None or by != "segment" or not pod.segments:
            return ""
        scoped = ", ".join(f"{self.target.kpi}[{s}]" for s in pod.segments)
        return (f"Pod {parts[2]} serves {', '.join(pod.segments)}; the all-customer KPI may hide its effect — "
                f"a target on {scoped} asks about the customers this lever reaches.")


def _evaluate_table(target: Target, over: str, criterion: str, confidence: float, results: dict) -> pd.DataFrame:
    rows = []
    retained = {}
    for value in sorted(results):
        res = results[value]
        v = res.kpi(target.kpi, target.scope)
        finite = v[np.isfinite(v)]
        met = target.met(v)
        mean, ci_lo, ci_hi = mean_interval(finite, 0.9)
        years = res.scenario.horizon_months / 12.0
        retained[value] = _retained_arr(res)
        rows.append(
            {
                "value": value,
                "kpi": target.kpi,
                "scope": target.scope,
                "kpi_at_confidence": kpi_at_confidence(target, criterion, confidence, v),
                "mean": mean,
                "ci_lo": ci_lo,
                "ci_hi": ci_hi,
                "share_met": float(met.mean()) if v.size else 0.0,
                "meets": _meets(target, criterion, confidence, v),
                "csm_cost_per_year": float(np.mean(res.kpi("csm_cost", "all"))) / years,
                "retained_arr": float(np.mean(retained[value])),
                "n": int(v.size),
            }
        )
    table = pd.DataFrame(rows)
    dv = table["value"].diff()
    table["marginal_cost_per_csm"] = table["csm_cost_per_year"].diff() / dv
    marg = [(np.nan, np.nan, np.nan)]
    values = list(table["value"])
    for prev, cur in zip(values[:-1], values[1:], strict=True):
        d, lo, hi = paired_interval(retained[prev], retained[cur])
        marg.append((d / (cur - prev), lo / (cur - prev), hi / (cur - prev)))
    table["marginal_arr_per_csm"] = [m[0] for m in marg]
    table["marginal_arr_per_csm_lo"] = [m[1] for m in marg]
    table["marginal_arr_per_csm_hi"] = [m[2] for m in marg]
    return table


def _meets(target: Target, criterion: str, confidence: float, values: np.ndarray) -> bool:
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return False
    if criterion == "share":
        return bool(target.met(values).mean() >= confidence - 1e-12)
    bound = kpi_at_confidence(target, criterion, confidence, values)
    return bool(np.isfinite(bound) and target.met(np.array([bound]))[0])


def _max_evaluations(low: int, high: int) -> int:
    return min(high - low + 1, 2 + int(math.ceil(math.log2(max(high - low, 1)))))


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
    overrides: Mapping[str, Any] | None = None,
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
        Fewer than :func:`min_replications` are refused (PlanError).
    jobs, dask
        Where to run; results do not depend on it.
    progress : bool
        One bar over the whole search (replications of every value; the
        total is the most values the search can need, so the ETA is an upper bound).
    cache : path, optional
        Batch cache (see :mod:`cssim.cache`), so a rerun reuses evaluated values.
    start : int, optional
        Where the search starts (default: the scenario's current value).
    """
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    scenario = _with_run_settings(scenario, replications, seed, overrides)
    if isinstance(target, str):
        target = parse_target(target)
    scopes = _scopes(scenario, target.kpi)
    if target.scope not in scopes:
        raise PlanError(f"target {str(target)!r}: unknown scope {target.scope!r} for {target.kpi}; known: {', '.join(scopes)}")
    if criterion not in ("share", "mean"):
        raise PlanError(f"criterion: expected 'share' or 'mean', got {criterion!r}")
    if not 0.0 < confidence < 1.0:
        raise PlanError(f"confidence: must be in (0, 1), got {confidence}")
    needed = min_replications(confidence, criterion)
    if scenario.replications < needed:
        why = (f"even if all {scenario.replications} met the target, that would not show at 90% that at least "
               f"{confidence:g} of futures do" if criterion == "share" else "a bound on the mean needs a spread")
        raise PlanError(
            f"replications: {scenario.replications} cannot support confidence {confidence:g} with the {criterion} "
            f"criterion ({why}); use at least {needed} (-n {needed})"
        )
    if low > high:
        raise PlanError(f"--min {low} is above --max {high}")
    base = scenario.model_dump(mode="json", exclude={"sweep", "sensitivity"}, context=RESOLVED)
    if over.split(".", 1)[0] in ("seed", "replications", "sweep", "sensitivity"):
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
    tqdm = progress_bar_class(progress)
    bar = tqdm(total=_max_evaluations(low, high) * len(reps), disable=not progress, unit="rep",
               desc=f"plan {over} for {target}")

    def meets(value: int) -> bool:
        if value not in verdict:
            try:
                point = point_scenario(base, {over: value})
            except ValidationError as exc:
                err = exc.errors(include_url=False)[0]
                where = ".".join(str(p) for p in err.get("loc", ())) or "(top level)"
                raise PlanError(f"--over {over}={value}: not a valid scenario: {where}: {err['msg']}") from None
            done_before = len(order) * len(reps)
            bar.set_postfix_str(f"{over.rsplit('.', 1)[-1]}={value}")

            def on_batch(done: int, total: int) -> None:
                bar.n = done_before + int(round(len(reps) * done / max(total, 1)))
                bar.refresh()

            (res,), _ = run_points([point], reps, jobs=jobs, dask=dask, progress=False, cache=cache,
                                    on_batch=on_batch)
            results[value] = res
            order.append(value)
            bar.n = len(order) * len(reps)
            bar.refresh()
            verdict[value] = _meets(target, criterion, confidence, res.kpi(target.kpi, target.scope))
        return verdict[value]

    start = min(max(current if start is None else start, low), high)
    good: int | None = None
    bad: int | None = None
    no_response = False
    response: dict = {}
    try:
        first = meets(start)
        far = low if first else high
        if far != start:
            far_meets = meets(far)
            a, b = results[start].kpi(target.kpi, target.scope), results[far].kpi(target.kpi, target.scope)
            diff, lo, hi = paired_interval(a, b)
            response = {"from": start, "to": far, "diff": diff, "ci_lo": lo, "ci_hi": hi}
            flat = bool(np.isfinite(diff) and (not np.isfinite(lo) or lo <= 0.0 <= hi))
            # Stop only when both ends agree; if they straddle the target, bisect (and report the change).
            no_response = flat and far_meets == first
            if first:
                good, bad = (far, None) if far_meets else (start, far)
            else:
                good, bad = (far, start) if far_meets else (None, far)
        else:
            good, bad = (start, None) if first else (None, start)
        if good is not None and bad is not None:
            while good - bad > 1:
                mid = (good + bad) // 2
                if meets(mid):
                    good = mid
                else:
                    bad = mid
    finally:
        bar.total = len(order) * len(reps)
        bar.n = bar.total
        bar.close()

    table = _evaluate_table(target, over, criterion, confidence, results)
    manifest = build_manifest(
        "plan", scenario_name=scenario.name, scenario_hash=scenario_hash(scenario), target=str(target),
        scope_label=scope_label(target), over=over, confidence=confidence, criterion=criterion, range=[low, high],
        answer=good, evaluations=order, no_response=no_response, response=response, seed=scenario.seed,
        replications=len(reps), scenario=scenario.model_dump(mode="json"),
    )
    return PlanResults(
        answer=good, target=target, over=over, confidence=confidence, criterion=criterion, low=low, high=high,
        evaluated=table, evaluations=order, results=results, manifest=manifest, no_response=no_response,
        response=response,
    )
