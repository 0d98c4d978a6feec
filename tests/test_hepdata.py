"""HEPData tables as references: the table format and its mapping to bins (real example
tables from HEPData's repositories), the API client against a loopback stand-in serving
them, expectations that pass and fail end to end, and the lock's pins."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import hepdata_server
import pytest
import yaml

from odrun.errors import (
    ConfigError,
    HepdataError,
    InvalidReferenceError,
    NotFoundError,
    OfflineError,
)
from odrun.hepdata import HepdataClient, load_reference, parse_ref, parse_table, to_bins
from odrun.settings import Settings
from odrun.workflow.histograms import Histogram, Tolerance, compare
from odrun.workflow.stats import chi2_test

DATA = Path(__file__).parent / "data" / "hepdata"


def table(name: str) -> object:
    return parse_table((DATA / name).read_bytes(), name)


@pytest.fixture
def hepdata(monkeypatch: pytest.MonkeyPatch) -> Iterator[hepdata_server.HepdataServer]:
    with hepdata_server.serve() as server:
        monkeypatch.setenv("ODRUN_HEPDATA_URL", server.url)
        yield server


def settings() -> Settings:
    return Settings.load()


# --- the table format and the mapping -------------------------------------------------


def test_symmetric_sources_in_quadrature() -> None:
    bins = to_bins(parse_table((DATA / "data3.yaml").read_bytes(), "data3"))
    assert bins.edges == (0, 60, 100, 200, 600)
    assert bins.values == (7000, 9800, 1600, 80)
    assert bins.up == bins.down
    assert bins.up[0] == pytest.approx(math.sqrt(1100**2 + 79**2 + 15**2))
    assert bins.sources == ("stat", "sys,background", "sys,detector")


def test_one_source_by_label() -> None:
    t = parse_table((DATA / "data3.yaml").read_bytes(), "data3")
    assert to_bins(t, errors="stat").up == (1100, 1600, 490, 60)
    assert to_bins(t, errors="sys,detector").down == (79, 75, 41, 2)
    with pytest.raises(HepdataError, match=r"no error labelled 'syst'.*stat, sys,background"):
        to_bins(t, errors="syst")


def test_unlabelled_single_error_and_dependent_first() -> None:
    bins = to_bins(parse_table((DATA / "d01-x01-y01.yaml").read_bytes(), "belle"))
    assert len(bins.values) == 10
    assert bins.edges[0] == 1.0
    assert bins.edges[-1] == 1.50377
    assert bins.up[0] == pytest.approx(0.1149973)


def test_percent_one_sided_and_qualifiers() -> None:
    t = parse_table((DATA / "dijet_percent_excerpt.yaml").read_bytes(), "dijet")
    with pytest.raises(HepdataError, match="matches 2"):
        to_bins(t)  # two dependent variables of one name: a qualifier must choose
    nominal = to_bins(t, qualifiers={"Correlation assumptions": "Nominal"}, errors="stat")
    assert nominal.up[0] == pytest.approx(0.0073 * 777000)
    sys_nominal = to_bins(t, qualifiers={"Correlation assumptions": "Nominal"}, errors="sys")
    # bin 0: plus '' (no upward error) and minus -3.0%: one-sided
    others = [0.004, 0.001, 0.002, 0.012, 0.009, 0.001]
    up = 777000 * math.sqrt(sum(x * x for x in others))
    down = 777000 * math.sqrt(0.03**2 + sum(x * x for x in others))
    assert sys_nominal.up[0] == pytest.approx(up)
    assert sys_nominal.down[0] == pytest.approx(down)
    stronger = to_bins(t, qualifiers={"Correlation assumptions": "Stronger"})
    by_index = to_bins(t, dependent=1)
    assert stronger == by_index
    assert not stronger.symmetric
    with pytest.raises(HepdataError, match="no index 5"):
        to_bins(t, dependent=5)
    with pytest.raises(HepdataError, match="matches none"):
        to_bins(t, qualifiers={"Correlation assumptions": "Weaker"})


def test_signs_of_plus_and_minus() -> None:
    """``plus``/``minus`` are up/down variations of a source, of either sign: the upward
    error is the largest of them and 0, the downward one minus the smallest."""
    doc = {
        "independent_variables": [{"header": {"name": "x"}, "values": [{"low": 0, "high": 1}]}],
        "dependent_variables": [
            {
                "header": {"name": "y"},
                "values": [
                    {
                        "value": 100,
                        "errors": [
                            {"asymerror": {"plus": "-0.6%", "minus": "0.4%"}, "label": "a"},
                            {"symerror": -2, "label": "b"},
                        ],
                    }
                ],
            }
        ],
    }
    a = to_bins(parse_table(json.dumps(doc), "t", "json"), errors="a")
    assert (a.down[0], a.up[0]) == (pytest.approx(0.6), pytest.approx(0.4))
    b = to_bins(parse_table(json.dumps(doc), "t", "json"), errors="b")
    assert (b.down[0], b.up[0]) == (2, 2)


def test_json_table_is_the_yaml_table() -> None:
    raw = (DATA / "data3.yaml").read_bytes()
    as_json = json.dumps(yaml.safe_load(raw))
    assert to_bins(parse_table(as_json, "t", "json")) == to_bins(parse_table(raw, "t"))


def test_values_that_are_not_bins_are_refused() -> None:
    t = parse_table((DATA / "data1.yaml").read_bytes(), "data1")
    assert t.dependent[0].values[0].errors[0].minus == -3.0
    with pytest.raises(HepdataError, match=r"SQRT.S. value 0 is not a bin"):
        to_bins(t)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["independent_variables"][0]["values"][1].update(low=61), "contiguous"),
        (lambda d: d["dependent_variables"][0]["values"][0].update(value="-"), "no number"),
        (lambda d: d["dependent_variables"][0]["values"].pop(), "numbers of rows"),
        (lambda d: d["independent_variables"].append(d["independent_variables"][0]), "1-D"),
        (lambda d: d.update(dependent_variables=[]), "no dependent"),
        (
            lambda d: d["dependent_variables"][0]["values"][0]["errors"][0].update(symerror="x%"),
            "not a percentage",
        ),
    ],
)
def test_malformed_tables_name_the_problem(mutate: object, message: str) -> None:
    doc = yaml.safe_load((DATA / "data3.yaml").read_bytes())
    mutate(doc)  # type: ignore[operator]
    with pytest.raises(HepdataError, match=message):
        to_bins(parse_table(json.dumps(doc), "t", "json"))


# --- asymmetric errors in the comparisons ---------------------------------------------


def test_asymmetric_reference_error_on_the_side_of_the_deviation() -> None:
    """The reference's upward error counts when the output lies above it, the downward
    one when below: 105 is 0.5 sigma above 100 (+10), 95 is 5 sigma below (-1)."""
    reference = Histogram((0.0, 1.0), (100.0,), (5.5,), ((1.0, 10.0),))
    above = Histogram((0.0, 1.0), (105.0,), (0.0,))
    below = Histogram((0.0, 1.0), (95.0,), (0.0,))
    assert compare(above, reference, Tolerance(pull=1.0)).ok
    assert not compare(below, reference, Tolerance(pull=1.0)).ok
    assert chi2_test(above, reference).chi2 == pytest.approx(0.25)
    assert chi2_test(below, reference).chi2 == pytest.approx(25.0)
    scaled = reference.scaled(2.0)
    assert scaled.asymmetric == ((2.0, 20.0),)


# --- references and the client, against the stand-in ---------------------------------


def test_parse_ref_forms() -> None:
    assert parse_ref("hepdata:ins1234567/Table 3@2") == parse_ref("1234567/Table 3@2")
    ref = parse_ref("hepdata:ins1234567/Table 3")
    assert (ref.inspire, ref.table, ref.version) == ("ins1234567", "Table 3", None)
    assert parse_ref("ins1/a/b@c").table == "a/b@c"
    for bad in ("ins12/", "Table 3", "insX/Table 1", "ins1/Table 1@0", "ins1/T\x00"):
        with pytest.raises(InvalidReferenceError):
            parse_ref(bad)


def test_fetch_current_version_then_cached(hepdata: hepdata_server.HepdataServer) -> None:
    with HepdataClient(settings()) as client:
        got = client.fetch(parse_ref("ins1000001/Table 3"))
    assert got.version == 1
    assert got.data == (DATA / "data3.yaml").read_bytes()
    assert got.sha256 == __import__("hashlib").sha256(got.data).hexdigest()
    assert [p.split("?")[0] for p in hepdata.requests] == [
        "/record/ins1000001",
        "/download/table/ins1000001/Table%203/1/yaml",
    ]
    assert "light=true" in hepdata.requests[0]
    hepdata.requests.clear()
    with HepdataClient(settings()) as client:
        again = client.fetch(parse_ref("ins1000001/Table 3"))
    assert again.sha256 == got.sha256
    assert hepdata.requests == []
    offline = settings().with_(offline=True)
    with HepdataClient(offline) as client:
        assert client.fetch(parse_ref("ins1000001/Table 3@1")).sha256 == got.sha256
        with pytest.raises(OfflineError):
            client.fetch(parse_ref("ins1512299/Table 1"))


def test_corrupt_cached_table_is_downloaded_again(hepdata: hepdata_server.HepdataServer) -> None:
    with HepdataClient(settings()) as client:
        got = client.fetch(parse_ref("ins1512299/Table 1@1"))
    (cached,) = (settings().cache_dir / "hepdata").rglob("*.yaml")
    cached.write_bytes(cached.read_bytes().replace(b"1.320076", b"9.320076"))
    hepdata.requests.clear()
    with HepdataClient(settings()) as client:
        again = client.fetch(parse_ref("ins1512299/Table 1@1"))
    assert again.data == got.data
    assert len(hepdata.requests) == 1


def test_missing_record_table_and_version(hepdata: hepdata_server.HepdataServer) -> None:
    with HepdataClient(settings()) as client:
        with pytest.raises(NotFoundError, match="no record ins999"):
            client.fetch(parse_ref("ins999/Table 1"))
        with pytest.raises(NotFoundError, match="has no table 'Table 9'"):
            client.fetch(parse_ref("ins1000001/Table 9"))
        with pytest.raises(NotFoundError, match="version 7"):
            client.fetch(parse_ref("ins1000001/Table 1@7"))
        assert client.table_names("ins1000001") == ["Table 1", "Table 3", "Table 3 covariance"]


def test_hepdata_url_must_be_https_or_loopback() -> None:
    for url in ("http://www.hepdata.net", "ftp://h/x", "www.hepdata.net"):
        with pytest.raises(ConfigError):
            HepdataClient(Settings(hepdata_url=url))
    HepdataClient(Settings(hepdata_url="http://127.0.0.1:9"))
    HepdataClient(Settings(hepdata_url="https://www.hepdata.net"))


def test_local_reference_confined_to_the_analysis(tmp_path: Path) -> None:
    (tmp_path / "ref").mkdir()
    (tmp_path / "ref" / "t.yaml").write_bytes((DATA / "data3.yaml").read_bytes())
    assert load_reference("hepdata:ref/t.yaml", tmp_path).label == "ref/t.yaml"
    assert load_reference("ref/t.yaml", tmp_path).table.dependent
    with pytest.raises(HepdataError):
        load_reference("hepdata:../t.yaml", tmp_path)
    with pytest.raises(HepdataError, match="not found"):
        load_reference("hepdata:ref/none.yaml", tmp_path)


def test_yaml_libyaml_refuses_but_pyyaml_reads() -> None:
    """HEPData's own example data1.yaml writes ``{asymerror:{plus: 3.1, ...}}``: libyaml
    calls it a syntax error, PyYAML's parser reads it; odrun's loader reads it too."""
    from odrun._yaml import load_yaml

    assert load_yaml("- {a:{b: 1}, c: 2}", "t") == [{"a": {"b": 1}, "c": 2}]
    with pytest.raises(Exception, match="not readable YAML"):
        load_yaml("- {a: [1}", "t")


# --- end to end: odrun run / verify with hepdata: references ---------------------------

DATA3_COUNTS = "[7000, 9800, 1600, 80]"


def analysis(root: Path, reference: str, counts: str = DATA3_COUNTS, extra: str = "") -> Path:
    """One host step writing the histogram of data3.yaml (or ``counts``) to out/h.json,
    compared with ``reference`` by a chi2 test."""
    root.mkdir(parents=True, exist_ok=True)
    doc = json.dumps({"pt": {"edges": [0, 60, 100, 200, 600], "counts": json.loads(counts)}})
    (root / "h.json").write_text(doc)
    (root / "reana.yaml").write_text(
        "version: 0.9.0\ninputs:\n  files: [h.json]\n"
        "workflow:\n  type: serial\n  specification:\n    steps:\n"
        "      - name: make\n        environment: docker.io/library/busybox:1.36\n"
        '        commands: ["mkdir -p out && cp h.json out/h.json"]\n'
        "outputs:\n  files: [out/h.json]\n"
    )
    (root / "odrun.yaml").write_text(
        "version: 1\nexpect:\n  - name: spectrum\n    file: out/h.json\n    histograms:\n"
        f"      pt:\n        reference: {json.dumps(reference)}\n{extra}"
        "        chi2: {p_min: 0.01}\n"
    )
    return root


def test_run_passes_against_a_hepdata_table(
    odrun: object, hepdata: hepdata_server.HepdataServer, tmp_path: Path
) -> None:
    root = analysis(tmp_path / "a", "hepdata:ins1000001/Table 3")
    result = odrun("run", str(root), "--runtime", "host", "--verify")  # type: ignore[operator]
    assert result.code == 0, result.err + result.out
    assert "hepdata:ins1000001/Table 3@1" in result.out
    lock = json.loads((root / "odrun.lock").read_text())
    (pin,) = lock["hepdata"]
    assert pin["reference"] == "ins1000001/Table 3"
    assert pin["version"] == 1
    assert (
        pin["sha256"]
        == __import__("hashlib").sha256((DATA / "data3.yaml").read_bytes()).hexdigest()
    )
    verdict = odrun("verify", str(root), "--json")  # type: ignore[operator]
    assert verdict.code == 0, verdict.err
    (check,) = json.loads(verdict.out)["checks"]
    assert check["ok"]
    assert "compatible" in check["detail"]


@pytest.mark.parametrize(
    ("reference", "counts", "extra", "why"),
    [
        ("hepdata:ins1512299/Table 1", DATA3_COUNTS, "", "vs 10 in the reference"),  # wrong table
        ("hepdata:ins1000001/Table 3", "[14000, 19600, 3200, 160]", "", "INCOMPATIBLE"),
        ("hepdata:ins1000001/Table 3", DATA3_COUNTS, "        errors: syst\n", "labelled"),
        ("hepdata:ins1000001/Table 1", DATA3_COUNTS, "", "not a bin"),
    ],
)
def test_run_fails_against_the_wrong_table(
    odrun: object,
    hepdata: hepdata_server.HepdataServer,
    tmp_path: Path,
    reference: str,
    counts: str,
    extra: str,
    why: str,
) -> None:
    root = analysis(tmp_path / "a", reference, counts, extra)
    result = odrun("run", str(root), "--runtime", "host", "--verify")  # type: ignore[operator]
    assert result.code == 10, result.err + result.out
    assert why in result.out + result.err


def test_locked_run_refuses_a_new_table_version(
    odrun: object, hepdata: hepdata_server.HepdataServer, tmp_path: Path
) -> None:
    root = analysis(tmp_path / "a", "hepdata:ins1000001/Table 3")
    run = odrun  # type: ignore[assignment]
    assert run("run", str(root), "--runtime", "host").code == 0  # type: ignore[operator]
    assert run("run", str(root), "--runtime", "host", "--locked").code == 0  # type: ignore[operator]
    changed = (DATA / "data3.yaml").read_bytes().replace(b"value: 9800", b"value: 9900")
    assert hepdata.publish("ins1000001", {"Table 3": changed}) == 2
    drift = run("--refresh", "run", str(root), "--runtime", "host", "--locked")  # type: ignore[operator]
    assert drift.code == 11, drift.err
    assert "HEPData table ins1000001/Table 3: version 1 -> 2" in drift.err
    # pinned in the reference: the old version, still the locked bytes
    pinned = analysis(tmp_path / "b", "hepdata:ins1000001/Table 3@1")
    assert run("run", str(pinned), "--runtime", "host").code == 0  # type: ignore[operator]
    assert run("--refresh", "run", str(pinned), "--runtime", "host", "--locked").code == 0  # type: ignore[operator]


def test_local_hepdata_table_reference(odrun: object, tmp_path: Path) -> None:
    root = analysis(
        tmp_path / "a",
        "reference/table.yaml",
        extra="        format: hepdata\n        errors: stat\n",
    )
    (root / "reference").mkdir()
    (root / "reference" / "table.yaml").write_bytes((DATA / "data3.yaml").read_bytes())
    result = odrun("run", str(root), "--runtime", "host", "--verify")  # type: ignore[operator]
    assert result.code == 0, result.err + result.out
    assert "hepdata" not in json.loads((root / "odrun.lock").read_text()).get("hepdata", [])


# --- odrun hepdata ---------------------------------------------------------------------


def test_cli_prints_and_exports(
    odrun: object, hepdata: hepdata_server.HepdataServer, tmp_path: Path
) -> None:
    run = odrun  # type: ignore[assignment]
    listed = run("hepdata", "ins1000001")  # type: ignore[operator]
    assert listed.code == 0, listed.err
    assert listed.out.splitlines() == [
        "ins1000001/Table 1",
        "ins1000001/Table 3",
        "ins1000001/Table 3 covariance",
    ]
    shown = run("hepdata", "ins1000001/Table 3")  # type: ignore[operator]
    assert shown.code == 0, shown.err
    assert "version 1" in shown.out
    assert "9800" in shown.out
    as_json = run("hepdata", "ins1000001/Table 3@1", "--json")  # type: ignore[operator]
    doc = json.loads(as_json.out)
    assert doc["version"] == 1
    assert doc["dependent_variables"][0]["values"][1]["value"] == "9800"
    out = tmp_path / "t3.csv"
    written = run("hepdata", "ins1000001/Table 3", "-o", str(out))  # type: ignore[operator]
    assert written.code == 0, written.err
    assert written.out == ""
    lines = out.read_text().splitlines()
    assert lines[0].startswith("Leading dilepton PT [GEV] low,Leading dilepton PT [GEV] high,")
    assert lines[1] == "0,60,,7000,1102.94,1102.94"
    local = run("hepdata", str(DATA / "data1.yaml"), "--csv")  # type: ignore[operator]
    assert local.code == 0, local.err
    assert local.out.splitlines()[1].startswith(",,7000,25.4,")


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (("ins1000001/Table 9",), 3, ("no table 'Table 9'",)),
        (("insX/Table 1",), 2, ("ins<INSPIRE id>/<table name>",)),
        (("ins1000001/Table 3", "--json", "--csv"), 2, ("exclude each other",)),
    ],
)
def test_cli_errors_are_one_line(
    odrun: object,
    hepdata: hepdata_server.HepdataServer,
    args: tuple[str, ...],
    code: int,
    words: tuple[str, ...],
) -> None:
    result = odrun("hepdata", *args)  # type: ignore[operator]
    assert result.code == code, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    for word in words:
        assert word in lines[0]


@pytest.mark.network
def test_live_hepdata(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real hepdata.net answers as the stand-in does: a record (the one HEPData's own
    format page links, ins1419244) lists tables, the first downloads as a table that
    parses, at the record's current version, and the pinned version gives the same bytes."""
    monkeypatch.delenv("ODRUN_HEPDATA_URL", raising=False)
    live = Settings.load()
    assert live.hepdata_url == "https://www.hepdata.net"
    with HepdataClient(live) as client:
        names = client.table_names("ins1419244")
        assert names
        got = client.fetch(parse_ref(f"ins1419244/{names[0]}"))
        assert got.version >= 1
        assert got.table().dependent
    with HepdataClient(live.with_(refresh=True)) as client:
        again = client.fetch(parse_ref(f"ins1419244/{names[0]}@{got.version}"))
    assert again.sha256 == got.sha256


def test_a_run_is_judged_against_the_table_version_it_pinned(
    odrun: object, hepdata: hepdata_server.HepdataServer, tmp_path: Path
) -> None:
    """HEPData publishes a new version after the run: verifying the run (its folder, or the
    analysis) still compares with the version in the run's lock, not the current one."""
    run = odrun  # type: ignore[assignment]
    root = analysis(tmp_path / "a", "hepdata:ins1000001/Table 3")
    assert run("run", str(root), "--runtime", "host", "--verify").code == 0  # type: ignore[operator]
    doubled = (DATA / "data3.yaml").read_bytes()
    for old, new in ((b"7000\n", b"14000\n"), (b"9800", b"19600"), (b"1600\n", b"3200\n")):
        doubled = doubled.replace(b"value: " + old, b"value: " + new)
    assert hepdata.publish("ins1000001", {"Table 3": doubled}) == 2
    (run_dir,) = sorted((root / ".odrun" / "runs").iterdir())
    for target in (run_dir, root):
        verdict = run("--refresh", "verify", str(target))  # type: ignore[operator]
        assert verdict.code == 0, verdict.out + verdict.err
        assert "Table 3@1" in verdict.out
    fresh = run("--refresh", "run", str(root), "--runtime", "host", "--verify")  # type: ignore[operator]
    assert fresh.code == 10, fresh.out
    assert "Table 3@2" in fresh.out


@pytest.mark.parametrize(
    ("reference", "code", "words"),
    [
        ("hepdata:ins1000001/Table 3@1", 0, ()),  # fetched when the analysis runs
        ("hepdata:ins1000001/", 2, ("no valid table name",)),
        ("hepdata:reference/none.yaml", 2, ("reference/none.yaml does not exist",)),
        ("hepdata:../t.yaml", 2, ("inside the analysis",)),
    ],
)
def test_validate_checks_hepdata_references(
    odrun: object, tmp_path: Path, reference: str, code: int, words: tuple[str, ...]
) -> None:
    root = analysis(tmp_path / "a", reference)
    result = odrun("validate", str(root))  # type: ignore[operator]
    assert result.code == code, result.out + result.err
    for word in words:
        assert word in result.out + result.err


# --- HEPData's rendered JSON (what a JSON download from hepdata.net is) ----------------


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("data3.yaml", {}),
        ("data3.yaml", {"errors": "stat"}),
        ("d01-x01-y01.yaml", {}),
        ("dijet_percent_excerpt.yaml", {"qualifiers": {"Correlation assumptions": "Stronger"}}),
        ("dijet_percent_excerpt.yaml", {"dependent": 0}),
    ],
)
def test_rendered_json_maps_as_the_submission_table(name: str, options: dict[str, object]) -> None:
    doc = yaml.safe_load((DATA / name).read_bytes())
    as_rendered = json.dumps(hepdata_server.rendered(doc, "Table 1"))
    want = to_bins(parse_table((DATA / name).read_bytes(), "t"), **options)  # type: ignore[arg-type]
    got = to_bins(parse_table(as_rendered, "t", "json"), **options)  # type: ignore[arg-type]
    assert (got.edges, got.values, got.down, got.up) == (
        want.edges,
        want.values,
        want.down,
        want.up,
    )


def test_json_download_redirects_to_the_rendered_table(
    hepdata: hepdata_server.HepdataServer, tmp_path: Path
) -> None:
    """A table downloaded as JSON from hepdata.net (its rendered form) works as a local
    reference; the stand-in answers the JSON download as the real site does (a redirect)."""
    import httpx

    with httpx.Client(base_url=hepdata.url, follow_redirects=True) as client:
        by_download = client.get("/download/table/ins1000001/Table3/1/json")
        by_query = client.get("/record/ins1000001", params={"format": "json", "table": "Table 3"})
    assert by_download.history[0].status_code == 302
    assert by_download.url.path.startswith("/record/data/")
    assert by_download.json() == by_query.json()
    assert by_download.json()["headers"][0] == {"name": "Leading dilepton PT [GEV]", "colspan": 1}
    (tmp_path / "t3.json").write_bytes(by_download.content)
    opened = load_reference("hepdata:t3.json", tmp_path)
    assert to_bins(opened.table, "10**6 * 1/SIG(fiducial) * D(SIG(fiducial))/DPT").values == (
        7000,
        9800,
        1600,
        80,
    )


def test_a_corrupt_cached_record_is_asked_again(hepdata: hepdata_server.HepdataServer) -> None:
    with HepdataClient(settings()) as client:
        assert client.current_version("ins1000001") == 1
    (cached,) = (settings().cache_dir / "hepdata").rglob("ins1000001.json")
    cached.write_bytes(b"{not json")
    with HepdataClient(settings()) as client:
        assert client.current_version("ins1000001") == 1
    assert json.loads(cached.read_bytes())["version"] == 1
    cached.write_bytes(b"{not json")
    with HepdataClient(settings().with_(offline=True)) as client, pytest.raises(HepdataError):
        client.current_version("ins1000001")


def test_bins_listed_from_high_to_low_are_sorted() -> None:
    doc = yaml.safe_load((DATA / "data3.yaml").read_bytes())
    doc["independent_variables"][0]["values"].reverse()
    doc["dependent_variables"][0]["values"].reverse()
    reversed_bins = to_bins(parse_table(json.dumps(doc), "t", "json"))
    assert reversed_bins == to_bins(parse_table((DATA / "data3.yaml").read_bytes(), "t"))
    doc["independent_variables"][0]["values"][0]["low"] = 250  # a gap at 200-250
    with pytest.raises(HepdataError, match="contiguous"):
        to_bins(parse_table(json.dumps(doc), "t", "json"))


def test_run_pins_and_uses_a_hepdata_covariance_table(
    odrun: object, hepdata: hepdata_server.HepdataServer, tmp_path: Path
) -> None:
    root = analysis(
        tmp_path / "a",
        "hepdata:ins1000001/Table 3",
        extra='        covariance: "hepdata:ins1000001/Table 3 covariance"\n',
    )
    result = odrun("run", str(root), "--runtime", "host", "--verify")  # type: ignore[operator]
    assert result.code == 0, result.err + result.out
    lock = json.loads((root / "odrun.lock").read_text())
    assert [p["reference"] for p in lock["hepdata"]] == [
        "ins1000001/Table 3",
        "ins1000001/Table 3 covariance",
    ]
    verdict = odrun("verify", str(root), "--json")  # type: ignore[operator]
    assert verdict.code == 0, verdict.err
    (check,) = json.loads(verdict.out)["checks"]
    assert "with the reference's covariance matrix" in check["detail"]
