"""Headcount planning: targets, the bracket-and-bisect search, and an answer known by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import write_yaml
from hypothesis import given
from hypothesis import strategies as st

from cssim import PlanError, plan, scenario_from_dict
from cssim.analysis.plan import Target, kpi_at_confidence, min_replications, parse_target
from cssim.cli import main

HOURS_PER_WEEK = 40.0
EVERY_DAYS = 30.0
CUSTOMERS = 30


def capacity_scenario(task_hours: float, headcount: int) -> dict:
    """One pod, one segment, one cadence task and nothing else that needs CSM time.

    Demand is ``CUSTOMERS × task_hours`` hours every ``EVERY_DAYS`` days; one CSM
    gives ``HOURS_PER_WEEK / 7`` hours a day, all customer-facing, with no ramp,
    attrition or hires. Below the needed headcount the queue grows until tasks
    pass their 7-day deadline (missed, about 1 − capacity/demand of them); at
    it, capacity covers demand.
    """
    return {
        "name": "capacity",
        "horizon_months": 12,
        "seed": 11,
        "replications": 11,
        "segments": {
            "acct": {
                "initial_customers": CUSTOMERS,
                "arr": {"median": 20_000, "sigma": 0.0},
                "contract": {"term_months": 60},
                "touch_model": "named",
                "lifecycle": {"at_risk": {"family": "never"}, "champion_change_per_year": 0.0},
            }
        },
        "touch_models": {
            "named": {
                "tasks": {
                    "review": {"trigger": "cadence", "every_days": EVERY_DAYS, "hours": task_hours, "deadline_days": 7}
                }
            }
        },
        "team": {
            "pods": {
                "acct": {
                    "segments": ["acct"],
                    "headcount": headcount,
                    "hours_per_week": HOURS_PER_WEEK,
                    "customer_facing_share": 1.0,
                    "cost_per_year": 100_000,
                }
            }
        },
    }


def needed(task_hours: float) -> int:
    demand_per_day = CUSTOMERS * task_hours / EVERY_DAYS
    return math.ceil(demand_per_day / (HOURS_PER_WEEK / 7.0))


def hours_for(k: int) -> float:
    """Task hours that make demand k − ½ CSMs: k CSMs are needed, k − 1 fall short by a clear margin."""
    return (k - 0.5) * (HOURS_PER_WEEK / 7.0) * EVERY_DAYS / CUSTOMERS


@pytest.mark.parametrize("k, start", [(3, 1), (5, 9), (2, 0)])
def test_plan_finds_the_headcount_known_by_construction(k, start):
    task_hours = hours_for(k)
    assert needed(task_hours) == k
    scenario = scenario_from_dict(capacity_scenario(task_hours, start))
    result = plan(scenario, "touch_miss_rate <= 0.02", over="team.pods.acct.headcount", confidence=0.8, low=0, high=30)
    assert result.answer == k
    rows = result.table().set_index("value")
    assert rows.loc[k, "meets"] and rows.loc[k, "share_met"] == 1.0
    assert not rows.loc[k - 1, "meets"] and rows.loc[k - 1, "share_met"] == 0.0
    assert rows.loc[k - 1, "mean"] > 0.05  # a real capacity shortfall, not a borderline
    # Far fewer values simulated than a full grid over 0..30 (31 values).
    assert result.n_evaluated <= 8
    assert len(set(result.evaluations)) == result.n_evaluated
    # Cost grows with headcount: 100k per CSM per year.
    assert rows.loc[k, "csm_cost_per_year"] - rows.loc[k - 1, "csm_cost_per_year"] == pytest.approx(100_000, rel=1e-6)
    assert "Smallest team.pods.acct.headcount meeting touch_miss_rate <= 0.02" in str(result.summary())
    assert "touch_miss_rate (all customers)" in str(result.summary())


def test_mean_criterion_agrees_on_a_clear_threshold():
    scenario = scenario_from_dict(capacity_scenario(hours_for(3), 4))
    result = plan(scenario, "touch_miss_rate < 2%", over="team.pods.acct.headcount", criterion="mean", high=12)
    assert result.answer == 3


def test_common_random_numbers_across_values():
    scenario = scenario_from_dict(capacity_scenario(hours_for(3), 1))
    result = plan(scenario, "touch_miss_rate <= 0.02", over="team.pods.acct.headcount", high=10)
    arr = [res.kpi("new_arr") for res in result.results.values()]
    ending = [res.kpi("ending_logos") for res in result.results.values()]
    for a, e in zip(arr[1:], ending[1:], strict=True):
        np.testing.assert_array_equal(a, arr[0])
        np.testing.assert_array_equal(e, ending[0])


def test_unreachable_target_returns_none_and_exit_1(tmp_path, capsys):
    scenario = scenario_from_dict(capacity_scenario(hours_for(3), 1))
    result = plan(scenario, "touch_miss_rate <= 0.02", over="team.pods.acct.headcount", high=2)
    assert result.answer is None
    assert "No value of team.pods.acct.headcount in [0, 2]" in str(result.summary())
    path = write_yaml(tmp_path / "cap.yaml", capacity_scenario(hours_for(3), 1))
    out = tmp_path / "plan"
    code = main(["plan", str(path), "--target", "touch_miss_rate <= 0.02", "--over", "team.pods.acct.headcount",
                 "--max", "2", "--jobs", "1", "-q", "--out", str(out)])
    assert code == 1
    assert (out / "plan.csv").is_file() and (out / "manifest.json").is_file()


def test_cli_plan_prints_answer(tmp_path, capsys):
    path = write_yaml(tmp_path / "cap.yaml", capacity_scenario(hours_for(3), 1))
    code = main(["plan", str(path), "--target", "touch_miss_rate <= 0.02", "--over", "team.pods.acct.headcount",
                 "--confidence", "0.9", "-n", "22", "--jobs", "1", "-q"])
    assert code == 0
    assert "meeting touch_miss_rate <= 0.02 (at least 90% of replications meet it): 3" in capsys.readouterr().out


@pytest.mark.parametrize(
    "text, expected",
    [
        ("grr >= 0.90", Target("grr", ">=", 0.9)),
        ("grr>=90%", Target("grr", ">=", 0.9)),
        ("touch_miss_rate[smb] < 0.05", Target("touch_miss_rate", "<", 0.05, "smb")),
        ("  nrr > 1.0 ", Target("nrr", ">", 1.0)),
        ("csm_cost <= 1e6", Target("csm_cost", "<=", 1e6)),
    ],
)
def test_parse_target(text, expected):
    assert parse_target(text) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("gr >= 0.9", "unknown KPI 'gr'; did you mean 'grr'?"),
        ("grr == 0.9", "bad comparison operator '=='"),
        ("grr => 0.9", "bad comparison operator '=>'"),
        ("grr != 0.9", "bad comparison operator '!='"),
        ("grr >= ninety", "'ninety' is not a number"),
        ("grr >=", "cannot read it"),
        ("grr 0.9", "cannot read it"),
        ("", "target: empty"),
        ("grr >= nan", "finite number"),
    ],
)
def test_malformed_targets(text, message):
    with pytest.raises(PlanError) as info:
        parse_target(text)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_target_met_treats_nan_as_not_met():
    t = Target("grr", ">=", 0.9)
    assert t.met(np.array([0.95, np.nan, 0.85])).tolist() == [True, False, False]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--target", "grr == 0.9", "--over", "team.pods.acct.headcount"], "bad comparison operator"),
        (["--target", "grrr >= 0.9", "--over", "team.pods.acct.headcount"], "unknown KPI"),
        (["--target", "grr[nosuch] >= 0.9", "--over", "team.pods.acct.headcount"], "unknown scope 'nosuch'"),
        (["--target", "grr >= 0.9", "--over", "team.pods.acct.headcnt"], "did you mean 'headcount'?"),
        (["--target", "grr >= 0.9", "--over", "team.pods.acct.hours_per_week"], "expected an integer field"),
        (["--target", "grr >= 0.9", "--over", "seed"], "cannot search over 'seed'"),
        (["--target", "grr >= 0.9", "--over", "team.pods.acct.headcount", "--min", "5", "--max", "2"], "above --max"),
        (["--target", "grr >= 0.9", "--over", "team.pods.acct.headcount", "--min", "-3"], "not a valid scenario"),
    ],
)
def test_cli_plan_errors_are_one_line_exit_2(tmp_path, capsys, args, message):
    # Enough CSMs that the scenario itself draws no model-check warning: only the error is printed.
    path = write_yaml(tmp_path / "cap.yaml", capacity_scenario(hours_for(3), 5))
    assert main(["plan", str(path), *args, "--jobs", "1", "-q", "-n", "11"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cssim: error:") and err.count("\n") == 1 and message in err


def test_kpi_at_confidence_on_a_constructed_case():
    values = np.array([0.95, 0.81, 0.90, 0.84, np.nan, 0.88, 0.92, 0.86, 0.83, 0.97])
    # At least 80 % (8 of 10) of replications reach x: the 8th best, NaN counting as the worst.
    at = kpi_at_confidence(Target("grr", ">=", 0.85), "share", 0.8, values)
    assert at == 0.83
    assert (Target("grr", ">=", at).met(values).mean()) >= 0.8
    assert Target("grr", ">=", 0.84).met(values).mean() < 0.8  # one notch higher is not met in 80 %
    # Lower is better: at most x in 80 % of replications: the 8th smallest.
    assert kpi_at_confidence(Target("touch_miss_rate", "<=", 0.1), "share", 0.8, values) == 0.95
    # The mean criterion: the one-sided t-bound (undefined with a NaN replication).
    assert np.isnan(kpi_at_confidence(Target("grr", ">=", 0.85), "mean", 0.8, values))
    finite = values[np.isfinite(values)]
    from scipy import stats
    bound = finite.mean() - stats.t.ppf(0.8, finite.size - 1) * finite.std(ddof=1) / np.sqrt(finite.size)
    assert kpi_at_confidence(Target("grr", ">=", 0.85), "mean", 0.8, finite) == pytest.approx(bound)


def test_plan_table_reports_the_kpi_met_at_confidence_per_value():
    scenario = scenario_from_dict(capacity_scenario(hours_for(3), 1))
    result = plan(scenario, "touch_miss_rate <= 0.02", over="team.pods.acct.headcount", high=10)
    target = result.target
    for value, res in result.results.items():
        row = result.table().set_index("value").loc[value]
        v = np.sort(res.kpi("touch_miss_rate"))
        assert row["kpi_at_confidence"] == v[math.ceil(0.8 * v.size) - 1]  # 9th smallest of 11
        assert row["meets"] == (row["kpi_at_confidence"] <= target.value)
    # Marginal ARR per extra CSM comes with a paired interval around it.
    t = result.table().dropna(subset=["marginal_arr_per_csm"])
    assert len(t) and (t["marginal_arr_per_csm_lo"] <= t["marginal_arr_per_csm"]).all()
    assert (t["marginal_arr_per_csm"] <= t["marginal_arr_per_csm_hi"]).all()


def test_a_lever_that_does_not_move_the_kpi_is_detected_early(tmp_path, capsys):
    # The pod's tasks have no effect on churn or renewal: GRR cannot respond to its headcount.
    data = capacity_scenario(hours_for(3), 2)
    data["segments"]["acct"]["contract"] = {"term_months": 12}
    data["segments"]["acct"]["renewal"] = {"healthy": 0.9, "at_risk": 0.5}
    scenario = scenario_from_dict(data)
    result = plan(scenario, "grr >= 0.99", over="team.pods.acct.headcount", low=0, high=30)
    assert result.answer is None and result.no_response
    assert result.evaluations == [2, 30]  # the start and the far end, not the 31 values of the range
    assert result.response["diff"] == 0.0
    text = str(result.summary())
    assert "This lever does not move this KPI" in text and "grr (all customers)" in text
    assert "Pod acct serves acct" in text and "grr[acct]" in text
    path = write_yaml(tmp_path / "flat.yaml", data)
    code = main(["plan", str(path), "--target", "grr >= 0.99", "--over", "team.pods.acct.headcount", "--jobs", "1",
                 "-q"])
    assert code == 1 and "does not move this KPI" in capsys.readouterr().out


@pytest.mark.parametrize("args, needed", [(["-n", "1"], 11), (["-n", "10"], 11),
                                          (["--confidence", "0.9", "-n", "21"], 22),
                                          (["--criterion", "mean", "-n", "1"], 2)])
def test_too_few_replications_are_refused_with_the_number_needed(tmp_path, capsys, args, needed):
    path = write_yaml(tmp_path / "cap.yaml", capacity_scenario(hours_for(3), 1))
    code = main(["plan", str(path), "--target", "touch_miss_rate <= 0.02", "--over", "team.pods.acct.headcount",
                 "--jobs", "1", "-q", *args])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and f"use at least {needed} (-n {needed})" in err
    assert min_replications(0.8) == 11 and 0.8**11 <= 0.1 < 0.8**10


@given(
    values=st.lists(st.one_of(st.floats(0.0, 1.0), st.just(float("nan"))), min_size=1, max_size=40),
    threshold=st.floats(0.0, 1.0),
    confidence=st.floats(0.05, 0.95),
    op=st.sampled_from([">=", "<=", ">", "<"]),
)
def test_the_kpi_at_confidence_decides_the_share_criterion(values, threshold, confidence, op):
    """A value meets the target exactly when its KPI at the chosen confidence does (NaN never meets)."""
    from cssim.analysis.plan import _meets

    v = np.array(values)
    target = Target("grr", op, threshold)
    at = kpi_at_confidence(target, "share", confidence, v)
    assert _meets(target, "share", confidence, v) == bool(np.isfinite(at) and target.met(np.array([at]))[0])
