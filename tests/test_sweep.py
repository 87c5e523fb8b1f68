"""Sweeps: the sweep: block, one tidy table, common random numbers, and resuming an interrupted sweep."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import write_yaml

from cssim import ScenarioError, load_scenario, scenario_from_dict, scenario_hash, simulate, sweep, sweep_points
from cssim.analysis.cache import BatchCache
from cssim.cli import main

GRID = {"team.pods.enterprise.headcount": [1, 3], "segments.smb.touch_model": ["tech_touch", "high_touch"]}


@pytest.fixture
def swept(scenario_dict):
    scenario_dict["replications"] = 3
    scenario_dict["sweep"] = {"grid": copy.deepcopy(GRID)}
    return scenario_from_dict(scenario_dict, source="swept")


def test_points_are_the_grid_product(swept):
    points = sweep_points(swept)
    assert [p.id for p in points] == ["p0", "p1", "p2", "p3"]
    assert [p.values for p in points] == [
        {"team.pods.enterprise.headcount": h, "segments.smb.touch_model": t}
        for h in (1, 3)
        for t in ("tech_touch", "high_touch")
    ]
    assert points[2].scenario.team.pods["enterprise"].headcount == 3
    assert points[1].scenario.segments["smb"].touch_model == "high_touch"
    assert all(p.scenario.sweep is None for p in points)
    assert len({scenario_hash(p.scenario) for p in points}) == 4


def test_sweep_block_does_not_change_the_hash(scenario_dict, swept):
    plain = scenario_from_dict(scenario_dict | {"replications": 3}, source="plain")
    assert scenario_hash(plain) == scenario_hash(swept)
    # A point that sets the base's own values is the base scenario: same hash, same numbers.
    same = scenario_from_dict(scenario_dict | {"replications": 3, "sweep": {"grid": {"team.pods.enterprise.headcount": [2, 3]}}})
    p0, p1 = sweep_points(same)
    assert scenario_hash(p0.scenario) == scenario_hash(plain)
    assert scenario_hash(p1.scenario) != scenario_hash(plain)


def test_tidy_table_and_common_random_numbers(swept):
    result = sweep(swept)
    table = result.table()
    assert list(table.columns[:3]) == ["point", *GRID]
    assert {"kpi", "scope", "mean", "lo", "hi", "ci_lo", "ci_hi"} <= set(table.columns)
    assert set(table["point"]) == {"p0", "p1", "p2", "p3"}
    n_kpi_scopes = len(result.results[0].kpis())
    assert len(table) == 4 * n_kpi_scopes
    # Same customers at every point: new ARR comes from arrivals only.
    new_arr = [r.kpi("new_arr") for r in result.results]
    for other in new_arr[1:]:
        np.testing.assert_array_equal(new_arr[0], other)
    # More CSMs cost more, at the same replications.
    cost = table[(table.kpi == "csm_cost") & (table.scope == "all")].set_index("point")["mean"]
    assert cost["p2"] > cost["p0"]
    # A point's numbers are exactly those of simulating its scenario directly.
    direct = simulate(sweep_points(swept)[3].scenario)
    pd.testing.assert_frame_equal(
        direct.kpis().reset_index(drop=True),
        table[table.point == "p3"].drop(columns=["point", *GRID]).reset_index(drop=True),
    )


def test_sample_points_are_seeded_and_in_range(scenario_dict):
    scenario_dict["sweep"] = {
        "sample": {"n": 5, "ranges": {"segments.smb.renewal.healthy": [0.8, 0.95], "team.pods.enterprise.book_cap": [5, 20]}}
    }
    s = scenario_from_dict(scenario_dict)
    a, b = sweep_points(s), sweep_points(s)
    assert [p.values for p in a] == [p.values for p in b]
    caps = [p.values["team.pods.enterprise.book_cap"] for p in a]
    healthy = [p.values["segments.smb.renewal.healthy"] for p in a]
    assert all(isinstance(c, int) and 5 <= c <= 20 for c in caps)
    assert all(0.8 <= h <= 0.95 for h in healthy) and len(set(healthy)) == 5
    scenario_dict["sweep"]["sample"]["seed"] = 99
    assert [p.values for p in sweep_points(scenario_from_dict(scenario_dict))] != [p.values for p in a]


@pytest.mark.parametrize(
    "block, message",
    [
        ({"grid": {"team.pods.enterprise.headcnt": [1, 2]}}, "unknown field path (team.pods.enterprise has no field 'headcnt'; did you mean 'headcount'?)"),
        ({"grid": {"team.pods.nosuch.headcount": [1]}}, "unknown field path (team.pods has no field 'nosuch'"),
        ({"grid": {"policy.routes.0.touch_model": ["tech_touch"]}}, "policy.routes is an empty list"),
        ({"grid": {}}, "empty sweep"),
        ({}, "empty sweep"),
        ({"grid": {"team.pods.enterprise.headcount": []}}, "empty list of values"),
        ({"grid": {"team.pods.enterprise.headcount": 3}}, "sweep.grid.team.pods.enterprise.headcount: Input should be a valid list"),
        ({"grid": {"team.pods.enterprise.headcount": [2, -1]}}, "point 1 (team.pods.enterprise.headcount=-1) is not a valid scenario"),
        ({"grid": {"segments.smb.touch_model": ["nope"]}}, "unknown touch model 'nope'"),
        ({"grid": {"seed": [1, 2]}}, "cannot vary 'seed'"),
        ({"griid": {"team.pods.enterprise.headcount": [1]}}, "sweep.griid: unknown field"),
        ({"sample": {"n": 3, "ranges": {"segments.smb.renewal.healthy": [0.9, 0.8]}}}, "must not exceed high"),
    ],
)
def test_malformed_sweep_blocks(tmp_path, scenario_dict, block, message, capsys):
    scenario_dict["sweep"] = block
    path = write_yaml(tmp_path / "bad.yaml", scenario_dict)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert message in str(info.value)
    assert str(info.value).startswith(str(path))
    assert main(["sweep", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cssim: error:") and err.count("\n") == 1 and message in err
    assert main(["validate", str(path)]) == 2


def test_sweep_needs_a_sweep_block(scenario_file, capsys):
    assert main(["sweep", str(scenario_file), "--quiet"]) == 2
    assert "no sweep: block" in capsys.readouterr().err


class Stop(KeyboardInterrupt):
    pass


def test_interrupted_sweep_resumes_to_the_same_table(tmp_path, swept):
    reference = sweep(swept, batch_size=2).table()  # uninterrupted, no cache
    cache = tmp_path / "cache"

    def stop_after_3(done, total):
        if done == 3:
            raise Stop

    with pytest.raises(Stop):
        sweep(swept, cache=cache, batch_size=2, on_batch=stop_after_3)
    assert len(BatchCache(cache)) == 3  # what finished was kept
    resumed = sweep(swept, cache=cache, batch_size=2)
    total = 4 * 2  # 4 points × batches (0, 1), (2,)
    assert resumed.batches == {"computed": total - 3, "cached": 3}
    pd.testing.assert_frame_equal(resumed.table(), reference)
    again = sweep(swept, cache=cache, batch_size=2, jobs=2)
    assert again.batches == {"computed": 0, "cached": total}
    pd.testing.assert_frame_equal(again.table(), reference)


def test_cache_key_follows_content_not_run_size(tmp_path, swept):
    cache = tmp_path / "cache"
    sweep(swept, cache=cache, batch_size=1)
    more = sweep(swept, replications=4, cache=cache, batch_size=1)
    assert more.batches == {"computed": 4, "cached": 12}  # only replication 3 of each point is new
    changed = sweep(swept, seed=swept.seed + 1, cache=cache, batch_size=1)
    assert changed.batches["cached"] == 0


def test_corrupt_cache_file_is_recomputed(tmp_path, swept):
    cache = tmp_path / "cache"
    first = sweep(swept, cache=cache, batch_size=3)
    victim = next(cache.glob("*/*.npz"))
    victim.write_bytes(b"not a zip")
    second = sweep(swept, cache=cache, batch_size=3)
    assert second.batches == {"computed": 1, "cached": 3}
    pd.testing.assert_frame_equal(first.table(), second.table())


def test_cli_sweep_ctrl_c_keeps_finished_batches_and_resumes(tmp_path, scenario_dict):
    scenario_dict["replications"] = 6
    scenario_dict["segments"]["smb"]["initial_customers"] = 400
    scenario_dict["sweep"] = {"grid": {"team.pods.enterprise.headcount": [1, 2, 3]}}
    path = write_yaml(tmp_path / "sw.yaml", scenario_dict)
    out, cache = tmp_path / "results" / "sw", tmp_path / "results" / ".cssim-cache"
    cmd = [sys.executable, "-m", "cssim.cli", "sweep", str(path), "--out", str(out), "--jobs", "1", "--batch-size", "1", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(BatchCache(cache)) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "rerun the same command to resume" in err
    kept = len(BatchCache(cache))
    assert 2 <= kept < 18
    assert not out.exists()  # nothing half-written
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"batches computed {18 - kept}, from cache {kept}" in done.stdout
    resumed = pd.read_csv(out / "sweep.csv")
    fresh = tmp_path / "fresh"
    assert main(["sweep", str(path), "--out", str(fresh), "--no-cache", "--jobs", "1", "--quiet"]) == 0
    pd.testing.assert_frame_equal(resumed, pd.read_csv(fresh / "sweep.csv"))
    assert {p.name for p in out.iterdir()} >= {"sweep.csv", "points.csv", "kpis_by_replication.csv", "manifest.json"}
