"""Figures people read: fan charts, ARR bridges, stage occupancy, survival fits, frontiers, forests.

Every function draws on the ``ax`` it is given (or on a new figure it creates
without pyplot, so nothing leaks into pyplot's global state) and returns it;
:func:`csm_load` draws three panels and returns the array of axes. The style
is small and consistent: axis labels carry units, money is shown as ``$1.2M``,
months are dates on the x axis, and fonts are sized for a slide.

The functions take a :class:`cssim.SimulationResults` (or anything with the
same ``series``, ``monthly``, ``pods_monthly`` methods and a ``scenario``, such
as a results folder read back by :func:`cssim.report.read_results`) or plain
tidy DataFrames whose expected columns each docstring names.

To save a figure: ``cssim.plots.save(ax, "arr.png")``. In a notebook, end the
cell with ``ax.figure`` to show it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib as mpl
import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import Formatter, PercentFormatter

from ..model.metrics import KPI_UNITS

__all__ = [
    "arr_waterfall",
    "backtest_calibration",
    "backtest_fan",
    "cohort_model_name",
    "cohort_projection",
    "cost_frontier",
    "csm_load",
    "fan_chart",
    "forest",
    "frontier_from_sweep",
    "headcount_frontier",
    "health_share",
    "money",
    "save",
    "sobol_bars",
    "stage_occupancy",
    "survival_vs_km",
    "tornado",
]

FIGSIZE = (9.0, 5.0)
DPI = 150
STYLE = {
    "font.size": 12,
    "axes.titlesize": 14,
    "axes.titleweight": "bold",
    "axes.labelsize": 12,
    "xtick.labelsize": 11,
    "ytick.labelsize": 11,
    "legend.fontsize": 11,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "lines.linewidth": 2.0,
    "axes.prop_cycle": mpl.cycler(
        color=["#1f5a96", "#d9822b", "#2a9d5c", "#b23a48", "#6c4f9c", "#8c6d46", "#4a8fb8", "#7f7f7f"]
    ),
}
GAIN, LOSS, TOTAL = "#2a9d5c", "#b23a48", "#5b6770"

#: Series whose values are money (ARR, in dollars).
CURRENCY_SERIES = {
    "arr",
    "mrr",
    "new_arr",
    "winback_arr",
    "churned_arr",
    "expansion_arr",
    "contraction_arr",
    "renewal_arr_due",
    "renewal_arr_renewed",
    "renewal_expansion_arr",
    "renewal_contraction_arr",
}
SERIES_LABELS = {
    "arr": "ARR",
    "mrr": "MRR",
    "active": "Active customers",
    "at_risk": "At-risk customers",
    "new_logos": "New logos per month",
    "new_arr": "New ARR per month",
    "churned_logos": "Churned logos per month",
    "churned_arr": "Churned ARR per month",
    "expansion_arr": "Expansion ARR per month",
    "contraction_arr": "Contraction ARR per month",
    "tasks_missed": "Missed touches per month",
    "tasks_delivered": "Touches delivered per month",
    "with_csm": "Customers with a CSM",
}
KPI_LABELS = {
    "grr": "GRR",
    "nrr": "NRR",
    "logo_retention": "Logo retention",
    "renewal_rate": "Renewal rate (logos)",
    "renewal_grr": "Renewal GRR",
    "renewal_nrr": "Renewal NRR",
    "monthly_logo_churn": "Monthly logo churn",
    "ending_arr": "Ending ARR (run-rate at end)",
    "ending_logos": "Ending logos",
    "new_arr": "New ARR (horizon total)",
    "expansion_arr": "Expansion ARR (horizon total)",
    "contraction_arr": "Contraction ARR (horizon total)",
    "churned_arr": "Churned ARR (horizon total)",
    "lifetime_value": "Customer lifetime value (per customer)",
    "touches_delivered": "Touches delivered",
    "touches_late": "Touches late",
    "touches_missed": "Touches missed",
    "touch_miss_rate": "Touch miss rate",
    "touch_overdue_rate": "Touches not on time",
    "backlog_at_horizon": "CSM backlog at horizon",
    "mean_wait_days": "Mean wait for CSM",
    "csm_utilisation": "CSM utilisation",
    "accounts_per_csm": "Accounts per CSM",
    "arr_per_csm": "ARR per CSM (run-rate)",
    "csm_cost": "CSM cost (horizon total)",
    "cost_per_retained_arr": "CSM cost per retained ARR $",
}
#: KPIs a forest plot shows by default (when present): ratios, so one axis in percentage points.
FOREST_KPIS = (
    "grr",
    "nrr",
    "logo_retention",
    "renewal_rate",
    "monthly_logo_churn",
    "touch_miss_rate",
    "csm_utilisation",
)
#: Money KPIs for a second forest plot (dollars).
FOREST_MONEY_KPIS = ("ending_arr", "churned_arr", "expansion_arr", "csm_cost")
STAGES = ("signing", "onboarding", "growth", "maturity")


# ---------------------------------------------------------------------- helpers


def money(value: float, _pos=None, decimals: int | None = None) -> str:
    """Format dollars compactly: ``$1.2M``, ``$350k``, ``$950``, ``-$2.5M`` (``decimals`` overrides)."""
    if value is None or not np.isfinite(value):
        return ""
    sign = "-" if value < 0 else ""
    v = abs(value)
    for size, suffix, default in ((1e9, "B", 1), (1e6, "M", 1), (1e3, "k", 0)):
        if v >= size:
            return f"{sign}${v / size:.{default if decimals is None else decimals}f}{suffix}"
    return f"{sign}${v:.0f}"


class MoneyFormatter(Formatter):
    """Tick labels in compact dollars, with as many decimals as it takes to tell ticks apart."""

    def __call__(self, x, pos=None):
        return money(x)

    def format_ticks(self, values):
        labels = [money(v) for v in values]
        for decimals in (1, 2, 3):
            if len(set(labels)) == len(labels):
                break
            labels = [money(v, decimals=decimals) for v in values]
        return labels


def _money_axis(axis) -> None:
    axis.set_major_formatter(MoneyFormatter())


def _styled(fn):
    """Run a plotting function under the cssim style (rc settings apply only while it draws)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with mpl.rc_context(STYLE):
            return fn(*args, **kwargs)

    return wrapper


def _new_ax(ax, figsize=FIGSIZE):
    if ax is not None:
        return ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig.add_subplot()


def save(ax_or_fig, path: str | Path, dpi: int = DPI) -> Path:
    """Save the figure an ``Axes`` (or array of axes, or a ``Figure``) belongs to as PNG/SVG/PDF."""
    obj = ax_or_fig
    if isinstance(obj, np.ndarray):
        obj = obj.flat[0]
    fig = obj if isinstance(obj, Figure) else obj.figure
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    return path


def _dates(values) -> np.ndarray:
    return pd.to_datetime(pd.Series(values)).to_numpy()


def _date_axis(ax, dates=None) -> None:
    """Month-end ticks labelled by month (and year where it changes): ``Jan\\n2027``, ``Apr``, ..."""
    if dates is None or len(dates) == 0:
        locator = mdates.AutoDateLocator(minticks=4, maxticks=9)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    else:
        stamps = pd.DatetimeIndex(pd.to_datetime(pd.Series(dates)).drop_duplicates().sort_values())
        n = len(stamps)
        step = next((k for k in (1, 2, 3, 6, 12, 24) if n / k <= 9), 36)
        # Prefer ticks on calendar quarters/half-years/years: months whose number fits the step.
        picks = [i for i, d in enumerate(stamps) if (d.month - 1) % step == 0] if step in (2, 3, 6, 12) else []
        if len(picks) < 3:
            picks = list(range(0, n, step))
        ticks, labels, year = [], [], None
        for i in picks:
            d = stamps[i]
            ticks.append(d)
            labels.append(d.strftime("%b") + (f"\n{d.year}" if d.year != year else ""))
            year = d.year
        ax.set_xticks(ticks, labels)
        pad = pd.Timedelta(days=12)
        ax.set_xlim(stamps[0] - pad, stamps[-1] + pad)
    ax.set_xlabel("Month end")


def _is_money(metric: str) -> bool:
    return metric in CURRENCY_SERIES


def _y_label(metric: str) -> str:
    label = SERIES_LABELS.get(metric, metric.replace("_", " ").capitalize())
    if _is_money(metric):
        return f"{label} ($)"
    if metric in ("active", "at_risk", "with_csm") or metric.endswith("_logos"):
        return f"{label} (logos)"
    if metric.startswith("tasks_"):
        return f"{label} (tasks)"
    return label


def _scenario_name(results) -> str:
    return getattr(getattr(results, "scenario", None), "name", None) or "scenario"


def _as_named_results(results_or_list, labels):
    """(label, results) pairs from one results, a list, a dict or a ComparisonResults."""
    if hasattr(results_or_list, "results") and hasattr(results_or_list, "names"):
        pairs = list(zip(results_or_list.names, results_or_list.results, strict=True))
    elif isinstance(results_or_list, Mapping):
        pairs = list(results_or_list.items())
    elif isinstance(results_or_list, Sequence) and not isinstance(results_or_list, str):
        pairs = [(_scenario_name(r), r) for r in results_or_list]
    else:
        pairs = [(_scenario_name(results_or_list), results_or_list)]
    if labels is not None:
        if len(labels) != len(pairs):
            raise ValueError(f"labels: expected {len(pairs)} labels, got {len(labels)}")
        pairs = [(lab, r) for lab, (_, r) in zip(labels, pairs, strict=True)]
    return pairs


def _scope(segment) -> str:
    return f" — {segment.replace('_', ' ')}" if segment else ""


def _band(values: np.ndarray, level: float, axis=0):
    a = (1 - level) / 2
    return np.quantile(values, a, axis=axis), np.quantile(values, 1 - a, axis=axis)


# ---------------------------------------------------------------------- monthly series


@_styled
def fan_chart(results_or_list, metric: str = "arr", segment: str | None = None, ax=None, labels=None):
    """Median of a monthly series with its 50 % and 90 % bands across replications, per scenario.

    Parameters
    ----------
    results_or_list : SimulationResults, list of them, dict ``{label: results}`` or ComparisonResults
        Several scenarios are overlaid; each is labelled by its scenario name (or the dict key / ``labels``).
    metric : str
        A segment series of the ledger, e.g. ``"arr"``, ``"active"``, ``"at_risk"``, ``"churned_arr"``.
    segment : str, optional
        One segment; default the sum over segments.

    The darker band holds the middle 50 % of replications, the lighter one the middle 90 %.
    """
    ax = _new_ax(ax)
    pairs = _as_named_results(results_or_list, labels)
    colors = mpl.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, res) in enumerate(pairs):
        color = colors[i % len(colors)]
        s90 = res.series(metric, level=0.9, segment=segment)
        s50 = res.series(metric, level=0.5, segment=segment)
        x = _dates(s90["date"])
        ax.fill_between(x, s90["lo"], s90["hi"], color=color, alpha=0.13, linewidth=0)
        ax.fill_between(x, s50["lo"], s50["hi"], color=color, alpha=0.3, linewidth=0)
        ax.plot(x, s90["median"], color=color, label=label)
    if _is_money(metric):
        _money_axis(ax.yaxis)
    ax.set_ylabel(_y_label(metric))
    ax.set_title(f"{SERIES_LABELS.get(metric, metric)}{_scope(segment)}: median, 50 % and 90 % bands")
    _date_axis(ax, x)
    ax.legend(loc="best", title="scenario" if len(pairs) > 1 else None)
    return ax


def _totals(results, segment: str | None) -> pd.DataFrame:
    m = results.monthly()
    if segment is not None:
        m = m[m["segment"] == segment]
    numeric = m.drop(columns=["segment"]).groupby(["replication", "month"], sort=True).agg(
        {c: ("first" if c == "date" else "sum") for c in m.columns if c not in ("replication", "month", "segment")}
    )
    return numeric.reset_index()


def _month_label(date) -> str:
    return pd.Timestamp(date).strftime("%b %Y")


def waterfall_table(results, months: tuple[int, int] | None = None, segment: str | None = None) -> pd.DataFrame:
    """Mean ARR bridge over ``months`` (first, last; 1-based, inclusive; default the whole horizon).

    Returns one row per step — ``start, new, winback, expansion, contraction, churn, end`` — with
    columns ``step``, ``value`` (mean across replications; contraction and churn negative) and
    ``check`` (start + flows − end, ~0). Start ARR is the ARR at the end of the month before
    ``first`` (for month 1: the initial book, end-of-month-1 ARR less month 1's flows).
    """
    t = _totals(results, segment)
    n_months = int(t["month"].max())
    first, last = months if months is not None else (1, n_months)
    if not 1 <= first <= last <= n_months:
        raise ValueError(f"months: expected 1 <= first <= last <= {n_months}, got {months}")
    flows = ("new_arr", "winback_arr", "expansion_arr", "contraction_arr", "churned_arr")
    net = t["new_arr"] + t["winback_arr"] + t["expansion_arr"] - t["contraction_arr"] - t["churned_arr"]
    t = t.assign(start_arr=t["arr"] - net)
    window = t[(t["month"] >= first) & (t["month"] <= last)]
    per_rep = window.groupby("replication").agg(
        start=("start_arr", lambda s: s.iloc[0]), end=("arr", lambda s: s.iloc[-1]), **{f: (f, "sum") for f in flows}
    )
    mean = per_rep.mean()
    steps = [
        ("start", mean["start"]),
        ("new", mean["new_arr"]),
        ("winback", mean["winback_arr"]),
        ("expansion", mean["expansion_arr"]),
        ("contraction", -mean["contraction_arr"]),
        ("churn", -mean["churned_arr"]),
        ("end", mean["end"]),
    ]
    out = pd.DataFrame(steps, columns=["step", "value"])
    out["check"] = float(out["value"].iloc[:-1].sum() - out["value"].iloc[-1])
    out.attrs.update(
        first=first,
        last=last,
        first_date=window["date"].iloc[0],
        last_date=window["date"].iloc[-1],
        n=int(per_rep.shape[0]),
    )
    return out


@_styled
def arr_waterfall(results, months: tuple[int, int] | None = None, segment: str | None = None, ax=None):
    """ARR bridge for a period: start ARR, new, win-back, expansion, contraction, churn, end ARR.

    Values are means across replications (see :func:`waterfall_table`). Win-back is shown only
    when nonzero. Raises ``ValueError`` if start + new + win-back + expansion − contraction −
    churn does not equal end ARR (the ledger would be inconsistent).
    """
    table = waterfall_table(results, months, segment)
    scale = max(1.0, float(table["value"].abs().max()))
    if abs(table["check"].iloc[0]) > 1e-6 * scale:
        raise ValueError(f"ARR bridge does not add up: start + flows − end = {table['check'].iloc[0]:.2f}")
    if abs(table.loc[table["step"] == "winback", "value"].iloc[0]) < 0.5:
        table = table[table["step"] != "winback"]
    names = {
        "start": "Start ARR",
        "new": "New",
        "winback": "Win-back",
        "expansion": "Expansion",
        "contraction": "Contraction",
        "churn": "Churn",
        "end": "End ARR",
    }
    ax = _new_ax(ax)
    level = 0.0
    x = np.arange(len(table))
    for i, row in enumerate(table.itertuples()):
        if row.step in ("start", "end"):
            bottom, height, color = 0.0, row.value, TOTAL
            level = row.value
        else:
            bottom, height = (level, row.value) if row.value >= 0 else (level + row.value, -row.value)
            color = GAIN if row.value >= 0 else LOSS
            level += row.value
        ax.bar(i, height, bottom=bottom, color=color, width=0.65, label=names[row.step])
        text = money(row.value) if row.step in ("start", "end") else ("+" if row.value >= 0 else "") + money(row.value)
        ax.annotate(text, (i, bottom + height), xytext=(0, 4), textcoords="offset points", ha="center", va="bottom",
                    fontsize=11)
        if row.step not in ("end",) and i + 1 < len(table):
            ax.plot([i + 0.33, i + 0.67], [level, level], color="#999999", linewidth=1, linestyle=":")
    ax.set_xticks(x, [names[s] for s in table["step"]])
    _money_axis(ax.yaxis)
    ax.set_ylabel("ARR ($)")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.06)
    ax.grid(axis="x", visible=False)
    a = table.attrs
    ax.set_title(
        f"ARR bridge{_scope(segment)}, {_month_label(a['first_date'] - pd.offsets.MonthBegin(1))} – "
        f"{_month_label(a['last_date'])}"
    )
    ax.text(0.0, -0.14, f"Mean of {a['n']} replications.", transform=ax.transAxes, fontsize=10, color="#555555",
            va="top")
    return ax


@_styled
def stage_occupancy(results, segment: str | None = None, ax=None):
    """Customers by lifecycle stage at each month end (mean across replications), stacked.

    The stages (signing, onboarding, growth, maturity) partition the active customers, so the
    top of the stack is the active-customer count. At-risk is a health state that cuts across
    stages; see :func:`health_share`.
    """
    t = _totals(results, segment)
    mean = t.groupby("month").agg({"date": "first", **{s: "mean" for s in STAGES}})
    ax = _new_ax(ax)
    x = _dates(mean["date"])
    ax.stackplot(x, *[mean[s].to_numpy() for s in STAGES], labels=[s.capitalize() for s in STAGES], alpha=0.85)
    ax.set_ylabel("Active customers (logos)")
    ax.set_title(f"Customers by lifecycle stage{_scope(segment)} (mean of {t['replication'].nunique()} replications)")
    _date_axis(ax, x)
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], labels[::-1], loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_xlim(x[0], x[-1])
    return ax


@_styled
def health_share(results, by_segment: bool = True, ax=None, level: float = 0.9):
    """Share of active customers flagged at-risk at each month end: median and a ``level`` band.

    One line for all customers and, with ``by_segment``, one per segment.
    """
    m = results.monthly()
    groups = [("All customers", m)]
    if by_segment:
        groups += [(seg.replace("_", " "), g) for seg, g in m.groupby("segment", sort=False)]
    ax = _new_ax(ax)
    colors = mpl.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, g) in enumerate(groups):
        agg = g.groupby(["replication", "month"]).agg(date=("date", "first"), at_risk=("at_risk", "sum"),
                                                      active=("active", "sum"))
        share = (agg["at_risk"] / agg["active"].where(agg["active"] > 0)).unstack("month")
        dates = agg["date"].unstack("month").iloc[0]
        x = _dates(dates)
        lo, hi = _band(share.to_numpy(dtype=float), level)
        color = "#222222" if i == 0 else colors[(i - 1) % len(colors)]
        ax.fill_between(x, lo, hi, color=color, alpha=0.12, linewidth=0)
        ax.plot(x, np.nanmedian(share.to_numpy(dtype=float), axis=0), color=color, label=label,
                linewidth=2.6 if i == 0 else 1.8)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_ylim(bottom=0)
    ax.set_ylabel("At-risk share of active customers (%)")
    ax.set_title(f"At-risk share: median and {int(round(level * 100))} % band")
    _date_axis(ax, x)
    ax.legend(loc="best")
    return ax


def _pod_segment_map(results) -> dict[str, list[str]] | None:
    pods = results.scenario.team.pods
    mapping = {name: list(p.segments) for name, p in pods.items()}
    owned = [s for segs in mapping.values() for s in segs]
    return mapping if len(owned) == len(set(owned)) else None


@_styled
def csm_load(results, axes=None, level: float = 0.9):
    """CSM load per pod over time, three panels sharing the month axis.

    1. utilisation (busy / employed CSM-days; median and ``level`` band across replications);
    2. backlog: CSM tasks waiting at month end (mean — counts are often zero in most
       replications, so the median hides them — and band);
    3. missed touches per month (tasks whose deadline passed; mean and band), per pod when every
       segment is served by one pod, otherwise per segment.

    Returns the array of the three axes.
    """
    if axes is None:
        fig = Figure(figsize=(9.0, 9.0), layout="constrained")
        axes = fig.subplots(3, 1, sharex=True)
    axes = np.asarray(axes)
    pods = results.pods_monthly()
    colors = mpl.rcParams["axes.prop_cycle"].by_key()["color"]

    def draw(ax, table, key, value, labeler, centre=np.nanmedian):
        for i, (name, g) in enumerate(table.groupby(key, sort=False, observed=True)):
            wide = g.pivot_table(index="replication", columns="month", values=value, aggfunc="sum")
            dates = g.groupby("month")["date"].first().loc[wide.columns]
            x = _dates(dates)
            data = wide.to_numpy(dtype=float)
            lo, hi = _band(data, level)
            ax.fill_between(x, lo, hi, color=colors[i % len(colors)], alpha=0.15, linewidth=0)
            ax.plot(x, centre(data, axis=0), color=colors[i % len(colors)], label=labeler(name))

    pod_label = lambda p: f"{p.replace('_', ' ')} pod"  # noqa: E731
    draw(axes[0], pods, "pod", "utilisation", pod_label)
    axes[0].yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    axes[0].set_ylim(0, 1.05)
    axes[0].set_ylabel("Utilisation (%)")
    axes[0].set_title("CSM utilisation (busy / employed CSM-days)")
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))

    draw(axes[1], pods, "pod", "backlog", pod_label, np.nanmean)
    axes[1].set_ylim(bottom=0)
    axes[1].set_ylabel("Backlog (tasks)")
    axes[1].set_title("Tasks waiting for CSM time at month end (mean)")

    m = results.monthly()
    mapping = _pod_segment_map(results)
    if mapping is not None:
        seg_to_pod = {s: p for p, segs in mapping.items() for s in segs}
        m = m[m["segment"].isin(seg_to_pod)].assign(pod=lambda d: d["segment"].map(seg_to_pod))
        m["pod"] = pd.Categorical(m["pod"], categories=list(mapping), ordered=True)
        draw(axes[2], m, "pod", "tasks_missed", pod_label, np.nanmean)
        axes[2].set_title("Missed touches per month (mean; deadline passed or no CSM)")
    else:
        draw(axes[2], m, "segment", "tasks_missed", lambda s: s.replace("_", " "), np.nanmean)
        axes[2].set_title("Missed touches per month (mean), by segment")
        axes[2].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[2].set_ylim(bottom=0)
    axes[2].set_ylabel("Missed (tasks / month)")
    for ax in axes[:-1]:
        ax.set_xlabel("")
    _date_axis(axes[-1], pods["date"].unique())
    return axes


# ---------------------------------------------------------------------- fitting


def _km_frame(km, level: float = 0.95) -> pd.DataFrame:
    """time, survival, lo, hi from a lifelines KaplanMeierFitter, a DataFrame or (durations, events)."""
    if hasattr(km, "survival_function_") and hasattr(km, "confidence_interval_"):
        sf = km.survival_function_
        ci = km.confidence_interval_
        return pd.DataFrame(
            {"time": sf.index.to_numpy(dtype=float), "survival": sf.iloc[:, 0].to_numpy(),
             "lo": ci.iloc[:, 0].to_numpy(), "hi": ci.iloc[:, 1].to_numpy()}
        )
    if isinstance(km, pd.DataFrame):
        missing = {"time", "survival"} - set(km.columns)
        if missing:
            raise ValueError(f"Kaplan–Meier table: missing columns {sorted(missing)} (expected time, survival, lo, hi)")
        return km
    if isinstance(km, tuple) and len(km) == 2:
        from lifelines import KaplanMeierFitter

        durations, events = km
        return _km_frame(KaplanMeierFitter(alpha=1 - level).fit(np.asarray(durations), np.asarray(events)))
    raise TypeError(
        "km: expected a lifelines KaplanMeierFitter, a DataFrame (time, survival[, lo, hi]) or (durations, events)"
    )


def _curve_values(curve, t: np.ndarray):
    """survival (and lo, hi when the object carries them) of a fitted curve on the grid ``t``."""
    if isinstance(curve, pd.DataFrame):
        out = {"survival": np.interp(t, curve["time"], curve["survival"])}
        for c in ("lo", "hi"):
            if c in curve:
                out[c] = np.interp(t, curve["time"], curve[c])
        return out
    if hasattr(curve, "survival_function_at_times"):  # a lifelines parametric fitter
        out = {"survival": np.asarray(curve.survival_function_at_times(t), dtype=float)}
        try:
            ci = curve.confidence_interval_survival_function_
            out["lo"] = np.interp(t, ci.index.to_numpy(dtype=float), ci.iloc[:, 0].to_numpy())
            out["hi"] = np.interp(t, ci.index.to_numpy(dtype=float), ci.iloc[:, 1].to_numpy())
        except (AttributeError, ValueError, TypeError):
            pass
        return out
    if hasattr(curve, "survival"):  # a cssim curve
        return {"survival": np.asarray(curve.survival(t), dtype=float)}
    if callable(curve):
        return {"survival": np.asarray(curve(t), dtype=float)}
    raise TypeError(
        "curve: expected a cssim curve, a lifelines fitter, a callable S(t) or a DataFrame (time, survival)"
    )


@_styled
def survival_vs_km(km, curves, ax=None, time_unit: str = "days", title: str | None = None, level: float = 0.95):
    """A fitted survival curve (or several) against the Kaplan–Meier estimate with its confidence band.

    Parameters
    ----------
    km : lifelines KaplanMeierFitter, DataFrame or (durations, events)
        A fitted KM (its ``confidence_interval_`` is the band), a table with columns
        ``time, survival`` and optionally ``lo, hi``, or raw durations and event flags
        (1 = event observed, 0 = censored) from which a KM at ``level`` is fitted.
    curves : curve or dict ``{label: curve}``
        Each curve is a cssim curve (anything with ``survival(t)``), a lifelines parametric
        fitter (its confidence band is drawn too), a callable ``S(t)`` or a DataFrame
        ``time, survival[, lo, hi]``.
    time_unit : str
        Label of the time axis.
    """
    k = _km_frame(km, level)
    ax = _new_ax(ax)
    if {"lo", "hi"} <= set(k.columns):
        ax.fill_between(k["time"], k["lo"], k["hi"], step="post", color="#555555", alpha=0.18, linewidth=0,
                        label=f"Kaplan–Meier {int(round(level * 100))} % CI")
    ax.step(k["time"], k["survival"], where="post", color="#222222", linewidth=1.8, label="Kaplan–Meier")
    if not isinstance(curves, Mapping):
        curves = {"fitted": curves}
    t = np.linspace(0.0, float(np.max(k["time"])), 400)
    colors = mpl.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, curve) in enumerate(curves.items()):
        vals = _curve_values(curve, t)
        color = colors[(i + 1) % len(colors)]
        if "lo" in vals and "hi" in vals:
            ax.fill_between(t, vals["lo"], vals["hi"], color=color, alpha=0.15, linewidth=0)
        ax.plot(t, vals["survival"], color=color, label=str(label), linestyle="--" if i else "-")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0, t[-1])
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_xlabel(f"Time ({time_unit})")
    ax.set_ylabel("Still in state (survival, %)")
    ax.set_title(title or "Fitted survival vs Kaplan–Meier")
    ax.legend(loc="best")
    return ax


#: Cohort models (:mod:`cssim.fitting.cohorts`) as its fit report and these plots name them.
COHORT_MODEL_LABELS = {
    "sbg": "sBG",
    "geometric": "constant hazard",
    "exponential_gamma": "exp-gamma (lifelines)",
    "bdw": "beta-discrete-Weibull",
}
#: The code of the model-averaged cohort projection.
COHORT_AVERAGED = "averaged"


def cohort_model_name(code: str) -> str:
    """A cohort model's name as the fit report writes it (``sbg`` → sBG, ``geometric`` → constant hazard, ...)."""
    return "model-averaged" if code == COHORT_AVERAGED else COHORT_MODEL_LABELS.get(code, code)


@_styled
def cohort_projection(projection_df: pd.DataFrame, cohort: str | None = None, model: str | None = None, ax=None,
                      ylabel: str = "Active customers"):
    """Observed cohort sizes against the projection with its interval.

    ``projection_df`` has columns ``cohort, period, observed, projected, lo, hi`` and optionally
    ``model`` (several fitted models) and ``calibration`` (True for the periods the fit used; a
    dotted line marks the last of them). With several models, one cohort is drawn (``cohort``,
    default the first) with every model (or only ``model``); with one model, every cohort (or only
    ``cohort``). Models are named as in the fit report (sBG, constant hazard, ...).

    Past its last calibration period a cohort is projected from the customers still active then
    (the table's conditional projection), so the projection is drawn from that observed point on:
    a fitted line that ends below or above it (a constant hazard does) ends there as a thin dashed
    line and the projection continues from the observed count, without a vertical jump.
    """
    need = {"cohort", "period", "observed", "projected", "lo", "hi"}
    missing = need - set(projection_df.columns)
    if missing:
        raise ValueError(f"projection table: missing columns {sorted(missing)} (expected {sorted(need)})")
    p = projection_df
    if model is not None and "model" in p:
        p = p[p["model"] == model]
    multi_model = "model" in p and p["model"].nunique() > 1
    if cohort is None and multi_model:
        cohort = p["cohort"].iloc[0]
    if cohort is not None:
        p = p[p["cohort"] == cohort]
    if p.empty:
        raise ValueError(f"projection table: no rows for cohort={cohort!r}, model={model!r}")
    ax = _new_ax(ax)
    colors = mpl.rcParams["axes.prop_cycle"].by_key()["color"]
    keys = ["model"] if multi_model else ["cohort"]
    if multi_model:
        obs = p[p["model"] == p["model"].iloc[0]].sort_values("period")
        obs = obs[obs["observed"].notna()]
        ax.plot(obs["period"], obs["observed"], "o", color="#222222", markersize=6, label="observed", zorder=3)
    split = "calibration" in p and p["calibration"].any() and not p["calibration"].all()
    for i, (key, g) in enumerate(p.groupby(keys, sort=False)):
        key = key[0] if isinstance(key, tuple) else key
        color = colors[i % len(colors)]
        g = g.sort_values("period")
        single = not multi_model and p["cohort"].nunique() == 1
        model_name = f" ({cohort_model_name(g['model'].iloc[0])})" if "model" in g else ""
        if multi_model:
            label = f"{cohort_model_name(key)} (projected)"
        else:
            label = f"projected{model_name}" if single else f"cohort {key}: projected"
        fit_part, ahead = g, g.iloc[0:0]
        if split:
            calib = g["calibration"].astype(bool)
            fit_part, ahead = g[calib], g[~calib]
        if len(ahead) and len(fit_part):
            # The projection starts from the customers observed at the last calibration period.
            last = fit_part.iloc[-1]
            anchor = last["observed"] if np.isfinite(last["observed"]) else last["projected"]
            ahead = pd.concat([pd.DataFrame({"period": [last["period"]], "projected": [anchor], "lo": [anchor],
                                             "hi": [anchor]}), ahead[["period", "projected", "lo", "hi"]]])
            ax.fill_between(fit_part["period"], fit_part["lo"], fit_part["hi"], color=color, alpha=0.15,
                            linewidth=0)
            ax.plot(fit_part["period"], fit_part["projected"], color=color, linewidth=1.4, linestyle="--")
            ax.fill_between(ahead["period"], ahead["lo"], ahead["hi"], color=color, alpha=0.15, linewidth=0)
            ax.plot(ahead["period"], ahead["projected"], color=color, label=label)
        else:
            ax.fill_between(g["period"], g["lo"], g["hi"], color=color, alpha=0.15, linewidth=0)
            ax.plot(g["period"], g["projected"], color=color, label=label)
        if not multi_model:
            obs = g[g["observed"].notna()]
            ax.plot(obs["period"], obs["observed"], "o", color=color, markersize=6,
                    label="observed" if single else f"cohort {key}: observed", zorder=3)
    if split:
        last = p.loc[p["calibration"].astype(bool), "period"].max()
        ax.axvline(last, color="#777777", linestyle=":", linewidth=1.2)
        ax.annotate("end of fit", (last, 0.98), xycoords=("data", "axes fraction"), xytext=(4, 0),
                    textcoords="offset points", va="top", fontsize=10, color="#555555")
        ax.plot([], [], color="#777777", linestyle="--", linewidth=1.4, label="fit (calibration periods)")
    ax.set_xlabel("Period since acquisition")
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    ax.set_title("Cohort projection vs observed" + (f" — cohort {cohort}" if cohort is not None else ""))
    ax.legend(loc="best")
    return ax


# ---------------------------------------------------------------------- planning and comparison


def _kpi_formatter(kpi: str):
    unit = KPI_UNITS.get(kpi, "ratio")
    if unit == "ratio":
        return unit, PercentFormatter(1.0, decimals=None)
    if unit == "currency":
        return unit, MoneyFormatter()
    return unit, None


def _fmt_kpi(unit: str, value: float) -> str:
    if unit == "ratio":
        return f"{value * 100:.3g} %"
    if unit == "currency":
        return money(value)
    return f"{value:g}"


def frontier_from_sweep(sweep, kpi: str = "grr", scope: str = "all", level: float = 0.9) -> pd.DataFrame:
    """Frontier table (value, mean, ci_lo, ci_hi, cost) of a one-field sweep: ``kpi`` at ``scope`` per point,
    with the 90 % interval of its mean and the annual CSM cost (all pods)."""
    if len(sweep.fields) != 1:
        raise ValueError(f"frontier: the sweep varies {len(sweep.fields)} fields ({', '.join(sweep.fields)}); need one")
    field = sweep.fields[0]
    table = sweep.table(level)
    rows = []
    for point, res in zip(sweep.points, sweep.results, strict=True):
        t = table[table["point"] == point.id].set_index(["kpi", "scope"])
        years = res.scenario.horizon_months / 12.0
        rows.append({
            "value": point.values[field],
            "mean": t.loc[(kpi, scope), "mean"],
            "ci_lo": t.loc[(kpi, scope), "ci_lo"],
            "ci_hi": t.loc[(kpi, scope), "ci_hi"],
            "cost": t.loc[("csm_cost", "all"), "mean"] / years,
        })
    return pd.DataFrame(rows).sort_values("value").reset_index(drop=True)


@_styled
def headcount_frontier(table, kpi: str = "grr", target: float | None = None, chosen: int | None = None, ax=None,
                       xlabel: str = "CSM headcount", scope: str = "all"):
    """KPI against headcount with its interval, CSM cost on a second axis, the target and the chosen value.

    Parameters
    ----------
    table : DataFrame, PlanResults or SweepResults
        One row per evaluated headcount with columns ``value`` (headcount), ``mean`` (KPI
        mean), ``lo``/``hi`` (its interval; ``ci_lo``/``ci_hi`` are accepted) and ``cost``
        (annual CSM cost in $; ``csm_cost_per_year`` is accepted). A :class:`cssim.plan.PlanResults`
        gives its table, target KPI, target value and answer; a one-field
        :class:`cssim.sweep.SweepResults` gives ``kpi`` at ``scope`` at every point
        (see :func:`frontier_from_sweep`).
    kpi : str
        The KPI on the y axis (for its label and number format).
    target : float, optional
        Draws a horizontal target line.
    chosen : int, optional
        Marks the chosen headcount.

    The CSM-cost axis is the figure's second axes (``ax.figure.axes``).
    """
    if hasattr(table, "table") and hasattr(table, "target"):
        plan = table
        table = plan.table()
        kpi = plan.target.kpi
        target = plan.target.value if target is None else target
        chosen = plan.answer if chosen is None else chosen
        scope = plan.target.scope
    elif hasattr(table, "points") and hasattr(table, "fields"):
        table = frontier_from_sweep(table, kpi, scope)
    t = table.rename(columns={"ci_lo": "lo", "ci_hi": "hi", "csm_cost_per_year": "cost"})
    t = t.loc[:, ~t.columns.duplicated()]
    missing = {"value", "mean", "lo", "hi", "cost"} - set(t.columns)
    if missing:
        raise ValueError(f"frontier table: missing columns {sorted(missing)} (expected value, mean, lo, hi, cost)")
    t = t.sort_values("value")
    ax = _new_ax(ax)
    unit, fmt = _kpi_formatter(kpi)
    name = KPI_LABELS.get(kpi, kpi) + (f" ({scope.replace('_', ' ')})" if scope != "all" else "")
    scoped = name + (" (all customers)" if scope == "all" else "")
    kpi_color, cost_color = "#1f5a96", "#d9822b"
    mid, lo, hi = (t[c].to_numpy(dtype=float) for c in ("mean", "lo", "hi"))
    ax.errorbar(t["value"].to_numpy(dtype=float), mid, yerr=np.vstack([mid - lo, hi - mid]), color=kpi_color,
                marker="o", capsize=4, label=f"{name} (mean, interval)")
    if target is not None:
        ax.axhline(target, color=LOSS, linestyle="--", linewidth=1.5,
                   label=f"target {_fmt_kpi(unit, target)}")
    if chosen is not None and chosen in set(t["value"]):
        row = t[t["value"] == chosen].iloc[0]
        ax.plot([chosen], [row["mean"]], marker="*", markersize=20, color=GAIN, linestyle="none", zorder=5,
                label=f"chosen: {chosen}")
    elif chosen is not None:  # chosen elsewhere (e.g. by a plan) than the values drawn
        ax.axvline(chosen, color=GAIN, linestyle="-.", linewidth=1.8, label=f"chosen: {chosen}")
    if fmt is not None:
        ax.yaxis.set_major_formatter(fmt)
    if unit != "currency" and (t["mean"] >= 0).all():
        ax.set_ylim(bottom=max(ax.get_ylim()[0], 0.0))  # a rate or count is never below 0
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{name} (%)" if unit == "ratio" else (f"{name} ($)" if unit == "currency" else name))
    ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
    ax2 = ax.twinx()
    ax2.plot(t["value"], t["cost"], color=cost_color, marker="s", linestyle=":", linewidth=1.6,
             label="CSM cost per year")
    _money_axis(ax2.yaxis)
    ax2.set_ylabel("CSM cost per year ($)", color=cost_color)
    ax2.tick_params(axis="y", colors=cost_color)
    ax2.grid(False)
    ax2.spines["right"].set_visible(True)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=min(4, len(h1 + h2)))
    ax.set_title(f"{scoped} and CSM cost (all pods) by headcount")
    return ax


@_styled
def cost_frontier(table: pd.DataFrame, ax=None, current: str | None = None):
    """CSM cost per year against ARR retained per year, one point per setting, the efficient ones joined.

    ``table`` has columns ``setting`` (a label; ``start`` marks the starting scenario),
    ``cost_per_year``, ``cost_lo``, ``cost_hi``, ``retained_arr``, ``retained_lo``, ``retained_hi``
    (means and their intervals) and optionally ``efficient`` (no other setting costs less and
    retains more), as :meth:`cssim.analysis.whatif.Planner.frontier` gives. ``current`` names the setting
    to highlight. Up and to the left is better: more ARR kept for less CSM cost.
    """
    need = {"setting", "cost_per_year", "cost_lo", "cost_hi", "retained_arr", "retained_lo", "retained_hi"}
    missing = need - set(table.columns)
    if missing:
        raise ValueError(f"frontier table: missing columns {sorted(missing)} (expected {sorted(need)})")
    ax = _new_ax(ax)
    t = table.sort_values("cost_per_year")
    x, y = t["cost_per_year"].to_numpy(dtype=float), t["retained_arr"].to_numpy(dtype=float)
    xerr = np.vstack([x - t["cost_lo"].to_numpy(dtype=float), t["cost_hi"].to_numpy(dtype=float) - x])
    yerr = np.vstack([y - t["retained_lo"].to_numpy(dtype=float), t["retained_hi"].to_numpy(dtype=float) - y])
    ax.errorbar(x, y, xerr=np.nan_to_num(xerr), yerr=np.nan_to_num(yerr), fmt="o", color=TOTAL, capsize=3,
                markersize=6, label="setting (mean, 90 % interval)", zorder=3)
    if "efficient" in t and t["efficient"].sum() > 1:
        eff = t[t["efficient"].astype(bool)]
        ax.plot(eff["cost_per_year"], eff["retained_arr"], color=GAIN, linewidth=1.8, zorder=2,
                label="efficient: none costs less and keeps more")
    start = t[t["setting"] == "start"]
    if len(start):
        ax.plot(start["cost_per_year"], start["retained_arr"], "s", color="#1f5a96", markersize=11, zorder=4,
                label="start")
    if current is not None and current != "start" and (t["setting"] == current).any():
        row = t[t["setting"] == current]
        ax.plot(row["cost_per_year"], row["retained_arr"], "*", color=LOSS, markersize=18, zorder=5,
                label="this what-if")
    middle = (np.nanmin(x) + np.nanmax(x)) / 2
    for label, xi, yi in zip(t["setting"], x, y, strict=True):
        if label != "start":
            short = label if len(label) <= 34 else label[:33] + "…"
            right = xi > middle  # labels of the right-hand points extend left, inside the axes
            ax.annotate(short, (xi, yi), xytext=(-6 if right else 6, 6), textcoords="offset points", fontsize=9,
                        color="#444444", ha="right" if right else "left")
    _money_axis(ax.xaxis)
    _money_axis(ax.yaxis)
    ax.set_xlabel("CSM cost per year, all pods ($)")
    ax.set_ylabel("ARR retained per year ($)")
    ax.set_title("Cost vs retained ARR of the settings tried")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3)
    return ax


@_styled
def forest(differences_df: pd.DataFrame, ax=None, kpis: Sequence[str] | None = None, relative: bool | None = None,
           scope: str = "all"):
    """Paired differences per KPI with their intervals, and a zero line (a forest plot).

    ``differences_df`` has columns ``kpi, mean, lo, hi`` (the mean difference and its interval),
    or is :meth:`cssim.compare.ComparisonResults.differences` (``diff, ci_lo, ci_hi``, and
    ``scenario``, ``unit``, ``reference_mean``, ``scope``: rows of ``scope`` are used). With
    several scenarios, each gets its own marker colour.

    ``relative``: show differences as % of the reference mean — the default when the KPIs mix
    units (ratios and dollars) and ``reference_mean`` is available; ratio KPIs are otherwise
    shown in percentage points.
    """
    d = differences_df
    if "diff" in d.columns:
        d = d.drop(columns=[c for c in ("mean", "lo", "hi") if c in d.columns])
        d = d.rename(columns={"diff": "mean", "ci_lo": "lo", "ci_hi": "hi"})
    missing = {"kpi", "mean", "lo", "hi"} - set(d.columns)
    if missing:
        raise ValueError(f"differences table: missing columns {sorted(missing)} (expected kpi, mean, lo, hi)")
    if "scope" in d.columns:
        d = d[d["scope"] == scope]
    if kpis is None and "unit" in d.columns:
        present = [k for k in FOREST_KPIS if k in set(d["kpi"])]
        kpis = present or None
    if kpis is not None:
        d = d[d["kpi"].isin(kpis)]
        order = list(kpis)
    else:
        order = list(dict.fromkeys(d["kpi"]))
    d = d[np.isfinite(d["mean"].to_numpy(dtype=float))]  # undefined for this scope (e.g. no renewals due)
    order = [k for k in order if k in set(d["kpi"])]
    if d.empty:
        raise ValueError("differences table: no rows to plot")
    units = set(d["unit"]) if "unit" in d.columns else {"ratio"}
    if relative is None:
        relative = len(units) > 1 and "reference_mean" in d.columns
    d = d.copy()
    if relative:
        if "reference_mean" not in d.columns:
            raise ValueError("relative=True needs a reference_mean column")
        base = d["reference_mean"].abs().where(d["reference_mean"].abs() > 0)
        for c in ("mean", "lo", "hi"):
            d[c] = d[c] / base * 100.0
        xlabel = "Difference vs reference (% of reference mean)"
    elif units == {"ratio"}:
        for c in ("mean", "lo", "hi"):
            d[c] = d[c] * 100.0
        xlabel = "Difference (percentage points)"
    elif units == {"currency"}:
        xlabel = "Difference ($)"
    else:
        xlabel = "Difference"
    scenarios = list(dict.fromkeys(d["scenario"])) if "scenario" in d.columns else [None]
    ax = _new_ax(ax, figsize=(9.0, max(3.0, 0.5 * len(order) + 1.8)))
    colors = mpl.rcParams["axes.prop_cycle"].by_key()["color"]
    n = len(scenarios)
    offsets = (np.arange(n) - (n - 1) / 2) * (0.5 / max(n, 1)) if n > 1 else np.zeros(1)
    ypos = {k: len(order) - 1 - i for i, k in enumerate(order)}
    for j, sc in enumerate(scenarios):
        sub = d if sc is None else d[d["scenario"] == sc]
        y = np.array([ypos[k] for k in sub["kpi"]], dtype=float) + offsets[j]
        mid, lo, hi = (sub[c].to_numpy(dtype=float) for c in ("mean", "lo", "hi"))
        ax.errorbar(mid, y, xerr=np.vstack([mid - lo, hi - mid]),
                    fmt="o", color=colors[j % len(colors)], capsize=4, markersize=7,
                    label=(f"{sc} − {d['reference'].iloc[0]}" if "reference" in d.columns else str(sc))
                    if sc is not None else None)
    ax.axvline(0.0, color="#222222", linewidth=1.2)
    ax.set_yticks([ypos[k] for k in order], [KPI_LABELS.get(k, k) for k in order])
    ax.set_ylim(-0.7, len(order) - 0.3)
    ax.grid(axis="y", visible=False)
    if units == {"currency"} and not relative:
        _money_axis(ax.xaxis)
    ax.set_xlabel(xlabel)
    ax.set_title("Paired differences with intervals — " + (scope.replace("_", " ") if scope != "all" else "all customers"))
    if scenarios != [None]:
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.02), ncol=min(n, 3), title=None)
        ax.set_title(ax.get_title(), pad=12 + 22 * ((n + 2) // 3))
    return ax


# ---------------------------------------------------------------------- sensitivity (cssim.sensitivity)


def _sensitivity_rows(table, kpi: str, scope: str, method: str) -> pd.DataFrame:
    t = table.table() if hasattr(table, "table") and callable(table.table) else table
    missing = {"method", "kpi", "scope", "field", "index", "estimate", "ci_lo", "ci_hi"} - set(t.columns)
    if missing:
        raise ValueError(f"sensitivity table: missing columns {sorted(missing)}")
    sub = t[(t["method"] == method) & (t["kpi"] == kpi) & (t["scope"] == scope)]
    if sub.empty:
        raise ValueError(f"sensitivity table: no {method} rows for {kpi} ({scope})")
    return sub


def _field_label(path: str) -> str:
    """A dotted field path without the schema's container names: ``smb.lifecycle.churn.scale``,
    ``pods.smb.cost_per_year``, ``low_touch.renewal_call.renewal_odds``."""
    for prefix in ("segments.", "touch_models.", "team."):
        if path.startswith(prefix):
            path = path[len(prefix):]
            break
    return path.replace(".tasks.", ".").replace(".effects.", ".")


def _output_name(kpi: str, scope: str) -> str:
    return KPI_LABELS.get(kpi, kpi) + ("" if scope == "all" else f" ({scope.replace('_', ' ')})")


@_styled
def tornado(table, kpi: str = "grr", scope: str = "all", ax=None):
    """One-at-a-time swings of an output: per field, a bar from the output at the field's low value to
    the output at its high value, around the base value; fields sorted by swing, largest on top.

    ``table`` is :meth:`cssim.sensitivity.SensitivityResults.table` (or the results object). The
    whisker at the high end and the label give the paired swing (high − low, same customers) with
    its 90 % interval; the field's low → high values are printed beside it.
    """
    sub = _sensitivity_rows(table, kpi, scope, "oat")
    unit = KPI_UNITS.get(kpi, "ratio")
    base = float(sub[sub["index"] == "base"]["estimate"].iloc[0])
    fields = [f for f in dict.fromkeys(sub["field"]) if f]
    get = {(r.field, r.index): r for r in sub.itertuples()}
    fields.sort(key=lambda f: abs(get[(f, "swing")].estimate) if np.isfinite(get[(f, "swing")].estimate) else -1)
    ax = _new_ax(ax, figsize=(9.0, max(3.0, 0.7 * len(fields) + 2.0)))
    scale = 100.0 if unit == "ratio" else 1.0
    for y, f in enumerate(fields):
        lo_r, hi_r, sw = get[(f, "at_low")], get[(f, "at_high")], get[(f, "swing")]
        for r, color, name in ((lo_r, "#4a8fb8", "field at low value"), (hi_r, "#d9822b", "field at high value")):
            ax.barh(y, (r.estimate - base) * scale, left=base * scale, color=color, height=0.55,
                    label=name if y == 0 else None)
        # The swing's paired 90 % interval (same customers at low and high), drawn around the high end.
        if np.isfinite(sw.ci_lo):
            err = [[(sw.estimate - sw.ci_lo) * scale], [(sw.ci_hi - sw.estimate) * scale]]
            ax.errorbar(hi_r.estimate * scale, y, xerr=err, color="#222222", capsize=4, linewidth=1.2,
                        label="90 % interval of the swing" if y == 0 else None)
        fmt = (lambda v: f"{v * 100:+.2f} pts") if unit == "ratio" else (
            (lambda v: ("+" if v >= 0 else "-") + money(abs(v))) if unit == "currency" else (lambda v: f"{v:+.3g}"))
        text = (f"swing {fmt(sw.estimate)} [{fmt(sw.ci_lo)}, {fmt(sw.ci_hi)}]" if np.isfinite(sw.ci_lo)
                else f"swing {fmt(sw.estimate)}")
        ax.annotate(f"{text}\n{_value(lo_r.field_value)} → {_value(hi_r.field_value)}", (1.01, y),
                    xycoords=("axes fraction", "data"), va="center", fontsize=9)
    ax.axvline(base * scale, color="#222222", linewidth=1.2, label=f"base {_fmt_kpi(unit, base)}")
    ax.set_yticks(range(len(fields)), [_field_label(f) for f in fields])
    ax.grid(axis="y", visible=False)
    name = _output_name(kpi, scope)
    if unit == "currency":
        _money_axis(ax.xaxis)
        ax.set_xlabel(f"{name} ($)")
    else:
        ax.set_xlabel(f"{name} (%)" if unit == "ratio" else name)
    ax.set_title(f"What moves {name}: one field at a time")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    return ax


def _value(v) -> str:
    if v is None or not np.isfinite(v):
        return "?"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


@_styled
def sobol_bars(table, kpi: str = "grr", scope: str = "all", ax=None):
    """Sobol' first-order (S1) and total-order (ST) indices per field with their 90 % intervals.

    ``table`` is :meth:`cssim.sensitivity.SensitivityResults.table` (or the results object); fields are
    sorted by ST, largest on top. A field whose ST interval reaches 0 is not shown to matter.
    """
    sub = _sensitivity_rows(table, kpi, scope, "sobol")
    st = sub[sub["index"] == "ST"].set_index("field")
    s1 = sub[sub["index"] == "S1"].set_index("field")
    fields = list(st["estimate"].abs().sort_values(kind="stable").index)
    ax = _new_ax(ax, figsize=(9.0, max(3.0, 0.7 * len(fields) + 2.0)))
    y = np.arange(len(fields), dtype=float)
    bars = ((st, 0.18, "#1f5a96", "total order ST"), (s1, -0.18, "#8fb3d9", "first order S1"))
    for frame, offset, color, label in bars:
        est = frame.loc[fields, "estimate"].to_numpy(dtype=float)
        lo = frame.loc[fields, "ci_lo"].to_numpy(dtype=float)
        hi = frame.loc[fields, "ci_hi"].to_numpy(dtype=float)
        ax.barh(y + offset, est, height=0.34, color=color, label=label)
        ax.errorbar(est, y + offset, xerr=np.vstack([est - lo, hi - est]), fmt="none", color="#222222", capsize=3,
                    linewidth=1.0)
        for yy, e, a, b in zip(y + offset, est, lo, hi, strict=True):
            ax.annotate(f"{label.split()[-1]} {e:.2f} [{a:.2f}, {b:.2f}]", (1.01, yy),
                        xycoords=("axes fraction", "data"), va="center", fontsize=9)
    ax.axvline(0.0, color="#222222", linewidth=1.0)
    ax.set_yticks(y, [_field_label(f) for f in fields])
    ax.grid(axis="y", visible=False)
    ax.set_xlabel("Share of the output's variance (Sobol' index, 90 % interval)")
    ax.set_title(f"What drives {_output_name(kpi, scope)}: Sobol' indices")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    return ax


# ---------------------------------------------------------------------- back-tests (cssim.backtest)

#: Back-test methods as figures and reports name them.
BACKTEST_LABELS = {"cssim": "cssim", "cssim_best": "cssim, lowest-AIC family",
                    "cssim_point": "cssim, point-estimate curves", "flat_rate": "flat churn rate",
                    "constant_hazard": "constant hazard"}
_BACKTEST_COLORS = {"cssim": 0, "cssim_best": 3, "cssim_point": 0, "flat_rate": 1, "constant_hazard": 2}
_BACKTEST_METRICS = {"active_logos": "Active logos", "arr": "ARR", "churned": "Churned logos", "renewed": "Renewals"}


@_styled
def backtest_fan(backtest, metric: str = "active_logos", ax=None):
    """Forecast vs actual after a back-test cutoff: cssim's 90 % band, the baselines' means and bands, the actual path.

    ``backtest`` is a :class:`cssim.backtest.BacktestResults` (its ``table`` has
    columns month, metric, method, actual, mean, lo, hi; ``before`` the actual
    path over the months before the cutoff, with month ≤ 0).
    """
    ax = _new_ax(ax)
    colors = mpl.rcParams["axes.prop_cycle"].by_key()["color"]
    start = pd.Timestamp(backtest.cutoff)

    def when(months):
        # Month m ends m months after the cutoff (month 0: the cutoff itself), shown on its last day.
        return _dates([start + pd.DateOffset(months=int(m)) - pd.Timedelta(days=1) for m in months])

    t = backtest.table()[backtest.table()["metric"] == metric]
    for i, method in enumerate(m for m in ("cssim", "flat_rate", "constant_hazard") if m in set(t["method"])):
        d = t[t["method"] == method].sort_values("month")
        x = when(d["month"])
        label = BACKTEST_LABELS.get(method, method)
        if method == "cssim":
            point = t[t["method"] == "cssim_point"].sort_values("month")
            band = f"{label} 90 % interval" + (" (with curve uncertainty)" if len(point) else "")
            ax.fill_between(x, d["lo"], d["hi"], color=colors[i], alpha=0.18, linewidth=0, label=band)
            if len(point):
                # The same forecast at the fitted curves' point estimates: the narrower band users had before.
                xp = when(point["month"])
                ax.plot(xp, point["lo"], color=colors[i], linewidth=1.0, linestyle="-.",
                        label=f"{label} 90 % interval, point-estimate curves")
                ax.plot(xp, point["hi"], color=colors[i], linewidth=1.0, linestyle="-.")
            ax.plot(x, d["mean"], color=colors[i], label=f"{label} mean")
        else:
            ax.plot(x, d["lo"], color=colors[i], linewidth=0.8, linestyle=":")
            ax.plot(x, d["hi"], color=colors[i], linewidth=0.8, linestyle=":")
            ax.plot(x, d["mean"], color=colors[i], linestyle="--", label=f"{label} mean (dotted: 90 %)")
    act = backtest.actual.sort_values("month")
    before = getattr(backtest, "before", None)
    if before is not None and len(before):
        joined = pd.concat([before, act.iloc[:1]]) if metric in ("active_logos", "arr") else before
        ax.plot(when(joined["month"]), joined[metric], color="black", linewidth=1.5, alpha=0.5, label="actual before cutoff")
    ax.plot(when(act["month"]), act[metric], color="black", marker="o", markersize=3.5, linewidth=1.5, label="actual")
    ax.axvline(when([0])[0], color=TOTAL, linestyle="-", linewidth=1.2)
    ax.annotate("cutoff", xy=(when([0])[0], 1.0), xycoords=("data", "axes fraction"), xytext=(4, -4),
                textcoords="offset points", va="top", fontsize=11, color=TOTAL)
    if metric == "arr":
        _money_axis(ax.yaxis)
        ax.set_ylabel("ARR at signing ($)")
    else:
        ax.set_ylabel(_BACKTEST_METRICS.get(metric, metric))
    name = _BACKTEST_METRICS.get(metric, metric)
    ax.set_title(f"Back-test: {name if metric == 'arr' else name.lower()}, forecast from {backtest.cutoff} vs actual")
    allx = when(list(before["month"]) + list(act["month"])) if before is not None and len(before) else when(act["month"])
    _date_axis(ax, allx)
    ax.legend(loc="best", fontsize=10)
    return ax


@_styled
def backtest_calibration(scores: pd.DataFrame, metrics: Sequence[str] = ("active_logos", "arr"), ax=None):
    """Calibration of interval coverage: share of months inside each nominal interval, per method.

    ``scores`` is :attr:`cssim.backtest.BacktestResults.scores` (columns method,
    metric, coverage_50 ... coverage_95). Points on the diagonal are calibrated;
    below it the intervals are too narrow (or the forecast is biased).
    """
    ax = _new_ax(ax, figsize=(9.5, 5.5))
    colors = mpl.rcParams["axes.prop_cycle"].by_key()["color"]
    cols = sorted((c for c in scores.columns if c.startswith("coverage_")), key=lambda c: int(c.split("_")[1]))
    levels = np.array([int(c.split("_")[1]) / 100 for c in cols])
    ax.plot([0, 1], [0, 1], color=TOTAL, linewidth=1, linestyle="--", label="calibrated")
    markers = {"active_logos": "o", "arr": "s", "churned": "^", "renewed": "v"}
    styles = {"active_logos": "-", "arr": "--", "churned": ":", "renewed": "-."}
    methods = [m for m in ("cssim", "cssim_best", "cssim_point", "flat_rate", "constant_hazard")
               if m in set(scores["method"])]
    for i, method in enumerate(methods):
        # Methods are nudged apart along x so that identical coverages stay visible; cssim is drawn on top.
        shift = (i - (len(methods) - 1) / 2) * 0.006
        for metric in metrics:
            r = scores[(scores["method"] == method) & (scores["metric"] == metric)]
            if r.empty:
                continue
            name = _BACKTEST_METRICS.get(metric, metric)
            # Each method keeps its fan-chart colour; cssim at point-estimate curves is cssim's colour, open markers.
            point = method == "cssim_point"
            color = colors[_BACKTEST_COLORS.get(method, i)]
            ax.plot(levels + shift, r[cols].to_numpy(float)[0], color=color, marker=markers.get(metric, "o"),
                    markerfacecolor="white" if point else color, alpha=0.75 if point else 1.0,
                    linestyle=styles.get(metric, "-"), linewidth=1.0 if point else 1.2, markersize=6,
                    zorder=3 if method == "cssim" else 2,
                    label=f"{BACKTEST_LABELS.get(method, method)} — {name if metric == 'arr' else name.lower()}")
    ax.set_xlim(0.4, 1.0)
    ax.set_ylim(-0.02, 1.02)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_xlabel("Nominal interval")
    ax.set_ylabel("Months with the actual inside")
    ax.set_title("Back-test: interval coverage")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9)  # outside: the curves fill the square
    return ax
