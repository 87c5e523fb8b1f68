"""Survival curves: cumulative hazards, their inverses, sampling and the multiplier solver.

Every family is checked against an independent reference (scipy.stats or a
closed form), and the proportional-hazards solver ``event_time`` against a
brute-force numerical integration of the hazard.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.integrate import cumulative_trapezoid

from cssim.model import curves as C

# (curve, reference frozen scipy distribution or None for a closed form)
CASES = {
    "exponential": (C.Exponential(200.0), stats.expon(scale=200.0)),
    "weibull_increasing": (C.Weibull(300.0, 1.6), stats.weibull_min(1.6, scale=300.0)),
    "weibull_decreasing": (C.Weibull(120.0, 0.7), stats.weibull_min(0.7, scale=120.0)),
    "lognormal": (C.LogNormal(45.0, 0.5), stats.lognorm(0.5, scale=45.0)),
    "lognormal_wide": (C.LogNormal(180.0, 1.3), stats.lognorm(1.3, scale=180.0)),
    "loglogistic": (C.LogLogistic(90.0, 2.5), stats.fisk(2.5, scale=90.0)),
    "exponential_gamma": (C.ExponentialGamma(500.0, 1.2), stats.lomax(1.2, scale=500.0)),
    "weibull_gamma": (C.WeibullGamma(250.0, 1.4, 0.8), stats.burr12(1.4, 0.8, scale=250.0)),
}


def _piecewise_sf(breakpoints, rates, t):
    """Closed-form survival of a piecewise-constant hazard, written independently of the class."""
    edges = [0.0, *breakpoints, math.inf]
    h = 0.0
    for lo, hi, r in zip(edges[:-1], edges[1:], rates, strict=True):
        if t <= lo:
            break
        h += r * (min(t, hi) - lo)
    return math.exp(-h)


PIECEWISE = {
    "piecewise": ((30.0, 90.0, 365.0), (0.004, 0.002, 0.001, 0.0005)),
    "piecewise_zero_middle": ((10.0, 20.0), (0.01, 0.0, 0.02)),
    "piecewise_zero_first": ((60.0,), (0.0, 0.01)),
    "piecewise_zero_last": ((100.0,), (0.005, 0.0)),  # plateau: S(∞) = exp(-0.5)
}

ALL_CURVES = {name: curve for name, (curve, _) in CASES.items()} | {
    name: C.PiecewiseExponential(bp, r) for name, (bp, r) in PIECEWISE.items()
}

T_GRID = np.concatenate([[0.0, 1e-3, 0.5], np.geomspace(1.0, 5000.0, 60)])


def test_families_are_all_covered():
    covered = {c.family for c in ALL_CURVES.values()} | {"never"}
    assert covered == set(C.FAMILIES)


@pytest.mark.parametrize("name", sorted(ALL_CURVES))
def test_cumhaz_starts_at_zero_and_never_decreases(name):
    curve = ALL_CURVES[name]
    assert curve.cumhaz(0.0) == 0.0
    assert curve.cumhaz(-5.0) == 0.0
    h = np.array([curve.cumhaz(t) for t in T_GRID])
    assert np.all(np.diff(h) >= 0.0)
    assert h[-1] > 0.0


@pytest.mark.parametrize("name", sorted(ALL_CURVES))
def test_inverse_recovers_time(name):
    curve = ALL_CURVES[name]
    for t in T_GRID[1:]:
        h = curve.cumhaz(t)
        back = curve.inv_cumhaz(h)
        if name == "piecewise_zero_middle" and 10.0 <= t <= 20.0:
            assert back == pytest.approx(10.0)  # flat H: smallest t reaching h
        elif name == "piecewise_zero_first" and t <= 60.0:
            assert back == 0.0 if h == 0.0 else back == pytest.approx(t)
        elif name == "piecewise_zero_last" and t >= 100.0:
            assert back == pytest.approx(100.0)
        else:
            assert back == pytest.approx(t, rel=1e-9, abs=1e-9), (t, h, back)
    assert curve.inv_cumhaz(0.0) == 0.0


@pytest.mark.parametrize("name", sorted(CASES))
def test_survival_matches_scipy(name):
    curve, ref = CASES[name]
    t = T_GRID[1:]
    np.testing.assert_allclose(curve.survival(t), ref.sf(t), rtol=1e-9, atol=1e-300)
    # Far tails, where a naive 1 - S or S = exp(-H) loses every digit.
    deep = np.array([ref.isf(1e-12), ref.isf(1e-30)])
    np.testing.assert_allclose([curve.cumhaz(x) for x in deep], [12 * math.log(10), 30 * math.log(10)], rtol=1e-6)
    np.testing.assert_allclose([curve.inv_cumhaz(h) for h in (12 * math.log(10), 30 * math.log(10))], deep, rtol=1e-6)
    early = ref.ppf(1e-10)
    assert curve.cumhaz(early) == pytest.approx(-ref.logsf(early), rel=1e-6)


@pytest.mark.parametrize("name", sorted(PIECEWISE))
def test_piecewise_survival_closed_form(name):
    bp, rates = PIECEWISE[name]
    curve = C.PiecewiseExponential(bp, rates)
    for t in T_GRID:
        assert curve.survival(t) == pytest.approx(_piecewise_sf(bp, rates, t), rel=1e-12)


def test_piecewise_zero_rate_pieces_invert_to_the_next_positive_piece():
    curve = C.PiecewiseExponential((10.0, 20.0), (0.01, 0.0, 0.02))
    assert curve.inv_cumhaz(0.1) == pytest.approx(10.0)
    assert curve.inv_cumhaz(0.1 + 1e-9) == pytest.approx(20.0, abs=1e-6)
    assert curve.inv_cumhaz(0.3) == pytest.approx(30.0)
    plateau = C.PiecewiseExponential((100.0,), (0.005, 0.0))
    assert plateau.inv_cumhaz(0.5 + 1e-9) == math.inf
    assert plateau.inv_cumhaz(0.25) == pytest.approx(50.0)
    all_zero = C.PiecewiseExponential((5.0,), (0.0, 0.0))
    assert all_zero.cumhaz(1e6) == 0.0
    assert all_zero.inv_cumhaz(0.1) == math.inf


def test_never():
    never = C.Never()
    assert never.cumhaz(1e9) == 0.0
    assert never.inv_cumhaz(1e-12) == math.inf
    assert np.all(np.isinf(never.sample(np.random.default_rng(0), 5)))


@pytest.mark.parametrize("name", sorted(CASES))
def test_sample_follows_the_curve(name):
    curve, ref = CASES[name]
    draws = curve.sample(np.random.default_rng(11), 4000)
    assert stats.kstest(draws, ref.cdf).pvalue > 1e-3


@pytest.mark.parametrize("name", sorted(ALL_CURVES))
def test_conditional_sample_is_s_of_t_over_s_of_s(name):
    curve = ALL_CURVES[name]
    s = 40.0
    draws = curve.sample(np.random.default_rng(7), 4000, conditional_after=s)
    assert np.all(draws > s)
    finite = draws[np.isfinite(draws)]
    s_s = math.exp(-curve.cumhaz(s))
    s_inf = math.exp(-curve.cumhaz(1e12))

    # Conditional CDF given T > s, renormalised to the finite part (plateau curves put mass at ∞).
    def cdf(t):
        t = np.asarray(t, dtype=float)
        return (1.0 - curve.survival(t) / s_s) / (1.0 - s_inf / s_s)

    assert stats.kstest(finite, cdf).pvalue > 1e-3
    if s_inf > 0:  # share that never happens: S(∞)/S(s)
        share = 1.0 - finite.size / draws.size
        expected = s_inf / s_s
        assert abs(share - expected) < 4 * math.sqrt(expected * (1 - expected) / draws.size)


def test_wrong_conditioning_would_be_caught():
    """The conditional KS test has power: unconditional draws shifted by s do not pass."""
    curve, _ = CASES["weibull_increasing"]
    s = 200.0
    wrong = s + curve.sample(np.random.default_rng(7), 4000)
    s_s = math.exp(-curve.cumhaz(s))
    assert stats.kstest(wrong, lambda t: 1.0 - curve.survival(t) / s_s).pvalue < 1e-6


# --------------------------------------------------------------------------- event_time


def _brute_event_time(ref_hazard, entered, now, budget, pieces, t_max):
    """Integrate m(t)·h(t - entered) on a fine grid from ``now`` and find where it reaches ``budget``."""
    edges = sorted({now, *(u for u, _ in pieces if now < u < t_max), t_max})
    ts, cum = [now], [0.0]
    for a, b in zip(edges[:-1], edges[1:], strict=False):
        m = next(m for u, m in pieces if u > a)
        grid = np.linspace(a, b, 20001)[1:]
        x = np.concatenate([[a], grid])
        y = m * ref_hazard(x - entered)
        inc = cumulative_trapezoid(y, x)
        ts.extend(grid)
        cum.extend(cum[-1] + inc)
    cum = np.asarray(cum)
    if cum[-1] < budget:
        return math.inf
    return float(np.interp(budget, cum, ts))


def _hazard(ref):
    return lambda x: ref.pdf(x) / ref.sf(x)


PIECES = [
    ((math.inf, 1.0),),
    ((60.0, 2.5), (math.inf, 1.0)),
    ((30.0, 0.5), (90.0, 3.0), (math.inf, 0.8)),
    ((50.0, 0.0), (math.inf, 1.5)),  # hazard switched off for a while
]


@pytest.mark.parametrize("name", ["exponential", "weibull_increasing", "lognormal", "loglogistic", "exponential_gamma"])
@pytest.mark.parametrize("pieces", PIECES, ids=["none", "boost", "three", "paused"])
def test_event_time_matches_brute_force_integration(name, pieces):
    curve, ref = CASES[name]
    entered, now = 0.0, 20.0  # clock started earlier; multipliers apply from now
    for budget in (0.05, 0.4, 1.3):
        got = C.event_time(curve, entered, now, budget, pieces)
        brute = _brute_event_time(_hazard(ref), entered, now, budget, pieces, t_max=min(20000.0, got * 1.5 + 50))
        assert got == pytest.approx(brute, rel=2e-3, abs=0.05), (budget, got, brute)


def test_event_time_without_multipliers_is_conditional_inverse():
    curve, _ = CASES["lognormal"]
    for budget in (0.1, 1.0, 4.0):
        expected = 5.0 + curve.inv_cumhaz(curve.cumhaz(30.0) + budget)
        assert C.event_time(curve, 5.0, 35.0, budget, ((math.inf, 1.0),)) == pytest.approx(expected)


def test_event_time_never_reached():
    assert C.event_time(C.Never(), 0.0, 0.0, 0.5, ((math.inf, 1.0),)) == math.inf
    plateau = C.PiecewiseExponential((100.0,), (0.005, 0.0))
    assert C.event_time(plateau, 0.0, 0.0, 0.6, ((math.inf, 1.0),)) == math.inf
    # A multiplier of zero until the end: nothing happens.
    assert C.event_time(CASES["exponential"][0], 0.0, 0.0, 0.1, ((math.inf, 0.0),)) == math.inf


@pytest.mark.parametrize("name", sorted(ALL_CURVES))
@pytest.mark.parametrize("pieces", PIECES[1:], ids=["boost", "three", "paused"])
def test_consumed_and_event_time_agree_when_split(name, pieces):
    """Stopping at t_split, subtracting the budget used, and restarting gives the same event time."""
    curve = ALL_CURVES[name]
    rng = np.random.default_rng(3)
    entered, now = 0.0, 10.0
    for budget in rng.exponential(size=12):
        whole = C.event_time(curve, entered, now, budget, pieces)
        stop = whole if math.isfinite(whole) else 2000.0
        for t_split in (now + 0.3 * (stop - now), now + 0.9 * (stop - now), 45.0, 75.0):
            if not now <= t_split < stop:
                continue
            used = C.consumed(curve, entered, now, t_split, pieces)
            assert 0.0 <= used <= budget + 1e-12
            again = C.event_time(curve, entered, t_split, budget - used, pieces)
            if math.isinf(whole):
                assert math.isinf(again)
            else:
                assert again == pytest.approx(whole, rel=1e-9, abs=1e-7)


def test_consumed_is_the_weighted_hazard_increment():
    curve = C.Weibull(100.0, 1.5)
    pieces = ((40.0, 2.0), (math.inf, 0.5))
    expected = 2.0 * (curve.cumhaz(40.0) - curve.cumhaz(10.0)) + 0.5 * (curve.cumhaz(70.0) - curve.cumhaz(40.0))
    assert C.consumed(curve, 0.0, 10.0, 70.0, pieces) == pytest.approx(expected)
    assert C.consumed(curve, 0.0, 10.0, 10.0, pieces) == 0.0
