"""Runtime honesty: preflight before any fetch, recorded fallbacks, --locked on runtimes.

Stand-in ``podman`` and ``docker`` (first on PATH) answer ``image inspect`` from
$FAKE_IMAGES_PODMAN / $FAKE_IMAGES_DOCKER (``name=digest,...``; digest ``none``
prints nothing), refuse every ``pull`` and
runs ``run ... IMAGE bash -c CMD`` as ``bash -c CMD`` here: the runtime logic is
exercised without a container engine.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from test_run import serial_spec, write

IMAGE = "docker.io/library/busybox:1.36"  # what serial_spec's steps name
DIGEST = "sha256:" + "a" * 64

FAKE_RUNTIME = """\
import os, sys
args = sys.argv[1:]
known = os.environ.get("FAKE_IMAGES_NAME", "")
images = dict(x.split("=", 1) for x in known.split(",") if "=" in x)
if args[:1] == ["--version"]:
    print("NAME version 0.0.0-fake")
    sys.exit(0)
if args[:2] == ["image", "inspect"]:
    if args[-1] not in images:
        print("Error: " + args[-1] + ": image not known", file=sys.stderr)
        sys.exit(125)
    if "--format" in args and images[args[-1]] != "none":
        print(images[args[-1]])
    sys.exit(0)
if args[:1] == ["pull"]:
    with open(os.environ.get("FAKE_PULLS", os.devnull), "a") as log:
        log.write(" ".join(args) + "\\n")
    print("Error: initializing source: no registry here (fake)", file=sys.stderr)
    sys.exit(125)
if args[:1] == ["run"]:
    os.execvp(args[-3], args[-3:])
sys.exit(2)
"""


@pytest.fixture
def fake_runtimes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Stand-in podman and docker first on PATH; returns a setter for a runtime's images."""
    bin_dir = tmp_path / "fake-bin"
    for name in ("podman", "docker"):
        script = FAKE_RUNTIME.replace("_NAME", f"_{name.upper()}").replace("NAME", name)
        write(bin_dir / name, f"#!{sys.executable}\n{script}").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")

    def images(runtime: str, **by_name: str) -> None:
        value = ",".join(f"{k}={v}" for k, v in by_name.items())
        monkeypatch.setenv(f"FAKE_IMAGES_{runtime.upper()}", value)

    images("podman")
    images("docker")
    return images


@pytest.fixture
def fake_podman(fake_runtimes):
    """Sets the stand-in podman's images (docker, also a stand-in, has none)."""
    return lambda **by_name: fake_runtimes("podman", **by_name)


def fetched_anything(run_dir: Path, cache: Path) -> bool:
    data = run_dir / "workspace" / "data"
    files = [p for p in cache.rglob("*") if p.is_file() and "metadata" not in p.parts]
    return data.exists() or bool(files)


# --- preflight: nothing is fetched or staged when the run cannot start -----------------


def test_missing_runtime_fails_before_fetching(
    odrun, demo: Path, tmp_path: Path, isolated_env: Path, monkeypatch
) -> None:
    (tmp_path / "empty-bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    run_dir = tmp_path / "r"
    result = odrun("run", str(demo), "--runtime", "podman", "--workdir", str(run_dir))
    assert result.code == 8, result.err
    assert "podman is not installed" in result.err
    assert not fetched_anything(run_dir, isolated_env)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"


def test_missing_image_fails_before_fetching(
    odrun, demo: Path, tmp_path: Path, isolated_env: Path, fake_podman
) -> None:
    run_dir = tmp_path / "r"
    result = odrun("run", str(demo), "--runtime", "podman", "--workdir", str(run_dir))
    assert result.code == 8, result.err
    assert "docker.io/library/python:3.11-slim is not available to podman" in result.err
    assert not fetched_anything(run_dir, isolated_env)
    assert not (run_dir / "workspace" / "analysis").exists()  # nothing staged either


def snakemake_with_records(root: Path, demo: Path) -> Path:
    """A Snakemake analysis that reads the demo's record (fetched from the bundled mirror)."""
    write(root / "Snakefile", 'rule all:\n    output: "out.txt"\n    shell: "echo hi > {output}"\n')
    (root / "odrun.yaml").write_text((demo / "odrun.yaml").read_text().split("expect:")[0])
    return write(root / "reana.yaml", "workflow:\n  type: snakemake\n  file: Snakefile\n")


def test_missing_executor_plugin_fails_before_fetching(
    odrun, demo: Path, tmp_path: Path, isolated_env: Path
) -> None:
    root = snakemake_with_records(demo.parent / "snk", demo)
    run_dir = tmp_path / "r"
    args = ("--runtime", "host", "--executor", "htcondor", "--workdir", str(run_dir))
    result = odrun("run", str(root), *args)
    assert result.code == 8, result.err
    assert "snakemake-executor-plugin-htcondor" in result.err
    assert not fetched_anything(run_dir, isolated_env)


def test_missing_snakemake_is_a_configuration_error(
    odrun, demo: Path, tmp_path: Path, isolated_env: Path, monkeypatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "snakemake" else real(name, *a),
    )
    (tmp_path / "empty-bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    root = snakemake_with_records(demo.parent / "snk", demo)
    run_dir = tmp_path / "r"
    result = odrun("run", str(root), "--runtime", "host", "--workdir", str(run_dir))
    assert result.code == 8, result.err  # not a failed step (7)
    assert "needs Snakemake" in result.err
    assert not fetched_anything(run_dir, isolated_env)


# --- a fallback to the host is loud and recorded -----------------------------------------


def test_fallback_is_a_banner_and_is_recorded(odrun, tmp_path: Path, fake_podman) -> None:
    serial_spec(tmp_path, {"a": ["mkdir -p out && echo ran > out/result.txt"]})
    result = odrun("run", str(tmp_path), "--runtime", "auto", "--json")
    assert result.code == 0, result.err
    assert "WARNING" in result.err
    assert "=====" in result.err
    assert "runtime host (fallback from podman:" in result.err
    doc = result.json()
    assert doc["runtime"] == "host"
    assert doc["runtime_requested"] == "auto"
    fallback = doc["runtime_fallback"]
    assert fallback["from"] == "podman"
    assert f"image {IMAGE} is not available to podman" in fallback["reason"]
    assert doc["runtime_description"].startswith("host (fallback from podman: image ")
    run_dir = Path(doc["run_dir"])
    lock = json.loads((run_dir / "odrun.lock").read_text())
    assert lock["runtime"] == "host"
    assert lock["runtime_fallback"] == fallback
    assert lock["runtime_description"] == doc["runtime_description"]
    crate = json.loads((run_dir / "ro-crate-metadata.json").read_text())
    graph = {node["@id"]: node for node in crate["@graph"]}
    assert graph["#runtime"]["name"] == "host"
    assert graph["#runtime"]["description"] == doc["runtime_description"]
    assert graph["#runtime-fallback"]["value"] == "podman"
    assert graph["#runtime-fallback"]["description"] == fallback["reason"]
    assert "fallback from podman" in graph["#run"]["description"]


def test_no_fallback_no_fallback_fields(odrun, tmp_path: Path, fake_podman) -> None:
    fake_podman(**{IMAGE: DIGEST})
    serial_spec(tmp_path, {"a": ["mkdir -p out && echo ran > out/result.txt"]})
    doc = odrun("run", str(tmp_path), "--runtime", "auto", "--json").json()
    assert (doc["runtime"], doc["runtime_fallback"]) == ("podman", None)
    assert doc["runtime_description"] == "podman"
    lock = json.loads((tmp_path / "odrun.lock").read_text())
    assert (lock["runtime"], lock["runtime_fallback"]) == ("podman", None)
    assert lock["images"] == [{"name": IMAGE, "digest": DIGEST}]


def test_record_analysis_never_falls_back_for_a_missing_image(
    odrun, tmp_path: Path, demo: Path, isolated_env: Path, fake_podman
) -> None:
    from odrun.errors import ConfigError
    from odrun.settings import Settings
    from odrun.workflow import RunOptions, load_analysis, run_analysis

    run_dir = tmp_path / "r"
    with pytest.raises(ConfigError, match="comes from a record and would run on the host"):
        run_analysis(
            load_analysis(demo),
            Settings.load(),
            RunOptions(workdir=run_dir, runtime="auto", untrusted=True),
        )
    assert not fetched_anything(run_dir, isolated_env)
    assert json.loads((run_dir / "run.json").read_text())["untrusted"] is True


# --- --locked: the runtime and every image digest are pinned -----------------------------


def test_locked_refuses_a_lock_written_by_a_fallback(odrun, tmp_path: Path, fake_podman) -> None:
    serial_spec(tmp_path, {"a": ["mkdir -p out && echo ran > out/result.txt"]})
    assert odrun("run", str(tmp_path), "--runtime", "auto").code == 0
    again = odrun("run", str(tmp_path), "--runtime", "auto", "--locked")
    assert again.code == 11, again.err
    assert f"image {IMAGE}" in again.err
    assert "no digest" in again.err
    fake_podman(**{IMAGE: DIGEST})  # the image is there now: auto picks podman
    now = odrun("run", str(tmp_path), "--runtime", "auto", "--locked")
    assert now.code == 11, now.err
    assert "runtime host (fallback from podman" in now.err
    assert "-> podman" in now.err


def test_locked_refuses_another_runtime_kind(odrun, tmp_path: Path, fake_podman) -> None:
    fake_podman(**{IMAGE: DIGEST})
    serial_spec(tmp_path, {"a": ["mkdir -p out && echo ran > out/result.txt"]})
    assert odrun("run", str(tmp_path), "--runtime", "host").code == 0
    result = odrun("run", str(tmp_path), "--runtime", "podman", "--locked")
    assert result.code == 11, result.err
    assert "runtime host -> podman" in result.err
    assert odrun("run", str(tmp_path), "--runtime", "host", "--locked").code == 0


@pytest.mark.parametrize("now", ["none", "sha256:" + "b" * 64])
def test_locked_refuses_a_changed_or_unknown_digest(
    odrun, tmp_path: Path, fake_podman, now: str
) -> None:
    fake_podman(**{IMAGE: DIGEST})
    serial_spec(tmp_path, {"a": ["mkdir -p out && echo ran > out/result.txt"]})
    assert odrun("run", str(tmp_path), "--runtime", "podman").code == 0
    assert odrun("run", str(tmp_path), "--runtime", "podman", "--locked").code == 0
    fake_podman(**{IMAGE: now})
    result = odrun("run", str(tmp_path), "--runtime", "podman", "--locked")
    assert result.code == 11, result.err
    assert f"image {IMAGE}" in result.err


def test_locked_runtime_drift_is_found_before_fetching(
    odrun, demo: Path, tmp_path: Path, isolated_env: Path, fake_podman
) -> None:
    assert odrun("run", str(demo), "--runtime", "host").code == 0
    fake_podman(**{"docker.io/library/python:3.11-slim": DIGEST})
    for path in isolated_env.rglob("*"):  # forget the cached data
        if path.is_file():
            path.unlink()
    run_dir = tmp_path / "r"
    result = odrun("run", str(demo), "--runtime", "podman", "--locked", "--workdir", str(run_dir))
    assert result.code == 11, result.err
    assert not fetched_anything(run_dir, isolated_env)


def test_auto_tries_every_installed_runtime(odrun, tmp_path: Path, fake_runtimes) -> None:
    fake_runtimes("docker", **{IMAGE: DIGEST})  # podman lacks the image, docker has it
    serial_spec(tmp_path, {"a": ["mkdir -p out && echo ran > out/result.txt"]})
    result = odrun("run", str(tmp_path), "--runtime", "auto", "--json")
    assert result.code == 0, result.err
    doc = result.json()
    assert (doc["runtime"], doc["runtime_fallback"]) == ("docker", None)
    assert "WARNING" not in result.err
    lock = json.loads((tmp_path / "odrun.lock").read_text())
    assert lock["images"] == [{"name": IMAGE, "digest": DIGEST}]


def test_auto_fallback_names_every_runtime_tried(odrun, tmp_path: Path, fake_runtimes) -> None:
    serial_spec(tmp_path, {"a": ["mkdir -p out && echo ran > out/result.txt"]})
    doc = odrun("run", str(tmp_path), "--runtime", "auto", "--json").json()
    fallback = doc["runtime_fallback"]
    assert fallback["from"] == "podman"
    assert "not available to podman" in fallback["reason"]
    assert "not available to docker" in fallback["reason"]


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI installed")
def test_docker_daemon_not_answering(odrun, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-daemon.sock")
    serial_spec(tmp_path, {"a": ["true"]})
    result = odrun("run", str(tmp_path), "--runtime", "docker")
    assert result.code == 8, result.err
    assert "the docker daemon is not answering" in result.err
    assert "DOCKER_HOST" in result.err


def test_analysis_without_steps_pins_no_runtime(odrun, demo: Path) -> None:
    (demo / "reana.yaml").unlink()  # odrun.yaml alone: fetch and verify, nothing runs
    (demo / "odrun.yaml").write_text((demo / "odrun.yaml").read_text().split("expect:")[0])
    assert odrun("run", str(demo), "--runtime", "host").code == 0
    assert json.loads((demo / "odrun.lock").read_text())["runtime"] is None
    locked = odrun("run", str(demo), "--locked")
    assert locked.code == 0, locked.err


MIXED_SNAKEFILE = """\
rule all:
    input: "a.txt", "b.txt", "c.txt"

rule boxed:
    output: "a.txt"
    container: "docker://IMAGE"
    shell: "echo in > {output}"

rule on_host:
    output: "b.txt"
    shell: "echo out > {output}"

rule python_here:
    output: "c.txt"
    container: "docker://IMAGE"
    run:
        open(output[0], "w").write("python")
"""


def test_record_snakefile_rules_without_container_are_refused(tmp_path: Path, fake_podman) -> None:
    from odrun.errors import ConfigError
    from odrun.settings import Settings
    from odrun.workflow import RunOptions, load_analysis, run_analysis

    fake_podman(**{IMAGE: DIGEST})
    write(tmp_path / "Snakefile", MIXED_SNAKEFILE.replace("IMAGE", IMAGE))
    write(tmp_path / "reana.yaml", "workflow:\n  type: snakemake\n  file: Snakefile\n")
    with pytest.raises(ConfigError, match="would run on the host") as err:
        run_analysis(
            load_analysis(tmp_path), Settings.load(), RunOptions(runtime="auto", untrusted=True)
        )
    assert "on_host" in str(err.value)
    assert "python_here" in str(err.value)  # run: is Python in Snakemake's own process
    assert "boxed" not in str(err.value)


def test_host_rules_of_a_snakefile(tmp_path: Path) -> None:
    from odrun.workflow.snakemake import host_rules

    write(tmp_path / "Snakefile", MIXED_SNAKEFILE + 'include: "more.smk"\n')
    write(tmp_path / "more.smk", 'rule extra:\n    output: "d"\n    script: "s.py"\n')
    assert host_rules(tmp_path, "Snakefile") == ["extra", "on_host", "python_here"]
    glob = 'container: "docker://x:1"\n\n' + MIXED_SNAKEFILE
    write(tmp_path / "Snakefile", glob)  # a global container: every shell rule is in it
    assert host_rules(tmp_path, "Snakefile") == ["python_here"]


def test_fallback_crate_passes_the_validator(odrun, demo: Path, fake_podman) -> None:
    import rocrate_validator

    reason = rocrate_validator.ensure()
    if reason:
        pytest.skip(f"roc-validator unavailable: {reason}")
    run = odrun("run", str(demo), "--runtime", "auto", "--json")
    assert run.code == 0, run.err
    assert run.json()["runtime_fallback"]["from"] == "podman"
    report = rocrate_validator.validate(Path(run.json()["run_dir"]), "workflow-run-crate-0.5")
    assert report["issues"] == []
    assert report["passed"] is True


def test_rerun_decides_a_fallback_again_and_keeps_untrusted(
    odrun, tmp_path: Path, fake_podman
) -> None:
    from odrun.settings import Settings
    from odrun.workflow import RunOptions, load_analysis, run_analysis

    serial_spec(tmp_path, {"a": ["mkdir -p out && echo ran > out/result.txt"]})
    fell_back = odrun("run", str(tmp_path), "--runtime", "auto", "--json").json()
    assert fell_back["runtime_fallback"] is not None
    fake_podman(**{IMAGE: DIGEST})  # now podman has the image: the rerun uses it
    again = odrun("rerun", fell_back["run_dir"], "--json")
    assert again.code == 0, again.err
    assert (again.json()["runtime"], again.json()["runtime_fallback"]) == ("podman", None)
    first = run_analysis(
        load_analysis(tmp_path), Settings.load(), RunOptions(runtime="auto", untrusted=True)
    )
    rerun = odrun("rerun", str(first.run_dir), "--json")
    assert rerun.code == 0, rerun.err
    assert rerun.json()["untrusted"] is True


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("snakemake_executor_plugin_slurm") is None,
    reason="snakemake-executor-plugin-slurm not installed",
)
def test_slurm_executor_without_sbatch_fails_before_fetching(
    odrun, demo: Path, tmp_path: Path, isolated_env: Path, monkeypatch
) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "which").symlink_to(shutil.which("which") or "/usr/bin/which")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # no sbatch here
    root = snakemake_with_records(demo.parent / "snk", demo)
    run_dir = tmp_path / "r"
    args = ("--runtime", "host", "--executor", "slurm", "--workdir", str(run_dir))
    result = odrun("run", str(root), *args)
    assert result.code == 8, result.err
    assert "sbatch" in result.err
    assert not fetched_anything(run_dir, isolated_env)


HOST_PYTHON = [  # Python Snakemake runs on the host while it reads the Snakefile
    "import pathlib\npathlib.Path(MARK).write_text('pwned')\n",
    "onstart:\n    open(MARK, 'w').write('pwned')\n",
    "def inputs(wildcards):\n    open(MARK, 'w').write('pwned')\n    return []\n",
]


@pytest.mark.parametrize("code", HOST_PYTHON)
def test_record_snakefile_is_never_read_on_the_host_under_auto(
    tmp_path: Path, fake_podman, code: str
) -> None:
    """Failed before: every rule had a container, so `--runtime auto` ran Snakemake, which
    executed the record's top-level Python / onstart on the host (the file was written)."""
    from odrun.errors import ConfigError
    from odrun.settings import Settings
    from odrun.workflow import RunOptions, load_analysis, run_analysis

    fake_podman(**{IMAGE: DIGEST})
    mark = tmp_path / "host-file-written-by-record"
    write(
        tmp_path / "ana" / "Snakefile",
        f'container: "docker://{IMAGE}"\n\n'
        + code.replace("MARK", repr(str(mark)))
        + '\nrule all:\n    output: "a.txt"\n    shell: "echo in > {output}"\n',
    )
    write(tmp_path / "ana" / "reana.yaml", "workflow:\n  type: snakemake\n  file: Snakefile\n")
    analysis = load_analysis(tmp_path / "ana")
    with pytest.raises(ConfigError, match="runs its Snakefile as Python on the host"):
        run_analysis(analysis, Settings.load(), RunOptions(runtime="auto", untrusted=True))
    assert not mark.exists()


def test_auto_never_pulls_an_explicit_runtime_does(
    odrun, demo: Path, tmp_path: Path, isolated_env: Path, fake_podman, monkeypatch
) -> None:
    """Choosing a runtime must not go to a registry: the offline demo stays offline (before
    the fix, `auto` ran `podman pull` for a missing image and reached for the internet)."""
    pulls = tmp_path / "pulls.log"
    monkeypatch.setenv("FAKE_PULLS", str(pulls))
    auto = odrun("run", str(demo), "--workdir", str(tmp_path / "a"))
    assert auto.code == 0, auto.err  # fell back to the host, with the banner
    assert "--runtime auto never pull" in auto.err
    assert not pulls.exists()
    explicit = odrun("run", str(demo), "--runtime", "podman", "--workdir", str(tmp_path / "b"))
    assert explicit.code == 8, explicit.err
    assert pulls.is_file(), explicit.err
    assert pulls.read_text().startswith("pull ")
