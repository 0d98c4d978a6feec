"""odrun: re-run CERN Open Data analyses reproducibly.

Python API::

    import odrun
    record = odrun.resolve("10.7483/OPENDATA.CMS.A342.9982")
    print(record.title, record.file_count, record.total_size)
"""

from ._version import __version__
from .errors import OdrunError
from .records import FileFilter, Record, RecordFile, Resolver, parse_reference, resolve
from .settings import Settings

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
