"""The planning page's logic without a browser: variants from control values, runs, cache, tables, errors."""

from __future__ import annotations

import copy

import pytest
from conftest import small_scenario_dict, write_yaml

from cssim import load_scenario, simulate
from cssim.analysis.whatif import HEADLINE_KPIS, Controls, Planner, route_label
from cssim.cli import main
from cssim.core.errors import PlanError
from cssim.model.loader import scenario_hash
from cssim.shipped import scenario_names

REPS = 3


@pytest.fixture
def scenario_file(tmp_path):
    data = small_scenario_dict()
    data["policy"] = {"routes": [{"segment": "smb", "arr_below": 3000, "touch_model": "tech_touch"}]}
    return write_yaml(tmp_path / "tiny.yaml", data)


@pytest.fixture
def planner(scenario_file):
    return Planner(str(scenario_file), replications=REPS, jobs=1)


def test_start_controls_read_from_the_scenario(planner):
    assert planner.start == Controls(headcount={"enterprise": 2}, touch_model={"enterprise": "high_touch",
                                                                                "smb": "tech_touch"},
                                     routes=("tech_touch",), replications=REPS)
    assert planner.routes == ["smb under $3.0k ARR"]
    assert route_label({"segment": None, "arr_at_least": 100_000, "arr_below": None}) == "any segment from $100.0k ARR"


def test_variant_is_the_scenario_with_those_fields(planner, scenario_file):
    c = planner.controls(headcount={"enterprise": 5}, touch_model={"smb": "high_touch"}, routes=["high_touch"])
    variant, findings = planner.scenario(c)
    assert variant.team.pods["enterprise"].headcount == 5
    assert variant.segments["smb"].touch_model == "high_touch"
    assert variant.policy.routes[0].touch_model == "high_touch"
    assert variant.policy.routes[0].arr_below == 3000  # the rest of the route is kept
    assert any("smb" in line for line in findings)  # high-touch SMB with no pod serving it
    assert c.changes(planner.start) == ["enterprise CSMs 2 → 5", "smb: tech_touch → high_touch",
                                        "route 1: tech_touch → high_touch"]


def test_what_if_numbers_are_simulate_of_that_setting(planner, scenario_file):
    c = planner.controls(headcount={"enterprise": 0})
    w = planner.what_if(c)
    expected = simulate(load_scenario(scenario_file, {"team.pods.enterprise.headcount": 0}), replications=REPS)
    table = w.kpi_table().set_index("kpi")
    means = expected.kpis(scope="all").set_index("kpi")
    for kpi in HEADLINE_KPIS:
        assert table.loc[kpi, "mean"] == means.loc[kpi, "mean"]
        assert table.loc[kpi, "lo"] == means.loc[kpi, "lo"]
    start = simulate(load_scenario(scenario_file), replications=REPS)
    # The difference is paired by replication (the same customers in both runs).
    d = expected.kpi("csm_cost") - start.kpi("csm_cost")
    assert table.loc["csm_cost", "diff"] == pytest.approx(d.mean(), rel=1e-12)
    assert table.loc["csm_cost", "distinguishable"]  # no CSMs cost less in every replication
    assert "csm_cost" in w.noise_note().split("Within noise")[0]


def test_earlier_setting_comes_from_the_cache(planner):
    first = planner.what_if(planner.controls(headcount={"enterprise": 1}))
    assert not first.cached
    planner.what_if(planner.controls(headcount={"enterprise": 3}))
    again = planner.what_if(planner.controls(headcount={"enterprise": 1}))
    assert again.cached and again.results is first.results
    assert planner.cached(planner.controls(headcount={"enterprise": 1}))
    assert not planner.cached(planner.controls(headcount={"enterprise": 4}))


def test_cache_key_is_the_resolved_scenario_hash(planner):
    w = planner.what_if(planner.controls(headcount={"enterprise": 1}))
    assert f'data-hash="{scenario_hash(w.scenario)}"' in w.table_html()
    # Other replications are another scenario: not answered from the 3-replication run.
    more = planner.what_if(planner.controls(headcount={"enterprise": 1}, replications=4))
    assert not more.cached and more.results.n_replications == 4


def test_the_start_compared_with_itself(planner):
    w = planner.what_if(planner.start)
    assert w.changes == []
    assert "no difference" in w.noise_note()
    assert (w.kpi_table()["diff"].fillna(0) == 0).all()
    assert set(w.formatted_table()["verdict"]) == {"unchanged"}


def test_frontier_marks_settings_nobody_beats(planner):
    planner.what_if(planner.start)
    planner.what_if(planner.controls(headcount={"enterprise": 0}))
    planner.what_if(planner.controls(headcount={"enterprise": 6}))
    f = planner.frontier()
    assert list(f["setting"]) == ["start", "enterprise CSMs 2 → 0", "enterprise CSMs 2 → 6"]
    cost_of = f.set_index("setting")["cost_per_year"]
    assert cost_of["enterprise CSMs 2 → 0"] < cost_of["start"] < cost_of["enterprise CSMs 2 → 6"]  # CSMs cost
    cost, kept = f["cost_per_year"].to_numpy(), f["retained_arr"].to_numpy()
    for i, efficient in enumerate(f["efficient"]):
        beaten = any(cost[j] <= cost[i] and kept[j] >= kept[i] and j != i for j in range(len(f)))
        assert efficient == (not beaten)
    from cssim import plots

    ax = plots.cost_frontier(f, current="enterprise CSMs 2 → 6")
    assert "this what-if" in [t.get_text() for t in ax.get_legend().get_texts()]


@pytest.mark.parametrize("kwargs, message", [
    ({"headcount": {"nope": 1}}, "no pod 'nope'"),
    ({"headcount": {"enterprise": -1}}, "not a whole number of CSMs"),
    ({"headcount": {"enterprise": 2.5}}, "not a whole number of CSMs"),
    ({"touch_model": {"smb": "white_glove"}}, "no touch model 'white_glove'"),
    ({"routes": ["tech_touch", "tech_touch"]}, "has 1 routes"),
    ({"replications": 1}, "replications: 1 is not allowed"),
])
def test_bad_control_values_are_one_line(planner, kwargs, message):
    with pytest.raises(PlanError, match=message) as exc:
        planner.controls(**kwargs)
    assert "\n" not in str(exc.value)


def test_shipped_name_and_scenario_object(small_scenario):
    assert Planner("baseline").name == "baseline"
    p = Planner(small_scenario, replications=2, jobs=1)
    assert p.start.headcount == {"enterprise": 2}


def test_page_renders_without_a_browser(scenario_file):
    from cssim.app import Planners, PlanningPage

    planners = Planners(REPS, 1)
    page = PlanningPage(planners, str(scenario_file), [str(scenario_file), "baseline"])
    page.headcount["enterprise"].value = 4
    controls = page.current()
    assert controls.headcount == {"enterprise": 4}
    parts = page.render(planners.what_if(page.planner, controls))
    assert 'id="kpi-table"' in parts["table"] and "enterprise CSMs 2 → 4" in parts["status"]
    page.show(parts)
    assert page.table.object == parts["table"]


def test_serve_listens_on_localhost_only(monkeypatch, scenario_file):
    import panel as pn

    from cssim import app

    seen = {}

    class Stop(Exception):
        pass

    def fake_serve(panels, **kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(pn, "serve", fake_serve)
    with pytest.raises(Stop):
        app.serve(str(scenario_file), replications=2, jobs=1, announce=lambda *_: None)
    assert seen["address"] == "127.0.0.1"
    assert set(seen["websocket_origin"]) == {f"127.0.0.1:{seen['port']}", f"localhost:{seen['port']}"}


@pytest.mark.parametrize("argv, message", [
    (["app", "no_such_scenario.yaml"], "no_such_scenario.yaml"),
    (["app", "baseline", "--port", "70000"], "70,000 is not allowed"),
    (["app", "baseline", "-n", "1"], "1 is not allowed"),
])
def test_cli_refuses_in_one_line(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_cli_port_in_use_is_one_line(capsys, scenario_file):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["app", str(scenario_file), "--port", str(port), "-n", "2", "-j", "1", "--no-browser"]) == 2
    err = capsys.readouterr().err
    assert f"port {port}: cannot listen on 127.0.0.1" in err and "Traceback" not in err


def test_scenario_copy_is_not_mutated(scenario_file):
    data = small_scenario_dict()
    before = copy.deepcopy(data)
    p = Planner(str(scenario_file), replications=2, jobs=1)
    p.scenario(p.controls(headcount={"enterprise": 9}))
    assert p.scenario(p.start)[0].team.pods["enterprise"].headcount == 2
    assert data == before


def test_page_refuses_an_emptied_box_and_switches_scenario(scenario_file, tmp_path):
    import asyncio
    from types import SimpleNamespace

    from cssim.app import Planners, PlanningPage

    other = small_scenario_dict()
    other["name"] = "other"
    other["team"]["pods"]["enterprise"]["headcount"] = 5
    other_file = write_yaml(tmp_path / "other.yaml", other)
    planners = Planners(2, 1)
    page = PlanningPage(planners, str(scenario_file), [str(scenario_file), str(other_file)])
    page.replications.value = 1  # below what a paired interval needs
    asyncio.run(page._changed())
    assert page.status.object.startswith("**Not run:**") and "replications: 1 is not allowed" in page.status.object
    assert "\n" not in page.status.object
    asyncio.run(page._scenario_changed(SimpleNamespace(new=str(other_file))))
    assert page.planner.name == "other" and page.headcount["enterprise"].value == 5
    assert "**other** — changes: none" in page.status.object
    assert 'data-replications="2"' in page.table.object


def test_a_one_replication_scenario_still_opens(tmp_path):
    data = small_scenario_dict()
    data["replications"] = 1
    p = Planner(str(write_yaml(tmp_path / "one.yaml", data)), jobs=1)
    assert p.start.replications == 2


@pytest.mark.parametrize("name", scenario_names())
def test_every_shipped_scenario_opens_on_the_page(name):
    """The page's scenario list is the shipped scenarios: each gives controls and a valid start."""
    p = Planner(name, jobs=1)
    scenario, _ = p.scenario(p.start)
    assert scenario.sweep is None and scenario.sensitivity is None  # the page runs the scenario, not its blocks
    assert set(p.start.headcount) == set(scenario.team.pods)
    assert len(p.start.routes) == len(scenario.policy.routes)
