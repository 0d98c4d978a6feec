"""Moving bytes: transports (http, xrootd, file), the shared cache, verified fetches."""

from odrun.transfer.fetch import Fetcher, FetchReport, FileResult, State
from odrun.transfer.store import FileStore, cache_key
from odrun.transfer.verify import FileCheck, Verdict, verify_files

__all__ = [
    "FetchReport",
    "Fetcher",
    "FileCheck",
    "FileResult",
    "FileStore",
    "State",
    "Verdict",
    "cache_key",
    "verify_files",
]
