"""Write results folders atomically, and never replace what a user wrote.

A folder is assembled under a hidden temporary name beside the target
(``.<name>.partial-<pid>-<id>``) and renamed into place only when every file is
written, so an interrupted or failed run never leaves a folder that looks
complete; a partial folder left by a process that was killed (its pid is gone)
is removed by the next write beside it. The manifest lists every file cssim
wrote (``files``). An existing folder is replaced only with ``force=True``,
and only if every file in it is one its manifest lists (or it is empty):
``--force`` never deletes a file of the user's own, and says which one it found.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import yaml

from .errors import CssimError

MANIFEST = "manifest.json"
_PARTIAL = re.compile(r"^\.(?P<name>.+)\.(?:partial|old)-(?P<pid>\d+)-[0-9a-f]{8}$")


def _files(folder: Path) -> list[str]:
    """Every file and link under ``folder``, as sorted POSIX paths relative to it."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir() or p.is_symlink())


def _manifest(path: Path) -> dict | None:
    try:
        data = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) and "cssim" in (data.get("versions") or {}) else None


def _foreign_file(out: Path) -> str | None:
    """The first file in ``out`` that cssim did not write (None: every file is listed in its manifest)."""
    present = _files(out)
    if not present:
        return None
    manifest = _manifest(out)
    if manifest is None:
        return "(no cssim manifest.json)"
    listed = manifest.get("files")
    if not isinstance(listed, list):
        return "(its manifest.json lists no files: written by an older cssim)"
    listed = set(map(str, listed))
    for name in present:
        if name not in listed:
            return name
    return None


def check_target(out: Path, force: bool) -> None:
    """Refuse early (before any simulation) if ``out`` cannot be written."""
    _check_parent(out)
    if out.is_symlink() or out.exists():
        if not out.is_dir() or out.is_symlink():
            raise CssimError(f"{out}: exists and is not a folder; choose another --out")
        if not force:
            raise CssimError(f"{out}: already exists; pass --force to replace it, or choose another --out")
        foreign = _foreign_file(out)
        if foreign == "(no cssim manifest.json)":
            raise CssimError(
                f"{out}: exists and is not a cssim results folder (no cssim manifest.json); "
                "refusing to replace it even with --force"
            )
        if foreign is not None:
            raise CssimError(
                f"{out}: holds {foreign}, which cssim did not write; refusing to replace the folder even with "
                "--force (move that file out, or choose another --out)"
            )


def _check_parent(out: Path, flag: str = "--out") -> None:
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise CssimError(f"{out}: {parent} is not a folder; choose another {flag}")
            return


def check_dir_option(path: Path, flag: str) -> None:
    """Refuse a folder option (``--cache``) that names an existing file, before any work."""
    if path.exists() and not path.is_dir():
        raise CssimError(f"{flag} {path}: exists and is not a folder; give a folder")
    _check_parent(path, flag)


def check_file_target(out: Path, force: bool) -> None:
    """Refuse to overwrite an existing output file unless ``force`` (checked before any work)."""
    _check_parent(out)
    if out.is_dir():
        raise CssimError(f"{out}: is a folder; give a file name for --out")
    if out.exists() and not force:
        raise CssimError(f"{out}: already exists; pass --force to replace it, or choose another --out")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def clean_stale(parent: Path) -> list[Path]:
    """Remove partial folders beside ``parent``'s entries left by cssim processes that no longer run."""
    removed = []
    if not parent.is_dir():
        return removed
    for entry in parent.iterdir():
        m = _PARTIAL.match(entry.name)
        if m and entry.is_dir() and not entry.is_symlink() and not _pid_alive(int(m.group("pid"))):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _list_files(tmp: Path) -> None:
    """Record in the manifest every file the writer put in ``tmp`` (what ``--force`` may later replace)."""
    path = tmp / MANIFEST
    if not path.is_file():
        return
    manifest = json.loads(path.read_text())
    manifest["files"] = sorted(set(_files(tmp)) | {MANIFEST})
    path.write_text(json.dumps(manifest, indent=2, default=str) + "\n")


def add_to_manifest(folder: Path, written: list[Path]) -> None:
    """List files cssim added to a finished folder (e.g. a report and its figures) in its manifest."""
    manifest = _manifest(folder)
    if manifest is None or not isinstance(manifest.get("files"), list):
        return
    folder = folder.resolve()
    names = set(manifest["files"])
    for p in written:
        try:
            names.add(Path(p).resolve().relative_to(folder).as_posix())
        except ValueError:
            continue  # written outside the folder
    manifest["files"] = sorted(names)
    tmp = folder / f".{MANIFEST}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    os.replace(tmp, folder / MANIFEST)


def write_folder(out: str | Path, write: Callable[[Path], None], force: bool = False) -> Path:
    """Create ``out`` by calling ``write(tmp_dir)`` and renaming the finished folder into place."""
    out = Path(out)
    check_target(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(out.parent)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp = out.parent / f".{out.name}.partial-{tag}"
    tmp.mkdir()
    try:
        write(tmp)
        _list_files(tmp)
        if out.exists():
            check_target(out, force)  # a file may have been added while we computed
            old = out.parent / f".{out.name}.old-{tag}"
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
