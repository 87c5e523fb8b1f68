"""Figures for touch-model effects: naive vs adjusted hazard ratios, and covariate balance.

Same conventions as :mod:`cssim.plots`: every function draws on the ``ax`` it
is given (or on a new figure made without pyplot) under the cssim style and
returns it; save with ``cssim.plots.save(ax, "forest.png")``. Both take a
fitted :class:`cssim.fitting.causal.TouchEffects` or its table
(``summary`` / ``balance_``, or the CSVs ``cssim touch-effects`` writes).
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

from .figures import _new_ax, _styled

__all__ = ["touch_effects_forest", "covariate_balance"]

METHOD_LABELS = {
    "naive": "Naive (touch model only)",
    "adjusted": "Covariate-adjusted",
    "ipw": "Inverse-probability weighted",
}
METHOD_STYLE = {"naive": ("#b23a48", "s"), "adjusted": ("#1f5a96", "o"), "ipw": ("#2a9d5c", "D")}
#: Intervals beyond these are cut at the axis edge and marked with an arrow.
AXIS_RANGE = (0.01, 100.0)
_COARSE = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
_NICE = (0.05, 0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0)


def _table(obj, attr: str) -> pd.DataFrame:
    if isinstance(obj, pd.DataFrame):
        return obj
    value = getattr(obj, attr)
    return value() if callable(value) else value


def _log_ticks(ax, lo: float, hi: float) -> None:
    ticks = [t for t in _NICE if lo <= t <= hi]
    if len(ticks) > 8:
        ticks = [t for t in _COARSE if lo <= t <= hi]
    if len(ticks) > 8:
        ticks = [t for t in _COARSE if lo <= t <= hi and np.log10(t) == round(np.log10(t))]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(mpl.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


@_styled
def touch_effects_forest(effects, ax=None, truth: float | Mapping[str, float] | None = None,
                         transition: str | None = None):
    """Hazard ratio of each touch model by method, with its interval, on a log axis (a forest plot).

    ``effects`` is a fitted ``TouchEffects`` or its ``summary`` table (columns ``method,
    touch_model, reference, hazard_ratio, lo, hi``). A line at HR 1 marks "no effect"; left of
    it the touch model lowers the hazard. ``truth`` (a number, or one per touch model) is drawn
    as a dashed mark — for synthetic data whose effect is known.
    """
    s = _table(effects, "summary")
    missing = {"method", "touch_model", "hazard_ratio", "lo", "hi"} - set(s.columns)
    if missing:
        raise ValueError(f"touch effects table: missing columns {sorted(missing)}")
    if s.empty:
        raise ValueError("touch effects table: no rows to plot")
    transition = transition or getattr(effects, "transition", None)
    models = list(dict.fromkeys(s["touch_model"]))
    methods = [m for m in ("naive", "adjusted", "ipw") if m in set(s["method"])] + \
        [m for m in dict.fromkeys(s["method"]) if m not in METHOD_LABELS]
    ax = _new_ax(ax, figsize=(9.0, max(3.2, 1.1 * len(models) + 1.9)))
    n = len(methods)
    offsets = (np.arange(n) - (n - 1) / 2) * (0.6 / max(n, 1))
    ypos = {m: len(models) - 1 - i for i, m in enumerate(models)}
    for j, meth in enumerate(methods):
        sub = s[s["method"] == meth]
        color, marker = METHOD_STYLE.get(meth, ("#5b6770", "o"))
        y = np.array([ypos[m] for m in sub["touch_model"]], dtype=float) - offsets[j]
        mid, lo, hi = (np.clip(sub[c].to_numpy(dtype=float), *AXIS_RANGE) for c in ("hazard_ratio", "lo", "hi"))
        ax.errorbar(mid, y, xerr=np.vstack([mid - lo, hi - mid]), fmt=marker, color=color, capsize=4,
                    markersize=7, label=METHOD_LABELS.get(meth, meth))
        for edge, arrow, cut in ((AXIS_RANGE[0], "<", sub["lo"] < AXIS_RANGE[0]),
                                 (AXIS_RANGE[1], ">", sub["hi"] > AXIS_RANGE[1])):
            if cut.any():
                ax.plot(np.full(int(cut.sum()), edge), y[cut.to_numpy()], linestyle="", marker=arrow, color=color,
                        markersize=8, clip_on=False)
    ax.set_xscale("log")
    ax.axvline(1.0, color="#222222", linewidth=1.2, zorder=0)
    if truth is not None:
        for m in models:
            t = truth.get(m) if isinstance(truth, Mapping) else truth
            if t is not None:
                ax.plot([t, t], [ypos[m] - 0.42, ypos[m] + 0.42], color="#222222", linestyle="--", linewidth=1.5,
                        label="True effect" if m == models[0] else None)
    vals = np.concatenate([s["lo"].to_numpy(float), s["hi"].to_numpy(float), [1.0]])
    vals = np.clip(vals[np.isfinite(vals) & (vals > 0)], *AXIS_RANGE)
    lo, hi = vals.min(), vals.max()
    span = np.log(hi / lo) if hi > lo else 1.0
    pad = 0.08 * span
    ax.set_xlim(max(lo * np.exp(-pad), AXIS_RANGE[0]), min(hi * np.exp(pad), AXIS_RANGE[1]))
    _log_ticks(ax, *ax.get_xlim())
    x0, x1 = ax.get_xlim()
    right = np.log(1.0 / x0) / np.log(x1 / x0) > 0.8  # the HR-1 line near the right edge: label on its left
    ax.text(1.0, 1.0, "no effect " if right else " no effect", transform=ax.get_xaxis_transform(),
            ha="right" if right else "left", va="top", fontsize=10, color="#555555")
    ref = s["reference"].iloc[0] if "reference" in s.columns else None
    warn = s["warning"].fillna("").astype(str) if "warning" in s.columns else pd.Series("", index=s.index)
    labels = []
    for m in models:
        no_overlap = warn[s["touch_model"] == m].str.contains(f"separate {m} from", regex=False).any()
        labels.append(m.replace("_", " ") + ("\n(no overlap)" if no_overlap else ""))
    ax.set_yticks([ypos[m] for m in models], labels)
    ax.set_ylim(-0.6, len(models) - 0.4)
    ax.grid(axis="y", visible=False)
    what = f"{transition.replace('_', ' ').capitalize()} hazard ratio" if transition else "Hazard ratio"
    ax.set_xlabel(what + (f" vs {ref.replace('_', ' ')}" if ref else "") + " (log scale)")
    ax.set_title("Touch-model effect: naive vs adjusted for assignment")
    handles, names = ax.get_legend_handles_labels()
    order = sorted(range(len(names)), key=lambda i: names[i] == "True effect")
    ax.legend([handles[i] for i in order], [names[i] for i in order], loc="lower center",
              bbox_to_anchor=(0.5, 1.0), ncol=min(len(names), 2))
    ax.set_title(ax.get_title(), pad=12 + 20 * ((len(names) + 1) // 2))
    return ax


@_styled
def covariate_balance(balance, ax=None, threshold: float = 0.1):
    """|Standardised mean difference| of each covariate before and after weighting (a Love plot).

    ``balance`` is a fitted ``TouchEffects`` or its ``balance_`` table (columns ``covariate,
    touch_model, smd_before, smd_after``). With several touch models, a covariate's row shows
    its largest |SMD| over the comparisons with the reference. A dashed line marks ``threshold``
    (0.1: the usual bound for a negligible difference).
    """
    b = _table(balance, "balance_")
    missing = {"covariate", "smd_before", "smd_after"} - set(b.columns)
    if missing:
        raise ValueError(f"balance table: missing columns {sorted(missing)}")
    if b.empty:
        raise ValueError("balance table: no covariates to plot")
    t = b.assign(before=b["smd_before"].abs(), after=b["smd_after"].abs())
    t = t.groupby("covariate", sort=False)[["before", "after"]].max()
    t = t.sort_values("before")
    ax = _new_ax(ax, figsize=(9.0, max(3.2, 0.45 * len(t) + 2.2)))
    y = np.arange(len(t))
    for yi, (_, r) in zip(y, t.iterrows()):
        ax.plot([r["before"], r["after"]], [yi, yi], color="#b0b0b0", linewidth=1.2, zorder=1)
    ax.scatter(t["after"], y, s=45, color="#1f5a96", zorder=2, label="After weighting")
    # Before on top, as a ring: where weighting changes nothing the ring circles the dot.
    ax.scatter(t["before"], y, s=90, facecolors="none", edgecolors="#b23a48", linewidths=1.8, zorder=3,
               label="Before weighting")
    ax.axvline(threshold, color="#222222", linestyle="--", linewidth=1.2, zorder=0)
    ax.axvline(0.0, color="#222222", linewidth=0.8, zorder=0)
    ax.set_yticks(y, [str(c) for c in t.index])
    ax.set_ylim(-0.6, len(t) - 0.4)
    ax.grid(axis="y", visible=False)
    ax.set_xlim(0, max(float(np.nanmax(t[["before", "after"]].to_numpy())) * 1.08, threshold * 1.5))
    several = "touch_model" in b.columns and b["touch_model"].nunique() > 1
    ref = f" with {b['reference'].iloc[0].replace('_', ' ')}" if "reference" in b.columns else ""
    ax.set_xlabel("|Standardised mean difference|" + (f" (largest over the comparisons{ref})" if several else ""))
    ax.set_title("Covariate balance between touch models")
    handles = [
        Line2D([], [], marker="o", linestyle="", markerfacecolor="white", markeredgecolor="#b23a48",
               markeredgewidth=1.8, markersize=8, label="Before weighting"),
        Line2D([], [], marker="o", linestyle="", color="#1f5a96", markersize=8, label="After weighting"),
        Line2D([], [], color="#222222", linestyle="--", linewidth=1.2, label=f"|SMD| = {threshold:g}"),
    ]
    ax.legend(handles=handles, loc="lower right")
    return ax
