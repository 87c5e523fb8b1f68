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

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from .errors import PlanError
from .results import SimulationResults, _fmt
from .scenario import Scenario

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


def _fmt_diff(value: float, unit: str) -> str:
    if value is None or not np.isfinite(value):
        return "n/a"
    if unit == "ratio":
        return f"{value * 100:+.2f} pts"
    sign = "+" if value >= 0 else "-"
    return sign + _fmt(abs(value), unit)


@dataclass
class ComparisonResults:
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

    @property
    def reference(self) -> str:
        return self.names[0]

    def table(self, scope: str | None = "all") -> pd.DataFrame:
        """KPIs of each scenario: scenario, kpi, scope, unit, mean, lo, hi, ci_lo, ci_hi, n.

        ``scope="all"`` (default) gives whole-business KPIs; ``None`` adds every
        segment and pod.
        """
        frames = []
        for name, res in zip(self.names, self.results, strict=True):
            t = res.kpis(self.level, scope=scope)
            t.insert(0, "scenario", name)
            frames.append(t)
        return pd.concat(frames, ignore_index=True)

    def differences(self, scope: str | None = "all") -> pd.DataFrame:
        """Paired difference of every KPI to the first scenario, replication by replication.

        Columns: scenario, reference, kpi, scope, unit, reference_mean, mean,
        diff (scenario − reference), ci_lo, ci_hi (t-interval of the mean
        paired difference at ``level``), n, distinguishable (the interval
        excludes 0).
        """
        from .metrics import KPIS

        units = {k.name: k.unit for k in KPIS}
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
                        "unit": units[kpi],
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

    def summary(self, scope: str | None = "all") -> str:
        """A readable table (means, paired differences with intervals) and which differences are real."""
        pct = int(round(self.level * 100))
        first = self.results[0]
        table = self.table(scope)
        diffs = self.differences(scope)
        lines = [
            f"Comparison of {len(self.names)} scenarios on the same {first.n_replications} replications "
            f"(seed {first.scenario.seed}, common random numbers); differences are paired by replication, "
            f"{pct}% intervals.",
        ]
        head = f"{'KPI':<24}{'scope':<12}" + "".join(f"{n[:16]:>17}" for n in self.names)
        head += "".join(f"{(n[:14] + ' − ' + self.reference[:14]):>44}" for n in self.names[1:])
        lines.append(head)
        means = table.set_index(["scenario", "kpi", "scope"])
        dindex = diffs.set_index(["scenario", "kpi", "scope"]) if len(diffs) else None
        for row in table[table["scenario"] == self.reference].itertuples():
            cells = []
            for n in self.names:
                key = (n, row.kpi, row.scope)
                cells.append(f"{_fmt(means.loc[key, 'mean'], row.unit) if key in means.index else 'n/a':>17}")
            for n in self.names[1:]:
                key = (n, row.kpi, row.scope)
                if dindex is None or key not in dindex.index:
                    cells.append(f"{'n/a':>44}")
                    continue
                d = dindex.loc[key]
                mark = " *" if d["distinguishable"] else "  "
                text = f"{_fmt_diff(d['diff'], row.unit)} [{_fmt_diff(d['ci_lo'], row.unit)}, {_fmt_diff(d['ci_hi'], row.unit)}]"
                cells.append(f"{text + mark:>44}")
            lines.append(f"{row.kpi:<24}{row.scope:<12}" + "".join(cells))
        lines.append(f"* the {pct}% interval of the paired difference excludes 0: distinguishable from noise.")
        for n in self.names[1:]:
            sub = diffs[diffs["scenario"] == n] if len(diffs) else diffs
            real = sub[sub["distinguishable"]]
            noise = sub[~sub["distinguishable"]]
            label = lambda r: f"{r.kpi}" + (f"[{r.scope}]" if r.scope != "all" else "")  # noqa: E731
            if len(real):
                parts = [f"{label(r)} {'higher' if r.diff > 0 else 'lower'} ({_fmt_diff(r.diff, r.unit)})" for r in real.itertuples()]
                lines.append(f"{n} vs {self.reference}: distinguishable from noise: " + "; ".join(parts) + ".")
            else:
                lines.append(f"{n} vs {self.reference}: no difference is distinguishable from noise.")
            if len(noise):
                lines.append(
                    f"{n} vs {self.reference}: not distinguishable from noise ({pct}% interval includes 0 or "
                    f"undefined): " + ", ".join(label(r) for r in noise.itertuples()) + "."
                )
        return "\n".join(lines)

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
    from .loader import load_scenario
    from .simulate import versions
    from .sweep import _with_run_settings, run_points

    loaded = [s if isinstance(s, Scenario) else load_scenario(s) for s in scenarios]
    if len(loaded) < 2:
        raise PlanError(f"compare needs at least two scenarios, got {len(loaded)}")
    if not 0 < level < 1:
        raise PlanError(f"level: must be between 0 and 1, got {level}")
    seed = loaded[0].seed if seed is None else seed
    replications = loaded[0].replications if replications is None else replications
    loaded = [_with_run_settings(s, replications, seed) for s in loaded]
    reps = list(range(replications))
    results, _ = run_points(loaded, reps, jobs=jobs, dask=dask, progress=progress, batch_size=None, desc="compare")
    names = _unique([s.name for s in loaded])
    manifest = {
        "kind": "comparison",
        "scenarios": [r.manifest for r in results],
        "seed": seed,
        "replications": replications,
        "level": level,
        "versions": versions(),
    }
    return ComparisonResults(names=names, results=results, level=level, manifest=manifest)
