"""Per-sample × per-layer cumulative SQNR: shows whether error is everywhere or a few inputs only.

A vertical band is a layer that hurts every sample; a horizontal band is a sample (an outlier input)
that breaks many layers. Click a column to select that layer.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QVBoxLayout, QWidget

from workbench.app.workspace import Workspace

from .common import DISPLAY_MAX_DB, hint_label, sqnr_colormap


class _Image(pg.ImageItem):
    """An image that reports which pixel was clicked."""

    def __init__(self, on_click):
        super().__init__()
        self._on_click = on_click

    def mouseClickEvent(self, ev):
        p = ev.pos()
        self._on_click(int(p.x()), int(p.y()))
        ev.accept()


class HeatmapPlot(QWidget):
    """Image of cumulative SQNR (dB): x = layer in topological order, y = evaluation sample."""

    def __init__(self, workspace: Workspace, parent=None):
        super().__init__(parent)
        self.ws = workspace
        self.nodes: list[str] = []
        self.win = pg.GraphicsLayoutWidget()
        self.plot = self.win.addPlot()
        self.plot.setLabel("bottom", "layer, input → output (click to select)")
        self.plot.setLabel("left", "evaluation sample")
        self.plot.setMenuEnabled(False)
        self.plot.invertY(True)
        self.image = _Image(self._clicked)
        self.plot.addItem(self.image)
        self.colorbar = pg.ColorBarItem(values=(0, 40), colorMap=sqnr_colormap(), label="cumulative SQNR (dB)",
                                        interactive=False)
        self.colorbar.setImageItem(self.image, insert_in=self.plot)
        self.cursor = pg.InfiniteLine(angle=90, pen=pg.mkPen("#1f6fd1", width=2))
        self.plot.addItem(self.cursor)
        self.note = hint_label()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.win, 1)
        lay.addWidget(self.note)
        workspace.events.current.connect(lambda *_: self.refresh())
        workspace.events.activity.connect(lambda *_: self.ws.current_run is None and self.refresh())
        workspace.events.selection.connect(lambda *_: self._update_cursor())
        self.refresh()

    def refresh(self) -> None:
        run = self.ws.current_run
        h = run.result.heatmap if run is not None else None
        if h is None or np.size(h) == 0:
            self.image.clear()
            self.nodes = []
            self.note.setText("Analysing… the chart appears when it finishes." if self.ws.activity == "Analysing"
                              else "Run the analysis to see the error of every layer on every evaluation sample.")
            self._update_cursor()
            return
        self.nodes = [lay.node for lay in run.result.layers]
        a = np.array(h, dtype=np.float64)
        a = np.where(np.isposinf(a), DISPLAY_MAX_DB, a)
        a = np.nan_to_num(a, nan=0.0, neginf=0.0)
        self.image.setImage(a, levels=(0, 40), autoLevels=False)  # row-major: rows = samples, cols = layers
        self.plot.setRange(xRange=(0, a.shape[1]), yRange=(0, a.shape[0]), padding=0.02)
        worst = np.argsort(np.nanmin(a, axis=1))[:3]
        self.note.setText(f"{a.shape[0]} samples × {a.shape[1]} layers. Samples with the worst error: "
                          + ", ".join(f"#{int(i)}" for i in worst) + ". Colours: red < 10 dB, green ≥ 40 dB.")
        self._update_cursor()

    def _clicked(self, x: int, y: int) -> None:
        if 0 <= x < len(self.nodes):
            self.ws.select([self.nodes[x]], source=self)

    def _update_cursor(self) -> None:
        sel = [n for n in self.ws.selection if n in self.nodes]
        if sel:
            self.cursor.setPos(self.nodes.index(sel[0]) + 0.5)
        self.cursor.setVisible(bool(sel))
