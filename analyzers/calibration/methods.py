"""Calibration ranges for MinMax, Percentile, Entropy (KL) and MSE, derived from a histogram alone.

Nothing here touches the model: once histograms are collected, a new percentile or method for any
tensor costs microseconds (percentile) to a few milliseconds (entropy, mse). Error figures for a
range are *predicted* from the histogram (non-zero values spread uniformly inside each bin, exact
zeros kept exact, because zero is always on the integer grid), which is what lets the methods be
compared per tensor without re-running anything; ``tests/test_calibration_methods.py`` holds the prediction
against fake-quantizing the raw values.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..jsonsafe import json_safe
from .grid import QuantSpec, quant_params, quant_params_array
from .histogram import HistogramSnapshot

METHODS = ("minmax", "percentile", "entropy", "mse")
OUTLIER_QUANTILE = 0.9999  # "rare outliers": the 0.01% most extreme values (0.005% on each side)
_COARSE = 96  # candidates in the first sweep of a range search (geometric from 1/4096 of the extreme)
_FINE = 48  # candidates between the best coarse candidate's neighbours
_SMALLEST = 1.0 / 4096


@dataclass(frozen=True)
class RangeStats:
    """What a range does to a tensor: clipping, use of the integer grid, outliers, predicted error."""

    lo: float
    hi: float
    scale: float
    zero_point: int
    clip_rate: float  # share of values that saturate (round past either end of the integer grid)
    grid_usage: float  # share of the integer levels spanned by the central 99.99% of values
    outlier_share: float  # share of the representable range that only the 0.01% most extreme values occupy
    mse: float  # predicted mean squared quantization error (per value)
    sqnr_db: float  # predicted SQNR of quantizing this tensor alone (inf when error-free)
    clip_low: float = 0.0  # share of values below the representable range
    clip_high: float = 0.0  # share of values above it

    def to_dict(self) -> dict:
        """Plain JSON-safe numbers (inf and NaN become None)."""
        return json_safe(asdict(self))


# -- the histogram as a distribution ------------------------------------------------------------
def _nonzero_below(h: HistogramSnapshot, x) -> np.ndarray:
    return h.prefix.below(h, x)[0]


def quantile(h: HistogramSnapshot, q: float) -> float:
    """The q-quantile (0..1) of the data, numpy.percentile's linear convention, within one bin width of it."""
    if h.count == 0:
        return 0.0
    r, v = h.order_knots
    x = float(np.interp(min(max(q, 0.0), 1.0) * (h.count - 1), r, v))
    return min(max(x, float(h.min)), float(h.max))


def abs_quantile(h: HistogramSnapshot, q: float) -> float:
    """The q-quantile of |x| (numpy.percentile of abs(x)), within one bin width of it."""
    if h.count == 0:
        return 0.0
    r, v = h.abs_order_knots
    x = float(np.interp(min(max(q, 0.0), 1.0) * (h.count - 1), r, v))
    return min(max(x, 0.0), max(abs(h.min), abs(h.max)))


# -- MinMax and Percentile --------------------------------------------------------------------
def minmax_range(h: HistogramSnapshot, spec: QuantSpec | None = None) -> tuple[float, float]:
    """Every value representable: the data's min and max."""
    return float(h.min), float(h.max)


def percentile_range(h: HistogramSnapshot, p: float, spec: QuantSpec | None = None) -> tuple[float, float]:
    """Keep ``p`` percent of the values (onnxruntime's convention).

    Symmetric grids clip |x| at its p-th percentile; asymmetric ones clip (100 - p)/2 percent on each side.
    """
    if not 0.0 < p <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], not {p}")
    if spec is not None and spec.symmetric:
        t = abs_quantile(h, p / 100.0)
        return -t, t
    cut = (100.0 - p) / 200.0
    return quantile(h, cut), quantile(h, 1.0 - cut)


# -- predicted error ------------------------------------------------------------------------------
def _bounds(lo, hi, spec: QuantSpec):
    """The representable interval [cmin, cmax] and the step, for arrays of candidate ranges."""
    scale, zp = quant_params_array(lo, hi, spec)
    qmin, qmax = spec.qrange()
    return scale * (qmin - zp), scale * (qmax - zp), scale


def predicted_errors(h: HistogramSnapshot, lo, hi, spec: QuantSpec) -> np.ndarray:
    """``predicted_error`` for arrays of ranges at once."""
    cmin, cmax, scale = (np.atleast_1d(v) for v in _bounds(lo, hi, spec))
    total = _clip_errors(h, cmin, cmax)
    p = h.prefix
    nz = np.nonzero(p.nonzero)[0]
    if nz.size == 0:
        return total
    i, j = int(nz[0]), int(nz[-1]) + 1
    edges = np.append(p.lo[i:j], p.hi[j - 1])  # bins share edges (the end bins narrowed to min/max)
    n, w = p.nonzero[i:j], np.diff(edges)
    spread = w > 0
    c0, c1, s = cmin[:, None], cmax[:, None], scale[:, None]
    # inside [cmin, cmax]: exact integral of the rounding sawtooth over the inside part of each bin
    saw = np.diff(_saw_integral(np.clip(edges, c0, c1), s), axis=1)
    total = total + (saw * np.where(spread, n / np.where(spread, w, 1.0), 0.0)).sum(axis=1)
    points = ~spread & (n > 0)
    if points.any():  # bins whose values all sit at one point (constant tensors): that point's rounding
        v, k = edges[:-1][points], n[points]
        inside = (v >= c0) & (v <= c1)
        total = total + (k * inside * (v - s * np.round(v / s)) ** 2).sum(axis=1)
    return total


def predicted_error(h: HistogramSnapshot, lo: float, hi: float, spec: QuantSpec) -> float:
    """Expected total squared error of quantizing the histogram's values onto the grid for [lo, hi]."""
    return float(predicted_errors(h, np.array([lo]), np.array([hi]), spec)[0])


def _saw_integral(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Integral of (t - s*round(t/s))^2 dt up to x, in closed form, up to a constant (only differences are used).

    Grid points are multiples of s (the zero point is an integer); each whole step contributes s^3/12.
    """
    v = x / s + 0.5
    k = np.floor(v)
    f = v - k - 0.5
    return s**3 * (k / 12.0 + f**3 / 3.0)


def _clip_errors(h: HistogramSnapshot, cmin: np.ndarray, cmax: np.ndarray) -> np.ndarray:
    """Total squared distance to the nearer bound of the values beyond [cmin, cmax], from prefix moments.

    Exact under the histogram's model and O(1) per range: sum (v - c)^2 = S2 - 2 c S1 + c^2 S0.
    """
    p = h.prefix
    c0a, c1a, c2a = p.below(h, cmin)
    c0b, c1b, c2b = p.below(h, cmax)
    n0, n1, n2 = p.mass[-1], p.m1[-1], p.m2[-1]
    u, v = cmin - p.shift, cmax - p.shift
    under = c2a - 2 * u * c1a + u * u * c0a
    over = (n2 - c2b) - 2 * v * (n1 - c1b) + v * v * (n0 - c0b)
    return np.maximum(under, 0.0) + np.maximum(over, 0.0)


def _fast_errors(h: HistogramSnapshot, lo, hi, spec: QuantSpec) -> np.ndarray:
    """Total squared error with the rounding part taken as step^2/12 per value inside (O(1) per range).

    For range searches over many candidates; ``predicted_errors`` (exact rounding) polishes the result.
    """
    cmin, cmax, s = _bounds(lo, hi, spec)
    inside = _nonzero_below(h, cmax) - _nonzero_below(h, cmin)
    return _clip_errors(h, cmin, cmax) + inside * s * s / 12.0


# -- searches ----------------------------------------------------------------------------------
def _best(costs: np.ndarray) -> int:
    """Index of the lowest cost; among (near-)ties the last, i.e. the widest range (least clipping)."""
    m = np.min(costs)
    if not np.isfinite(m):
        return len(costs) - 1
    return int(np.nonzero(costs <= m + 1e-9 * abs(m))[0][-1])


def _line(cost, extreme: float) -> float:
    """The t in (0, extreme] (or [extreme, 0)) minimising cost(t): geometric sweep, then a linear one."""
    fr = np.geomspace(_SMALLEST, 1.0, _COARSE)
    i = _best(cost(extreme * fr))
    a, b = fr[max(i - 1, 0)], fr[min(i + 1, len(fr) - 1)]
    fine = np.linspace(a, b, _FINE)
    return float(extreme * fine[_best(cost(extreme * fine))])


def _search(h: HistogramSnapshot, spec: QuantSpec, cost) -> tuple[float, float]:
    """Minimise cost(lo_array, hi_array) over ranges that contain 0 (as every onnxruntime grid does).

    Symmetric grids search one threshold; one-sided data search the far end; data on both sides of 0
    search each end in turn (two rounds of coordinate descent).
    """
    lo0, hi0 = float(h.min), float(h.max)
    if spec.symmetric:
        m = max(abs(lo0), abs(hi0))
        t = _line(lambda t: cost(-t, t), m)
        return -t, t
    if lo0 >= 0:
        return lo0, max(_line(lambda t: cost(np.full_like(t, lo0), t), hi0), lo0)
    if hi0 <= 0:
        return min(_line(lambda t: cost(t, np.full_like(t, hi0)), lo0), hi0), hi0
    lo, hi = lo0, hi0
    for _ in range(2):
        hi = _line(lambda t, lo=lo: cost(np.full_like(t, lo), t), hi0)
        lo = _line(lambda t, hi=hi: cost(t, np.full_like(t, hi)), lo0)
    return lo, hi


def _polish(h: HistogramSnapshot, spec: QuantSpec, lo: float, hi: float) -> tuple[float, float]:
    """Refine a range found with the fast error model using the exact one, +-5% around each end."""
    f = np.linspace(0.95, 1.05, 9)
    if spec.symmetric:
        m = max(abs(h.min), abs(h.max))
        t = np.minimum(hi * f, m)
        k = _best(predicted_errors(h, -t, t, spec))
        return -float(t[k]), float(t[k])
    if hi > 0:
        cand = np.minimum(hi * f, h.max)
        hi = float(cand[_best(predicted_errors(h, np.full_like(cand, lo), cand, spec))])
    if lo < 0:
        cand = np.maximum(lo * f, h.min)
        lo = float(cand[_best(predicted_errors(h, cand, np.full_like(cand, hi), spec))])
    return lo, hi


def mse_range(h: HistogramSnapshot, spec: QuantSpec) -> tuple[float, float]:
    """The range with the lowest predicted squared quantization error (the tensor's own error)."""
    lo, hi = _search(h, spec, lambda lo, hi: _fast_errors(h, lo, hi, spec))
    return _polish(h, spec, lo, hi)


def entropy_range(h: HistogramSnapshot, spec: QuantSpec) -> tuple[float, float]:
    """The range minimising KL(P || Q), TensorRT's entropy calibration on our histogram.

    Windows are whole bins and always contain 0; P is the window with the clipped counts folded into
    its edge bins, Q the window (without them) merged into the grid's levels and spread back over the
    non-empty bins. Exact zeros are left out: they are error-free, and as a spike in one bin they would
    make every wide window look bad (pytorch-quantization flattens that bin for the same reason).
    Windows narrower than one bin per level are not tried. 16-bit grids have more levels than the
    histogram has bins, so there is nothing to trade: they keep MinMax.
    """
    if spec.bits > 8:
        return minmax_range(h)
    levels = spec.levels
    c = h.prefix.nonzero
    nzb = np.nonzero(c)[0]
    if nzb.size == 0:
        return minmax_range(h)
    w = h.bin_width
    z = round(-h.edges[0] / w)  # the edge at 0 (may lie outside the histogram)
    first, last = int(nzb[0]), int(nzb[-1]) + 1
    kl = _KL(c, levels)
    edge = lambda j: float(h.edges[0] + j * w)  # noqa: E731
    if spec.symmetric:
        d = _int_line(lambda d: kl(z - d, z + d), -(-levels // 2), max(z - first, last - z))
        if d is None:
            return minmax_range(h)
        t = min(d * w, max(abs(h.min), abs(h.max)))
        return -t, t
    lo_i, hi_i = min(first, z), max(last, z)
    if hi_i - lo_i < levels:
        return minmax_range(h)
    for _ in range(2 if (first < z < last) else 1):
        if last > z:
            d = _int_line(lambda d, a=lo_i: kl(np.full_like(d, a), z + d), max(1, lo_i + levels - z), last - z)
            hi_i = z + d if d is not None else hi_i
        if first < z:
            d = _int_line(lambda d, b=hi_i: kl(z - d, np.full_like(d, b)), max(1, z - (hi_i - levels)), z - first)
            lo_i = z - d if d is not None else lo_i
    return max(edge(lo_i), float(h.min)), min(edge(hi_i), float(h.max))


def _int_line(cost, d_min: int, d_max: int) -> int | None:
    """The integer d in [d_min, d_max] minimising cost(d): geometric sweep, then every integer nearby."""
    if d_max < d_min:
        return None
    ds = np.unique(np.round(np.geomspace(d_min, d_max, _COARSE)).astype(np.int64))
    i = _best(cost(ds))
    a, b = ds[max(i - 1, 0)], ds[min(i + 1, len(ds) - 1)]
    fine = np.unique(np.linspace(a, b, min(int(b - a) + 1, 4 * _FINE)).round().astype(np.int64))
    costs = cost(fine)
    return None if not np.isfinite(costs).any() else int(fine[_best(costs)])


class _KL:
    """KL(P || Q) for many bin windows [a, b) at once, from prefix sums (O(levels) per window)."""

    def __init__(self, counts: np.ndarray, levels: int):
        self.levels = levels
        self.C = np.concatenate([[0.0], np.cumsum(counts)])
        self.NZ = np.concatenate([[0.0], np.cumsum(counts > 0)])
        with np.errstate(divide="ignore", invalid="ignore"):
            self.H = np.concatenate([[0.0], np.cumsum(np.where(counts > 0, counts * np.log(counts), 0.0))])
        self.B = len(counts)

    def _at(self, x: np.ndarray, j) -> np.ndarray:
        return x[np.clip(j, 0, self.B)]

    def __call__(self, a, b) -> np.ndarray:
        a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
        L, C = self.levels, self.C
        n = b - a
        total = C[-1]
        g = a[:, None] + (np.arange(L + 1)[None, :] * n[:, None]) // L
        group = np.diff(self._at(C, g), axis=1)
        nonempty = np.diff(self._at(self.NZ, g), axis=1)
        left, right = self._at(C, a), total - self._at(C, b)
        ca = self._at(C, a + 1) - self._at(C, a)
        cb = self._at(C, b) - self._at(C, b - 1)
        nonempty[:, 0] += (ca == 0) & (left > 0)
        nonempty[:, -1] += (cb == 0) & (right > 0)
        pg = group.copy()
        pg[:, 0] += left
        pg[:, -1] += right
        plogp = (self._at(self.H, b) - self._at(self.H, a) - _xlogx(ca) + _xlogx(ca + left)
                 - _xlogx(cb) + _xlogx(cb + right))
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(group > 0, group / np.maximum(nonempty, 1), 1.0)
            plogq = np.where(pg > 0, pg * np.log(q), 0.0).sum(axis=1)
            kept = total - left - right
            kl = (plogp - plogq) / total - math.log(total) + np.log(kept)
        bad = ((pg > 0) & (group == 0)).any(axis=1) | (kept <= 0) | (n < L)
        return np.where(bad, np.inf, kl)


def _xlogx(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, x * np.log(np.where(x > 0, x, 1.0)), 0.0)


# -- entry points ------------------------------------------------------------------------------
def derive_range(h: HistogramSnapshot, method: str, spec: QuantSpec, percentile: float = 99.999) -> tuple[float, float]:
    """The range ``method`` picks for this histogram."""
    if method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r}; expected one of {METHODS}")
    if h.count == 0:
        return 0.0, 0.0
    if method == "minmax" or h.max <= h.min:  # constant tensors: nothing to clip
        return minmax_range(h)
    if method == "percentile":
        return percentile_range(h, percentile, spec)
    if method == "entropy":
        return entropy_range(h, spec)
    return mse_range(h, spec)


def range_stats(h: HistogramSnapshot, lo: float, hi: float, spec: QuantSpec) -> RangeStats:
    """Clipping, grid usage, outlier share and predicted error of quantizing ``h`` with [lo, hi]."""
    scale, zp = quant_params(lo, hi, spec)
    if h.count == 0:
        return RangeStats(float(lo), float(hi), scale, zp, 0.0, 0.0, 0.0, 0.0, math.inf)
    qmin, qmax = spec.qrange()
    cmin, cmax = scale * (qmin - zp), scale * (qmax - zp)
    p = h.prefix
    # a value saturates when it rounds past the end of the grid, i.e. lies more than half a step beyond it
    below = float(_nonzero_below(h, cmin - scale / 2))
    above = float(p.mass[-1] - _nonzero_below(h, cmax + scale / 2))
    n = h.count
    tail = (1.0 - OUTLIER_QUANTILE) / 2
    bulk_lo, bulk_hi = quantile(h, tail), quantile(h, 1.0 - tail)
    span = cmax - cmin
    bulk = max(min(bulk_hi, cmax) - max(bulk_lo, cmin), 0.0)
    grid_usage = min((bulk / scale + 1.0) / (qmax - qmin + 1), 1.0) if span > 0 else 0.0
    outliers = (max(min(bulk_lo, cmax) - max(h.min, cmin), 0.0) + max(min(h.max, cmax) - max(bulk_hi, cmin), 0.0))
    outlier_share = outliers / span if span > 0 else 0.0
    sq = predicted_error(h, lo, hi, spec)
    sqnr = 10.0 * math.log10(h.sum_sq / sq) if sq > 0 and h.sum_sq > 0 else math.inf
    return RangeStats(float(lo), float(hi), scale, zp, (below + above) / n, float(grid_usage),
                      float(min(outlier_share, 1.0)), float(sq / n), float(sqnr), below / n, above / n)


# -- method comparison -------------------------------------------------------------------------
TIE_DB = 0.05  # SQNRs this close count as a tie, won by the simpler method (earlier in METHODS)


@dataclass(frozen=True)
class MethodComparison:
    """Each method's range for one tensor, what it does to the tensor, and which isolated error is lowest."""

    stats: dict[str, RangeStats]  # method -> statistics of its range
    winner: str

    def gap_db(self, method: str) -> float:
        """How many dB of the tensor's own SQNR ``method`` gives up against the winner (0 for the winner)."""
        a, b = self.stats[self.winner].sqnr_db, self.stats[method].sqnr_db
        if math.isinf(a) and math.isinf(b):
            return 0.0
        return a - b


def compare_methods(h: HistogramSnapshot, spec: QuantSpec, percentile: float = 99.999,
                    ranges: dict[str, tuple[float, float]] | None = None) -> MethodComparison:
    """Run every method on one histogram and rank them by predicted SQNR of the tensor alone.

    ``ranges``: ranges already derived (e.g. remembered in ``CalibrationData``), to skip the searches.
    Ties within ``TIE_DB`` go to the simpler method, so "minmax wins" means nothing better was found.
    """
    stats = {}
    for m in METHODS:
        lo, hi = ranges[m] if ranges and m in ranges else derive_range(h, m, spec, percentile)
        stats[m] = range_stats(h, lo, hi, spec)
    best = max(s.sqnr_db for s in stats.values())
    winner = next(m for m in METHODS if stats[m].sqnr_db >= best - TIE_DB or stats[m].sqnr_db == best)
    return MethodComparison(stats, winner)
