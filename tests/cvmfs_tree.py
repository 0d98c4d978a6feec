"""A CVMFS-like repository for the tests: a read-only tree mounted at ``/cvmfs/<repo>``.

No CVMFS client can run here (CERN's servers are unreachable), so the tests
mount what a client would show: a squashfs image (``mksquashfs``) mounted
read-only with ``squashfuse``, carrying the ``user.revision`` and
``user.root_hash`` extended attributes a real repository exposes (squashfs keeps
``user.`` xattrs and squashfuse serves them). Where FUSE is not usable, a
read-only bind mount of the source folder (ext4 keeps the xattrs too).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = "odrun-test.cern.ch"
REVISION = "4242"
ROOT_HASH = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c"
HELLO = "hello from cvmfs\n"
CVMFS = Path("/cvmfs")


@dataclass(frozen=True)
class Mounted:
    path: Path
    how: str  # "squashfuse" or "bind"


def unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "mounting at /cvmfs needs root"
    if shutil.which("mount") is None:
        return "no mount command"
    return None


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def _wait_mounted(path: Path, deadline_s: float = 20.0) -> bool:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if os.path.ismount(path):
            return True
        time.sleep(0.05)
    return False


def _source(folder: Path) -> Path:
    src = folder / "src"
    (src / "bin").mkdir(parents=True)
    (src / "hello.txt").write_text(HELLO)
    (src / "bin" / "setup.sh").write_text("export ODRUN_TEST_CVMFS=1\n")
    os.setxattr(src, "user.revision", REVISION.encode())
    os.setxattr(src, "user.root_hash", ROOT_HASH.encode())
    return src


def _squashfuse(src: Path, image: Path, mountpoint: Path) -> str | None:
    if not (shutil.which("mksquashfs") and shutil.which("squashfuse")):
        return "mksquashfs/squashfuse not installed"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    made = _run("mksquashfs", str(src), str(image), "-xattrs", "-noappend", "-quiet")
    if made.returncode != 0:
        return f"mksquashfs failed: {made.stderr.strip()[-200:]}"
    mounted = _run("squashfuse", "-o", "ro", str(image), str(mountpoint))
    if mounted.returncode != 0 or not _wait_mounted(mountpoint):
        return f"squashfuse failed: {mounted.stderr.strip()[-200:]}"
    return None


def _unmount(path: Path) -> None:
    for argv in (("fusermount", "-u", str(path)), ("umount", str(path))):
        if shutil.which(argv[0]) and _run(*argv).returncode == 0:
            break
    deadline = time.monotonic() + 20
    while os.path.ismount(path) and time.monotonic() < deadline:
        _run("umount", "-l", str(path))
        time.sleep(0.05)


@contextmanager
def mounted_repo(workdir: Path, repo: str = REPO) -> Iterator[Mounted]:
    """Mount the test repository at /cvmfs/<repo>; unmount and tidy up afterwards."""
    created_root = not CVMFS.exists()
    mountpoint = CVMFS / repo
    if os.path.ismount(mountpoint):  # left by an interrupted earlier run
        _unmount(mountpoint)
    mountpoint.mkdir(parents=True, exist_ok=True)
    if any(mountpoint.iterdir()):
        raise RuntimeError(f"{mountpoint} is not empty: not a test repository; remove it")
    src = _source(workdir)
    how = "squashfuse"
    try:
        why = _squashfuse(src, workdir / "repo.sqfs", mountpoint)
        if why is not None:
            how = "bind"
            for argv in (
                ("mount", "--bind", str(src), str(mountpoint)),
                ("mount", "-o", "remount,bind,ro", str(mountpoint)),
            ):
                done = _run(*argv)
                if done.returncode != 0:
                    raise RuntimeError(f"{why}; and {' '.join(argv)} failed: {done.stderr.strip()}")
        yield Mounted(mountpoint, how)
    finally:
        _unmount(mountpoint)
        if not os.path.ismount(mountpoint):
            mountpoint.rmdir()
            if created_root and not any(CVMFS.iterdir()):
                CVMFS.rmdir()
