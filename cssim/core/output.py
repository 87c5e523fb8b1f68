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

import importlib.metadata
import json
import os
import platform
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from .errors import CssimError

MANIFEST = "manifest.json"
#: Formats a results folder's tables can be written in (``--format``).
TABLE_FORMATS = ("csv", "parquet")
#: Packages whose versions shape results (recorded in every manifest).
PACKAGES = ("cssim", "simpy", "numpy", "scipy", "pandas", "pydantic", "lifelines", "statsmodels", "joblib")
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


def versions() -> dict[str, str]:
    """Versions of Python and the packages that shape results."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def build_manifest(kind: str, **content) -> dict:
    """The one manifest every results folder carries: ``tool``, ``kind``, package ``versions``, then ``content``."""
    return {"tool": "cssim", "kind": kind, **content, "versions": content.get("versions") or versions()}


def check_format(format: str) -> str:
    if format not in TABLE_FORMATS:
        raise CssimError(f"format: {format!r} is not a table format; choose one of {', '.join(TABLE_FORMATS)}")
    return format


def write_table(frame, path: Path, format: str = "csv") -> Path:
    """Write ``frame`` to ``path`` + ``.csv`` or ``.parquet`` (no index); returns the file written."""
    check_format(format)
    path = Path(path)
    path = path.with_name(f"{path.name}.{format}")
    if format == "csv":
        frame.to_csv(path, index=False)
        return path
    import pyarrow as pa

    try:
        frame.to_parquet(path, index=False)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        # A column mixing types (labels and numbers) is written as text, as it reads in the CSV.
        mixed = {c: frame[c].map(lambda v: None if v is None else str(v)) for c in frame.columns
                 if frame[c].dtype == object}
        frame.assign(**mixed).to_parquet(path, index=False)
    return path


def write_tables(out: str | Path, tables, summary: str, manifest: dict, force: bool = False,
                 format: str = "csv", files: dict[str, str] | None = None,
                 extra: Callable[[Path], None] | None = None) -> Path:
    """The one writer of results folders: ``tables`` (stem → DataFrame, or a function returning them, called
    inside the atomic write so that a failure there leaves nothing) as CSV or Parquet, ``summary.txt``, ``files``
    (name → text), whatever ``extra(tmp)`` writes (figures), then ``manifest.json``, atomically."""
    check_format(format)

    def write(tmp: Path) -> None:
        for stem, frame in (tables() if callable(tables) else tables).items():
            write_table(frame, tmp / stem, format)
        (tmp / "summary.txt").write_text(summary.rstrip("\n") + "\n")
        for name, text in (files or {}).items():
            (tmp / name).write_text(text)
        if extra is not None:
            extra(tmp)
        # The manifest goes last: its presence marks a complete folder.
        body = {**manifest, "format": format}
        (tmp / MANIFEST).write_text(json.dumps(body, indent=2, default=str) + "\n")

    return write_folder(out, write, force)


def write_results(results, out: str | Path, force: bool = False, extra: dict[str, str] | None = None,
                  format: str = "csv") -> Path:
    """Write a results folder (:meth:`cssim.SimulationResults.to_folder`): manifest, KPIs with intervals, monthly
    tables, summary, scenario. ``extra`` maps further file names to their text; it may replace ``summary.txt``."""
    return results.to_folder(out, force=force, format=format, files=extra)
