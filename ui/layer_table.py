"""The layer table's Qt model, sort/filter proxy and editors (precision combo, percentile field).

Rows are the model's quantizable layers (plus any layer the shown run reports); metrics come from
the shown run. Edits go to the workspace (never straight into the recipe), which announces them to
every view; the model only refreshes the rows that changed.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import QComboBox, QLineEdit, QStyledItemDelegate

from analyzers.diff_types import LayerResult
from workbench.app.names import NameShortener
from workbench.app.workspace import Workspace, table_layers
from workbench.formatting import EFFECTIVE_SQNR, EFFECTIVE_SQNR_DEF
from workbench.recipe import PRECISIONS

from .colors import FLAGGED, fmt_db, scale_for

_KEY = EFFECTIVE_SQNR[:1].upper() + EFFECTIVE_SQNR[1:]  # the figure layers are ranked by, named as every screen names it
COLUMNS = ("Layer", "Op", "Precision", "Percentile", _KEY, "Isolated", "Cumulative", "Amplif.", "Δ cum.", "Hints",
           "Kernel gap")
C_NODE, C_OP, C_PREC, C_PCT, C_KEY, C_ISO, C_CUM, C_AMP, C_DELTA, C_HINTS, C_GAP = range(len(COLUMNS))
DB_COLUMNS = (C_KEY, C_ISO, C_CUM, C_AMP, C_DELTA, C_GAP)
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
NODE_ROLE = Qt.ItemDataRole.UserRole + 2
HEADER_TIPS = {
    C_PREC: "INT8 / INT16 / FP32 (kept in float). Double-click to edit; with several rows selected the "
            "choice applies to all of them.",
    C_PCT: "Calibration percentile for this layer's output (empty: the recipe's global method).",
    C_KEY: f"{EFFECTIVE_SQNR_DEF} (dB), of this layer quantized alone: the worse of the isolated tensor SQNR and "
           "its per-channel mean (channels without signal or without error left out). Layers are ranked and "
           "flagged by it; the CLI, the report and the JSON (rank_key_db) show the same figure.",
    C_ISO: "Tensor SQNR (dB) of this layer quantized alone, fed the float model's inputs: the error it causes.",
    C_CUM: "Tensor SQNR of this layer's output in the fully quantized model: the error that has accumulated.",
    C_AMP: "Isolated minus cumulative SQNR: high means the layer mostly carries error from upstream.",
    C_DELTA: "Change of cumulative SQNR against the run compared with (before/after).",
    C_GAP: "Deployed kernels: the exact simulation's cumulative SQNR minus the same tensor's SQNR as onnxruntime's "
           "fused kernels compute it on this CPU (empty: analysed with exact kernels only, or the tensor does not "
           "survive onnxruntime's fusion). Red: the layer's own kernel departs from Q/DQ by 1 dB or more.",
}
_SQNR_SCALE = scale_for("isolated")


def _departs(lay: LayerResult | None) -> bool:
    return lay is not None and any(h.code == "kernel_departs" for h in lay.hints)


class LayerTableModel(QAbstractTableModel):
    """One row per layer; see ``COLUMNS``."""

    def __init__(self, workspace: Workspace, parent=None):
        super().__init__(parent)
        self.ws = workspace
        self.nodes: list[str] = []
        self.ops: dict[str, str] = {}
        self._results: dict[str, LayerResult] = {}
        self._before: dict[str, LayerResult] = {}
        self._row: dict[str, int] = {}
        self.shortener = NameShortener(())
        self._bold = QFont()
        self._bold.setBold(True)
        ev = workspace.events
        ev.graph.connect(lambda *_: self.rebuild())
        ev.current.connect(lambda *_: self.rebuild())
        ev.recipe.connect(self._recipe_changed)
        self.rebuild()

    # -- structure ------------------------------------------------------------------------------------
    def rebuild(self) -> None:
        self.beginResetModel()
        run, before = self.ws.current_run, self.ws.baseline_run
        self._results = {lay.node: lay for lay in run.result.layers} if run else {}
        self._before = {lay.node: lay for lay in before.result.layers} if before else {}
        order: dict[str, tuple[int, str]] = {}
        g = self.ws.graph
        if g is not None:
            for n in table_layers(g):
                order[n.name] = (n.index, n.op_type)
            for name in self.ws.recipe.layers:  # an override always has a row, wherever it came from
                if g.has_node(name):
                    order.setdefault(name, (g.node(name).index, g.node(name).op_type))
        for lay in self._results.values():
            order.setdefault(lay.node, (lay.index, lay.op_type))
        self.nodes = sorted(order, key=lambda n: order[n][0])
        self.ops = {n: order[n][1] for n in self.nodes}
        self._row = {n: i for i, n in enumerate(self.nodes)}
        self.shortener = NameShortener(self.nodes)
        self.endResetModel()

    def _recipe_changed(self, nodes) -> None:
        rows = [self._row[n] for n in nodes if n in self._row] if nodes else list(range(len(self.nodes)))
        if rows:
            self.dataChanged.emit(self.index(min(rows), 0), self.index(max(rows), len(COLUMNS) - 1))

    def row_of(self, node: str) -> int | None:
        return self._row.get(node)

    def rowCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self.nodes)

    def columnCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal:
            if role == Qt.ItemDataRole.DisplayRole:
                return COLUMNS[section] + (" dB" if section in DB_COLUMNS else "")
            if role == Qt.ItemDataRole.ToolTipRole:
                return HEADER_TIPS.get(section)
        return None

    def flags(self, index):
        f = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if index.column() in (C_PREC, C_PCT):
            f |= Qt.ItemFlag.ItemIsEditable
        return f

    # -- values ----------------------------------------------------------------------------------------
    def _values(self, node: str, col: int):
        lay = self._results.get(node)
        if col == C_NODE:
            return node
        if col == C_OP:
            return self.ops.get(node, "")
        if col == C_PREC:
            return self.ws.recipe.precision_of(node)
        if col == C_PCT:
            return self.ws.recipe.percentile_of(node)
        if lay is None:
            return None
        if col == C_KEY:
            return lay.isolated.effective_sqnr_db if lay.isolated else None
        if col == C_ISO:
            return lay.isolated.sqnr_db if lay.isolated else None
        if col == C_CUM:
            return lay.cumulative.sqnr_db
        if col == C_AMP:
            return lay.amplification
        if col == C_DELTA:
            b = self._before.get(node)
            if b is None:
                return None
            a, c = lay.cumulative.sqnr_db, b.cumulative.sqnr_db  # as the before/after view (workbench.compare)
            return a - c if math.isfinite(a) and math.isfinite(c) else None
        if col == C_HINTS:
            return "; ".join(h.message for h in lay.hints)
        if col == C_GAP:
            return (lay.deployed or {}).get("kernel_gap_db")
        return None

    def _ran_as(self, node: str) -> str | None:
        """The precision the shown run reports for ``node`` when it differs from the one asked for."""
        lay = self._results.get(node)
        if lay is None or self._pending(node) or lay.effective_precision == self.ws.recipe.precision_of(node):
            return None
        return lay.effective_precision

    def _pending(self, node: str) -> bool:
        run = self.ws.current_run
        if run is None:
            return False
        return run.recipe.layers.get(node) != self.ws.recipe.layers.get(node)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        node, col = self.nodes[index.row()], index.column()
        v = self._values(node, col)
        if role == Qt.ItemDataRole.DisplayRole:
            if col == C_PREC:
                if self._pending(node):
                    return v.upper() + " *"
                ran = self._ran_as(node)
                return v.upper() if ran is None else f"{v.upper()}→{ran.upper()}"
            if col == C_PCT:
                return "" if v is None else f"{v:g}"
            if col in (C_KEY, C_ISO, C_CUM, C_AMP):
                return fmt_db(v)
            if col == C_GAP:
                return "" if v is None else fmt_db(0.0 if abs(v) < 0.005 else v, 2)
            if col == C_DELTA:
                return "" if v is None else f"{v:+.1f}"
            return v
        if role == Qt.ItemDataRole.EditRole:
            return v
        if role == SORT_ROLE:
            if col == C_PREC:
                return PRECISIONS.index(v)
            if col in (C_NODE, C_OP, C_HINTS):
                return (v or "").lower()
            return float("inf") if v is None else float(v)
        if role == NODE_ROLE:
            return node
        if role == Qt.ItemDataRole.BackgroundRole and col in (C_KEY, C_ISO, C_CUM) and v is not None:
            c = QColor(_SQNR_SCALE.color(v))
            c.setAlpha(110)
            return QBrush(c)
        if role == Qt.ItemDataRole.ForegroundRole:
            if col == C_NODE and node in self._results and self._results[node].flagged:
                return QBrush(FLAGGED)
            if col == C_DELTA and v is not None:
                return QBrush(QColor("#1a7f37") if v > 0.05 else QColor("#b42318") if v < -0.05 else QColor("#555"))
            if col == C_GAP and v is not None and _departs(self._results.get(node)):
                return QBrush(FLAGGED)
        if role == Qt.ItemDataRole.FontRole and ((col == C_PREC and (v != "int8" or self._pending(node)))
                                                 or (col == C_PCT and v is not None)):
            return self._bold
        if role == Qt.ItemDataRole.ForegroundRole and col == C_PREC and self._ran_as(node):
            return QBrush(QColor("#8a5a00"))
        if role == Qt.ItemDataRole.DecorationRole and col == C_NODE and node in self._results \
                and self._results[node].flagged:
            return FLAGGED
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (C_PCT, *DB_COLUMNS):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(node, col)
        return None

    def _tooltip(self, node: str, col: int) -> str | None:
        lay = self._results.get(node)
        if col == C_GAP and lay is not None and lay.deployed:
            d = lay.deployed
            own = d.get("own_gap_db")
            return (f"deployed ({d.get('kernel')}): SQNR {fmt_db(d['sqnr_db'])} dB vs exact "
                    f"{fmt_db(d.get('exact_sqnr_db'))} dB\n{100 * d['lsb_diff_share']:.2f}% of values ≥ 1 LSB off "
                    f"(max {d.get('max_lsb_diff', '—')} LSB)"
                    + (f"\nthis kernel alone, fed the simulation's inputs: {fmt_db(own, 2)} dB"
                       if own is not None else ""))
        if col == C_HINTS and lay is not None and lay.hints:
            return "\n".join(f"• {h.message}\n   try: {h.suggestion}" for h in lay.hints)
        if col in (C_KEY, C_ISO, C_CUM) and lay is not None:
            m = lay.cumulative if col == C_CUM else lay.isolated
            if m is None:
                return None
            left_out = f" ({m.channels_exact or 0} exact, {m.channels_dead or 0} dead channels left out)" \
                if (m.channels_exact or m.channels_dead) else ""
            return ((f"{EFFECTIVE_SQNR_DEF}: {fmt_db(m.effective_sqnr_db)} dB\n" if col == C_KEY else "")
                    + f"tensor SQNR {fmt_db(m.sqnr_db)} dB\nper-channel mean {fmt_db(m.channel_sqnr_mean)} dB, "
                    f"worst channel {fmt_db(m.channel_sqnr_min)} dB{left_out}\ncosine {m.cosine:.5f}, "
                    f"max |error| {m.max_abs:.4g}")
        if col == C_PREC and self._pending(node):
            return "Changed since the shown run: re-run to see its effect."
        if col == C_PREC and self._ran_as(node) and lay is not None and lay.runtime_precision:
            h = next((h for h in lay.hints if h.code == "runtime_requantizes"), None)
            return (f"Asked for {self.ws.recipe.precision_of(node).upper()}, but onnxruntime's CPU optimizer runs this "
                    f"node in {lay.runtime_precision.upper()} anyway." + (f"\nFix: {h.suggestion}" if h else ""))
        if col == C_PREC and self._ran_as(node):
            return (f"Asked for {self.ws.recipe.precision_of(node).upper()}, but the quantized model runs this node in "
                    f"{self._ran_as(node).upper()} (e.g. its input is not quantized because the layer before it is "
                    "kept in float).")
        if col == C_NODE:
            return node
        return None

    def setData(self, index, value, role=Qt.ItemDataRole.EditRole):
        """Edits become workspace edits (which refresh this model through its events)."""
        if role != Qt.ItemDataRole.EditRole or not index.isValid():
            return False
        node = self.nodes[index.row()]
        if index.column() == C_PREC:
            self.ws.set_precision([node], str(value).lower())
            return True
        if index.column() == C_PCT:
            self.ws.set_percentile(node, None if value in (None, "") else float(value))
            return True
        return False


class LayerFilterProxy(QSortFilterProxyModel):
    """Sorts on raw numbers; filters on a name/op substring and optional 'flagged only' / 'overrides only'."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self.text = ""
        self.flagged_only = False
        self.overrides_only = False

    def _refilter(self, change) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt >= 6.9 (invalidateFilter is deprecated there)
            self.beginFilterChange()
            change()
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            change()
            self.invalidateFilter()

    def set_text(self, text: str) -> None:
        self._refilter(lambda: setattr(self, "text", text.strip().lower()))

    def set_flagged_only(self, on: bool) -> None:
        self._refilter(lambda: setattr(self, "flagged_only", on))

    def set_overrides_only(self, on: bool) -> None:
        self._refilter(lambda: setattr(self, "overrides_only", on))

    def filterAcceptsRow(self, row, parent):
        m: LayerTableModel = self.sourceModel()
        node = m.nodes[row]
        if self.text and self.text not in node.lower() and self.text not in m.ops.get(node, "").lower():
            return False
        if self.flagged_only:
            lay = m._results.get(node)
            if lay is None or not lay.flagged:
                return False
        if self.overrides_only and node not in m.ws.recipe.layers:
            return False
        return True


class NameDelegate(QStyledItemDelegate):
    """Layer names shortened to the column width without losing the part that tells rows apart
    (``workbench.app.names``); the full name is the tooltip and what Ctrl+C copies."""

    def initStyleOption(self, option, index):
        super().initStyleOption(option, index)
        name = index.data(NODE_ROLE)
        model = index.model()
        source = model.sourceModel() if isinstance(model, QSortFilterProxyModel) else model
        if not name or not hasattr(source, "shortener"):
            return
        option.text = self.display_text(source.shortener, name, option)

    @staticmethod
    def display_text(shortener: NameShortener, name: str, option) -> str:
        width = option.rect.width() - 12
        if not option.icon.isNull():
            width -= option.decorationSize.width() + 4
        fm = option.fontMetrics
        return shortener.fit(name, lambda t: fm.horizontalAdvance(t) <= width)


class PrecisionDelegate(QStyledItemDelegate):
    """A combo box; when several rows are selected the choice applies to all of them (set many at once)."""

    def __init__(self, view, parent=None):
        super().__init__(parent)
        self.view = view

    def createEditor(self, parent, option, index):
        box = QComboBox(parent)
        for p in PRECISIONS:
            box.addItem(p.upper(), p)
        box.activated.connect(lambda *_: self.commitData.emit(box))
        return box

    def setEditorData(self, editor, index):
        editor.setCurrentIndex(max(editor.findData(index.data(Qt.ItemDataRole.EditRole)), 0))

    def setModelData(self, editor, model, index):
        value = editor.currentData()
        nodes = selected_nodes(self.view)
        node = index.data(NODE_ROLE)
        source = model.sourceModel() if isinstance(model, QSortFilterProxyModel) else model
        if node in nodes and len(nodes) > 1:
            source.ws.set_precision(nodes, value)
        else:
            model.setData(index, value)


class PercentileDelegate(QStyledItemDelegate):
    """A text field taking a percentile in (50, 100]; empty clears the override."""

    def createEditor(self, parent, option, index):
        e = QLineEdit(parent)
        e.setPlaceholderText("default")
        return e

    def setEditorData(self, editor, index):
        v = index.data(Qt.ItemDataRole.EditRole)
        editor.setText("" if v is None else f"{v:g}")

    def setModelData(self, editor, model, index):
        text = editor.text().strip()
        if not text:
            model.setData(index, None)
            return
        try:
            v = float(text)
        except ValueError:
            return
        if 50.0 < v <= 100.0:
            model.setData(index, v)


def selected_nodes(view) -> list[str]:
    """Node names of the selected rows of a table view over (a proxy of) LayerTableModel, in row order."""
    rows = sorted({i.row() for i in view.selectionModel().selectedRows()})
    m = view.model()
    return [m.index(r, 0).data(NODE_ROLE) for r in rows]
