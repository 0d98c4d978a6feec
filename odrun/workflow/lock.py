"""``odrun.lock``: what a run read, pinned, and the drift check behind ``odrun run --locked``.

The lock lists each record (recid, DOI, portal revision and update time) with
every file the analysis selected (URI, size, checksum), the step images, the
revision and root hash of each CVMFS repository the spec declares (recorded, not
enforced by ``--locked``: repositories publish many times a day; mount a pinned
snapshot with ``CVMFS_ROOT_HASH``), and the tool versions. It is sorted JSON, so it
diffs well under version control.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from odrun import cvmfs, untrusted
from odrun.errors import LockError
from odrun.records.cache import atomic_write

if TYPE_CHECKING:
    from odrun.workflow.runner import RunResult
    from odrun.workflow.spec import Analysis

NAME = "odrun.lock"
LOCK_FORMAT_VERSION = 1


def build(result: RunResult, analysis: Analysis) -> dict[str, Any]:
    from odrun.workflow.runner import run_tools, tool_versions  # noqa: PLC0415 - cycle

    records = []
    for record in result.records:
        files = result.selected.get(record.recid, [])
        records.append(
            {
                "recid": record.recid,
                "doi": record.doi,
                "revision": record.revision,
                "updated": record.updated,
                "files": [
                    {
                        "path": f.path,
                        # a mirror's file:// location is machine-specific: not pinned
                        "uri": None if f.uri.startswith("file:") else f.uri,
                        "size": f.size,
                        "checksum": str(f.checksum) if f.checksum else None,
                    }
                    for f in files
                ],
            }
        )
    steps = analysis.steps if analysis.workflow_type == "serial" else []
    images = sorted(
        {str(s["environment"]) for s in steps if s.get("environment")} | set(result.images)
    )
    return {
        "format_version": LOCK_FORMAT_VERSION,
        "analysis": analysis.name,
        "records": records,
        "images": [
            {"name": name, "digest": result.image_digests.get(name) or _named_digest(name)}
            for name in images
        ],
        "cvmfs": cvmfs.pins(cvmfs.declared_repos(analysis.reana)),
        "tools": tool_versions(run_tools(analysis, result.runtime)),
    }


def _named_digest(image: str) -> str | None:
    return image.split("@", 1)[1] if "@" in image else None


def write(path: Path, lock: dict[str, Any]) -> None:
    atomic_write(path, (json.dumps(lock, indent=2, sort_keys=True) + "\n").encode())


def check(path: Path, current: dict[str, Any]) -> None:
    """Raise LockError naming what differs between ``path`` and the inputs about to be used."""
    try:
        pinned = untrusted.load_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LockError(
            f"--locked but there is no {path}", hint="run once without --locked to write it"
        ) from None
    except ValueError as exc:
        raise LockError(f"{path} is not valid JSON: {exc}") from None
    try:
        drift = list(_differences(pinned, current))
    except (AttributeError, KeyError, TypeError):
        raise LockError(
            f"{path} is not an odrun lock file", hint="delete it and run again"
        ) from None
    if drift:
        more = f" (and {len(drift) - 3} more)" if len(drift) > 3 else ""
        raise LockError(
            f"inputs drifted from {path.name}: {'; '.join(drift[:3])}{more}",
            hint="review the change, then run without --locked to update the lock",
        )


def _differences(pinned: dict[str, Any], current: dict[str, Any]) -> list[str]:
    out = []
    old = {r["recid"]: r for r in pinned.get("records", [])}
    new = {r["recid"]: r for r in current.get("records", [])}
    for recid in sorted(old.keys() - new.keys()):
        out.append(f"record {recid} no longer used")
    for recid in sorted(new.keys() - old.keys()):
        out.append(f"record {recid} is not in the lock")
    for recid in sorted(old.keys() & new.keys()):
        was, now = old[recid].get("revision"), new[recid].get("revision")
        if was is not None and now is not None and was != now:
            out.append(f"record {recid}: revision {was} -> {now}")
        before = {f["path"]: f for f in old[recid].get("files", [])}
        after = {f["path"]: f for f in new[recid].get("files", [])}
        for path in sorted(before.keys() - after.keys()):
            out.append(f"record {recid}: file {path} gone")
        for path in sorted(after.keys() - before.keys()):
            out.append(f"record {recid}: new file {path}")
        for path in sorted(before.keys() & after.keys()):
            for key in ("uri", "size", "checksum"):
                if before[path].get(key) != after[path].get(key):
                    out.append(
                        f"record {recid}: {path} {key} "
                        f"{before[path].get(key)} -> {after[path].get(key)}"
                    )
    old_images = {i["name"]: i.get("digest") for i in pinned.get("images", [])}
    new_images = {i["name"]: i.get("digest") for i in current.get("images", [])}
    if sorted(old_images) != sorted(new_images):
        out.append(f"images {sorted(old_images)} -> {sorted(new_images)}")
    for name in sorted(old_images.keys() & new_images.keys()):
        was, now = old_images[name], new_images[name]
        if was and now and was != now:
            out.append(f"image {name} digest {was} -> {now}")
    return out
