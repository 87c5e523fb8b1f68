"""Opening what a user named: only regular files, never a FIFO, a device or a symlink loop.

Reading ``/dev/zero`` or a named pipe would never end, and a symbolic link loop
would surface as an obscure OS error; every reader of user files (scenarios,
histories, cohort tables, books, curves and forecast files) checks here first
and fails in one line.
"""

from __future__ import annotations

from pathlib import Path

from .errors import CssimError

__all__ = ["PARQUET_SUFFIXES", "read_table", "regular_file"]

#: File suffixes read as Parquet; anything else is read as CSV.
PARQUET_SUFFIXES = (".parquet", ".pq")


def regular_file(path: Path, label: str, expected: str, error=CssimError, max_bytes: int | None = None) -> None:
    """Refuse, in one line, anything but a readable regular file: missing, a symlink loop, a directory,
    a FIFO, a device or socket, or a file over ``max_bytes`` (so nothing blocks or reads without end)."""
    import errno
    import os
    import stat

    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise error(f"{label}: is a symbolic link loop; expected {expected}") from None
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise error(f"{label}: file not found") from None
        raise error(f"{label}: cannot read file ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{label}: is a directory, expected {expected}")
    if not stat.S_ISREG(st.st_mode):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else (
            "a device file" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file"
        )
        raise error(f"{label}: is {kind}, expected {expected}")
    if max_bytes is not None and st.st_size > max_bytes:
        raise error(f"{label}: is {st.st_size:,} bytes; expected {expected} of at most {max_bytes:,} bytes")


def read_table(path, expected: str, error=CssimError, text: bool = True):
    """The one reader of users' CSV and Parquet tables (histories, books, cohort tables, counts, back-tests).

    With ``text`` every cell is a string and a missing value is ``""`` in either format (Parquet dates as
    ``YYYY-MM-DD``), so the caller's own parser sees one representation and names the row it refuses; without
    it, pandas' types. Any failure is one ``error`` line naming the file and ``expected`` (what it should hold).
    """
    import pandas as pd

    path = Path(path)
    label = str(path)
    regular_file(path, label, f"{expected} (CSV or Parquet)", error=error)
    try:
        if path.suffix.lower() in PARQUET_SUFFIXES:
            df = pd.read_parquet(path)
            if not text:
                return df
            out = pd.DataFrame(index=df.index)
            for c in df.columns:
                col = df[c]
                if pd.api.types.is_datetime64_any_dtype(col):
                    out[c] = col.dt.strftime("%Y-%m-%d").fillna("")
                else:
                    out[c] = col.astype(object).where(col.notna(), "").astype(str)
            return out.reset_index(drop=True)
        if text:
            return pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
        return pd.read_csv(path, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise error(f"{label}: file is empty; expected {expected}") from None
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise error(f"{label}: cannot read as CSV or Parquet ({str(exc).splitlines()[0]})") from None
