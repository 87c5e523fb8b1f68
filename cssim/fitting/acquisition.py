"""Acquisition forecast: monthly new logos per segment with statsmodels ETS.

Input is either a monthly counts table (``month, segment, new_logos``;
``month`` as ``YYYY-MM``) or a customer-history file, from whose signed dates
the counts are derived. Each segment's series gets a few exponential-smoothing
state-space models (:class:`statsmodels.tsa.exponential_smoothing.ets.ETSModel`):
level only (A,N,N), damped trend (A,Ad,N) and, with three years of data,
additive seasonality (A,N,A); the lowest AICc wins. The forecast file holds,
per segment, the mean and prediction interval of every month and simulated
paths of the fitted model; a scenario segment with ``acquisition: {file,
key}`` takes each replication's arrivals from one of those paths.

Assumptions
-----------
- Additive errors: counts are treated as continuous; the engine clips paths at
  zero and rounds stochastically.
- The paths carry the model's innovation noise, not the uncertainty of its
  estimated smoothing parameters (statsmodels simulates at the estimates).
- A missing month in a counts table is an error, not a zero: write 0 for a
  month without new logos.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import DataError
from ..model.forecast import FORMAT, VERSION, month_index, month_label
from .tables import read_text_table

__all__ = [
    "AcquisitionForecast",
    "SegmentForecast",
    "read_monthly_counts",
    "counts_from_history",
    "fit_acquisition",
    "write_forecast",
]

MIN_MONTHS = 12
SIGNED_COLUMNS = ("signed", "signed_date", "signed_at", "signed_on")


def _parse_month(value: str) -> int:
    """Month index of ``YYYY-MM`` or an ISO date (``YYYY-MM-DD``); anything else is a ValueError (never guessed)."""
    import datetime as dt

    v = str(value).strip()
    d = dt.date.fromisoformat(v + "-01" if len(v) == 7 else v[:10] if len(v) > 10 and v[10] in "T " else v)
    return d.year * 12 + d.month - 1


def read_monthly_counts(source) -> pd.DataFrame:
    """Read and validate ``month, segment, new_logos``; returns a wide table (month label × segment).

    Errors name the file, row and column: missing column, unparseable month,
    non-numeric or negative count, duplicate (month, segment), missing month.
    """
    if isinstance(source, pd.DataFrame):
        label, raw = "<table>", source.astype(str)
    else:
        raw = read_text_table(Path(source), "monthly counts with columns month, segment, new_logos")
        label = str(source)
    raw = raw.rename(columns={c: str(c).strip().lower() for c in raw.columns})
    for col in ("month", "segment", "new_logos"):
        if col not in raw.columns:
            found = ", ".join(raw.columns) or "none"
            raise DataError(f"{label}: missing column {col!r} (columns found: {found}); need month, segment, new_logos")
    rows = []
    for i, (m, s, n) in enumerate(zip(raw["month"], raw["segment"], raw["new_logos"], strict=True)):
        where = f"{label}: row {i + 2}"
        try:
            mi = _parse_month(m)
        except (ValueError, TypeError):
            raise DataError(f"{where}, column 'month': cannot parse {m!r} as a month (YYYY-MM)") from None
        s = str(s).strip()
        if not s:
            raise DataError(f"{where}, column 'segment': empty segment")
        try:
            v = float(n)
        except ValueError:
            raise DataError(f"{where}, column 'new_logos': {n!r} is not a number") from None
        if not math.isfinite(v) or v < 0:
            raise DataError(f"{where}, column 'new_logos': {n!r} must be a count ≥ 0")
        rows.append((mi, s, v, i + 2))
    df = pd.DataFrame(rows, columns=["m", "segment", "n", "row"])
    dup = df[df.duplicated(["m", "segment"], keep="first")]
    if len(dup):
        r = dup.iloc[0]
        raise DataError(
            f"{label}: row {r.row}, column 'month': duplicate month {month_label(r.m)} for segment {r.segment!r}"
        )
    out = {}
    for seg, g in df.groupby("segment", sort=False):
        g = g.sort_values("m")
        gaps = np.nonzero(np.diff(g["m"].to_numpy()) != 1)[0]
        if gaps.size:
            a = int(g["m"].iloc[gaps[0]])
            raise DataError(
                f"{label}: row {g['row'].iloc[gaps[0] + 1]}, column 'month': segment {seg!r} has no row for "
                f"{month_label(a + 1)}; write 0 for a month without new logos"
            )
        out[seg] = pd.Series(g["n"].to_numpy(), index=[month_label(x) for x in g["m"]])
    return _wide(out)


def _wide(series: dict[str, pd.Series]) -> pd.DataFrame:
    months = sorted({m for s in series.values() for m in s.index}, key=month_index)
    return pd.DataFrame({k: s.reindex(months) for k, s in series.items()}, index=pd.Index(months, name="month"))


def counts_from_history(source, through: str | None = None) -> pd.DataFrame:
    """Monthly new logos per segment from a customer-history file's signed dates.

    Counts first episodes only (a win-back is not a new logo, if an
    ``episode`` column exists). Months without signings between a segment's
    first signing and ``through`` (default: the last signing month overall)
    are zeros. Pass ``through`` to drop a partial last month.
    """
    if isinstance(source, pd.DataFrame):
        label, raw = "<history>", source.astype(str)
    else:
        label, raw = str(source), read_text_table(Path(source), "a customer history with signed dates")
    raw = raw.rename(columns={c: str(c).strip().lower() for c in raw.columns})
    col = next((c for c in SIGNED_COLUMNS if c in raw.columns), None)
    if col is None:
        raise DataError(f"{label}: missing column 'signed' (or {', '.join(SIGNED_COLUMNS[1:])}): the signing date")
    seg = raw["segment"].astype(str).str.strip() if "segment" in raw.columns else pd.Series(["all"] * len(raw))
    months = []
    for i, v in enumerate(raw[col]):
        try:
            months.append(_parse_month(v))
        except (ValueError, TypeError):
            raise DataError(f"{label}: row {i + 2}, column {col!r}: {v!r} is not an ISO date (YYYY-MM-DD)") from None
    df = pd.DataFrame({"m": months, "segment": seg.to_numpy()})
    if "episode" in raw.columns:
        df = df[pd.to_numeric(raw["episode"], errors="coerce").fillna(0).to_numpy() == 0]
    try:
        last = _parse_month(through) if through is not None else int(df["m"].max())
    except (ValueError, TypeError):
        raise DataError(f"--through: {through!r} is not a month; give YYYY-MM (e.g. 2029-12)") from None
    df = df[df["m"] <= last]
    out = {}
    for s, g in df.groupby("segment", sort=False):
        counts = g["m"].value_counts()
        idx = range(int(g["m"].min()), last + 1)
        out[s] = pd.Series([float(counts.get(m, 0)) for m in idx], index=[month_label(m) for m in idx])
    return _wide(out)


@dataclass
class SegmentForecast:
    """One segment's chosen model, its forecast and simulated paths."""

    segment: str
    model: str
    aicc: dict[str, float]
    params: dict[str, float]
    history_start: str
    start: str
    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    paths: np.ndarray  # paths × months

    def to_dict(self, decimals: int = 3) -> dict:
        r = lambda a: np.round(np.asarray(a, dtype=float), decimals).tolist()  # noqa: E731
        return {
            "model": self.model,
            "aicc": self.aicc,
            "params": self.params,
            "history_start": self.history_start,
            "start": self.start,
            "months": int(len(self.mean)),
            "mean": r(self.mean),
            "lo": r(self.lo),
            "hi": r(self.hi),
            "paths": r(self.paths),
        }


@dataclass
class AcquisitionForecast:
    """Forecasts of monthly new logos for every segment of a counts table."""

    segments: dict[str, SegmentForecast]
    level: float
    seed: int
    source: str = "<table>"
    notes: list[str] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        """Tidy forecast: segment, month, mean, lo, hi."""
        frames = []
        for name, f in self.segments.items():
            b = month_index(f.start)
            frames.append(
                pd.DataFrame(
                    {
                        "segment": name,
                        "month": [month_label(b + i) for i in range(len(f.mean))],
                        "mean": f.mean,
                        "lo": f.lo,
                        "hi": f.hi,
                    }
                )
            )
        return pd.concat(frames, ignore_index=True)

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "source": self.source,
            "interval_level": self.level,
            "seed": self.seed,
            "notes": self.notes,
            "segments": {k: f.to_dict() for k, f in self.segments.items()},
        }


CANDIDATES = {
    "A,N,N": {"trend": None, "seasonal": None},
    "A,Ad,N": {"trend": "add", "damped_trend": True, "seasonal": None},
    "A,N,A": {"trend": None, "seasonal": "add", "seasonal_periods": 12},
}


def _fit_segment(name: str, y: pd.Series, horizon: int, n_paths: int, level: float, rng, models: Sequence[str]):
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    values = y.to_numpy(dtype=float)
    first_month = month_index(y.index[0])
    dates = pd.date_range(f"{month_label(first_month)}-01", periods=len(values), freq="MS")
    endog = pd.Series(values, index=dates)
    fits = {}
    for key in models:
        kw = CANDIDATES[key]
        if kw.get("seasonal") and len(values) < 36:
            continue
        if kw.get("trend") and len(values) < 18:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                res = ETSModel(endog, error="add", **kw).fit(disp=False)
            except (ValueError, np.linalg.LinAlgError):
                continue
        if np.isfinite(res.aicc):
            fits[key] = res
    if not fits:
        raise DataError(f"segment {name!r}: no ETS model could be fitted to its {len(values)} months")
    best = min(fits, key=lambda k: fits[k].aicc)
    res = fits[best]
    n = len(values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pred = res.get_prediction(start=n, end=n + horizon - 1).summary_frame(alpha=1 - level)
        sims = res.simulate(horizon, anchor="end", repetitions=n_paths, rng=rng)
    paths = np.asarray(sims, dtype=float).reshape(horizon, n_paths).T
    first = month_index(y.index[-1]) + 1
    return SegmentForecast(
        segment=name,
        model=best,
        aicc={k: float(r.aicc) for k, r in fits.items()},
        params={k: float(v) for k, v in zip(res.param_names, res.params, strict=True)},
        history_start=str(y.index[0]),
        start=month_label(first),
        mean=pred["mean"].to_numpy(),
        lo=pred["pi_lower"].to_numpy(),
        hi=pred["pi_upper"].to_numpy(),
        paths=paths,
    )


def fit_acquisition(
    counts,
    horizon: int = 36,
    n_paths: int = 500,
    level: float = 0.90,
    seed: int = 0,
    models: Sequence[str] = tuple(CANDIDATES),
) -> AcquisitionForecast:
    """Fit ETS models to monthly new logos per segment and forecast ``horizon`` months.

    Parameters
    ----------
    counts : DataFrame or path
        A wide table (index ``YYYY-MM`` months, one column per segment, as
        returned by :func:`read_monthly_counts` / :func:`counts_from_history`)
        or a path to a ``month, segment, new_logos`` file.
    horizon : int
        Months to forecast after the last month of data.
    n_paths : int
        Simulated paths per segment (one is drawn per replication).
    level : float
        Level of the prediction intervals ``lo``–``hi``.
    seed : int
        Seed of the simulated paths.
    """
    source = "<table>"
    if not isinstance(counts, pd.DataFrame) or "new_logos" in counts.columns:
        source = str(counts) if not isinstance(counts, pd.DataFrame) else source
        counts = read_monthly_counts(counts)
    if horizon < 1:
        raise DataError(f"{source}: horizon must be at least 1 month, got {horizon}")
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed)))
    out = {}
    for name in counts.columns:
        y = counts[name].dropna()
        if len(y) < MIN_MONTHS:
            raise DataError(
                f"{source}: segment {name!r} has {len(y)} months of data; "
                f"an acquisition forecast needs at least {MIN_MONTHS}"
            )
        out[name] = _fit_segment(name, y, horizon, n_paths, level, rng, models)
    notes = [
        "paths: simulated monthly new logos of the chosen ETS model (innovation noise at the estimated "
        "parameters; parameter uncertainty not included); the engine clips at 0 and rounds stochastically",
        "lo/hi: prediction interval of each month from statsmodels get_prediction",
    ]
    return AcquisitionForecast(out, level=level, seed=seed, source=source, notes=notes)


def write_forecast(forecast: AcquisitionForecast, path) -> Path:
    """Write the forecast JSON a scenario's ``acquisition: {file, key}`` can reference (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(forecast.to_dict(), separators=(",", ":")) + "\n")
    tmp.replace(path)
    return path
