"""CVMFS repositories on this machine: where they are mounted and which snapshot is mounted.

A mounted CVMFS repository exposes its state as extended attributes of any of
its paths (``attr -g revision /cvmfs/cms.cern.ch``): ``user.revision`` (the
catalog revision, a number that grows with every publication) and
``user.root_hash`` (the root catalog's content hash; ``CVMFS_ROOT_HASH=<it>``
mounts exactly that snapshot again). Anything else (a bind mount, a squashfs,
a plain folder) has no such attributes: its revision is ``None`` ("unknown").
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from odrun.errors import UsageError
from odrun.settings import DEFAULT_CVMFS_ROOT, Settings

DEFAULT_ROOT = DEFAULT_CVMFS_ROOT
#: where the open-data analyses' software and conditions live
OPEN_DATA_REPOS = ("cms.cern.ch", "cms-opendata-conddb.cern.ch", "sft.cern.ch")
XATTR_REVISION = "user.revision"
XATTR_ROOT_HASH = "user.root_hash"
#: the pin of a repository whose state is not known
UNKNOWN_PIN: dict[str, str | None] = {"revision": None, "root_hash": None}
_REPO = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+$")


def root(settings: Settings | None = None) -> Path:
    """The folder repositories are mounted under: ``settings.cvmfs_root`` (ODRUN_CVMFS_ROOT,
    default ``/cvmfs``); without ``settings``, as the environment and config file say."""
    return (settings or Settings.load()).cvmfs_root


def check_repo_name(name: str) -> str:
    """``name`` if it is a fully qualified repository name, else UsageError."""
    if not _REPO.fullmatch(name):
        raise UsageError(
            f"CVMFS repository {name!r} is not a fully qualified repository name",
            hint="lowercase, with its domain: e.g. cms.cern.ch, cms-opendata-conddb.cern.ch",
        )
    return name


def read_xattr(path: Path, name: str) -> str | None:
    """The extended attribute ``name`` of ``path`` as text, or None where there is none."""
    try:
        value = os.getxattr(path, name)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EPERM, errno.EACCES, errno.ENOENT):
            return None
        if exc.errno == getattr(errno, "ENOATTR", errno.ENODATA):
            return None
        raise
    text = value.decode("utf-8", "replace").strip().strip("\x00")
    return text or None


@dataclass(frozen=True)
class RepoState:
    """One repository as seen from this machine."""

    name: str
    path: Path
    present: bool
    mountpoint: bool
    revision: str | None
    root_hash: str | None

    def pin(self) -> dict[str, str | None]:
        return {"revision": self.revision, "root_hash": self.root_hash}

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "present": self.present,
            "mountpoint": self.mountpoint,
            **self.pin(),
        }


def probe(name: str, base: Path | None = None) -> RepoState:
    """Look at ``<root>/<name>`` (listing it makes autofs mount a real repository).

    An empty folder that is not a mount point and has no CVMFS attributes is where a
    repository *would* be mounted (the appliance image makes them for the CVMFS client):
    not present.
    """
    path = (base or root()) / name
    try:
        with os.scandir(path) as entries:  # listing triggers the automounter
            first = next(entries, None)
        present = path.is_dir()
    except OSError:
        present = False
    if not present:
        return RepoState(name, path, False, False, None, None)
    mountpoint = os.path.ismount(path)
    revision = read_xattr(path, XATTR_REVISION)
    root_hash = read_xattr(path, XATTR_ROOT_HASH)
    if first is None and not mountpoint and revision is None and root_hash is None:
        return RepoState(name, path, False, False, None, None)
    return RepoState(name, path, True, mountpoint, revision, root_hash)


def declared_repos(reana: dict[str, Any] | None) -> list[str]:
    """The repositories a reana.yaml declares in ``workflow.resources.cvmfs``, in order."""
    workflow = (reana or {}).get("workflow") or {}
    resources = (workflow.get("resources") or {}) if isinstance(workflow, dict) else {}
    repos = (resources.get("cvmfs") or []) if isinstance(resources, dict) else []
    return list(dict.fromkeys(str(r) for r in repos))


def pins(repos: list[str], base: Path | None = None) -> dict[str, dict[str, str | None]]:
    """``{repo: {revision, root_hash}}`` for the lock and the provenance record."""
    return {name: probe(name, base).pin() for name in repos}
