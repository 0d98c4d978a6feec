"""Plots for the run report, drawn with matplotlib (``odrun[report]``), imported lazily.

Each histogram check becomes an overlay of the output (points with error bars) on its
reference (a line with an uncertainty band), a pull panel beneath, and the test's
statistic on the plot; each Kolmogorov-Smirnov check, its two empirical CDFs with the
largest distance D marked; rendered to SVG and embedded as a ``data:`` URI in an ``<img>``
(an SVG shown as an image runs no script, and needs no network).
"""

from __future__ import annotations

import base64
import io
import itertools
import math
from typing import Any

from odrun.report.cdf import CdfData
from odrun.report.content import HistogramData

#: how to get plots, said in a report made without matplotlib
PLOT_HINT = "pip install 'odrun[report]'"
OUTPUT_COLOR = "#111111"
REFERENCE_COLOR = "#3f6fb5"
FAIL_COLOR = "#c0392b"
#: a run folder may be someone else's, and an output may hold any number of bins: beyond
#: these a plot is not drawn (the report says so), so a report never takes matplotlib hours
MAX_PLOT_BINS = 2000
MAX_PLOTS = 50
#: characters of any text drawn on a plot (drawn as paths: a few hundred bytes a glyph)
MAX_PLOT_TEXT = 120


def _line(text: str) -> str:
    """Untrusted text cut to one short line for the plot (the tables show it whole)."""
    text = " ".join(text.split())
    return text if len(text) <= MAX_PLOT_TEXT else text[: MAX_PLOT_TEXT - 1] + "…"


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401, PLC0415 - optional, heavy
    except ImportError:
        return False
    return True


def _style() -> Any:  # matplotlib types the keys as a Literal of every rcParam
    """A HEP-like style: ticks inside, on all sides, minor ticks; text drawn as paths."""
    style: dict[str, Any] = {
        "font.size": 10,
        "axes.titlesize": 11,
        "xtick.direction": "in",
        "ytick.direction": "in",
        "xtick.top": True,
        "ytick.right": True,
        "xtick.minor.visible": True,
        "ytick.minor.visible": True,
        "legend.frameon": False,
        "svg.hashsalt": "odrun",  # the same SVG for the same data
        "svg.fonttype": "path",  # text as paths: no font needed to view it
    }
    return style


def histogram_svg(hist: HistogramData) -> str:
    """The plot of ``hist`` as a ``data:image/svg+xml;base64,`` URI (needs matplotlib);
    ValueError for a histogram of more than :data:`MAX_PLOT_BINS` bins."""
    if len(hist.counts) > MAX_PLOT_BINS:
        raise ValueError(f"{len(hist.counts)} bins: more than {MAX_PLOT_BINS} are not plotted")
    import matplotlib  # noqa: PLC0415 - optional, heavy
    from matplotlib.figure import Figure  # noqa: PLC0415

    with matplotlib.rc_context(_style()):
        fig = Figure(figsize=(7.0, 5.0), dpi=100)
        grid = fig.add_gridspec(2, 1, height_ratios=(3, 1), hspace=0.05)
        main = fig.add_subplot(grid[0])
        pull_ax = fig.add_subplot(grid[1], sharex=main)
        edges = hist.edges
        centers = [(lo + hi) / 2 for lo, hi in itertools.pairwise(edges)]
        ref = hist.reference_counts
        low = [r - e for r, e in zip(ref, hist.reference_errors, strict=True)]
        high = [r + e for r, e in zip(ref, hist.reference_errors, strict=True)]
        main.stairs(
            high,
            edges,
            baseline=low,
            fill=True,
            color=REFERENCE_COLOR,
            alpha=0.25,
            label="reference uncertainty",
        )
        main.stairs(
            ref,
            edges,
            color=REFERENCE_COLOR,
            linewidth=1.5,
            label=f"reference ({_line(hist.reference)})" if hist.reference else "reference",
        )
        main.errorbar(
            centers,
            hist.counts,
            yerr=hist.errors,
            fmt="o",
            markersize=3,
            color=OUTPUT_COLOR,
            elinewidth=1,
            label="this run",
        )
        main.set_ylabel("entries / bin")
        main.set_title(_line(hist.name), loc="left")
        verdict = "compatible" if hist.ok else "INCOMPATIBLE"
        main.text(
            0.98,
            0.97,
            f"{verdict}\n{_line(hist.statistic)}",
            transform=main.transAxes,
            ha="right",
            va="top",
            color=OUTPUT_COLOR if hist.ok else FAIL_COLOR,
        )
        main.legend(loc="upper left", fontsize=8)
        main.tick_params(labelbottom=False)
        top = max([*high, *(c + e for c, e in zip(hist.counts, hist.errors, strict=True))])
        if top > 0 and math.isfinite(top):
            main.set_ylim(0, top * 1.35)
        pulls = [p if p is not None and math.isfinite(p) else 0.0 for p in hist.pulls]
        colors = [FAIL_COLOR if abs(p) > 3 else "#7f7f7f" for p in pulls]
        widths = [hi - lo for lo, hi in itertools.pairwise(edges)]
        pull_ax.bar(centers, pulls, width=widths, color=colors)
        pull_ax.axhline(0, color=OUTPUT_COLOR, linewidth=0.8)
        for level in (-2, 2):
            pull_ax.axhline(level, color="#999999", linewidth=0.6, linestyle="--")
        bound = max([3.5, *(abs(p) * 1.1 for p in pulls)])
        pull_ax.set_ylim(-bound, bound)
        pull_ax.set_ylabel("pull (σ)")
        pull_ax.set_xlabel(_line(hist.label))
        pull_ax.set_xlim(edges[0], edges[-1])
        fig.subplots_adjust(left=0.11, right=0.97, top=0.93, bottom=0.11)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode()


def cdf_svg(cdf: CdfData) -> str:
    """The two empirical CDFs of a KS check as a ``data:image/svg+xml;base64,`` URI."""
    import matplotlib  # noqa: PLC0415 - optional, heavy
    from matplotlib.figure import Figure  # noqa: PLC0415

    with matplotlib.rc_context(_style()):
        fig = Figure(figsize=(7.0, 5.0), dpi=100)
        ax = fig.add_subplot()
        ax.step(
            cdf.x,
            cdf.reference_cdf,
            where="post",
            color=REFERENCE_COLOR,
            linewidth=1.5,
            label=f"reference ({_line(cdf.reference)})" if cdf.reference else "reference",
        )
        ax.step(cdf.x, cdf.sample, where="post", color=OUTPUT_COLOR, linewidth=1.2,
                label="this run")  # fmt: skip
        if cdf.at is not None and cdf.x[0] <= cdf.at <= cdf.x[-1]:
            ax.axvline(cdf.at, color=OUTPUT_COLOR if cdf.ok else FAIL_COLOR, linewidth=0.8,
                       linestyle="--", label="largest distance D")  # fmt: skip
        verdict = "compatible" if cdf.ok else "INCOMPATIBLE"
        ax.text(0.98, 0.03, f"{verdict}\n{_line(cdf.statistic)}", transform=ax.transAxes,
                ha="right", va="bottom", color=OUTPUT_COLOR if cdf.ok else FAIL_COLOR,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85})  # fmt: skip
        ax.set_ylim(0, 1.05)
        ax.set_xlabel(_line(cdf.label))
        ax.set_ylabel("fraction of the sample ≤ x")
        ax.set_title(_line(cdf.name), loc="left")
        ax.legend(loc="upper left", fontsize=8)
        fig.subplots_adjust(left=0.11, right=0.97, top=0.93, bottom=0.11)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode()
