"""``odrun.lock``: what a run read, pinned, and the drift check behind ``odrun run --locked``.

The lock lists each record (recid, DOI, portal revision and update time) with
every file the analysis selected (URI, size, checksum; ``integrity``
"unverified" for a file without a declared checksum), the step images, the
revision and root hash of each CVMFS repository the spec declares (recorded, not
enforced by ``--locked``: repositories publish many times a day; mount a pinned
snapshot with ``CVMFS_ROOT_HASH``), the HEPData tables the expectations compare with
(reference, version, sha256: ``--locked`` refuses another version or other bytes), the
runtime the steps ran in (with the ``runtime_fallback`` when ``--runtime auto`` fell back
to the host) and the tool versions. It is sorted JSON, so it diffs well under version control.

A lock belongs to the spec it pins (``spec``: the workflow spec file, and the odrun.yaml
variant when it is not ``odrun.yaml``): reana.yaml (or odrun.yaml alone) pins to
``odrun.lock``, another spec in the same folder to its own ``odrun-<spec stem>.lock``
(:func:`path_for`), so twins such as ``reana.yaml`` and ``reana-serial.yaml`` never
overwrite each other's pins, and ``--locked`` refuses a lock that pins another spec (a
lock without ``spec``, written before locks named theirs, is taken as odrun.lock's).

``--locked`` refuses a run whose records, files, runtime kind or image digests differ
from the lock. A missing (``null``) digest counts as a difference unless both the lock
and the run chose the host on purpose (``--runtime host`` ignores the images): a lock
written by a fallback pins nothing about its images, so it never passes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from odrun import cvmfs, untrusted
from odrun._fs import atomic_write
from odrun.errors import LockError
from odrun.workflow.model import run_tools, tool_versions
from odrun.workflow.runtime import Fallback, describe

if TYPE_CHECKING:
    from odrun.records.model import RecordFile
    from odrun.workflow.model import RunResult
    from odrun.workflow.spec import Analysis

NAME = "odrun.lock"
LOCK_FORMAT_VERSION = 1
#: the specs whose lock is NAME (an analysis run as a folder)
DEFAULT_SPECS = ("reana.yaml", "odrun.yaml")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def spec_of(analysis: Analysis) -> str:
    """The spec a lock of ``analysis`` pins: ``reana.yaml``, ``reana-serial.yaml``,
    ``odrun.yaml`` (no workflow), ``reana.yaml + odrun-alt.yaml`` (file names)."""
    names = [analysis.reana_path.name] if analysis.reana_path is not None else []
    manifest = analysis.manifest_path
    if manifest is not None and (not names or manifest.name != "odrun.yaml"):
        names.append(manifest.name)
    return " + ".join(names) or "reana.yaml"


def path_for(analysis: Analysis) -> Path:
    """Where the lock of ``analysis``'s spec lives: ``odrun.lock`` for the folder's default
    spec, ``odrun-<stems>.lock`` for any other (``odrun-reana-serial.lock``)."""
    spec = spec_of(analysis)
    if spec in DEFAULT_SPECS:
        return analysis.root / NAME
    stems = "-".join(Path(name).stem for name in spec.split(" + "))
    return analysis.root / f"odrun-{_UNSAFE.sub('_', stems)[:100]}.lock"


def build(result: RunResult, analysis: Analysis) -> dict[str, Any]:
    records = []
    for record in result.records:
        files = result.selected.get(record.recid, [])
        records.append(
            {
                "recid": record.recid,
                "doi": record.doi,
                "revision": record.revision,
                "updated": record.updated,
                "files": [file_entry(f) for f in files],
            }
        )
    steps = analysis.steps if analysis.workflow_type == "serial" else []
    images = sorted(
        {str(s["environment"]) for s in steps if s.get("environment")} | set(result.images)
    )
    lock: dict[str, Any] = {
        "format_version": LOCK_FORMAT_VERSION,
        "analysis": analysis.name,
        "spec": spec_of(analysis),
        "records": records,
        "images": [
            {"name": name, "digest": result.image_digests.get(name) or _named_digest(name)}
            for name in images
        ],
        "cvmfs": cvmfs.pins(cvmfs.declared_repos(analysis.reana)),
        # where the steps ran; None when the analysis runs none (odrun.yaml alone)
        "runtime": result.runtime if analysis.workflow_type else None,
        "runtime_fallback": result.runtime_fallback.to_dict() if result.runtime_fallback else None,
        "runtime_description": result.runtime_description if analysis.workflow_type else None,
        "tools": {**tool_versions(run_tools(analysis, result.runtime)), **result.engine_versions},
    }
    if result.hepdata:  # HEPData tables the expectations compare with: version and sha256
        lock["hepdata"] = list(result.hepdata)
    return lock


#: engine packages whose version --locked holds to (the lock's ``tools``)
ENGINE_PACKAGES = ("yadage", "packtivity", "adage", "yadage-schemas")


def file_entry(f: RecordFile) -> dict[str, Any]:
    """One pinned file. ``integrity`` is "unverified" when the record declares no checksum:
    only its size was checked, by the fetch and by ``--locked``."""
    return {
        "path": f.path,
        # a mirror's file:// location is machine-specific: not pinned
        "uri": None if f.uri.startswith("file:") else f.uri,
        "size": f.size,
        "checksum": str(f.checksum) if f.checksum else None,
        "integrity": "verified" if f.checksum is not None else "unverified",
    }


def _named_digest(image: str) -> str | None:
    return image.split("@", 1)[1] if "@" in image else None


def write(path: Path, lock: dict[str, Any]) -> None:
    atomic_write(path, (json.dumps(lock, indent=2, sort_keys=True) + "\n").encode())


def check(path: Path, current: dict[str, Any], *, records: bool = True) -> None:
    """Raise LockError naming what differs between ``path`` and the inputs about to be used;
    ``records=False``: only the runtime and the images (the preflight, before fetching)."""
    try:
        pinned = untrusted.load_json(untrusted.read_text(path))  # bounded, regular only
    except FileNotFoundError:
        raise LockError(
            f"--locked but there is no {path}", hint="run once without --locked to write it"
        ) from None
    except ValueError as exc:
        raise LockError(f"{path} is not valid JSON: {exc}") from None
    _check_spec(path, pinned, current)
    try:
        drift = _runtime_differences(pinned, current)
        if records:
            drift += _differences(pinned, current)
            drift += _hepdata_differences(pinned, current)
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


def _check_spec(path: Path, pinned: Any, current: dict[str, Any]) -> None:
    """A lock pins one spec: another spec's lock (or, for a spec that is not the folder's
    default, a lock that does not say) is refused before anything is compared."""
    if not isinstance(pinned, dict):
        return  # not a lock at all: said below
    was, now = pinned.get("spec"), current.get("spec")
    if was is None and now not in (None, *DEFAULT_SPECS):
        raise LockError(
            f"{path} does not say which spec it pins; --locked runs {now}",
            hint="run once without --locked to write this spec's lock",
        )
    if was is not None and now is not None and was != now:
        shown = untrusted.printable(str(was))[:200]
        raise LockError(
            f"{path} pins spec {shown}, not {now}: it is another workflow's lock",
            hint="run once without --locked to write this spec's own lock",
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
    return out


def _hepdata_differences(pinned: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """HEPData tables added, gone, or at another version or checksum (a lock written
    before HEPData references has no ``hepdata`` key: nothing was pinned, nothing drifts
    unless this run uses tables)."""
    out = []
    old = {t["reference"]: t for t in pinned.get("hepdata") or []}
    new = {t["reference"]: t for t in current.get("hepdata") or []}
    for ref in sorted(old.keys() - new.keys()):
        out.append(f"HEPData table {ref} no longer used")
    for ref in sorted(new.keys() - old.keys()):
        out.append(f"HEPData table {ref} is not in the lock")
    for ref in sorted(old.keys() & new.keys()):
        for key in ("version", "sha256"):
            if old[ref].get(key) != new[ref].get(key):
                out.append(f"HEPData table {ref}: {key} {old[ref].get(key)} -> {new[ref].get(key)}")
    return out


def _describe(lock: dict[str, Any]) -> str:
    return describe(str(lock.get("runtime")), Fallback.from_dict(lock.get("runtime_fallback")))


def _images_ignored(lock: dict[str, Any]) -> bool:
    """The host was chosen on purpose: the step images were not used, so not pinned."""
    return lock.get("runtime") == "host" and not lock.get("runtime_fallback")


def _runtime_differences(pinned: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The runtime kind and every image digest (an older lock has no runtime: the kind is
    not compared, and its images count as pinned unless this run is on the host)."""
    out = []
    legacy = "runtime" not in pinned
    if (
        not legacy
        and pinned.get("runtime") is not None
        and current.get("runtime") is not None
        and (
            pinned.get("runtime") != current.get("runtime")
            or bool(pinned.get("runtime_fallback")) != bool(current.get("runtime_fallback"))
        )
    ):
        out.append(f"runtime {_describe(pinned)} -> {_describe(current)}")
    was_tools, now_tools = pinned.get("tools") or {}, current.get("tools") or {}
    for engine in ENGINE_PACKAGES:  # a workflow engine's own packages (yadage's Python)
        if engine in was_tools and engine in now_tools and was_tools[engine] != now_tools[engine]:
            out.append(f"{engine} {was_tools[engine]} -> {now_tools[engine]}")
    old_images = {i["name"]: i.get("digest") for i in pinned.get("images", [])}
    new_images = {i["name"]: i.get("digest") for i in current.get("images", [])}
    if sorted(old_images) != sorted(new_images):
        out.append(f"images {sorted(old_images)} -> {sorted(new_images)}")
    if _images_ignored(current) and (legacy or _images_ignored(pinned)):
        return out
    for name in sorted(old_images.keys() & new_images.keys()):
        was, now = old_images[name], new_images[name]
        if not was:
            why = f" (it ran {_describe(pinned)})" if not legacy else ""
            out.append(f"image {name} has no digest in the lock{why}")
        elif not now:
            out.append(f"image {name} has no digest in runtime {_describe(current)} (lock: {was})")
        elif was != now:
            out.append(f"image {name} digest {was} -> {now}")
    return out
