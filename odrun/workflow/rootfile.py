"""A budget for reading ROOT files someone else wrote (``odrun diff``, ``expect:``).

uproot decompresses each object of a ROOT file block by block, trusting the sizes the
file declares: zlib's ``decompress`` inflates a block completely before uproot compares
it with its header, so a 300 kB block can become gigabytes (a compression bomb), and
honest blocks of a crafted object can add up to as much. :func:`root_budget` installs
a check before every block (uproot's own ``decompress.hook_before_block``):

- the object and the block must fit in what is left of ``MAX_ROOT_BYTES``, counted over
  everything read while the budget is open (declared sizes, before any allocation);
- the block's stream is first inflated *bounded* (zlib, LZMA: at most one byte more than
  its header declares; ZSTD: its frame is walked for an upper bound, nothing inflated),
  so a block that would inflate beyond its header is refused before uproot inflates it;
- the budget's time (``MAX_ROOT_SECONDS``) is checked before each block.

Any refusal is a :class:`RootBudgetError` (a HistogramError) naming the file. Budgets
nest (each block counts against all open ones). Nothing here prints.
"""

from __future__ import annotations

import lzma
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from odrun.errors import HistogramError

#: bytes decompressed while one budget is open (a histogram of 8 million bins is 64 MiB)
MAX_ROOT_BYTES = 64 * 1024 * 1024
#: seconds one budget may spend decompressing
MAX_ROOT_SECONDS = 60.0
_MIB = 1024 * 1024
_ZSTD_MAGIC = 0xFD2FB528
_ZSTD_BLOCK_MAX = 128 * 1024


class RootBudgetError(HistogramError):
    """A ROOT file asks for more decompression than a budget allows (or is a bomb)."""


@dataclass
class _Budget:
    where: str
    limit: int
    left: int
    deadline: float

    def charge(self, size: int, what: str) -> None:
        if size > self.left:
            raise RootBudgetError(
                f"{self.where}: {what} decompresses to more than {self.limit // _MIB} MiB "
                f"({size:,} bytes with {self.limit - self.left:,} read already): refused "
                "(a compression bomb, or far larger than a histogram)"
            )
        self.left -= size
        if time.monotonic() > self.deadline:
            raise RootBudgetError(
                f"{self.where}: decompressing took longer than {MAX_ROOT_SECONDS:g} s: refused"
            )


_ACTIVE: list[_Budget] = []
_LOCK = threading.RLock()
_saved: list[Any] = []


@contextmanager
def root_budget(where: str) -> Iterator[None]:
    """Bound what uproot decompresses inside this block (see the module docstring);
    ``where`` names the file in errors. Raises ConfigError-free: without uproot, nothing."""
    try:
        from uproot import compression  # noqa: PLC0415 - optional, heavy
    except ImportError:
        yield
        return
    budget = _Budget(where, MAX_ROOT_BYTES, MAX_ROOT_BYTES, time.monotonic() + MAX_ROOT_SECONDS)
    with _LOCK:
        if not _ACTIVE:
            _saved.append(compression.decompress.hook_before_block)
            compression.decompress.hook_before_block = _before_block
        _ACTIVE.append(budget)
    try:
        yield
    finally:
        with _LOCK:
            _ACTIVE.remove(budget)
            if not _ACTIVE:
                compression.decompress.hook_before_block = _saved.pop()


def _charge(size: int, what: str) -> None:
    with _LOCK:
        for budget in _ACTIVE:
            budget.charge(size, what)


def _before_block(**kw: Any) -> None:
    """uproot's hook, before each compressed block of an object is read."""
    from uproot import compression  # noqa: PLC0415 - only called from uproot

    chunk, cursor, context = kw["chunk"], kw["cursor"], kw["context"]
    if kw.get("num_blocks") == 0:  # before uproot allocates the whole object
        _check_declared(int(kw["uncompressed_bytes"]))
    header = compression._decompress_header_format
    algo, _method, c1, c2, c3, u1, u2, u3 = cursor.fields(chunk, header, context, move=False)
    packed = c1 + (c2 << 8) + (c3 << 16)
    declared = u1 + (u2 << 8) + (u3 << 16)
    after = cursor.copy()
    after.skip(header.size)
    if algo == b"ZL":
        data = after.bytes(chunk, packed, context, move=False)
        _bounded(zlib.decompressobj().decompress(bytes(data), declared + 1), declared)
    elif algo == b"XZ":
        data = after.bytes(chunk, packed, context, move=False)
        try:
            out = lzma.LZMADecompressor().decompress(bytes(data), max_length=declared + 1)
        except lzma.LZMAError:
            out = b""  # uproot reports the broken stream itself
        _bounded(out, declared)
    elif algo == b"ZS":
        data = after.bytes(chunk, packed, context, move=False)
        _charge(max(declared, _zstd_bound(bytes(data))), "a ZSTD block")
        return
    # L4 blocks are inflated into a buffer of the declared size (never more)
    _charge(declared, "an object")


def _check_declared(total: int) -> None:
    with _LOCK:
        for budget in _ACTIVE:
            if total > budget.left:
                budget.charge(total, "an object")  # raises with the numbers


def _bounded(out: bytes, declared: int) -> None:
    if len(out) > declared:
        with _LOCK:
            where = _ACTIVE[-1].where if _ACTIVE else "a ROOT file"
        raise RootBudgetError(
            f"{where}: a compressed block inflates beyond the {declared:,} bytes its header "
            "declares: refused (a compression bomb)"
        )
    _charge(declared, "an object")


def _zstd_bound(data: bytes) -> int:
    """An upper bound of what the ZSTD frames in ``data`` inflate to, from their block
    headers (raw and RLE blocks: their size; compressed blocks: at most 128 KiB)."""
    total, pos, end = 0, 0, len(data)
    while pos + 4 <= end:
        (magic,) = struct.unpack_from("<I", data, pos)
        pos += 4
        if magic & 0xFFFFFFF0 == 0x184D2A50:  # a skippable frame
            if pos + 4 > end:
                break
            pos += 4 + struct.unpack_from("<I", data, pos)[0]
            continue
        if magic != _ZSTD_MAGIC or pos >= end:
            break  # not ZSTD: uproot refuses it itself
        descriptor = data[pos]
        pos += 1
        single = descriptor >> 5 & 1
        pos += (0 if single else 1) + (0, 1, 2, 4)[descriptor & 3]
        pos += (single, 2, 4, 8)[descriptor >> 6]
        while pos + 3 <= end:
            word = data[pos] | data[pos + 1] << 8 | data[pos + 2] << 16
            pos += 3
            kind, size = word >> 1 & 3, word >> 3
            total += _ZSTD_BLOCK_MAX if kind == 2 else size
            pos += 1 if kind == 1 else size
            if word & 1:
                break
        pos += 4 if descriptor & 4 else 0
    return total


__all__ = ["MAX_ROOT_BYTES", "MAX_ROOT_SECONDS", "RootBudgetError", "root_budget"]
