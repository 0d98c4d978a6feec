"""Checksums as ``"alg:hex"`` values: parsing the portal's messy strings, streaming hashers.

Real records carry ``adler32:0a1b2c3d``, ``adler32:aa8c36a`` (not zero-padded),
``sha1:<40 hex>`` and even the typo ``alder32:``. :func:`parse_checksum` accepts
all of them and normalises to lower-case, zero-padded hex so that two spellings
of one value compare equal.
"""

from __future__ import annotations

import hashlib
import os
import re
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import MetadataError

#: algorithm -> hex digits of its digest
ALGORITHMS = {"adler32": 8, "sha1": 40, "sha256": 64, "md5": 32}
_ALIASES = {"alder32": "adler32", "adler-32": "adler32", "sha-1": "sha1", "sha-256": "sha256"}
_HEX = re.compile(r"^[0-9a-f]+$")
_INTERNED = {name: name for name in ALGORITHMS}
BLOCK_SIZE = 4 * 1024 * 1024


def _adler32_impl() -> Callable[[bytes | memoryview, int], int]:
    """zlib-ng's SIMD adler32 (extra ``odrun[fast]``, ~5x faster) when installed, else zlib's."""
    try:
        from zlib_ng import zlib_ng  # noqa: PLC0415 - optional dependency
    except ImportError:
        return zlib.adler32
    return zlib_ng.adler32


adler32 = _adler32_impl()


@dataclass(frozen=True, order=True, slots=True)
class Checksum:
    algorithm: str
    value: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.value}"


_NORMAL = re.compile(r"(adler32|sha1|sha256|md5):([0-9a-f]+)")


def parse_checksum(text: str, *, where: str = "checksum") -> Checksum:
    """Parse ``alg:hex`` leniently (aliases, missing zero padding); raise MetadataError."""
    normal = _NORMAL.fullmatch(text)
    if normal and len(normal[2]) == ALGORITHMS[normal[1]]:  # already canonical: fast path
        return Checksum(_INTERNED[normal[1]], normal[2])
    alg, sep, value = text.strip().partition(":")
    alg = _ALIASES.get(alg.lower(), alg.lower())
    value = value.strip().lower()
    width = ALGORITHMS.get(alg)
    if not sep or width is None or not value or not _HEX.match(value) or len(value) > width:
        raise MetadataError(
            f"{where} {text!r} is not a checksum: expected 'adler32:<hex>' or 'sha1:<hex>'"
        )
    return Checksum(alg, value.zfill(width))


_ADLER_BASE = 65521


def adler32_combine(first: int, second: int, second_length: int) -> int:
    """The adler32 of ``A + B`` from ``adler32(A)``, ``adler32(B)`` and ``len(B)`` (zlib's formula).

    Lets byte ranges fetched concurrently be hashed as they arrive and still give
    the checksum of the whole file in order.
    """
    rem = second_length % _ADLER_BASE
    sum1 = first & 0xFFFF
    sum2 = (rem * sum1) % _ADLER_BASE
    sum1 += (second & 0xFFFF) + _ADLER_BASE - 1
    sum2 += ((first >> 16) & 0xFFFF) + ((second >> 16) & 0xFFFF) + _ADLER_BASE - rem
    if sum1 >= _ADLER_BASE:
        sum1 -= _ADLER_BASE
    if sum1 >= _ADLER_BASE:
        sum1 -= _ADLER_BASE
    if sum2 >= _ADLER_BASE << 1:
        sum2 -= _ADLER_BASE << 1
    if sum2 >= _ADLER_BASE:
        sum2 -= _ADLER_BASE
    return sum1 | (sum2 << 16)


class Hasher:
    """Incremental digest for one algorithm, fed block by block."""

    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm
        self._adler = 1
        self._hash = None if algorithm == "adler32" else hashlib.new(algorithm)

    def update(self, data: bytes | memoryview) -> None:
        if self._hash is None:
            self._adler = adler32(data, self._adler)
        else:
            self._hash.update(data)

    def checksum(self) -> Checksum:
        if self._hash is None:
            return Checksum("adler32", f"{self._adler & 0xFFFFFFFF:08x}")
        return Checksum(self.algorithm, self._hash.hexdigest())


def checksum_blocks(blocks: Iterable[bytes], algorithm: str = "adler32") -> Checksum:
    hasher = Hasher(algorithm)
    for block in blocks:
        hasher.update(block)
    return hasher.checksum()


def checksum_file(path: Path, algorithm: str = "adler32") -> Checksum:
    """Stream a file through the hasher; never holds more than one block in memory."""
    hasher = Hasher(algorithm)
    feed_file(path, hasher)
    return hasher.checksum()


def feed_file(path: Path, hasher: Hasher) -> int:
    """Stream a file into ``hasher`` block by block; return its length."""
    with path.open("rb", buffering=0) as fh:
        return feed_fd(fh.fileno(), hasher)


def feed_fd(fd: int, hasher: Hasher) -> int:
    """Stream an open file from its start into ``hasher``; return how many bytes it held.

    Reads by position (``pread``): the descriptor's own offset is left alone, so
    a file opened for appending can be hashed and then written through one fd.
    """
    # a block-sized buffer only for files that need it: small files are common
    buf = bytearray(max(1, min(BLOCK_SIZE, os.fstat(fd).st_size)))
    view = memoryview(buf)
    total = 0
    while n := os.preadv(fd, [buf], total):
        hasher.update(view[:n])
        total += n
    return total
