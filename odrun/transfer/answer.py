"""What an HTTP answer must show before its bytes are used as a file's (both http:// paths
of :mod:`odrun.transfer.http`, httpx's and ``PlainHttp``; ``size`` is the declared size):

- ``200``: a Content-Length equal to ``size``; without one, the body is used only
  if it delivers exactly ``size`` bytes (on a failure or a short end it is dropped,
  never resumed from: ``TransientError.resumable`` is False);
- ``206`` (a resume): ``Content-Range: bytes <offset>-<last>/<size>``, the start
  we asked for AND the declared total length, ``<last>`` inside the file, and a
  Content-Length (if any) of that range's length;
- a ``200`` to a Range request (the server ignores Range) must carry the full
  declared Content-Length; its first ``offset`` bytes are dropped.

Anything else (another length, another range, an unknown total) is not this file:
a longer one is a ChecksumError, a shorter or unclear one a TransientError whose
bytes are not kept.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Protocol

from odrun import http as odrun_http
from odrun.errors import NotFoundError, TransientError, TransportError
from odrun.transfer.base import length_mismatch
from odrun.untrusted import count

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class Answer(Protocol):
    """What the checks below read of a response: httpx's, or ``http.client``'s status and
    headers (names in lower case)."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...


def check_status(response: Answer, uri: str, offset: int) -> None:
    """Raise for a status that is not a file's bytes."""
    status = response.status_code
    if status in (404, 410):
        raise NotFoundError(f"{uri}: HTTP {status}, no such file")
    if status in odrun_http.RETRY_STATUS:
        raise TransientError(f"{uri}: HTTP {status}")
    if status == 416 and offset:
        raise TransientError(
            f"{uri}: HTTP 416, nothing from byte {offset} on: the file there is shorter "
            "than the record declares"
        )
    if status >= 400:
        raise TransportError(f"{uri}: HTTP {status}", hint="check access rights and the URL")
    if status not in (200, 206):
        raise TransportError(f"{uri}: HTTP {status}, expected 200 or 206 with the file's bytes")


def check_length(response: Answer, uri: str, offset: int, size: int | None) -> tuple[int, bool]:
    """Check a 200/206 against the declared size: (leading bytes to drop, vouched)."""
    length = content_length(response)
    if response.status_code == 206:
        last = content_range(response, uri, offset, None, size)
        range_length(uri, length, last + 1 - offset)
        return 0, True
    if length is not None and size is not None and length != size:
        raise length_mismatch(uri, length, size)
    vouched = length is not None
    if offset and not vouched:
        raise TransientError(
            f"{uri}: server ignored the Range request and did not say the length",
            resumable=False,
        )
    return offset, vouched


def content_range(
    response: Answer, uri: str, start: int, last: int | None, size: int | None
) -> int:
    """A 206 must say ``bytes start-last/size`` (``last`` None: any end inside the file;
    ``size`` None: any total but a number): the bytes asked for, of a file of the declared
    length. Returns the range's last byte."""
    header = response.headers.get("content-range", "").strip()
    match = _CONTENT_RANGE.fullmatch(header)
    end = count(match.group(2)) if match is not None else None
    total = count(match.group(3)) if match is not None else None
    wrong_end = (
        end is None
        or (last is not None and end != last)
        or end < start
        or (total is not None and end >= total)  # past the file's end: not a range of it
    )
    if not match or count(match.group(1)) != start or wrong_end:
        asked = f"bytes {start}-{last}" if last is not None else f"bytes from {start}"
        raise TransientError(
            f"{uri}: server answered a different byte range ({header!r} for {asked})",
            resumable=False,
        )
    if total is None:
        raise TransientError(
            f"{uri}: server's Content-Range does not say the file's length", resumable=False
        )
    if size is not None and total != size:
        raise length_mismatch(uri, total, size)
    assert end is not None  # checked with the range
    return end


def check_range(response: Answer, uri: str, start: int, stop: int, size: int) -> None:
    """A 206 to ``bytes=start-(stop-1)`` must say exactly that range of a ``size``-byte file."""
    content_range(response, uri, start, stop - 1, size)
    range_length(uri, content_length(response), stop - start)


def range_length(uri: str, length: int | None, expected: int) -> None:
    """A 206's Content-Length, when given, is the length of the range it names."""
    if length is not None and length != expected:
        raise TransientError(
            f"{uri}: Content-Length {length} for a range of {expected} bytes",
            resumable=False,
        )


def content_length(response: Answer) -> int | None:
    return count(response.headers.get("content-length"))
