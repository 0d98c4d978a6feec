"""Parse what a user types as TARGET into a record reference (recid or DOI)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

from odrun import untrusted
from odrun.errors import InvalidReferenceError

_RECID = re.compile(r"^(?:[0-9]+|[a-z][a-z0-9]*-[0-9]+)$", re.IGNORECASE)
#: a recid names folders and cache files: digits, or <experiment>-<digits>, bounded
_SAFE_RECID = re.compile(r"^(?:[0-9]{1,20}|[a-z][a-z0-9]{0,31}-[0-9]{1,20})$", re.IGNORECASE)
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
        # no int(): it refuses more than 4300 digits
        value = (raw.lstrip("0") or "0") if raw.isdigit() else raw.lower()
        if not is_recid(value):
            raise InvalidReferenceError(
                f"recid {_shown(text)} is too long ({len(value)} characters): a recid has at "
                "most 20 digits, e.g. 5500 or cms-5500"
            )
        return RecordRef("recid", value)
    doi_url = _DOI_URL.match(raw)
    if doi_url:
        return _doi(unquote(doi_url.group(1)), text)
    if raw.lower().startswith("doi:"):
        return _doi(raw[4:].strip(), text)
    if raw.startswith("10."):
        return _doi(raw, text)
    split = untrusted.split_url(raw if "://" in raw else "https://" + raw)
    if split is None:  # e.g. https://[::1/record/1 (urllib: "Invalid IPv6 URL")
        raise InvalidReferenceError(f"{_shown(text)} is not a valid URL: {EXPECTED}")
    if ("/" in raw or "://" in raw) and split.scheme in ("http", "https") and split.netloc:
        match = _RECORD_PATH.match(split.path)
        if match and _RECID.match(match.group(1)):
            return parse_reference(match.group(1))
        raise InvalidReferenceError(
            f"{_shown(text)} is not a record URL: expected https://<portal>/record/<recid>"
        )
    raise InvalidReferenceError(f"{_shown(text)} is not a record reference: {EXPECTED}")


def is_recid(value: str) -> bool:
    """Whether ``value`` is a recid safe to name a folder or cache file with."""
    return bool(_SAFE_RECID.match(value))


def _shown(text: str, limit: int = 100) -> str:
    """``text`` quoted for a one-line message, cut when a hostile input is long."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


def _doi(candidate: str, text: str) -> RecordRef:
    if not _DOI.match(candidate):
        raise InvalidReferenceError(
            f"{_shown(text)} is not a valid DOI: a DOI looks like 10.<4-9 digits>/<suffix>, "
            f"e.g. {DOI_EXAMPLE}"
        )
    return RecordRef("doi", candidate)
