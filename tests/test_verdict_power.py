"""The demo's checks have power: equivalent samples pass, injected biases fail (a small
version of benchmarks/verdict_power.py, which runs the real demo steps on the host)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

import verdict_power  # noqa: E402


def test_equivalent_samples_pass_and_biased_ones_fail(tmp_path: Path) -> None:
    seeds = [verdict_power.FIRST_SEED + i for i in range(3)]
    biases = {b.name: b for b in verdict_power.BIASES}
    cases = [(s, None) for s in seeds] + [
        (seeds[0], biases["muon momentum scale +1%"]),
        (seeds[1], biases["fit does not iterate"]),
    ]
    outcomes = verdict_power.run_all(cases, 2, tmp_path)
    nominal, scaled, frozen = outcomes[:3], outcomes[3], outcomes[4]
    for outcome in nominal:  # new seeds, same statistics: the verdict must be "pass"
        assert outcome.passed, (outcome.seed, outcome.failed_checks, outcome.error)
        assert abs(outcome.z["mass"]) < 3
    assert not scaled.passed
    assert any(f.startswith("Z peak fit mass:") for f in scaled.failed_checks)
    assert scaled.z["mass"] - nominal[0].z["mass"] > 10  # 1% of 91 GeV over a 28 MeV error
    assert not frozen.passed  # the start values are near the peak: only chi2/ndf notices
    assert any(f.startswith("Z peak fit chi2_ndf:") for f in frozen.failed_checks)
    rows = verdict_power.summarise(nominal, {"scale": [scaled], "frozen": [frozen]})
    assert [(r.runs, r.failed) for r in rows] == [(3, 0), (1, 1), (1, 1)]
    assert rows[0].met is True  # >= 95% of the equivalent inputs pass
    assert rows[1].met is True  # a >= 10 sigma bias: must fail every time
    assert "NOT met" not in verdict_power.render(rows)
