"""Read a CSV or Parquet table as text, with one-line errors naming the file.

Cohort tables and acquisition counts are validated cell by cell after
reading, so they are read as strings and parsed by their own modules.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import DataError
from ..core.files import read_table


def read_text_table(path: Path, expected: str) -> pd.DataFrame:
    """Every cell of ``path`` as a string; ``expected`` says what the file should hold."""
    return read_table(path, expected, error=DataError)


#: What a date in a data file looks like unless ``--date-format`` says otherwise.
ISO_DATES = "ISO 8601 (YYYY-MM-DD)"
_DATE_LIKE = re.compile(r"^\s*\d{1,4}[/.\-]\d{1,2}[/.\-]\d{1,4}(?:[ T].*)?\s*$")


def parse_dates(values: pd.Series, date_format: str | None = None) -> pd.Series:
    """Dates of a text column, read one way: ISO 8601 by default, else ``date_format`` (strftime codes).

    Empty → NaT; a value in another format → NaT too (callers flag it). Never
    guesses: ``05/02/2024`` is not read at all unless a format says whether the day or the month comes first.
    """
    s = values.astype(str).str.strip()
    out = pd.to_datetime(s.where(s != ""), errors="coerce", format=date_format or "ISO8601")
    return out.dt.normalize()


def _shape(value: str) -> str:
    """A date's layout: separators kept, each run of 1-2 digits → ``9``, of 3+ digits → ``9999``."""
    return re.sub(r"\d+", lambda m: "9" if len(m.group()) <= 2 else "9999", value)


def check_date_format(label: str, column: str, text: pd.Series, parsed: pd.Series, date_format: str | None) -> None:
    """Refuse, naming the column and a row, a column whose dates are in another format, or in more than one.

    A value that looks like a date (digits and separators) but does not read
    in the expected format means the format is wrong or mixed — dropping such rows
    would silently lose or misread data, so it is an error even with ``--drop-bad-rows``.
    Other unparseable values (``n/a``) are left for the caller to flag row by row.
    """
    text = text.astype(str).str.strip()
    import datetime as dt

    expected_shape = _shape(dt.date(2024, 12, 25).strftime(date_format) if date_format else "2024-12-25")
    wrong = (text != "") & parsed.isna() & text.map(
        lambda v: bool(_DATE_LIKE.match(v)) and _shape(v.split("T")[0].split(" ")[0]) != expected_shape
    )
    if not wrong.any():
        return
    i = int(np.flatnonzero(wrong.to_numpy())[0])
    expected = f"the format {date_format!r}" if date_format else ISO_DATES
    good = (text != "") & parsed.notna()
    if good.any():
        j = int(np.flatnonzero(good.to_numpy())[0])
        raise DataError(
            f"{label}: column {column!r} mixes date formats: line {j + 2} has {text.iloc[j]!r} ({expected}) but line "
            f"{i + 2} has {text.iloc[i]!r}; write every date one way ({expected}, or pass --date-format)"
        )
    tip = "pass --date-format, e.g. %d/%m/%Y (day first) or %m/%d/%Y (month first)" if not date_format else \
        "check --date-format"
    raise DataError(
        f"{label}: column {column!r}, line {i + 2}: {text.iloc[i]!r} is not in {expected}; dates are read one way, "
        f"never guessed: {tip}"
    )
