"""Strict specs: run, verify and validate refuse the same things, with one code path.

An unknown key is an error naming the closest valid key; inputs that lead outside the
analysis folder, missing inputs and bad references are errors in ``validate`` exactly as
``run`` refuses them, before anything is fetched or run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from odrun.workflow.spec import load_analysis, validate


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def nothing_happened(analysis: Path, cache: Path) -> None:
    assert not (analysis / ".odrun").exists()  # no run folder: nothing ran
    assert not [p for p in cache.rglob("*") if p.is_file()]  # nothing resolved or fetched


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


ODRUN_TYPOS = [
    # (text in odrun.yaml, replacement, message)
    ("    values:\n", "    valuez:\n",
     "unknown key `valuez` in expect[0]: did you mean `values`?"),
    ("name: dimuon-demo", "nmae: dimuon-demo", "unknown key `nmae`: did you mean `name`?"),
    ("    dest: data/900001", "    destination: data/900001",
     "unknown key `destination` in records[0]: did you mean `dest`?"),
    ("chi2_ndf: {value: 1.0, abs: 0.5}", "chi2_ndf: {value: 1.0, abz: 0.5}",
     "unknown key `abz` in expect[0].values.chi2_ndf: did you mean `abs`?"),
    ("chi2: {p_min: 0.01, normalize: true}", "chi2: {p_min: 0.01, normalise: true}",
     "unknown key `normalise` in expect[1].histograms.bins.chi2: did you mean `normalize`?"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "message"), ODRUN_TYPOS)
def test_unknown_odrun_key_is_refused_everywhere(
    odrun, demo: Path, isolated_env: Path, old: str, new: str, message: str
) -> None:
    edit(demo / "odrun.yaml", old, new)
    checked = odrun("validate", str(demo))
    assert checked.code == 2, checked.out + checked.err
    assert message in checked.out
    ran = odrun("run", str(demo), "--runtime", "host", "--verify")
    assert ran.code == 2, ran.err
    assert message in ran.err
    nothing_happened(demo, isolated_env)
    verified = odrun("verify", str(demo))
    assert verified.code == 2, verified.err
    assert message in verified.err


def test_unknown_key_without_a_close_match_lists_the_valid_ones(odrun, demo: Path) -> None:
    edit(demo / "odrun.yaml", "    values:\n", "    qqqqqq: 1\n    values:\n")
    checked = odrun("validate", str(demo))
    assert checked.code == 2
    assert "unknown key `qqqqqq` in expect[0]: expected one of " in checked.out
    assert "did you mean" not in checked.out


def test_unknown_executor_name_gets_a_suggestion(odrun, demo: Path) -> None:
    write(demo / "odrun.yaml", "version: 1\nexecutors:\n  slurn: {jobs: 2}\n")
    checked = odrun("validate", str(demo))
    assert checked.code == 2
    assert "unknown key `slurn` in executors: did you mean `slurm`?" in checked.out


REANA_TYPOS = [
    ("        commands:\n          - mkdir", "        comands:\n          - mkdir",
     "unknown key `comands` in workflow.specification.steps[0]: did you mean `commands`?"),
    ("  parameters:\n", "  paramters:\n",
     "unknown key `paramters` in inputs: did you mean `parameters`?"),
    ("outputs:\n", "output:\n", "unknown key `output`: did you mean `outputs`?"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "message"), REANA_TYPOS)
def test_unknown_reana_key_is_refused(
    odrun, demo: Path, isolated_env: Path, old: str, new: str, message: str
) -> None:
    edit(demo / "reana.yaml", old, new)
    checked = odrun("validate", str(demo))
    assert checked.code == 2
    assert f"error: reana.yaml: {message}" in checked.out
    ran = odrun("run", str(demo), "--runtime", "host")
    assert ran.code == 2
    assert message in ran.err
    nothing_happened(demo, isolated_env)


def test_the_library_and_the_cli_agree(demo: Path) -> None:
    edit(demo / "odrun.yaml", "    values:\n", "    valuez:\n")
    findings = validate(load_analysis(demo))
    assert [f.level for f in findings if "valuez" in f.message] == ["error"]


@pytest.mark.parametrize("spec", ["reana.yaml", "odrun.yaml"])
def test_yaml_errors_name_file_line_and_column(odrun, demo: Path, spec: str) -> None:
    path = demo / spec
    lines = path.read_text().splitlines()
    lines.insert(5, "broken: a: b")
    path.write_text("\n".join(lines) + "\n")
    for command in (["validate"], ["run", "--runtime", "host"], ["verify"]):
        result = odrun(*command, str(demo))
        assert result.code == 2, (command, result.err)
        # libyaml says "... in this context", PyYAML "... here": both name the place
        assert f"{path}:6:10: " in result.err, result.err
        assert "mapping values are not allowed" in result.err, result.err
        assert "Traceback" not in result.err


def outside_link(analysis: Path, tmp_path: Path, rel: str) -> None:
    secret = write(tmp_path / "outside" / "secret.py", "print('not yours')\n")
    link = analysis / rel
    link.unlink()
    link.symlink_to(os.path.relpath(secret, link.parent))


def test_input_symlink_leading_outside_is_an_error_in_validate_and_run(
    odrun, demo: Path, tmp_path: Path, isolated_env: Path
) -> None:
    outside_link(demo, tmp_path, "analysis/dimuon.py")
    checked = odrun("validate", str(demo))
    assert checked.code == 9, checked.out
    message = "input analysis/dimuon.py leads outside the analysis folder"
    assert message in checked.out
    ran = odrun("run", str(demo), "--runtime", "host")
    assert ran.code == 9
    assert message in ran.err
    nothing_happened(demo, isolated_env)


def test_input_directory_holding_a_link_outside_is_refused(
    odrun, demo: Path, tmp_path: Path, isolated_env: Path
) -> None:
    files, folder = "  files:\n    - analysis/dimuon.py", "  directories:\n    - analysis"
    edit(demo / "reana.yaml", files, folder)
    write(tmp_path / "outside" / "data.txt", "secret\n")
    (demo / "analysis" / "escape").symlink_to(tmp_path / "outside")
    checked = odrun("validate", str(demo))
    assert checked.code == 9, checked.out
    assert "input analysis/escape leads outside the analysis folder" in checked.out
    ran = odrun("run", str(demo), "--runtime", "host")
    assert ran.code == 9
    nothing_happened(demo, isolated_env)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("    - analysis/dimuon.py", "    - analysis/nope.py",
         "input analysis/nope.py does not exist"),
        ("    - analysis/dimuon.py", "    - ../dimuon-demo/analysis/dimuon.py",
         "must be a relative path inside the analysis"),
        ("type: serial", "type: serial\n  file: workflow/steps.yaml",
         "input workflow/steps.yaml does not exist"),
    ],
)  # fmt: skip
def test_bad_inputs_are_validate_errors(
    odrun, demo: Path, isolated_env: Path, old: str, new: str, message: str
) -> None:
    edit(demo / "reana.yaml", old, new)
    checked = odrun("validate", str(demo))
    assert checked.code == 2, checked.out
    assert message in checked.out
    ran = odrun("run", str(demo), "--runtime", "host")
    assert ran.code == 2
    assert message in ran.err
    nothing_happened(demo, isolated_env)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("dest: data/900001", "dest: ../elsewhere", "must be a relative path inside"),
        ('reference: "reference/mass_spectrum.json', 'reference: "reference/missing.json',
         "reference reference/missing.json does not exist"),
    ],
)  # fmt: skip
def test_bad_odrun_paths_are_validate_errors(
    odrun, demo: Path, isolated_env: Path, old: str, new: str, message: str
) -> None:
    edit(demo / "odrun.yaml", old, new)
    checked = odrun("validate", str(demo))
    assert checked.code == 2, checked.out
    assert message in checked.out
    ran = odrun("run", str(demo), "--runtime", "host")
    assert ran.code == 2
    nothing_happened(demo, isolated_env)


def test_reference_symlink_leading_outside_is_an_error(odrun, demo: Path, tmp_path: Path) -> None:
    outside_link(demo, tmp_path, "reference/mass_spectrum.json")
    checked = odrun("validate", str(demo))
    assert checked.code == 9  # unsafe, not a typo
    assert "reference reference/mass_spectrum.json leads outside the analysis folder" in checked.out


def test_the_demo_is_valid(odrun, demo: Path) -> None:
    checked = odrun("validate", str(demo))
    assert checked.code == 0, checked.out
    assert "0 errors" in checked.err


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("  - ref: 900001", "  - ref: not a record",
         "odrun.yaml records[0]: 'not a record' is not a record reference"),
        ('    names: ["Dimuon_generated.csv"]', '    regexp: "(["',
         "odrun.yaml records[0]: regexp '(['"),
    ],
)  # fmt: skip
def test_bad_records_are_validate_errors(
    odrun, demo: Path, isolated_env: Path, old: str, new: str, message: str
) -> None:
    edit(demo / "odrun.yaml", old, new)
    checked = odrun("validate", str(demo))
    assert checked.code == 2, checked.out
    assert message in checked.out
    ran = odrun("run", str(demo), "--runtime", "host")
    assert ran.code == 2
    nothing_happened(demo, isolated_env)


@pytest.mark.parametrize("spec", ["reana.yaml", "odrun.yaml"])
def test_duplicate_keys_are_errors(odrun, demo: Path, spec: str) -> None:
    """A key given twice silently loses the first value: as bad as a misspelt one."""
    path = demo / spec
    path.write_text(path.read_text() + "version: 1\n")
    lines = len(path.read_text().splitlines())
    for command in (["validate"], ["run", "--runtime", "host"], ["verify"]):
        result = odrun(*command, str(demo))
        assert result.code == 2, (command, result.err)
        assert f"{path}:{lines}:1: " in result.err, result.err
        assert "duplicate key `version` (first at line " in result.err, result.err


def test_snakemake_parameters_file_is_checked(odrun, tmp_path: Path, isolated_env: Path) -> None:
    write(tmp_path / "Snakefile", "rule all:\n    shell: 'true'\n")
    write(tmp_path / "config.yaml", "- not\n- a mapping\n")
    write(
        tmp_path / "reana.yaml",
        "version: 0.9.0\ninputs:\n  parameters:\n    input: config.yaml\n"
        "workflow:\n  type: snakemake\n  file: Snakefile\n",
    )
    checked = odrun("validate", str(tmp_path))
    assert checked.code == 2, checked.out
    assert "snakemake parameters file config.yaml must hold a mapping" in checked.out
    ran = odrun("run", str(tmp_path), "--runtime", "host")
    assert ran.code == 2
    nothing_happened(tmp_path, isolated_env)


def test_unknown_key_inside_a_one_of_branch(demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A schema that allows a number or a mapping (as statistics options may): a misspelt
    key in the mapping is still named, not lost in 'not valid under any of the schemas'."""
    import copy

    from odrun.workflow import spec

    schema = copy.deepcopy(spec.load_spec(spec.ODRUN_SCHEMA))
    values = schema["properties"]["expect"]["items"]["properties"]["values"]
    values["additionalProperties"] = {"oneOf": [{"type": "number"}, values["additionalProperties"]]}
    real = spec.load_spec
    monkeypatch.setattr(spec, "load_spec", lambda n: schema if n == spec.ODRUN_SCHEMA else real(n))
    edit(
        demo / "odrun.yaml", "chi2_ndf: {value: 1.0, abs: 0.5}", "chi2_ndf: {value: 1.0, abz: 0.5}"
    )
    errors = [f for f in validate(load_analysis(demo)) if f.level == "error"]
    assert str(errors[0]) == (
        "error: odrun.yaml: unknown key `abz` in expect[0].values.chi2_ndf: did you mean `abs`?"
    )


def test_snakemake_parameters_file_yaml_error_names_line(odrun, tmp_path: Path) -> None:
    write(tmp_path / "Snakefile", "rule all:\n    shell: 'true'\n")
    config = write(tmp_path / "config.yaml", "a: 1\nb: c: d\n")
    write(
        tmp_path / "reana.yaml",
        "version: 0.9.0\ninputs:\n  parameters:\n    input: config.yaml\n"
        "workflow:\n  type: snakemake\n  file: Snakefile\n",
    )
    checked = odrun("validate", str(tmp_path))
    assert checked.code == 2
    assert f"{config}:2:5: " in checked.out
    assert "mapping values are not allowed" in checked.out


NON_FINITE = [
    # an infinite tolerance passes anything; a NaN one fails a correct run
    ("chi2_ndf: {value: 1.0, abs: 0.5}", "chi2_ndf: {value: 1.0, abs: .inf}",
     "expect[0].values.chi2_ndf.abs: .inf is not a finite number"),
    ("sigma: {n: 3, error_key: mass_error,", "sigma: {n: .Inf, error_key: mass_error,",
     "expect[0].values.mass.sigma.n: .inf is not a finite number"),
    ("chi2_ndf: {value: 1.0, abs: 0.5}", "chi2_ndf: {value: .nan, abs: 0.5}",
     "expect[0].values.chi2_ndf.value: .nan is not a finite number"),
    ("chi2: {p_min: 0.01, normalize: true}", "chi2: {p_min: .NaN, normalize: true}",
     "expect[1].histograms.bins.chi2.p_min: .nan is not a finite number"),
    ("max_error: 0.06}", "max_error: .inf}",
     "expect[0].values.mass.sigma.max_error: .inf is not a finite number"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "message"), NON_FINITE)
def test_non_finite_numbers_in_odrun_yaml_are_errors(
    odrun, demo: Path, isolated_env: Path, old: str, new: str, message: str
) -> None:
    """Failed before: `abs: .inf` (or `n: .inf`) passed the schema's `minimum: 0`, and the
    check then passed any output (`5 vs expected 1 ± inf`, exit 0)."""
    edit(demo / "odrun.yaml", old, new)
    checked = odrun("validate", str(demo))
    assert checked.code == 2, checked.out + checked.err
    assert message in checked.out
    ran = odrun("run", str(demo), "--runtime", "host", "--verify")
    assert ran.code == 2, ran.err
    assert message in ran.err
    nothing_happened(demo, isolated_env)
