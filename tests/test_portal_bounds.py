"""The portal's answers are read bounded while they arrive: a record document, a DOI
search and a file index (at most the size the record declares for it) cannot make odrun
hold an endless body in memory."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from odrun.errors import ChecksumError, TooLargeError
from odrun.records import portal as portal_module
from odrun.records.portal import HttpPortal
from odrun.records.resolve import Resolver
from odrun.settings import Settings

MIB = 1024 * 1024


class Endless:
    """A body of ``chunks`` MiB of JSON whitespace after ``{``, counting what was sent."""

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        yield b'{"hits": '
        for _ in range(self.chunks):
            self.sent += 1
            yield b" " * MIB
        yield b"}"


def _client(body: Endless) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=iter(body))

    return httpx.Client(transport=httpx.MockTransport(handler))


def _settings() -> Settings:
    return Settings.load({"retries": 0, "portal_url": "https://portal.invalid"})


@pytest.mark.parametrize("call", ["record", "doi"])
def test_a_portal_answer_is_read_bounded(monkeypatch: pytest.MonkeyPatch, call: str) -> None:
    monkeypatch.setattr(portal_module, "MAX_RECORD_BYTES", 2 * MIB)
    monkeypatch.setattr(portal_module, "MAX_SEARCH_BYTES", 2 * MIB)
    body = Endless(64)
    with _client(body) as client:
        portal = HttpPortal("https://portal.invalid", _settings(), lambda: client)
        ask = portal.get_record if call == "record" else portal.find_doi
        with pytest.raises(TooLargeError, match="larger than"):
            ask("1" if call == "record" else "10.7483/OPENDATA.CMS.X")
    assert body.sent <= 4, f"{body.sent} MiB read for a 2 MiB limit"


def test_an_index_longer_than_the_record_says_is_refused_while_it_arrives() -> None:
    body = Endless(64)
    with Resolver(_settings()) as resolver, _client(body) as client:
        resolver._client = client
        entry = {"uri": "https://eos.invalid/x_file_index.json", "size": 100}
        with pytest.raises(ChecksumError, match="100 bytes"):
            resolver._load_index(entry)
        assert resolver._index_outage is None, "a long index is no storage outage"
    assert body.sent <= 2, f"{body.sent} MiB read for a 100-byte index"
