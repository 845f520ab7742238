"""Isolated and cumulative effective SQNR of every layer, input to output, with the run compared against.

The effective SQNR (``workbench.formatting.EFFECTIVE_SQNR_DEF``) is what layers are ranked and flagged by, so a
flagged layer is a dip here even when its tensor SQNR is high; a point's tooltip adds the tensor figures (the
Layers table's Isolated and Cumulative columns) and the layer's full name.

Where the cumulative curve falls, error builds up; a dip in the isolated curve at the same place says
that layer causes it. Dashed curves are the 'before' run, so a re-run shows what an edit bought.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QVBoxLayout, QWidget

from workbench.app.workspace import Workspace
from workbench.formatting import EFFECTIVE_SQNR, EFFECTIVE_SQNR_DEF

from ..colors import FLAGGED, fmt_db
from .common import CUM_COLOR, ISO_COLOR, finite_for_display, hint_label, key_html, plot_widget, short_name


class DepthPlot(QWidget):
    """SQNR along the depth of the model; click a point to select its layer."""

    def __init__(self, workspace: Workspace, parent=None):
        super().__init__(parent)
        self.ws = workspace
        self.nodes: list[str] = []
        self.plot = plot_widget(f"{EFFECTIVE_SQNR} (dB)", "layer, input → output (topological order)")
        pi = self.plot.getPlotItem()
        self.before_iso = pi.plot([], pen=pg.mkPen(ISO_COLOR, width=1.5, style=pg.QtCore.Qt.PenStyle.DashLine))
        self.before_cum = pi.plot([], pen=pg.mkPen(CUM_COLOR, width=1.5, style=pg.QtCore.Qt.PenStyle.DashLine))
        self.iso = pi.plot([], pen=pg.mkPen(ISO_COLOR, width=2.2))
        self.cum = pi.plot([], pen=pg.mkPen(CUM_COLOR, width=2.2))
        # one item per look (uniform pen/brush): pyqtgraph renders each symbol once, not once per point
        self.iso_pts = pg.ScatterPlotItem(size=9, hoverable=True, tip=self._tip, hoverSize=13,
                                          brush=pg.mkBrush(ISO_COLOR), pen=pg.mkPen("w", width=1))
        self.cum_pts = pg.ScatterPlotItem(size=9, hoverable=True, tip=self._tip, hoverSize=13,
                                          brush=pg.mkBrush(CUM_COLOR), pen=pg.mkPen("w", width=1))
        self.flag_pts = pg.ScatterPlotItem(size=15, brush=None, pen=pg.mkPen(FLAGGED, width=2.5))
        for item in (self.flag_pts, self.iso_pts, self.cum_pts):
            pi.addItem(item)
        self.iso_pts.sigClicked.connect(self._clicked)
        self.cum_pts.sigClicked.connect(self._clicked)
        self.cursor = pg.InfiniteLine(angle=90, pen=pg.mkPen("#1f6fd1", width=2))
        self.cursor.setVisible(False)
        pi.addItem(self.cursor)
        for c in (self.iso, self.cum, self.before_iso, self.before_cum):
            c.setClipToView(True)
            c.setDownsampling(auto=True)
        self.note = hint_label()
        self.note.setTextFormat(pg.QtCore.Qt.TextFormat.RichText)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.plot, 1)
        lay.addWidget(self.note)
        ev = workspace.events
        ev.current.connect(lambda *_: self.refresh())
        ev.activity.connect(lambda *_: self.ws.current_run is None and self.refresh())
        ev.selection.connect(lambda *_: self._update_cursor())
        self.refresh()

    def refresh(self) -> None:
        run = self.ws.current_run
        if run is None:
            for c in (self.iso, self.cum, self.before_iso, self.before_cum):
                c.setData([], [])
            for item in (self.iso_pts, self.cum_pts, self.flag_pts):
                item.setData([])
            self.nodes = []
            self.note.setText("Analysing… the chart appears when it finishes." if self.ws.activity == "Analysing"
                              else "Run the analysis to see where along the model the error comes from.")
            self._update_cursor()
            return
        layers = run.result.layers
        self.nodes = [lay.node for lay in layers]
        x = np.arange(len(layers), dtype=float)
        iso = finite_for_display([lay.isolated.effective_sqnr_db if lay.isolated else None for lay in layers])
        cum = finite_for_display([lay.cumulative.effective_sqnr_db for lay in layers])
        self.iso.setData(x, iso, connect="finite")
        self.cum.setData(x, cum, connect="finite")
        names = np.array(self.nodes, dtype=object)
        for item, y in ((self.iso_pts, iso), (self.cum_pts, cum)):
            ok = np.isfinite(y)
            item.setData(x=x[ok], y=y[ok], data=names[ok])
        flagged = np.array([lay.flagged for lay in layers], dtype=bool)
        fx = np.concatenate([x[flagged], x[flagged]])
        fy = np.concatenate([iso[flagged], cum[flagged]])
        ok = np.isfinite(fy)
        self.flag_pts.setData(x=fx[ok], y=fy[ok])
        before = self.ws.baseline_run
        key = [(ISO_COLOR, "line", "isolated: the error the layer causes"),
               (CUM_COLOR, "line", "cumulative: the error accumulated so far")]
        if before is not None:
            key.append(("#555", "dash", f"{before.label.split(':')[0]} (before)"))
        key.append((FLAGGED, "ring", "flagged"))
        self.note.setText(key_html(key) + f"&nbsp;&nbsp;&nbsp;·&nbsp; {EFFECTIVE_SQNR_DEF}; showing {run.label}; "
                          "∞ dB drawn at 80")
        if before is not None:
            pos = {n: i for i, n in enumerate(self.nodes)}
            bl = [b for b in before.result.layers if b.node in pos]
            bx = np.array([pos[b.node] for b in bl], dtype=float)
            self.before_iso.setData(bx, finite_for_display([b.isolated.effective_sqnr_db if b.isolated else None
                                                            for b in bl]), connect="finite")
            self.before_cum.setData(bx, finite_for_display([b.cumulative.effective_sqnr_db for b in bl]),
                                    connect="finite")
        else:
            self.before_iso.setData([], [])
            self.before_cum.setData([], [])
        self.plot.getPlotItem().enableAutoRange()
        self._update_cursor()

    def _tip(self, x, y, data):
        lay = self.ws.layer_result(data)
        if lay is None:
            return data
        iso = lay.isolated
        return (f"{short_name(self.ws, data)} ({lay.op_type})\n{data}\n"
                f"{EFFECTIVE_SQNR}: isolated {fmt_db(iso.effective_sqnr_db if iso else None)} dB, "
                f"cumulative {fmt_db(lay.cumulative.effective_sqnr_db)} dB\n"
                f"tensor SQNR: isolated {fmt_db(iso.sqnr_db if iso else None)} dB, "
                f"cumulative {fmt_db(lay.cumulative.sqnr_db)} dB")

    def _clicked(self, item, points, ev) -> None:
        if len(points):
            self.ws.select([points[0].data()], source=self)

    def _update_cursor(self) -> None:
        sel = [n for n in self.ws.selection if n in self.nodes]
        if sel:
            self.cursor.setPos(self.nodes.index(sel[0]))
        self.cursor.setVisible(bool(sel))
