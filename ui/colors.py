"""Colour scales shared by the graph, the table and the heatmap, so one colour means one thing everywhere.

SQNR: red (bad, ~0 dB) through yellow (~20 dB) to green (40 dB and better). Amplification (how
much a layer carries error from upstream rather than making it): white (0 dB) to purple.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PySide6.QtGui import QColor

from analyzers.diff_types import LayerResult
from workbench import formatting

METRICS = {
    "rank_key": "Effective SQNR (dB)",  # what ranking and flagging use: formatting.EFFECTIVE_SQNR_DEF, isolated
    "isolated": "Isolated SQNR (dB)",
    "cumulative": "Cumulative SQNR (dB)",
    "amplification": "Amplification (dB)",
    # the deployed per-layer view: exact minus deployed cumulative SQNR on this CPU (runs with deployed kernels)
    "kernel_gap": "Kernel gap, deployed (dB)",
}

NONE = "—"  # what a GUI cell shows for a missing figure
NO_DATA = QColor("#e4e6ea")
FLAGGED = QColor("#d62728")
SELECTED = QColor("#1f6fd1")
SEARCH = QColor("#f2b600")


@dataclass(frozen=True)
class ColorScale:
    """A piecewise-linear colour scale over [lo, hi] with ``steps`` discrete colours (for batching)."""

    lo: float
    hi: float
    stops: tuple[tuple[float, str], ...]  # (position 0..1, colour)
    label: str
    higher_is_better: bool = True
    steps: int = 24
    ends: tuple[str, str] | None = None  # words under the low and high ends (default: worse/better, causes/carries)

    def palette(self) -> list[QColor]:
        return [self._at(i / (self.steps - 1)) for i in range(self.steps)]

    def _at(self, t: float) -> QColor:
        stops = self.stops
        for (p0, c0), (p1, c1) in zip(stops, stops[1:]):
            if t <= p1:
                f = 0.0 if p1 == p0 else (t - p0) / (p1 - p0)
                a, b = QColor(c0), QColor(c1)
                return QColor.fromRgbF(a.redF() + f * (b.redF() - a.redF()), a.greenF() + f * (b.greenF() - a.greenF()),
                                       a.blueF() + f * (b.blueF() - a.blueF()))
        return QColor(stops[-1][1])

    def bins(self, values: np.ndarray) -> np.ndarray:
        """Palette index per value; -1 where the value is missing (NaN)."""
        v = np.asarray(values, dtype=np.float64)
        missing = np.isnan(v)
        t = (np.clip(np.where(missing, self.lo, v), self.lo, self.hi) - self.lo) / max(self.hi - self.lo, 1e-12)
        idx = np.round(t * (self.steps - 1)).astype(np.int64)
        idx[missing] = -1
        return idx

    def color(self, value: float | None) -> QColor:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return NO_DATA
        return self.palette()[int(self.bins(np.array([value]))[0])]

    def lookup_table(self, n: int = 256) -> np.ndarray:
        """[n, 3] uint8 RGB table for pyqtgraph images."""
        cols = [self._at(i / (n - 1)) for i in range(n)]
        return np.array([[c.red(), c.green(), c.blue()] for c in cols], dtype=np.uint8)


SQNR_STOPS = ((0.0, "#a50026"), (0.25, "#f46d43"), (0.5, "#fee08b"), (0.75, "#a6d96a"), (1.0, "#1a9850"))


def scale_for(metric: str, values: np.ndarray | None = None) -> ColorScale:
    """The scale for ``metric``; amplification stretches to the data's largest value (at least 12 dB)."""
    if metric == "amplification":
        top = 12.0
        if values is not None and np.isfinite(values).any():
            top = max(top, float(np.nanmax(np.where(np.isfinite(values), values, np.nan))))
        return ColorScale(0.0, round(top), ((0.0, "#f7f4f9"), (0.5, "#b596c8"), (1.0, "#4d1f6e")),
                          METRICS[metric], higher_is_better=False)
    if metric == "kernel_gap":  # 1 dB is where a kernel is flagged (analyzers.deployed_layers.KERNEL_GAP_DB)
        return ColorScale(0.0, 6.0, ((0.0, "#1a9850"), (1 / 6, "#d9ef8b"), (0.5, "#fdae61"), (1.0, "#a50026")),
                          METRICS[metric], higher_is_better=False, ends=("matches Q/DQ", "departs"))
    return ColorScale(0.0, 40.0, SQNR_STOPS, METRICS[metric])


def layer_metric(lay: LayerResult | None, metric: str) -> float:
    """The value ``metric`` colours by for one layer (NaN when not available; +inf stays +inf)."""
    if lay is None:
        return math.nan
    if metric == "rank_key":
        return lay.isolated.effective_sqnr_db if lay.isolated is not None else math.nan
    if metric == "isolated":
        return lay.isolated.sqnr_db if lay.isolated is not None else math.nan
    if metric == "cumulative":
        return lay.cumulative.sqnr_db
    if metric == "amplification":
        return lay.amplification if lay.amplification is not None else math.nan
    if metric == "kernel_gap":
        gap = (lay.deployed or {}).get("kernel_gap_db")
        return math.nan if gap is None else gap
    raise ValueError(metric)


def fmt_db(v: float | None, digits: int = 1) -> str:
    """``workbench.formatting.fmt_db`` with the GUI's dash for a missing figure (the same text otherwise)."""
    return formatting.fmt_db(v, digits, none=NONE)
