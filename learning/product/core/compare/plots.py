"""PNG figures of a comparison (matplotlib, Agg backend: no display, safe in a worker).

Labels use ASCII (province adcodes, not names): the default fonts have no CJK glyphs and a
server must not depend on which fonts are installed.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from learning.product.core.compare.report import BlockResult, ProvinceRow, SlopeHistogram  # noqa: E402

PLOTS = ("slope", "blocks", "provinces")


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def slope_png(af: SlopeHistogram, ed: SlopeHistogram, *, title: str = "") -> bytes:
    """Histogram of the relative deviation against median slope, one heat map per measure.

    Colour is the share of the slope class's blocks (so steep classes with few blocks stay
    readable), the number is the block count, and each column's label gives its median.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), constrained_layout=True)
    for ax, hist, name in zip(axes, (af, ed), ("area fraction", "edge density"), strict=True):
        counts = np.array([b.counts for b in hist.bins], dtype=float).T  # deviation x slope
        totals = counts.sum(axis=0, keepdims=True)
        share = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
        ax.imshow(share, origin="lower", aspect="auto", cmap="Greens", vmin=0, vmax=1)
        for (i, j), c in np.ndenumerate(counts):
            if c:
                ax.text(j, i, f"{int(c)}", ha="center", va="center", fontsize=8)
        ax.set_xticks(range(len(hist.bins)),
                      [f"{b.label}\nmed {b.median:+.2f}" if not math.isnan(b.median)
                       else f"{b.label}\n-" for b in hist.bins], fontsize=8)
        ax.set_yticks(range(len(hist.deviation_labels)), hist.deviation_labels, fontsize=8)
        ax.set_xlabel("median slope of the block")
        ax.set_ylabel("(T - C) / C")
        ax.set_title(f"{name}: blocks per class")
    if title:
        fig.suptitle(title)
    return _png(fig)


def blocks_png(results: Sequence[BlockResult], *, title: str = "") -> bytes:
    """Per block: product against final map, for area fraction and edge density."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), constrained_layout=True)
    pairs = (("af_final", "af_product", "area fraction"),
             ("ed_final", "ed_product", "edge density (m/ha)"))
    for ax, (c_attr, t_attr, name) in zip(axes, pairs, strict=True):
        c = np.array([getattr(r, c_attr) for r in results], dtype=float)
        t = np.array([getattr(r, t_attr) for r in results], dtype=float)
        ok = np.isfinite(c) & np.isfinite(t)
        ax.scatter(c[ok], t[ok], s=6, alpha=0.6, color="tab:green")
        top = float(max(c[ok].max(initial=0), t[ok].max(initial=0))) or 1.0
        ax.plot([0, top], [0, top], color="grey", lw=1, ls="--")
        ax.set_xlabel(f"final map (C): {name}")
        ax.set_ylabel(f"product (T): {name}")
        ax.set_title(f"{name}, {int(ok.sum())} blocks")
    if title:
        fig.suptitle(title)
    return _png(fig)


def provinces_png(rows: Sequence[ProvinceRow], *, title: str = "") -> bytes:
    """Area against the official statistic per province, with the ±10 % band."""
    rows = [r for r in rows if r.official_ha]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(rows) + 2), 4.4),
                           constrained_layout=True)
    x = np.arange(len(rows))
    f = [r.final_vs_official * 100 for r in rows]
    p = [r.product_vs_official * 100 for r in rows]
    ax.axhspan(-10, 10, color="tab:green", alpha=0.12, label="within ±10 %")
    ax.bar(x - 0.2, f, width=0.4, label="final map")
    ax.bar(x + 0.2, p, width=0.4, label="product")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(x, [str(r.adcode) + ("" if r.complete else "*") for r in rows],
                  rotation=60, fontsize=8)
    ax.set_ylabel("area vs official statistic (%)")
    ax.set_xlabel("province (* = not every block compared)")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return _png(fig)
