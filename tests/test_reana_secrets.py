"""The REANA token against hostile servers: echoed in error bodies, redirected to http://."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus, urlsplit

import pytest

from odrun.redact import MIN_PIECE, cut, forget_secrets, redact, register_secret

import reana_server

#: a token whose encodings differ from it: '/', '+', '=', a space
TOKEN = "s3cr3t/T0k+en=abc def-0123456789XYZ"


def forms(token: str) -> list[str]:
    return [token, quote(token, safe=""), quote(token), quote_plus(token)]


def leaks(text: str, token: str = TOKEN) -> list[str]:
    """Every piece (>= MIN_PIECE characters) of the token or its encodings found in text."""
    low = text.lower()
    found = []
    for form in forms(token):
        for i in range(len(form) - MIN_PIECE + 1):
            piece = form[i : i + MIN_PIECE]
            if piece.lower() in low:
                found.append(piece)
    return found


def _json(message: str) -> tuple[bytes, str]:
    return json.dumps({"message": message}).encode(), "application/json"


ECHOES: dict[str, Callable[[str], tuple[bytes, str]]] = {
    "json-cut-at-500": lambda t: _json("x" * 480 + t),
    "text-cut-at-200": lambda t: (("y" * 190 + t).encode(), "text/plain"),
    "percent-encoded": lambda t: _json("bad " + quote(t, safe="")),
    "percent-lowercase": lambda t: _json(quote(t, safe="").lower()),
    "plus-encoded": lambda t: _json("bad " + quote_plus(t)),
    "prefix-only": lambda t: _json("token " + t[:12]),
    "deep-in-a-big-body": lambda t: (("z" * 10_000 + t + "z" * 100).encode(), "text/html"),
    "in-a-query-string": lambda t: _json(f"see /x?access_token={quote(t)}&a=1"),
}


@pytest.fixture
def hostile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[reana_server.ReanaServer]:
    with reana_server.serve(tmp_path / "srv", token=TOKEN) as server:
        monkeypatch.setenv("REANA_SERVER_URL", server.url)
        monkeypatch.setenv("REANA_ACCESS_TOKEN", TOKEN)
        yield server


@pytest.mark.parametrize("echo", sorted(ECHOES))
def test_error_bodies_echoing_the_token_never_show_it(odrun, hostile, echo: str) -> None:
    hostile.echo_token = ECHOES[echo]
    for args in (("status", "no-such-workflow"), ("logs", "no-such-workflow")):
        res = odrun(*args)
        assert res.code == 3, res.err  # 404: not found
        assert "no-such-workflow" in res.err
        assert leaks(res.out + res.err) == [], res.err


def test_a_rejected_token_echoed_back_is_not_shown(odrun, hostile, demo, monkeypatch) -> None:
    hostile.echo_token = ECHOES["json-cut-at-500"]
    wrong = "wrong/" + TOKEN[::-1]
    monkeypatch.setenv("REANA_ACCESS_TOKEN", wrong)
    res = odrun("submit", str(demo))
    assert res.code == 12, res.err
    assert leaks(res.out + res.err, wrong) == [], res.err


def test_log_records_and_unexpected_errors_never_show_the_token(
    odrun, hostile, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from odrun.reana.client import ReanaClient

    def boom(self: ReanaClient, workflow: str) -> None:
        logging.getLogger("httpx").warning("sent %s", self.token)
        logging.getLogger("httpcore").warning(f"sent {quote(TOKEN)}")
        raise RuntimeError(f"internal state: {self.token} {quote_plus(TOKEN)}")

    monkeypatch.setattr(ReanaClient, "status", boom)
    with caplog.at_level(logging.DEBUG):
        res = odrun("status", "wf")
    assert res.code == 1
    assert "unexpected error" in res.err
    assert leaks(res.err + res.out) == [], res.err
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "sent ***" in logged
    assert leaks(logged) == [], logged


@pytest.fixture
def forget() -> Iterator[None]:
    yield
    forget_secrets()


def test_redact_then_cut(forget: None) -> None:
    secret = "A1b2C3d4E5f6G7h8I9j0K"  # 21 characters
    register_secret(secret)
    text = "x" * 480 + secret
    assert leaks(cut(text, 500), secret) == []
    assert leaks(cut(text, 495), secret) == []
    assert cut("short", 500) == "short"
    assert redact(f"a {secret[3:15]} b") == "a *** b"  # a 12-character piece
    assert redact(f"a {secret[:5]} b") == f"a {secret[:5]} b"  # too short to matter
    assert (
        redact("https://r/api?access_token=abc%2Fdef&x=1") == "https://r/api?access_token=***&x=1"
    )


# -- redirects and plain http ------------------------------------------------------------


needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")


@needs_openssl
def test_a_redirect_to_http_elsewhere_is_refused_and_the_token_never_sent(
    odrun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = reana_server.self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    monkeypatch.setenv("REANA_ACCESS_TOKEN", TOKEN)
    with (
        reana_server.serve(tmp_path / "plain", token=TOKEN) as plain,
        reana_server.serve(tmp_path / "tls", token=TOKEN, tls=(cert, key)) as tls,
    ):
        monkeypatch.setenv("REANA_SERVER_URL", tls.url)
        for status in (301, 302, 307, 308):
            tls.redirect_status = status
            tls.redirect = lambda path: plain.url + path  # query string (token) included
            for args in (("status", "wf"), ("download", "wf", "--output-dir", str(tmp_path / "o"))):
                res = odrun(*args)
                assert res.code == 5, res.err
                assert "redirect" in res.err
                assert plain.url in res.err
                assert leaks(res.err + res.out) == [], res.err
        # same host, other scheme: https://127.0.0.1:P -> http://127.0.0.1:P is refused too
        tls.redirect = lambda path: tls.url.replace("https:", "http:") + path
        assert odrun("status", "wf").code == 5
    assert plain.requests == [], "the http:// server was contacted (with the token)"


@needs_openssl
def test_a_same_origin_https_redirect_is_followed_with_the_token_re_added(
    odrun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, demo: Path
) -> None:
    cert, key = reana_server.self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    monkeypatch.setenv("REANA_ACCESS_TOKEN", TOKEN)
    with reana_server.serve(tmp_path / "tls", token=TOKEN, tls=(cert, key)) as tls:
        monkeypatch.setenv("REANA_SERVER_URL", tls.url)
        hops: list[str] = []

        def moved(path: str) -> str | None:  # every first request: to itself, token dropped
            split = urlsplit(path)
            if "hop=1" in split.query:
                return None
            hops.append(split.path)
            kept = [q for q in split.query.split("&") if q and not q.startswith("access_token=")]
            return f"{split.path}?{'&'.join([*kept, 'hop=1'])}"

        tls.strict_query = False
        tls.redirect = moved
        tls.redirect_status = 308  # keeps the method and body (uploads, create)
        res = odrun("submit", str(demo), "--follow", "--poll-interval", "0.05", "--json")
        assert res.code == 0, res.err
        assert res.json()["status"] == "finished"
        assert "/api/you" in hops
        assert any(p.endswith("/workspace") for p in hops), hops
        tls.redirect_status = 301  # GET after GET: status, logs
        hops.clear()
        assert odrun("status", "dimuon-demo.1").code == 0
        assert odrun("logs", "dimuon-demo.1").code == 0
        assert len(hops) == 2, hops


def test_plain_http_is_refused_unless_loopback_or_insecure_http(odrun, monkeypatch) -> None:
    monkeypatch.setenv("REANA_ACCESS_TOKEN", TOKEN)
    for url in ("http://reana.example.org", "http://127.0.0.1.example.org:80", "http://10.0.0.1"):
        res = odrun("status", "wf", "--server", url)
        assert res.code == 2, res.err
        assert "--insecure-http" in res.err
        assert "plain http" in res.err
    res = odrun("status", "wf", "--server", "http://reana.example.org", "--insecure-http")
    assert res.code == 5, res.err  # tried (the test guard blocks the network)
    assert "warning" in res.err
    assert "unencrypted" in res.err
    assert leaks(res.err) == []


def test_loopback_http_servers_stay_allowed(odrun, hostile, monkeypatch) -> None:
    host = urlsplit(hostile.url).port
    for url in (hostile.url, f"http://localhost:{host}"):
        res = odrun("status", "nope", "--server", url)
        assert res.code == 3, res.err
        assert "warning" not in res.err


def test_logs_and_status_echoing_the_token_never_show_it(odrun, hostile, demo: Path) -> None:
    res = odrun("submit", str(demo), "--follow", "--poll-interval", "0.05", "--json")
    assert res.code == 0, res.err
    (wf,) = hostile.workflows.values()
    wf.engine_log += f"engine saw {TOKEN}\n"
    wf.jobs[0]["logs"] += f"GET /x?access_token={quote_plus(TOKEN)}\n{TOKEN[:14]}\n"
    wf.jobs[0]["job_name"] += TOKEN[5:20]
    for args in (("logs", "dimuon-demo.1"), ("logs", "dimuon-demo.1", "--json")):
        res = odrun(*args)
        assert res.code == 0, res.err
        assert "engine saw ***" in res.out
        assert leaks(res.out + res.err) == [], res.out
    res = odrun("status", str(demo), "--json")
    assert res.code == 0, res.err
    assert leaks(res.out + res.err) == [], res.out


@needs_openssl
def test_debug_logs_of_a_redirect_never_show_the_token(
    odrun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """httpcore logs response headers (Location, with the token) from its own child loggers."""
    cert, key = reana_server.self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    monkeypatch.setenv("REANA_ACCESS_TOKEN", TOKEN)
    with reana_server.serve(tmp_path / "tls", token=TOKEN, tls=(cert, key)) as tls:
        tls.redirect = lambda path: "http://127.0.0.1:9" + path
        with caplog.at_level(logging.DEBUG):
            assert odrun("status", "wf", "--server", tls.url).code == 5
    names = {r.name for r in caplog.records}
    assert "httpcore.http11" in names, names
    logged = "\n".join(f"{r.name}: {r.getMessage()}" for r in caplog.records)
    assert "access_token=***" in logged
    assert leaks(logged) == [], logged


def test_tokens_are_forgotten_when_a_command_ends(odrun, hostile) -> None:
    """A later command (or test) in the same process never redacts an old token's pieces."""
    assert odrun("status", "nope").code == 3
    assert redact(TOKEN) == TOKEN  # forgotten: main() registered it for one command only
    assert odrun("cache", "path").code == 0


def test_a_planted_submission_record_never_gets_the_token(
    odrun, hostile, tmp_path: Path, monkeypatch
) -> None:
    """A folder's .odrun/reana record names the server status/logs/download/stop talk to:
    an untrusted analysis could plant one naming its own server. Before the fix, the
    token went to the planted server; now only to the server the user names."""
    with reana_server.serve(tmp_path / "plant", token="x") as plant:
        folder = tmp_path / "analysis" / ".odrun" / "reana" / "w.1"
        folder.mkdir(parents=True)
        record = {"server": plant.url, "workflow_id": "w-1", "workflow_name": "w.1",
                  "analysis": "a", "analysis_path": "", "run_dir": str(folder)}  # fmt: skip
        (folder / "submission.json").write_text(json.dumps(record))
        for args in (("status",), ("logs",), ("stop",), ("download",)):
            res = odrun(*args, str(tmp_path / "analysis"))
            assert res.code == 2, (args, res.err)
            assert "sends the access token only to the server you name" in res.err
        monkeypatch.delenv("REANA_SERVER_URL")
        res = odrun("status", str(tmp_path / "analysis"))
        assert res.code == 2, res.err
        assert plant.requests == []  # nothing, let alone the token, reached it
        res = odrun("status", str(tmp_path / "analysis"), "--server", plant.url)
        assert plant.requests  # named by the user: trusted


def test_a_listed_file_named_after_the_token_is_never_written_down(
    odrun, hostile, demo: Path
) -> None:
    """Failed before: a name the server listed under a declared output folder, carrying the
    token, was recorded (as a missing output) in submission.json, run.json and the
    RO-Crate, which are meant to be shared."""
    text = (demo / "reana.yaml").read_text()
    (demo / "reana.yaml").write_text(
        text.replace("- results/mass.png\n", "- results/mass.png\n  directories: [results]\n")
    )
    res = odrun("submit", str(demo), "--follow", "--poll-interval", "0.05", "--json")
    assert res.code == 0, res.err
    (wf,) = hostile.workflows.values()
    run_dir = Path(res.json()["run_dir"])
    for name in (f"results/leak-{quote_plus(TOKEN)}", f"results/x{TOKEN[3:20]}"):
        wf.extra_listing = [name]
        got = odrun("download", str(demo), "--output-dir", str(demo.parent / "out"))
        written = "".join(p.read_text() for p in run_dir.rglob("*.json"))
        assert leaks(written) == [], written
        assert got.code == 9, got.err
        assert leaks(got.out + got.err) == []
        bare = odrun("download", "dimuon-demo.1", "--output-dir", str(demo.parent / "bare"))
        assert bare.code == 9, bare.err
        assert leaks(bare.out + bare.err) == []
        assert not [p for p in (demo.parent / "bare").rglob("*") if p.is_file()]


def test_server_strings_are_redacted_where_they_are_parsed() -> None:
    """A hostile server echoing the token in a status, a name or a log line: every string the
    REANA models keep (written to submission.json, run.json and the RO-Crate) is scrubbed."""
    from odrun.reana.models import parse_logs, status_of

    register_secret(TOKEN)
    try:
        status = status_of(
            {"id": f"id-{TOKEN}", "name": f"demo {TOKEN}", "status": TOKEN,
             "progress": {"current_step_name": TOKEN, "current_command": f"echo {TOKEN}"}}
        )  # fmt: skip
        logs = parse_logs(
            json.dumps(
                {"workflow_logs": TOKEN,
                 "job_logs": {"1": {"job_name": TOKEN, "status": TOKEN, "cmd": TOKEN,
                                    "logs": quote(TOKEN), "docker_img": TOKEN}}}
            )
        )  # fmt: skip
    finally:
        forget_secrets()
    assert leaks(repr(status)) == []
    assert leaks(repr(logs)) == []
    assert status.status != "finished"
