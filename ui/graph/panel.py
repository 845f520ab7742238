"""The graph tab: toolbar (colour metric, fit, zoom, search, Netron), the canvas, and the legend.

It reads the workspace (shown run, recipe, selection) and writes only the selection; the colour
metric is a preference.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QStringListModel, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QCompleter,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from workbench.app.layout import GraphLayout
from workbench.app.workspace import Workspace

from ..colors import METRICS, fmt_db, layer_metric, scale_for
from .legend import LegendWidget
from .view import GraphView

MAX_MATCHES = 500


class GraphPanel(QWidget):
    """The model graph coloured by the chosen metric, synced with the workspace selection."""

    sigOpenNetron = Signal()
    sigMetricChanged = Signal(str)

    def __init__(self, workspace: Workspace, metric: str = "rank_key", parent=None):
        super().__init__(parent)
        self.ws = workspace
        self.graph = None
        self.layout_: GraphLayout | None = None
        self._index: dict[str, int] = {}
        self._match_list: list[int] = []
        self._match_pos = -1

        bar = QHBoxLayout()
        bar.setContentsMargins(6, 4, 6, 4)
        bar.addWidget(QLabel("Colour by"))
        self.metric_box = QComboBox()
        for key, label in METRICS.items():
            self.metric_box.addItem(label, key)
        self.metric_box.setCurrentIndex(max(self.metric_box.findData(metric), 0))
        self.metric_box.currentIndexChanged.connect(self._metric_changed)
        bar.addWidget(self.metric_box)
        for text, tip, slot in (("Fit", "Show the whole graph (F)", self.fit),
                                ("−", "Zoom out (-)", lambda: self.view.zoom(1 / 1.25)),
                                ("+", "Zoom in (+)", lambda: self.view.zoom(1.25))):
            b = QToolButton()
            b.setText(text)
            b.setToolTip(tip)
            b.clicked.connect(slot)
            bar.addWidget(b)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Find node by name…  (Enter: next match)")
        self.search.setClearButtonEnabled(True)
        self.search.setMinimumWidth(220)
        self._completer_model = QStringListModel(self)
        comp = QCompleter(self._completer_model, self)
        comp.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        comp.setFilterMode(Qt.MatchFlag.MatchContains)
        self.search.setCompleter(comp)
        self.search.textChanged.connect(self._search_changed)
        self.search.returnPressed.connect(self.next_match)
        bar.addWidget(self.search, 1)
        self.match_label = QLabel("")
        bar.addWidget(self.match_label)
        self.netron_button = QToolButton()
        self.netron_button.setText("Open in Netron")
        self.netron_button.setToolTip("Show this model in Netron for every attribute and tensor shape "
                                      "(served on 127.0.0.1 only)")
        self.netron_button.clicked.connect(self.sigOpenNetron)
        bar.addWidget(self.netron_button)

        self.view = GraphView(self)
        self.view.tooltip_for = self._tooltip
        self.view.sigNodeClicked.connect(self._clicked)
        self.view.sigNodeDoubleClicked.connect(lambda i: self.view.center_on_node(i, zoom_in=True))
        self.view.sigBackgroundClicked.connect(lambda: self.ws.select((), source=self))
        self.legend = LegendWidget(self.view)
        self.legend.move(10, 10)
        self.placeholder = QLabel("Open a model (File → Open, Ctrl+O, or drop a file here) or try the demo "
                                  "(File → Open demo).", self.view)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setStyleSheet("color:#5f6b78; font-size:14px;")

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addLayout(bar)
        lay.addWidget(self.view, 1)

        ev = workspace.events
        ev.current.connect(lambda *_: self.refresh_colors())
        ev.recipe.connect(lambda *_: self.refresh_badges())
        ev.selection.connect(self._selection_changed)
        self.refresh_colors()

    @property
    def metric(self) -> str:
        return self.metric_box.currentData()

    def resizeEvent(self, event):
        super().resizeEvent(event)
        self.placeholder.setGeometry(self.view.rect())

    # -- model ----------------------------------------------------------------------------------------
    def set_graph(self, graph, layout: GraphLayout | None) -> None:
        """Show ``graph`` drawn with ``layout`` (None clears the canvas)."""
        self.graph, self.layout_ = graph, layout
        self._index = layout.index() if layout else {}
        ops = [graph.node(n).op_type for n in layout.names] if (graph is not None and layout) else None
        self.view.set_layout(layout, ops)
        self.placeholder.setVisible(layout is None)
        self._completer_model.setStringList(layout.names if layout else [])
        self.refresh_colors()
        self.refresh_badges()
        self._selection_changed(self.ws.selection, None)
        self.view.show_default()

    def fit(self) -> None:
        self.view.fit()

    # -- colours, flags, badges ----------------------------------------------------------------------
    def _metric_changed(self) -> None:
        self.refresh_colors()
        self.sigMetricChanged.emit(self.metric)

    def metric_values(self) -> np.ndarray:
        """The chosen metric per node of the layout (NaN where the node has no result)."""
        run = self.ws.current_run
        names = self.layout_.names if self.layout_ else []
        if run is None:
            return np.full(len(names), np.nan)
        by = self._results_by_node(run)
        return np.array([layer_metric(by.get(n), self.metric) for n in names], dtype=np.float64)

    def _results_by_node(self, run) -> dict:
        """Each layer's result, also under the fused Relu/Clip node that produces its output tensor."""
        by = {}
        producer = self.graph.producer if self.graph is not None else {}
        for lay in run.result.layers:
            by[lay.node] = lay
            p = producer.get(lay.output)
            if p is not None and p not in by:
                by[p] = lay
        return by

    def refresh_colors(self) -> None:
        vals = self.metric_values()
        scale = scale_for(self.metric, vals)
        self.legend.set_scale(scale)
        self.legend.setVisible(self.layout_ is not None)
        if self.view.nodes is None:
            return
        run = self.ws.current_run
        flagged = np.zeros(len(self.layout_.names), dtype=bool)
        if run is not None:
            for lay in run.result.layers:
                i = self._index.get(lay.node)
                if i is not None and lay.flagged:
                    flagged[i] = True
        self.view.nodes.set_fill(scale.bins(vals), scale.palette())
        self.view.nodes.set_flags(flagged, self._badges())

    def _badges(self) -> dict[int, str]:
        run = self.ws.current_run
        ran = run.recipe if run else None
        out = {}
        names = set(self.ws.recipe.layers) | (set(ran.layers) if ran else set())
        for n in names:
            i = self._index.get(n)
            if i is None:
                continue
            p = self.ws.recipe.precision_of(n)
            pending = ran is not None and ran.precision_of(n) != p
            if p != "int8" or pending:
                out[i] = p.upper() + ("*" if pending else "")
            elif self.ws.recipe.percentile_of(n) is not None:
                pend = ran is not None and ran.percentile_of(n) != self.ws.recipe.percentile_of(n)
                out[i] = f"p{self.ws.recipe.percentile_of(n):g}" + ("*" if pend else "")
        return out

    def refresh_badges(self) -> None:
        if self.view.nodes is not None:
            self.view.nodes.set_flags(self.view.nodes.flagged, self._badges())

    def _tooltip(self, i: int) -> str:
        name = self.layout_.names[i]
        op = self.graph.node(name).op_type if self.graph is not None else ""
        lines = [f"<b>{_esc(name)}</b> ({_esc(op)})", f"precision: {self.ws.recipe.precision_of(name).upper()}"]
        run = self.ws.current_run
        lay = self._results_by_node(run).get(name) if run is not None else None
        if lay is not None and lay.node != name:
            lines.append(f"fused into <b>{_esc(lay.node)}</b> (its output is that layer's output):")
        if lay is not None:
            iso = lay.isolated.effective_sqnr_db if lay.isolated else None
            lines.append(f"isolated SQNR {fmt_db(iso)} dB · cumulative {fmt_db(lay.cumulative.effective_sqnr_db)} dB")
            if lay.amplification is not None:
                lines.append(f"amplification {fmt_db(lay.amplification)} dB")
            d = lay.deployed
            if d and d.get("kernel_gap_db") is not None:
                lines.append(f"deployed kernels: SQNR {fmt_db(d['sqnr_db'])} dB · kernel gap "
                             f"{fmt_db(d['kernel_gap_db'], 2)} dB · {100 * d['lsb_diff_share']:.2f}% ≥ 1 LSB")
            for h in lay.hints[:3]:
                lines.append(f"• {_esc(h.message)}")
        return "<br>".join(lines)

    # -- selection ------------------------------------------------------------------------------------
    def _clicked(self, i: int, additive: bool) -> None:
        name = self.layout_.names[i]
        sel = list(self.ws.selection)
        if additive:
            sel = [n for n in sel if n != name] if name in sel else sel + [name]
        else:
            sel = [name]
        self.ws.select(sel, source=self)

    def _selection_changed(self, sel, source) -> None:
        if self.view.nodes is None:
            return
        idx = {self._index[n] for n in sel if n in self._index}
        self.view.nodes.set_selected(idx)
        edge_ids = [k for k, (a, b, _) in enumerate(self.layout_.edges) if a in idx or b in idx] if idx else []
        self.view.edges.set_highlight(edge_ids)
        if source is not self and sel and sel[0] in self._index:
            i = self._index[sel[0]]
            if not self.view.node_visible(i):
                self.view.center_on_node(i)

    # -- search ----------------------------------------------------------------------------------------
    def _search_changed(self, text: str) -> None:
        text = text.strip().lower()
        if not text or self.layout_ is None:
            self._match_list = []
        else:
            self._match_list = [i for i, n in enumerate(self.layout_.names) if text in n.lower()][:MAX_MATCHES]
        self._match_pos = -1
        if self.view.nodes is not None:
            self.view.nodes.set_matches(set(self._match_list))
        self.match_label.setText(f"{len(self._match_list)} match(es)" if text else "")

    def next_match(self) -> None:
        """Select and show the next node matching the search text."""
        if not self._match_list:
            return
        self._match_pos = (self._match_pos + 1) % len(self._match_list)
        i = self._match_list[self._match_pos]
        self.ws.select([self.layout_.names[i]], source=self)
        self.view.center_on_node(i, zoom_in=True)


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
