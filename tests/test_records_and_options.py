"""Run records, run options, the error tree's new members, and reana.download as a library."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from odrun import errors
from odrun.settings import Settings

import reana_server


@pytest.fixture
def reana(tmp_path: Path) -> Iterator[reana_server.ReanaServer]:
    with reana_server.serve(tmp_path / "reana-srv") as server:
        yield server


def finished_workflow(server: reana_server.ReanaServer, name: str, files: dict[str, str]) -> str:
    wid = str(uuid.uuid4())
    workspace = server.root / wid
    for rel, text in files.items():
        (workspace / rel).parent.mkdir(parents=True, exist_ok=True)
        (workspace / rel).write_text(text)
    server.workflows[wid] = reana_server.Workflow(
        wid, name, 1, {}, workspace, "2026-01-01T00:00:00", status="finished"
    )
    return wid


def client_of(server: reana_server.ReanaServer):  # type: ignore[no-untyped-def]
    from odrun.reana.client import ReanaClient

    return ReanaClient(server.url, server.token, Settings.load())


# -- the error tree ---------------------------------------------------------------------


def test_conflict_error_is_a_usage_error_in_the_tree() -> None:
    assert issubclass(errors.ConflictError, errors.UsageError)
    assert errors.ConflictError.exit_code == 2
    assert "ConflictError" in (errors.__doc__ or "")
    assert "409" in dict(errors.EXIT_CODES)[2]


def test_spec_and_histogram_errors_join_the_tree() -> None:
    from odrun.workflow.histograms import HistogramError, read_histogram
    from odrun.workflow.spec import SpecError

    assert SpecError is errors.SpecError
    assert issubclass(errors.SpecError, errors.UsageError)
    assert HistogramError is errors.HistogramError
    assert issubclass(errors.HistogramError, errors.OdrunError)
    assert issubclass(errors.HistogramError, ValueError)  # as before: callers caught that
    for name in ("SpecError", "HistogramError"):
        assert name in (errors.__doc__ or "")
    with pytest.raises(errors.OdrunError):
        read_histogram(Path("/nonexistent/h.json"), "")


def test_every_error_class_is_in_the_docstring_tree() -> None:
    classes = [
        v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, errors.OdrunError)
    ]
    doc = errors.__doc__ or ""
    for cls in classes:
        line = next((li for li in doc.splitlines() if f" {cls.__name__} " in li), None)
        assert line is not None, f"{cls.__name__} is missing from the tree in odrun/errors.py"
        assert f"[{cls.exit_code}]" in line, line
    assert {code for code, _ in errors.EXIT_CODES} >= {cls.exit_code for cls in classes}


def test_http_409_is_a_conflict_error(reana) -> None:
    wid = finished_workflow(reana, "ended", {"out.txt": "x"})
    reana.fail("POST", "/stop", status=409)
    with client_of(reana) as client, pytest.raises(errors.ConflictError, match="HTTP 409"):
        client.stop(wid)
    reana.fail("GET", "/status", status=400)
    with client_of(reana) as client, pytest.raises(errors.UsageError) as err:
        client.status(wid)
    assert not isinstance(err.value, errors.ConflictError)  # 400 is malformed, not a conflict


# -- reana.download as a library ---------------------------------------------------------


def test_download_library_confines_every_name_before_writing(reana, tmp_path: Path) -> None:
    from odrun.reana import download

    wid = finished_workflow(reana, "evil", {"results/ok.txt": "fine"})
    out = tmp_path / "out"
    for name in ("../escaped.txt", str(tmp_path / "abs.txt"), "a/../../escaped.txt"):
        reana.workflows[wid].extra_listing = [name]
        with client_of(reana) as client, pytest.raises(errors.MetadataError, match=repr(name)):
            download(client, wid, output_dir=out)
        assert not out.exists()  # nothing written: every name checked first
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "abs.txt").exists()
    reana.workflows[wid].extra_listing = []
    with client_of(reana) as client:
        got = download(client, wid, output_dir=out)
    assert got.files == ["results/ok.txt"]
    assert got.target == out.resolve()
    assert (out / "results" / "ok.txt").read_text() == "fine"


# -- run options and run records ---------------------------------------------------------


def test_run_options_replace_keyword_arguments(demo: Path) -> None:
    from odrun.workflow import RunOptions, load_analysis, run_analysis

    options = RunOptions(runtime="host")
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.runtime = "podman"  # type: ignore[misc]
    assert RunOptions(from_step="a").partial
    assert not options.partial
    with pytest.raises(TypeError):
        run_analysis(load_analysis(demo), Settings.load(), runtime="host")  # type: ignore[call-arg]


def test_one_serialiser_writes_every_run_json(demo: Path, monkeypatch, tmp_path: Path) -> None:
    from odrun.reana.record import Submission
    from odrun.reana.submit import write_run_record
    from odrun.workflow import RunOptions, RunRecord, load_analysis, run_analysis

    monkeypatch.setenv("ODRUN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ODRUN_PORTAL_URL", str(demo.parent / "mirror"))
    saved: list[Path] = []
    real_save = RunRecord.save

    def spy(self: RunRecord) -> Path:
        saved.append(self.run_dir)
        return real_save(self)

    monkeypatch.setattr(RunRecord, "save", spy)
    analysis = load_analysis(demo)
    result = run_analysis(analysis, Settings.load(), RunOptions(runtime="host"))
    assert saved == [result.run_dir]
    on_disk = json.loads((result.run_dir / "run.json").read_text())
    assert on_disk == json.loads(json.dumps(result.to_dict()))
    record = RunRecord.load(result.run_dir)
    assert record.data == on_disk
    assert record.complete
    assert RunRecord.latest(demo) == record

    sub = Submission(
        run_dir=tmp_path / "reana-run",
        analysis_path=str(demo),
        server="https://reana.example",
        workflow_id="abc",
        workflow_name="dimuon-demo.1",
        analysis="dimuon-demo",
        status="finished",
    )
    sub.run_dir.mkdir()
    write_run_record(sub, analysis)
    assert saved[-1] == sub.run_dir
    reana_record = RunRecord.load(sub.run_dir)
    assert reana_record.data["reana"]["workflow_name"] == "dimuon-demo.1"
    assert reana_record.data["runtime"] == "reana"


def test_rerun_options_come_from_the_record(tmp_path: Path) -> None:
    from odrun.workflow import RunOptions, RunRecord

    data = {
        "status": "finished",
        "runtime": "host",
        "runtime_requested": "auto",
        "runtime_fallback": {"reason": "no podman"},
        "executor": "slurm",
        "executor_options": {"slurm_partition": "debug"},
        "untrusted": True,
    }
    options = RunOptions.rerun_of(RunRecord.from_dict(tmp_path, data))
    assert options == RunOptions(
        runtime="auto",
        executor="slurm",
        executor_options={"slurm_partition": "debug"},
        verify=True,
        untrusted=True,
    )
