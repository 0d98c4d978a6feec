"""Disk full: ENOSPC and EDQUOT become one :class:`~odrun.errors.DiskFullError`.

The message names the filesystem that is full (its mount point, and the folder
written to), how much was needed and how much is free, so that the fix (free
space there, or point ``ODRUN_CACHE_DIR`` / ``--dest`` elsewhere) is obvious.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from odrun.errors import DiskFullError

#: errno values that mean "this filesystem (or quota) is full"
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in NO_SPACE


def mount_point(path: Path) -> Path:
    """The mount point of the filesystem ``path`` is (or would be) on."""
    current = Path(os.path.abspath(path))
    while not current.exists() and current != current.parent:
        current = current.parent
    while not os.path.ismount(current) and current != current.parent:
        current = current.parent
    return current


def disk_full(
    exc: OSError, path: Path, needed: int | None, what: str, *, hint: str | None = None
) -> DiskFullError:
    """The one translation of ENOSPC/EDQUOT while writing ``path`` (for ``what``)."""
    from odrun.render import human_size  # noqa: PLC0415 - only on this error path

    where = mount_point(path)
    try:
        free = human_size(shutil.disk_usage(where).free)
    except OSError:
        free = "?"
    need = f"{human_size(needed)} needed" if needed is not None else "more space needed"
    full = "quota exceeded" if exc.errno == errno.EDQUOT else "no space left"
    folder = path.parent if path.name else path
    return DiskFullError(
        f"{full} on {where} (writing {what} in {folder}): {need}, {free} free",
        hint=hint or f"free space on {where} or write elsewhere",
    )
