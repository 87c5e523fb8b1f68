"""KPI definitions: each written once, with its formula, over stacked replications.

Every function takes ``A`` — the ledger arrays of all replications stacked on
a leading axis (segment series ``(R, months, segments)``, pod series
``(R, months, pods)``, window series ``(R, windows, segments)``) — and returns
an array ``(R, scopes)`` where the scopes are ``all`` followed by each segment
(or, for CSM KPIs, each pod). Ratios with a zero denominator are NaN: "no
renewals were due" is not "100 % renewed".

Flavours are named: *period* GRR/NRR/logo retention follow the customers
active at the start of each 12-month window (the whole horizon if shorter
than a year) and sum over complete windows; *renewal-cohort* GRR/NRR follow
the ARR that came up for renewal during the horizon (term contracts only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..core.clock import DAYS_PER_YEAR


@dataclass(frozen=True)
class KPI:
    name: str
    unit: str
    by: str  # "segment" or "pod"
    doc: str
    fn: Callable


def _with_total(per_scope: np.ndarray) -> np.ndarray:
    """Prepend an ``all`` column (sum over scopes) to an (R, scopes) array."""
    return np.concatenate([per_scope.sum(axis=1, keepdims=True), per_scope], axis=1)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _seg_total(A, name):
    """Sum of a segment flow over the horizon, with an ``all`` column: (R, 1 + S)."""
    return _with_total(A["segment"][name].sum(axis=1))


def _win_total(A, name):
    return _with_total(A["window"][name].sum(axis=1))


def _pod_total(A, name):
    return _with_total(A["pod"][name].sum(axis=1))


def logo_retention(A, ctx):
    """Period logo retention = Σ_w logos of window-start cohort still active at window end / Σ_w start logos."""
    return _ratio(_win_total(A, "end_logos"), _win_total(A, "start_logos"))


def grr(A, ctx):
    """Period gross revenue retention = 1 − (churned ARR + contraction ARR) / start ARR, cohort of each window.

    Per customer of the cohort: a churner loses its window-start ARR; a survivor's net ARR change over
    the window is its expansion (> 0) or contraction (< 0). So 0 ≤ GRR ≤ 1 and NRR = end ARR / start ARR.
    """
    lost = _win_total(A, "churned_arr") + _win_total(A, "contraction_arr")
    return 1.0 - _ratio(lost, _win_total(A, "start_arr"))


def nrr(A, ctx):
    """Period net revenue retention = 1 − headwind + tailwind, where headwind = (churn + contraction)/start
    ARR and tailwind = expansion/start ARR, cohort of each window (won-back customers count as new)."""
    start = _win_total(A, "start_arr")
    lost = _win_total(A, "churned_arr") + _win_total(A, "contraction_arr")
    return 1.0 - _ratio(lost, start) + _ratio(_win_total(A, "expansion_arr"), start)


def renewal_rate(A, ctx):
    """Logo renewal rate = renewals renewed / renewals due (term contracts, over the horizon)."""
    return _ratio(_seg_total(A, "renewals_renewed"), _seg_total(A, "renewals_due"))


def renewal_grr(A, ctx):
    """Renewal-cohort GRR = (ARR renewed at its pre-renewal value − contraction at renewal) / ARR due."""
    kept = _seg_total(A, "renewal_arr_renewed") - _seg_total(A, "renewal_contraction_arr")
    return _ratio(kept, _seg_total(A, "renewal_arr_due"))


def renewal_nrr(A, ctx):
    """Renewal-cohort NRR = ARR after renewal (with expansion and contraction) / ARR due."""
    after = (
        _seg_total(A, "renewal_arr_renewed")
        - _seg_total(A, "renewal_contraction_arr")
        + _seg_total(A, "renewal_expansion_arr")
    )
    return _ratio(after, _seg_total(A, "renewal_arr_due"))


def monthly_logo_churn(A, ctx):
    """Monthly logo churn rate = churned logos / Σ month-end active logos (mean over the horizon)."""
    return _ratio(_seg_total(A, "churned_logos"), _seg_total(A, "active"))


def ending_arr(A, ctx):
    """ARR of all active customers at the end of the horizon."""
    return _with_total(A["segment"]["arr"][:, -1, :])


def ending_logos(A, ctx):
    """Active customers at the end of the horizon."""
    return _with_total(A["segment"]["active"][:, -1, :])


def new_arr(A, ctx):
    """ARR of new logos signed during the horizon (won-back customers excluded)."""
    return _seg_total(A, "new_arr")


def expansion_arr(A, ctx):
    """Expansion ARR over the horizon (renewals and anniversaries)."""
    return _seg_total(A, "expansion_arr")


def contraction_arr(A, ctx):
    """Contraction ARR over the horizon."""
    return _seg_total(A, "contraction_arr")


def churned_arr(A, ctx):
    """ARR lost to churn over the horizon (ARR at the moment of churn)."""
    return _seg_total(A, "churned_arr")


def lifetime_value(A, ctx):
    """Customer lifetime value = mean ARR per active logo / annual logo churn, with annual logo churn
    = 1 − period logo retention (gross of CS cost; revenue, not margin)."""
    arr_per_logo = _ratio(_seg_total(A, "arr"), _seg_total(A, "active"))
    return _ratio(arr_per_logo, 1.0 - logo_retention(A, ctx))


def touches_delivered(A, ctx):
    """CSM tasks started before their deadline (count over the horizon)."""
    return _seg_total(A, "tasks_delivered")


def touches_late(A, ctx):
    """CSM tasks started after their due date but before their deadline (count)."""
    return _seg_total(A, "tasks_late")


def touches_missed(A, ctx):
    """CSM tasks never started: deadline passed in the queue, or the account had no CSM (count)."""
    return _seg_total(A, "tasks_missed")


def touch_miss_rate(A, ctx):
    """Share of CSM tasks missed = missed / (delivered + missed). Tasks still queued at the horizon are in
    neither: see ``backlog_at_horizon`` and ``touch_overdue_rate``."""
    missed = _seg_total(A, "tasks_missed")
    return _ratio(missed, missed + _seg_total(A, "tasks_delivered"))


def backlog_at_horizon(A, ctx):
    """CSM tasks still waiting for CSM time at the horizon, deadline not yet passed (count).

    A queue that never clears shows here even when no task has a deadline to miss."""
    return _seg_total(A, "tasks_waiting_at_end")


def touch_overdue_rate(A, ctx):
    """Share of CSM tasks not done on time = (late + missed + waiting past due at the horizon) /
    (delivered + missed + waiting at the horizon)."""
    overdue = _seg_total(A, "tasks_late") + _seg_total(A, "tasks_missed") + _seg_total(A, "tasks_overdue_at_end")
    total = _seg_total(A, "tasks_delivered") + _seg_total(A, "tasks_missed") + _seg_total(A, "tasks_waiting_at_end")
    return _ratio(overdue, total)


def mean_wait_days(A, ctx):
    """Mean wait for CSM time = Σ (start − release) / tasks delivered, in days."""
    return _ratio(_seg_total(A, "wait_days_sum"), _seg_total(A, "tasks_delivered"))


def csm_utilisation(A, ctx):
    """CSM utilisation = busy CSM-days / employed CSM-days (customer-facing time), ≤ 1."""
    return _ratio(_pod_total(A, "busy_days"), _pod_total(A, "employed_days"))


def csm_cost(A, ctx):
    """Fully loaded CSM cost over the horizon = Σ employed days × cost per year / 365.25."""
    cost = A["pod"]["employed_days"].sum(axis=1) * ctx["pod_cost"][None, :] / DAYS_PER_YEAR
    return _with_total(cost)


def accounts_per_csm(A, ctx):
    """Accounts in CSM books per CSM, averaged over month ends."""
    return _ratio(_pod_total(A, "accounts"), _pod_total(A, "headcount"))


def arr_per_csm(A, ctx):
    """ARR of the segments a pod serves per CSM, averaged over month ends (all: every pod's segments)."""
    arr = A["segment"]["arr"]  # (R, M, S)
    served = arr @ ctx["pod_segments"]  # (R, M, P)
    return _ratio(_with_total(served.sum(axis=1)), _pod_total(A, "headcount"))


def cost_per_retained_arr(A, ctx):
    """CSM cost per retained ARR dollar = annual CSM cost / annual ARR retained from window cohorts
    (start ARR − churn − contraction, averaged over windows)."""
    years = ctx["months"] / 12.0
    cost = csm_cost(A, ctx)[:, :1] / years
    retained = (
        A["window"]["start_arr"] - A["window"]["churned_arr"] - A["window"]["contraction_arr"]
    ).sum(axis=(1, 2)) / ctx["window_years"]
    return _ratio(cost, retained[:, None])


KPIS: tuple[KPI, ...] = tuple(
    KPI(fn.__name__, unit, by, (fn.__doc__ or "").strip(), fn)
    for fn, unit, by in (
        (grr, "ratio", "segment"),
        (nrr, "ratio", "segment"),
        (logo_retention, "ratio", "segment"),
        (renewal_rate, "ratio", "segment"),
        (renewal_grr, "ratio", "segment"),
        (renewal_nrr, "ratio", "segment"),
        (monthly_logo_churn, "ratio", "segment"),
        (ending_arr, "currency", "segment"),
        (ending_logos, "count", "segment"),
        (new_arr, "currency", "segment"),
        (expansion_arr, "currency", "segment"),
        (contraction_arr, "currency", "segment"),
        (churned_arr, "currency", "segment"),
        (lifetime_value, "currency", "segment"),
        (touches_delivered, "count", "segment"),
        (touches_late, "count", "segment"),
        (touches_missed, "count", "segment"),
        (touch_miss_rate, "ratio", "segment"),
        (touch_overdue_rate, "ratio", "segment"),
        (backlog_at_horizon, "count", "segment"),
        (mean_wait_days, "days", "segment"),
        (csm_utilisation, "ratio", "pod"),
        (accounts_per_csm, "count", "pod"),
        (arr_per_csm, "currency", "pod"),
        (csm_cost, "currency", "pod"),
        (cost_per_retained_arr, "ratio", "all"),
    )
)
KPI_NAMES = tuple(k.name for k in KPIS)
#: Each KPI's unit ("ratio", "currency", "count", ...) by name.
KPI_UNITS: dict[str, str] = {k.name: k.unit for k in KPIS}

#: What a money KPI's dollars are: a total over the horizon, an annual rate, or per customer.
MONEY_BASIS = {
    "ending_arr": "annual run-rate at horizon end",
    "new_arr": "horizon total",
    "expansion_arr": "horizon total",
    "contraction_arr": "horizon total",
    "churned_arr": "horizon total",
    "lifetime_value": "per customer",
    "arr_per_csm": "annual run-rate per CSM",
    "csm_cost": "horizon total",
}


def kpi_label(name: str) -> str:
    """The KPI's name with its money basis: ``csm_cost (horizon total)``; other KPIs unchanged."""
    basis = MONEY_BASIS.get(name)
    return f"{name} ({basis})" if basis else name


def retained_arr(A, ctx):
    """Annual ARR retained from window cohorts = Σ_w (start ARR − churned − contraction) / window years,
    per replication (all customers): what :func:`cost_per_retained_arr` divides by. Shape (R,)."""
    return (
        A["window"]["start_arr"] - A["window"]["churned_arr"] - A["window"]["contraction_arr"]
    ).sum(axis=(1, 2)) / ctx["window_years"]


def kpi_table(A, ctx, segments: list[str], pods: list[str]):
    """Long table of every KPI per replication: columns replication, kpi, scope, value."""
    import pandas as pd

    frames = []
    for kpi in KPIS:
        values = kpi.fn(A, ctx)
        scopes = ["all"] + (segments if kpi.by == "segment" else pods if kpi.by == "pod" else [])
        values = values[:, : len(scopes)]
        R = values.shape[0]
        frames.append(
            pd.DataFrame(
                {
                    "replication": np.repeat(np.arange(R), len(scopes)),
                    "kpi": kpi.name,
                    "scope": np.tile(scopes, R),
                    "value": values.reshape(-1),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
