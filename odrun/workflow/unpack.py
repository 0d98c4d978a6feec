"""Unpack a record's code archive (``.tar.gz``, ``.tgz``, ``.tar``, ``.zip``): untrusted bytes.

Rules (docs/security.md, "Workspaces, archives and untrusted analyses"):

- every member name goes through :func:`odrun._fs.confine`: no absolute path, no
  ``..``, nothing that leads out after links are followed; names under ``.odrun/``
  (odrun's own folder) are refused too;
- only regular files and folders: a link, device or fifo member is refused;
- members are extracted into a fresh, empty folder, each file created new
  (``O_EXCL``, a repeated name is unlinked first), then moved into place with a
  rename: nothing is ever written through an existing file, so a member named like
  a fetched file (a hard link to the shared cache) cannot change the cache;
- limits on the bytes really written (headers can lie), on the ratio of bytes
  written to the archive's size and on the member count (Settings
  ``unpack_max_bytes``, ``unpack_max_ratio``, ``unpack_max_members``; env
  ``ODRUN_UNPACK_MAX_*``); past one, nothing is kept and the error (exit 9) names
  the numbers.
"""

from __future__ import annotations

import contextlib
import lzma
import os
import shutil
import stat
import tarfile
import uuid
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from odrun._fs import confine
from odrun.errors import MetadataError, UnsafeMetadataError
from odrun.settings import Settings
from odrun.transfer.space import disk_full, is_disk_full

CHUNK = 1 << 20
#: the ratio limit applies once this much is written (tiny archives compress well too)
RATIO_FLOOR = 1 << 20
RESERVED = ".odrun"


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_ratio: float
    max_members: int

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(
            settings.unpack_max_bytes, settings.unpack_max_ratio, settings.unpack_max_members
        )


class _Budget:
    """Counts members and bytes written; raises UnsafeMetadataError past a limit."""

    def __init__(self, archive: Path, limits: Limits) -> None:
        self.archive = archive
        self.limits = limits
        self.size = max(archive.stat().st_size, 1)
        self.members = 0
        self.written = 0

    def _refuse(self, what: str) -> UnsafeMetadataError:
        return UnsafeMetadataError(
            f"{self.archive.name} ({self.size:,} bytes) {what}: refusing to unpack it "
            "(an archive bomb?); nothing was kept",
            hint="if the archive is genuine, raise ODRUN_UNPACK_MAX_BYTES, "
            "ODRUN_UNPACK_MAX_RATIO or ODRUN_UNPACK_MAX_MEMBERS",
        )

    def member(self) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise self._refuse(f"has more than {self.limits.max_members:,} members")

    def add(self, n: int) -> None:
        self.written += n
        if self.written > self.limits.max_bytes:
            raise self._refuse(
                f"unpacks to more than {self.limits.max_bytes:,} bytes "
                f"({self.written:,} written so far)"
            )
        ratio = self.written / self.size
        if self.written > RATIO_FLOOR and ratio > self.limits.max_ratio:
            raise self._refuse(
                f"unpacks to more than {self.limits.max_ratio:g} times its size "
                f"({self.written:,} bytes written so far, ratio {ratio:.0f})"
            )


def _member_path(root: Path, name: str, archive: Path) -> Path | None:
    """Where member ``name`` goes under ``root`` (None: the root itself, e.g. ``./``)."""
    pure = PurePosixPath(name)
    what = f"{archive.name}: member"
    if RESERVED in pure.parts:
        raise UnsafeMetadataError(f"{what} {name!r} is inside odrun's own {RESERVED}/ folder")
    try:
        path = confine(root, name, what)
    except UnsafeMetadataError:
        raise UnsafeMetadataError(
            f"{what} {name!r} would escape the folder it is unpacked into "
            "(an absolute path, '..' or a link): nothing was kept"
        ) from None
    return None if path == root.resolve() else path


def _write(stream: IO[bytes], path: Path, budget: _Budget) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.exists():
        if path.is_dir() and not path.is_symlink():
            raise UnsafeMetadataError(f"{budget.archive.name}: {path.name} is a folder and a file")
        path.unlink()  # a repeated member: a new file, never written through
    with open(path, "xb") as out:
        while chunk := stream.read(CHUNK):
            budget.add(len(chunk))
            out.write(chunk)


def _unpack_zip(archive: Path, root: Path, budget: _Budget) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        if len(infos) > budget.limits.max_members:
            budget.members = len(infos) - 1
            budget.member()
        for info in infos:
            budget.member()
            path = _member_path(root, info.filename, archive)
            kind = stat.S_IFMT(info.external_attr >> 16)
            if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):  # a unix link, device, fifo
                raise MetadataError(f"{archive.name}: member {info.filename} is a link or device")
            if path is None:
                continue
            if info.is_dir():
                path.mkdir(parents=True, exist_ok=True)
                continue
            with zf.open(info) as stream:
                _write(stream, path, budget)


def _unpack_tar(archive: Path, root: Path, budget: _Budget) -> None:
    with tarfile.open(archive) as tf:
        for member in tf:  # streamed: headers are read one at a time
            budget.member()
            path = _member_path(root, member.name, archive)
            if member.issym() or member.islnk() or member.isdev():
                raise MetadataError(f"{archive.name}: member {member.name} is a link or device")
            if not (member.isfile() or member.isdir()):
                raise MetadataError(f"{archive.name}: member {member.name} is not a file")
            if path is None:
                continue
            if member.isdir():
                path.mkdir(parents=True, exist_ok=True)
                continue
            stream = tf.extractfile(member)
            assert stream is not None  # a regular file
            with stream:
                _write(stream, path, budget)


@contextmanager
def _fresh_folder(parent: Path) -> Iterator[Path]:
    """A new empty folder under ``parent``; removed afterwards (and ``parent`` if it was
    made for it and is empty again)."""
    made = not parent.exists()
    folder = parent / f"unpack-{uuid.uuid4().hex}"
    folder.mkdir(parents=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if made:
            with contextlib.suppress(OSError):
                parent.rmdir()


def _move_into(src: Path, dest: Path) -> None:
    """Rename every file of fresh folder ``src`` to the same place under ``dest``."""
    for here, dirs, files in os.walk(src):
        rel = os.path.relpath(here, src)
        for name in dirs:
            confine(dest, os.path.normpath(os.path.join(rel, name)), "unpacked folder").mkdir(
                parents=True, exist_ok=True
            )
        for name in files:
            target = confine(dest, os.path.normpath(os.path.join(rel, name)), "unpacked file")
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)  # an earlier unpack's folder of that name
            os.replace(Path(here) / name, target)  # replaces a name, never writes through


#: what tarfile and zipfile raise on a corrupt or hostile archive: bad headers, bad
#: compressed data, encrypted members (RuntimeError), unknown compression methods
#: (NotImplementedError), members that clash with each other on disk (OSError)
_UNREADABLE = (
    tarfile.TarError,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    OSError,
    RuntimeError,
    NotImplementedError,
    ValueError,
    zlib.error,
    lzma.LZMAError,
)


def unpack(archive: Path, dest: Path, limits: Limits, scratch: Path) -> None:
    """Unpack ``archive`` into ``dest`` through a fresh folder under ``scratch`` (same file
    system as ``dest``); raise UnsafeMetadataError/MetadataError and keep nothing when a
    member is unsafe or a limit is passed."""
    budget = _Budget(archive, limits)
    try:
        with _fresh_folder(scratch) as fresh:
            if archive.name.endswith(".zip"):
                _unpack_zip(archive, fresh, budget)
            else:
                _unpack_tar(archive, fresh, budget)
            _move_into(fresh, dest)
    except _UNREADABLE as exc:
        if is_disk_full(exc):
            raise disk_full(exc, dest, None, f"unpacking {archive.name}") from None  # type: ignore[arg-type]
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise MetadataError(f"{archive.name} is not a readable archive: {detail}") from None
