"""Customer-history files: read, validate, turn into durations per lifecycle transition.

A customer history has one row per customer episode (a win-back starts a new
episode)::

    customer_id,episode,segment,touch_model,arr,signed_date,onboarded_date,matured_date,first_at_risk_date,recovered_date,churn_date,renewal_log
    acme,0,smb,tech_touch,4800,2025-03-14,2025-04-02,,,,2026-01-09,
    bolt,0,mid,low_touch,26000,2024-02-01,2024-03-20,2024-09-02,2025-01-05,,,2025-02-01 renewed at_risk touched
    ...

Required: ``customer_id`` and ``signed_date``. Optional: ``episode`` (0 for
the first life, +1 per win-back), ``segment``, ``touch_model``, ``arr``,
``kickoff_date``, ``onboarded_date``, ``matured_date`` (end of the growth
stage), ``first_at_risk_date``, ``recovered_date`` (end of that first
at-risk spell), ``churn_date`` (empty: still a customer at the extract
date), ``observed_from`` (the data window opened on a customer already
signed: left truncation), ``renewals_due`` / ``renewals_renewed`` (counts),
``renewal_log`` (one entry per renewal, ``DATE renewed|lost [at_risk]
[onboarding] [touched]`` separated by ``;`` — the customer's state at that
renewal: at-risk, still onboarding, and whether a renewal touch was in
effect), ``extract_date`` (one value for the file).

CSV or Parquet. Validation collects every bad row before raising, so one run
tells the user how many rows need fixing; the message names the file, the
first bad row (1-based data row and its ``customer_id``), the column, what was
wrong and what is allowed. ``drop_bad_rows=True`` drops them instead and
reports how many.

Assumptions
-----------
- Dates have day resolution; durations are whole days, and an event on the
  day its clock started counts as half a day (parametric fits need T > 0).
- A customer without ``churn_date`` is active at the extract date
  (right-censored there); every other open clock is censored at churn or at
  the extract date, whichever is first.
- ``observed_from`` later than ``signed_date`` means the customer was already
  part-way through its life when the data window opened (left truncation):
  only the time after ``observed_from`` contributes to the fits.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import DataError
from ..core.files import read_table
from .tables import check_date_format, parse_dates

__all__ = [
    "HISTORY_COLUMNS",
    "DATE_COLUMNS",
    "History",
    "read_history",
    "is_history_table",
]

REQUIRED = ("customer_id", "signed_date")
DATE_COLUMNS = (
    "signed_date",
    "kickoff_date",
    "onboarded_date",
    "matured_date",
    "first_at_risk_date",
    "recovered_date",
    "churn_date",
    "observed_from",
)
HISTORY_COLUMNS = (
    "customer_id",
    "episode",
    "segment",
    "touch_model",
    "arr",
    *DATE_COLUMNS,
    "renewals_due",
    "renewals_renewed",
    "renewal_log",
    "extract_date",
)
# (column, must not be before this column): "end before start" checks.
_ORDER = (
    ("kickoff_date", "signed_date"),
    ("onboarded_date", "signed_date"),
    ("onboarded_date", "kickoff_date"),
    ("matured_date", "onboarded_date"),
    ("first_at_risk_date", "signed_date"),
    ("recovered_date", "signed_date"),
    ("recovered_date", "first_at_risk_date"),
    ("churn_date", "signed_date"),
)
HALF_DAY = 0.5
#: Flags a ``renewal_log`` entry may carry after its date and outcome.
RENEWAL_FLAGS = ("at_risk", "onboarding", "touched")
RENEWAL_OUTCOMES = {"renewed": 1, "lost": 0}


def is_history_table(columns) -> bool:
    """True if ``columns`` look like a customer history (an id and a signing date)."""
    cols = {str(c).strip().lower() for c in columns}
    return "customer_id" in cols and "signed_date" in cols


@dataclass
class History:
    """A validated customer history.

    ``frame`` holds one row per episode with parsed types: dates as
    ``datetime64`` (``NaT`` where empty), ``arr`` float, ``episode`` int.
    ``renewals`` (if the file has ``renewal_log``) holds one row per renewal:
    ``customer_id, episode, date, renewed, at_risk, onboarding, touched`` (0/1).
    """

    frame: pd.DataFrame
    source: str
    sha256: str | None
    extract_date: pd.Timestamp
    dropped: int = 0
    problems: list[str] = field(default_factory=list)
    dropped_lines: list[int] = field(default_factory=list)  # file lines (header is line 1) of dropped rows
    renewals: pd.DataFrame | None = None  # one row per renewal_log entry, when the file has that column

    @property
    def segments(self) -> list[str]:
        return sorted(self.frame["segment"].unique())

    def days(self, column: str, start: str = "signed_date") -> pd.Series:
        """Days from ``start`` to ``column`` (float, NaN where either is empty)."""
        return (self.frame[column] - self.frame[start]).dt.days.astype(float)


@dataclass
class _Bad:
    row: int  # 0-based index in the data
    cid: str
    column: str
    what: str


def _read_raw(path: Path) -> pd.DataFrame:
    return read_table(path, "a customer-history file", error=DataError)


def read_history(
    path,
    segments=None,
    drop_bad_rows: bool = False,
    extract_date=None,
    date_format: str | None = None,
) -> History:
    """Read and validate a customer-history file (CSV or Parquet).

    Parameters
    ----------
    path : str or Path
        The file. Columns are described in ``docs/fitting.md``; unknown extra
        columns are kept but not used.
    segments : iterable of str, optional
        Known segment names; a row with another segment is bad.
    drop_bad_rows : bool
        Drop bad rows (``History.dropped`` says how many) instead of raising.
    extract_date : date-like, optional
        When the data were extracted: customers without ``churn_date`` are
        active then. Default: an ``extract_date`` column, else the latest
        date in the file; inferred so, no date may lie after today.
    date_format : str, optional
        strftime format of every date column (e.g. ``%d/%m/%Y``); default
        ISO 8601. Dates are never guessed: a column in another format, or in
        two formats, is refused naming the column and a line.

    Raises
    ------
    DataError
        One line: the file, the first bad row and its ``customer_id``, the
        column, what was wrong and what is allowed, and how many rows are bad.
    """
    path = Path(path)
    label = str(path)
    raw = _read_raw(path)
    raw = raw.rename(columns={c: str(c).strip().lower() for c in raw.columns})
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise DataError(
            f"{label}: missing required column {missing[0]!r}; a customer history needs "
            f"{', '.join(REQUIRED)} (columns found: {', '.join(map(str, raw.columns)) or 'none'})"
        )
    n = len(raw)
    if n == 0:
        raise DataError(f"{label}: no data rows; a customer history needs one row per customer episode")
    raw = raw.fillna("").astype(str)
    bad: list[_Bad] = []
    cid = raw["customer_id"].str.strip()

    def flag(mask, column, what_fn):
        for i in np.flatnonzero(np.asarray(mask, dtype=bool)):
            bad.append(_Bad(int(i), cid.iloc[i], column, what_fn(i)))

    flag(cid == "", "customer_id", lambda i: "empty; every row needs a customer id")

    # Episode.
    if "episode" in raw.columns:
        ep_raw = raw["episode"].str.strip()
        ep = pd.to_numeric(ep_raw.where(ep_raw != "", "0"), errors="coerce")
        ok = ep.notna() & (ep >= 0) & (ep == np.floor(ep))
        flag(~ok, "episode", lambda i: f"{ep_raw.iloc[i]!r} is not a whole number >= 0")
        episode = ep.where(ok, 0).astype(int)
    else:
        episode = pd.Series(np.zeros(n, dtype=int))
    dup = pd.DataFrame({"c": cid, "e": episode}).duplicated(keep="first") & (cid != "")
    flag(dup, "customer_id", lambda i: f"duplicate (customer_id, episode) ({cid.iloc[i]!r}, {episode.iloc[i]}); each episode must appear once")

    # Segment and touch model.
    segment = raw["segment"].str.strip() if "segment" in raw.columns else pd.Series(["all"] * n)
    segment = segment.where(segment != "", "all")
    if segments is not None:
        known = sorted(segments)
        flag(~segment.isin(known), "segment", lambda i: f"unknown segment {segment.iloc[i]!r}; known: {', '.join(known)}")
    touch = raw["touch_model"].str.strip() if "touch_model" in raw.columns else pd.Series([""] * n)

    # ARR.
    if "arr" in raw.columns:
        arr_raw = raw["arr"].str.strip().str.replace(",", "", regex=False)
        arr = pd.to_numeric(arr_raw.where(arr_raw != ""), errors="coerce")
        flag((arr_raw != "") & arr.isna(), "arr", lambda i: f"{raw['arr'].iloc[i]!r} is not a number; ARR must be a number >= 0")
        flag(arr < 0, "arr", lambda i: f"negative ARR {arr.iloc[i]:g}; ARR must be >= 0")
        flag(~np.isfinite(arr.fillna(0)), "arr", lambda i: f"{raw['arr'].iloc[i]!r} is not finite; ARR must be a number >= 0")
    else:
        arr = pd.Series(np.full(n, np.nan))

    # Dates: one format per file (ISO unless date_format), never guessed.
    want = repr(date_format) if date_format else "YYYY-MM-DD"
    dates = {}
    for col in DATE_COLUMNS:
        if col not in raw.columns:
            dates[col] = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns]")
            continue
        parsed = parse_dates(raw[col], date_format)
        text = raw[col].str.strip()
        check_date_format(label, col, text, parsed, date_format)
        flag((text != "") & parsed.isna(), col,
             lambda i, c=col: f"cannot parse {raw[c].iloc[i]!r} as a date; use {want}")
        if col == "signed_date":
            flag(text == "", col, lambda i: "empty; every row needs the date the customer signed (YYYY-MM-DD)")
        dates[col] = parsed
    for later, earlier in _ORDER:
        a, b = dates[later], dates[earlier]
        flag(a < b, later, lambda i, a=a, b=b, la=later, lb=earlier: (
            f"{a.iloc[i].date()} is before {lb} {b.iloc[i].date()}; {la} must be on or after {lb}"
        ))
    matured_only = dates["matured_date"].notna() & dates["onboarded_date"].isna()
    flag(matured_only, "matured_date", lambda i: "given without onboarded_date; maturity follows onboarding")
    has_recovered = dates["recovered_date"].notna() & dates["first_at_risk_date"].isna()
    flag(has_recovered, "recovered_date", lambda i: "given without first_at_risk_date; a recovery ends an at-risk spell")

    # Renewals.
    renew = {}
    for col in ("renewals_due", "renewals_renewed"):
        if col not in raw.columns:
            renew[col] = pd.Series(pd.array([pd.NA] * n, dtype="Int64"))
            continue
        text = raw[col].str.strip()
        v = pd.to_numeric(text.where(text != ""), errors="coerce")
        ok = (text == "") | (v.notna() & (v >= 0) & (v == np.floor(v)))
        flag(~ok, col, lambda i, c=col: f"{raw[c].iloc[i]!r} is not a whole number >= 0")
        renew[col] = v.where(ok).round().astype("Int64")
    over = (renew["renewals_renewed"] > renew["renewals_due"]).fillna(False)
    flag(over, "renewals_renewed", lambda i: (
        f"{renew['renewals_renewed'].iloc[i]} renewed of {renew['renewals_due'].iloc[i]} due; "
        "renewals_renewed must not exceed renewals_due"
    ))
    flag(renew["renewals_renewed"].notna() & renew["renewals_due"].isna(), "renewals_due",
         lambda i: "empty while renewals_renewed is given; give both")

    # Renewal log: one entry per renewal, "DATE OUTCOME [FLAGS]" separated by ";".
    renewal_events = []
    if "renewal_log" in raw.columns:
        for i, text in enumerate(raw["renewal_log"]):
            try:
                for entry in _parse_renewal_log(text, date_format):
                    renewal_events.append((i, *entry))
            except ValueError as exc:
                bad.append(_Bad(i, cid.iloc[i], "renewal_log", str(exc)))

    # Extract date.
    if extract_date is not None:
        try:
            extract = pd.Timestamp(extract_date).normalize()
        except (ValueError, TypeError):
            raise DataError(f"{label}: extract date {extract_date!r} is not a date; use YYYY-MM-DD") from None
    elif "extract_date" in raw.columns:
        ex = parse_dates(raw["extract_date"], date_format)
        check_date_format(label, "extract_date", raw["extract_date"], ex, date_format)
        flag((raw["extract_date"].str.strip() != "") & ex.isna(), "extract_date",
             lambda i: f"cannot parse {raw['extract_date'].iloc[i]!r} as a date; use {want}")
        values = ex.dropna().unique()
        if len(values) > 1:
            raise DataError(
                f"{label}: column 'extract_date' has {len(values)} different dates "
                f"({pd.Timestamp(values.min()).date()} .. {pd.Timestamp(values.max()).date()}); a file has one extract date"
            )
        extract = pd.Timestamp(values[0]) if len(values) else None
    else:
        extract = None
    if extract is None:
        # No extract date given: the latest date stands in for it, but a date after today cannot be in an
        # extract (a typo such as 2099 would otherwise stretch every customer's censoring time).
        today = pd.Timestamp.today().normalize()
        for col in DATE_COLUMNS:
            if col != "observed_from":
                flag(dates[col] > today, col, lambda i, c=col: (
                    f"{dates[c].iloc[i].date()} is after today ({today.date()}) and the file has no extract_date; "
                    "fix the date, or give the extract date (--extract-date or an extract_date column)"
                ))
        known = [d[d <= today] for d in dates.values()]
        latest = max((d.max() for d in known if d.notna().any()), default=pd.NaT)
        if pd.isna(latest):
            raise DataError(f"{label}: no parseable dates; cannot tell the extract date (pass --extract-date)")
        extract = pd.Timestamp(latest)
    for col in DATE_COLUMNS:
        if col == "observed_from":
            continue
        d = dates[col]
        flag(d > extract, col, lambda i, d=d, c=col: (
            f"{d.iloc[i].date()} is after the extract date {extract.date()}; dates must be on or before it"
        ))

    frame = pd.DataFrame(
        {
            "customer_id": cid,
            "episode": episode,
            "segment": segment,
            "touch_model": touch.where(touch != "", "unknown"),
            "arr": arr.astype(float),
            **dates,
            **renew,
        }
    )
    extra = [c for c in raw.columns if c not in frame.columns and c != "extract_date"]
    for c in extra:
        frame[c] = raw[c]

    # Renewals must fall inside the episode: on or after signing, on or before churn and the extract date.
    for i, day, *_ in renewal_events:
        if (pd.notna(dates["signed_date"].iloc[i]) and day < dates["signed_date"].iloc[i]) or day > extract or (
            pd.notna(dates["churn_date"].iloc[i]) and day > dates["churn_date"].iloc[i]
        ):
            bad.append(_Bad(i, cid.iloc[i], "renewal_log", (
                f"renewal on {day.date()} is outside the episode (signed_date .. churn_date or extract date "
                f"{extract.date()})"
            )))

    bad_rows = sorted({b.row for b in bad})
    problems = [_describe(label, b) for b in sorted(bad, key=lambda b: b.row)]
    if bad_rows and not drop_bad_rows:
        first = min(bad, key=lambda b: b.row)
        more = f"{len(bad_rows)} bad row{'s' if len(bad_rows) != 1 else ''} in all"
        raise DataError(f"{_describe(label, first)} ({more}; fix them, or pass --drop-bad-rows to drop them)")
    if bad_rows:
        frame = frame.drop(index=bad_rows)
    frame = frame.reset_index(drop=True)
    if frame.empty:
        raise DataError(f"{label}: every row is bad ({len(bad_rows)} rows); nothing to fit")
    renewals = _renewal_table(renewal_events, cid, episode, set(bad_rows)) if "renewal_log" in raw.columns else None
    return History(frame, label, _sha256(path), extract, dropped=len(bad_rows), problems=problems, renewals=renewals,
                   dropped_lines=[r + 2 for r in bad_rows])


def _parse_renewal_log(text: str, date_format: str | None = None) -> list[tuple]:
    """``"2026-01-10 renewed; 2027-01-10 lost at_risk touched"`` → [(date, renewed, at_risk, onboarding, touched)]."""
    out = []
    for part in str(text).split(";"):
        tokens = part.split()
        if not tokens:
            continue
        try:
            day = pd.Timestamp(
                dt.datetime.strptime(tokens[0], date_format) if date_format else dt.date.fromisoformat(tokens[0])
            ).normalize()
        except ValueError:
            day = pd.NaT
        if pd.isna(day):
            raise ValueError(f"cannot parse {tokens[0]!r} as a date in entry {part.strip()!r}; "
                             "entries are 'YYYY-MM-DD renewed|lost [at_risk] [onboarding] [touched]' separated by ';'"
                             + (f" (dates in {date_format!r})" if date_format else ""))
        if len(tokens) < 2 or tokens[1].lower() not in RENEWAL_OUTCOMES:
            got = repr(tokens[1]) if len(tokens) > 1 else "nothing"
            raise ValueError(f"entry {part.strip()!r}: outcome is {got}; use renewed or lost")
        flags = {t.lower() for t in tokens[2:]}
        unknown = sorted(flags - set(RENEWAL_FLAGS))
        if unknown:
            raise ValueError(f"entry {part.strip()!r}: unknown flag {unknown[0]!r}; flags are {', '.join(RENEWAL_FLAGS)}")
        out.append((day, RENEWAL_OUTCOMES[tokens[1].lower()], *(f in flags for f in RENEWAL_FLAGS)))
    return out


def _renewal_table(events, cid, episode, bad_rows: set) -> pd.DataFrame:
    cols = ["customer_id", "episode", "date", "renewed", *RENEWAL_FLAGS]
    rows = [(cid.iloc[i], int(episode.iloc[i]), day, ok, *fl) for i, day, ok, *fl in events if i not in bad_rows]
    df = pd.DataFrame(rows, columns=cols)
    for c in ("renewed", *RENEWAL_FLAGS):
        df[c] = df[c].astype(int)
    return df


def _describe(label: str, b: _Bad) -> str:
    who = f"customer_id {b.cid!r}" if b.cid else "no customer_id"
    return f"{label}: data row {b.row + 1} (line {b.row + 2}, {who}), column {b.column!r}: {b.what}"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
