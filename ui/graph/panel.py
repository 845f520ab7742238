"""The graph tab: toolbar (colour metric, fit, zoom, search, Netron), the canvas, and the legend.

It reads the workspace (shown run, recipe, selection) and writes only the selection; the colour
metric is a preference.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QStringListModel, Qt, Signal
from PySide6.QtGui import QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QCompleter,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QSizePolicy,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from workbench.app.layout import GraphLayout, fold_long, layered_layout
from workbench.app.names import NameShortener
from workbench.app.scopes import ScopeTree, ScopeView
from workbench.app.workspace import Workspace
from workbench.formatting import EFFECTIVE_SQNR

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
        self.layout_: GraphLayout | None = None  # what the canvas draws: one box per unit of ``scope_view``
        self._base_layout: GraphLayout | None = None  # every node, as the engine laid it out
        self.tree: ScopeTree | None = None
        self.scope_view: ScopeView | None = None
        self.expanded: set = set()
        self.shortener = NameShortener(())
        self._index: dict[str, int] = {}  # node name -> index of the box drawing it (its block when collapsed)
        self._match_list: list[int] = []
        self._last_selection: set[str] = set()
        self._match_pos = -1

        # a tool bar, not a row of widgets: when the window is narrow (a small or scaled screen) what does not fit
        # goes behind its » button instead of widening the window past the screen
        bar = QToolBar()
        bar.setContentsMargins(4, 0, 4, 0)
        self.metric_box = QComboBox()
        for key, label in METRICS.items():
            self.metric_box.addItem(label, key)
        self.metric_box.setCurrentIndex(max(self.metric_box.findData(metric), 0))
        self.metric_box.currentIndexChanged.connect(self._metric_changed)
        self.metric_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.metric_box.setMinimumContentsLength(14)
        self.metric_box.setToolTip("Colour the boxes by this figure (a block: its worst member)")
        bar.addWidget(self.metric_box)
        for text, tip, slot in (("Fit", "Show the whole graph (F)", self.fit),
                                ("Fit flagged", "Show every flagged layer of the shown run", self.fit_flagged),
                                ("−", "Zoom out (-)", lambda: self.view.zoom(1 / 1.25)),
                                ("+", "Zoom in (+)", lambda: self.view.zoom(1.25))):
            b = QToolButton()
            b.setText(text)
            b.setToolTip(tip)
            b.clicked.connect(slot)
            bar.addWidget(b)
        self.blocks_button = QToolButton()
        self.blocks_button.setText("Blocks")
        self.blocks_button.setToolTip("Nodes grouped by name scope: open every block, or group them again")
        self.blocks_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        blocks_menu = QMenu(self.blocks_button)
        blocks_menu.addAction("Expand all", self.expand_all)
        blocks_menu.addAction("Collapse (as opened)", self.collapse_default)
        self.blocks_button.setMenu(blocks_menu)
        self.blocks_action = bar.addWidget(self.blocks_button)
        self.blocks_action.setVisible(False)
        self.netron_button = QToolButton()
        self.netron_button.setText("Netron")
        self.netron_button.setToolTip("Show this model in Netron for every attribute and tensor shape "
                                      "(served on 127.0.0.1 only)")
        self.netron_button.clicked.connect(self.sigOpenNetron)
        bar.addWidget(self.netron_button)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Find node by name…  (Enter: next match)")
        self.search.setClearButtonEnabled(True)
        self.search.setMinimumWidth(160)
        self.search.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self._completer_model = QStringListModel(self)
        comp = QCompleter(self._completer_model, self)
        comp.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        comp.setFilterMode(Qt.MatchFlag.MatchContains)
        self.search.setCompleter(comp)
        self.search.textChanged.connect(self._search_changed)
        self.search.returnPressed.connect(self.next_match)
        bar.addWidget(self.search)
        self.match_label = QLabel("")
        bar.addWidget(self.match_label)

        self.view = GraphView(self)
        self.view.tooltip_for = self._tooltip
        self.view.sigNodeClicked.connect(self._clicked)
        self.view.sigNodeDoubleClicked.connect(self._double_clicked)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._context_menu)
        copy = QShortcut(QKeySequence(QKeySequence.StandardKey.Copy), self.view)
        copy.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        copy.activated.connect(self.copy_selected_names)
        self.view.sigBackgroundClicked.connect(lambda: self.ws.select((), source=self))
        self.legend = LegendWidget(self)  # in the layout under the canvas: it never covers a node
        self.placeholder = QLabel("Open a model (File → Open, Ctrl+O, or drop a file here) or try the demo "
                                  "(File → Open demo).", self.view)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setStyleSheet("color:#5f6b78; font-size:14px;")

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(bar)
        lay.addWidget(self.view, 1)
        lay.addWidget(self.legend)

        ev = workspace.events
        ev.current.connect(lambda *_: self.refresh_colors())
        ev.recipe.connect(lambda *_: self.refresh_badges())
        ev.selection.connect(self._selection_changed)
        ev.view.connect(lambda *_: self.restore_graph_state())
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
        self.graph, self._base_layout = graph, layout
        if graph is None or layout is None:
            self.tree, self.scope_view, self.expanded = None, None, set()
            self.shortener = NameShortener(())
        else:
            self.tree = ScopeTree(layout.names, [(a, b) for a, b, _ in graph.edges()])
            self.expanded = self._saved_expanded() or self.tree.initial_expanded()
            self.shortener = NameShortener(layout.names)
        self.placeholder.setVisible(layout is None)
        self.blocks_action.setVisible(self.tree is not None and self.tree.groupable)
        self._completer_model.setStringList(layout.names if layout else [])
        self._relayout()
        self.view.show_default()

    def _relayout(self) -> None:
        """Lay out what ``expanded`` shows (blocks for collapsed scopes) and redraw it."""
        if self.tree is None:
            self.layout_, self.scope_view, self._index = None, None, {}
            self.view.set_layout(None)
            self.refresh_colors()
            return
        view = self.tree.view(self.expanded)
        if len(view.units) == len(self._base_layout.names):
            layout = self._base_layout  # every node shown: the engine's layout (same order)
        else:
            layout = layered_layout(view.units, view.edges)
        vp = self.view.viewport().size()
        aspect = vp.width() / vp.height() if vp.height() > 100 and vp.width() > 100 else 1.6
        layout = fold_long(layout, aspect=min(max(aspect, 0.8), 3.0))  # columns shaped like the canvas
        self.scope_view, self.layout_ = view, layout
        self._index = dict(view.unit_of)
        groups = np.array([p is not None for p in view.paths], dtype=bool)
        titles, subs = [], []
        for i, (unit, _) in enumerate(view.units):
            if groups[i]:
                titles.append("▸ " + view.label(i))
                subs.append(f"{len(view.members[i])} nodes")
            else:
                titles.append(self.graph.node(unit).op_type)
                subs.append(None)
        self.view.set_layout(layout, titles, subs, groups, self.shortener)
        self.refresh_colors()
        self.refresh_badges()
        self._selection_changed(self.ws.selection, self)

    # -- state kept in the project ----------------------------------------------------------------------
    def graph_state(self) -> dict | None:
        """Which scope blocks are open, as JSON-able lists of scope segments (empty for an ungrouped graph; None
        while no graph is shown, so a project opened but not yet drawn keeps what it saved)."""
        if self.tree is None:
            return None
        if not self.tree.groupable:
            return {}
        return {"expanded": sorted(list(p) for p in self.expanded if p)}

    def _saved_expanded(self) -> set | None:
        """The open scopes the project saved for this graph, or None (nothing saved, or none of it is a scope of
        this graph: the model changed or grouping works differently now)."""
        state = self.ws.view_state.get("graph")
        if self.tree is None or not self.tree.groupable or not isinstance(state, dict):
            return None
        saved = state.get("expanded")
        if not isinstance(saved, list):
            return None
        paths = {tuple(p) for p in saved if isinstance(p, list) and all(isinstance(x, str) for x in p)}
        paths &= self.tree.all_scopes()
        if not paths and saved:
            return None
        return {()} | self.tree._pass_through_below(()) | paths  # noqa: SLF001 - the tree's own closure

    def restore_graph_state(self) -> None:
        """Open the blocks the project saved (called when a project is applied to a graph already shown)."""
        expanded = self._saved_expanded()
        if expanded is not None and expanded != self.expanded:
            self.expanded = expanded
            self._relayout()
            self.view.show_default()

    def is_block(self, i: int) -> bool:
        return self.scope_view is not None and self.scope_view.paths[i] is not None

    def expand(self, i: int) -> None:
        """Open block ``i`` (its members show in its place)."""
        if self.is_block(i):
            self.expanded.add(self.scope_view.paths[i])
            self._relayout()

    def expand_to(self, node: str) -> bool:
        """Open every block holding ``node``; True when the drawing changed."""
        if self.tree is None or node not in self._index or not self.is_block(self._index[node]):
            return False
        self.expanded |= set(self.tree.ancestors(node))
        self._relayout()
        return True

    def collapse(self, i: int) -> None:
        """Close the innermost open scope around unit ``i`` (a node, or a block inside another)."""
        if self.scope_view is None:
            return
        node = self.scope_view.members[i][0]
        path = self.scope_view.paths[i]
        scopes = [p for p in self.tree.ancestors(node)[1:] if p in self.expanded and not self.tree.pass_through(p)
                  and (path is None or len(p) < len(path))]
        if scopes:
            self.expanded.discard(scopes[-1])
            self._relayout()

    def expand_all(self) -> None:
        if self.tree is not None:
            self.expanded = self.tree.all_scopes()
            self._relayout()
            self.view.show_default()

    def collapse_default(self) -> None:
        if self.tree is not None:
            self.expanded = self.tree.initial_expanded()
            self._relayout()
            self.view.show_default()

    def fit(self) -> None:
        self.view.fit()

    def fit_flagged(self) -> None:
        """Zoom to the boxes holding a flagged layer of the shown run (all of the graph when none is)."""
        idx = np.nonzero(self.view.nodes.flagged)[0] if self.view.nodes is not None else []
        if len(idx):
            self.view.fit_nodes(idx)
        else:
            self.view.fit()

    def _double_clicked(self, i: int) -> None:
        if self.is_block(i):
            self.expand(i)
        else:
            self.view.center_on_node(i, zoom_in=True)

    # -- names: tooltip, copy ----------------------------------------------------------------------
    def unit_name(self, i: int) -> str:
        """The full node name of box ``i``, or a block's full scope."""
        if self.is_block(i):
            return self.tree.scope_name(self.scope_view.paths[i])
        return self.layout_.names[i]

    def copy_selected_names(self) -> None:
        """Full names of the selected nodes to the clipboard, one a line."""
        if self.ws.selection:
            QGuiApplication.clipboard().setText("\n".join(self.ws.selection))

    def _context_menu(self, pos) -> None:
        i = self.view._node_at(pos)  # noqa: SLF001 - the view's own hit test
        menu = QMenu(self)
        if i is not None:
            name = self.unit_name(i)
            menu.addAction("Copy name", lambda: QGuiApplication.clipboard().setText(name))
            if self.is_block(i):
                menu.addAction("Expand block", lambda: self.expand(i))
            if self.tree is not None and self.tree.groupable:
                menu.addAction("Collapse into its scope", lambda: self.collapse(i))
            menu.addSeparator()
        if self.ws.selection:
            menu.addAction(f"Copy {len(self.ws.selection)} selected name(s)", self.copy_selected_names)
        menu.addAction("Fit flagged", self.fit_flagged)
        if self.tree is not None and self.tree.groupable:
            menu.addAction("Expand all", self.expand_all)
            menu.addAction("Collapse all", self.collapse_default)
        menu.exec(self.view.viewport().mapToGlobal(pos))

    # -- colours, flags, badges ----------------------------------------------------------------------
    def _metric_changed(self) -> None:
        self.refresh_colors()
        self.sigMetricChanged.emit(self.metric)

    def metric_values(self) -> np.ndarray:
        """The chosen metric per node of the layout (NaN where the node has no result)."""
        run = self.ws.current_run
        if self.scope_view is None or run is None:
            return np.full(len(self.layout_.names) if self.layout_ else 0, np.nan)
        by = self._results_by_node(run)
        worst = np.nanmin if scale_for(self.metric).higher_is_better else np.nanmax
        out = np.full(len(self.scope_view.units), np.nan)
        for i, members in enumerate(self.scope_view.members):
            vals = [layer_metric(by.get(n), self.metric) for n in members]
            vals = [v for v in vals if not np.isnan(v)]
            if vals:
                out[i] = worst(vals)  # a block shows its worst member
        return out

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
        in_block: dict[int, list[bool]] = {}
        for n in names:
            i = self._index.get(n)
            if i is None:
                continue
            if self.is_block(i):
                in_block.setdefault(i, []).append(ran is not None and ran.layers.get(n) != self.ws.recipe.layers.get(n))
                continue
            p = self.ws.recipe.precision_of(n)
            pending = ran is not None and ran.precision_of(n) != p
            if p != "int8" or pending:
                out[i] = p.upper() + ("*" if pending else "")
            elif self.ws.recipe.percentile_of(n) is not None:
                pend = ran is not None and ran.percentile_of(n) != self.ws.recipe.percentile_of(n)
                out[i] = f"p{self.ws.recipe.percentile_of(n):g}" + ("*" if pend else "")
        for i, pend in in_block.items():
            out[i] = f"{len(pend)} edit{'s' if len(pend) > 1 else ''}" + ("*" if any(pend) else "")
        return out

    def refresh_badges(self) -> None:
        if self.view.nodes is not None:
            self.view.nodes.set_flags(self.view.nodes.flagged, self._badges())

    def _tooltip(self, i: int) -> str:
        if self.is_block(i):
            return self._block_tooltip(i)
        name = self.layout_.names[i]
        op = self.graph.node(name).op_type if self.graph is not None else ""
        lines = [f"<b>{_esc(name)}</b> ({_esc(op)})", f"precision: {self.ws.recipe.precision_of(name).upper()}"]
        run = self.ws.current_run
        lay = self._results_by_node(run).get(name) if run is not None else None
        if lay is not None and lay.node != name:
            lines.append(f"fused into <b>{_esc(lay.node)}</b> (its output is that layer's output):")
        if lay is not None:
            iso = lay.isolated
            lines.append(f"{EFFECTIVE_SQNR} {fmt_db(iso.effective_sqnr_db if iso else None)} dB · isolated "
                         f"{fmt_db(iso.sqnr_db if iso else None)} dB · cumulative {fmt_db(lay.cumulative.sqnr_db)} dB")
            if lay.amplification is not None:
                lines.append(f"amplification {fmt_db(lay.amplification)} dB")
            d = lay.deployed
            if d and d.get("kernel_gap_db") is not None:
                lines.append(f"deployed kernels: SQNR {fmt_db(d['sqnr_db'])} dB · kernel gap "
                             f"{fmt_db(d['kernel_gap_db'], 2)} dB · {100 * d['lsb_diff_share']:.2f}% ≥ 1 LSB")
            for h in lay.hints[:3]:
                lines.append(f"• {_esc(h.message)}")
        return "<br>".join(lines)

    def _block_tooltip(self, i: int) -> str:
        members = self.scope_view.members[i]
        lines = [f"<b>{_esc(self.unit_name(i))}</b>", f"{len(members)} nodes (double-click to open)"]
        run = self.ws.current_run
        if run is not None:
            by = self._results_by_node(run)
            flagged = sorted({by[n].node for n in members if n in by and by[n].flagged})
            vals = [(layer_metric(by.get(n), self.metric), n) for n in members]
            vals = [(v, n) for v, n in vals if not np.isnan(v)]
            if vals:
                v, n = (min if scale_for(self.metric).higher_is_better else max)(vals)
                what = METRICS[self.metric].split(" (")[0]
                lines.append(f"worst: {_esc(n)} ({fmt_db(v)} dB {what[:1].lower() + what[1:]})")
            if flagged:
                lines.append(f"{len(flagged)} flagged layer(s)")
        return "<br>".join(lines)

    # -- selection ------------------------------------------------------------------------------------
    def _clicked(self, i: int, additive: bool) -> None:
        """A node selects itself; a block selects its members (to set them all at once in the table)."""
        names = list(self.scope_view.members[i]) if self.is_block(i) else [self.layout_.names[i]]
        sel = list(self.ws.selection)
        if additive:
            sel = [n for n in sel if n not in names] if names[0] in sel else sel + names
        else:
            sel = names
        self.ws.select(sel, source=self)

    def _selection_changed(self, sel, source) -> None:
        if self.view.nodes is None:
            return
        idx = {self._index[n] for n in sel if n in self._index}
        self.view.nodes.set_selected(idx)
        edge_ids = [k for k, (a, b, _) in enumerate(self.layout_.edges) if a in idx or b in idx] if idx else []
        self.view.edges.set_highlight(edge_ids)
        previous, self._last_selection = self._last_selection, set(sel)
        if source is not self and sel:
            # centre the node just added to the selection (the first one when it was replaced)
            node = next((n for n in sel if n not in previous and n in self._index), None)
            if node is not None:
                self.expand_to(node)  # opens the blocks holding it (and redraws)
                self.view.center_on_node(self._index[node], zoom_in=True)

    # -- search ----------------------------------------------------------------------------------------
    def _search_changed(self, text: str) -> None:
        text = text.strip().lower()
        if not text or self.layout_ is None:
            self._match_list = []
        else:
            self._match_list = [self._index[n] for n in self._base_layout.names if text in n.lower()]
            self._match_list = list(dict.fromkeys(self._match_list))[:MAX_MATCHES]
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
        text = self.search.text().strip().lower()
        if self.is_block(i):  # open it and show the first matching member
            node = next(n for n in self.scope_view.members[i] if text in n.lower())
            self.expand_to(node)
            self._search_changed(self.search.text())
            self._match_pos = self._match_list.index(self._index[node])
            i = self._index[node]
        self.ws.select([self.layout_.names[i]], source=self)
        self.view.center_on_node(i, zoom_in=True)


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
