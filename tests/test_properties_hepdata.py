"""Property tests: HEPData tables are untrusted. Real example tables (tests/data/hepdata),
mutated as YAML or JSON (keys dropped, wrong types, huge numbers, NaN, deep nesting,
unicode), and hostile bytes give a Table and bins, or a HepdataError: never a crash.
A reference table in an expectation gives a Check, never an exception."""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
from pathlib import Path

import hepdata_server
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from odrun.errors import OdrunError
from odrun.hepdata import parse_ref, parse_table, to_bins
from odrun.workflow.expect import evaluate

import fuzzing

DATA = Path(__file__).parent / "data" / "hepdata"
TABLES = {
    name: yaml.safe_load((DATA / name).read_bytes())
    for name in ("data3.yaml", "d01-x01-y01.yaml", "dijet_percent_excerpt.yaml")
}
TABLES.update(
    {  # the same tables as hepdata.net's rendered JSON
        f"{name} rendered": hepdata_server.rendered(doc, name) for name, doc in list(TABLES.items())
    }
)
choices = st.sampled_from(sorted(TABLES))
HOSTILE = (
    b"[" * 5000 + b"]" * 5000,
    b"a: &a [*a]",
    b"\xff\xfe\x00",
    b"independent_variables: 1\ndependent_variables: 2",
    b"{independent_variables: [], dependent_variables: [{header: {name: x}, values: [{value: "
    + b"9" * 5000
    + b"}]}]}",
    b"- {a:{b: 1}}",
    b'{"headers": [], "values": [{"x": [], "y": ["ab"]}]}',  # dict("ab"): ValueError
    b"",
)


def _mapping_options() -> st.SearchStrategy[tuple[object, str, object]]:
    return st.tuples(
        st.one_of(st.none(), st.integers(-3, 5), st.text(max_size=20)),
        st.sampled_from(("total", "quadrature", "stat", "sys", "", "\x00", "sys,detector")),
        st.one_of(
            st.none(),
            st.dictionaries(st.text(max_size=10), st.one_of(st.text(max_size=10), st.integers())),
            st.lists(st.text(max_size=5), max_size=2),  # not a mapping: odrun.yaml unchecked
        ),
    )


def _bins(data: bytes | str, fmt: str, options: tuple[object, str, object]) -> None:
    try:
        table = parse_table(data, "t", fmt)
        dependent, errors, qualifiers = options
        bins = to_bins(table, dependent, errors, qualifiers)  # type: ignore[arg-type]
    except OdrunError:
        return
    assert len(bins.edges) == len(bins.values) + 1
    assert all(math.isfinite(x) and x >= 0 for x in (*bins.down, *bins.up))
    assert all(a < b for a, b in zip(bins.edges, bins.edges[1:], strict=False))


@given(
    name=choices,
    data=st.data(),
    as_json=st.booleans(),
    options=_mapping_options(),
)
def test_mutated_tables_give_bins_or_a_hepdata_error(
    name: str, data: st.DataObject, as_json: bool, options: tuple[object, str, object]
) -> None:
    doc = data.draw(fuzzing.mutated(TABLES[name]))
    if as_json:
        text: bytes | str = fuzzing.dumps(doc)
    else:
        try:
            text = yaml.safe_dump(doc, allow_unicode=True)
        except (yaml.YAMLError, ValueError, OverflowError, RecursionError):
            return
    _bins(text, "json" if as_json else "yaml", options)


@given(
    raw=st.one_of(st.sampled_from(HOSTILE), st.binary(max_size=300)),
    fmt=st.sampled_from(("yaml", "json")),
)
@example(raw=b"independent_variables: []\ndependent_variables: []", fmt="yaml")
def test_hostile_bytes(raw: bytes, fmt: str) -> None:
    _bins(raw, fmt, (None, "total", None))


@given(text=st.text(max_size=80))
@example(text="hepdata:ins1/" + "x" * 300)
@example(text="ins" + "9" * 5000 + "/t")
def test_references_parse_or_are_refused(text: str) -> None:
    with contextlib.suppress(OdrunError):
        ref = parse_ref(text)
        assert ref.inspire.startswith("ins")
        assert ref.table


@given(name=choices, data=st.data(), want=_mapping_options())
def test_a_mutated_local_reference_gives_a_check(
    name: str, data: st.DataObject, want: tuple[object, str, object]
) -> None:
    doc = data.draw(fuzzing.mutated(TABLES[name]))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "ref.json").write_bytes(fuzzing.dumps(doc))
        (root / "out.json").write_text(json.dumps({"edges": [0, 60, 100, 200, 600],
                                                   "counts": [1, 2, 3, 4]}))  # fmt: skip
        dependent, errors, qualifiers = want
        spec = {"reference": "hepdata:ref.json", "errors": errors, "chi2": {"p_min": 0.01}}
        if dependent is not None:
            spec["dependent"] = dependent
        if qualifiers is not None:
            spec["qualifiers"] = qualifiers
        checks = evaluate(root, [{"file": "out.json", "histograms": {"": spec}}], root)
    assert len(checks) == 1


@given(
    option=st.sampled_from(
        (
            {"qualifiers": ["SQRT(S)"]},
            {"qualifiers": "SQRT(S)=7000"},
            {"dependent": 1.5},
            {"dependent": True},
            {"errors": 3},
            {"errors": None},
        )
    )
)
def test_malformed_expectation_options_give_a_failed_check(option: dict[str, object]) -> None:
    """An odrun.yaml that was not validated (evaluate is a library call) may give options of
    any type: a failed check naming the problem, never an exception."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "ref.yaml").write_bytes((DATA / "data3.yaml").read_bytes())
        (root / "out.json").write_text('{"edges": [0, 60, 100, 200, 600], "counts": [1, 2, 3, 4]}')
        spec = {"reference": "hepdata:ref.yaml", "chi2": {"p_min": 0.01}, **option}
        (check,) = evaluate(root, [{"file": "out.json", "histograms": {"": spec}}], root)
    assert not check.ok
