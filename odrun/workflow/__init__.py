"""Declared analyses: load and validate specs, run them, record and verify what ran."""

from odrun.workflow.model import RunOptions, RunRecord, RunResult, StepRun
from odrun.workflow.preflight import choose_runtime
from odrun.workflow.runner import run_analysis
from odrun.workflow.spec import Analysis, Finding, load_analysis, validate

__all__ = [
    "Analysis",
    "Finding",
    "RunOptions",
    "RunRecord",
    "RunResult",
    "StepRun",
    "choose_runtime",
    "load_analysis",
    "run_analysis",
    "validate",
]
