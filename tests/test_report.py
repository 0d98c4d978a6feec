"""odrun report: the self-contained HTML report every run writes (report.html).

The demo's report is opened in headless Chromium with the network off (tests/headless.py):
the verdict, every check row and every plot must be there and visible, with no console
error and no request; the plots' screenshots must not be blank. The harness is shown to
catch a JavaScript error, a network request and a blank plot. Every string of a run
folder is untrusted: no string in run.json may put markup into the report.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import odrun.report as report_pkg
from odrun.report import REPORT_HTML, build_report, write_report
from odrun.report import plots as plots_mod

from headless import open_page

VISIBLE_JS = """
(() => {
  const shown = (el) => {
    const r = el.getBoundingClientRect(), s = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none'
      && parseFloat(s.opacity) > 0;
  };
  const box = (el) => { const r = el.getBoundingClientRect();
    return {x: r.x + scrollX, y: r.y + scrollY, width: r.width, height: r.height}; };
  const verdict = document.querySelector('#verdict');
  return {
    verdict: verdict ? {text: verdict.innerText, shown: shown(verdict)} : null,
    checks: [...document.querySelectorAll('tr.check')].map(
      (tr) => ({name: tr.dataset.check, shown: shown(tr)})),
    plots: [...document.querySelectorAll('figure.plot img')].map((img) => ({
      name: img.closest('figure').dataset.plot, shown: shown(img),
      loaded: img.complete && img.naturalWidth > 0, box: box(img)})),
  };
})()
"""


def _pixels(png: bytes) -> Any:
    import matplotlib.image

    return matplotlib.image.imread(io.BytesIO(png), format="png")


def ink(png: bytes) -> tuple[float, int]:
    """The fraction of pixels that are not near-white, and the number of distinct colours."""
    image = _pixels(png)[..., :3]
    dark = (image.min(axis=2) < 0.9).mean()
    colours = len({tuple(px) for px in (image.reshape(-1, 3) * 16).astype(int).tolist()})
    return float(dark), colours


def assert_not_blank(png: bytes, what: str) -> None:
    dark, colours = ink(png)
    assert dark > 0.02, f"{what}: only {dark:.1%} of its pixels are drawn (blank?)"
    assert colours >= 4, f"{what}: {colours} colours (blank?)"


def run_demo(odrun: Any, demo: Path, *extra: str) -> dict[str, Any]:
    res = odrun("run", str(demo), "--runtime", "host", "--json", *extra)
    assert res.code == 0, res.err
    doc: dict[str, Any] = res.json()
    return doc


# --- the demo's report, in a real browser, offline -------------------------------------


def test_demo_report_in_headless_chromium(odrun: Any, demo: Path, tmp_path: Path) -> None:
    doc = run_demo(odrun, demo)
    run_dir = Path(doc["run_dir"])
    report = run_dir / REPORT_HTML
    assert report.is_file(), "odrun run wrote no report.html"
    html = report.read_text()
    assert_self_contained(html)
    names = [c["name"] for c in doc["checks"]]
    assert len(names) >= 6
    with open_page(report, width=1200, height=1000) as page:
        seen = page.evaluate(VISIBLE_JS)
        assert page.errors == [], page.errors
        fetched = [r for r in page.requests if not r.startswith("data:")]
        assert fetched == [report.resolve().as_uri()], fetched
        assert seen["verdict"]["shown"]
        assert seen["verdict"]["text"].startswith("PASS")
        assert f"{len(names)} of {len(names)} checks hold" in seen["verdict"]["text"]
        assert [c["name"] for c in seen["checks"]] == names
        assert all(c["shown"] for c in seen["checks"]), seen["checks"]
        histograms = [c["name"] for c in doc["checks"] if c["data"]["kind"] == "histogram"]
        assert histograms == ["mass spectrum bins", "mass spectrum (HEPData table) bins"]
        assert [p["name"] for p in seen["plots"]] == histograms
        for plot in seen["plots"]:
            assert plot["shown"], plot
            assert plot["loaded"], plot
            assert plot["box"]["width"] > 300, plot
            assert plot["box"]["height"] > 200, plot
            assert_not_blank(page.screenshot(plot["box"]), f"plot {plot['name']}")
        (tmp_path / "report.png").write_bytes(page.screenshot())
    assert_not_blank((tmp_path / "report.png").read_bytes(), "the whole page")
    assert "χ²/ndf = " in html


def test_the_harness_catches_a_script_error_a_request_and_a_blank_plot(tmp_path: Path) -> None:
    """The browser checks above can fail: a deliberate JS error, a fetch over the network
    and a blank image are each caught."""
    page_file = tmp_path / "bad.html"
    page_file.write_text(
        "<html><body><p>x</p><img src='http://example.org/logo.png'>"
        "<script>console.log('fine'); notAFunction();</script></body></html>"
    )
    with open_page(page_file) as page:
        assert any("notAFunction" in e for e in page.errors), page.errors
        assert "http://example.org/logo.png" in page.requests
    blank = tmp_path / "blank.html"
    blank.write_text("<html><body style='background:#fff'><div style='height:400px'></div>")
    with open_page(blank) as page:
        assert page.errors == []
        shot = page.screenshot({"x": 0, "y": 0, "width": 300, "height": 300})
    with pytest.raises(AssertionError, match="blank"):
        assert_not_blank(shot, "a white area")


# --- what the report holds ---------------------------------------------------------------


def assert_self_contained(html: str) -> None:
    """No resource from anywhere but the file itself: src only data: URIs, links only
    https://doi.org/ anchors, no script at all."""
    assert "<script" not in html.lower()
    for attr, value in re.findall(
        r"""\b(src|href|action|poster|srcset)\s*=\s*["']([^"']*)""", html
    ):
        if attr == "href":
            assert value.startswith(("https://doi.org/", "#")), value
        else:
            assert value.startswith("data:"), value[:80]
    assert "url(" not in html  # no CSS resource either
    assert "@import" not in html


def fake_run(tmp_path: Path, **overrides: Any) -> Path:
    """A run folder with a run.json of every section (and any field overridden)."""
    run_dir = tmp_path / "run"
    (run_dir / "workspace" / "results").mkdir(parents=True, exist_ok=True)
    (run_dir / "logs").mkdir(exist_ok=True)
    (run_dir / "logs" / "01-fit.log").write_text("fitting\nTraceback: boom\n")
    doc: dict[str, Any] = {
        "analysis": "z-peak",
        "status": "finished",
        "started": "2026-01-01T10:00:00+00:00",
        "ended": "2026-01-01T10:01:05+00:00",
        "runtime": "host",
        "runtime_description": "host (fallback from podman: not installed)",
        "runtime_fallback": {"from": "podman", "reason": "not installed"},
        "records": [{"recid": "5200", "doi": "10.7483/OPENDATA.CMS.A342.9982"}],
        "steps": [
            {
                "name": "fit",
                "command": "python fit.py",
                "exit_code": 0,
                "started": "2026-01-01T10:00:00+00:00",
                "ended": "2026-01-01T10:00:42+00:00",
                "log": "/elsewhere/logs/01-fit.log",
            }
        ],
        "outputs": [{"path": "results/fit.json", "size": 12, "checksum": "adler32:01"}],
        "checks": [
            {
                "name": "fit mass",
                "ok": True,
                "detail": "91.2 vs expected 91.19 ± 0.1",
                "data": {"kind": "value", "value": 91.2, "expected": 91.19, "tolerance": 0.1},
            },
            {
                "name": "fit width",
                "ok": False,
                "detail": "3 vs expected 2.5 ± 0.1",
                "data": {"kind": "value", "value": 3.0, "expected": 2.5, "tolerance": 0.1},
            },
        ],
        "verified": False,
        "error": None,
    }
    doc.update(overrides)
    (run_dir / "run.json").write_text(json.dumps(doc))
    (run_dir / "odrun.lock").write_text(
        json.dumps(
            {
                "tools": {"bash": "5.2"},
                "cvmfs": {"cms.cern.ch": {"revision": 4242}},
                "images": [{"name": "python:3.11", "digest": "sha256:ab"}],
            }
        )
    )
    return run_dir


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_report_tables_verdict_environment_and_doi(tmp_path: Path) -> None:
    html = build_report(fake_run(tmp_path))
    assert_self_contained(html)
    text = text_of(html)
    assert "FAIL" in text
    assert "1 of 2 checks hold" in text
    assert "took 1 min 5 s" in text
    assert "fell back from podman: not installed" in text
    assert '<a href="https://doi.org/10.7483/OPENDATA.CMS.A342.9982"' in html
    assert "cms.cern.ch" in text
    assert "4242" in text
    assert "sha256:ab" in text
    assert "python:3.11" in text
    assert "bash" in text
    assert "5.2" in text
    assert "91.19" in text
    assert "0.1" in text
    assert "42 s" in text  # the step's duration


def test_a_failed_run_has_a_report_that_says_why(odrun: Any, demo: Path) -> None:
    (demo / "analysis" / "dimuon.py").write_text(
        "import sys\nprint('bad input line 3')\nsys.exit(3)\n"
    )
    res = odrun("run", str(demo), "--runtime", "host")
    assert res.code == 7, res.err
    run_dir = next((demo / ".odrun" / "runs").iterdir())
    text = text_of((run_dir / REPORT_HTML).read_text())
    assert "RUN FAILED" in text
    assert "bad input line 3" in text  # the failed step's log
    assert "exit code" in text


def test_without_matplotlib_the_report_has_its_tables_and_says_how_to_get_plots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib: ImportError
    assert not plots_mod.have_matplotlib()
    run_dir = fake_run(tmp_path, checks=[histogram_check()])
    html = build_report(run_dir)
    assert "pip install &#39;odrun[report]&#39;" in html
    assert 'data-check="spectrum bins"' in html
    assert 'id="plot-hint"' in html
    assert 'class="plot"' not in html


def histogram_check(ok: bool = True) -> dict[str, Any]:
    edges = [70 + 5 * i for i in range(9)]
    counts = [10, 40, 120, 400, 380, 110, 35, 12]
    return {
        "name": "spectrum bins",
        "ok": ok,
        "detail": "compatible",
        "data": {
            "kind": "histogram",
            "key": "bins",
            "label": "m [GeV]",
            "reference": "ref.json#spectrum",
            "edges": edges,
            "counts": counts,
            "errors": [c**0.5 for c in counts],
            "reference_counts": counts,
            "reference_errors": [1.0] * 8,
            "pulls": [0.1] * 8,
            "statistic": 3.2,
            "ndf": 7,
            "p_value": 0.87,
            "p_min": 0.01,
        },
    }


def test_a_run_json_from_before_check_data_still_has_its_rows(tmp_path: Path) -> None:
    checks = [{"name": "old check", "ok": True, "detail": "1 vs expected 1 ± 0"},
              {"name": "old histogram", "ok": False, "detail": "3 of 8 bins differ"}]  # fmt: skip
    html = build_report(fake_run(tmp_path, checks=checks, verified=False))
    assert 'data-check="old check"' in html
    assert 'data-check="old histogram"' in html
    assert "3 of 8 bins differ" in html
    assert 'class="plot"' not in html


def test_a_histogram_check_is_plotted_with_its_statistic(tmp_path: Path) -> None:
    html = build_report(fake_run(tmp_path, checks=[histogram_check()]))
    assert_self_contained(html)
    assert html.count('class="plot"') == 1
    assert "data:image/svg+xml;base64," in html
    assert "χ²/ndf = 3.2 / 7, p = 0.87" in html  # caption; the plot carries it too


def test_a_plot_that_cannot_be_drawn_is_said_and_the_rest_renders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_: Any) -> str:
        raise ValueError("no room")

    monkeypatch.setattr(plots_mod, "histogram_svg", broken)
    html = build_report(fake_run(tmp_path, checks=[histogram_check()]))
    assert "could not be drawn: no room" in html
    assert 'data-check="spectrum bins"' in html


def test_run_json_saves_the_numbers_behind_each_check(odrun: Any, demo: Path) -> None:
    doc = run_demo(odrun, demo)
    data = {c["name"]: c["data"] for c in doc["checks"]}
    mass = data["Z peak fit mass"]
    assert mass["kind"] == "value"
    assert mass["expected"] == 91.1876
    assert mass["tolerance"] > 0
    assert mass["sigma"] > 0
    assert isinstance(mass["pull"], float)
    hist = data["mass spectrum bins"]
    assert hist["kind"] == "histogram"
    assert hist["label"] == "m(μμ) [GeV]"
    assert len(hist["edges"]) == len(hist["counts"]) + 1 == len(hist["reference_counts"]) + 1
    assert hist["ndf"] == 79
    assert 0 < hist["p_value"] <= 1
    assert hist["statistic"] > 0
    # the reference as compared: normalised to the output's total
    assert abs(sum(hist["reference_counts"]) - sum(hist["counts"])) < 1e-6 * sum(hist["counts"])
    assert data["plot"] == {"kind": "present", "size": data["plot"]["size"]}


def test_odrun_report_cli_writes_where_asked(odrun: Any, demo: Path, tmp_path: Path) -> None:
    run_demo(odrun, demo)
    out = tmp_path / "out" / "z.html"
    res = odrun("report", str(demo), "-o", str(out))
    assert res.code == 0, res.err
    assert str(out) in res.out
    assert "PASS" in out.read_text()
    again = odrun("report", str(demo), "--against", str(demo))
    assert again.code == 0, again.err
    run_dir = next((demo / ".odrun" / "runs").iterdir())
    assert "Compared with run" in (run_dir / REPORT_HTML).read_text()


def test_odrun_report_of_no_run_is_a_usage_error(odrun: Any, tmp_path: Path) -> None:
    res = odrun("report", str(tmp_path))
    assert res.code == 2
    assert "neither a run folder nor an analysis that has run" in res.err
    assert "Traceback" not in res.err
    assert len(res.err.strip().splitlines()) == 1


def test_a_report_that_fails_never_fails_the_run(
    odrun: Any, demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any, **__: Any) -> str:
        raise KeyError("template bug")

    monkeypatch.setattr(report_pkg, "build_report", broken)
    res = odrun("run", str(demo), "--runtime", "host", "--verify")
    assert res.code == 0, res.err
    assert "warning: no report.html" in res.err
    assert "template bug" in res.err
    run_dir = next((demo / ".odrun" / "runs").iterdir())
    assert not (run_dir / REPORT_HTML).exists()
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".report.html")]


def test_python_api_writes_the_report(demo: Path) -> None:
    import odrun

    settings = odrun.Settings.load({"offline": False})
    result = odrun.run(demo, odrun.RunOptions(runtime="host"), settings=settings)
    assert (result.run_dir / REPORT_HTML).is_file()
    path = odrun.write_report(result.run_dir, result.run_dir / "again.html")
    assert path.read_text().count('class="check') == len(result.checks)


def test_an_output_link_to_a_host_file_is_not_embedded(tmp_path: Path) -> None:
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG secret")
    run_dir = fake_run(tmp_path, outputs=[{"path": "results/leak.png", "size": 11}])
    (run_dir / "workspace" / "results" / "leak.png").symlink_to(secret)
    html = write_report(run_dir).read_text()
    assert "data:image/png" not in html


# --- untrusted strings ------------------------------------------------------------------


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [(k, v or "") for k, v in attrs]


def structure(html: str) -> Tags:
    parser = Tags()
    parser.feed(html)
    parser.close()
    return parser


texts = st.text(min_size=1, max_size=40).filter(lambda s: s.strip() != "")
markup = st.sampled_from(
    [
        "<script>alert(1)</script>",
        '"><img src=x onerror=alert(1)>',
        "</pre><b>x</b>",
        "javascript:alert(1)",
        "{{ 7*7 }}",
        "&lt;i&gt;",
        "' onmouseover='x",
        "<!--",
        "]]><svg onload=alert(1)>",
    ]
)
untrusted_text = st.one_of(texts, markup, st.tuples(texts, markup).map("".join))


def hostile_run(tmp_path: Path, s: list[str]) -> Path:
    shutil.rmtree(tmp_path / "run", ignore_errors=True)
    return fake_run(
        tmp_path,
        analysis=s[0],
        error=s[1],
        runtime_description=s[2],
        runtime_fallback={"from": s[3], "reason": s[4]},
        records=[{"recid": s[5], "doi": "10.1234/" + ("".join(s[6].split()) or "x")}],
        steps=[{"name": s[7], "command": s[8], "exit_code": 1, "log": s[9]}],
        outputs=[{"path": s[10], "size": 1, "checksum": s[11]}],
        checks=[
            {
                "name": s[12],
                "ok": False,
                "detail": s[13],
                "data": {"kind": "histogram", "key": s[14], "reference": s[15]},
            },
            {
                "name": s[16],
                "ok": True,
                "detail": s[17],
                "data": {"kind": "value", "value": s[18], "expected": s[19]},
            },
        ],
    )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(strings=st.lists(untrusted_text, min_size=20, max_size=20))
def test_no_string_in_run_json_puts_markup_into_the_report(
    tmp_path: Path, strings: list[str]
) -> None:
    html = build_report(hostile_run(tmp_path, strings))
    # the same document with harmless strings has the same elements: nothing was added
    baseline = build_report(hostile_run(tmp_path, [f"s{i}" for i in range(20)]))
    got, want = structure(html), structure(baseline)
    assert got.tags == want.tags
    assert [k for k, _ in got.attrs] == [k for k, _ in want.attrs]
    assert not any(k.startswith("on") for k, _ in got.attrs)
    for key, value in got.attrs:
        if key == "href":
            assert value.startswith("https://doi.org/10.1234/")
            assert not re.search(r"[\s\"'<>]", value), value
    assert_self_contained(html)


def test_bin_by_bin_and_failed_histogram_checks_keep_what_they_can(tmp_path: Path) -> None:
    from odrun.workflow.expect import evaluate

    hist = {"edges": [0, 1, 2, 3], "counts": [4, 9, 16]}
    (tmp_path / "out.json").write_text(json.dumps({"h": hist}))
    (tmp_path / "ref.json").write_text(json.dumps({"h": hist | {"counts": [4, 9, 25]}}))
    (tmp_path / "odd.json").write_text(json.dumps({"h": {"edges": [0, 1], "counts": [1]}}))
    close_spec = {"h": {"reference": "ref.json", "pull": 3}}
    odd_spec = {"h": {"reference": "odd.json"}}
    checks = evaluate(
        tmp_path,
        [
            {"name": "close", "file": "out.json", "histograms": close_spec},
            {"name": "odd", "file": "out.json", "histograms": odd_spec},
        ],
    )
    close, odd = (c.to_dict() for c in checks)
    assert close["ok"] is True
    assert close["data"]["tolerance"] == {"abs": 0.0, "rel": 0.0, "pull": 3.0}
    assert close["data"]["pulls"][:2] == [0.0, 0.0]
    assert close["data"]["pulls"][2] == pytest.approx(-9 / (16 + 25) ** 0.5)
    assert "statistic" not in close["data"]
    assert odd["ok"] is False
    assert odd["data"]["kind"] == "histogram"
    assert "edges" not in odd["data"]  # the binning differs: nothing to plot
    run_dir = fake_run(tmp_path / "r", checks=[close, odd])
    html = build_report(run_dir)
    assert html.count('class="plot"') == 1
    assert "bin by bin: pull 3" in html


def test_report_against_another_run_shows_what_differs(odrun: Any, demo: Path) -> None:
    """``--against`` adds ``odrun diff``'s findings: the changed parameter and the outputs
    that differ, by how much."""
    first = Path(run_demo(odrun, demo)["run_dir"])
    spec = demo / "reana.yaml"
    spec.write_text(spec.read_text().replace("nbins: 80", "nbins: 60"))
    res = odrun("run", str(demo), "--runtime", "host", "--json")  # may fail its checks
    second = Path(res.json()["run_dir"])
    out = odrun("report", str(second), "--against", str(first))
    assert out.code == 0, out.err
    html = (second / REPORT_HTML).read_text()
    assert f"What differs from run {first.name}: outputs differ" in html
    assert "nbins" in html
    assert "80" in html
    assert "60" in html


# --- KS checks: both empirical CDFs ----------------------------------------------------


def ks_check(tmp_path: Path, shift: float) -> dict[str, Any]:
    """A real KS check (odrun.workflow.expect.evaluate) of a sample against a reference
    drawn from the same normal distribution, the sample shifted by ``shift``."""
    import random

    from odrun.workflow.expect import evaluate

    rng = random.Random(7)
    (tmp_path / "out").mkdir(parents=True, exist_ok=True)
    rows = "\n".join(f"{rng.gauss(shift, 1):.6f}" for _ in range(800))
    (tmp_path / "out" / "sample.csv").write_text("mass\n" + rows + "\n")
    ref = "\n".join(f"{rng.gauss(0, 1):.6f}" for _ in range(3000))
    (tmp_path / "ref.csv").write_text("mass\n" + ref + "\n")
    spec = {"column": "mass", "reference": "ref.csv", "p_min": 0.01}
    (check,) = evaluate(tmp_path, [{"name": "masses", "file": "out/sample.csv", "ks": spec}])
    return check.to_dict()


@pytest.mark.parametrize("shift", [0.0, 0.4])
def test_a_ks_check_is_plotted_as_its_two_cdfs(tmp_path: Path, shift: float) -> None:
    check = ks_check(tmp_path / "a", shift)
    assert check["ok"] is (shift == 0.0)
    cdf = check["data"]["cdf"]
    assert 100 <= len(cdf["x"]) <= 201
    assert cdf["x"] == sorted(cdf["x"])
    assert cdf["sample"][-1] == cdf["reference"][-1] == 1.0
    # the largest distance on the saved grid is the test's D (to the grid's resolution)
    gap = max(abs(a - b) for a, b in zip(cdf["sample"], cdf["reference"], strict=True))
    assert gap == pytest.approx(check["data"]["statistic"], abs=0.02)
    html = build_report(fake_run(tmp_path, checks=[check], verified=shift == 0.0))
    assert_self_contained(html)
    assert html.count('class="plot"') == 1
    assert 'data-plot="masses ks mass"' in html
    assert "D = " in html
    (uri,) = re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', html)
    svg = __import__("base64").b64decode(uri).decode()
    assert svg.count("<path") > 20  # two step lines, axes, text as paths


@pytest.mark.parametrize(
    "cdf",
    [
        None,
        {"x": [1, 2], "sample": [0.5], "reference": [0.5, 1]},  # lengths differ
        {"x": [1, 2], "sample": [0.5, 2.0], "reference": [0.5, 1]},  # not a fraction
        {"x": [1, float("nan")], "sample": [0.5, 1], "reference": [0.5, 1]},
        {"x": list(range(5000)), "sample": [1] * 5000, "reference": [1] * 5000},  # too many
        {"x": "12", "sample": [], "reference": []},
    ],
)
def test_a_malformed_ks_plot_data_gives_no_plot_and_no_error(tmp_path: Path, cdf: Any) -> None:
    check = {"name": "ks", "ok": True, "detail": "compatible",
             "data": {"kind": "ks", "statistic": 0.1, "p_value": 0.5, "cdf": cdf}}  # fmt: skip
    html = build_report(fake_run(tmp_path, checks=[check]))
    assert 'data-check="ks"' in html
    assert 'class="plot"' not in html
