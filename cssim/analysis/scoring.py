"""Scores of back-test forecasts against what happened: interval coverage (and calibration at several levels),
width, MAPE and bias per method and metric, and how much of the interval width is estimation error."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .cutoff import METRICS

__all__ = ["CALIBRATION_LEVELS", "LEVEL", "estimation_share", "score"]

LEVEL = 0.9
CALIBRATION_LEVELS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def _summaries(samples: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = (1 - level) / 2
    return samples.mean(axis=0), np.quantile(samples, a, axis=0), np.quantile(samples, 1 - a, axis=0)


def score(
    actual: pd.DataFrame, samples: dict[str, dict[str, np.ndarray]], level: float = LEVEL
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(backtest table, scores table) from per-method (reps × months) samples and the actual path."""
    rows, scores = [], []
    for method, by_metric in samples.items():
        for metric in METRICS:
            x = by_metric[metric]
            act = actual[metric].to_numpy()
            if np.isnan(x).all():
                continue
            mean, lo, hi = _summaries(x, level)
            for m in range(len(act)):
                rows.append({"month": m + 1, "metric": metric, "method": method, "actual": act[m],
                             "mean": mean[m], "lo": lo[m], "hi": hi[m]})
            nz = act != 0
            inside = (act >= lo) & (act <= hi)
            calib = {f"coverage_{int(round(lv * 100))}": float(np.mean(
                (act >= _summaries(x, lv)[1]) & (act <= _summaries(x, lv)[2]))) for lv in CALIBRATION_LEVELS}
            scores.append({
                "method": method, "metric": metric, "months": len(act),
                "coverage": float(inside.mean()), "width": float(np.mean(hi - lo)),
                "mape": float(np.mean(np.abs(mean[nz] - act[nz]) / np.abs(act[nz]))) if nz.any() else np.nan,
                "bias": float(np.mean((mean[nz] - act[nz]) / np.abs(act[nz]))) if nz.any() else np.nan,
                "actual_total": float(act.sum()) if metric in ("churned", "renewed") else float(act[-1]),
                "forecast_total": float(mean.sum()) if metric in ("churned", "renewed") else float(mean[-1]),
                **calib,
            })
    return pd.DataFrame(rows), pd.DataFrame(scores)


def estimation_share(scores: pd.DataFrame, with_method: str = "cssim", without: str = "cssim_point",
                     best: str = "cssim_best") -> pd.DataFrame:
    """Per metric: mean interval width with and without parameter (and model) uncertainty, and their shares.

    ``share_estimation`` = 1 − (width_without / width_with)², clipped to [0, 1]:
    the share of the interval's variance that comes from not knowing the
    curves (the runs share every process-noise draw, see
    :func:`cssim.uncertainty.decompose`). When the forecast averaged over
    families (a ``best`` run exists, the chosen family with its parameter
    uncertainty), that share is split: ``share_model`` = 1 − (width_best /
    width_with)² is owed to the choice of family, and ``share_estimation`` =
    (width_best² − width_without²) / width_with² to the parameters.
    """
    s = scores.set_index(["method", "metric"])["width"]
    rows = []
    for metric in METRICS:
        if (with_method, metric) not in s or (without, metric) not in s:
            continue
        w, w0 = float(s[(with_method, metric)]), float(s[(without, metric)])
        share = float(np.clip(1.0 - (w0 / w) ** 2, 0.0, 1.0)) if w > 0 else np.nan
        row = {"metric": metric, "width_with": w, "width_without": w0, "share_estimation": share}
        if (best, metric) in s:
            wb = float(s[(best, metric)])
            model = float(np.clip(1.0 - (wb / w) ** 2, 0.0, 1.0)) if w > 0 else np.nan
            row.update(width_best=wb, share_model=model,
                       share_estimation=float(np.clip(share - model, 0.0, 1.0)) if w > 0 else np.nan)
        rows.append(row)
    cols = ["metric", "width_with", "width_without", "share_estimation"]
    if any("share_model" in r for r in rows):
        cols = ["metric", "width_with", "width_best", "width_without", "share_model", "share_estimation"]
    return pd.DataFrame(rows, columns=cols)
