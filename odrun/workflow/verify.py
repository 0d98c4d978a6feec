"""Judge a run's outputs against the expectations: the library side of ``odrun verify``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from odrun import untrusted
from odrun._fs import confine
from odrun.errors import OdrunError, UsageError, VerificationError, WorkflowError
from odrun.hepdata import TablePin
from odrun.settings import Settings
from odrun.workflow.expect import Check, evaluate
from odrun.workflow.lock import NAME as LOCK_NAME
from odrun.workflow.lock import spec_of
from odrun.workflow.model import MAX_RUN_JSON_BYTES, RUN_JSON, RunRecord, Say
from odrun.workflow.record import run_to_verify
from odrun.workflow.references import pinned_versions
from odrun.workflow.spec import ensure_valid, load_analysis


@dataclass(frozen=True)
class Verification:
    """The verdict on one run: each expectation's check, and whether all hold."""

    #: the run judged
    run: RunRecord
    checks: list[Check] = field(default_factory=list)
    #: the analysis's name (the JUnit suite)
    name: str = "odrun"
    #: how long judging took
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Every expectation holds."""
        return all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def error(self) -> VerificationError | None:
        """The error (exit 10) a failed verdict is, or None when every expectation holds."""
        if self.ok:
            return None
        return VerificationError(
            f"{len(self.failed)} of {len(self.checks)} expectations do not hold"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": str(self.run.run_dir),
            "status": self.run.status,
            "ended": self.run.ended,
            "checks": [c.to_dict() for c in self.checks],
        }


def verify_run(
    target: Path, say: Say = lambda _: None, settings: Settings | None = None
) -> Verification:
    """Judge ``target``: a run folder, against the expectations it ran with; or an analysis
    (folder or spec file), whose newest complete run is judged against its current
    odrun.yaml (HEPData references read with ``settings``). The spec is validated first
    (SpecError, exit 2); a failed or partial run is never judged (WorkflowError, exit 7);
    no expectations is a UsageError.

    A failed expectation is not raised: see :attr:`Verification.ok` and
    :meth:`Verification.error`.
    """
    is_run = (target / RUN_JSON).is_file()
    if is_run:  # the spec it ran with (copied into the run folder), its references' folder
        recorded = RunRecord.load(target)
        spec = load_analysis(target / "odrun.yaml") if (target / "odrun.yaml").is_file() else None
        base = recorded.analysis_root
    else:  # an analysis folder, or one of its spec files
        spec, base = load_analysis(target), target if target.is_dir() else target.parent
    if spec is not None:
        ensure_valid(replace(spec, root=base), staging=False)
    record = run_to_verify(target if is_run else base, say)
    if not is_run and spec is not None:
        _same_spec(record.run_dir, spec_of(spec), target)
    expectations = spec.manifest.get("expect") if spec else None
    if not expectations:
        raise UsageError(f"{record.run_dir} has no expectations to verify (odrun.yaml 'expect')")
    started = time.monotonic()
    checks = evaluate(
        record.run_dir / "workspace", expectations, base, settings, _run_pins(record.run_dir)
    )
    name = spec.name if spec else "odrun"
    return Verification(record, checks, name, time.monotonic() - started)


def _run_lock(run_dir: Path) -> dict[str, Any]:
    """The run's lock copy ({} if unreadable: a regular file in the run folder only, never
    a link out or a FIFO)."""
    try:
        path = confine(run_dir, LOCK_NAME, "lock")
        lock = untrusted.load_json(untrusted.read_text(path, MAX_RUN_JSON_BYTES))
    except (OdrunError, OSError, ValueError):
        return {}
    return lock if isinstance(lock, dict) else {}


def _same_spec(run_dir: Path, spec: str, target: Path) -> None:
    """The newest run of an analysis must have run the spec verified (its lock copy says
    which): a twin spec's run (reana-serial.yaml beside reana.yaml) is not this spec's
    verdict. A run from before locks named their spec is taken as the folder's default."""
    ran = _run_lock(run_dir).get("spec")
    if ran is None or ran == spec:
        return
    shown = untrusted.printable(str(ran))[:200]
    folder = target if target.is_dir() else target.parent
    raise WorkflowError(
        f"the newest run of {folder}, {run_dir.name}, ran spec {shown}, not {spec}: not "
        f"judged as {spec}'s",
        hint=f"run this spec again (odrun run {target}), or name that run: odrun verify {run_dir}",
    )


def _run_pins(run_dir: Path) -> dict[str, TablePin]:
    """The HEPData tables (version, sha256) the run pinned in its lock copy."""
    lock = _run_lock(run_dir)
    pins = lock.get("hepdata")
    return pinned_versions(pins if isinstance(pins, list) else [])


__all__ = ["Verification", "verify_run"]
