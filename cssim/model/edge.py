"""How much of a forecast lies beyond the data's edge: customer-time at tenures the fitted curves never saw.

A curve fitted to a history is evidence only up to the tenure where its risk
set thinned out (fewer than 20 customers at risk: ``tail.edge`` of a fitted
curve, see :mod:`cssim.fitting.univariate`). A forecast that keeps an old book
for years spends much of its customer-time beyond that edge, where the hazard
is whatever the family extrapolates (or the tail policy holds).

:func:`edge_exposure` estimates, before anything runs, the share of simulated
customer-time each segment spends beyond the edge of each tenure-clocked
curve (``churn`` and ``at_risk`` run from signing, so tenure is their clock):

    share = E[∫ 1{a + u > edge} S(a + u)/S(a) du] / E[∫ S(a + u)/S(a) du],

over the horizon, with a the tenure at the start (the book's tenures, or
uniform on ``[0, initial_tenure_months]``) or at arrival (0, weighted by the
expected new logos of each month) and S the segment's churn curve as built
(the point estimate, tail policy applied). It leaves out renewal losses (term
contracts churn at renewal, through the renewal model) and win-backs, so it
is the exposure of a book that only loses customers through ``churn``; the
exact share needs the engine to record customer-days by tenure band, which it
does not yet. :func:`warn_beyond_edge` warns when a share is material
(:data:`MATERIAL_SHARE`).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..core.clock import DAYS_PER_MONTH

__all__ = ["MATERIAL_SHARE", "edge_exposure", "warn_beyond_edge"]

#: A share of customer-time beyond the edge above this draws a warning.
MATERIAL_SHARE = 0.10
#: Tenure-clocked curves (their clock starts at signing).
TENURE_CLOCKS = ("churn", "at_risk")
_STEP_DAYS = 7.0
_BINS = 60


def _tail_of(spec):
    """The ``tail`` block of a curve spec (an average: its chosen family's)."""
    if getattr(spec, "family", None) == "averaged":
        spec = spec.chosen()
    return getattr(spec, "tail", None)


def _start_tenures(seg) -> tuple[np.ndarray, np.ndarray]:
    """(tenure in days, weight) of the initial book, binned."""
    if seg.book is not None:
        t = np.array([float(r["tenure_days"]) for r in seg.book.rows])
        if not len(t):
            return np.zeros(0), np.zeros(0)
        counts, edges = np.histogram(t, bins=min(_BINS, max(len(np.unique(t)), 1)))
        mids = (edges[:-1] + edges[1:]) / 2
        keep = counts > 0
        return mids[keep], counts[keep].astype(float)
    n = seg.initial_customers
    if n == 0:
        return np.zeros(0), np.zeros(0)
    top = seg.initial_tenure_months * DAYS_PER_MONTH
    mids = (np.arange(_BINS) + 0.5) / _BINS * top
    return mids, np.full(_BINS, n / _BINS)


def _arrivals(seg, months: int) -> np.ndarray:
    """Expected new logos in each month of the horizon."""
    acq = seg.acquisition
    if acq is not None and acq.paths:
        paths = np.clip(np.asarray(acq.paths, dtype=float), 0.0, None)
        return paths[:, acq.offset: acq.offset + months].mean(axis=0)
    return np.full(months, float(seg.new_logos_per_month))


def _exposure(curve, tenures: np.ndarray, weights: np.ndarray, remaining: np.ndarray, edge: float):
    """(customer-days beyond the edge, all customer-days) of customers at ``tenures`` with ``remaining`` days."""
    beyond = total = 0.0
    for a, w, d in zip(tenures, weights, remaining, strict=True):
        if w <= 0 or d <= 0:
            continue
        u = np.arange(0.0, d, _STEP_DAYS) + _STEP_DAYS / 2
        h0 = curve.cumhaz(a)
        s = np.exp(-(np.array([curve.cumhaz(a + x) for x in u]) - h0))
        step = np.minimum(_STEP_DAYS, d - (u - _STEP_DAYS / 2))
        total += w * float(np.sum(s * step))
        beyond += w * float(np.sum(s * step * (a + u > edge)))
    return beyond, total


def edge_exposure(scenario) -> pd.DataFrame:
    """Per segment × tenure-clocked fitted curve: the edge and the share of customer-time beyond it.

    Columns: ``segment, transition, edge_days, policy, share_beyond_edge``; one
    row per curve that records its edge (``tail``), i.e. fitted curves.
    """
    rows = []
    horizon = scenario.horizon_months * DAYS_PER_MONTH
    for name, seg in scenario.segments.items():
        life = seg.lifecycle
        churn = life.churn.concrete() if hasattr(life.churn, "concrete") else life.churn
        survival = churn.build()
        for tr in TENURE_CLOCKS:
            spec = getattr(life, tr)
            spec = spec.concrete() if hasattr(spec, "concrete") else spec
            tail = _tail_of(spec)
            if tail is None:
                continue
            a, w = _start_tenures(seg)
            b0, t0 = _exposure(survival, a, w, np.full(len(a), horizon), tail.edge)
            arrivals = _arrivals(seg, scenario.horizon_months)
            starts = (np.arange(scenario.horizon_months) + 0.5) * DAYS_PER_MONTH
            b1, t1 = _exposure(survival, np.zeros(len(starts)), arrivals, horizon - starts, tail.edge)
            total = t0 + t1
            rows.append({"segment": name, "transition": tr, "edge_days": tail.edge, "policy": tail.policy,
                         "share_beyond_edge": (b0 + b1) / total if total > 0 else 0.0})
    return pd.DataFrame(rows, columns=["segment", "transition", "edge_days", "policy", "share_beyond_edge"])


def warn_beyond_edge(scenario, source: str | None = None) -> pd.DataFrame:
    """Warn (one line per curve) when a material share of a forecast lies beyond a fitted curve's data edge."""
    table = edge_exposure(scenario)
    where = f"{source}: " if source else ""
    for r in table.itertuples():
        if r.share_beyond_edge > MATERIAL_SHARE:
            how = {"hold": "the hazard there is held at its level over the last well-observed window (tail: hold)",
                   "fitted": "the fitted curve is extrapolated there (tail: fitted)",
                   "auto": "the fitted hazard is extrapolated there where it falls and held where it would rise "
                           "(tail: auto)"}[r.policy]
            warnings.warn(
                f"{where}segments.{r.segment}.lifecycle.{r.transition}: about {r.share_beyond_edge:.0%} of the "
                f"simulated customer-time lies beyond the data's edge ({r.edge_days:.0f} days of tenure; fewer than "
                f"20 customers were at risk beyond it); {how}: treat that part of the forecast as an assumption",
                UserWarning, stacklevel=2,
            )
    return table
