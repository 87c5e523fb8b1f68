"""Bootstrap parameter sets for fitted curves and renewal models: resample customers, refit.

The asymptotic covariance of a fit assumes a large sample and a roughly
normal sampling distribution of the log parameters. The bootstrap makes
neither assumption: it draws the history's customers with replacement, refits
the chosen model to each resampled history and keeps the refitted parameters,
so a scenario with ``parameter_uncertainty: bootstrap`` draws curves from
their empirical sampling distribution.

Customers, not rows, are resampled: a customer's episodes (win-backs) and its
renewals share the customer, and resampling rows would treat them as
independent and understate the spread. A drawn customer brings all its rows;
a customer drawn k times counts k times (an integer weight, which gives the
same likelihood as k copies).

Replicate ``b`` of key ``K`` (a segment) with seed ``s`` draws from the
stream ``SeedSequence(s, spawn_key=(name_key("bootstrap"), name_key(K), b))``
(:func:`cssim.streams.generator`): the same history and seed give the same
sets, a longer run extends a shorter one, and every curve of a segment and
its renewal model see the same resampled customers in the same replicate.

Assumptions
-----------
- Customers are independent; the segment's customers are the sampling unit.
- The family (and, for the piecewise exponential, the breakpoints) is fixed
  at the point fit's choice: the sets describe parameter uncertainty within
  that family, not the uncertainty of choosing it.
- A refit that fails (no convergence, a non-finite likelihood or parameter,
  a renewal coefficient that is not estimable in the resample) is skipped and
  counted; the kept sets are then conditional on success, which is why more
  than :data:`MAX_FAILED_SHARE` failures draws a warning.

This module does not import SimPy.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core import streams as S

__all__ = ["MAX_FAILED_SHARE", "Resamples", "bootstrap_renewal", "check_count", "resample_customers", "run_refits"]

#: Share of failed refits above which the sets are reported as unreliable (they over-represent easy resamples).
MAX_FAILED_SHARE = 0.2
_KIND = S.name_key("bootstrap")


def check_count(n, seed) -> None:
    """One-line ``ValueError`` naming the field for a bad replicate count or seed."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise ValueError(f"bootstrap: must be a whole number >= 0 (the number of refits), got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed: must be a whole number >= 0, got {seed!r}")


@dataclass(frozen=True)
class Resamples:
    """``counts[b, i]``: how often customer ``ids[i]`` is drawn in replicate ``b``."""

    ids: np.ndarray
    counts: np.ndarray

    @property
    def n(self) -> int:
        return int(self.counts.shape[0])

    def weights(self, customer_ids) -> np.ndarray:
        """Per replicate and row, the weight of the row's customer (all rows of a customer move together)."""
        keys = pd.Index(pd.Series(customer_ids).astype(str).to_numpy())
        pos = pd.Index(self.ids).get_indexer(keys)
        if (pos < 0).any():
            raise ValueError(f"customer_id: {keys[int(np.argmax(pos < 0))]!r} is not among the resampled customers")
        return self.counts[:, pos]


def resample_customers(customer_ids, n: int, seed: int, key: str) -> Resamples:
    """``n`` resamples with replacement of the distinct ``customer_ids`` (sorted, so row order does not matter)."""
    check_count(n, seed)
    ids = np.array(sorted({str(c) for c in customer_ids}), dtype=object)
    m = len(ids)
    counts = np.zeros((n, m), dtype=np.int64)
    for b in range(n):
        rng = S.generator(int(seed), (_KIND, S.name_key(key), b))
        counts[b] = np.bincount(rng.integers(0, m, m), minlength=m) if m else 0
    return Resamples(ids, counts)


def run_refits(label: str, n: int, refit, progress=None) -> tuple[list[list[float]], int]:
    """``refit(b)`` for each replicate ``b < n``: the parameter rows it returned and how many returned None.

    ``progress`` (a tqdm bar) advances once per replicate; more than
    :data:`MAX_FAILED_SHARE` failures warns, naming ``label``.
    """
    rows, failed = [], 0
    for b in range(n):
        row = refit(b)
        if row is None:
            failed += 1
        else:
            rows.append(row)
        if progress is not None:
            progress.update(1)
    if n and failed > MAX_FAILED_SHARE * n:
        warnings.warn(
            f"{label}: {failed} of {n} bootstrap refits failed; the kept sets over-represent the resamples "
            "that could be fitted",
            stacklevel=3,
        )
    return rows, failed


# --------------------------------------------------------------------------- renewal model


def _refit_renewal(kind: str, X: pd.DataFrame, y, w: np.ndarray) -> list[float] | None:
    """One renewal refit on the rows weighted by ``w``; None when a coefficient is not estimable or the fit fails."""
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import PerfectSeparationWarning

    idx = np.repeat(np.arange(len(X)), w)
    Xb = X.iloc[idx].reset_index(drop=True)
    yb = np.asarray(y)[idx]
    for col in X.columns:
        if col == "const":
            continue
        if Xb[col].nunique() < 2:
            return None
        if kind == "renewal_log" and len(np.unique(yb[Xb[col].to_numpy() == 1])) < 2:
            return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", PerfectSeparationWarning)
            if kind == "renewal_log":
                res = sm.Logit(yb.astype(float), Xb).fit(disp=0)
                ok = bool(res.mle_retvals.get("converged", True))
            else:
                res = sm.GLM(yb, Xb, family=sm.families.Binomial()).fit()
                ok = bool(getattr(res, "converged", True))
    except Exception:  # a resample the model cannot be fitted to is counted, not fatal
        return None
    params = [float(res.params[c]) for c in X.columns]
    return params if ok and np.isfinite(params).all() else None


def bootstrap_renewal(designs: dict, renewal: dict, resamples: dict, progress=None) -> None:
    """Add ``bootstrap`` (coefficient sets on the point fit's names) and ``bootstrap_failed`` to each
    segment's ``renewal[seg]["parameters"]``, refitting on each replicate's resampled customers.

    ``designs`` are :func:`cssim.fitting.covariates.renewal_designs` of the history the model was fitted to."""
    for seg, (kind, X, y, customers) in designs.items():
        params = renewal[seg]["parameters"]
        if list(X.columns) != list(params["names"]):
            raise ValueError(f"renewal {seg}: design columns {list(X.columns)} differ from the fit's {params['names']}")
        W = resamples[seg].weights(customers)
        rows, failed = run_refits(f"renewal {seg}", W.shape[0],
                                  lambda b, kind=kind, X=X, y=y, W=W: _refit_renewal(kind, X, y, W[b]), progress)
        params["bootstrap"] = rows
        params["bootstrap_failed"] = failed
