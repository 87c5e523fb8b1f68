"""Compare policies on the same random customers: paired differences with intervals.

Every scenario is simulated with the same seed and the same replication ids,
so replication ``r`` of each scenario sees the same customers — the same
arrivals, ARR, underlying lifetimes and renewal draws (common random numbers,
see :mod:`cssim.streams`). The difference of a KPI between two scenarios is
then taken replication by replication, and its interval reflects what the
policy changed, not how the draws happened to differ. For the same number of
replications the paired interval is much narrower than the interval of a
difference of independent runs (:func:`unpaired_difference`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..core.contract import Results, Summary
from ..core.errors import PlanError
from ..core.formatting import fmt_change, fmt_value
from ..core.output import build_manifest
from ..model.loader import load_scenario
from ..model.metrics import KPI_UNITS, MONEY_BASIS, kpi_label
from ..model.scenario import Scenario
from .results import SimulationResults
from .sweep import _with_run_settings, run_points

__all__ = ["ComparisonResults", "compare", "paired_difference", "unpaired_difference"]


def paired_difference(a: np.ndarray, b: np.ndarray, level: float = 0.9) -> dict:
    """Mean of ``b − a`` over replications (paired by position) with a t-interval at ``level``.

    Pairs where either value is NaN (e.g. no renewals were due) are dropped.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = (b - a)[np.isfinite(a) & np.isfinite(b)]
    n = d.size
    if n == 0:
        return dict(diff=np.nan, ci_lo=np.nan, ci_hi=np.nan, n=0)
    mean = float(d.mean())
    half = stats.t.ppf(0.5 + level / 2, n - 1) * d.std(ddof=1) / np.sqrt(n) if n > 1 else np.nan
    return dict(diff=mean, ci_lo=mean - half, ci_hi=mean + half, n=n)


def unpaired_difference(a: np.ndarray, b: np.ndarray, level: float = 0.9) -> dict:
    """Mean of ``b`` − mean of ``a`` from independent samples, with a Welch t-interval at ``level``.

    What a comparison would report without common random numbers (``b`` run
    with another seed); used to show how much pairing narrows the interval.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size < 2 or b.size < 2:
        return dict(diff=np.nan, ci_lo=np.nan, ci_hi=np.nan, n=min(a.size, b.size))
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = np.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1)) if se > 0 else a.size + b.size - 2
    mean = float(b.mean() - a.mean())
    half = stats.t.ppf(0.5 + level / 2, df) * se
    return dict(diff=mean, ci_lo=mean - half, ci_hi=mean + half, n=min(a.size, b.size))


@dataclass(repr=False)
class ComparisonResults(Results):
    """Several scenarios simulated on the same replications, and their paired differences to the first.

    Attributes
    ----------
    names : list of str
        Scenario names (made unique); the first is the reference.
    results : list of SimulationResults
        One per scenario, all with the same seed and replication ids.
    level : float
        Interval level (0.9: 90 % intervals).
    """

    names: list[str]
    results: list[SimulationResults]
    level: float = 0.9
    manifest: dict = field(default_factory=dict)

    KIND = "comparison"

    @property
    def reference(self) -> str:
        return self.names[0]

    def table(self, scope: str | None = "all") -> pd.DataFrame:
        """KPIs of each scenario: scenario, kpi, scope, unit, basis, mean, lo, hi, ci_lo, ci_hi, n.

        ``basis`` says what a money KPI's dollars are (``horizon total``, ``annual
        run-rate at horizon end``, ``per customer``); empty for other KPIs.

        ``scope="all"`` (default) gives whole-business KPIs; ``None`` adds every
        segment and pod.
        """
        frames = []

        for name, res in zip(self.names, self.results, strict=True):
            t = res.kpis(self.level, scope=scope)
            t.insert(0, "scenario", name)
            t.insert(t.columns.get_loc("unit") + 1, "basis", t["kpi"].map(MONEY_BASIS).fillna(""))
            frames.append(t)
        return pd.concat(frames, ignore_index=True)

    def differences(self, scope: str | None = "all") -> pd.DataFrame:
        """Paired difference of every KPI to the first scenario, replication by replication.

        Columns: scenario, reference, kpi, scope, unit, basis, reference_mean, mean,
        diff (scenario − reference), ci_lo, ci_hi (t-interval of the mean
        paired difference at ``level``), n, distinguishable (the interval
        excludes 0).
        """
        base = self._by_rep(0, scope)
        rows = []
        for j in range(1, len(self.results)):
            other = self._by_rep(j, scope)
            merged = base.merge(other, on=["kpi", "scope", "replication"], suffixes=("_ref", "_alt"))
            for (kpi, sc), g in merged.groupby(["kpi", "scope"], sort=False):
                d = paired_difference(g["value_ref"].to_numpy(), g["value_alt"].to_numpy(), self.level)
                distinct = bool(d["n"] > 1 and np.isfinite(d["ci_lo"]) and (d["ci_lo"] > 0 or d["ci_hi"] < 0))
                rows.append(
                    {
                        "scenario": self.names[j],
                        "reference": self.reference,
                        "kpi": kpi,
                        "scope": sc,
                        "unit": KPI_UNITS[kpi],
                        "basis": MONEY_BASIS.get(kpi, ""),
                        "reference_mean": float(np.nanmean(g["value_ref"])) if g["value_ref"].notna().any() else np.nan,
                        "mean": float(np.nanmean(g["value_alt"])) if g["value_alt"].notna().any() else np.nan,
                        **d,
                        "distinguishable": distinct,
                    }
                )
        return pd.DataFrame(rows)

    def _by_rep(self, j: int, scope: str | None) -> pd.DataFrame:
        t = self.results[j].kpis_by_replication()
        if scope is not None:
            t = t[t["scope"] == scope]
        return t[["kpi", "scope", "replication", "value"]]

    def shown(self, scope: str | None = "all") -> pd.DataFrame:
        """Which KPI rows differ between scenarios, distinguishable ones first.

        One row per (kpi, scope) with ``identical`` (every scenario has the
        same value in every replication, or the KPI is undefined everywhere),
        ``distinguishable`` (for some scenario the paired interval excludes 0)
        and ``order`` (distinguishable rows first, then the rest, identical
        rows last; KPI order within each group).
        """
        diffs = self.differences(scope)
        base = self._by_rep(0, scope).set_index(["kpi", "scope", "replication"])["value"]
        keys = list(dict.fromkeys(zip(base.index.get_level_values(0), base.index.get_level_values(1), strict=True)))
        alts = [self._by_rep(j, scope).set_index(["kpi", "scope", "replication"])["value"]
                for j in range(1, len(self.results))]
        same = pd.Series(True, index=base.index)
        for alt in alts:
            a, b = base.align(alt)
            same &= ((a == b) | (a.isna() & b.isna())).reindex(base.index, fill_value=False)
        identical = same.groupby(level=[0, 1], sort=False).all()
        real = (diffs.groupby(["kpi", "scope"], sort=False)["distinguishable"].any() if len(diffs)
                else pd.Series(dtype=bool))
        rows = []
        for i, key in enumerate(keys):
            ident = bool(identical.get(key, False))
            dist = bool(real.get(key, False))
            rows.append({"kpi": key[0], "scope": key[1], "identical": ident, "distinguishable": dist,
                         "rank": (0 if dist else 1 if not ident else 2, i)})
        out = pd.DataFrame(rows).sort_values("rank", kind="stable").drop(columns="rank").reset_index(drop=True)
        out["order"] = np.arange(len(out))
        return out

    def tradeoff(self) -> pd.DataFrame:
        """Cost against revenue for each scenario vs the reference (all customers, paired by replication).

        Columns: scenario, reference, ``d_cost_per_year`` (Δ CSM cost per
        year, all pods), ``d_ending_arr`` (Δ ARR run-rate at horizon end),
        ``d_retained_arr_per_year`` (Δ annual ARR retained from window
        cohorts), each with ``_lo``/``_hi`` at ``level``; ``arr_per_cost_dollar``
        = Δ retained ARR / Δ CSM cost (per year) with a paired bootstrap
        percentile interval (``_lo``/``_hi``), NaN when the cost change is
        within noise.
        """
        rows = []
        ref = self.results[0]
        years = ref.scenario.horizon_months / 12.0
        ref_cost = ref.kpi("csm_cost") / years
        ref_end = ref.kpi("ending_arr")
        ref_ret = ref.retained_arr()
        for j in range(1, len(self.results)):
            res = self.results[j]
            cost = res.kpi("csm_cost") / (res.scenario.horizon_months / 12.0)
            dc = paired_difference(ref_cost, cost, self.level)
            de = paired_difference(ref_end, res.kpi("ending_arr"), self.level)
            ret = res.retained_arr()
            dr = paired_difference(ref_ret, ret, self.level)
            ratio, lo, hi = np.nan, np.nan, np.nan
            cost_moves = np.isfinite(dc["ci_lo"]) and (dc["ci_lo"] > 0 or dc["ci_hi"] < 0)
            if cost_moves:
                ratio = dr["diff"] / dc["diff"]
                # Paired bootstrap over replications; a fixed generator keeps the table reproducible.
                rng = np.random.default_rng(np.random.SeedSequence(ref.scenario.seed, spawn_key=(0xC0DE, j)))
                dcost, dret = cost - ref_cost, ret - ref_ret
                idx = rng.integers(0, dcost.size, size=(2000, dcost.size))
                with np.errstate(divide="ignore", invalid="ignore"):
                    boot = dret[idx].mean(axis=1) / dcost[idx].mean(axis=1)
                alpha = (1 - self.level) / 2
                lo, hi = (float(q) for q in np.nanquantile(boot, [alpha, 1 - alpha]))
            rows.append({
                "scenario": self.names[j], "reference": self.reference,
                "d_cost_per_year": dc["diff"], "d_cost_per_year_lo": dc["ci_lo"], "d_cost_per_year_hi": dc["ci_hi"],
                "d_ending_arr": de["diff"], "d_ending_arr_lo": de["ci_lo"], "d_ending_arr_hi": de["ci_hi"],
                "d_retained_arr_per_year": dr["diff"], "d_retained_arr_per_year_lo": dr["ci_lo"],
                "d_retained_arr_per_year_hi": dr["ci_hi"],
                "arr_per_cost_dollar": ratio, "arr_per_cost_dollar_lo": lo, "arr_per_cost_dollar_hi": hi,
            })
        return pd.DataFrame(rows)

    def tradeoff_lines(self) -> list[str]:
        """One readable line per alternative: Δ cost against Δ ending and retained ARR."""
        pct = int(round(self.level * 100))
        out = []
        for r in self.tradeoff().itertuples():
            def m(v, lo, hi, suffix=""):
                money = lambda x: fmt_change(x, "currency")  # noqa: E731
                return f"{money(v)}{suffix} [{money(lo)}, {money(hi)}]"

            kept = m(r.d_retained_arr_per_year, r.d_retained_arr_per_year_lo, r.d_retained_arr_per_year_hi, "/yr")
            head = (f"Trade-off {r.scenario} vs {r.reference} (all customers, {pct}% intervals): CSM cost "
                    f"{m(r.d_cost_per_year, r.d_cost_per_year_lo, r.d_cost_per_year_hi, '/yr')}, ending ARR "
                    f"{m(r.d_ending_arr, r.d_ending_arr_lo, r.d_ending_arr_hi)}, retained ARR "
                    f"{kept}")
            if not np.isfinite(r.arr_per_cost_dollar):
                tail = "the cost change is within noise, so no ARR per CSM dollar"
            else:
                q = f"[{r.arr_per_cost_dollar_lo:.2f}, {r.arr_per_cost_dollar_hi:.2f}]"
                up_cost, up_arr = r.d_cost_per_year > 0, r.d_retained_arr_per_year > 0
                if up_cost and up_arr:
                    tail = f"${r.arr_per_cost_dollar:.2f} {q} of ARR retained per extra CSM dollar"
                elif not up_cost and not up_arr:
                    tail = f"${r.arr_per_cost_dollar:.2f} {q} of retained ARR lost per CSM dollar saved"
                elif up_cost:
                    tail = f"costs more and retains less (ratio {r.arr_per_cost_dollar:.2f} {q})"
                else:
                    tail = f"costs less and retains more (ratio {r.arr_per_cost_dollar:.2f} {q})"
            out.append(f"{head}: {tail}.")
        return out

    def summary(self, scope: str | None = "all", show_all: bool = False) -> Summary:
        """A readable table of the KPIs that differ (distinguishable from noise first) and the trade-off.

        Rows where every scenario has the same value in every replication are
        hidden (counted in a note) unless ``show_all``. Money KPIs say their
        basis (horizon total, annual run-rate).
        """
        pct = int(round(self.level * 100))
        first = self.results[0]
        table = self.table(scope)
        diffs = self.differences(scope)
        shown = self.shown(scope)
        lines = [
            f"Comparison of {len(self.names)} scenarios on the same {first.n_replications} replications "
            f"(seed {first.scenario.seed}, common random numbers); differences are paired by replication, "
            f"{pct}% intervals; * = the interval excludes 0 (distinguishable from noise), listed first.",
        ]
        width = 46
        head = f"{'KPI':<{width}}{'scope':<14}" + "".join(f"{n[:16]:>17}" for n in self.names)
        head += "".join(f"{(n[:14] + ' − ' + self.reference[:14]):>44}" for n in self.names[1:])
        lines.append(head)
        means = table.set_index(["scenario", "kpi", "scope"])
        units = dict(zip(table["kpi"], table["unit"], strict=False))
        dindex = diffs.set_index(["scenario", "kpi", "scope"]) if len(diffs) else None
        hidden = shown[shown["identical"]]
        rows = shown if show_all else shown[~shown["identical"]]
        for row in rows.itertuples():
            unit = units[row.kpi]
            cells = []
            for n in self.names:
                key = (n, row.kpi, row.scope)
                cells.append(f"{fmt_value(means.loc[key, 'mean'], unit) if key in means.index else 'n/a':>17}")
            for n in self.names[1:]:
                key = (n, row.kpi, row.scope)
                if dindex is None or key not in dindex.index:
                    cells.append(f"{'n/a':>44}")
                    continue
                d = dindex.loc[key]
                mark = " *" if d["distinguishable"] else "  "
                text = f"{fmt_change(d['diff'], unit)} [{fmt_change(d['ci_lo'], unit)}, {fmt_change(d['ci_hi'], unit)}]"
                cells.append(f"{text + mark:>44}")
            lines.append(f"{kpi_label(row.kpi):<{width}}{row.scope:<14}" + "".join(cells))
        if len(hidden) and not show_all:
            lines.append(f"{len(hidden)} of {len(shown)} rows hidden: the same in every scenario and every "
                         f"replication.")
        for n in self.names[1:]:
            sub = diffs[diffs["scenario"] == n] if len(diffs) else diffs
            k = int(sub["distinguishable"].sum()) if len(sub) else 0
            if k == 0:
                lines.append(f"{n} vs {self.reference}: no difference is distinguishable from noise.")
            else:
                lines.append(f"{n} vs {self.reference}: {k} of {len(sub)} differences distinguishable from noise.")
        lines.extend(self.tradeoff_lines())
        frame = diffs.set_index(["scenario", "kpi", "scope"]) if len(diffs) else diffs
        return Summary(frame, text="\n".join(lines))

    def tables(self, scope: str | None = "all", show_all: bool = False) -> dict[str, pd.DataFrame]:
        return {"comparison": self.table(scope), "differences": self.differences(scope), "tradeoff": self.tradeoff()}

    def __repr__(self) -> str:
        return f"ComparisonResults(scenarios={self.names}, replications={self.results[0].n_replications})"


def _unique(names: list[str]) -> list[str]:
    out, seen = [], {}
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
    return out


def compare(
    scenarios: Sequence[Scenario | str | Path],
    replications: int | None = None,
    seed: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    jobs: int | None = 1,
    dask=None,
    progress: bool = False,
    level: float = 0.9,
) -> ComparisonResults:
    """Simulate scenarios on the same replications and compare each to the first.

    Parameters
    ----------
    scenarios : sequence of Scenario or path
        Two or more; the first is the reference.
    replications, seed : int, optional
        Default: the first scenario's. Every scenario runs with this seed and
        replication ids ``0 .. replications-1`` (common random numbers).
    jobs, dask
        Where to run (see :func:`cssim.backends.execute`); results do not depend on it.
    level : float
        Interval level of the paired differences.
    """
    loaded = [s if isinstance(s, Scenario) else load_scenario(s) for s in scenarios]
    if len(loaded) < 2:
        raise PlanError(f"compare needs at least two scenarios, got {len(loaded)}")
    if not 0 < level < 1:
        raise PlanError(f"level: must be between 0 and 1, got {level}")
    seed = loaded[0].seed if seed is None else seed
    replications = loaded[0].replications if replications is None else replications
    loaded = [_with_run_settings(s, replications, seed, overrides) for s in loaded]
    reps = list(range(replications))
    results, _ = run_points(loaded, reps, jobs=jobs, dask=dask, progress=progress, batch_size=None, desc="compare")
    names = _unique([s.name for s in loaded])
    manifest = build_manifest(
        "comparison", scenarios=[r.manifest for r in results], seed=seed, replications=replications, level=level,
    )
    out = ComparisonResults(names=names, results=results, level=level, manifest=manifest)
    manifest["tradeoff"] = out.tradeoff_lines()
    return out
