"""Survival curves the engine samples time-to-event from.

Each curve is a small immutable object that knows its cumulative hazard
``H(t)`` and its inverse. That is all the engine needs: with proportional
hazards and a piecewise-constant hazard multiplier ``m(t)``, an event happens
when ``∫ m dH`` first exceeds a unit-exponential budget ``E``. Because ``E`` is
drawn once per customer and transition, two policies that only change ``m``
see the same underlying customer (common random numbers), and a customer
part-way through a stage is sampled from ``S(t | T > s) = S(t) / S(s)``
simply by starting the budget at ``H(s)``.

Time is in days. Parameter names follow lifelines (``scale`` is lifelines'
``lambda_`` / ``alpha_``, ``shape`` its ``rho_`` / ``beta_``) so that fitted
curves map onto these classes one to one.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

_STD_NORMAL = NormalDist()
_SQRT_HALF = math.sqrt(0.5)
_LN2 = math.log(2.0)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
INF = math.inf
_MAX_EXP = 709.0  # math.exp overflows just above 709.78


class Curve:
    """A survival curve given by its cumulative hazard on the time-in-state clock."""

    family: str = ""

    def cumhaz(self, t: float) -> float:
        """Cumulative hazard H(t); H(0) = 0, non-decreasing."""
        raise NotImplementedError

    def inv_cumhaz(self, h: float) -> float:
        """Smallest t with H(t) >= h (``inf`` if the curve never reaches h)."""
        raise NotImplementedError

    def survival(self, t):
        """S(t) = exp(-H(t)), vectorised over ``t``."""
        t = np.asarray(t, dtype=float)
        return np.exp(-np.vectorize(self.cumhaz, otypes=[float])(t))

    def sample(self, rng: np.random.Generator, size: int, conditional_after=0.0) -> np.ndarray:
        """Draw ``size`` event times given survival past ``conditional_after``.

        Inverts S(t | T > s) = S(t)/S(s): T = H⁻¹(H(s) + E) with E ~ Exp(1).
        Returns total times (not residuals); ``inf`` where the curve plateaus.
        """
        s = np.broadcast_to(np.asarray(conditional_after, dtype=float), (size,))
        e = rng.standard_exponential(size)
        h0 = np.array([self.cumhaz(x) for x in s])
        return np.array([self.inv_cumhaz(h) for h in h0 + e])

    def mean(self, horizon: float = 365.25 * 200) -> float:
        """Mean time to event, integrating S up to ``horizon`` days."""
        grid = np.linspace(0.0, horizon, 20001)
        return float(np.trapezoid(self.survival(grid), grid))


@dataclass(frozen=True)
class Never(Curve):
    """The event never happens (H ≡ 0); used to switch a transition off."""

    family = "never"

    def cumhaz(self, t):
        return 0.0

    def inv_cumhaz(self, h):
        return 0.0 if h <= 0 else INF


@dataclass(frozen=True)
class Exponential(Curve):
    """Constant hazard 1/scale; ``scale`` is the mean in days."""

    scale: float
    family = "exponential"

    def cumhaz(self, t):
        return t / self.scale if t > 0 else 0.0

    def inv_cumhaz(self, h):
        return h * self.scale


@dataclass(frozen=True)
class Weibull(Curve):
    """H(t) = (t/scale)^shape; shape < 1 gives a hazard that falls with tenure."""

    scale: float
    shape: float
    family = "weibull"

    def cumhaz(self, t):
        return (t / self.scale) ** self.shape if t > 0 else 0.0

    def inv_cumhaz(self, h):
        return self.scale * h ** (1.0 / self.shape) if h > 0 else 0.0


@dataclass(frozen=True)
class LogNormal(Curve):
    """log T ~ Normal(log median, sigma); lifelines' ``mu_`` is log(median)."""

    median: float
    sigma: float
    family = "lognormal"

    def cumhaz(self, t):
        if t <= 0:
            return 0.0
        z = (math.log(t) - math.log(self.median)) / self.sigma
        if z < 0.0:
            # Early times: S = 1 - Phi(z) with Phi(z) tiny; log1p keeps its digits.
            return -math.log1p(-0.5 * math.erfc(-z * _SQRT_HALF))
        s = 0.5 * math.erfc(z * _SQRT_HALF)
        return -math.log(s) if s > 0 else INF

    def inv_cumhaz(self, h):
        if h <= 0:
            return 0.0
        if h < _LN2:
            # S > 1/2: invert F = 1 - S = -expm1(-h), exact for small h.
            z = _STD_NORMAL.inv_cdf(-math.expm1(-h))
        elif h < 700.0:
            # S < 1/2: invert the upper tail directly (1 - S would round to 1).
            z = -_STD_NORMAL.inv_cdf(math.exp(-h))
        else:
            # S below the smallest double: solve h = z^2/2 + log(z) + log(2 pi)/2 (Mills ratio).
            z = math.sqrt(2.0 * h)
            for _ in range(4):
                z = math.sqrt(2.0 * (h - math.log(z) - _HALF_LOG_2PI))
        return self.median * math.exp(self.sigma * z)


@dataclass(frozen=True)
class LogLogistic(Curve):
    """S(t) = 1 / (1 + (t/scale)^shape); ``scale`` is the median in days."""

    scale: float
    shape: float
    family = "loglogistic"

    def cumhaz(self, t):
        return math.log1p((t / self.scale) ** self.shape) if t > 0 else 0.0

    def inv_cumhaz(self, h):
        return self.scale * math.expm1(h) ** (1.0 / self.shape) if h > 0 else 0.0


@dataclass(frozen=True)
class ExponentialGamma(Curve):
    """Exponential lifetimes whose rates vary across customers as Gamma(shape).

    S(t) = (1 + t/scale)^(-shape) (Pareto II / Lomax). The population hazard
    shape/(scale + t) falls with tenure because the loyal survive; this is the
    continuous-time counterpart of the shifted-beta-geometric cohort model.
    """

    scale: float
    shape: float
    family = "exponential_gamma"

    def cumhaz(self, t):
        return self.shape * math.log1p(t / self.scale) if t > 0 else 0.0

    def inv_cumhaz(self, h):
        if h <= 0:
            return 0.0
        x = h / self.shape
        return self.scale * math.expm1(x) if x < _MAX_EXP else INF  # beyond float range: never, in practice


@dataclass(frozen=True)
class WeibullGamma(Curve):
    """Weibull lifetimes with Gamma(shape)-distributed frailty.

    S(t) = (1 + (t/scale)^rho)^(-shape); reduces to exponential-gamma at rho = 1.
    """

    scale: float
    rho: float
    shape: float
    family = "weibull_gamma"

    def cumhaz(self, t):
        return self.shape * math.log1p((t / self.scale) ** self.rho) if t > 0 else 0.0

    def inv_cumhaz(self, h):
        if h <= 0:
            return 0.0
        x = h / self.shape
        if x >= _MAX_EXP:
            return INF
        try:
            return self.scale * math.expm1(x) ** (1.0 / self.rho)
        except OverflowError:
            return INF


@dataclass(frozen=True)
class PiecewiseExponential(Curve):
    """Constant hazard between breakpoints (days); ``rates`` are per day.

    ``rates`` has one more entry than ``breakpoints``: the hazard before the
    first breakpoint, between each pair, and after the last.
    """

    breakpoints: tuple[float, ...]
    rates: tuple[float, ...]
    family = "piecewise_exponential"

    def __post_init__(self):
        edges = (0.0, *self.breakpoints)
        acc = [0.0]
        for i in range(1, len(edges)):
            acc.append(acc[-1] + self.rates[i - 1] * (edges[i] - edges[i - 1]))
        object.__setattr__(self, "_edges", edges)
        object.__setattr__(self, "_acc", tuple(acc))

    def cumhaz(self, t):
        if t <= 0:
            return 0.0
        i = bisect_right(self._edges, t) - 1
        return self._acc[i] + self.rates[i] * (t - self._edges[i])

    def inv_cumhaz(self, h):
        if h <= 0:
            return 0.0
        last = len(self.rates) - 1
        for i, rate in enumerate(self.rates):
            reached = self._acc[i + 1] if i < last else (INF if rate > 0 else self._acc[i])
            if rate > 0 and reached >= h:
                return self._edges[i] + (h - self._acc[i]) / rate
        return INF


@dataclass(frozen=True)
class HeldTail(Curve):
    """``base`` up to ``edge``; beyond it the hazard held at its average over the last ``window`` days before it.

    The tail policy for the data's edge: a fitted curve is evidence only where
    customers were observed at risk. Past ``edge`` (where the risk set thins
    out) the hazard stays at

        rate = (H(edge) − H(edge − window)) / window,

    so H(t) = H(edge) + rate · (t − edge) for t > edge: continuous,
    non-decreasing, and exactly invertible. A base curve whose hazard keeps
    rising (a steep Weibull) or falls away (a log-normal) is thereby not
    extrapolated beyond what the data show.
    """

    base: Curve
    edge: float
    window: float
    family = "held_tail"

    def __post_init__(self):
        if not (self.edge > 0 and self.window > 0):
            raise ValueError(f"edge and window must be positive, got {self.edge} and {self.window}")
        w = min(self.window, self.edge)
        h_edge = self.base.cumhaz(self.edge)
        object.__setattr__(self, "_h_edge", h_edge)
        object.__setattr__(self, "_rate", max(h_edge - self.base.cumhaz(self.edge - w), 0.0) / w)

    @property
    def rate(self) -> float:
        """The hazard (per day) held beyond the edge."""
        return self._rate

    def cumhaz(self, t):
        if t <= self.edge:
            return self.base.cumhaz(t)
        return self._h_edge + self._rate * (t - self.edge)

    def inv_cumhaz(self, h):
        if h <= self._h_edge:
            return min(self.base.inv_cumhaz(h), self.edge)
        return self.edge + (h - self._h_edge) / self._rate if self._rate > 0 else INF


FAMILIES: dict[str, type[Curve]] = {
    cls.family: cls
    for cls in (
        Never,
        Exponential,
        Weibull,
        LogNormal,
        LogLogistic,
        ExponentialGamma,
        WeibullGamma,
        PiecewiseExponential,
    )
}


def event_time(curve: Curve, entered: float, now: float, budget: float, multipliers) -> float:
    """Absolute time at which the hazard integral from ``now`` reaches ``budget``.

    ``entered`` is when the clock of ``curve`` started (may be before ``now``).
    ``multipliers`` is a list of ``(until, m)`` pieces sorted by ``until``: the
    hazard is multiplied by ``m`` from the end of the previous piece until
    ``until`` (the last piece should run to ``inf``). Proportional hazards with
    a piecewise-constant multiplier, solved exactly through ``H`` and ``H⁻¹``.
    """
    start = now
    h_start = curve.cumhaz(start - entered)
    for until, m in multipliers:
        if until <= start:
            continue
        if m <= 0:
            start = until
            h_start = curve.cumhaz(start - entered)
            continue
        target = h_start + budget / m
        if until == INF:
            return entered + curve.inv_cumhaz(target)
        h_until = curve.cumhaz(until - entered)
        if h_until >= target:
            return entered + curve.inv_cumhaz(target)
        budget -= (h_until - h_start) * m
        start, h_start = until, h_until
    return INF


def consumed(curve: Curve, entered: float, t0: float, t1: float, multipliers) -> float:
    """Hazard budget used between ``t0`` and ``t1`` under ``multipliers``."""
    used = 0.0
    start = t0
    for until, m in multipliers:
        if until <= start:
            continue
        stop = min(until, t1)
        used += m * (curve.cumhaz(stop - entered) - curve.cumhaz(start - entered))
        start = stop
        if start >= t1:
            break
    return used
