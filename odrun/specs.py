"""Load the JSON Schemas in ``specs/`` (shipped in the wheel as ``odrun/_specs``)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

_HERE = Path(__file__).parent


def spec_path(name: str) -> Path:
    for folder in (_HERE / "_specs", _HERE.parent / "specs"):
        path = folder / name
        if path.is_file():
            return path
    raise FileNotFoundError(f"schema {name} is missing from this odrun installation")


@cache
def load_spec(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(spec_path(name).read_text(encoding="utf-8"))
    return data
