"""What a container job left in the host folders it could write, checked before the host
reads them.

A job in a container may write anything into the folders bound read-write into it; the
engine then reads those folders **on the host**: cwltool collects outputs (``glob``,
``loadContents``, checksums) and binds the files it found into the next job (it follows
symlinks first), yadage's publishers read files a job wrote. A symlink the job made
(``ln -s /home/me/.ssh/id_rsa out``) would then read a host file; a device node or a FIFO
would read a disk or hang the engine. So after every job the shims
(:mod:`odrun.workflow.oci_shim`, :mod:`odrun.workflow.docker_shim`) call
:func:`remove_escapes` on each read-write bind: such entries are removed and the job
fails with one line naming them; set-user/group-id bits are cleared.

Standard library only: the shims load this file by its path (they run with ``-I``).
"""

from __future__ import annotations

import csv
import os
import stat

#: exit code of a job that left something it must not (docker's "cannot run" family)
ESCAPED = 125


def inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def remove_escapes(folder: str) -> list[str]:
    """Remove from ``folder`` (a job's read-write bind, walked without following links)
    every symlink that leads outside it once resolved on the host, and every entry that is
    not a file, a folder or such a link (devices, FIFOs, sockets); one line per entry
    removed. Set-user/group-id bits are cleared on the files left."""
    root = os.path.realpath(folder)
    if not os.path.isdir(root):
        return []
    removed: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            mode = info.st_mode
            if stat.S_ISLNK(mode):
                target = os.path.realpath(path)
                if inside(target, root):
                    continue
                why = f"a link to {os.readlink(path)}, outside its folder"
            elif stat.S_ISDIR(mode) or stat.S_ISREG(mode):
                if mode & (stat.S_ISUID | stat.S_ISGID):
                    os.chmod(path, stat.S_IMODE(mode) & ~(stat.S_ISUID | stat.S_ISGID))
                continue
            else:
                why = "not a file, a folder or a link (a device, FIFO or socket)"
            os.unlink(path)
            if name in dirnames:
                dirnames.remove(name)
            removed.append(f"{os.path.relpath(path, root)}: {why}")
    return removed


def report(job: str, removed: list[str]) -> str:
    """The one line a job that left escapes fails with."""
    more = f" (and {len(removed) - 1} more)" if len(removed) > 1 else ""
    return f"odrun: the job {job} left {removed[0]}{more}; removed, the job fails"


def mount_source(value: str) -> tuple[str, bool] | None:
    """(source, writable) of a ``--mount`` value that binds a host path, else None
    (cwltool quotes it as CSV when a path holds a comma)."""
    fields = next(csv.reader([value]), [])
    options = {key: value for key, _, value in (f.partition("=") for f in fields)}
    if options.get("type", "volume") != "bind":
        return None
    source = options.get("source") or options.get("src")
    if not source:
        return None
    readonly = "readonly" in options or options.get("ro") in ("", "true", "1")
    return source, not readonly


def volume_source(value: str) -> tuple[str, bool] | None:
    """(source, writable) of a ``-v SRC:DST[:OPTIONS]`` value binding a host path."""
    parts = value.split(":")
    if len(parts) < 2 or not os.path.isabs(parts[0]):
        return None
    options = parts[2].split(",") if len(parts) > 2 else []
    return parts[0], "ro" not in options
