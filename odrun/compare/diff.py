"""Compare two runs section by section: the library side of ``odrun diff``.

Inputs (records and their files from ``odrun.lock``, the analysis's own input files by
checksum), environment (runtime, executor, image digests, tool versions, CVMFS
revisions), parameters (``inputs.parameters`` of the reana.yaml the run ran), steps
(exit code, command, duration) and outputs (checksums; for outputs that differ, how
much: :mod:`odrun.compare.numeric`). Files are checksummed where they are in each run's
workspace, never through a link out of it; numeric comparisons read at most
``max_bytes`` per file (larger files: checksum only, and the diff says so).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from odrun import untrusted
from odrun._fs import confine
from odrun.checksum import checksum_file
from odrun.compare.model import Change, Kind, OutputDiff, RunDiff, RunSummary
from odrun.compare.numeric import NotComparableError, compare_files
from odrun.compare.runs import RunSide, load_side, regular_file, resolve_run
from odrun.errors import OdrunError

#: the largest output file compared number by number (larger: checksum and size only)
MAX_NUMERIC_BYTES = 16 * 1024 * 1024
#: files of one input folder checksummed
MAX_FOLDER_FILES = 10_000
#: a step's duration counts as changed beyond this factor and this many seconds
DURATION_FACTOR = 2.0
DURATION_SECONDS = 5.0


def _text(value: Any) -> str | None:
    """A value as the diff shows it: strings as they are, anything else as compact JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return untrusted.printable(value)
    try:
        return untrusted.printable(json.dumps(value, sort_keys=True, default=str))
    except (TypeError, ValueError, RecursionError):  # mixed key types; nested too deep
        return f"({type(value).__name__} that cannot be shown)"


def _pairs(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[Change]:
    """One Change per key of either mapping (sorted), values compared as their text."""
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = _text(a.get(key)), _text(b.get(key))
        name = f"{prefix}{key}"
        if key not in b:
            out.append(Change("removed", name, va, None))
        elif key not in a:
            out.append(Change("added", name, None, vb))
        else:
            out.append(Change("equal" if va == vb else "changed", name, va, vb))
    return out


def _dicts(items: Any) -> list[dict[str, Any]]:
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def _mapping(value: Any) -> dict[str, Any]:
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) else {}


# -- inputs -----------------------------------------------------------------------------


def _records(side: RunSide, pinned: bool) -> dict[str, str | None]:
    """``record R revision`` and ``record R file F`` -> value, from the lock when both runs
    have one (``pinned``), else the record ids of run.json."""
    out: dict[str, str | None] = {}
    if pinned and side.lock is not None:
        for rec in _dicts(side.lock.get("records")):
            recid = _text(rec.get("recid")) or "?"
            out[f"record {recid} revision"] = _text(rec.get("revision"))
            for f in _dicts(rec.get("files")):
                size = f" ({_text(f.get('size'))} bytes)" if f.get("size") is not None else ""
                checksum = _text(f.get("checksum")) or "no checksum"
                out[f"record {recid} file {_text(f.get('path'))}"] = f"{checksum}{size}"
        return out
    for rec in _dicts(side.data.get("records")):
        out[f"record {_text(rec.get('recid'))} revision"] = None
    return out


def _checksum(path: Path) -> str:
    try:
        return str(checksum_file(path))
    except OSError as exc:
        return f"unreadable ({exc.__class__.__name__})"


def _input_files(side: RunSide, pinned: bool) -> dict[str, str | None]:
    """``input PATH`` -> checksum of the file in the workspace (recorded one if absent).
    Record files are the lock's business when both runs have one (``pinned``); else they
    are input files too (as a REANA record lists what it uploaded)."""
    out: dict[str, str | None] = {}
    for item in _dicts(side.data.get("inputs")):
        kind, rel = item.get("kind"), _text(item.get("path"))
        if rel is None or (pinned and kind == "record-file"):
            continue
        if kind == "directory":
            out.update(_folder(side, rel))
            continue
        path, why = regular_file(side.workspace, rel, "input")
        if path is not None:
            out[f"input {rel}"] = _checksum(path)
        else:
            out[f"input {rel}"] = _text(item.get("checksum")) or why
    return out


def _folder(side: RunSide, rel: str) -> dict[str, str | None]:
    try:
        root = confine(side.workspace, rel, "input folder")
    except OdrunError as exc:  # a link out of the run, a path with '..'
        return {f"input {rel}/": exc.message}
    out: dict[str, str | None] = {}
    for here, dirs, files in os.walk(root):  # never into a linked folder
        dirs.sort()
        links = [d for d in dirs if Path(here, d).is_symlink()]  # listed, not walked
        for name in sorted([*files, *links]):
            if len(out) >= MAX_FOLDER_FILES:
                return out | {f"input {rel}/...": f"more than {MAX_FOLDER_FILES} files"}
            path = Path(here, name)
            sub = path.relative_to(root).as_posix()
            key = f"input {rel}/{sub}"
            if path.is_symlink():
                out[key] = "a link: not followed"
            else:  # never open a FIFO or a device: it may block forever
                out[key] = _checksum(path) if path.is_file() else "not a regular file"
    return out


def _inputs(a: RunSide, b: RunSide) -> list[Change]:
    pinned = a.lock is not None and b.lock is not None
    return _pairs(_records(a, pinned), _records(b, pinned)) + _pairs(
        _input_files(a, pinned), _input_files(b, pinned)
    )


# -- environment ------------------------------------------------------------------------


def _image_steps(side: RunSide) -> dict[str, list[str]]:
    """image -> the steps of the run's reana.yaml that run in it."""
    steps: Any = ((side.reana or {}).get("workflow") or {}).get("specification") or {}
    out: dict[str, list[str]] = {}
    for step in _dicts(steps.get("steps") if isinstance(steps, dict) else None):
        image = _text(step.get("environment"))
        if image:
            out.setdefault(image, []).append(_text(step.get("name")) or "?")
    return out


def _environment_of(side: RunSide, pinned: bool) -> dict[str, str | None]:
    """The runtime, executor and any image digests run.json records; with ``pinned`` (both
    runs have a lock) the image digests, tool versions and CVMFS revisions the locks pin."""
    data, lock = side.data, (side.lock or {}) if pinned else {}
    env: dict[str, str | None] = {
        "runtime": _text(data.get("runtime_description") or data.get("runtime")),
        "executor": _text(data.get("executor")),
    }
    for key, value in sorted(_mapping(data.get("executor_options")).items()):
        env[f"executor option {key}"] = _text(value)
    for image in _dicts(lock.get("images")):
        env[f"image {_text(image.get('name'))}"] = _text(image.get("digest")) or "no digest"
    for name, digest in _mapping(data.get("image_digests")).items():  # recorded by the run
        env[f"image {name}"] = _text(digest) or "no digest"
    for tool, version in _mapping(lock.get("tools")).items():
        env[f"tool {tool}"] = _text(version)
    for repo, pin in _mapping(lock.get("cvmfs")).items():
        env[f"cvmfs {repo}"] = _text(pin)
    return env


def _environment(a: RunSide, b: RunSide) -> list[Change]:
    steps = _image_steps(a) | _image_steps(b)
    out = []
    pinned = a.lock is not None and b.lock is not None
    for change in _pairs(_environment_of(a, pinned), _environment_of(b, pinned)):
        image = change.key.removeprefix("image ")
        used = ", ".join(steps.get(image, [])) if change.key.startswith("image ") else ""
        out.append(replace(change, detail=f"steps {used}") if used else change)
    return out


# -- parameters and steps ---------------------------------------------------------------


def _parameters_of(side: RunSide) -> dict[str, Any]:
    inputs = (side.reana or {}).get("inputs")
    return _mapping(inputs.get("parameters")) if isinstance(inputs, dict) else {}


def _seconds(step: dict[str, Any]) -> float | None:
    try:
        started = dt.datetime.fromisoformat(str(step.get("started")))
        ended = dt.datetime.fromisoformat(str(step.get("ended")))
        return (ended - started).total_seconds()
    except (TypeError, ValueError, OverflowError):  # also naive vs aware times
        return None


def _steps(a: RunSide, b: RunSide) -> list[Change]:
    steps_a = {_text(s.get("name")) or "?": s for s in a.record.steps}
    steps_b = {_text(s.get("name")) or "?": s for s in b.record.steps}
    out = []
    for name in list(dict.fromkeys([*steps_a, *steps_b])):
        if name not in steps_b:
            out.append(Change("removed", f"step {name}", "ran", None, "did not run in B"))
            continue
        if name not in steps_a:
            out.append(Change("added", f"step {name}", None, "ran", "did not run in A"))
            continue
        sa, sb = steps_a[name], steps_b[name]
        for field in ("exit_code", "command"):
            va, vb = _text(sa.get(field)), _text(sb.get(field))
            kind: Kind = "equal" if va == vb else "changed"
            out.append(Change(kind, f"step {name} {field.replace('_', ' ')}", va, vb))
        out.append(_duration(name, _seconds(sa), _seconds(sb)))
    return out


def _duration(name: str, a: float | None, b: float | None) -> Change:
    ta = None if a is None else f"{a:g}s"
    tb = None if b is None else f"{b:g}s"
    changed = (
        a is not None
        and b is not None
        and abs(b - a) > DURATION_SECONDS
        and max(a, b) > DURATION_FACTOR * max(min(a, b), 1e-9)
    )
    detail = f"beyond x{DURATION_FACTOR:g} and {DURATION_SECONDS:g}s" if changed else ""
    return Change("changed" if changed else "equal", f"step {name} duration", ta, tb, detail)


# -- outputs ----------------------------------------------------------------------------


def _output_paths(side: RunSide) -> list[str]:
    return [p for p in (_text(o.get("path")) for o in _dicts(side.data.get("outputs"))) if p]


def _recorded(side: RunSide, rel: str) -> dict[str, Any]:
    return next((o for o in _dicts(side.data.get("outputs")) if o.get("path") == rel), {})


def _output(a: RunSide, b: RunSide, rel: str, max_bytes: int) -> OutputDiff:
    path_a, why_a = regular_file(a.workspace, rel, "output")
    path_b, why_b = regular_file(b.workspace, rel, "output")
    sum_a = _checksum(path_a) if path_a else None
    sum_b = _checksum(path_b) if path_b else None
    size_a = path_a.stat().st_size if path_a else None
    size_b = path_b.stat().st_size if path_b else None
    if path_a is None or path_b is None:
        notes = [f"{side}: {why}" for side, why in (("A", why_a), ("B", why_b)) if why]
        kind: Kind
        if path_a is None and path_b is None:
            kind = "equal" if why_a == why_b else "changed"
        else:
            kind = "added" if path_a is None else "removed"
        return OutputDiff(rel, kind, sum_a, sum_b, size_a, size_b, note="; ".join(notes))
    if sum_a == sum_b and size_a == size_b:
        return OutputDiff(rel, "equal", sum_a, sum_b, size_a, size_b)
    if max(size_a or 0, size_b or 0) > max_bytes:
        note = f"larger than {max_bytes:,} bytes: checksum and size only"
        return OutputDiff(rel, "changed", sum_a, sum_b, size_a, size_b, note=note)
    try:
        numeric = compare_files(path_a, path_b)
    except NotComparableError as exc:
        return OutputDiff(rel, "changed", sum_a, sum_b, size_a, size_b, note=str(exc))
    return OutputDiff(rel, "changed", sum_a, sum_b, size_a, size_b, numeric)


def _outputs(a: RunSide, b: RunSide, max_bytes: int) -> list[OutputDiff]:
    if a.files_only and b.files_only:
        paths = sorted({*a.files(MAX_FOLDER_FILES), *b.files(MAX_FOLDER_FILES)})
    else:  # a folder of files holds more than outputs: the declared outputs are compared
        paths = list(dict.fromkeys([*_output_paths(a), *_output_paths(b)]))
    return [_output(a, b, rel, max_bytes) for rel in paths]


def _summary(side: RunSide) -> RunSummary:
    data = side.data
    return RunSummary(
        str(side.run_dir),
        side.record.analysis,
        side.record.status,
        _text(data.get("runtime_description") or data.get("runtime")) or "unknown",
    )


def diff_sides(a: RunSide, b: RunSide, *, max_bytes: int = MAX_NUMERIC_BYTES) -> RunDiff:
    """The diff of two loaded runs (a folder of files on either side: outputs only)."""
    notes: list[str] = [*a.notes, *b.notes]
    outputs = _outputs(a, b, max_bytes)
    if a.files_only or b.files_only:
        return RunDiff(_summary(a), _summary(b), outputs=outputs, notes=notes)
    if a.lock is None or b.lock is None:
        which = " and ".join(n for n, s in (("A", a), ("B", b)) if s.lock is None)
        notes.append(
            f"record revisions, image digests, tool versions and CVMFS revisions not compared: "
            f"run {which} has no readable odrun.lock"
        )
    parameters: list[Change] = []
    if a.reana is None or b.reana is None:
        which = " and ".join(n for n, s in (("A", a), ("B", b)) if s.reana is None)
        notes.append(f"parameters not compared: run {which} holds no readable reana.yaml")
    else:
        parameters = _pairs(_parameters_of(a), _parameters_of(b), "parameter ")
    return RunDiff(
        _summary(a),
        _summary(b),
        inputs=_inputs(a, b),
        environment=_environment(a, b),
        parameters=parameters,
        steps=_steps(a, b),
        outputs=outputs,
        notes=notes,
    )


def diff(
    a: str | Path, b: str | Path, *, cwd: Path | None = None, max_bytes: int = MAX_NUMERIC_BYTES
) -> RunDiff:
    """What differs between run ``a`` and run ``b`` (``odrun diff A B``); each is a run
    folder or anything :func:`odrun.compare.runs.resolve_run` accepts. Raises
    :class:`~odrun.errors.UsageError` when one is not a run, and
    :class:`~odrun.errors.UnsafeMetadataError` when its run.json leads out through a link;
    anything odd inside a run (a malformed lock, a link out, a binary output) is a note."""
    side_a = load_side(resolve_run(a, cwd))
    side_b = load_side(resolve_run(b, cwd))
    return diff_sides(side_a, side_b, max_bytes=max_bytes)
