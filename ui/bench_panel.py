"""The Benchmark dock: FP32 against the shown run's INT8 model on a backend, in the background.

Backends come from ``workbench.bench.backend_availability``: unavailable ones stay in the list but
greyed out, with their reason and fix. Results (latency, speedup, INT8 coverage, sizes) accumulate in
a table and a latency chart, and are kept in the workspace (so projects save them).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from workbench.app.requests import Benchmark
from workbench.app.workspace import Workspace
from workbench.bench import BenchRequest, backend_availability

from .errors import ErrorInfo
from .plots.common import hint_label, key_html, plot_widget

COLUMNS = ("Run", "Backend", "Threads", "Batch", "FP32 p50 ms", "INT8 p50 ms", "INT8 p90 ms", "Speedup",
           "INT8 nodes", "INT8 MACs", "Size MB FP32 → INT8", "Notes")


def parse_batches(text: str) -> tuple[int, ...]:
    """'1, 8,32' -> (1, 8, 32); raises ValueError on anything else."""
    vals = tuple(int(t) for t in text.replace(" ", "").split(",") if t)
    if not vals or any(v < 1 for v in vals):
        raise ValueError(text)
    return vals


def _ms(d: dict | None, key: str) -> str:
    return "—" if not d or d.get(key) is None else f"{d[key]:.3f}"


class BenchmarkPanel(QWidget):
    """Backend, threads, batch, runs → FP32 vs INT8 results with INT8 coverage."""

    def __init__(self, workspace: Workspace, controller, parent=None):
        super().__init__(parent)
        self.ws = workspace
        self.ctl = controller
        self.availability: list = []
        form = QGridLayout()
        form.addWidget(QLabel("Backend"), 0, 0)
        self.backend_box = QComboBox()
        self.backend_model = QStandardItemModel(self)
        self.backend_box.setModel(self.backend_model)
        self.backend_box.currentIndexChanged.connect(lambda *_: self._show_reason())
        form.addWidget(self.backend_box, 0, 1)
        self.refresh_button = QPushButton("Check again")
        self.refresh_button.setToolTip("Check which backends are available on this machine")
        self.refresh_button.clicked.connect(self.load_backends)
        form.addWidget(self.refresh_button, 0, 2)
        form.addWidget(QLabel("Threads"), 1, 0)
        self.threads = QSpinBox()
        self.threads.setRange(0, 256)
        self.threads.setSpecialValueText("auto (physical cores)")
        form.addWidget(self.threads, 1, 1)
        form.addWidget(QLabel("Batch"), 2, 0)
        self.batch = QLineEdit("1")
        self.batch.setToolTip("One or more batch sizes, e.g. 1 or 1,8,32")
        form.addWidget(self.batch, 2, 1)
        form.addWidget(QLabel("Timed runs"), 3, 0)
        self.runs = QSpinBox()
        self.runs.setRange(1, 100000)
        self.runs.setValue(100)
        form.addWidget(self.runs, 3, 1)
        self.run_button = QPushButton("Benchmark FP32 vs INT8")
        self.run_button.setToolTip("Times the FP32 model and the shown run's INT8 model in a separate process")
        self.run_button.clicked.connect(self.run)
        form.addWidget(self.run_button, 4, 1)
        form.setColumnStretch(1, 1)
        self.reason = QTextBrowser()
        self.reason.setOpenLinks(False)
        self.reason.setMinimumWidth(360)
        self.reason.setStyleSheet("QTextBrowser {color:#3d4650; background:transparent; border:none;}")

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.chart = plot_widget("p50 latency (ms)", "")
        self.chart.getPlotItem().getAxis("left").enableAutoSIPrefix(False)
        self.note = hint_label()
        self.note.setTextFormat(Qt.TextFormat.RichText)

        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addLayout(form)
        ll.addWidget(self.reason, 1)
        split = QSplitter()
        split.addWidget(self.table)
        split.addWidget(self.chart)
        split.setSizes([700, 400])
        top = QHBoxLayout()
        top.addWidget(left, 0)
        top.addWidget(split, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top, 1)
        lay.addWidget(self.note)
        workspace.events.benchmarks.connect(lambda *_: self.refresh())
        workspace.events.current.connect(lambda *_: self._update_enabled())
        workspace.events.activity.connect(lambda *_: self._update_enabled())
        controller.sigBusyChanged.connect(lambda *_: self._update_enabled())
        self._loaded = False
        self.refresh()

    # -- backends ------------------------------------------------------------------------------------
    def showEvent(self, event):
        super().showEvent(event)
        if not self._loaded:
            self.load_backends()

    def load_backends(self) -> None:
        """List every backend; unavailable ones are disabled, with their reason as tooltip and below."""

        self._loaded = True
        self.availability = backend_availability()
        self.backend_model.clear()
        first_ok = None
        for a in self.availability:
            it = QStandardItem(a.backend if a.available else f"{a.backend} — unavailable")
            it.setData(a.backend, Qt.ItemDataRole.UserRole)
            it.setToolTip(a.reason + (f"\nFix: {a.fix}" if a.fix else ""))
            it.setEnabled(bool(a.available))
            self.backend_model.appendRow(it)
            if a.available and first_ok is None:
                first_ok = self.backend_model.rowCount() - 1
        if first_ok is not None:
            self.backend_box.setCurrentIndex(first_ok)
        self._show_reason()
        self._update_enabled()

    def backend(self) -> str | None:
        return self.backend_box.currentData(Qt.ItemDataRole.UserRole)

    def _show_reason(self) -> None:
        lines = []
        for a in self.availability:
            mark = "✓" if a.available else "✗"
            extra = " (numerics and INT8 coverage only: emulated timings are not benchmarks)" \
                if a.backend == "neon-emulated" and a.available else ""
            fix = f"<br>&nbsp;&nbsp;<i>fix:</i> {_esc(a.fix)}" if a.fix and not a.available else ""
            lines.append(f"{mark} <b>{_esc(a.backend)}</b>: {_esc(a.reason)}{extra}{fix}")
        self.reason.setText("<br>".join(lines))

    def _update_enabled(self) -> None:
        run = self.ws.current_run
        ok = run is not None and bool(run.result.int8_model) and not self.ctl.busy and self.backend() is not None
        self.run_button.setEnabled(ok)
        if self.ws.benchmarks:
            return  # the note describes the last result (refresh)
        if self.ws.activity == "Analysing":
            self.note.setText("Analysing… the benchmark can time its INT8 model when it has finished.")
        elif self.ws.activity:
            self.note.setText(f"{_esc(self.ws.activity)}…")
        elif run is None:
            self.note.setText("Run the analysis first (F5): the benchmark times the shown run's INT8 model against "
                              "FP32.")
        else:
            self.note.setText(f"Times the INT8 model of <b>{_esc(run.label)}</b> against FP32: press "
                              "<b>Benchmark FP32 vs INT8</b> (F6).")

    # -- running -------------------------------------------------------------------------------------
    def run(self) -> bool:
        run, opened = self.ws.current_run, self.ctl.opened
        if run is None or not run.result.int8_model:
            return False
        try:
            batches = parse_batches(self.batch.text())
        except ValueError:

            self.ctl.sigError.emit(ErrorInfo("Bad batch sizes", f"{self.batch.text()!r} is not a list of sizes",
                                             "type e.g. 1 or 1,8,32"))
            return False
        backend = self.backend()
        model = opened.prepared_path if opened is not None else self.ws.spec.model

        def done(report: dict) -> None:
            data = dict(report["backends"][backend], host=report.get("host"), feed=report.get("feed"),
                        batches=list(batches), notes_run=report.get("notes", []))
            self.ws.add_benchmark(backend, data)

        request = Benchmark(BenchRequest(model=model, int8=run.result.int8_model, calib=self.ws.spec.calib,
                                         backends=(backend,), threads=self.threads.value(), batches=tuple(batches),
                                         runs=self.runs.value(), warmup=max(1, min(10, self.runs.value() // 10)),
                                         compare_activation_types=False))
        return self.ctl.submit(f"Benchmarking on {backend}", request, on_result=done, doing=f"benchmark on {backend}")

    # -- results ------------------------------------------------------------------------------------
    def refresh(self) -> None:
        entries = self.ws.benchmarks
        self.table.setRowCount(len(entries))
        for i, e in enumerate(entries):
            d = e.data
            cov = d.get("int8_coverage") or {}
            mb = d.get("model_mb") or {}
            notes = "; ".join(f"{k}: {v}" for k, v in (d.get("failures") or {}).items())
            if d.get("emulated"):
                notes = "emulated: numerics and coverage only" + (f"; {notes}" if notes else "")
            speed = d.get("speedup")
            vals = (e.run_label.split(":")[0], e.backend, str(d.get("threads") or "auto"), str(d.get("batch") or ""),
                    _ms(d.get("fp32"), "p50_ms"), _ms(d.get("int8"), "p50_ms"), _ms(d.get("int8"), "p90_ms"),
                    "—" if speed is None else f"{speed:.2f}×",
                    f"{cov.get('nodes_int8', '—')} int8 / {cov.get('nodes_float', '—')} float" if cov else "—",
                    "—" if cov.get("macs_int8_share") is None else f"{100 * cov['macs_int8_share']:.0f}%",
                    f"{mb.get('fp32', 0):.2f} → {mb.get('int8', 0):.2f}" if mb else "—", notes)
            for c, v in enumerate(vals):
                it = QTableWidgetItem(v)
                if c in (4, 5, 6, 7, 10):
                    it.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(i, c, it)
        self._chart(entries)
        if entries:
            last = entries[-1].data
            float_nodes = (last.get("int8_coverage") or {}).get("float_nodes") or []
            fell = ", ".join(f"{n['name']} ({n['op_type']})" for n in float_nodes[:4])
            self.note.setText(key_html([("#9aa3ad", "line", "FP32 p50"), ("#1f77b4", "line", "INT8 p50"),
                                        ("#222", "line", "whisker: p90")])
                              + f"&nbsp;&nbsp;·&nbsp; last on {_esc(entries[-1].backend)}: "
                              + (f"ran in float: {_esc(fell)}" if fell else "every node with MACs ran in INT8"))
        self._update_enabled()

    def _chart(self, entries) -> None:
        pi = self.chart.getPlotItem()
        pi.clear()
        ax = pi.getAxis("bottom")
        timed = [e for e in entries if not e.data.get("emulated") and e.data.get("fp32")]
        if not timed:
            ax.setTicks(None)
            return
        rows = [(e.data["fp32"], e.data.get("int8") or {}) for e in timed]
        top = max(max(f.get("p90_ms") or 0, i.get("p90_ms") or 0) for f, i in rows)
        scale, unit = (1000.0, "µs") if top < 1.0 else (1.0, "ms")
        pi.setLabel("left", f"latency ({unit})")

        def col(which, key):
            return np.array([(r[which].get(key) if r[which].get(key) is not None else np.nan) * scale for r in rows])

        x = np.arange(len(timed), dtype=float)
        fp, fp90, i8, i890 = col(0, "p50_ms"), col(0, "p90_ms"), col(1, "p50_ms"), col(1, "p90_ms")
        pi.addItem(pg.BarGraphItem(x=x - 0.18, height=fp, width=0.34, brush="#9aa3ad"))
        pi.addItem(pg.BarGraphItem(x=x + 0.18, height=np.nan_to_num(i8), width=0.34, brush="#1f77b4"))
        pi.addItem(pg.ErrorBarItem(x=x - 0.18, y=fp, top=np.nan_to_num(fp90 - fp), bottom=np.zeros_like(fp), beam=0.1))
        pi.addItem(pg.ErrorBarItem(x=x + 0.18, y=np.nan_to_num(i8), top=np.nan_to_num(i890 - i8),
                                   bottom=np.zeros_like(i8), beam=0.1))
        ax.setTicks([[(i, f"{e.run_label.split(':')[0].replace('Run ', 'R')} {e.backend} b{e.data.get('batch')}")
                      for i, e in enumerate(timed)]])
        pi.setXRange(-0.6, len(timed) - 0.4)
        pi.enableAutoRange(axis="y")


def _esc(s: str | None) -> str:
    return (s or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
