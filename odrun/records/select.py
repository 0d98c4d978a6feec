"""Choose files of a record: by name glob, regular expression and 1-based ranges.

Semantics follow cernopendata-client's ``--filter-name/--filter-regexp/--filter-range``:
the name glob matches a file's name, the regular expression is searched in its
path (its name, or folder/name where a record's names collide), and ranges
(``A-B``, 1-based, inclusive, comma-separated) apply last, to the files the
other filters kept.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass

from odrun.errors import UsageError
from odrun.untrusted import count

from .model import RecordFile


@dataclass(frozen=True)
class FileFilter:
    names: tuple[str, ...] = ()
    regexp: str | None = None
    ranges: tuple[tuple[int, int], ...] = ()

    @classmethod
    def build(
        cls,
        names: Sequence[str] = (),
        regexp: str | None = None,
        ranges: Sequence[str] = (),
    ) -> FileFilter:
        if regexp is not None:
            try:
                re.compile(regexp)
            except re.error as exc:
                raise UsageError(
                    f"--filter-regexp {regexp!r} is not a regular expression: {exc}"
                ) from None
        parsed = tuple(r for text in ranges for r in parse_ranges(text))
        return cls(tuple(names), regexp, parsed)

    def __bool__(self) -> bool:
        return bool(self.names or self.regexp or self.ranges)

    def apply(self, files: Sequence[RecordFile]) -> list[RecordFile]:
        kept = list(files)
        if self.names:
            kept = [f for f in kept if any(fnmatch.fnmatchcase(f.filename, n) for n in self.names)]
        if self.regexp:
            pattern = re.compile(self.regexp)
            kept = [f for f in kept if pattern.search(f.path)]
        if self.ranges:
            # clipped to the files there are: 1-99999999999 must not build a huge set
            chosen = sorted({i for a, b in self.ranges for i in range(a, min(b, len(kept)) + 1)})
            kept = [kept[i - 1] for i in chosen]
        return kept


def parse_ranges(text: str) -> list[tuple[int, int]]:
    """``"1-3,7-7"`` -> ``[(1, 3), (7, 7)]``; raise UsageError on anything else."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = re.fullmatch(r"([0-9]+)-([0-9]+)", part)
        first, last = (count(match.group(1)), count(match.group(2))) if match else (None, None)
        if first is None or last is None or not 1 <= first <= last:
            raise UsageError(
                f"--filter-range {part!r} is not a range: expected A-B with 1 <= A <= B, "
                "e.g. 1-10 (1-based, inclusive)"
            )
        out.append((first, last))
    return out
