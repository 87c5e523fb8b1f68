"""Reading ``curves.json`` (``cssim fit``'s output): the loader resolves a scenario's fitted references with it.

It lives in the model layer because scenarios read it; :mod:`cssim.fitting.curvesfile` writes it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..core.errors import DataError
from ..core.files import regular_file

__all__ = ["FORMAT", "MAX_JSON_BYTES", "load_curves", "read_curve"]

FORMAT = "cssim-curves/1"

_CACHE: dict[tuple[str, int], tuple[str, dict]] = {}


#: Largest curves file read (bytes); bootstrap sets make them large, not this large.
MAX_JSON_BYTES = 200_000_000


def load_curves(path) -> dict:
    """Read a ``curves.json``; raises :class:`DataError` (one line) if it is missing or not a curves file."""
    p = Path(path)
    if not p.exists() and not p.is_symlink():
        raise DataError(f"{path}: curves file not found")
    regular_file(p, str(path), "a curves file written by cssim fit", error=DataError, max_bytes=MAX_JSON_BYTES)
    key = (str(p.resolve()), p.stat().st_mtime_ns)
    if key not in _CACHE:
        raw = p.read_bytes()
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: not a cssim curves file (not JSON: {exc})") from None
        except RecursionError:
            raise DataError(f"{path}: not a cssim curves file (nested too deeply)") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("curves"), dict):
            raise DataError(f"{path}: not a cssim curves file (no 'format: {FORMAT}'); write one with `cssim fit HISTORY`")
        _CACHE.clear()
        _CACHE[key] = (hashlib.sha256(raw).hexdigest(), data)
    digest, data = _CACHE[key]
    return {**data, "sha256": digest}


def read_curve(path, key: str) -> tuple[dict, str]:
    """The curve spec stored under ``key`` in a curves file, and the file's sha256."""
    data = load_curves(path)
    curves = data["curves"]
    if key not in curves:
        raise DataError(f"{path}: no curve {key!r}; the file has: {', '.join(sorted(curves)) or 'none'}")
    spec = curves[key].get("spec")
    if not isinstance(spec, dict) or spec.get("family") in (None, "fitted"):
        raise DataError(f"{path}: curve {key!r} has no usable spec")
    return spec, data["sha256"]
