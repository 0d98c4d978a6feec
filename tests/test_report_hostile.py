"""A hostile run folder given to ``odrun report``: nothing of the host leaks into the
report, and nothing in the folder can make the report hang or lie about the verdict.

Run folders come from someone else (a REANA download, a colleague's tarball): links in
them may point anywhere on this machine (to ``~/.ssh``, a docker config), files may be
FIFOs that block whoever opens them, logs may be huge.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_report import fake_run, text_of

from odrun.errors import UsageError
from odrun.report import build_report
from odrun.report import plots as plots_mod
from odrun.workflow.model import RunRecord

SECRET = "SECRET-7f3a9c"
DEADLINE = 30.0


def _failed_step_run(tmp_path: Path) -> Path:
    return fake_run(
        tmp_path,
        status="failed",
        steps=[{"name": "fit", "command": "python fit.py", "exit_code": 1,
                "log": "/elsewhere/logs/01-fit.log"}],
    )  # fmt: skip


def _outside(tmp_path: Path) -> Path:
    out = tmp_path / "host"
    out.mkdir(exist_ok=True)
    return out


def test_a_logs_folder_linked_out_of_the_run_is_not_read(tmp_path: Path) -> None:
    run_dir = _failed_step_run(tmp_path)
    host = _outside(tmp_path)
    (host / "01-fit.log").write_text(f"token {SECRET}\n")
    for p in (run_dir / "logs").iterdir():
        p.unlink()
    (run_dir / "logs").rmdir()
    (run_dir / "logs").symlink_to(host)
    assert SECRET not in build_report(run_dir)


def test_a_workspace_linked_out_of_the_run_is_not_embedded(tmp_path: Path) -> None:
    host = _outside(tmp_path)
    (host / "results").mkdir()
    (host / "results" / "leak.png").write_bytes(b"\x89PNG " + SECRET.encode())
    run_dir = fake_run(tmp_path, outputs=[{"path": "results/leak.png", "size": 11}])
    for p in (run_dir / "workspace" / "results").iterdir():
        p.unlink()
    (run_dir / "workspace" / "results").rmdir()
    (run_dir / "workspace").rmdir()
    (run_dir / "workspace").symlink_to(host)
    assert "data:image/png" not in build_report(run_dir)


@pytest.mark.parametrize("name", ["odrun.lock", "run.json"])
def test_a_run_document_linked_out_of_the_run_is_not_shown(tmp_path: Path, name: str) -> None:
    """A JSON file of the host (a docker config with its auths) named odrun.lock or
    run.json by a link is neither shown nor taken as the run's."""
    run_dir = fake_run(tmp_path)
    host = _outside(tmp_path)
    doc = {"auths": {"registry": {"auth": SECRET}}, "status": "finished", "analysis": SECRET}
    (host / "config.json").write_text(json.dumps(doc))
    (run_dir / name).unlink()
    (run_dir / name).symlink_to(host / "config.json")
    if name == "run.json":  # not this run's record
        with pytest.raises(UsageError) as caught:
            build_report(run_dir)
        assert SECRET not in caught.value.message
        return
    assert SECRET not in build_report(run_dir)


def _bounded(call: Callable[[], Any], fifo: Path) -> Any:
    """``call()`` in a thread; if it is still blocked at the deadline, the FIFO is
    opened for writing (which frees it) and the test fails."""
    result: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            result["value"] = call()
        except Exception as exc:
            result["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, daemon=True).start()
    if not done.wait(DEADLINE):
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        done.wait(DEADLINE)
        pytest.fail(f"blocked on the FIFO {fifo.name} for {DEADLINE:.0f} s")
    if "error" in result:
        raise result["error"]
    return result.get("value")


@pytest.mark.parametrize(
    "name", ["odrun.lock", "run.json", "logs/01-fit.log"], ids=["lock", "run", "log"]
)
def test_a_fifo_in_the_run_folder_never_blocks_the_report(tmp_path: Path, name: str) -> None:
    run_dir = _failed_step_run(tmp_path)
    fifo = run_dir / name
    fifo.unlink()
    os.mkfifo(fifo)
    if name == "run.json":
        with pytest.raises(UsageError):
            _bounded(lambda: build_report(run_dir), fifo)
        return
    assert "RUN FAILED" in _bounded(lambda: build_report(run_dir), fifo)


def test_a_fifo_run_json_never_blocks_loading_the_record(tmp_path: Path) -> None:
    run_dir = fake_run(tmp_path)
    fifo = run_dir / "run.json"
    fifo.unlink()
    os.mkfifo(fifo)
    with pytest.raises(UsageError):
        _bounded(lambda: RunRecord.load(run_dir), fifo)


def test_a_huge_log_is_not_read_whole_for_its_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the end of a failed step's log is read: a log of gigabytes costs no memory."""
    run_dir = _failed_step_run(tmp_path)
    log = run_dir / "logs" / "01-fit.log"
    log.write_text("early line\n" * 50_000 + "the last words\n")
    real_read_text, real_read_bytes = Path.read_text, Path.read_bytes

    def no_whole_text(self: Path, *args: Any, **kwargs: Any) -> str:
        assert self.name != "01-fit.log", "the whole log was read"
        return real_read_text(self, *args, **kwargs)

    def no_whole_bytes(self: Path) -> bytes:
        assert self.name != "01-fit.log", "the whole log was read"
        return real_read_bytes(self)

    monkeypatch.setattr(Path, "read_text", no_whole_text)
    monkeypatch.setattr(Path, "read_bytes", no_whole_bytes)
    html = build_report(run_dir)
    assert "the last words" in html
    assert "early line" in html  # the last lines, not only the last one


def test_the_verdict_is_not_pass_when_a_check_failed(tmp_path: Path) -> None:
    """run.json's ``verified`` may contradict its own checks (a hand-edited or
    corrupted folder): the report shows FAIL, never PASS over a failed check."""
    run_dir = fake_run(tmp_path, verified=True)  # one of its two checks failed
    text = text_of(build_report(run_dir))
    assert "PASS" not in text
    assert "FAIL" in text


def test_verified_without_any_check_is_not_a_pass(tmp_path: Path) -> None:
    run_dir = fake_run(tmp_path, verified=True, checks=[])
    text = text_of(build_report(run_dir))
    assert "PASS" not in text


def _histogram(n: int) -> dict[str, Any]:
    counts = [10.0 + (i % 7) for i in range(n)]
    return {
        "name": f"h{n}",
        "ok": True,
        "detail": "compatible",
        "data": {"kind": "histogram", "key": "h", "edges": [float(i) for i in range(n + 1)],
                 "counts": counts, "reference_counts": counts},
    }  # fmt: skip


def test_a_histogram_of_too_many_bins_is_not_plotted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run.json (or an output) with a million bins must not keep matplotlib busy for
    an hour: beyond MAX_PLOT_BINS the report says so instead of drawing."""
    monkeypatch.setattr(plots_mod, "MAX_PLOT_BINS", 40, raising=False)
    html = build_report(fake_run(tmp_path, checks=[_histogram(41), _histogram(40)]))
    assert "41 bins: more than 40 are not plotted" in html
    assert html.count("data:image/svg+xml;base64,") == 1


def test_no_more_than_max_plots_are_drawn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plots_mod, "MAX_PLOTS", 2, raising=False)
    html = build_report(fake_run(tmp_path, checks=[_histogram(5) for _ in range(4)]))
    assert html.count("data:image/svg+xml;base64,") == 2
    assert "more than 2 plots" in html


def test_giant_strings_are_not_drawn_into_the_plot(tmp_path: Path) -> None:
    """Plot text is drawn as paths (a few hundred bytes a glyph): a check name, label or
    reference of 20 000 characters from run.json made an SVG of megabytes, seconds to
    draw, for every plot. Plot text is cut to a line."""
    check = _histogram(5)
    check["name"] = "N" * 20_000
    check["data"] |= {"label": "L" * 20_000, "reference": "R" * 20_000}
    html = build_report(fake_run(tmp_path, checks=[check]))
    (uri,) = re.findall(r'src="(data:image/svg\+xml;base64,[^"]*)"', html)
    assert len(uri) < 400_000, len(uri)


def test_giant_strings_in_run_json_are_cut_in_the_report(tmp_path: Path) -> None:
    """A string of run.json is shown at most once in full length... or not at all: a
    name repeated in attributes, cells and captions made the report a multiple of a
    run.json of tens of megabytes. Each shown string is cut (and says so)."""
    big = "x" * 1_000_000
    check = {"name": big, "ok": False, "detail": big,
             "data": {"kind": "value", "value": big, "expected": big}}  # fmt: skip
    run_dir = fake_run(
        tmp_path,
        analysis=big,
        error=big,
        checks=[check],
        steps=[{"name": big, "command": big, "exit_code": 0}],
        outputs=[{"path": big, "checksum": big}],
        records=[{"recid": big, "doi": big}],
    )
    html = build_report(run_dir)
    assert len(html) < 1_000_000, len(html)
    assert "more characters" in html
