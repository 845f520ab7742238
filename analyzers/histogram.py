"""A fixed-memory histogram that is merged batch by batch and widens its range without losing counts.

onnxruntime's Percentile/Entropy calibrators keep every value of every tensor until the end (hundreds
of MB for a small CNN); this one keeps ``bins`` counts per tensor whatever the number of samples.

Widening is exact: bins live on a grid ``origin + k * width``; when data falls outside, adjacent bin
pairs are merged (width doubles) and the freed half of the bins extends the range on the side that
needs it. A value's bin after any number of widenings is the bin it would have had if the final grid
had been used from the start, so merging many batches gives the histogram of all the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_BINS = 4096


@dataclass
class HistogramSnapshot:
    """Plain, serialisable histogram data (counts over ``edges``) plus exact summary statistics."""

    counts: np.ndarray  # int64, len = bins
    edges: np.ndarray  # float64, len = bins + 1
    min: float
    max: float
    count: int
    sum: float
    sum_sq: float
    nonfinite: int = 0
    zeros: int = 0  # exact zeros (ReLU outputs, padding): always exactly representable, so error-free

    @property
    def bin_width(self) -> float:
        return float(self.edges[1] - self.edges[0])

    @property
    def centers(self) -> np.ndarray:
        return 0.5 * (self.edges[:-1] + self.edges[1:])

    @property
    def mean(self) -> float:
        return self.sum / self.count if self.count else 0.0

    @property
    def power(self) -> float:
        """Mean square value: the 'signal' in SQNR."""
        return self.sum_sq / self.count if self.count else 0.0


class StreamingHistogram:
    """Accumulates values into ``bins`` equal-width bins that widen (exactly) as the data demands."""

    def __init__(self, bins: int = DEFAULT_BINS):
        if bins < 2 or bins % 2:
            raise ValueError("bins must be an even number >= 2")
        self.bins = bins
        self.counts = np.zeros(bins, dtype=np.int64)
        self.origin = 0.0
        self.width = 0.0  # 0 until the first finite value arrives
        self.min = np.inf
        self.max = -np.inf
        self.count = 0
        self.sum = 0.0
        self.sum_sq = 0.0
        self.nonfinite = 0
        self.zeros = 0

    @property
    def hi(self) -> float:
        return self.origin + self.bins * self.width

    def update(self, values: np.ndarray) -> None:
        """Add every element of ``values`` (any shape)."""
        x = np.asarray(values).ravel()
        if x.dtype != np.float32 and x.dtype != np.float64:
            x = x.astype(np.float32)
        lo, hi = float(x.min(initial=np.inf)), float(x.max(initial=-np.inf))
        if not (np.isfinite(lo) and np.isfinite(hi)):
            finite = np.isfinite(x)
            self.nonfinite += int(x.size - finite.sum())
            x = x[finite]
            if x.size == 0:
                return
            lo, hi = float(x.min()), float(x.max())
        if x.size == 0:
            return
        if self.width == 0.0:
            self._init_grid(lo, hi)
        self._cover(lo, hi)
        xd = x.astype(np.float64, copy=False)
        idx = np.floor((xd - self.origin) / self.width).astype(np.int64)
        np.clip(idx, 0, self.bins - 1, out=idx)
        self.counts += np.bincount(idx, minlength=self.bins)
        self.min = min(self.min, lo)
        self.max = max(self.max, hi)
        self.count += int(x.size)
        self.zeros += int(x.size - np.count_nonzero(x))
        self.sum += float(xd.sum())
        self.sum_sq += float(np.dot(xd, xd))

    def _init_grid(self, lo: float, hi: float) -> None:
        span = hi - lo
        if span <= 0:
            span = max(abs(lo), 1e-12) * 1e-3
        # a little headroom so the next batches rarely force a widening
        self.width = span * 1.25 / self.bins
        self.origin = lo - 0.125 * span

    def _cover(self, lo: float, hi: float) -> None:
        while lo < self.origin or hi >= self.hi:
            merged = self.counts.reshape(-1, 2).sum(axis=1)
            half = self.bins // 2
            new = np.zeros_like(self.counts)
            if lo < self.origin:
                new[half:] = merged
                self.origin -= self.bins * self.width
            else:
                new[:half] = merged
            self.counts = new
            self.width *= 2.0

    def merge(self, other: "StreamingHistogram") -> None:
        """Add another histogram's counts (re-binned onto this grid when the grids differ)."""
        if other.count == 0:
            return
        if self.width == 0.0:
            self._init_grid(other.min, other.max)
        self._cover(other.min, other.max)
        centers = other.origin + (np.arange(other.bins) + 0.5) * other.width
        nz = other.counts > 0
        idx = np.clip(np.floor((centers[nz] - self.origin) / self.width).astype(np.int64), 0, self.bins - 1)
        np.add.at(self.counts, idx, other.counts[nz])
        self.min, self.max = min(self.min, other.min), max(self.max, other.max)
        self.count += other.count
        self.sum += other.sum
        self.sum_sq += other.sum_sq
        self.nonfinite += other.nonfinite
        self.zeros += other.zeros

    def snapshot(self) -> HistogramSnapshot:
        edges = self.origin + np.arange(self.bins + 1, dtype=np.float64) * self.width
        return HistogramSnapshot(self.counts.copy(), edges, float(self.min), float(self.max), self.count,
                                 self.sum, self.sum_sq, self.nonfinite, self.zeros)


def trim(snap: HistogramSnapshot) -> HistogramSnapshot:
    """The same histogram restricted to the bins between the first and last non-empty one (for display)."""
    nz = np.nonzero(snap.counts)[0]
    if nz.size == 0:
        return snap
    a, b = int(nz[0]), int(nz[-1]) + 1
    return HistogramSnapshot(snap.counts[a:b].copy(), snap.edges[a:b + 1].copy(), snap.min, snap.max, snap.count,
                             snap.sum, snap.sum_sq, snap.nonfinite, snap.zeros)
