"""OpenAPI (Swagger 2.0) checks of REANA exchanges: requests and responses against the spec.

Every request is checked against the operation it hits (path, method, declared
and required query parameters, their types and enums, content type, JSON body
schema) and every response against the declared status codes and response
schema (JSON Schema draft 4, ``x-nullable`` honoured).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema

SPECS = Path(__file__).resolve().parent.parent / "specs" / "reana"
LEGACY_SPEC = SPECS / "reana_server.v0.9.11.json"
BUNDLE_SPEC = SPECS / "reana_server.json"


def _nullable(schema: Any) -> Any:
    """Swagger 2.0 ``x-nullable: true`` as JSON Schema's ``type: [T, "null"]``."""
    if isinstance(schema, dict):
        out = {k: _nullable(v) for k, v in schema.items()}
        if out.pop("x-nullable", False) and isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        return out
    if isinstance(schema, list):
        return [_nullable(v) for v in schema]
    return schema


class Spec:
    """The operations of a Swagger 2.0 document, matched by method and path."""

    def __init__(self, path: Path) -> None:
        self.doc = json.loads(path.read_text())
        self.routes: list[tuple[re.Pattern[str], str, dict[str, Any]]] = []
        for template, ops in self.doc["paths"].items():
            pattern = re.sub(r"\\\{file_name\\\}", r"(?P<file_name>.+)", re.escape(template))
            pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", pattern)
            for method, op in ops.items():
                self.routes.append((re.compile(f"^{pattern}$"), method.upper(), op))
        # the more specific routes (more literal characters) first
        self.routes.sort(key=lambda r: -len(r[0].pattern.replace("(?P<file_name>.+)", "")))

    def operation(self, method: str, path: str) -> tuple[dict[str, Any], dict[str, str]] | None:
        for pattern, m, op in self.routes:
            found = pattern.match(path)
            if found and m == method:
                return op, found.groupdict()
        return None


def check_request(
    spec: Spec,
    method: str,
    path: str,
    query: dict[str, list[str]],
    content_type: str,
    body: bytes,
    strict_query: bool = True,
) -> list[str]:
    """Everything wrong with a request according to the spec (empty: conforms)."""
    found = spec.operation(method, path)
    if found is None:
        return [f"{method} {path}: no such operation in the spec"]
    op, _ = found
    where = f"{method} {path} ({op.get('operationId')})"
    problems = []
    params = op.get("parameters", [])
    declared = {p["name"]: p for p in params if p["in"] == "query"}
    for name, values in query.items():
        if name not in declared:
            if strict_query:
                problems.append(f"{where}: undeclared query parameter {name!r}")
            continue
        p = declared[name]
        for value in values:
            kind = p.get("type")
            if kind == "integer" and not re.fullmatch(r"-?\d+", value):
                problems.append(f"{where}: {name}={value!r} is not an integer")
            if kind == "boolean" and value.lower() not in ("true", "false"):
                problems.append(f"{where}: {name}={value!r} is not a boolean")
            if "enum" in p and value not in p["enum"]:
                problems.append(f"{where}: {name}={value!r} not in {p['enum']}")
    for p in params:
        if p.get("required") and p["in"] == "query" and p["name"] not in query:
            problems.append(f"{where}: required query parameter {p['name']!r} missing")
    consumes = op.get("consumes")
    body_param = next((p for p in params if p["in"] == "body"), None)
    form = [p for p in params if p["in"] == "formData"]
    mime = content_type.split(";", maxsplit=1)[0].strip()
    if body and consumes and mime not in consumes:
        problems.append(f"{where}: content type {mime!r} not in {consumes}")
    if form:
        for p in form:
            if p.get("required") and f'name="{p["name"]}"'.encode() not in body:
                problems.append(f"{where}: form field {p['name']!r} missing")
    elif body_param is not None and body:
        schema = body_param.get("schema", {})
        if mime == "application/json":
            try:
                doc = json.loads(body)
            except ValueError:
                problems.append(f"{where}: body is not JSON")
            else:
                for err in jsonschema.Draft4Validator(_nullable(schema)).iter_errors(doc):
                    problems.append(f"{where}: body: {err.message}")
    elif body_param is not None and body_param.get("required") and not body and not mime:
        # (an empty body with its content type is an empty file, uploaded as such)
        problems.append(f"{where}: required body {body_param['name']!r} missing")
    elif body and body_param is None and not form:
        problems.append(f"{where}: a body where the spec declares none")
    return problems


def check_response(
    spec: Spec, method: str, path: str, status: int, content_type: str, body: bytes
) -> list[str]:
    found = spec.operation(method, path)
    if found is None:
        return []
    op, _ = found
    where = f"{method} {path} -> {status}"
    responses = op.get("responses", {})
    declared = responses.get(str(status))
    if declared is None:
        return [f"{where}: status {status} not declared (declared: {sorted(responses)})"]
    schema = declared.get("schema")
    mime = content_type.split(";", maxsplit=1)[0].strip()
    produces = op.get("produces") or []
    if (
        produces
        and body
        and not any(mime == p or (p.endswith("/*") and mime.startswith(p[:-1])) for p in produces)
    ):
        return [f"{where}: content type {mime!r} not in {produces}"]
    if schema is None or schema.get("type") == "file":
        return []
    try:
        doc = json.loads(body)
    except ValueError:
        return [f"{where}: response is not JSON"]
    return [
        f"{where}: response: {err.message}"
        for err in jsonschema.Draft4Validator(_nullable(schema)).iter_errors(doc)
    ]
