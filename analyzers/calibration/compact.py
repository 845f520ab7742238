"""Calibration histograms packed for the trip from the engine process to the GUI.

A ``HistogramSnapshot`` holds 4,096 counts and 4,097 edges as 64-bit arrays (64 KB); for a model with
2,000 calibrated tensors that is 128 MB to pickle, send and keep. Packed, each histogram keeps only
the bins between its first and last non-empty one, as 32-bit counts when they fit, plus its grid
(origin, width) and statistics; ``CompactHistograms`` is a read-only mapping that rebuilds a
snapshot for one tensor when a view asks for it (the GUI shows one at a time).

The GUI process unpickles these, so this module imports only numpy and ``histogram`` at load time.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .collect import CalibrationData
from .histogram import HistogramSnapshot, SpecialValues


class CompactHistograms(Mapping):
    """tensor name -> HistogramSnapshot, stored trimmed and concatenated."""

    def __init__(self, names, counts, offsets, first_bin, grid, stats, tallies, special):
        self.names = list(names)
        self._index = {n: i for i, n in enumerate(self.names)}
        self.counts, self.offsets, self.first_bin = counts, offsets, first_bin
        self.grid, self.stats, self.tallies, self.special = grid, stats, tallies, special

    @classmethod
    def pack(cls, hists: Mapping[str, HistogramSnapshot]) -> "CompactHistograms":
        names = list(hists)
        parts, offsets, first, grid, stats, tallies, special = [], [0], [], [], [], [], []
        for n in names:
            h = hists[n]
            nz = np.nonzero(h.counts)[0]
            a, b = (int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, 0)
            parts.append(h.counts[a:b])
            offsets.append(offsets[-1] + (b - a))
            first.append(a)
            width = float(h.edges[1] - h.edges[0]) if len(h.edges) > 1 else 0.0
            grid.append((float(h.edges[0]), width, len(h.counts)))
            stats.append((h.min, h.max, h.sum, h.sum_sq))
            tallies.append((h.count, h.zeros))
            special.append(h.special.as_row())
        counts = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        if counts.size and counts.max() < 2**31:
            counts = counts.astype(np.int32)
        return cls(names, counts, np.array(offsets, np.int64), np.array(first, np.int64),
                   np.array(grid, np.float64).reshape(-1, 3), np.array(stats, np.float64).reshape(-1, 4),
                   np.array(tallies, np.int64).reshape(-1, 2), np.array(special, np.float64).reshape(-1, 7))

    def __getitem__(self, name: str) -> HistogramSnapshot:
        i = self._index[name]
        c = self.counts[self.offsets[i]:self.offsets[i + 1]].astype(np.int64)
        origin, width, _bins = self.grid[i]
        a = int(self.first_bin[i])
        if c.size == 0:  # an empty histogram: keep one bin so edges stay well formed
            c = np.zeros(1, np.int64)
        edges = origin + (a + np.arange(len(c) + 1, dtype=np.float64)) * width
        mn, mx, sm, sq = (float(v) for v in self.stats[i])
        cnt, zeros = (int(v) for v in self.tallies[i])
        return HistogramSnapshot(c, edges, mn, mx, cnt, sm, sq, zeros, SpecialValues.from_row(self.special[i]))

    def __contains__(self, name) -> bool:
        return name in self._index

    def __iter__(self):
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.counts, self.offsets, self.first_bin, self.grid, self.stats, self.tallies,
                                             self.special))


def calibration_view(histograms: CompactHistograms, samples: int):
    """A ``CalibrationData`` over packed histograms (no weight statistics): what the GUI's views read."""

    return CalibrationData(histograms, {}, samples)
