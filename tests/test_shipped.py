"""Shipped scenarios and data are found through the package, by name."""

import pytest

import cssim
from cssim.core.errors import ScenarioError
from cssim.shipped import example_path, notebook_data_path, scenario_names, scenario_path


def test_shipped_scenarios_load_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no checkout here: the name must resolve through the package
    assert {"baseline", "high_touch", "low_touch"} <= set(scenario_names())
    by_name = cssim.load_scenario("baseline")
    assert by_name == cssim.load_scenario(scenario_path("baseline"))
    assert cssim.load_scenario("high_touch").segments["mid_market"].touch_model == "high_touch"


def test_a_local_file_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "baseline").write_text("not: a scenario\n")
    with pytest.raises(ScenarioError, match="baseline"):
        cssim.load_scenario("baseline")


def test_unknown_name_lists_the_shipped_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ScenarioError, match="no shipped scenario of that name.*baseline"):
        cssim.load_scenario("nosuch")


def test_example_data_is_shipped():
    assert example_path("history.csv").stat().st_size > 1000
    assert notebook_data_path("churn_curve.yaml").is_file()
    with pytest.raises(FileNotFoundError, match="history.csv"):
        example_path("missing.csv")
