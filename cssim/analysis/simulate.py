"""Monte Carlo over replications: the public ``simulate`` entry point.

Replication ``r`` always uses the random streams keyed by ``(seed, r)``,
whichever worker runs it, so results are identical for any number of jobs,
and two scenarios simulated with the same seed see the same customers
(common random numbers).
"""

from __future__ import annotations

import importlib.metadata
import platform
from collections.abc import Sequence

from ..model.edge import edge_exposure
from ..model.loader import scenario_hash
from ..model.scenario import RESOLVED, Scenario
from ..sim.backends import simulate_tasks
from .results import SimulationResults

PACKAGES = ("cssim", "simpy", "numpy", "scipy", "pandas", "pydantic", "lifelines", "statsmodels", "joblib")


def versions() -> dict[str, str]:
    """Versions of Python and the packages that shape results."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def simulate(
    scenario: Scenario,
    replications: int | None = None,
    seed: int | None = None,
    jobs: int = 1,
    progress: bool = False,
    replication_ids: Sequence[int] | None = None,
    dask=None,
) -> SimulationResults:
    """Run the Monte Carlo replications of ``scenario``.

    Parameters
    ----------
    scenario : Scenario
        A validated scenario (see :func:`cssim.load_scenario`).
    replications, seed : int, optional
        Override the scenario's values.
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
    updates = {}
    if replications is not None:
        updates["replications"] = replications
    if seed is not None:
        updates["seed"] = seed
    if updates:
        scenario = scenario.model_copy(update=updates)
        scenario = Scenario.model_validate(scenario.model_dump(context=RESOLVED))
    reps = list(replication_ids) if replication_ids is not None else list(range(scenario.replications))
    arrays = _execute(scenario, reps, jobs, progress, dask)
    manifest = {
        "scenario_name": scenario.name,
        "scenario_hash": scenario_hash(scenario),
        "seed": scenario.seed,
        "replications": len(reps),
        "parameter_uncertainty": scenario.uncertainty_mode,
        "model_uncertainty": scenario.model_mode,
        "versions": versions(),
        "scenario": scenario.model_dump(mode="json"),
    }
    edges = edge_exposure(scenario)  # share of customer-time beyond fitted curves' data edges (estimate)
    if len(edges):
        manifest["beyond_edge"] = edges.to_dict(orient="records")
    return SimulationResults(scenario=scenario, arrays=arrays, replication_ids=reps, manifest=manifest)


def _execute(scenario: Scenario, reps: list[int], jobs: int, progress: bool, dask=None) -> dict:
    """Ledger arrays of ``reps``, stacked as each batch finishes (see :mod:`cssim.backends`)."""
    (arrays,), _ = simulate_tasks([(scenario, reps)], jobs=jobs, dask=dask, progress=progress, desc=scenario.name)
    return arrays
