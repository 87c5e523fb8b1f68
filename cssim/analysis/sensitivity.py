"""Sensitivity analysis: which of a scenario's assumptions drive a forecast.

A scenario declares the uncertain assumptions in a ``sensitivity:`` block (see
:class:`cssim.scenario.SensitivitySpec`)::

    sensitivity:
      fields:
        segments.smb.renewal.healthy: [0.85, 0.95]               # uniform range
        segments.smb.lifecycle.churn.scale: {dist: triangular, low: 500, mode: 700, high: 900}
        team.pods.smb.cost_per_year: {dist: normal, mean: 95000, sd: 8000}
      outputs: [grr, nrr, csm_cost]                              # KPIs, optionally kpi[scope]
      methods: [oat, morris, sobol]
      sobol_n: 16                                                # Sobol' base sample (power of 2)
      morris_trajectories: 8

Three methods answer the question at three prices:

- **one at a time** (``oat``): every field at its low and high value (the range's
  bounds; a distribution's 5th and 95th percentiles), the others at the scenario's
  values — ``1 + 2·fields`` points. The swing of each output (high − low) is paired
  replication by replication, with a 90 % t-interval; drawn as a tornado chart.
  It sees no interactions.
- **Morris screening** (``morris``): elementary effects along random trajectories
  through the input space (SALib ``sample.morris`` / ``analyze.morris``) —
  ``trajectories × (fields + 1)`` points. Trajectories move on levels of the unit
  interval, mapped to each field's values through its quantile function (unbounded
  distributions cut at their 1st and 99th percentiles). ``mu_star`` (mean absolute
  change of the output, in its units, per unit of that quantile scale — a step of
  ``levels / (2·(levels − 1))`` of the range) ranks fields; ``sigma`` flags
  non-linearity or interactions; intervals are SALib's bootstrap at 90 %.
- **Sobol' indices** (``sobol``): variance decomposition (SALib ``sample.sobol`` /
  ``analyze.sobol`` with ``calc_second_order=False``) — ``n × (fields + 2)`` points.
  ``S1`` is the share of the output's variance due to a field alone, ``ST`` the
  share including its interactions; intervals are SALib's bootstrap at 90 %
  (``ST_conf``). A field whose ``ST`` interval includes 0 cannot be shown to
  matter.

The output at a point is the mean of the KPI over the scenario's replications.
Every point runs the same seed and replication ids (common random numbers), so
the output is a deterministic function of the inputs: a field that cannot affect
a KPI changes it by exactly 0, and differences between points are the inputs'
doing, not noise between draws. Points are simulated like a sweep's — joblib or
Dask, through the resumable batch cache — so the table does not depend on
``jobs`` and an interrupted run resumes where it stopped.

Integer fields (both bounds integers, e.g. a headcount) are rounded at each
point; the indices then describe the rounded model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError
from SALib.analyze import morris as morris_analyze
from SALib.analyze import sobol as sobol_analyze
from SALib.sample import morris as morris_sample
from SALib.sample import sobol as sobol_sample

from ..core.contract import Results, Summary
from ..core.errors import PlanError, ScenarioError
from ..core.formatting import fmt_change, fmt_value
from ..core.output import build_manifest
from ..model.loader import load_scenario, scenario_hash
from ..model.metrics import KPIS, kpi_label
from ..model.scenario import RESOLVED, Scenario
from ..model.variants import _bounded, _dist, _is_int_range, _low_high, check_sensitivity, parse_output, resolve_path
from ..plots import figures as plots
from .results import SimulationResults, mean_interval, paired_interval
from .sweep import _with_run_settings, point_scenario, run_points

__all__ = ["SensitivityResults", "sensitivity", "check_sensitivity", "sensitivity_problem", "parse_output"]

LEVEL = 0.9
# Stream keys of the samplers (apart from every replication's streams and the sweep's sample).
_MORRIS_KEY, _SOBOL_KEY, _BOOT_KEY = 0x5E51, 0x5E52, 0x5E53
def sensitivity_problem(scenario: Scenario) -> dict:
    """The SALib problem of a scenario's sensitivity block: names, bounds, dists (SALib's conventions)."""
    spec = scenario.sensitivity
    names, bounds, dists = [], [], []
    for path, f in spec.fields.items():
        names.append(path)
        if f.dist == "uniform":
            bounds.append([float(f.low), float(f.high)])
            dists.append("unif")
        elif f.dist == "triangular":
            bounds.append([f.low, f.high, (f.mode - f.low) / (f.high - f.low)])
            dists.append("triang")
        elif f.dist == "normal" and f.low is not None:
            bounds.append([f.low, f.high, f.mean, f.sd])
            dists.append("truncnorm")
        elif f.dist == "normal":
            bounds.append([f.mean, f.sd])
            dists.append("norm")
        else:
            bounds.append([math.log(f.median), f.sigma])
            dists.append("lognorm")
    return {"num_vars": len(names), "names": names, "bounds": bounds, "dists": dists}


def _morris_values(f, u: np.ndarray) -> np.ndarray:
    """Morris levels (0..1) through the field's quantile function; unbounded ones cut at 1 % and 99 %."""
    if not _bounded(f):
        u = np.clip(u, 0.01, 0.99)
    return _dist(f).ppf(u)


@dataclass(frozen=True)
class _Design:
    method: str
    x: np.ndarray  # (points, fields): field values (before rounding)
    u: np.ndarray  # (points, fields): what the analysis reads (Morris: levels on the unit scale)


def _designs(scenario: Scenario) -> tuple[list[_Design], dict]:
    spec = scenario.sensitivity
    problem = sensitivity_problem(scenario)
    seed = spec.seed if spec.seed is not None else scenario.seed
    base = scenario.model_dump(mode="json", exclude={"sweep", "sensitivity"}, context=RESOLVED)
    current = [resolve_path(base, p) for p in problem["names"]]
    designs = []
    if "oat" in spec.methods:
        rows = [np.array(current, dtype=float)]
        for i, f in enumerate(spec.fields.values()):
            for v in _low_high(f):
                row = np.array(current, dtype=float)
                row[i] = v
                rows.append(row)
        designs.append(_Design("oat", np.vstack(rows), np.vstack(rows)))
    if "morris" in spec.methods:
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(_MORRIS_KEY,))))
        u = np.asarray(morris_sample.sample(_unit_problem(problem), spec.morris_trajectories,
                                            num_levels=spec.morris_levels, seed=rng), dtype=float)
        x = np.column_stack([_morris_values(f, u[:, i]) for i, f in enumerate(spec.fields.values())])
        designs.append(_Design("morris", x, u))
    if "sobol" in spec.methods:
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(_SOBOL_KEY,))))
        x = np.asarray(sobol_sample.sample(problem, spec.sobol_n, calc_second_order=False, scramble=True, seed=rng),
                       dtype=float)
        designs.append(_Design("sobol", x, x))
    return designs, {"problem": problem, "current": current, "seed": seed}


def _unit_problem(problem: dict) -> dict:
    """Morris works on levels of the unit interval; each field's quantile function maps them to values."""
    return {"num_vars": problem["num_vars"], "names": problem["names"], "bounds": [[0.0, 1.0]] * problem["num_vars"]}


def _values(scenario: Scenario, row: np.ndarray, current: list) -> dict[str, Any]:
    out = {}
    for (path, f), v, c in zip(scenario.sensitivity.fields.items(), row, current, strict=True):
        out[path] = int(round(v)) if _is_int_range(f, c) else float(v)
    return out


@dataclass(repr=False)
class SensitivityResults(Results):
    """What drives each output: one-at-a-time swings, Morris screening and Sobol' indices.

    Attributes
    ----------
    scenario : Scenario
        The analysed scenario (with its sensitivity block).
    points : DataFrame
        One row per simulated point: ``point``, ``method``, ``row`` (position in
        the method's design) and the value of every field.
    outputs : DataFrame
        Per point and output: ``point``, ``kpi``, ``scope``, ``mean`` (over replications).
    results : dict
        Point id → :class:`SimulationResults` (same seed and replication ids).
    batches : dict
        ``{"computed": n, "cached": m}``.
    """

    scenario: Scenario
    points: pd.DataFrame
    outputs: pd.DataFrame
    results: dict[str, SimulationResults] = field(repr=False, default_factory=dict)
    batches: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=dict, repr=False)
    _table: pd.DataFrame | None = field(default=None, repr=False)

    KIND = "sensitivity"
    level = LEVEL

    @property
    def fields(self) -> list[str]:
        return list(self.scenario.sensitivity.fields)

    @property
    def output_names(self) -> list[tuple[str, str]]:
        return [parse_output(o, self.scenario) for o in self.scenario.sensitivity.outputs]

    def table(self) -> pd.DataFrame:
        """Tidy indices: method, kpi, scope, field, index, estimate, ci_lo, ci_hi, field_value, rank.

        ``index`` is ``at_low``/``at_high``/``swing``/``base`` (one at a time: the
        output's mean at the field's low or high value, the paired change high −
        low, the base point), ``mu_star``/``sigma`` (Morris) or ``S1``/``ST``
        (Sobol'); intervals are 90 %. ``rank`` orders fields per method and
        output by ``|swing|``, ``mu_star`` or ``ST`` (1 = drives it most).
        """
        if self._table is None:
            self._table = _analyse(self)
        return self._table

    def ranking(self, kpi: str, scope: str = "all") -> pd.DataFrame:
        """Fields ranked for one output: one column per method's ranking statistic with its interval."""
        t = self.table()
        t = t[(t["kpi"] == kpi) & (t["scope"] == scope)]
        key = {"oat": "swing", "morris": "mu_star", "sobol": "ST"}
        rows = []
        for f in self.fields:
            row = {"field": f}
            for method, index in key.items():
                r = t[(t["method"] == method) & (t["index"] == index) & (t["field"] == f)]
                if len(r):
                    r = r.iloc[0]
                    row[f"{method}_{index}"] = r["estimate"]
                    row[f"{method}_{index}_lo"] = r["ci_lo"]
                    row[f"{method}_{index}_hi"] = r["ci_hi"]
                    row[f"{method}_rank"] = r["rank"]
            rows.append(row)
        out = pd.DataFrame(rows)
        for method in ("sobol", "morris", "oat"):
            if f"{method}_rank" in out:
                return out.sort_values(f"{method}_rank", kind="stable").reset_index(drop=True)
        return out

    def points_table(self) -> pd.DataFrame:
        """One row per simulated point: ``point``, ``method``, ``row`` and the value of every field."""
        return self.points

    def outputs_table(self) -> pd.DataFrame:
        """Per point and output: ``point``, ``kpi``, ``scope``, ``mean`` (over replications)."""
        return self.outputs

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"sensitivity": self.table(), "points": self.points_table(), "outputs": self.outputs_table()}

    def summary(self) -> Summary:
        """For each output, the fields ranked, with every index and its 90 % interval."""
        units = {k.name: k.unit for k in KPIS}
        n = self.manifest.get("replications")
        counts = self.points["method"].value_counts()
        lines = [
            f"Sensitivity of {self.scenario.name!r}: {len(self.fields)} fields, {len(self.points)} points "
            f"({', '.join(f'{m} {counts[m]}' for m in ('oat', 'morris', 'sobol') if m in counts)}) "
            f"× {n} replications, "
            f"seed {self.scenario.seed} (common random numbers); 90% intervals; batches computed "
            f"{self.batches.get('computed', 0)}, from cache {self.batches.get('cached', 0)}.",
        ]
        width = max(len(f) for f in self.fields) + 2
        for kpi, scope in self.output_names:
            unit = units[kpi]
            label = kpi_label(kpi) + ("" if scope == "all" else f" [{scope}]")
            r = self.ranking(kpi, scope)
            lines.append("")
            lines.append(f"{label}: what drives it (ranked by " +
                         ("Sobol' total-order index ST" if "sobol_ST" in r else
                          "Morris mu*" if "morris_mu_star" in r else "one-at-a-time swing") + ")")
            head = f"  {'field':<{width}}"
            if "sobol_ST" in r:
                head += f"{'ST [90% CI]':>24}"
            if "morris_mu_star" in r:
                head += f"{'Morris mu* [90% CI]':>34}"
            if "oat_swing" in r:
                head += f"{'swing high−low [90% CI]':>40}"
            lines.append(head)
            for row in r.itertuples():
                cells = f"  {row.field:<{width}}"
                if "sobol_ST" in r:
                    cells += f"{row.sobol_ST:.2f} [{row.sobol_ST_lo:.2f}, {row.sobol_ST_hi:.2f}]".rjust(24)
                if "morris_mu_star" in r:
                    cells += (f"{fmt_value(row.morris_mu_star, unit)} [{fmt_value(row.morris_mu_star_lo, unit)}, "
                              f"{fmt_value(row.morris_mu_star_hi, unit)}]").rjust(34)
                if "oat_swing" in r:
                    cells += (f"{fmt_change(row.oat_swing, unit)} [{fmt_change(row.oat_swing_lo, unit)}, "
                              f"{fmt_change(row.oat_swing_hi, unit)}]").rjust(40)
                lines.append(cells)
            if "sobol_ST" in r:
                inert = [row.field for row in r.itertuples() if row.sobol_ST_lo <= 0.0]
                if inert:
                    lines.append(f"  ST interval includes 0 (not shown to matter): {', '.join(inert)}")
                t = self.table()
                sob = t[(t["method"] == "sobol") & (t["kpi"] == kpi) & (t["scope"] == scope)]["estimate"]
                if ((sob > 1.05) | (sob < -0.05)).any():
                    lines.append(f"  Sobol' estimates outside [0, 1]: sobol_n {self.scenario.sensitivity.sobol_n} is too "
                                 f"few points for stable indices; raise it (each doubling halves the error's variance).")
        frame = pd.concat({f"{k}[{s}]": self.ranking(k, s).set_index("field") for k, s in self.output_names},
                          names=["output", "field"])
        return Summary(frame, text="\n".join(lines))

    def plot_tornado(self, kpi: str = "grr", scope: str = "all", ax=None):
        """Tornado chart of the one-at-a-time swings of ``kpi``; returns the Axes."""
        return plots.tornado(self.table(), kpi=kpi, scope=scope, ax=ax)

    def plot_sobol(self, kpi: str = "grr", scope: str = "all", ax=None):
        """Sobol' S1 and ST with their intervals for ``kpi``; returns the Axes."""
        return plots.sobol_bars(self.table(), kpi=kpi, scope=scope, ax=ax)

    def __repr__(self) -> str:
        return f"SensitivityResults(scenario={self.scenario.name!r}, fields={self.fields}, points={len(self.points)})"


def _rank(frame: pd.DataFrame, index: str) -> dict[str, int]:
    sub = frame[frame["index"] == index]
    order = sub.assign(key=sub["estimate"].abs().fillna(-1.0)).sort_values("key", ascending=False, kind="stable")
    return {f: i + 1 for i, f in enumerate(order["field"])}


def _analyse(res: SensitivityResults) -> pd.DataFrame:
    problem = res.manifest["problem"]
    seed = res.manifest["sample_seed"]
    pts = res.points
    rows: list[dict] = []
    for kpi, scope in res.output_names:
        per_point = {pid: r.kpi(kpi, scope) for pid, r in res.results.items()}
        means = {pid: float(np.nanmean(v)) if np.isfinite(v).any() else np.nan for pid, v in per_point.items()}
        block: list[dict] = []
        oat = pts[pts["method"] == "oat"].sort_values("row")
        if len(oat):
            base_id = oat["point"].iloc[0]
            m, lo, hi = mean_interval(per_point[base_id])
            block.append(dict(method="oat", field="", index="base", estimate=m, ci_lo=lo, ci_hi=hi, field_value=np.nan))
            for i, f in enumerate(res.fields):
                low_id, high_id = oat["point"].iloc[1 + 2 * i], oat["point"].iloc[2 + 2 * i]
                for index, pid in (("at_low", low_id), ("at_high", high_id)):
                    m, lo, hi = mean_interval(per_point[pid])
                    value = pts.set_index("point").loc[pid, f]
                    block.append(dict(method="oat", field=f, index=index, estimate=m, ci_lo=lo, ci_hi=hi,
                                      field_value=float(value)))
                d, lo, hi = paired_interval(per_point[low_id], per_point[high_id])
                block.append(dict(method="oat", field=f, index="swing", estimate=d, ci_lo=lo, ci_hi=hi,
                                  field_value=np.nan))
        for method in ("morris", "sobol"):
            sub = pts[pts["method"] == method].sort_values("row")
            if not len(sub):
                continue
            y = np.array([means[p] for p in sub["point"]], dtype=float)
            x = sub[[f"u::{f}" for f in res.fields]].to_numpy(dtype=float)
            if not np.isfinite(y).all():
                for f in res.fields:
                    for index in (("mu_star", "sigma") if method == "morris" else ("S1", "ST")):
                        block.append(dict(method=method, field=f, index=index, estimate=np.nan, ci_lo=np.nan,
                                          ci_hi=np.nan, field_value=np.nan))
                continue
            boot = int(np.random.SeedSequence(seed, spawn_key=(_BOOT_KEY,)).generate_state(1)[0]) or 1
            if method == "morris":
                si = morris_analyze.analyze(_unit_problem(problem), x, y,
                                            num_levels=res.scenario.sensitivity.morris_levels,
                                            conf_level=LEVEL, num_resamples=1000, seed=boot)
                for i, f in enumerate(res.fields):
                    ms, conf = float(si["mu_star"][i]), float(si["mu_star_conf"][i])
                    block.append(dict(method=method, field=f, index="mu_star", estimate=ms,
                                      ci_lo=max(ms - conf, 0.0), ci_hi=ms + conf, field_value=np.nan))
                    block.append(dict(method=method, field=f, index="sigma", estimate=float(si["sigma"][i]),
                                      ci_lo=np.nan, ci_hi=np.nan, field_value=np.nan))
            else:
                if np.ptp(y) == 0.0:  # the output does not move at all: every index is exactly 0
                    si = {k: np.zeros(len(res.fields)) for k in ("S1", "S1_conf", "ST", "ST_conf")}
                else:
                    si = sobol_analyze.analyze(problem, y, calc_second_order=False, conf_level=LEVEL,
                                               num_resamples=1000, seed=boot)
                for i, f in enumerate(res.fields):
                    for index in ("S1", "ST"):
                        est, conf = float(si[index][i]), float(si[f"{index}_conf"][i])
                        block.append(dict(method=method, field=f, index=index, estimate=est, ci_lo=est - conf,
                                          ci_hi=est + conf, field_value=np.nan))
        frame = pd.DataFrame(block)
        frame["rank"] = np.nan
        for method, index in (("oat", "swing"), ("morris", "mu_star"), ("sobol", "ST")):
            sel = frame["method"] == method
            ranks = _rank(frame[sel], index)
            named = sel & (frame["field"] != "")
            frame.loc[named, "rank"] = frame.loc[named, "field"].map(ranks)
        frame.insert(1, "kpi", kpi)
        frame.insert(2, "scope", scope)
        rows.extend(frame.to_dict("records"))
    cols = ["method", "kpi", "scope", "field", "index", "estimate", "ci_lo", "ci_hi", "field_value", "rank"]
    return pd.DataFrame(rows, columns=cols)


def sensitivity(
    scenario: Scenario | str | Path,
    replications: int | None = None,
    seed: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    jobs: int | None = 1,
    dask=None,
    progress: bool = False,
    cache: str | Path | None = None,
    batch_size: int = 4,
    on_batch: Callable[[int, int], None] | None = None,
) -> SensitivityResults:
    """Rank a scenario's assumptions by how much they drive its outputs.

    Parameters
    ----------
    scenario : Scenario or path
        A scenario with a ``sensitivity:`` block.
    replications, seed : int, optional
        Override the scenario's values (every point uses the same ones).
    jobs, dask
        Where to run (see :func:`cssim.backends.execute`); the table does not depend on it.
    progress : bool
        A progress bar over every replication of every point.
    cache : path, optional
        Folder of finished batches (see :mod:`cssim.cache`): a rerun computes only what is missing.
    batch_size : int
        Replications per cached batch (fixed, so a cache serves any ``jobs``).
    on_batch : callable, optional
        ``on_batch(done, total)`` after each computed batch.
    """
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    if scenario.sensitivity is None:
        raise PlanError(
            f"scenario {scenario.name!r} has no sensitivity: block; add one, e.g. "
            "sensitivity: {fields: {segments.smb.renewal.healthy: [0.85, 0.95]}}"
        )
    scenario = _with_run_settings(scenario, replications, seed, overrides)
    designs, info = _designs(scenario)
    base = scenario.model_dump(mode="json", exclude={"sweep", "sensitivity"}, context=RESOLVED)
    rows, unique, point_of = [], {}, []
    for design in designs:
        for i, x in enumerate(design.x):
            values = _values(scenario, x, info["current"])
            try:
                point = point_scenario(base, values)
            except ValidationError as exc:
                err = exc.errors(include_url=False)[0]
                loc = ".".join(str(p) for p in err.get("loc", ())) or "(top level)"
                shown = ", ".join(f"{k}={v:g}" for k, v in values.items())
                raise ScenarioError(f"sensitivity: the {design.method} point {i} ({shown}) is not a valid scenario: "
                                    f"{loc}: {err['msg']}") from None
            key = scenario_hash(point)
            if key not in unique:
                unique[key] = (f"s{len(unique):04d}", point)
            pid = unique[key][0]
            rows.append({"point": pid, "method": design.method, "row": i, **values,
                         **{f"u::{p}": float(v) for p, v in zip(values, design.u[i], strict=True)}})
            point_of.append(pid)
    reps = list(range(scenario.replications))
    ids = [pid for pid, _ in unique.values()]
    sims, counts = run_points([p for _, p in unique.values()], reps, jobs=jobs, dask=dask, progress=progress,
                              cache=cache, batch_size=batch_size, on_batch=on_batch,
                              desc=f"{scenario.name} sensitivity")
    results = dict(zip(ids, sims, strict=True))
    points = pd.DataFrame(rows)
    outputs = []
    for kpi, scope in [parse_output(o, scenario) for o in scenario.sensitivity.outputs]:
        for pid, r in results.items():
            v = r.kpi(kpi, scope)
            outputs.append({"point": pid, "kpi": kpi, "scope": scope,
                            "mean": float(np.nanmean(v)) if np.isfinite(v).any() else np.nan})
    manifest = build_manifest(
        "sensitivity", scenario_name=scenario.name, scenario_hash=scenario_hash(scenario), seed=scenario.seed,
        sample_seed=info["seed"], replications=len(reps), problem=info["problem"],
        methods=list(scenario.sensitivity.methods), outputs=list(scenario.sensitivity.outputs), points=len(points),
        unique_points=len(ids), batches=counts, scenario=scenario.model_dump(mode="json"),
    )
    return SensitivityResults(scenario=scenario, points=points, outputs=pd.DataFrame(outputs), results=results,
                              batches=counts, manifest=manifest)
