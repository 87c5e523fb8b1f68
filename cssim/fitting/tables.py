"""Read a CSV or Parquet table as text, with one-line errors naming the file.

Cohort tables and acquisition counts are validated cell by cell after
reading, so they are read as strings and parsed by their own modules.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import DataError


def read_text_table(path: Path, expected: str) -> pd.DataFrame:
    """Every cell of ``path`` as a string; ``expected`` says what the file should hold."""
    label = str(path)
    if not path.exists():
        raise DataError(f"{label}: file not found")
    if path.is_dir():
        raise DataError(f"{label}: is a directory, expected {expected} (CSV or Parquet)")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path).astype(str)
        return pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise DataError(f"{label}: file is empty; expected {expected}") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{label}: cannot read file ({str(exc).splitlines()[0]})") from None
