"""What the REANA API answers, as typed values: server info, status and progress, logs, files."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from odrun import untrusted
from odrun.redact import redact

#: what a REANA 0.95+ server advertises on /api/ping when it takes spec bundles
BUNDLES_V1 = "workflow-specification-bundles-v1"
TERMINAL = frozenset({"finished", "failed", "stopped", "deleted"})


@dataclass(frozen=True)
class ServerInfo:
    """What ``GET /api/ping`` said."""

    url: str
    message: str
    version: str | None = None
    capabilities: tuple[str, ...] = ()

    @property
    def protocol(self) -> str:
        return "bundles-v1" if BUNDLES_V1 in self.capabilities else "legacy-0.9"

    def to_dict(self) -> dict[str, Any]:
        return {
            "server": self.url,
            "message": self.message,
            "reana_server_version": self.version,
            "api_capabilities": list(self.capabilities),
            "protocol": self.protocol,
        }


@dataclass(frozen=True)
class Jobs:
    total: int = 0
    running: int = 0
    finished: int = 0
    failed: int = 0


@dataclass(frozen=True)
class WorkflowStatus:
    id: str
    name: str
    status: str
    jobs: Jobs = field(default_factory=Jobs)
    current_step: str | None = None
    current_command: str | None = None

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def to_dict(self) -> dict[str, Any]:
        return {
            "workflow_id": self.id,
            "workflow_name": self.name,
            "status": self.status,
            "jobs": self.jobs.__dict__,
            "current_step": self.current_step,
            "current_command": self.current_command,
        }


@dataclass(frozen=True)
class JobLog:
    name: str
    status: str
    command: str
    logs: str
    image: str | None = None


@dataclass(frozen=True)
class WorkflowLogs:
    workflow: str
    jobs: tuple[JobLog, ...] = ()

    @property
    def failed(self) -> list[JobLog]:
        return [j for j in self.jobs if j.status == "failed"]


@dataclass(frozen=True)
class WorkspaceFile:
    name: str
    size: int | None
    modified: str | None = None


@dataclass(frozen=True)
class Created:
    id: str
    name: str


def jobs_of(progress: Any) -> Jobs:
    """Job counts from REANA's ``progress``; 0 for anything that is not a count."""
    if not isinstance(progress, Mapping):
        return Jobs()

    def count(key: str) -> int:
        value = progress.get(key)
        return (untrusted.count(value.get("total")) or 0) if isinstance(value, Mapping) else 0

    return Jobs(count("total"), count("running"), count("finished"), count("failed"))


def none_if_empty(value: Any) -> str | None:
    """The text of a scalar, None for an empty one, "None" or a non-scalar (list, object);
    redacted like every server string kept here."""
    text = untrusted.text(value)
    return None if text in (None, "None") else redact(text)


def _str(value: Any, default: str = "") -> str:
    """A scalar as text, kept as sent (no stripping) but printable and redacted (a server
    that echoes the token never gets it into a record, a crate or a log); ``default``
    otherwise."""
    if isinstance(value, str):
        return redact(untrusted.printable(value)) or default
    return redact(untrusted.text(value) or "") or default


def status_of(data: Mapping[str, Any]) -> WorkflowStatus:
    progress = data.get("progress")
    progress = progress if isinstance(progress, Mapping) else {}
    return WorkflowStatus(
        _str(data.get("id")) or _str(data.get("workflow_id")),
        _str(data.get("name")) or _str(data.get("workflow_name")),
        _str(data.get("status"), "unknown"),
        jobs_of(progress),
        none_if_empty(progress.get("current_step_name")),
        none_if_empty(progress.get("current_command")),
    )


def parse_logs(raw: Any) -> WorkflowLogs:
    """REANA 0.9 logs: a JSON document inside the ``logs`` string (workflow + job logs)."""
    if not isinstance(raw, str):
        return WorkflowLogs("")
    try:
        doc = untrusted.load_json(raw)
    except ValueError:
        return WorkflowLogs(untrusted.printable(raw))
    if not isinstance(doc, dict):
        return WorkflowLogs(untrusted.printable(raw))
    job_logs = doc.get("job_logs")
    listed = job_logs.values() if isinstance(job_logs, Mapping) else ()
    jobs = [
        JobLog(
            _str(job.get("job_name"), "?"),
            _str(job.get("status"), "?"),
            _str(job.get("cmd")),
            _str(job.get("logs")),
            none_if_empty(job.get("docker_img")),
        )
        for job in listed
        if isinstance(job, Mapping)
    ]
    return WorkflowLogs(_str(doc.get("workflow_logs")), tuple(jobs))
