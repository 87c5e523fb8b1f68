"""Matplotlib figures of cssim results; every function takes ``ax=`` and returns the Axes it drew on.

Plots know tables and results only by their columns and attributes, so they sit below the modules whose results
they draw (``results.plot_fan()`` calls down into :mod:`cssim.plots.figures`).
"""

from . import figures
from .causal import *  # noqa: F403
from .causal import __all__ as _causal_all
from .figures import *  # noqa: F403
from .figures import __all__ as _figures_all

__all__ = [*_figures_all, *_causal_all]


def __getattr__(name: str):
    """Helpers of :mod:`cssim.plots.figures` outside ``__all__`` (``waterfall_table``, ...) stay reachable here."""
    try:
        return getattr(figures, name)
    except AttributeError:
        raise AttributeError(f"module 'cssim.plots' has no attribute {name!r}") from None
