"""Generate the demo's reference spectrum: GENERATED, not a CMS measurement.

Stands in for a published, normalised dimuon mass spectrum: an independent generation
(its own seed, 100 times the events of the demo record 900001) through the same generator
and the same opposite-sign selection, histogrammed in the analysis's binning and
normalised to unit area, as (1/N) dN/dm per GeV with its statistical errors. It also
records the fraction of generated events that land in the histogram, from which
odrun.yaml's expected entry count for the 12,000-event record is derived.

    python workflows/dimuon-demo/make_reference.py     # about a minute
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from generate_data import EVENTS, events, invariant_mass

SEED = 1  # independent of the record's seed (20261125) and of the benchmark's seeds
FACTOR = 100
MMIN, MMAX, NBINS = 70.0, 110.0, 80  # as in reana.yaml
OUT = Path(__file__).resolve().parent / "reference" / "mass_spectrum.json"


def main() -> None:
    width = (MMAX - MMIN) / NBINS
    counts = [0] * NBINS
    generated = EVENTS * FACTOR
    for mu1, mu2, charges in events(SEED, generated):
        if charges[0] * charges[1] < 0:
            m = round(invariant_mass(mu1, mu2), 5)  # as the record's CSV holds it
            if MMIN <= m < MMAX:
                counts[int((m - MMIN) / width)] += 1
    total = sum(counts)
    fraction = total / generated
    doc = {
        "generated": True,
        "description": "GENERATED reference for the odrun demo, not a CMS measurement: "
        "normalised opposite-sign dimuon mass spectrum (1/N dN/dm, per GeV) from an "
        f"independent generation (workflows/dimuon-demo/make_reference.py, seed {SEED}, "
        f"{generated} events, {FACTOR}x the record's)",
        "seed": SEED,
        "generated_events": generated,
        "entries": total,
        "fraction_in_histogram": round(fraction, 6),
        "expected_entries_for_record": {
            "events": EVENTS,
            "value": round(EVENTS * fraction, 1),
            "binomial_error": round(math.sqrt(EVENTS * fraction * (1 - fraction)), 1),
        },
        "spectrum": {
            "edges": [round(MMIN + i * width, 6) for i in range(NBINS + 1)],
            "counts": [float(f"{c / total / width:.6g}") for c in counts],
            "errors": [float(f"{math.sqrt(c) / total / width:.4g}") for c in counts],
        },
    }
    text = json.dumps(doc, indent=1)
    for key in ("edges", "counts", "errors"):  # one line per list
        start = text.index(f'"{key}": [')
        end = text.index("]", start) + 1
        text = text[:start] + f'"{key}": ' + json.dumps(doc["spectrum"][key]) + text[end:]
    OUT.write_text(text + "\n")
    print(f"wrote {OUT}: {total} entries of {generated} events ({fraction:.4f})")


if __name__ == "__main__":
    main()
