"""Sweeps: one scenario simulated at many points of a grid (or a sample) over its fields.

A scenario declares the points in a ``sweep:`` block (see
:class:`cssim.scenario.SweepSpec`)::

    sweep:
      grid:
        team.pods.smb.headcount: [2, 3, 4, 5, 6]
        policy.routes.0.touch_model: [tech_touch, low_touch_pooled]
      sample:                       # optional: random points, crossed with the grid
        n: 20
        ranges: {segments.smb.renewal.healthy: [0.85, 0.95]}

Every point is the scenario with those fields set, validated like any
scenario; all points share the seed and replication ids, so they see the same
customers (common random numbers) and differences between points are not
noise between draws. The sweep block itself is not part of a point, nor of
the scenario hash.

Finished (point, replication batch) results can be kept in a
:class:`~cssim.cache.BatchCache`; rerunning an interrupted sweep then
computes only what is missing and gives the same table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.contract import Results, Summary
from ..core.errors import PlanError, ScenarioError
from ..core.formatting import fmt_value
from ..core.output import build_manifest, versions
from ..model.loader import scenario_hash, with_overrides
from ..model.scenario import RESOLVED, Scenario
from ..model.variants import check_sweep, point_data, resolve_path
from ..sim.backends import simulate_tasks
from .cache import BatchCache
from .results import SimulationResults

__all__ = ["SweepPoint", "SweepResults", "sweep", "sweep_points", "resolve_path", "check_sweep", "point_scenario"]

DEFAULT_BATCH = 4


def point_scenario(base: dict, values: dict[str, Any]) -> Scenario:
    """The scenario at one point: ``base`` (a dumped scenario) with dotted fields set, validated."""
    return Scenario.model_validate(point_data(base, values))




@dataclass(frozen=True)
class SweepPoint:
    """One point of a sweep: its id, the values of the swept fields, and the resolved scenario."""

    id: str
    values: dict[str, Any]
    scenario: Scenario


def sweep_points(scenario: Scenario) -> list[SweepPoint]:
    """The points a scenario's ``sweep:`` block declares (grid × sample), each a validated scenario."""
    if scenario.sweep is None:
        raise PlanError(f"scenario {scenario.name!r} has no sweep: block; add one with a grid over field paths")
    try:
        assignments = check_sweep(scenario)
    except ValueError as exc:
        raise ScenarioError(str(exc)) from None
    base = scenario.model_dump(mode="json", exclude={"sweep", "sensitivity"}, context=RESOLVED)
    width = len(str(len(assignments) - 1))
    return [SweepPoint(f"p{i:0{width}d}", values, point_scenario(base, values)) for i, values in enumerate(assignments)]


@dataclass(repr=False)
class SweepResults(Results):
    """Results of every point of a sweep.

    Attributes
    ----------
    scenario : Scenario
        The swept scenario (with its sweep block).
    points : list of SweepPoint
    results : list of SimulationResults
        One per point, in point order, all with the same replication ids.
    batches : dict
        ``{"computed": n, "cached": m}``: batches simulated now and found in the cache.
    """

    scenario: Scenario
    points: list[SweepPoint]
    results: list[SimulationResults]
    batches: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)

    KIND = "sweep"

    @property
    def fields(self) -> list[str]:
        """The swept field paths, in declaration order (the table's point columns)."""
        seen: dict[str, None] = {}
        for p in self.points:
            seen.update(dict.fromkeys(p.values))
        return list(seen)

    def points_table(self) -> pd.DataFrame:
        """One row per point: ``point`` and the value of each swept field."""
        return pd.DataFrame([{"point": p.id, **p.values} for p in self.points], columns=["point", *self.fields])

    def table(self, level: float | None = None, scope: str | None = None) -> pd.DataFrame:
        """Tidy KPI table across points: point, swept fields, kpi, scope, unit, mean, lo, hi, ci_lo, ci_hi, n."""
        level = self.level if level is None else level
        frames = []
        for point, res in zip(self.points, self.results, strict=True):
            t = res.kpis(level, scope=scope)
            for i, name in enumerate(self.fields):
                t.insert(i, name, [point.values.get(name)] * len(t))
            t.insert(0, "point", point.id)
            frames.append(t)
        return pd.concat(frames, ignore_index=True)

    def kpis_by_replication(self) -> pd.DataFrame:
        """Every KPI of every replication at every point (point column first)."""
        frames = []
        for point, res in zip(self.points, self.results, strict=True):
            t = res.kpis_by_replication()
            t.insert(0, "point", point.id)
            frames.append(t)
        return pd.concat(frames, ignore_index=True)

    def summary(self, kpis: tuple[str, ...] = ("grr", "nrr", "ending_arr", "csm_cost"),
                level: float | None = None) -> Summary:
        """Headline KPIs (all customers) at every point, with the 90 % interval of each mean."""
        table = self.table(level, scope="all")
        table = table[table["kpi"].isin(kpis)]
        n = self.results[0].n_replications if self.results else 0
        lines = [
            f"Sweep of {self.scenario.name!r}: {len(self.points)} points × {n} replications, seed {self.scenario.seed} "
            f"(common random numbers); batches computed {self.batches.get('computed', 0)}, "
            f"from cache {self.batches.get('cached', 0)}",
            f"{'point':<7}" + "".join(f"{f:>28}" for f in self.fields) + "".join(f"{k:>28}" for k in kpis),
        ]
        for point in self.points:
            rows = table[table["point"] == point.id].set_index("kpi")
            cells = []
            for k in kpis:
                if k not in rows.index:
                    cells.append(f"{'n/a':>28}")
                    continue
                r = rows.loc[k]
                cells.append(f"{fmt_value(r['mean'], r['unit'])} [{fmt_value(r['ci_lo'], r['unit'])}, {fmt_value(r['ci_hi'], r['unit'])}]".rjust(28))
            lines.append(f"{point.id:<7}" + "".join(f"{str(point.values.get(f)):>28}" for f in self.fields) + "".join(cells))
        frame = table.set_index(["point", "kpi"])[[*self.fields, "unit", "mean", "ci_lo", "ci_hi"]]
        return Summary(frame, text="\n".join(lines))

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"sweep": self.table(), "points": self.points_table(), "kpis_by_replication": self.kpis_by_replication()}

    def __repr__(self) -> str:
        return f"SweepResults(scenario={self.scenario.name!r}, points={len(self.points)}, fields={self.fields})"


def run_points(
    scenarios: list[Scenario],
    reps: list[int],
    jobs: int | None = 1,
    dask=None,
    progress: bool = False,
    cache: str | Path | None = None,
    batch_size: int | None = DEFAULT_BATCH,
    on_batch: Callable[[int, int], None] | None = None,
    desc: str = "replications",
) -> tuple[list[SimulationResults], dict]:
    """Simulate the same replications of several scenarios in one pool, through an optional batch cache."""
    store = BatchCache(cache) if cache is not None else None
    arrays, counts = simulate_tasks(
        [(s, reps) for s in scenarios],
        batch_size=batch_size,
        jobs=jobs,
        dask=dask,
        progress=progress,
        desc=desc,
        lookup=store.get if store is not None else None,
        store=store.put if store is not None else None,
        on_batch=on_batch,
    )
    out = []
    vers = versions()
    for s, a in zip(scenarios, arrays, strict=True):
        manifest = build_manifest(
            "simulation", scenario_name=s.name, scenario_hash=scenario_hash(s), seed=s.seed, replications=len(reps),
            parameter_uncertainty=s.uncertainty_mode, model_uncertainty=s.model_mode, versions=vers,
            scenario=s.model_dump(mode="json"),
        )
        out.append(SimulationResults(scenario=s, arrays=a, replication_ids=list(reps), manifest=manifest))
    return out, counts


def _with_run_settings(scenario: Scenario, replications: int | None, seed: int | None,
                       overrides: Mapping[str, Any] | None = None) -> Scenario:
    """``scenario`` with ``overrides`` and the run settings applied (:func:`cssim.model.loader.with_overrides`)."""
    return with_overrides(scenario, {**(overrides or {}), "replications": replications, "seed": seed})


def sweep(
    scenario: Scenario,
    replications: int | None = None,
    seed: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    jobs: int | None = 1,
    dask=None,
    progress: bool = False,
    cache: str | Path | None = None,
    batch_size: int = DEFAULT_BATCH,
    on_batch: Callable[[int, int], None] | None = None,
) -> SweepResults:
    """Simulate every point of ``scenario``'s sweep block with common random numbers.

    Parameters
    ----------
    scenario : Scenario
        A scenario with a ``sweep:`` block.
    replications, seed : int, optional
        Override the scenario's values (for every point).
    jobs, dask
        Where to run (see :func:`cssim.backends.execute`); results do not depend on it.
    progress : bool
        Progress bars over replications and points.
    cache : path, optional
        Folder of finished batches (see :mod:`cssim.cache`): a rerun computes
        only what is missing. Ctrl-C keeps every batch that finished.
    batch_size : int
        Replications per cached batch; fixed (not tied to ``jobs``) so a cache
        written with one number of workers serves any other.
    on_batch : callable, optional
        ``on_batch(done, total)`` after each computed batch.
    """
    scenario = _with_run_settings(scenario, replications, seed, overrides)
    points = sweep_points(scenario)
    reps = list(range(scenario.replications))
    results, counts = run_points(
        [p.scenario for p in points], reps, jobs=jobs, dask=dask, progress=progress,
        cache=cache, batch_size=batch_size, on_batch=on_batch, desc=f"{scenario.name} sweep",
    )

    manifest = build_manifest(
        "sweep", scenario_name=scenario.name, scenario_hash=scenario_hash(scenario), seed=scenario.seed,
        replications=len(reps),
        points=[{"point": p.id, "values": p.values, "scenario_hash": scenario_hash(p.scenario)} for p in points],
        batches=counts, scenario=scenario.model_dump(mode="json"),
    )
    return SweepResults(scenario=scenario, points=points, results=results, batches=counts, manifest=manifest)
