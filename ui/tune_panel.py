"""The Tune dock: ask ``qwb tune``'s search for an accuracy target, watch its verified points arrive on a Pareto
plot (metric vs latency), and take one point's recipe as the current edits.

The search runs in the engine process (``workbench.app.requests.Tune``); each point arrives as soon as it is
verified on the held-back data and lands in ``Workspace.tune``, which this panel draws. Picking a point is one
undoable edit followed by a re-run, so Before / after shows what it changed.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workbench.app.tuning import pareto_flags
from workbench.app.workspace import Workspace
from workbench.errors import WorkbenchError
from workbench.formatting import fmt_bytes
from workbench.tune.moves import CANDIDATES, DEFAULT_CANDIDATES
from workbench.tune.search import OBJECTIVES, TuneSpec
from workbench.tune.target import METRICS, parse_target

from .errors import ErrorInfo
from .plots.common import hint_label, key_html, plot_widget

COLUMNS = ("#", "Search", "Held-back", "Target", "ms", "INT8 %", "Size", "fp / 16", "Pareto", "Point")
HEADER_TIPS = ("", "the target's metric on the search part", "the target's metric on the held-back part the search "
               "never saw", "whether the held-back figure meets the target", "latency, one sample, deployed kernels",
               "share of the model's MACs onnxruntime runs in INT8 kernels", "model size", "float moves / 16-bit moves",
               "no other point is both faster and better", "the moves; hover for the layers")
POINT_COL = COLUMNS.index("Point")  # last: the numbers stay in view, the label takes what is left
#: (default value, minimum, maximum, decimals, suffix) of the threshold box per metric
THRESHOLDS = {"top1_agreement": (0.99, 0.0, 1.0, 4, ""), "cosine": (0.98, 0.0, 1.0, 4, ""),
              "sqnr": (30.0, -50.0, 200.0, 1, " dB"), "accuracy_drop": (0.5, 0.0, 100.0, 2, " %")}
COLORS = {"met": "#2ca02c", "missed": "#d62728", "search": "#7f7f7f", "pareto": "#1f77b4", "chosen": "#ff7f0e",
          "target": "#9467bd"}


def target_text(metric: str, value: float) -> str:
    """The ``--target`` expression for a metric and the threshold box's value (accuracy_drop is in %)."""
    op = METRICS[metric][0]
    return f"{metric}{op}{value:g}%" if metric == "accuracy_drop" else f"{metric}{op}{value:g}"


def _fmt(v, f: str) -> str:
    return "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, f)


class TunePanel(QWidget):
    """Target, candidates, objective, budget, Run/Cancel; a live Pareto plot and the table of points."""

    def __init__(self, workspace: Workspace, controller, parent=None):
        super().__init__(parent)
        self.ws, self.ctl = workspace, controller
        form = QGridLayout()
        form.addWidget(QLabel("Target"), 0, 0)
        self.metric = QComboBox()
        for m, (_, what) in METRICS.items():
            self.metric.addItem(m, m)
            self.metric.setItemData(self.metric.count() - 1, what, Qt.ItemDataRole.ToolTipRole)
        self.op = QLabel(">=")
        self.threshold = QDoubleSpinBox()
        self.threshold.setKeyboardTracking(False)
        trow = QHBoxLayout()
        trow.addWidget(self.metric, 1)
        trow.addWidget(self.op)
        trow.addWidget(self.threshold, 1)
        form.addLayout(trow, 0, 1)
        form.addWidget(QLabel("Candidates"), 1, 0)
        crow = QHBoxLayout()
        self.candidates: dict[str, QCheckBox] = {}
        tips = {"int16": "a group's activations in 16 bits", "fp32": "a group kept in float",
                "percentile": "a group's activations clipped at the 99.99th percentile",
                "method": "another calibration method for a group's activations, or for the whole model"}
        for c in CANDIDATES:
            box = QCheckBox(c)
            box.setChecked(c in DEFAULT_CANDIDATES)
            box.setToolTip(tips.get(c, c))
            crow.addWidget(box)
            self.candidates[c] = box
        crow.addStretch(1)
        form.addLayout(crow, 1, 1)
        form.addWidget(QLabel("Objective"), 2, 0)
        self.objective = QComboBox()
        labels = {"latency": "latency (measured on the deployed kernels)", "int8_macs": "most MACs in INT8",
                  "size": "smallest model"}
        for o in OBJECTIVES:
            self.objective.addItem(labels.get(o, o), o)
        form.addWidget(self.objective, 2, 1)
        form.addWidget(QLabel("Max float groups"), 3, 0)
        self.max_float = QSpinBox()
        self.max_float.setRange(-1, 9999)
        self.max_float.setValue(-1)
        self.max_float.setSpecialValueText("no limit")
        form.addWidget(self.max_float, 3, 1)
        form.addWidget(QLabel("Time budget"), 4, 0)
        self.budget = QDoubleSpinBox()
        self.budget.setRange(0.0, 24 * 60)
        self.budget.setDecimals(1)
        self.budget.setSuffix(" min")
        self.budget.setSpecialValueText("none")
        self.budget.setToolTip("Stop after this long, keeping the best point verified so far")
        form.addWidget(self.budget, 4, 1)
        form.addWidget(QLabel("Workers"), 5, 0)
        self.workers = QSpinBox()
        self.workers.setRange(0, 256)
        self.workers.setSpecialValueText("one per CPU core")
        form.addWidget(self.workers, 5, 1)
        buttons = QHBoxLayout()
        self.run_button = QPushButton("Run tune")
        self.run_button.setToolTip("Search from the current recipe; every point is verified on a held-back third "
                                   "of the evaluation data that the search never sees")
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the search and keep the points verified so far")
        self.cancel_button.clicked.connect(self.ctl.cancel)
        self.use_button = QPushButton("Use selected point")
        self.use_button.setToolTip("Make the point's recipe the current edits (Undo takes it back) and re-run "
                                   "the analysis; Before / after shows the change")
        self.use_button.clicked.connect(self.use_selected)
        for b in (self.run_button, self.cancel_button, self.use_button):
            buttons.addWidget(b)
        form.addLayout(buttons, 6, 1)
        form.setColumnStretch(1, 1)
        self.summary = hint_label()
        self.summary.setTextFormat(Qt.TextFormat.RichText)

        self.plot = plot_widget("metric (held-back part)", "latency (ms)")
        pi = self.plot.getPlotItem()
        for ax in ("left", "bottom"):
            pi.getAxis(ax).enableAutoSIPrefix(False)
        self.links = pg.PlotDataItem(pen=pg.mkPen("#b0b0b0", width=1), connect="pairs")
        self.search_pts = pg.ScatterPlotItem(size=8, pen=pg.mkPen(COLORS["search"]), brush=pg.mkBrush(None),
                                             symbol="o")
        self.front = pg.PlotDataItem(pen=pg.mkPen(COLORS["pareto"], width=1.5), stepMode=None)
        self.held_pts = pg.ScatterPlotItem(size=11, hoverable=True, tip=None)
        self.held_pts.sigClicked.connect(self._plot_clicked)
        self.ring = pg.ScatterPlotItem(size=20, pen=pg.mkPen(COLORS["chosen"], width=2.5), brush=pg.mkBrush(None))
        self.sel_ring = pg.ScatterPlotItem(size=17, pen=pg.mkPen("#222", width=1.5, style=Qt.PenStyle.DashLine),
                                           brush=pg.mkBrush(None))
        self.target_line = pg.InfiniteLine(angle=0, pen=pg.mkPen(COLORS["target"], width=1.5,
                                                                  style=Qt.PenStyle.DashLine))
        for it in (self.links, self.front, self.search_pts, self.held_pts, self.ring, self.sel_ring):
            pi.addItem(it)
        pi.addItem(self.target_line, ignoreBounds=False)
        self.target_line.hide()
        self.key = hint_label()
        self.key.setTextFormat(Qt.TextFormat.RichText)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        for c, tip in enumerate(HEADER_TIPS):
            self.table.horizontalHeaderItem(c).setToolTip(tip)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        hh.setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.table.cellDoubleClicked.connect(lambda row, _col: self.use_point(row))

        left = QWidget()
        left.setMaximumWidth(430)
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addLayout(form)
        ll.addWidget(self.summary, 1)
        plot_box = QWidget()
        pl = QVBoxLayout(plot_box)
        pl.setContentsMargins(0, 0, 0, 0)
        pl.addWidget(self.plot, 1)
        pl.addWidget(self.key)
        split = QSplitter()
        split.addWidget(plot_box)
        split.addWidget(self.table)
        split.setSizes([440, 720])
        top = QHBoxLayout(self)
        top.setContentsMargins(4, 4, 4, 4)
        top.addWidget(left, 0)
        top.addWidget(split, 1)

        self.metric.currentIndexChanged.connect(lambda *_: self._metric_changed())
        self.metric.setCurrentIndex(list(METRICS).index("sqnr"))
        self._metric_changed()
        workspace.events.tune.connect(lambda *_: self.refresh())
        workspace.events.spec.connect(lambda *_: self._update_enabled())
        controller.sigBusyChanged.connect(lambda *_: self._update_enabled())
        controller.sigSessionReady.connect(self._update_enabled)
        self.refresh()

    # -- the form -----------------------------------------------------------------------------------------
    def _metric_changed(self) -> None:
        m = self.metric.currentData()
        value, lo, hi, decimals, suffix = THRESHOLDS[m]
        self.op.setText(METRICS[m][0].replace(">=", "≥").replace("<=", "≤"))
        self.threshold.setDecimals(decimals)
        self.threshold.setRange(lo, hi)
        self.threshold.setSingleStep(10 ** -min(decimals, 2) if decimals else 1.0)
        self.threshold.setSuffix(suffix)
        self.threshold.setValue(value)

    def set_target(self, metric: str, value: float) -> None:
        """Set the target boxes (accuracy_drop in %)."""
        self.metric.setCurrentIndex(list(METRICS).index(metric))
        self.threshold.setValue(value)

    def spec(self) -> TuneSpec:
        """The TuneSpec the form describes; WorkbenchError (with a fix) for a bad combination."""
        target = parse_target(target_text(self.metric.currentData(), self.threshold.value()))
        cands = tuple(c for c, box in self.candidates.items() if box.isChecked())
        if not cands:
            raise WorkbenchError("no candidate move is ticked", "tick at least one of " + ", ".join(CANDIDATES))
        budget = self.budget.value()
        return TuneSpec(target, cands, None if self.max_float.value() < 0 else self.max_float.value(),
                        self.objective.currentData(), "cpu", budget * 60 if budget > 0 else None,
                        self.workers.value())

    def _update_enabled(self) -> None:
        busy = self.ctl.busy
        running = bool(self.ws.tune and self.ws.tune.get("running"))
        self.run_button.setEnabled(not busy and self.ctl.opened is not None)
        self.cancel_button.setEnabled(busy and running)
        self.use_button.setEnabled(not busy and self.selected_point() is not None)

    # -- running ------------------------------------------------------------------------------------------
    def run(self) -> bool:
        try:
            spec = self.spec()
        except WorkbenchError as e:
            self.ctl.sigError.emit(ErrorInfo.from_exception(e, "start the tune search"))
            return False
        ok = self.ctl.run_tune(spec)
        self._update_enabled()
        return ok

    def selected_point(self) -> int | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows or self.ws.tune is None:
            return None
        i = rows[0].row()
        p = self.ws.tune["points"][i] if i < len(self.ws.tune["points"]) else None
        return i if p is not None and not p.get("error") else None

    def use_selected(self) -> bool:
        i = self.selected_point()
        return False if i is None else self.use_point(i)

    def use_point(self, index: int) -> bool:
        """Take point ``index``'s recipe (undoable) and re-run the analysis."""
        t = self.ws.tune
        if t is None or t.get("running") or not 0 <= index < len(t["points"]) or t["points"][index].get("error"):
            return False
        return self.ctl.apply_tune_point(index)

    # -- drawing ------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        t = self.ws.tune
        points = t["points"] if t else []
        self._fill_table(t, points)
        self._draw(t, points)
        self._describe(t, points)
        self._update_enabled()

    def _pareto(self, t: dict, points: list[dict]) -> list[bool]:
        if points and all("pareto" in p for p in points):
            return [bool(p["pareto"]) for p in points]
        return pareto_flags(points, t["target"], t.get("objective", "latency"))

    def _fill_table(self, t: dict | None, points: list[dict]) -> None:
        sel = self.selected_point()
        self.table.blockSignals(True)
        self.table.setRowCount(len(points))
        pareto = self._pareto(t, points) if t else []
        f = ".2f" if t and t["target"].startswith("sqnr") else ".4f"
        for i, p in enumerate(points):
            chosen = t.get("chosen") == i
            met = "error" if p.get("error") else "met" if p.get("met_holdout") else "missed"
            share = p.get("int8_mac_share")
            vals = (str(i + 1), _fmt(p.get("search_metric"), f), _fmt(p.get("holdout_metric"), f), met,
                    _fmt(p.get("latency_ms"), ".3f"), "—" if share is None else f"{100 * share:.0f}%",
                    fmt_bytes(p.get("size_bytes")), f"{p.get('floats', 0)} / {p.get('int16', 0)}",
                    "★" if pareto[i] else "", ("▶ " if chosen else "") + p["label"])
            for c, v in enumerate(vals):
                it = QTableWidgetItem(v)
                if c in (0, 1, 2, 4, 5, 6):
                    it.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if c == 3:
                    it.setForeground(pg.mkColor(COLORS["met"] if met == "met" else COLORS["missed"]))
                if c == POINT_COL:
                    layers = p.get("float_layers", []) + p.get("int16_layers", [])
                    it.setToolTip("\n".join(p.get("moves") or ["no moves"])
                                  + (f"\n\nfloat: {', '.join(p.get('float_layers', [])) or '—'}"
                                     f"\n16-bit: {', '.join(p.get('int16_layers', [])) or '—'}" if layers else "")
                                  + (f"\n\nfailed: {p['error']}" if p.get("error") else ""))
                self.table.setItem(i, c, it)
        if sel is not None and sel < len(points):
            self.table.selectRow(sel)
        self.table.blockSignals(False)

    def _draw(self, t: dict | None, points: list[dict]) -> None:
        pi = self.plot.getPlotItem()
        ok = [(i, p) for i, p in enumerate(points) if not p.get("error") and p.get("latency_ms") is not None
              and p.get("holdout_metric") is not None]
        if t is None or not ok:
            for it in (self.links, self.front):
                it.setData([], [])
            for it in (self.search_pts, self.held_pts, self.ring, self.sel_ring):
                it.setData([])
            self.target_line.hide()
            self.key.setText("" if t is None else "points appear here as they are verified")
            return
        target = parse_target(t["target"])
        pct = target.metric == "accuracy_drop"
        scale = 100.0 if pct else 1.0
        pi.setLabel("left", f"{target.metric}{' (%)' if pct else ' (dB)' if target.metric == 'sqnr' else ''}, "
                    "held-back part")
        pi.setLabel("bottom", "latency (ms)")
        x = np.array([p["latency_ms"] for _, p in ok])
        y = np.array([p["holdout_metric"] for _, p in ok]) * scale
        ys = np.array([np.nan if p.get("search_metric") is None else p["search_metric"] for _, p in ok]) * scale
        self.held_pts.setData([{"pos": (xi, yi), "data": i,
                                "brush": pg.mkBrush(COLORS["met"] if p.get("met_holdout") else COLORS["missed"]),
                                "pen": pg.mkPen("#222", width=0.8),
                                "symbol": {"int8": "s", "global": "t"}.get(p.get("source"), "o")}
                               for (i, p), xi, yi in zip(ok, x, y)])
        have = ~np.isnan(ys)
        self.search_pts.setData(x[have], ys[have])
        pairs = np.empty((2 * int(have.sum()), 2))
        pairs[0::2, 0], pairs[1::2, 0] = x[have], x[have]
        pairs[0::2, 1], pairs[1::2, 1] = ys[have], y[have]
        self.links.setData(pairs[:, 0], pairs[:, 1])
        pareto = self._pareto(t, points)
        front = sorted((p["latency_ms"], p["holdout_metric"] * scale) for i, p in ok if pareto[i])
        self.front.setData([a for a, _ in front], [b for _, b in front])
        chosen = t.get("chosen")
        cp = [(p["latency_ms"], p["holdout_metric"] * scale) for i, p in ok if i == chosen]
        self.ring.setData([c[0] for c in cp], [c[1] for c in cp])
        self.target_line.setValue(target.value * scale)
        self.target_line.show()
        self._mark_selected()
        n_hold = t.get("holdout_samples")
        self.key.setText(key_html([(COLORS["met"], "ring", "meets the target on held-back data"),
                                   (COLORS["missed"], "ring", "misses it"),
                                   (COLORS["search"], "ring", "same point on the search part"),
                                   (COLORS["pareto"], "line", "Pareto front"),
                                   (COLORS["target"], "dash", f"target {target.describe()}"),
                                   (COLORS["chosen"], "ring", "chosen")])
                         + "&nbsp;&nbsp;· latency: one sample on the deployed kernels"
                         + ("" if n_hold is None else f"; held back: {n_hold} samples"))

    def _mark_selected(self) -> None:
        t, i = self.ws.tune, self.selected_point()
        p = t["points"][i] if t is not None and i is not None else None
        if p is None or p.get("latency_ms") is None or p.get("holdout_metric") is None:
            self.sel_ring.setData([])
            return
        scale = 100.0 if t["target"].startswith("accuracy_drop") else 1.0
        self.sel_ring.setData([p["latency_ms"]], [p["holdout_metric"] * scale])

    def _describe(self, t: dict | None, points: list[dict]) -> None:
        if t is None:
            self.summary.setText("Searches from the current recipe for the cheapest mix of INT8, 16-bit and float "
                                 "per group of layers that share quantized tensors, and verifies every point on a "
                                 "held-back third of the evaluation data that the search never sees.")
            return
        if t.get("running"):
            self.summary.setText(f"<b>Searching</b> for {t['target']} ({t['objective']}): {len(points)} point(s) "
                                 "verified so far. Cancel keeps them.")
            return
        lines = [f"<b>{t['target']}</b>, objective {t['objective']}: {len(points)} verified point(s)"]
        if t.get("evaluations") is not None:
            lines.append(f"{t['evaluations']} evaluations in {t['elapsed_s']:.1f} s ({t.get('pool', '')}); "
                         f"searched on {t['search_samples']} samples, verified on {t['holdout_samples']} "
                         "held-back samples")
        if t.get("stopped"):
            lines.append(f"<span style='color:#d62728'>stopped early ({t['stopped']})</span>: the points verified "
                         "so far are kept")
        best = t.get("best")
        if best is not None:
            verdict = "meets" if best.get("met_holdout") else "does <b>not</b> meet"
            lines.append(f"best: <b>{_esc(best['label'])}</b>, {verdict} the target on held-back data "
                         f"({_fmt(best.get('holdout_metric'), '.4g')}; search part "
                         f"{_fmt(best.get('search_metric'), '.4g')})")
        if t.get("chosen") is not None and t["chosen"] < len(points):
            lines.append(f"chosen: <b>{_esc(points[t['chosen']]['label'])}</b> (Undo takes it back)")
        lines += [f"note: {_esc(n)}" for n in t.get("notes", [])]
        self.summary.setText("<br>".join(lines))

    # -- selection ------------------------------------------------------------------------------------------
    def _selection_changed(self) -> None:
        self._mark_selected()
        self._update_enabled()

    def _plot_clicked(self, _item, spots, *_) -> None:
        if spots:
            self.table.selectRow(int(spots[0].data()))


def _esc(s: str) -> str:
    return (s or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
