"""Estimation uncertainty beyond curves: renewal coefficients and touch hazard ratios drawn per replication.

A forecast that draws the churn curve but always uses the point estimate of
"the renewal touch doubles the odds" still overstates its certainty. These
tests check that renewal models (``renewal.uncertainty``, or a fitted renewal
model from ``cssim fit``) and touch effects (``effects.intervals``) are drawn
once per replication from their stated sampling distribution, from streams of
their own, and that the draws reach the engine and widen the intervals.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import small_scenario_dict

from cssim import ScenarioError, load_scenario, scenario_from_dict, simulate
from cssim.analysis.decompose import decompose
from cssim.model.loader import fitted_renewal
from cssim.model.scenario import Z95, RenewalSpec
from cssim.model.uncertainty import replication_effects, replication_renewal
from cssim.sim.engine import Engine

LOGIT93 = math.log(0.93 / 0.07)


def _scenario(**top) -> object:
    d = small_scenario_dict()
    d.update(top)
    return scenario_from_dict(d, "s.yaml")


def _with_effect_interval(low=0.5, high=2.0, **top):
    d = small_scenario_dict()
    tasks = d["touch_models"]["high_touch"]["tasks"]
    tasks["check_in"]["effects"] = {"at_risk": 0.7, "intervals": {"at_risk": [0.5, 0.98]}}
    tasks["renewal_prep"]["effects"] = {
        "renewal_odds": 1.0 * (low * high) ** 0.5, "intervals": {"renewal_odds": [low, high]}}
    d.update(top)
    return scenario_from_dict(d, "s.yaml")


def _renewal_block(sd_healthy=0.5, sd_risk=0.3, **extra) -> dict:
    r = RenewalSpec(healthy=0.93, at_risk=0.55)
    c = r.coefficients()
    return {"healthy": 0.93, "at_risk": 0.55, **extra, "uncertainty": {
        "names": ["logit_healthy", "log_or_at_risk"],
        "estimates": [c["logit_healthy"], c["log_or_at_risk"]],
        "covariance": [[sd_healthy**2, 0.0], [0.0, sd_risk**2]]}}


# --------------------------------------------------------------------------- touch effects


def test_effect_intervals_are_validated_and_not_dumped_when_absent():
    d = small_scenario_dict()
    check_in = d["touch_models"]["high_touch"]["tasks"]["check_in"]
    check_in["effects"] = {"at_risk": 0.7, "intervals": {"at_risk": [0.8, 0.9]}}
    with pytest.raises(ScenarioError, match=r"check_in\.effects: .*\[0\.8, 0\.9\] does not contain at_risk = 0\.7"):
        scenario_from_dict(d, "s.yaml")
    check_in["effects"] = {"at_risk": 0.7, "intervals": {"churn": [0.5]}}
    with pytest.raises(ScenarioError, match=r"intervals\.churn"):
        scenario_from_dict(d, "s.yaml")
    check_in["effects"] = {"at_risk": 0.7, "intervals": {"speed": [0.5, 1]}}
    with pytest.raises(ScenarioError, match=r"intervals\.speed"):
        scenario_from_dict(d, "s.yaml")
    plain = _scenario()
    dumped = plain.model_dump(mode="json")["touch_models"]["high_touch"]["tasks"]["check_in"]["effects"]
    assert "intervals" not in dumped
    assert plain.uncertainty_mode == "none"
    assert _with_effect_interval().uncertainty_mode == "asymptotic"


def test_effects_are_drawn_lognormally_once_per_touch_model_and_ratio():
    sc = _with_effect_interval(low=0.5, high=2.0)
    tm = sc.touch_models["high_touch"]
    names = ["onboarding", "growth", "at_risk", "recovery", "churn", "renewal_odds", "expansion_odds"]
    i_risk, i_renew = names.index("at_risk"), names.index("renewal_odds")
    draws = [replication_effects(tm, "asymptotic", sc.seed, r, "high_touch") for r in range(600)]
    renew = np.log([d["renewal_prep"][i_renew] for d in draws])
    sigma = math.log(4.0) / (2 * Z95)
    assert abs(renew.mean()) < 4 * sigma / math.sqrt(600)
    assert renew.std(ddof=1) == pytest.approx(sigma, rel=0.1)
    risk = np.log([d["check_in"][i_risk] / 0.7 for d in draws])
    assert risk.std(ddof=1) == pytest.approx(math.log(0.98 / 0.5) / (2 * Z95), rel=0.1)
    # Ratios without an interval stay as written; different ratios are independent draws.
    assert all(d["kickoff"] == draws[0]["kickoff"] == (1.5, 1, 1, 1, 1, 1, 1) for d in draws)
    assert abs(np.corrcoef(renew, risk)[0, 1]) < 0.15
    # Mode none: the values as written. Same (seed, rep): the same draw; another seed: another.
    assert replication_effects(tm, "none", sc.seed, 0, "high_touch")["renewal_prep"][i_renew] == pytest.approx(1.0)
    assert replication_effects(tm, "asymptotic", sc.seed, 3, "high_touch") == draws[3]
    assert replication_effects(tm, "asymptotic", sc.seed + 1, 3, "high_touch") != draws[3]


def test_engine_runs_each_replication_with_its_drawn_effects():
    sc = _with_effect_interval()
    for r in range(3):
        tasks = {t.name: t for t in Engine(sc, r).touch_models["high_touch"].tasks}
        drawn = replication_effects(sc.touch_models["high_touch"], "asymptotic", sc.seed, r, "high_touch")
        for name, eff in drawn.items():
            assert tasks[f"high_touch.{name}"].effects == eff
    off = sc.model_copy(update={"parameter_uncertainty": "none"})
    tasks = {t.name: t for t in Engine(off, 0).touch_models["high_touch"].tasks}
    assert tasks["high_touch.check_in"].effects[2] == 0.7


# --------------------------------------------------------------------------- renewal model


def test_renewal_coefficients_round_trip_and_uncertainty_must_match():
    r = RenewalSpec(healthy=0.9, at_risk=0.5, not_activated_odds_ratio=0.4)
    c = r.coefficients()
    assert c["logit_healthy"] == pytest.approx(math.log(9)) and c["log_or_at_risk"] == pytest.approx(-math.log(9))
    back = r.with_coefficients({"logit_healthy": 0.0})
    assert back.healthy == pytest.approx(0.5) and back.at_risk == pytest.approx(0.1)  # the at-risk odds ratio is kept
    assert back.not_activated_odds_ratio == pytest.approx(0.4)
    d = small_scenario_dict()
    d["segments"]["enterprise"]["renewal"] = _renewal_block()
    d["segments"]["enterprise"]["renewal"]["uncertainty"]["estimates"][0] = 1.0
    with pytest.raises(ScenarioError, match=r"enterprise\.renewal: .*logit_healthy estimate 1 does not match"):
        scenario_from_dict(d, "s.yaml")
    d["segments"]["enterprise"]["renewal"] = _renewal_block()
    d["segments"]["enterprise"]["renewal"]["uncertainty"]["names"] = ["logit_healthy", "speed"]
    with pytest.raises(ScenarioError, match=r"uncertainty\.names"):
        scenario_from_dict(d, "s.yaml")
    d["segments"]["enterprise"]["renewal"] = _renewal_block()
    with pytest.raises(ScenarioError, match=r"renewal\.uncertainty\.bootstrap: missing"):
        scenario_from_dict({**d, "parameter_uncertainty": "bootstrap"}, "s.yaml")


def test_renewal_model_is_drawn_per_replication_and_reaches_the_engine():
    d = small_scenario_dict()
    d["segments"]["enterprise"]["renewal"] = _renewal_block(sd_healthy=0.5, sd_risk=0.3)
    sc = scenario_from_dict(d, "s.yaml")
    assert sc.uncertainty_mode == "asymptotic"
    spec = sc.segments["enterprise"].renewal
    drawn = [replication_renewal(spec, "asymptotic", sc.seed, r, "enterprise").coefficients() for r in range(600)]
    h = np.array([c["logit_healthy"] for c in drawn])
    risk = np.array([c["log_or_at_risk"] for c in drawn])
    assert h.std(ddof=1) == pytest.approx(0.5, rel=0.1) and abs(h.mean() - LOGIT93) < 4 * 0.5 / math.sqrt(600)
    assert risk.std(ddof=1) == pytest.approx(0.3, rel=0.1)
    assert {c["log_or_not_activated"] for c in drawn} == {math.log(0.4)}  # not named: fixed
    for r in range(3):
        seg = Engine(sc, r).segments[0]
        assert seg.curves["logit_healthy"] == pytest.approx(drawn[r]["logit_healthy"], abs=1e-9)
        assert seg.curves["logit_at_risk"] == pytest.approx(drawn[r]["logit_healthy"] + drawn[r]["log_or_at_risk"])
    assert Engine(sc.model_copy(update={"parameter_uncertainty": "none"}), 0).segments[0].curves["logit_healthy"] == (
        pytest.approx(LOGIT93))
    # Bootstrap: one of the stored rows, chosen per replication.
    rows = [[LOGIT93 + 0.2, -1.0], [LOGIT93 - 0.2, -2.0]]
    d["segments"]["enterprise"]["renewal"]["uncertainty"]["bootstrap"] = rows
    d["parameter_uncertainty"] = "bootstrap"
    boot = scenario_from_dict(d, "s.yaml").segments["enterprise"].renewal
    got = {round(replication_renewal(boot, "bootstrap", 7, r, "enterprise").coefficients()["logit_healthy"], 9)
           for r in range(40)}
    assert got == {round(LOGIT93 + 0.2, 9), round(LOGIT93 - 0.2, 9)}


def test_renewal_and_effect_uncertainty_widen_renewal_intervals_on_common_numbers():
    d = small_scenario_dict()
    ent = d["segments"]["enterprise"]
    ent.update(initial_customers=120, initial_tenure_months=12.0, new_logos_per_month=0.0)
    ent["winback"] = {"probability": 0.0}
    ent["renewal"] = _renewal_block(sd_healthy=0.8, sd_risk=0.5)
    d["segments"] = {"enterprise": ent}
    d["team"]["pods"] = {k: {**v, "segments": ["enterprise"]} for k, v in d["team"]["pods"].items()
                         if "enterprise" in v["segments"]}
    d["policy"] = {"routes": []}
    d.update(horizon_months=12, replications=16)
    dec = decompose(scenario_from_dict(d, "s.yaml"))
    row = dec.table().set_index(["kpi", "scope"]).loc[("renewal_rate", "enterprise")]
    assert row["width_with"] > 1.5 * row["width_without"]
    assert row["share_estimation"] > 0.5
    t = dec.table().set_index(["kpi", "scope"])
    assert t.loc[("new_arr", "enterprise"), "width_with"] == t.loc[("new_arr", "enterprise"), "width_without"]


# --------------------------------------------------------------------------- fitted renewal models


def _curves_file(path, const=LOGIT93, se_const=0.3, bootstrap=None):
    params = {"names": ["const", "at_risk", "touched"], "estimates": [const, -2.0, 0.7],
              "covariance": [[se_const**2, -0.01, -0.02], [-0.01, 0.09, 0.0], [-0.02, 0.0, 0.04]],
              "scale": "logit coefficients"}
    if bootstrap is not None:
        params["bootstrap"] = bootstrap
    data = {"format": "cssim-curves/1", "curves": {}, "renewal": {"enterprise": {
        "source": "renewal_log", "renewal": {}, "parameters": params}}}
    path.write_text(json.dumps(data))
    return path


def _fitted_scenario_file(tmp_path, renewal: dict):
    d = small_scenario_dict()
    d["segments"]["enterprise"]["renewal"] = renewal
    p = tmp_path / "scenarios" / "fitted.yaml"
    p.parent.mkdir(exist_ok=True)
    p.write_text(yaml.safe_dump(d))
    return p


def test_fitted_renewal_model_resolves_from_a_curves_file(tmp_path):
    (tmp_path / "fit").mkdir()
    _curves_file(tmp_path / "fit" / "curves.json", bootstrap=[[LOGIT93, -2.1, 0.6], [LOGIT93 + 0.1, -1.9, 0.8]])
    path = _fitted_scenario_file(tmp_path, {"fitted": {"file": "../fit/curves.json", "key": "enterprise"},
                                            "window_fraction": 0.25})
    sc = load_scenario(path)  # the file is relative to the scenario file
    r = sc.segments["enterprise"].renewal
    assert r.healthy == pytest.approx(0.93) and r.at_risk == pytest.approx(1 / (1 + math.exp(-(LOGIT93 - 2.0))))
    assert r.not_activated_odds_ratio == 1.0 and r.window_fraction == 0.25  # not estimated: no effect
    assert r.uncertainty.names == ["logit_healthy", "log_or_at_risk"]  # the touch term belongs to the touch models
    assert r.uncertainty.covariance == [[0.09, -0.01], [-0.01, 0.09]]
    assert r.uncertainty.bootstrap == [[LOGIT93, -2.1], [LOGIT93 + 0.1, -1.9]]
    assert r.fitted.sha256 and sc.uncertainty_mode == "asymptotic"
    # The resolved scenario round-trips through its own dump (as results folders store it).
    again = scenario_from_dict(sc.model_dump(mode="json"), "dumped.yaml")
    assert again.segments["enterprise"].renewal == r


@pytest.mark.parametrize(
    "block, curves, message",
    [
        ({"fitted": {"key": "enterprise"}}, {}, r"renewal\.fitted\.file: required field is missing"),
        ({"fitted": {"file": "{curves}", "key": "smb"}}, {}, r"no renewal model 'smb'; the file has: enterprise"),
        ({"fitted": {"file": "{curves}", "key": "enterprise"}, "healthy": 0.8}, {},
         r"healthy: given as 0\.8 but the fitted model .* says 0\.93; give one or the other"),
        ({"fitted": {"file": "{curves}", "key": "enterprise"}}, {"se_const": 2.0e4},
         r"not identified by the data \(coefficient const has standard error"),
        ({"fitted": {"file": "missing.json", "key": "enterprise"}}, {}, r"missing\.json: curves file not found"),
    ],
)
def test_bad_fitted_renewal_is_one_line_naming_the_field(tmp_path, block, curves, message):
    curves_path = _curves_file(tmp_path / "curves.json", **curves)
    block = json.loads(json.dumps(block).replace("{curves}", str(curves_path)))
    with pytest.raises(ScenarioError, match=message) as err:
        load_scenario(_fitted_scenario_file(tmp_path, block))
    assert "\n" not in str(err.value) and "segments.enterprise.renewal" in str(err.value)


def test_fitted_renewal_from_cssim_fit_runs_end_to_end(tmp_path):
    from cssim.fitting.covariates import fit_renewal_model
    from cssim.fitting.history import read_history

    h = read_history("examples/history.csv")
    fits = fit_renewal_model(h)
    data = {"format": "cssim-curves/1", "curves": {}, "renewal": fits}
    (tmp_path / "curves.json").write_text(json.dumps(data))
    # mid_market renews at 50 % without a renewal touch (se 1 on the logit scale): identified, wide.
    sc = load_scenario(_fitted_scenario_file(tmp_path, {"fitted": {"file": str(tmp_path / "curves.json"),
                                                                    "key": "mid_market"}}))
    r = sc.segments["enterprise"].renewal
    assert r.healthy == pytest.approx(fits["mid_market"]["renewal"]["healthy"])
    assert r.at_risk == pytest.approx(fits["mid_market"]["renewal"]["at_risk"])
    res = simulate(sc.model_copy(update={"replications": 2}))
    assert res.manifest["parameter_uncertainty"] == "asymptotic"
    # enterprise: nearly every renewal had a renewal touch, so "renewal without a touch" is not identified.
    with pytest.raises(ScenarioError, match="not identified"):
        load_scenario(_fitted_scenario_file(tmp_path, {"fitted": {"file": str(tmp_path / "curves.json"),
                                                                  "key": "enterprise"}}))


def test_fitted_churn_with_the_default_at_risk_ratio_warns_about_double_counting(tmp_path):
    from cssim.fitting.curvesfile import FORMAT

    spec = {"family": "exponential", "scale": 700.0}
    (tmp_path / "curves.json").write_text(json.dumps({"format": FORMAT, "curves": {"smb/churn": {"spec": spec}}}))
    d = small_scenario_dict()
    d["segments"]["smb"]["lifecycle"]["churn"] = {"family": "fitted", "file": str(tmp_path / "curves.json"),
                                                  "key": "smb/churn"}
    twice = r"segments\.smb\.lifecycle\.churn is fitted \(smb/churn\).*counted twice; set it to 1"
    with pytest.warns(UserWarning, match=twice):
        sc = scenario_from_dict(d, "s.yaml")
    import warnings

    assert sc.segments["smb"].lifecycle.at_risk_churn_hazard_ratio == 3.0
    d["segments"]["smb"]["lifecycle"]["at_risk_churn_hazard_ratio"] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scenario_from_dict(d, "s.yaml")


def test_cli_prints_input_warnings_on_one_line(tmp_path, capsys):
    from cssim.cli import main

    (tmp_path / "curves.json").write_text(json.dumps(
        {"format": "cssim-curves/1", "curves": {"smb/churn": {"spec": {"family": "exponential", "scale": 700.0}}}}))
    d = small_scenario_dict()
    d["segments"]["smb"]["lifecycle"]["churn"] = {"family": "fitted", "file": "curves.json", "key": "smb/churn"}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(d))
    assert main(["validate", str(tmp_path / "s.yaml")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cssim: warning: segments.smb.lifecycle.churn is fitted")


# --------------------------------------------------------------------------- coverage of a fitted renewal model


def _renewal_coverage(mode: str, tmp_path, fits: int = 60, history: int = 120, book: int = 400, reps: int = 200):
    """Share of synthetic renewal histories whose 90 % forecast interval of next year's renewal rate covers the truth.

    Each history: ``history`` renewals (a quarter of them at-risk) from a known
    model; statsmodels ``Logit`` as ``cssim fit`` runs it; the coefficients and
    covariance go through a curves file and ``renewal.fitted`` into a
    :class:`RenewalSpec`. The forecast draws the model per replication
    (:func:`replication_renewal`, the engine's own draw) and renews a book of
    ``book`` healthy customers (binomial). The truth is the true healthy
    renewal probability.
    """
    import pandas as pd
    import statsmodels.api as sm

    from cssim.fitting.covariates import _parameters

    truth_healthy, truth_risk = 0.85, 0.5
    hits, widths = 0, []
    for i in range(fits):
        rng = np.random.default_rng([2031, i])
        at_risk = (rng.random(history) < 0.25).astype(float)
        renewed = rng.random(history) < np.where(at_risk == 1, truth_risk, truth_healthy)
        X = pd.DataFrame({"const": np.ones(history), "at_risk": at_risk})
        res = sm.Logit(renewed.astype(float), X).fit(disp=0)
        path = _curves_file(tmp_path / f"c{i}.json")
        data = json.loads(path.read_text())
        data["renewal"]["enterprise"]["parameters"] = _parameters(res)
        path.write_text(json.dumps(data))
        spec = RenewalSpec.model_validate(fitted_renewal({"fitted": {"file": str(path), "key": "enterprise"}}))
        noise = np.random.default_rng([13, i])
        rate = np.array([noise.binomial(book, replication_renewal(spec, mode, 5, r, "enterprise").healthy) / book
                         for r in range(reps)])
        lo, hi = np.quantile(rate, [0.05, 0.95])
        hits += lo <= truth_healthy <= hi
        widths.append(hi - lo)
    return hits / fits, float(np.mean(widths))


def test_fitted_renewal_coverage_is_nominal_with_uncertainty_and_not_without(tmp_path):
    with_cov, with_width = _renewal_coverage("asymptotic", tmp_path)
    without_cov, without_width = _renewal_coverage("none", tmp_path)
    # 60 histories: the standard error of a 90 % coverage estimate is about 0.04.
    assert 0.80 <= with_cov <= 0.99, with_cov
    assert without_cov <= 0.65, without_cov
    assert with_width > 1.5 * without_width
    # docs/model.md states the figures this test computes.
    doc = " ".join((Path(__file__).resolve().parents[1] / "docs" / "model.md").read_text().split())
    assert (f"covered the true probability in {with_cov:.0%} of 60 fits with uncertainty (mean width "
            f"{with_width * 100:.1f} points) and {without_cov:.0%} without ({without_width * 100:.1f} points)"
            ).replace("%", " %") in doc


def test_extending_a_scenario_with_a_fitted_renewal_model_replaces_the_parents_values(tmp_path):
    _curves_file(tmp_path / "curves.json")
    parent = small_scenario_dict()
    parent["segments"]["enterprise"]["renewal"] = {"healthy": 0.8, "at_risk": 0.4, "window_fraction": 0.25}
    (tmp_path / "parent.yaml").write_text(yaml.safe_dump(parent))
    child = {"extends": "parent.yaml", "segments": {"enterprise": {"renewal": {
        "fitted": {"file": "curves.json", "key": "enterprise"}}}}}
    (tmp_path / "child.yaml").write_text(yaml.safe_dump(child))
    r = load_scenario(tmp_path / "child.yaml").segments["enterprise"].renewal
    assert r.healthy == pytest.approx(0.93) and r.window_fraction == 0.25  # fitted values, the parent's window
