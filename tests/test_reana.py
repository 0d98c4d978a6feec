"""odrun submit/status/logs/download/stop against the local REANA API server (spec-checked)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from odrun.reana.client import redact

import reana_server

REPO = Path(__file__).resolve().parent.parent
POLL = ("--poll-interval", "0.05")
IMAGE = "registry.example/odrun/odrun@sha256:" + "0" * 64  # what a site pushed


@pytest.fixture
def reana(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[reana_server.ReanaServer]:
    with reana_server.serve(tmp_path / "reana-srv") as server:
        monkeypatch.setenv("REANA_SERVER_URL", server.url)
        monkeypatch.setenv("REANA_ACCESS_TOKEN", server.token)
        yield server
        assert server.violations == [], "exchanges that break the OpenAPI spec"


def serial(tmp_path: Path, commands: list[str], outputs: list[str]) -> Path:
    folder = tmp_path / "small"
    folder.mkdir()
    (folder / "in.txt").write_text("hello\n")
    steps = "".join(
        f"      - name: s{i}\n        environment: docker.io/library/bash:5.2\n"
        f"        commands: [{json.dumps(c)}]\n"
        for i, c in enumerate(commands)
    )
    (folder / "reana.yaml").write_text(
        "version: 0.9.0\ninputs:\n  files: [in.txt]\nworkflow:\n  type: serial\n"
        f"  specification:\n    steps:\n{steps}outputs:\n  files: {json.dumps(outputs)}\n"
    )
    return folder


def no_token_anywhere(server: reana_server.ReanaServer, *texts: str, folder: Path) -> None:
    for text in texts:
        assert server.token not in text
    for path in folder.rglob("*"):
        if path.is_file():
            assert server.token.encode() not in path.read_bytes(), path


def test_demo_submit_follow_download_verify(odrun, reana, demo: Path) -> None:
    res = odrun("submit", str(demo), "--follow", "--verify", *POLL, "--json")
    assert res.code == 0, res.err
    doc = res.json()
    assert doc["status"] == "finished"
    assert doc["workflow_name"] == "dimuon-demo.1"
    assert all(c["ok"] for c in doc["checks"])
    assert len(doc["checks"]) >= 4
    # the outputs at their declared paths under the analysis folder, checksums recorded
    fit = json.loads((demo / "results" / "fit.json").read_text())
    assert abs(fit["mass"] - 91.1876) < 0.5
    assert {o["path"] for o in doc["outputs"]} == {
        "results/fit.json", "results/mass_hist.csv", "results/mass.png"}  # fmt: skip
    # what was uploaded: the spec file (as reana-client), the analysis code, the record file
    assert {u["path"] for u in doc["uploaded"]} == {
        "reana.yaml", "analysis/dimuon.py", "data/900001/Dimuon_generated.csv"}  # fmt: skip
    wf = reana.find(doc["workflow_id"])
    assert wf is not None
    assert wf.status == "finished"
    assert len(reana.workflows) == 1
    run_dir = Path(doc["run_dir"])
    run = json.loads((run_dir / "run.json").read_text())
    assert run["runtime"] == "reana"
    assert run["reana"]["workflow_id"] == doc["workflow_id"]
    assert "PASS" in (run_dir / "report.html").read_text()  # the run's report, as a local run's
    crate = json.loads((run_dir / "ro-crate-metadata.json").read_text())
    graph = {n["@id"]: n for n in crate["@graph"]}
    assert graph["#run"]["identifier"] == doc["workflow_id"]
    assert graph[reana.url]["name"] == "REANA"
    no_token_anywhere(reana, res.out, res.err, folder=demo)
    # odrun verify works on the submission's folder as on a local run folder
    assert odrun("verify", str(run_dir)).code == 0


def test_status_logs_download_stop(odrun, reana, demo: Path, tmp_path: Path) -> None:
    res = odrun("submit", str(demo), "--name", "z peak!", *POLL)
    assert res.code == 0, res.err
    status = odrun("status", str(demo), "--json")
    assert status.code == 0, status.err
    assert status.json()["workflow_name"] == "z-peak.1"
    # poll (bounded) until the engine has run the three steps
    import time

    deadline = time.monotonic() + 60
    while odrun("status", str(demo), "--json").json()["status"] != "finished":
        assert time.monotonic() < deadline, "workflow did not finish"
        time.sleep(0.05)
    logs = odrun("logs", str(demo))
    assert logs.code == 0
    assert "--- step fit (finished)" in logs.out
    out = tmp_path / "out"
    got = odrun("download", str(demo), "--output-dir", str(out), "--verify")
    assert got.code == 0, got.err
    assert (out / "results" / "mass.png").is_file()
    record = json.loads(next((demo / ".odrun" / "reana").glob("*/submission.json")).read_text())
    assert record["server"] == reana.url
    assert "token" not in json.dumps(record)
    assert all(o["checksum"].startswith("adler32:") for o in record["outputs"])
    # by workflow name, without a local record (server from REANA_SERVER_URL)
    bare = odrun("status", "z-peak.1", "--json")
    assert bare.code == 0
    assert bare.json()["status"] == "finished"
    stopped = odrun("stop", str(demo))
    assert stopped.code == 0, stopped.err
    assert "z-peak.1: already finished, nothing to stop" in stopped.out
    assert not [r for r in reana.requests if r.startswith("PUT ")]  # no stop sent: REANA 409s


def test_token_rejected(odrun, reana, demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REANA_ACCESS_TOKEN", "wrong-token-xyz")
    res = odrun("submit", str(demo), "--follow")
    assert res.code == 12
    assert "access denied" in res.err
    assert "Token is not valid" in res.err
    assert "wrong-token-xyz" not in res.err + res.out
    assert reana.workflows == {}
    monkeypatch.delenv("REANA_ACCESS_TOKEN")
    res = odrun("submit", str(demo))
    assert res.code == 12
    assert "REANA_ACCESS_TOKEN" in res.err


def test_5xx_and_resets_retried_without_duplicates(odrun, reana, demo: Path) -> None:
    reana.fail("POST", r"^/api/workflows$", 500, after=True)  # created, but the answer is 500
    reana.fail("POST", r"/workspace$", 502)
    reana.fail("GET", r"/status$", 503, count=2)
    reana.fail("GET", r"/status$", 0)  # a dropped connection
    reana.fail("GET", r"/workspace/results/fit.json$", 500)
    res = odrun("submit", str(demo), "--follow", "--verify", *POLL)
    assert res.code == 0, res.err
    assert len(reana.workflows) == 1  # the ambiguous create was looked up, not repeated
    creates = [r for r in reana.requests if r.startswith("POST /api/workflows?")]
    assert len(creates) == 1
    assert all(f.count == 0 for f in reana.faults)


def test_server_down_is_a_transport_error(odrun, reana, demo: Path) -> None:
    reana.fail("GET", r"^/api/ping$", 503, count=10)
    res = odrun("submit", str(demo))
    assert res.code == 5
    assert "after 4 attempts" in res.err


def test_failed_workflow_shows_the_failed_step(odrun, reana, tmp_path: Path) -> None:
    folder = serial(tmp_path, ["cat in.txt", "echo boom-detail >&2; exit 3", "true"], ["x"])
    res = odrun("submit", str(folder), "--follow", *POLL)
    assert res.code == 7
    assert "failed step: s1" in res.err
    assert "boom-detail" in res.err  # the failed step's own log
    assert "--- step s1 (failed)" in res.err
    doc = odrun("submit", str(folder), "--follow", *POLL, "--json")
    assert doc.code == 7
    (step,) = doc.json()["failed_steps"]
    assert step["name"] == "s1"
    assert "boom-detail" in step["logs"]


def test_missing_outputs(odrun, reana, tmp_path: Path) -> None:
    folder = serial(tmp_path, ["mkdir -p out && cp in.txt out/a.txt"], ["out/a.txt", "out/b.txt"])
    res = odrun("submit", str(folder), "--follow", "--download", *POLL, "--json")
    assert res.code == 7
    assert "without its declared outputs: out/b.txt" in res.err
    assert (folder / "out" / "a.txt").read_text() == "hello\n"
    missing = [o for o in res.json()["outputs"] if o.get("missing")]
    assert [o["path"] for o in missing] == ["out/b.txt"]


def test_inputs_remote_injects_an_odrun_fetch_step(odrun, reana, demo: Path, monkeypatch) -> None:
    res = odrun("submit", str(demo), "--inputs", "remote", "--odrun-image", IMAGE, "--follow",
                "--verify", *POLL, "--json")  # fmt: skip
    assert res.code == 0, res.err
    monkeypatch.setenv("ODRUN_REANA_IMAGE", "registry.example/odrun:site")
    other = odrun("submit", str(demo), "--inputs", "remote", "--follow", *POLL, "--json")
    assert other.code == 0, other.err
    site = reana.find(other.json()["workflow_id"])
    assert site is not None
    assert site.spec["workflow"]["specification"]["steps"][0]["environment"] == (
        "registry.example/odrun:site"
    )
    doc = res.json()
    assert doc["inputs_mode"] == "remote"
    assert {u["path"] for u in doc["uploaded"]} == {"reana.yaml", "analysis/dimuon.py"}  # no data
    wf = reana.find(doc["workflow_id"])
    assert wf is not None
    first = wf.spec["workflow"]["specification"]["steps"][0]
    assert first["environment"] == IMAGE
    assert (
        "fetch 900001 --dest data/900001 --filter-name Dimuon_generated.csv"
        in (first["commands"][0])
    )
    assert (wf.workspace / "data/900001/Dimuon_generated.csv").is_file()  # fetched "in cluster"


def test_bundle_protocol_when_advertised(odrun, tmp_path: Path, demo: Path, monkeypatch) -> None:
    with reana_server.serve(tmp_path / "srv2", bundles=True) as server:
        monkeypatch.setenv("REANA_SERVER_URL", server.url)
        monkeypatch.setenv("REANA_ACCESS_TOKEN", server.token)
        res = odrun("submit", str(demo), "--follow", "--verify", *POLL, "--json")
        assert res.code == 0, res.err
        assert res.json()["protocol"] == "bundles-v1"
        assert "protocol bundles-v1" in res.err
        (wf,) = server.workflows.values()
        assert wf.spec["workflow"]["type"] == "serial"  # read from the bundle's reana.yaml
        assert server.violations == []


def test_redact() -> None:
    url = "https://r.example/api/workflows?access_token=abc%2Fdef&x=1"
    assert redact(url) == "https://r.example/api/workflows?access_token=***&x=1"
    assert redact("token abc/def leaked", "abc/def") == "token *** leaked"


def test_spec_checker_catches_bad_exchanges() -> None:
    spec = reana_server.Spec(reana_server.LEGACY_SPEC)
    assert reana_server.check_request(spec, "POST", "/api/workflows", {}, "", b"")
    bad = reana_server.check_request(
        spec, "PUT", "/api/workflows/x/status", {"status": ["pause"], "access_token": ["t"]},
        "application/json", b"{}")  # fmt: skip
    assert any("not in" in p for p in bad)
    assert reana_server.check_response(
        spec, "GET", "/api/workflows/x/status", 200, "application/json",
        b'{"progress": {"total": {"total": "3"}}}')  # fmt: skip
    assert reana_server.check_response(spec, "GET", "/api/ping", 201, "application/json", b"{}")


def test_remote_inputs_for_snakemake_add_a_fetch_rule(tmp_path: Path, portal) -> None:
    from odrun.reana import spec as reana_spec
    from odrun.settings import Settings
    from odrun.workflow import load_analysis

    folder = tmp_path / "smk"
    folder.mkdir()
    (folder / "Snakefile").write_text("rule all:\n    input: 'out.txt'\n")
    (folder / "config.yaml").write_text("n: 3\n")
    (folder / "reana.yaml").write_text(
        "version: 0.9.0\ninputs:\n  parameters:\n    input: config.yaml\n"
        "workflow:\n  type: snakemake\n  file: Snakefile\n"
    )
    (folder / "odrun.yaml").write_text(
        f"version: 1\nname: smk\nportal: {portal.url}\n"
        "records:\n  - ref: 5500\n    names: ['*.py']\n    dest: code\n"
    )
    analysis = load_analysis(folder)
    body = reana_spec.expand(analysis)
    assert body["inputs"]["parameters"] == {"n": 3}  # the parameters file, loaded
    records = reana_spec.resolve_records(analysis, Settings.load())
    original = (folder / "Snakefile").read_text()
    spec, extra = reana_spec.inject_fetch(body, records, portal.url, original, IMAGE)
    assert spec["workflow"]["file"] == "Snakefile"
    text = extra["Snakefile"].decode()
    assert text.startswith(original)  # its first rule stays the default target
    assert "rule odrun_fetch_inputs:" in text
    assert f"odrun --portal {portal.url} fetch 5500 --dest code --filter-name '*.py'" in text
    assert f"container: 'docker://{IMAGE}'" in text


def test_follow_rides_out_an_outage(odrun, reana, demo: Path) -> None:
    reana.fail("GET", r"/status$", 503, count=9)  # two whole polls fail (4 attempts each)
    res = odrun("submit", str(demo), "--follow", *POLL)
    assert res.code == 0, res.err
    assert reana.faults[0].count == 0


def test_submission_crate_passes_the_ro_crate_validator(odrun, reana, demo: Path) -> None:
    rocrate_validator = pytest.importorskip("rocrate_validator")
    reason = rocrate_validator.ensure()
    if reason:
        pytest.skip(f"roc-validator unavailable: {reason}")
    res = odrun("submit", str(demo), "--follow", "--verify", *POLL, "--json")
    assert res.code == 0, res.err
    run_dir = Path(res.json()["run_dir"])
    # the local workspace mirrors what was sent and what came back
    assert (run_dir / "workspace/data/900001/Dimuon_generated.csv").is_file()
    assert (run_dir / "workspace/results/fit.json").is_file()
    report = rocrate_validator.validate(run_dir, "workflow-run-crate-0.5")
    assert report["issues"] == []
    assert report["passed"] is True


def test_httpx_logs_never_show_the_token(
    odrun, reana, demo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    with caplog.at_level(logging.DEBUG):
        assert odrun("submit", str(demo), "--follow", *POLL).code == 0
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "access_token=***" in text  # httpx logged the requests, scrubbed
    assert reana.token not in text


def test_auto_inputs_choose_remote_for_large_records() -> None:
    from types import SimpleNamespace

    from odrun.errors import UsageError
    from odrun.reana.submit import choose_inputs

    big: list = [SimpleNamespace(size=2_000_000_000)]
    small: list = [SimpleNamespace(size=10)]
    assert choose_inputs("auto", big, False, IMAGE) == "remote"
    assert choose_inputs("auto", big, True, IMAGE) == "upload"
    assert choose_inputs("auto", small, False, IMAGE) == "upload"
    assert choose_inputs("remote", small, True, IMAGE) == "remote"
    # no odrun image configured: auto uploads (and says why), remote is a usage error
    notes: list[str] = []
    assert choose_inputs("auto", big, False, None, notes.append) == "upload"
    assert "--odrun-image" in notes[0]
    assert "ODRUN_REANA_IMAGE" in notes[0]
    with pytest.raises(UsageError, match="--odrun-image IMAGE or set ODRUN_REANA_IMAGE"):
        choose_inputs("remote", small, False, None)


def test_no_server_configured(odrun, demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REANA_SERVER_URL", raising=False)
    res = odrun("status", "some-workflow")
    assert res.code == 8
    assert "REANA_SERVER_URL" in res.err


SNAKEFILE = """\
rule all:
    input: "results/count.txt"

rule count:
    input: "data/900001/Dimuon_generated.csv"
    output: "results/count.txt"
    params: label=config["label"]
    shell: "echo {params.label} $(wc -l < {input}) > {output}"
"""


@pytest.mark.skipif(shutil.which("snakemake") is None, reason="snakemake not installed")
@pytest.mark.parametrize("inputs", ["upload", "remote"])
def test_snakemake_submit(odrun, reana, tmp_path: Path, inputs: str) -> None:
    shutil.copytree(REPO / "workflows" / "mirror", tmp_path / "mirror")
    folder = tmp_path / "smk"
    (folder / "workflow").mkdir(parents=True)
    (folder / "workflow" / "Snakefile").write_text(SNAKEFILE)
    (folder / "params.yaml").write_text("label: muons\n")
    (folder / "reana.yaml").write_text(
        "version: 0.9.0\ninputs:\n  parameters:\n    input: params.yaml\n"
        "workflow:\n  type: snakemake\n  file: workflow/Snakefile\n"
        "outputs:\n  files: [results/count.txt]\n"
    )
    (folder / "odrun.yaml").write_text(
        "version: 1\nname: smk\nportal: file:../mirror\nrecords:\n  - ref: 900001\n"
        "    regexp: '^Dimuon_gen.{1}rated[.]csv$'\n    dest: data/900001\n"
        "expect:\n  - file: results/count.txt\n"
    )
    res = odrun("submit", str(folder), "--inputs", inputs, "--odrun-image", IMAGE, "--follow",
                "--verify", *POLL, "--json")  # fmt: skip
    assert res.code == 0, res.err
    doc = res.json()
    wf = reana.find(doc["workflow_id"])
    assert wf is not None
    assert wf.spec["inputs"]["parameters"] == {"label": "muons"}  # the parameters file, loaded
    lines = len((tmp_path / "mirror/files/900001/Dimuon_generated.csv").read_text().splitlines())
    assert (folder / "results" / "count.txt").read_text() == f"muons {lines}\n"
    uploaded = {u["path"] for u in doc["uploaded"]}
    if inputs == "remote":  # the data came through the injected rule's `odrun fetch`
        assert "data/900001/Dimuon_generated.csv" not in uploaded
        assert "rule odrun_fetch_inputs:" in (wf.workspace / "workflow/Snakefile").read_text()
        assert "odrun_fetch_inputs" in wf.jobs[0]["logs"]
        assert "odrun_fetch_inputs" not in (folder / "workflow/Snakefile").read_text()
    else:
        assert "data/900001/Dimuon_generated.csv" in uploaded


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_tls_is_verified(odrun, tmp_path: Path, demo: Path, monkeypatch) -> None:
    cert, key = reana_server.self_signed(tmp_path)
    with reana_server.serve(tmp_path / "srv-tls", tls=(cert, key)) as server:
        monkeypatch.setenv("REANA_SERVER_URL", server.url)
        monkeypatch.setenv("REANA_ACCESS_TOKEN", server.token)
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        untrusted = odrun("submit", str(demo))
        assert untrusted.code == 5
        assert "TLS certificate is not trusted" in untrusted.err
        assert "SSL_CERT_FILE" in untrusted.err
        assert server.requests == []  # nothing was sent over the untrusted connection
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the site's CA, as the hint says
        trusted = odrun("submit", str(demo), "--follow", *POLL)
        assert trusted.code == 0, trusted.err
        assert server.violations == []


def test_bad_record_data_creates_nothing(odrun, reana, demo: Path) -> None:
    data = demo.parent / "mirror" / "files" / "900001" / "Dimuon_generated.csv"
    body = data.read_bytes()
    data.write_bytes(body[:-3] + b"999")  # same size, not the declared checksum
    res = odrun("submit", str(demo), "--follow")
    assert res.code == 4, res.err
    assert reana.workflows == {}  # nothing half-made on the server
    assert not list((demo / ".odrun" / "reana").glob(".staging-*"))


def wait_finished(server: reana_server.ReanaServer, workflow_id: str) -> None:
    import time

    deadline = time.monotonic() + 60
    wf = server.find(workflow_id)
    assert wf is not None
    while wf.status not in ("finished", "failed"):
        assert time.monotonic() < deadline, "workflow did not end"
        time.sleep(0.05)


def test_latest_submission_is_the_last_submitted_not_the_last_touched(odrun, reana, demo) -> None:
    first = odrun("submit", str(demo), "--follow", *POLL, "--json")
    second = odrun("submit", str(demo), "--follow", *POLL, "--json")
    assert first.code == second.code == 0, first.err + second.err
    assert second.json()["workflow_name"] == "dimuon-demo.2"
    # touching the older record (status rewrites its submission.json) must not make it "latest"
    assert odrun("status", first.json()["run_dir"]).code == 0
    latest = odrun("status", str(demo), "--json")
    assert latest.code == 0, latest.err
    assert latest.json()["workflow_name"] == "dimuon-demo.2"


def test_download_by_name_confines_server_names(odrun, reana, demo, tmp_path, monkeypatch) -> None:
    res = odrun("submit", str(demo), "--name", "evil", *POLL, "--json")
    assert res.code == 0, res.err
    wait_finished(reana, res.json()["workflow_id"])
    wf = reana.find(res.json()["workflow_id"])
    assert wf is not None
    monkeypatch.chdir(tmp_path)
    absolute = str(tmp_path / "abs-escaped.txt")
    for name in ("../../escaped.txt", absolute, "a/../../escaped.txt"):
        wf.extra_listing = [name]
        got = odrun("download", "evil.1", "--output-dir", "out")
        assert got.code == 9, got.err
        assert f"lists workspace file {name!r}" in got.err
        assert "Traceback" not in got.err
        assert not (tmp_path / "out").exists()  # every name is checked before any is written
    assert not list(tmp_path.parent.glob("escaped.txt"))
    assert not Path(absolute).exists()


def test_download_by_name_refuses_server_names_that_collide(
    odrun, reana, demo, tmp_path, monkeypatch
) -> None:
    """Failed before: `results/fit.json/x` beside `results/fit.json` was exit 1 ("unexpected
    error: FileExistsError") after other files were written, and `results/./fit.json` or
    `results//fit.json` downloaded a second file over the first with exit 0."""
    res = odrun("submit", str(demo), "--name", "evil", *POLL, "--json")
    assert res.code == 0, res.err
    wait_finished(reana, res.json()["workflow_id"])
    wf = reana.find(res.json()["workflow_id"])
    assert wf is not None
    monkeypatch.chdir(tmp_path)
    for name in ("results/fit.json/x", "results/./fit.json", "results//fit.json", "results"):
        wf.extra_listing = [name]
        got = odrun("download", "evil.1", "--output-dir", "out")
        assert got.code == 9, got.err
        assert "results/fit.json" in got.err
        assert repr(name) in got.err
        assert not (tmp_path / "out").exists()  # refused before anything is written


def test_download_of_a_record_refuses_listed_outputs_that_collide(
    odrun, reana, demo, tmp_path
) -> None:
    """Failed before: a name listed under a declared output folder that spells a declared
    file differently (results/./fit.json) was downloaded over it, and the run record
    listed results/fit.json twice, one entry with a checksum of bytes no longer there."""
    text = (demo / "reana.yaml").read_text()
    (demo / "reana.yaml").write_text(
        text.replace(
            "    - results/mass.png\n", "    - results/mass.png\n  directories:\n    - results\n"
        )
    )
    res = odrun("submit", str(demo), "--name", "evil", *POLL, "--json")
    assert res.code == 0, res.err
    wait_finished(reana, res.json()["workflow_id"])
    wf = reana.find(res.json()["workflow_id"])
    assert wf is not None
    for name in ("results/./fit.json", "results//fit.json", "results/fit.json/x"):
        wf.extra_listing = [name]
        out = tmp_path / "out"
        got = odrun("download", str(demo), "--output-dir", str(out))
        assert got.code == 9, got.err
        assert repr(name) in got.err
        assert not [p for p in out.rglob("*") if p.is_file()]  # refused before any download


def test_status_of_a_name_after_its_download_folder_exists(
    odrun, reana, demo, tmp_path, monkeypatch
):
    res = odrun("submit", str(demo), *POLL, "--json")
    assert res.code == 0, res.err
    wait_finished(reana, res.json()["workflow_id"])
    monkeypatch.chdir(tmp_path)
    got = odrun("download", "dimuon-demo.1")
    assert got.code == 0, got.err
    assert (tmp_path / "dimuon-demo.1" / "results" / "fit.json").is_file()
    status = odrun("status", "dimuon-demo.1", "--json")  # the folder holds no record: the server
    assert status.code == 0, status.err
    assert status.json()["status"] == "finished"
    assert odrun("status", "./dimuon-demo.1").code == 2  # a path is a path: no record there


def test_bad_token_fails_before_any_fetch(odrun, reana, demo: Path, monkeypatch) -> None:
    data = demo.parent / "mirror" / "files" / "900001" / "Dimuon_generated.csv"
    data.write_bytes(data.read_bytes()[:-3] + b"999")  # a fetch would fail (exit 4)
    monkeypatch.setenv("REANA_ACCESS_TOKEN", "wrong-token-xyz")
    res = odrun("submit", str(demo))
    assert res.code == 12, res.err
    assert "check the access token" in res.err
    assert [r.split("?")[0] for r in reana.requests] == ["GET /api/ping", "GET /api/you"]
    assert not (demo / ".odrun" / "reana").exists() or not list((demo / ".odrun/reana").iterdir())


def test_bad_poll_interval_and_unwritable_output_dir(odrun, reana, demo: Path, tmp_path) -> None:
    for bad in ("-1", "0"):
        res = odrun("submit", str(demo), "--follow", "--poll-interval", bad)
        assert res.code == 2, res.err
        assert "--poll-interval" in res.err
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    res = odrun("submit", str(demo), "--download", "--output-dir", str(blocker / "out"), *POLL)
    assert res.code == 2, res.err
    assert "is not writable" in res.err
    assert reana.workflows == {}  # checked before anything was submitted


def test_output_that_cannot_be_placed_is_a_typed_error(odrun, reana, demo, tmp_path) -> None:
    res = odrun("submit", str(demo), *POLL, "--json")
    assert res.code == 0, res.err
    wait_finished(reana, res.json()["workflow_id"])
    out = tmp_path / "out"
    (out / "results" / "fit.json").mkdir(parents=True)  # a folder where a file must go
    got = odrun("download", str(demo), "--output-dir", str(out))
    assert got.code == 2, got.err
    assert "cannot write output results/fit.json" in got.err
    assert "Traceback" not in got.err
    run_dir = Path(res.json()["run_dir"])
    assert not (run_dir / "run.json").exists()  # no record claiming outputs it does not have
    assert json.loads((run_dir / "submission.json").read_text())["outputs"] == []


def test_failure_after_create_names_the_workflow_left(odrun, reana, demo, monkeypatch) -> None:
    reana.fail("POST", r"/workspace$", 400)  # not retried
    res = odrun("submit", str(demo))
    assert res.code == 2, res.err
    assert "workflow dimuon-demo.1 was created on REANA but not started" in res.err
    assert "reana-client delete -w dimuon-demo.1" in res.err
    (wf,) = reana.workflows.values()
    assert wf.status == "created"

    from odrun.reana.client import ReanaClient

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ReanaClient, "upload", interrupted)
    res = odrun("submit", str(demo))
    assert res.code == 130, res.err
    assert "interrupted; workflow dimuon-demo.2 was created on REANA but not started" in res.err
    assert "keeps running" not in res.err


@pytest.mark.parametrize("where", ["record", "workspace"])
def test_a_local_failure_after_create_names_the_workflow_left(
    odrun, reana, tmp_path: Path, monkeypatch, where: str
) -> None:
    import errno
    import importlib

    submit_module = importlib.import_module("odrun.reana.submit")

    folder = tmp_path / "params-only"  # no file to upload but the spec itself
    folder.mkdir()
    (folder / "reana.yaml").write_text(
        "version: 0.9.0\ninputs:\n  parameters:\n    word: hi\nworkflow:\n  type: serial\n"
        "  specification:\n    steps:\n      - environment: docker.io/library/bash:5.2\n"
        "        commands: ['echo $word']\n"
    )

    def full(*_: object, **__: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    rename = Path.rename

    def rename_fails(self: Path, target: Path) -> Path:
        if Path(target).name == "workspace":  # the staged files becoming the record's
            full()
        return rename(self, target)

    if where == "record":
        monkeypatch.setattr(submit_module.Submission, "save", full)
    else:
        monkeypatch.setattr(Path, "rename", rename_fails)
    res = odrun("submit", str(folder), "--name", "p")
    assert res.code == 13, res.err  # DiskFullError, one line, not an unexpected error
    assert "workflow p.1 was created on REANA but not started" in res.err
    assert "reana-client delete -w p.1" in res.err
    assert "Traceback" not in res.err
    assert "unexpected" not in res.err
    (wf,) = reana.workflows.values()
    assert wf.status == "created"


def test_interrupt_while_following_says_it_keeps_running(odrun, reana, demo, monkeypatch) -> None:
    from odrun.reana.client import ReanaClient

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ReanaClient, "status", interrupted)
    res = odrun("submit", str(demo), "--follow", *POLL)
    assert res.code == 130, res.err
    assert "workflow dimuon-demo.1 keeps running on REANA" in res.err
    assert "odrun stop" in res.err


def test_remote_inputs_need_an_odrun_image(odrun, reana, demo: Path, monkeypatch) -> None:
    monkeypatch.delenv("ODRUN_REANA_IMAGE", raising=False)
    res = odrun("submit", str(demo), "--inputs", "remote")
    assert res.code == 2, res.err
    assert "--odrun-image IMAGE or set ODRUN_REANA_IMAGE" in res.err
    assert "images/odrun/README.md" in res.err
    assert len(res.err.strip().splitlines()) == 1
    assert reana.workflows == {}
    assert "docker.io/odrun" not in odrun("submit", "--help").out


def test_snakemake_regexp_braces_are_escaped(tmp_path: Path, portal) -> None:
    from odrun.reana import spec as reana_spec
    from odrun.settings import Settings
    from odrun.workflow import load_analysis

    folder = tmp_path / "smk"
    folder.mkdir()
    (folder / "Snakefile").write_text("rule all:\n    input: 'out.txt'\n")
    (folder / "reana.yaml").write_text("version: 0.9.0\nworkflow:\n  type: snakemake\n")
    (folder / "odrun.yaml").write_text(
        f"version: 1\nname: smk\nportal: {portal.url}\n"
        "records:\n  - ref: 5500\n    regexp: '[a-z0-9_]{1,40}[.]py$'\n    dest: code\n"
    )
    analysis = load_analysis(folder)
    records = reana_spec.resolve_records(analysis, Settings.load())
    assert records[0].files
    _, extra = reana_spec.inject_fetch(reana_spec.expand(analysis), records, None, "", IMAGE)
    assert "--filter-regexp '[a-z0-9_]{{1,40}}[.]py$'" in extra["Snakefile"].decode()


def test_json_parameters_file_is_loaded(tmp_path: Path) -> None:
    from odrun.reana import spec as reana_spec
    from odrun.workflow import load_analysis

    folder = tmp_path / "smk"
    folder.mkdir()
    (folder / "Snakefile").write_text("rule all:\n    shell: 'true'\n")
    (folder / "params.json").write_text('{"label": "muons", "n": 2}')
    (folder / "reana.yaml").write_text(
        "version: 0.9.0\ninputs:\n  parameters:\n    input: params.json\n"
        "workflow:\n  type: snakemake\n  file: Snakefile\n"
    )
    body = reana_spec.expand(load_analysis(folder))
    assert body["inputs"]["parameters"] == {"label": "muons", "n": 2}


def test_stop_a_finished_workflow_is_a_409_from_the_server(reana, demo: Path, odrun) -> None:
    from odrun.errors import UsageError
    from odrun.reana.client import ReanaClient
    from odrun.settings import Settings

    res = odrun("submit", str(demo), "--follow", *POLL, "--json")
    assert res.code == 0, res.err
    client = ReanaClient(reana.url, reana.token, Settings.load())
    with client, pytest.raises(UsageError, match="HTTP 409"):
        client.stop("dimuon-demo.1")  # as REANA answers (the spec declares 409)
    stopped = odrun("stop", "dimuon-demo.1")
    assert stopped.code == 0, stopped.err
    assert "already finished" in stopped.out


def test_verify_without_expectations_warns(odrun, reana, tmp_path: Path) -> None:
    folder = serial(tmp_path, ["mkdir -p out && cp in.txt out/a.txt"], ["out/a.txt"])
    res = odrun("submit", str(folder), "--follow", "--verify", *POLL)
    assert res.code == 0, res.err
    assert "--verify: odrun.yaml declares no expect: entries, nothing to verify" in res.err


def test_stop_racing_the_end_of_a_workflow(odrun, reana, tmp_path: Path) -> None:
    folder = serial(tmp_path, ["sleep 5"], [])
    res = odrun("submit", str(folder), *POLL, "--json")
    assert res.code == 0, res.err
    wf = reana.find(res.json()["workflow_id"])
    assert wf is not None
    reana.fail("PUT", r"/status$", 409, after=True)  # it ended just before the stop arrived
    stopped = odrun("stop", "small.1")
    assert stopped.code == 0, stopped.err
    assert "small.1: already stopped, nothing to stop" in stopped.out
