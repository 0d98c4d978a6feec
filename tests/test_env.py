"""odrun env: the environment a record needs and the catalog image that provides it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from odrun.environments import load_catalog
from odrun.specs import load_spec

REPO = Path(__file__).resolve().parent.parent


def env_json(odrun, portal, target: str) -> dict:
    result = odrun("--portal", portal.url, "env", target, "--json")
    assert result.code == 0, result.err
    doc = result.json()
    jsonschema.validate(doc, load_spec("env.schema.json"))
    return doc


@pytest.mark.parametrize(
    ("recid", "image", "match"),
    [
        ("1", "cmssw-opendata-4_2_8", "release CMSSW_4_2_8"),  # CMS 2010 AOD
        ("16", "cmssw-opendata-5_3_32", "release CMSSW_5_3_32"),  # CMS 2011 AOD
        ("6004", "cmssw-opendata-5_3_32", "release CMSSW_5_3_32"),  # CMS 2012 AOD
        ("24119", "cmssw-opendata-7_6_7", "release CMSSW_7_6_7"),  # CMS 2015 MiniAOD
        ("30595", "cmssw-opendata-10_6_30", "release CMSSW_10_6_30"),  # CMS 2016 UL
        ("5500", "cmssw-opendata-5_3_32", "release CMSSW_5_3_32"),  # software record
        ("12360", "root-analysis", "release ROOT 6.22 or later"),
        ("30522", "root-analysis", "container image gitlab-registry.cern.ch/cms-cloud/python-vnc"),
        ("12341", "root-analysis", "title (NanoAOD)"),  # NanoAOD, no system_details
        ("93921", "root-analysis", "title (ntuple)"),  # ATLAS ntuples
        ("93945", "root-analysis", "title (Ntuple)"),  # LHCb ntuples
        ("80000", "root-analysis", "title (PHYSLITE)"),  # ATLAS PHYSLITE
        # a software record naming its release only in the title
        ("221", "cmssw-opendata-5_3_32", "release CMSSW_5_3_32 (from the title)"),
        ("15005", "root-analysis", "file format (root)"),  # ATLAS 13 TeV 4-lepton ROOT files
        ("1801", "cmssw-opendata-5_3_32", "experiment and year (CMS 2011)"),  # 2011 conditions
    ],
)
def test_env_picks_the_image(odrun, portal, recid: str, image: str, match: str) -> None:
    doc = env_json(odrun, portal, recid)
    assert doc["recid"] == recid
    assert doc["image"]["name"] == image
    assert doc["match"] == match
    assert doc["build"] == f"images/build.sh {image}"
    assert doc["image"]["tag"] in doc["run"]


def test_cms_aod_needs_the_conditions_repository(odrun, portal) -> None:
    doc = env_json(odrun, portal, "10.7483/OPENDATA.CMS.A342.9982")  # record 1, by DOI
    assert doc["declared"]["release"] == "CMSSW_4_2_8"
    assert doc["declared"]["global_tag"] == "FT_R_42_V10A::All"
    assert doc["cvmfs"] == ["cms-opendata-conddb.cern.ch"]
    assert (
        "-v /cvmfs/cms-opendata-conddb.cern.ch:/cvmfs/cms-opendata-conddb.cern.ch:ro"
        in (doc["run"])
    )
    notes = " ".join(doc["notes"])
    assert "moving tag" in notes  # the record names ...:latest images
    assert "FT_R_42_V10A::All" in notes


def test_environment_record_is_named(odrun, portal) -> None:
    doc = env_json(odrun, portal, "5500")  # system_details.recid: 252, the CMS VM record
    assert "the record describes its environment in record 252 (`odrun info 252`)" in doc["notes"]


def test_nanoaod_needs_no_cvmfs(odrun, portal) -> None:
    doc = env_json(odrun, portal, "30522")
    assert doc["cvmfs"] == []
    assert doc["image"]["base"] == "docker.io/rootproject/root:6.32.02-ubuntu24.04"


def test_pinned_base_is_reported(odrun, portal, tmp_path: Path) -> None:
    catalog = copy_catalog(tmp_path)
    lock = json.loads((tmp_path / "catalog.lock.json").read_text())
    digest = "sha256:" + "ab" * 32
    lock["images"]["cmssw-opendata-5_3_32"]["base_digest"] = digest
    base = lock["images"]["cmssw-opendata-5_3_32"]["base"]
    lock["images"]["cmssw-opendata-5_3_32"]["base_ref"] = f"{base}@{digest}"
    (tmp_path / "catalog.lock.json").write_text(json.dumps(lock))
    result = odrun("--portal", portal.url, "env", "6004", "--catalog", str(catalog), "--json")
    assert result.code == 0, result.err
    image = result.json()["image"]
    assert image["base_ref"] == f"{base}@{digest}"
    assert not any("not yet pinned" in n for n in result.json()["notes"])
    # unpinned in the shipped lock: said plainly
    shipped = env_json(odrun, portal, "6004")
    assert shipped["image"]["base_ref"] is None
    assert any("not yet pinned" in n for n in shipped["notes"])


def test_human_output(odrun, portal, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # one line per row
    result = odrun("--portal", portal.url, "env", "24119")
    assert result.code == 0, result.err
    assert "cmssw-opendata-7_6_7" in result.out
    assert "CMSSW_7_6_7" in result.out
    assert "/cvmfs/cms-opendata-conddb.cern.ch" in result.out
    assert "[digest not yet resolved]" in result.out  # escaped, not eaten as rich markup


def test_condition_data_needs_the_conditions_repository(odrun, portal) -> None:
    doc = env_json(odrun, portal, "1801")
    assert doc["cvmfs"] == ["cms-opendata-conddb.cern.ch"]


@pytest.mark.parametrize("recid", ["10100", "26999", "28040", "5201"])
def test_no_environment_needed_is_not_an_error(odrun, portal, recid: str) -> None:
    """OPERA, JADE, an LHCb DST, a derived CMS CSV: nothing declared, nothing in the catalog."""
    doc = env_json(odrun, portal, recid)
    assert doc["image"] is None
    assert doc["declared"] is None
    assert doc["run"] is None
    (note,) = doc["notes"]
    assert f"record {recid}" in note
    assert "declares no environment" in note
    assert f"odrun fetch {recid}" in note
    human = odrun("--portal", portal.url, "env", recid)
    assert human.code == 0, human.err
    (line,) = human.out.strip().splitlines()
    assert line == note


def test_unknown_record(odrun, portal) -> None:
    for args in (("99999999",), ("99999999", "--json")):
        result = odrun("--portal", portal.url, "env", *args)
        assert result.code == 3
        assert result.out == ""
        assert "Traceback" not in result.err
        assert "99999999" in result.err


def copy_catalog(tmp_path: Path) -> Path:
    for name in ("catalog.yaml", "catalog.lock.json"):
        shutil.copy(REPO / "images" / name, tmp_path / name)
    return tmp_path / "catalog.yaml"


def test_stale_lock_is_a_configuration_error(odrun, portal, tmp_path: Path) -> None:
    catalog = copy_catalog(tmp_path)
    catalog.write_text(catalog.read_text().replace("CMSSW_5_3_32, SCRAM_ARCH", "CMSSW_5_3_33, A"))
    result = odrun("--portal", portal.url, "env", "6004", "--catalog", str(catalog))
    assert result.code == 8
    assert "catalog.lock.json is out of date for image 'cmssw-opendata-5_3_32'" in result.err
    assert "python3 images/lock.py" in result.err


def test_invalid_catalog_names_the_place(odrun, portal, tmp_path: Path) -> None:
    catalog = copy_catalog(tmp_path)
    text = catalog.read_text().replace(
        "base: docker.io/library/debian:bookworm-slim", "base: docker.io/library/debian:latest", 1
    )
    catalog.write_text(text)
    result = odrun("--portal", portal.url, "env", "6004", "--catalog", str(catalog))
    assert result.code == 8
    assert "images/0/base" in result.err
    assert "catalog.schema.json" in result.err


def test_catalog_loads_with_every_image_locked() -> None:
    catalog = load_catalog(REPO / "images" / "catalog.yaml")
    names = [image.name for image in catalog.images]
    assert names[:3] == ["odrun", "root-analysis", "cvmfs"]
    for image in catalog.images:
        assert (REPO / image.path / "Containerfile").is_file()
        if image.base_digest:
            assert image.base_ref == f"{image.base}@{image.base_digest}"
    assert catalog.get("cvmfs").cvmfs[:3] == (
        "cms.cern.ch",
        "cms-opendata-conddb.cern.ch",
        "sft.cern.ch",
    )


def test_declared_environment_the_catalog_lacks(odrun, fresh_portal) -> None:
    import portal_server

    source = portal_server.load_source("6004")
    source["system_details"]["release"] = "CMSSW_9_9_9"
    source["system_details"]["container_images"] = [{"name": "docker.io/example/cmssw:v1"}]
    source["date_created"] = ["1999"]
    fresh_portal.overrides["6004"] = portal_server.to_api(source, fresh_portal.url)
    result = odrun("--portal", fresh_portal.url, "env", "6004", "--json")
    assert result.code == 0, result.err
    out = result.json()
    jsonschema.validate(out, load_spec("env.schema.json"))
    assert out["image"] is None
    assert out["run"] is None
    assert out["declared"]["release"] == "CMSSW_9_9_9"
    assert any("no image in the catalog provides this environment" in n for n in out["notes"])


@pytest.mark.parametrize(
    "name", ["catalog.schema.json", "catalog-lock.schema.json", "env.schema.json"]
)
def test_schemas_are_valid(name: str) -> None:
    jsonschema.Draft202012Validator.check_schema(load_spec(name))
