"""The naive forecasts a back-test scores cssim against: a flat churn rate and a constant hazard from the trailing
year before the cutoff, with new logos at the trailing rate (drawn from its posterior unless fixed)."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd

from ..core.clock import DAYS_PER_MONTH
from .cutoff import METRICS, date_column

__all__ = ["N_ACQUISITION_PATHS", "TRAILING_MONTHS", "acquisition_paths", "baseline_rates", "simulate_baseline"]

TRAILING_MONTHS = 12


def baseline_rates(known: pd.DataFrame, cutoff: dt.date) -> dict[str, dict[str, float]]:
    """Per segment: flat trailing monthly churn rate and constant-hazard (exponential MLE) monthly rate."""
    cut = pd.Timestamp(cutoff)
    signed, churn = date_column(known, "signed_date"), date_column(known, "churn_date")
    entry = date_column(known, "observed_from").fillna(signed)
    entry = entry.where(entry > signed, signed)
    out = {}
    for seg in sorted(known["segment"].unique()):
        m = known["segment"] == seg
        s, c, e = signed[m], churn[m], entry[m]
        # Flat rate: churned in the trailing window ÷ customer-months active in it.
        events, exposure = 0.0, 0.0
        for k in range(TRAILING_MONTHS):
            a = cut - pd.Timedelta(days=(TRAILING_MONTHS - k) * DAYS_PER_MONTH)
            b = a + pd.Timedelta(days=DAYS_PER_MONTH)
            at_start = (s <= a) & (c.isna() | (c > a))
            exposure += at_start.sum()
            events += (at_start & c.notna() & (c > a) & (c <= b)).sum()
        end = c.fillna(cut).clip(upper=cut)
        days = (end - e).dt.days.clip(lower=0).sum()
        n_events = int(c.notna().sum())
        hazard = n_events / days if days > 0 else 0.0
        out[seg] = {
            "flat_rate": events / exposure if exposure > 0 else 0.0,
            "constant_hazard": 1.0 - math.exp(-hazard * DAYS_PER_MONTH),
            "events": n_events,
        }
    return out


N_ACQUISITION_PATHS = 500


def acquisition_paths(n_recent: int, months: int, rng: np.random.Generator, uncertain: bool = True) -> np.ndarray:
    """(paths × months) new-logo counts after the cutoff, given ``n_recent`` arrivals in the 12 months before it.

    Each path is Poisson month by month around its own rate, drawn from the
    rate's posterior Gamma(n + ½, 12 per year) (Jeffreys prior) when
    ``uncertain``; otherwise every path uses the point estimate n / 12.
    """
    if uncertain:
        lam = rng.gamma(n_recent + 0.5, 1.0 / TRAILING_MONTHS, size=N_ACQUISITION_PATHS)
    else:
        lam = np.full(N_ACQUISITION_PATHS, n_recent / TRAILING_MONTHS)
    return rng.poisson(lam[:, None], size=(N_ACQUISITION_PATHS, months))


def simulate_baseline(rate: float, book_arr: np.ndarray, arrivals: np.ndarray, new_arr: np.ndarray, months: int,
                       reps: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Customer-level constant monthly churn ``rate``; ``arrivals``: (reps × months) new logos.

    Returns (reps × months) arrays of the metrics.
    """
    out = {k: np.zeros((reps, months)) for k in METRICS}
    pool = new_arr if len(new_arr) else np.array([0.0])
    for r in range(reps):
        arr = book_arr.copy()
        for m in range(months):
            leave = rng.random(len(arr)) < rate
            out["churned"][r, m] = leave.sum()
            arr = np.concatenate([arr[~leave], rng.choice(pool, size=int(arrivals[r, m]))])
            out["active_logos"][r, m] = len(arr)
            out["arr"][r, m] = arr.sum()
    out["renewed"][:] = np.nan  # these baselines say nothing about renewals
    return out
