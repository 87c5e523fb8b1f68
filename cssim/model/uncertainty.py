"""Estimation uncertainty in every forecast: curves, renewal models and touch effects drawn per replication.

A curve fitted to a few hundred customers is known only up to its sampling
error, and a forecast that always uses the point estimate reports intervals
that are too narrow. A curve spec may therefore carry an ``uncertainty``
block (:class:`cssim.scenario.CurveUncertainty`): the log of its parameters,
their covariance and optionally bootstrap parameter sets. With
``parameter_uncertainty`` on (the default whenever some curve carries such a
block), each replication draws every such curve's parameters **once**, before
any customer exists:

- ``asymptotic``: x = x̂ + L z with L Lᵀ = Σ (Cholesky; eigen-factor if Σ is
  singular) and z ~ N(0, I), on the log scale; the curve gets exp(x).
- ``bootstrap``: one of the stored sets, chosen uniformly.

The draw comes from its own stream, keyed ``(seed, replication, KIND_PARAMS,
segment, transition)`` (:mod:`cssim.streams`), so a replication's parameters
are the same on every worker; two scenarios run with the same seed draw the
same parameters for the same curve (common random numbers, also for the
parameter draw); and every process-noise stream — arrivals, customers, pods —
is the same whether uncertainty is on or off. Renewal models and touch
effects are drawn the same way from streams of their own
(:class:`ReplicationParameters` gives the engine all three). Replications then mix process
noise (which customers churn) and estimation error (what the curve is), as a
predictive distribution should.

:func:`cssim.analysis.decompose.decompose` measures how much of each interval this adds.

Building the block from a fit: :func:`with_uncertainty` converts lifelines'
``variance_matrix_`` (natural parameters, in ``_fitted_parameter_names``
order) to the curve's log scale by the delta method, Σ_log = J V Jᵀ with J
the Jacobian of the log transform (d log θ / dθ = 1/θ; lifelines' log-normal
``mu_`` is already log(median)). :func:`from_fitter` does it for a fitted
lifelines univariate fitter; ``cssim fit``'s curves files carry the same
covariance and a scenario's ``{family: fitted}`` reference gets the block on
load (:func:`attach_fitted`).

Assumptions
-----------
- The sampling distribution of the log parameters is approximately normal
  (large-sample maximum likelihood); with very small histories the bootstrap
  is the safer choice.
- Curves, renewal models (``renewal.uncertainty``, logit scale, or
  ``renewal.fitted`` from a curves file, read by :func:`cssim.model.loader.fitted_renewal`) and touch
  effects (``effects.intervals``, log-normal from a 95 % interval) are drawn
  (acquisition paths have their own uncertainty, see ``segments.*.acquisition``).
- Model uncertainty: an ``averaged`` curve (:class:`cssim.scenario.AveragedCurve`,
  what a fitted reference resolves to when its fit has several credible
  families) first draws its family by weight from a stream of its own,
  ``(seed, rep, KIND_PARAMS, segment, transition, "family")``, then that
  family's parameters as above; ``model_uncertainty: best`` keeps the chosen
  family. The weights (Akaike by default) treat the candidates as the only
  possibilities: a shape none of them has is not covered.
- Touch-effect intervals carry no covariance: ratios are independent of each
  other and of the curves, and are drawn log-normally in either mode.
- One draw per block per replication: every customer of a replication shares
  the same (unknown but fixed) curve, renewal model and touch effect, as the
  customers of one future would.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..core import streams as S
from .scenario import (
    EFFECT_NAMES,
    MIN_MODEL_WEIGHT,
    AveragedCurve,
    FittedCurve,
    _concrete_curve_adapter,
)

__all__ = [
    "LIFELINES_PARAMETERS",
    "with_uncertainty",
    "from_fitter",
    "attach_fitted",
    "averaged_spec",
    "draw_parameters",
    "replication_curve",
    "replication_spec",
    "draw_family",
    "replication_renewal",
    "replication_effects",
    "ReplicationParameters",
]

#: lifelines' fitted parameter names per curve family → (curve parameter, transform to the curve's log scale).
#: ``log``: log θ; ``identity``: the value already is the log (log-normal ``mu_`` = log median);
#: ``neglog``: −log θ (piecewise-exponential ``lambda_i_`` is 1/rate).
LIFELINES_PARAMETERS: dict[str, dict[str, tuple[str, str]]] = {
    "exponential": {"lambda_": ("scale", "log")},
    "weibull": {"lambda_": ("scale", "log"), "rho_": ("shape", "log")},
    "lognormal": {"mu_": ("median", "identity"), "sigma_": ("sigma", "log")},
    "loglogistic": {"alpha_": ("scale", "log"), "beta_": ("shape", "log")},
    "exponential_gamma": {"scale_": ("scale", "log"), "shape_": ("shape", "log")},
    "weibull_gamma": {"scale_": ("scale", "log"), "rho_": ("rho", "log"), "shape_": ("shape", "log")},
}


def _lifelines_name(family: str, key: str) -> tuple[str, str] | None:
    if family == "piecewise_exponential" and key.startswith("lambda_") and key.endswith("_"):
        index = key[len("lambda_") : -1]
        if index.isdigit():
            return f"rates.{int(index)}", "neglog"
    return LIFELINES_PARAMETERS.get(family, {}).get(key)


def _transform(kind: str, value: float) -> tuple[float, float]:
    """(log-scale value, derivative) of one parameter."""
    if kind == "identity":
        return float(value), 1.0
    if value <= 0 or not math.isfinite(value):
        raise ValueError(f"a positive finite value is needed for the log scale, got {value}")
    if kind == "log":
        return math.log(value), 1.0 / value
    return -math.log(value), -1.0 / value  # neglog


def _concrete(spec):
    """The validated concrete curve spec of a dict, a spec, or a fitted reference."""
    if isinstance(spec, FittedCurve):
        return spec.concrete()
    if isinstance(spec, Mapping):
        return _concrete_curve_adapter().validate_python(dict(spec))
    return spec


def with_uncertainty(spec, params, cov, bootstrap=None, scale: str = "natural") -> dict:
    """``spec`` (a curve spec dict) with an ``uncertainty`` block built from a fit's parameters and covariance.

    Parameters
    ----------
    spec : dict or curve spec
        The concrete curve (e.g. ``{"family": "weibull", "scale": 400, "shape": 0.8}``).
    params : mapping, pandas Series or sequence
        The fitted parameters: keyed by lifelines names (``lambda_``, ``rho_``,
        ``mu_``, ``scale_``, …, see :data:`LIFELINES_PARAMETERS`) or by the
        curve's own names (``scale``, ``shape``, ``rates.0``); a plain sequence
        is in the curve's order (:meth:`~cssim.scenario.ParametricCurve.parameter_names`).
        They must agree with the spec's values.
    cov : array-like or DataFrame
        Their covariance, in the order of ``params`` (a DataFrame such as
        lifelines' ``variance_matrix_`` is aligned by name).
    bootstrap : sequence of rows, optional
        Refitted parameter sets on the same names and scale as ``params``.
    scale : ``"natural"`` or ``"log"``
        Scale of ``params``, ``cov`` and ``bootstrap``: natural values (lifelines)
        or already the logs of the curve's own parameters.

    Returns a new dict; raises ``ValueError`` (one line, naming the field) if
    the result is not a valid curve spec.
    """
    if scale not in ("natural", "log"):
        raise ValueError(f"scale: 'natural' or 'log', got {scale!r}")
    base = _concrete(spec)
    if not hasattr(base, "parameter_names"):
        raise ValueError(f"a {base.family} curve has no parameters to be uncertain about")
    base = base.model_copy(update={"uncertainty": None})
    names, values = base.parameter_names(), base.parameter_values()
    if isinstance(params, Mapping | pd.Series):
        keys = [str(k) for k in params.keys()]
        raw = [float(params[k]) for k in params.keys()]
    else:
        keys, raw = list(names), [float(v) for v in params]
    if len(keys) != len(names):
        raise ValueError(
            f"params: a {base.family} curve has {len(names)} parameters ({', '.join(names)}), got {len(keys)}"
        )
    targets, kinds = [], []
    for k in keys:
        found = (k, "identity" if scale == "log" else "log") if k in names else _lifelines_name(base.family, k)
        if found is None or (scale == "log" and k not in names):
            raise ValueError(f"params: {k!r} is not a parameter of a {base.family} curve ({', '.join(names)})")
        targets.append(names.index(found[0]))
        kinds.append(found[1])
    if sorted(targets) != list(range(len(names))):
        raise ValueError(f"params: {keys} do not name each parameter of a {base.family} curve once")
    if isinstance(cov, pd.DataFrame):
        cov = cov.loc[keys, keys].to_numpy()
    V = np.asarray(cov, dtype=float)
    if V.shape != (len(keys), len(keys)):
        raise ValueError(f"covariance: must be {len(keys)}×{len(keys)}, got {'×'.join(map(str, V.shape))}")
    J = np.zeros((len(names), len(keys)))
    for j, (t, kind, v) in enumerate(zip(targets, kinds, raw, strict=True)):
        y, d = _transform(kind, v)
        expected = math.log(values[t]) if values[t] > 0 else -math.inf
        if abs(y - expected) > 1e-6 * max(1.0, abs(expected)):
            raise ValueError(
                f"params: {keys[j]} = {v:.6g} does not match the curve's {names[t]} = {values[t]:.6g}"
            )
        J[t, j] = d
    C = J @ V @ J.T
    C = (C + C.T) / 2.0
    block: dict = {"names": names, "estimates": [math.log(v) for v in values], "covariance": C.tolist()}
    if bootstrap is not None:
        rows = []
        for row in bootstrap:
            vals = [float(row[k]) for k in keys] if isinstance(row, Mapping | pd.Series) else [float(x) for x in row]
            if len(vals) != len(keys):
                raise ValueError(f"bootstrap: each set needs {len(keys)} values, got {len(vals)}")
            out = [0.0] * len(names)
            for t, kind, v in zip(targets, kinds, vals, strict=True):
                out[t] = _transform(kind, v)[0]
            rows.append(out)
        block["bootstrap"] = rows
    data = {**base.model_dump(mode="json"), "uncertainty": block}
    _concrete(data)  # validate now: a bad covariance fails here, naming the field
    return data


def from_fitter(spec, fitter, bootstrap=None) -> dict:
    """``spec`` with the uncertainty of a fitted lifelines univariate fitter (``variance_matrix_``)."""
    names = list(fitter._fitted_parameter_names)
    params = {n: float(getattr(fitter, n)) for n in names}
    return with_uncertainty(spec, params, fitter.variance_matrix_.loc[names, names].to_numpy(), bootstrap=bootstrap)


#: A standard error above this on the log (curves) or logit (renewal) scale means the data do not identify
#: the parameter (e.g. a piecewise-exponential interval without events): one SD would multiply it by e⁴ ≈ 55.
MAX_SE = 4.0


def attach_fitted(spec: dict, parameters: Mapping | None, label: str | None = None) -> dict:
    """A curves-file spec with the ``uncertainty`` of its stored ``parameters`` block, when that is usable.

    ``parameters`` is what ``cssim fit`` stores beside each chosen spec:
    ``{names, estimates, covariance}`` in lifelines' natural parameters, and
    ``bootstrap`` sets on the same names when it was run with ``--bootstrap``. A spec
    that already has a block is returned unchanged. A fit without a usable
    covariance (singular Hessian, NaN) or with a parameter the data do not
    identify (standard error above :data:`MAX_SE` on the log scale, where
    asymptotic draws would be absurd) is returned without a block, with a
    warning naming ``label``, since its forecasts then leave out estimation
    error — unless it has bootstrap sets, whose covariance (log scale) then
    replaces the asymptotic one.
    """
    if not isinstance(parameters, Mapping) or spec.get("uncertainty") is not None or spec.get("family") == "never":
        return spec
    what = f"fitted {spec.get('family')} curve" + (f" {label}" if label else "")
    try:
        names = list(parameters["names"])
        params = dict(zip(names, parameters["estimates"], strict=True))
        boot = parameters.get("bootstrap")  # `cssim fit --bootstrap N` sets; fewer than 2 are not a distribution
        boot = boot if boot and len(boot) > 1 else None
        cov = np.asarray(parameters["covariance"], dtype=float)
        # No finite covariance (singular Hessian): with bootstrap sets, their covariance stands in (below).
        nan_cov = boot is not None and not np.isfinite(cov).all()
        out = with_uncertainty(spec, params, np.zeros_like(cov) if nan_cov else cov, bootstrap=boot)
    except (KeyError, TypeError, ValueError) as exc:
        warnings.warn(f"{what}: its covariance is not usable ({str(exc).splitlines()[0]}); "
                      "forecasts with it leave out estimation uncertainty", stacklevel=2)
        return spec
    block = out["uncertainty"]
    se = np.sqrt(np.clip(np.diag(np.asarray(block["covariance"], dtype=float)), 0.0, None))
    if not nan_cov and se.max() <= MAX_SE:
        return out
    worst = int(np.argmax(se))
    why = (f"{what}: its covariance is not finite" if nan_cov else
           f"{what}: {block['names'][worst]} has standard error {se[worst]:.3g} on the log scale (not identified "
           "by the data, e.g. an interval without events)")
    if "bootstrap" in block:
        block["covariance"] = np.atleast_2d(np.cov(np.asarray(block["bootstrap"]), rowvar=False)).tolist()
        warnings.warn(f"{why}; asymptotic draws use the bootstrap sets' covariance instead", stacklevel=2)
        return out
    warnings.warn(f"{why}; forecasts use it at its point estimate (refit with --bootstrap to keep its uncertainty)",
                  stacklevel=2)
    return spec


def averaged_spec(stored: Mapping, label: str | None = None) -> dict | None:
    """The ``averaged`` spec of a curves-file entry (``cssim fit``), or None if only one family is credible.

    Families with a weight of at least :data:`MIN_MODEL_WEIGHT` are kept and
    their weights renormalised; the chosen family comes first; each carries the
    uncertainty of its stored parameters (:func:`attach_fitted`).
    """
    weights = stored.get("weights") or {}
    cands = {c["family"]: c for c in stored.get("candidates", []) if c.get("spec") is not None}
    chosen = stored.get("chosen")
    keep = [f for f, w in weights.items() if w >= MIN_MODEL_WEIGHT and f in cands]
    if len(keep) < 2:
        return None
    keep.sort(key=lambda f: (f != chosen, -weights[f]))
    total = sum(weights[f] for f in keep)
    models = []
    for f in keep:
        spec = dict(stored["spec"]) if f == chosen else dict(cands[f]["spec"])
        params = stored.get("parameters") if f == chosen else cands[f].get("parameters")
        models.append({"weight": weights[f] / total,
                       "curve": attach_fitted(spec, params, label=f"{label} ({f})" if label else f)})
    return {"family": "averaged", "models": models, "weighting": stored.get("weighting", "akaike")}


# --------------------------------------------------------------------------- drawing


def _factor(cov: np.ndarray) -> np.ndarray:
    """L with L Lᵀ = cov: Cholesky, or a symmetric eigen-factor if cov is only semi-definite."""
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh(cov)
        return v * np.sqrt(np.clip(w, 0.0, None))


def draw_parameters(uncertainty, mode: str, rng: np.random.Generator) -> np.ndarray:
    """One parameter vector on the log scale: asymptotic normal, or one bootstrap set chosen uniformly."""
    if mode == "bootstrap":
        sets = uncertainty.bootstrap
        return np.asarray(sets[int(rng.integers(len(sets)))], dtype=float)
    if mode != "asymptotic":
        raise ValueError(f"parameter_uncertainty: cannot draw with mode {mode!r}")
    mean = np.asarray(uncertainty.estimates, dtype=float)
    z = rng.standard_normal(mean.size)
    return mean + _factor(np.asarray(uncertainty.covariance, dtype=float)) @ z


def params_stream(seed: int, rep: int, segment: str, transition: str) -> np.random.Generator:
    """The stream of replication ``rep``'s parameter draw for one curve."""
    return S.generator(seed, (rep, S.KIND_PARAMS, S.name_key(segment), S.name_key(transition)))


def family_stream(seed: int, rep: int, segment: str, transition: str) -> np.random.Generator:
    """The stream of replication ``rep``'s draw of a family for one model-averaged curve."""
    return S.generator(seed, (rep, S.KIND_PARAMS, S.name_key(segment), S.name_key(transition), S.name_key("family")))


def draw_family(weights, rng: np.random.Generator) -> int:
    """Index of the family drawn by ``weights`` (one uniform)."""
    cum = np.cumsum(np.asarray(weights, dtype=float))
    return int(min(np.searchsorted(cum, rng.random() * cum[-1], side="right"), len(cum) - 1))


def replication_spec(spec, model_mode: str, seed: int, rep: int, segment: str, transition: str):
    """The concrete curve spec of replication ``rep``: for a model-averaged curve, the family drawn by weight.

    ``model_mode`` ``best`` (or a curve that is not averaged) gives the spec
    itself (an average's chosen family); ``averaged`` draws from the stream
    :func:`family_stream`, apart from the parameter draw's.
    """
    concrete = _concrete(spec)
    if not isinstance(concrete, AveragedCurve):
        return concrete
    if model_mode == "best":
        return concrete.chosen()
    k = draw_family(concrete.weights, family_stream(seed, rep, segment, transition))
    return concrete.models[k].concrete()


def replication_curve(spec, mode: str, seed: int, rep: int, segment: str, transition: str,
                      model_mode: str = "averaged"):
    """The curve replication ``rep`` simulates for ``segment``/``transition``.

    A model-averaged curve first gets this replication's family
    (:func:`replication_spec`, unless ``model_mode`` is ``best``). Then
    ``build()`` exactly when ``mode`` is ``none`` or the curve carries no
    uncertainty; otherwise the curve at this replication's parameter draw. In
    ``bootstrap`` mode a family without bootstrap sets (an average's other
    candidates: only the chosen family is refitted) draws asymptotically.
    """
    concrete = replication_spec(spec, model_mode, seed, rep, segment, transition)
    unc = getattr(concrete, "uncertainty", None)
    if mode == "none" or unc is None:
        return concrete.build()
    how = "asymptotic" if mode == "bootstrap" and unc.bootstrap is None else mode
    x = draw_parameters(unc, how, params_stream(seed, rep, segment, transition))
    return concrete.with_parameters(np.exp(x)).build()


def replication_renewal(spec, mode: str, seed: int, rep: int, segment: str):
    """The renewal model (:class:`~cssim.scenario.RenewalSpec`) replication ``rep`` simulates for ``segment``.

    ``spec`` itself when ``mode`` is ``none`` or it carries no uncertainty;
    otherwise its named coefficients at this replication's draw (logit scale),
    from the stream keyed ``(seed, rep, KIND_PARAMS, segment, "renewal")``.
    """
    unc = spec.uncertainty
    if mode == "none" or unc is None:
        return spec
    x = draw_parameters(unc, mode, params_stream(seed, rep, segment, "renewal"))
    return spec.with_coefficients(dict(zip(unc.names, map(float, x), strict=True)))


def effect_draws(touch_model: str, seed: int, rep: int) -> np.random.Generator:
    """The stream of replication ``rep``'s touch-effect draws for one touch model."""
    return S.generator(seed, (rep, S.KIND_PARAMS, S.name_key("touch_models"), S.name_key(touch_model)))


def replication_effects(touch_model, mode: str, seed: int, rep: int, name: str) -> dict[str, tuple[float, ...]]:
    """Each task's effects (in :data:`~cssim.scenario.EFFECT_NAMES` order) replication ``rep`` simulates.

    A ratio with an ``interval`` is drawn log-normally, ratio × exp(σ z) with σ
    from the 95 % interval; z is drawn once per touch model and ratio, so every
    task of a touch model moves together (its effect is one unknown, as
    estimated), from a stream of its own. ``mode`` ``none`` gives the values as
    written.
    """
    names = EFFECT_NAMES
    z = None
    out = {}
    for task_name, task in touch_model.tasks.items():
        eff = task.effects
        values = [float(getattr(eff, n)) for n in names]
        if mode != "none" and eff.intervals:
            if z is None:
                z = dict(zip(names, effect_draws(name, seed, rep).standard_normal(len(names)), strict=True))
            values = [v * math.exp(eff.log_sd(n) * z[n]) for n, v in zip(names, values, strict=True)]
        out[task_name] = tuple(values)
    return out


class ReplicationParameters:
    """What replication ``rep`` of a scenario simulates: curves, renewal models and touch effects.

    With ``parameter_uncertainty`` on, each uncertain block gets this
    replication's draw (:func:`replication_curve`, :func:`replication_renewal`,
    :func:`replication_effects`), each from its own keyed stream so that
    process-noise streams are untouched; otherwise the values as written.
    """

    def __init__(self, scenario, rep: int):
        self.mode, self.seed, self.rep = scenario.uncertainty_mode, scenario.seed, rep
        self.model_mode = scenario.model_mode

    def curve(self, segment: str, transition: str, spec):
        return replication_curve(spec, self.mode, self.seed, self.rep, segment, transition, self.model_mode)

    def renewal(self, segment: str, spec):
        return replication_renewal(spec, self.mode, self.seed, self.rep, segment)

    def effects(self, name: str, touch_model) -> dict[str, tuple[float, ...]]:
        return replication_effects(touch_model, self.mode, self.seed, self.rep, name)
