"""Read starting-book files: the customers active when a scenario starts.

A segment can list its initial customers explicitly instead of sampling
them (``book: {file: book.csv}``)::

    customer_id,arr,touch_model,signed_date,stage,at_risk,days_in_stage,days_at_risk
    acme,48000,high_touch,2025-03-14,growth,0,120,
    bolt,6000,,2026-11-02,onboarding,1,40,12

Required: ``arr`` and one of ``tenure_days`` (days since signing at the
scenario start) or ``signed_date`` (a date on or before ``start_date``).
Optional: ``customer_id``; ``touch_model`` (empty: the routing rules);
``stage`` (signing / onboarding / growth / maturity; empty: sampled from the
segment's curves given the tenure, as for a sampled book); ``at_risk``
(0/1, true/false); ``days_in_stage`` and ``days_at_risk`` (time already
spent, which the stage and recovery clocks are conditioned on; empty: the
clock starts at the scenario start).

The file is read once, when the scenario is validated (the engine does no
I/O). Errors name the file, the 1-based data row, the column and what is
allowed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

from ..core.errors import DataError
from ..core.files import read_table

__all__ = ["BOOK_STAGES", "read_book", "book_tenures"]

BOOK_STAGES = ("signing", "onboarding", "growth", "maturity")
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f", ""}
COLUMNS = (
    "customer_id", "arr", "touch_model", "tenure_days", "signed_date", "stage", "at_risk", "days_in_stage",
    "days_at_risk",
)


def _number(label, i, col, text, allow_empty=True):
    if text == "":
        if allow_empty:
            return None
        raise DataError(f"{label}: row {i}, column {col!r}: empty; a number is required")
    try:
        v = float(text)
    except ValueError:
        raise DataError(f"{label}: row {i}, column {col!r}: {text!r} is not a number") from None
    if not v >= 0 or v == float("inf"):
        raise DataError(f"{label}: row {i}, column {col!r}: {text!r} must be a finite number ≥ 0")
    return v


def read_book(path) -> tuple[list[dict], str]:
    """Rows of a starting-book CSV (see the module docstring) and the file's sha256."""
    path = Path(path)
    label = str(path)
    if not path.exists() and not path.is_symlink():
        raise DataError(f"{label}: book file not found")
    raw = read_table(path, "a book (one row per customer)", error=DataError)
    data = path.read_bytes()
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    unknown = [c for c in raw.columns if c not in COLUMNS]
    if unknown:
        raise DataError(f"{label}: unknown column {unknown[0]!r}; allowed: {', '.join(COLUMNS)}")
    if "arr" not in raw.columns:
        raise DataError(f"{label}: missing required column 'arr'")
    if "tenure_days" not in raw.columns and "signed_date" not in raw.columns:
        raise DataError(f"{label}: needs a 'tenure_days' or a 'signed_date' column")
    rows = []
    for i, rec in enumerate(raw.to_dict("records"), start=1):
        rec = {k: str(v).strip() for k, v in rec.items()}
        arr = _number(label, i, "arr", rec["arr"], allow_empty=False)
        tenure = _number(label, i, "tenure_days", rec.get("tenure_days", ""))
        signed = None
        if rec.get("signed_date", ""):
            try:
                signed = dt.date.fromisoformat(rec["signed_date"])
            except ValueError:
                raise DataError(
                    f"{label}: row {i}, column 'signed_date': {rec['signed_date']!r} is not a date (YYYY-MM-DD)"
                ) from None
        if tenure is None and signed is None:
            raise DataError(f"{label}: row {i}, column 'tenure_days': empty; give tenure_days or signed_date")
        stage = rec.get("stage", "").lower() or None
        if stage is not None and stage not in BOOK_STAGES:
            raise DataError(
                f"{label}: row {i}, column 'stage': {rec['stage']!r} is not a stage; allowed: {', '.join(BOOK_STAGES)}"
            )
        flag = rec.get("at_risk", "").lower()
        if flag not in _TRUE | _FALSE:
            raise DataError(f"{label}: row {i}, column 'at_risk': {rec['at_risk']!r}; allowed: 0/1 or true/false")
        rows.append(
            {
                "customer_id": rec.get("customer_id", "") or None,
                "arr": arr,
                "touch_model": rec.get("touch_model", "") or None,
                "tenure_days": tenure,
                "signed_date": signed.isoformat() if signed else None,
                "stage": BOOK_STAGES.index(stage) if stage else None,
                "at_risk": flag in _TRUE,
                "days_in_stage": _number(label, i, "days_in_stage", rec.get("days_in_stage", "")),
                "days_at_risk": _number(label, i, "days_at_risk", rec.get("days_at_risk", "")),
            }
        )
    return rows, hashlib.sha256(data).hexdigest()


def book_tenures(rows: list[dict], start: dt.date, label: str) -> None:
    """Fill ``tenure_days`` from ``signed_date`` relative to ``start``; check the row is consistent."""
    for i, row in enumerate(rows, start=1):
        if row["tenure_days"] is None:
            signed = dt.date.fromisoformat(row["signed_date"])
            if signed > start:
                raise DataError(
                    f"{label}: row {i}, column 'signed_date': {signed} is after the scenario start_date {start}; "
                    "the book lists customers already signed"
                )
            row["tenure_days"] = float((start - signed).days)
        if row["days_in_stage"] is not None and row["days_in_stage"] > row["tenure_days"]:
            raise DataError(
                f"{label}: row {i}, column 'days_in_stage': {row['days_in_stage']:g} exceeds the tenure "
                f"({row['tenure_days']:g} days)"
            )
