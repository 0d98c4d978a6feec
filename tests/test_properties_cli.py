"""Property tests at the edges: the CLI on hostile references and records, the portal client
on hostile HTTP answers.

Whatever the TARGET, the record document or the portal's answer, ``odrun info``,
``files`` and ``cite`` end with a typed error's exit code (never 1, "a bug") and one
line on stderr, or succeed; never a traceback.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from odrun.cli import main
from odrun.errors import OdrunError
from odrun.records.portal import HttpPortal
from odrun.settings import Settings

import fuzzing
from fuzzing import mutated_records

REPO = Path(__file__).resolve().parent.parent
COMMANDS = (["info"], ["info", "--json"], ["files"], ["files", "--json"], ["cite"])

#: references that made the CLI fail with "unexpected error ... (a bug)", exit code 1
#: (each runs in a subprocess for each command; the in-process tests below try many more)
CRASHING_REFERENCES = {
    "recid-5000-digits": "0" + "1" * 5000,
    "invalid-ipv6-url": "https://[::1/record/416",
}
MORE_CRASHING_REFERENCES = (
    "https://opendata.cern.ch/record/" + "9" * 5000,
    "cms-" + "9" * 5000,
    "http://[::1/records/5",
    "[::1/record/5",
    "1" * 4301,
)


def odrun(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "odrun", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def assert_one_line_error(
    result: subprocess.CompletedProcess[str], code: int | None = None
) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert "unexpected error" not in result.stderr, result.stderr
    assert result.returncode not in (0, 1), result.stderr
    if code is not None:
        assert result.returncode == code, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file:// mirror holding one record with hostile text: a lone surrogate, a huge size."""
    folder = tmp_path_factory.mktemp("mirror")
    doc = fuzzing.real_record("3005")
    doc["title"] = "\ud800 title \U0001f600"
    doc["files"][0]["size"] = 10**400
    (folder / "3005.json").write_text(json.dumps({"id": "3005", "metadata": doc}))
    return folder


@pytest.mark.parametrize("ref", CRASHING_REFERENCES.values(), ids=CRASHING_REFERENCES.keys())
def test_the_cli_rejects_crashing_references_in_one_line(ref: str, mirror: Path) -> None:
    """info, files and cite in parallel processes (a 2-core CI: start-up is most of the time)."""
    procs = {
        command: subprocess.Popen(
            [sys.executable, "-m", "odrun", command, ref, "--portal", mirror.as_uri()],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in ("info", "files", "cite")
    }
    for proc in procs.values():
        out, err = proc.communicate(timeout=60)
        result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        assert_one_line_error(result, code=2)


@pytest.mark.parametrize("command", ["info"])
def test_a_record_with_a_lone_surrogate_and_a_huge_size_prints(command: str, mirror: Path) -> None:
    """UnicodeEncodeError (exit 1) before: JSON's "\\ud800" cannot be written to stdout."""
    result = odrun(command, "3005", "--portal", mirror.as_uri())
    assert result.returncode == 0, result.stderr
    assert "\ufffd title" in result.stdout


@pytest.mark.parametrize("url", ["https://[::1"])
def test_an_invalid_portal_url_is_a_configuration_error(url: str) -> None:
    assert_one_line_error(odrun("info", "5", env={"ODRUN_PORTAL_URL": url}), code=8)


# -- in process: many more inputs, same guarantee -------------------------------------------


def run_cli(args: list[str]) -> tuple[int, str]:
    """``odrun ARGS`` in this process: (exit code, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            main(args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, err.getvalue()


def check_cli(args: list[str]) -> None:
    code, err = run_cli(args)
    assert code != 1, err
    assert "Traceback" not in err
    if code:
        assert len(err.strip().splitlines()) == 1, err


references = st.one_of(
    st.sampled_from(sorted({*CRASHING_REFERENCES.values(), *MORE_CRASHING_REFERENCES})),
    st.sampled_from(fuzzing.NASTY_TEXTS).filter(lambda t: not t.startswith("-")),
    st.text(max_size=40).filter(lambda t: not t.startswith("-")),
    st.builds(
        "{}{}{}".format,
        st.sampled_from(("", "https://", "http://", "doi:", "https://doi.org/", "cms-")),
        st.sampled_from(("", "[::1", "[::1]", "opendata.cern.ch", "10.5281/", "%ZZ", "²")),
        st.sampled_from(("", "/record/3005", "/records/", "0" * 30 + "3005", "9" * 25)),
    ),
)


@given(references, st.sampled_from(COMMANDS))
@example("0" * 5000 + "3005", ["info", "--json"])
@example("https://[::1/record/416", ["cite"])
def test_any_reference_gives_a_result_or_a_typed_error(
    mirror: Path, ref: str, command: list[str]
) -> None:
    check_cli([*command, "--portal", mirror.as_uri(), "--", ref])


@given(st.sampled_from(("https://[::1", "file://[::1/x", "http://[::1]:99999", "ftp://x", "")))
def test_any_portal_url_gives_a_result_or_a_typed_error(url: str) -> None:
    check_cli(["info", "5", "--portal", url])


@given(mutated_records(), st.sampled_from(COMMANDS))
def test_any_mirrored_record_gives_a_result_or_a_typed_error(
    case: tuple[str, dict[str, Any]], command: list[str]
) -> None:
    recid, doc = case
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / f"{recid}.json").write_bytes(fuzzing.dumps({"id": recid, "metadata": doc}))
        check_cli([*command, recid, "--portal", Path(tmp).as_uri(), "--offline"])


# -- the portal's DOI search, driven by hostile HTTP answers ----------------------------------

DOI = "10.1234/x"
search_hits = st.one_of(
    fuzzing.nasty_values,
    st.fixed_dictionaries(
        {
            "id": fuzzing.nasty_scalars,
            "metadata": st.one_of(
                fuzzing.nasty_values,
                st.fixed_dictionaries(
                    {"doi": st.just("10.1234/x"), "recid": fuzzing.nasty_scalars}
                ),
            ),
        }
    ),
)
bodies = st.one_of(
    fuzzing.nasty_values.map(fuzzing.dumps),
    st.builds(
        lambda total, hit: fuzzing.dumps({"hits": {"total": total, "hits": [hit]}}),
        st.one_of(fuzzing.nasty_scalars, st.just({"value": 1})),
        search_hits,
    ),
    st.integers(min_value=1000, max_value=100_000).map(lambda n: b"[" * n + b"]" * n),
    st.binary(max_size=64),
)


def answers() -> st.SearchStrategy[tuple[int, dict[str, str], bytes]]:
    return st.tuples(
        st.sampled_from((200, 200, 200, 201, 204, 301, 302, 400, 401, 403, 404, 429, 500, 503)),
        st.sampled_from(
            (
                {},
                {"content-type": "application/json"},
                {"content-encoding": "gzip"},
                {"content-encoding": "br"},
                {"location": "/api/records"},
                {"location": "http://[::1"},
            )
        ),
        bodies,
    )


@given(answers())
@example((200, {"content-encoding": "gzip"}, b"not gzip"))
@example((302, {"location": "/api/records"}, b""))
@example((200, {}, b'{"hits": {"total": 1e999, "hits": [{"id": "5"}]}}'))
@example((200, {}, b'{"hits": {"total": 1, "hits": [{"id": "../../5"}]}}'))
@example((200, {}, b'{"hits": {"total": 1, "hits": ["5"]}}'))
def test_the_doi_search_gives_a_recid_or_a_typed_error(
    answer: tuple[int, dict[str, str], bytes],
) -> None:
    import httpx

    status, headers, body = answer

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers=headers, content=body)

    client = httpx.Client(transport=httpx.MockTransport(handler), follow_redirects=True)
    portal = HttpPortal("http://127.0.0.1:9", Settings(retries=0), lambda: client)
    try:
        recid = portal.find_doi("10.1234/x")
    except OdrunError:
        return
    finally:
        client.close()
    assert recid.isascii()
    assert "/" not in recid


# -- the HTTP transport, driven by hostile answers to a (resumed) download ---------------------

range_headers = st.fixed_dictionaries(
    {},
    optional={
        "content-range": st.one_of(
            st.sampled_from(("bytes 5-9/10", "bytes ²-9/10", "bytes 0-1/*", "bytes -1/10")),
            st.builds("bytes {}-9/10".format, st.sampled_from(("9" * 5000, "5", "0" * 4400 + "5"))),
            st.text(max_size=20),
        ),
        "content-length": st.sampled_from(("10", "²", "9" * 5000, "-1", "x")),
        "content-encoding": st.sampled_from(("gzip", "identity", "br")),
    },
)


@given(
    st.sampled_from((200, 206, 206, 301, 404, 416, 500)),
    range_headers,
    st.binary(max_size=12),
    st.sampled_from((0, 5)),
)
@example(206, {"content-range": "bytes " + "9" * 5000 + "-9/10"}, b"x", 5)
@example(206, {"content-range": "bytes ²-9/10"}, b"x", 5)
def test_a_download_gives_bytes_or_a_typed_error(
    status: int, headers: dict[str, str], body: bytes, offset: int
) -> None:
    """int() of a 5000-digit Content-Range start raised ValueError (exit 1) before the fix."""
    import httpx

    from odrun.transfer.http import HttpTransport

    raw = [(k.encode(), v.encode("utf-8", "surrogatepass")) for k, v in headers.items()]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers=raw, stream=httpx.ByteStream(body))

    transport = HttpTransport(Settings(retries=0))
    transport._client = httpx.Client(transport=httpx.MockTransport(handler))
    try:
        data = b"".join(transport.stream("https://127.0.0.1:9/f.root", offset, 10))
    except OdrunError:
        return
    finally:
        transport.close()
    assert isinstance(data, bytes)
