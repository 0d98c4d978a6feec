"""odrun run for workflow.type yadage: podman and the host, against its serial twin.

yadage runs from its own venv (tests/run builds /var/tmp/odrun-yadage-venv-<version>);
the containers run the local test image (tests/podman_image.py), never a registry's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from odrun.workflow import docker_shim
from odrun.workflow.failure import TELLING, job_cause
from odrun.workflow.yadage import YADAGE_CAUSE_CHARS

from conftest import api_doc

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "workflows" / "yadage-demo"
FAILING = REPO / "tests" / "data" / "yadage-failing" / "reana.yaml"
VENV_PYTHON = Path("/var/tmp/odrun-yadage-venv-0.21.2/bin/python")
IMAGE = "localhost/odrun-test/debian-python:bookworm"
OUTPUTS = ["greet_0/greeting.txt", "greet_1/greeting.txt", "greet_2/greeting.txt",
           "merge/greetings.txt"]  # fmt: skip


@pytest.fixture
def yadage_python(monkeypatch: pytest.MonkeyPatch) -> Path:
    """yadage's own Python (tests/run makes it), given to odrun as ODRUN_YADAGE_PYTHON."""
    if not VENV_PYTHON.is_file():
        pytest.skip(f"{VENV_PYTHON} missing: tests/run creates the yadage venv")
    monkeypatch.setenv("ODRUN_YADAGE_PYTHON", str(VENV_PYTHON))
    return VENV_PYTHON


@pytest.fixture
def publish(fresh_portal, faults, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Publish a record of the test's own on a portal of the test's own."""
    monkeypatch.setenv("ODRUN_PORTAL_URL", fresh_portal.url)

    def put(recid: str, files: dict[str, bytes]) -> str:
        uris = [(faults.add(f"/eos/{recid}/{name}", data), data) for name, data in files.items()]
        fresh_portal.overrides[recid] = api_doc(recid, uris)
        return recid

    return put


def demo_copy(tmp_path: Path, image: str | None = None) -> Path:
    """The demo (yadage and serial twin), with ``image`` in place of python:3.11-slim."""
    dest = tmp_path / "yadage-demo"
    shutil.copytree(DEMO, dest, ignore=shutil.ignore_patterns(".odrun", "odrun.lock"))
    if image:
        name, tag = image.rsplit(":", 1)
        steps = dest / "steps.yml"
        text = steps.read_text().replace("image: docker.io/library/python\n", f"image: {name}\n")
        steps.write_text(text.replace("imagetag: 3.11-slim", f"imagetag: {tag}"))
        twin = dest / "reana-serial.yaml"
        twin.write_text(twin.read_text().replace("docker.io/library/python:3.11-slim", image))
    return dest


def outputs(doc: dict[str, object]) -> dict[str, object]:
    return {o["path"]: o["checksum"] for o in doc["outputs"]}  # type: ignore[attr-defined,index]


@pytest.mark.parametrize("runtime", ["podman", "host"])
def test_demo_matches_its_serial_twin(
    odrun, yadage_python: Path, podman_ready: str, tmp_path: Path, runtime: str
) -> None:
    analysis = demo_copy(tmp_path, podman_ready)
    junit = tmp_path / "junit.xml"
    result = odrun(
        "run", str(analysis), "--runtime", runtime, "--verify", "--junit", str(junit), "--json"
    )
    assert result.code == 0, result.err
    assert junit.read_text().count("<testcase") == 2
    doc = result.json()
    assert doc["status"] == "finished"
    assert doc["runtime"] == runtime
    assert doc["verified"] is True
    twin = odrun("run", str(analysis / "reana-serial.yaml"), "--runtime", runtime, "--json")
    assert twin.code == 0, twin.err
    assert outputs(doc) == outputs(twin.json())
    assert sorted(outputs(doc)) == OUTPUTS
    assert None not in outputs(doc).values()
    # one step per yadage job: the fanned-out stage's three and the merge
    assert sorted(s["name"] for s in doc["steps"]) == ["greet_0", "greet_1", "greet_2", "merge"]
    run_dir = Path(doc["run_dir"])
    lock = json.loads((run_dir / "odrun.lock").read_text())
    assert lock["tools"]["yadage"] == "0.21.2"
    assert lock["tools"]["packtivity"] == "0.17.1"
    assert lock["runtime"] == runtime
    (image,) = lock["images"]
    assert image["name"] == IMAGE
    if runtime == "podman":
        assert image["digest"].startswith("sha256:")
    crate = json.loads((run_dir / "ro-crate-metadata.json").read_text())
    names = {n.get("name"): n for n in crate["@graph"]}
    assert names["yadage"]["softwareVersion"] == "0.21.2"
    # rerun and --locked work as for every other type
    locked = odrun("run", str(analysis), "--runtime", runtime, "--locked", "--json")
    assert locked.code == 0, locked.err
    again = odrun("rerun", str(run_dir), "--json")
    assert again.code == 0, again.err
    assert outputs(again.json()) == outputs(doc)


@pytest.mark.parametrize("runtime", ["podman", "host"])
def test_failing_job_names_its_cause(
    odrun, yadage_python: Path, podman_ready: str, tmp_path: Path, runtime: str
) -> None:
    analysis = demo_copy(tmp_path, podman_ready)
    shutil.copy(FAILING, analysis / "reana.yaml")
    result = odrun("run", str(analysis), "--runtime", runtime, "--workdir", str(tmp_path / "r"))
    assert result.code == 7, result.err
    message = [line for line in result.err.splitlines() if "failed" in line]
    assert len(message) == 1, result.err  # one line
    assert "yadage step greet_1 failed with exit code 1" in message[0]
    # the job's own error, not yadage's boilerplate
    assert "ValueError: word 'b0rken' is not made of letters" in message[0]
    assert "workflow finished but failed" not in result.err
    doc = json.loads((tmp_path / "r" / "run.json").read_text())
    assert doc["status"] == "failed"
    failed = [s for s in doc["steps"] if s["exit_code"] != 0]
    assert [s["name"] for s in failed] == ["greet_1"]
    assert "b0rken" in Path(failed[0]["log"]).read_text()
    assert "merge" not in {s["name"] for s in doc["steps"]}


def test_jobs_have_no_network_and_the_workspace_at_its_path(
    odrun, yadage_python: Path, podman_ready: str, tmp_path: Path, portal
) -> None:
    port = portal.url.rsplit(":", 1)[1]
    (tmp_path / "workflow.yml").write_text(
        "stages:\n"
        "  - name: probe\n"
        "    dependencies: [init]\n"
        "    scheduler:\n"
        "      scheduler_type: singlestep-stage\n"
        "      parameters: {out: '{workdir}/probe.txt'}\n"
        "      step:\n"
        "        process:\n"
        "          process_type: interpolated-script-cmd\n"
        "          script: |\n"
        "            test -f /run/.containerenv && echo in-container > {out}\n"
        "            pwd >> {out}\n"
        "            python3 -c \"import socket; socket.create_connection(('127.0.0.1', "
        + port
        + '), 2)" && echo reached >> {out} || echo no-network >> {out}\n'
        "        environment:\n"
        "          environment_type: docker-encapsulated\n"
        f"          image: {podman_ready.rsplit(':', 1)[0]}\n"
        f"          imagetag: {podman_ready.rsplit(':', 1)[1]}\n"
        "        publisher:\n"
        "          publisher_type: interpolated-pub\n"
        "          publish: {out: '{out}'}\n"
    )
    (tmp_path / "reana.yaml").write_text(
        "workflow:\n  type: yadage\n  file: workflow.yml\noutputs:\n  files: [probe/probe.txt]\n"
    )
    # no inputs.parameters: no init, so the stage never runs (as on REANA), said loudly
    idle = odrun("run", str(tmp_path), "--runtime", "podman", "--workdir", str(tmp_path / "i"))
    assert idle.code == 0, idle.err
    assert "warning: yadage stages that never ran: probe" in idle.err
    reana = (tmp_path / "reana.yaml").read_text()
    (tmp_path / "reana.yaml").write_text("inputs:\n  parameters: {tag: probe}\n" + reana)
    result = odrun("run", str(tmp_path), "--runtime", "podman", "--workdir", str(tmp_path / "r"))
    assert result.code == 0, result.err
    assert "never ran" not in result.err
    lines = (tmp_path / "r" / "workspace" / "probe" / "probe.txt").read_text().splitlines()
    assert lines[0] == "in-container"
    assert lines[-1] == "no-network"


@pytest.mark.parametrize("setting", ["no-such-python", None])
def test_without_yadage_python_exit_8_with_the_hint(
    odrun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str | None
) -> None:
    analysis = demo_copy(tmp_path)
    if setting:  # a wrong path; else unset, and odrun's own Python has no yadage
        monkeypatch.setenv("ODRUN_YADAGE_PYTHON", str(tmp_path / setting))
    result = odrun("run", str(analysis), "--runtime", "host")
    assert result.code == 8, result.err
    assert "ODRUN_YADAGE_PYTHON" in result.err
    assert "pip install yadage==" in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert not (analysis / ".odrun" / "runs").exists() or not any(
        (analysis / ".odrun" / "runs").glob("*/workspace/code")
    )  # refused before staging


def test_invalid_workflow_is_refused_before_staging(
    odrun, yadage_python: Path, tmp_path: Path
) -> None:
    analysis = demo_copy(tmp_path)
    (analysis / "steps.yml").write_text("greet: {process: {process_type: nonsense}}\nmerge: {}\n")
    result = odrun("run", str(analysis), "--runtime", "host", "--workdir", str(tmp_path / "r"))
    assert result.code == 2, result.err
    assert "yadage workflow workflow.yml" in result.err
    assert len([ln for ln in result.err.splitlines() if "error" in ln.lower()]) <= 1
    assert not (tmp_path / "r" / "workspace" / "code").exists()


def test_from_and_target_are_refused(odrun, yadage_python: Path, tmp_path: Path) -> None:
    result = odrun("run", str(demo_copy(tmp_path)), "--runtime", "host", "--from", "merge")
    assert result.code == 2
    assert "yadage workflow runs as a whole" in result.err


# the shim packtivity's `docker` reaches: no container needed to check what it starts


def shim(tmp_path: Path, runtime: str, network: bool = False) -> docker_shim.Shim:
    record, logs = str(tmp_path / "jobs.jsonl"), str(tmp_path)
    return docker_shim.Shim(runtime, record, logs, [], network, roots=["/w", str(tmp_path)])


CIDFILE = "/w/greet_0/_packtivity/greet_0.cid"
PACKTIVITY_RUN = ["run", "--rm", "-i", "--cidfile", CIDFILE, "-v", "/w/greet_0:/w/greet_0:rw",
                  "-v", "/w:/w:rw", "img:1", "sh", "-c", "sh"]  # fmt: skip


def test_shim_runs_jobs_without_network_at_the_same_paths(tmp_path: Path) -> None:
    box = shim(tmp_path, "/usr/bin/podman")
    box.readonly = ["/w/data/1/f.root"]
    job = docker_shim.parse_run(PACKTIVITY_RUN[1:])
    argv, cwd = box.argv(job)
    assert argv[:4] == ["/usr/bin/podman", "run", "--rm", "--network=none"]
    assert "/w/greet_0:/w/greet_0:rw" in argv
    assert "/w:/w:rw" in argv
    assert argv[argv.index("/w/data/1/f.root:/w/data/1/f.root:ro") - 1] == "-v"
    assert argv[-4:] == ["img:1", "sh", "-c", "sh"]
    assert cwd is None
    assert job.name == "greet_0"
    assert job.stdin
    assert "--network=host" in shim(tmp_path, "/usr/bin/docker", network=True).argv(job)[0]
    host_argv, host_cwd = shim(tmp_path, "host").argv(job)
    assert host_argv == ["env", "sh", "-c", "sh"]
    assert host_cwd == "/w/greet_0"


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--privileged", "img", "true"],
        ["run", "--network=host", "img", "true"],
        ["exec", "c", "true"],
        ["run", "--rm"],
    ],
)
def test_shim_refuses_what_it_does_not_know(tmp_path: Path, args: list[str]) -> None:
    with pytest.raises(docker_shim.ShimError):
        shim(tmp_path, "/usr/bin/podman").main(args)


def test_shim_on_the_host_records_the_job_and_refuses_moved_binds(tmp_path: Path) -> None:
    work = tmp_path / "w"
    work.mkdir()
    script = str(Path(docker_shim.__file__))
    base = [sys.executable, "-I", script, "host", str(tmp_path / "jobs.jsonl"), str(tmp_path)]
    base += ["", "0", str(tmp_path), "--"]
    ok = subprocess.run(
        [*base, "run", "--rm", "-i", "--cidfile", str(work / "s.cid"), "-v", f"{work}:{work}:rw",
         "img:1", "sh", "-c", "sh"],
        input=b"pwd; echo boom >&2; exit 3", capture_output=True, check=False,
    )  # fmt: skip
    assert ok.returncode == 3
    (entry,) = [json.loads(line) for line in (tmp_path / "jobs.jsonl").read_text().splitlines()]
    assert entry["name"] == "s"
    assert entry["exit_code"] == 3
    assert entry["command"] == "pwd; echo boom >&2; exit 3"
    assert Path(entry["log"]).read_text().splitlines() == [str(work), "boom"]
    moved = subprocess.run(
        [*base, "run", "--rm", "--cidfile", str(work / "m.cid"), "-v", f"{work}:/elsewhere:rw",
         "img:1", "true"], capture_output=True, check=False,
    )  # fmt: skip
    assert moved.returncode == 125
    assert "own path" in (tmp_path / "m.log").read_text()
    assert os.path.getsize(tmp_path / "jobs.jsonl") > 0


@pytest.mark.parametrize(
    ("lines", "cause"),
    [
        (["Traceback (most recent call last):", '  File "x.py"', "ValueError: x"], "ValueError: x"),
        (["running", "cat: x: No such file", "done"], "cat: x: No such file"),
        (["just", "the last line"], "the last line"),
        ([], None),
    ],
)  # fmt: skip
def test_failure_cause_picks_the_telling_line(lines: list[str], cause: str | None) -> None:
    assert job_cause(lines, prefer=TELLING, lines=1, limit=YADAGE_CAUSE_CHARS) == cause


def test_doctor_names_yadage_python(
    odrun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, yadage_python: Path
) -> None:
    def check(result) -> dict[str, str]:  # type: ignore[no-untyped-def]
        (found,) = [c for c in result.json()["checks"] if c["name"] == "yadage"]
        return found  # type: ignore[no-any-return]

    ok = check(odrun("doctor", "--json"))
    assert ok["status"] == "ok"
    assert "yadage 0.21.2, packtivity 0.17.1" in ok["detail"]
    monkeypatch.setenv("ODRUN_YADAGE_PYTHON", str(tmp_path / "none"))
    missing = check(odrun("doctor", "--json"))
    assert missing["status"] == "warn"
    assert "pip install yadage==0.21.2" in missing["fix"]


def test_podman_job_cannot_change_a_record_file(
    odrun, yadage_python: Path, podman_ready: str, publish, tmp_path: Path, isolated_env: Path
) -> None:
    from test_confine import cache_holds, with_records

    rec = publish("916", {"events.txt": b"original\n"})
    ana = tmp_path / "ana"
    ana.mkdir()
    name, tag = podman_ready.rsplit(":", 1)
    attack = (
        "(echo E""VIL > {events} || echo refused >> {out}); "
        "(chmod 666 {events}; echo E""VIL >> {events} || echo refused >> {out}); "
        "cat {events} >> {out}"
    )  # fmt: skip
    (ana / "workflow.yml").write_text(
        json.dumps(
            {
                "stages": [
                    {
                        "name": "attack",
                        "dependencies": ["init"],
                        "scheduler": {
                            "scheduler_type": "singlestep-stage",
                            "parameters": {
                                "events": {"step": "init", "output": "events"},
                                "out": "{workdir}/result.txt",
                            },
                            "step": {
                                "process": {
                                    "process_type": "interpolated-script-cmd",
                                    "script": attack,
                                },
                                "environment": {
                                    "environment_type": "docker-encapsulated",
                                    "image": name,
                                    "imagetag": tag,
                                },
                                "publisher": {
                                    "publisher_type": "interpolated-pub",
                                    "publish": {"out": "{out}"},
                                },
                            },
                        },
                    }
                ]
            }
        )
    )
    (ana / "reana.yaml").write_text(
        "inputs:\n  parameters: {events: data/916/events.txt}\n"
        "workflow:\n  type: yadage\n  file: workflow.yml\n"
    )
    with_records(ana, rec)
    result = odrun("run", str(ana), "--runtime", "podman", "--json")
    assert result.code == 0, result.err
    out = Path(result.json()["run_dir"]) / "workspace" / "attack" / "result.txt"
    assert out.read_text() == "refused\nrefused\noriginal\n"
    assert cache_holds(isolated_env, b"EVIL") == []


def test_demo_in_docker_matches_podman(
    odrun, yadage_python: Path, docker_ready: str, tmp_path: Path
) -> None:
    analysis = demo_copy(tmp_path, docker_ready)
    (tmp_path / "host-only").touch()  # a file only the host sees: the job runs in docker
    probe = f"test -e {tmp_path / 'host-only'} && echo on-host || echo in-container"
    steps = analysis / "steps.yml"
    steps.write_text(steps.read_text().replace(
        "script: python3 {script} {outputfile} {greetings}",
        "script: python3 {script} {outputfile} {greetings} && (" + probe + ") > {outputfile}.where",
    ))  # fmt: skip
    result = odrun("run", str(analysis), "--runtime", "docker", "--verify", "--json")
    assert result.code == 0, result.err
    doc = result.json()
    assert doc["runtime"] == "docker"
    assert doc["verified"] is True
    where = Path(doc["run_dir"]) / "workspace" / "merge" / "greetings.txt.where"
    assert where.read_text() == "in-container\n"
    (image,) = json.loads((Path(doc["run_dir"]) / "odrun.lock").read_text())["images"]
    assert image["digest"].startswith("sha256:")


def test_steps_packtivity_runs_itself_are_named(
    odrun, yadage_python: Path, podman_ready: str, tmp_path: Path
) -> None:
    analysis = demo_copy(tmp_path, podman_ready)
    workflow = analysis / "workflow.yml"
    workflow.write_text(
        workflow.read_text() + "  - name: local\n"
        "    dependencies: [merge]\n"
        "    scheduler:\n"
        "      scheduler_type: singlestep-stage\n"
        "      parameters: {out: '{workdir}/local.txt'}\n"
        "      step:\n"
        "        process: {process_type: string-interpolated-cmd, cmd: 'echo here > {out}'}\n"
        "        environment: {environment_type: localproc-env}\n"
        "        publisher: {publisher_type: interpolated-pub, publish: {out: '{out}'}}\n"
    )
    result = odrun("run", str(analysis), "--runtime", "podman", "--json")
    assert result.code == 0, result.err
    assert "yadage steps with environment_type localproc-env run on the host" in result.err
    local = Path(result.json()["run_dir"]) / "workspace" / "local" / "local.txt"
    assert local.read_text() == "here\n"


def test_a_step_failing_outside_its_job_names_its_own_error(
    odrun, yadage_python: Path, tmp_path: Path
) -> None:
    analysis = demo_copy(tmp_path)
    steps = analysis / "steps.yml"
    text = steps.read_text()
    merge = text.index("merge:")
    publisher = "  publisher:\n    publisher_type: interpolated-pub\n    publish:\n"
    publisher += "      outputfile: '{outputfile}'"
    assert publisher in text[merge:]
    # the job succeeds; its publisher then reads a file the job never wrote
    broken = "  publisher:\n    publisher_type: fromyaml-pub\n    yamlfile: published.yml"
    steps.write_text(text[:merge] + text[merge:].replace(publisher, broken))
    result = odrun("run", str(analysis), "--runtime", "host", "--workdir", str(tmp_path / "r"))
    assert result.code == 7, result.err
    (line,) = [ln for ln in result.err.splitlines() if "failed" in ln]
    assert "yadage step merge failed: FileNotFoundError" in line
    assert "published.yml" in line
    assert "workflow finished but failed" not in line


def test_locked_holds_yadage_to_its_version(tmp_path: Path) -> None:
    from odrun.errors import LockError
    from odrun.workflow import lock

    pinned = {"runtime": "host", "images": [], "records": [], "tools": {"yadage": "0.21.2"}}
    path = tmp_path / "odrun.lock"
    lock.write(path, pinned)
    lock.check(path, pinned)  # the same versions: no drift
    with pytest.raises(LockError, match=r"yadage 0\.21\.2 -> 0\.22\.0"):
        lock.check(path, {**pinned, "tools": {"yadage": "0.22.0"}}, records=False)


@pytest.mark.parametrize(
    ("ref", "offline", "code", "says"),
    [
        ("OUTSIDE/steps.yml#/greet", False, 9, "leads outside"),  # absolute
        ("../outside/steps.yml#/greet", False, 9, "leads outside"),
        ("link.yml#/greet", False, 9, "leads outside"),  # a link out of the folder
        ("http://127.0.0.1:9/steps.yml#/greet", True, 8, "is remote (offline)"),
    ],
)
def test_refs_stay_in_the_analysis_folder(
    odrun, yadage_python: Path, tmp_path: Path, ref: str, offline: bool, code: int, says: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    analysis = demo_copy(tmp_path)
    shutil.copy(analysis / "steps.yml", outside / "steps.yml")
    (analysis / "link.yml").symlink_to(outside / "steps.yml")
    workflow = analysis / "workflow.yml"
    ref = ref.replace("OUTSIDE", str(outside))
    workflow.write_text(workflow.read_text().replace("steps.yml#/greet", ref))
    args = ["--offline"] if offline else []
    result = odrun(
        *args, "run", str(analysis), "--runtime", "host", "--workdir", str(tmp_path / "r")
    )
    assert result.code == code, result.err
    assert says in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert not (tmp_path / "r" / "workspace" / "code").exists()  # before staging


@pytest.mark.parametrize(
    "make",
    [
        "ln -s {secret} out.yml",
        "ln -s ../../../../../../../../../../../..{secret} out.yml",
        "mkdir d && ln -s $(dirname {secret}) d/up && ln -s d/up/secret.txt out.yml",
        "mkfifo out.yml",
    ],
)
def test_shim_removes_what_a_job_leaves_leading_out_of_its_folder(
    podman_ready: str, tmp_path: Path, make: str
) -> None:
    """yadage reads a job's folder on the host (publishers such as fromyaml-pub) and binds it
    into the next job: a link to a host file, or a FIFO, is removed and the job fails."""
    secret = tmp_path / "host" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("HOSTSECRET\n")
    work = tmp_path / "w" / "step"
    work.mkdir(parents=True)
    logs = tmp_path / "logs"
    logs.mkdir()
    box = docker_shim.Shim(shutil.which("podman") or "podman", str(tmp_path / "jobs.jsonl"),
                           str(logs), roots=[str(tmp_path / "w")])  # fmt: skip
    args = ["run", "--rm", "--cidfile", str(work / "step.cid"), "-w", str(work)]
    args += ["-v", f"{work}:{work}:rw", podman_ready, "bash", "-c", make.format(secret=secret)]
    code = box.main(args)
    assert code == 125
    assert not os.path.lexists(work / "out.yml")
    record = json.loads((tmp_path / "jobs.jsonl").read_text())
    assert record["exit_code"] == 125
    assert "out.yml" in (logs / "step.log").read_text()
    assert secret.read_text() == "HOSTSECRET\n"


@pytest.mark.parametrize(
    "bind",
    [
        ["-v", "/:/host:rw"],  # packtivity puts workdir and mountpath unquoted in its
        ["-v", "/etc:/w/ws/etc:ro"],  # command line: "-w /x -v /:/host" reaches the shim
        ["--volume=/root:/r"],
        ["-v", "scratch:/x"],  # a named volume: state shared between runs
        ["-v", "WS/link:WS/link:rw"],  # inside the workspace, but a link leading out
        ["-v", "WS/../outside:/o"],
    ],
)
def test_shim_binds_only_the_workspace(tmp_path: Path, bind: list[str]) -> None:
    """Every folder a job gets must be in the workspace (CVMFS read-only): a workflow's
    workdir or par_mounts mountpath with a space could otherwise bind the host's root."""
    ws = tmp_path / "ws"
    (ws / "step").mkdir(parents=True)
    (ws / "link").symlink_to("/etc")
    (tmp_path / "outside").mkdir()
    box = docker_shim.Shim(
        "/usr/bin/podman", str(tmp_path / "jobs.jsonl"), str(tmp_path), [], roots=[str(ws)]
    )
    step = f"{ws}/step"
    bind = [b.replace("WS", str(ws)) for b in bind]
    job = docker_shim.parse_run(["-w", step, "-v", f"{step}:{step}:rw", *bind, "img:1", "true"])
    with pytest.raises(docker_shim.ShimError, match="outside the workspace"):
        box.argv(job)
    fine = docker_shim.parse_run(
        ["-w", step, "-v", f"{step}:{step}:rw", "-v", "/cvmfs:/cvmfs:ro", "img:1", "true"]
    )
    assert box.argv(fine)[0][-2:] == ["img:1", "true"]


def test_a_workflow_cannot_add_binds_through_its_workdir(
    odrun, yadage_python: Path, podman_ready: str, tmp_path: Path
) -> None:
    """``environment.workdir: '/tmp -v /:/host:rw'`` reaches packtivity's command line
    unquoted: the job is refused, and never reads or writes the host."""
    analysis = demo_copy(tmp_path, podman_ready)
    secret = tmp_path / "secret.txt"
    secret.write_text("HOSTSECRET\n")
    steps = analysis / "steps.yml"
    text = steps.read_text()
    script = "script: python3 {script} '{prefix}' '{word}' {outputfile}"
    assert script in text
    text = text.replace(
        script, f"script: cat /host{secret} > {{outputfile}}; touch /host{tmp_path}/pwned"
    )
    steps.write_text(
        text.replace("  publisher:", "    workdir: '/tmp -v /:/host:rw'\n  publisher:", 1)
    )
    result = odrun("run", str(analysis), "--runtime", "podman", "--workdir", str(tmp_path / "r"))
    assert result.code == 7, result.err
    assert not (tmp_path / "pwned").exists()
    assert "outside the workspace" in result.err
    found = [p for p in (tmp_path / "r").rglob("*") if p.is_file()]
    assert [p for p in found if "HOSTSECRET" in p.read_text("latin-1")] == []
