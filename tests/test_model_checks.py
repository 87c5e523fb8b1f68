"""Model checks (cssim.model.checks): each fires on its case, and the shipped scenarios stay quiet.

Also: the offered load ρ against a hand computation, validate printing it,
warnings as one line ``cssim: warning: …``, ``--strict`` turning them into
errors, and a damaged sweep-cache entry being recomputed.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import pytest

from cssim import load_scenario, scenario_from_dict
from cssim.analysis.cache import BatchCache, batch_key
from cssim.cli import main
from cssim.core.errors import ModelWarning, ScenarioError
from cssim.model.checks import model_checks, offered_load

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "scenarios").glob("*.yaml"))

BASE = {
    "name": "base",
    "horizon_months": 12,
    "replications": 1,
    "segments": {"smb": {"initial_customers": 100, "arr": {"median": 5000}, "touch_model": "csm"}},
    "touch_models": {
        "csm": {"tasks": {"qbr": {"trigger": "cadence", "every_days": 91, "hours": 2, "deadline_days": 30}}}
    },
    "team": {"pods": {"p": {"segments": ["smb"], "headcount": 1}}},
}


def variant(**edits) -> dict:
    data = copy.deepcopy(BASE)
    for path, value in edits.items():
        node = data
        *head, last = path.split("__")
        for part in head:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return data


def findings(data: dict) -> list[str]:
    return model_checks(scenario_from_dict(data, "x.yaml"), "x.yaml")


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_scenarios_are_quiet(path, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scenario = load_scenario(path, strict=True)
    assert model_checks(scenario, str(path)) == []
    assert all(load.rho < 1 for load in offered_load(scenario).values())


def test_base_is_quiet():
    assert findings(BASE) == []


CHECKS = {
    "monthly_without_churn": (
        {"segments__smb__contract": {"billing": "monthly"}},
        ["segments.smb.lifecycle.churn", "monthly billing", "100 %"],
    ),
    "fitted_style_curve_on_annual": (
        {"segments__smb__lifecycle": {"churn": {"family": "weibull", "scale": 500, "shape": 0.8}}},
        ["segments.smb.lifecycle.churn", "churn curve (weibull)", "annual", "does not use it"],
    ),
    "csm_model_without_pod": ({"team": {"pods": {}}}, ["segments.smb", "'csm' needs CSM time (qbr)", "no pod"]),
    "routed_to_csm_without_pod": (
        {"team": {"pods": {}}, "segments__smb__touch_model": "tech",
         "touch_models__tech": {"tasks": {"n": {"trigger": "cadence", "every_days": 30, "hours": 0}}},
         "policy": {"routes": [{"segment": "smb", "arr_at_least": 4000, "touch_model": "csm"}]}},
        ["touch model 'csm' needs CSM time", "no pod"],
    ),
    "overloaded_pod": (
        {"touch_models__csm__tasks__qbr": {"trigger": "cadence", "every_days": 3, "hours": 2}},
        ["team.pods.p", "offered load ρ = 19.44", "touch_models.csm.tasks.qbr",
         "tasks without deadline_days (csm.qbr)"],
    ),
    "no_csms_at_all": ({"team__pods__p__headcount": 0}, ["team.pods.p", "ρ = ∞"]),
}


@pytest.mark.parametrize("case", sorted(CHECKS))
def test_each_check_fires_on_its_case(case):
    edits, fragments = CHECKS[case]
    found = findings(variant(**edits))
    assert len(found) == 1, found
    for fragment in fragments:
        assert fragment in found[0], f"{fragment!r} not in {found[0]}"
    assert found[0].startswith("x.yaml: ") and "\n" not in found[0]


def test_offered_load_by_hand():
    """100 customers × 4.0 QBRs a year (365.25/91) × 2 h against 1 CSM × 40 h × 0.6 × 52.18 weeks."""
    load = offered_load(scenario_from_dict(BASE))["p"]
    demand = 100 * 365.25 / 91 * 2
    capacity = 40 * 0.6 * 365.25 / 7
    assert load.demand_hours == pytest.approx(demand)
    assert load.capacity_hours == pytest.approx(capacity)
    assert load.rho == pytest.approx(demand / capacity)
    # A book cap limits who is served (the rest get no CSM: their tasks are missed, not queued).
    capped = offered_load(scenario_from_dict(variant(team__pods__p__book_cap=50)))["p"]
    assert capped.demand_hours == pytest.approx(demand / 2)
    # New logos: half the horizon's arrivals on average, plus one onboarding task each.
    grown = variant(segments__smb__new_logos_per_month=10,
                    touch_models__csm__tasks__kick={"trigger": "onboarding", "hours": 3})
    load = offered_load(scenario_from_dict(grown))["p"]
    assert load.task_hours["csm.qbr"] == pytest.approx((100 + 10 * 6) * 365.25 / 91 * 2)
    assert load.task_hours["csm.kick"] == pytest.approx(120 * 3)


def test_warnings_are_one_line_and_strict_makes_them_errors(tmp_path, capsys):
    import yaml

    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(variant(segments__smb__contract={"billing": "monthly"}, team__pods__p__headcount=0)))
    with pytest.warns(ModelWarning):
        load_scenario(path)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, strict=True)
    assert len(info.value.problems) == 2
    assert main(["validate", str(path)]) == 0
    out, err = capsys.readouterr()
    assert [line.split(": ")[0] for line in err.splitlines()] == ["cssim", "cssim"]
    assert all(line.startswith("cssim: warning: ") for line in err.splitlines())
    assert "offered load ρ = ∞" in out
    assert main(["validate", str(path), "--strict"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 2
    assert all(line.startswith("cssim: error: ") and line.endswith("(--strict)") for line in err.splitlines())


def test_validate_prints_the_offered_load_of_every_pod(capsys):
    assert main(["validate", str(REPO / "scenarios" / "baseline.yaml")]) == 0
    out = capsys.readouterr().out
    for pod in ("enterprise", "mid_market", "smb"):
        assert f"pod {pod}: offered load ρ = 0." in out


def test_damaged_cache_entry_is_recomputed(tmp_path):
    scenario = scenario_from_dict(BASE)
    cache = BatchCache(tmp_path)
    rep = {"seg": {"x": np.arange(4.0)}, "pod": {"y": np.ones(3)}}
    path = cache.put(scenario, [0], [rep])
    assert cache.get(scenario, [0])[0]["seg"]["x"].tolist() == [0, 1, 2, 3]
    # Values zeroed: the checksum no longer matches; the entry is removed and reported missing.
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["seg::x"] = np.zeros(4)
    np.savez(path, **arrays)
    assert cache.get(scenario, [0]) is None and not path.exists()
    # An array removed (and its checksum with it): the same.
    cache.put(scenario, [0], [rep])
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files if k != "pod::y"}
    np.savez(path, **arrays)
    assert cache.get(scenario, [0]) is None
    assert batch_key(scenario, [0]) in str(path)
