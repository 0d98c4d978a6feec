"""Parse what a user types as TARGET into a record reference (recid or DOI)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit

from odrun.errors import InvalidReferenceError

_RECID = re.compile(r"^(?:\d+|[a-z][a-z0-9]*-\d+)$", re.IGNORECASE)
_DOI = re.compile(r"^10\.\d{4,9}/\S+$")
_DOI_URL = re.compile(r"^https?://(?:dx\.)?doi\.org/(.+)$", re.IGNORECASE)
_RECORD_PATH = re.compile(r"^/(?:api/)?records?/([^/?#]+)/?", re.IGNORECASE)

DOI_EXAMPLE = "10.7483/OPENDATA.CMS.A342.9982"
EXPECTED = (
    f"expected a recid (5500 or cms-5500), a DOI ({DOI_EXAMPLE}, doi:..., "
    "https://doi.org/...) or a record URL (https://opendata.cern.ch/record/5500)"
)


@dataclass(frozen=True)
class RecordRef:
    kind: Literal["recid", "doi"]
    value: str

    def __str__(self) -> str:
        return self.value if self.kind == "recid" else f"doi:{self.value}"


def parse_reference(text: str) -> RecordRef:
    """Turn a DOI, doi: string, doi.org URL, recid or record URL into a :class:`RecordRef`."""
    raw = text.strip()
    if not raw:
        raise InvalidReferenceError(f"empty record reference: {EXPECTED}")
    if _RECID.match(raw):
        return RecordRef("recid", raw.lower() if not raw.isdigit() else str(int(raw)))
    doi_url = _DOI_URL.match(raw)
    if doi_url:
        return _doi(unquote(doi_url.group(1)), text)
    if raw.lower().startswith("doi:"):
        return _doi(raw[4:].strip(), text)
    if raw.startswith("10."):
        return _doi(raw, text)
    split = urlsplit(raw if "://" in raw else "https://" + raw)
    if ("/" in raw or "://" in raw) and split.scheme in ("http", "https") and split.netloc:
        match = _RECORD_PATH.match(split.path)
        if match and _RECID.match(match.group(1)):
            return parse_reference(match.group(1))
        raise InvalidReferenceError(
            f"{text!r} is not a record URL: expected https://<portal>/record/<recid>"
        )
    raise InvalidReferenceError(f"{text!r} is not a record reference: {EXPECTED}")


def _doi(candidate: str, text: str) -> RecordRef:
    if not _DOI.match(candidate):
        raise InvalidReferenceError(
            f"{text!r} is not a valid DOI: a DOI looks like 10.<4-9 digits>/<suffix>, "
            f"e.g. {DOI_EXAMPLE}"
        )
    return RecordRef("doi", candidate)
