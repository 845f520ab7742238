"""Histogram of the selected layer's output with the range each calibration method picks, and the range
the recipe uses as two draggable clip lines: dropping a line sets that layer's percentile override.

Everything comes from the calibration histograms already collected, so dragging never runs the model;
the summary under the plot (clipped share, predicted SQNR) follows the line while it moves,
rate-limited with a SignalProxy.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from analyzers.calibration.clipping import clip_summary, lower_line_movable, percentile_for_clip
from analyzers.calibration.histogram import HistogramSnapshot, trim
from analyzers.calibration.methods import METHODS
from workbench.app.workspace import Workspace
from workbench.recipe_ranges import tensor_ranges

from .common import hint_label, key_html, plot_widget, short_name

DISPLAY_BINS = 240
METHOD_COLORS = {"minmax": "#6c757d", "percentile": "#2ca02c", "entropy": "#9467bd", "mse": "#8c564b"}


def display_histogram(h: HistogramSnapshot, bins: int = DISPLAY_BINS) -> tuple[np.ndarray, np.ndarray]:
    """(edges, counts) with at most ``bins`` bars over the occupied range."""
    t = trim(h)
    counts, edges = t.counts, t.edges
    if len(counts) > bins:
        k = int(np.ceil(len(counts) / bins))
        pad = (-len(counts)) % k
        counts = np.concatenate([counts, np.zeros(pad, dtype=counts.dtype)]).reshape(-1, k).sum(axis=1)
        edges = np.concatenate([edges[::k], [edges[-1] + pad * (edges[1] - edges[0])]])[: len(counts) + 1]
    return edges, counts


class HistogramPlot(QWidget):
    """Calibration histogram of the selected layer's output tensor with method ranges and clip lines."""

    def __init__(self, workspace: Workspace, calibration: Callable[[], object], log_counts: bool = True, parent=None):
        super().__init__(parent)
        self.ws = workspace
        self.calibration = calibration  # () -> CalibrationData | None (None until the model is prepared)
        self.node: str | None = None
        self.tensor: str | None = None
        self.hist: HistogramSnapshot | None = None
        self.spec = None
        self._ranges_text = ""

        top = QHBoxLayout()
        self.title = QLabel("Select a layer to see its calibration histogram.")
        self.title.setStyleSheet("font-weight:bold;")
        top.addWidget(self.title, 1)
        self.log_box = QCheckBox("Log counts")
        self.log_box.setChecked(log_counts)
        self.log_box.toggled.connect(lambda *_: self.refresh())
        top.addWidget(self.log_box)
        self.reset_button = QPushButton("Use global method")
        self.reset_button.setToolTip("Remove this layer's percentile override")
        self.reset_button.clicked.connect(lambda: self.node and self.ws.set_percentile(self.node, None))
        top.addWidget(self.reset_button)

        self.plot = plot_widget("count", "value")
        pi = self.plot.getPlotItem()
        self.bars = pg.PlotCurveItem(x=[0.0, 1.0], y=[0.0], stepMode="center", fillLevel=0, brush=pg.mkBrush(80, 120, 170, 150),
                                     pen=pg.mkPen(60, 90, 140))
        pi.addItem(self.bars)
        self.method_lines: dict[str, list[pg.InfiniteLine]] = {}
        for m, c in METHOD_COLORS.items():
            pen = pg.mkPen(c, width=1.5, style=Qt.PenStyle.DashLine)
            lines = [pg.InfiniteLine(angle=90, pen=pen) for _ in range(2)]
            for ln in lines:
                pi.addItem(ln)
            self.method_lines[m] = lines
        clip_pen = pg.mkPen("#d62728", width=3)
        self.clip_lo = pg.InfiniteLine(angle=90, pen=clip_pen, movable=True, hoverPen=pg.mkPen("#ff4444", width=5),
                                       label="clip", labelOpts={"position": 0.92, "color": "#d62728"})
        self.clip_hi = pg.InfiniteLine(angle=90, pen=clip_pen, movable=True, hoverPen=pg.mkPen("#ff4444", width=5),
                                       label="clip", labelOpts={"position": 0.92, "color": "#d62728"})
        for ln, side in ((self.clip_lo, "lo"), (self.clip_hi, "hi")):
            pi.addItem(ln)
            ln.sigPositionChangeFinished.connect(lambda line, side=side: self._drag_finished(line, side))
        self._proxy = pg.SignalProxy(self.clip_hi.sigPositionChanged, rateLimit=20, slot=lambda *_: self._dragging("hi"))
        self._proxy_lo = pg.SignalProxy(self.clip_lo.sigPositionChanged, rateLimit=20, slot=lambda *_: self._dragging("lo"))

        self.summary = hint_label()
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(top)
        lay.addWidget(self.plot, 1)
        lay.addWidget(self.summary)
        ev = workspace.events
        ev.selection.connect(lambda *_: self.refresh())
        ev.recipe.connect(self._recipe_changed)
        ev.current.connect(lambda *_: self.refresh())
        self.refresh()

    # -- data ------------------------------------------------------------------------------------------
    def _tensor_for(self, node: str, calib) -> str | None:
        lay = self.ws.layer_result(node)
        if lay is not None and lay.output in calib.histograms:
            return lay.output
        g = self.ws.graph
        if g is not None and g.has_node(node):
            for t in reversed(g.layer_outputs(node)):
                if t in calib.histograms:
                    return t
        return None

    def _recipe_changed(self, nodes) -> None:
        if not nodes or self.node in nodes:
            self.refresh()

    def refresh(self) -> None:
        sel = self.ws.selection
        calib = self.calibration()
        self.node = sel[0] if sel else None
        self.hist = None
        if self.node is None or calib is None or self.ws.graph is None:
            self._show_empty("Select a layer to see its calibration histogram." if calib is not None else
                             "The calibration histograms appear once the model and data are loaded.")
            return
        self.tensor = self._tensor_for(self.node, calib)
        if self.tensor is None:
            self._show_empty(f"{short_name(self.ws, self.node)}: its output is not quantized, so it has no "
                             "calibration histogram.")
            return
        self.hist = calib.histograms[self.tensor]
        rng = tensor_ranges(self.ws.graph, self.ws.recipe, calib, [self.tensor])[self.tensor]
        self.spec = rng.spec
        edges, counts = display_histogram(self.hist)
        y = np.log10(counts + 1.0) if self.log_box.isChecked() else counts.astype(float)
        self.plot.setLabel("left", "log10(count + 1)" if self.log_box.isChecked() else "count")
        self.bars.setData(edges, y)
        pct = self.ws.recipe.settings.percentile
        ranges = {m: calib.derived_range(self.tensor, m, self.spec, pct) for m in METHODS}  # remembered per tensor
        for m, (lo, hi) in ranges.items():
            a, b = self.method_lines[m]
            a.setPos(lo)
            b.setPos(hi)
            a.setVisible(bool(abs(lo - self.hist.min) > 1e-12 * max(1.0, abs(self.hist.min))))
            b.setVisible(True)
        movable_lo = lower_line_movable(self.hist, self.spec)
        for ln in (self.clip_lo, self.clip_hi):
            ln.blockSignals(True)
        self.clip_lo.setPos(rng.lo)
        self.clip_hi.setPos(rng.hi)
        for ln in (self.clip_lo, self.clip_hi):
            ln.blockSignals(False)
        self.clip_lo.setMovable(movable_lo)
        self.clip_lo.setVisible(True)
        self.clip_hi.setVisible(True)
        span = max(edges[-1], rng.hi) - min(edges[0], rng.lo)
        self.plot.setXRange(min(edges[0], rng.lo) - 0.03 * span, max(edges[-1], rng.hi) + 0.03 * span, padding=0)
        self.plot.setYRange(0, float(y.max()) * 1.08 if y.size else 1.0, padding=0)
        src = (f"{rng.method}" + (f" {rng.percentile:g}" if rng.percentile is not None else "")
               + (" (this layer's override)" if rng.override_from else " (global)"))
        self.title.setText(f"{short_name(self.ws, self.node)} → {short_name(self.ws, self.tensor)}   ·   "
                           f"{self.spec.qtype}   ·   range from {src}")
        self.title.setToolTip(f"layer {self.node}\noutput tensor {self.tensor}")
        self.reset_button.setEnabled(self.ws.recipe.percentile_of(self.node) is not None)
        self._ranges_text = key_html([("#d62728", "line", "range used (drag the lines)")] + [
            (METHOD_COLORS[m], "dash", f"{m} [{lo:.4g}, {hi:.4g}]") for m, (lo, hi) in ranges.items()])
        self.summary.setText(clip_summary(self.hist, rng.lo, rng.hi, self.spec)
                             + ("" if movable_lo else "   ·   one-sided data: drag the right line")
                             + "<br>" + self._ranges_text)

    def _show_empty(self, text: str) -> None:
        self.bars.setData([0, 1], [0])
        for lines in self.method_lines.values():
            for ln in lines:
                ln.setVisible(False)
        self.clip_lo.setVisible(False)
        self.clip_hi.setVisible(False)
        self.title.setText(text)
        self.title.setToolTip(self.node or "")
        self.summary.setText("")
        self.reset_button.setEnabled(False)

    # -- dragging ------------------------------------------------------------------------------------------
    def percentile_at(self, value: float, side: str) -> float:
        return percentile_for_clip(self.hist, value, self.spec, side)

    def _dragging(self, side: str) -> None:
        line = self.clip_hi if side == "hi" else self.clip_lo
        if self.hist is None or not line.moving:  # rate-limited echoes after the drop are stale
            return
        p = self.percentile_at(line.value(), side)
        lo, hi = (self.clip_lo.value(), line.value()) if side == "hi" else (line.value(), self.clip_hi.value())
        self.summary.setText(f"percentile {p:.4f}   ·   " + clip_summary(self.hist, lo, max(hi, lo + 1e-12), self.spec)
                             + "<br>" + self._ranges_text)

    def _drag_finished(self, line, side: str) -> None:
        """Map the dropped line to a percentile and store it as this layer's override."""
        if self.hist is None or self.node is None:
            return
        p = round(self.percentile_at(line.value(), side), 4)
        if not self.ws.set_percentile(self.node, p):
            self.refresh()  # snap back to the range the unchanged percentile gives
