"""Between a tensor's histogram and a clip line a user drags: ranges per method, and clip value -> percentile.

The GUI lets a user drag the calibration clip line of a tensor; the recipe stores a per-layer
*percentile* (what ``Recipe.set_percentile`` and onnxruntime understand), so a dragged value is mapped
back through the histogram's CDF. The mapping is the exact inverse of ``percentile_range`` up to
interpolation inside one histogram bin, so the range the quantizer then uses is where the line was
dropped.

Pure numpy on a histogram and a grid (no recipe, no model), hence here rather than in ``workbench``.
"""

from __future__ import annotations

import numpy as np

from .grid import QuantSpec
from .histogram import HistogramSnapshot
from .methods import METHODS, derive_range, range_stats

MIN_PERCENTILE = 50.001  # the recipe accepts (50, 100]
MAX_PERCENTILE = 100.0


def cdf_at(h: HistogramSnapshot, x: float) -> float:
    """Share of values <= x (linear inside a bin, as ``methods.quantile`` assumes)."""
    if h.count == 0:
        return 0.0
    cum = np.concatenate([[0.0], np.cumsum(h.counts, dtype=np.float64)])
    return float(np.interp(x, h.edges, cum) / cum[-1])


def percentile_for_clip(h: HistogramSnapshot, value: float, spec: QuantSpec, side: str = "hi") -> float:
    """The percentile whose range puts the ``side`` ("lo" or "hi") clip at ``value``, clamped to (50, 100].

    Asymmetric grids clip (100 - p)/2 percent on each side, so moving one line moves the other by the
    same share of values; symmetric grids clip |x| at its p-th percentile.
    """
    if spec.symmetric:
        a = abs(value)
        p = 100.0 * (cdf_at(h, a) - cdf_at(h, -a))
    elif side == "hi":
        p = 100.0 - 200.0 * (1.0 - cdf_at(h, value))
    else:
        p = 100.0 - 200.0 * cdf_at(h, value)
    return float(min(max(p, MIN_PERCENTILE), MAX_PERCENTILE))


def lower_line_movable(h: HistogramSnapshot, spec: QuantSpec) -> bool:
    """Whether dragging the lower line changes anything: not for one-sided (e.g. ReLU) data on an asymmetric grid."""
    return spec.symmetric or h.min < 0


def method_ranges(h: HistogramSnapshot, spec: QuantSpec, percentile: float) -> dict[str, tuple[float, float]]:
    """The range every calibration method picks for this histogram (percentile at ``percentile``)."""
    return {m: derive_range(h, m, spec, percentile) for m in METHODS}


def clip_summary(h: HistogramSnapshot, lo: float, hi: float, spec: QuantSpec) -> str:
    """One line for the plot: the range, clipped share and predicted SQNR."""
    s = range_stats(h, lo, hi, spec)
    sq = "inf" if not np.isfinite(s.sqnr_db) else f"{s.sqnr_db:.1f}"
    return (f"range [{lo:.4g}, {hi:.4g}]  clips {100 * s.clip_rate:.3f}% of values  "
            f"grid use {100 * s.grid_usage:.0f}%  predicted SQNR {sq} dB")
