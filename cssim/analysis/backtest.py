"""Back-testing: forecast from what was known at a cutoff, score against what happened next.

``cssim backtest HISTORY --cutoff DATE --horizon MONTHS`` censors a customer
history at the cutoff (every date after it is unknown), fits the lifecycle
curves on what was known (:func:`cssim.fitting.curvesfile.fit_history`),
builds a scenario with those curves, the book as it stood at the cutoff (an
explicit ``book``, see :mod:`cssim.book`) and new logos at the pre-cutoff
rate, simulates forward and compares with the history after the cutoff.

Two baselines users run today are scored on the same split:

- ``flat_rate``: each segment's churn rate over the 12 months before the
  cutoff (churned ÷ customer-months) applied every month to every customer;
- ``constant_hazard``: an exponential fit per segment (events ÷ exposure since
  signing, left-truncated at ``observed_from``), i.e. a hazard that does not
  change with tenure.

Both baselines are simulated customer by customer (binomial churn, Poisson new
logos, new ARR resampled from pre-cutoff signings), so they have intervals too.

Scores per method and metric (``active_logos``, ``arr``, ``churned``,
``renewed``): ``coverage`` — share of months whose actual lies in the 90 %
interval; ``mape`` — mean absolute percentage error of the forecast mean over
months with a non-zero actual; ``bias`` — mean of (forecast − actual) / actual.

Assumptions
-----------
- ARR is the history's ``arr`` column (ARR at signing); the history records no
  later price changes, so the forecast runs without expansion or contraction
  and without win-back (returning customers appear as new logos, as they do in
  the history's new-logo rate).
- The fitted curves already contain the historical policy's touch effects
  (they are pooled over touch models), so the template's touch effects are
  neutralised; tasks still run, so CSM workload is simulated. The fitted churn
  curve is the marginal signing → churn time, so the at-risk churn multiplier
  is set to 1.
- A customer's at-risk state at the cutoff is known only from its first
  at-risk spell (the history keeps only the first).
- New logos arrive at the rate of the 12 months before the cutoff; each
  replication draws its rate from the rate's posterior (Gamma, Jeffreys prior)
  and Poisson counts around it, for cssim and the baselines alike.
- The fitted curves carry their estimation covariance (``uncertainty`` blocks,
  :mod:`cssim.uncertainty`) and, with ``parameter_uncertainty="asymptotic"``
  (the default), each replication draws its curve parameters from it: a curve
  fitted on a short history is known only roughly, and intervals that leave
  that out under-cover. The forecast is then run a second time at the point
  estimates on the same replications (method ``cssim_point``), which scores
  the intervals without estimation error and measures its share of the width
  (``uncertainty``). Observed renewal probabilities carry their binomial
  error the same way; the choice of curve family stays fixed.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ..core.clock import DAYS_PER_MONTH
from ..core.contract import Results, Summary
from ..core.errors import DataError
from ..core.output import build_manifest
from ..fitting.curvesfile import HistoryFitResults
from ..fitting.history import read_history
from ..fitting.univariate import FAMILY_ORDER, REPORT_ONLY, TRANSITIONS, WEIGHTINGS, UnivariateFit, durations
from ..model.forecast import FORMAT, VERSION, month_index, month_label
from ..model.loader import read_scenario_dict, scenario_from_dict
from ..model.scenario import TAIL_POLICIES, RenewalSpec, with_tail
from ..model.uncertainty import attach_fitted
from ..plots.figures import backtest_calibration, backtest_fan, save
from .baselines import N_ACQUISITION_PATHS, TRAILING_MONTHS, acquisition_paths, baseline_rates, simulate_baseline
from .cutoff import METRICS, actual_paths, book_at, censor_history, date_column, read_raw_history
from .scoring import LEVEL, estimation_share, score
from .simulate import simulate

__all__ = ["BacktestResults", "backtest", "censor_history", "book_at", "estimation_share", "write_backtest", "METHODS",
           "METRICS"]

METHODS = ("cssim", "cssim_best", "cssim_point", "flat_rate", "constant_hazard")
MODEL_UNCERTAINTY = ("averaged", "best")
PARAMETER_UNCERTAINTY = ("none", "asymptotic", "bootstrap")
BOOTSTRAP_REFITS = 200
MIN_CHURN_EVENTS = 5
_CURVED = ("onboarding", "growth", "at_risk", "recovery", "churn")


# --------------------------------------------------------------------------- the forecast scenario


def _default_template(segments) -> dict:
    return {
        "name": "backtest",
        "segments": {s: {"arr": {"median": 1.0}, "touch_model": "none",
                         "contract": {"term_months": 12, "billing": "monthly"}} for s in segments},
        "touch_models": {"none": {"description": "no CS work recorded"}},
    }


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__


def _uncertain_spec(key: str, fit, spec: dict, mode: str = "asymptotic", bootstrap: int = 0, seed: int = 0) -> dict:
    """``spec`` with the fit's estimation covariance; the point estimate, with a warning naming ``key``, if unusable.

    With ``mode="bootstrap"`` the block also gets ``bootstrap`` refits of the
    chosen family to customer resamples (:meth:`UnivariateFit.bootstrap`); a
    curve without at least two of them stays at its point estimate, since a
    bootstrap scenario cannot draw it.
    """
    try:
        parameters = fit.covariance()
        if mode == "bootstrap":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # failed refits are reported below if too few remain
                rows = fit.bootstrap(bootstrap, seed)
            if len(rows) < 2:
                raise ValueError(f"{len(rows)} of {bootstrap} bootstrap refits succeeded")
            parameters = {**parameters, "bootstrap": rows}  # with no usable Hessian their spread stands in for it
    except Exception as exc:  # noqa: BLE001 - e.g. no variance matrix, failed refits: the forecast can still run
        if mode == "bootstrap":
            warnings.warn(f"back-test curve {key}: no bootstrap sets ({_first_line(exc)}); this curve is "
                          "used at its point estimate", stacklevel=3)
            return spec
        parameters = {"error": _first_line(exc)}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = attach_fitted(spec, parameters)
    if out.get("uncertainty") is None and spec.get("family") != "never":
        why = str(caught[0].message) if caught else f"its covariance is not usable ({parameters.get('error')})"
        warnings.warn(f"back-test curve {key}: {why}; this curve is used at its point estimate", stacklevel=3)
    return out


def _averaged_spec(key: str, fit, spec: dict, mode: str, bootstrap: int, seed: int) -> dict | None:
    """The fit's model-averaged spec (None: one credible family), its chosen family as :func:`_uncertain_spec` has it."""
    averaged = fit.averaged_spec()
    if averaged is None:
        return None
    chosen = spec if mode == "none" else _uncertain_spec(key, fit, spec, mode, bootstrap, seed)
    if mode == "bootstrap" and (chosen.get("uncertainty") or {}).get("bootstrap") is None:
        chosen = {k: v for k, v in chosen.items() if k != "uncertainty"}
    averaged["models"][0]["curve"] = chosen
    return averaged


def _forecast_scenario(template: dict, fits, known: pd.DataFrame, cutoff: dt.date, months: int, books_dir: Path,
                       books: dict, replications: int, seed: int, acquisition: dict,
                       parameter_uncertainty: str = "asymptotic", bootstrap: int = 0,
                       model_uncertainty: str = "averaged", tail: str | None = None) -> dict:
    data = {k: v for k, v in template.items() if k not in ("sweep", "sensitivity", "extends")}
    data.update(start_date=cutoff.isoformat(), horizon_months=months, replications=replications, seed=seed)
    for tm in data.get("touch_models", {}).values():
        for task in (tm.get("tasks") or {}).values():
            task.pop("effects", None)
    segs = {}
    for name in sorted(known["segment"].unique()):
        seg = dict(data.get("segments", {}).get(name) or next(iter(data["segments"].values())))
        m = known["segment"] == name
        arr = pd.to_numeric(known.loc[m, "arr"], errors="coerce").dropna()
        arr = arr[arr > 0]
        logs = np.log(arr.to_numpy()) if len(arr) else np.array([0.0])
        seg["arr"] = {"median": float(np.exp(logs.mean())), "sigma": float(logs.std()) if len(logs) > 1 else 0.0,
                      "min": float(arr.min()) if len(arr) else 0.0}
        for key in ("initial_customers", "initial_tenure_months", "book"):
            seg.pop(key, None)  # the book at the cutoff replaces the template's initial customers
        seg.pop("new_logos_per_month", None)
        seg["acquisition"] = {"file": str(books_dir / "acquisition.json"), "key": name}
        life = dict(seg.get("lifecycle") or {})
        for tr in _CURVED:
            key = f"{name}/{tr}"
            if key in fits.fits:
                spec = fits.curve_spec(key)
                averaged = None if model_uncertainty == "best" else _averaged_spec(
                    key, fits.fits[key], spec, parameter_uncertainty, bootstrap, seed)
                if averaged is not None:
                    life[tr] = averaged
                else:
                    life[tr] = spec if parameter_uncertainty == "none" else _uncertain_spec(
                        key, fits.fits[key], spec, parameter_uncertainty, bootstrap, seed)
                life[tr] = with_tail(life[tr], fits.fits[key].edge_, tail)
        life["at_risk_churn_hazard_ratio"] = 1.0
        seg["lifecycle"] = life
        seg["expansion"] = {"probability": {"onboarding": 0.0, "growth": 0.0, "maturity": 0.0},
                            "contraction_probability": {"healthy": 0.0, "at_risk": 0.0}}
        seg["winback"] = {"probability": 0.0}
        renewal = dict(seg.get("renewal") or {})
        observed = _renewal_rates(fits.history, name, uncertainty=parameter_uncertainty == "asymptotic")
        if observed:  # the history's renewals replace the template's model (values and uncertainty)
            renewal = {k: v for k, v in renewal.items() if k not in ("fitted", "uncertainty")} | observed
        seg["renewal"] = renewal
        book = books.get(name)
        if book is not None and len(book):
            path = books_dir / f"book_{name}.csv"
            book.to_csv(path, index=False)
            seg["book"] = {"file": str(path)}
        segs[name] = seg
    data["segments"] = segs
    (books_dir / "acquisition.json").write_text(json.dumps(acquisition))
    pods = (data.get("team") or {}).get("pods") or {}
    for pod in pods.values():
        pod["segments"] = [s for s in pod.get("segments", []) if s in segs]
        pod.pop("hires", None)
    if pods:
        data["team"]["pods"] = {k: v for k, v in pods.items() if v["segments"]}
    data["policy"] = {"routes": [r for r in (data.get("policy") or {}).get("routes", [])
                                 if r.get("segment") in (None, *segs)]}
    if parameter_uncertainty == "bootstrap":
        # A bootstrap scenario draws only from stored sets: a curve with a covariance but no sets (one the
        # template brought) would fail validation, so it is cut back to its point estimate.
        for seg in segs.values():
            for tr, c in seg["lifecycle"].items():
                if isinstance(c, dict) and "uncertainty" in c and (c["uncertainty"] or {}).get("bootstrap") is None:
                    seg["lifecycle"][tr] = {k: v for k, v in c.items() if k != "uncertainty"}
    def carries(c) -> bool:
        if isinstance(c, dict) and c.get("family") == "averaged":
            return any(m["curve"].get("uncertainty") is not None for m in c["models"])
        return isinstance(c, dict) and c.get("uncertainty") is not None

    carrying = any(carries(c) for seg in segs.values() for c in [*seg["lifecycle"].values(), seg["renewal"]])
    if parameter_uncertainty != "none" and not carrying:
        warnings.warn(f"back-test: no fitted curve has a usable covariance; parameter_uncertainty "
                      f"{parameter_uncertainty} falls back to none (intervals leave out estimation error)",
                      stacklevel=3)
        parameter_uncertainty = "none"
    data["parameter_uncertainty"] = parameter_uncertainty
    data["model_uncertainty"] = model_uncertainty
    return data


def _renewal_rates(history, segment: str, min_due: int = 10, uncertainty: bool = False) -> dict:
    """Renewal probabilities (healthy / at-risk) observed before the cutoff, where there are enough renewals.

    With ``uncertainty``, also their binomial sampling error as a renewal
    ``uncertainty`` block (:class:`cssim.scenario.RenewalUncertainty`): on the
    logit scale var(logit p̂) = 1 / (n p̂ (1 − p̂)), independent between the two
    states, so log_or_at_risk = logit p̂_at_risk − logit p̂_healthy has variance
    var_h + var_r and covariance −var_h with logit_healthy.
    """
    r = history.renewals
    if r is None or not len(r):
        return {}
    seg_of = history.frame.set_index(["customer_id", "episode"])["segment"]
    r = r.join(seg_of, on=["customer_id", "episode"])
    r = r[r["segment"] == segment]
    out, var = {}, {}
    for state, flag in (("healthy", 0), ("at_risk", 1)):
        sub = r[r["at_risk"] == flag]
        if len(sub) >= min_due:
            p = float(min(max(sub["renewed"].mean(), 0.01), 0.99))
            out[state], var[state] = p, 1.0 / (len(sub) * p * (1.0 - p))
    if uncertainty and "healthy" in out:
        coef = RenewalSpec(**out).coefficients()
        vh = var["healthy"]
        if "at_risk" in out:
            vr = var["at_risk"]
            out["uncertainty"] = {"names": ["logit_healthy", "log_or_at_risk"],
                                  "estimates": [coef["logit_healthy"], coef["log_or_at_risk"]],
                                  "covariance": [[vh, -vh], [-vh, vh + vr]]}
        else:
            out["uncertainty"] = {"names": ["logit_healthy"], "estimates": [coef["logit_healthy"]],
                                  "covariance": [[vh]]}
    return out


class BacktestResults(Results):
    """A finished back-test: :meth:`table` (month × metric × method), ``scores``, ``actual`` and the context."""

    KIND = "backtest"
    level = LEVEL

    def __init__(self, table, scores, actual, history_path, cutoff, months, scenario, before, rates, books=None,
                 parameter_uncertainty: str = "none", model_uncertainty: str = "best"):
        self.forecast = table
        self.scores = scores
        self.actual = actual
        self.history_path = history_path
        self.cutoff = cutoff
        self.months = months
        self.scenario = scenario
        self.before = before  # actual path over the months before the cutoff (context for the fan chart)
        self.rates = rates
        self.books = books or {}  # segment → the starting book at the cutoff (DataFrame)
        self.parameter_uncertainty = parameter_uncertainty  # the forecast scenario's mode as run
        self.model_uncertainty = model_uncertainty  # averaged: some curve averaged over families
        self.uncertainty = estimation_share(scores)  # empty unless both cssim and cssim_point ran

    def _weightings(self) -> list[str]:
        """How the averaged curves were weighted (e.g. ``["pseudo_bma"]``); empty without an averaged curve."""
        return sorted({spec.weighting for *_, spec in self.scenario.averaged_curves()})

    def _weighting_note(self) -> str:
        """E.g. " (pseudo_bma weights)"; empty without an averaged curve."""
        names = self._weightings()
        return f" ({', '.join(names)} weights)" if names else ""

    def table(self) -> pd.DataFrame:
        """The forecasts against the actual path: month × metric × method, with the interval and the actual value."""
        return self.forecast

    def tables(self) -> dict[str, pd.DataFrame]:
        out = {"backtest": self.table(), "scores": self.scores}
        if len(self.uncertainty):
            out["uncertainty"] = self.uncertainty
        return out

    @property
    def manifest(self) -> dict:
        return build_manifest(
            self.KIND, history=self.history_path, cutoff=self.cutoff.isoformat(), horizon_months=self.months,
            replications=self.scenario.replications, parameter_uncertainty=self.parameter_uncertainty,
            model_uncertainty=self.model_uncertainty, weighting=self._weightings(), seed=self.scenario.seed,
            level=self.level,
        )

    def write_figures(self, folder: Path) -> None:
        """The fan charts and calibration plot, and the forecast scenario (``scenario.yaml``, runnable again with
        ``cssim run``) with its books and acquisition forecast beside it."""
        save(self.plot_fan("active_logos"), folder / "fan_active_logos.png")
        save(self.plot_fan("arr"), folder / "fan_arr.png")
        save(self.plot_calibration(), folder / "calibration.png")
        data = self.scenario.model_dump(mode="json", exclude_none=True)
        for name, book in self.books.items():
            if name in data["segments"] and len(book):
                book.to_csv(folder / f"book_{name}.csv", index=False)
                data["segments"][name]["book"] = {"file": f"book_{name}.csv"}
        acquisition = getattr(self, "acquisition", None)
        if acquisition is not None:
            (folder / "acquisition.json").write_text(json.dumps(acquisition))
            for name, seg in data["segments"].items():
                if "acquisition" in seg:
                    seg["acquisition"] = {"file": "acquisition.json", "key": name}
        (folder / "scenario.yaml").write_text(yaml.safe_dump(data, sort_keys=False))

    def summary(self) -> Summary:
        how = {"none": "none (fitted curves at their point estimates)",
               "asymptotic": "asymptotic (curve parameters and renewal rates drawn per replication from their "
                             "estimation covariance)",
               "bootstrap": "bootstrap (curve parameters: one refit on resampled customers per replication)"}
        lines = [f"back-test of {self.history_path}: cutoff {self.cutoff}, {self.months} months forward",
                 f"parameter uncertainty: {how.get(self.parameter_uncertainty, self.parameter_uncertainty)}",
                 "model uncertainty: " + (f"averaged (each replication draws a curve family by its weight"
                                          f"{self._weighting_note()}; cssim_best: the lowest-AIC family only)"
                                          if self.model_uncertainty == "averaged" else "best (lowest-AIC family)")]
        for _, _, path, spec in self.scenario.averaged_curves():
            fams = ", ".join(f"{m.curve['family']} {m.weight:.0%}" for m in spec.models)
            lines.append(f"  {path.removeprefix('segments.').replace('.lifecycle.', '/')}: {fams}")
        s = self.scores[self.scores.metric.isin(["active_logos", "arr"])]
        for _, r in s.iterrows():
            lines.append(
                f"  {r.metric:<13} {r.method:<16} coverage {r.coverage:6.0%}   MAPE {r.mape:6.1%}   bias {r.bias:+6.1%}"
            )
        u = self.uncertainty
        if len(u):
            lines.append(f"{round(LEVEL * 100)} % interval width, mean over months: with parameter uncertainty "
                         "(cssim) / point-estimate curves (cssim_point); estimation share = 1 - (point/with)^2")
            for r in u.itertuples():
                share = "n/a" if not np.isfinite(r.share_estimation) else f"{r.share_estimation:.0%}"
                model = ""
                if "share_model" in u.columns:
                    model = "   model share " + ("n/a" if not np.isfinite(r.share_model) else f"{r.share_model:.0%}")
                lines.append(f"  {r.metric:<13} width {r.width_with:12,.1f} / {r.width_without:12,.1f}"
                             f"   estimation share {share:>4}{model}")
        return Summary(self.scores.set_index(["metric", "method"]), text="\n".join(lines))

    def plot_fan(self, metric: str = "active_logos", ax=None):
        return backtest_fan(self, metric, ax=ax)

    def plot_calibration(self, ax=None):
        return backtest_calibration(self.scores, ax=ax)


def _parse_cutoff(cutoff) -> dt.date:
    if isinstance(cutoff, dt.date):
        return cutoff
    try:
        return dt.date.fromisoformat(str(cutoff))
    except ValueError:
        raise DataError(f"--cutoff: {cutoff!r} is not a date (YYYY-MM-DD)") from None


def fit_known(history, families=None, weighting: str | None = None):
    """Per segment × transition curve fits (:class:`~cssim.fitting.univariate.UnivariateFit`) of a censored history.

    Returns a :class:`~cssim.fitting.curvesfile.HistoryFitResults` holding only the
    curves (the back-test does not need touch effects or the renewal model).
    """
    families = tuple(families or (f for f in FAMILY_ORDER if f not in REPORT_ONLY))
    res = HistoryFitResults(history)
    for seg in history.segments:
        for tr in TRANSITIONS:
            key = f"{seg}/{tr}"
            try:
                res.fits[key] = UnivariateFit(durations(history, tr, seg), seg, tr, families=families,
                                              weighting=weighting).fit()
            except DataError as exc:
                res.skipped[key] = str(exc).split(": ", 1)[-1]
    return res


def _acquisition_file(paths: dict, cutoff: dt.date, months: int) -> dict:
    """The new-logo paths as a cssim acquisition forecast (``cssim.forecast``), starting at the cutoff's month."""
    start = month_label(month_index(cutoff))
    return {"format": FORMAT, "version": VERSION, "segments": {
        name: {"start": start, "months": months, "mean": p.mean(axis=0).tolist(), "paths": p.tolist()}
        for name, p in paths.items()}}


def backtest(history, cutoff, horizon: int, template=None, replications: int = 100, seed: int = 0,
             jobs: int = 1, families=None, rate_uncertainty: bool = True,
             parameter_uncertainty: str = "asymptotic", bootstrap: int | None = None,
             model_uncertainty: str = "averaged", tail: str | None = None,
             weighting: str | None = None) -> BacktestResults:
    """Back-test cssim and the baselines on ``history`` split at ``cutoff``; see the module docstring.

    Parameters
    ----------
    history : str or Path
        A customer-history file (``docs/fitting.md``).
    cutoff : date or ``YYYY-MM-DD``
        Everything after it is treated as unknown.
    horizon : int
        Months forecast after the cutoff; must end by the history's extract date.
    template : str, Path or dict, optional
        A scenario whose touch models, team, contracts and renewal settings are
        used; curves, ARR, book and new-logo rates come from the history.
    families : sequence of str, optional
        Candidate curve families (default: every simulatable family); the lowest AIC wins.
    rate_uncertainty : bool
        New logos follow paths whose monthly rate is drawn from its posterior given the
        12 months before the cutoff (the default), instead of the point estimate, for
        cssim and the baselines alike.
    parameter_uncertainty : ``"asymptotic"``, ``"bootstrap"`` or ``"none"``
        ``asymptotic`` (the default): the fitted curves carry their estimation
        covariance and each replication draws its curve parameters from it
        (method ``cssim``); the forecast is run again at the point estimates on
        the same replications (``cssim_point``) to score intervals without
        estimation error and measure its share (``uncertainty``).
        ``bootstrap``: each replication takes one of ``bootstrap`` refits of
        every curve to customer resamples instead (slower: that many refits per
        curve; safer than the normal approximation on very small histories).
        ``none``: the point estimates only, as ``cssim``.
    bootstrap : int, optional
        Refits per curve with ``parameter_uncertainty="bootstrap"`` (default 200).
    model_uncertainty : ``"averaged"`` or ``"best"``
        ``averaged`` (the default): a curve whose fit has more than one
        credible family (weight ≥ 1 %, see ``weighting``) averages over them — each
        replication draws a family by weight, then its parameters — and the
        forecast is run again with the lowest-AIC family only (``cssim_best``)
        to score intervals without model uncertainty. ``best``: the lowest-AIC
        family is taken as known.
    weighting : str, optional
        How the candidate families are weighted for averaging: one of
        :data:`cssim.fitting.univariate.WEIGHTINGS` (``akaike``, ``stacking``,
        ``pseudo_bma``); default :data:`cssim.fitting.univariate.DEFAULT_WEIGHTING`.
    tail : ``"auto"``, ``"hold"`` or ``"fitted"``, optional
        Hazards beyond each curve's data edge (where fewer than 20 were at
        risk before the cutoff): held at their level over the last
        well-observed window, the fitted curve extrapolated, or ``auto``: held
        only where the fitted hazard would rise above that level (default:
        :data:`cssim.scenario.DEFAULT_TAIL`).
    """
    cutoff = _parse_cutoff(cutoff)
    if parameter_uncertainty not in PARAMETER_UNCERTAINTY:
        raise DataError(f"--parameter-uncertainty: {parameter_uncertainty!r}; choose one of "
                        f"{', '.join(PARAMETER_UNCERTAINTY)}")
    if bootstrap is not None and parameter_uncertainty != "bootstrap":
        raise DataError(f"--bootstrap: {bootstrap} refits, but parameter uncertainty is {parameter_uncertainty}; "
                        "use --parameter-uncertainty bootstrap")
    bootstrap = BOOTSTRAP_REFITS if bootstrap is None else bootstrap
    if parameter_uncertainty == "bootstrap" and bootstrap < 2:
        raise DataError(f"--bootstrap: {bootstrap} refits; give at least 2")
    if horizon < 1:
        raise DataError(f"--horizon: {horizon} months; give at least 1")
    if tail is not None and tail not in TAIL_POLICIES:
        raise DataError(f"--tail: {tail!r}; choose one of {', '.join(TAIL_POLICIES)}")
    if model_uncertainty not in MODEL_UNCERTAINTY:
        raise DataError(f"--model-uncertainty: {model_uncertainty!r}; choose one of {', '.join(MODEL_UNCERTAINTY)}")
    if weighting is not None and weighting not in WEIGHTINGS:
        raise DataError(f"--weighting: {weighting!r}; choose one of {', '.join(WEIGHTINGS)}")
    full = read_history(history)
    label = full.source
    first = full.frame["signed_date"].min().date()
    extract = full.extract_date.date()
    if not first < cutoff < extract:
        raise DataError(
            f"{label}: cutoff {cutoff} is outside the history ({first} .. {extract}); choose a date inside it"
        )
    end = cutoff + dt.timedelta(days=math.floor(horizon * DAYS_PER_MONTH))
    if end > extract + dt.timedelta(days=1):  # a day's slack: cssim months are 30.44 days, calendar years 365
        room = int((extract - cutoff).days // DAYS_PER_MONTH)
        raise DataError(
            f"{label}: {horizon} months after {cutoff} runs past the extract date {extract}; "
            f"use --horizon {room} or an earlier --cutoff"
        )
    raw = read_raw_history(history)
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    if "segment" not in raw:
        raw["segment"] = "all"
    raw.loc[raw["segment"].str.strip() == "", "segment"] = "all"
    if "arr" not in raw:
        raise DataError(f"{label}: the back-test needs an 'arr' column (ARR per customer)")
    known = censor_history(raw, cutoff)
    rates = baseline_rates(known, cutoff)
    events = sum(r["events"] for r in rates.values())
    if events < MIN_CHURN_EVENTS:
        raise DataError(
            f"{label}: only {events} churn events before the cutoff {cutoff}; at least {MIN_CHURN_EVENTS} are "
            "needed to fit anything, choose a later --cutoff"
        )
    if isinstance(template, (str, Path)):
        template = read_scenario_dict(template)
    template = template or _default_template(sorted(known["segment"].unique()))
    signing = {s: float(((template.get("segments") or {}).get(s) or {}).get("lifecycle", {}).get("signing_days", 14.0))
               for s in known["segment"].unique()}
    touch_models = tuple(template.get("touch_models", {}))

    cut = pd.Timestamp(cutoff)
    recent = date_column(known, "signed_date") > cut - pd.Timedelta(days=TRAILING_MONTHS * DAYS_PER_MONTH)
    new_paths = {
        name: acquisition_paths(int(((known["segment"] == name) & recent).sum()), horizon,
                                np.random.default_rng(np.random.SeedSequence([seed, 7_417, i])), rate_uncertainty)
        for i, name in enumerate(sorted(known["segment"].unique()))
    }
    with tempfile.TemporaryDirectory(prefix="cssim-backtest-") as tmp:
        tmp = Path(tmp)
        known.to_csv(tmp / "history_at_cutoff.csv", index=False)
        fits = fit_known(read_history(tmp / "history_at_cutoff.csv", extract_date=cutoff), families, weighting)
        if not fits.fits:
            first = next(iter(fits.skipped.items()), ("", "no segments"))
            raise DataError(f"{label}: no curve could be fitted on the history before the cutoff {cutoff} "
                            f"(e.g. {first[0]}: {first[1]}); choose a later --cutoff")
        books = book_at(known, cutoff, signing, touch_models)
        acquisition = _acquisition_file(new_paths, cutoff, horizon)
        data = _forecast_scenario(template, fits, known, cutoff, horizon, tmp, books, replications, seed, acquisition,
                                  parameter_uncertainty, bootstrap, model_uncertainty, tail)
        scenario = scenario_from_dict(data, source=f"back-test scenario for {label}")
        results = simulate(scenario, jobs=jobs)
        runs = {"cssim": results}
        if scenario.model_mode == "averaged":
            # The lowest-AIC family only, with its parameter uncertainty: the interval without model choice.
            best = scenario.model_copy(update={"model_uncertainty": "best"})
            runs["cssim_best"] = simulate(best, jobs=jobs, replication_ids=results.replication_ids)
        if scenario.uncertainty_mode != "none":
            # Same replications, same customers and arrivals: only the curve parameters differ.
            point = scenario.model_copy(update={"parameter_uncertainty": "none", "model_uncertainty": "best"})
            runs["cssim_point"] = simulate(point, jobs=jobs, replication_ids=results.replication_ids)
    samples = {}
    for method, run in runs.items():
        seg = run.arrays["segment"]
        samples[method] = {
            "active_logos": seg["active"].sum(axis=2), "arr": seg["arr"].sum(axis=2),
            "churned": seg["churned_logos"].sum(axis=2), "renewed": seg["renewals_renewed"].sum(axis=2),
        }
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7_417]))
    for method in ("flat_rate", "constant_hazard"):
        parts = []
        for name, r in rates.items():
            m = known["segment"] == name
            book = books.get(name)
            book_arr = book["arr"].to_numpy(float) if book is not None and len(book) else np.zeros(0)
            new_arr = pd.to_numeric(known.loc[m & recent, "arr"], errors="coerce").dropna().to_numpy()
            arrivals = new_paths[name][rng.integers(N_ACQUISITION_PATHS, size=replications)]
            parts.append(simulate_baseline(r[method], book_arr, arrivals, new_arr, horizon, replications, rng))
        samples[method] = {k: sum(p[k] for p in parts) for k in METRICS}
    actual = actual_paths(raw, cutoff, horizon)
    before_months = min(TRAILING_MONTHS, int((cutoff - first).days // DAYS_PER_MONTH))
    start_before = cutoff - dt.timedelta(days=before_months * DAYS_PER_MONTH)
    before = actual_paths(raw, start_before, before_months) if before_months else actual.iloc[:0]
    if len(before):
        before["month"] = before["month"] - before_months
    table, scores = score(actual, samples)
    res = BacktestResults(table, scores, actual, label, cutoff, horizon, scenario, before, rates, books,
                          parameter_uncertainty=scenario.uncertainty_mode, model_uncertainty=scenario.model_mode)
    res.acquisition = acquisition
    return res


def write_backtest(res: BacktestResults, out, force: bool = False, format: str = "csv") -> Path:
    """Write ``backtest.csv``, ``scores.csv``, ``uncertainty.csv`` (with parameter uncertainty), ``summary.txt``, the
    figures, the forecast scenario (``scenario.yaml`` with its ``book_<segment>.csv`` files) and a manifest
    atomically into ``out`` (:meth:`BacktestResults.to_folder`)."""
    return res.to_folder(out, force=force, format=format)
