"""Write results folders atomically.

A folder is assembled under a hidden temporary name beside the target and
renamed into place only when every file is written, so an interrupted or
failed run never leaves a folder that looks complete. An existing folder is
replaced only with ``force=True``, and only if it is a cssim results folder
(it has a ``manifest.json`` written by cssim) or empty: ``--force`` never
deletes a folder of the user's own.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import yaml

from .errors import CssimError

MANIFEST = "manifest.json"


def _is_results_folder(path: Path) -> bool:
    manifest = path / MANIFEST
    if not manifest.is_file():
        return False
    try:
        return "cssim" in json.loads(manifest.read_text()).get("versions", {})
    except (OSError, ValueError, AttributeError):
        return False


def check_target(out: Path, force: bool) -> None:
    """Refuse early (before any simulation) if ``out`` cannot be written."""
    if out.exists():
        if not out.is_dir():
            raise CssimError(f"{out}: exists and is not a folder; choose another --out")
        if not force:
            raise CssimError(f"{out}: already exists; pass --force to replace it, or choose another --out")
        if any(out.iterdir()) and not _is_results_folder(out):
            raise CssimError(
                f"{out}: exists and is not a cssim results folder (no cssim manifest.json); "
                "refusing to replace it even with --force"
            )


def check_file_target(out: Path, force: bool) -> None:
    """Refuse to overwrite an existing output file unless ``force`` (checked before any work)."""
    if out.exists() and not force:
        raise CssimError(f"{out}: already exists; pass --force to replace it, or choose another --out")


def write_folder(out: str | Path, write: Callable[[Path], None], force: bool = False) -> Path:
    """Create ``out`` by calling ``write(tmp_dir)`` and renaming the finished folder into place."""
    out = Path(out)
    check_target(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        write(tmp)
        if out.exists():
            old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def write_results(results, out: str | Path, force: bool = False, extra: dict[str, str] | None = None) -> Path:
    """Write a results folder: manifest, KPIs with intervals, monthly tables, summary, scenario.

    ``extra`` maps further file names to their text (e.g. ``uncertainty.csv``); it may replace ``summary.txt``.
    """

    def write(tmp: Path) -> None:
        results.kpis().to_csv(tmp / "kpis.csv", index=False)
        results.kpis_by_replication().to_csv(tmp / "kpis_by_replication.csv", index=False)
        results.monthly().to_csv(tmp / "monthly.csv", index=False)
        results.pods_monthly().to_csv(tmp / "monthly_pods.csv", index=False)
        (tmp / "summary.txt").write_text(results.summary() + "\n")
        (tmp / "scenario.yaml").write_text(
            yaml.safe_dump(results.scenario.model_dump(mode="json"), sort_keys=False)
        )
        for name, text in (extra or {}).items():
            (tmp / name).write_text(text)
        # The manifest goes last: its presence marks a complete folder.
        (tmp / MANIFEST).write_text(json.dumps(results.manifest, indent=2, default=str) + "\n")

    return write_folder(out, write, force)
