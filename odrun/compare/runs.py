"""One side of a diff: a run folder (local, or a REANA download), read as untrusted data.

A RUN is what ``odrun verify`` / ``odrun rerun`` accept: a run folder (it holds
``run.json``), or an analysis folder or spec file (its newest recorded run, else its
newest REANA submission with a downloaded record), a REANA record folder
(``.odrun/reana/<workflow>``, its ``submission.json``) or a workflow name with a record
under ``./.odrun/reana``, or a folder of files that is no analysis (``odrun download
WORKFLOW -o DIR``: only outputs are compared). Both runs may come from someone else: every
file is reached through :func:`odrun._fs.confine` (never through a link out of the run
folder), must be a regular file, and documents are read only up to
:data:`MAX_DOCUMENT_BYTES`.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from odrun import untrusted
from odrun._fs import confine
from odrun._yaml import load_yaml
from odrun.errors import OdrunError, UsageError
from odrun.reana.record import RECORD, find_record
from odrun.workflow.lock import NAME as LOCK
from odrun.workflow.model import RUN_JSON, RunRecord, latest

#: the largest run.json, odrun.lock or reana.yaml read
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
SPEC_NAMES = ("reana.yaml", "reana.yml", "odrun.yaml")


@dataclass(frozen=True)
class RunSide:
    """What a diff reads of one run: its record, lock and spec (None: absent/unreadable)."""

    run_dir: Path
    record: RunRecord
    lock: dict[str, Any] | None
    reana: dict[str, Any] | None
    #: what could not be read, said once in the diff's notes
    notes: tuple[str, ...] = ()
    #: a folder of files with no run record (``odrun download WORKFLOW -o DIR``): only its
    #: files are compared, at the output paths the other run declares
    files_only: bool = False

    @property
    def data(self) -> dict[str, Any]:
        return self.record.data

    @property
    def workspace(self) -> Path:
        """Where the run's inputs and outputs are (a folder of files: the folder itself)."""
        return self.run_dir if self.files_only else self.run_dir / "workspace"

    def files(self, limit: int) -> list[str]:
        """The regular files under a folder of files (relative, sorted), never through a
        link; at most ``limit``."""
        out: list[str] = []
        for here, dirs, names in os.walk(self.run_dir):  # never into a linked folder
            dirs[:] = sorted(d for d in dirs if d != ".odrun")
            for name in sorted(names):
                path = Path(here, name)
                if not path.is_symlink() and path.is_file() and len(out) < limit:
                    out.append(path.relative_to(self.run_dir).as_posix())
        return out


def regular_file(root: Path, rel: str, what: str) -> tuple[Path | None, str]:
    """(``root/rel`` if a regular file inside ``root``, why not)."""
    try:
        path = confine(root, rel, what)
    except OdrunError as exc:
        return None, exc.message
    try:
        st = os.stat(path)
    except OSError:
        return None, "missing"
    if not stat.S_ISREG(st.st_mode):
        return None, "not a regular file"
    return path, ""


def _document(run_dir: Path, rel: str, *, strict: bool = False) -> tuple[Any, str]:
    """The JSON or YAML document ``rel`` of a run, or (None, why not); ``strict``: a link
    out of the run folder raises :class:`~odrun.errors.UnsafeMetadataError`."""
    if strict:
        confine(run_dir, rel, "run file")
    path, why = regular_file(run_dir, rel, "run file")
    if path is None:
        return None, why
    if path.stat().st_size > MAX_DOCUMENT_BYTES:
        return None, f"larger than {MAX_DOCUMENT_BYTES >> 20} MiB: not read"
    if path.suffix in (".yaml", ".yml"):
        try:
            return load_yaml(path, rel, error=UsageError), ""
        except OdrunError as exc:
            return None, exc.message
    try:
        return untrusted.load_json(path.read_text(encoding="utf-8")), ""
    except (OSError, ValueError) as exc:
        return None, f"not valid JSON ({exc})"


def load_side(run_dir: Path) -> RunSide:
    """Read the run in ``run_dir`` (see the module docstring); a folder without a
    ``run.json`` (not even a link) is a folder of files."""
    if run_dir.is_dir() and not os.path.lexists(run_dir / RUN_JSON):
        record = RunRecord.from_dict(run_dir, {"status": "files", "runtime": "unknown"})
        note = f"{run_dir.name}: a folder of files without {RUN_JSON}: only outputs compared"
        return RunSide(run_dir, record, None, None, (note,), files_only=True)
    data, why = _document(run_dir, RUN_JSON, strict=True)
    confine(run_dir, "workspace", "run workspace")  # a link out: UnsafeMetadataError
    if not isinstance(data, dict):
        raise UsageError(
            f"{run_dir} is not an odrun run folder: {RUN_JSON} {why or 'is not a JSON object'}",
            hint="give a run folder (.odrun/runs/<time>), a REANA record or an analysis folder",
        )
    notes = []
    lock, why = _document(run_dir, LOCK)
    if not isinstance(lock, dict):
        notes.append(f"{run_dir.name}: no {LOCK} ({why or 'not a JSON object'})")
        lock = None
    reana: Any = None
    for name in SPEC_NAMES[:2]:
        reana, why = _document(run_dir, name)
        if reana is not None:
            break
    if not isinstance(reana, dict):
        reana = None
    return RunSide(run_dir, RunRecord.from_dict(run_dir, data), lock, reana, tuple(notes))


def resolve_run(ref: str | Path, cwd: Path | None = None) -> Path:
    """The run folder RUN names (see the module docstring); :class:`UsageError` if none."""
    text = str(ref)
    path = Path(text)
    if path.name in (RUN_JSON, RECORD, *SPEC_NAMES) and path.is_file():
        path = path.parent
    if (path / RUN_JSON).is_file():
        return path
    if path.is_dir():
        newest = latest(path)
        if newest is not None:
            return newest.run_dir
    try:
        sub = find_record(text, cwd or Path.cwd())
    except OdrunError:
        sub = None
    if sub is not None and (sub.run_dir / RUN_JSON).is_file():
        return sub.run_dir
    if sub is not None:
        raise UsageError(
            f"REANA workflow {sub.workflow_name} has no downloaded run record",
            hint=f"download it first: odrun download {sub.run_dir}",
        )
    if path.is_dir() and not any((path / name).exists() for name in SPEC_NAMES):
        return path  # a folder of files: a bare REANA download (odrun download W -o DIR)
    raise UsageError(
        f"{text} is neither a run folder nor an analysis that has run",
        hint="give a run folder (.odrun/runs/<time>), a REANA record or an analysis folder",
    )
