"""One contract every transport passes: full read, read from an offset, empty tail, not found."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from odrun.errors import ChecksumError, NotFoundError, TransientError
from odrun.settings import Settings
from odrun.transfer.base import Transport
from odrun.transfer.http import HttpTransport
from odrun.transfer.local import FileTransport
from odrun.transfer.multistream import RangeReader
from odrun.transfer.xrootd import XrdcpTransport, XRootDTransport

from conftest import blob

DATA = blob(99, 5 * 1024 * 1024 + 123)  # more than one 4 MiB chunk

# each case: (make transport, publish(name, bytes) -> uri)
Case = tuple[Transport, Callable[[str, bytes], str]]


@pytest.fixture(params=["xrootd", "xrdcp", "http-xrootd", "http-own", "file"])
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Case]:
    made = _make_case(request, tmp_path)
    yield made
    close = getattr(made[0], "close", None)
    if close:
        close()


def _make_case(request: pytest.FixtureRequest, tmp_path: Path) -> Case:
    settings = Settings.load({"timeout": 10})
    kind = request.param
    if kind in ("xrootd", "xrdcp", "http-xrootd"):
        xrd = request.getfixturevalue("xrd")

        def publish_xrd(name: str, data: bytes) -> str:
            xrd.add(f"contract/{name}", data)
            uri = xrd.uri(f"contract/{name}")
            return uri.replace(xrd.root_url, xrd.http_url) if kind == "http-xrootd" else uri

        transport: Transport = {
            "xrootd": XRootDTransport,
            "xrdcp": XrdcpTransport,
            "http-xrootd": HttpTransport,
        }[kind](settings)
        if not transport.available():
            pytest.skip(f"{kind} transport not available here")
        return transport, publish_xrd
    if kind == "http-own":
        server = request.getfixturevalue("faults")
        return HttpTransport(settings), lambda name, data: server.add(f"/c/{name}", data)

    def publish_file(name: str, data: bytes) -> str:
        path = tmp_path / name
        path.write_bytes(data)
        return path.as_uri()

    return FileTransport(), publish_file


def test_full_read(case: Case) -> None:
    transport, publish = case
    uri = publish("full.bin", DATA)
    assert b"".join(transport.stream(uri)) == DATA


@pytest.mark.parametrize("offset", [1, 4 * 1024 * 1024, len(DATA) - 1])
def test_read_from_offset(case: Case, offset: int) -> None:
    transport, publish = case
    uri = publish("offset.bin", DATA)
    assert b"".join(transport.stream(uri, offset, len(DATA))) == DATA[offset:]
    # without the size hint too (HTTP asks for the length first)
    assert b"".join(transport.stream(uri, offset)) == DATA[offset:]


def test_empty_file(case: Case) -> None:
    transport, publish = case
    uri = publish("empty.bin", b"")
    assert b"".join(transport.stream(uri)) == b""


def test_missing_file_is_not_found(case: Case) -> None:
    transport, publish = case
    uri = publish("exists.bin", b"x").replace("exists.bin", "missing.bin")
    with pytest.raises(NotFoundError):
        b"".join(transport.stream(uri))


@pytest.mark.parametrize(
    ("start", "stop"), [(0, 1), (1, 4 * 1024 * 1024 + 7), (len(DATA) - 5, len(DATA))]
)
def test_read_range(case: Case, start: int, stop: int) -> None:
    """Multi-stream transports yield exactly the range asked for, nothing before or after."""
    transport, publish = case
    if not isinstance(transport, RangeReader):
        # only xrdcp (a pipe from byte 0) has no ranges: the engine gives it one stream
        assert transport.name == "xrdcp"
        return
    uri = publish("range.bin", DATA)
    assert b"".join(transport.read_range(uri, start, stop, len(DATA))) == DATA[start:stop]


def test_read_range_of_another_size_is_refused(case: Case) -> None:
    transport, publish = case
    if not isinstance(transport, RangeReader):
        assert transport.name == "xrdcp"
        return
    uri = publish("other.bin", DATA)
    with pytest.raises((ChecksumError, TransientError)):
        b"".join(transport.read_range(uri, 0, 10, len(DATA) - 1))
