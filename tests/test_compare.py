"""Policy comparison: common random numbers, paired differences, and the compare command."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from conftest import write_yaml

from cssim import PlanError, compare, scenario_from_dict, simulate
from cssim.analysis.compare import paired_difference, unpaired_difference
from cssim.cli import main


@pytest.fixture
def pair(scenario_dict):
    """The small scenario and a variant with stronger high-touch effects and one CSM fewer."""
    scenario_dict["replications"] = 10
    a = scenario_from_dict(scenario_dict, source="a")
    d = copy.deepcopy(scenario_dict)
    d["name"] = "stronger"
    tasks = d["touch_models"]["high_touch"]["tasks"]
    tasks["check_in"]["effects"]["at_risk"] = 0.5
    tasks["renewal_prep"]["effects"]["renewal_odds"] = 3.0
    d["team"]["pods"]["enterprise"]["headcount"] = 1
    return a, scenario_from_dict(d, source="b")


@pytest.fixture
def comparison(pair):
    return compare(list(pair))


def test_same_customers_in_every_scenario(comparison):
    # New-logo ARR depends only on arrivals, which a touch policy does not change: identical per replication.
    a, b = comparison.results
    np.testing.assert_array_equal(a.kpi("new_arr"), b.kpi("new_arr"))
    assert a.replication_ids == b.replication_ids
    d = comparison.differences().set_index("kpi")
    assert d.loc["new_arr", "diff"] == 0.0
    assert not d.loc["new_arr", "distinguishable"]


def test_paired_differences_match_replication_by_replication(comparison):
    a, b = comparison.results
    d = comparison.differences().set_index("kpi")
    by_rep = b.kpi("csm_cost") - a.kpi("csm_cost")
    assert d.loc["csm_cost", "diff"] == pytest.approx(by_rep.mean())
    # One CSM fewer costs less, every replication: a difference well outside noise.
    assert d.loc["csm_cost", "ci_hi"] < 0
    assert d.loc["csm_cost", "distinguishable"]
    assert d.loc["csm_cost", "reference_mean"] == pytest.approx(a.kpi("csm_cost").mean())


def test_scenario_against_itself_is_never_distinguishable(pair):
    a, _ = pair
    c = compare([a, a], replications=4)
    assert c.names == ["tiny", "tiny#2"]
    d = c.differences()
    assert (d["diff"].fillna(0) == 0).all()
    assert not d["distinguishable"].any()
    assert "no difference is distinguishable from noise" in str(c.summary())


def test_crn_interval_much_narrower_than_independent(comparison, pair):
    """Paired (same seed) vs independent (variant run with another seed), same replications."""
    _, b = pair
    a_res, b_res = comparison.results
    independent = simulate(b, seed=b.seed + 1000)
    ratios = {}
    for kpi in ("ending_arr", "logo_retention", "grr", "nrr", "churned_arr"):
        p = paired_difference(a_res.kpi(kpi), b_res.kpi(kpi))
        u = unpaired_difference(a_res.kpi(kpi), independent.kpi(kpi))
        ratios[kpi] = (p["ci_hi"] - p["ci_lo"]) / (u["ci_hi"] - u["ci_lo"])
    print("paired / independent interval width:", {k: round(v, 3) for k, v in ratios.items()})
    assert ratios["ending_arr"] < 0.3
    assert ratios["logo_retention"] < 0.5
    assert np.median(list(ratios.values())) < 0.5


def test_paired_and_unpaired_intervals_by_hand():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    b = a + np.array([0.5, 0.4, 0.6, 0.5])
    p = paired_difference(a, b, level=0.9)
    assert p["diff"] == pytest.approx(0.5)
    half = 2.3533634 * np.std([0.5, 0.4, 0.6, 0.5], ddof=1) / 2  # t(0.95, 3)
    assert p["ci_hi"] - p["diff"] == pytest.approx(half, rel=1e-6)
    u = unpaired_difference(a, b, level=0.9)
    assert u["diff"] == pytest.approx(0.5)
    assert (u["ci_hi"] - u["ci_lo"]) > 5 * (p["ci_hi"] - p["ci_lo"])
    # NaN pairs are dropped, not counted as zero.
    assert paired_difference(np.array([1.0, np.nan, 2.0]), np.array([2.0, 5.0, 3.0]))["n"] == 2


def test_tables_and_summary(comparison):
    t = comparison.table()
    assert set(t["scenario"]) == {"tiny", "stronger"}
    assert set(t["scope"]) == {"all"}
    full = comparison.table(scope=None)
    assert {"enterprise", "smb"} <= set(full["scope"])
    d = comparison.differences(scope=None)
    assert {"scenario", "reference", "kpi", "scope", "diff", "ci_lo", "ci_hi", "distinguishable"} <= set(d.columns)
    basis = dict(zip(d["kpi"], d["basis"], strict=False))
    assert basis["csm_cost"] == "horizon total" and basis["ending_arr"] == "annual run-rate at horizon end"
    assert basis["grr"] == "" and set(full["basis"]) >= {"horizon total", ""}
    s = str(comparison.summary())
    assert "stronger − tiny" in s
    assert "stronger vs tiny:" in s and "differences distinguishable from noise" in s
    assert "csm_cost (horizon total)" in s and "ending_arr (annual run-rate at horizon end)" in s
    assert "Trade-off stronger vs tiny" in s and "CSM cost -" in s and "/yr" in s


def test_compare_needs_two(pair):
    with pytest.raises(PlanError, match="at least two"):
        compare([pair[0]])


def test_cli_compare_writes_folder(tmp_path, pair, capsys):
    a, b = pair
    fa = write_yaml(tmp_path / "a.yaml", a.model_dump(mode="json", exclude={"sweep"}))
    fb = write_yaml(tmp_path / "b.yaml", b.model_dump(mode="json", exclude={"sweep"}))
    out = tmp_path / "cmp"
    code = main(["compare", str(fa), str(fb), "-n", "3", "--jobs", "1", "--quiet", "--by-segment", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "distinguishable from noise" in printed
    assert {p.name for p in out.iterdir()} == {"comparison.csv", "differences.csv", "tradeoff.csv", "summary.txt",
                                                "manifest.json"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["replications"] == 3 and manifest["seed"] == a.seed
    assert "cssim" in manifest["versions"]
    # An existing folder is not replaced without --force.
    assert main(["compare", str(fa), str(fb), "-n", "2", "--jobs", "1", "-q", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_cli_compare_one_file_is_an_error(tmp_path, pair, capsys):
    fa = write_yaml(tmp_path / "a.yaml", pair[0].model_dump(mode="json", exclude={"sweep"}))
    assert main(["compare", str(fa)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cssim: error:") and "at least two" in err and "\n" not in err


def test_identical_rows_are_hidden_and_distinguishable_ones_come_first(scenario_dict):
    """A pod that costs more changes only cost KPIs: every other row is the same in every replication."""
    scenario_dict["replications"] = 4
    a = scenario_from_dict(scenario_dict)
    d = copy.deepcopy(scenario_dict)
    d["name"] = "pricier"
    d["team"]["pods"]["enterprise"]["cost_per_year"] = 200_000
    result = compare([a, scenario_from_dict(d)])
    shown = result.shown(scope=None)
    visible = shown[~shown["identical"]]
    assert set(visible["kpi"]) == {"csm_cost", "cost_per_retained_arr"}
    assert shown["identical"].sum() > 40
    text = str(result.summary(scope=None))
    body = [line.split()[0] for line in text.splitlines()[2:] if line and line.split()[0] in {k for k in shown["kpi"]}]
    assert set(body) == {"csm_cost", "cost_per_retained_arr"} and "grr" not in body
    assert f"{int(shown['identical'].sum())} of {len(shown)} rows hidden" in text
    # Distinguishable first: every distinguishable row precedes every other one.
    order = shown["distinguishable"].to_numpy()
    assert not (np.diff(order.astype(int)) > 0).any()
    # The trade-off: cost up, retained ARR unchanged (exactly 0, so no ARR per dollar is claimed beyond 0).
    t = result.tradeoff().iloc[0]
    assert t["d_cost_per_year"] > 0 and t["d_retained_arr_per_year"] == 0.0 and t["arr_per_cost_dollar"] == 0.0
    assert str(result.summary(scope=None, show_all=True)).count("\n") > text.count("\n") + 40
