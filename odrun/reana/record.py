"""The local record of a REANA submission (``submission.json``) and finding it again."""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from odrun import untrusted
from odrun._fs import atomic_write
from odrun.errors import OdrunError, UsageError
from odrun.transfer.space import disk_full
from odrun.workflow.expect import Check

from .models import WorkflowLogs, WorkflowStatus

FORMAT_VERSION = 1
RECORD = "submission.json"


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class Submission:
    """The local record of one REANA workflow run (no token, ever)."""

    server: str
    workflow_id: str
    workflow_name: str
    analysis: str
    analysis_path: str
    run_dir: Path
    submitted: str = ""
    protocol: str = "legacy-0.9"
    inputs_mode: str = "upload"
    status: str = "created"
    ended: str = ""
    jobs: dict[str, int] = field(default_factory=dict)
    uploaded: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    logs: WorkflowLogs | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "server": self.server,
            "workflow_id": self.workflow_id,
            "workflow_name": self.workflow_name,
            "analysis": self.analysis,
            "analysis_path": self.analysis_path,
            "run_dir": str(self.run_dir),
            "submitted": self.submitted,
            "protocol": self.protocol,
            "inputs_mode": self.inputs_mode,
            "status": self.status,
            "ended": self.ended,
            "jobs": self.jobs,
            "uploaded": self.uploaded,
            "outputs": self.outputs,
            "checks": [c.to_dict() for c in self.checks],
        }

    @classmethod
    def load(cls, path: Path) -> Submission:
        try:
            doc = untrusted.load_json(path.read_text(encoding="utf-8"))
            return cls(
                server=str(doc["server"]),
                workflow_id=str(doc["workflow_id"]),
                workflow_name=str(doc["workflow_name"]),
                analysis=str(doc.get("analysis") or ""),
                analysis_path=str(doc.get("analysis_path") or ""),
                run_dir=path.parent,
                submitted=str(doc.get("submitted") or ""),
                protocol=str(doc.get("protocol") or "legacy-0.9"),
                inputs_mode=str(doc.get("inputs_mode") or "upload"),
                status=str(doc.get("status") or "unknown"),
                ended=str(doc.get("ended") or ""),
                jobs=dict(doc.get("jobs") or {}),
                uploaded=list(doc.get("uploaded") or []),
                outputs=list(doc.get("outputs") or []),
                checks=[Check(**c) for c in doc.get("checks") or []],
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"{path} is not an odrun REANA submission record: {exc}") from None

    def save(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"
        atomic_write(self.run_dir / RECORD, text.encode())

    def update(self, status: WorkflowStatus) -> None:
        self.status = status.status
        self.jobs = dict(status.jobs.__dict__)
        if status.done and not self.ended:
            self.ended = now()


def workflow_name(text: str) -> str:
    """A name REANA accepts: letters, digits, ``-`` and ``_`` (REANA adds ``.<run>``)."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")
    if not name:
        raise UsageError(f"workflow name {text!r} has no letters or digits")
    return name[:100]


def _newest(records: list[Submission]) -> Submission:
    """The latest submission: by recorded submit time, then run number (never file mtimes,
    which every status, stop or download rewrites)."""

    def key(sub: Submission) -> tuple[str, int]:
        run = sub.workflow_name.rpartition(".")[2]
        return sub.submitted, untrusted.count(run) or 0  # not int(): '²'.isdigit() is True

    return max(records, key=key)


def find_record(run: str, cwd: Path) -> Submission | None:
    """RUN as a local record: a record folder, its submission.json, an analysis folder
    (its latest submission), or a workflow name with a record under ``./.odrun/reana``.

    None: RUN is a workflow name or id for the server (also a folder holding no
    submission whose name could be one, e.g. ``./dimuon-demo.1`` made by a download)."""
    path = Path(run)
    if path.is_file() and path.name == RECORD:
        return Submission.load(path)
    if (path / RECORD).is_file():
        return Submission.load(path / RECORD)
    if path.is_dir():
        found = sorted((path / ".odrun" / "reana").glob(f"*/{RECORD}"))
        if found:
            return _newest([Submission.load(p) for p in found])
        if "/" in run or os.sep in run or run in (".", ".."):
            raise UsageError(f"{path} holds no REANA submission (.odrun/reana/*/{RECORD})")
    folder = cwd / ".odrun" / "reana"
    exact = folder / workflow_name(run) / RECORD if run.strip(".") else None
    if exact is not None and exact.is_file():
        return Submission.load(exact)
    return None


def local_error(exc: OSError, path: Path, what: str) -> OdrunError:
    """A local write that failed (a full disk, a permission) as one typed error."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return disk_full(exc, path, None, what)
    return UsageError(
        f"cannot write {what} in {path}: {exc.strerror or exc}",
        hint="check the analysis folder's permissions (odrun keeps its records in .odrun/)",
    )
