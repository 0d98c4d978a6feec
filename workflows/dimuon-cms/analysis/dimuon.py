"""Dimuon invariant-mass analysis: select opposite-sign pairs, histogram, fit the Z peak, plot.

Pure Python (no numpy/ROOT), so the demo runs anywhere Python 3 does.

    python3 analysis/dimuon.py select INPUT.csv results/masses.txt
    python3 analysis/dimuon.py fit results/masses.txt MMIN MMAX NBINS results/
    python3 analysis/dimuon.py plot results/ results/mass.png
"""

from __future__ import annotations

import csv
import json
import math
import struct
import sys
import zlib
from pathlib import Path


def select(src: str, dst: str) -> None:
    """Keep opposite-sign muon pairs; write their invariant masses, one per line."""
    kept = total = 0
    out = Path(dst)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(src, newline="") as fh, out.open("w") as sink:
        for row in csv.DictReader(fh):
            total += 1
            if int(row["Q1"]) * int(row["Q2"]) < 0:
                e, px, py, pz = (float(row[f"{k}1"]) + float(row[f"{k}2"]) for k in ("E", "px", "py", "pz"))
                sink.write(f"{math.sqrt(max(e * e - px * px - py * py - pz * pz, 0.0)):.5f}\n")
                kept += 1
    print(f"selected {kept} opposite-sign pairs of {total} events")


def model(x: float, p: list[float]) -> float:
    """Breit-Wigner peak (height amp, position mu, full width gamma) on a linear background."""
    amp, mu, gamma, c0, c1 = p
    half = gamma / 2
    return amp * half * half / ((x - mu) ** 2 + half * half) + c0 + c1 * (x - mu)


def solve(a: list[list[float]], b: list[float]) -> list[float]:
    n = len(b)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(m[r][col]))
        m[col], m[pivot] = m[pivot], m[col]
        if abs(m[col][col]) < 1e-300:
            raise ZeroDivisionError("singular")
        for r in range(n):
            if r != col:
                f = m[r][col] / m[col][col]
                m[r] = [v - f * w for v, w in zip(m[r], m[col])]
    return [m[i][n] / m[i][i] for i in range(n)]


def fit(xs: list[float], ys: list[float], p: list[float]) -> tuple[list[float], list[float], float]:
    """Levenberg-Marquardt least squares with Poisson weights; returns params, errors, chi2."""
    w = [1 / max(y, 1.0) for y in ys]

    def chi2(q: list[float]) -> float:
        return sum(wi * (y - model(x, q)) ** 2 for x, y, wi in zip(xs, ys, w))

    lam, best = 1e-3, chi2(p)
    jt_j: list[list[float]] = []
    for _ in range(200):
        jac = []
        for x in xs:
            row = []
            for k in range(len(p)):
                h = 1e-6 * max(abs(p[k]), 1.0)
                q = p[:]
                q[k] += h
                row.append((model(x, q) - model(x, p)) / h)
            jac.append(row)
        n = len(p)
        jt_j = [[sum(w[i] * jac[i][a] * jac[i][b] for i in range(len(xs))) for b in range(n)] for a in range(n)]
        jt_r = [sum(w[i] * jac[i][a] * (ys[i] - model(xs[i], p)) for i in range(len(xs))) for a in range(n)]
        damped = [[v * (1 + lam) if a == b else v for b, v in enumerate(row)] for a, row in enumerate(jt_j)]
        step = solve(damped, jt_r)
        trial = [pi + si for pi, si in zip(p, step)]
        value = chi2(trial)
        if value < best:
            converged = best - value < 1e-9 * max(best, 1.0)
            p, best, lam = trial, value, lam / 10
            if converged:
                break
        else:
            lam *= 10
    cov_diag = []
    for k in range(len(p)):
        unit = [1.0 if i == k else 0.0 for i in range(len(p))]
        cov_diag.append(math.sqrt(abs(solve(jt_j, unit)[k])))
    return p, cov_diag, best


def fit_cmd(masses: str, mmin: str, mmax: str, nbins: str, outdir: str) -> None:
    lo, hi, n = float(mmin), float(mmax), int(nbins)
    width = (hi - lo) / n
    counts = [0] * n
    for line in Path(masses).read_text().split():
        m = float(line)
        if lo <= m < hi:
            counts[int((m - lo) / width)] += 1
    centers = [lo + (i + 0.5) * width for i in range(n)]
    peak = max(range(n), key=counts.__getitem__)
    params, errors, chi2 = fit(centers, [float(c) for c in counts], [counts[peak], centers[peak], 2.5, 1.0, 0.0])
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "mass_hist.csv").open("w") as fh:
        fh.write("bin_low,bin_high,count\n")
        for i, c in enumerate(counts):
            fh.write(f"{lo + i * width:.3f},{lo + (i + 1) * width:.3f},{c}\n")
    result = {
        "generated_data": True,
        "fit_model": "Breit-Wigner + linear background, least squares with Poisson weights",
        "range_gev": [lo, hi],
        "bins": n,
        "entries": sum(counts),
        "mass": round(params[1], 4),
        "mass_error": round(errors[1], 4),
        "amplitude": round(params[0], 4),
        "background": [round(params[3], 6), round(params[4], 6)],
        "width": round(abs(params[2]), 4),
        "width_error": round(errors[2], 4),
        "chi2": round(chi2, 3),
        "ndf": n - len(params),
        "chi2_ndf": round(chi2 / (n - len(params)), 4),
    }
    (out / "fit.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"Z mass {result['mass']} +- {result['mass_error']} GeV, width {result['width']} GeV, "
          f"chi2/ndf {result['chi2_ndf']}")


def png(path: Path, pixels: list[bytearray], width: int, height: int) -> None:
    """Write an RGB PNG (no dependencies)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + bytes(row) for row in pixels)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def plot_cmd(resdir: str, dst: str) -> None:
    rows = list(csv.DictReader((Path(resdir) / "mass_hist.csv").open()))
    fit_result = json.loads((Path(resdir) / "fit.json").read_text())
    counts = [int(r["count"]) for r in rows]
    lo, hi = float(rows[0]["bin_low"]), float(rows[-1]["bin_high"])
    width, height, margin = 640, 400, 40
    pixels = [bytearray(b"\xff\xff\xff" * width) for _ in range(height)]
    top = max(counts) * 1.1 or 1

    def put(x: int, y: int, rgb: tuple[int, int, int]) -> None:
        if 0 <= x < width and 0 <= y < height:
            pixels[y][3 * x : 3 * x + 3] = bytes(rgb)

    plot_w, plot_h = width - 2 * margin, height - 2 * margin
    for i, c in enumerate(counts):  # histogram bars
        x0 = margin + i * plot_w // len(counts)
        x1 = margin + (i + 1) * plot_w // len(counts) - 1
        y0 = height - margin - int(c / top * plot_h)
        for x in range(x0, x1):
            for y in range(y0, height - margin):
                put(x, y, (70, 110, 200))
    for x in range(margin, width - margin):  # axes
        put(x, height - margin, (0, 0, 0))
    for y in range(margin, height - margin):
        put(margin, y, (0, 0, 0))
    c0, c1 = fit_result["background"]
    p = [fit_result["amplitude"], fit_result["mass"], fit_result["width"], c0, c1]
    # the fitted curve
    step = (hi - lo) / plot_w
    for px in range(plot_w):
        m = lo + px * step
        y = height - margin - int(model(m, p) / top * plot_h)
        for dy in (-1, 0, 1):
            put(margin + px, y + dy, (220, 40, 40))
    mark = margin + int((fit_result["mass"] - lo) / (hi - lo) * plot_w)
    for y in range(margin, height - margin, 4):  # fitted mass
        put(mark, y, (0, 150, 0))
    out = Path(dst)
    out.parent.mkdir(parents=True, exist_ok=True)
    png(out, pixels, width, height)
    print(f"wrote {out}")


if __name__ == "__main__":
    commands = {"select": select, "fit": fit_cmd, "plot": plot_cmd}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(f"usage: {sys.argv[0]} select|fit|plot ...")
    commands[sys.argv[1]](*sys.argv[2:])
