"""Before/after, layer by layer: isolated and cumulative SQNR of the shown run against the compared run.

The rows come from ``workbench.compare`` (the comparison the report uses too), so both show the same figures,
and the verdict above them (better / worse / mixed / same) is the report's (``workbench.report.verdict``).
Layer names are shortened as in the Layers table (``workbench.app.names``); the full name is the tooltip and
what Ctrl+C copies.
"""

from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtGui import QBrush, QColor, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from workbench.app.names import NameShortener
from workbench.app.workspace import Workspace
from workbench.compare import CHANGE_DB, LayerChange, compare_runs
from workbench.report.verdict import runs_verdict

from .colors import fmt_db
from .layer_panel import copy_names
from .layer_table import NODE_ROLE, NameDelegate
from .report_export import bench_for
from .summary_panel import verdict_html

COLUMNS = ("Layer", "Op", "Setting", "Iso. before", "Iso. after", "Δ iso.", "Cum. before", "Cum. after", "Δ cum.")
_ISO = "isolated tensor SQNR (dB): the error the layer causes on its own"
_CUM = "cumulative tensor SQNR (dB): the error that has accumulated at the layer's output"
_D = "after - before, dB: positive is better"
TIPS = {3: _ISO, 4: _ISO, 5: _D, 6: _CUM, 7: _CUM, 8: _D}
SORT_ROLE = Qt.ItemDataRole.UserRole + 1


def _setting(d: LayerChange) -> str:
    """Precision, and the percentile when it changed, before → after, as the user set them."""
    prec = (f"{(d.precision_before or '—').upper()} → {(d.precision_after or '—').upper()}"
            if d.precision_before != d.precision_after else (d.precision_after or "").upper())
    if d.percentile_before != d.percentile_after:
        def pct(p):
            return "—" if p is None else f"{p:.12g}"
        prec += f", p {pct(d.percentile_before)} → {pct(d.percentile_after)}"
    return prec


class CompareModel(QAbstractTableModel):
    """Rows of ``LayerChange``."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list[LayerChange] = []
        self.shortener = NameShortener(())  # what NameDelegate shortens the Layer column with

    def set_rows(self, rows: list[LayerChange], names: list[str] = ()) -> None:
        """``names``: every layer of the comparison, so a name is shortened alike with 'Changed only' on or off."""
        self.beginResetModel()
        self.rows = rows
        self.shortener = NameShortener(names or [d.node for d in rows])
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, s, o, role=Qt.ItemDataRole.DisplayRole):
        if o == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[s]
        if o == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole:
            return TIPS.get(s)
        return None

    def _value(self, d: LayerChange, c: int):
        return (d.node, d.op_type, _setting(d),
                d.isolated_before, d.isolated_after, d.isolated_delta,
                d.cumulative_before, d.cumulative_after, d.cumulative_delta)[c]

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        d, c = self.rows[index.row()], index.column()
        v = self._value(d, c)
        if role == Qt.ItemDataRole.DisplayRole:
            if c in (5, 8):
                return "" if v is None else f"{v:+.1f}"
            if c >= 3:
                return fmt_db(v)
            return v
        if role == SORT_ROLE:
            if c < 3:
                return str(v).lower()
            return float("-inf") if v is None else float(v)
        if role == Qt.ItemDataRole.ForegroundRole and c in (5, 8) and v is not None:
            return QBrush(QColor("#1a7f37") if v > 0.05 else QColor("#b42318") if v < -0.05 else QColor("#555"))
        if role == Qt.ItemDataRole.FontRole and c == 2 and d.changed_setting:
            f = self.parent().font() if self.parent() else None
            if f is not None:
                f.setBold(True)
            return f
        if role == Qt.ItemDataRole.TextAlignmentRole and c >= 3:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role in (Qt.ItemDataRole.UserRole, NODE_ROLE):
            return d.node
        if role == Qt.ItemDataRole.ToolTipRole and c == 0:
            return d.node
        return None


class CompareView(QTableView):
    """The table; Ctrl+C copies the full names of the selected layers (not the shortened cell text)."""

    def keyPressEvent(self, event):
        if event.matches(QKeySequence.StandardKey.Copy):
            rows = sorted({i.row() for i in self.selectionModel().selectedRows()})
            copy_names([self.model().index(r, 0).data(NODE_ROLE) for r in rows])
            event.accept()
            return
        super().keyPressEvent(event)

    def resizeEvent(self, event):
        """Spare width goes to the Layer column (the part that tells layers apart), not to the last number
        column; never below its default, so a narrow dock scrolls instead of hiding the names."""
        super().resizeEvent(event)
        h = self.horizontalHeader()
        others = sum(h.sectionSize(c) for c in range(1, h.count()))
        self.setColumnWidth(0, max(NAME_MIN_W, self.viewport().width() - others))


NAME_MIN_W = 240


class ComparePanel(QWidget):
    """Shown run against the compared run, per layer; 'changed only' hides layers that did not change."""

    def __init__(self, workspace: Workspace, parent=None):
        super().__init__(parent)
        self.ws = workspace
        self.model = CompareModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.title = QLabel()
        self.title.setWordWrap(True)  # a long run label must not widen the window past a small screen
        self.changed_only = QCheckBox("Changed only")
        self.changed_only.setToolTip(f"Only layers whose precision, percentile or flag changed, or whose cumulative "
                                     f"SQNR moved by {CHANGE_DB:g} dB or more")
        self.changed_only.setChecked(True)
        self.changed_only.toggled.connect(lambda *_: self.refresh())
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.changed_only)
        self.verdict = QLabel()
        self.verdict.setWordWrap(True)
        self.verdict.setTextFormat(Qt.TextFormat.RichText)
        self.verdict.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.verdict.setToolTip("Is the shown run better than the one compared with: the verdict a before/after "
                                "report of these runs carries (output figures beyond their noise, latency beyond "
                                "its p10–p90 spread when both runs were benchmarked, the runs' own verdicts)")
        self.table = CompareView()
        self.table.setModel(self.proxy)
        self.table.setItemDelegateForColumn(0, NameDelegate(self.table))
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # topological order until a header is clicked
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(True)
        h = self.table.horizontalHeader()
        for c, wdt in enumerate((240, 80, 130, 90, 90, 80, 100, 100, 80)):
            self.table.setColumnWidth(c, max(wdt, h.sectionSizeHint(c) + 4))  # never cut a header
        h.setStretchLastSection(False)  # CompareView.resizeEvent gives the spare width to the names instead
        self.table.clicked.connect(lambda i: self.ws.select([i.data(Qt.ItemDataRole.UserRole)], source=self))
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(top)
        lay.addWidget(self.verdict)
        lay.addWidget(self.table, 1)
        workspace.events.current.connect(lambda *_: self.refresh())
        workspace.events.benchmarks.connect(lambda *_: self.refresh())
        workspace.events.activity.connect(lambda *_: self.ws.baseline_run is None and self.refresh())
        self.refresh()

    def refresh(self) -> None:
        run, before = self.ws.current_run, self.ws.baseline_run
        if run is None or before is None:
            self.model.set_rows([])
            self.verdict.hide()
            self.title.setText("Analysing… before/after appears when this run has finished." if (
                self.ws.activity == "Analysing" and self.ws.runs) else
                "Before/after appears after a second run: edit the recipe, then Re-run (F5).")
            return
        comp = compare_runs(before.result, run.result)
        rows = comp.changed() if self.changed_only.isChecked() else comp.layers
        self.model.set_rows(rows, [d.node for d in comp.layers])
        verdict, reasons = runs_verdict(before.result, run.result, bench_for(self.ws, before),
                                        bench_for(self.ws, run))
        self.verdict.setText(verdict_html("After vs before", verdict, reasons))
        self.verdict.show()
        self.title.setText(f"<b>{before.label}</b> → <b>{run.label}</b>: {len(comp.changed())} of "
                           f"{len(comp.layers)} layers changed")
