"""Citation recommendations for a record: plain text, BibTeX and CSL-JSON."""

from __future__ import annotations

import re
from typing import Any, Literal

from .model import Record

CiteFormat = Literal["text", "bibtex", "json"]
PUBLISHER = "CERN Open Data Portal"


def _creators(record: Record) -> list[str]:
    if record.authors:
        return list(record.authors)
    if record.collaboration:
        return [record.collaboration]
    if record.experiments:
        return [f"{e} collaboration" for e in record.experiments]
    return []


def _year(record: Record) -> str | None:
    match = re.search(r"\d{4}", record.date_published or "")
    return match.group(0) if match else None


def _url(record: Record) -> str:
    return f"https://doi.org/{record.doi}" if record.doi else record.record_url


def as_csl(record: Record) -> dict[str, Any]:
    """CSL-JSON item (the format citeproc and Zotero read)."""
    item: dict[str, Any] = {
        "id": f"cod-{record.recid}",
        "type": "software" if record.type_primary == "Software" else "dataset",
        "title": record.title,
        "author": [{"literal": name} for name in _creators(record)],
        "publisher": PUBLISHER,
        "URL": _url(record),
    }
    if record.doi:
        item["DOI"] = record.doi
    year = _year(record)
    if year:
        item["issued"] = {"date-parts": [[int(year)]]}
    return item


def as_text(record: Record) -> str:
    creators = "; ".join(_creators(record)) or "CERN Open Data"
    year = _year(record)
    parts = [f"{creators} ({year})." if year else f"{creators}.", f"{record.title}."]
    parts.append(f"{PUBLISHER}.")
    parts.append(f"DOI:{record.doi}" if record.doi else f"{record.record_url}")
    return " ".join(parts)


_LATEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\^{}",
}


def _tex(text: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in text)


def as_bibtex(record: Record) -> str:
    key_exp = re.sub(r"[^A-Za-z0-9]", "", record.experiments[0]) if record.experiments else "COD"
    key = f"{key_exp}_OpenData_{re.sub(r'[^A-Za-z0-9]', '', record.recid)}"
    # personal names stay parseable; a collaboration is kept as one literal name
    wrap = "{}" if record.authors else "{{{}}}"
    fields = [("author", " and ".join(wrap.format(_tex(c)) for c in _creators(record)))]
    fields.append(("title", "{" + _tex(record.title) + "}"))
    fields.append(("publisher", _tex(PUBLISHER)))
    year = _year(record)
    if year:
        fields.append(("year", year))
    if record.doi:
        fields.append(("doi", _tex(record.doi)))
    fields.append(("url", _url(record)))
    body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields if value)
    return f"@misc{{{key},\n{body}\n}}"


def cite(record: Record, fmt: CiteFormat = "text") -> str | dict[str, Any]:
    if fmt == "bibtex":
        return as_bibtex(record)
    if fmt == "json":
        return as_csl(record)
    return as_text(record)
