"""Read unbinned samples (one number per entry) for Kolmogorov-Smirnov expectations.

- CSV: the column named ``column`` (a file with one column needs no name);
- JSON: a list of numbers at the dotted key ``column``, or, when the document (or the
  value at that key's parent) is a list of objects, the field ``column`` of each;
- any other file: whitespace-separated numbers (``column`` is ignored).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from odrun import untrusted


class SampleError(ValueError):
    """A sample is missing or malformed; the message names the file and column."""


def _numbers(values: list[Any], where: str) -> list[float]:
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        raise SampleError(f"{where} holds a value that is not a number") from None
    if not out:
        raise SampleError(f"{where} holds no values")
    if not all(math.isfinite(v) for v in out):
        raise SampleError(f"{where} holds a value that is not finite")
    return out


def _from_csv(text: str, column: str, where: str) -> list[float]:
    reader = csv.DictReader(io.StringIO(text))
    fields = reader.fieldnames or []
    if not column and len(fields) == 1:
        column = fields[0]
    if column not in fields:
        raise SampleError(f"{where}: no column {column!r} (columns: {', '.join(fields)})")
    return _numbers([row[column] for row in reader if row.get(column) not in (None, "")], where)


def _from_json(doc: Any, column: str, where: str) -> list[float]:
    parts = [p for p in column.split(".") if p]
    node = doc
    for n, part in enumerate(parts):
        if isinstance(node, list) and node and all(isinstance(r, dict) for r in node):
            field = ".".join(parts[n:])
            if not all(field in r for r in node):
                raise SampleError(f"{where}: not every entry has the field {field!r}")
            return _numbers([r[field] for r in node], where)
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise SampleError(f"{where}: no key {column!r}")
    if not isinstance(node, list):
        raise SampleError(f"{where} is not a list of numbers")
    return _numbers(node, where)


def read_sample(path: Path, column: str = "") -> list[float]:
    """The values of ``column`` in ``path``; SampleError names what is wrong."""
    where = f"{path.name}#{column}" if column else path.name
    try:
        text = untrusted.read_text(path)  # bounded, regular files only; BOM dropped
    except (OSError, ValueError) as exc:
        raise SampleError(f"{where} is not readable: {exc}") from None
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _from_csv(text, column, where)
    if suffix == ".json":
        try:
            doc = untrusted.load_json(text)
        except ValueError:
            raise SampleError(f"{where} is not valid JSON") from None
        return _from_json(doc, column, where)
    return _numbers(text.split(), where)
