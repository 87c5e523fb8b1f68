"""Snapshot tables: one row per customer with a tenure, a churn flag and attributes.

Most CRM exports look like this (a "customer churn" table): no dates, only
how long each customer has been (or was) a customer, whether they churned,
and attributes such as contract type or plan. That is exactly the data of the
``churn`` clock — tenure is the duration, the flag the event, customers still
active are right-censored at their tenure — so :func:`read_snapshot` turns the
table into a :class:`~cssim.fitting.history.History` with one signing date per
customer (the snapshot date minus its tenure; for a churned customer only the
duration matters) and ``cssim fit`` fits the ``churn`` curves of every segment
as for a history, writing the same ``curves.json``.

Flags are read as 1 / 0 from ``1, 0, yes, no, true, false, y, n, churned,
active`` (any case), as ``cssim touch-effects`` reads them. Tenure is in
months by default (``duration_unit="days"`` for days); a month is 30.436875
days, as in the simulation.

Assumptions
-----------
- Every row is one customer at the snapshot date, observed from signing
  (no left truncation): a customer who churned before the export window and
  was purged from the CRM is missing, which biases churn low — give the export
  of every customer ever signed if the CRM keeps them.
- Tenure of a churned customer is its lifetime; of an active one, its time so far.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.clock import DAYS_PER_MONTH
from ..core.errors import DataError
from .history import History
from .tables import read_text_table

__all__ = ["FLAG_VALUES", "read_flags", "read_snapshot", "DURATION_UNITS"]

FLAG_VALUES = {"1": 1, "0": 0, "1.0": 1, "0.0": 0, "yes": 1, "no": 0, "true": 1, "false": 0, "y": 1, "n": 0,
               "churned": 1, "active": 0}
DURATION_UNITS = {"months": DAYS_PER_MONTH, "days": 1.0}


def read_flags(values: pd.Series, column: str, label: str) -> np.ndarray:
    """0/1 from a column of flags (``1/0``, ``Yes/No``, ``True/False``, …); DataError naming the first bad row."""
    text = values.astype(str).str.strip().str.lower()
    mapped = text.map(FLAG_VALUES)
    bad = mapped.isna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{label}: row {i + 2}, column {column!r}: {values.iloc[i]!r} is not a churn flag; use 1/0, "
                        f"Yes/No or True/False ({int(bad.sum())} bad row{'s' if bad.sum() != 1 else ''})")
    return mapped.to_numpy(dtype=int)


def read_snapshot(path, duration: str, event: str, extract_date, segment: str | None = None,
                  duration_unit: str = "months", arr: str | None = None, touch_model: str | None = None,
                  customer_id: str | None = None) -> History:
    """A snapshot table (one row per customer) as a :class:`History` of signing → churn clocks.

    Parameters
    ----------
    path : str or Path
        CSV or Parquet file.
    duration, event : str
        Columns of the tenure (``duration_unit``) and the churn flag.
    extract_date : date-like
        When the snapshot was taken (recorded as the extract date).
    segment : str, optional
        Column whose values are the segments (e.g. contract type); default one segment ``all``.
    arr, touch_model, customer_id : str, optional
        Columns of ARR, touch model and customer id (default: ``arr``, ``touch_model``,
        ``customer_id`` when present; otherwise empty, ``none`` and the row number).

    Raises :class:`DataError` (one line naming the file, row and column) for a
    missing column, a tenure that is not a non-negative number, a flag that is
    not one, an empty segment, or a bad date.
    """
    path = Path(path)
    label = str(path)
    if duration_unit not in DURATION_UNITS:
        raise DataError(f"--duration-unit: {duration_unit!r}; choose one of {', '.join(DURATION_UNITS)}")
    if extract_date is None:
        raise DataError(f"{label}: a snapshot table needs --extract-date, the date the snapshot was taken")
    try:
        extract = pd.Timestamp(extract_date).normalize()
    except (ValueError, TypeError):
        raise DataError(f"--extract-date: {extract_date!r} is not a date (YYYY-MM-DD)") from None
    raw = read_text_table(path, "a snapshot table (one row per customer)")
    cols = {str(c).strip(): c for c in raw.columns}
    for opt, col in (("--duration", duration), ("--event", event), ("--segment", segment)):
        if col is not None and col not in cols:
            raise DataError(f"{label}: no column {col!r} for {opt} (columns: {', '.join(map(str, cols))})")
    n = len(raw)
    if n == 0:
        raise DataError(f"{label}: no rows")
    text = raw[cols[duration]].astype(str).str.strip()
    tenure = pd.to_numeric(text, errors="coerce")
    bad = (tenure.isna() | (tenure < 0)).to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        what = "is not a number" if np.isnan(tenure.iloc[i]) else "is negative"
        raise DataError(f"{label}: row {i + 2}, column {duration!r}: {raw[cols[duration]].iloc[i]!r} {what} "
                        f"(tenure in {duration_unit}; {int(bad.sum())} bad row{'s' if bad.sum() != 1 else ''})")
    churned = read_flags(raw[cols[event]], event, label)
    if segment is not None:
        seg = raw[cols[segment]].astype(str).str.strip()
        empty = (seg == "").to_numpy()
        if empty.any():
            i = int(np.argmax(empty))
            raise DataError(f"{label}: row {i + 2}, column {segment!r}: empty segment")
    else:
        seg = pd.Series("all", index=raw.index)

    def optional(name: str | None, default: str):
        col = name or default
        return raw[cols[col]] if col in cols else None

    ids = optional(customer_id, "customer_id")
    ids = ids.astype(str).to_numpy() if ids is not None else np.array([f"row{i + 2}" for i in range(n)])
    tm = optional(touch_model, "touch_model")
    arr_col = optional(arr, "arr")
    arr_values = (pd.to_numeric(arr_col, errors="coerce").to_numpy(dtype=float) if arr_col is not None
                  else np.full(n, np.nan))
    days = np.round(tenure.to_numpy(dtype=float) * DURATION_UNITS[duration_unit])
    signed = extract - pd.to_timedelta(days, unit="D")
    churn = pd.Series(signed + pd.to_timedelta(days, unit="D")).where(churned == 1)
    nat = pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns]")
    frame = pd.DataFrame({
        "customer_id": ids, "episode": 1, "segment": seg.to_numpy(),
        "touch_model": tm.astype(str).str.strip().to_numpy() if tm is not None else "none",
        "arr": arr_values, "signed_date": pd.Series(signed).astype("datetime64[ns]"),
        "kickoff_date": nat, "onboarded_date": nat, "matured_date": nat, "first_at_risk_date": nat,
        "recovered_date": nat, "churn_date": churn.astype("datetime64[ns]"),
        "observed_from": pd.Series(signed).astype("datetime64[ns]"),
        "renewals_due": pd.array([pd.NA] * n, dtype="Int64"), "renewals_renewed": pd.array([pd.NA] * n, dtype="Int64"),
    })
    return History(frame=frame, source=label, sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                   extract_date=extract)
