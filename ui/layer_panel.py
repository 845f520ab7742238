"""The Layers dock: filter bar, the sortable layer table, and bulk edits (set many, exclude the N worst)."""

from __future__ import annotations

from PySide6.QtCore import QItemSelection, QItemSelectionModel, Qt
from PySide6.QtGui import QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QTableView,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from workbench.app.workspace import Workspace
from workbench.recipe import PRECISIONS

from .layer_table import (
    C_AMP,
    C_CUM,
    C_DELTA,
    C_GAP,
    C_HINTS,
    C_ISO,
    C_KEY,
    C_NODE,
    C_OP,
    C_PCT,
    C_PREC,
    LayerFilterProxy,
    LayerTableModel,
    NameDelegate,
    PercentileDelegate,
    PrecisionDelegate,
    selected_nodes,
)


class LayerTableView(QTableView):
    """The table; Ctrl+C copies the full names of the selected layers (not the shortened cell text)."""

    def keyPressEvent(self, event):
        if event.matches(QKeySequence.StandardKey.Copy):
            copy_names(selected_nodes(self))
            event.accept()
            return
        super().keyPressEvent(event)


def copy_names(nodes: list[str]) -> None:
    """Full layer names to the clipboard, one a line."""
    if nodes:
        QGuiApplication.clipboard().setText("\n".join(nodes))


# content widths (px at scale 1); fit_columns_to_headers widens any whose header needs more
_DEFAULT_WIDTHS = {C_NODE: 210, C_OP: 74, C_PREC: 92, C_PCT: 72, C_KEY: 124, C_ISO: 90, C_CUM: 100, C_AMP: 82,
                   C_DELTA: 72, C_HINTS: 260, C_GAP: 96}


class LayerPanel(QWidget):
    """Table of layers synced with the workspace selection; every edit goes through the workspace."""

    def __init__(self, workspace: Workspace, exclude_n: int = 1, parent=None):
        super().__init__(parent)
        self.ws = workspace
        self.model = LayerTableModel(workspace, self)
        self.proxy = LayerFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self._syncing = False

        top = QHBoxLayout()
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter by name or op type…")
        self.filter.setClearButtonEnabled(True)
        self.filter.setMinimumWidth(120)
        self.filter.textChanged.connect(self.proxy.set_text)
        top.addWidget(self.filter, 1)
        self.flagged_only = QCheckBox("Flagged only")
        self.flagged_only.toggled.connect(self.proxy.set_flagged_only)
        top.addWidget(self.flagged_only)
        self.overrides_only = QCheckBox("Overrides only")
        self.overrides_only.toggled.connect(self.proxy.set_overrides_only)
        top.addWidget(self.overrides_only)

        edit = QToolBar()  # what does not fit a narrow dock goes behind the bar's » button
        edit.addWidget(QLabel("Selected: "))
        self.set_buttons = {}
        for p in PRECISIONS:
            b = QPushButton(p.upper())
            b.setToolTip(f"Set every selected layer to {p.upper()}" + (" (keep it in float)" if p == "fp32" else ""))
            b.clicked.connect(lambda _=False, p=p: self.set_selected_precision(p))
            edit.addWidget(b)
            self.set_buttons[p] = b
        clear = QToolButton()
        clear.setText("Reset")
        clear.setToolTip("Remove the overrides (precision and percentile) of the selected layers")
        clear.clicked.connect(lambda: self.ws.clear_overrides(self.selected()))
        edit.addWidget(clear)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        edit.addWidget(spacer)
        self.exclude_n = QSpinBox()
        self.exclude_n.setRange(1, 999)
        self.exclude_n.setValue(exclude_n)
        self.exclude_n.setToolTip("How many of the worst layers (by isolated SQNR) to keep in FP32")
        self.exclude_button = QPushButton("Exclude worst")
        self.exclude_button.setToolTip("Keep the N layers with the worst isolated SQNR of the shown run in FP32")
        self.exclude_button.clicked.connect(self.exclude_worst)
        edit.addWidget(self.exclude_n)
        edit.addWidget(self.exclude_button)

        self.table = LayerTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                   | QAbstractItemView.EditTrigger.SelectedClicked
                                   | QAbstractItemView.EditTrigger.EditKeyPressed)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(24)
        self.table.setWordWrap(False)
        self.table.setItemDelegateForColumn(C_PREC, PrecisionDelegate(self.table, self))
        self.table.setItemDelegateForColumn(C_PCT, PercentileDelegate(self))
        self.table.setItemDelegateForColumn(C_NODE, NameDelegate(self))
        h = self.table.horizontalHeader()
        h.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        h.setStretchLastSection(True)
        self.fit_columns_to_headers()
        h.moveSection(h.visualIndex(C_GAP), h.visualIndex(C_HINTS))  # shown before the hints, which stretch
        # the ranking figure right after the name and op, so a narrow dock shows it without scrolling
        h.moveSection(h.visualIndex(C_KEY), h.visualIndex(C_PREC))
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.table.selectionModel().selectionChanged.connect(self._table_selection_changed)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addWidget(edit)
        lay.addWidget(self.table, 1)
        self.count_label = QLabel()
        self.count_label.setStyleSheet("color:#5f6b78;")
        lay.addWidget(self.count_label)

        workspace.events.selection.connect(self._ws_selection_changed)
        workspace.events.recipe.connect(lambda *_: self.overrides_only.isChecked()
                                        and self.proxy.set_overrides_only(True))
        for ev in (workspace.events.current, workspace.events.graph, workspace.events.recipe,
                   workspace.events.activity):
            ev.connect(lambda *_: self._after_change())
        self.model.modelReset.connect(lambda: self._ws_selection_changed(self.ws.selection, None))
        workspace.events.view.connect(lambda *_: self.restore_table_state(self.ws.view_state.get("table")))
        self._after_change()

    def fit_columns_to_headers(self) -> None:
        """Default widths: room for the content, never less than the header's own text and sort arrow (at any
        font or UI scale), so no header is cut before the user narrows a column."""
        h = self.table.horizontalHeader()
        for col, w in _DEFAULT_WIDTHS.items():
            self.table.setColumnWidth(col, max(w, h.sectionSizeHint(col) + 4))

    # -- state kept in the project --------------------------------------------------------------------
    def table_state(self) -> dict:
        """Column widths and order, sort, filter text and check boxes, as JSON-able values."""
        h = self.table.horizontalHeader()
        return {"widths": [h.sectionSize(c) for c in range(h.count())],
                "order": [h.logicalIndex(v) for v in range(h.count())],
                "sort": [h.sortIndicatorSection(), "desc" if h.sortIndicatorOrder() == Qt.SortOrder.DescendingOrder
                         else "asc"] if self.proxy.sortColumn() >= 0 else None,
                "filter": self.filter.text(), "flagged_only": self.flagged_only.isChecked(),
                "overrides_only": self.overrides_only.isChecked()}

    def restore_table_state(self, state: dict | None) -> None:
        """Put the table back as ``table_state`` described it; unknown or broken entries are skipped."""
        if not isinstance(state, dict):
            return
        h = self.table.horizontalHeader()
        widths = state.get("widths")
        if isinstance(widths, list) and len(widths) == h.count():
            for c, w in enumerate(widths):
                if isinstance(w, int) and 0 < w < 5000:
                    h.resizeSection(c, w)
        order = state.get("order")
        if isinstance(order, list) and sorted(order) == list(range(h.count())):
            for visual, logical in enumerate(order):
                h.moveSection(h.visualIndex(logical), visual)
        sort = state.get("sort")
        if isinstance(sort, list) and len(sort) == 2 and isinstance(sort[0], int) and 0 <= sort[0] < h.count():
            self.table.sortByColumn(sort[0], Qt.SortOrder.DescendingOrder if sort[1] == "desc"
                                    else Qt.SortOrder.AscendingOrder)
        if isinstance(state.get("filter"), str):
            self.filter.setText(state["filter"])
        for key, box in (("flagged_only", self.flagged_only), ("overrides_only", self.overrides_only)):
            if isinstance(state.get(key), bool):
                box.setChecked(state[key])
        self._ws_selection_changed(self.ws.selection, None)

    # -- bulk edits ------------------------------------------------------------------------------------
    def selected(self) -> list[str]:
        return selected_nodes(self.table)

    def set_selected_precision(self, precision: str) -> list[str]:
        return self.ws.set_precision(self.selected(), precision)

    def exclude_worst(self) -> list[str]:
        nodes = self.ws.exclude_worst(self.exclude_n.value())
        if nodes:
            self.ws.select(nodes, source=None)
        return nodes

    def _context_menu(self, pos) -> None:
        nodes = self.selected()
        if not nodes:
            return
        m = QMenu(self)
        m.addAction("Copy name" if len(nodes) == 1 else f"Copy {len(nodes)} names", lambda: copy_names(nodes))
        m.addSeparator()
        for p in PRECISIONS:
            m.addAction(f"Set {len(nodes)} layer(s) to {p.upper()}", lambda p=p: self.ws.set_precision(nodes, p))
        m.addAction("Reset overrides", lambda: self.ws.clear_overrides(nodes))
        m.addSeparator()
        m.addAction("Sort by effective SQNR (worst first)",
                    lambda: self.table.sortByColumn(C_KEY, Qt.SortOrder.AscendingOrder))
        m.addAction("Sort by isolated tensor SQNR (worst first)", lambda: self.table.sortByColumn(C_ISO, Qt.SortOrder.AscendingOrder))
        m.addAction("Sort by cumulative SQNR (worst first)", lambda: self.table.sortByColumn(C_CUM, Qt.SortOrder.AscendingOrder))
        m.popup(self.table.viewport().mapToGlobal(pos))

    def _after_change(self) -> None:
        run = self.ws.current_run
        n = self.model.rowCount()
        flagged = sum(1 for lay in run.result.layers if lay.flagged) if run else 0
        over = len(self.ws.recipe.layers)
        self.count_label.setText(f"{n} layers · {flagged} flagged · {over} override(s)"
                                 + ("" if run else " · analysing…" if self.ws.activity == "Analysing" else " · not analysed yet"))
        self.exclude_button.setEnabled(run is not None)
        h = self.table.horizontalHeader()
        unsorted = not 0 <= h.sortIndicatorSection() < h.count()
        if run is not None and unsorted:  # the first figures: worst first, unless the user or project chose an order
            self.table.sortByColumn(C_KEY, Qt.SortOrder.AscendingOrder)

    # -- selection sync --------------------------------------------------------------------------------
    def _table_selection_changed(self, *_):
        if not self._syncing:
            self.ws.select(self.selected(), source=self)

    def _ws_selection_changed(self, sel, source) -> None:
        if source is self:
            return
        self._syncing = True
        try:
            sm = self.table.selectionModel()
            selection = QItemSelection()
            first = None
            for n in sel:
                r = self.model.row_of(n)
                if r is None:
                    continue
                pi = self.proxy.mapFromSource(self.model.index(r, 0))
                if not pi.isValid():
                    continue
                selection.select(pi, pi.siblingAtColumn(self.proxy.columnCount() - 1))
                first = first or pi
            sm.select(selection, QItemSelectionModel.SelectionFlag.ClearAndSelect)
            if first is not None:
                self.table.scrollTo(first)
        finally:
            self._syncing = False
