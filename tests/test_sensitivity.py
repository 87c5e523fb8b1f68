"""Sensitivity analysis: a known driver ranks first, an inert field is not shown to matter, reproducible, resumable."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
from conftest import write_yaml

from cssim import ScenarioError, scenario_from_dict, sensitivity
from cssim.cli import main

DRIVER = "segments.acct.renewal.healthy"
INERT = "team.pods.acct.cost_per_year"


def driver_scenario(**block) -> dict:
    """Thirty annual customers over a year, one pod whose touches have no effect.

    GRR is set by the renewal probability of healthy customers (the driver); the
    pod's cost per year cannot change who renews (inert for GRR) but sets the CSM cost.
    """
    spec = {"fields": {DRIVER: [0.6, 0.99], INERT: [50_000, 150_000]}, "outputs": ["grr", "csm_cost"],
            "methods": ["oat", "morris", "sobol"], "sobol_n": 16, "morris_trajectories": 6}
    spec.update(block)
    return {
        "name": "driver",
        "horizon_months": 12,
        "seed": 5,
        "replications": 4,
        "segments": {
            "acct": {
                "initial_customers": 30,
                "arr": {"median": 20_000, "sigma": 0.3},
                "contract": {"term_months": 12},
                "renewal": {"healthy": 0.9, "at_risk": 0.5},
                "touch_model": "named",
                "lifecycle": {"at_risk": {"family": "never"}, "champion_change_per_year": 0.0},
            }
        },
        "touch_models": {"named": {"tasks": {"review": {"trigger": "cadence", "every_days": 30, "hours": 1,
                                                        "deadline_days": 7}}}},
        "team": {"pods": {"acct": {"segments": ["acct"], "headcount": 2, "cost_per_year": 100_000}}},
        "sensitivity": spec,
    }


@pytest.fixture(scope="module")
def analysed():
    return sensitivity(scenario_from_dict(driver_scenario()), jobs=1)


def test_the_driver_ranks_first_and_the_inert_field_is_not_shown_to_matter(analysed):
    t = analysed.table()
    grr = t[(t["kpi"] == "grr") & (t["scope"] == "all")].set_index(["method", "index", "field"])
    st_driver = grr.loc[("sobol", "ST", DRIVER)]
    st_inert = grr.loc[("sobol", "ST", INERT)]
    assert st_driver["rank"] == 1 and st_inert["rank"] == 2
    assert st_driver["ci_lo"] > 0.0 and st_driver["estimate"] > 0.5  # the interval excludes 0
    assert st_inert["ci_lo"] <= 0.0 <= st_inert["ci_hi"]  # the interval includes 0
    # Morris and one at a time agree; with common random numbers the inert field changes GRR by exactly 0.
    assert grr.loc[("morris", "mu_star", DRIVER), "rank"] == 1
    assert grr.loc[("morris", "mu_star", INERT), "estimate"] == 0.0
    assert grr.loc[("oat", "swing", DRIVER), "ci_lo"] > 0.0
    assert grr.loc[("oat", "swing", INERT), "estimate"] == 0.0
    # For the CSM cost the roles swap: the pod's cost is the whole story, exactly $100k per CSM-year swing.
    cost = t[t["kpi"] == "csm_cost"].set_index(["method", "index", "field"])
    assert cost.loc[("sobol", "ST", INERT), "rank"] == 1 and cost.loc[("sobol", "ST", INERT), "ci_lo"] > 0
    assert cost.loc[("oat", "swing", INERT), "estimate"] == pytest.approx(2 * 100_000, rel=1e-9)
    text = str(analysed.summary())
    assert "grr: what drives it" in text and "csm_cost (horizon total)" in text
    assert f"ST interval includes 0 (not shown to matter): {INERT}" in text


def test_tidy_table_and_points(analysed):
    t = analysed.table()
    assert list(t.columns) == ["method", "kpi", "scope", "field", "index", "estimate", "ci_lo", "ci_hi",
                               "field_value", "rank"]
    assert set(t["method"]) == {"oat", "morris", "sobol"}
    counts = analysed.points["method"].value_counts()
    assert counts["oat"] == 5 and counts["sobol"] == 16 * 4 and counts["morris"] == 6 * 3
    # The one-at-a-time low/high values are the range's bounds.
    oat = t[(t["method"] == "oat") & (t["field"] == DRIVER) & (t["kpi"] == "grr")].set_index("index")
    assert oat.loc["at_low", "field_value"] == 0.6 and oat.loc["at_high", "field_value"] == 0.99
    # Every point ran the same replication ids (common random numbers): same arrivals everywhere.
    new = [r.kpi("ending_logos") for r in analysed.results.values()]
    assert all(r.replication_ids == [0, 1, 2, 3] for r in analysed.results.values())
    first = next(iter(analysed.results.values())).kpi("new_arr")
    assert all(np.array_equal(r.kpi("new_arr"), first) for r in analysed.results.values()) and len(new) > 1


def test_same_seed_same_table_for_any_jobs():
    data = driver_scenario(methods=["oat", "sobol"], sobol_n=8)
    one = sensitivity(scenario_from_dict(data), jobs=1).table()
    two = sensitivity(scenario_from_dict(data), jobs=2).table()
    pd.testing.assert_frame_equal(one, two)


def test_an_interrupted_run_resumes_from_the_cache(tmp_path):
    data = driver_scenario(methods=["oat", "sobol"], sobol_n=8)
    full = sensitivity(scenario_from_dict(data), jobs=1).table()
    cache = tmp_path / "cache"

    def stop_after_five(done, total):
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sensitivity(scenario_from_dict(data), jobs=1, cache=cache, on_batch=stop_after_five)
    resumed = sensitivity(scenario_from_dict(data), jobs=1, cache=cache)
    assert resumed.batches["cached"] == 5 and resumed.batches["computed"] > 0
    pd.testing.assert_frame_equal(resumed.table(), full)


def test_cli_writes_folder_and_report(tmp_path, capsys):
    path = write_yaml(tmp_path / "driver.yaml", driver_scenario(methods=["oat", "sobol"], sobol_n=8))
    out = tmp_path / "sens"
    assert main(["sensitivity", str(path), "-j", "1", "-q", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "grr: what drives it" in printed
    table = pd.read_csv(out / "sensitivity.csv")
    assert {"method", "kpi", "field", "index", "estimate", "ci_lo", "ci_hi"} <= set(table.columns)
    assert json.loads((out / "manifest.json").read_text())["kind"] == "sensitivity"
    assert (tmp_path / ".cssim-cache").is_dir()
    assert main(["report", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert "what drives the forecast of driver" in text and "Sobol' ST" in text
    assert (out / "report-tornado-grr-all.png").stat().st_size > 15_000
    assert (out / "report-sobol-grr-all.png").stat().st_size > 15_000


@pytest.mark.parametrize(
    "change, message",
    [
        ({"fields": {"segments.acct.renewal.healthyy": [0.6, 0.9], INERT: [1, 2]}}, "did you mean 'healthy'?"),
        ({"fields": {DRIVER: [0.9, 0.6], INERT: [1, 2]}}, "must be below high"),
        ({"fields": {DRIVER: [0.6, 1.5], INERT: [1, 2]}}, f"sensitivity.fields.{DRIVER}: the value 1.5"),
        ({"fields": {"seed": [1, 5], INERT: [1, 2]}}, "cannot vary 'seed'"),
        ({"sobol_n": 12}, "not a power of 2"),
        ({"outputs": ["grrr"]}, "unknown KPI 'grrr'; did you mean 'grr'?"),
        ({"outputs": ["grr[nosuch]"]}, "unknown scope 'nosuch'"),
        ({"fields": {DRIVER: {"dist": "triangular", "low": 0.6, "high": 0.9}, INERT: [1, 2]}}, "missing mode"),
    ],
)
def test_bad_blocks_are_one_line_exit_2(tmp_path, capsys, change, message):
    data = driver_scenario()
    data["sensitivity"].update(copy.deepcopy(change))
    path = write_yaml(tmp_path / "bad.yaml", data)
    assert main(["sensitivity", str(path), "-j", "1", "-q", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cssim: error:") and err.count("\n") == 1 and message in err
    assert "bad.yaml" in err


def test_distributions_map_to_salib_and_percentiles():
    from cssim.analysis.sensitivity import sensitivity_problem

    data = driver_scenario()
    data["sensitivity"]["fields"] = {
        DRIVER: {"dist": "triangular", "low": 0.7, "mode": 0.9, "high": 0.95},
        INERT: {"dist": "normal", "mean": 100_000, "sd": 10_000},
        "segments.acct.arr.median": {"dist": "lognormal", "median": 20_000, "sigma": 0.2},
    }
    scenario = scenario_from_dict(data)
    problem = sensitivity_problem(scenario)
    assert problem["dists"] == ["triang", "norm", "lognorm"]
    assert problem["bounds"][0] == pytest.approx([0.7, 0.95, 0.8])
    res = sensitivity(scenario, replications=2, jobs=1)
    oat = res.table()
    lows = oat[(oat["method"] == "oat") & (oat["index"] == "at_low") & (oat["kpi"] == "grr")].set_index("field")
    assert lows.loc[INERT, "field_value"] == pytest.approx(100_000 - 1.6448536 * 10_000, rel=1e-6)


def test_a_scenario_without_the_block_is_refused(tmp_path, capsys):
    data = driver_scenario()
    del data["sensitivity"]
    path = write_yaml(tmp_path / "plain.yaml", data)
    assert main(["sensitivity", str(path), "-q"]) == 2
    assert "no sensitivity: block" in capsys.readouterr().err
    with pytest.raises(ScenarioError):
        scenario_from_dict({**driver_scenario(), "sensitivity": {"fields": {}}})


def test_plots_put_the_driver_on_top_with_its_interval(analysed):
    ax = analysed.plot_tornado("grr")
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[-1] == "acct.renewal.healthy" and labels[0] == "pods.acct.cost_per_year"  # largest swing on top
    texts = [t.get_text() for t in ax.texts]
    assert any(t.startswith("swing +") and "pts [" in t for t in texts)
    ax = analysed.plot_sobol("grr")
    assert [t.get_text() for t in ax.get_yticklabels()][-1] == "acct.renewal.healthy"
    assert any(t.startswith("ST 0.00 [0.00, 0.00]") for t in (x.get_text() for x in ax.texts))
