"""Destination paths that never collide: one rule for record file lists and for fetches."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable


class PathClaims:
    """The destination paths a fetch has given out, so that no two files share one.

    A path collides with an earlier one when it is the same (compared
    case-insensitively and Unicode-normalised on a case-insensitive filesystem),
    when it lies below an earlier file (``x`` then ``x/y``) or when an earlier
    file lies below it (``x/y`` then ``x``).
    """

    def __init__(self, *, case_insensitive: bool = False) -> None:
        self.fold = case_insensitive
        self.files: dict[str, tuple[str, str]] = {}  # normalised path -> (path, uri)
        self.folders: dict[str, tuple[str, str]] = {}  # normalised folder -> a file below

    def _norm(self, path: str) -> str:
        return unicodedata.normalize("NFC", path).casefold() if self.fold else path

    def claim(self, path: str, uri: str = "") -> tuple[str, str] | None:
        """None when ``path`` is now this file's; else the (path, uri) it collides with."""
        key = self._norm(path)
        parts = key.split("/")
        above = ["/".join(parts[:i]) for i in range(1, len(parts))]
        owner = self.files.get(key) or self.folders.get(key)
        owner = owner or next((self.files[a] for a in above if a in self.files), None)
        if owner is not None:
            return owner
        self.files[key] = (path, uri)
        for folder in above:
            self.folders.setdefault(folder, (path, uri))
        return None


def claim_paths(paths: Iterable[str], *, case_insensitive: bool) -> list[str | None]:
    """For each path, None or the earlier path it collides with (see PathClaims)."""
    claims = PathClaims(case_insensitive=case_insensitive)
    return [owner[0] if (owner := claims.claim(p)) else None for p in paths]
