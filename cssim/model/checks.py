"""Model checks: read a valid scenario as a CS leader would, before simulating.

The schema (:mod:`cssim.scenario`) says whether a scenario is well formed;
these checks say whether its forecast would mislead — a segment that can never
churn, a curve the engine will not use, CSM work nobody does, a pod whose
queue can only grow. Each finding is one line naming the field; the loader
issues them as :class:`~cssim.errors.ModelWarning` (``--strict``: errors).

The offered load of a pod is computed from the scenario alone (no
simulation): expected task hours a year against CSM hours a year,

    ρ = Σ_tasks customers × tasks per customer-year × hours
        / (headcount × hours_per_week × customer_facing_share × 52.18 weeks)

where customers is a segment's average book over the horizon ignoring churn
(``initial_customers + new_logos_per_month × horizon_months / 2``, at most
``headcount × book_cap``), split between touch models by the policy's ARR
bands, and tasks per customer-year are ``365.25 / every_days`` (cadence),
``rate_per_year`` (poisson), ``12 / term_months`` (renewal window, term
contracts), the rate of becoming at-risk (champion changes plus one over the
mean time to at-risk), the pod's attrition (hand-offs); onboarding tasks count
once per new logo. Ignoring churn overstates the load, so ρ ≥ 1 means the
queue grows even before churn thins the book.

Assumptions
-----------
- The at-risk rate is that of a healthy customer; time spent at-risk is not
  subtracted (again an overstatement).
- Ramp-up of new hires is ignored; hires count from their month.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .scenario import FittedCurve, NeverCurve, Scenario

__all__ = ["PodLoad", "offered_load", "model_checks"]

DAYS_PER_YEAR = 365.25
WEEKS_PER_YEAR = DAYS_PER_YEAR / 7.0


@dataclass
class PodLoad:
    """Offered load of one pod: task hours a year by task, and CSM hours a year."""

    pod: str
    capacity_hours: float
    task_hours: dict[str, float] = field(default_factory=dict)  # "touch_model.task" -> hours a year
    no_deadline: set[str] = field(default_factory=set)

    @property
    def demand_hours(self) -> float:
        return sum(self.task_hours.values())

    @property
    def rho(self) -> float:
        if self.capacity_hours <= 0:
            return math.inf if self.demand_hours > 0 else 0.0
        return self.demand_hours / self.capacity_hours

    def describe(self) -> str:
        rho = "∞" if math.isinf(self.rho) else f"{self.rho:.3g}" if self.rho >= 100 else f"{self.rho:.2f}"
        return (f"pod {self.pod}: offered load ρ = {rho} ({self.demand_hours:,.0f} task hours a year against "
                f"{self.capacity_hours:,.0f} CSM hours)")


def _arr_share(seg, low: float | None, high: float | None) -> float:
    """Share of a segment's new-customer ARR distribution (log-normal, clipped) in [low, high)."""
    arr = seg.arr

    def cdf(x: float | None) -> float:
        if x is None:
            return 1.0
        if arr.max is not None and x > arr.max:
            return 1.0
        if x <= arr.min:
            return 0.0
        if arr.sigma == 0:
            return 1.0 if x > arr.median else 0.0
        return 0.5 * (1.0 + math.erf(math.log(x / arr.median) / (arr.sigma * math.sqrt(2.0))))

    return max(0.0, cdf(high) - (cdf(low) if low is not None else 0.0))


def touch_model_shares(scenario: Scenario, segment: str) -> dict[str, float]:
    """Share of a segment's customers on each touch model (policy routes by ARR band, first match wins)."""
    seg = scenario.segments[segment]
    left, shares = 1.0, {}
    for route in scenario.policy.routes:
        if route.segment is not None and route.segment != segment:
            continue
        share = left * _arr_share(seg, route.arr_at_least, route.arr_below)
        shares[route.touch_model] = shares.get(route.touch_model, 0.0) + share
        left -= share
        if left <= 1e-12:
            break
    if left > 1e-12:
        shares[seg.touch_model] = shares.get(seg.touch_model, 0.0) + left
    return shares


def _curve_rate(spec) -> float:
    """Events a year of a curve used as a rate (one over its mean); 0 for ``never``."""
    if isinstance(spec, FittedCurve):
        spec = spec.concrete()
    if isinstance(spec, NeverCurve):
        return 0.0
    mean = spec.build().mean()
    return DAYS_PER_YEAR / mean if mean > 0 and math.isfinite(mean) else 0.0


def offered_load(scenario: Scenario) -> dict[str, PodLoad]:
    """Offered load of every pod, from the scenario alone (see the module docstring for the formula)."""
    horizon = scenario.horizon_months
    loads = {}
    for pod_name, pod in scenario.team.pods.items():
        hires = sum(h.count * (horizon - h.month) / horizon for h in pod.hires)
        csms = pod.headcount + hires
        load = PodLoad(pod_name, csms * pod.hours_per_week * pod.customer_facing_share * WEEKS_PER_YEAR)
        booked = sum(
            scenario.segments[s].initial_customers + scenario.segments[s].new_logos_per_month * horizon / 2.0
            for s in pod.segments
        )
        cap = csms * pod.book_cap if pod.book_cap is not None else math.inf
        served = min(1.0, cap / booked) if booked > 0 else 1.0
        for seg_name in pod.segments:
            seg = scenario.segments[seg_name]
            customers = (seg.initial_customers + seg.new_logos_per_month * horizon / 2.0) * served
            arrivals = seg.new_logos_per_month * 12.0 * served
            at_risk = seg.lifecycle.champion_change_per_year + _curve_rate(seg.lifecycle.at_risk)
            for tm_name, share in touch_model_shares(scenario, seg_name).items():
                for task_name, task in scenario.touch_models[tm_name].tasks.items():
                    if task.hours <= 0:
                        continue
                    per_customer = {
                        "cadence": DAYS_PER_YEAR / task.every_days if task.every_days else 0.0,
                        "poisson": task.rate_per_year or 0.0,
                        "renewal_window": 0.0 if seg.contract.billing == "monthly" else 12.0 / seg.contract.term_months,
                        "at_risk": at_risk,
                        "handoff": pod.attrition_per_year,
                        "onboarding": 0.0,
                    }[task.trigger]
                    count = customers * share * per_customer
                    if task.trigger == "onboarding":
                        count = arrivals * share
                    key = f"{tm_name}.{task_name}"
                    load.task_hours[key] = load.task_hours.get(key, 0.0) + count * task.hours
                    if task.deadline_days is None and count > 0:
                        load.no_deadline.add(key)
        loads[pod_name] = load
    return loads


def model_checks(scenario: Scenario, source: str = "<scenario>") -> list[str]:
    """Every finding of the model checks on ``scenario``, one line each, naming ``source`` and the field."""
    found = []
    for name, seg in scenario.segments.items():
        churn = seg.lifecycle.churn
        where = f"{source}: segments.{name}.lifecycle.churn"
        if seg.contract.billing == "monthly" and isinstance(churn, NeverCurve):
            found.append(
                f"{where}: missing for monthly billing (family never), so no {name} customer ever cancels and logo "
                "retention reads 100 %; give a churn curve (e.g. from cssim fit) or use billing: annual"
            )
        if seg.contract.billing == "annual" and not isinstance(churn, NeverCurve):
            kind = f"fitted ({churn.key})" if isinstance(churn, FittedCurve) else churn.family
            found.append(
                f"{where}: a churn curve ({kind}) is given but contract.billing is annual, so the engine does not use "
                "it (term contracts churn only at renewal, through renewal:); use billing: monthly, or fit renewal"
            )
        if scenario.pod_of(name) is None:
            for tm_name, share in touch_model_shares(scenario, name).items():
                tm = scenario.touch_models[tm_name]
                if share > 0 and tm.uses_csm:
                    tasks = ", ".join(t for t, spec in tm.tasks.items() if spec.hours > 0)
                    found.append(
                        f"{source}: segments.{name}: touch model {tm_name!r} needs CSM time ({tasks}) but no pod in "
                        f"team.pods serves segment {name!r}, so every such task is missed; add the segment to a pod"
                    )
    for pod_name, load in offered_load(scenario).items():
        if load.rho < 1.0:
            continue
        top = max(load.task_hours, key=load.task_hours.get)
        waits = ""
        if load.no_deadline:
            waits = (f"; tasks without deadline_days ({', '.join(sorted(load.no_deadline))}) wait longer and longer "
                     "instead of being missed")
        rho = "∞ (no CSM hours)" if math.isinf(load.rho) else f"{load.rho:.3g}" if load.rho >= 100 else f"{load.rho:.2f}"
        found.append(
            f"{source}: team.pods.{pod_name}: offered load ρ = {rho} ({load.demand_hours:,.0f} task hours a year "
            f"against {load.capacity_hours:,.0f} CSM hours), so the queue grows; largest: "
            f"touch_models.{top.replace('.', '.tasks.', 1)} ({load.task_hours[top]:,.0f} h){waits}"
        )
    return found
