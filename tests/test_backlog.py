"""A CSM queue that never clears must show: backlog at the horizon and tasks not done on time.

Without deadlines nothing is ever "missed", so the miss rate alone reads 0 % for a pod drowning in work.
"""

from __future__ import annotations

import numpy as np

from cssim import scenario_from_dict, simulate


def _scenario(every_days: float, deadline: float | None) -> dict:
    qbr = {"trigger": "cadence", "every_days": every_days, "hours": 5, "due_days": 14, "effects": {"at_risk": 0.9}}
    if deadline is not None:
        qbr["deadline_days"] = deadline
    return {
        "name": "drowning", "horizon_months": 12, "seed": 3, "replications": 2,
        "segments": {"ent": {
            "initial_customers": 40, "new_logos_per_month": 0, "arr": {"median": 50000, "sigma": 0.0},
            "contract": {"term_months": 12, "billing": "annual"}, "touch_model": "ht",
            "lifecycle": {"onboarding": {"family": "exponential", "scale": 30},
                          "growth": {"family": "exponential", "scale": 200},
                          "at_risk": {"family": "exponential", "scale": 400},
                          "recovery": {"family": "exponential", "scale": 60}},
        }},
        "touch_models": {"ht": {"tasks": {"qbr": qbr}}},
        "team": {"pods": {"p": {"segments": ["ent"], "headcount": 1, "cost_per_year": 150000}}},
    }


def kpi(results, name):
    return results.kpi(name).mean()


def test_an_overloaded_pod_without_deadlines_shows_its_backlog():
    # 40 accounts × a 5-hour QBR every 3 days ≈ 490 hours a week against one CSM's ~26 customer-facing hours.
    results = simulate(scenario_from_dict(_scenario(3, None)))
    assert kpi(results, "touch_miss_rate") == 0.0  # nothing can miss without a deadline ...
    assert kpi(results, "backlog_at_horizon") > 1000  # ... but the queue is thousands deep
    assert kpi(results, "touch_overdue_rate") > 0.9
    assert np.all(results.arrays["pod"]["backlog"][:, -1, 0] > 1000)


def test_a_pod_with_room_has_no_backlog():
    results = simulate(scenario_from_dict(_scenario(91, 45)))
    assert kpi(results, "backlog_at_horizon") < 5
    assert kpi(results, "touch_overdue_rate") < 0.05
