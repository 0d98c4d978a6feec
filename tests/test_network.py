"""Optional checks against the live CERN Open Data portal (run with ODRUN_TEST_NETWORK=1)."""

from __future__ import annotations

import pytest

from odrun import Settings, resolve

pytestmark = pytest.mark.network


def test_live_portal_resolves_doi() -> None:
    record = resolve("10.7483/OPENDATA.CMS.A342.9982", Settings.load())
    assert record.recid == "1"
    assert record.file_count == 2916
    assert record.files_complete


def test_live_portal_record_3005() -> None:
    record = resolve("3005", Settings.load())
    assert record.files[0].size == 3644
    assert str(record.files[0].checksum) == "adler32:be83a186"
