"""Check local files against a record, streaming (never a whole file in memory), in parallel.

A file the record declares no checksum for can only be checked by size: its
verdict is ``unverified`` ("unverified (no checksum declared)"), never ``ok``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from odrun._fs import confine
from odrun.checksum import checksum_file
from odrun.errors import UnsafeMetadataError
from odrun.records.model import RecordFile


class Verdict(str, enum.Enum):
    OK = "ok"
    MISSING = "missing"
    SIZE = "size mismatch"
    CHECKSUM = "checksum mismatch"
    UNVERIFIED = "unverified"

    @property
    def text(self) -> str:
        """The verdict for people: says why an unverified file is not "ok"."""
        return "unverified (no checksum declared)" if self is Verdict.UNVERIFIED else self.value


@dataclass(frozen=True)
class FileCheck:
    path: str
    verdict: Verdict
    expected: str | None = None
    actual: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "verdict": self.verdict.value,
            "expected": self.expected,
            "actual": self.actual,
        }


def check_file(root: Path, f: RecordFile) -> FileCheck:
    try:  # record metadata: a link in the folder must not make odrun read a host file
        path = confine(root, f.path, "record file")
        size = path.stat().st_size
    except UnsafeMetadataError:
        return FileCheck(f.path, Verdict.MISSING)
    except OSError:
        return FileCheck(f.path, Verdict.MISSING)
    if f.size is not None and size != f.size:
        return FileCheck(f.path, Verdict.SIZE, str(f.size), str(size))
    if f.checksum is None:
        return FileCheck(f.path, Verdict.UNVERIFIED, str(f.size) if f.size is not None else None)
    actual = checksum_file(path, f.checksum.algorithm)
    if actual != f.checksum:
        return FileCheck(f.path, Verdict.CHECKSUM, str(f.checksum), str(actual))
    return FileCheck(f.path, Verdict.OK, str(f.checksum), str(actual))


def verify_files(root: Path, files: Sequence[RecordFile], jobs: int = 2) -> Iterator[FileCheck]:
    """Yield one check per file, in the record's order (zlib releases the GIL: threads help)."""
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        yield from pool.map(lambda f: check_file(root, f), files)
