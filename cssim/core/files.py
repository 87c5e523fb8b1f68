"""Opening what a user named: only regular files, never a FIFO, a device or a symlink loop.

Reading ``/dev/zero`` or a named pipe would never end, and a symbolic link loop
would surface as an obscure OS error; every reader of user files (scenarios,
histories, cohort tables, books, curves and forecast files) checks here first
and fails in one line.
"""

from __future__ import annotations

from pathlib import Path

from .errors import CssimError

__all__ = ["regular_file"]


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
