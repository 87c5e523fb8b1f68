"""Every figure renders to a PNG, with the labels it promises and the data it was given."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import copy

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from conftest import small_scenario_dict
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from cssim import plots, scenario_from_dict, simulate
from cssim.analysis.compare import ComparisonResults


@pytest.fixture(scope="module")
def results():
    return simulate(scenario_from_dict(small_scenario_dict()), replications=4)


@pytest.fixture(scope="module")
def other_results():
    data = copy.deepcopy(small_scenario_dict())
    data["name"] = "tiny_more_churn"
    data["segments"]["smb"]["lifecycle"]["churn"]["scale"] = 300
    return simulate(scenario_from_dict(data), replications=4)


def _png(ax, tmp_path, name) -> None:
    path = plots.save(ax, tmp_path / f"{name}.png")
    assert path.is_file()
    assert path.stat().st_size > 15_000  # a real figure, not an empty canvas


def _legend_texts(ax) -> list[str]:
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


def test_money_format():
    assert plots.money(1_234_567) == "$1.2M"
    assert plots.money(350_000) == "$350k"
    assert plots.money(-2_500_000) == "-$2.5M"
    assert plots.money(950) == "$950"


def test_no_pyplot_state_leak(results, tmp_path):
    before = plt.get_fignums()
    ax = plots.fan_chart(results)
    assert plt.get_fignums() == before
    assert isinstance(ax.figure, Figure)
    # rc settings of the cssim style apply only while drawing
    assert matplotlib.rcParams["axes.titleweight"] == matplotlib.rcParamsDefault["axes.titleweight"]


def test_fan_chart_median_and_bands_match_series(results, other_results, tmp_path):
    ax = plots.fan_chart([results, other_results], metric="arr")
    _png(ax, tmp_path, "fan")
    assert _legend_texts(ax) == ["tiny", "tiny_more_churn"]
    assert ax.get_ylabel() == "ARR ($)"
    assert ax.get_xlabel() == "Month end"
    assert "50 % and 90 %" in ax.get_title()
    lines = ax.get_lines()
    assert len(lines) == 2
    for line, res in zip(lines, [results, other_results]):
        expected = res.series("arr", level=0.9)["median"].to_numpy()
        np.testing.assert_allclose(line.get_ydata(), expected)
    # two bands per scenario; the 90 % band of the first scenario spans series lo..hi
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 4
    s90 = results.series("arr", level=0.9)
    ys = bands[0].get_paths()[0].vertices[:, 1]
    assert ys.min() == pytest.approx(s90["lo"].min())
    assert ys.max() == pytest.approx(s90["hi"].max())
    # currency on the y axis
    assert ax.yaxis.get_major_formatter()(2_500_000, 0) == "$2.5M"


def test_fan_chart_segment_and_given_ax(results, tmp_path):
    fig = Figure()
    ax0 = fig.add_subplot()
    ax = plots.fan_chart({"base": results}, metric="active", segment="smb", ax=ax0)
    assert ax is ax0
    assert _legend_texts(ax) == ["base"]
    assert ax.get_ylabel() == "Active customers (logos)"
    assert "smb" in ax.get_title()
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), results.series("active", segment="smb")["median"])


def test_fan_chart_accepts_comparison(results, other_results):
    cr = ComparisonResults(names=["a", "b"], results=[results, other_results])
    assert _legend_texts(plots.fan_chart(cr)) == ["a", "b"]


def test_waterfall_adds_up_and_matches_flows(results, tmp_path):
    table = plots.waterfall_table(results)
    v = table.set_index("step")["value"]
    m = results.monthly()
    reps = results.n_replications
    assert v["new"] == pytest.approx(m["new_arr"].sum() / reps)
    assert v["churn"] == pytest.approx(-m["churned_arr"].sum() / reps)
    assert v["contraction"] == pytest.approx(-m["contraction_arr"].sum() / reps)
    last = m[m["month"] == m["month"].max()]
    assert v["end"] == pytest.approx(last["arr"].sum() / reps)
    assert v.drop("end").sum() == pytest.approx(v["end"], rel=1e-9)
    assert v["winback"] > 0  # the small scenario has win-back

    ax = plots.arr_waterfall(results)
    _png(ax, tmp_path, "waterfall")
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["Start ARR", "New", "Win-back", "Expansion", "Contraction", "Churn", "End ARR"]
    assert ax.get_ylabel() == "ARR ($)"
    bars = ax.patches
    assert bars[0].get_height() == pytest.approx(v["start"])
    assert bars[-1].get_height() == pytest.approx(v["end"])
    assert bars[1].get_y() == pytest.approx(v["start"])  # new ARR floats on start ARR


def test_waterfall_sub_period_starts_where_previous_ends(results):
    first = plots.waterfall_table(results, months=(1, 6)).set_index("step")["value"]
    second = plots.waterfall_table(results, months=(7, 12)).set_index("step")["value"]
    assert second["start"] == pytest.approx(first["end"])
    with pytest.raises(ValueError, match="months"):
        plots.waterfall_table(results, months=(5, 99))


def test_waterfall_hides_zero_winback(results):
    class NoWinback:
        scenario = results.scenario

        def monthly(self):
            m = results.monthly()
            m["arr"] = m["arr"] - m.groupby(["replication", "segment"])["winback_arr"].cumsum()
            m["winback_arr"] = 0.0
            return m

    ax = plots.arr_waterfall(NoWinback())
    assert "Win-back" not in [t.get_text() for t in ax.get_xticklabels()]


def test_waterfall_refuses_inconsistent_ledger(results):
    class Broken:
        scenario = results.scenario

        def monthly(self):
            m = results.monthly()
            m.loc[m["month"] == 5, "new_arr"] += 1000.0
            return m

    with pytest.raises(ValueError, match="does not add up"):
        plots.arr_waterfall(Broken(), months=(1, 12))


def test_stage_occupancy_stacks_to_active(results, tmp_path):
    ax = plots.stage_occupancy(results)
    _png(ax, tmp_path, "stages")
    assert _legend_texts(ax) == ["Maturity", "Growth", "Onboarding", "Signing"]
    assert ax.get_ylabel() == "Active customers (logos)"
    # the top of the stack is the mean number of active customers
    top = ax.collections[-1].get_paths()[0].vertices[:, 1].max()
    m = results.monthly().groupby(["replication", "month"])["active"].sum().groupby("month").mean()
    assert top == pytest.approx(m.max())


def test_health_share(results, tmp_path):
    ax = plots.health_share(results)
    _png(ax, tmp_path, "health")
    assert _legend_texts(ax) == ["All customers", "enterprise", "smb"]
    assert ax.get_ylabel() == "At-risk share of active customers (%)"
    m = results.monthly().groupby(["replication", "month"])[["at_risk", "active"]].sum()
    share = (m["at_risk"] / m["active"]).unstack("month").median(axis=0).to_numpy()
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), share)


def test_csm_load_three_panels(results, tmp_path):
    axes = plots.csm_load(results)
    assert len(axes) == 3
    _png(axes, tmp_path, "load")
    assert axes[0].get_ylabel() == "Utilisation (%)"
    assert axes[1].get_ylabel() == "Backlog (tasks)"
    assert axes[2].get_ylabel() == "Missed (tasks / month)"
    assert _legend_texts(axes[0]) == [f"{p.replace('_', ' ')} pod" for p in results.pods]
    pods = results.pods_monthly()
    util = pods[pods["pod"] == results.pods[0]].pivot(index="replication", columns="month", values="utilisation")
    np.testing.assert_allclose(axes[0].get_lines()[0].get_ydata(), np.nanmedian(util.to_numpy(), axis=0))
    # missed touches of the pod = its segments' missed touches (mean over replications)
    m = results.monthly()
    segs = list(results.scenario.team.pods[results.pods[0]].segments)
    missed = m[m["segment"].isin(segs)].groupby(["replication", "month"])["tasks_missed"].sum().groupby("month").mean()
    np.testing.assert_allclose(axes[2].get_lines()[0].get_ydata(), missed.to_numpy())


def test_survival_vs_km(tmp_path):
    from lifelines import KaplanMeierFitter, WeibullFitter

    from cssim.model.curves import Weibull

    rng = np.random.default_rng(3)
    t = rng.weibull(1.3, 400) * 365.0
    observed = t < 600
    t = np.minimum(t, 600)
    km = KaplanMeierFitter().fit(t, observed)
    wf = WeibullFitter().fit(t, observed)
    curve = Weibull(scale=365.0, shape=1.3)
    ax = plots.survival_vs_km(km, {"input": curve, "lifelines Weibull": wf})
    _png(ax, tmp_path, "km")
    assert _legend_texts(ax) == ["Kaplan–Meier 95 % CI", "Kaplan–Meier", "input", "lifelines Weibull"]
    assert ax.get_xlabel() == "Time (days)"
    km_line, input_line = ax.get_lines()[0], ax.get_lines()[1]
    np.testing.assert_allclose(km_line.get_ydata(), km.survival_function_.iloc[:, 0].to_numpy())
    np.testing.assert_allclose(input_line.get_ydata(), curve.survival(input_line.get_xdata()))
    # raw arrays and a plain table work too
    ax2 = plots.survival_vs_km((t, observed), lambda x: np.exp(-x / 400.0))
    np.testing.assert_allclose(ax2.get_lines()[0].get_ydata(), km.survival_function_.iloc[:, 0].to_numpy())
    with pytest.raises(ValueError, match="missing columns"):
        plots.survival_vs_km(pd.DataFrame({"t": [0, 1]}), curve)


def _projection() -> pd.DataFrame:
    periods = np.arange(6)
    rows = []
    for model, rate in (("sbg", 0.8), ("geometric", 0.75)):
        proj = 100 * rate**periods
        rows.append(pd.DataFrame({
            "cohort": "2020", "period": periods, "observed": [100, 81, 65, 52, np.nan, np.nan],
            "projected": proj, "lo": proj * 0.9, "hi": proj * 1.1, "model": model, "calibration": periods <= 3,
        }))
    return pd.concat(rows, ignore_index=True)


def test_cohort_projection(tmp_path):
    p = _projection()
    ax = plots.cohort_projection(p)
    _png(ax, tmp_path, "cohort")
    # Models are named as in the fit report, not by their codes.
    assert _legend_texts(ax) == ["observed", "sBG (projected)", "constant hazard (projected)",
                                 "fit (calibration periods)"]
    obs = ax.get_lines()[0]
    np.testing.assert_allclose(obs.get_ydata(), [100, 81, 65, 52])
    fit_line, ahead = ax.get_lines()[1], ax.get_lines()[2]
    np.testing.assert_allclose(fit_line.get_xdata(), np.arange(4))
    np.testing.assert_allclose(fit_line.get_ydata(), 100 * 0.8 ** np.arange(4))
    # Past the fit the projection continues from the customers observed at its end: no jump.
    np.testing.assert_allclose(ahead.get_xdata(), [3, 4, 5])
    np.testing.assert_allclose(ahead.get_ydata(), [52, 100 * 0.8**4, 100 * 0.8**5])
    geo_ahead = ax.get_lines()[4]
    assert geo_ahead.get_xdata()[0] == 3 and geo_ahead.get_ydata()[0] == 52
    assert ax.get_xlabel() == "Period since acquisition"
    one = plots.cohort_projection(p, model="geometric")
    assert _legend_texts(one) == ["projected (constant hazard)", "observed", "fit (calibration periods)"]
    np.testing.assert_allclose(one.get_lines()[0].get_ydata(), 100 * 0.75 ** np.arange(4))
    two = pd.concat([p[p.model == "sbg"], p[p.model == "sbg"].assign(cohort="2021")])
    assert _legend_texts(plots.cohort_projection(two)) == [
        "cohort 2020: projected", "cohort 2020: observed", "cohort 2021: projected", "cohort 2021: observed",
        "fit (calibration periods)"]
    whole = plots.cohort_projection(p.drop(columns=["calibration"]), model="sbg")  # no split without the column
    np.testing.assert_allclose(whole.get_lines()[0].get_ydata(), 100 * 0.8 ** np.arange(6))
    with pytest.raises(ValueError, match="missing columns"):
        plots.cohort_projection(p.drop(columns=["hi"]))


def _frontier() -> pd.DataFrame:
    return pd.DataFrame({
        "value": [2, 3, 4, 6],
        "mean": [0.82, 0.86, 0.89, 0.91],
        "lo": [0.79, 0.84, 0.87, 0.90],
        "hi": [0.85, 0.88, 0.91, 0.92],
        "cost": [240e3, 360e3, 480e3, 720e3],
    })


def test_headcount_frontier(tmp_path):
    ax = plots.headcount_frontier(_frontier(), kpi="grr", target=0.88, chosen=4)
    _png(ax, tmp_path, "frontier")
    assert ax.get_xlabel() == "CSM headcount"
    assert ax.get_ylabel() == "GRR (%)"
    twin = [a for a in ax.figure.axes if a is not ax]
    assert len(twin) == 1 and twin[0].get_ylabel() == "CSM cost per year ($)"
    np.testing.assert_allclose(twin[0].get_lines()[0].get_ydata(), _frontier()["cost"])
    texts = _legend_texts(ax)
    assert "target 88 %" in texts and "chosen: 4" in texts
    star = [line for line in ax.get_lines() if line.get_marker() == "*"]
    assert len(star) == 1 and star[0].get_ydata()[0] == pytest.approx(0.89)
    target = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert target[0].get_ydata()[0] == pytest.approx(0.88)


def test_headcount_frontier_plan_columns():
    t = _frontier().rename(columns={"lo": "ci_lo", "hi": "ci_hi", "cost": "csm_cost_per_year"})
    ax = plots.headcount_frontier(t)
    assert ax.get_lines()[0].get_ydata().tolist() == [0.82, 0.86, 0.89, 0.91]
    with pytest.raises(ValueError, match="missing columns"):
        plots.headcount_frontier(t.drop(columns=["csm_cost_per_year"]))


def test_forest_plain_and_comparison(results, other_results, tmp_path):
    d = pd.DataFrame({"kpi": ["grr", "nrr"], "mean": [-0.02, 0.01], "lo": [-0.03, -0.01], "hi": [-0.01, 0.03]})
    ax = plots.forest(d)
    _png(ax, tmp_path, "forest_plain")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["GRR", "NRR"]
    assert ax.get_xlabel() == "Difference (percentage points)"
    zero = [line for line in ax.get_lines() if list(line.get_xdata()) == [0.0, 0.0]]
    assert zero, "no zero line"
    points = ax.get_lines()[0]
    np.testing.assert_allclose(points.get_xdata(), [-2.0, 1.0])  # in points, GRR on top
    assert points.get_ydata()[0] > points.get_ydata()[1]

    cr = ComparisonResults(names=["tiny", "worse"], results=[results, other_results])
    diffs = cr.differences()
    ax = plots.forest(diffs)
    _png(ax, tmp_path, "forest")
    assert _legend_texts(ax) == ["worse − tiny"]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == "GRR" and "Ending ARR" not in labels
    grr = diffs[(diffs.kpi == "grr") & (diffs.scope == "all")]["diff"].iloc[0]
    assert ax.get_lines()[0].get_xdata()[0] == pytest.approx(grr * 100)
    money = plots.forest(diffs, kpis=plots.FOREST_MONEY_KPIS)
    assert money.get_xlabel() == "Difference ($)"


def test_forest_scope(results, other_results):
    cr = ComparisonResults(names=["tiny", "worse"], results=[results, other_results])
    diffs = cr.differences(scope=None)
    ax = plots.forest(diffs, scope="smb")
    assert "smb" in ax.get_title()
    grr = diffs[(diffs.kpi == "grr") & (diffs.scope == "smb")]["diff"].iloc[0]
    assert ax.get_lines()[0].get_xdata()[0] == pytest.approx(grr * 100)


def test_headcount_frontier_chosen_between_drawn_values():
    ax = plots.headcount_frontier(_frontier(), chosen=5)
    assert "chosen: 5" in _legend_texts(ax)
    marks = [line for line in ax.get_lines() if line.get_label() == "chosen: 5"]
    assert list(marks[0].get_xdata()) == [5, 5]


def test_waterfall_segments_add_up_to_total(results):
    total = plots.waterfall_table(results, months=(3, 9)).set_index("step")["value"]
    parts = sum(plots.waterfall_table(results, months=(3, 9), segment=s).set_index("step")["value"]
                for s in results.segments)
    pd.testing.assert_series_equal(parts, total, check_names=False)
    ax = plots.arr_waterfall(results, months=(3, 9), segment="smb")
    assert "smb" in ax.get_title() and "Mar" in ax.get_title() and "Sep" in ax.get_title()



def test_results_plot_methods_delegate_to_the_plot_library(results, tmp_path):
    """``SimulationResults.plot_*`` draw what the module functions draw, and return their Axes."""
    fan = results.plot_fan("arr")
    np.testing.assert_allclose(fan.get_lines()[0].get_ydata(), results.series("arr")["median"].to_numpy())
    _png(fan, tmp_path, "method_fan")
    bridge = results.plot_waterfall()
    reference = plots.arr_waterfall(results)
    assert [p.get_height() for p in bridge.patches] == [p.get_height() for p in reference.patches]
    stages = results.plot_stages()
    assert len(stages.collections) == len(plots.stage_occupancy(results).collections)
    load = results.plot_csm_load()
    assert len(np.atleast_1d(load)) == 3
