"""reana.yaml workflow.type cwl run by cwltool: on the host and in podman, the same outputs as
the serial twin, a failing job's own error in one line, the lock, the crate, rerun.

The analysis is workflows/cwl-demo (two steps with parameters, a scatter over three
samples); tests/data/cwl-failing is the same with a select job that exits 3.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from test_run import write

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "workflows" / "cwl-demo"
FAILING = REPO / "tests" / "data" / "cwl-failing"
DEMO_IMAGE = "docker.io/library/python:3.11-slim"
SUMMARY = "# events above 20\nselected-sample-a.txt 5\nselected-sample-b.txt 8\n"
SUMMARY += "selected-sample-c.txt 5\ntotal 18\n"


def copy(src: Path, dest: Path, image: str | None = None) -> Path:
    """A copy of an analysis; ``image`` replaces the demo's image everywhere it is named."""
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".odrun", "odrun.lock"))
    if image is not None:
        for path in [*dest.rglob("*.cwl"), *dest.glob("reana*.yaml")]:
            path.write_text(path.read_text().replace(DEMO_IMAGE, image))
    return dest


def run_both(odrun, folder: Path, runtime: str) -> tuple[dict, dict]:
    cwl = odrun("run", str(folder), "--runtime", runtime, "--json")
    assert cwl.code == 0, cwl.err
    serial = odrun("run", str(folder / "reana-serial.yaml"), "--runtime", runtime, "--json")
    assert serial.code == 0, serial.err
    return cwl.json(), serial.json()


def assert_same_outputs(cwl: dict, serial: dict) -> None:
    assert cwl["outputs"] == serial["outputs"]
    assert [o["path"] for o in cwl["outputs"]] == ["outputs/summary.txt"]
    text = (Path(cwl["run_dir"]) / "workspace" / "outputs" / "summary.txt").read_text()
    assert text == SUMMARY
    assert cwl["verified"] is True
    assert serial["verified"] is True


def test_demo_on_the_host_gives_the_serial_twins_outputs(odrun, tmp_path: Path) -> None:
    cwl, serial = run_both(odrun, copy(DEMO, tmp_path / "demo"), "host")
    assert_same_outputs(cwl, serial)
    # one step per CWL job: the scatter's three, then the summary
    assert [(s["name"], s["exit_code"]) for s in cwl["steps"]] == [
        ("select", 0), ("select_2", 0), ("select_3", 0), ("summarise", 0)
    ]  # fmt: skip
    assert "sample-c.txt" in cwl["steps"][2]["command"]
    assert cwl["runtime"] == "host"
    assert cwl["ignored_images"] == [DEMO_IMAGE]
    run_dir = Path(cwl["run_dir"])
    lock = json.loads((run_dir / "odrun.lock").read_text())
    assert lock["tools"]["cwltool"].startswith("cwltool 3.")
    assert lock["images"] == [{"name": DEMO_IMAGE, "digest": None}]
    # the job as cwltool read it: the parameters file, relative to the workspace
    job = json.loads((run_dir / "cwl" / "job.json").read_text())
    assert job["threshold"] == 20
    assert len(job["samples"]) == 3


def test_demo_in_podman_gives_the_serial_twins_outputs(
    odrun, podman_ready: str, tmp_path: Path
) -> None:
    cwl, serial = run_both(odrun, copy(DEMO, tmp_path / "demo", podman_ready), "podman")
    assert_same_outputs(cwl, serial)
    assert cwl["runtime"] == "podman"
    run_dir = Path(cwl["run_dir"])
    lock = json.loads((run_dir / "odrun.lock").read_text())
    assert lock["images"][0]["name"] == podman_ready
    assert lock["images"][0]["digest"].startswith("sha256:")
    assert {"cwltool", "podman"} <= set(lock["tools"])
    # every job ran in the image (four), each with no network
    assert (run_dir / "containers" / "used.txt").read_text().split() == [podman_ready] * 4
    commands = (run_dir / "containers" / "commands.log").read_text().splitlines()
    assert len(commands) == 4
    staged = 0
    for line in commands:
        argv = json.loads(line)
        # inputs are bound read-only (cwltool's staging), the workspace is never bound
        mounts = [a for a in argv if a.startswith("--mount=") and "/workspace/" in a]
        assert all(m.endswith(",readonly") for m in mounts)
        staged += len(mounts)
        assert "--network=none" in argv
        assert podman_ready in argv
        assert not any(
            a.startswith(("--net=", "--network=")) and a != "--network=none" for a in argv
        )
    assert staged == 3  # each select job's sample (summarise reads the jobs' outputs)


def test_demo_in_docker_gives_the_serial_twins_outputs(
    odrun, docker_ready: str, tmp_path: Path
) -> None:
    """--runtime docker: cwltool's default (docker), through odrun's shim."""
    cwl, serial = run_both(odrun, copy(DEMO, tmp_path / "demo", docker_ready), "docker")
    assert_same_outputs(cwl, serial)
    assert cwl["runtime"] == "docker"
    run_dir = Path(cwl["run_dir"])
    log = (run_dir / "containers" / "commands.log").read_text()
    commands = [json.loads(line) for line in log.splitlines()]
    assert len(commands) == 4
    assert all(Path(c[0]).name == "docker" and "--network=none" in c for c in commands)
    lock = json.loads((run_dir / "odrun.lock").read_text())
    assert lock["images"][0]["digest"].startswith("sha256:")


NETWORK_TOOL = """\
cwlVersion: v1.2
class: CommandLineTool
requirements:
  DockerRequirement: {dockerPull: IMAGE}
  NetworkAccess: {networkAccess: true}
baseCommand: [bash, -c]
arguments: ["ls /sys/class/net > nets.txt"]
inputs: []
outputs:
  nets: {type: File, outputBinding: {glob: nets.txt}}
"""


@pytest.mark.parametrize("allowed", [False, True])
def test_jobs_get_no_network_unless_odrun_yaml_allows_it(
    odrun, podman_ready: str, tmp_path: Path, allowed: bool
) -> None:
    """A tool asking for NetworkAccess still gets --network=none, unless odrun.yaml says
    ``network: true``."""
    write(tmp_path / "net.cwl", NETWORK_TOOL.replace("IMAGE", podman_ready))
    write(
        tmp_path / "reana.yaml",
        "inputs:\n  files: [net.cwl]\nworkflow:\n  type: cwl\n  file: net.cwl\n"
        "outputs:\n  files: [outputs/nets.txt]\n",
    )
    if allowed:
        write(tmp_path / "odrun.yaml", "version: 1\nnetwork: true\n")
    result = odrun("run", str(tmp_path), "--runtime", "podman", "--json")
    assert result.code == 0, result.err
    run_dir = Path(result.json()["run_dir"])
    assert (run_dir / "containers" / "used.txt").read_text().split() == [podman_ready]
    nets = (run_dir / "workspace" / "outputs" / "nets.txt").read_text().split()
    if allowed:
        assert len(nets) > 1  # lo and the container's own interface
    else:
        assert nets == ["lo"]


@pytest.mark.parametrize("runtime", ["host", "podman"])
def test_a_failing_job_says_its_own_error_in_one_line(
    odrun, tmp_path: Path, runtime: str, request: pytest.FixtureRequest
) -> None:
    image = request.getfixturevalue("podman_ready") if runtime == "podman" else None
    folder = copy(FAILING, tmp_path / "failing", image)
    result = odrun("run", str(folder), "--runtime", runtime, "--workdir", str(tmp_path / "r"))
    assert result.code == 7, result.err
    last = result.err.strip().splitlines()[-1]
    assert last.startswith("odrun: workflow failed: CWL step select (job select_2) failed with ")
    assert "exit code 3: sample-b.txt: corrupt event on line 3" in last
    assert "permanentFail" not in last
    assert "Traceback" not in result.err
    record = json.loads((tmp_path / "r" / "run.json").read_text())
    assert record["status"] == "failed"
    assert [s["exit_code"] for s in record["steps"]] == [0, 3]
    assert "corrupt event on line 3" in record["error"]
    assert (tmp_path / "r" / "ro-crate-metadata.json").is_file()
    assert not (folder / "odrun.lock").exists()  # a failed run pins nothing


def test_invalid_cwl_is_refused_before_anything_runs(odrun, tmp_path: Path) -> None:
    folder = copy(DEMO, tmp_path / "demo")
    step = folder / "workflow" / "summarise.cwl"
    step.write_text(step.read_text().replace("baseCommand:", "baseCommandd:"))
    result = odrun("run", str(folder), "--runtime", "host", "--workdir", str(tmp_path / "r"))
    assert result.code == 2, result.err
    line = result.err.strip().splitlines()[-1]
    assert "workflow.file workflow/workflow.cwl is not a valid CWL workflow" in line
    assert "summarise.cwl:7:1: invalid field 'baseCommandd'" in line  # the innermost error
    assert not (tmp_path / "r" / "workspace").exists()  # nothing staged


def test_parameters_are_the_job_without_an_input_file(odrun, tmp_path: Path) -> None:
    write(
        tmp_path / "hello.cwl",
        "cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: [bash, -c]\n"
        'arguments: [\'cat "$1" > greeting.txt; echo "$0" >> greeting.txt\', $(inputs.who),'
        " $(inputs.text.path)]\n"
        "inputs:\n  who: string\n  text: File\n"
        "outputs:\n  out: {type: File, outputBinding: {glob: greeting.txt}}\n",
    )
    write(tmp_path / "data" / "in.txt", "hello\n")
    write(
        tmp_path / "reana.yaml",
        "inputs:\n  files: [hello.cwl, data/in.txt]\n  parameters:\n    who: world\n"
        "    text: {class: File, path: data/in.txt}\n"
        "workflow:\n  type: cwl\n  file: hello.cwl\noutputs:\n  files: [outputs/greeting.txt]\n",
    )
    result = odrun("run", str(tmp_path), "--runtime", "auto", "--json")
    assert result.code == 0, result.err
    assert "names no image; runs on the host" in result.err
    out = Path(result.json()["run_dir"]) / "workspace" / "outputs" / "greeting.txt"
    assert out.read_text() == "hello\nworld\n"


def test_verify_junit_locked_and_rerun(odrun, tmp_path: Path) -> None:
    folder = copy(DEMO, tmp_path / "demo")
    junit = tmp_path / "junit.xml"
    first = odrun("run", str(folder), "--runtime", "host", "--verify", "--junit", str(junit))
    assert first.code == 0, first.err
    assert 'failures="0"' in junit.read_text()
    assert "summary checksum" in junit.read_text()
    assert (folder / "odrun.lock").is_file()
    locked = odrun("run", str(folder), "--runtime", "host", "--locked", "--json")
    assert locked.code == 0, locked.err
    again = odrun("rerun", locked.json()["run_dir"], "--json")
    assert again.code == 0, again.err
    assert again.json()["verified"] is True
    verify = odrun("verify", str(folder))
    assert verify.code == 0, verify.err


def test_from_and_target_are_refused(odrun, tmp_path: Path) -> None:
    folder = copy(DEMO, tmp_path / "demo")
    result = odrun("run", str(folder), "--runtime", "host", "--from", "summarise")
    assert result.code == 2
    assert "a CWL workflow runs whole" in result.err


def test_crate_main_entity_is_the_packed_workflow(odrun, tmp_path: Path) -> None:
    result = odrun("run", str(copy(DEMO, tmp_path / "demo")), "--runtime", "host", "--json")
    assert result.code == 0, result.err
    run_dir = Path(result.json()["run_dir"])
    packed = json.loads((run_dir / "packed.cwl").read_text())
    assert {n["id"] for n in packed["$graph"]} >= {"#main", "#select.cwl", "#summarise.cwl"}
    graph = {
        n["@id"]: n for n in json.loads((run_dir / "ro-crate-metadata.json").read_text())["@graph"]
    }
    assert graph["./"]["mainEntity"] == {"@id": "packed.cwl"}
    workflow = graph["packed.cwl"]
    assert "ComputationalWorkflow" in workflow["@type"]
    language = graph[workflow["programmingLanguage"]["@id"]]
    assert language["name"] == "Common Workflow Language"
    assert {"@id": "reana.yaml"} in graph["./"]["hasPart"]
    assert graph["#run"]["instrument"] == {"@id": "packed.cwl"}


def test_crate_passes_the_validator(odrun, tmp_path: Path) -> None:
    import rocrate_validator

    reason = rocrate_validator.ensure()
    if reason:
        pytest.skip(f"roc-validator unavailable: {reason}")
    result = odrun("run", str(copy(DEMO, tmp_path / "demo")), "--runtime", "host", "--json")
    assert result.code == 0, result.err
    report = rocrate_validator.validate(Path(result.json()["run_dir"]), "workflow-run-crate-0.5")
    assert report["issues"] == []
    assert report["passed"] is True


def test_missing_cwltool_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import importlib.util

    from odrun.errors import ConfigError
    from odrun.workflow import cwl

    real = importlib.util.find_spec
    monkeypatch.setattr(
        cwl.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "cwltool" else real(name, *a),
    )
    with pytest.raises(ConfigError) as caught:
        cwl.cwltool_command()
    assert caught.value.exit_code == 8
    assert "pip install 'odrun[cwl]'" in str(caught.value.hint)


def test_an_expression_error_fails_the_run_though_cwltool_exits_0(odrun, tmp_path: Path) -> None:
    """cwltool exits 0 when a scatter job cannot be made; the run still fails, saying why."""
    folder = copy(DEMO, tmp_path / "demo")
    tool = folder / "workflow" / "select.cwl"
    tool.write_text(tool.read_text().replace('selected-`basename "$1"`', "selected-${1##*/}"))
    result = odrun("run", str(folder), "--runtime", "host", "--workdir", str(tmp_path / "r"))
    assert result.code == 7, result.err
    line = result.err.strip().splitlines()[-1]
    assert "cwltool failed (permanentFail): select.cwl (packed-host.cwl line " in line
    assert "Syntax error in parameter reference" in line
    assert json.loads((tmp_path / "r" / "run.json").read_text())["status"] == "failed"


LOGS = REPO / "tests" / "data" / "cwl-logs"


@pytest.mark.parametrize(
    ("log", "cause"),
    [
        ("job-failed.log", "sample-b.txt: corrupt event on line 3"),
        ("invalid-tool.log", "summarise.cwl:7:1: invalid field 'baseCommandd', expected one of:"),
        ("expression-error.log", "select.cwl:9:5: Syntax error in parameter reference '{1##*/}'"),
        ("podman-rootful.log", "Error: keep-id is only supported in rootless mode"),
    ],
)
def test_failure_cause_is_the_jobs_own_error(log: str, cause: str) -> None:
    from odrun.workflow.cwl_log import CAUSE_CHARS, failure_cause, parse_jobs

    found = failure_cause(parse_jobs((LOGS / log).read_text()))
    assert found.startswith(cause)
    assert "\n" not in found
    assert len(found) <= CAUSE_CHARS
    assert "completed permanentFail" not in found
    assert "Traceback" not in found


def test_the_log_gives_every_job_its_command_and_exit_code() -> None:
    from odrun.workflow.cwl_log import parse_jobs

    parsed = parse_jobs((LOGS / "job-failed.log").read_text())
    assert [(j.name, j.step, j.exit_code) for j in parsed.jobs] == [
        ("select", "select", 0), ("select_2", "select", 3)
    ]  # fmt: skip
    assert parsed.final == "permanentFail"
    assert parsed.failed_job is parsed.jobs[1]
    command = parsed.jobs[1].command
    assert command.startswith("bash -c ")
    assert command.endswith("/sample-b.txt")
    assert parsed.jobs[1].output == ["sample-b.txt: corrupt event on line 3"]
    silent = parse_jobs((LOGS / "podman-rootful.log").read_text())
    assert silent.jobs[0].exit_code == 125


def test_the_shim_gives_every_job_no_network_and_drops_rootful_keep_id() -> None:
    from odrun.workflow.oci_shim import adjust_run, image_of

    cwltool = ["-i", "--userns=keep-id", "--net=host", "--network", "bridge", "--rm", "img", "sh"]
    assert image_of(cwltool[:1] + cwltool[5:]) == "img"
    closed = adjust_run(cwltool, network=False, binds=["/c:/cvmfs/c:ro"], root=True)
    assert closed == [
        "--security-opt=label=disable", "-v", "/c:/cvmfs/c:ro", "-i", "--rm",
        "--network=none", "img", "sh",
    ]  # fmt: skip
    rootless = adjust_run(
        ["--userns=keep-id", "--net=none", "img"], network=False, binds=[], root=False
    )
    assert rootless == ["--security-opt=label=disable", "--userns=keep-id", "--network=none", "img"]
    # odrun.yaml network: true: cwltool's choice stands (--net=none for tools without
    # NetworkAccess, none given for tools with it)
    assert "--net=none" in adjust_run(["--net=none", "img"], network=True, binds=[], root=True)
    assert not any("net" in a for a in adjust_run(["img"], network=True, binds=[], root=True))


MIXED = {
    "cwlVersion": "v1.2",
    "$graph": [
        {
            "id": "#main",
            "class": "Workflow",
            "inputs": [],
            "outputs": [],
            "steps": [
                {"id": "#main/a", "run": "#boxed.cwl", "hints": [DOCKER := {
                    "class": "DockerRequirement", "dockerPull": "img:1"}]},
                {"id": "#main/b", "run": "#bare.cwl"},
                {"id": "#main/c", "run": "#own.cwl"},
            ],
        },
        {"id": "#boxed.cwl", "class": "CommandLineTool"},
        {"id": "#bare.cwl", "class": "CommandLineTool"},
        {"id": "#own.cwl", "class": "CommandLineTool", "requirements": {
            "DockerRequirement": {"dockerPull": "img:2"}}},
    ],
}  # fmt: skip


def test_images_and_host_tools_follow_cwl_inheritance() -> None:
    from odrun.workflow.cwl import for_host, inspect

    assert inspect(MIXED) == (["img:1", "img:2"], ["bare.cwl"])
    host = for_host(MIXED)
    own = next(n for n in host["$graph"] if n["id"] == "#own.cwl")
    assert own["requirements"] == {}
    assert own["hints"]["DockerRequirement"]["dockerPull"] == "img:2"
    assert MIXED["$graph"][3]["requirements"]  # the original is left as it was


def test_a_record_with_tools_on_the_host_is_refused_under_auto(tmp_path: Path) -> None:
    from odrun.errors import ConfigError
    from odrun.settings import Settings
    from odrun.workflow import RunOptions, load_analysis, run_analysis

    folder = copy(DEMO, tmp_path / "demo")
    tool = folder / "workflow" / "summarise.cwl"
    text = tool.read_text()
    tool.write_text(
        text.replace(f"requirements:\n  DockerRequirement:\n    dockerPull: {DEMO_IMAGE}\n", "")
    )
    assert tool.read_text() != text
    with pytest.raises(ConfigError, match="would run on the host") as err:
        run_analysis(
            load_analysis(folder), Settings.load(), RunOptions(runtime="auto", untrusted=True)
        )
    assert "summarise.cwl have no DockerRequirement" in str(err.value)
    assert "select.cwl" not in str(err.value)


COUNT_TOOL = """\
cwlVersion: v1.2
class: CommandLineTool
requirements:
  DockerRequirement: {dockerPull: IMAGE}
baseCommand: [bash, -c]
arguments:
  - 'wc -l < "$0" > n.txt; (echo tamper >> "$0") 2>/dev/null && echo wrote >> n.txt ||
    echo refused >> n.txt'
  - $(inputs.events.path)
inputs:
  events: File
outputs:
  n: {type: File, outputBinding: {glob: n.txt}}
"""


def test_record_files_reach_the_job_read_only(odrun, podman_ready: str, tmp_path: Path) -> None:
    """odrun.yaml's records are fetched into the workspace; the job names them by relative
    location and gets them bound read-only: the shared cache cannot be changed."""
    write(tmp_path / "count.cwl", COUNT_TOOL.replace("IMAGE", podman_ready))
    write(
        tmp_path / "job.yaml", "events: {class: File, location: data/900001/Dimuon_generated.csv}\n"
    )
    write(
        tmp_path / "reana.yaml",
        "inputs:\n  files: [count.cwl]\n  parameters:\n    input: job.yaml\n"
        "workflow:\n  type: cwl\n  file: count.cwl\noutputs:\n  files: [outputs/n.txt]\n",
    )
    mirror = REPO / "workflows" / "mirror"
    write(
        tmp_path / "odrun.yaml",
        f"version: 1\nportal: {mirror.as_uri()}\nrecords:\n  - ref: 900001\n"
        "    names: [Dimuon_generated.csv]\n    dest: data/900001\n",
    )
    result = odrun("run", str(tmp_path), "--runtime", "podman", "--json")
    assert result.code == 0, result.err
    run_dir = Path(result.json()["run_dir"])
    events = run_dir / "workspace" / "data" / "900001" / "Dimuon_generated.csv"
    lines = len(events.read_text().splitlines())
    assert (run_dir / "workspace" / "outputs" / "n.txt").read_text().split() == [
        str(lines), "refused"
    ]  # fmt: skip
    assert "tamper" not in events.read_text()
    lock = json.loads((run_dir / "odrun.lock").read_text())
    assert lock["records"][0]["recid"] == "900001"


@pytest.mark.parametrize(
    ("where", "text", "code"),
    [
        ("job", "samples:\n  - {class: File, location: /etc/passwd}\n", 2),
        ("job", "samples:\n  - {class: File, path: ../../secret.txt}\n", 2),
        ("job", "samples:\n  - {class: File, location: 'file:///etc/passwd'}\n", 2),
        ("tool", "  sample: {type: File, default: {class: File, location: /etc/hostname}}\n", 2),
        ("run", "../../outside.cwl", 2),
        ("link", "data/sample-a.txt", 9),
    ],
)
def test_a_cwl_analysis_names_nothing_outside_itself(
    odrun, tmp_path: Path, where: str, text: str, code: int
) -> None:
    """A job, a default, a run: reference, or a link in the analysis that leads out is
    refused before cwltool reads or stages anything."""
    folder = copy(DEMO, tmp_path / "a" / "demo")
    write(tmp_path / "a" / "outside.cwl", (folder / "workflow" / "select.cwl").read_text())
    write(tmp_path / "a" / "secret.txt", "secret\n")
    if where == "job":
        write(folder / "inputs.yaml", text + "threshold: 1\nlabel: x\n")
    elif where == "tool":
        tool = folder / "workflow" / "select.cwl"
        tool.write_text(tool.read_text().replace("  sample: File\n", text))
    elif where == "run":
        flow = folder / "workflow" / "workflow.cwl"
        flow.write_text(flow.read_text().replace("run: select.cwl", f"run: {text}"))
    else:
        (folder / text).unlink()
        (folder / text).symlink_to(tmp_path / "a" / "secret.txt")
    validate = odrun("validate", str(folder))
    assert validate.code == code, validate.out + validate.err
    result = odrun("run", str(folder), "--runtime", "host", "--workdir", str(tmp_path / "r"))
    assert result.code == code, result.err
    assert "secret" not in json.dumps(result.err.replace("secret.txt", ""))
    assert not (tmp_path / "r" / "logs" / "01-cwltool.log").exists()  # cwltool never ran


def test_job_file_locations_are_relative_to_the_job_file(odrun, tmp_path: Path) -> None:
    """As REANA's demos write them (reana-demo-root6-roofit: ``location: ../../code/x.C`` in
    workflow/cwl/input.yml), a job file's locations are read from its own folder; one that
    leaves the analysis that way is still refused."""
    import shutil

    analysis = tmp_path / "cwl"
    shutil.copytree(Path(__file__).parent / "data" / "reana-analyses" / "cwl", analysis)
    assert "../../code/count.sh" in (analysis / "workflow/cwl/input.yml").read_text()
    checked = odrun("validate", str(analysis))
    assert checked.code == 0, checked.err
    res = odrun("run", str(analysis), "--runtime", "host", "--json")
    assert res.code == 0, res.err
    assert [o["path"] for o in res.json()["outputs"]] == ["outputs/summary.txt"]
    job = analysis / "workflow/cwl/input.yml"
    job.write_text(job.read_text().replace("../../code/count.sh", "../../../count.sh"))
    (tmp_path / "count.sh").write_text("echo outside\n")
    res = odrun("run", str(analysis), "--runtime", "host")
    assert res.code == 2, res.err
    assert "File location '../count.sh' must be a relative path" in res.err


LEAK_FLOW = """\
cwlVersion: v1.2
class: Workflow
inputs: []
outputs:
  read: {type: File, outputSource: read/out}
  loaded: {type: string, outputSource: make/loaded}
steps:
  make:
    run:
      class: CommandLineTool
      requirements:
        DockerRequirement: {dockerPull: IMAGE}
      baseCommand: [bash, -c, "MAKE"]
      inputs: []
      outputs:
        leak: {type: File, outputBinding: {glob: leak}}
        loaded:
          type: string
          outputBinding:
            glob: leak
            loadContents: true
            outputEval: $(self[0].contents)
    in: {}
    out: [leak, loaded]
  read:
    run:
      class: CommandLineTool
      requirements:
        DockerRequirement: {dockerPull: IMAGE}
      baseCommand: [bash, -c, 'cat "$0"']
      stdout: read.txt
      inputs:
        f: {type: File, inputBinding: {position: 1}}
      outputs:
        out: {type: stdout}
    in: {f: make/leak}
    out: [out]
"""


@pytest.mark.parametrize(
    "make",
    [
        "ln -s SECRET leak",  # a host path
        "ln -s ../../../../../../../../../../../../SECRET leak",  # up and out, relative
        "mkdir d && ln -s SECRET d/x && ln -s d/x leak",  # through a link inside
        "ln -s $(dirname SECRET) up && ln -s up/secret.txt leak",  # a linked folder
    ],
)
def test_a_link_a_job_leaves_never_reads_a_host_file(
    odrun, podman_ready: str, tmp_path: Path, make: str
) -> None:
    """A job's symlink to a host path is removed before cwltool reads it on the host
    (loadContents) or binds its target into the next job: the job fails, naming it."""
    secret = tmp_path / "host" / "secret.txt"
    write(secret, "HOSTSECRET\n")
    flow = LEAK_FLOW.replace("IMAGE", podman_ready).replace("MAKE", make)
    write(tmp_path / "a" / "wf.cwl", flow.replace("SECRET", str(secret)))
    write(
        tmp_path / "a" / "reana.yaml",
        "inputs:\n  files: [wf.cwl]\nworkflow:\n  type: cwl\n  file: wf.cwl\n"
        "outputs:\n  files: [outputs/read.txt]\n",
    )
    run_dir = tmp_path / "r"
    result = odrun("run", str(tmp_path / "a"), "--runtime", "podman", "--workdir", str(run_dir))
    assert result.code == 7, result.err
    assert "CWL step make failed" in result.err
    assert "outside its folder" in result.err
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert [p for p in files if "HOSTSECRET" in p.read_text("latin-1")] == []


@pytest.mark.parametrize(
    "extra",
    [
        'dockerFile: "FROM IMAGE\\nRUN echo built > /built\\n"',
        "dockerLoad: image.tar",
        "dockerImport: image.tar",
    ],
)
@pytest.mark.parametrize("key", ["requirements", "hints"])
def test_a_tool_cannot_build_load_or_import_an_image(
    odrun, podman_ready: str, tmp_path: Path, extra: str, key: str
) -> None:
    """cwltool builds a dockerFile whatever --disable-pull says (``podman build`` has the
    network, and its tag could replace an image of the store); REANA runs only images it
    can pull: the workflow is refused before anything runs, and nothing is built."""
    poisoned = "localhost/odrun-test/poisoned-by-cwl:1"
    tool = (
        f"cwlVersion: v1.2\nclass: CommandLineTool\n{key}:\n  DockerRequirement:\n"
        f"    dockerPull: IMAGE\n    dockerImageId: {poisoned}\n    {extra}\n"
        "baseCommand: [bash, -c, 'cat /built > out.txt']\ninputs: []\n"
        "outputs:\n  out: {type: File, outputBinding: {glob: out.txt}}\n"
    )
    write(tmp_path / "a" / "t.cwl", tool.replace("IMAGE", podman_ready))
    write(
        tmp_path / "a" / "reana.yaml",
        "inputs:\n  files: [t.cwl]\nworkflow:\n  type: cwl\n  file: t.cwl\n"
        "outputs:\n  files: [outputs/out.txt]\n",
    )
    run_dir = tmp_path / "r"
    try:
        result = odrun("run", str(tmp_path / "a"), "--runtime", "podman", "--workdir", str(run_dir))
        exists = subprocess.run(["podman", "image", "exists", poisoned], check=False).returncode
    finally:
        subprocess.run(["podman", "rmi", "-f", poisoned], capture_output=True, check=False)
    assert result.code == 2, result.err
    assert "t.cwl" in result.err
    assert extra.partition(":")[0] in result.err
    assert exists != 0
    assert not (run_dir / "logs" / "01-cwltool.log").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["build", "--tag=localhost/x:1", "/tmp"],
        ["load"],
        ["import", "x.tar"],
        ["pull", "docker.io/library/x"],
        ["tag", "a", "b"],
        ["exec", "c", "sh"],
    ],
)
def test_the_shim_refuses_commands_that_change_the_image_store(
    monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    from odrun.workflow import oci_shim

    started: list[list[str]] = []
    monkeypatch.setattr(oci_shim, "_exec", lambda runtime, argv: started.append(argv))
    assert oci_shim.main(["/usr/bin/podman", "", "0", "--", *args]) == 125
    assert started == []
    oci_shim.main(["/usr/bin/podman", "", "0", "--", "inspect", "img"])
    assert started == [["inspect", "img"]]


JS_TOOL = """\
cwlVersion: v1.2
class: CommandLineTool
requirements:
  REQS
  DockerRequirement: {dockerPull: IMAGE}
baseCommand: [echo]
arguments:
  - valueFrom: '${ var g = globalThis.constructor.constructor("return process")();
      return g.getBuiltinModule("fs").readFileSync("SECRET", "utf8"); }'
stdout: out.txt
inputs: []
outputs:
  out: {type: stdout}
"""


@pytest.mark.parametrize("where", ["tool", "step", "job"])
def test_a_record_with_javascript_expressions_is_refused_under_auto(
    podman_ready: str, tmp_path: Path, where: str
) -> None:
    """cwltool evaluates InlineJavascriptRequirement expressions with node on the host, in a
    vm context that does not confine them (globalThis.constructor.constructor reaches
    node's process: files, network): under auto a record's workflow with them is refused,
    wherever the requirement is (tool, workflow step, the job's cwl:requirements)."""
    from odrun.errors import ConfigError
    from odrun.settings import Settings
    from odrun.workflow import RunOptions, load_analysis, run_analysis

    secret = tmp_path / "secret.txt"
    write(secret, "HOSTSECRET\n")
    js = "{class: InlineJavascriptRequirement}"
    tool = JS_TOOL.replace("IMAGE", podman_ready).replace("SECRET", str(secret))
    tool = tool.replace(
        "  REQS\n", "  InlineJavascriptRequirement: {}\n" if where == "tool" else ""
    )
    folder = tmp_path / "a"
    write(folder / "t.cwl", tool)
    step_reqs = f"    requirements: [{js}]\n" if where == "step" else ""
    write(
        folder / "wf.cwl",
        "cwlVersion: v1.2\nclass: Workflow\ninputs: []\n"
        "outputs:\n  out: {type: File, outputSource: s/out}\n"
        f"steps:\n  s:\n    run: t.cwl\n    in: {{}}\n    out: [out]\n{step_reqs}",
    )
    job = f"cwl:requirements: [{js}]\n" if where == "job" else "{}\n"
    write(folder / "job.yaml", job)
    write(
        folder / "reana.yaml",
        "inputs:\n  files: [wf.cwl, t.cwl, job.yaml]\n  parameters: {input: job.yaml}\n"
        "workflow:\n  type: cwl\n  file: wf.cwl\noutputs:\n  files: [outputs/out.txt]\n",
    )
    options = RunOptions(runtime="auto", untrusted=True, workdir=tmp_path / "r")
    with pytest.raises(ConfigError, match="JavaScript") as err:
        run_analysis(load_analysis(folder), Settings.load(), options)
    assert "--runtime" in (err.value.hint or "")
    assert not (tmp_path / "r" / "logs" / "01-cwltool.log").exists()


@pytest.mark.parametrize("engine", ["serial", "cwl"])
def test_an_output_the_run_did_not_write_fails_the_run(odrun, tmp_path: Path, engine: str) -> None:
    """A declared output shipped with the analysis's inputs and left as it was is not this
    run's output: its expectation must not pass on it. The run fails naming it."""
    folder = tmp_path / "a"
    write(folder / "outputs" / "n.txt", "42\n")
    write(folder / "odrun.yaml", "version: 1\nexpect:\n  - file: outputs/n.txt\n")
    files = "[outputs/n.txt, t.cwl]" if engine == "cwl" else "[outputs/n.txt]"
    spec = f"inputs:\n  files: {files}\noutputs:\n  files: [outputs/n.txt]\n"
    if engine == "cwl":
        write(
            folder / "t.cwl",
            'cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: ["true"]\n'
            "inputs: []\noutputs: []\n",
        )
        spec += "workflow:\n  type: cwl\n  file: t.cwl\n"
    else:
        spec += (
            "workflow:\n  type: serial\n  specification:\n    steps:\n"
            "      - environment: docker.io/library/python:3.11-slim\n"
            "        commands: ['true']\n"
        )
    write(folder / "reana.yaml", spec)
    result = odrun(
        "run", str(folder), "--runtime", "host", "--json", "--workdir", str(tmp_path / "r")
    )
    assert result.code == 7, result.out + result.err
    assert "outputs/n.txt" in result.err
    assert "not written by this run" in result.err


@pytest.mark.parametrize(
    "option",
    ["--privileged", "--cap-add=ALL", "--pid=host", "--device=/dev/sda", "--ipc=host",
     "--security-opt=seccomp=unconfined", "--uts=host", "--env-file=/etc/shadow"],
)  # fmt: skip
def test_the_shim_runs_only_the_options_cwltool_gives(
    monkeypatch: pytest.MonkeyPatch, option: str
) -> None:
    """An option cwltool never writes (one a crafted workflow could slip in) is refused:
    the job does not start."""
    from odrun.workflow import oci_shim

    started: list[list[str]] = []
    monkeypatch.setattr(oci_shim, "_exec", lambda runtime, argv: started.append(argv))
    monkeypatch.setattr(oci_shim, "run_checked", lambda *a: started.append(a[1]) or 0)
    args = ["run", "-i", "--rm", "--workdir=/w", option, "img", "sh"]
    assert oci_shim.main(["/usr/bin/podman", "", "0", "--", *args]) == 125
    assert started == []


HOST_NODE = """\
#!/bin/sh
echo "$0" >> MARK
exec REAL "$@"
"""


@pytest.mark.parametrize("runtime", ["podman", "docker"])
@pytest.mark.parametrize("expression", ["leak", "sum"])
def test_a_records_javascript_runs_in_a_container_not_on_the_host(
    podman_node_ready: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    runtime: str,
    expression: str,
    request: pytest.FixtureRequest,
) -> None:
    """With a named container runtime, a record's CWL expressions are evaluated by node in a
    container with no network and no host folder (ODRUN_CWL_NODE_IMAGE), never by a node on
    the host: one reaching node's process cannot read a host file, and a plain one still
    works."""
    from odrun.errors import WorkflowError
    from odrun.settings import Settings
    from odrun.workflow import RunOptions, load_analysis, run_analysis

    if runtime == "docker":
        request.getfixturevalue("docker_ready")
        import docker_daemon

        dockerd = request.getfixturevalue("dockerd")
        assert docker_daemon.load_image(dockerd, podman_node_ready) is None
    secret = tmp_path / "secret.txt"
    write(secret, "HOSTSECRET\n")
    host_bin = tmp_path / "host-bin"
    for name in ("node", "nodejs"):
        real = shutil.which(name) or shutil.which("node")
        assert real is not None
        script = HOST_NODE.replace("MARK", str(tmp_path / "host-node-ran")).replace("REAL", real)
        write(host_bin / name, script)
        (host_bin / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{host_bin}:{__import__('os').environ['PATH']}")
    monkeypatch.setenv("ODRUN_CWL_NODE_IMAGE", podman_node_ready)
    tool = JS_TOOL.replace("IMAGE", podman_node_ready).replace("SECRET", str(secret))
    tool = tool.replace("  REQS\n", "  InlineJavascriptRequirement: {}\n")
    if expression == "sum":
        tool = tool.replace(tool[tool.index("  - valueFrom") : tool.index("stdout:")],
                            "  - valueFrom: $(20 + 22)\n")  # fmt: skip
    folder = tmp_path / "a"
    write(folder / "t.cwl", tool)
    write(
        folder / "reana.yaml",
        "inputs:\n  files: [t.cwl]\nworkflow:\n  type: cwl\n  file: t.cwl\n"
        "outputs:\n  files: [outputs/out.txt]\n",
    )
    options = RunOptions(runtime=runtime, untrusted=True, workdir=tmp_path / "r")
    if expression == "leak":
        with pytest.raises(WorkflowError):
            run_analysis(load_analysis(folder), Settings.load(), options)
    else:
        run_analysis(load_analysis(folder), Settings.load(), options)
        assert (tmp_path / "r" / "workspace" / "outputs" / "out.txt").read_text() == "42\n"
    files = [p for p in (tmp_path / "r").rglob("*") if p.is_file()]
    assert [p for p in files if "HOSTSECRET" in p.read_text("latin-1")] == []
    assert not (tmp_path / "host-node-ran").exists()
