"""Touch-model hazard ratios that are not just selection: naive, covariate-adjusted and IPW Cox fits.

In a company's history the touch model is not assigned at random: big
accounts get high-touch, and big accounts churn less anyway. A Cox model on
the touch model alone (the *naive* estimate) then credits high-touch with the
loyalty of the accounts it was given. :class:`TouchEffects` estimates the
hazard ratio of each touch model against a reference three ways, side by
side:

``naive``
    lifelines ``CoxPHFitter`` on the touch-model dummies only.
``adjusted``
    the same plus the recorded covariates (log ARR, segment, size, ...):
    a hazard ratio *conditional* on the covariates.
``ipw``
    inverse probability of treatment weighting. A statsmodels propensity
    model — ``Logit`` for two touch models, ``MNLogit`` for more — gives
    each customer's probability of the touch model it got, P(T = t | X);
    the stabilised weight is P(T = t) / P(T = t | X), optionally with
    customers of extreme propensity dropped (``trim``) and extreme weights
    clipped at percentiles (``truncate``). A weighted Cox model on the
    touch dummies with robust (sandwich) variance gives a *marginal*
    (population-average) hazard ratio.

Diagnostics say whether the weighting can be trusted: the propensity
scores by touch model (``propensity_``, ``overlap_``), the standardised mean
difference of every covariate before and after weighting (``balance_``) and
the effective sample size of each group (``ess_``). Poor overlap or
remaining imbalance is reported in ``warnings_``, in the ``warning`` column
of :meth:`TouchEffects.summary` and in :meth:`TouchEffects.report`.

Assumptions
-----------
- No unmeasured confounding: given the covariates, which touch model a
  customer got is unrelated to its churn risk. Nothing here can check this;
  a covariate that drives both assignment and churn but is not recorded
  biases all three estimates.
- Positivity: every customer could have got every touch model (each
  propensity is away from 0 and 1). Where it fails (``overlap_``), both the
  adjusted and the IPW estimates extrapolate.
- Proportional hazards, as in :mod:`cssim.fitting.covariates`; the adjusted
  model also assumes the covariates act log-linearly on the hazard, the IPW
  estimate that the propensity model is right.
- The conditional (adjusted) and marginal (IPW) hazard ratios are
  different quantities when the covariates affect churn (the Cox hazard
  ratio is non-collapsible); they agree when the touch model has no effect.
- The robust variance of the IPW fit treats the weights as known, which is
  conservative for these (ATE) weights.

This module does not import SimPy.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.contract import Results, Summary
from ..core.errors import DataError
from ..core.files import read_table
from ..core.output import build_manifest
from ..model.scenario import Z95
from ..plots.causal import covariate_balance, touch_effects_forest
from ..plots.figures import save
from .history import History, is_history_table, read_history
from .snapshot import read_flags
from .univariate import TRANSITIONS, durations

__all__ = [
    "TouchEffects", "touch_effects", "touch_frame_from_history", "touch_table", "SUMMARY_COLUMNS", "METHODS",
]

METHODS = ("naive", "adjusted", "ipw")
SUMMARY_COLUMNS = [
    "method", "touch_model", "reference", "hazard_ratio", "lo", "hi", "p", "n", "events", "estimand", "warning",
    "refused",
]
BALANCE_COLUMNS = ["covariate", "touch_model", "reference", "smd_before", "smd_after"]
#: |SMD| above this after weighting counts as imbalance (the usual rule of thumb).
SMD_THRESHOLD = 0.1
#: A propensity below this (or a share above 1 - this) counts as extreme.
EXTREME_PROPENSITY = 0.01
#: Warn when more than this share of a group has an extreme propensity, or lies outside the common support.
POOR_OVERLAP_SHARE = 0.05
#: Warn when a group's effective sample size under the weights is below this share of its size.
LOW_ESS_SHARE = 0.25
MIN_EVENTS = 10
#: Refuse an IPW ratio whose touch model (or reference) keeps an effective sample size below this under the weights.
MIN_ESS = 30
#: Refuse a ratio whose touch model (or reference) has fewer events than this among the customers the fit uses.
MIN_GROUP_EVENTS = 5
#: A ratio outside [1/HR_LIMIT, HR_LIMIT] is a ratio at 0 or ∞ (a group without events, a separated fit).
HR_LIMIT = 1e4
_ESTIMAND = {"naive": "crude", "adjusted": "conditional", "ipw": "marginal"}


# --------------------------------------------------------------------------- input checks


def _label(source: str | None) -> str:
    return f"{source}: " if source else ""


def _check_columns(df: pd.DataFrame, needed: dict[str, str], source: str | None) -> None:
    for role, col in needed.items():
        if col not in df.columns:
            raise DataError(
                f"{_label(source)}missing {role} column {col!r} "
                f"(columns found: {', '.join(map(str, df.columns)) or 'none'})"
            )


def _show(value) -> str:
    """A cell value for a message: numbers plainly (``-3``), anything else quoted."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return f"{float(value):g}"
    return repr(str(value))


def _check_values(df: pd.DataFrame, duration: str, event: str, group: str, covariates, source) -> None:
    lab = _label(source)
    for col in (duration, event, group, *covariates):
        bad = df[col].isna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{lab}column {col!r}: {int(bad.sum())} empty values (first at data row {i + 1}); "
                            "fill them or drop those rows")
    d = pd.to_numeric(df[duration], errors="coerce")
    if d.isna().any() or not np.isfinite(d).all() or (d <= 0).any():
        i = int(np.flatnonzero((d.isna() | ~np.isfinite(d.fillna(0)) | (d <= 0)).to_numpy())[0])
        raise DataError(f"{lab}column {duration!r}: {_show(df[duration].iloc[i])} at data row {i + 1}; "
                        "durations must be numbers > 0")
    e = pd.to_numeric(df[event], errors="coerce")
    if not e.isin([0, 1]).all():
        i = int(np.flatnonzero((~e.isin([0, 1])).to_numpy())[0])
        raise DataError(f"{lab}column {event!r}: {_show(df[event].iloc[i])} at data row {i + 1}; "
                        "events must be 1 (happened) or 0 (censored)")
    if e.sum() == 0:
        raise DataError(f"{lab}no events in column {event!r} (every row is censored); nothing to estimate")
    groups = df[group].astype(str).value_counts()
    if len(groups) < 2:
        raise DataError(f"{lab}column {group!r} has a single touch model ({groups.index[0]!r}); "
                        "touch effects need at least two groups to compare")
    ev = e.groupby(df[group].astype(str)).sum()
    none = [g for g, k in ev.items() if k == 0]
    if none:
        raise DataError(f"{lab}touch model {none[0]!r} has no events ({int(groups[none[0]])} customers, all censored); "
                        "its hazard ratio cannot be estimated — merge it with another group or leave it out")
    if e.sum() < MIN_EVENTS:
        raise DataError(f"{lab}only {int(e.sum())} events; at least {MIN_EVENTS} are needed to estimate touch effects")
    for col in covariates:
        if df[col].nunique() < 2:
            raise DataError(f"{lab}covariate {col!r} has a single value ({_show(df[col].iloc[0])}); "
                            "it cannot adjust for anything — leave it out")


def _design(df: pd.DataFrame, covariates: Sequence[str]) -> pd.DataFrame:
    """Numeric columns as they are; text / category / bool columns as dummies (first level dropped)."""
    parts = []
    for col in covariates:
        s = df[col]
        if pd.api.types.is_bool_dtype(s):
            parts.append(s.astype(float).rename(col))
        elif pd.api.types.is_numeric_dtype(s):
            parts.append(s.astype(float).rename(col))
        else:
            levels = sorted(s.astype(str).unique())
            for lev in levels[1:]:
                parts.append((s.astype(str) == lev).astype(float).rename(f"{col}[{lev}]"))
    return pd.concat(parts, axis=1) if parts else pd.DataFrame(index=df.index)


def _smd(x: np.ndarray, in_t: np.ndarray, in_r: np.ndarray, w: np.ndarray | None) -> float:
    """Standardised mean difference of group t vs r; the denominator is the unweighted pooled SD."""
    xt, xr = x[in_t], x[in_r]
    sd = math.sqrt((xt.var(ddof=1) + xr.var(ddof=1)) / 2.0)
    if sd == 0.0:  # constant within each group (e.g. a segment dummy when segment decides the touch model)
        sd = float(np.concatenate([xt, xr]).std(ddof=1))
    if w is None:
        diff = xt.mean() - xr.mean()
    else:
        diff = np.average(xt, weights=w[in_t]) - np.average(xr, weights=w[in_r])
    if sd == 0.0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return float(diff / sd)


def _ess(w: np.ndarray) -> float:
    return float(w.sum() ** 2 / (w**2).sum()) if len(w) else 0.0


# --------------------------------------------------------------------------- the estimator


class TouchEffects(Results):
    """Naive, covariate-adjusted and inverse-probability-weighted touch-model hazard ratios.

    Parameters
    ----------
    data : DataFrame
        One row per customer (or episode): a duration (> 0), an event flag
        (1 = the transition happened, 0 = censored), the touch model and the
        covariates. Numeric covariates enter as they are (pass log ARR, not
        ARR); text or category covariates become dummies.
    duration, event, group : str
        Column names of the duration, the event flag and the touch model.
    covariates : sequence of str
        Columns the assignment may depend on (log ARR, segment, size, ...).
    entry : str, optional
        Left-truncation time (lifelines ``entry_col``), e.g. when the data
        window opened on customers already part-way through their clock.
    reference : str, optional
        Touch model the others are compared to (default: the most common).
    alpha : float
        1 − confidence level of the intervals.
    trim : float, optional
        Drop customers whose propensity for any touch model is below
        ``trim`` (e.g. 0.02) before the IPW fit.
    truncate : float or (float, float), optional
        Clip the stabilised weights at these percentiles (0.01 → the 1st and
        99th).
    source : str, optional
        File name used in error messages.

    Attributes (after :meth:`fit`)
    -------------------------------
    naive_, adjusted_, ipw_ : lifelines.CoxPHFitter
    propensity_model_ : statsmodels results (Logit or MNLogit)
    propensity_ : DataFrame
        P(touch model | covariates) per row, a column per touch model, plus
        ``touch_model``.
    weights_ : Series
        Stabilised (trimmed customers 0, truncated) weights.
    balance_ : DataFrame
        ``covariate, touch_model, reference, smd_before, smd_after``.
    overlap_ : DataFrame
        Per touch model: size, propensity quantiles among its customers and
        among the others, share with extreme propensity, share outside the
        common support, effective sample size.
    ess_ : dict
        Effective sample size (Σw)²/Σw² per touch model.
    warnings_ : list of str
        Overlap, balance and fitting problems, in words.
    """

    def __init__(
        self,
        data: pd.DataFrame,
        duration: str = "duration",
        event: str = "event",
        group: str = "touch_model",
        covariates: Sequence[str] = (),
        entry: str | None = None,
        reference: str | None = None,
        alpha: float = 0.05,
        trim: float | None = None,
        truncate: float | tuple[float, float] | None = None,
        source: str | None = None,
        transition: str | None = None,
    ):
        if isinstance(covariates, str):
            covariates = [c.strip() for c in covariates.split(",") if c.strip()]
        self.duration, self.event, self.group = duration, event, group
        self.covariates = list(covariates)
        self.entry = entry
        self.alpha = alpha
        self.trim = trim
        self.truncate = truncate
        self.source = source
        self.transition = transition
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        if trim is not None and not 0.0 <= trim < 0.5:
            raise ValueError(f"trim must be in [0, 0.5), got {trim}")
        needed = {"duration": duration, "event": event, "touch-model": group}
        needed.update({f"covariate {c!r}": c for c in self.covariates})
        if entry:
            needed["entry"] = entry
        if not isinstance(data, pd.DataFrame):
            raise TypeError("data must be a pandas DataFrame")
        _check_columns(data, needed, source)
        if group in self.covariates:
            raise DataError(f"{_label(source)}the touch-model column {group!r} cannot also be a covariate")
        _check_values(data, duration, event, group, self.covariates, source)
        self.data = data.reset_index(drop=True)
        counts = self.data[group].astype(str).value_counts()
        self.groups = sorted(counts.index)
        if reference is None:
            reference = str(counts.idxmax())
        elif str(reference) not in self.groups:
            raise DataError(f"{_label(source)}reference touch model {reference!r} is not in column {group!r} "
                            f"(found: {', '.join(self.groups)})")
        self.reference = str(reference)
        self.others = [g for g in self.groups if g != self.reference]

    # ------------------------------------------------------------------ fitting

    def _base(self) -> pd.DataFrame:
        d = self.data
        base = pd.DataFrame({"_T": d[self.duration].astype(float), "_E": d[self.event].astype(int)})
        if self.entry:
            base["_entry"] = d[self.entry].astype(float)
        g = d[self.group].astype(str)
        for m in self.others:
            base[f"touch[{m}]"] = (g == m).astype(float)
        return base

    def _cox(self, frame: pd.DataFrame, weights: bool = False):
        from lifelines import CoxPHFitter
        from lifelines.exceptions import ConvergenceError

        kwargs = {"entry_col": "_entry"} if self.entry else {}
        if weights:
            kwargs.update(weights_col="_w", robust=True)
        last = None
        for penalizer in (0.0, 1e-4):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    return CoxPHFitter(alpha=self.alpha, penalizer=penalizer).fit(frame, "_T", "_E", **kwargs)
            except (ConvergenceError, np.linalg.LinAlgError, ValueError) as exc:
                last = exc
        raise DataError(f"{_label(self.source)}the Cox model did not converge ({str(last).splitlines()[0]})")

    def _propensity(self, X: pd.DataFrame):
        import statsmodels.api as sm

        g = self.data[self.group].astype(str)
        exog = sm.add_constant(X, has_constant="add")
        # Standardise the continuous columns: Newton steps converge on any scale.
        for c in exog.columns[1:]:
            sd = exog[c].std()
            if sd > 0 and exog[c].nunique() > 2:
                exog[c] = (exog[c] - exog[c].mean()) / sd
        codes = pd.Categorical(g, categories=self.groups).codes
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if len(self.groups) == 2:
                endog = (g == self.others[0]).astype(float)
                res = sm.Logit(endog, exog).fit(disp=0, maxiter=200)
                p1 = np.asarray(res.predict(exog), dtype=float)
                probs = {self.others[0]: p1, self.reference: 1.0 - p1}
            else:
                res = sm.MNLogit(codes, exog).fit(disp=0, maxiter=200, method="newton")
                pr = np.asarray(res.predict(exog), dtype=float)
                probs = {m: pr[:, k] for k, m in enumerate(self.groups)}
        ps = pd.DataFrame({m: probs[m] for m in self.groups}, index=self.data.index)
        if not np.isfinite(ps.to_numpy()).all():
            raise DataError(f"{_label(self.source)}the propensity model did not converge; "
                            "fewer covariates or more data are needed")
        return res, ps

    def fit(self) -> TouchEffects:
        """Fit the three Cox models and the propensity model; compute the diagnostics. Returns ``self``."""
        self.warnings_: list[str] = []
        self._warnings_about: list[tuple[str | None, str]] = []
        d = self.data
        g = d[self.group].astype(str).to_numpy()
        base = self._base()
        X = _design(d, self.covariates)
        self.design_ = X
        self.naive_ = self._cox(base)
        self.adjusted_ = self._cox(pd.concat([base, X], axis=1)) if len(X.columns) else None

        # Propensity model and weights.
        if len(X.columns):
            self.propensity_model_, ps = self._propensity(X)
        else:
            self.propensity_model_ = None
            ps = pd.DataFrame({m: np.full(len(d), np.mean(g == m)) for m in self.groups}, index=d.index)
        p_own = ps.to_numpy()[np.arange(len(d)), pd.Categorical(g, categories=self.groups).codes]
        marginal = pd.Series(g).value_counts(normalize=True)
        w = marginal.reindex(g).to_numpy() / np.clip(p_own, 1e-12, None)
        keep = np.ones(len(d), dtype=bool)
        if self.trim:
            keep = (ps.to_numpy() >= self.trim).all(axis=1)
            for m in self.groups:
                if not keep[g == m].any():
                    raise DataError(f"{_label(self.source)}trim {self.trim} drops every {m!r} customer; use a smaller trim")
            if (~keep).any():
                self._warn(None, f"trim {self.trim}: {int((~keep).sum())} customers with an extreme propensity "
                                      "left out of the IPW fit")
        w = np.where(keep, w, 0.0)
        if self.truncate is not None:
            lo_q, hi_q = (self.truncate, 1 - self.truncate) if np.isscalar(self.truncate) else self.truncate
            lo, hi = np.quantile(w[keep], [lo_q, hi_q])
            w = np.where(keep, np.clip(w, lo, hi), 0.0)
        self.propensity_ = ps.assign(touch_model=g)
        self.weights_ = pd.Series(w, index=d.index, name="weight")

        wb = base.assign(_w=w)[keep]
        self.ipw_ = self._cox(wb, weights=True)
        self.ess_ = {m: _ess(w[(g == m) & keep]) for m in self.groups}
        self.balance_ = self._balance(X, g, w, keep)
        self.overlap_ = self._overlap(ps, g)
        self._diagnose()
        self.refused_ = self._refusals(g, keep)
        return self

    def _ratios(self):
        """Each fitted method's hazard ratio per touch model: ``(method, cph, touch model, hr, lo, hi, p)``."""
        for method in METHODS:
            cph = getattr(self, f"{method}_")
            if cph is None:
                continue
            s = cph.summary
            lo_col = next(k for k in s.columns if k.startswith("exp(coef) lower"))
            hi_col = next(k for k in s.columns if k.startswith("exp(coef) upper"))
            for m in self.others:
                c = f"touch[{m}]"
                yield (method, cph, m, *(float(s.loc[c, k]) for k in ("exp(coef)", lo_col, hi_col, "p")))

    def _refusals(self, g: np.ndarray, keep: np.ndarray) -> dict[tuple[str, str], str]:
        """(method, touch model) → why its hazard ratio is not an estimate anyone should use.

        A ratio is refused when it sits at 0 or ∞ (beyond :data:`HR_LIMIT`), when its
        interval is not finite or has no width, when the touch model or the reference
        has fewer than :data:`MIN_GROUP_EVENTS` events among the customers the fit uses,
        or (IPW) when either keeps an effective sample size below :data:`MIN_ESS`.
        """
        out = {}
        events = self.data[self.event].to_numpy().astype(int)
        for method, _cph, m, hr, lo, hi, _p in self._ratios():
            used = keep if method == "ipw" else np.ones(len(g), dtype=bool)
            why = None
            for grp in (m, self.reference):
                n_ev = int(events[(g == grp) & used].sum())
                if n_ev < MIN_GROUP_EVENTS:
                    why = (f"{grp} has {n_ev} events among the {int(((g == grp) & used).sum())} customers "
                           f"{'kept' if method == 'ipw' and self.trim else 'fitted'} (need {MIN_GROUP_EVENTS})")
                    break
            if why is None and method == "ipw":
                for grp in (m, self.reference):
                    if self.ess_[grp] < MIN_ESS:
                        why = (f"effective sample size of {grp} is {self.ess_[grp]:.0f} under the weights"
                               f"{' after trim ' + str(self.trim) if self.trim else ''} (need {MIN_ESS})")
                        break
            if why is None and not (1.0 / HR_LIMIT < hr < HR_LIMIT):
                why = f"hazard ratio {hr:.3g} is at {'0' if hr <= 1 else 'infinity'} (the fit separates the groups)"
            if why is None and not (np.isfinite(lo) and np.isfinite(hi) and lo > 0 and hi / lo > 1 + 1e-6):
                why = f"its interval ({lo:.3g}–{hi:.3g}) is not finite or has no width"
            if why is not None:
                out[(method, m)] = why
        return out

    def _balance(self, X: pd.DataFrame, g: np.ndarray, w: np.ndarray, keep: np.ndarray) -> pd.DataFrame:
        rows = []
        in_r = g == self.reference
        for m in self.others:
            in_t = g == m
            for c in X.columns:
                x = X[c].to_numpy(dtype=float)
                rows.append({
                    "covariate": c, "touch_model": m, "reference": self.reference,
                    "smd_before": _smd(x, in_t, in_r, None),
                    "smd_after": _smd(x, in_t & keep, in_r & keep, w),
                })
        return pd.DataFrame(rows, columns=BALANCE_COLUMNS)

    def _overlap(self, ps: pd.DataFrame, g: np.ndarray) -> pd.DataFrame:
        rows = []
        for m in self.groups:
            e = ps[m].to_numpy()
            own, other = e[g == m], e[g != m]
            lo, hi = max(own.min(), other.min()), min(own.max(), other.max())
            rows.append({
                "touch_model": m,
                "n": int(len(own)),
                "events": int(self.data[self.event][g == m].sum()),
                "ps_own_q05": float(np.quantile(own, 0.05)), "ps_own_median": float(np.median(own)),
                "ps_own_q95": float(np.quantile(own, 0.95)),
                "ps_others_q05": float(np.quantile(other, 0.05)), "ps_others_median": float(np.median(other)),
                "ps_others_q95": float(np.quantile(other, 0.95)),
                "share_extreme": float(np.mean((e < EXTREME_PROPENSITY) | (e > 1 - EXTREME_PROPENSITY))),
                "share_outside_support": float(np.mean((e < lo) | (e > hi))),
                "ess": self.ess_[m],
                "ess_share": self.ess_[m] / max(len(own), 1),
            })
        return pd.DataFrame(rows)

    def _warn(self, about: str | None, text: str) -> None:
        self.warnings_.append(text)
        self._warnings_about.append((about, text))

    def _diagnose(self) -> None:
        ps = self.propensity_
        g = ps["touch_model"].to_numpy()
        for _, r in self.overlap_.iterrows():
            m = r["touch_model"]
            e = ps[m].to_numpy()
            own, other = e[g == m], e[g != m]
            if own.min() >= other.max() or own.max() <= other.min():
                self._warn(m, f"no overlap: the covariates separate {m} from the other customers completely; "
                              f"the adjusted and IPW hazard ratios of {m} are extrapolation, not evidence")
            elif r["share_extreme"] > POOR_OVERLAP_SHARE:
                self._warn(m, f"poor overlap: {r['share_extreme']:.0%} of customers have P({m}) below "
                              f"{EXTREME_PROPENSITY} or above {1 - EXTREME_PROPENSITY}; the covariates nearly "
                              f"decide who gets {m}")
            elif r["share_outside_support"] > POOR_OVERLAP_SHARE:
                self._warn(m, f"poor overlap: {r['share_outside_support']:.0%} of customers have P({m}) outside "
                              f"the range shared by {m} and the other customers")
            if r["ess_share"] < LOW_ESS_SHARE:
                self._warn(m, f"low effective sample size: {m} has ESS {r['ess']:.0f} of {r['n']} under the "
                              "weights (a few customers carry the IPW estimate); consider trim or truncate")
        bad = self.balance_[self.balance_["smd_after"].abs() > SMD_THRESHOLD]
        if len(bad):
            worst = bad.loc[bad["smd_after"].abs().idxmax()]
            self._warn(None, f"imbalance after weighting: {len(bad)} covariate(s) with |SMD| > {SMD_THRESHOLD} "
                             f"(worst {worst['covariate']} for {worst['touch_model']}: {worst['smd_after']:+.2f}); "
                             "the propensity model may be misspecified")

    # ------------------------------------------------------------------ results

    def _check_fitted(self) -> None:
        if not hasattr(self, "naive_"):
            raise AttributeError("not fitted yet; call .fit() first")

    KIND = "touch_effects"

    @property
    def level(self) -> float:
        """Level of the hazard-ratio intervals (lifelines' ``1 - alpha``)."""
        return 1.0 - self.alpha

    def summary(self) -> Summary:
        """One row per method × touch model: ``method, touch_model, reference, hazard_ratio, lo, hi, p, n,
        events, estimand, warning`` (the warning column is filled on IPW rows when overlap or balance is poor).
        Prints as :meth:`report`."""
        return Summary(self.estimates(), text=self.report())

    def estimates(self) -> pd.DataFrame:
        """The table :meth:`summary` shows (see there)."""
        self._check_fitted()
        rows = []
        for method, cph, m, hr, lo, hi, p in self._ratios():
            rows.append({
                "method": method, "touch_model": m, "reference": self.reference,
                "hazard_ratio": hr, "lo": lo, "hi": hi, "p": p,
                "n": int(cph._n_examples), "events": int(cph.event_observed.sum()),
                "estimand": _ESTIMAND[method],
                "warning": "" if method == "naive" else "; ".join(
                    t for about, t in self._warnings_about if about in (None, m, self.reference)),
                "refused": self.refused_.get((method, m), ""),
            })
            if rows[-1]["refused"]:  # never a number a scenario could pick up
                rows[-1].update(hazard_ratio=np.nan, lo=np.nan, hi=np.nan, p=np.nan)
        return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)

    def to_effects(self, method: str = "adjusted", transition: str | None = None) -> dict:
        """Hazard ratios as a scenario ``effects`` fragment per touch model.

        ``{touch_model: {transition: hr, "intervals": {transition: [lo, hi]}}}``
        with the reference at 1.0 — to paste into the ``effects`` of that touch
        model's tasks (scenario ``touch_models.<name>.tasks.<task>.effects``).
        ``intervals`` is the 95 % interval whatever ``alpha`` (rescaled on the
        log scale), so that forecasts draw the ratio from its estimation
        uncertainty (:mod:`cssim.uncertainty`). cssim applies a task's effect
        only while the task is in effect, so spread the touch-model ratio over
        its tasks, or put it on the one recurring task.
        """
        from scipy.stats import norm

        self._check_fitted()
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        tr = transition or self.transition or "churn"
        s = self.estimates()
        s = s[s["method"] == method]
        widen = Z95 / float(norm.ppf(1 - self.alpha / 2))
        out = {self.reference: {tr: 1.0}}
        for _, r in s.iterrows():
            if r["refused"]:
                warnings.warn(f"{method} hazard ratio of {r['touch_model']} refused ({r['refused']}); "
                              "left out of the effects", UserWarning, stacklevel=2)
                continue
            hr = round(float(r["hazard_ratio"]), 4)
            lo = hr * (float(r["lo"]) / float(r["hazard_ratio"])) ** widen
            hi = hr * (float(r["hi"]) / float(r["hazard_ratio"])) ** widen
            out[r["touch_model"]] = {tr: hr, "intervals": {tr: [round(min(lo, hr), 4), round(max(hi, hr), 4)]}}
        return out

    def report(self) -> str:
        """A plain-text table of the three estimates, the balance summary and every warning."""
        self._check_fitted()
        s = self.estimates()
        level = int(round((1 - self.alpha) * 100))
        what = f" on {self.transition}" if self.transition else ""
        lines = [f"Touch-model hazard ratios{what} vs {self.reference} ({level} % intervals)", ""]
        lines.append(f"{'method':<9} {'touch model':<16} {'HR':>7}  {'interval':<17} {'p':>8}  estimand")
        for _, r in s.iterrows():
            if r["refused"]:
                lines.append(f"{r['method']:<9} {r['touch_model']:<16} {'refused':>7}  ({r['refused']})")
                continue
            lines.append(f"{r['method']:<9} {r['touch_model']:<16} {r['hazard_ratio']:>7.3f}  "
                         f"{r['lo']:.3f}–{r['hi']:.3f}{'':<5} {r['p']:>8.3g}  {r['estimand']}")
        b = self.balance_
        if len(b):
            lines += ["", f"Covariate balance: max |SMD| {b['smd_before'].abs().max():.3f} before weighting, "
                      f"{b['smd_after'].abs().max():.3f} after (threshold {SMD_THRESHOLD})."]
        ess = ", ".join(f"{m} {v:.0f}/{int((self.propensity_['touch_model'] == m).sum())}" for m, v in self.ess_.items())
        lines.append(f"Effective sample size under the weights: {ess}.")
        if self.warnings_:
            lines += [""] + [f"WARNING: {w}" for w in self.warnings_]
        return "\n".join(lines)

    def print_summary(self) -> None:
        print(self.report())

    @property
    def manifest(self) -> dict:
        return build_manifest(
            self.KIND, source=self.source, transition=self.transition, covariates=list(self.covariates),
            reference=self.reference, trim=self.trim, truncate=self.truncate, level=self.level,
        )

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"touch_effects": self.estimates(), "balance": self.balance_, "overlap": self.overlap_}

    def files(self) -> dict[str, str]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # refusals are in the report and under "refused"
            effects = {m: self.to_effects(m) for m in METHODS}
        refused = {}
        for (m, tm), why in self.refused_.items():
            refused.setdefault(m, {})[tm] = why
        if refused:
            effects["refused"] = refused
        return {"effects.json": json.dumps(effects, indent=2) + "\n"}

    def write_figures(self, folder: Path) -> None:
        save(touch_effects_forest(self), folder / "touch_effects_forest.png")
        save(covariate_balance(self), folder / "covariate_balance.png")

    def plot_forest(self, ax=None, **kwargs):
        return touch_effects_forest(self, ax=ax, **kwargs)

    def plot_balance(self, ax=None, **kwargs):
        return covariate_balance(self, ax=ax, **kwargs)


def touch_effects(data: pd.DataFrame, **kwargs) -> TouchEffects:
    """``TouchEffects(data, **kwargs).fit()``."""
    return TouchEffects(data, **kwargs).fit()


# --------------------------------------------------------------------------- from a customer history


def touch_frame_from_history(history, transition: str = "churn", covariates: Sequence[str] | None = None) -> tuple[
        pd.DataFrame, list[str]]:
    """Per-customer table for :class:`TouchEffects` from a customer history.

    ``history`` is a :class:`cssim.fitting.history.History` or a path. The
    durations, events and left truncation of ``transition`` come from
    :func:`cssim.fitting.univariate.durations`. Covariates are history
    columns; ``arr`` enters as ``log_arr`` (log ARR, customers with ARR 0
    get the smallest positive ARR), other numeric columns as they are, text
    columns as dummies. By default: ``arr`` and ``segment``, those that vary.

    Returns the table (``duration, event, entry, touch_model`` and the
    covariates) and the names of the covariate columns in it.
    """
    h = history if isinstance(history, History) else read_history(history)
    if transition not in TRANSITIONS:
        raise DataError(f"{h.source}: unknown transition {transition!r}; one of {', '.join(TRANSITIONS)}")
    f = h.frame
    if covariates is None:
        covariates = [c for c in ("arr", "segment") if c in f.columns and f[c].notna().all() and f[c].nunique() > 1]
    covariates = [c.strip().lower() for c in covariates if c.strip()]
    for c in covariates:
        if c not in f.columns:
            raise DataError(f"{h.source}: no column {c!r} for --covariates (columns: {', '.join(map(str, f.columns))})")
        if c in ("touch_model", "customer_id") or c.endswith("_date"):
            raise DataError(f"{h.source}: column {c!r} cannot be a covariate (use attributes known at assignment, "
                            "e.g. arr, segment, employees)")
    # durations() keeps a subset of rows; carry the row number in customer_id to join covariates back.
    tagged = dataclasses.replace(h, frame=f.assign(customer_id=np.arange(len(f)).astype(str)))
    d = durations(tagged, transition)
    rows = d["customer_id"].astype(int).to_numpy()
    out = pd.DataFrame({
        "duration": d["duration"].to_numpy(), "event": d["event"].to_numpy(), "entry": d["entry"].to_numpy(),
        "touch_model": d["touch_model"].astype(str).to_numpy(),
        "customer_id": f["customer_id"].to_numpy()[rows],
    })
    names = []
    for c in covariates:
        col = f[c].iloc[rows].reset_index(drop=True)
        if c == "arr":
            arr = pd.to_numeric(col, errors="coerce")
            if arr.isna().any():
                raise DataError(f"{h.source}: column 'arr' is empty for {int(arr.isna().sum())} customers; "
                                "fill it or leave arr out of the covariates")
            pos = arr[arr > 0]
            floor = pos.min() if len(pos) else 1.0
            out["log_arr"] = np.log(arr.clip(lower=floor))
            names.append("log_arr")
            continue
        num = pd.to_numeric(col, errors="coerce")
        if col.astype(str).str.strip().ne("").all() and num.notna().all():
            out[c] = num.astype(float)
        else:
            out[c] = col.astype(str).str.strip()
        names.append(c)
    return out, names


# --------------------------------------------------------------------------- from a file


def _read_table(path: Path) -> pd.DataFrame:
    return read_table(path, "a per-customer table", error=DataError, text=False)


def touch_table(path, transition: str = "churn", covariates: str | None = None, duration=None, event=None,
                group=None, entry=None):
    """(table, covariate columns, entry column) of a file for :class:`TouchEffects`: a customer history's
    ``transition`` episodes, or any per-customer table whose columns ``duration``, ``event`` and ``group`` name."""
    path = Path(path)
    explicit = any(v is not None for v in (duration, event, group))
    covs = None if covariates is None else [c.strip() for c in covariates.split(",") if c.strip()]
    if not explicit:
        raw = _read_table(path)
        if not is_history_table(raw.columns):
            raise DataError(f"{path}: not a customer history (no customer_id and signed_date columns); "
                            "for another table name its columns with --duration, --event and --group")
        frame, names = touch_frame_from_history(path, transition, covs)
        return frame, names, ("entry" if (frame["entry"] > 0).any() else None)
    missing = [o for o, v in (("--duration", duration), ("--event", event), ("--group", group)) if v is None]
    if missing:
        raise DataError(f"{path}: a table that is not a customer history needs --duration, --event and --group "
                        f"(missing {', '.join(missing)})")
    frame = _read_table(path)
    if event in frame.columns and not pd.api.types.is_numeric_dtype(frame[event]):
        frame[event] = read_flags(frame[event], event, str(path))  # Yes/No, True/False as 1/0
    covs = covs or []
    for c in covs:
        if c not in frame.columns:
            raise DataError(f"{path}: missing covariate column {c!r} "
                            f"(columns found: {', '.join(map(str, frame.columns))})")
    names = []
    for c in covs:
        if c.lower() == "arr" and pd.api.types.is_numeric_dtype(frame[c]) and (frame[c] > 0).all():
            frame["log_arr"] = np.log(frame[c].astype(float))
            names.append("log_arr")
        else:
            names.append(c)
    return frame, names, entry
