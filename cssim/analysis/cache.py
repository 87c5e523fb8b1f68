"""A content-addressed store of finished replication batches, so long sweeps can resume.

A batch is stored under a hash of what decides its numbers: the resolved
scenario (without ``replications``, which only says how many to run, and
without ``sweep``), the replication ids of the batch and the cssim version.
Rerunning a sweep looks each batch up first and computes only what is missing;
an unrelated change (another point, more replications) never invalidates a
stored batch, and any change to the scenario's content gives a new key.

Each file is written to a temporary name in the same folder and renamed into
place, so an interrupted write never leaves a truncated batch under a real
key. Each file carries a SHA-256 of its arrays (names, dtypes, shapes, bytes);
a file that cannot be read, lacks the checksum or does not match it (an array
removed, values changed) is treated as missing: deleted and recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._version import __version__
from ..model.scenario import Scenario

__all__ = ["BatchCache", "DEFAULT_CACHE_NAME", "batch_key"]

DEFAULT_CACHE_NAME = ".cssim-cache"
_SEP = "::"
_CHECKSUM = "__sha256__"


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 of named arrays: names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def batch_key(scenario: Scenario, reps: Sequence[int]) -> str:
    """Content hash of one batch: resolved scenario (minus run size and sweep), replication ids, version."""
    content = scenario.model_dump(mode="json", exclude={"replications", "sweep", "sensitivity"})
    payload = json.dumps(
        {"scenario": content, "reps": [int(r) for r in reps], "cssim": __version__},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()


class BatchCache:
    """Finished batches under ``root/<key[:2]>/<key>.npz``.

    Attributes
    ----------
    hits, writes : int
        Batches found and batches stored through this object.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.hits = 0
        self.writes = 0

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def get(self, scenario: Scenario, reps: Sequence[int]) -> list[dict] | None:
        """The per-replication ledger arrays of a stored batch, or None."""
        path = self.path(batch_key(scenario, reps))
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
            stored = str(arrays.pop(_CHECKSUM))
            if stored != _checksum(arrays):
                raise ValueError("checksum mismatch")
            stacked: dict[str, dict[str, np.ndarray]] = {}
            for name, array in arrays.items():
                group, series = name.split(_SEP, 1)
                stacked.setdefault(group, {})[series] = array
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
            path.unlink(missing_ok=True)  # damaged or from an older cssim: recompute
            return None
        n = len(reps)
        if any(a.shape[0] != n for series in stacked.values() for a in series.values()):
            path.unlink(missing_ok=True)
            return None
        self.hits += 1
        return [{g: {s: a[i] for s, a in series.items()} for g, series in stacked.items()} for i in range(n)]

    def put(self, scenario: Scenario, reps: Sequence[int], per_rep: list[dict]) -> Path:
        """Store a finished batch atomically (temporary file, then rename)."""
        path = self.path(batch_key(scenario, reps))
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {
            f"{group}{_SEP}{name}": np.stack([rep[group][name] for rep in per_rep])
            for group, series in per_rep[0].items()
            for name in series
        }
        tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays, **{_CHECKSUM: np.array(_checksum(arrays))})
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        self.writes += 1
        return path

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("*/*.npz")) if self.root.exists() else 0
