"""Record resolution: DOI / recid / URL -> typed :class:`Record` with its files."""

from .model import ContainerImage, Environment, FileIndex, Record, RecordFile
from .refs import RecordRef, parse_reference
from .resolve import Resolved, Resolver, resolve
from .select import FileFilter

__all__ = [
    "ContainerImage",
    "Environment",
    "FileFilter",
    "FileIndex",
    "Record",
    "RecordFile",
    "RecordRef",
    "Resolved",
    "Resolver",
    "parse_reference",
    "resolve",
]
