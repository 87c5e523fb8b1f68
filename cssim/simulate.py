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

from .engine import run_replication
from .loader import scenario_hash
from .results import SimulationResults, stack
from .scenario import Scenario

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


def _run_batch(scenario: Scenario, reps: Sequence[int]) -> list[dict]:
    return [run_replication(scenario, r)[0] for r in reps]


def _batches(reps: list[int], n: int) -> list[list[int]]:
    size = max(1, -(-len(reps) // n))
    return [reps[i : i + size] for i in range(0, len(reps), size)]


def simulate(
    scenario: Scenario,
    replications: int | None = None,
    seed: int | None = None,
    jobs: int = 1,
    progress: bool = False,
    replication_ids: Sequence[int] | None = None,
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
    """
    updates = {}
    if replications is not None:
        updates["replications"] = replications
    if seed is not None:
        updates["seed"] = seed
    if updates:
        scenario = scenario.model_copy(update=updates)
        scenario = Scenario.model_validate(scenario.model_dump())
    reps = list(replication_ids) if replication_ids is not None else list(range(scenario.replications))
    per_rep = _execute(scenario, reps, jobs, progress)
    manifest = {
        "scenario_name": scenario.name,
        "scenario_hash": scenario_hash(scenario),
        "seed": scenario.seed,
        "replications": len(reps),
        "versions": versions(),
        "scenario": scenario.model_dump(mode="json"),
    }
    return SimulationResults(scenario=scenario, arrays=stack(per_rep), replication_ids=reps, manifest=manifest)


def _execute(scenario: Scenario, reps: list[int], jobs: int, progress: bool) -> list[dict]:
    from tqdm.auto import tqdm

    if jobs == 1 or len(reps) == 1:
        return [run_replication(scenario, r)[0] for r in tqdm(reps, disable=not progress, desc=scenario.name, unit="rep")]
    from joblib import Parallel, cpu_count, delayed

    n_workers = cpu_count() if jobs < 0 else jobs
    batches = _batches(reps, n_workers * 4)
    out: list[dict] = []
    parallel = Parallel(n_jobs=n_workers, backend="loky", return_as="generator")
    with tqdm(total=len(reps), disable=not progress, desc=scenario.name, unit="rep") as bar:
        for batch_result in parallel(delayed(_run_batch)(scenario, b) for b in batches):
            out.extend(batch_result)
            bar.update(len(batch_result))
    return out
