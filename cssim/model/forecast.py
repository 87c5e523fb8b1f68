"""Read acquisition forecast files (JSON) for scenarios.

A forecast file is written by :func:`cssim.fitting.acquisition.write_forecast`;
a scenario segment points at it with ``acquisition: {file: ..., key: smb}``.
Reading is kept here, light and free of statsmodels, so that validating a
scenario resolves the file once into per-month paths and the engine never
touches the disk.

Format (``format: cssim.acquisition_forecast``, ``version: 1``)::

    {"segments": {"smb": {"start": "2027-01", "months": 36,
                          "mean": [...], "lo": [...], "hi": [...],
                          "paths": [[...36 values...], ...], ...}}}

``paths`` are simulated monthly new-logo counts (one list per path);
``start`` is the calendar month of the first value.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from functools import lru_cache
from pathlib import Path

from ..core.errors import CssimError
from ..core.files import regular_file

FORMAT = "cssim.acquisition_forecast"
VERSION = 1


def month_index(month: str | dt.date) -> int:
    """Months since year 0 of a ``YYYY-MM`` string or a date (day ignored)."""
    if isinstance(month, dt.date):
        return month.year * 12 + month.month - 1
    y, m = str(month).split("-")[:2]
    return int(y) * 12 + int(m) - 1


def month_label(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


@lru_cache(maxsize=32)
def _read(path: str, mtime_ns: int) -> tuple[str, dict]:
    raw = Path(path).read_bytes()
    return hashlib.sha256(raw).hexdigest(), json.loads(raw)


def read_forecast(file: str | Path, key: str) -> dict:
    """Return ``{"start", "paths", "sha256"}`` for segment ``key`` of a forecast file.

    Raises ``ValueError`` with a one-line message (the scenario loader adds
    the file and field it came from).
    """
    path = Path(file)
    if not path.exists() and not path.is_symlink():
        raise ValueError(f"acquisition forecast file {str(file)!r} not found")
    try:
        regular_file(path, str(file), "an acquisition forecast written by cssim forecast-acquisition")
    except CssimError as exc:
        raise ValueError(str(exc)) from None
    try:
        digest, data = _read(str(path.resolve()), path.stat().st_mtime_ns)
    except RecursionError:
        raise ValueError(f"{file}: cannot read acquisition forecast (nested too deeply)") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{file}: cannot read acquisition forecast ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{file}: not a cssim acquisition forecast (no 'format: {FORMAT}')")
    segments = data.get("segments") or {}
    if key not in segments:
        raise ValueError(f"{file}: no forecast for key {key!r}; the file has: {', '.join(sorted(segments)) or 'none'}")
    seg = segments[key]
    paths = seg.get("paths")
    if not paths or not all(isinstance(p, list) and len(p) == len(paths[0]) for p in paths):
        raise ValueError(f"{file}: forecast {key!r} has no simulated paths of equal length")
    try:
        month_index(seg["start"])
    except (KeyError, ValueError):
        raise ValueError(f"{file}: forecast {key!r} has no valid 'start' month (YYYY-MM)") from None
    try:
        values = [[float(x) for x in p] for p in paths]
    except (TypeError, ValueError):
        raise ValueError(f"{file}: forecast {key!r} has a path value that is not a number") from None
    if not all(math.isfinite(x) and x >= 0 for p in values for x in p):
        raise ValueError(f"{file}: forecast {key!r} has a path value that is negative or not finite; "
                         "new logos per month are finite numbers >= 0")
    return {"start": seg["start"], "paths": values, "sha256": digest}
