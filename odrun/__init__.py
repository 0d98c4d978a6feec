"""odrun: re-run CERN Open Data analyses reproducibly.

Python API::

    import odrun
    record = odrun.resolve("10.7483/OPENDATA.CMS.A342.9982")
    print(record.title, record.file_count, record.total_size)

The names below are imported on first use (PEP 562), so that ``import odrun``
(and ``odrun --version``) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .errors import OdrunError
    from .records import FileFilter, Record, RecordFile, Resolver, parse_reference
    from .records.resolve import resolve
    from .settings import Settings

_LAZY = {
    "FileFilter": "odrun.records",
    "OdrunError": "odrun.errors",
    "Record": "odrun.records",
    "RecordFile": "odrun.records",
    "Resolver": "odrun.records",
    "Settings": "odrun.settings",
    "parse_reference": "odrun.records",
    "resolve": "odrun.records",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'odrun' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "FileFilter",
    "OdrunError",
    "Record",
    "RecordFile",
    "Resolver",
    "Settings",
    "__version__",
    "parse_reference",
    "resolve",
]
