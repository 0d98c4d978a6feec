"""Metadata cache, --offline, stale fallback and retries, against a real local portal."""

from __future__ import annotations

import os
import time
from pathlib import Path

from odrun import Settings
from odrun.records import Resolver


def api_requests(server) -> list[str]:
    return [p for p in server.requests if p.startswith("/api/")]


def test_second_lookup_needs_no_network(fresh_portal, odrun) -> None:
    url = fresh_portal.url
    first = odrun("--portal", url, "info", "10.7483/OPENDATA.CMS.KYMN.CR5R", "--json")
    assert first.code == 0
    count = len(api_requests(fresh_portal))
    assert count == 2  # DOI search + record
    again = odrun("--portal", url, "info", "10.7483/OPENDATA.CMS.KYMN.CR5R", "--json")
    assert again.json() == first.json()
    assert len(api_requests(fresh_portal)) == count
    offline = odrun("--portal", url, "--offline", "files", "9")
    assert offline.code == 0
    assert len(offline.out.splitlines()) == 325
    assert len(api_requests(fresh_portal)) == count


def test_refresh_asks_again(fresh_portal, odrun) -> None:
    first = odrun("--portal", fresh_portal.url, "info", "3005", "--json")
    assert first.code == 0, first.err
    assert first.json()["recid"] == "3005"
    assert api_requests(fresh_portal) == ["/api/records/3005"]
    cached = odrun("--portal", fresh_portal.url, "info", "3005", "--json")
    assert cached.json() == first.json()
    assert api_requests(fresh_portal) == ["/api/records/3005"]  # from the cache
    again = odrun("--portal", fresh_portal.url, "--refresh", "info", "3005", "--json")
    assert again.code == 0, again.err
    assert again.json()["recid"] == "3005"
    assert api_requests(fresh_portal) == ["/api/records/3005"] * 2


def test_offline_without_cache_is_a_clear_error(fresh_portal, odrun) -> None:
    result = odrun("--portal", fresh_portal.url, "--offline", "info", "3005")
    assert result.code == 5
    assert "not in the metadata cache and --offline is set" in result.err
    assert fresh_portal.requests == []


def test_retries_5xx_then_succeeds(fresh_portal, odrun) -> None:
    fresh_portal.fail_next = 2
    result = odrun("--portal", fresh_portal.url, "info", "3005", "--json")
    assert result.code == 0, result.err
    assert result.json()["recid"] == "3005"
    assert api_requests(fresh_portal) == ["/api/records/3005"] * 3


def test_gives_up_after_retries(fresh_portal, odrun, monkeypatch) -> None:
    monkeypatch.setenv("ODRUN_RETRIES", "2")
    fresh_portal.broken.add("/api/records/3005")
    result = odrun("--portal", fresh_portal.url, "info", "3005")
    assert result.code == 5
    assert "HTTP 503 (after 3 attempts)" in result.err
    assert len(api_requests(fresh_portal)) == 3


def test_no_retry_on_404(fresh_portal, odrun) -> None:
    result = odrun("--portal", fresh_portal.url, "info", "424242")
    assert result.code == 3
    assert api_requests(fresh_portal) == ["/api/records/424242"]


def test_stale_cache_used_when_portal_down(
    fresh_portal, odrun, isolated_env: Path, monkeypatch
) -> None:
    assert odrun("--portal", fresh_portal.url, "info", "3005").code == 0
    monkeypatch.setenv("ODRUN_METADATA_TTL", "0")
    for path in isolated_env.rglob("3005.json"):
        old = time.time() - 3600
        os.utime(path, (old, old))
    fresh_portal.broken.add("/api/records/3005")
    result = odrun("--portal", fresh_portal.url, "info", "3005", "--json")
    assert result.code == 0
    assert any("portal unreachable" in note for note in result.json()["notes"])


def test_cache_is_per_portal(fresh_portal, portal, odrun) -> None:
    first = odrun("--portal", portal.url, "info", "3005")
    assert first.code == 0, first.err
    # cached for that portal: offline it answers from the cache
    assert odrun("--portal", portal.url, "--offline", "info", "3005").code == 0, "not cached"
    result = odrun("--portal", fresh_portal.url, "--offline", "info", "3005")
    assert result.code == 5
    assert "not in the metadata cache and --offline is set" in result.err
    assert fresh_portal.requests == []


def test_library_api(portal, isolated_env: Path) -> None:
    settings = Settings.load({"portal_url": portal.url})
    with Resolver(settings) as resolver:
        record = resolver.resolve("https://opendata.cern.ch/record/30522")
    assert record.file_count == 29
    assert record.environment is not None
    assert record.experiment == "CMS"
    assert all(f.checksum and f.checksum.algorithm == "adler32" for f in record.files)
    assert list(isolated_env.rglob("30522.json"))
