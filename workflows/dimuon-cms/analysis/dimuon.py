"""Dimuon invariant-mass analysis: select opposite-sign pairs, histogram, fit the Z peak, plot.

The fit model accounts for the detector resolution (a Breit-Wigner convolved with a Gaussian
of known width, the ``resolution`` parameter), so its chi2/ndf is about 1 for any sample.

Pure Python (no numpy/ROOT), so the demo runs anywhere Python 3 does.

    python3 analysis/dimuon.py select INPUT.csv results/masses.txt
    python3 analysis/dimuon.py fit results/masses.txt MMIN MMAX NBINS results/ [RESOLUTION]
    python3 analysis/dimuon.py plot results/ results/mass.png

The plot is drawn in pure Python too: a PNG writer and a small bitmap font (DejaVu Sans).
"""

from __future__ import annotations

import base64
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


# DejaVu Sans at 13 px as a bitmap font (2-bit coverage): zlib + base64 of [height] then per glyph
# [code point (2 bytes), width, width x height coverage values packed 4 per byte]
FONT = (
    "eNp9V19sFEUY/2a3ve3t3oaY8HDauR7iikO59q6wwCEiS6sgCgqKilrlCigV/61ySv1Ht32QoIk5yoMvfVgbYmpiVMwl1gTw"
    "aB8MiQ8LvJiIyZrUxAdjeOjDlQDr7O7t7uy1OHPZnfvm+zPf7/tm5ts7YFkLLGh3t3ovmdcsVeYBVLkxsTzhv+8d3Ut/TVL3"
    "SOEwXYExjU8hx4EBg9sOjqP1GOgTSCoxCaUtGCFNslfuWat1GGgK7bi3v30WaUjzbaVYkaxW6blglGag5yJk907B6hMwthWN"
    "nuBhKqZ6hRiNBRsuadSF72GlNSP0q9nek1XpL4vhvs8DQaEtohEXhJKCRY6ikOQMPYkMb2IlneA0XeaMEhaQYao46Ut0NtDh"
    "EivaR6b2l5axC1olsf8KADWgyKYg79jB0KUyLcdGBhNvsquVxaIWjbtZZkK8V96j8XwimUorhZLpelwIIZfsDFFTqlyQVVlN"
    "ZYhkh/I9IVO+hmI9eyNkWh0ytdvKIGAgoCNL0HKwOWJaw5hTiMtEg5EDWcm1R+bUkAmqqMqrSTWtFtThW6DSHrS10ZrmCLWV"
    "t8E1ipVBRtO6kCkxm2kjsG52Ey7KRTmDhdmQaX3IRBdKqAkdTFTjDF4TIgiL0cJnSU5NESJdI1iVi7g90rSB8Y4QFasZ0iX9"
    "AXhpWYqy6/5GZDAOHgAbYzQ/tA9ITfspoSXq6CfopgBXIFEHONjEsElauHVBcup+Ejq3Fk4+2CRxGtA5Tz1nU0vnQNSaJTYH"
    "mLRXRmsClAVIU91GtLs0OS7wcwXZd6EaVE5e31G4dKWtoM7IGfPk9Qp1FVlpaJ8PWbckwyGy4G84oCmlVEpw+mCgJpucESnt"
    "jTjzdVHoNUyzTAfcqKGbJF9nzPdFnIl5YeSUARaNrwy8AUN3JuYZzoeYEyI/zxlVwk0bmMBl+qCjap5lhoej9Lvpph9NwBuN"
    "982QaasQLtJ0McrPeS8SMmxjbCZuITtdBF4DPTuj4SK6YOcSt9gAPMJwE+or8R55JxgRFiLY3uJv/UbzaI/GaUqZbpXHIoSI"
    "KIrc5/At5DWxyn2mmWUiMAvYEbhDoOGH71W4vXey6dSFrk2K09X14sA4uahPnJk+Tr2leOosjI8zLnVxvbayqrd3XCETvccV"
    "0tlrzBGJBeAJFq55ZJeLaEaTdbiiyS5cQ7F4wq4oRHTLEpn2HB15QQrb7iaVQ3GV5QSNpg0BCk8yeTfr5p1l6vk5ChodYMIz"
    "a32KOS+KaRU20Ddk6EGXYc6LPSGT43BGvIdMTzMrVPk+TY0ehN9imQk23eGZaIUmN07dMEuqjLlP4ai2xEDsHfdsfKPqGb5f"
    "HJnpK5lf/qrg/Tt55RBc7TC6eUswqk2HwF4mZQRhm3ZEk1zd/8AEvf3KbMo8F3poiirGZdHiF3r4fKRu2NG8yRqyqEKLQk8p"
    "kboXvOuurjYqEe/hnfb9XmJbZqmgpFPJBE/vT3jRYz4roJqOG4/pay7ppdipVwWhDGW6ah1u2/YlFqcvcdyawJtExqI8A23s"
    "v7wFZUi31+mFNpSdDMn7PSal0TtnuzCRFZHIXbgzSpYDzG0E58XWAqrxILZG1/RB31TK79JVkitgPVXAJCddDQVfjq3HvaYK"
    "8vDNApC0FJl6xUVuSieiVDcJTW4z2DCH4tJxE3jpoLeYwbg3c11YSQU9lH21xePxaqygzDocpykq1fZaTJlCFHOV1g0rDMVU"
    "cqGy11sioUDZG/Ii0eC+22dUp1RaxCUFbnRLzazohP5p4noz5uVtHHhrIZBYlykUbOGkxzXFAut7RNvb/weqH02Ad4JCj/um"
    "qiQ5rRJUpkeYtEDzMj1qDmtCGmcrAbHsSypJqV5xJc1sY+e9G7NLSz+/u3bHQ/J7MaZSSnXrGl023Y0cko8uKDwESUh1pZXf"
    "Kl+tQbPj/GVbEmKlxFDcNsG6RBWKFi6XcUh+fxHbKT1pCjXeK842ueQPGP8FR0ujGkaWDMNzAfHDQMsULVgNRE+XLC1YkN9r"
    "jc+Ej9zUS7MN4OOGYId3JPnM9FhqnF4d/uQxafGTQbJ37T6/2AR/9jawF3Mbf1cbJS5/KqwcbrBXbXhx8b/EtFRzWKW4UAgF"
    "Q6xhi5R0d3f84If+GFRKlWEW/zPNq3a/ONxK0fsO8Q07NrvqmXiSOoul+/IvYmr3QMckWDlx4rQyVRr7c2Tya94wuX9jH5Zj"
    "i8BHM7s87My5l66ycPbHlqavGoD/AGVf9OA="
)


def glyphs() -> tuple[int, dict[str, tuple[int, list[int]]]]:
    data = zlib.decompress(base64.b64decode("".join(FONT)))
    height, at, table = data[0], 1, {}
    while at < len(data):
        code, width = struct.unpack(">HB", data[at : at + 3])
        size = (width * height + 3) // 4
        packed = data[at + 3 : at + 3 + size]
        table[chr(code)] = (width, [(packed[i // 4] >> (6 - 2 * (i % 4))) & 3 for i in range(width * height)])
        at += 3 + size
    return height, table


class Canvas:
    """An RGB image with lines, boxes and text: enough for a labelled plot."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.pixels = [bytearray(b"\xff\xff\xff" * width) for _ in range(height)]
        self.font_height, self.font = glyphs()

    def blend(self, x: int, y: int, rgb: tuple[int, int, int], alpha: float = 1.0) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            row, i = self.pixels[y], 3 * x
            row[i : i + 3] = bytes(round(alpha * c + (1 - alpha) * row[i + k]) for k, c in enumerate(rgb))

    def box(self, x0: int, y0: int, x1: int, y1: int, rgb: tuple[int, int, int]) -> None:
        for y in range(max(y0, 0), min(y1, self.height)):
            for x in range(max(x0, 0), min(x1, self.width)):
                self.blend(x, y, rgb)

    def text_width(self, text: str) -> int:
        return sum(self.font.get(ch, self.font["?"])[0] for ch in text)

    def text(self, x: int, y: int, text: str, rgb: tuple[int, int, int] = (0, 0, 0),
             align: str = "left", vertical: bool = False) -> None:
        """``text`` with its top-left at (x, y) (``align`` center/right moves it); ``vertical``
        reads bottom to top, centred on (x, y)."""
        width = self.text_width(text)
        shift = {"left": 0, "center": width // 2, "right": width}[align]
        pen = -shift if not vertical else width // 2
        for ch in text:
            w, cover = self.font.get(ch, self.font["?"])
            for gy in range(self.font_height):
                for gx in range(w):
                    a = cover[gy * w + gx]
                    if a:
                        if vertical:
                            self.blend(x + gy - self.font_height // 2, y + pen - gx, rgb, a / 3)
                        else:
                            self.blend(x + pen + gx, y + gy, rgb, a / 3)
            pen += -w if vertical else w


def nice_step(span: float, ticks: int) -> float:
    """A round tick spacing (1, 2 or 5 times a power of ten) giving about ``ticks`` ticks."""
    raw = span / max(ticks, 1)
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def plot_cmd(resdir: str, dst: str) -> None:
    """The spectrum with the fitted curve: labelled axes with units, ticks, title, legend and
    the fitted values, as a PNG (pure Python: a bitmap font and a PNG writer)."""
    rows = list(csv.DictReader((Path(resdir) / "mass_hist.csv").open()))
    fit_result = json.loads((Path(resdir) / "fit.json").read_text())
    counts = [int(r["count"]) for r in rows]
    lo, hi = float(rows[0]["bin_low"]), float(rows[-1]["bin_high"])
    width, height = 760, 480
    left, right, top_margin, bottom = 72, 20, 40, 56
    canvas = Canvas(width, height)
    plot_w, plot_h = width - left - right, height - top_margin - bottom
    top = max(c + math.sqrt(c) for c in counts) * 1.25 or 1
    bin_w = (hi - lo) / len(counts)

    def px(m: float) -> int:
        return left + round((m - lo) / (hi - lo) * plot_w)

    def py(v: float) -> int:
        return height - bottom - round(v / top * plot_h)

    black, grey, blue, red, green = (0, 0, 0), (225, 225, 225), (70, 110, 200), (220, 40, 40), (0, 140, 0)
    y_step = nice_step(top, 6)
    for k in range(int(top / y_step) + 1):  # y grid, ticks, labels
        y = py(k * y_step)
        canvas.box(left, y, width - right, y + 1, grey)
        canvas.box(left - 5, y, left, y + 1, black)
        canvas.text(left - 8, y - canvas.font_height // 2, f"{k * y_step:g}", align="right")
    for i, c in enumerate(counts):  # the histogram, with Poisson error bars
        x0, x1 = px(lo + i * bin_w) + 1, px(lo + (i + 1) * bin_w)
        canvas.box(x0, py(c), x1, py(0), blue)
        err = math.sqrt(c)
        canvas.box((x0 + x1) // 2, py(c + err), (x0 + x1) // 2 + 1, py(max(c - err, 0)) + 1, black)
    p = [fit_result["params"][name] for name in NAMES]
    res = fit_result["resolution_gev"]
    previous = None
    for x in range(plot_w):  # the fitted curve, as expected entries per bin
        m = lo + (x + 0.5) * (hi - lo) / plot_w
        y = py(expected(m - bin_w / 2, m + bin_w / 2, p, res))
        for yy in range(min(y, previous or y), max(y, previous or y) + 1):
            for dy in (-1, 0, 1):
                canvas.blend(left + x, yy + dy, red)
        previous = y
    mark = px(fit_result["mass"])
    for y in range(top_margin, height - bottom, 6):  # the fitted mass
        canvas.box(mark, y, mark + 1, y + 3, green)
    canvas.box(left, top_margin, left + 1, height - bottom + 1, black)  # axes
    canvas.box(left, height - bottom, width - right, height - bottom + 1, black)
    x_step = nice_step(hi - lo, 8)
    tick = math.ceil(lo / x_step) * x_step
    while tick <= hi + 1e-9:  # x ticks and labels
        x = px(tick)
        canvas.box(x, height - bottom, x + 1, height - bottom + 6, black)
        canvas.text(x, height - bottom + 8, f"{tick:g}", align="center")
        tick += x_step
    canvas.text(left + plot_w // 2, height - 22, "m(μμ) [GeV]", align="center")
    canvas.text(16, top_margin + plot_h // 2, f"events / {bin_w:g} GeV", vertical=True)
    canvas.text(left, 12, "Z → μμ: opposite-sign dimuon mass (GENERATED data, odrun demo)")
    legend = [(blue, "box", f"data ({sum(counts)} pairs)"), (red, "line", "fit: Breit-Wigner ⊗ Gauss + exp"),
              (green, "dash", "fitted mass")]
    for n, (rgb, kind, label) in enumerate(legend):  # the legend, top left
        y = top_margin + 10 + n * 18
        if kind == "box":
            canvas.box(left + 12, y + 2, left + 30, y + 12, rgb)
        else:
            for x in range(left + 12, left + 30, 5 if kind == "dash" else 1):
                canvas.box(x, y + 6, x + (3 if kind == "dash" else 1), y + 8, rgb)
        canvas.text(left + 36, y, label)
    values = [f"M = {fit_result['mass']:.3f} ± {fit_result['mass_error']:.3f} GeV",
              f"Γ = {fit_result['width']:.3f} ± {fit_result['width_error']:.3f} GeV",
              f"χ²/ndf = {fit_result['chi2']:.1f} / {fit_result['ndf']}"]
    for n, line in enumerate(values):  # the fitted values, top right
        canvas.text(width - right - 10, top_margin + 10 + n * 18, line, align="right")
    out = Path(dst)
    out.parent.mkdir(parents=True, exist_ok=True)
    png(out, canvas.pixels, width, height)
    print(f"wrote {out}")


if __name__ == "__main__":
    commands = {"select": select, "fit": fit_cmd, "plot": plot_cmd}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(f"usage: {sys.argv[0]} select|fit|plot ...")
    commands[sys.argv[1]](*sys.argv[2:])
