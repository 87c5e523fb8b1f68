"""The data's edge: fitted curves record it, the tail policy bounds the hazard beyond it, forecasts say how much
of their customer-time lies there.

A history whose churn data end at a known tenure (customers signed over one
year, extracted at its end: nobody is seen past 365 days), fitted by a steep
Weibull (shape 2.5: the hazard keeps rising). Extrapolated, that hazard would
churn a two-year-old book within weeks; held at its level over the last
well-observed window, the book decays at that one rate, a known answer.
"""

from __future__ import annotations

import glob
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import small_scenario_dict

from cssim import scenario_from_dict, simulate
from cssim.fitting.curvesfile import FORMAT
from cssim.fitting.univariate import MIN_AT_RISK, UnivariateFit
from cssim.model.curves import HeldTail, Weibull
from cssim.model.edge import MATERIAL_SHARE, edge_exposure
from cssim.model.loader import load_scenario

ROOT = Path(__file__).resolve().parents[1]
YEAR = 365.0
TRUTH = Weibull(420.0, 2.5)


@pytest.fixture(scope="module")
def fit():
    rng = np.random.default_rng(11)
    n = 1500
    observed = rng.uniform(0.0, YEAR, n)  # signed during the year, extracted at its end
    T = TRUTH.scale * rng.standard_exponential(n) ** (1 / TRUTH.shape)
    d = pd.DataFrame({"duration": np.minimum(T, observed).clip(0.5), "event": (T <= observed).astype(int),
                      "entry": 0.0, "customer_id": np.arange(n).astype(str)})
    return UnivariateFit(d, "smb", "churn", families=("weibull",)).fit()


def test_the_fit_records_where_the_risk_set_thins_out(fit):
    e = fit.edge_
    assert e["observed_max"] <= YEAR and e["min_at_risk"] == MIN_AT_RISK
    table = fit.km_.event_table
    # The edge is the last duration with at least 20 at risk; beyond it fewer remain.
    assert table.loc[e["edge"], "at_risk"] >= MIN_AT_RISK
    assert (table.loc[table.index > e["edge"], "at_risk"] < MIN_AT_RISK).all()
    assert 300 < e["edge"] < YEAR
    assert fit.to_dict()["edge"] == e
    assert fit.fitters_["weibull"].rho_ == pytest.approx(2.5, abs=0.3)


def test_held_tail_is_exact_continuous_and_monotone():
    base = Weibull(420.0, 2.5)
    c = HeldTail(base, 330.0, 80.0)
    rate = (base.cumhaz(330.0) - base.cumhaz(250.0)) / 80.0
    assert c.rate == pytest.approx(rate)
    for t in (0.0, 100.0, 329.0, 330.0):
        assert c.cumhaz(t) == base.cumhaz(t)
    assert c.cumhaz(730.0) == pytest.approx(base.cumhaz(330.0) + rate * 400.0)
    grid = np.linspace(0, 2000, 4001)
    H = np.array([c.cumhaz(t) for t in grid])
    assert (np.diff(H) >= 0).all()
    for h in (0.0, 0.3, c.cumhaz(330.0), 5.0, 40.0):
        assert c.cumhaz(c.inv_cumhaz(h)) == pytest.approx(h, abs=1e-9)
    assert HeldTail(base, 330.0, 1000.0).rate == pytest.approx(base.cumhaz(330.0) / 330.0)  # window cut at 0


def _book_scenario(tmp_path, fit, tail=None, new_logos=0.0, book=300, tenure=730.0):
    path = tmp_path / "curves.json"
    path.write_text(json.dumps({"format": FORMAT, "curves": {"smb/churn": fit.to_dict()}}, default=float))
    pd.DataFrame({"customer_id": [f"c{i}" for i in range(book)], "arr": 5000.0, "tenure_days": tenure,
                  "stage": "maturity"}).to_csv(tmp_path / "book.csv", index=False)
    d = small_scenario_dict()
    smb = d["segments"]["smb"]
    smb.update(new_logos_per_month=new_logos, book={"file": str(tmp_path / "book.csv")})
    smb.pop("initial_customers")
    smb["winback"] = {"probability": 0.0}
    churn = {"family": "fitted", "file": str(path), "key": "smb/churn", **({"tail": tail} if tail else {})}
    smb["lifecycle"] = {"churn": churn, "at_risk_churn_hazard_ratio": 1.0, "champion_change_per_year": 0.0,
                        "at_risk": {"family": "never"}}
    d["segments"] = {"smb": smb}
    d.update(horizon_months=12, replications=4, parameter_uncertainty="none", team={"pods": {}},
             policy={"routes": []})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sc = scenario_from_dict(d, "edge.yaml")
    return sc, [str(w.message) for w in caught]


def test_the_forecast_beyond_the_edge_is_bounded_by_the_tail_policy(fit, tmp_path):
    held, msgs = _book_scenario(tmp_path, fit)
    spec = held.segments["smb"].lifecycle.churn.concrete()
    # The default (auto) holds this hazard: the steep Weibull's would rise far above its level at the edge.
    assert spec.tail.policy == "auto" and spec.tail.edge == fit.edge_["edge"]
    curve = spec.build()
    assert isinstance(curve, HeldTail)
    # Every customer is two years old, far past the edge: each month they face the held rate, nothing steeper.
    expected = math.exp(-curve.rate * 12 * 30.436875)
    res = simulate(held)
    active = res.arrays["segment"]["active"].sum(axis=2)[:, -1] / 300.0
    se = math.sqrt(expected * (1 - expected) / (300 * 4))
    assert abs(active.mean() - expected) < 4 * se + 0.01, (active.mean(), expected)
    # The whole forecast is beyond the edge, and the warning, the manifest and the summary say so.
    assert edge_exposure(held)["share_beyond_edge"].iloc[0] == pytest.approx(1.0)
    assert any("about 100% of the simulated customer-time lies beyond the data's edge" in m for m in msgs), msgs
    assert res.manifest["beyond_edge"][0]["share_beyond_edge"] == pytest.approx(1.0)
    assert "beyond the data's edge: smb/churn spends about 100% of its customer-time" in str(res.summary())

    # Extrapolated, the steep Weibull empties the book: H(730 + 365) − H(730) is in the tens.
    fitted, _ = _book_scenario(tmp_path, fit, tail="fitted")
    assert not isinstance(fitted.segments["smb"].lifecycle.churn.concrete().build(), HeldTail)
    gone = simulate(fitted).arrays["segment"]["active"].sum(axis=2)[:, -1] / 300.0
    assert gone.mean() < 0.01 < expected / 2


def test_auto_extrapolates_a_falling_hazard_and_holds_a_rising_one():
    from cssim.model.scenario import _concrete_curve_adapter

    tail = {"edge": 330.0, "window": 80.0}
    falling = _concrete_curve_adapter().validate_python(
        {"family": "weibull", "scale": 500.0, "shape": 0.7, "tail": tail})
    assert falling.build() == Weibull(500.0, 0.7)  # survivors are the loyal ones: keep the decline
    rising = _concrete_curve_adapter().validate_python(
        {"family": "weibull", "scale": 500.0, "shape": 2.0, "tail": tail})
    assert isinstance(rising.build(), HeldTail)
    held = _concrete_curve_adapter().validate_python(
        {"family": "weibull", "scale": 500.0, "shape": 0.7, "tail": {**tail, "policy": "hold"}})
    assert isinstance(held.build(), HeldTail)
    # Drawn parameters keep the tail: with_parameters copies it.
    assert rising.with_parameters([480.0, 2.1]).tail == rising.tail


def test_the_share_beyond_the_edge_is_the_expected_customer_time(fit, tmp_path):
    """A young book plus new logos: the estimate against a direct integration of the same survival curve."""
    sc, msgs = _book_scenario(tmp_path, fit, new_logos=20.0, book=200, tenure=200.0)
    share = edge_exposure(sc)["share_beyond_edge"].iloc[0]
    curve, edge, D = sc.segments["smb"].lifecycle.churn.concrete().build(), fit.edge_["edge"], 12 * 30.436875

    def days(a, d):
        u = np.linspace(0, d, 4001)
        s = np.exp(-(np.array([curve.cumhaz(a + x) for x in u]) - curve.cumhaz(a)))
        return np.trapezoid(s * (a + u > edge), u), np.trapezoid(s, u)

    b0, t0 = days(200.0, D)
    parts = [days(0.0, D - (m + 0.5) * 30.436875) for m in range(12)]
    expected = (200 * b0 + 20 * sum(p[0] for p in parts)) / (200 * t0 + 20 * sum(p[1] for p in parts))
    assert share == pytest.approx(expected, abs=0.01)
    assert MATERIAL_SHARE < share < 0.9
    assert any(f"about {share:.0%} of the simulated customer-time" in m for m in msgs), msgs


def test_shipped_scenarios_stay_quiet():
    for path in sorted(glob.glob(str(ROOT / "scenarios" / "*.yaml"))):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            sc = load_scenario(path)
        assert edge_exposure(sc).empty, path


def test_heavy_tailed_draws_do_not_overflow():
    # A drawn exponential-gamma with a tiny shape (an averaged family's wide covariance): H⁻¹ beyond float range.
    from cssim.model.curves import ExponentialGamma, WeibullGamma

    assert ExponentialGamma(100.0, 1e-3).inv_cumhaz(5.0) == math.inf
    assert WeibullGamma(100.0, 0.3, 1e-2).inv_cumhaz(5.0) == math.inf
    assert ExponentialGamma(100.0, 2.0).inv_cumhaz(1.0) == pytest.approx(100.0 * math.expm1(0.5))
