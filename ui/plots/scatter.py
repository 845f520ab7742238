"""FP32 against INT8 values of the selected layer's output (from the run's value reservoir).

Points on the diagonal are exact; a horizontal band at the top means clipping, vertical stripes mean
a coarse grid, and a cloud off the diagonal is error carried from upstream.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QVBoxLayout, QWidget

from workbench.app.workspace import Workspace

from .common import hint_label, plot_widget, short_name

MAX_POINTS = 5000


class ScatterPlot(QWidget):
    """Scatter of (FP32, INT8) pairs with the y = x diagonal."""

    def __init__(self, workspace: Workspace, parent=None):
        super().__init__(parent)
        self.ws = workspace
        self.plot = plot_widget("INT8 model value", "FP32 model value")
        self.points = pg.ScatterPlotItem(size=4, pen=None, brush=pg.mkBrush(31, 119, 180, 110), pxMode=True)
        self.diag = pg.PlotCurveItem(pen=pg.mkPen("#d62728", width=1.5, style=pg.QtCore.Qt.PenStyle.DashLine))
        pi = self.plot.getPlotItem()
        pi.addItem(self.points)
        pi.addItem(self.diag)
        self.note = hint_label()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.plot, 1)
        lay.addWidget(self.note)
        workspace.events.selection.connect(lambda *_: self.refresh())
        workspace.events.current.connect(lambda *_: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        sel = self.ws.selection
        lay = self.ws.layer_result(sel[0]) if sel else None
        run = self.ws.current_run
        pair = run.result.reservoirs.get(lay.output) if (run is not None and lay is not None) else None
        if pair is None:
            self.points.setData([])
            self.diag.setData([], [])
            if lay is None:
                self.note.setText("Select an analysed layer to compare its FP32 and INT8 values.")
            else:
                self.note.setText(f"No values were kept for {lay.output} in this run (runs loaded from a project "
                                  "keep none): re-run to collect them.")
            return
        fp, q = (np.asarray(a, dtype=np.float64).ravel() for a in pair)
        n = min(fp.size, q.size)
        fp, q = fp[:n], q[:n]
        if n > MAX_POINTS:
            keep = np.random.default_rng(0).choice(n, MAX_POINTS, replace=False)
            fp, q = fp[keep], q[keep]
        self.points.setData(fp, q)
        lo = float(min(fp.min(initial=0), q.min(initial=0)))
        hi = float(max(fp.max(initial=1), q.max(initial=1)))
        self.diag.setData([lo, hi], [lo, hi])
        self.plot.getPlotItem().enableAutoRange()
        self.note.setToolTip(f"layer {lay.node}\noutput tensor {lay.output}")
        self.note.setText(f"{short_name(self.ws, lay.node)} → {short_name(self.ws, lay.output)}: {n} sampled values."
                          " On the dashed line: exact; "
                          "a flat top: clipping; steps: a coarse grid; a wide cloud: error from upstream.")
