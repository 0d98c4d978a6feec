"""Declared analyses: load and validate specs, run them, record and verify what ran."""

from odrun.workflow.runner import RunResult, run_analysis
from odrun.workflow.spec import Analysis, Finding, load_analysis, validate

__all__ = ["Analysis", "Finding", "RunResult", "load_analysis", "run_analysis", "validate"]
