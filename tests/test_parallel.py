"""Results do not depend on where replications run: in-process, loky workers, or a Dask cluster."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cssim import scenario_from_dict, simulate, sweep
from cssim.sim.backends import ReplicationStack, Task, batches, execute, run_batch


@pytest.fixture
def scenario(scenario_dict):
    scenario_dict["replications"] = 5
    return scenario_from_dict(scenario_dict, source="tiny")


def _tables(results):
    return results.kpis_by_replication(), results.monthly(), results.pods_monthly()


def _assert_same(a, b):
    for x, y in zip(_tables(a), _tables(b), strict=True):
        pd.testing.assert_frame_equal(x, y)


def test_jobs_1_and_2_and_dask_give_identical_tables(scenario):
    distributed = pytest.importorskip("distributed")
    one = simulate(scenario, jobs=1)
    two = simulate(scenario, jobs=2)
    _assert_same(one, two)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        on_dask = simulate(scenario, jobs=2, dask=client)
    _assert_same(one, on_dask)
    pd.testing.assert_frame_equal(one.kpis(), on_dask.kpis())
    # Replications really differ from each other (a backend repeating one task would still "agree").
    grr = one.kpi("ending_arr")
    assert len(set(np.round(grr, 6))) == len(grr)


def test_dask_submits_every_batch_even_with_equal_arguments(scenario):
    distributed = pytest.importorskip("distributed")
    # Two identical tasks: with Dask's default pure=True they would share one key; each must come back.
    tasks = [Task(scenario, (0, 1)), Task(scenario, (0, 1)), Task(scenario, (2,))]
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        got = dict(execute(tasks, dask=client))
    assert sorted(got) == [0, 1, 2]
    assert len(got[0]) == 2 and len(got[2]) == 1
    np.testing.assert_array_equal(got[0][1]["segment"]["arr"], got[1][1]["segment"]["arr"])


def test_replication_results_depend_only_on_their_id(scenario):
    full = simulate(scenario, replications=5)
    subset = simulate(scenario, replication_ids=[4, 1])
    t_full = full.kpis_by_replication().set_index(["replication", "kpi", "scope"])["value"]
    t_sub = subset.kpis_by_replication().set_index(["replication", "kpi", "scope"])["value"]
    pd.testing.assert_series_equal(t_sub.sort_index(), t_full.loc[t_sub.index].sort_index())


def test_unordered_results_land_in_their_own_slot(scenario):
    per_rep = run_batch(scenario, [0, 1, 2])
    stack = ReplicationStack(3)
    for slot in (2, 0, 1):
        stack.put(slot, per_rep[slot])
    assert stack.complete
    for slot in range(3):
        np.testing.assert_array_equal(stack.arrays["segment"]["arr"][slot], per_rep[slot]["segment"]["arr"])
    # Only monthly aggregates are kept: (replications, months, segments), never per-event data.
    assert stack.arrays["segment"]["arr"].shape == (3, scenario.horizon_months, len(scenario.segments))


def test_sweep_same_table_for_any_jobs(scenario_dict):
    scenario_dict["sweep"] = {"grid": {"team.pods.enterprise.headcount": [1, 3]}}
    scenario = scenario_from_dict(scenario_dict)
    a = sweep(scenario, replications=3, jobs=1)
    b = sweep(scenario, replications=3, jobs=2, batch_size=1)
    pd.testing.assert_frame_equal(a.table(), b.table())


def test_batches_cover_every_replication_once():
    assert batches(range(7), 3) == [(0, 1, 2), (3, 4, 5), (6,)]
    assert batches([5, 9], 10) == [(5, 9)]
