"""Benchmark: is the demo's verdict right in both directions (size and power)?

Runs the real steps of workflows/dimuon-demo (its reana.yaml commands, on the host) on
statistically equivalent inputs - new seeds of its generate_data.py, same number of events -
and counts how many pass odrun's checks of its odrun.yaml (goal: >= 95%, the checks' stated
size is about 2%). Then injects biases into some of the same seeds and counts how many fail
(goal: 100% for biases of >= 10 sigma):

- muon momentum scale +-0.3% and +-1% (every muon's E, px, py, pz, pt scaled),
- a fit that does not iterate (``MAX_ITER = 0`` in a copy of the analysis),
- same-sign instead of opposite-sign pairs (the selection's ``< 0`` flipped),
- 10% of the events dropped at random.

The size of a bias, in sigma, is its mean shift over the paired seeds (biased run minus the
same seed unbiased) of the most affected checked quantity, each in units of its own
standard deviation: mass and width over their fit errors, entries over its binomial error,
the fit's and the spectrum's chi2 as the equivalent normal deviate of the chi2 (Wilson-Hilferty:
((chi2/ndf)^(1/3) - 1 + 2/(9 ndf)) / sqrt(2/(9 ndf)), which does not saturate as a p-value
would).

Run: python benchmarks/verdict_power.py [--seeds 40] [--bias-seeds 8] [--jobs 2]
     [--json verdict_power.json]
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import json
import math
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from odrun.workflow.expect import evaluate
from odrun.workflow.histograms import read_histogram
from odrun.workflow.references import uses_hepdata
from odrun.workflow.spec import load_analysis, substitute
from odrun.workflow.stats import chi2_test

DEMO = Path(__file__).resolve().parent.parent / "workflows" / "dimuon-demo"
FIRST_SEED = 1000  # the reference uses seed 1, the record 20261125
PASS_GOAL = 0.95
POWER_SIGMA = 10.0


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_generate_data", DEMO / "generate_data.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rewrite(data: bytes, change: Callable[[list[dict[str, str]]], list[dict[str, str]]]) -> bytes:
    reader = csv.DictReader(io.StringIO(data.decode()))
    fields = list(reader.fieldnames or [])
    rows = change(list(reader))
    out = io.StringIO()
    writer = csv.DictWriter(out, fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def momentum_scale(factor: float) -> Callable[[bytes, int], bytes]:
    def apply(data: bytes, seed: int) -> bytes:
        def change(rows: list[dict[str, str]]) -> list[dict[str, str]]:
            for row in rows:
                for n in (1, 2):
                    for k in ("E", "px", "py", "pz", "pt"):
                        row[f"{k}{n}"] = f"{float(row[f'{k}{n}']) * factor:.5f}"
                row["M"] = f"{float(row['M']) * factor:.5f}"
            return rows

        return _rewrite(data, change)

    return apply


def drop_events(fraction: float) -> Callable[[bytes, int], bytes]:
    def apply(data: bytes, seed: int) -> bytes:
        rng = random.Random(seed ^ 0x5EED)
        return _rewrite(data, lambda rows: [r for r in rows if rng.random() >= fraction])

    return apply


def patch_analysis(old: str, new: str) -> Callable[[Path], None]:
    def apply(workspace: Path) -> None:
        script = workspace / "analysis" / "dimuon.py"
        text = script.read_text()
        if text.count(old) != 1:
            raise RuntimeError(f"the demo analysis changed: {old!r} is not in it exactly once")
        script.write_text(text.replace(old, new))

    return apply


@dataclass(frozen=True)
class Bias:
    name: str
    data: Callable[[bytes, int], bytes] | None = None
    analysis: Callable[[Path], None] | None = None


BIASES = [
    Bias("muon momentum scale +0.3%", data=momentum_scale(1.003)),
    Bias("muon momentum scale -0.3%", data=momentum_scale(0.997)),
    Bias("muon momentum scale +1%", data=momentum_scale(1.01)),
    Bias("muon momentum scale -1%", data=momentum_scale(0.99)),
    Bias("fit does not iterate", analysis=patch_analysis("MAX_ITER = 200", "MAX_ITER = 0")),
    Bias(
        "same-sign instead of opposite-sign pairs",
        analysis=patch_analysis('int(row["Q2"]) < 0', 'int(row["Q2"]) > 0'),
    ),
    Bias("10% of the events dropped", data=drop_events(0.10)),
]


@dataclass
class Outcome:
    case: str
    seed: int
    passed: bool
    failed_checks: list[str]
    z: dict[str, float] = field(default_factory=dict)  # quantity -> shift in its own sigma
    seconds: float = 0.0
    error: str = ""


def chi2_sigma(chi2: float, ndf: int) -> float:
    """The normal deviate equivalent to ``chi2`` with ``ndf`` (Wilson-Hilferty)."""
    scale = 2.0 / (9.0 * ndf)
    return float(((max(chi2, 0.0) / ndf) ** (1 / 3) - 1 + scale) / math.sqrt(scale))


def _z_scores(workspace: Path, expect: list[dict[str, Any]]) -> dict[str, float]:
    """Each checked quantity's deviation from its expectation, in its own sigma."""
    z: dict[str, float] = {}
    fit_file = workspace / "results" / "fit.json"
    if not fit_file.is_file():
        return z
    fit = json.loads(fit_file.read_text())
    values = {k: v for item in expect for k, v in (item.get("values") or {}).items()}
    for key, err_key in (("mass", "mass_error"), ("width", "width_error")):
        if key in values and fit.get(err_key):
            want = values[key]
            sigma = math.hypot(fit[err_key], want.get("error", 0.0))
            z[key] = (fit[key] - want["value"]) / sigma
    if "entries" in values:
        want = values["entries"]
        z["entries"] = (fit["entries"] - want["value"]) / want["sigma"]["error"]
    z["fit chi2"] = chi2_sigma(fit["chi2"], fit["ndf"])
    for item in expect:
        for key, want in (item.get("histograms") or {}).items():
            if uses_hepdata(want):  # the same spectrum written as a HEPData table: same z
                continue
            ref_file, _, ref_key = str(want["reference"]).partition("#")
            result = chi2_test(
                read_histogram(workspace / item["file"], key),
                read_histogram(DEMO / ref_file, ref_key or key),
                normalize=bool(want.get("normalize") or want.get("chi2", {}).get("normalize")),
            )
            z["spectrum chi2"] = chi2_sigma(result.chi2, result.ndf)
    return z


def run_case(seed: int, bias: Bias | None, workdir: Path) -> Outcome:
    """Generate the input for ``seed``, apply ``bias``, run the demo's steps, check them."""
    started = time.perf_counter()
    name = bias.name if bias else "statistically equivalent"
    analysis = load_analysis(DEMO)
    expect = list(analysis.manifest.get("expect") or [])
    workspace = workdir / f"{seed}-{(bias.name if bias else 'nominal').replace(' ', '_')}"
    shutil.copytree(DEMO / "analysis", workspace / "analysis")
    params = analysis.parameters
    data_file = workspace / str(params["input"])
    data_file.parent.mkdir(parents=True)
    subprocess.run(
        [sys.executable, str(DEMO / "generate_data.py"), "--seed", str(seed), "--out",
         str(data_file)],
        check=True,
    )  # fmt: skip
    if bias and bias.data:
        data_file.write_bytes(bias.data(data_file.read_bytes(), seed))
    if bias and bias.analysis:
        bias.analysis(workspace)
    for step in analysis.steps:
        for command in step.get("commands") or []:
            line = substitute(str(command), params, f"step {step.get('name')}")
            done = subprocess.run(
                ["bash", "-c", line], cwd=workspace, capture_output=True, text=True, check=False
            )
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["?"])[-1]
                return Outcome(name, seed, False, [f"step {step.get('name')} failed"],
                               seconds=time.perf_counter() - started, error=last)  # fmt: skip
    checks = evaluate(workspace, expect, DEMO)
    failed = [f"{c.name}: {c.detail}" for c in checks if not c.ok]
    return Outcome(name, seed, not failed, failed, _z_scores(workspace, expect),
                   time.perf_counter() - started)  # fmt: skip


def run_all(cases: Iterable[tuple[int, Bias | None]], jobs: int, workdir: Path) -> list[Outcome]:
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(lambda c: run_case(c[0], c[1], workdir), cases))


@dataclass
class Row:
    case: str
    runs: int
    failed: int
    size_sigma: float | None  # None: the analysis itself failed, no quantity to measure
    size_quantity: str
    goal: str
    met: bool | None  # None: no goal for this bias (below 10 sigma)


def summarise(nominal: list[Outcome], biased: dict[str, list[Outcome]]) -> list[Row]:
    passed = sum(o.passed for o in nominal)
    rows = [Row("statistically equivalent inputs", len(nominal), len(nominal) - passed, None, "",
                f"pass >= {PASS_GOAL:.0%}", passed >= PASS_GOAL * len(nominal))]  # fmt: skip
    baseline = {o.seed: o.z for o in nominal}
    for name, outcomes in biased.items():
        failed = sum(not o.passed for o in outcomes)
        shifts: dict[str, list[float]] = {}
        for o in outcomes:
            for key, value in o.z.items():
                if key in baseline.get(o.seed, {}):
                    shifts.setdefault(key, []).append(value - baseline[o.seed][key])
        size, quantity = None, "analysis failed"
        if shifts and all(o.z for o in outcomes):
            quantity = max(shifts, key=lambda k: abs(statistics.mean(shifts[k])))
            size = abs(statistics.mean(shifts[quantity]))
        strong = size is None or size >= POWER_SIGMA
        goal = "fail 100%" if strong else f"none (< {POWER_SIGMA:g} sigma)"
        met = failed == len(outcomes) if strong else None
        rows.append(Row(name, len(outcomes), failed, size, quantity, goal, met))
    return rows


def render(rows: list[Row]) -> str:
    lines = [f"{'input':41} {'runs':>4} {'failed':>6}  {'bias size':30} {'goal':23} verdict"]
    for r in rows:
        size = "-" if r.case.startswith("statistically") else (
            f"{r.size_sigma:6.1f} sigma ({r.size_quantity})" if r.size_sigma is not None
            else r.size_quantity)  # fmt: skip
        verdict = {True: "met", False: "NOT met", None: "-"}[r.met]
        lines.append(f"{r.case:41} {r.runs:4d} {r.failed:6d}  {size:30} {r.goal:23} {verdict}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=40, help="statistically equivalent inputs")
    parser.add_argument("--bias-seeds", type=int, default=8, help="seeds per injected bias")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", type=Path, default=Path("verdict_power.json"))
    args = parser.parse_args()
    started = time.perf_counter()
    seeds = [FIRST_SEED + i for i in range(args.seeds)]
    bias_seeds = seeds[: args.bias_seeds]
    with tempfile.TemporaryDirectory(prefix="odrun-power-") as tmp:
        work = Path(tmp)
        nominal = run_all([(s, None) for s in seeds], args.jobs, work)
        biased_flat = run_all([(s, b) for b in BIASES for s in bias_seeds], args.jobs, work)
    biased: dict[str, list[Outcome]] = {b.name: [] for b in BIASES if bias_seeds}
    for outcome in biased_flat:
        biased[outcome.case].append(outcome)
    rows = summarise(nominal, biased)
    print(render(rows))
    elapsed = time.perf_counter() - started
    for o in nominal:
        for failure in o.failed_checks:
            print(f"  seed {o.seed} failed: {failure}")
    print(f"{len(nominal) + len(biased_flat)} runs in {elapsed:.0f} s with {args.jobs} jobs")
    doc = {
        "benchmark": "verdict_power",
        "demo": "workflows/dimuon-demo",
        "seconds": round(elapsed, 1),
        "jobs": args.jobs,
        "rows": [asdict(r) for r in rows],
        "runs": [asdict(o) for o in nominal + biased_flat],
    }
    args.json.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.json}")
    return 0 if all(r.met is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
