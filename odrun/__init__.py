"""odrun: re-run CERN Open Data analyses reproducibly.

Python API (each call returns a dataclass and raises a typed :mod:`odrun.errors` error;
see ``docs/python-api.md``)::

    import odrun
    record = odrun.resolve("10.7483/OPENDATA.CMS.A342.9982")
    print(record.title, record.file_count, record.total_size)
    report = odrun.fetch(record, "data")                      # FetchReport
    result = odrun.run("my-analysis", odrun.RunOptions(runtime="podman"))  # RunResult
    verdict = odrun.verify(result.run_dir)                    # Verification
    print(verdict.ok)
    sub = odrun.submit("my-analysis", odrun.SubmitOptions(follow=True))    # Submission
    page = odrun.write_report(result.run_dir)                  # .../report.html
    changes = odrun.diff(old_run_dir, result.run_dir)         # RunDiff

``import odrun`` is light: the API and its types load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import OdrunError

if TYPE_CHECKING:
    from odrun.api import diff, fetch, resolve, run, submit, verify, write_report
    from odrun.compare import RunDiff
    from odrun.reana.record import Submission
    from odrun.reana.submit import SubmitOptions
    from odrun.records import FileFilter, Record, RecordFile, Resolver, parse_reference
    from odrun.settings import Settings
    from odrun.transfer.fetch import FetchReport
    from odrun.workflow.expect import Check
    from odrun.workflow.model import RunOptions, RunRecord, RunResult, StepRun
    from odrun.workflow.verify import Verification

#: public name -> the module that defines it, imported on first use
_LAZY = {
    "resolve": "odrun.records",
    "diff": "odrun.api",
    "fetch": "odrun.api",
    "run": "odrun.api",
    "write_report": "odrun.api",
    "verify": "odrun.api",
    "submit": "odrun.api",
    "FileFilter": "odrun.records",
    "Record": "odrun.records",
    "RecordFile": "odrun.records",
    "Resolver": "odrun.records",
    "parse_reference": "odrun.records",
    "Settings": "odrun.settings",
    "FetchReport": "odrun.transfer.fetch",
    "Check": "odrun.workflow.expect",
    "RunOptions": "odrun.workflow.model",
    "RunRecord": "odrun.workflow.model",
    "RunResult": "odrun.workflow.model",
    "StepRun": "odrun.workflow.model",
    "Verification": "odrun.workflow.verify",
    "RunDiff": "odrun.compare",
    "SubmitOptions": "odrun.reana.submit",
    "Submission": "odrun.reana.record",
}

__all__ = [
    "Check",
    "FetchReport",
    "FileFilter",
    "OdrunError",
    "Record",
    "RecordFile",
    "Resolver",
    "RunDiff",
    "RunOptions",
    "RunRecord",
    "RunResult",
    "Settings",
    "StepRun",
    "Submission",
    "SubmitOptions",
    "Verification",
    "__version__",
    "diff",
    "fetch",
    "parse_reference",
    "resolve",
    "run",
    "submit",
    "verify",
    "write_report",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'odrun' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
