"""The scenario schema: every parameter cssim knows, its unit, bounds and default.

A scenario is a YAML file validated into :class:`Scenario`. This module is the
one place where parameters and their defaults are defined; the engine, the
CLI and the docs read them from here. Loading (files, ``extends``, error
messages) lives in :mod:`cssim.loader`.

Units: time in days unless a name says months or years; money in the
scenario's currency per year (ARR); hazard ratios and odds ratios are
multipliers (1 = no effect).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, Union, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_serializer, model_validator
from pydantic.json_schema import SkipJsonSchema

from ..core.errors import DataError
from ..core.limits import (  # the limits live below every layer, so the command line can read them fast
    MAX_CUSTOMERS,
    MAX_HEADCOUNT,
    MAX_HORIZON_MONTHS,
    MAX_HOURS_PER_WEEK,
    MAX_MONEY,
    MAX_NEW_LOGOS_PER_MONTH,
    MAX_RATE_PER_YEAR,
    MAX_RATIO,
    MAX_REPLICATIONS,
    MAX_SEED,
    MAX_START_DATE,
    MAX_SWEEP_POINTS,
    MAX_TASK_HOURS,
    MAX_TENURE_MONTHS,
    MAX_TOTAL_CUSTOMERS,
    MIN_CURVE_MEDIAN_DAYS,
    MIN_EVERY_DAYS,
    MIN_RATIO,
    MIN_START_DATE,
)
from . import curves as _curves
from .book import book_tenures
from .forecast import month_index, month_label
from .variants import check_sensitivity, check_sweep


def _strict_number(value, kind: str):
    """Counts and reals are numbers: a boolean (``true``, ``yes``) or text (``"1:30"``) is refused, not coerced."""
    import numbers

    if isinstance(value, bool):
        raise ValueError(f"Input should be a valid {kind}, not a boolean")
    if isinstance(value, (str, bytes)):
        raise ValueError(f"Input should be a valid {kind}, not text")
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return value


Whole = BeforeValidator(lambda v: _strict_number(v, "integer"))
Real = BeforeValidator(lambda v: _strict_number(v, "number"))

Count = Annotated[int, Whole, Field(ge=0)]
Probability = Annotated[float, Real, Field(ge=0.0, le=1.0)]
PositiveFloat = Annotated[float, Real, Field(gt=0.0)]
NonNegativeFloat = Annotated[float, Real, Field(ge=0.0)]
FiniteFloat = Annotated[float, Real]
Ratio = Annotated[float, Real, Field(ge=MIN_RATIO, le=MAX_RATIO, description="multiplier; 1 means no effect")]
Money = Annotated[float, Real, Field(ge=0.0, le=MAX_MONEY)]


class Spec(BaseModel):
    """Base for every scenario section: unknown keys are errors, not silently ignored; reals are finite."""

    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)


#: Dump context that keeps the content of files a scenario names, to re-validate the dump without reading them.
RESOLVED = {"resolved": True}


class FromFile(Spec):
    """A section that names a file: the loader (:mod:`cssim.model.loader`) reads it once and fills ``FROM_FILE``.

    The schema itself reads nothing. Dumps leave the file's content out (a
    scenario names its files, not their contents; ``sha256`` pins them) unless
    dumped with ``context={"resolved": True}``, which is how a dumped scenario
    is re-validated (a sweep point, an override) without reading the file again.
    """

    FROM_FILE: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _without_content(self, handler, info):
        out = handler(self)
        if isinstance(out, dict) and not (info.context or {}).get("resolved"):
            for name in self.FROM_FILE:
                out.pop(name, None)
        return out

    def _require_resolved(self, field: str) -> None:
        if getattr(self, field) is None:
            raise ValueError(
                f"{self.file}: not read; a scenario that names files is loaded with cssim.load_scenario or "
                "cssim.scenario_from_dict, which read them once"
            )


# --------------------------------------------------------------------------- curves


def _is_none(value) -> bool:
    return value is None


class ParameterUncertainty(Spec):
    """Estimates on an unbounded scale, their covariance and optional bootstrap sets (:mod:`cssim.uncertainty`).

    With ``parameter_uncertainty`` on, each replication draws the parameters
    once: normal around ``estimates`` with ``covariance`` (asymptotic), or one
    of the ``bootstrap`` rows chosen uniformly.
    """

    estimates: list[FiniteFloat] = Field(min_length=1, description="the point estimates on the block's scale")
    covariance: list[list[FiniteFloat]] = Field(description="covariance of the estimates")
    bootstrap: list[list[FiniteFloat]] | None = Field(
        None, exclude_if=_is_none, description="bootstrap parameter sets (same scale), one row per refit"
    )

    @model_validator(mode="after")
    def _matrix(self):
        import numpy as np

        k = len(self.estimates)
        if not np.all(np.isfinite(self.estimates)):
            raise ValueError("estimates: every value must be finite")
        rows = len(self.covariance)
        cols = sorted({len(r) for r in self.covariance})
        if rows != k or cols != [k]:
            shape = f"{rows}×{'/'.join(map(str, cols)) or 0}"
            raise ValueError(f"covariance: must be {k}×{k} (one row and column per estimate), got {shape}")
        c = np.asarray(self.covariance, dtype=float)
        if not np.all(np.isfinite(c)):
            raise ValueError("covariance: every entry must be finite")
        scale = max(float(np.abs(c).max()), 1e-300)
        asym = float(np.abs(c - c.T).max())
        if asym > 1e-6 * scale:
            raise ValueError(f"covariance: must be symmetric (largest |C - Cᵀ| is {asym:.3g})")
        low = float(np.linalg.eigvalsh((c + c.T) / 2).min())
        if low < -1e-8 * scale:
            raise ValueError(f"covariance: must be positive semi-definite (smallest eigenvalue {low:.3g})")
        if self.bootstrap is not None:
            if len(self.bootstrap) < 2:
                raise ValueError(f"bootstrap: give at least 2 parameter sets, got {len(self.bootstrap)}")
            for i, row in enumerate(self.bootstrap):
                if len(row) != k:
                    raise ValueError(f"bootstrap.{i}: expected {k} values (one per estimate), got {len(row)}")
                if not np.all(np.isfinite(row)):
                    raise ValueError(f"bootstrap.{i}: every value must be finite")
        return self


class CurveUncertainty(ParameterUncertainty):
    """Estimation uncertainty of a curve's parameters, drawn once per replication (:mod:`cssim.uncertainty`).

    Everything is on the **log scale of the curve's own parameters** (in the
    family's order, ``names``: e.g. ``[scale, shape]``; ``rates.0, rates.1, …``
    for piecewise-exponential), where a positive parameter's sampling
    distribution is closer to normal and every draw stays positive.
    ``estimates`` are the logs of the curve's values; ``covariance`` their
    asymptotic covariance (lifelines' ``variance_matrix_`` carried over by the
    delta method, see :func:`cssim.uncertainty.with_uncertainty`);
    ``bootstrap`` optionally lists parameter sets refitted on resampled
    customers (same scale), one chosen uniformly per replication when
    ``parameter_uncertainty: bootstrap``.
    """

    names: list[str] | None = Field(
        None, exclude_if=_is_none, description="parameter names in order; default: the family's"
    )


#: Tail policies beyond the data's edge: ``fitted`` extrapolates the fitted curve; ``hold`` keeps the hazard at its
#: average over the last well-observed window (:class:`cssim.curves.HeldTail`); ``auto`` holds it only where the
#: fitted hazard would rise beyond the edge (above that level), and otherwise extrapolates.
TAIL_POLICIES = ("auto", "fitted", "hold")
#: The default tail policy of fitted curves (docs/backtest.md, "The data's edge").
DEFAULT_TAIL = "auto"


class TailSpec(Spec):
    """What a fitted curve does beyond the data's edge (days on the curve's clock).

    ``edge`` is where the fit's risk set thinned out (fewer than
    ``cssim.fitting.univariate.MIN_AT_RISK`` customers at risk);
    ``observed_max`` the longest tenure observed. ``policy: hold`` keeps the
    hazard beyond ``edge`` at its average over ``[edge − window, edge]``;
    ``fitted`` uses the fitted curve (the edge is then only recorded);
    ``auto`` holds it when the fitted curve's average hazard over
    ``[edge, 2·edge]`` exceeds that level (a hazard the data never saw rise),
    and otherwise uses the fitted curve.
    """

    policy: Literal["auto", "fitted", "hold"] = DEFAULT_TAIL
    edge: PositiveFloat = Field(description="days: where the risk set thins out")
    window: PositiveFloat = Field(description="days before the edge whose average hazard is held")
    observed_max: PositiveFloat | None = Field(None, exclude_if=_is_none, description="longest observed duration")


class ParametricCurve(Spec):
    """A curve family with positive parameters that may carry their estimation ``uncertainty``."""

    PARAMETERS: ClassVar[tuple[str, ...]] = ()
    uncertainty: CurveUncertainty | None = Field(
        None, exclude_if=_is_none, description="estimation uncertainty of the parameters (fitted curves)"
    )
    tail: TailSpec | None = Field(
        None, exclude_if=_is_none, description="the data's edge and the tail policy beyond it (fitted curves)"
    )

    def _tailed(self, curve):
        """``curve`` with this spec's tail policy applied (``hold``: :class:`cssim.curves.HeldTail`)."""
        t = self.tail
        if t is None or t.policy == "fitted":
            return curve
        held = _curves.HeldTail(curve, t.edge, t.window)
        if t.policy == "auto" and (curve.cumhaz(2 * t.edge) - curve.cumhaz(t.edge)) / t.edge <= held.rate:
            return curve  # the fitted hazard does not rise beyond the edge: extrapolate it
        return held

    @model_serializer(mode="wrap")
    def _uncertainty_last(self, handler):
        out = handler(self)  # the block is long: dump it after the parameters it describes
        if isinstance(out, dict) and "uncertainty" in out:
            out["uncertainty"] = out.pop("uncertainty")
        return out

    def parameter_names(self) -> list[str]:
        return list(self.PARAMETERS)

    def parameter_values(self) -> list[float]:
        return [float(getattr(self, n)) for n in self.PARAMETERS]

    def with_parameters(self, values) -> ParametricCurve:
        """The same family with ``values`` (natural scale, in ``parameter_names`` order), no uncertainty."""
        update = dict(zip(self.PARAMETERS, map(float, values), strict=True))
        return self.model_copy(update={**update, "uncertainty": None})

    @model_validator(mode="after")
    def _uncertainty_matches(self):
        import math

        u = self.uncertainty
        if u is None:
            return self
        names, values = self.parameter_names(), self.parameter_values()
        if len(u.estimates) != len(names):
            raise ValueError(
                f"uncertainty.estimates: a {self.family} curve has {len(names)} parameters "
                f"({', '.join(names)}), got {len(u.estimates)} estimates"
            )
        if u.names is not None and list(u.names) != names:
            raise ValueError(f"uncertainty.names: expected {names} for a {self.family} curve, got {list(u.names)}")
        for name, value, est in zip(names, values, u.estimates, strict=True):
            if value <= 0:
                raise ValueError(f"uncertainty: {name} is {value}; parameters with uncertainty must be positive")
            if abs(est - math.log(value)) > 1e-6 * max(1.0, abs(math.log(value))):
                raise ValueError(
                    f"uncertainty.estimates: {name} estimate {est:.6g} is not log({name}) = {math.log(value):.6g}; "
                    "the block belongs to other parameter values (refit, or rebuild it with "
                    "cssim.uncertainty.with_uncertainty)"
                )
        return self


class ExponentialCurve(ParametricCurve):
    """Constant hazard. ``scale`` is the mean time in days."""

    family: Literal["exponential"]
    PARAMETERS: ClassVar[tuple[str, ...]] = ("scale",)
    scale: PositiveFloat

    def build(self):
        return self._tailed(_curves.Exponential(self.scale))


class WeibullCurve(ParametricCurve):
    """S(t) = exp(-(t/scale)^shape); shape < 1: hazard falls with time in state."""

    family: Literal["weibull"]
    PARAMETERS: ClassVar[tuple[str, ...]] = ("scale", "shape")
    scale: PositiveFloat
    shape: PositiveFloat

    def build(self):
        return self._tailed(_curves.Weibull(self.scale, self.shape))


class LogNormalCurve(ParametricCurve):
    """log T ~ Normal(log median, sigma)."""

    family: Literal["lognormal"]
    PARAMETERS: ClassVar[tuple[str, ...]] = ("median", "sigma")
    median: PositiveFloat
    sigma: PositiveFloat

    def build(self):
        return self._tailed(_curves.LogNormal(self.median, self.sigma))


class LogLogisticCurve(ParametricCurve):
    """S(t) = 1 / (1 + (t/scale)^shape); ``scale`` is the median."""

    family: Literal["loglogistic"]
    PARAMETERS: ClassVar[tuple[str, ...]] = ("scale", "shape")
    scale: PositiveFloat
    shape: PositiveFloat

    def build(self):
        return self._tailed(_curves.LogLogistic(self.scale, self.shape))


class ExponentialGammaCurve(ParametricCurve):
    """Heterogeneous exponential (Pareto II): S(t) = (1 + t/scale)^-shape."""

    family: Literal["exponential_gamma"]
    PARAMETERS: ClassVar[tuple[str, ...]] = ("scale", "shape")
    scale: PositiveFloat
    shape: PositiveFloat

    def build(self):
        return self._tailed(_curves.ExponentialGamma(self.scale, self.shape))


class WeibullGammaCurve(ParametricCurve):
    """Heterogeneous Weibull: S(t) = (1 + (t/scale)^rho)^-shape."""

    family: Literal["weibull_gamma"]
    PARAMETERS: ClassVar[tuple[str, ...]] = ("scale", "rho", "shape")
    scale: PositiveFloat
    rho: PositiveFloat
    shape: PositiveFloat

    def build(self):
        return self._tailed(_curves.WeibullGamma(self.scale, self.rho, self.shape))


class PiecewiseExponentialCurve(ParametricCurve):
    """Constant hazard between breakpoints (days); ``rates`` per day, one more than breakpoints."""

    family: Literal["piecewise_exponential"]
    breakpoints: list[PositiveFloat] = Field(min_length=1)
    rates: list[NonNegativeFloat]

    def parameter_names(self) -> list[str]:
        return [f"rates.{i}" for i in range(len(self.rates))]

    def parameter_values(self) -> list[float]:
        return [float(r) for r in self.rates]

    def with_parameters(self, values) -> PiecewiseExponentialCurve:
        return self.model_copy(update={"rates": [float(v) for v in values], "uncertainty": None})

    @model_validator(mode="after")
    def _shape(self):
        if any(a >= b for a, b in zip(self.breakpoints, self.breakpoints[1:], strict=False)):
            raise ValueError("breakpoints must be strictly increasing")
        if len(self.rates) != len(self.breakpoints) + 1:
            raise ValueError(
                f"rates needs {len(self.breakpoints) + 1} values (one more than breakpoints), "
                f"got {len(self.rates)}"
            )
        return self

    def build(self):
        return self._tailed(_curves.PiecewiseExponential(tuple(self.breakpoints), tuple(self.rates)))


class NeverCurve(Spec):
    """The event never happens (switches a transition off)."""

    family: Literal["never"]

    def build(self):
        return _curves.Never()


class AveragedModel(Spec):
    """One family of a model-averaged curve: its weight and its curve (with its own ``uncertainty``)."""

    weight: Annotated[float, Field(gt=0.0, le=1.0)]
    curve: SkipJsonSchema[dict] = Field(description="a concrete curve spec (not averaged, not fitted)")

    @model_validator(mode="after")
    def _concrete(self):
        fam = self.curve.get("family") if isinstance(self.curve, dict) else None
        if fam in (None, "averaged", "fitted"):
            raise ValueError(f"curve: a concrete curve family is needed here, got {fam!r}")
        self.curve = _concrete_curve_adapter().validate_python(self.curve).model_dump(mode="json")
        return self

    def concrete(self):
        return _concrete_curve_adapter().validate_python(self.curve)


class AveragedCurve(Spec):
    """Several candidate families with weights: model uncertainty (:mod:`cssim.uncertainty`).

    Each replication draws one family by its ``weight`` (from a stream of its
    own), then that family's parameters from its ``uncertainty`` as any
    curve's; so intervals carry the choice of family as well as estimation
    error. ``models[0]`` is the family chosen by the fit (lowest AIC): a
    single curve (``build()``) and ``model_uncertainty: best`` use it.
    ``cssim fit`` writes the weights (``akaike``, ``stacking`` or ``pseudo_bma``,
    :mod:`cssim.fitting.univariate`); a ``{family: fitted}`` reference resolves
    to this when its fit has more than one credible family.
    """

    family: Literal["averaged"]
    models: list[AveragedModel] = Field(min_length=1)
    weighting: str = Field("akaike", description="how the weights were computed (akaike, stacking or pseudo_bma)")

    @model_validator(mode="after")
    def _weights(self):
        total = sum(m.weight for m in self.models)
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"models: weights must sum to 1, got {total:.6g}")
        return self

    @property
    def weights(self) -> list[float]:
        return [m.weight for m in self.models]

    def chosen(self):
        """The fit's chosen family (``models[0]``) as a concrete spec."""
        return self.models[0].concrete()

    def build(self):
        return self.chosen().build()


#: Weights below this leave a family out of an average (the rest are renormalised).
MIN_MODEL_WEIGHT = 0.01


def with_tail(spec: dict, edge: Mapping | None, policy: str | None = None) -> dict:
    """``spec`` with a ``tail`` block from a curves-file ``edge`` entry (unchanged without one, or for an average,
    whose models each get it)."""
    if not isinstance(edge, Mapping) or "edge" not in edge:
        return spec
    if spec.get("family") == "averaged":
        return {**spec, "models": [{**m, "curve": with_tail(m["curve"], edge, policy)} for m in spec["models"]]}
    if spec.get("family") in ("never", "fitted", None):
        return spec
    tail = {"policy": policy or DEFAULT_TAIL, "edge": float(edge["edge"]), "window": float(edge["window"])}
    if edge.get("observed_max"):
        tail["observed_max"] = float(edge["observed_max"])
    return {**spec, "tail": tail}


class FittedCurve(FromFile):
    """A curve fitted from a customer history: ``{family: fitted, file: curves.json, key: smb/churn}``.

    ``file`` (written by ``cssim fit HISTORY``) is relative to the scenario file
    that names it; ``key`` is ``segment/transition``. The file is read once,
    when the scenario is validated (the engine does no I/O), into the concrete
    family spec it holds; its content hash is kept in ``sha256`` and checked if
    given.
    """

    family: Literal["fitted"]
    file: str
    key: str = Field(description="segment/transition, e.g. smb/churn")
    sha256: str | None = Field(None, description="content hash of the file; set on load, checked if given")
    model_uncertainty: Literal["averaged", "best"] | None = Field(
        None, exclude_if=_is_none,
        description="averaged: each replication draws a candidate family by its weight (the default when the fit "
        "has more than one credible family); best: the chosen family only",
    )
    tail: Literal["auto", "fitted", "hold"] | None = Field(
        None, exclude_if=_is_none,
        description="beyond the data's edge (where fewer than 20 were at risk): hold the hazard at its level over "
        "the last well-observed window, extrapolate the fitted curve, or auto (the default): hold it only where "
        "the fitted hazard would rise above that level",
    )
    resolved: SkipJsonSchema[dict | None] = None
    # The curve's estimation uncertainty, from the covariance the file stores beside the spec (cssim.uncertainty).
    uncertainty: SkipJsonSchema[dict | None] = None

    FROM_FILE: ClassVar[tuple[str, ...]] = ("resolved", "uncertainty")

    @model_validator(mode="after")
    def _resolved(self):
        self._require_resolved("resolved")
        _concrete_curve_adapter().validate_python(self.concrete_spec())  # a bad stored spec fails here, naming this field
        return self

    def concrete_spec(self) -> dict:
        """The resolved spec as a dict, with its ``uncertainty`` block if the file has one."""
        return self.resolved if self.uncertainty is None else {**self.resolved, "uncertainty": self.uncertainty}

    def concrete(self):
        """The concrete curve spec this reference resolved to (with its ``uncertainty`` block, if the file has one;
        an ``averaged`` spec when the fit has several credible families and ``model_uncertainty`` is not best)."""
        return _concrete_curve_adapter().validate_python(self.concrete_spec())

    def build(self):
        return self.concrete().build()


_CONCRETE = Union[
    ExponentialCurve,
    WeibullCurve,
    LogNormalCurve,
    LogLogisticCurve,
    ExponentialGammaCurve,
    WeibullGammaCurve,
    PiecewiseExponentialCurve,
    NeverCurve,
    AveragedCurve,
]


def _concrete_curve_adapter():
    global _ADAPTER
    if _ADAPTER is None:
        from pydantic import TypeAdapter

        _ADAPTER = TypeAdapter(Annotated[_CONCRETE, Field(discriminator="family")])
    return _ADAPTER


_ADAPTER = None

CurveSpec = Annotated[Union[_CONCRETE, FittedCurve], Field(discriminator="family")]


#: The engine's names for a segment's curves, in the order it builds them (``winback`` is ``winback.delay``).
CURVE_TRANSITIONS = ("onboarding", "growth", "at_risk", "recovery", "churn", "winback")


def _curve(**kw) -> dict:
    return Field(default_factory=lambda: kw)


# --------------------------------------------------------------------------- segments


class ArrSpec(Spec):
    """Annual recurring revenue of a new customer: log-normal, clipped to [min, max]."""

    median: Annotated[float, Real, Field(gt=0.0, le=MAX_MONEY)]
    sigma: Annotated[float, Real, Field(ge=0.0, le=5.0)] = 0.5
    min: Money = 0.0
    max: Annotated[float, Real, Field(gt=0.0, le=MAX_MONEY)] | None = None

    @model_validator(mode="after")
    def _bounds(self):
        if self.max is not None and self.max < self.min:
            raise ValueError(f"max ({self.max}) must be at least min ({self.min})")
        return self


class ContractSpec(Spec):
    """Contract term and billing.

    ``annual``: a term contract; the customer can leave only at renewal, at the
    end of each ``term_months``. ``monthly``: cancellable any month; mid-term
    churn follows ``lifecycle.churn`` and ARR is re-priced every ``term_months``.
    """

    term_months: Annotated[int, Whole, Field(ge=1, le=60)] = 12
    billing: Literal["annual", "monthly"] = "annual"


class LifecycleSpec(Spec):
    """Time-to-event curves of one segment, each on its own clock (days).

    Stages run signing → onboarding → growth → maturity; health (healthy /
    at-risk) is a separate state with its own clock. Touch effects multiply
    these hazards (proportional hazards).
    """

    signing_days: NonNegativeFloat = Field(14.0, description="signature to kickoff")
    onboarding: CurveSpec = _curve(family="lognormal", median=45.0, sigma=0.5)
    activation_deadline_days: PositiveFloat | None = Field(
        90.0, description="still onboarding after this many days: the account becomes at-risk"
    )
    growth: CurveSpec = _curve(family="weibull", scale=300.0, shape=1.3)
    at_risk: CurveSpec = _curve(family="exponential_gamma", scale=400.0, shape=1.5)
    recovery: CurveSpec = _curve(family="lognormal", median=75.0, sigma=0.8)
    churn: CurveSpec = Field(
        default_factory=lambda: {"family": "never"},
        description="mid-term cancellation (monthly billing only), clock starts at signing",
    )
    at_risk_churn_hazard_ratio: Ratio = Field(
        3.0, description="churn hazard multiplier while at-risk (monthly billing)"
    )
    champion_change_per_year: Annotated[float, Real, Field(ge=0.0, le=MAX_RATE_PER_YEAR)] = Field(
        0.1, description="rate of triggered risk events (champion leaves); each makes the account at-risk"
    )


#: A renewal model's coefficients (logit scale), as :class:`RenewalSpec` maps them.
RENEWAL_COEFFICIENTS = ("logit_healthy", "log_or_at_risk", "log_or_not_activated")


class RenewalUncertainty(ParameterUncertainty):
    """Estimation uncertainty of the renewal model, on its logistic-regression scale.

    ``names`` are some of ``logit_healthy`` = logit(healthy), ``log_or_at_risk``
    = logit(at_risk) − logit(healthy) and ``log_or_not_activated`` =
    log(not_activated_odds_ratio) — the coefficients of the per-renewal
    ``Logit`` that ``cssim fit`` estimates (:mod:`cssim.fitting.covariates`).
    A field not named stays fixed.
    """

    names: list[Literal[RENEWAL_COEFFICIENTS]] = Field(min_length=1)  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _names(self):
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"names: each coefficient at most once, got {self.names}")
        if len(self.names) != len(self.estimates):
            raise ValueError(f"names: {len(self.names)} names for {len(self.estimates)} estimates")
        return self


class FittedRenewal(Spec):
    """Where a fitted renewal model lives: ``{file: fit/curves.json, key: smb}`` (``key``: the segment)."""

    file: str
    key: str
    sha256: str | None = Field(None, description="content hash of the file; set on load, checked if given")


class RenewalSpec(Spec):
    """Renewal decision at term end: logistic in the customer's state.

    logit p = logit(p_health) + log(not_activated_odds_ratio)·[still onboarding]
    + Σ log(renewal_odds of touches in effect).

    ``fitted: {file, key}`` takes ``healthy``, ``at_risk``,
    ``not_activated_odds_ratio`` and their ``uncertainty`` from a renewal model
    fitted by ``cssim fit`` (``file`` relative to the scenario file); fields
    given explicitly alongside it are an error.
    """

    fitted: FittedRenewal | None = Field(
        None, exclude_if=_is_none, description="renewal model from a curves file written by cssim fit"
    )
    healthy: Probability = 0.93
    at_risk: Probability = 0.55
    not_activated_odds_ratio: Ratio = 0.4
    window_fraction: Annotated[float, Real, Field(gt=0.0, lt=1.0)] = Field(
        1.0 / 3.0, description="renewal window opens this fraction of the term before expiry"
    )
    uncertainty: RenewalUncertainty | None = Field(
        None, exclude_if=_is_none, description="estimation uncertainty of the renewal coefficients (fitted models)"
    )

    @model_validator(mode="after")
    def _fitted_resolved(self):
        if self.fitted is not None and (self.fitted.sha256 is None or self.uncertainty is None):
            raise ValueError(
                f"fitted: {self.fitted.file}: not read; a scenario that names files is loaded with "
                "cssim.load_scenario or cssim.scenario_from_dict, which read them once"
            )
        return self

    def coefficients(self) -> dict[str, float]:
        """The renewal model on its logit scale (:data:`RENEWAL_COEFFICIENTS`)."""
        import math

        def logit(p: float) -> float:
            p = min(max(p, 1e-12), 1 - 1e-12)
            return math.log(p / (1 - p))

        return {
            "logit_healthy": logit(self.healthy),
            "log_or_at_risk": logit(self.at_risk) - logit(self.healthy),
            "log_or_not_activated": math.log(self.not_activated_odds_ratio),
        }

    def with_coefficients(self, values: dict[str, float]) -> RenewalSpec:
        """The same model with some coefficients replaced (logit scale), no uncertainty."""
        import math

        c = {**self.coefficients(), **values}
        expit = lambda x: 1.0 / (1.0 + math.exp(-x))  # noqa: E731
        return self.model_copy(update={
            "healthy": expit(c["logit_healthy"]),
            "at_risk": expit(c["logit_healthy"] + c["log_or_at_risk"]),
            "not_activated_odds_ratio": math.exp(c["log_or_not_activated"]),
            "uncertainty": None,
        })

    @model_validator(mode="after")
    def _uncertainty_matches(self):
        u = self.uncertainty
        if u is None:
            return self
        have = self.coefficients()
        for name, est in zip(u.names, u.estimates, strict=True):
            if abs(est - have[name]) > 1e-6 * max(1.0, abs(have[name])):
                raise ValueError(
                    f"uncertainty.estimates: {name} estimate {est:.6g} does not match the renewal fields "
                    f"({name} = {have[name]:.6g}); the block belongs to other values"
                )
        return self


class ExpansionSpec(Spec):
    """ARR changes at each renewal (term contracts) or anniversary (monthly billing).

    Expansion and contraction sizes are Gamma(shape 2) fractions of current ARR
    with the given means. Expansion odds are multiplied by touches in effect.
    """

    probability: dict[Literal["onboarding", "growth", "maturity"], Probability] = Field(
        default_factory=lambda: {"onboarding": 0.02, "growth": 0.15, "maturity": 0.3}
    )
    mean_fraction: PositiveFloat = 0.25
    contraction_probability: dict[Literal["healthy", "at_risk"], Probability] = Field(
        default_factory=lambda: {"healthy": 0.04, "at_risk": 0.25}
    )
    contraction_mean_fraction: Annotated[float, Real, Field(gt=0.0, lt=1.0)] = 0.2


class WinbackSpec(Spec):
    """Share of churned customers who come back, after a delay, as a new episode."""

    probability: Probability = 0.0
    delay: CurveSpec = _curve(family="lognormal", median=180.0, sigma=0.6)
    arr_factor: PositiveFloat = Field(0.8, description="returning ARR relative to ARR at churn")


class AcquisitionSpec(FromFile):
    """New logos per month from a fitted forecast file (``cssim.fitting.acquisition``).

    Each replication follows one of the file's simulated paths, drawn from the
    segment's arrivals stream, so acquisition uncertainty shows in the
    intervals. ``file`` is relative to the scenario file that names it. The
    paths are read once, when the scenario is validated; the engine does no I/O.
    """

    file: str
    key: str = Field(description="which forecast in the file (usually the segment name)")
    sha256: str | None = Field(None, description="content hash of the file; set on load, checked if given")
    # Resolved on validation (not part of dumps or the hash beyond sha256).
    paths: SkipJsonSchema[list[list[float]] | None] = None
    start: SkipJsonSchema[str | None] = Field(None, description="calendar month of paths[.][0], YYYY-MM")
    offset: SkipJsonSchema[int] = Field(0, description="index of the scenario's first month in the paths")

    FROM_FILE: ClassVar[tuple[str, ...]] = ("paths", "start", "offset")

    @model_validator(mode="after")
    def _resolved(self):
        self._require_resolved("paths")
        return self


class BookSpec(FromFile):
    """An explicit starting book: ``{file: book.csv}``, one row per customer active at the start.

    Columns are described in :mod:`cssim.book`. ``file`` is relative to the
    scenario file that names it; the rows are read once, when the scenario is
    validated (the engine does no I/O).
    """

    file: str
    sha256: str | None = Field(None, description="content hash of the file; set on load, checked if given")
    rows: SkipJsonSchema[list[dict] | None] = None

    FROM_FILE: ClassVar[tuple[str, ...]] = ("rows",)

    @model_validator(mode="after")
    def _resolved(self):
        self._require_resolved("rows")
        return self


class SegmentSpec(Spec):
    """One customer segment: who arrives, what they pay, how their life unfolds."""

    initial_customers: Annotated[int, Whole, Field(ge=0, le=MAX_CUSTOMERS)] = 0
    initial_tenure_months: Annotated[float, Real, Field(ge=0.0, le=MAX_TENURE_MONTHS)] = Field(
        36.0, description="initial book's tenure is uniform on [0, this] at the start"
    )
    book: BookSpec | None = Field(
        None, description="explicit initial customers from a file (replaces initial_customers and initial_tenure_months)"
    )
    new_logos_per_month: Annotated[float, Real, Field(ge=0.0, le=MAX_NEW_LOGOS_PER_MONTH)] = Field(
        0.0, description="Poisson mean"
    )
    acquisition: AcquisitionSpec | None = Field(
        None, description="new logos from a fitted forecast file instead of new_logos_per_month"
    )
    arr: ArrSpec
    contract: ContractSpec = Field(default_factory=ContractSpec)
    touch_model: str
    lifecycle: LifecycleSpec = Field(default_factory=LifecycleSpec)
    renewal: RenewalSpec = Field(default_factory=RenewalSpec)
    expansion: ExpansionSpec = Field(default_factory=ExpansionSpec)
    winback: WinbackSpec = Field(default_factory=WinbackSpec)

# --------------------------------------------------------------------------- touch models

Trigger = Literal["onboarding", "cadence", "renewal_window", "at_risk", "handoff", "poisson"]


#: The ratios a delivered touch can carry, in the engine's order.
EffectName = Literal["onboarding", "growth", "at_risk", "recovery", "churn", "renewal_odds", "expansion_odds"]
EFFECT_NAMES: tuple[str, ...] = get_args(EffectName)
Z95 = 1.959963984540054  # the normal quantile of a two-sided 95 % interval


class EffectsSpec(Spec):
    """What a delivered touch does while in effect.

    Hazard ratios multiply transition hazards (onboarding > 1 speeds
    activation, growth > 1 speeds maturity, at_risk < 1 delays risk, recovery > 1 speeds recovery, churn < 1
    delays cancellation); odds ratios multiply the renewal and expansion odds.
    """

    onboarding: Ratio = 1.0
    growth: Ratio = 1.0
    at_risk: Ratio = 1.0
    recovery: Ratio = 1.0
    churn: Ratio = 1.0
    renewal_odds: Ratio = 1.0
    expansion_odds: Ratio = 1.0
    intervals: dict[EffectName, Annotated[list[PositiveFloat], Field(min_length=2, max_length=2)]] = Field(
        default_factory=dict,
        exclude_if=lambda v: not v,
        description="95 % confidence interval [low, high] of an estimated ratio (e.g. from cssim fit or "
        "cssim touch-effects); with parameter_uncertainty on, each replication draws the ratio log-normally "
        "from it, once per touch model and ratio",
    )

    @model_validator(mode="after")
    def _intervals_contain_values(self):
        for name, (low, high) in self.intervals.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(
                    f"intervals.{name}: [{low:g}, {high:g}] does not contain {name} = {value:g}; "
                    "give the interval of this estimate"
                )
        return self

    def log_sd(self, name: str) -> float:
        """Standard deviation of log(ratio) implied by its 95 % interval (0 without one)."""
        import math

        if name not in self.intervals:
            return 0.0
        low, high = self.intervals[name]
        return (math.log(high) - math.log(low)) / (2 * Z95)


class TaskSpec(Spec):
    """A unit of CS work a touch model generates for each customer.

    ``hours: 0`` makes it a tech-touch program: no CSM time, delivered at once
    to a ``reach`` share of customers. Otherwise the task queues for its pod's
    CSMs (lower ``priority`` first, then earliest deadline); it is late if
    started after ``due_days`` and missed (no effect) if not started by
    ``deadline_days``.
    """

    trigger: Trigger
    every_days: Annotated[float, Real, Field(ge=MIN_EVERY_DAYS)] | None = Field(
        None, description="cadence trigger: interval (at least a day)"
    )
    rate_per_year: Annotated[float, Real, Field(gt=0.0, le=MAX_RATE_PER_YEAR)] | None = Field(
        None, description="poisson trigger: rate (at most daily)"
    )
    hours: Annotated[float, Real, Field(ge=0.0, le=MAX_TASK_HOURS)] = 1.0
    hours_distribution: Literal["fixed", "exponential"] = "fixed"
    priority: Annotated[int, Whole, Field(ge=0, le=100)] = 5
    due_days: NonNegativeFloat | None = None
    deadline_days: PositiveFloat | None = None
    reach: Probability = 1.0
    effects: EffectsSpec = Field(default_factory=EffectsSpec)
    effect_days: PositiveFloat | None = Field(
        None, description="effect duration after delivery; default 1.5 × every_days for cadence, else 365"
    )

    @model_validator(mode="after")
    def _trigger_fields(self):
        if self.trigger == "cadence" and self.every_days is None:
            raise ValueError("a cadence task needs every_days")
        if self.trigger != "cadence" and self.every_days is not None:
            raise ValueError(f"every_days applies only to cadence tasks (trigger is {self.trigger})")
        if self.trigger == "poisson" and self.rate_per_year is None:
            raise ValueError("a poisson task needs rate_per_year")
        if self.trigger != "poisson" and self.rate_per_year is not None:
            raise ValueError(f"rate_per_year applies only to poisson tasks (trigger is {self.trigger})")
        if self.due_days is not None and self.deadline_days is not None and self.due_days > self.deadline_days:
            raise ValueError(f"due_days ({self.due_days}) must not exceed deadline_days ({self.deadline_days})")
        return self

    @property
    def effect_duration(self) -> float:
        if self.effect_days is not None:
            return self.effect_days
        return 1.5 * self.every_days if self.trigger == "cadence" else 365.0


class TouchModelSpec(Spec):
    """A named way of serving customers (high-, low-, tech-touch): its tasks."""

    description: str = ""
    tasks: dict[str, TaskSpec] = Field(default_factory=dict)

    @property
    def uses_csm(self) -> bool:
        return any(t.hours > 0 for t in self.tasks.values())


class RouteSpec(Spec):
    """Route customers to a touch model by segment and ARR band (first match wins)."""

    segment: str | None = None
    arr_at_least: NonNegativeFloat | None = None
    arr_below: PositiveFloat | None = None
    touch_model: str


class PolicySpec(Spec):
    """Routing rules applied at arrival and at each renewal; else the segment's touch model."""

    routes: list[RouteSpec] = Field(default_factory=list)


# --------------------------------------------------------------------------- team


class HireSpec(Spec):
    month: Annotated[int, Whole, Field(ge=0)]
    count: Annotated[int, Whole, Field(ge=1, le=MAX_HEADCOUNT)]


class PodSpec(Spec):
    """CSMs serving some segments; capacity is what links headcount to retention."""

    segments: list[str] = Field(min_length=1)
    headcount: Annotated[int, Whole, Field(ge=0, le=MAX_HEADCOUNT)]
    hours_per_week: Annotated[float, Real, Field(gt=0.0, le=MAX_HOURS_PER_WEEK)] = 40.0
    customer_facing_share: Annotated[float, Real, Field(gt=0.0, le=1.0)] = Field(
        0.6, description="share of hours available for customer tasks"
    )
    book_cap: Annotated[int, Whole, Field(ge=1, le=MAX_CUSTOMERS)] | None = Field(
        None, description="max accounts per CSM"
    )
    cost_per_year: Money = Field(150_000.0, description="fully loaded cost per CSM")
    ramp_months: NonNegativeFloat = Field(3.0, description="new hires reach full productivity linearly")
    ramp_start_productivity: Annotated[float, Real, Field(gt=0.0, le=1.0)] = 0.25
    attrition_per_year: Annotated[float, Real, Field(ge=0.0, le=MAX_RATE_PER_YEAR)] = 0.0
    backfill_days: PositiveFloat = 60.0
    handoff_risk: Probability = Field(0.15, description="chance a handed-off account becomes at-risk")
    hires: list[HireSpec] = Field(default_factory=list)


class TeamSpec(Spec):
    pods: dict[str, PodSpec] = Field(default_factory=dict)


# --------------------------------------------------------------------------- sweeps


class SweepSampleSpec(Spec):
    """Random sweep points: ``n`` draws, each field uniform on [low, high] (integers if both bounds are)."""

    n: Annotated[int, Whole, Field(ge=1, le=MAX_SWEEP_POINTS)]
    ranges: dict[str, Annotated[list[Annotated[int, Whole] | FiniteFloat], Field(min_length=2, max_length=2)]] = Field(
        min_length=1
    )
    seed: Annotated[int, Whole, Field(ge=0, le=MAX_SEED)] | None = Field(
        None, description="sample generator seed; default: the scenario seed"
    )

    @model_validator(mode="after")
    def _ordered(self):
        for path, (low, high) in self.ranges.items():
            if low > high:
                raise ValueError(f"ranges.{path}: low ({low}) must not exceed high ({high})")
        return self


class SweepSpec(Spec):
    """Points to simulate: every combination of the ``grid`` values (× each ``sample`` draw, if given).

    Keys are dotted field paths of this scenario (``team.pods.smb.headcount``,
    ``policy.routes.0.touch_model``); every point shares the seed (common
    random numbers). The block is not part of any point nor of the scenario hash.
    """

    grid: dict[str, list[Any]] = Field(default_factory=dict)
    sample: SweepSampleSpec | None = None

    @model_validator(mode="after")
    def _not_empty(self):
        if not self.grid and self.sample is None:
            raise ValueError("empty sweep: give a grid of field paths to value lists (or a sample)")
        points = 1
        for path, values in self.grid.items():
            if not values:
                raise ValueError(f"grid.{path}: empty list of values; give at least one")
            points *= len(values)
        if self.sample is not None:
            points *= self.sample.n
        if points > MAX_SWEEP_POINTS:
            sizes = " × ".join(
                [str(len(v)) for v in self.grid.values()] + ([f"{self.sample.n} samples"] if self.sample else [])
            )
            raise ValueError(f"{points:,} points ({sizes}); a sweep has at most {MAX_SWEEP_POINTS:,} points")
        return self


# --------------------------------------------------------------------------- sensitivity analysis


class SensitivityDistSpec(Spec):
    """An uncertain input as a distribution: ``uniform`` (low, high), ``triangular`` (low, mode, high),
    ``normal`` (mean, sd; truncated to [low, high] if both are given) or ``lognormal`` (median, sigma)."""

    dist: Literal["uniform", "triangular", "normal", "lognormal"]
    low: float | None = None
    high: float | None = None
    mode: float | None = None
    mean: float | None = None
    sd: PositiveFloat | None = None
    median: PositiveFloat | None = None
    sigma: PositiveFloat | None = None
    integer: bool = Field(False, description="round to whole numbers (set for a [low, high] range of integers)")

    @model_validator(mode="after")
    def _parameters(self):
        need = {"uniform": ("low", "high"), "triangular": ("low", "mode", "high"), "normal": ("mean", "sd"),
                "lognormal": ("median", "sigma")}[self.dist]
        missing = [n for n in need if getattr(self, n) is None]
        if missing:
            raise ValueError(f"{self.dist} needs {', '.join(need)}; missing {', '.join(missing)}")
        if self.dist == "normal" and (self.low is None) != (self.high is None):
            raise ValueError("normal: give both low and high (a truncated normal) or neither")
        if self.low is not None and self.high is not None and not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.dist == "triangular" and not self.low <= self.mode <= self.high:
            raise ValueError(f"triangular: mode ({self.mode}) must lie in [low, high] = [{self.low}, {self.high}]")
        if self.dist == "normal" and self.low is not None and not self.low <= self.mean <= self.high:
            raise ValueError(f"normal: mean ({self.mean}) must lie in [low, high] = [{self.low}, {self.high}]")
        return self


class SensitivitySpec(Spec):
    """Which assumptions to vary for ``cssim sensitivity`` and how (see :mod:`cssim.sensitivity`).

    ``fields`` maps dotted field paths (as in ``sweep:``) to a range ``[low, high]``
    (uniform; integers if both bounds are) or a distribution. Every point shares
    the seed and replication ids (common random numbers); the block is not part
    of any point nor of the scenario hash.
    """

    fields: dict[str, SensitivityDistSpec] = Field(min_length=1)
    outputs: list[str] = Field(
        default_factory=lambda: ["grr", "nrr", "csm_cost"],
        min_length=1,
        description="KPIs to explain, optionally with a scope: grr, touch_miss_rate[smb]",
    )
    methods: list[Literal["oat", "morris", "sobol"]] = Field(
        default_factory=lambda: ["oat", "morris", "sobol"], min_length=1
    )
    sobol_n: Annotated[int, Field(ge=2, le=4096)] = Field(
        16, description="Sobol base sample (a power of 2); runs sobol_n × (fields + 2) points"
    )
    morris_trajectories: Annotated[int, Field(ge=2, le=1000)] = Field(
        8, description="Morris trajectories; runs trajectories × (fields + 1) points"
    )
    morris_levels: Annotated[int, Field(ge=2, le=20)] = 4
    seed: Annotated[int, Field(ge=0)] | None = Field(None, description="sample seed; default: the scenario seed")

    @field_validator("fields", mode="before")
    @classmethod
    def _ranges(cls, value):
        """``[low, high]`` is a uniform distribution (of integers if both bounds are)."""
        if not isinstance(value, dict):
            return value
        out = {}
        for path, spec in value.items():
            if isinstance(spec, (list, tuple)):
                if len(spec) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in spec):
                    raise ValueError(f"{path}: give a range [low, high] of two numbers or a distribution "
                                     f"{{dist: uniform|triangular|normal|lognormal, ...}}, got {spec!r}")
                spec = {"dist": "uniform", "low": spec[0], "high": spec[1],
                        "integer": all(isinstance(v, int) for v in spec)}
            out[path] = spec
        return out

    @model_validator(mode="after")
    def _checks(self):
        n = self.sobol_n
        if "sobol" in self.methods and n & (n - 1):
            raise ValueError(f"sobol_n: {n} is not a power of 2 (Sobol' sequences need one); try {1 << n.bit_length()}")
        if "sobol" in self.methods and len(self.fields) < 2:
            raise ValueError("sobol: needs at least two fields (indices say how variance splits between them)")
        return self


# --------------------------------------------------------------------------- scenario


class Scenario(Spec):
    """A complete, validated what-if: customers, touch models, team and run settings.

    Assumptions
    -----------
    - Stage and health durations follow the given curves; touches change them
      only through proportional hazards, and only if delivered.
    - Tasks of a pod share its CSMs as one pool (M/M/c-like); accounts are
      assigned to named CSMs for book caps and hand-offs.
    - Term contracts churn only at renewal; monthly billing churns any time.
    """

    name: str = "scenario"
    description: str = ""
    horizon_months: Annotated[int, Whole, Field(ge=1, le=MAX_HORIZON_MONTHS)] = 36
    start_date: dt.date = dt.date(2027, 1, 1)
    seed: Annotated[int, Whole, Field(ge=0, le=MAX_SEED)] = 0
    replications: Annotated[int, Whole, Field(ge=1, le=MAX_REPLICATIONS)] = 100
    segments: dict[str, SegmentSpec] = Field(min_length=1)
    touch_models: dict[str, TouchModelSpec] = Field(min_length=1)
    policy: PolicySpec = Field(default_factory=PolicySpec)
    team: TeamSpec = Field(default_factory=TeamSpec)
    sweep: SweepSpec | None = Field(None, description="points for `cssim sweep` (see cssim.sweep)")
    sensitivity: SensitivitySpec | None = Field(
        None, exclude_if=_is_none, description="assumptions to vary for `cssim sensitivity` (see cssim.sensitivity)"
    )
    parameter_uncertainty: Literal["none", "asymptotic", "bootstrap"] | None = Field(
        None,
        exclude_if=_is_none,
        description="draw each replication's curve parameters, renewal coefficients and touch effects from their "
        "estimation uncertainty: asymptotic (normal on the log or logit scale) or bootstrap (one stored set); "
        "default: asymptotic if any of them carries uncertainty, else none (see cssim.uncertainty)",
    )
    model_uncertainty: Literal["averaged", "best"] | None = Field(
        None,
        exclude_if=_is_none,
        description="averaged curves (several candidate families with weights): averaged draws a family per "
        "replication by weight; best uses each fit's chosen family; default: averaged (see cssim.uncertainty)",
    )

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        # The name is the default results folder (results/<name>): it must stay a plain folder name.
        import re

        if not re.fullmatch(r"\w[\w.\- ]{0,99}", value) or ".." in value:
            raise ValueError(
                f"not a safe folder name ({value!r}); the name becomes results/<name>: use letters, digits, "
                "'_', '-', '.' and spaces (no '/', no '..', not starting with '.' or '-'), at most 100 characters"
            )
        return value

    @field_validator("start_date")
    @classmethod
    def _date_range(cls, value: dt.date) -> dt.date:
        if not MIN_START_DATE <= value <= MAX_START_DATE:
            raise ValueError(f"{value} is outside {MIN_START_DATE}..{MAX_START_DATE} (the run must end before 2262)")
        return value

    @model_validator(mode="after")
    def _size(self):
        total = sum(
            seg.initial_customers + seg.new_logos_per_month * self.horizon_months for seg in self.segments.values()
        )
        if total > MAX_TOTAL_CUSTOMERS:
            raise ValueError(
                f"segments: about {total:,.0f} customers over the run (initial_customers + new_logos_per_month × "
                f"horizon_months, all segments); at most {MAX_TOTAL_CUSTOMERS:,} are simulated"
            )
        return self

    @model_validator(mode="after")
    def _references(self):
        # Every broken reference is reported (one line each), not only the first.
        problems: list[str] = []
        models = sorted(self.touch_models)
        for name, seg in self.segments.items():
            if seg.touch_model not in self.touch_models:
                problems.append(
                    f"segments.{name}.touch_model: unknown touch model {seg.touch_model!r}; "
                    f"defined: {', '.join(models)}"
                )
        for i, route in enumerate(self.policy.routes):
            if route.touch_model not in self.touch_models:
                problems.append(
                    f"policy.routes.{i}.touch_model: unknown touch model {route.touch_model!r}; "
                    f"defined: {', '.join(models)}"
                )
            if route.segment is not None and route.segment not in self.segments:
                problems.append(
                    f"policy.routes.{i}.segment: unknown segment {route.segment!r}; "
                    f"defined: {', '.join(sorted(self.segments))}"
                )
        owner: dict[str, str] = {}
        for pod_name, pod in self.team.pods.items():
            for seg in pod.segments:
                if seg not in self.segments:
                    problems.append(
                        f"team.pods.{pod_name}.segments: unknown segment {seg!r}; "
                        f"defined: {', '.join(sorted(self.segments))}"
                    )
                if seg in owner:
                    problems.append(
                        f"team.pods.{pod_name}.segments: segment {seg!r} is already served by pod "
                        f"{owner[seg]!r}; each segment has at most one pod"
                    )
                else:
                    owner[seg] = pod_name
            for hire in pod.hires:
                if hire.month >= self.horizon_months:
                    problems.append(
                        f"team.pods.{pod_name}.hires: month {hire.month} is outside the horizon "
                        f"(0..{self.horizon_months - 1})"
                    )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @model_validator(mode="after")
    def _curve_times(self):
        import math

        problems = []
        for _, _, path, spec in self.curve_specs():
            if isinstance(spec, NeverCurve):
                continue
            median = spec.build().inv_cumhaz(math.log(2.0))
            if not median >= MIN_CURVE_MEDIAN_DAYS:
                problems.append(
                    f"{path}: median time {median:.3g} days; a curve's median must be at least "
                    f"{MIN_CURVE_MEDIAN_DAYS:g} day (shorter states would flip without end)"
                )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @model_validator(mode="after")
    def _sweep_points(self):
        if self.sweep is not None:
            check_sweep(self)
        return self

    @model_validator(mode="after")
    def _sensitivity_fields(self):
        if self.sensitivity is not None:
            check_sensitivity(self)
        return self

    @model_validator(mode="after")
    def _books(self):
        for name, seg in self.segments.items():
            if seg.book is None:
                continue
            try:
                book_tenures(seg.book.rows, self.start_date, seg.book.file)
            except DataError as exc:
                raise ValueError(f"segments.{name}.book: {exc}") from None
            for i, row in enumerate(seg.book.rows, start=1):
                if row["touch_model"] is not None and row["touch_model"] not in self.touch_models:
                    raise ValueError(
                        f"segments.{name}.book: {seg.book.file}: row {i}, column 'touch_model': unknown touch model "
                        f"{row['touch_model']!r}; defined: {', '.join(sorted(self.touch_models))}"
                    )
            if "initial_customers" in seg.model_fields_set and seg.initial_customers != len(seg.book.rows):
                raise ValueError(
                    f"segments.{name}: initial_customers ({seg.initial_customers}) disagrees with the book "
                    f"({len(seg.book.rows)} rows in {seg.book.file}); give one or the other"
                )
            if len(seg.book.rows) > MAX_CUSTOMERS:
                raise ValueError(
                    f"segments.{name}.book: {seg.book.file} has {len(seg.book.rows):,} customers; at most "
                    f"{MAX_CUSTOMERS:,} per segment"
                )
            seg.initial_customers = len(seg.book.rows)
        return self

    @model_validator(mode="after")
    def _acquisition_months(self):
        first = month_index(self.start_date)
        for name, seg in self.segments.items():
            acq = seg.acquisition
            if acq is None:
                continue
            if seg.new_logos_per_month > 0:
                raise ValueError(
                    f"segments.{name}: give either new_logos_per_month or acquisition, not both"
                )
            begin, n = month_index(acq.start), len(acq.paths[0])
            offset = first - begin
            if offset < 0 or offset + self.horizon_months > n:
                raise ValueError(
                    f"segments.{name}.acquisition: the forecast in {acq.file} ({acq.key!r}) covers "
                    f"{month_label(begin)}..{month_label(begin + n - 1)} but the scenario runs "
                    f"{month_label(first)}..{month_label(first + self.horizon_months - 1)}; "
                    "refit with a longer horizon or change start_date / horizon_months"
                )
            acq.offset = offset
            most = max(max(p[offset:offset + self.horizon_months]) for p in acq.paths)
            if most > MAX_NEW_LOGOS_PER_MONTH:
                raise ValueError(
                    f"segments.{name}.acquisition: the forecast in {acq.file} ({acq.key!r}) reaches {most:,.0f} new "
                    f"logos in a month; at most {MAX_NEW_LOGOS_PER_MONTH:,}"
                )
        return self

    @model_validator(mode="after")
    def _fitted_churn_counts_at_risk_once(self):
        import warnings

        for name, seg in self.segments.items():
            life = seg.lifecycle
            if (isinstance(life.churn, FittedCurve) and seg.contract.billing == "monthly"
                    and life.at_risk_churn_hazard_ratio != 1.0):
                warnings.warn(
                    f"segments.{name}.lifecycle.churn is fitted ({life.churn.key}), so it already contains the churn "
                    f"of at-risk customers, but at_risk_churn_hazard_ratio is {life.at_risk_churn_hazard_ratio:g}: "
                    "at-risk churn is counted twice; set it to 1 (docs/fitting.md)",
                    UserWarning,
                    stacklevel=2,
                )
        return self

    @model_validator(mode="after")
    def _parameter_uncertainty(self):
        mode = self.parameter_uncertainty
        if mode in (None, "none"):
            return self
        uncertain = list(self.uncertain_parameters())
        if not uncertain:
            raise ValueError(
                f"parameter_uncertainty: {mode} needs curves, renewal models or touch effects that carry their "
                "estimation uncertainty (fitted curves do); none does; use none"
            )
        if mode == "bootstrap":
            for path, block in uncertain:
                # Only an average's chosen family is refitted by `cssim fit --bootstrap`; the others draw
                # asymptotically (cssim.uncertainty.replication_curve).
                if ".models." in path and ".models.0." not in path:
                    continue
                if isinstance(block, ParameterUncertainty) and block.bootstrap is None:
                    raise ValueError(
                        f"{path}.bootstrap: missing, but parameter_uncertainty is bootstrap; "
                        "add bootstrap parameter sets (cssim fit --bootstrap N) or use asymptotic"
                    )
        return self

    def uncertain_parameters(self):
        """Every block of estimation uncertainty: ``(field path, block)``.

        Blocks are curves' and renewal models' ``uncertainty``
        (:class:`ParameterUncertainty`) and touch effects' ``intervals`` (a dict;
        drawn log-normally in either mode, they have no bootstrap sets).
        """
        for _, _, path, spec in self.curve_specs():
            if isinstance(spec, AveragedCurve):
                for i, m in enumerate(spec.models):
                    block = getattr(m.concrete(), "uncertainty", None)
                    if block is not None:
                        yield f"{path}.models.{i}.curve.uncertainty", block
            elif getattr(spec, "uncertainty", None) is not None:
                yield f"{path}.uncertainty", spec.uncertainty
        for name, seg in self.segments.items():
            if seg.renewal.uncertainty is not None:
                yield f"segments.{name}.renewal.uncertainty", seg.renewal.uncertainty
        for name, tm in self.touch_models.items():
            for task_name, task in tm.tasks.items():
                if task.effects.intervals:
                    yield f"touch_models.{name}.tasks.{task_name}.effects.intervals", task.effects.intervals

    def curve_specs(self):
        """Every curve of every segment: ``(segment, transition, field path, concrete spec)``.

        ``transition`` is the engine's name for the curve (``onboarding``,
        ``growth``, ``at_risk``, ``recovery``, ``churn``, ``winback``); fitted
        references are given as the concrete spec they resolved to.
        """
        for name, seg in self.segments.items():
            life = seg.lifecycle
            pairs = [(t, getattr(life, t), f"segments.{name}.lifecycle.{t}") for t in CURVE_TRANSITIONS[:-1]]
            pairs.append(("winback", seg.winback.delay, f"segments.{name}.winback.delay"))
            for transition, spec, path in pairs:
                yield name, transition, path, spec.concrete() if isinstance(spec, FittedCurve) else spec

    @property
    def uncertainty_mode(self) -> str:
        """``parameter_uncertainty`` as run: the explicit value, else asymptotic if anything carries uncertainty."""
        if self.parameter_uncertainty is not None:
            return self.parameter_uncertainty
        return "asymptotic" if next(self.uncertain_parameters(), None) is not None else "none"

    def averaged_curves(self):
        """Every curve that averages over families: ``(segment, transition, field path, AveragedCurve)``."""
        for seg, tr, path, spec in self.curve_specs():
            if isinstance(spec, AveragedCurve):
                yield seg, tr, path, spec

    @property
    def model_mode(self) -> str:
        """``model_uncertainty`` as run: ``best`` if set so or if no curve averages over families, else averaged."""
        if self.model_uncertainty == "best" or next(self.averaged_curves(), None) is None:
            return "best"
        return "averaged"

    def pod_of(self, segment: str) -> str | None:
        """Name of the pod serving ``segment`` (None: no CSMs serve it)."""
        for pod_name, pod in self.team.pods.items():
            if segment in pod.segments:
                return pod_name
        return None
