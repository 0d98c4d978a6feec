"""Guarded conversions of untrusted text: numbers, URLs and JSON, without surprise exceptions.

Python's own conversions fail in ways a parser of hostile input must not pass on:
``int("²")`` although ``"²".isdigit()``; ``int("9" * 5000)`` and ``str(10**5000)``
(the 4300-digit limit); ``float(10**400)`` and ``int(float("inf"))`` (OverflowError);
``urlsplit("https://[::1/x")`` (ValueError); ``json.loads("[" * 100_000)``
(RecursionError); and JSON's ``"\\ud800"`` gives a string no terminal or file takes.
The helpers here return None, or raise ValueError only, so each caller maps a bad
value to its own typed error (:mod:`odrun.errors`) in one place.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

#: the largest count or size odrun believes (a file of 8 EiB, 9e18 files)
MAX_COUNT = 2**63 - 1
_MAX_DIGITS = len(str(MAX_COUNT))
#: the most of one untrusted file (an analysis's output table) read into memory at once
MAX_READ_BYTES = 128 * 1024 * 1024


def count(value: Any, *, limit: int = MAX_COUNT) -> int | None:
    """A count or size ``0 <= n <= limit`` from an int or a string of ASCII digits, else None.

    None for booleans, floats, negative numbers, non-ASCII digits (``²``, ``٣``) and
    absurdly large values, which no real file or record has.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= limit else None
    if isinstance(value, str):
        text = value.strip()
        digits = text.lstrip("0") or "0"
        if text.isascii() and text.isdigit() and len(digits) <= _MAX_DIGITS:
            number = int(digits)
            return number if number <= limit else None
    return None


def text(value: Any) -> str | None:
    """``str(value)`` for a str, int or float (stripped, None if empty); None for anything else,
    and for an int too long to print (``str(10**5000)`` raises ValueError)."""
    if type(value) is str:  # the common case, once per file entry: fast path
        out = value.strip()
        return (out if out.isascii() else printable(out)) or None
    if value is None or isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    try:
        out = str(value).strip()
    except ValueError:
        return None
    return printable(out) or None


def printable(value: str) -> str:
    """``value`` with lone surrogates (JSON ``"\\ud800"`` escapes) replaced by U+FFFD:
    they cannot be written to a terminal, a UTF-8 file or a file name."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def split_url(url: str) -> SplitResult | None:
    """``urlsplit(url)``, or None when urllib refuses it (``https://[::1/x``: bad IPv6)."""
    try:
        return urlsplit(url)
    except ValueError:
        return None


def load_json(data: str | bytes) -> Any:
    """``json.loads`` that raises only ValueError: also for undecodable bytes and deep nesting."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def read_text(path: Path, limit: int = MAX_READ_BYTES) -> str:
    """The text of a regular file of at most ``limit`` bytes (a BOM dropped).

    Raises ValueError for anything else: a FIFO or device (never opened for reading, so
    never blocks), a file larger than ``limit`` (also one that grows while it is read), or
    bytes that are not UTF-8; OSError as ``open`` does.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path.name} is not a regular file")
        if info.st_size > limit:
            raise ValueError(f"{path.name} is larger than {limit} bytes ({info.st_size})")
        # read() preallocates what it is asked for: ask for the file's size (and one more
        # byte, which shows a file that grew), not for the limit
        data = handle.read(info.st_size + 1)
        if len(data) > info.st_size:  # it grew while being read: the rest, bounded
            data += handle.read(limit + 1 - len(data))
    if len(data) > limit:
        raise ValueError(f"{path.name} is larger than {limit} bytes (it grew)")
    try:
        return data.decode("utf-8-sig")  # a BOM (Excel, pandas) is not data
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path.name} is not UTF-8 text: {exc.reason}") from None


def read_tail(path: Path, max_bytes: int) -> bytes:
    """The last ``max_bytes`` bytes of a regular file (a log of any size costs no more).

    Raises ValueError for a FIFO or device (never opened for reading, so never blocks);
    OSError as ``open`` does.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path.name} is not a regular file")
        handle.seek(max(0, info.st_size - max_bytes))
        return handle.read(max_bytes)
