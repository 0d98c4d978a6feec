"""Property tests: analysis specs (reana.yaml, odrun.yaml) and the code archives records ship.

For any spec - the bundled demo's files with keys dropped, types changed, huge
numbers, unicode, non-string keys, undecodable bytes, deep nesting - ``load_analysis``
plus ``validate`` give findings or raise an OdrunError; a spec without error findings
answers every question ``run`` asks it. For any tar or zip archive - members named
``..``, absolute, with NUL, links, devices, a file and a folder of one name, corrupt
bytes - ``unpack_archive`` unpacks inside the folder or raises a MetadataError.
"""

from __future__ import annotations

import contextlib
import io
import tarfile
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from odrun.errors import MetadataError, OdrunError
from odrun.workflow.fromrecord import unpack_archive
from odrun.workflow.spec import load_analysis, validate

import fuzzing

DEMO = Path(__file__).resolve().parent.parent / "workflows" / "dimuon-demo"
REANA = yaml.safe_load((DEMO / "reana.yaml").read_text())
MANIFEST = yaml.safe_load((DEMO / "odrun.yaml").read_text())

yaml_keys = st.one_of(
    st.text(max_size=8), st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False)
)


@st.composite
def spec_texts(draw: st.DrawFn, doc: dict[str, Any]) -> bytes:
    how = draw(st.sampled_from(("mutated", "mutated", "mutated", "keys", "raw")))
    if how == "raw":
        return draw(
            st.one_of(
                st.binary(max_size=80),
                st.sampled_from(
                    (
                        b"\xff\xfe\x00",
                        b"\xc3\x28: x",
                        b"[" * 600,
                        b"a: " + b"[" * 600 + b"]" * 600,
                        b"a: {b: " * 600,
                        b"version: 0.9.0\ninputs: !!python/object:os.system {}",
                        b"- 1\n- 2",
                        b"",
                        b"a: 1\na: 2",
                        b"\t- x",
                        b"version: " + b"9" * 5000,
                    )
                ),
            )
        )
    value = draw(fuzzing.mutated(doc))
    if how == "keys":  # YAML allows keys JSON does not: numbers, null, booleans
        value[draw(yaml_keys)] = draw(fuzzing.nasty_scalars)
    try:
        text = yaml.safe_dump(value, allow_unicode=True)
    except (yaml.YAMLError, ValueError):  # a value PyYAML cannot write (10**5000)
        text = "version: " + "9" * 5000
    return text.encode("utf-8", "surrogatepass")


def run_questions(analysis: Any) -> None:
    """What ``odrun run`` asks a spec that validated without errors."""
    _ = analysis.name, analysis.workflow_type, analysis.parameters
    for step in analysis.steps:
        analysis.network(str(step.get("name")))
    for section in ("inputs", "outputs"):
        for kind in ("files", "directories"):
            analysis.files_in(section, kind)


def load_and_validate(reana: bytes | None, manifest: bytes | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "analysis").mkdir()
        (root / "analysis" / "dimuon.py").write_text("")
        if reana is not None:
            (root / "reana.yaml").write_bytes(reana)
        if manifest is not None:
            (root / "odrun.yaml").write_bytes(manifest)
        try:
            analysis = load_analysis(root)
            findings = validate(analysis)
        except OdrunError:
            return
        for finding in findings:
            assert finding.level in ("error", "warning")
            str(finding).encode("utf-8")
        if not any(f.level == "error" for f in findings):
            run_questions(analysis)


def test_the_demo_specs_validate() -> None:
    """Negative control: the unmutated specs have no errors."""
    analysis = load_analysis(DEMO)
    assert [f for f in validate(analysis) if f.level == "error"] == []


@given(spec_texts(REANA), st.one_of(st.none(), st.just(b"version: 1\nname: x\n")))
@example(b"\xff\xfe\x00", None)
@example(b"a: " + b"[" * 600 + b"]" * 600, None)  # RecursionError; deeper is only slower
@example(b"version: 0.9.0\n1: x\nworkflow: {type: serial}", None)
@example(
    b"version: 0.9.0\ninputs: {directories: ['" + b"d" * 5000 + b"']}\nworkflow: {type: serial, "
    b"specification: {steps: [{name: s, environment: 'python:3.11', commands: [x]}]}}",
    None,
)
def test_any_reana_yaml_gives_findings_or_a_typed_error(
    reana: bytes, manifest: bytes | None
) -> None:
    load_and_validate(reana, manifest)


@given(spec_texts(MANIFEST))
@example(b"version: 1\nexpect: [{file: x, histograms: {h: {}}}]")
@example(b"version: 1\nexpect: [5]")
@example(  # a reference too long for a file name: OSError (exit 1) before the fix
    b"version: 1\nexpect: [{name: a, file: b, histograms: {h: {reference: '"
    + b"a/" * 3000
    + b"'}}}]"
)
def test_any_odrun_yaml_gives_findings_or_a_typed_error(manifest: bytes) -> None:
    load_and_validate((DEMO / "reana.yaml").read_bytes(), manifest)


# -- archives -----------------------------------------------------------------------------

member_names = st.one_of(
    st.sampled_from(
        (
            "reana.yaml",
            "a/b.txt",
            "a",
            "a/",
            "../x",
            "/abs",
            "a/../../x",
            "./a",
            "a//b",
            "a\\..\\b",
            "\u202eb",
            "x" * 300,
            ("d/" * 60) + "f",
        )
    ),
    st.text(min_size=1, max_size=12),
)
kinds = st.sampled_from(("file", "file", "file", "dir", "symlink", "hardlink", "fifo"))


@st.composite
def archives(draw: st.DrawFn) -> tuple[str, bytes]:
    """(file name, bytes) of a tar, tar.gz or zip with hostile members, maybe corrupted."""
    fmt = draw(st.sampled_from((".tar", ".tar.gz", ".zip")))
    members = draw(st.lists(st.tuples(member_names, kinds, st.binary(max_size=20)), max_size=5))
    buf = io.BytesIO()
    if fmt == ".zip":
        with zipfile.ZipFile(buf, "w") as zf, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Duplicate name": a hostile archive may have them
            for name, kind, data in members:
                zf.writestr(name + ("/" if kind == "dir" else ""), b"" if kind == "dir" else data)
    else:
        with tarfile.open(fileobj=buf, mode="w:gz" if fmt == ".tar.gz" else "w") as tf:
            for name, kind, data in members:
                info = tarfile.TarInfo(name)
                info.type = {
                    "file": tarfile.REGTYPE,
                    "dir": tarfile.DIRTYPE,
                    "symlink": tarfile.SYMTYPE,
                    "hardlink": tarfile.LNKTYPE,
                    "fifo": tarfile.FIFOTYPE,
                }[kind]
                info.linkname = "../../etc/passwd" if kind in ("symlink", "hardlink") else ""
                info.size = len(data) if kind == "file" else 0
                tf.addfile(info, io.BytesIO(data) if kind == "file" else None)
    data = buf.getvalue()
    cut = draw(st.sampled_from(("whole", "whole", "truncated", "flipped")))
    if cut == "truncated":
        data = data[: draw(st.integers(min_value=0, max_value=len(data)))]
    elif cut == "flipped" and data:
        at = draw(st.integers(min_value=0, max_value=len(data) - 1))
        data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
    return "code" + fmt, data


def inside(folder: Path, root: Path) -> bool:
    return folder.resolve().is_relative_to(root.resolve())


@given(archives())
@example(("code.zip", b"PK\x03\x04" + b"\0" * 40))
def test_any_archive_unpacks_inside_its_folder_or_is_a_metadata_error(
    archive: tuple[str, bytes],
) -> None:
    name, data = archive
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dest = root / "dest"
        dest.mkdir()
        (root / name).write_bytes(data)
        with contextlib.suppress(MetadataError):
            unpack_archive(root / name, dest)
        written = [p for p in root.rglob("*") if p.name != name]
        for path in written:
            assert inside(path, dest), path
            assert not path.is_symlink(), path


def test_a_file_and_a_folder_of_one_name_is_a_metadata_error(tmp_path: Path) -> None:
    """zip members 'a' and 'a/b': NotADirectoryError (exit 1) before the fix."""
    archive = tmp_path / "code.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a", b"file")
        zf.writestr("a/b", b"file below a file")
    with pytest.raises(MetadataError):
        unpack_archive(archive, tmp_path / "dest")


def test_an_encrypted_zip_member_is_a_metadata_error(tmp_path: Path) -> None:
    """zipfile raises RuntimeError ('password required'): exit 1 before the fix."""
    archive = tmp_path / "code.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("reana.yaml", b"version: 0.9.0")
    data = bytearray(archive.read_bytes())
    data[6] |= 0x01  # the local header's "encrypted" flag
    central = data.rindex(b"PK\x01\x02")
    data[central + 8] |= 0x01  # and the central directory's
    archive.write_bytes(bytes(data))
    with pytest.raises(MetadataError):
        unpack_archive(archive, tmp_path / "dest")
