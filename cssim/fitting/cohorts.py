"""Cohort retention tables: validate, fit discrete-renewal retention models, project.

A cohort table is what most SaaS companies already keep: for each acquisition
cohort, how many customers (or how much gross ARR) are still active at the end
of each renewal period::

    cohort,period,active
    2019,0,1000
    2019,1,631
    2020,0,800
    ...

Period 0 is the cohort size. One cohort or a whole triangle of cohorts of
different ages can be given; every cohort contributes its own likelihood, with
the customers still active at its last observed period right-censored.

Models (all discrete-time: customers can leave only at a renewal):

``sbg``
    shifted-beta-geometric: each customer churns at every renewal with a
    constant probability θ, and θ ~ Beta(α, β) across customers, so
    S(t) = B(α, β + t) / B(α, β). Survivors are the loyal ones and retention
    rises with tenure.
``geometric``
    one θ for everybody (constant hazard): S(t) = (1 − θ)^t. The naive
    baseline; it ignores the sorting of the population and under-projects.
``exponential_gamma``
    exponential lifetimes with Gamma(shape r)-distributed rates, S(t) =
    (1 + t/s)^(−r), fitted with lifelines as interval-censored lifetimes
    (a customer lost at renewal t left in (t − 1, t]). This is exactly a
    discrete renewal model too — per-period churn 1 − e^(−λ) with λ ~ Gamma —
    and it is cssim's ``exponential_gamma`` curve, so it goes into scenarios
    with no approximation beyond the unit of time.
``bdw``
    beta-discrete-Weibull: S(t) = B(α, β + t^c) / B(α, β); c < 1 lets every
    customer's own churn probability fall with tenure, c > 1 rise; c = 1 is sBG.

Assumptions
-----------
- Customers of a cohort are independent given the model's parameters and the
  same model holds for every cohort (cohorts differ only in size and age).
- ``active`` never rises within a cohort (gross retention). For ARR tables the
  amounts are treated as units of a quasi-likelihood: point estimates are the
  same as for counts, and standard errors are inflated by the Pearson
  dispersion so they do not pretend each dollar is an independent customer.
- Projection intervals include parameter uncertainty (draws from the
  asymptotic normal of the log/logit parameters) and, for logo counts, the
  binomial noise of which survivors renew; they do not include the risk that
  the model family itself is wrong.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, gammaln

from ..core.clock import DAYS_PER_YEAR
from ..core.contract import Results, Summary
from ..core.errors import DataError
from ..core.output import build_manifest
from ..model.uncertainty import with_uncertainty
from ..plots.figures import COHORT_AVERAGED, COHORT_MODEL_LABELS
from .tables import read_text_table

__all__ = [
    "COHORT_MODELS",
    "CohortTable",
    "CohortModelFit",
    "CohortFitResults",
    "is_cohort_table",
    "read_cohort_table",
    "fit_cohorts",
    "side_by_side_table",
]

REQUIRED = ("cohort", "period", "active")
PERIOD_ALIASES = ("period", "year", "month")
MODEL_ORDER = ("sbg", "geometric", "exponential_gamma", "bdw")
LABELS = COHORT_MODEL_LABELS


# --------------------------------------------------------------------------- reading


def is_cohort_table(columns: Sequence[str]) -> bool:
    """True if ``columns`` look like a cohort table (``active`` and a period column)."""
    cols = {str(c).strip().lower() for c in columns}
    return "active" in cols and any(a in cols for a in PERIOD_ALIASES)


@dataclass
class CohortTable:
    """A validated cohort table.

    ``data`` has columns ``cohort`` (str), ``period`` (int), ``active`` (float),
    sorted by cohort and period; ``kind`` is ``"logos"`` (whole customers) or
    ``"arr"`` (amounts).
    """

    data: pd.DataFrame
    source: str = "<table>"
    kind: str = "logos"

    @property
    def cohorts(self) -> list[str]:
        return list(dict.fromkeys(self.data["cohort"]))

    def cohort(self, name: str) -> pd.DataFrame:
        return self.data[self.data["cohort"] == name]


def _read_frame(path: Path) -> pd.DataFrame:
    return read_text_table(path, "a cohort table with columns cohort, period, active")


def read_cohort_table(source, kind: str | None = None) -> CohortTable:
    """Read and validate a cohort table from a CSV/Parquet path or a DataFrame.

    Columns: ``cohort`` (any label; optional — without it the file is one
    cohort), ``period`` (``year`` or ``month`` accepted as its name; whole
    renewals since acquisition, 0 = cohort size), ``active``. ``kind`` is
    ``"logos"`` or ``"arr"``; by default logos if every value is a whole number.

    Raises :class:`~cssim.errors.DataError` naming the file, row (as in the
    file, header = row 1) and column of the first problem.
    """
    if isinstance(source, pd.DataFrame):
        label = "<table>"
        raw = source.astype(str)
    else:
        path = Path(source)
        label = str(path)
        raw = _read_frame(path)
    raw = raw.rename(columns={c: str(c).strip().lower() for c in raw.columns})
    period_col = next((a for a in PERIOD_ALIASES if a in raw.columns), None)
    missing = ["period"] if period_col is None else []
    missing += [] if "active" in raw.columns else ["active"]
    if missing:
        found = ", ".join(map(str, raw.columns)) or "none"
        raise DataError(
            f"{label}: missing column {missing[0]!r} (columns found: {found}); "
            "a cohort table needs cohort, period, active"
        )
    if len(raw) == 0:
        raise DataError(f"{label}: no rows; a cohort table needs at least period 0 and 1 of one cohort")
    if kind not in (None, "logos", "arr"):
        raise ValueError(f"kind must be 'logos' or 'arr', got {kind!r}")

    def where(i: int, col: str) -> str:
        return f"{label}: row {i + 2}, column {col!r}"

    cohorts = raw["cohort"].astype(str).str.strip() if "cohort" in raw.columns else pd.Series(["all"] * len(raw))
    periods = np.empty(len(raw), dtype=np.int64)
    active = np.empty(len(raw), dtype=float)
    for i, (c, p, a) in enumerate(zip(cohorts, raw[period_col], raw["active"], strict=True)):
        if c == "" or c.lower() == "nan":
            raise DataError(f"{where(i, 'cohort')}: empty cohort label")
        p = str(p).strip()
        try:
            pf = float(p)
        except ValueError:
            raise DataError(
                f"{where(i, period_col)}: {p!r} is not a number; periods are whole renewals (0, 1, 2, ...)"
            ) from None
        if not math.isfinite(pf) or pf != int(pf):
            raise DataError(f"{where(i, period_col)}: {p!r} is not a whole number of periods")
        if pf < 0:
            raise DataError(f"{where(i, period_col)}: negative period {p}; period 0 is the cohort size")
        periods[i] = int(pf)
        s = str(a).strip()
        try:
            af = float(s)
        except ValueError:
            raise DataError(f"{where(i, 'active')}: {s!r} is not a number") from None
        if not math.isfinite(af):
            raise DataError(f"{where(i, 'active')}: {s!r} is not a finite number")
        if af < 0:
            raise DataError(f"{where(i, 'active')}: negative value {s}; active counts customers or ARR still active")
        active[i] = af
    if kind is None:
        kind = "logos" if np.all(active == np.round(active)) else "arr"
    df = pd.DataFrame(
        {"cohort": cohorts.to_numpy(), "period": periods, "active": active, "row": np.arange(len(raw)) + 2}
    )
    dup = df.duplicated(["cohort", "period"], keep=False)
    if dup.any():
        rows = df[dup]
        first = rows.iloc[0]
        other = rows[(rows.cohort == first.cohort) & (rows.period == first.period)].row.tolist()
        raise DataError(
            f"{label}: row {other[1]}, column {period_col!r}: duplicate period {first.period} of cohort "
            f"{first.cohort!r} (also on row {other[0]})"
        )
    df = df.sort_values(["cohort", "period"], kind="stable")
    order = list(dict.fromkeys(cohorts))
    df["cohort"] = pd.Categorical(df["cohort"], categories=order, ordered=True)
    df = df.sort_values(["cohort", "period"], kind="stable")
    df["cohort"] = df["cohort"].astype(str)
    for name, g in df.groupby("cohort", sort=False):
        per = g["period"].to_numpy()
        act = g["active"].to_numpy()
        rows = g["row"].to_numpy()
        if per[0] != 0:
            raise DataError(
                f"{label}: row {rows[0]}, column {period_col!r}: cohort {name!r} has no period 0 "
                f"(its first period is {per[0]}); period 0 is the cohort size"
            )
        if act[0] <= 0:
            raise DataError(f"{label}: row {rows[0]}, column 'active': cohort {name!r} has size {act[0]:g} at period 0")
        gaps = np.nonzero(np.diff(per) != 1)[0]
        if gaps.size:
            j = gaps[0]
            raise DataError(
                f"{label}: row {rows[j + 1]}, column {period_col!r}: cohort {name!r} jumps from period "
                f"{per[j]} to {per[j + 1]}; periods {per[j] + 1}..{per[j + 1] - 1} are missing"
            )
        rises = np.nonzero(np.diff(act) > 0)[0]
        if rises.size:
            j = rises[0]
            why = (
                "customers cannot rejoin their cohort (a win-back is a new customer)"
                if kind == "logos"
                else "cohort fitting needs gross retained ARR (expansion excluded)"
            )
            raise DataError(
                f"{label}: row {rows[j + 1]}, column 'active': cohort {name!r} rises from {act[j]:g} at period "
                f"{per[j]} to {act[j + 1]:g} at period {per[j + 1]}; {why}"
            )
    return CohortTable(df.drop(columns="row").reset_index(drop=True), source=label, kind=kind)


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class CohortModel:
    """A discrete-renewal retention model: survival S(t) at whole periods, parameters on a free scale."""

    name: str
    params: tuple[str, ...]
    transforms: tuple[str, ...]  # "log" or "logit": natural = exp(x) or 1/(1+exp(-x))
    survival: Callable[[np.ndarray, np.ndarray], np.ndarray]
    starts: tuple[tuple[float, ...], ...]

    def natural(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        out = np.empty_like(x)
        for i, tr in enumerate(self.transforms):
            out[..., i] = np.exp(x[..., i]) if tr == "log" else 1.0 / (1.0 + np.exp(-x[..., i]))
        return out

    def free(self, p) -> np.ndarray:
        p = np.asarray(p, dtype=float)
        pairs = zip(p, self.transforms, strict=True)
        return np.array([math.log(v) if tr == "log" else math.log(v / (1 - v)) for v, tr in pairs])


def _s_sbg(t, p):
    a, b = p[..., 0:1], p[..., 1:2]
    return np.exp(betaln(a, b + t) - betaln(a, b))


def _s_geometric(t, p):
    return (1.0 - p[..., 0:1]) ** t


def _s_expgamma(t, p):
    r, s = p[..., 0:1], p[..., 1:2]
    return (1.0 + t / s) ** (-r)


def _s_bdw(t, p):
    a, b, c = p[..., 0:1], p[..., 1:2], p[..., 2:3]
    return np.exp(betaln(a, b + t**c) - betaln(a, b))


COHORT_MODELS: dict[str, CohortModel] = {
    "sbg": CohortModel("sbg", ("alpha", "beta"), ("log", "log"), _s_sbg, ((0.0, 0.0), (1.0, 2.0), (-1.0, 1.0))),
    "geometric": CohortModel("geometric", ("theta",), ("logit",), _s_geometric, ((-1.0,),)),
    "exponential_gamma": CohortModel(
        "exponential_gamma", ("shape", "scale"), ("log", "log"), _s_expgamma, ((0.0, 0.0), (1.0, 2.0), (-1.0, 1.0))
    ),
    "bdw": CohortModel(
        "bdw",
        ("alpha", "beta", "c"),
        ("log", "log", "log"),
        _s_bdw,
        ((0.0, 0.0, 0.0), (-0.5, 0.0, 0.3), (1.0, 2.0, -0.3)),
    ),
}


def _survival(model: CohortModel, periods, params) -> np.ndarray:
    """S at ``periods`` for one parameter vector (1-d) or many (2-d: draws × params)."""
    t = np.asarray(periods, dtype=float)
    p = np.asarray(params, dtype=float)
    if p.ndim == 1:
        return model.survival(t[None, :], p[None, :])[0]
    return model.survival(t[None, :], p)


# --------------------------------------------------------------------------- likelihood


@dataclass
class _Cells:
    """Sufficient statistics of the calibration data: churned per period and survivors at the end."""

    lost: np.ndarray  # lost[t-1] = customers lost at renewal t (summed over cohorts), t = 1..T
    censored: np.ndarray  # censored[t] = still active at period t, their cohort's last calibration period
    customers: float


def _cells(table: CohortTable, until: int | None) -> tuple[_Cells, dict[str, int]]:
    df = table.data if until is None else table.data[table.data["period"] <= until]
    T = int(df["period"].max())
    lost = np.zeros(T)
    censored = np.zeros(T + 1)
    last = {}
    for name, g in df.groupby("cohort", sort=False):
        act = g["active"].to_numpy()
        lost[: len(act) - 1] += -np.diff(act)
        censored[len(act) - 1] += act[-1]
        last[name] = len(act) - 1
    return _Cells(lost, censored, float(df[df["period"] == 0]["active"].sum())), last


def _loglik(model: CohortModel, cells: _Cells, params: np.ndarray) -> float:
    T = len(cells.lost)
    s = _survival(model, np.arange(T + 1), params)
    pmf = s[:-1] - s[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        ll = np.sum(np.where(cells.lost > 0, cells.lost * np.log(pmf), 0.0))
        ll += np.sum(np.where(cells.censored > 0, cells.censored * np.log(s), 0.0))
    return float(ll) if np.isfinite(ll) else -np.inf


def _pearson_dispersion(model: CohortModel, cells: _Cells, params: np.ndarray, k: int) -> float:
    """Pearson χ² / df of the multinomial cells (used to scale ARR quasi-likelihood errors)."""
    T = len(cells.lost)
    s = _survival(model, np.arange(T + 1), params)
    # Customers at risk of leaving at each renewal t, by cohort size at 0 minus those censored before t.
    at0 = cells.lost.sum() + cells.censored.sum()
    censored_before = np.concatenate([[0.0], np.cumsum(cells.censored)[:-1]])
    # Expected cell counts under the fitted model: multinomial per censoring group is exact, this is the
    # usual approximation using the pooled conditional churn probabilities.
    at_risk = at0 - np.concatenate([[0.0], np.cumsum(cells.lost)])[:-1] - censored_before[1:]
    q = 1.0 - s[1:] / s[:-1]
    exp_lost = at_risk * q
    var = at_risk * q * (1 - q)
    ok = var > 0
    chi2 = float(np.sum((cells.lost[ok] - exp_lost[ok]) ** 2 / var[ok]))
    df = max(int(ok.sum()) - k, 1)
    return max(chi2 / df, 1.0)


def _hessian(f, x: np.ndarray, h: float = 1e-4) -> np.ndarray:
    """Central-difference Hessian of ``f`` at ``x``."""
    n = len(x)
    H = np.empty((n, n))
    f0 = f(x)
    for i in range(n):
        ei = np.zeros(n)
        ei[i] = h
        H[i, i] = (f(x + ei) - 2 * f0 + f(x - ei)) / h**2
        for j in range(i + 1, n):
            ej = np.zeros(n)
            ej[j] = h
            H[i, j] = H[j, i] = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (4 * h * h)
    return H


@dataclass
class CohortModelFit:
    """One fitted model: estimates, their uncertainty and information criteria.

    ``cov_free`` is the covariance of the free (log / logit) parameters from
    the inverse observed information; ``ci`` are ``level`` Wald intervals on
    that scale, transformed back (so they respect the parameter bounds).
    """

    model: CohortModel
    params: dict[str, float]
    free_params: np.ndarray
    cov_free: np.ndarray
    loglik: float
    aic: float
    bic: float
    ci: dict[str, tuple[float, float]]
    level: float
    method: str
    dispersion: float = 1.0

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def n_params(self) -> int:
        return len(self.params)

    def survival(self, periods) -> np.ndarray:
        return _survival(self.model, periods, np.array(list(self.params.values())))

    def draw_params(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` parameter vectors from the asymptotic normal of the free parameters."""
        z = rng.multivariate_normal(self.free_params, self.cov_free, size=n, method="eigh")
        return self.model.natural(z)

    def to_dict(self) -> dict:
        return {
            "label": LABELS.get(self.name, self.name),
            "method": self.method,
            "params": self.params,
            "ci": {k: list(v) for k, v in self.ci.items()},
            "ci_level": self.level,
            "se_free": dict(zip(self.model.params, np.sqrt(np.diag(self.cov_free)).tolist(), strict=True)),
            "free_scale": dict(zip(self.model.params, self.model.transforms, strict=True)),
            "loglik": self.loglik,
            "n_params": self.n_params,
            "aic": self.aic,
            "bic": self.bic,
            "dispersion": self.dispersion,
        }


def _finish(model, x, cov, ll, n_obs, level, method, dispersion=1.0) -> CohortModelFit:
    from scipy.stats import norm

    z = norm.ppf(0.5 + level / 2)
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    lo = model.natural(x - z * se)
    hi = model.natural(x + z * se)
    p = model.natural(x)
    k = len(x)
    return CohortModelFit(
        model=model,
        params=dict(zip(model.params, p.tolist(), strict=True)),
        free_params=np.asarray(x, dtype=float),
        cov_free=cov,
        loglik=ll,
        aic=2 * k - 2 * ll,
        bic=k * math.log(n_obs) - 2 * ll,
        ci={n: (float(a), float(b)) for n, a, b in zip(model.params, lo, hi, strict=True)},
        level=level,
        method=method,
        dispersion=dispersion,
    )


def _fit_ml(model: CohortModel, cells: _Cells, kind: str, level: float) -> CohortModelFit:
    """Maximum likelihood over the pooled cells, several starts, Hessian on the free scale."""

    def nll(x):
        v = -_loglik(model, cells, model.natural(x))
        return v if np.isfinite(v) else 1e300

    best = None
    for x0 in model.starts:
        r = minimize(nll, np.array(x0), method="Nelder-Mead", options={"xatol": 1e-9, "fatol": 1e-10, "maxiter": 20000})
        r = minimize(nll, r.x, method="BFGS", options={"gtol": 1e-7})
        if best is None or r.fun < best.fun:
            best = r
    x = best.x
    H = _hessian(nll, x)
    try:
        cov = np.linalg.inv(H)
        if not np.all(np.linalg.eigvalsh((cov + cov.T) / 2) > 0):
            raise np.linalg.LinAlgError
    except np.linalg.LinAlgError:
        cov = np.linalg.pinv(H)
        warnings.warn(
            f"{model.name}: information matrix is not positive definite; intervals are unreliable", stacklevel=3
        )
    cov = (cov + cov.T) / 2
    dispersion = 1.0
    if kind == "arr":
        dispersion = _pearson_dispersion(model, cells, model.natural(x), len(x))
        cov = cov * dispersion
    n_obs = cells.customers if kind == "logos" else float(len(cells.lost) + 1)
    return _finish(model, x, cov, -best.fun, n_obs, level, "maximum likelihood (scipy)", dispersion)


def _expgamma_fitter_class():
    """A lifelines custom fitter: exponential lifetimes with Gamma-distributed rates."""
    import autograd.numpy as anp
    from lifelines.fitters import ParametricUnivariateFitter

    class ExponentialGammaFitter(ParametricUnivariateFitter):
        """H(t) = shape · log(1 + t/scale): S(t) = (1 + t/scale)^-shape (Pareto II / Lomax)."""

        _fitted_parameter_names = ["shape_", "scale_"]
        _bounds = [(1e-9, None), (1e-9, None)]

        def _cumulative_hazard(self, params, times):
            shape, scale = params
            return shape * anp.log1p(times / scale)

    return ExponentialGammaFitter


def _fit_expgamma_lifelines(cells: _Cells, kind: str, level: float) -> CohortModelFit:
    """Exponential–gamma fitted by lifelines as interval-censored lifetimes (weights = counts).

    A customer lost at renewal t has a lifetime in (t − 1, t]; one still active
    at its cohort's last period L has a lifetime in (L, ∞).
    """
    model = COHORT_MODELS["exponential_gamma"]
    T = len(cells.lost)
    lower, upper, weights = [], [], []
    for t in range(1, T + 1):
        if cells.lost[t - 1] > 0:
            lower.append(t - 1.0)
            upper.append(float(t))
            weights.append(cells.lost[t - 1])
    for t in range(T + 1):
        if cells.censored[t] > 0:
            lower.append(float(t))
            upper.append(np.inf)
            weights.append(cells.censored[t])
    lower = np.array(lower)
    # lifelines treats lower == 0 as left-censoring at the first renewal; keep the interval open at 0.
    lower[lower == 0] = 1e-12
    Fitter = _expgamma_fitter_class()
    # Start near the scipy solution so lifelines' optimiser does not wander on this flat likelihood.
    start = _fit_ml(model, cells, "logos", level).params
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = Fitter(alpha=1 - level).fit_interval_censoring(
            lower, np.array(upper), weights=np.array(weights), initial_point=np.array([start["shape"], start["scale"]])
        )
    p = np.array([f.shape_, f.scale_])
    cov_nat = f.variance_matrix_.loc[["shape_", "scale_"], ["shape_", "scale_"]].to_numpy()
    J = np.diag(1.0 / p)  # delta method: d log p / d p
    cov = J @ cov_nat @ J
    dispersion = 1.0
    if kind == "arr":
        dispersion = _pearson_dispersion(model, cells, p, 2)
        cov = cov * dispersion
    n_obs = cells.customers if kind == "logos" else float(T + 1)
    # Report the log-likelihood of the same multinomial cells as the other models (lifelines agrees up to
    # the lower bound 1e-12 used above), so AIC values are comparable.
    ll = _loglik(model, cells, p)
    method = "interval-censored maximum likelihood (lifelines)"
    return _finish(model, np.log(p), cov, ll, n_obs, level, method, dispersion)


# --------------------------------------------------------------------------- results


def sbg_to_exponential_gamma(alpha: float, beta: float, period_days: float = DAYS_PER_YEAR) -> dict:
    """The exponential–gamma curve (days) that matches an sBG model's long-run retention.

    With per-period churn θ ~ Beta(α, β), S(t) = B(α, β+t)/B(α, β) ~
    Γ(α+β)/Γ(β) · t^(−α) for large t; (1 + t/s)^(−r) ~ s^r · t^(−r). Matching
    both gives r = α and s = (Γ(α+β)/Γ(β))^(1/α) periods. For large β this
    tends to s = β (the per-period churn −log(1 − θ) ≈ θ is then
    approximately Gamma(α, rate β)); the tail match is closer at every tenure.
    """
    s_periods = math.exp((gammaln(alpha + beta) - gammaln(beta)) / alpha)
    return {"family": "exponential_gamma", "shape": alpha, "scale": s_periods * period_days}


@dataclass(repr=False)
class CohortFitResults(Results):
    """Fitted cohort models and their projections.

    ``projection`` is a tidy table: ``cohort, period, observed, projected, lo,
    hi, model, calibration``; ``calibration`` marks the periods the model was
    fitted on. ``fits`` maps model name to :class:`CohortModelFit`.
    """

    table: CohortTable
    fits: dict[str, CohortModelFit]
    projection: pd.DataFrame
    until: int | None
    horizon: int
    n_draws: int
    seed: int
    period_days: float
    last_calibrated: dict[str, int] = field(default_factory=dict)
    level: float = 0.9  # of the projection intervals (``lo``, ``hi``)

    @property
    def best(self) -> str:
        """Model with the lowest AIC."""
        return min(self.fits, key=lambda k: self.fits[k].aic)

    @property
    def weights(self) -> dict[str, float]:
        """Akaike weights of the models, w ∝ exp(−ΔAIC / 2)."""
        return akaike_weights({k: f.aic for k, f in self.fits.items()})

    @property
    def recommended(self) -> str:
        """The projection to use: ``averaged`` when more than one model has a weight ≥ 1 %, else the best model."""
        credible = [k for k, w in self.weights.items() if w >= MIN_WEIGHT]
        return AVERAGED if len(credible) > 1 else self.best

    def _recommended_text(self) -> str:
        if self.recommended == AVERAGED:
            return ("model-averaged (`averaged` in projection.csv): no single model is clearly best, so the "
                    "projection and its interval mix them by Akaike weight")
        return f"{LABELS.get(self.best, self.best)} (it takes essentially all the Akaike weight)"

    def projected(self, model: str, cohort: str | None = None) -> pd.Series:
        """Projected active by period for one model and cohort (default: the first cohort)."""
        cohort = cohort if cohort is not None else self.table.cohorts[0]
        p = self.projection
        sel = p[(p["model"] == model) & (p["cohort"] == cohort)]
        return sel.set_index("period")["projected"]

    def curve_spec(self) -> dict:
        """The continuous-time churn curve (days) for scenarios: the fitted exponential–gamma."""
        if "exponential_gamma" in self.fits:
            f = self.fits["exponential_gamma"]
            p = f.params
            spec = {"family": "exponential_gamma", "shape": p["shape"], "scale": p["scale"] * self.period_days}
            # Estimation uncertainty for scenarios (cssim.uncertainty): the log-parameter covariance, scale in days.

            logs = {"shape": math.log(spec["shape"]), "scale": math.log(spec["scale"])}
            try:
                return with_uncertainty(spec, logs, f.cov_free, scale="log")
            except ValueError:
                return spec
        a = self.fits["sbg"].params
        return sbg_to_exponential_gamma(a["alpha"], a["beta"], self.period_days)

    def to_dict(self) -> dict:
        out = {
            "source": self.table.source,
            "kind": self.table.kind,
            "cohorts": self.table.cohorts,
            "calibration_until": self.until,
            "last_calibrated_period": self.last_calibrated,
            "horizon": self.horizon,
            "period_days": self.period_days,
            "best_by_aic": self.best,
            "weights": self.weights,
            "recommended": self.recommended,
            "models": {k: f.to_dict() for k, f in self.fits.items()},
            "projection_interval": {
                "level": self.level,
                "draws": self.n_draws,
                "seed": self.seed,
                "includes": ["parameter uncertainty (asymptotic normal of log/logit parameters)"]
                + (["binomial noise of which survivors renew"] if self.table.kind == "logos" else []),
                "excludes": ["model-family uncertainty (except the 'averaged' projection, whose draws pick a "
                             "model by its Akaike weight first)"],
            },
            "curve": self.curve_spec(),
            "curve_note": (
                "Churn curve for scenarios (time in days): exponential-gamma S(t) = (1 + t/scale)^-shape. "
                "Fitted directly to the renewal data as interval-censored lifetimes, it is exact at every "
                "renewal (per-period churn 1 - exp(-lambda), lambda ~ Gamma(shape, rate scale))."
            ),
        }
        if "sbg" in self.fits:
            a = self.fits["sbg"].params
            out["curve_from_sbg"] = sbg_to_exponential_gamma(a["alpha"], a["beta"], self.period_days)
            out["curve_from_sbg_note"] = (
                "sBG mapped to exponential-gamma by matching the long-run tail: shape = alpha, "
                "scale = (Gamma(alpha+beta)/Gamma(beta))^(1/alpha) periods x period_days; "
                "scale = beta x period_days is the large-beta limit and overstates retention when beta is small."
            )
        return out

    KIND = "cohort_fit"

    @property
    def manifest(self) -> dict:
        return build_manifest(self.KIND, source=self.table.source, level=self.level, seed=self.seed)

    def models(self) -> pd.DataFrame:
        """One row per model: AIC, Akaike weight, and whether it is the best or the recommended projection."""
        return pd.DataFrame([{"model": k, "aic": f.aic, "weight": self.weights[k], "best": k == self.best,
                              "recommended": k == self.recommended} for k, f in self.fits.items()]).set_index("model")

    def summary(self) -> Summary:
        """The models by AIC (the fit report prints with it)."""
        return Summary(self.models(), text=self.report())

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"projection": self.projection}

    def files(self) -> dict[str, str]:
        return {"cohort_fit.json": json.dumps(self.to_dict(), indent=2) + "\n", "fit_report.md": self.report()}

    def report(self) -> str:
        """The markdown fit report: models, information criteria, side-by-side projections."""
        lines = [
            "# Cohort retention fit",
            "",
            f"- data: `{self.table.source}` ({self.table.kind}, {len(self.table.cohorts)} cohort"
            f"{'s' if len(self.table.cohorts) != 1 else ''})",
            f"- calibration: periods ≤ {self.until if self.until is not None else 'all'}; "
            f"projection to period {self.horizon}",
            f"- best by AIC: {LABELS.get(self.best, self.best)}",
            "- Akaike weights: " + ", ".join(f"{LABELS.get(k, k)} {w:.1%}" for k, w in self.weights.items()),
            f"- **recommended projection: {self._recommended_text()}**",
            "",
            "## Models",
            "",
            f"| model | parameters ({int(round(100 * next(iter(self.fits.values())).level))} % CI) "
            "| log-lik | k | AIC | BIC | ΔAIC |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        best_aic = self.fits[self.best].aic
        for name, f in self.fits.items():
            ps = "; ".join(f"{k} {v:.4g} ({f.ci[k][0]:.3g}–{f.ci[k][1]:.3g})" for k, v in f.params.items())
            lines.append(
                f"| {LABELS.get(name, name)} | {ps} | {f.loglik:.2f} | {f.n_params} | {f.aic:.2f} | {f.bic:.2f} | "
                f"{f.aic - best_aic:.2f} |"
            )
        inc = "parameter uncertainty" + (" and binomial renewal noise" if self.table.kind == "logos" else "")
        lines += [
            "",
            f"Projection intervals (`lo`, `hi` in projection.csv) are {int(round(100 * self.level))} % intervals "
            f"from {self.n_draws} parameter draws; they include {inc}; only the `averaged` projection (model "
            "`averaged` in projection.csv: each draw picks a model by its Akaike weight, then its parameters) "
            "includes model-family uncertainty. "
            "Beyond a cohort's last calibration period the projection is conditional on the customers "
            "still active then: n_L · S(t)/S(L).",
            "",
        ]
        for cohort in self.table.cohorts[:12]:
            lines += [f"## Cohort {cohort}", "", side_by_side_table(self, cohort), ""]
            if AVERAGED in set(self.projection["model"]):
                a = self.projection[(self.projection["model"] == AVERAGED) & (self.projection["cohort"] == cohort)]
                r = a.set_index("period").loc[self.horizon]
                lines += [f"Averaged projection at period {self.horizon}: {r['projected']:.1f} "
                          f"({int(round(100 * self.level))} % interval {r['lo']:.1f}–{r['hi']:.1f}).", ""]
        if len(self.table.cohorts) > 12:
            lines.append(f"({len(self.table.cohorts) - 12} more cohorts in projection.csv)")
        return "\n".join(lines) + "\n"


def side_by_side_table(
    results: CohortFitResults, cohort: str | None = None, models: Sequence[str] | None = None
) -> str:
    """Markdown table: period, actual, each model's projection and its error against the actual."""
    cohort = cohort if cohort is not None else results.table.cohorts[0]
    models = [m for m in (models or MODEL_ORDER) if m in results.fits]
    obs = results.table.cohort(cohort).set_index("period")["active"]
    last = results.last_calibrated[cohort]
    head = "| period | data | actual | " + " | ".join(f"{LABELS[m]} | error" for m in models) + " |"
    sep = "|---:|---|---:|" + "---:|---:|" * len(models)
    rows = [head, sep]
    fmt = "{:.0f}" if results.table.kind == "logos" else "{:.4g}"
    for t in range(results.horizon + 1):
        actual = obs.get(t, np.nan)
        cells = []
        for m in models:
            proj = results.projected(m, cohort).get(t, np.nan)
            err = (proj / actual - 1) * 100 if actual and np.isfinite(actual) and actual > 0 else np.nan
            cells.append(f"{proj:.1f} | " + (f"{err:+.1f} %" if np.isfinite(err) else "–"))
        window = "fit" if t <= last else ("held out" if np.isfinite(actual) else "future")
        a = fmt.format(actual) if np.isfinite(actual) else "–"
        rows.append(f"| {t} | {window} | {a} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


#: The model name of the model-averaged projection, and the smallest weight that counts a model as credible.
AVERAGED = COHORT_AVERAGED
MIN_WEIGHT = 0.01


def akaike_weights(aic: dict[str, float]) -> dict[str, float]:
    """Akaike weights w ∝ exp(−ΔAIC / 2) (Burnham & Anderson 2002), in the order given."""
    a = np.array(list(aic.values()), dtype=float)
    w = np.exp(-0.5 * (a - a.min()))
    return dict(zip(aic, (w / w.sum()).tolist(), strict=True))


def _project_averaged(table: CohortTable, fits: dict[str, CohortModelFit], weights: dict[str, float],
                      last: dict[str, int], horizon: int, interval: float, n_draws: int, rng) -> pd.DataFrame:
    """The model-averaged projection: mean Σ w_k · projection_k; interval from draws that pick a model by weight.

    Each of ``n_draws`` draws takes model k with probability w_k, then that
    model's parameters from their asymptotic normal (and, for logos, the
    binomial renewal noise), so the interval carries the choice of model as
    well as its estimation error.
    """
    periods = np.arange(horizon + 1)
    names = list(fits)
    w = np.array([weights[k] for k in names])
    pick = rng.choice(len(names), size=n_draws, p=w / w.sum())
    q = [(1 - interval) / 2 * 100, (1 + interval) / 2 * 100]
    frames = []
    for name in table.cohorts:
        g, L, base, cond = _cohort_base(table, name, last, periods)
        mean = np.zeros(len(periods))
        p_draw = np.empty((n_draws, len(periods)))
        for k, m in enumerate(names):
            fit = fits[m]
            mean += w[k] * base * fit.survival(periods) / np.where(cond, fit.survival([L])[0], 1.0)
            rows = pick == k
            if rows.any():
                draws = fit.draw_params(int(rows.sum()), rng)
                Sd = _survival(fit.model, periods, draws)
                p_draw[rows] = Sd / np.where(cond, _survival(fit.model, [L], draws)[:, 0:1], 1.0)
        lo, hi = _draw_interval(table, base, p_draw, q, rng)
        frames.append(pd.DataFrame({
            "cohort": name, "period": periods, "observed": [g.get(t, np.nan) for t in periods],
            "projected": mean, "lo": np.minimum(lo, mean), "hi": np.maximum(hi, mean), "model": AVERAGED,
            "calibration": periods <= L,
        }))
    return pd.concat(frames, ignore_index=True)


def _cohort_base(table: CohortTable, name, last: dict[str, int], periods: np.ndarray):
    """One cohort's observed counts, last observed period L, the count each period is projected from, and
    which periods lie past L: up to L the fitted n0·S(t), after L conditional on the nL still active,
    nL·S(t)/S(L)."""
    g = table.cohort(name).set_index("period")["active"]
    L = last[name]
    base = np.where(periods <= L, float(g.loc[0]), float(g.loc[L]))
    return g, L, base, periods > L


def _draw_interval(table: CohortTable, base: np.ndarray, p_draw: np.ndarray, q, rng):
    """Percentiles ``q`` of the projection over parameter draws (rows of ``p_draw``, survival shares of ``base``),
    with binomial noise for logo counts."""
    p_draw = np.clip(np.nan_to_num(p_draw, nan=0.0), 0.0, 1.0)
    if table.kind == "logos":
        sims = rng.binomial(np.broadcast_to(base.astype(np.int64), p_draw.shape), p_draw)
    else:
        sims = base * p_draw
    return np.percentile(sims, q, axis=0)


def _project(
    table: CohortTable, fit: CohortModelFit, last: dict[str, int], horizon: int, interval: float, n_draws: int, rng
) -> pd.DataFrame:
    periods = np.arange(horizon + 1)
    S = fit.survival(periods)
    draws = fit.draw_params(n_draws, rng)
    Sd = _survival(fit.model, periods, draws)  # draws × periods
    q = [(1 - interval) / 2 * 100, (1 + interval) / 2 * 100]
    frames = []
    for name in table.cohorts:
        g, L, base, cond = _cohort_base(table, name, last, periods)
        proj = base * S / np.where(cond, fit.survival([L])[0], 1.0)
        p_draw = Sd / np.where(cond, _survival(fit.model, [L], draws)[:, 0:1], 1.0)
        lo, hi = _draw_interval(table, base, p_draw, q, rng)
        frames.append(
            pd.DataFrame(
                {
                    "cohort": name,
                    "period": periods,
                    "observed": [g.get(t, np.nan) for t in periods],
                    "projected": proj,
                    "lo": lo,
                    "hi": hi,
                    "model": fit.name,
                    "calibration": periods <= L,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def fit_cohorts(
    table,
    until: int | None = None,
    horizon: int | None = None,
    models: Sequence[str] = MODEL_ORDER,
    level: float = 0.95,
    interval: float = 0.90,
    n_draws: int = 2000,
    seed: int = 0,
    period_days: float = DAYS_PER_YEAR,
) -> CohortFitResults:
    """Fit retention models to a cohort table and project every cohort.

    Parameters
    ----------
    table : CohortTable, DataFrame or path
        Read with :func:`read_cohort_table` if not already validated.
    until : int, optional
        Calibrate on periods ≤ ``until`` only (back-testing); later rows are
        shown as held-out actuals beside the projection.
    horizon : int, optional
        Project to this period (default: the last period in the table).
    models : sequence of str
        Any of ``sbg``, ``geometric``, ``exponential_gamma``, ``bdw``.
    level : float
        Confidence level of the parameter intervals.
    interval : float
        Level of the projection intervals ``lo``–``hi``.
    n_draws, seed : int
        Parameter draws for the projection intervals and their seed.
    period_days : float
        Length of one period in days, for the continuous curve (default one year).
    """
    if not isinstance(table, CohortTable):
        table = read_cohort_table(table)
    unknown = [m for m in models if m not in COHORT_MODELS]
    if unknown:
        raise ValueError(f"unknown cohort model {unknown[0]!r}; known: {', '.join(COHORT_MODELS)}")
    max_period = int(table.data["period"].max())
    if until is not None:
        if until < 1:
            raise DataError(f"{table.source}: --until {until}: calibration needs at least periods 0 and 1")
        if until > max_period:
            raise DataError(f"{table.source}: --until {until} is beyond the last period in the table ({max_period})")
    if horizon is None:
        horizon = max_period
    if horizon < 1:
        raise DataError(f"{table.source}: --horizon {horizon}: must be at least 1")
    cells, last = _cells(table, until)
    if cells.lost.size == 0:
        raise DataError(f"{table.source}: no cohort has a period after 0 to calibrate on")
    fits: dict[str, CohortModelFit] = {}
    for m in models:
        if m == "exponential_gamma":
            fits[m] = _fit_expgamma_lifelines(cells, table.kind, level)
        else:
            fits[m] = _fit_ml(COHORT_MODELS[m], cells, table.kind, level)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed)))
    parts = [_project(table, f, last, horizon, interval, n_draws, rng) for f in fits.values()]
    weights = akaike_weights({k: f.aic for k, f in fits.items()})
    if sum(w >= MIN_WEIGHT for w in weights.values()) > 1:
        # Its own stream, so the single-model projections are the same with or without it.
        avg_rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(1,))))
        parts.append(_project_averaged(table, fits, weights, last, horizon, interval, n_draws, avg_rng))
    projection = pd.concat(parts, ignore_index=True)
    return CohortFitResults(
        table=table,
        fits=fits,
        projection=projection,
        until=until,
        horizon=horizon,
        level=interval,
        n_draws=n_draws,
        seed=seed,
        period_days=period_days,
        last_calibrated=last,
    )


def write_cohort_fit(results: CohortFitResults, out_dir, force: bool = False, format: str = "csv") -> Path:
    """Write ``projection.csv``, ``cohort_fit.json`` and ``fit_report.md`` atomically into ``out_dir``."""
    return results.to_folder(out_dir, force=force, format=format)
