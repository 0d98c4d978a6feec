"""Run analyses on REANA: a typed client of its REST API (0.9) and the submit workflow."""

from odrun.reana.client import ReanaClient, redact
from odrun.reana.models import BUNDLES_V1, ServerInfo, WorkflowStatus
from odrun.reana.spec import IMAGE_ENV

__all__ = ["BUNDLES_V1", "IMAGE_ENV", "ReanaClient", "ServerInfo", "WorkflowStatus", "redact"]
