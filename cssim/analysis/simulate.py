"""Monte Carlo over replications: the public ``simulate`` entry point.

Replication ``r`` always uses the random streams keyed by ``(seed, r)``,
whichever worker runs it, so results are identical for any number of jobs,
and two scenarios simulated with the same seed see the same customers
(common random numbers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..core.output import build_manifest
from ..model.edge import edge_exposure
from ..model.loader import scenario_hash, with_overrides
from ..model.scenario import Scenario
from ..sim.backends import simulate_tasks
from .results import SimulationResults


def simulate(
    scenario: Scenario,
    replications: int | None = None,
    seed: int | None = None,
    jobs: int = 1,
    progress: bool = False,
    replication_ids: Sequence[int] | None = None,
    dask=None,
    overrides: Mapping[str, Any] | None = None,
) -> SimulationResults:
    """Run the Monte Carlo replications of ``scenario``.

    Parameters
    ----------
    scenario : Scenario
        A validated scenario (see :func:`cssim.load_scenario`).
    replications, seed : int, optional
        Override the scenario's values.
    overrides : mapping, optional
        Dotted field paths and values (``{"team.pods.smb.headcount": 4}``), as ``--set`` on the command line.
    jobs : int
        Worker processes (joblib/loky); ``-1`` uses every core. Results do not
        depend on it.
    progress : bool
        Show a progress bar over replications.
    replication_ids : sequence of int, optional
        Exactly which replications to run (default ``range(replications)``).
    dask : str or distributed.Client, optional
        Run on a Dask cluster instead: a scheduler address, ``"local"`` for a
        LocalCluster of ``jobs`` workers, or a connected Client (see
        :mod:`cssim.backends`). Results do not depend on it.
    """
    scenario = with_overrides(scenario, {**(overrides or {}), "replications": replications, "seed": seed})
    reps = list(replication_ids) if replication_ids is not None else list(range(scenario.replications))
    arrays = _execute(scenario, reps, jobs, progress, dask)
    manifest = build_manifest(
        "simulation", scenario_name=scenario.name, scenario_hash=scenario_hash(scenario), seed=scenario.seed,
        replications=len(reps), parameter_uncertainty=scenario.uncertainty_mode, model_uncertainty=scenario.model_mode,
        scenario=scenario.model_dump(mode="json"),
    )
    edges = edge_exposure(scenario)  # share of customer-time beyond fitted curves' data edges (estimate)
    if len(edges):
        manifest["beyond_edge"] = edges.to_dict(orient="records")
    return SimulationResults(scenario=scenario, arrays=arrays, replication_ids=reps, manifest=manifest)


def _execute(scenario: Scenario, reps: list[int], jobs: int, progress: bool, dask=None) -> dict:
    """Ledger arrays of ``reps``, stacked as each batch finishes (see :mod:`cssim.backends`)."""
    (arrays,), _ = simulate_tasks([(scenario, reps)], jobs=jobs, dask=dask, progress=progress, desc=scenario.name)
    return arrays
