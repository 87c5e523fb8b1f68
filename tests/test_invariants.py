"""Invariants that must hold for every valid scenario, property-tested with hypothesis.

The strategies below build random *valid* scenarios (segment counts and sizes,
annual and monthly billing, curves of every family, touch models with random
tasks, pods with headcount 0..n, book caps, attrition, hires, routing and
win-back). Each is simulated and the ledger is checked against identities that
two independent bookkeepings must agree on: month-end stocks against
cumulative flows, window cohorts against their flows, pod books against
customer states.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cssim import scenario_from_dict
from cssim.analysis.results import SimulationResults, stack
from cssim.sim.engine import Engine

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --------------------------------------------------------------------------- strategies

days = st.floats(5.0, 900.0, allow_nan=False, allow_infinity=False)
shape = st.floats(0.4, 3.0, allow_nan=False, allow_infinity=False)
ratio = st.sampled_from([0.3, 0.6, 0.9, 1.0, 1.0, 1.5, 2.5])


@st.composite
def curves(draw, allow_never: bool = False):
    families = [
        "exponential",
        "weibull",
        "lognormal",
        "loglogistic",
        "exponential_gamma",
        "weibull_gamma",
        "piecewise_exponential",
    ]
    if allow_never:
        families.append("never")
    family = draw(st.sampled_from(families))
    if family == "exponential":
        return {"family": family, "scale": draw(days)}
    if family in ("weibull", "loglogistic", "exponential_gamma"):
        return {"family": family, "scale": draw(days), "shape": draw(shape)}
    if family == "lognormal":
        return {"family": family, "median": draw(days), "sigma": draw(st.floats(0.1, 1.5))}
    if family == "weibull_gamma":
        return {"family": family, "scale": draw(days), "rho": draw(shape), "shape": draw(shape)}
    if family == "piecewise_exponential":
        n = draw(st.integers(1, 3))
        bps = sorted(draw(st.lists(st.integers(10, 600), min_size=n, max_size=n, unique=True)))
        rates = draw(st.lists(st.floats(0.0, 0.02), min_size=n + 1, max_size=n + 1))
        return {"family": family, "breakpoints": [float(b) for b in bps], "rates": rates}
    return {"family": "never"}


TRIGGERS = ["onboarding", "cadence", "renewal_window", "at_risk", "handoff", "poisson"]


@st.composite
def tasks(draw):
    trigger = draw(st.sampled_from(TRIGGERS))
    task: dict = {"trigger": trigger}
    if trigger == "cadence":
        task["every_days"] = draw(st.sampled_from([7.0, 30.0, 91.0]))
    if trigger == "poisson":
        task["rate_per_year"] = draw(st.floats(0.5, 8.0))
    tech = draw(st.booleans())
    task["hours"] = 0.0 if tech else draw(st.sampled_from([0.5, 2.0, 8.0, 40.0]))
    task["hours_distribution"] = draw(st.sampled_from(["fixed", "exponential"]))
    task["priority"] = draw(st.integers(0, 6))
    deadline = draw(st.none() | st.sampled_from([3.0, 14.0, 60.0]))
    if deadline is not None:
        task["deadline_days"] = deadline
        if draw(st.booleans()):
            task["due_days"] = deadline * draw(st.sampled_from([0.0, 0.3, 1.0]))
    elif draw(st.booleans()):
        task["due_days"] = draw(st.sampled_from([0.0, 5.0]))
    task["reach"] = draw(st.sampled_from([0.0, 0.5, 1.0]))
    task["effects"] = {
        name: draw(ratio)
        for name in draw(
            st.sets(
                st.sampled_from(
                    ["onboarding", "growth", "at_risk", "recovery", "churn", "renewal_odds", "expansion_odds"]
                ),
                max_size=3,
            )
        )
    }
    if draw(st.booleans()):
        task["effect_days"] = draw(st.sampled_from([10.0, 90.0, 400.0]))
    return task


@st.composite
def scenarios(draw) -> dict:
    horizon = draw(st.sampled_from([1, 5, 12, 13, 24, 30]))
    n_models = draw(st.integers(1, 3))
    models = {
        f"tm{i}": {
            "tasks": {f"t{j}": draw(tasks()) for j in range(draw(st.integers(0, 4)))},
        }
        for i in range(n_models)
    }
    model_names = list(models)
    n_segments = draw(st.integers(1, 3))
    segments = {}
    for i in range(n_segments):
        monthly = draw(st.booleans())
        seg = {
            "initial_customers": draw(st.integers(0, 25)),
            "initial_tenure_months": draw(st.sampled_from([0.0, 6.0, 36.0])),
            "new_logos_per_month": draw(st.sampled_from([0.0, 0.5, 2.0])),
            "arr": {"median": draw(st.sampled_from([2_000.0, 30_000.0])), "sigma": draw(st.floats(0.0, 1.0))},
            "contract": {
                "term_months": draw(st.sampled_from([1, 3, 12])),
                "billing": "monthly" if monthly else "annual",
            },
            "touch_model": draw(st.sampled_from(model_names)),
            "lifecycle": {
                "signing_days": draw(st.sampled_from([0.0, 14.0])),
                "onboarding": draw(curves()),
                "activation_deadline_days": draw(st.none() | st.sampled_from([30.0, 90.0])),
                "growth": draw(curves(allow_never=True)),
                "at_risk": draw(curves()),
                "recovery": draw(curves()),
                "churn": draw(curves(allow_never=True)) if monthly else {"family": "never"},
                "champion_change_per_year": draw(st.sampled_from([0.0, 0.3, 2.0])),
            },
            "renewal": {"healthy": draw(st.floats(0.0, 1.0)), "at_risk": draw(st.floats(0.0, 1.0))},
            "expansion": {
                "probability": {"growth": draw(st.floats(0.0, 1.0)), "maturity": draw(st.floats(0.0, 1.0))},
                "contraction_probability": {"healthy": draw(st.floats(0.0, 0.5)), "at_risk": draw(st.floats(0, 1))},
            },
            "winback": {
                "probability": draw(st.sampled_from([0.0, 0.3, 1.0])),
                "delay": draw(curves()),
            },
        }
        segments[f"seg{i}"] = seg
    seg_names = list(segments)
    routes = []
    for _ in range(draw(st.integers(0, 2))):
        route = {"touch_model": draw(st.sampled_from(model_names))}
        if draw(st.booleans()):
            route["segment"] = draw(st.sampled_from(seg_names))
        route["arr_below"] = draw(st.sampled_from([3_000.0, 20_000.0, 1e9]))
        routes.append(route)
    # Partition some segments into pods.
    pods = {}
    owner = draw(st.lists(st.sampled_from([None, "p0", "p1"]), min_size=n_segments, max_size=n_segments))
    for pod_name in ("p0", "p1"):
        served = [s for s, o in zip(seg_names, owner) if o == pod_name]
        if not served:
            continue
        pods[pod_name] = {
            "segments": served,
            "headcount": draw(st.integers(0, 4)),
            "hours_per_week": draw(st.sampled_from([2.0, 40.0])),
            "book_cap": draw(st.none() | st.integers(1, 20)),
            "ramp_months": draw(st.sampled_from([0.0, 3.0])),
            "attrition_per_year": draw(st.sampled_from([0.0, 0.5, 4.0])),
            "backfill_days": draw(st.sampled_from([10.0, 60.0])),
            "handoff_risk": draw(st.floats(0.0, 1.0)),
            "hires": [
                {"month": draw(st.integers(0, horizon - 1)), "count": draw(st.integers(1, 2))}
                for _ in range(draw(st.integers(0, 2)))
            ],
        }
    return {
        "name": "random",
        "horizon_months": horizon,
        "seed": draw(st.integers(0, 2**32)),
        "replications": 1,
        "segments": segments,
        "touch_models": models,
        "policy": {"routes": routes},
        "team": {"pods": pods},
    }


# --------------------------------------------------------------------------- checks


def _close(a, b, scale) -> np.ndarray:
    return np.abs(np.asarray(a) - np.asarray(b)) <= 1e-9 * np.maximum(1.0, scale)


def check_ledger(scenario, A: dict) -> None:
    """Every identity the ledger of one replication must satisfy."""
    seg, pod, win = A["segment"], A["pod"], A["window"]
    M, S = seg["active"].shape
    initial = np.array([s.initial_customers for s in scenario.segments.values()], dtype=float)

    for name, values in {**seg, **pod, **win}.items():
        assert np.all(np.isfinite(values)), name
        assert np.all(values >= -1e-9), f"{name} negative: {values.min()}"

    # Customers are conserved: everyone who arrived is active or churned at every month end.
    cum = np.cumsum(seg["new_logos"] + seg["winback_logos"] - seg["churned_logos"], axis=0)
    np.testing.assert_array_equal(initial[None, :] + cum, seg["active"], err_msg="logos not conserved")

    # ARR stock moves exactly by the ARR flows.
    arr = seg["arr"]
    flow = seg["new_arr"] + seg["winback_arr"] + seg["expansion_arr"] - seg["contraction_arr"] - seg["churned_arr"]
    assert np.all(arr[0] - flow[0] >= -1e-6 * np.maximum(1, arr[0])), "initial ARR negative"
    assert np.all(_close(np.diff(arr, axis=0), flow[1:], arr.max(initial=1.0))), "ARR stock != ARR flows"
    assert np.all(seg["arr"][seg["active"] == 0] == 0)
    assert np.all(seg["arr"][seg["active"] > 0] > 0)

    # Stages partition the active book; at-risk and CSM-served are subsets.
    stages = seg["signing"] + seg["onboarding"] + seg["growth"] + seg["maturity"]
    np.testing.assert_array_equal(stages, seg["active"], err_msg="stages do not sum to active")
    assert np.all(seg["at_risk"] <= seg["active"])
    assert np.all(seg["with_csm"] <= seg["active"])

    # Touches: nothing is delivered or missed that was not released; late ⊂ delivered.
    c = lambda name: np.cumsum(seg[name], axis=0)  # noqa: E731
    assert np.all(c("tasks_delivered") + c("tasks_missed") <= c("tasks_released")), "touches exceed released"
    assert np.all(c("tasks_late") <= c("tasks_delivered"))
    assert np.all(c("tasks_unassigned") <= c("tasks_missed"))
    assert np.all(c("program_reached") <= c("program_sent"))
    assert np.all(seg["renewals_renewed"] <= seg["renewals_due"])
    assert np.all(seg["renewal_arr_renewed"] <= seg["renewal_arr_due"] * (1 + 1e-12))

    # Renewals happen only on term contracts.
    for s, spec in enumerate(scenario.segments.values()):
        if spec.contract.billing == "monthly":
            assert seg["renewals_due"][:, s].sum() == 0

    # Pods: utilisation ≤ 1 every month; books agree with customers' CSMs; caps hold.
    assert np.all(pod["busy_days"] <= pod["employed_days"] + 1e-9), "utilisation > 1"
    pod_specs = list(scenario.team.pods.values())
    served = np.zeros(S, dtype=bool)
    seg_names = list(scenario.segments)
    for j, p in enumerate(pod_specs):
        idx = [seg_names.index(s) for s in p.segments]
        served[idx] = True
        np.testing.assert_array_equal(
            pod["accounts"][:, j], seg["with_csm"][:, idx].sum(axis=1), err_msg="pod books != customers with a CSM"
        )
        if p.book_cap is not None:
            assert np.all(pod["accounts"][:, j] <= pod["headcount"][:, j] * p.book_cap)
        if p.headcount == 0 and not p.hires:
            assert pod["busy_days"][:, j].sum() == 0
    assert np.all(seg["with_csm"][:, ~served] == 0)
    assert np.all(seg["tasks_delivered"][:, ~served] == 0)

    # Window cohorts: the first starts with the initial book; end = start − churn (− contraction + expansion).
    np.testing.assert_array_equal(win["start_logos"][0], initial)
    np.testing.assert_array_equal(win["end_logos"], win["start_logos"] - win["churned_logos"])
    end = win["start_arr"] - win["churned_arr"] - win["contraction_arr"] + win["expansion_arr"]
    assert np.all(_close(win["end_arr"], end, win["start_arr"].max(initial=1.0))), "window ARR does not reconcile"
    for w in range(win["end_logos"].shape[0]):
        month = min((w + 1) * min(12, M), M) - 1
        assert np.all(win["end_logos"][w] <= seg["active"][month])


def check_kpis(results: SimulationResults) -> None:
    table = results.kpis_by_replication()

    def kpi(name, scope=None):
        rows = table[(table.kpi == name) & ((table.scope == scope) if scope else True)]
        return rows.sort_values(["scope", "replication"])["value"].to_numpy()

    A = results.arrays["window"]
    grr = kpi("grr")
    nrr = kpi("nrr")
    assert np.all(grr[np.isfinite(grr)] <= 1 + 1e-12)
    assert np.all(grr[np.isfinite(grr)] >= 0 - 1e-12)
    for name in ("logo_retention", "renewal_rate", "touch_miss_rate", "renewal_grr", "csm_utilisation"):
        v = kpi(name)
        v = v[np.isfinite(v)]
        assert np.all((v >= -1e-12) & (v <= 1 + 1e-12)), name
    # NRR two ways: the KPI (1 − headwind + tailwind) and the cohort's end/start ARR.
    start = A["start_arr"].sum(axis=(1, 2))
    ok = start > 0
    head = (A["churned_arr"] + A["contraction_arr"]).sum(axis=(1, 2))
    tail = A["expansion_arr"].sum(axis=(1, 2))
    nrr_all = kpi("nrr", "all")
    np.testing.assert_allclose(nrr_all[ok], 1 - head[ok] / start[ok] + tail[ok] / start[ok], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(nrr_all[ok], A["end_arr"].sum(axis=(1, 2))[ok] / start[ok], rtol=1e-9, atol=1e-12)
    assert np.all(np.isnan(nrr_all[~ok]))
    # GRR ≤ NRR exactly when expansion ≥ 0.
    assert np.all(grr[np.isfinite(grr)] <= nrr[np.isfinite(nrr)] + 1e-12)


def check_engine_state(engine: Engine) -> None:
    """After the run: every named CSM relation is two-way and respects the touch model and book cap."""
    for c in engine.active.values():
        assert c.alive
        if c.csm is not None:
            assert c.tm.uses_csm, f"{c.seg.name}-{c.k} on {c.tm.name} (no CSM tasks) holds a CSM book slot"
            assert c.pod is not None and c.csm in c.pod.csms and c in c.csm.customers
    for pod in engine.pods:
        for csm in pod.csms:
            assert len(csm.customers) <= pod.cap
            assert all(cust.alive and cust.csm is csm for cust in csm.customers)


def check_records(scenario, A: dict, records: list[dict]) -> None:
    """Per-customer records agree with the aggregated ledger: one record per episode."""
    seg = A["segment"]
    arrived = sum(s.initial_customers for s in scenario.segments.values())
    arrived += seg["new_logos"].sum() + seg["winback_logos"].sum()
    assert len(records) == arrived
    churned = [r for r in records if r["churned_day"] is not None]
    assert len(churned) == seg["churned_logos"].sum()
    assert len(records) - len(churned) == seg["active"][-1].sum()
    np.testing.assert_allclose(sum(r["arr_end"] for r in records if r["churned_day"] is None), seg["arr"][-1].sum())
    for r in records:
        assert r["arr_end"] > 0 and r["arr_start"] > 0
        if r["churned_day"] is not None:
            assert r["churned_day"] >= max(r["signed_day"], 0.0)
        for start, end, _reason in r["at_risk_spells"]:
            assert end is None or start <= end


def simulate_checked(data: dict, rep: int = 0):
    scenario = scenario_from_dict(data, source="generated")
    engine = Engine(scenario, rep, record=True)
    arrays = engine.run().arrays()
    check_engine_state(engine)
    check_ledger(scenario, arrays)
    check_records(scenario, arrays, engine.records)
    # Recording per-customer detail must not change a single number.
    plain = Engine(scenario, rep).run().arrays()
    for group in arrays:
        for name in arrays[group]:
            np.testing.assert_array_equal(arrays[group][name], plain[group][name], err_msg=f"{group}.{name}")
    results = SimulationResults(scenario=scenario, arrays=stack([arrays]), replication_ids=[rep])
    check_kpis(results)
    return scenario, arrays


@SETTINGS
@given(data=scenarios())
def test_invariants_hold_for_random_scenarios(data):
    simulate_checked(data)


def test_small_scenario_invariants(scenario_dict):
    """The shared small scenario, over several replications (a non-random anchor for the checks)."""
    for rep in range(4):
        scenario, A = simulate_checked(scenario_dict, rep)
        assert A["segment"]["churned_logos"].sum() > 0
        assert A["segment"]["winback_logos"].sum() > 0
        assert A["segment"]["tasks_delivered"].sum() > 0
        assert A["window"]["expansion_arr"].sum() > 0


def test_initial_book_renewing_on_a_month_boundary(scenario_dict):
    """Zero initial tenure puts every initial renewal exactly on a month end, the same instant as the
    month-end snapshot; stocks and flows must still agree."""
    for seg in scenario_dict["segments"].values():
        seg["initial_tenure_months"] = 0.0
        seg["contract"]["term_months"] = 3
    scenario_dict["horizon_months"] = 12
    simulate_checked(scenario_dict)


def test_handoff_tasks_reach_the_new_csm(scenario_dict):
    """When a CSM leaves, their accounts are handed to a colleague and the hand-off task goes to that
    colleague: with room in every book, no hand-off task is lost for want of a CSM."""
    scenario_dict["segments"]["enterprise"]["winback"]["probability"] = 0.0
    tasks = scenario_dict["touch_models"]["high_touch"]["tasks"]
    tasks["handoff_meeting"] = {"trigger": "handoff", "hours": 2, "priority": 0, "effects": {"at_risk": 0.8}}
    pod = scenario_dict["team"]["pods"]["enterprise"]
    pod.update(headcount=6, book_cap=None, attrition_per_year=1.0, backfill_days=10, handoff_risk=1.0, hires=[])
    scenario = scenario_from_dict(scenario_dict)
    A = Engine(scenario, 0).run().arrays()["segment"]
    assert A["handoffs"].sum() > 10
    assert A["tasks_unassigned"].sum() == 0


@pytest.mark.parametrize("headcount", [0, 1])
def test_no_capacity_no_csm_touches(scenario_dict, headcount):
    """A pod with no CSMs delivers nothing and books every released CSM task as missed for want of a CSM."""
    pod = scenario_dict["team"]["pods"]["enterprise"]
    pod.update(headcount=headcount, hires=[], attrition_per_year=0.0)
    scenario, A = simulate_checked(scenario_dict)
    seg = A["segment"]
    if headcount == 0:
        assert seg["tasks_delivered"].sum() == 0
        assert seg["tasks_missed"].sum() == seg["tasks_released"].sum() == seg["tasks_unassigned"].sum() > 0
        assert A["pod"]["employed_days"].sum() == 0
    else:
        assert seg["tasks_delivered"].sum() > 0


def test_customer_moved_to_tech_touch_while_waiting_for_a_csm_gets_none(scenario_dict):
    """An account waiting for room in a CSM book that is re-routed to a tech-touch model at renewal
    must leave the waiting line: a later hire must not give it a book slot."""
    ent = scenario_dict["segments"]["enterprise"]
    ent["arr"] = {"median": 10_000, "sigma": 0.0}
    ent["renewal"] = {"healthy": 1.0, "at_risk": 1.0}
    ent["expansion"] = {
        "contraction_probability": {"healthy": 1.0, "at_risk": 1.0},
        "contraction_mean_fraction": 0.9,
    }
    scenario_dict["policy"] = {"routes": [{"segment": "enterprise", "arr_below": 9_000, "touch_model": "tech_touch"}]}
    pod = scenario_dict["team"]["pods"]["enterprise"]
    pod.update(headcount=0, book_cap=None, attrition_per_year=0.0, hires=[{"month": 15, "count": 3}])
    scenario = scenario_from_dict(scenario_dict)
    engine = Engine(scenario, 0)
    A = engine.run().arrays()
    moved = [c for c in engine.active.values() if c.seg.name == "enterprise" and c.tm.name == "tech_touch"]
    assert moved, "the scenario should move some accounts to tech-touch"
    check_engine_state(engine)
    check_ledger(scenario, A)


@pytest.mark.parametrize("name", ["baseline", "high_touch", "low_touch"])
def test_shipped_scenarios_invariants(name):
    """The shipped scenarios at full size (two annual windows): the same identities at realistic scale."""
    from cssim import load_scenario

    scenario = load_scenario(Path(__file__).resolve().parents[1] / "scenarios" / f"{name}.yaml", {"horizon_months": 24})
    engine = Engine(scenario, 0)
    arrays = engine.run().arrays()
    check_engine_state(engine)
    check_ledger(scenario, arrays)
    check_kpis(SimulationResults(scenario=scenario, arrays=stack([arrays]), replication_ids=[0]))
    assert arrays["segment"]["tasks_delivered"].sum() > 1000
