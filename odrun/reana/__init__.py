"""Run analyses on REANA: a typed client of its REST API (0.9) and the submit workflow."""

from odrun.reana.client import BUNDLES_V1, ReanaClient, ServerInfo, WorkflowStatus, redact
from odrun.reana.spec import ODRUN_IMAGE

__all__ = ["BUNDLES_V1", "ODRUN_IMAGE", "ReanaClient", "ServerInfo", "WorkflowStatus", "redact"]
