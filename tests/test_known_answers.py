"""Known answers: the engine against results that hold without simulation.

(a) With no CSM constraint and no touches, time to churn follows the input
    survival curve (one-sample log-rank and Kaplan–Meier band, with censoring
    at the horizon and left truncation for the initial book).
(b) A pod configured as an M/M/c queue reproduces Erlang C.
(c) Zero CSM capacity delivers no CSM touch; ample capacity delivers all on time.
(d) Retention falls as headcount is cut below need (common random numbers).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from lifelines import KaplanMeierFitter

from cssim.analysis.results import stack
from cssim.core.clock import DAYS_PER_MONTH
from cssim.model.curves import LogNormal, Weibull
from cssim.model.loader import scenario_from_dict
from cssim.model.metrics import grr
from cssim.model.queueing import erlang_c
from cssim.sim.engine import Engine

NEVER = {"family": "never"}
QUIET_LIFECYCLE = {
    "signing_days": 0,
    "onboarding": NEVER,
    "activation_deadline_days": None,
    "growth": NEVER,
    "at_risk": NEVER,
    "recovery": NEVER,
    "champion_change_per_year": 0,
}
NO_REPRICING = {"probability": {}, "contraction_probability": {}}


def _ledger(scenario, rep):
    return Engine(scenario, rep).run().arrays()


# --------------------------------------------------------------------------- (a) survival

CHURN_CURVES = {
    "weibull": ({"family": "weibull", "scale": 420.0, "shape": 0.8}, Weibull(420.0, 0.8)),
    "lognormal": ({"family": "lognormal", "median": 500.0, "sigma": 1.1}, LogNormal(500.0, 1.1)),
}


def _churn_scenario(curve_spec, scale_factor=1.0):
    spec = dict(curve_spec)
    if scale_factor != 1.0:
        key = "scale" if "scale" in spec else "median"
        spec[key] = spec[key] * scale_factor
    return scenario_from_dict(
        {
            "horizon_months": 36,
            "seed": 2024,
            "segments": {
                "monthly": {
                    "initial_customers": 2000,
                    "initial_tenure_months": 36,
                    "new_logos_per_month": 120,
                    "arr": {"median": 6000, "sigma": 0.5},
                    "contract": {"term_months": 12, "billing": "monthly"},
                    "touch_model": "tech",
                    "lifecycle": {
                        "signing_days": 3,
                        "onboarding": {"family": "lognormal", "median": 30, "sigma": 0.5},
                        "activation_deadline_days": None,
                        "at_risk": NEVER,
                        "churn": spec,
                        "champion_change_per_year": 0,
                    },
                }
            },
            "touch_models": {
                "tech": {
                    "tasks": {
                        # Programs that are sent but change nothing.
                        "newsletter": {"trigger": "cadence", "every_days": 30, "hours": 0, "reach": 0.5},
                        "welcome": {"trigger": "onboarding", "hours": 0},
                    }
                }
            },
        }
    )


def _lifetimes(scenario, rep=0):
    """(entry, exit, churned) on the time-since-signing clock, from the per-customer records."""
    engine = Engine(scenario, rep, record=True)
    engine.run()
    end = engine.end
    entry, exit_, event = [], [], []
    for rec in engine.records:
        assert rec["episode"] == 0
        signed = rec["signed_day"]
        churned = rec["churned_day"]
        entry.append(max(0.0, -signed))  # the initial book is seen from day 0 on: left truncation
        exit_.append((churned if churned is not None else end) - signed)
        event.append(churned is not None)
        if churned is not None:
            assert rec["churn_reason"] == "cancelled"
            assert 0.0 <= churned <= end
    initial = np.array([rec["initial"] for rec in engine.records])
    return np.array(entry), np.array(exit_), np.array(event), initial


def _one_sample_logrank(curve, entry, exit_, event):
    """Z = (O − E)/√E with E = Σ [H(exit) − H(entry)]: observed vs expected events under the curve."""
    expected = sum(curve.cumhaz(b) - curve.cumhaz(a) for a, b in zip(entry, exit_, strict=True))
    observed = int(event.sum())
    return (observed - expected) / math.sqrt(expected), observed


@pytest.mark.parametrize("name", sorted(CHURN_CURVES))
def test_time_to_churn_follows_the_input_curve(name):
    spec, curve = CHURN_CURVES[name]
    entry, exit_, event, initial = _lifetimes(_churn_scenario(spec))
    new = ~initial
    assert new.sum() > 3000 and event[new].sum() > 1000

    # New logos: right-censored at the horizon.
    z_new, _ = _one_sample_logrank(curve, entry[new], exit_[new], event[new])
    assert abs(z_new) < 3.5, z_new
    # Initial book: left-truncated at its tenure on day 0 (conditional sampling S(t)/S(s)).
    z_init, _ = _one_sample_logrank(curve, entry[initial], exit_[initial], event[initial])
    assert abs(z_init) < 3.5, z_init

    # Kaplan–Meier of the new logos against the true S(t), inside a widened 99 % band.
    km = KaplanMeierFitter(alpha=0.01).fit(exit_[new], event[new])
    ci = km.confidence_interval_survival_function_
    times = np.array([30.0, 90.0, 180.0, 365.0, 540.0, 720.0, 900.0])
    lo = ci.iloc[:, 0].reindex(ci.index.union(times)).ffill().loc[times].to_numpy()
    hi = ci.iloc[:, 1].reindex(ci.index.union(times)).ffill().loc[times].to_numpy()
    true = curve.survival(times)
    assert np.all((true >= lo - 0.005) & (true <= hi + 0.005)), (lo, true, hi)


def test_survival_check_has_power():
    """A 25 % error in the curve's scale (hazard ratio 0.84) is detected: the check would catch a wrong sampler."""
    spec, curve = CHURN_CURVES["weibull"]
    entry, exit_, event, _ = _lifetimes(_churn_scenario(spec, scale_factor=1.25))
    z, _ = _one_sample_logrank(curve, entry, exit_, event)
    assert z < -5.0


# --------------------------------------------------------------------------- (b) Erlang C

HOURS_PER_WEEK = 35.0  # with customer_facing_share 1: 5 task-hours per CSM-day
MEAN_HOURS = 1.0


def _mmc_scenario(c, rho, months, customers=20):
    """One pod of ``c`` CSMs; customers that never change; Poisson tasks with exponential hours."""
    mu = (HOURS_PER_WEEK * 1.0 / 7.0) / MEAN_HOURS  # tasks per CSM-day
    lam = rho * c * mu  # tasks per day, all customers together
    scenario = scenario_from_dict(
        {
            "horizon_months": months,
            "seed": 77,
            "segments": {
                "queue": {
                    "initial_customers": customers,
                    "initial_tenure_months": 0,
                    "arr": {"median": 10000, "sigma": 0},
                    "contract": {"term_months": 60, "billing": "annual"},
                    "touch_model": "mmc",
                    "lifecycle": QUIET_LIFECYCLE,
                    "renewal": {"healthy": 1.0, "not_activated_odds_ratio": 1.0},
                    "expansion": NO_REPRICING,
                }
            },
            "touch_models": {
                "mmc": {
                    "tasks": {
                        "work": {
                            "trigger": "poisson",
                            "rate_per_year": lam * 365.25 / customers,
                            "hours": MEAN_HOURS,
                            "hours_distribution": "exponential",
                            "priority": 1,
                        }
                    }
                }
            },
            "team": {
                "pods": {
                    "pod": {
                        "segments": ["queue"],
                        "headcount": c,
                        "hours_per_week": HOURS_PER_WEEK,
                        "customer_facing_share": 1.0,
                        "ramp_months": 0,
                        "attrition_per_year": 0,
                    }
                }
            },
        }
    )
    return scenario, lam, mu


# (c, ρ, months, replications): tighter loads need longer runs and more replications.
LOADS = [(1, 0.5, 60, 6), (2, 0.75, 60, 8), (3, 0.9, 120, 14)]
WARMUP_MONTHS = 6


@pytest.mark.parametrize("c,rho,months,reps", LOADS, ids=[f"c{c}-rho{r}" for c, r, _, _ in LOADS])
def test_mmc_pod_reproduces_erlang_c(c, rho, months, reps):
    scenario, lam, mu = _mmc_scenario(c, rho, months)
    ref = erlang_c(lam, mu, c)
    p_wait, mean_wait, util, missed = [], [], [], 0.0
    for r in range(reps):
        A = _ledger(scenario, r)
        seg, pod = A["segment"], A["pod"]
        keep = slice(WARMUP_MONTHS, None)  # discard the empty-queue start
        delivered = seg["tasks_delivered"][keep].sum()
        p_wait.append(seg["tasks_waited"][keep].sum() / delivered)
        mean_wait.append(seg["wait_days_sum"][keep].sum() / delivered)
        util.append(pod["busy_days"][keep].sum() / pod["employed_days"][keep].sum())
        missed += seg["tasks_missed"].sum()
        # Arrival rate: tasks released per day match λ.
        released = seg["tasks_released"].sum()
        assert released == pytest.approx(lam * months * DAYS_PER_MONTH, rel=6 / math.sqrt(released))
    assert missed == 0  # no deadlines: nothing is dropped
    for name, values, expected in (
        ("P(wait)", p_wait, ref.p_wait),
        ("mean wait", mean_wait, ref.mean_wait),
        ("utilisation", util, ref.utilisation),
    ):
        values = np.asarray(values)
        mean = values.mean()
        se = values.std(ddof=1) / math.sqrt(len(values))
        # The interval must be informative (a few % of the value) and contain the theory.
        assert se < 0.06 * expected, (name, se, expected)
        assert abs(mean - expected) < 4.0 * se + 0.005 * expected, (name, mean, expected, se)


def test_erlang_c_reference_values():
    """The reference itself: M/M/1 closed form and a textbook M/M/c figure."""
    one = erlang_c(0.8, 1.0, 1)
    assert one.p_wait == pytest.approx(0.8)
    assert one.mean_wait == pytest.approx(0.8 / (1.0 - 0.8))
    # a = 2, c = 3: C = (8/6 · 3) / (1 + 2 + 2 + 4) = 4/9.
    three = erlang_c(2.0, 1.0, 3)
    assert three.p_wait == pytest.approx(4.0 / 9.0)
    assert three.mean_wait == pytest.approx((4.0 / 9.0) / (3.0 - 2.0))
    with pytest.raises(ValueError, match="unstable"):
        erlang_c(3.0, 1.0, 3)


# --------------------------------------------------------------------------- (c), (d) capacity


def _high_touch_scenario(headcount, effects=True, customers=150, months=36, book_cap=None):
    def eff(**kw):
        return kw if effects else {}

    pod = {
        "segments": ["enterprise"],
        "headcount": headcount,
        "attrition_per_year": 0,
        "hours_per_week": 40,
        "customer_facing_share": 0.6,
    }
    if book_cap is not None:
        pod["book_cap"] = book_cap
    return scenario_from_dict(
        {
            "horizon_months": months,
            "seed": 31337,
            "segments": {
                "enterprise": {
                    "initial_customers": customers,
                    "new_logos_per_month": customers / 60,
                    "arr": {"median": 100000, "sigma": 0.6},
                    "contract": {"term_months": 12, "billing": "annual"},
                    "touch_model": "high_touch",
                    "lifecycle": {
                        "onboarding": {"family": "lognormal", "median": 60, "sigma": 0.5},
                        "growth": {"family": "weibull", "scale": 300, "shape": 1.3},
                        "at_risk": {"family": "exponential_gamma", "scale": 300, "shape": 1.2},
                        "recovery": {"family": "lognormal", "median": 90, "sigma": 0.8},
                        "champion_change_per_year": 0.15,
                    },
                    "renewal": {"healthy": 0.93, "at_risk": 0.45},
                }
            },
            "touch_models": {
                "high_touch": {
                    "tasks": {
                        "onboarding_session": {"trigger": "onboarding", "hours": 10, "priority": 1, "due_days": 7,
                                               "deadline_days": 30, "effects": eff(onboarding=1.6)},
                        "check_in": {"trigger": "cadence", "every_days": 30, "hours": 2, "priority": 4,
                                     "due_days": 7, "deadline_days": 21, "effects": eff(at_risk=0.6)},
                        "qbr": {"trigger": "cadence", "every_days": 91, "hours": 5, "priority": 3, "due_days": 14,
                                "deadline_days": 45, "effects": eff(at_risk=0.8, expansion_odds=1.5)},
                        "renewal_prep": {"trigger": "renewal_window", "hours": 6, "priority": 2, "due_days": 30,
                                         "deadline_days": 90, "effects": eff(renewal_odds=2.5), "effect_days": 150},
                        "rescue_plan": {"trigger": "at_risk", "hours": 6, "priority": 0, "due_days": 5,
                                        "deadline_days": 21, "effects": eff(recovery=2.5)},
                    }
                }
            },
            "team": {"pods": {"enterprise": pod}},
        }
    )


def _tasks(A):
    seg = A["segment"]
    return {k: seg[k].sum() for k in ("tasks_released", "tasks_delivered", "tasks_late", "tasks_missed")}


def test_zero_capacity_delivers_no_csm_touch():
    for rep in range(2):
        t = _tasks(_ledger(_high_touch_scenario(headcount=0), rep))
        assert t["tasks_released"] > 1000
        assert t["tasks_delivered"] == 0
        assert t["tasks_missed"] == t["tasks_released"]


def test_ample_capacity_delivers_every_touch_on_time():
    for rep in range(2):
        A = _ledger(_high_touch_scenario(headcount=400), rep)
        t = _tasks(A)
        assert t["tasks_released"] > 1000
        assert t["tasks_delivered"] == t["tasks_released"]
        assert t["tasks_missed"] == 0 and t["tasks_late"] == 0
        assert A["segment"]["wait_days_sum"].sum() == 0.0


def test_undelivered_touches_have_no_effect():
    """No CSMs with effective touches ≡ ample CSMs with touches that do nothing: same customers, same fate."""
    for rep in range(2):
        starved = _ledger(_high_touch_scenario(headcount=0, effects=True), rep)["segment"]
        inert = _ledger(_high_touch_scenario(headcount=400, effects=False), rep)["segment"]
        assert inert["tasks_delivered"].sum() > 1000
        for key in ("churned_logos", "churned_arr", "renewals_renewed", "expansion_arr", "became_at_risk", "arr"):
            np.testing.assert_array_equal(starved[key], inert[key], err_msg=key)


HEADCOUNTS = [0, 1, 2, 4, 8]


def test_retention_falls_as_headcount_is_cut():
    reps = range(6)
    values = np.array(
        [[grr(stack([_ledger(_high_touch_scenario(h), r)]), None)[0, 0] for r in reps] for h in HEADCOUNTS]
    )  # (headcounts, replications), same random customers in each column
    means = values.mean(axis=1)
    for i in range(len(HEADCOUNTS) - 1):
        diff = values[i + 1] - values[i]  # paired: common random numbers
        se = diff.std(ddof=1) / math.sqrt(diff.size)
        assert diff.mean() > -max(3.0 * se, 0.003), (HEADCOUNTS[i], HEADCOUNTS[i + 1], means)
    gain = values[-1] - values[0]
    assert gain.min() > 0.0
    assert gain.mean() > 6.0 * gain.std(ddof=1) / math.sqrt(gain.size)
    assert gain.mean() > 0.02, means
