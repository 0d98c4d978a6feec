"""Generate the demo's input data: dimuon events shaped like CMS's dimuon CSV open data.

GENERATED DATA, NOT CMS DATA. Columns follow the CMS Level-2 dimuon CSV records
(e.g. recid 5201, Dimuon_DoubleMu.csv): Run, Event, type1, E1, px1, py1, pz1,
pt1, eta1, phi1, Q1, type2, ..., Q2, M. Events are Z -> mu mu (Breit-Wigner,
M = 91.1876 GeV, Gamma = 2.4952 GeV, 1.2 GeV resolution) on a falling
background, from a fixed seed, so every run produces the same bytes.

Writes the CSV and its record (recid 900001) into the bundled mirror:
    python workflows/dimuon-demo/generate_data.py
or, for statistically equivalent samples (benchmarks/verdict_power.py), only a CSV:
    python workflows/dimuon-demo/generate_data.py --seed 7 --out sample.csv
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import random
import zlib
from collections.abc import Iterator
from pathlib import Path

RECID = "900001"
SEED = 20261125
EVENTS = 12_000
MZ, GZ, RESOLUTION = 91.1876, 2.4952, 1.2
MUON_MASS = 0.1056583755
MIRROR = Path(__file__).resolve().parent.parent / "mirror"
NAME = "Dimuon_generated.csv"


def muon(p: tuple[float, float, float]) -> dict[str, float]:
    px, py, pz = p
    pt = math.hypot(px, py)
    e = math.sqrt(px * px + py * py + pz * pz + MUON_MASS**2)
    eta = math.asinh(pz / pt) if pt > 0 else 0.0
    return {"E": e, "px": px, "py": py, "pz": pz, "pt": pt, "eta": eta, "phi": math.atan2(py, px)}


def pair(rng: random.Random, mass: float) -> tuple[dict[str, float], dict[str, float]]:
    """Two muons of invariant mass ``mass``: decay at rest, then boost."""
    p = math.sqrt(max(mass * mass / 4 - MUON_MASS**2, 0.0))
    cos_t, phi = rng.uniform(-1, 1), rng.uniform(-math.pi, math.pi)
    sin_t = math.sqrt(1 - cos_t * cos_t)
    d = (p * sin_t * math.cos(phi), p * sin_t * math.sin(phi), p * cos_t)
    # boost: transverse momentum ~ few GeV, rapidity within |y| < 2
    pt_z, phi_z, y = abs(rng.gauss(0, 8)), rng.uniform(-math.pi, math.pi), rng.uniform(-2, 2)
    mt = math.sqrt(mass * mass + pt_z * pt_z)
    total = (pt_z * math.cos(phi_z), pt_z * math.sin(phi_z), mt * math.sinh(y), mt * math.cosh(y))
    bx, by, bz = (total[i] / total[3] for i in range(3))
    b2 = bx * bx + by * by + bz * bz
    gamma = 1 / math.sqrt(1 - b2)
    out = []
    for sign in (1, -1):
        px, py, pz = (sign * c for c in d)
        e = math.sqrt(p * p + MUON_MASS**2)
        bp = bx * px + by * py + bz * pz
        k = (gamma - 1) * bp / b2 + gamma * e
        out.append(muon((px + k * bx, py + k * by, pz + k * bz)))
    return out[0], out[1]


def invariant_mass(a: dict[str, float], b: dict[str, float]) -> float:
    e, px, py, pz = (a[k] + b[k] for k in ("E", "px", "py", "pz"))
    return math.sqrt(max(e * e - px * px - py * py - pz * pz, 0.0))


Muon = dict[str, float]


def events(seed: int = SEED, count: int = EVENTS) -> Iterator[tuple[Muon, Muon, tuple[int, int]]]:
    """The generated events: two muons and their charges."""
    rng = random.Random(seed)
    for _ in range(count):
        if rng.random() < 0.75:  # Z signal, opposite sign
            mass = MZ + GZ / 2 * math.tan(math.pi * (rng.random() - 0.5))
            mass = rng.gauss(mass, RESOLUTION)
            charges = (1, -1) if rng.random() < 0.5 else (-1, 1)
        else:  # falling background, either sign
            mass = 60 + rng.expovariate(1 / 25)
            charges = (rng.choice((1, -1)), rng.choice((1, -1)))
        if not 40 < mass < 140:
            mass = 40 + rng.random() * 100
        mu1, mu2 = pair(rng, mass)
        yield mu1, mu2, charges


def generate(seed: int = SEED, count: int = EVENTS) -> bytes:
    buf = io.StringIO()
    cols = ["Run", "Event"]
    for n in (1, 2):
        cols += [f"type{n}", f"E{n}", f"px{n}", f"py{n}", f"pz{n}", f"pt{n}", f"eta{n}", f"phi{n}", f"Q{n}"]
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*cols, "M"])
    for event, (mu1, mu2, charges) in enumerate(events(seed, count)):
        row: list[object] = [195013, 1_000_000 + event]
        for mu, q in ((mu1, charges[0]), (mu2, charges[1])):
            row += ["G"] + [f"{mu[k]:.5f}" for k in ("E", "px", "py", "pz", "pt", "eta", "phi")] + [q]
        row.append(f"{invariant_mass(mu1, mu2):.5f}")
        writer.writerow(row)
    return buf.getvalue().encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--events", type=int, default=EVENTS)
    parser.add_argument("--out", type=Path, help="write only this CSV (no mirror record)")
    args = parser.parse_args()
    if args.out is not None:
        args.out.write_bytes(generate(args.seed, args.events))
        return
    if (args.seed, args.events) != (SEED, EVENTS):
        parser.error("the mirror holds the fixed sample: use --out for other seeds or sizes")
    data = generate()
    folder = MIRROR / "files" / RECID
    folder.mkdir(parents=True, exist_ok=True)
    (folder / NAME).write_bytes(data)
    meta = {
        "recid": RECID,
        "title": "Dimuon events, GENERATED for the odrun offline demo (not CMS data)",
        "abstract": {"description": "Generated with workflows/dimuon-demo/generate_data.py "
                     f"(seed {SEED}): Z -> mu mu on a falling background, in the column "
                     "layout of the CMS dimuon CSV records. Not collision data."},
        "experiment": ["CMS"],
        "type": {"primary": "Dataset", "secondary": ["Derived"]},
        "collision_information": {"energy": "7TeV", "type": "pp"},
        "date_created": ["2026"],
        "date_published": "2026",
        "license": {"attribution": "CC0-1.0"},
        "publisher": "CERN Open Data Portal",
        "authors": [{"name": "odrun developers (generated data)"}],
        "distribution": {"formats": ["csv"], "number_files": 1, "size": len(data)},
        "files": [{
            "uri": f"file:files/{RECID}/{NAME}",
            "original_uri": f"generated://odrun/dimuon-demo/{NAME}",
            "size": len(data),
            "checksum": f"adler32:{zlib.adler32(data):08x}",
            "key": NAME,
        }],
        "_file_indices": [],
        "generated": True,
    }
    doc = {"id": RECID, "created": "2026-11-25T00:00:00+00:00", "revision": 1, "metadata": meta}
    (MIRROR / f"{RECID}.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {folder / NAME} ({len(data)} bytes) and {MIRROR / (RECID + '.json')}")


if __name__ == "__main__":
    main()
