"""Dimuon invariant-mass analysis: select opposite-sign pairs, histogram, fit the Z peak, plot.

The fit model accounts for the detector resolution (a Breit-Wigner convolved with a Gaussian
of known width, the ``resolution`` parameter), so its chi2/ndf is about 1 for any sample.

Pure Python (no numpy/ROOT), so the demo runs anywhere Python 3 does.

    python3 analysis/dimuon.py select INPUT.csv results/masses.txt
    python3 analysis/dimuon.py fit results/masses.txt MMIN MMAX NBINS results/ [RESOLUTION]
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


MAX_ITER = 200  # Levenberg-Marquardt steps per pass
PASSES = 4  # Poisson weights 1/expected re-evaluated between passes (converges to the ML fit)
GRID = [0.5 * k for k in range(-10, 11)]  # resolution convolution: Gaussian nodes, in sigma
GAUSS = [math.exp(-u * u / 2) for u in GRID]
GAUSS = [g / sum(GAUSS) for g in GAUSS]
NAMES = ["signal", "mass", "width", "background", "slope"]


def expected(lo: float, hi: float, p: list[float], resolution: float) -> float:
    """Expected entries in [lo, hi): a Breit-Wigner (``signal`` events, pole ``mass``, full
    ``width``) convolved with the Gaussian detector resolution, integrated over the bin
    (exactly, through the Cauchy CDF), on an exponential background (``background`` entries
    per GeV at 90 GeV, falling with ``slope`` per GeV)."""
    nsig, mu, gamma, bkg, slope = p
    half = abs(gamma) / 2 or 1e-9
    sig = 0.0
    for u, g in zip(GRID, GAUSS):
        shift = mu + u * resolution
        sig += g * (math.atan((hi - shift) / half) - math.atan((lo - shift) / half))
    if abs(slope) < 1e-9:
        back = bkg * (hi - lo)
    else:
        back = bkg * (math.exp(-slope * (lo - 90)) - math.exp(-slope * (hi - 90))) / slope
    return nsig * sig / math.pi + back


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


def fit(edges: list[float], ys: list[float], p: list[float], resolution: float) -> tuple[list[float], list[float], float]:
    """Binned Poisson maximum-likelihood fit by iteratively re-weighted least squares
    (Levenberg-Marquardt, weights 1/expected); returns params, errors, Pearson chi2."""
    bins = list(zip(edges[:-1], edges[1:]))

    def predict(q: list[float]) -> list[float]:
        return [expected(lo, hi, q, resolution) for lo, hi in bins]

    def normal_equations(q: list[float], w: list[float]) -> tuple[list[list[float]], list[float]]:
        base = predict(q)
        jac = []
        for k in range(len(q)):
            h = 1e-6 * max(abs(q[k]), 1.0)
            shifted = q[:]
            shifted[k] += h
            jac.append([(v - b) / h for v, b in zip(predict(shifted), base)])
        n = len(q)
        jt_j = [[sum(wi * ja * jb for wi, ja, jb in zip(w, jac[a], jac[b])) for b in range(n)] for a in range(n)]
        jt_r = [sum(wi * ja * (y - m) for wi, ja, y, m in zip(w, jac[a], ys, base)) for a in range(n)]
        return jt_j, jt_r

    w = [1 / max(y, 1.0) for y in ys]
    for _ in range(PASSES):
        def chi2(q: list[float]) -> float:
            return sum(wi * (y - m) ** 2 for wi, y, m in zip(w, ys, predict(q)))

        lam, best = 1e-3, chi2(p)
        for _ in range(MAX_ITER):
            jt_j, jt_r = normal_equations(p, w)
            damped = [[v * (1 + lam) if a == b else v for b, v in enumerate(row)] for a, row in enumerate(jt_j)]
            trial = [pi + si for pi, si in zip(p, solve(damped, jt_r))]
            value = chi2(trial)
            if value < best:
                converged = best - value < 1e-9 * max(best, 1.0)
                p, best, lam = trial, value, lam / 10
                if converged:
                    break
            else:
                lam *= 10
                if lam > 1e12:
                    break
        w = [1 / max(m, 1e-3) for m in predict(p)]
    jt_j, _ = normal_equations(p, w)  # the Fisher information at the result
    errors = []
    for k in range(len(p)):
        unit = [1.0 if i == k else 0.0 for i in range(len(p))]
        errors.append(math.sqrt(abs(solve(jt_j, unit)[k])))
    pearson = sum((y - m) ** 2 / max(m, 1e-3) for y, m in zip(ys, predict(p)))
    return p, errors, pearson


def start(edges: list[float], counts: list[int]) -> list[float]:
    """Starting values read off the histogram: peak position, background from the edges."""
    n, width = len(counts), edges[1] - edges[0]
    peak = max(range(n), key=counts.__getitem__)
    k = max(n // 10, 1)
    left = max(sum(counts[:k]) / (k * width), 0.5)
    right = max(sum(counts[-k:]) / (k * width), 0.5)
    x_left, x_right = (edges[0] + edges[k]) / 2, (edges[-k - 1] + edges[-1]) / 2
    slope = math.log(left / right) / (x_right - x_left)
    bkg = left * math.exp(slope * (x_left - 90))
    total_bkg = sum(expected(lo, hi, [0.0, 90.0, 2.5, bkg, slope], 1.0) for lo, hi in zip(edges, edges[1:]))
    center = (edges[peak] + edges[peak + 1]) / 2
    return [max(sum(counts) - total_bkg, 1.0), center, 2.5, bkg, slope]


def fit_cmd(masses: str, mmin: str, mmax: str, nbins: str, outdir: str, resolution: str = "1.2") -> None:
    lo, hi, n, res = float(mmin), float(mmax), int(nbins), float(resolution)
    width = (hi - lo) / n
    counts = [0] * n
    for line in Path(masses).read_text().split():
        m = float(line)
        if lo <= m < hi:
            counts[int((m - lo) / width)] += 1
    edges = [lo + i * width for i in range(n + 1)]
    params, errors, chi2 = fit(edges, [float(c) for c in counts], start(edges, counts), res)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "mass_hist.csv").open("w") as fh:
        fh.write("bin_low,bin_high,count\n")
        for i, c in enumerate(counts):
            fh.write(f"{lo + i * width:.3f},{lo + (i + 1) * width:.3f},{c}\n")
    ndf = n - len(params)
    result = {
        "generated_data": True,
        "fit_model": "Breit-Wigner convolved with a Gaussian resolution (fixed), on an exponential "
        "background; binned Poisson maximum likelihood (iteratively re-weighted least squares)",
        "range_gev": [lo, hi],
        "bins": n,
        "entries": sum(counts),
        "resolution_gev": res,
        "params": dict(zip(NAMES, (round(v, 6) for v in params))),
        "mass": round(params[1], 4),
        "mass_error": round(errors[1], 4),
        "width": round(abs(params[2]), 4),
        "width_error": round(errors[2], 4),
        "signal": round(params[0], 1),
        "signal_error": round(errors[0], 1),
        "chi2": round(chi2, 3),
        "ndf": ndf,
        "chi2_ndf": round(chi2 / ndf, 4),
    }
    (out / "fit.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"Z mass {result['mass']} +- {result['mass_error']} GeV, width {result['width']} +- "
          f"{result['width_error']} GeV, chi2/ndf {chi2:.1f}/{ndf}")


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
    p = [fit_result["params"][name] for name in NAMES]
    res, bin_w = fit_result["resolution_gev"], (hi - lo) / len(counts)
    # the fitted curve, as expected entries per bin
    step = (hi - lo) / plot_w
    for px in range(plot_w):
        m = lo + px * step
        y = height - margin - int(expected(m - bin_w / 2, m + bin_w / 2, p, res) / top * plot_h)
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
