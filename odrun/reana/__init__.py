"""Run analyses on REANA: a typed client of its REST API (0.9) and the submit workflow."""

from odrun.reana.client import ReanaClient, redact
from odrun.reana.models import BUNDLES_V1, ServerInfo, WorkflowStatus
from odrun.reana.record import Submission
from odrun.reana.spec import IMAGE_ENV
from odrun.reana.submit import SubmitOptions, submit
from odrun.reana.workspace import Download, download

__all__ = [
    "BUNDLES_V1",
    "IMAGE_ENV",
    "Download",
    "ReanaClient",
    "ServerInfo",
    "Submission",
    "SubmitOptions",
    "WorkflowStatus",
    "download",
    "redact",
    "submit",
]
