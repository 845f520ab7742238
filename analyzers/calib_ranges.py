"""Calibration ranges for MinMax, Percentile, Entropy (KL) and MSE, derived from a histogram alone.

Nothing here touches the model: once histograms are collected, a new percentile or method for any
tensor costs microseconds. Error figures for a range are *predicted* from the histogram (values
spread uniformly inside each fine bin, exact zeros kept exact), which is what lets the methods be
compared per tensor without re-running anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .histogram import HistogramSnapshot
from .quant_grid import QuantSpec, quant_params

METHODS = ("minmax", "percentile", "entropy", "mse")
OUTLIER_QUANTILE = 0.9999  # "rare outliers": the top 0.01% of values (by magnitude from the bulk)
_CANDIDATES = 96


@dataclass(frozen=True)
class RangeStats:
    """What a range does to a tensor: clipping, use of the integer grid, outliers, predicted error."""

    lo: float
    hi: float
    scale: float
    zero_point: int
    clip_rate: float  # share of values outside the representable range
    grid_usage: float  # share of the integer levels spanned by the central 99.99% of values
    outlier_share: float  # share of the range taken by the 0.01% most extreme values
    mse: float  # predicted mean squared quantization error
    sqnr_db: float  # predicted SQNR of quantizing this tensor alone


# -- quantiles ---------------------------------------------------------------------------------
def quantile(h: HistogramSnapshot, q: float) -> float:
    """The q-quantile (0..1) of the data, interpolated linearly inside a bin (error < one bin width)."""
    if h.count == 0:
        return 0.0
    cdf = np.cumsum(h.counts, dtype=np.float64)
    target = q * cdf[-1]
    i = int(np.searchsorted(cdf, target, side="left"))
    i = min(i, len(h.counts) - 1)
    before = cdf[i - 1] if i > 0 else 0.0
    inside = h.counts[i]
    frac = (target - before) / inside if inside > 0 else 0.0
    v = h.edges[i] + frac * (h.edges[i + 1] - h.edges[i])
    return float(min(max(v, h.min), h.max))


def abs_quantile(h: HistogramSnapshot, q: float) -> float:
    """The q-quantile of |x|, from the signed histogram folded about zero."""
    if h.count == 0:
        return 0.0
    c = h.centers
    w = h.bin_width
    mags_lo = np.maximum(np.abs(c) - w / 2, 0.0)
    order = np.argsort(mags_lo, kind="stable")
    counts = h.counts[order].astype(np.float64)
    lo_edges = mags_lo[order]
    cdf = np.cumsum(counts)
    target = q * cdf[-1]
    i = min(int(np.searchsorted(cdf, target, side="left")), len(counts) - 1)
    before = cdf[i - 1] if i > 0 else 0.0
    frac = (target - before) / counts[i] if counts[i] > 0 else 0.0
    return float(min(lo_edges[i] + frac * w, max(abs(h.min), abs(h.max))))


# -- methods -----------------------------------------------------------------------------------
def minmax_range(h: HistogramSnapshot, spec: QuantSpec | None = None) -> tuple[float, float]:
    return float(h.min), float(h.max)


def percentile_range(h: HistogramSnapshot, p: float, spec: QuantSpec | None = None) -> tuple[float, float]:
    """Keep ``p`` percent of the values (onnxruntime's convention).

    Symmetric grids clip |x| at its p-th percentile; asymmetric ones clip (100 - p)/2 percent on each side.
    """
    if spec is not None and spec.symmetric:
        t = abs_quantile(h, p / 100.0)
        return -t, t
    cut = (100.0 - p) / 200.0
    lo = quantile(h, cut) if h.min < 0 else float(h.min)
    return lo, quantile(h, 1.0 - cut)


def _candidates(h: HistogramSnapshot, spec: QuantSpec) -> list[tuple[float, float]]:
    """Ranges to search: shrink towards zero from the full range (one-sided, symmetric or proportional)."""
    lo, hi = float(h.min), float(h.max)
    fr = np.geomspace(1.0 / 256, 1.0, _CANDIDATES)
    if spec.symmetric:
        m = max(abs(lo), abs(hi))
        return [(-m * f, m * f) for f in fr]
    if lo >= 0:
        return [(lo, lo + (hi - lo) * f) for f in fr]
    if hi <= 0:
        return [(hi - (hi - lo) * f, hi) for f in fr]
    return [(lo * f, hi * f) for f in fr]


def predicted_error(h: HistogramSnapshot, lo: float, hi: float, spec: QuantSpec) -> float:
    """Expected total squared error of quantizing the histogram's values onto the grid for [lo, hi]."""
    scale, zp = quant_params(lo, hi, spec)
    qmin, qmax = spec.qrange()
    cmin, cmax = scale * (qmin - zp), scale * (qmax - zp)
    a, b = h.edges[:-1], h.edges[1:]
    n = h.counts.astype(np.float64).copy()
    if h.zeros:
        k = int(np.clip(np.searchsorted(h.edges, 0.0, side="right") - 1, 0, len(n) - 1))
        n[k] = max(n[k] - h.zeros, 0.0)
    nz = n > 0
    a, b, n = a[nz], b[nz], n[nz]
    # inside [cmin, cmax]: exact mean of the rounding sawtooth over each (clipped) bin
    ia, ib = np.clip(a, cmin, cmax), np.clip(b, cmin, cmax)
    inside_w = ib - ia
    rounding = np.where(inside_w > 0, (_saw_integral(ib, scale) - _saw_integral(ia, scale)) /
                        np.where(inside_w > 0, inside_w, 1.0), 0.0)
    w = b - a
    frac_in = np.where(w > 0, inside_w / np.where(w > 0, w, 1.0), 1.0)
    err = n * frac_in * rounding
    # outside: squared distance to the clip bound, averaged over the outside part of the bin
    err += n * _outside_sq(a, b, cmax, above=True)
    err += n * _outside_sq(a, b, cmin, above=False)
    return float(err.sum())


def _saw_integral(x: np.ndarray, s: float) -> np.ndarray:
    """Integral from 0 to x of (t - s*round(t/s))^2 dt, in closed form."""
    v = x / s + 0.5
    k = np.floor(v)
    f = v - k
    return s**3 * (k / 12.0 + ((f - 0.5) ** 3 + 0.125) / 3.0) - s**3 * (0.125 / 3.0)


def _outside_sq(a, b, c, above: bool):
    """Mean over a uniform bin [a, b] of (x - c)^2 for the part beyond c, weighted by that part's share."""
    w = np.where(b - a > 0, b - a, 1.0)
    if above:
        lo = np.maximum(a, c)
        hi = np.maximum(b, c)
    else:
        lo = np.minimum(a, c)
        hi = np.minimum(b, c)
    return ((hi - c) ** 3 - (lo - c) ** 3) / (3.0 * w)


def mse_range(h: HistogramSnapshot, spec: QuantSpec) -> tuple[float, float]:
    """The candidate range with the lowest predicted squared quantization error."""
    cands = _candidates(h, spec)
    errs = [predicted_error(h, lo, hi, spec) for lo, hi in cands]
    return cands[int(np.argmin(errs))]


def entropy_range(h: HistogramSnapshot, spec: QuantSpec) -> tuple[float, float]:
    """The candidate range minimising KL(P || Q) between the clipped distribution and its quantized copy.

    P is the histogram restricted to the range with clipped mass folded into the edge bins; Q groups P's
    bins into the grid's levels and spreads each level's mass over its non-empty bins (TensorRT's idea,
    generalised to asymmetric and one-sided ranges).
    """
    if spec.bits > 8:  # 16-bit grids are finer than any useful histogram: nothing to gain from clipping
        return minmax_range(h)
    best, best_kl = (float(h.min), float(h.max)), np.inf
    levels = spec.levels
    for lo, hi in _candidates(h, spec):
        kl = _kl_for_range(h, lo, hi, levels)
        if kl < best_kl - 1e-12:
            best, best_kl = (lo, hi), kl
    return best


def _kl_for_range(h: HistogramSnapshot, lo: float, hi: float, levels: int) -> float:
    # re-bin the histogram onto a fine grid of `levels * 8` bins spanning [lo, hi] (clipped mass to edges)
    fine = levels * 8
    cdf_edges = np.concatenate([[0.0], np.cumsum(h.counts, dtype=np.float64)])
    grid = np.linspace(lo, hi, fine + 1)
    cdf_at = np.interp(grid, h.edges, cdf_edges)
    p = np.diff(cdf_at)
    p[0] += cdf_at[0]
    p[-1] += cdf_edges[-1] - cdf_at[-1]
    total = p.sum()
    if total <= 0:
        return np.inf
    p = p / total
    groups = p.reshape(levels, 8)
    nonzero = groups > 0
    per_level = groups.sum(axis=1, keepdims=True)
    k = np.maximum(nonzero.sum(axis=1, keepdims=True), 1)
    q = np.where(nonzero, per_level / k, 0.0).ravel()
    pm = p > 0
    return float(np.sum(p[pm] * np.log(p[pm] / np.maximum(q[pm], 1e-300))))


def derive_range(h: HistogramSnapshot, method: str, spec: QuantSpec, percentile: float = 99.999) -> tuple[float, float]:
    """The range ``method`` picks for this histogram."""
    if h.count == 0:
        return 0.0, 0.0
    if method == "minmax":
        return minmax_range(h)
    if method == "percentile":
        return percentile_range(h, percentile, spec)
    if method == "entropy":
        return entropy_range(h, spec)
    if method == "mse":
        return mse_range(h, spec)
    raise ValueError(f"unknown calibration method {method!r}; expected one of {METHODS}")


def range_stats(h: HistogramSnapshot, lo: float, hi: float, spec: QuantSpec) -> RangeStats:
    """Clipping, grid usage, outlier share and predicted error of quantizing ``h`` with [lo, hi]."""
    scale, zp = quant_params(lo, hi, spec)
    qmin, qmax = spec.qrange()
    cmin, cmax = scale * (qmin - zp), scale * (qmax - zp)
    total = max(h.count, 1)
    cdf_edges = np.concatenate([[0.0], np.cumsum(h.counts, dtype=np.float64)])
    below = float(np.interp(cmin, h.edges, cdf_edges)) if h.min < cmin else 0.0
    above = float(cdf_edges[-1] - np.interp(cmax, h.edges, cdf_edges)) if h.max > cmax else 0.0
    tail = (1.0 - OUTLIER_QUANTILE) / 2
    bulk_lo, bulk_hi = quantile(h, tail), quantile(h, 1.0 - tail)
    bulk_lo_c, bulk_hi_c = max(bulk_lo, cmin), min(bulk_hi, cmax)
    grid_usage = max(bulk_hi_c - bulk_lo_c, 0.0) / scale / max(qmax - qmin, 1) if scale > 0 else 0.0
    data_span = max(h.max - h.min, 1e-30)
    outlier_share = 1.0 - (bulk_hi - bulk_lo) / data_span if h.max > h.min else 0.0
    sq = predicted_error(h, lo, hi, spec)
    mse = sq / total
    sqnr = 10.0 * np.log10(h.sum_sq / sq) if sq > 0 and h.sum_sq > 0 else float("inf")
    return RangeStats(float(lo), float(hi), scale, zp, (below + above) / total, float(min(grid_usage, 1.0)),
                      float(max(outlier_share, 0.0)), float(mse), float(sqnr))
