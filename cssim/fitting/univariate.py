"""Fit one lifecycle transition of one segment: Kaplan–Meier plus parametric candidates.

Durations come from a customer history (:mod:`cssim.fitting.history`), per
transition:

=============  ===========================================  =====================================
transition     clock                                         event / censoring
=============  ===========================================  =====================================
``onboarding``  kickoff (or signing) → onboarded              censored at churn or the extract date
``growth``      onboarded → matured                           censored at churn or the extract date
``at_risk``     signing → first at-risk                       censored at churn or the extract date
``recovery``    first at-risk → recovered                     censored at churn or the extract date
``churn``       signing → churn                               censored at the extract date
=============  ===========================================  =====================================

Each is left-truncated at ``observed_from`` (lifelines' ``entry=``): a customer
who entered the data window part-way through a clock only counts from then.

Candidates are lifelines fitters whose curves cssim can simulate: exponential,
Weibull, log-normal, log-logistic, piecewise-exponential (breakpoints at
quantiles of the observed event times) and two heterogeneity-aware custom
``ParametricUnivariateFitter`` s — exponential–gamma, H = shape·log(1 + t/scale),
and Weibull–gamma, H = shape·log(1 + (t/scale)^rho), parameterised exactly as
:class:`cssim.curves.ExponentialGamma` and :class:`cssim.curves.WeibullGamma`.
The lowest AIC among those wins. lifelines' ``SplineFitter`` (Royston–Parmar,
knots at the minimum, terciles and maximum of the event times) is fitted and
scored as a flexibility benchmark — a spline far ahead on AIC says no
simulatable family describes the data — but has no cssim curve, so it is
never chosen.

Assumptions
-----------
- Customers of a segment are independent and share one curve (covariates
  are modelled separately, in :mod:`cssim.fitting.covariates`); the pooled
  curve mixes touch models in the proportions of the history.
- Censoring and truncation are non-informative.
- Parameter intervals are lifelines' Wald intervals on its estimation scale.

This module does not import SimPy.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.errors import DataError
from ..model.scenario import CurveSpec
from ..model.uncertainty import averaged_spec
from ..plots.figures import survival_vs_km
from .bootstrap import resample_customers, run_refits
from .families import DEFAULT_WEIGHTING, FAMILY_ORDER, REPORT_ONLY, TRANSITIONS, WEIGHTINGS, parse_families
from .history import HALF_DAY, History

__all__ = ["TRANSITIONS", "durations", "UnivariateFit", "fit_transition", "FAMILY_ORDER", "parse_families",
           "WEIGHTINGS", "DEFAULT_WEIGHTING", "stacking_weights", "pseudo_bma_weights"]

MIN_EVENTS = 5
#: A report-only candidate (the spline) this many AIC points ahead of the chosen family is worth a note:
#: no simulatable family describes the data well.
NOTE_DELTA_AIC = 10.0
#: The data's edge: beyond the last duration with at least this many customers at risk the fit is extrapolation.
MIN_AT_RISK = 20
#: The tail policy holds the hazard at its average over the last ``EDGE_WINDOW`` share of the well-observed range.
EDGE_WINDOW = 0.25
#: Folds of the customers for the cross-validated weights (stacking, pseudo-BMA+).
CV_FOLDS = 5
#: Bayesian-bootstrap draws of the pseudo-BMA+ weights.
PSEUDO_BMA_DRAWS = 1000


def durations(history: History, transition: str, segment: str | None = None) -> pd.DataFrame:
    """Durations (days) of ``transition`` with ``event`` (1/0), ``entry`` and covariates.

    Rows whose clock ended before the data window opened (entry ≥ duration)
    are left out: they were never observed at risk.
    """
    if transition not in TRANSITIONS:
        raise ValueError(f"unknown transition {transition!r}; one of {', '.join(TRANSITIONS)}")
    f = history.frame
    if segment is not None:
        f = f[f["segment"] == segment]
    extract = history.extract_date
    stop = f["churn_date"].fillna(extract)
    if transition == "onboarding":
        start = f["kickoff_date"].fillna(f["signed_date"])
        end_event = f["onboarded_date"]
    elif transition == "growth":
        start, end_event = f["onboarded_date"], f["matured_date"]
    elif transition == "at_risk":
        start, end_event = f["signed_date"], f["first_at_risk_date"]
    elif transition == "recovery":
        start, end_event = f["first_at_risk_date"], f["recovered_date"]
    else:
        start, end_event = f["signed_date"], f["churn_date"]
    keep = start.notna()
    event = end_event.notna()
    end = end_event.where(event, stop)
    dur = (end - start).dt.days.astype(float)
    entry = (f["observed_from"] - start).dt.days.astype(float).fillna(0.0).clip(lower=0.0)
    keep &= dur.notna()
    dur = dur.clip(lower=HALF_DAY)
    # An event on the clock's first observed day: keep it just after entry.
    keep &= ~((entry >= dur) & ~(event & (entry == dur)))
    out = pd.DataFrame(
        {
            "duration": np.maximum(dur, entry + HALF_DAY * (entry > 0)),
            "event": event.astype(int),
            "entry": entry,
            "segment": f["segment"],
            "touch_model": f["touch_model"],
            "arr": f["arr"],
            "customer_id": f["customer_id"],
        }
    )[keep.to_numpy()]
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------- custom fitters


_FITTERS = None


def _custom_fitters():
    """The heterogeneity-aware lifelines fitters (built on first use: lifelines is slow to import)."""
    global _FITTERS
    if _FITTERS is not None:
        return _FITTERS
    import autograd.numpy as anp
    from lifelines.fitters import ParametricUnivariateFitter

    class ExponentialGammaFitter(ParametricUnivariateFitter):
        """H(t) = shape · log(1 + t/scale): exponential lifetimes whose rates are Gamma-distributed.

        S(t) = (1 + t/scale)^-shape (Lomax). The hazard shape/(scale + t) falls with
        tenure because the survivors are the customers with low rates. Same
        parameters as :class:`cssim.curves.ExponentialGamma`.
        """

        _fitted_parameter_names = ["shape_", "scale_"]
        _bounds = [(1e-6, 1e4), (1e-6, None)]

        def _cumulative_hazard(self, params, times):
            shape, scale = params
            return shape * anp.log1p(times / scale)

    class WeibullGammaFitter(ParametricUnivariateFitter):
        """H(t) = shape · log(1 + (t/scale)^rho): Weibull lifetimes with a Gamma frailty.

        Same parameters as :class:`cssim.curves.WeibullGamma`; rho = 1 is the
        exponential–gamma, shape → ∞ with scale·shape^(1/rho) fixed is a Weibull.
        """

        _fitted_parameter_names = ["shape_", "scale_", "rho_"]
        _bounds = [(1e-6, 1e4), (1e-6, None), (1e-3, 50.0)]

        def _cumulative_hazard(self, params, times):
            shape, scale, rho = params
            return shape * anp.log1p((times / scale) ** rho)

    _FITTERS = (ExponentialGammaFitter, WeibullGammaFitter)
    return _FITTERS


def _spec(family: str, p: dict, breakpoints=None) -> dict:
    """cssim curve spec (days) from lifelines' fitted parameters."""
    if family == "exponential":
        return {"family": "exponential", "scale": p["lambda_"]}
    if family == "weibull":
        return {"family": "weibull", "scale": p["lambda_"], "shape": p["rho_"]}
    if family == "lognormal":
        return {"family": "lognormal", "median": math.exp(p["mu_"]), "sigma": p["sigma_"]}
    if family == "loglogistic":
        return {"family": "loglogistic", "scale": p["alpha_"], "shape": p["beta_"]}
    if family == "exponential_gamma":
        return {"family": "exponential_gamma", "scale": p["scale_"], "shape": p["shape_"]}
    if family == "weibull_gamma":
        return {"family": "weibull_gamma", "scale": p["scale_"], "rho": p["rho_"], "shape": p["shape_"]}
    if family == "piecewise_exponential":
        rates = [1.0 / p[f"lambda_{i}_"] for i in range(len(breakpoints) + 1)]
        return {"family": "piecewise_exponential", "breakpoints": list(breakpoints), "rates": rates}
    raise ValueError(family)


def _at_bound(f) -> list[str]:
    """Names of the fitted parameters sitting on a finite bound of the fitter's ``_bounds``."""
    out = []
    for name, (lo, hi) in zip(f._fitted_parameter_names, getattr(f, "_bounds", ())):
        v = float(getattr(f, name))
        for b in (lo, hi):
            if b is not None and np.isfinite(b) and abs(v - b) <= 1e-4 * max(1.0, abs(b)):
                out.append(name)
    return out


def _breakpoints(d: pd.DataFrame) -> list[float]:
    times = d.loc[d["event"] == 1, "duration"].to_numpy()
    qs = np.unique(np.round(np.quantile(times, [0.25, 0.5, 0.75]), 1))
    return [float(q) for q in qs if q > 0]


def _make(family: str, d: pd.DataFrame, alpha: float, fits: dict, weights=None, breakpoints=None, start=None):
    """Fit ``family`` to ``d``; a bootstrap refit passes integer ``weights`` (times each row is drawn), the
    point fit's ``breakpoints`` (piecewise exponential) and its estimates as ``start``."""
    import lifelines as ll

    T, E, entry = d["duration"].to_numpy(), d["event"].to_numpy(), d["entry"].to_numpy()
    kw = {"entry": entry if (entry > 0).any() else None}
    if weights is not None:
        kw["weights"] = np.asarray(weights)
    if start is not None:
        kw["initial_point"] = np.asarray(start, dtype=float)
    med = float(np.median(T))
    if family == "exponential":
        return ll.ExponentialFitter(alpha=alpha).fit(T, E, **kw), None
    if family == "weibull":
        return ll.WeibullFitter(alpha=alpha).fit(T, E, **kw), None
    if family == "lognormal":
        return ll.LogNormalFitter(alpha=alpha).fit(T, E, **kw), None
    if family == "loglogistic":
        return ll.LogLogisticFitter(alpha=alpha).fit(T, E, **kw), None
    if family == "piecewise_exponential":
        bp = list(breakpoints) if breakpoints is not None else _breakpoints(d)
        if not bp:
            raise ValueError("too few distinct event times for breakpoints")
        return ll.PiecewiseExponentialFitter(bp, alpha=alpha).fit(T, E, **kw), bp
    if family == "spline":
        times = T[E == 1]
        knots = np.unique(np.quantile(times, [0.0, 1 / 3, 2 / 3, 1.0]))
        if len(knots) < 3:
            raise ValueError("too few distinct event times for spline knots")
        # Start at the Weibull (H = exp(phi_0 + phi_1 log t) with no spline terms): from lifelines'
        # default start the optimiser often stops far from the optimum on long, truncated data.
        w = fits.get("weibull")
        guess = None if w is None else np.r_[-w.rho_ * math.log(w.lambda_), w.rho_, np.zeros(len(knots) - 2)]
        kw.setdefault("initial_point", guess)
        return ll.SplineFitter(knots, alpha=alpha).fit(T, E, **kw), None
    ExpGamma, WeibullGamma = _custom_fitters()
    if family == "exponential_gamma":
        kw.setdefault("initial_point", np.array([1.0, max(med, 1.0)]))
        return ExpGamma(alpha=alpha).fit(T, E, **kw), None
    if family == "weibull_gamma":
        w = fits.get("weibull")
        guess = np.array([1.0, w.lambda_, w.rho_]) if w is not None else np.array([1.0, max(med, 1.0), 1.0])
        kw.setdefault("initial_point", guess)
        return WeibullGamma(alpha=alpha).fit(T, E, **kw), None
    raise ValueError(family)


@dataclass
class UnivariateFit:
    """Kaplan–Meier and parametric candidates for one segment × transition.

    ``fit()`` returns self; fitted quantities end in ``_``: ``km_`` (lifelines
    KaplanMeierFitter), ``fitters_`` (family → lifelines fitter),
    ``candidates_`` (one row per family: log-likelihood, AIC, BIC, parameters
    with CIs, ``simulatable``, ``chosen``), ``best_`` (the simulatable family
    with the lowest AIC).
    """

    data: pd.DataFrame
    segment: str = "all"
    transition: str = "churn"
    alpha: float = 0.05
    families: tuple = FAMILY_ORDER
    weighting: str | None = None  # one of WEIGHTINGS; None: DEFAULT_WEIGHTING

    def fit(self) -> UnivariateFit:
        from lifelines import KaplanMeierFitter

        d = self.data
        self.n_ = int(len(d))
        self.events_ = int(d["event"].sum()) if len(d) else 0
        self.truncated_ = int((d["entry"] > 0).sum()) if len(d) else 0
        if self.events_ < MIN_EVENTS:
            raise DataError(
                f"{self.segment}/{self.transition}: only {self.events_} events in {self.n_} customers; "
                f"need at least {MIN_EVENTS} to fit a curve"
            )
        entry = d["entry"].to_numpy()
        self.km_ = KaplanMeierFitter(alpha=self.alpha, label="Kaplan–Meier").fit(
            d["duration"], d["event"], entry=entry if (entry > 0).any() else None
        )
        self.edge_ = self._edge()
        self.fitters_, self.breakpoints_, self.errors_ = {}, {}, {}
        rows = []
        for fam in self.families:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    f, bp = _make(fam, d, self.alpha, self.fitters_)
                if not np.isfinite(f.log_likelihood_):
                    raise ValueError("non-finite log-likelihood")
            except Exception as exc:  # a candidate that fails does not stop the others
                self.errors_[fam] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                rows.append({"family": fam, "converged": False, "note": self.errors_[fam]})
                continue
            self.fitters_[fam] = f
            self.breakpoints_[fam] = bp
            k = len(f._fitted_parameter_names)
            s = f.summary
            lo_col = next(c for c in s.columns if c.startswith("coef lower"))
            hi_col = next(c for c in s.columns if c.startswith("coef upper"))
            params = {}
            for name in f._fitted_parameter_names:
                params[name] = {
                    "estimate": float(getattr(f, name)),
                    "se": float(s.loc[name, "se(coef)"]),
                    "lower": float(s.loc[name, lo_col]),
                    "upper": float(s.loc[name, hi_col]),
                }
            at_bound = _at_bound(f)
            rows.append(
                {
                    "family": fam,
                    "converged": True,
                    "at_bound": at_bound,
                    "n_params": k,
                    "log_likelihood": float(f.log_likelihood_),
                    "AIC": float(f.AIC_),
                    "BIC": float(-2 * f.log_likelihood_ + k * math.log(max(self.events_, 1))),
                    "params": params,
                    "note": f"{', '.join(at_bound)} at the bound of its range" if at_bound else "",
                }
            )
        table = pd.DataFrame(rows)
        table["simulatable"] = ~table["family"].isin(REPORT_ONLY)
        ok = table[table["converged"] & table["simulatable"]]
        # A parameter pinned at its bound (e.g. Weibull–gamma rho → 50: a step) is a degenerate fit whose
        # interval means nothing; choose among the others unless every candidate is degenerate.
        interior = ok[ok["at_bound"].map(lambda b: not b)] if "at_bound" in ok else ok
        if not interior.empty:
            ok = interior
        if ok.empty:
            raise DataError(f"{self.segment}/{self.transition}: no candidate curve could be fitted ({self.errors_})")
        self.best_ = str(ok.loc[ok["AIC"].idxmin(), "family"])
        table["delta_AIC"] = table["AIC"] - ok["AIC"].min() if "AIC" in table else np.nan
        table["chosen"] = table["family"] == self.best_
        # Akaike weights over the families that could be chosen: w ∝ exp(−ΔAIC / 2) (Burnham & Anderson 2002).
        delta = ok.set_index("family")["AIC"] - ok["AIC"].min()
        w = np.exp(-0.5 * delta.astype(float))
        self.weights_ = (w / w.sum()).rename("weight")
        self.weighting = self.weighting or DEFAULT_WEIGHTING
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting: {self.weighting!r}; choose one of {', '.join(WEIGHTINGS)}")
        if self.weighting in ("stacking", "pseudo_bma") and len(self.weights_) > 1:
            families = list(self.weights_.index)
            L = self._held_out_log_likelihood(families)
            if self.weighting == "stacking":
                w = stacking_weights(L)
            else:
                w = pseudo_bma_weights(L, self._customer_ids(), self._cv_rng(1))
            self.weights_ = pd.Series(w, index=families, name="weight")
        table["weight"] = table["family"].map(self.weights_).fillna(0.0)
        self.candidates_ = table
        return self

    # ------------------------------------------------------------------ results

    def pointwise_log_likelihood(self, family: str, fitter=None, data: pd.DataFrame | None = None) -> np.ndarray:
        """Each row's log-likelihood contribution under ``family``: E log h(T) − (H(T) − H(entry)).

        The density of an observed event, the conditional survival of a censored
        row, both conditional on survival to ``entry`` (left truncation); they sum
        to lifelines' ``log_likelihood_``. ``fitter``/``data`` score another fit or
        held-out rows.
        """
        f = fitter if fitter is not None else self.fitters_[family]
        d = self.data if data is None else data
        T, E, entry = (d[c].to_numpy(dtype=float) for c in ("duration", "event", "entry"))
        H = f.cumulative_hazard_at_times(T).to_numpy()
        H0 = np.where(entry > 0, f.cumulative_hazard_at_times(np.maximum(entry, 0.0)).to_numpy(), 0.0)
        with np.errstate(divide="ignore"):
            logh = np.where(E == 1, np.log(np.clip(f.hazard_at_times(T).to_numpy(), 0.0, None)), 0.0)
        return E * logh - (H - H0)

    def _customer_ids(self) -> np.ndarray:
        """Each row's customer (``customer_id``; each row is its own customer without that column)."""
        d = self.data
        return d["customer_id"].astype(str).to_numpy() if "customer_id" in d else np.arange(len(d)).astype(str)

    def _cv_rng(self, stream: int) -> np.random.Generator:
        """A generator keyed by the segment and transition names: stream 0 splits the folds, 1 draws the
        pseudo-BMA+ Bayesian bootstrap."""
        import zlib

        key = (zlib.crc32(self.segment.encode()), zlib.crc32(self.transition.encode()))
        return np.random.default_rng(np.random.SeedSequence(0, spawn_key=key if stream == 0 else (*key, stream)))

    def _held_out_log_likelihood(self, families: list[str]) -> np.ndarray:
        """Held-out pointwise log-likelihoods ℓᵢₖ (rows × ``families``) by :data:`CV_FOLDS`-fold cross-validation.

        The customers are split into folds (deterministically, from the segment
        and transition names; all rows of a customer in one fold); each family
        is refitted without each fold (started at its full-data estimates, same
        breakpoints) and scored on it by :meth:`pointwise_log_likelihood`. A
        family whose refit fails on some fold gets a column of −inf (no weight).
        Kept as ``cv_pointwise_`` (a DataFrame) with the totals in
        ``cv_log_likelihood_``.
        """
        d = self.data
        ids = self._customer_ids()
        uniq = np.unique(ids)
        fold_of = dict(zip(uniq, self._cv_rng(0).permutation(len(uniq)) % CV_FOLDS, strict=True))
        fold = np.array([fold_of[i] for i in ids])
        L = np.full((len(d), len(families)), np.nan)
        for j, fam in enumerate(families):
            point = self.fitters_[fam]
            start = np.array([float(getattr(point, n)) for n in point._fitted_parameter_names])
            for k in range(CV_FOLDS):
                test = fold == k
                if not test.any():
                    continue
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        f, _ = _make(fam, d[~test], self.alpha, self.fitters_,
                                     breakpoints=self.breakpoints_.get(fam), start=start)
                        L[test, j] = self.pointwise_log_likelihood(fam, f, d[test])
                except Exception:  # noqa: BLE001 - this family cannot be refitted: it gets no weight
                    L[:, j] = -np.inf
                    break
        L = np.where(np.isfinite(L), L, -np.inf)
        usable = np.isfinite(L).all(axis=0)
        self.cv_pointwise_ = pd.DataFrame(L, columns=families, index=d.index)
        self.cv_log_likelihood_ = pd.Series(np.where(usable, L.sum(axis=0), -np.inf), index=families)
        return L

    def _edge(self) -> dict:
        """The data's edge: the longest observed duration, and the last duration with ≥ MIN_AT_RISK at risk."""
        table = self.km_.event_table
        times = table.index.to_numpy(dtype=float)
        ok = times[(table["at_risk"].to_numpy() >= MIN_AT_RISK) & (times > 0)]
        observed_max = float(self.data["duration"].max())
        edge = float(ok.max()) if len(ok) else observed_max
        return {"edge": edge, "observed_max": observed_max, "min_at_risk": MIN_AT_RISK,
                "window": max(min(EDGE_WINDOW * edge, edge), 1.0)}

    def notes(self) -> list[str]:
        """Plain-language notes on the choice: a report-only candidate (spline) far ahead on AIC, and what to do."""
        out = []
        t = self.candidates_
        chosen_aic = float(t.loc[t["chosen"], "AIC"].iloc[0])
        for _, r in t[t["converged"] & ~t["simulatable"]].iterrows():
            gap = chosen_aic - float(r["AIC"])
            if gap >= NOTE_DELTA_AIC:
                out.append(
                    f"{self.segment}/{self.transition}: the {r['family']} (not simulatable) beats the chosen "
                    f"{self.best_} by {gap:.0f} AIC, so no simulatable family describes these data well; compare "
                    "them with plot_vs_km() / km.csv, and consider splitting the segment or a piecewise_exponential "
                    "curve with breakpoints where the Kaplan–Meier hazard changes"
                )
        return out

    def curve_spec(self, family: str | None = None) -> dict:
        """The cssim curve spec (days) of ``family`` (default: the chosen one)."""
        fam = family or self.best_
        if fam in REPORT_ONLY:
            raise ValueError(f"{fam} has no cssim curve; it is reported for comparison only")
        f = self.fitters_[fam]
        p = {name: float(getattr(f, name)) for name in f._fitted_parameter_names}
        return _spec(fam, p, self.breakpoints_.get(fam))

    def curve(self, family: str | None = None):
        """The cssim curve object of ``family`` (default: the chosen one)."""
        from pydantic import TypeAdapter

        return TypeAdapter(CurveSpec).validate_python(self.curve_spec(family)).build()

    def covariance(self, family: str | None = None) -> dict:
        """Parameter names and covariance on lifelines' estimation scale (``variance_matrix_``)."""
        f = self.fitters_[family or self.best_]
        names = list(f._fitted_parameter_names)
        V = f.variance_matrix_.loc[names, names].to_numpy()
        return {
            "names": names,
            "estimates": [float(getattr(f, n)) for n in names],
            "covariance": V.tolist(),
            "scale": "lifelines natural parameters (as fitted_parameter_names), days",
        }

    def _safe_covariance(self, family: str) -> dict:
        try:
            return self.covariance(family)
        except Exception as exc:  # noqa: BLE001 - a candidate without a usable Hessian is drawn at its estimate
            return {"error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}

    def bootstrap(self, n: int = 200, seed: int = 0, resamples=None, progress=None) -> list[list[float]]:
        """Parameter sets of the chosen family refitted to ``n`` resamples of the customers.

        Customers (``customer_id``; each row is its own customer without that
        column) are drawn with replacement and bring all their rows, so the
        episodes of one customer stay together (:mod:`cssim.fitting.bootstrap`).
        Only ``best_`` is refitted, with the point fit's breakpoints and
        started at its estimates. Returns the rows in
        ``_fitted_parameter_names`` order on lifelines' natural scale (as
        :meth:`covariance`); also kept as ``bootstrap_``, with the number of
        skipped refits (no convergence, non-finite likelihood or parameter) in
        ``bootstrap_failed_``. More than 20 % skipped draws a warning.

        ``resamples`` (:class:`~cssim.fitting.bootstrap.Resamples`) overrides
        the draw — :func:`~cssim.fitting.curvesfile.fit_history` shares one per
        segment across its curves and renewal model; by default they are drawn
        from ``seed`` and the segment's name over this fit's customers (the
        same draw when those are all the segment's customers). ``progress`` is
        a tqdm bar to advance.
        """
        d = self.data
        ids = d["customer_id"] if "customer_id" in d else pd.Series(np.arange(len(d)))
        if resamples is None:
            resamples = resample_customers(ids, n, seed, self.segment)
        elif resamples.n != n:
            raise ValueError(f"bootstrap: {n} refits asked for, but the resamples have {resamples.n}")
        fam = self.best_
        point = self.fitters_[fam]
        names = list(point._fitted_parameter_names)
        start = np.array([float(getattr(point, k)) for k in names])
        W = resamples.weights(ids)

        def refit(b: int) -> list[float] | None:
            keep = W[b] > 0
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    f, _ = _make(fam, d[keep], self.alpha, self.fitters_, weights=W[b][keep],
                                 breakpoints=self.breakpoints_.get(fam), start=start)
            except Exception:  # a resample this family cannot be fitted to is counted, not fatal
                return None
            row = [float(getattr(f, k)) for k in names]
            # Every parameter but log-normal's mu_ (a log already) must be positive for the curve's log scale.
            ok = (np.isfinite(f.log_likelihood_) and np.isfinite(row).all()
                  and all(v > 0 or k == "mu_" for k, v in zip(names, row, strict=True)))
            return row if ok else None

        rows, failed = run_refits(f"{self.segment}/{self.transition}", W.shape[0], refit, progress)
        self.bootstrap_, self.bootstrap_failed_ = rows, failed
        return rows

    def _bootstrap_block(self) -> dict:
        if getattr(self, "bootstrap_", None) is None:
            return {}
        return {"bootstrap": self.bootstrap_, "bootstrap_failed": self.bootstrap_failed_}

    @property
    def summary(self) -> pd.DataFrame:
        """One row per candidate × parameter: estimate and CI, with the candidate's scores."""
        rows = []
        for _, r in self.candidates_.iterrows():
            if not r["converged"]:
                continue
            for name, v in r["params"].items():
                rows.append(
                    {
                        "family": r["family"], "param": name, "estimate": v["estimate"], "lower": v["lower"],
                        "upper": v["upper"], "log_likelihood": r["log_likelihood"], "AIC": r["AIC"],
                        "BIC": r["BIC"], "chosen": r["chosen"],
                    }
                )
        return pd.DataFrame(rows)

    def km_table(self) -> pd.DataFrame:
        """Kaplan–Meier estimate with its confidence band: time, survival, lo, hi, at_risk."""
        km = self.km_
        sf = km.survival_function_.iloc[:, 0]
        ci = km.confidence_interval_
        at_risk = km.event_table["at_risk"].reindex(sf.index).to_numpy()
        return pd.DataFrame(
            {
                "segment": self.segment,
                "transition": self.transition,
                "time": sf.index.to_numpy(dtype=float),
                "survival": sf.to_numpy(),
                "lo": ci.iloc[:, 0].to_numpy(),
                "hi": ci.iloc[:, 1].to_numpy(),
                "at_risk": at_risk,
            }
        )

    def to_dict(self) -> dict:
        cands = []
        for _, r in self.candidates_.iterrows():
            if r["converged"]:
                fam = r["family"]
                cands.append(
                    {
                        "family": fam, "log_likelihood": r["log_likelihood"], "AIC": r["AIC"],
                        "BIC": r["BIC"], "delta_AIC": r["delta_AIC"], "weight": float(r["weight"]),
                        "params": r["params"],
                        "spec": None if fam in REPORT_ONLY else self.curve_spec(fam),
                        **({"parameters": self._safe_covariance(fam)} if fam in self.weights_.index else {}),
                    }
                )
            else:
                cands.append({"family": r["family"], "error": r["note"]})
        return {
            "n": self.n_,
            "events": self.events_,
            "left_truncated": self.truncated_,
            "chosen": self.best_,
            "spec": self.curve_spec(),
            "parameters": {**self.covariance(), **self._bootstrap_block()},
            "edge": self.edge_,
            "weighting": self.weighting,
            "weights": {f: float(w) for f, w in self.weights_.items()},
            "candidates": cands,
        }

    def averaged_spec(self, min_weight: float | None = None) -> dict | None:
        """The ``averaged`` curve spec (:class:`cssim.scenario.AveragedCurve`) of this fit, each family with its
        estimation uncertainty; None when only one family has a weight of at least ``min_weight``
        (default :data:`cssim.scenario.MIN_MODEL_WEIGHT`)."""
        entry = self.to_dict()
        if min_weight is not None:
            entry["weights"] = {f: (w if w >= min_weight else 0.0) for f, w in entry["weights"].items()}
        return averaged_spec(entry, f"{self.segment}/{self.transition}")

    def plot_vs_km(self, ax=None, families=None):
        """The chosen curve (or ``families``) against Kaplan–Meier with its band; returns the Axes."""
        fams = families or [self.best_]
        curves = {f"{fam} (AIC {self.fitters_[fam].AIC_:.1f})": self.curve(fam) for fam in fams}
        return survival_vs_km(
            self.km_table()[["time", "survival", "lo", "hi"]], curves, ax=ax,
            title=f"{self.segment} · {self.transition}", level=1 - self.alpha,
        )


def stacking_weights(L: np.ndarray) -> np.ndarray:
    """Stacking of predictive distributions (Yao, Vehtari, Simpson & Gelman 2018, section 2.2).

    ``L`` holds held-out log predictive densities, one row per observation and
    one column per family (a column with −inf gets weight 0). The weights
    maximise Σᵢ log Σₖ wₖ exp(ℓᵢₖ) over the simplex (scipy, softmax
    parameterisation).
    """
    from scipy.optimize import minimize
    from scipy.special import logsumexp, softmax

    L = np.asarray(L, dtype=float)
    usable = np.isfinite(L).all(axis=0)
    if usable.sum() <= 1:
        return usable.astype(float)
    Lu = L[:, usable]

    def objective(z):
        logw = np.r_[0.0, z] - logsumexp(np.r_[0.0, z])
        return -logsumexp(Lu + logw, axis=1).sum()

    res = minimize(objective, np.zeros(Lu.shape[1] - 1), method="L-BFGS-B")
    w = np.zeros(L.shape[1])
    w[usable] = softmax(np.r_[0.0, res.x])
    return w


def pseudo_bma_weights(L: np.ndarray, groups=None, rng: np.random.Generator | None = None,
                       draws: int = PSEUDO_BMA_DRAWS) -> np.ndarray:
    """Pseudo-BMA+ weights (Yao, Vehtari, Simpson & Gelman 2018, sections 3.1–3.2).

    ``L`` holds held-out log predictive densities (rows × families; a column
    with −inf gets weight 0); ``groups`` labels each row's customer, whose rows
    are summed into one observation ℓᵢₖ (default: each row its own). Each of
    ``draws`` Bayesian-bootstrap draws α ~ Dirichlet(1, …, 1) over the n
    observations gives weights softmaxₖ(n Σᵢ αᵢ ℓᵢₖ); the weights are their
    mean. Without the bootstrap this is the softmax of the held-out totals
    (pseudo-BMA, an Akaike weight on cross-validated scores); the bootstrap
    accounts for the noise in those totals, so families whose held-out scores
    differ by less than their sampling error share the weight.
    """
    from scipy.special import softmax

    L = np.asarray(L, dtype=float)
    usable = np.isfinite(L).all(axis=0)
    if usable.sum() <= 1:
        return usable.astype(float)
    Lu = L[:, usable]
    if groups is not None:
        _, inverse = np.unique(np.asarray(groups), return_inverse=True)
        per = np.zeros((inverse.max() + 1, Lu.shape[1]))
        np.add.at(per, inverse, Lu)
        Lu = per
    n = Lu.shape[0]
    rng = rng if rng is not None else np.random.default_rng(0)
    alpha = rng.dirichlet(np.ones(n), size=draws)
    w = np.zeros(L.shape[1])
    w[usable] = softmax(n * (alpha @ Lu), axis=1).mean(axis=0)
    return w


def fit_transition(history: History, transition: str, segment: str, alpha: float = 0.05) -> UnivariateFit:
    """Fit every candidate to one segment × transition of ``history``."""
    return UnivariateFit(durations(history, transition, segment), segment, transition, alpha).fit()
