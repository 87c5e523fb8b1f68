"""How a KPI value reads in a summary: ratios as percentages, money with $ and k/M, days with "d"."""

from __future__ import annotations

import numpy as np

__all__ = ["fmt_change", "fmt_value"]


def fmt_change(value: float, unit: str) -> str:
    """A signed difference: percentage points for ratios, otherwise :func:`fmt_value` with a sign; ``n/a`` if not finite."""
    if value is None or not np.isfinite(value):
        return "n/a"
    if unit == "ratio":
        return f"{value * 100:+.2f} pts"
    return ("+" if value >= 0 else "-") + fmt_value(abs(value), unit)


def fmt_value(value: float, unit: str) -> str:
    if value is None or not np.isfinite(value):
        return "n/a"
    if unit == "ratio":
        return f"{value * 100:.1f}%"
    if unit == "currency":
        if abs(value) >= 1e6:
            return f"${value / 1e6:,.2f}M"
        if abs(value) >= 1e3:
            return f"${value / 1e3:,.1f}k"
        return f"${value:,.2f}"
    if unit == "days":
        return f"{value:.1f} d"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}"
