"""File-system safety rules, each written once: confinement, atomic writes, link-or-copy.

:func:`confine` is the ONE check every path from a spec, a record, an archive or a
server goes through before odrun reads or writes it: the relative path must not be
absolute nor contain ``..``, and after following every link the result must lie
inside ``root.resolve()``. The error says what was wrong:

- a path that leads outside through a link (whoever wrote it: a record, an
  archive, a server, a step, or a link in the user's own folder) is always
  :class:`~odrun.errors.UnsafeMetadataError` (exit 9): nothing is read or written;
- an absolute path or one with ``..`` raises the caller's ``error``:
  ``UnsafeMetadataError`` (the default) for untrusted data (record metadata,
  archive members, a REANA server's file list, a record's own spec), ``SpecError``
  (exit 2) for a spelling the user can fix in their own spec.

:func:`atomic_write` and :func:`place` never write through an existing file: they
write a temp name beside the target and rename it over, so a hard link to the
shared cache at the target is replaced, never modified.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import stat
import tempfile
import uuid
from pathlib import Path, PurePosixPath
from typing import Literal

from odrun.errors import OdrunError, UnsafeMetadataError

LinkMode = Literal["hardlink", "copy"]
#: Linux ioctl that makes a copy-on-write clone (btrfs, xfs, overlay on them)
_FICLONE = 0x40049409


def confine(
    root: Path, rel: str, what: str, *, error: type[OdrunError] = UnsafeMetadataError
) -> Path:
    """``root / rel``, resolved after following links, or an error unless it stays in root.

    ``rel`` must be relative and free of ``..``; ``""`` and ``"."`` name ``root`` itself.
    The result need not exist (a path about to be written): the existing part of it is
    resolved, so a link anywhere on the way that leads out is refused.
    """
    text = str(rel)
    pure = PurePosixPath(text.replace("\\", "/"))
    if "\x00" in text or pure.is_absolute() or ".." in pure.parts or Path(text).is_absolute():
        raise error(
            f"{what} {text!r} must be a relative path inside {root}",
            hint="use a path relative to that folder, without '..'",
        )
    inside = root.resolve()
    target = _below(inside, Path(text).parts)
    if target is not None:
        return target
    try:
        target = (inside / text).resolve()
    except (OSError, RuntimeError) as exc:  # a link loop
        raise UnsafeMetadataError(f"{what} {text!r} cannot be resolved in {root}: {exc}") from None
    if not target.is_relative_to(inside):
        raise UnsafeMetadataError(
            f"{what} {text!r} leads outside {inside} (through a link, to {target})",
            hint="nothing was read or written there; remove the link, or copy the file in",
        )
    return target


def _below(inside: Path, parts: tuple[str, ...]) -> Path | None:
    """``inside`` joined with ``parts`` when no existing one of them is a link, else None.

    What ``resolve()`` gives for such a path, with one ``lstat`` per part below an
    already resolved root (``resolve()`` walks the root's parts again, in Python, for
    every file of a fetch). Once a part is missing the rest cannot exist.
    """
    current = inside
    for part in parts:
        current = current / part
        try:
            if stat.S_ISLNK(os.lstat(current).st_mode):
                return None  # the full resolution decides
        except FileNotFoundError:
            return current.joinpath(*parts[len(current.parts) - len(inside.parts) :])
        except OSError:
            return None
    return current


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never a part.

    The folder is made when it is missing (not tried again on every write: a fetch
    writes one of these per file).
    """
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; cache and mirror files are shareable
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _temp_beside(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.odrun-tmp")


def copy_file(src: Path, dst: Path) -> None:
    """A private copy of ``src`` at new path ``dst`` (a reflink where the file system can)."""
    with src.open("rb") as fin, open(dst, "xb") as fout:
        try:
            fcntl.ioctl(fout.fileno(), _FICLONE, fin.fileno())
            return
        except OSError:
            pass
        shutil.copyfileobj(fin, fout, 4 << 20)
    shutil.copymode(src, dst)


def place(src: Path, dest: Path, *, link: bool = True) -> LinkMode:
    """Make ``dest`` show ``src``'s bytes: a hard link (``link``, same file system) or a
    copy, made under a temp name and renamed over ``dest``: never written through.

    ``dest``'s folder is made when it is missing (one fetch places many files in one
    folder: no ``mkdir`` per file).
    """
    try:
        return _place(src, dest, link)
    except FileNotFoundError:
        # the folder is missing (or the source: then the second try raises it again); never
        # judge by looking at the folder now, another thread may just have made it
        dest.parent.mkdir(parents=True, exist_ok=True)
        return _place(src, dest, link)


def _place(src: Path, dest: Path, link: bool) -> LinkMode:
    tmp = _temp_beside(dest)
    mode: LinkMode = "hardlink"
    try:
        if not link:
            raise OSError(errno.EPERM, "a copy was asked for")
        os.link(src, tmp)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        mode = "copy"
        try:
            copy_file(src, tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    try:
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return mode


def detach(path: Path) -> bool:
    """Replace ``path`` by a private copy if other hard links share its bytes (True if so)."""
    if path.is_symlink() or not path.is_file() or path.stat().st_nlink <= 1:
        return False
    place(path, path, link=False)
    return True


def stage(
    src: Path,
    dst: Path,
    root: Path,
    what: str,
    *,
    error: type[OdrunError] = UnsafeMetadataError,
    skip: frozenset[str] = frozenset({".odrun"}),
) -> list[Path]:
    """Copy file or folder ``src`` (inside ``root``) to ``dst`` (confined by the caller),
    keeping no link.

    A link is followed only when it resolves inside ``root`` (:func:`confine`), and its
    target is copied as a file or folder, so the copy holds no link that leads out (nor
    any link at all); a link to outside, or a folder loop, raises ``error``. Names in
    ``skip`` (odrun's own run folders) are left out at every level. Returns the files
    written.
    """
    inside = root.resolve()
    written: list[Path] = []

    def one(path: Path, to: Path, rel: str, stack: tuple[Path, ...]) -> None:
        real = confine(inside, os.path.relpath(path, inside), what, error=error)
        if to.is_symlink():
            to.unlink()  # an earlier run's link (--from): never write through it
        if real.is_dir():
            if real in stack:
                raise UnsafeMetadataError(f"{what} {rel!r} links to a folder holding it (a loop)")
            to.mkdir(parents=True, exist_ok=True)
            for child in sorted(os.listdir(real)):
                if child not in skip:
                    one(real / child, to / child, f"{rel}/{child}", (*stack, real))
        elif real.is_file():
            to.parent.mkdir(parents=True, exist_ok=True)
            to.unlink(missing_ok=True)  # never write through what was there
            copy_file(real, to)
            shutil.copystat(real, to)
            written.append(to)
        else:
            raise error(f"{what} {rel!r} is not a regular file or folder (or a dangling link)")

    one(src.resolve(), dst, src.name, ())
    return written
