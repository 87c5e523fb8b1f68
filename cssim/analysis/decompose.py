"""How much of each KPI's interval width is estimation error: the same seeds with and without parameter draws.

:func:`decompose` runs a scenario twice on the same seeds, with and without
parameter uncertainty (:mod:`cssim.model.uncertainty`), and reports for every
KPI the width of the across-replication interval both ways and the share of
the width owed to estimation error:

    share = 1 − (width_without / width_with)²

a variance share: if process noise and estimation error are independent and
add in variance, width² is proportional to variance, width_with² =
width_process² + width_estimation², and the share is width_estimation² /
width_with². It is clipped to [0, 1] (Monte Carlo noise can make the
without-width the larger when estimation error is negligible).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.contract import Results, Summary
from ..core.errors import ScenarioError
from ..core.formatting import fmt_value
from ..core.output import build_manifest
from .simulate import simulate

__all__ = ["decompose", "decomposition_table", "UncertaintyDecomposition"]


def decomposition_table(with_uncertainty, without_uncertainty, level: float = 0.9, best=None) -> pd.DataFrame:
    """Per KPI and scope: interval widths with and without parameter uncertainty, and the estimation share.

    Widths are of the ``level`` interval across replications (``hi − lo`` of
    :meth:`~cssim.results.SimulationResults.kpis`); ``share_estimation`` =
    1 − (width_without / width_with)², clipped to [0, 1] (NaN where the
    with-width is 0); ``sd_with`` / ``sd_without`` are the standard deviations
    across replications and ``share_variance`` = 1 − sd_without² / sd_with² the
    same share measured by variance.

    A KPI undefined in every replication of both runs (GRR of a forecast that starts with no
    customers: no window has a starting book) has no width to split and is left out; see
    :attr:`UncertaintyDecomposition.undefined`.
    """
    a = with_uncertainty.kpis(level)
    b = without_uncertainty.kpis(level)
    gone = _undefined(a, b)
    a = a[~a.set_index(["kpi", "scope"]).index.isin(gone)]
    ra, rb = with_uncertainty.kpis_by_replication(), without_uncertainty.kpis_by_replication()
    sd_a = ra.groupby(["kpi", "scope"], sort=False)["value"].std(ddof=1).rename("sd_with")
    sd_b = rb.groupby(["kpi", "scope"], sort=False)["value"].std(ddof=1).rename("sd_without")
    t = a[["kpi", "scope", "unit", "mean", "lo", "hi"]].merge(
        b[["kpi", "scope", "mean", "lo", "hi"]], on=["kpi", "scope"], suffixes=("_with", "_without")
    )
    t = t.merge(sd_a.reset_index(), on=["kpi", "scope"]).merge(sd_b.reset_index(), on=["kpi", "scope"])
    t["width_with"] = t["hi_with"] - t["lo_with"]
    t["width_without"] = t["hi_without"] - t["lo_without"]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(t["width_with"] > 0, t["width_without"] / t["width_with"], np.nan)
        t["share_estimation"] = np.clip(1.0 - ratio**2, 0.0, 1.0)
        vr = np.where(t["sd_with"] > 0, (t["sd_without"] / t["sd_with"]) ** 2, np.nan)
        t["share_variance"] = np.clip(1.0 - vr, 0.0, 1.0)
    cols = ["kpi", "scope", "unit", "mean_with", "lo_with", "hi_with", "width_with", "mean_without", "lo_without",
            "hi_without", "width_without", "share_estimation", "sd_with", "sd_without", "share_variance"]
    if best is not None:
        # The choice of family: the same seeds with each averaged curve at its chosen family (model_uncertainty
        # best, parameters still drawn). share_model = 1 − (width_best / width_with)²; the estimation share is
        # what remains of the total, (width_best² − width_without²) / width_with².
        c = best.kpis(level)
        c = c.assign(width_best=c["hi"] - c["lo"])[["kpi", "scope", "width_best"]]
        t = t.merge(c, on=["kpi", "scope"])
        with np.errstate(divide="ignore", invalid="ignore"):
            rb = np.where(t["width_with"] > 0, t["width_best"] / t["width_with"], np.nan)
            t["share_model"] = np.clip(1.0 - rb**2, 0.0, 1.0)
            t["share_estimation"] = np.clip(t["share_estimation"] - t["share_model"], 0.0, 1.0)
        cols = cols[:11] + ["width_best", "share_model"] + cols[11:]
    return t[cols]


def _undefined(a: pd.DataFrame, b: pd.DataFrame) -> list[tuple[str, str]]:
    """(kpi, scope) pairs with no value in any replication of either run (``n == 0`` in both KPI tables)."""
    empty_a = set(map(tuple, a.loc[a["n"] == 0, ["kpi", "scope"]].to_numpy()))
    empty_b = set(map(tuple, b.loc[b["n"] == 0, ["kpi", "scope"]].to_numpy()))
    return [key for key in map(tuple, a[["kpi", "scope"]].to_numpy()) if key in empty_a and key in empty_b]


@dataclass(repr=False)
class UncertaintyDecomposition(Results):
    """A scenario run twice on the same seeds, with and without parameter uncertainty."""

    widths: pd.DataFrame  # decomposition_table(): see table()
    with_uncertainty: object
    without_uncertainty: object
    mode: str
    level: float = 0.9
    best_family: object = None  # with model averaging: the same seeds at each averaged curve's chosen family

    KIND = "uncertainty_decomposition"

    @property
    def manifest(self) -> dict:
        return build_manifest(self.KIND, mode=self.mode, level=self.level,
                              scenario_hash=self.with_uncertainty.manifest.get("scenario_hash"),
                              seed=self.with_uncertainty.scenario.seed,
                              replications=self.with_uncertainty.n_replications)

    def table(self) -> pd.DataFrame:
        """Per KPI and scope: widths with and without parameter uncertainty and the shares (:func:`decomposition_table`)."""
        return self.widths

    @property
    def undefined(self) -> list[str]:
        """KPIs (scope ``all``) left out of :meth:`table`: undefined in every replication of both runs."""
        keys = _undefined(self.with_uncertainty.kpis(self.level), self.without_uncertainty.kpis(self.level))
        return [kpi for kpi, scope in keys if scope == "all"]

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"uncertainty": self.table()}

    def summary(self, scope: str = "all") -> Summary:
        """How much of each KPI's interval width comes from estimation error (scope ``all``)."""
        t = self.widths[self.widths["scope"] == scope]
        pct = int(round(self.level * 100))
        model = "share_model" in t.columns

        def pc(v) -> str:
            return "n/a" if not np.isfinite(v) else f"{v * 100:.0f}%"

        lines = [
            f"Interval width ({pct} % across replications) with and without parameter uncertainty ({self.mode})"
            + (" and the choice of curve family (averaged)" if model else "") + ", same seeds; "
            + ("model share = 1 - (best family/with)^2, estimation share = ((best family)^2 - without^2)/with^2"
               if model else "estimation share = 1 - (without/with)^2"),
            f"{'KPI':<24}{'with':>14}{'without':>14}{'estimation':>12}" + (f"{'model':>8}" if model else ""),
        ]
        for r in t.itertuples():
            lines.append(f"{r.kpi:<24}{fmt_value(r.width_with, r.unit):>14}{fmt_value(r.width_without, r.unit):>14}"
                         f"{pc(r.share_estimation):>12}" + (f"{pc(r.share_model):>8}" if model else ""))
        if scope == "all" and self.undefined:
            lines.append(f"left out, undefined in every replication (e.g. no customers at the start of a retention "
                         f"window): {', '.join(self.undefined)}")
        return Summary(t.set_index("kpi")[[c for c in t.columns if c.startswith(("width", "share"))]],
                       text="\n".join(lines))


def decompose(
    scenario,
    replications: int | None = None,
    seed: int | None = None,
    jobs: int = 1,
    level: float = 0.9,
    dask=None,
    progress: bool = False,
) -> UncertaintyDecomposition:
    """Run ``scenario`` with and without parameter uncertainty on the same seeds; compare interval widths.

    With model-averaged curves a third run keeps the parameter draws but fixes
    each averaged curve at its chosen family, and the table gets the share of
    the width owed to the choice of family (``share_model``, ``width_best``).
    The with-run uses the scenario's own mode (asymptotic by default when its
    curves carry uncertainty); the without-run sets ``parameter_uncertainty:
    none``. Both see the same customers (common random numbers), so the only
    difference is the curve parameters. Raises :class:`~cssim.errors.ScenarioError`
    if the scenario has no parameter uncertainty to decompose.
    """
    mode = scenario.uncertainty_mode
    if mode == "none" and scenario.model_mode == "best":
        raise ScenarioError(
            f"{scenario.name}: parameter_uncertainty is none (no curve carries an uncertainty block, or it is "
            "switched off) and no curve averages over families; nothing to decompose"
        )
    on = simulate(scenario, replications=replications, seed=seed, jobs=jobs, progress=progress, dask=dask)
    best = None
    if on.scenario.model_mode == "averaged":
        best = simulate(on.scenario.model_copy(update={"model_uncertainty": "best"}), replications=None, seed=None,
                        jobs=jobs, progress=progress, dask=dask, replication_ids=on.replication_ids)
    off_scenario = on.scenario.model_copy(update={"parameter_uncertainty": "none", "model_uncertainty": "best"})
    off = simulate(off_scenario, replications=None, seed=None, jobs=jobs, progress=progress, dask=dask,
                   replication_ids=on.replication_ids)
    return UncertaintyDecomposition(decomposition_table(on, off, level, best=best), on, off, mode, level, best)
