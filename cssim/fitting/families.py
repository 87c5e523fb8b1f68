"""The candidate curve families and the transitions a history is fitted on (light: the command line's help reads it)."""

__all__ = ["DEFAULT_WEIGHTING", "FAMILY_ORDER", "REPORT_ONLY", "TRANSITIONS", "WEIGHTINGS", "parse_families"]

TRANSITIONS = ("onboarding", "growth", "at_risk", "recovery", "churn")
FAMILY_ORDER = (
    "exponential",
    "weibull",
    "lognormal",
    "loglogistic",
    "piecewise_exponential",
    "exponential_gamma",
    "weibull_gamma",
    "spline",
)
#: Families fitted and scored but without a cssim curve class: reported, never chosen.
REPORT_ONLY = frozenset({"spline"})
#: How candidate families are weighted for model averaging (see :meth:`cssim.fitting.univariate.UnivariateFit.fit`).
WEIGHTINGS = ("akaike", "stacking", "pseudo_bma")
#: The weighting of a fit that names none: pseudo-BMA+ covered the realised path best in the back-test of
#: histories whose lowest-AIC family is wrong, without losing coverage where it is right (docs/backtest.md).
DEFAULT_WEIGHTING = "pseudo_bma"


def parse_families(text: str | None) -> tuple[str, ...] | None:
    """``--families exponential,weibull`` as a tuple in :data:`FAMILY_ORDER`; ``ValueError`` (one line) if unknown.

    Fewer candidates make fitting much faster (piecewise-exponential and
    spline fits dominate); at least one must have a cssim curve.
    """
    if text is None:
        return None
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in FAMILY_ORDER]
    if bad or not names:
        raise ValueError(f"--families: unknown {', '.join(bad) or '(empty)'}; choose from {', '.join(FAMILY_ORDER)}")
    if all(n in REPORT_ONLY for n in names):
        raise ValueError(f"--families: {', '.join(names)} cannot be simulated; add a parametric family")
    return tuple(f for f in FAMILY_ORDER if f in names)
