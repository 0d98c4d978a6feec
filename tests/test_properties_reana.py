"""Property tests: the real odrun REANA client against hostile server answers.

``httpx.MockTransport`` answers every request with a hypothesis-chosen status code,
headers and body: real REANA 0.9 answers with keys dropped, wrong types, NaN, huge
numbers, deep nesting, a ``logs`` string holding broken JSON, bodies that are not
JSON at all. Each API call returns its typed result or raises an OdrunError.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from odrun.errors import OdrunError, UsageError
from odrun.reana.client import ReanaClient
from odrun.reana.models import (
    Created,
    Jobs,
    ServerInfo,
    WorkflowLogs,
    WorkflowStatus,
    WorkspaceFile,
    parse_logs,
    status_of,
)
from odrun.settings import Settings

import fuzzing

TOKEN = "s3cr3t-token-0123456789"
PROGRESS = {
    "total": {"total": 3, "job_ids": []},
    "running": {"total": 1, "job_ids": ["j2"]},
    "finished": {"total": 1, "job_ids": ["j1"]},
    "failed": {"total": 0, "job_ids": []},
    "current_step_name": "fit",
    "current_command": "python fit.py",
}
LOGS = {
    "workflow_logs": "started",
    "job_logs": {
        "j1": {
            "job_name": "fit",
            "status": "failed",
            "cmd": "python fit.py",
            "logs": "Traceback ...",
            "docker_img": "python:3.11",
        }
    },
}
#: what a REANA 0.9 server answers, per call (trimmed from real answers)
ANSWERS: dict[str, Any] = {
    "ping": {
        "message": "OK",
        "status": "200",
        "reana_server_version": "0.95.0",
        "api_capabilities": ["workflow-specification-bundles-v1"],
    },
    "you": {"email": "jane@example.org", "full_name": "Jane", "id": "00000000"},
    "workflow": {
        "id": "3d9d7b8e-0000-4000-8000-000000000000",
        "name": "dimuon.1",
        "status": "running",
        "progress": PROGRESS,
        "workflow_id": "3d9d7b8e-0000-4000-8000-000000000000",
        "workflow_name": "dimuon.1",
        "message": "created",
    },
    "logs": {"logs": json.dumps(LOGS), "workflow_id": "x", "workflow_name": "dimuon.1"},
    "ls": {
        "items": [
            {"name": "results/plot.png", "size": {"raw": 12, "human_readable": "12 B"}},
            {"name": "out.json", "size": 3, "last-modified": "2026-01-01T00:00:00"},
        ],
        "total": 2,
    },
}
ANSWERS["list"] = {"items": [ANSWERS["workflow"]], "total": 1}


@st.composite
def reana_bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(sorted(ANSWERS)))
    doc = draw(st.one_of(st.just(ANSWERS[kind]), fuzzing.mutated(ANSWERS[kind])))
    if kind == "logs" and draw(st.booleans()):  # the logs string: JSON inside JSON
        inner = draw(fuzzing.mutated(LOGS)) if draw(st.booleans()) else draw(fuzzing.nasty_values)
        doc = dict(doc, logs=fuzzing.dumps(inner).decode("utf-8", "surrogatepass"))
    how = draw(st.sampled_from(("json", "json", "json", "deep", "binary", "truncated")))
    if how == "deep":
        depth = draw(st.integers(min_value=1000, max_value=100_000))
        return b'{"items": ' + b"[" * depth + b"]" * depth + b"}"
    if how == "binary":
        return draw(st.binary(max_size=64))
    data = fuzzing.dumps(doc)
    return data[: len(data) // 2] if how == "truncated" else data


answers = st.tuples(
    st.sampled_from((200, 200, 200, 200, 201, 204, 302, 400, 401, 403, 404, 409, 418, 500, 502)),
    st.sampled_from(
        (
            {},
            {"content-type": "application/json"},
            {"content-encoding": "gzip"},
            {"location": "/api/ping"},
        )
    ),
    reana_bodies(),
)


def client_answering(answer: tuple[int, dict[str, str], bytes]) -> ReanaClient:
    status, headers, body = answer

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers=headers, content=body)

    client = ReanaClient("https://reana.test", TOKEN, Settings(retries=1), sleep=lambda s: None)
    client._http = httpx.Client(transport=httpx.MockTransport(handler), follow_redirects=True)
    return client


def _download(client: ReanaClient) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        return client.download("dimuon.1", "out.json", Path(tmp) / "out.json")


CALLS: dict[str, Callable[[ReanaClient], Any]] = {
    "ping": ReanaClient.ping,
    "you": ReanaClient.you,
    "find": lambda c: c.find("dimuon"),
    "create": lambda c: c.create("dimuon", {"version": "0.9.0"}),
    "create-bundle": lambda c: c.create("dimuon", {}, b"PK\x05\x06" + b"\0" * 18),
    "status": lambda c: c.status("dimuon.1"),
    "start": lambda c: c.start("dimuon.1"),
    "stop": lambda c: c.stop("dimuon.1"),
    "logs": lambda c: c.logs("dimuon.1"),
    "ls": lambda c: c.ls("dimuon.1"),
    "download": _download,
}


def check_result(result: Any) -> None:
    """The typed result holds the types its dataclass promises, whatever the server said."""
    if isinstance(result, ServerInfo):
        assert isinstance(result.message, str)
        assert all(isinstance(c, str) for c in result.capabilities)
        json.dumps(result.to_dict(), allow_nan=False)
    elif isinstance(result, WorkflowStatus):
        assert isinstance(result.status, str)
        assert all(isinstance(n, int) and n >= 0 for n in result.jobs.__dict__.values())
        json.dumps(result.to_dict(), allow_nan=False)
    elif isinstance(result, WorkflowLogs):
        assert isinstance(result.workflow, str)
        assert all(isinstance(j.logs, str) and isinstance(j.name, str) for j in result.jobs)
    elif isinstance(result, Created):
        assert isinstance(result.id, str)
        assert result.id
    elif isinstance(result, list):
        for item in result:
            check_result(item)
    elif isinstance(result, WorkspaceFile):
        assert isinstance(result.name, str)
        assert result.size is None or result.size >= 0
    else:
        assert result is None or isinstance(result, (str, int)), result


@pytest.mark.parametrize("call", sorted(CALLS))
def test_a_well_behaved_server_gives_results(call: str) -> None:
    """Negative control: the unmutated answers work, so the property below tests something."""
    kind = {
        "find": "list",
        "create": "workflow",
        "create-bundle": "workflow",
        "status": "workflow",
        "start": "workflow",
        "stop": "workflow",
        "download": "you",
    }.get(call, call)
    check_result(CALLS[call](client_answering((200, {}, json.dumps(ANSWERS[kind]).encode()))))


@given(st.sampled_from(sorted(CALLS)), answers)
@example("status", (200, {}, b'{"status": "running", "progress": {"total": {"total": "x"}}}'))
@example("status", (200, {}, b'{"status": "running", "progress": {"total": {"total": 1e999}}}'))
@example("status", (200, {}, b'{"status": "running", "progress": ["total"]}'))
@example("find", (200, {}, b"5"))
@example("find", (200, {}, b'{"items": ' + b"[" * 5000 + b"]" * 5000 + b"}"))
@example("create", (201, {}, b'{"message": "created"}'))
@example("create", (201, {}, b"[]"))
@example("logs", (200, {}, b'{"logs": "{\\"job_logs\\": [1, 2]}"}'))
@example("logs", (200, {}, b'{"logs": "' + b"[" * 5000 + b'"}'))
@example("ls", (200, {}, b'{"items": [5, "x", null]}'))
@example("ls", (200, {}, b'{"items": 5}'))
@example("ping", (500, {}, b"[" * 5000))
@example("you", (200, {"content-encoding": "gzip"}, b"not gzip"))
def test_every_call_gives_its_result_or_a_typed_error(
    call: str, answer: tuple[int, dict[str, str], bytes]
) -> None:
    client = client_answering(answer)
    error: OdrunError | None = None
    try:
        result = CALLS[call](client)
    except OdrunError as exc:
        error = exc
    finally:
        client.close()
    if error is not None:
        assert TOKEN not in str(error)
    else:
        check_result(result)


# -- the models alone, on any mapping ---------------------------------------------------------


@given(fuzzing.mutated(ANSWERS["workflow"]))
def test_status_of_any_mapping_is_a_status(doc: dict[str, Any]) -> None:
    check_result(status_of(doc))


@given(st.one_of(fuzzing.nasty_values, fuzzing.mutated(LOGS).map(fuzzing.dumps).map(bytes.decode)))
def test_parse_logs_of_anything_is_logs(raw: Any) -> None:
    check_result(parse_logs(raw))


def test_job_counts_that_are_not_counts_are_zero() -> None:
    """int('x'), int(nan) and int(inf) made `odrun status` fail with 'unexpected error'."""
    for bad in ("x", float("nan"), float("inf"), -3, "²", [1]):
        status = status_of({"status": "running", "progress": {"total": {"total": bad}}})
        assert status.jobs == Jobs()


@given(
    st.one_of(
        st.sampled_from(("https://[::1", "http://[::1]:99999", "https://h:x", "https://", "h")),
        st.builds("https://{}".format, st.text(max_size=20)),
    )
)
@example("https://[::1")
def test_any_server_url_is_a_client_or_a_usage_error(url: str) -> None:
    """https://[::1 was accepted, then every call failed as 'unreadable answer: InvalidURL'."""
    try:
        client = ReanaClient(url, TOKEN, Settings(retries=0), sleep=lambda s: None)
    except UsageError:
        return
    assert client.server.startswith("https://")


def test_an_invalid_server_url_is_a_usage_error() -> None:
    for url in ("https://[::1", "http://[::1]:99999", "https://h:x"):
        with pytest.raises(UsageError):
            ReanaClient(url, TOKEN, Settings())
