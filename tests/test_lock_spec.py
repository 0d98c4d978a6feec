"""A lock belongs to the spec it pins: two workflow specs in one folder (reana.yaml and a
reana-serial.yaml twin) never write the same lock, and ``--locked`` refuses a lock that
pins another spec."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from odrun.errors import LockError
from odrun.workflow import lock as lockfile
from odrun.workflow.spec import load_analysis

SPEC = (
    "version: 0.9.0\n"
    "workflow:\n  type: serial\n  specification:\n    steps:\n"
    "      - name: make\n        environment: docker.io/library/busybox:1.36\n"
    '        commands: ["mkdir -p out && echo \'{{\\"x\\": {x}}}\' > out/r.json"]\n'
    "outputs:\n  files: [out/r.json]\n"
)


def twins(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "reana.yaml").write_text(SPEC.format(x=1))
    (root / "reana-serial.yaml").write_text(SPEC.format(x=2))
    (root / "odrun.yaml").write_text("version: 1\n")
    return root


def test_twin_specs_keep_their_own_locks(odrun, tmp_path: Path) -> None:
    root = twins(tmp_path / "a")
    assert odrun("run", str(root), "--runtime", "host").code == 0
    main_lock = root / "odrun.lock"
    pinned = main_lock.read_bytes()
    assert json.loads(pinned)["spec"] == "reana.yaml"
    twin = odrun("run", str(root / "reana-serial.yaml"), "--runtime", "host")
    assert twin.code == 0, twin.err
    assert main_lock.read_bytes() == pinned, "the twin's run overwrote reana.yaml's lock"
    (twin_lock,) = (p for p in root.glob("*.lock") if p.name != "odrun.lock")
    assert json.loads(twin_lock.read_text())["spec"] == "reana-serial.yaml"
    # each --locked run checks its own lock
    for target in (root, root / "reana.yaml", root / "reana-serial.yaml"):
        res = odrun("run", str(target), "--runtime", "host", "--locked")
        assert res.code == 0, (target, res.err)
    assert main_lock.read_bytes() == pinned
    # the run folder's copy says which spec it pins too
    newest = sorted((root / ".odrun" / "runs").iterdir())[-1]
    assert json.loads((newest / "odrun.lock").read_text())["spec"] == "reana-serial.yaml"


def test_locked_refuses_a_lock_of_another_spec(odrun, tmp_path: Path) -> None:
    root = twins(tmp_path / "a")
    assert odrun("run", str(root / "reana-serial.yaml"), "--runtime", "host").code == 0
    (twin_lock,) = root.glob("*.lock")
    shutil.copy(twin_lock, root / "odrun.lock")  # reana.yaml's lock now pins the twin
    res = odrun("run", str(root), "--runtime", "host", "--locked")
    assert res.code == 11, res.err
    assert "reana-serial.yaml" in res.err
    assert "reana.yaml" in res.err.replace("reana-serial.yaml", "")
    assert len(res.err.strip().splitlines()) <= 2, res.err
    assert "Traceback" not in res.err


def test_a_lock_without_a_spec_is_only_the_default_specs(tmp_path: Path) -> None:
    """A lock written before locks named their spec is reana.yaml's (odrun.lock): it still
    holds for it, never for a twin."""
    root = twins(tmp_path / "a")
    legacy = {"format_version": 1, "records": [], "images": [], "runtime": None}
    main = load_analysis(root)
    twin = load_analysis(root / "reana-serial.yaml")
    assert lockfile.path_for(main) == root / "odrun.lock"
    assert lockfile.path_for(twin) != lockfile.path_for(main)
    for analysis in (main, twin):
        lockfile.write(lockfile.path_for(analysis), legacy)
    lockfile.check(lockfile.path_for(main), {**legacy, "spec": lockfile.spec_of(main)})
    with pytest.raises(LockError, match=r"reana-serial\.yaml"):
        lockfile.check(lockfile.path_for(twin), {**legacy, "spec": lockfile.spec_of(twin)})


def test_verify_judges_a_spec_only_by_a_run_of_that_spec(odrun, tmp_path: Path) -> None:
    """The twin ran last: verifying reana.yaml (the folder, or the file) is not judged by
    the twin's run, which may pass where reana.yaml's own run would not."""
    root = twins(tmp_path / "a")
    (root / "odrun.yaml").write_text(
        "version: 1\nexpect:\n  - name: r\n    file: out/r.json\n    values:\n"
        "      x: {value: 2, abs: 0}\n"
    )
    assert odrun("run", str(root), "--runtime", "host").code == 10  # x is 1: FAIL
    assert odrun("run", str(root / "reana-serial.yaml"), "--runtime", "host").code == 0
    twin_run = sorted((root / ".odrun" / "runs").iterdir())[-1]
    for target in (root, root / "reana.yaml"):
        res = odrun("verify", str(target))
        assert res.code == 7, (target, res.out, res.err)
        assert "reana-serial.yaml" in res.err
        assert "PASS" not in res.out
    assert odrun("verify", str(root / "reana-serial.yaml")).code == 0
    assert odrun("verify", str(twin_run)).code == 0
