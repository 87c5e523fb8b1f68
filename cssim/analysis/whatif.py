"""What-ifs for the planning page: a scenario changed by a few controls, run, compared and tabled.

A planning meeting asks "and with two more mid-market CSMs?" and wants the answer
while the question is still on the table. :class:`Planner` holds a starting
scenario, builds a variant from the values of a few controls (:class:`Controls`:
headcount per pod, touch model per segment and per ARR-band route, replications),
simulates it on the same seed and replications as the start (common random
numbers, so the difference is what the change did) and keeps every result under
the resolved scenario's hash (:func:`cssim.loader.scenario_hash`): going back to
an earlier setting is a dictionary look-up.

Everything here is plain Python with pandas and matplotlib and is tested without
a browser; :mod:`cssim.app` only lays widgets over it.
"""

from __future__ import annotations

import html
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.errors import PlanError, ScenarioError
from ..core.formatting import fmt_change, fmt_value
from ..core.limits import MAX_HEADCOUNT, MAX_REPLICATIONS
from ..model.checks import model_checks
from ..model.loader import read_scenario_dict, scenario_from_dict, scenario_hash
from ..model.metrics import KPI_UNITS, kpi_label
from ..model.scenario import Scenario
from ..model.variants import set_path
from ..shipped import resolve_scenario
from .compare import ComparisonResults
from .results import SimulationResults, mean_interval
from .simulate import simulate

__all__ = ["DEFAULT_REPLICATIONS", "HEADLINE_KPIS", "Controls", "Planner", "WhatIf", "route_label"]

#: The KPIs a planning meeting reads first (all customers): retention, revenue, cost and whether touches happen.
HEADLINE_KPIS = ("grr", "nrr", "logo_retention", "ending_arr", "csm_cost", "cost_per_retained_arr",
                 "touch_miss_rate", "csm_utilisation")
#: Replications per what-if unless the scenario or the caller asks for fewer: enough for paired intervals
#: (common random numbers make them narrow) while an answer stays within seconds at the baseline's size.
DEFAULT_REPLICATIONS = 8
#: Results kept in memory (each is a few hundred kilobytes of monthly arrays).
CACHE_SIZE = 64
LEVEL = 0.9


def route_label(route: dict) -> str:
    """A route in words: ``smb under $5.0k ARR``, ``any segment from $100.0k ARR``."""
    who = route.get("segment") or "any segment"
    parts = []
    if route.get("arr_at_least") is not None:
        parts.append(f"from {fmt_value(route['arr_at_least'], 'currency')}")
    if route.get("arr_below") is not None:
        parts.append(f"under {fmt_value(route['arr_below'], 'currency')}")
    return f"{who} {' and '.join(parts)} ARR" if parts else who


@dataclass(frozen=True)
class Controls:
    """The values a page's controls hold.

    Attributes
    ----------
    headcount : dict
        Pod name → CSMs at the start (hires in the scenario come on top).
    touch_model : dict
        Segment name → its touch model (customers no route catches).
    routes : tuple
        The touch model of each ``policy.routes`` entry, in order (ARR-band routing).
    replications : int
        Replications of the what-if and of the start it is compared with.
    """

    headcount: dict[str, int]
    touch_model: dict[str, str]
    routes: tuple[str, ...] = ()
    replications: int = DEFAULT_REPLICATIONS

    def overrides(self) -> dict[str, Any]:
        """Dotted scenario fields these values set (:func:`cssim.loader.set_path` paths)."""
        out: dict[str, Any] = {f"team.pods.{p}.headcount": n for p, n in self.headcount.items()}
        out.update({f"segments.{s}.touch_model": t for s, t in self.touch_model.items()})
        out.update({f"policy.routes.{i}.touch_model": t for i, t in enumerate(self.routes)})
        out["replications"] = self.replications
        return out

    def changes(self, start: Controls) -> list[str]:
        """What differs from ``start``, in words (``mid_market CSMs 3 → 5``); replications are not a change."""
        out = [f"{p} CSMs {start.headcount[p]} → {n}" for p, n in self.headcount.items() if start.headcount.get(p) != n]
        out += [f"{s}: {start.touch_model[s]} → {t}" for s, t in self.touch_model.items()
                if start.touch_model.get(s) != t]
        out += [f"route {i + 1}: {a} → {b}" for i, (a, b) in enumerate(zip(start.routes, self.routes, strict=True))
                if a != b]
        return out

    def key(self) -> tuple:
        """Hashable form (the frontier's point identity)."""
        return (tuple(sorted(self.headcount.items())), tuple(sorted(self.touch_model.items())), self.routes,
                self.replications)


@dataclass
class WhatIf:
    """One setting's results against the start, on the same replications.

    Attributes
    ----------
    controls : Controls
    scenario : Scenario
        The resolved variant that was simulated.
    comparison : ComparisonResults
        ``[start, what-if]``: the compare machinery's paired differences and trade-off.
    warnings : list of str
        Model checks on the variant (e.g. a pod whose offered load is ≥ 1).
    seconds : float
        Wall time this answer took (0 when both results came from the cache).
    cached : bool
        Both results were in the cache.
    """

    controls: Controls
    scenario: Scenario
    comparison: ComparisonResults
    changes: list[str]
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cached: bool = False

    @property
    def results(self) -> SimulationResults:
        return self.comparison.results[1]

    @property
    def start(self) -> SimulationResults:
        return self.comparison.results[0]

    def kpi_table(self, kpis: tuple[str, ...] = HEADLINE_KPIS) -> pd.DataFrame:
        """Headline KPIs (all customers), numeric: kpi, label, unit, mean, lo, hi (90 % across replications),
        start_mean, diff, diff_lo, diff_hi (paired 90 % interval of the mean difference), distinguishable."""
        mine = self.results.kpis(LEVEL, scope="all").set_index("kpi")
        start = self.start.kpis(LEVEL, scope="all").set_index("kpi")
        diffs = self.comparison.differences(scope="all").set_index("kpi")
        rows = []
        for k in kpis:
            d = diffs.loc[k]
            rows.append({
                "kpi": k, "label": kpi_label(k), "unit": KPI_UNITS[k],
                "mean": mine.loc[k, "mean"], "lo": mine.loc[k, "lo"], "hi": mine.loc[k, "hi"],
                "start_mean": start.loc[k, "mean"],
                "diff": d["diff"], "diff_lo": d["ci_lo"], "diff_hi": d["ci_hi"],
                "distinguishable": bool(d["distinguishable"]),
                "identical": bool(np.array_equal(self.results.kpi(k), self.start.kpi(k), equal_nan=True)),
            })
        return pd.DataFrame(rows)

    def formatted_table(self, kpis: tuple[str, ...] = HEADLINE_KPIS) -> pd.DataFrame:
        """:meth:`kpi_table` as the text a reader sees (money as ``$45.38M``, ratios as ``87.0%``)."""
        t = self.kpi_table(kpis)
        pct = round(LEVEL * 100)
        out = pd.DataFrame({
            "KPI (all customers)": t["label"],
            "what-if": [fmt_value(r.mean, r.unit) for r in t.itertuples()],
            f"{pct}% interval": [f"{fmt_value(r.lo, r.unit)} – {fmt_value(r.hi, r.unit)}" for r in t.itertuples()],
            "start": [fmt_value(r.start_mean, r.unit) for r in t.itertuples()],
            "difference": [fmt_change(r.diff, r.unit) for r in t.itertuples()],
            f"{pct}% interval of the difference": [
                f"{fmt_change(r.diff_lo, r.unit)} – {fmt_change(r.diff_hi, r.unit)}" for r in t.itertuples()],
            "verdict": [_verdict(r) for r in t.itertuples()],
        })
        return out

    def noise_note(self) -> str:
        """One sentence: which headline differences are real and which are within noise."""
        t = self.kpi_table()
        n = self.results.n_replications
        if not self.changes:
            return f"This is the starting scenario ({n} replications): no difference to show."
        real = t[t["distinguishable"]]["kpi"].tolist()
        noise = t[~t["distinguishable"] & ~t["identical"]]["kpi"].tolist()
        same = t[t["identical"]]["kpi"].tolist()
        parts = []
        if real:
            parts.append(f"Distinguishable from noise ({int(LEVEL * 100)}% interval excludes 0): {', '.join(real)}.")
        if noise:
            parts.append(f"Within noise at {n} replications: {', '.join(noise)} — more replications, or a bigger "
                         "change, before reading these differences.")
        if same:
            parts.append(f"Unchanged in every replication: {', '.join(same)}.")
        return " ".join(parts)

    def tradeoff_line(self) -> str:
        """Δ CSM cost per year against Δ ending and retained ARR (from :meth:`ComparisonResults.tradeoff_lines`)."""
        return self.comparison.tradeoff_lines()[0]

    def table_html(self, kpis: tuple[str, ...] = HEADLINE_KPIS) -> str:
        """The KPI table as HTML; every number cell carries its exact value (``data-value``) for checking."""
        t = self.kpi_table(kpis)
        shown = self.formatted_table(kpis)
        cols = list(shown.columns)
        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        body = []
        for r, (_, s) in zip(t.itertuples(), shown.iterrows(), strict=True):
            cls = "real" if r.distinguishable else ("same" if r.identical else "noise")
            cells = [
                f"<td>{html.escape(s.iloc[0])}</td>",
                f'<td class="num" data-value="{r.mean!r}">{html.escape(s.iloc[1])}</td>',
                f'<td class="num" data-lo="{r.lo!r}" data-hi="{r.hi!r}">{html.escape(s.iloc[2])}</td>',
                f'<td class="num" data-value="{r.start_mean!r}">{html.escape(s.iloc[3])}</td>',
                f'<td class="num" data-value="{r.diff!r}">{html.escape(s.iloc[4])}</td>',
                f'<td class="num">{html.escape(s.iloc[5])}</td>',
                f'<td class="{cls}">{html.escape(s.iloc[6])}</td>',
            ]
            body.append(f'<tr data-kpi="{r.kpi}">' + "".join(cells) + "</tr>")
        return (f'<table id="kpi-table" class="cssim-kpis" data-hash="{scenario_hash(self.scenario)}" '
                f'data-replications="{self.results.n_replications}" data-seed="{self.scenario.seed}">'
                f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")


def _verdict(r) -> str:
    if r.identical:
        return "unchanged"
    return "real change" if r.distinguishable else "within noise"


class Planner:
    """A starting scenario, the variants the controls make of it, and a cache of their results.

    Parameters
    ----------
    scenario : path, shipped name or Scenario
        The starting scenario (``"baseline"`` finds the shipped one).
    replications : int, optional
        Default replications per what-if: the scenario's, at most :data:`DEFAULT_REPLICATIONS` and at least 2.
    jobs : int
        Worker processes per run (``-1``: every core); results do not depend on it.
    """

    def __init__(self, scenario: str | Path | Scenario, replications: int | None = None, jobs: int = -1):
        if isinstance(scenario, Scenario):
            self.source = scenario.name
            self._data = scenario.model_dump(mode="json", exclude={"sweep", "sensitivity"})
        else:
            self.source = str(scenario)
            self._data = read_scenario_dict(resolve_scenario(scenario))
            self._data.pop("sweep", None)
            self._data.pop("sensitivity", None)
        self.base = scenario_from_dict(self._data, source=self.source)
        self.jobs = jobs
        # At least two replications: a paired interval needs them, whatever the scenario file says.
        default = max(2, min(self.base.replications, DEFAULT_REPLICATIONS)) if replications is None else replications
        self.start = Controls(
            headcount={name: pod.headcount for name, pod in self.base.team.pods.items()},
            touch_model={name: seg.touch_model for name, seg in self.base.segments.items()},
            routes=tuple(r.touch_model for r in self.base.policy.routes),
            replications=self._check_replications(default),
        )
        self._cache: OrderedDict[str, SimulationResults] = OrderedDict()
        self._lock = threading.Lock()
        self.visited: OrderedDict[tuple, Controls] = OrderedDict()

    # ------------------------------------------------------------------ controls

    @property
    def name(self) -> str:
        return self.base.name

    @property
    def touch_models(self) -> list[str]:
        return list(self.base.touch_models)

    @property
    def routes(self) -> list[str]:
        """Each ARR-band route in words, in order."""
        return [route_label(r.model_dump()) for r in self.base.policy.routes]

    def controls(self, headcount: dict[str, int] | None = None, touch_model: dict[str, str] | None = None,
                 routes: tuple[str, ...] | list[str] | None = None, replications: int | None = None) -> Controls:
        """The start's controls with some values changed; unknown names and bad values are refused in one line."""
        start = self.start
        hc = dict(start.headcount)
        for pod, n in (headcount or {}).items():
            if pod not in hc:
                raise PlanError(f"headcount: no pod {pod!r} in {self.name}; pods: {', '.join(hc)}")
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n <= MAX_HEADCOUNT:
                raise PlanError(f"headcount of {pod}: {n!r} is not a whole number of CSMs in 0..{MAX_HEADCOUNT:,}")
            hc[pod] = int(n)
        tm = dict(start.touch_model)
        for seg, model in (touch_model or {}).items():
            if seg not in tm:
                raise PlanError(f"touch model: no segment {seg!r} in {self.name}; segments: {', '.join(tm)}")
            tm[seg] = self._check_model(model, f"touch model of {seg}")
        rt = start.routes if routes is None else tuple(routes)
        if len(rt) != len(start.routes):
            raise PlanError(f"routes: {self.name} has {len(start.routes)} routes, got {len(rt)} touch models")
        rt = tuple(self._check_model(m, f"route {i + 1}") for i, m in enumerate(rt))
        reps = start.replications if replications is None else self._check_replications(replications)
        return Controls(headcount=hc, touch_model=tm, routes=rt, replications=reps)

    def _check_model(self, model: str, where: str) -> str:
        if model not in self.base.touch_models:
            raise PlanError(f"{where}: no touch model {model!r}; known: {', '.join(self.base.touch_models)}")
        return model

    @staticmethod
    def _check_replications(n) -> int:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 2 <= n <= MAX_REPLICATIONS:
            raise PlanError(f"replications: {n!r} is not allowed; give a whole number in 2..{MAX_REPLICATIONS:,} "
                            "(a paired interval needs two)")
        return int(n)

    def scenario(self, controls: Controls) -> tuple[Scenario, list[str]]:
        """The resolved variant for ``controls`` and its model-check findings (warnings, not errors)."""
        data = self._data
        for path, value in controls.overrides().items():
            data = set_path(data, path, value)
        changes = controls.changes(self.start)
        if changes:
            data["name"] = f"{self.base.name}_whatif"
        scenario = scenario_from_dict(data, source=self.source)
        return scenario, model_checks(scenario, self.source)

    # ------------------------------------------------------------------ running

    def results(self, scenario: Scenario) -> tuple[SimulationResults, bool]:
        """Simulated results of ``scenario`` and whether they came from the cache (keyed by its hash)."""
        key = scenario_hash(scenario)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key], True
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # model checks are reported by what_if, once
            res = simulate(scenario, jobs=self.jobs)
        with self._lock:
            self._cache[key] = res
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return res, False

    def cached(self, controls: Controls) -> bool:
        """Whether ``controls``'s answer is already in the cache (both the start and the variant)."""
        variant, _ = self.scenario(controls)
        start, _ = self.scenario(replace(self.start, replications=controls.replications))
        with self._lock:
            return scenario_hash(variant) in self._cache and scenario_hash(start) in self._cache

    def what_if(self, controls: Controls) -> WhatIf:
        """Simulate ``controls``'s variant and the start on the same seed and replications, and compare them."""
        began = time.perf_counter()
        variant, findings = self.scenario(controls)
        start_scenario, _ = self.scenario(replace(self.start, replications=controls.replications))
        start, hit_a = self.results(start_scenario)
        mine, hit_b = self.results(variant)
        comparison = ComparisonResults(names=[f"{self.base.name} (start)", "what-if"], results=[start, mine],
                                       level=LEVEL)
        self.visited[controls.key()] = controls
        self.visited.move_to_end(controls.key())
        return WhatIf(controls=controls, scenario=variant, comparison=comparison, changes=controls.changes(self.start),
                      warnings=findings, seconds=time.perf_counter() - began, cached=hit_a and hit_b)

    # ------------------------------------------------------------------ frontier

    def frontier(self, replications: int | None = None) -> pd.DataFrame:
        """Every visited setting at ``replications`` (default the start's) whose results are cached.

        Columns: setting (its changes in words, ``start`` for the start), cost_per_year (CSM cost, all
        pods), cost_lo, cost_hi, retained_arr (annual ARR retained from window cohorts), retained_lo,
        retained_hi (90 % intervals of the means), efficient (no other setting costs less and retains more).
        """
        reps = self.start.replications if replications is None else replications
        settings = [self.start] + [c for c in self.visited.values() if c.key() != self.start.key()]
        rows = []
        for c in settings:
            c = replace(c, replications=reps) if c is self.start else c
            if c.replications != reps:
                continue
            scenario, _ = self.scenario(c)
            with self._lock:
                res = self._cache.get(scenario_hash(scenario))
            if res is None:
                continue
            years = res.scenario.horizon_months / 12.0
            cost, cost_lo, cost_hi = mean_interval(res.kpi("csm_cost") / years, LEVEL)
            kept, kept_lo, kept_hi = mean_interval(res.retained_arr(), LEVEL)
            rows.append({"setting": "; ".join(c.changes(self.start)) or "start", "cost_per_year": cost,
                         "cost_lo": cost_lo, "cost_hi": cost_hi, "retained_arr": kept, "retained_lo": kept_lo,
                         "retained_hi": kept_hi})
        table = pd.DataFrame(rows, columns=["setting", "cost_per_year", "cost_lo", "cost_hi", "retained_arr",
                                            "retained_lo", "retained_hi"])
        table = table.drop_duplicates("setting").reset_index(drop=True)
        cost, kept = table["cost_per_year"].to_numpy(), table["retained_arr"].to_numpy()
        table["efficient"] = [
            not bool(np.any((cost <= cost[i]) & (kept >= kept[i]) & ((cost < cost[i]) | (kept > kept[i]))))
            for i in range(len(table))
        ]
        return table


def run_error(exc: Exception) -> str:
    """The one line a page shows for a refused setting (a ScenarioError may list several problems)."""
    if isinstance(exc, ScenarioError) and getattr(exc, "problems", None):
        return "; ".join(exc.problems)
    return str(exc)
