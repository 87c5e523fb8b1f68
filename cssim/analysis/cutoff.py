"""A customer history as it stood at a back-test's cutoff: the censored extract, the starting book, and the
actual path that followed (what the forecasts are scored against)."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd

from ..core.clock import DAYS_PER_MONTH
from ..core.errors import DataError
from ..core.files import read_table
from ..fitting.history import DATE_COLUMNS

__all__ = ["METRICS", "actual_paths", "book_at", "censor_history", "date_column", "read_raw_history"]

METRICS = ("active_logos", "arr", "churned", "renewed")


def read_raw_history(path) -> pd.DataFrame:
    return read_table(path, "a customer-history file", error=DataError)


def date_column(frame: pd.DataFrame, col: str) -> pd.Series:
    if col not in frame:
        return pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns]")
    return pd.to_datetime(frame[col].replace("", None), errors="coerce", format="ISO8601")  # validated by read_history


def censor_history(raw: pd.DataFrame, cutoff: dt.date) -> pd.DataFrame:
    """The history as an extract taken on ``cutoff`` would have shown it (raw string table)."""
    cut = pd.Timestamp(cutoff)
    out = raw[date_column(raw, "signed_date") <= cut].copy()
    for col in DATE_COLUMNS:
        if col in out and col != "signed_date":
            later = date_column(out, col) > cut
            out.loc[later, col] = ""
    if "recovered_date" in out and "first_at_risk_date" in out:
        out.loc[out["first_at_risk_date"] == "", "recovered_date"] = ""
    if "observed_from" in out:
        # A customer whose observation window opened after the cutoff was not yet observed.
        out = out[date_column(out, "observed_from").isna() | (date_column(out, "observed_from") <= cut)]
    if "renewal_log" in out:
        def keep(log: str) -> str:
            entries = [e.strip() for e in str(log).split(";") if e.strip()]
            return "; ".join(e for e in entries if pd.Timestamp(e.split()[0]) <= cut)

        out["renewal_log"] = out["renewal_log"].map(keep)
        entries = out["renewal_log"].map(lambda s: [e for e in s.split(";") if e.strip()])
        out["renewals_due"] = entries.map(len).astype(str)
        out["renewals_renewed"] = entries.map(lambda es: sum(" renewed" in e for e in es)).astype(str)
    else:
        out = out.drop(columns=[c for c in ("renewals_due", "renewals_renewed") if c in out])
    out["extract_date"] = cutoff.isoformat()
    return out


def book_at(
    frame: pd.DataFrame, cutoff: dt.date, signing_days: dict[str, float], touch_models=()
) -> dict[str, pd.DataFrame]:
    """Per segment, the customers active at ``cutoff`` as a starting book (see :mod:`cssim.book`)."""
    cut = pd.Timestamp(cutoff)
    d = {c: date_column(frame, c) for c in ("signed_date", "kickoff_date", "onboarded_date", "matured_date",
                                         "first_at_risk_date", "recovered_date", "churn_date")}
    active = (d["signed_date"] <= cut) & (d["churn_date"].isna() | (d["churn_date"] > cut))
    books = {}
    for seg in sorted(frame.loc[active, "segment"].unique()):
        rows = []
        for i in frame.index[active & (frame["segment"] == seg)]:
            def known(col, i=i):
                v = d[col][i]
                return v if pd.notna(v) and v <= cut else None

            signed = d["signed_date"][i]
            kickoff = known("kickoff_date")
            if kickoff is None and known("onboarded_date") is None:
                start = signed + pd.Timedelta(days=signing_days.get(seg, 14.0))
                kickoff = start if start <= cut else None
            if known("matured_date") is not None:
                stage, since = "maturity", known("matured_date")
            elif known("onboarded_date") is not None:
                stage, since = "growth", known("onboarded_date")
            elif kickoff is not None:
                stage, since = "onboarding", kickoff
            else:
                stage, since = "signing", signed
            risk, rec = known("first_at_risk_date"), known("recovered_date")
            at_risk = risk is not None and rec is None
            tm = frame.at[i, "touch_model"] if "touch_model" in frame else ""
            rows.append(
                {
                    "customer_id": frame.at[i, "customer_id"],
                    "arr": float(frame.at[i, "arr"]),
                    "touch_model": tm if tm in touch_models else "",
                    "signed_date": signed.date().isoformat(),
                    "stage": stage,
                    "at_risk": int(at_risk),
                    "days_in_stage": float((cut - since).days),
                    "days_at_risk": float((cut - risk).days) if at_risk else "",
                }
            )
        books[seg] = pd.DataFrame(rows)
    return books


def actual_paths(frame: pd.DataFrame, cutoff: dt.date, months: int) -> pd.DataFrame:
    """What happened, per month after the cutoff: active logos and ARR at month end, churned and renewed in it."""
    start = pd.Timestamp(cutoff)
    signed, churn = date_column(frame, "signed_date"), date_column(frame, "churn_date")
    arr = pd.to_numeric(frame["arr"], errors="coerce").fillna(0.0).to_numpy()
    renewed_days = []
    if "renewal_log" in frame:
        for log in frame["renewal_log"]:
            for e in str(log).split(";"):
                parts = e.split()
                if len(parts) >= 2 and parts[1] == "renewed":
                    renewed_days.append((pd.Timestamp(parts[0]) - start).days)
    renewed_days = np.asarray(renewed_days, dtype=float)
    s_day = (signed - start).dt.days.to_numpy(dtype=float)
    c_day = (churn - start).dt.days.to_numpy(dtype=float)
    c_day = np.where(np.isnan(c_day), np.inf, c_day)
    rows = []
    for m in range(1, months + 1):
        lo, hi = (m - 1) * DAYS_PER_MONTH, m * DAYS_PER_MONTH
        alive = (s_day <= math.floor(hi)) & (c_day > math.floor(hi))
        rows.append(
            {
                "month": m,
                "active_logos": float(alive.sum()),
                "arr": float(arr[alive].sum()),
                "churned": float(((c_day > math.floor(lo)) & (c_day <= math.floor(hi))).sum()),
                "renewed": float(((renewed_days > math.floor(lo)) & (renewed_days <= math.floor(hi))).sum()),
            }
        )
    return pd.DataFrame(rows)
