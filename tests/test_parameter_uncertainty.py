"""Estimation uncertainty: curve parameters drawn once per replication from their fitted sampling distribution.

The coverage test is the point of the feature: on synthetic histories with a
known churn curve, the 90 % interval of a KPI forecast from a *fitted* curve
covers the true-curve KPI about 90 % of the time when the forecast includes
parameter uncertainty, and clearly less often when it uses the point estimate.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, small_scenario_dict

from cssim import ScenarioError, scenario_from_dict, simulate
from cssim.analysis.decompose import decompose
from cssim.model.curves import Weibull
from cssim.model.scenario import _concrete_curve_adapter
from cssim.model.uncertainty import (
    draw_parameters,
    from_fitter,
    params_stream,
    replication_curve,
    with_uncertainty,
)
from cssim.sim.engine import Engine

LOG700, LOG08 = math.log(700.0), math.log(0.8)
WEIBULL_UNC = {"estimates": [LOG700, LOG08], "covariance": [[0.09, -0.01], [-0.01, 0.02]]}


def _weibull_churn(**unc) -> dict:
    return {"family": "weibull", "scale": 700.0, "shape": 0.8, "uncertainty": {**WEIBULL_UNC, **unc}}


def _scenario(churn: dict | None = None, **top):
    d = small_scenario_dict()
    d["segments"]["smb"]["lifecycle"]["churn"] = churn if churn is not None else _weibull_churn()
    d["segments"]["smb"]["lifecycle"]["at_risk_churn_hazard_ratio"] = 1.0  # a fitted churn curve holds it already
    d.update(top)
    return scenario_from_dict(d, "s.yaml")


def _monthly_book(n: int = 150, replications: int = 16, churn: dict | None = None):
    """One monthly-billing segment, a closed book of ``n`` customers, tech-touch only, 12 months."""
    d = small_scenario_dict()
    smb = d["segments"]["smb"]
    smb.update(initial_customers=n, new_logos_per_month=0.0, initial_tenure_months=0.0)
    smb["winback"] = {"probability": 0.0}
    smb["lifecycle"]["churn"] = churn or _weibull_churn(covariance=[[0.25, 0.0], [0.0, 0.01]])
    d["segments"] = {"smb": smb}
    d["team"] = {"pods": {}}
    d["policy"] = {"routes": []}
    d.update(horizon_months=12, replications=replications)
    return scenario_from_dict(d, "book.yaml")


# --------------------------------------------------------------------------- schema


BAD = [
    ({"covariance": [[0.09, 0.0, 0.0], [0.0, 0.02, 0.0]]}, "churn.uncertainty: covariance: must be 2×2"),
    ({"covariance": [[0.09, 0.05], [0.0, 0.02]]}, "churn.uncertainty: covariance: must be symmetric"),
    ({"covariance": [[0.02, 0.09], [0.09, 0.02]]}, "churn.uncertainty: covariance: must be positive semi-definite"),
    ({"covariance": [[float("nan"), 0.0], [0.0, 0.02]]},
     "churn.uncertainty.covariance.0.0: Input should be a finite number"),
    ({"estimates": [LOG700], "covariance": [[0.09]]}, "churn: uncertainty.estimates: a weibull curve has 2 parameters"),
    ({"estimates": [math.log(600.0), LOG08]}, "churn: uncertainty.estimates: scale estimate 6.39693 is not log(scale)"),
    ({"names": ["shape", "scale"]}, "churn: uncertainty.names: expected ['scale', 'shape']"),
    ({"bootstrap": [[LOG700, LOG08], [LOG700]]}, "churn.uncertainty: bootstrap.1: expected 2 values"),
    ({"bootstrap": [[LOG700, LOG08]]}, "churn.uncertainty: bootstrap: give at least 2 parameter sets"),
    ({"spread": 0.1}, "churn.uncertainty.spread: unknown field"),
]


@pytest.mark.parametrize(("change", "message"), BAD, ids=[m.split(": ")[-1][:28] for _, m in BAD])
def test_bad_uncertainty_block_is_one_line_naming_the_field(change, message):
    with pytest.raises(ScenarioError) as err:
        _scenario(_weibull_churn(**change))
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith("s.yaml: segments.smb.lifecycle.")
    assert message in text


def test_parameter_uncertainty_switch_is_validated():
    plain = {"family": "exponential", "scale": 700}
    with pytest.raises(ScenarioError, match=r"^s\.yaml: parameter_uncertainty: asymptotic needs curves, renewal"):
        _scenario(plain, parameter_uncertainty="asymptotic")
    with pytest.raises(ScenarioError, match=r"churn\.uncertainty\.bootstrap: missing, but parameter_uncertainty is"):
        _scenario(parameter_uncertainty="bootstrap")
    with pytest.raises(ScenarioError, match=r"^s\.yaml: parameter_uncertainty: Input should be 'none'"):
        _scenario(parameter_uncertainty="sometimes")
    # Defaults: on where a curve carries uncertainty, off otherwise; both explicit values respected.
    assert _scenario().uncertainty_mode == "asymptotic"
    assert _scenario(plain).uncertainty_mode == "none"
    assert _scenario(parameter_uncertainty="none").uncertainty_mode == "none"
    # Nothing new is dumped (or hashed) for scenarios that do not use the feature.
    dumped = _scenario(plain).model_dump(mode="json")
    assert "parameter_uncertainty" not in dumped
    assert "uncertainty" not in dumped["segments"]["smb"]["lifecycle"]["onboarding"]


def test_with_uncertainty_applies_the_delta_method_to_lifelines_covariances():
    V = np.array([[400.0, -0.5], [-0.5, 0.004]])  # lambda_, rho_ on lifelines' natural scale
    spec = with_uncertainty({"family": "weibull", "scale": 500.0, "shape": 0.9}, {"lambda_": 500.0, "rho_": 0.9}, V)
    u = spec["uncertainty"]
    assert u["names"] == ["scale", "shape"]
    assert u["estimates"] == pytest.approx([math.log(500.0), math.log(0.9)])
    theta = np.array([500.0, 0.9])
    assert np.array(u["covariance"]) == pytest.approx(V / np.outer(theta, theta))
    # log-normal: lifelines' mu_ already is log(median) (Jacobian 1); sigma_ goes to log.
    ln = with_uncertainty({"family": "lognormal", "median": math.exp(3.0), "sigma": 0.5},
                          {"mu_": 3.0, "sigma_": 0.5}, [[0.04, 0.01], [0.01, 0.0025]])
    assert np.array(ln["uncertainty"]["covariance"]) == pytest.approx(np.array([[0.04, 0.02], [0.02, 0.01]]))
    # piecewise-exponential: lambda_i_ is 1/rate, so log rate = -log lambda and the Jacobian is -1/lambda.
    pw = with_uncertainty({"family": "piecewise_exponential", "breakpoints": [30.0], "rates": [0.01, 0.002]},
                          {"lambda_0_": 100.0, "lambda_1_": 500.0}, [[100.0, 10.0], [10.0, 2500.0]])
    assert np.array(pw["uncertainty"]["covariance"]) == pytest.approx(np.array([[0.01, 2e-4], [2e-4, 0.01]]))
    # Parameters of another fit, or not of this family, are refused.
    with pytest.raises(ValueError, match="rho_ = 1.1 does not match the curve's shape = 0.9"):
        with_uncertainty({"family": "weibull", "scale": 500.0, "shape": 0.9}, {"lambda_": 500.0, "rho_": 1.1}, V)
    with pytest.raises(ValueError, match="'mu_' is not a parameter of a weibull curve"):
        with_uncertainty({"family": "weibull", "scale": 500.0, "shape": 0.9}, {"lambda_": 500.0, "mu_": 0.9}, V)


# --------------------------------------------------------------------------- draws


def test_draws_follow_the_covariance_and_bootstrap_sets():
    spec = _concrete_curve_adapter().validate_python(_weibull_churn(bootstrap=[[6.4, -0.1], [6.6, -0.3], [6.5, -0.2]]))
    u = spec.uncertainty
    rng = np.random.default_rng(5)
    x = np.array([draw_parameters(u, "asymptotic", rng) for _ in range(4000)])
    assert x.mean(axis=0) == pytest.approx(u.estimates, abs=0.015)
    assert np.cov(x.T) == pytest.approx(np.array(u.covariance), abs=0.006)
    picks = [tuple(draw_parameters(u, "bootstrap", rng)) for _ in range(600)]
    counts = {tuple(row): picks.count(tuple(row)) for row in u.bootstrap}
    assert sum(counts.values()) == 600  # only stored sets
    assert min(counts.values()) > 150  # chosen uniformly (expected 200 each)
    # A singular (semi-definite) covariance still draws: along its one direction only.
    flat = _concrete_curve_adapter().validate_python(_weibull_churn(covariance=[[0.04, 0.02], [0.02, 0.01]]))
    y = np.array([draw_parameters(flat.uncertainty, "asymptotic", rng) for _ in range(200)])
    assert np.allclose(y[:, 0] - LOG700, 2.0 * (y[:, 1] - LOG08))


def test_each_replication_draws_once_from_its_own_keyed_stream():
    sc = _scenario()
    spec = sc.segments["smb"].lifecycle.churn
    point = Weibull(700.0, 0.8)
    curves = [replication_curve(spec, "asymptotic", sc.seed, r, "smb", "churn") for r in range(5)]
    assert len({(c.scale, c.shape) for c in curves}) == 5 and point not in curves
    # Reproducible, and exactly what the engine simulates in that replication.
    for r in (0, 3):
        engine = Engine(sc, r)
        assert engine.segments[1].curves["churn"] == curves[r]
        assert engine.segments[1].curves["churn"] == replication_curve(spec, "asymptotic", sc.seed, r, "smb", "churn")
        assert engine.segments[0].curves["churn"] == sc.segments["enterprise"].lifecycle.churn.build()  # no block
    # The key is (seed, replication, KIND_PARAMS, segment, transition): other curves, segments, seeds draw apart.
    assert replication_curve(spec, "asymptotic", sc.seed, 0, "smb", "at_risk") != curves[0]
    assert replication_curve(spec, "asymptotic", sc.seed, 0, "enterprise", "churn") != curves[0]
    assert replication_curve(spec, "asymptotic", sc.seed + 1, 0, "smb", "churn") != curves[0]
    z = params_stream(sc.seed, 2, "smb", "churn").standard_normal(2)
    expected = np.array(WEIBULL_UNC["estimates"]) + np.linalg.cholesky(WEIBULL_UNC["covariance"]) @ z
    assert (curves[2].scale, curves[2].shape) == pytest.approx(tuple(np.exp(expected)), rel=1e-12)
    # Common random numbers: another policy with the same seed draws the same parameters for the same curve.
    other = _scenario(team={"pods": {}}, policy={"routes": [{"touch_model": "tech_touch"}]})
    assert Engine(other, 3).segments[1].curves["churn"] == curves[3]
    # Switched off: the point estimate, whatever the block says.
    off = _scenario(parameter_uncertainty="none")
    assert Engine(off, 3).segments[1].curves["churn"] == point


def test_results_are_identical_across_jobs_and_process_noise_is_untouched():
    on = _scenario(replications=4)
    a = simulate(on, jobs=1)
    b = simulate(on, jobs=2)
    for group, series in a.arrays.items():
        for name, arr in series.items():
            assert np.array_equal(arr, b.arrays[group][name], equal_nan=True), (group, name)
    off = simulate(_scenario(replications=4, parameter_uncertainty="none"), jobs=1)
    plain = simulate(_scenario({"family": "weibull", "scale": 700.0, "shape": 0.8}, replications=4), jobs=1)
    for group, series in off.arrays.items():  # off is exactly the scenario without the block
        for name, arr in series.items():
            assert np.array_equal(arr, plain.arrays[group][name], equal_nan=True), (group, name)
    seg_on, seg_off = a.arrays["segment"], off.arrays["segment"]
    # Arrivals and their ARR come from process-noise streams: the same with uncertainty on or off...
    assert np.array_equal(seg_on["new_logos"], seg_off["new_logos"])
    assert np.array_equal(seg_on["new_arr"], seg_off["new_arr"])
    # ...while the drawn churn curve changes who churns in the monthly segment.
    assert not np.array_equal(seg_on["churned_arr"][:, :, 1], seg_off["churned_arr"][:, :, 1])
    assert a.manifest["parameter_uncertainty"] == "asymptotic" and off.manifest["parameter_uncertainty"] == "none"


def test_parameter_uncertainty_widens_kpi_intervals_and_decomposes(tmp_path):
    sc = _monthly_book()
    dec = decompose(sc, replications=16)
    t = dec.table().set_index(["kpi", "scope"])
    row = t.loc[("logo_retention", "smb")]
    assert row["width_with"] > 1.5 * row["width_without"]
    assert row["share_estimation"] == pytest.approx(1 - (row["width_without"] / row["width_with"]) ** 2)
    assert 0.5 < row["share_estimation"] <= 1.0
    assert row["sd_with"] > row["sd_without"]
    # Same seeds: the runs differ only in the curve parameters (arrival-driven KPIs agree exactly).
    assert t.loc[("new_arr", "smb"), "width_with"] == t.loc[("new_arr", "smb"), "width_without"]
    assert "logo_retention" in str(dec.summary()) and "estimation share" in str(dec.summary())
    with pytest.raises(ScenarioError, match="nothing to decompose"):
        decompose(_monthly_book(churn={"family": "exponential", "scale": 700}), replications=2)

    from cssim.cli import main

    path = tmp_path / "book.yaml"
    import yaml

    path.write_text(yaml.safe_dump(sc.model_dump(mode="json")))
    out = tmp_path / "res"
    assert main(["run", str(path), "-n", "4", "-j", "1", "-q", "--out", str(out), "--decompose"]) == 0
    import pandas as pd

    table = pd.read_csv(out / "uncertainty.csv")
    assert {"kpi", "scope", "width_with", "width_without", "share_estimation"} <= set(table.columns)
    assert "estimation share" in (out / "summary.txt").read_text()
    assert json.loads((out / "manifest.json").read_text())["parameter_uncertainty"] == "asymptotic"


# --------------------------------------------------------------------------- fits carry their covariance


def _weibull_history(rng, n: int, truth: Weibull):
    T = truth.scale * rng.standard_exponential(n) ** (1.0 / truth.shape)
    C = rng.uniform(30.0, 730.0, n)  # signed over two years, observed until the extract date
    return np.minimum(T, C), (T <= C).astype(int)


def test_fitted_curves_file_and_cohort_fit_carry_the_covariance(tmp_path):
    import pandas as pd

    from cssim.fitting.cohorts import fit_cohorts
    from cssim.fitting.curvesfile import FORMAT
    from cssim.fitting.univariate import UnivariateFit

    d, e = _weibull_history(np.random.default_rng(3), 200, Weibull(900.0, 0.8))
    data = pd.DataFrame({"duration": d, "event": e, "entry": 0.0})
    fit = UnivariateFit(data, "smb", "churn", families=("exponential", "weibull")).fit()
    (tmp_path / "curves.json").write_text(json.dumps({"format": FORMAT, "curves": {"smb/churn": fit.to_dict()}}))
    # The chosen family alone (by default a fit with two credible families is averaged: test_model_averaging.py).
    churn = {"family": "fitted", "file": str(tmp_path / "curves.json"), "key": "smb/churn", "model_uncertainty": "best"}
    sc = _scenario(churn)
    assert sc.uncertainty_mode == "asymptotic"
    spec = sc.segments["smb"].lifecycle.churn.concrete()
    f = fit.fitters_[fit.best_]
    names = list(f._fitted_parameter_names)
    theta = np.array([getattr(f, n) for n in names])
    V = f.variance_matrix_.loc[names, names].to_numpy()
    assert np.array(spec.uncertainty.covariance) == pytest.approx(V / np.outer(theta, theta), rel=1e-9)
    direct = from_fitter(fit.curve_spec(), f)["uncertainty"]["covariance"]
    assert np.array(direct) == pytest.approx(np.array(spec.uncertainty.covariance))
    again = scenario_from_dict(sc.model_dump(mode="json"), "again.yaml")  # re-resolves from the file
    assert again.segments["smb"].lifecycle.churn.concrete() == spec
    assert Engine(sc, 1).segments[1].curves["churn"] != spec.build()  # drawn, not the point estimate

    cohorts = fit_cohorts(DATA / "contractual_cohort_regular.csv", models=("sbg", "exponential_gamma"))
    cs = cohorts.curve_spec()
    eg = cohorts.fits["exponential_gamma"]
    assert cs["uncertainty"]["names"] == ["scale", "shape"]
    # The cohort fit's log-parameters are (shape, scale); the curve's order is (scale, shape).
    assert np.array(cs["uncertainty"]["covariance"]) == pytest.approx(eg.cov_free[::-1, ::-1])
    assert _concrete_curve_adapter().validate_python(cs).uncertainty is not None


# --------------------------------------------------------------------------- coverage


N_FITS, N_HISTORY, REPLICATIONS, FORECAST_BOOK = 60, 150, 200, 2000
TRUTH = Weibull(900.0, 0.8)  # monthly-billing churn: hazard falls with tenure
YEAR = 365.25


def _coverage(mode: str) -> tuple[float, float]:
    """Share of synthetic histories whose 90 % forecast interval of 12-month logo retention covers the truth.

    Each history: 150 customers signed over two years, churn from ``TRUTH``,
    censored at the extract date; lifelines' Weibull fit with its covariance
    becomes a curve spec. The forecast: ``REPLICATIONS`` replications, each
    taking its churn curve from :func:`replication_curve` (the engine's own
    draw) and counting survivors among ``FORECAST_BOOK`` new customers
    (binomial: the same as sampling each lifetime from the curve and counting
    those past a year). The truth is the true curve's expected retention S(365).
    """
    from lifelines import WeibullFitter

    truth = math.exp(-TRUTH.cumhaz(YEAR))
    hits, widths = 0, []
    for i in range(N_FITS):
        d, e = _weibull_history(np.random.default_rng([2027, i]), N_HISTORY, TRUTH)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            f = WeibullFitter().fit(d, e)
        spec = _concrete_curve_adapter().validate_python(
            from_fitter({"family": "weibull", "scale": f.lambda_, "shape": f.rho_}, f)
        )
        noise = np.random.default_rng([11, i])
        kpi = np.empty(REPLICATIONS)
        for r in range(REPLICATIONS):
            curve = replication_curve(spec, mode, 11, r, "smb", "churn")
            kpi[r] = noise.binomial(FORECAST_BOOK, math.exp(-curve.cumhaz(YEAR))) / FORECAST_BOOK
        lo, hi = np.quantile(kpi, [0.05, 0.95])
        hits += lo <= truth <= hi
        widths.append(hi - lo)
    return hits / N_FITS, float(np.mean(widths))


def test_coverage_with_parameter_uncertainty_is_nominal_and_without_it_is_not():
    with_cov, with_width = _coverage("asymptotic")
    without_cov, without_width = _coverage("none")
    # 60 histories: the standard error of a 90 % coverage estimate is about 0.04.
    assert 0.80 <= with_cov <= 0.99, with_cov
    assert without_cov <= 0.6, without_cov
    assert with_cov - without_cov >= 0.3
    assert with_width > 2 * without_width
    # docs/model.md states the figures this test computes.
    doc = " ".join((Path(__file__).resolve().parents[1] / "docs" / "model.md").read_text().split())
    assert (f"covered the true value in {with_cov:.0%} of {N_FITS} fits with parameter uncertainty (mean width "
            f"{with_width * 100:.1f} points) and in {without_cov:.0%} without ({without_width * 100:.1f} points)"
            ).replace("%", " %") in doc


def test_unidentified_fitted_parameter_is_not_drawn_from_its_asymptotic_covariance():
    from cssim.model.uncertainty import attach_fitted

    spec = {"family": "piecewise_exponential", "breakpoints": [100.0], "rates": [1e-9, 0.002]}
    # lifelines' lambda_i_ = 1/rate; an interval without events: lambda_0_ huge with a huge variance.
    stored = {"names": ["lambda_0_", "lambda_1_"], "estimates": [1e9, 500.0],
              "covariance": [[(1e9 * 2e4) ** 2, 0.0], [0.0, 50.0**2]]}
    with pytest.warns(UserWarning, match=r"curve smb/churn: rates\.0 has standard error 2e\+04 .*point estimate"):
        out = attach_fitted(spec, stored, label="smb/churn")
    assert "uncertainty" not in out
    boot = [[1e9 * f, 500.0 * g] for f, g in ((0.5, 0.9), (2.0, 1.1), (1.0, 1.0), (1.5, 0.95))]
    with pytest.warns(UserWarning, match="bootstrap sets' covariance instead"):
        out = attach_fitted(spec, {**stored, "bootstrap": boot}, label="smb/churn")
    logs = -np.log(np.asarray(boot))  # rates are 1/lambda
    assert np.asarray(out["uncertainty"]["covariance"]) == pytest.approx(np.cov(logs, rowvar=False))
    _concrete_curve_adapter().validate_python(out)
    # No finite covariance at all (singular Hessian): the bootstrap sets stand in the same way.
    nan_cov = {**stored, "covariance": [[float("nan")] * 2] * 2, "bootstrap": boot}
    with pytest.warns(UserWarning, match=r"smb/churn: its covariance is not finite; .*bootstrap sets' covariance"):
        out = attach_fitted(spec, nan_cov, label="smb/churn")
    assert np.asarray(out["uncertainty"]["covariance"]) == pytest.approx(np.cov(logs, rowvar=False))
    # An identified fit keeps its asymptotic covariance, silently.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ok = attach_fitted(spec, {**stored, "covariance": [[(1e9 * 0.5) ** 2, 0.0], [0.0, 50.0**2]]})
    assert ok["uncertainty"]["covariance"][0][0] == pytest.approx(0.25)


def test_decomposition_leaves_out_kpis_undefined_in_every_replication(small_scenario):
    """A forecast that starts with no customers has no GRR: no NaN rows, and the summary says what was left out."""
    from cssim import simulate
    from cssim.analysis.decompose import UncertaintyDecomposition, decomposition_table

    data = small_scenario.model_dump(mode="json")
    data["horizon_months"] = 12
    for seg in data["segments"].values():
        seg["initial_customers"] = 0
    res = simulate(scenario_from_dict(data), replications=3)
    table = decomposition_table(res, res)
    assert not table[["mean_with", "width_with"]].isna().any().any()
    assert "grr" not in set(table["kpi"]) and "ending_arr" in set(table["kpi"])
    dec = UncertaintyDecomposition(table, res, res, "asymptotic")
    assert {"grr", "logo_retention"} <= set(dec.undefined)
    assert "left out, undefined in every replication" in str(dec.summary())
