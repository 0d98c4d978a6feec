"""odrun verify judges only complete runs: never a failed or partial run as if complete."""

from __future__ import annotations

import json
import re
from pathlib import Path

STAMP = r"\d{8}T\d{6}\d*Z"


def analysis(root: Path, exit_code: int = 0) -> Path:
    """Two steps: ``make`` writes out/r.json, ``check`` exits with ``exit_code``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "reana.yaml").write_text(
        f"version: 0.9.0\ninputs:\n  parameters: {{code: {exit_code}}}\n"
        "workflow:\n  type: serial\n  specification:\n    steps:\n"
        "      - name: make\n        environment: docker.io/library/busybox:1.36\n"
        '        commands: ["mkdir -p out && echo \'{\\"x\\": 1}\' > out/r.json"]\n'
        "      - name: check\n        environment: docker.io/library/busybox:1.36\n"
        '        commands: ["echo checking; exit $code"]\n'
        "outputs:\n  files: [out/r.json]\n"
    )
    (root / "odrun.yaml").write_text(
        "version: 1\nexpect:\n  - name: result\n    file: out/r.json\n"
        "    values:\n      x: {value: 1, abs: 0}\n"
    )
    return root


def runs(root: Path) -> list[Path]:
    return sorted((root / ".odrun" / "runs").iterdir())


def test_verify_names_the_finished_run_it_judges(odrun, tmp_path: Path) -> None:
    root = analysis(tmp_path / "a")
    assert odrun("run", str(root), "--runtime", "host").code == 0
    result = odrun("verify", str(root))
    assert result.code == 0, result.err
    (run_dir,) = runs(root)
    ended = json.loads((run_dir / "run.json").read_text())["ended"]
    assert f"verifying run {run_dir.name} (finished {ended})" in result.out
    # the same run when the analysis is named by its spec file
    by_file = odrun("verify", str(root / "odrun.yaml"))
    assert by_file.code == 0, by_file.err
    assert f"verifying run {run_dir.name} (finished {ended})" in by_file.out


def test_latest_run_failed_is_reported_not_judged(odrun, tmp_path: Path) -> None:
    root = analysis(tmp_path / "a")
    assert odrun("run", str(root), "--runtime", "host").code == 0
    analysis(root, exit_code=3)
    assert odrun("run", str(root), "--runtime", "host").code == 7
    good, bad = runs(root)
    result = odrun("verify", str(root))
    assert result.code == 7, result.out + result.err
    assert f"run {bad.name} failed at step check" in result.err
    assert "exit code 3" in result.err
    assert f"the newest complete run is {good.name}" in result.err  # what to do instead
    assert "FAIL" not in result.out  # no expectations judged against the failed run
    # the failed run folder itself: the same verdict
    direct = odrun("verify", str(bad))
    assert direct.code == 7
    assert f"run {bad.name} failed at step check" in direct.err
    # and the complete run is still judged when named
    assert odrun("verify", str(good)).code == 0


def test_only_a_failed_run(odrun, tmp_path: Path) -> None:
    root = analysis(tmp_path / "a", exit_code=4)
    assert odrun("run", str(root), "--runtime", "host").code == 7
    result = odrun("verify", str(root), "--json")
    assert result.code == 7
    assert "failed at step check" in result.err
    assert result.out == ""  # no verdict on outputs at all
    assert "Traceback" not in result.err


def test_a_run_failing_before_any_step(odrun, tmp_path: Path) -> None:
    root = analysis(tmp_path / "a")
    assert odrun("run", str(root), "--runtime", "host").code == 0
    result = odrun("run", str(root), "--runtime", "apptainer")  # not installed: fails early
    assert result.code == 8
    verify = odrun("verify", str(root))
    assert verify.code == 7
    assert re.search(rf"run {STAMP} failed: .*apptainer", verify.err), verify.err


def test_partial_run_is_passed_over(odrun, tmp_path: Path) -> None:
    root = analysis(tmp_path / "a")
    assert odrun("run", str(root), "--runtime", "host").code == 0
    assert odrun("run", str(root), "--runtime", "host", "--target", "make").code == 0
    complete, partial = runs(root)
    assert json.loads((partial / "run.json").read_text())["partial"] is True
    assert json.loads((complete / "run.json").read_text())["partial"] is False
    result = odrun("verify", str(root))
    assert result.code == 0, result.err
    assert f"verifying run {complete.name}" in result.out
    assert f"passing over run {partial.name}" in result.err
    direct = odrun("verify", str(partial))
    assert direct.code == 7
    assert "is partial" in direct.err


def test_a_newest_run_without_run_json_fails_verify(odrun, tmp_path: Path) -> None:
    """The verdict is about the newest run: a newer run folder without run.json (killed,
    still running, or its record removed) is never passed over for an older PASS."""
    root = analysis(tmp_path / "a")
    assert odrun("run", str(root), "--runtime", "host").code == 0
    (done,) = runs(root)
    killed = done.parent / "99999999T999999999999Z"
    (killed / "workspace").mkdir(parents=True)  # a run killed before writing run.json
    for target in (root, root / "odrun.yaml", root / "reana.yaml"):
        result = odrun("verify", str(target))
        assert result.code == 7, result.out + result.err
        assert f"run {killed.name}" in result.err
        assert "no run.json" in result.err
        assert f"odrun verify {done}" in result.err  # the older run, only when named
        assert "PASS" not in result.out
        assert len(result.err.strip().splitlines()) <= 2, result.err
    # a newer run whose run.json was removed: the same
    assert odrun("run", str(root), "--runtime", "host").code == 0
    killed.rename(killed.with_name("00000000T000000000000Z"))  # now the oldest
    newest = runs(root)[-1]
    (newest / "run.json").unlink()
    result = odrun("verify", str(root))
    assert result.code == 7, result.out + result.err
    assert f"run {newest.name}" in result.err
    # the older complete run is still judged when named
    assert odrun("verify", str(done)).code == 0


def test_never_run(odrun, tmp_path: Path) -> None:
    root = analysis(tmp_path / "a")
    result = odrun("verify", str(root))
    assert result.code == 2
    assert "has run" in result.err


def test_library_latest_finished_only(odrun, tmp_path: Path) -> None:
    from odrun.workflow.record import RunRecord, latest, run_to_verify

    root = analysis(tmp_path / "a")
    assert odrun("run", str(root), "--runtime", "host").code == 0
    analysis(root, exit_code=5)
    assert odrun("run", str(root), "--runtime", "host").code == 7
    good, bad = runs(root)
    newest = latest(root)
    assert newest is not None
    assert newest.run_dir == bad
    assert newest.status == "failed"
    assert newest.failed_step == "check"
    finished = latest(root, finished_only=True)
    assert finished is not None
    assert finished.run_dir == good
    assert finished.complete
    assert RunRecord.load(good).describe().startswith(f"run {good.name} (finished ")
    assert run_to_verify(good).run_dir == good


def test_run_verify_without_expectations_says_so(odrun, tmp_path: Path) -> None:
    root = analysis(tmp_path / "a")
    (root / "odrun.yaml").write_text("version: 1\n")
    result = odrun("run", str(root), "--runtime", "host", "--verify")
    assert result.code == 0, result.err
    assert "--verify: odrun.yaml declares no expect: entries, nothing to verify" in result.err


def test_a_run_whose_verdict_crashes_keeps_its_record_and_is_not_passed_over(
    odrun, tmp_path: Path, monkeypatch
) -> None:
    """Failed before the fix: an exception while judging the outputs (after the steps ran)
    skipped writing run.json, so `odrun verify` passed over the new run as "still running"
    and judged the older good run: exit 0 for a run that crashed."""
    from odrun.workflow import runner

    root = analysis(tmp_path / "a")
    assert odrun("run", str(root), "--runtime", "host").code == 0

    def crash(*_args: object, **_kw: object) -> list[object]:
        raise RuntimeError("the verdict crashed")

    monkeypatch.setattr(runner, "evaluate", crash)
    crashed = odrun("run", str(root), "--runtime", "host")
    assert crashed.code != 0
    monkeypatch.undo()
    _good, bad = runs(root)
    record = json.loads((bad / "run.json").read_text())
    assert record["status"] == "failed"
    assert "the verdict crashed" in record["error"]
    result = odrun("verify", str(root))
    assert result.code == 7, result.out + result.err
    assert f"run {bad.name} failed" in result.err


def test_from_on_a_run_that_failed_before_that_step_is_partial(odrun, tmp_path: Path) -> None:
    """Failed before: `make` failed (after writing out/r.json), then `--from check --workdir
    RUN` ran only `check`; the folder was judged a complete run and verify exited 0 on the
    output of a step that had failed."""
    root = tmp_path / "a"
    root.mkdir()
    (root / "reana.yaml").write_text(
        "version: 0.9.0\ninputs:\n  parameters: {code: 3}\n"
        "workflow:\n  type: serial\n  specification:\n    steps:\n"
        "      - name: make\n        environment: docker.io/library/busybox:1.36\n"
        '        commands: ["mkdir -p out && echo \'{\\"x\\": 1}\' > out/r.json && exit $code"]\n'
        "      - name: check\n        environment: docker.io/library/busybox:1.36\n"
        '        commands: ["echo checking"]\n'
        "      - name: report\n        environment: docker.io/library/busybox:1.36\n"
        '        commands: ["echo reporting"]\n'
        "outputs:\n  files: [out/r.json]\n"
    )
    (root / "odrun.yaml").write_text(
        "version: 1\nexpect:\n  - file: out/r.json\n    values:\n      x: {value: 1, abs: 0}\n"
    )
    run = tmp_path / "run"
    host = ("--runtime", "host", "--workdir", str(run))
    assert odrun("run", str(root), *host).code == 7  # make failed
    assert odrun("run", str(root), *host, "--from", "check").code == 0
    assert json.loads((run / "run.json").read_text())["partial"] is True
    result = odrun("verify", str(run))
    assert result.code == 7, result.out + result.err
    assert "partial" in result.err
    # after make succeeds, continuing from a later step (twice) is a complete run again
    run2 = tmp_path / "run2"
    again = ("--runtime", "host", "--workdir", str(run2))
    text = (root / "reana.yaml").read_text()
    (root / "reana.yaml").write_text(text.replace("{code: 3}", "{code: 0}"))
    assert odrun("run", str(root), *again, "--target", "make").code == 0
    assert odrun("run", str(root), *again, "--from", "check", "--target", "check").code == 0
    assert odrun("run", str(root), *again, "--from", "report").code == 0
    assert json.loads((run2 / "run.json").read_text())["partial"] is False
    assert odrun("verify", str(run2)).code == 0


def test_report_of_an_analysis_whose_newest_run_has_no_run_json(odrun, tmp_path: Path) -> None:
    """``odrun report PATH`` shows the newest run's verdict too: never an older run's PASS
    in place of a newer run that left no record."""
    root = analysis(tmp_path / "a")
    assert odrun("run", str(root), "--runtime", "host").code == 0
    (done,) = runs(root)
    killed = done.parent / "99999999T999999999999Z"
    (killed / "workspace").mkdir(parents=True)
    result = odrun("report", str(root), "-o", str(tmp_path / "r.html"))
    assert result.code == 7, result.out + result.err
    assert f"run {killed.name}" in result.err
    assert not (tmp_path / "r.html").exists()
    assert odrun("report", str(done), "-o", str(tmp_path / "r.html")).code == 0
