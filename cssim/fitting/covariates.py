"""Covariate models from a customer history: touch-model hazard ratios and a renewal model.

Touch effects
    For each transition a lifelines ``CoxPHFitter`` with one dummy per touch
    model (the most common one is the reference) and log ARR, stratified by
    segment (each segment keeps its own baseline hazard) and left-truncated at
    ``observed_from`` (``entry_col``). ``exp(coef)`` of a dummy is the hazard
    ratio of that touch model against the reference, with its 95 % CI — the
    number a scenario's touch ``effects`` multiply the hazard by.

Renewal model
    With a ``renewal_log`` (one entry per renewal with the customer's state at
    that renewal): a statsmodels ``Logit`` per segment of renewed on at-risk,
    still onboarding and a renewal touch in effect — the engine's own rule,
    logit p = logit(healthy or at_risk) + log OR(not activated)·[onboarding]
    + Σ log(renewal_odds of touches in effect), so the coefficients map onto
    the scenario's ``renewal`` block without approximation: ``healthy`` =
    expit(b0), ``at_risk`` = expit(b0 + b_at_risk),
    ``not_activated_odds_ratio`` = exp(b_onboarding), and exp(b_touched) is
    the renewal-odds effect of the renewal touches (averaged over them).
    Without a log, a binomial GLM of ``renewals_renewed`` of ``renewals_due``
    per customer on ever at-risk, not activated and touch model (a proxy; see
    Assumptions).

Assumptions
-----------
- Proportional hazards: a touch model multiplies the segment's hazard by a
  constant for the whole clock (cssim applies a touch's effect only while it
  is in effect, so the HR of a touch model is an average over its tasks).
- Without a ``renewal_log`` the renewal model sees customers, not renewal events: "ever at-risk"
  stands in for "at-risk at the renewal", and "not activated" for "still
  onboarding at the renewal". The mapping to a scenario's ``renewal`` block
  (``healthy`` = P(renew | never at-risk, activated, reference touch model);
  ``at_risk`` = the same with the at-risk term; ``not_activated_odds_ratio`` =
  exp of its coefficient) therefore blurs the state at the moment of renewal
  and is an approximation; it is exact only if health does not change
  between renewals.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from .history import History
from .univariate import TRANSITIONS, durations

__all__ = ["touch_hazard_ratios", "fit_renewal_model"]

MIN_EVENTS = 10


def _design(d: pd.DataFrame, reference: str) -> tuple[pd.DataFrame, list[str]]:
    models = [m for m in sorted(d["touch_model"].unique()) if m != reference]
    X = pd.DataFrame({"duration": d["duration"], "event": d["event"], "entry": d["entry"], "segment": d["segment"]})
    cols = []
    for m in models:
        X[f"touch[{m}]"] = (d["touch_model"] == m).astype(float)
        cols.append(f"touch[{m}]")
    arr = d["arr"]
    if arr.notna().all() and (arr > 0).all() and arr.nunique() > 1:
        X["log_arr"] = np.log(arr)
        X["log_arr"] -= X["log_arr"].mean()
        cols.append("log_arr")
    return X, cols


def touch_hazard_ratios(history: History, transitions=TRANSITIONS, alpha: float = 0.05, reference: str | None = None) -> pd.DataFrame:
    """Hazard ratio of each touch model per transition (Cox PH), with CIs.

    Returns one row per transition × covariate: ``transition, covariate,
    touch_model, reference, hr, lower, upper, p, n, events``. Transitions with
    one touch model or fewer than ten events are skipped.
    """
    from lifelines import CoxPHFitter
    from lifelines.exceptions import ConvergenceError

    f = history.frame
    ref = reference or str(f["touch_model"].value_counts().idxmax())
    rows = []
    for tr in transitions:
        d = durations(history, tr)
        if d["event"].sum() < MIN_EVENTS or d["touch_model"].nunique() < 2 or ref not in set(d["touch_model"]):
            continue
        X, cols = _design(d, ref)
        # With a baseline per segment, a covariate is estimable only if it varies within some segment
        # (a touch model used by a whole segment is confounded with that segment's baseline).
        varies = X.groupby("segment")[cols].nunique().max() > 1 if cols else pd.Series(dtype=bool)
        cols = [c for c in cols if bool(varies.get(c, False))]
        if not any(c.startswith("touch[") for c in cols):
            continue
        strata = ["segment"] if X["segment"].nunique() > 1 else None
        use = X[["duration", "event", "entry", *cols] + (strata or [])]
        cph = None
        for penalizer in (0.0, 1e-4):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    cph = CoxPHFitter(alpha=alpha, penalizer=penalizer).fit(
                        use, "duration", "event", entry_col="entry", strata=strata
                    )
                break
            except (ConvergenceError, np.linalg.LinAlgError):
                cph = None
        if cph is None:
            continue
        s = cph.summary
        for c in cols:
            lo_col = [k for k in s.columns if k.startswith("exp(coef) lower")][0]
            hi_col = [k for k in s.columns if k.startswith("exp(coef) upper")][0]
            rows.append(
                {
                    "transition": tr,
                    "covariate": c,
                    "touch_model": c[6:-1] if c.startswith("touch[") else None,
                    "reference": ref if c.startswith("touch[") else None,
                    "hr": float(s.loc[c, "exp(coef)"]),
                    "lower": float(s.loc[c, lo_col]),
                    "upper": float(s.loc[c, hi_col]),
                    "p": float(s.loc[c, "p"]),
                    "n": int(len(use)),
                    "events": int(use["event"].sum()),
                }
            )
    return pd.DataFrame(
        rows, columns=["transition", "covariate", "touch_model", "reference", "hr", "lower", "upper", "p", "n", "events"]
    )


def _expit(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _parameters(res) -> dict:
    """The fit's coefficients and their covariance (``cov_params``): what a forecast draws renewal uncertainty from."""
    names = [str(n) for n in res.params.index]
    return {
        "names": names,
        "estimates": [float(res.params[n]) for n in names],
        "covariance": res.cov_params().loc[names, names].to_numpy().tolist(),
        "scale": "logit coefficients",
    }


def _renewal_log_table(history: History) -> pd.DataFrame:
    """The renewal log with each renewal's segment."""
    r = history.renewals
    seg_of = history.frame.set_index(["customer_id", "episode"])["segment"]
    return r.assign(segment=seg_of.reindex(pd.MultiIndex.from_frame(r[["customer_id", "episode"]])).to_numpy())


def _renewal_log_design(g: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Design (``const`` and the estimable states) and outcome of one segment's renewals."""
    X = pd.DataFrame({"const": 1.0}, index=g.index)
    for col in ("at_risk", "onboarding", "touched"):
        # A state that never (or always) occurs, or whose renewals all went one way, is not estimable.
        if g[col].nunique() > 1 and g.loc[g[col] == 1, "renewed"].nunique() > 1:
            X[col] = g[col].astype(float)
    return X, g["renewed"].astype(float)


def _renewal_counts_rows(f: pd.DataFrame) -> pd.DataFrame:
    return f[f["renewals_due"].fillna(0) > 0]


def _renewal_counts_design(g: pd.DataFrame, extract_date) -> tuple[pd.DataFrame, np.ndarray, str]:
    """Design, (renewed, lost) counts and reference touch model of one segment's per-customer renewal counts."""
    due = g["renewals_due"].astype(float)
    renewed = g["renewals_renewed"].astype(float)
    ref = str(g["touch_model"].value_counts().idxmax())
    X = pd.DataFrame({"const": 1.0}, index=g.index)
    ever = g["first_at_risk_date"].notna() & (g["first_at_risk_date"] <= extract_date)
    not_act = g["onboarded_date"].isna()
    if ever.nunique() > 1:
        X["at_risk"] = ever.astype(float)
    if not_act.nunique() > 1:
        X["not_activated"] = not_act.astype(float)
    for m in sorted(set(g["touch_model"]) - {ref}):
        X[f"touch[{m}]"] = (g["touch_model"] == m).astype(float)
    return X, np.column_stack([renewed, due - renewed]), ref


def renewal_designs(history: History, renewal: dict) -> dict:
    """``{segment: (source, X, y, customer_ids)}`` for each segment of a fitted ``renewal`` dict: the exact
    design and outcome its coefficients were fitted on, one row per renewal (or per customer episode)."""
    out = {}
    if any(r.get("source") == "renewal_log" for r in renewal.values()):
        table = _renewal_log_table(history)
        for seg, g in table.groupby("segment", sort=True):
            if renewal.get(str(seg), {}).get("source") == "renewal_log":
                X, y = _renewal_log_design(g)
                out[str(seg)] = ("renewal_log", X, y.to_numpy(), g["customer_id"].to_numpy())
    f = _renewal_counts_rows(history.frame)
    for seg, g in f.groupby("segment", sort=True):
        if str(seg) in renewal and renewal[str(seg)].get("source") != "renewal_log":
            X, y, _ = _renewal_counts_design(g, history.extract_date)
            out[str(seg)] = ("counts", X, y, g["customer_id"].to_numpy())
    return out


def _fit_renewal_log(history: History, alpha: float, min_due: int) -> dict:
    """Per-renewal logistic regression (statsmodels Logit) per segment; see the module docstring."""
    import statsmodels.api as sm

    out = {}
    for seg, g in _renewal_log_table(history).groupby("segment", sort=True):
        if len(g) < min_due:
            continue
        X, y = _renewal_log_design(g)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = sm.Logit(y, X).fit(disp=0)
        ci = res.conf_int(alpha)
        coefs = {
            name: {
                "estimate": float(res.params[name]),
                "se": float(res.bse[name]),
                "lower": float(ci.loc[name, 0]),
                "upper": float(ci.loc[name, 1]),
                "odds_ratio": float(math.exp(res.params[name])),
            }
            for name in X.columns
        }
        b = res.params
        mapped = {"healthy": _expit(b["const"])}
        if "at_risk" in X:
            mapped["at_risk"] = _expit(b["const"] + b["at_risk"])
        if "onboarding" in X:
            mapped["not_activated_odds_ratio"] = float(math.exp(b["onboarding"]))
        if "touched" in X:
            mapped["touch_renewal_odds"] = float(math.exp(b["touched"]))
        out[str(seg)] = {
            "source": "renewal_log",
            "parameters": _parameters(res),
            "n_customers": int(g[["customer_id", "episode"]].drop_duplicates().shape[0]),
            "renewals_due": int(len(g)),
            "renewals_renewed": int(g["renewed"].sum()),
            "reference": "healthy, activated, no renewal touch",
            "coefficients": coefs,
            "renewal": mapped,
        }
    return out


def fit_renewal_model(history: History, alpha: float = 0.05, min_due: int = 20) -> dict:
    """Renewal model per segment; returns coefficients and the mapped ``renewal`` fields.

    Per-renewal ``Logit`` when the history has a ``renewal_log``, else a
    binomial GLM on the per-customer counts (a proxy). Returns
    ``{segment: {"source", "n_customers", "renewals_due", "renewals_renewed",
    "reference", "coefficients": {name: {"estimate", "lower", "upper",
    "odds_ratio"}}, "parameters": {"names", "estimates", "covariance"} (the
    coefficients and their covariance, for drawing estimation uncertainty),
    "renewal": {"healthy", "at_risk", "not_activated_odds_ratio",
    "touch_renewal_odds"}}}``; segments with fewer
    than ``min_due`` renewals are left out.
    """
    import statsmodels.api as sm

    if history.renewals is not None and len(history.renewals):
        return _fit_renewal_log(history, alpha, min_due)
    f = history.frame
    if f["renewals_due"].isna().all():
        return {}
    out = {}
    for seg, g in _renewal_counts_rows(f).groupby("segment", sort=True):
        due = g["renewals_due"].astype(float)
        if due.sum() < min_due:
            continue
        renewed = g["renewals_renewed"].astype(float)
        X, y, ref = _renewal_counts_design(g, history.extract_date)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = sm.GLM(y, X, family=sm.families.Binomial()).fit()
        ci = res.conf_int(alpha)
        coefs = {
            name: {
                "estimate": float(res.params[name]),
                "lower": float(ci.loc[name, 0]),
                "upper": float(ci.loc[name, 1]),
                "odds_ratio": float(math.exp(res.params[name])),
            }
            for name in X.columns
        }
        b0 = res.params["const"]
        mapped = {"healthy": _expit(b0)}
        if "at_risk" in X:
            mapped["at_risk"] = _expit(b0 + res.params["at_risk"])
        if "not_activated" in X:
            mapped["not_activated_odds_ratio"] = float(math.exp(res.params["not_activated"]))
        out[str(seg)] = {
            "source": "renewal counts (proxy)",
            "parameters": _parameters(res),
            "n_customers": int(len(g)),
            "renewals_due": int(due.sum()),
            "renewals_renewed": int(renewed.sum()),
            "reference": ref,
            "coefficients": coefs,
            "renewal": mapped,
        }
    return out
