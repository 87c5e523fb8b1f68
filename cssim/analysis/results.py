"""The results of simulating a scenario: tables, intervals and provenance.

``SimulationResults`` keeps the resolved scenario, the seed and the monthly
aggregates of every replication, and derives everything else on demand:
KPIs with intervals (:meth:`kpis`), tidy monthly tables (:meth:`monthly`,
:meth:`pods_monthly`) and a readable :meth:`summary`.

Two intervals are reported for every KPI, both at ``level`` (90 % unless
asked): ``lo``/``hi`` are quantiles across replications — where the outcome
may land (a forecast interval); ``ci_lo``/``ci_hi`` is a t-interval for the
mean — how precisely the replications pin down the expected value.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import yaml
from scipy import stats

from ..core.clock import DAYS_PER_MONTH
from ..core.contract import Results, Summary
from ..core.formatting import fmt_value
from ..model import metrics
from ..model.edge import MATERIAL_SHARE
from ..model.scenario import Scenario
from ..plots import figures as plots
from ..sim.ledger import POD_SERIES, SEGMENT_FLOWS, SEGMENT_STOCKS


def stack(per_rep: list[dict]) -> dict[str, dict[str, np.ndarray]]:
    """Stack per-replication ledger arrays on a leading replication axis."""
    return {
        group: {name: np.stack([rep[group][name] for rep in per_rep]) for name in per_rep[0][group]}
        for group in per_rep[0]
    }


def interval_summary(values: pd.Series, level: float) -> dict:
    """Mean, quantile interval and t-interval of the mean for one KPI's replications."""
    v = values.dropna().to_numpy(dtype=float)
    n = v.size
    alpha = (1.0 - level) / 2.0
    if n == 0:
        return dict(mean=np.nan, lo=np.nan, hi=np.nan, ci_lo=np.nan, ci_hi=np.nan, n=0)
    mean = float(v.mean())
    if n > 1:
        half = stats.t.ppf(1 - alpha, n - 1) * v.std(ddof=1) / np.sqrt(n)
    else:
        half = np.nan
    return dict(
        mean=mean,
        lo=float(np.quantile(v, alpha)),
        hi=float(np.quantile(v, 1 - alpha)),
        ci_lo=mean - half,
        ci_hi=mean + half,
        n=n,
    )


def mean_interval(values, level: float = 0.9) -> tuple[float, float, float]:
    """Mean of the finite ``values`` and its t-interval at ``level`` (NaN where too few values say nothing)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return np.nan, np.nan, np.nan
    mean = float(v.mean())
    if v.size < 2:
        return mean, np.nan, np.nan
    half = float(stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    return mean, mean - half, mean + half


def paired_interval(a, b, level: float = 0.9) -> tuple[float, float, float]:
    """Mean of ``b − a`` over replications (common random numbers: the pairs share streams) and its t-interval."""
    return mean_interval(np.asarray(b, dtype=float) - np.asarray(a, dtype=float), level)


def month_dates(start: dt.date, months: int) -> list[dt.date]:
    """Month-end reporting dates: the last day of each simulated month."""
    out = []
    y, m = start.year, start.month
    for _ in range(months):
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        out.append(dt.date(y, m, 1) - dt.timedelta(days=1))
    return out


@dataclass(repr=False)
class SimulationResults(Results):
    """Monte Carlo results of one scenario (the results contract: :mod:`cssim.core.contract`).

    Attributes
    ----------
    scenario : Scenario
        The resolved scenario that produced these results.
    arrays : dict
        Ledger arrays stacked over replications (see :mod:`cssim.ledger`).
    replication_ids : list[int]
        Which replications (stream keys) were run; comparisons pair on these.
    """

    scenario: Scenario
    arrays: dict
    replication_ids: list[int]
    manifest: dict = field(default_factory=dict)

    KIND = "simulation"

    @property
    def segments(self) -> list[str]:
        return list(self.scenario.segments)

    @property
    def pods(self) -> list[str]:
        return list(self.scenario.team.pods)

    @property
    def n_replications(self) -> int:
        return len(self.replication_ids)

    def _ctx(self) -> dict:
        sc = self.scenario
        pod_segments = np.zeros((len(self.segments), max(len(self.pods), 1)))
        for j, pod in enumerate(sc.team.pods.values()):
            for seg in pod.segments:
                pod_segments[self.segments.index(seg), j] = 1.0
        windows = self.arrays["window"]["start_logos"].shape[1]
        months = sc.horizon_months
        return {
            "pod_cost": np.array([p.cost_per_year for p in sc.team.pods.values()], dtype=float),
            "pod_segments": pod_segments[:, : len(self.pods)],
            "months": months,
            "window_years": windows if months >= 12 else months / 12.0,
        }

    # ------------------------------------------------------------------ KPIs

    def kpis_by_replication(self) -> pd.DataFrame:
        """Every KPI of every replication: columns replication, kpi, scope, value."""
        table = metrics.kpi_table(self.arrays, self._ctx(), self.segments, self.pods)
        table["replication"] = np.asarray(self.replication_ids)[table["replication"].to_numpy()]
        return table

    def kpis(self, level: float | None = None, scope: str | None = None) -> pd.DataFrame:
        """KPI table: kpi, scope, unit, mean, lo, hi (quantiles), ci_lo, ci_hi (mean), n."""
        level = self.level if level is None else level
        table = self.kpis_by_replication()
        if scope is not None:
            table = table[table["scope"] == scope]
        rows = []
        for (kpi, sc), group in table.groupby(["kpi", "scope"], sort=False):
            rows.append({"kpi": kpi, "scope": sc, "unit": metrics.KPI_UNITS[kpi], **interval_summary(group["value"], level)})
        return pd.DataFrame(rows)

    def kpi(self, name: str, scope: str = "all") -> np.ndarray:
        """Per-replication values of one KPI (ordered by replication)."""
        if name not in metrics.KPI_NAMES:
            raise KeyError(f"unknown KPI {name!r}; known: {', '.join(metrics.KPI_NAMES)}")
        t = self.kpis_by_replication()
        return t[(t.kpi == name) & (t.scope == scope)].sort_values("replication")["value"].to_numpy()

    def retained_arr(self) -> np.ndarray:
        """Annual ARR retained from window cohorts, per replication (see :func:`cssim.metrics.retained_arr`)."""
        return metrics.retained_arr(self.arrays, self._ctx())

    # ------------------------------------------------------------------ time series

    def monthly(self) -> pd.DataFrame:
        """Tidy monthly table: one row per replication × month × segment, one column per series."""
        seg = self.arrays["segment"]
        R, M, S = seg["active"].shape
        names = SEGMENT_STOCKS + SEGMENT_FLOWS
        frame = pd.DataFrame(
            {
                "replication": np.repeat(self.replication_ids, M * S),
                "month": np.tile(np.repeat(np.arange(1, M + 1), S), R),
                "date": np.tile(np.repeat(month_dates(self.scenario.start_date, M), S), R),
                "segment": np.tile(self.segments, R * M),
                **{n: seg[n].reshape(-1) for n in names},
            }
        )
        frame["mrr"] = frame["arr"] / 12.0
        return frame

    def pods_monthly(self) -> pd.DataFrame:
        """Tidy monthly CSM table: replication × month × pod with utilisation and cost."""
        pod = self.arrays["pod"]
        R, M, P = pod["headcount"].shape
        frame = pd.DataFrame(
            {
                "replication": np.repeat(self.replication_ids, M * P),
                "month": np.tile(np.repeat(np.arange(1, M + 1), P), R),
                "date": np.tile(np.repeat(month_dates(self.scenario.start_date, M), P), R),
                "pod": np.tile(self.pods, R * M),
                **{n: pod[n].reshape(-1) for n in POD_SERIES},
            }
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            frame["utilisation"] = frame["busy_days"] / frame["employed_days"].where(frame["employed_days"] > 0)
        cost = {name: p.cost_per_year for name, p in self.scenario.team.pods.items()}
        frame["cost"] = frame["employed_days"] * frame["pod"].map(cost) / (12 * DAYS_PER_MONTH)
        return frame

    def series(self, metric: str, level: float = 0.9, segment: str | None = None) -> pd.DataFrame:
        """One monthly series summed over segments (or for one), with median and quantile bands."""
        seg = self.arrays["segment"]
        if metric not in seg:
            raise KeyError(f"unknown series {metric!r}; known: {', '.join(seg)}")
        data = seg[metric]
        data = data[:, :, self.segments.index(segment)] if segment else data.sum(axis=2)
        alpha = (1 - level) / 2
        return pd.DataFrame(
            {
                "month": np.arange(1, data.shape[1] + 1),
                "date": month_dates(self.scenario.start_date, data.shape[1]),
                "mean": data.mean(axis=0),
                "median": np.median(data, axis=0),
                "lo": np.quantile(data, alpha, axis=0),
                "hi": np.quantile(data, 1 - alpha, axis=0),
            }
        )

    # ------------------------------------------------------------------ plots (see cssim.plots)

    def plot_fan(self, metric: str = "arr", segment: str | None = None, ax=None):
        """Fan chart of a monthly series: median with 50 % and 90 % bands; returns the Axes."""
        return plots.fan_chart(self, metric, segment=segment, ax=ax)

    def plot_waterfall(self, months: tuple[int, int] | None = None, segment: str | None = None, ax=None):
        """ARR bridge (start, new, win-back, expansion, contraction, churn, end); returns the Axes."""
        return plots.arr_waterfall(self, months=months, segment=segment, ax=ax)

    def plot_stages(self, segment: str | None = None, ax=None):
        """Customers by lifecycle stage over time (stacked area); returns the Axes."""
        return plots.stage_occupancy(self, segment=segment, ax=ax)

    def plot_csm_load(self, axes=None):
        """CSM utilisation, backlog and missed touches per pod over time; returns the Axes."""
        return plots.csm_load(self, axes=axes)

    # ------------------------------------------------------------------ presentation

    def summary(self, level: float | None = None) -> Summary:
        """The headline KPIs (all customers) with their intervals; prints as a readable table."""
        level = self.level if level is None else level
        table = self.kpis(level, scope="all")
        pct = int(round(level * 100))
        lines = [
            f"Scenario {self.scenario.name!r}: {self.scenario.horizon_months} months from "
            f"{self.scenario.start_date}, {self.n_replications} replications, seed {self.scenario.seed}"
            + ("" if (mode := self.scenario.uncertainty_mode) == "none" else f", parameter uncertainty: {mode}"),
            f"{'KPI':<46}{'mean':>14}   {pct}% interval (across replications)",
        ]
        for row in table.itertuples():
            lines.append(f"{metrics.kpi_label(row.kpi):<46}{fmt_value(row.mean, row.unit):>14}   "
                         f"[{fmt_value(row.lo, row.unit)}, {fmt_value(row.hi, row.unit)}]")
        for e in (self.manifest or {}).get("beyond_edge", []):
            if e["share_beyond_edge"] > MATERIAL_SHARE:
                lines.append(f"beyond the data's edge: {e['segment']}/{e['transition']} spends about "
                             f"{e['share_beyond_edge']:.0%} of its customer-time past {e['edge_days']:.0f} days of "
                             f"tenure (tail: {e['policy']})")
        return Summary(table.set_index("kpi")[["unit", "mean", "lo", "hi"]], text="\n".join(lines))

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"kpis": self.kpis(self.level), "kpis_by_replication": self.kpis_by_replication(),
                "monthly": self.monthly(), "monthly_pods": self.pods_monthly()}

    def files(self) -> dict[str, str]:
        return {"scenario.yaml": yaml.safe_dump(self.scenario.model_dump(mode="json"), sort_keys=False)}

    def __repr__(self) -> str:
        return (
            f"SimulationResults(scenario={self.scenario.name!r}, replications={self.n_replications}, "
            f"months={self.scenario.horizon_months})"
        )
