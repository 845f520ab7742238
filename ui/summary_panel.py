"""The Run dock: which run is shown and what it is compared with, whether results are stale, Re-run,
the run's verdict (good / warn / bad, by the report's rules), its INT8 MAC share and model-wide hints,
and the model-output metrics before and after, by each output's kind (SQNR and cosine for all; top-1
agreement and accuracy for a classifier, per-sample cosine for an embedding, step and decoded-sequence
agreement for a sequence, max-abs error).
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workbench.app.workspace import Workspace
from workbench.compare import compare_runs
from workbench.formatting import mac_share_text
from workbench.report.verdict import run_verdict

# (figure, label, format); a figure both runs lack (not one of the output's kind) gets no row
OUTPUT_METRICS = (("sqnr_db", "SQNR dB", "{:.2f}"), ("cosine", "cosine", "{:.5f}"),
                  ("top1_agreement", "top-1 agree", "{:.2%}"), ("accuracy_fp32", "acc. FP32", "{:.2%}"),
                  ("accuracy_int8", "acc. INT8", "{:.2%}"), ("cosine_mean", "cosine mean", "{:.5f}"),
                  ("cosine_min", "cosine worst", "{:.5f}"), ("step_agreement", "step agree", "{:.2%}"),
                  ("sequence_match", "decoded equal", "{:.2%}"), ("max_abs", "max-abs error", "{:.4g}"))

LOWER_IS_BETTER = {"max_abs"}


VERDICT_COLORS = {"good": "#1a7f37", "warn": "#8a5a00", "bad": "#b42318",
                  "better": "#1a7f37", "mixed": "#8a5a00", "worse": "#b42318", "same": "#3d4650"}


# the model-wide hints (analyzers.model_hints), named in a few words where the full text does not fit
MODEL_HINTS = {"activations_16bit": "try 16-bit activations", "attention_matmul_only": "quantize only MatMul/Gemm",
               "kernel_saturation": "this CPU's u8×s8 kernels saturate"}


def verdict_html(word: str, verdict: str | None, reasons: list[str]) -> str:
    """'<word>: <verdict>' in its colour, with the reasons as a list (rich text for a QLabel)."""
    if verdict is None:
        return f"{word}: none (the run has no output figure to judge)"
    items = "".join(f"<li>{html.escape(r)}</li>" for r in reasons)
    return (f"<b style='color:{VERDICT_COLORS.get(verdict, '#3d4650')}'>{word}: {verdict}</b>"
            + (f"<ul style='margin:0 0 0 -24px'>{items}</ul>" if items else ""))


def _fmt(fmt: str, v) -> str:
    return "—" if v is None else fmt.format(v)


def empty_text(ws: Workspace) -> str:
    """What a results view says before it has results: the truth about why (never "No analysis yet" while one
    runs)."""
    if ws.activity == "Analysing":
        return "Analysing… the results appear here when it finishes (Esc cancels)."
    if ws.activity:
        return f"{ws.activity}…"
    if ws.spec is None:
        return "No model open. Open a model (Ctrl+O) or the demo."
    if ws.graph is None:
        return "Opening the model…"
    return "No analysis yet: run the analysis (F5)."


class SummaryPanel(QWidget):
    """Run selector, stale banner with Re-run, and output metrics with a before/after comparison."""

    sigRerun = Signal()

    def __init__(self, workspace: Workspace, parent=None):
        super().__init__(parent)
        self.ws = workspace
        grid = QGridLayout()
        grid.addWidget(QLabel("Showing"), 0, 0)
        self.run_box = QComboBox()
        self.run_box.setToolTip("The run whose results every view shows; earlier runs stay available")
        self.run_box.activated.connect(lambda i: self.ws.show_run(i))
        grid.addWidget(self.run_box, 0, 1)
        grid.addWidget(QLabel("Compared with"), 1, 0)
        self.base_box = QComboBox()
        self.base_box.setToolTip("The 'before' of every before/after view")
        self.base_box.activated.connect(self._baseline_chosen)
        grid.addWidget(self.base_box, 1, 1)
        grid.addWidget(QLabel("Samples"), 2, 0)
        self.samples = QSpinBox()
        self.samples.setRange(0, 1_000_000)
        self.samples.setSpecialValueText("all")
        self.samples.setToolTip("Calibration samples each analysis compares FP32 and INT8 on (all: every one); "
                                "fewer is faster on a large model. Used by the next run; saved in the project.")
        self.samples.valueChanged.connect(lambda v: self.ws.set_samples(v or None))
        grid.addWidget(self.samples, 2, 1)
        grid.setColumnStretch(1, 1)

        self.stale = QFrame()
        self.stale.setObjectName("staleBanner")
        self.stale.setStyleSheet("#staleBanner {background:#fff4d6; border:1px solid #e6c66e; border-radius:4px;}")
        sl = QHBoxLayout(self.stale)
        sl.setContentsMargins(8, 4, 4, 4)
        self.stale_label = QLabel()
        self.stale_label.setWordWrap(True)
        sl.addWidget(self.stale_label, 1)
        self.rerun = QPushButton("Re-run")
        self.rerun.setToolTip("Re-quantize with the edited recipe and re-analyse (calibration is reused) — F5")
        self.rerun.clicked.connect(self.sigRerun)
        sl.addWidget(self.rerun)
        self.stale.hide()

        self.info = QLabel()
        self.info.setWordWrap(True)
        self.info.setStyleSheet("color:#3d4650;")
        # the verdict (the report's rules, workbench.report.verdict), the INT8 MAC share, model-wide hints
        self.verdict = QLabel()
        self.verdict.setWordWrap(True)
        self.verdict.setTextFormat(Qt.TextFormat.RichText)
        self.verdict.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.verdict.setStyleSheet("color:#3d4650;")
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Output", "before", "after", "Δ"])
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        for c in (1, 2, 3):
            self.table.horizontalHeader().setSectionResizeMode(c, QHeaderView.ResizeMode.Stretch)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addLayout(grid)
        lay.addWidget(self.stale)
        lay.addWidget(self.info)
        lay.addWidget(self.verdict)
        lay.addWidget(self.table, 1)
        ev = workspace.events
        ev.current.connect(lambda *_: self.refresh())
        ev.stale.connect(lambda *_: self._refresh_stale())
        ev.recipe.connect(lambda *_: self._refresh_stale())
        ev.activity.connect(lambda *_: self.refresh())
        ev.samples.connect(lambda *_: self._show_samples())
        self._show_samples()
        self.refresh()

    def _show_samples(self) -> None:
        self.samples.blockSignals(True)
        self.samples.setValue(self.ws.samples or 0)
        self.samples.blockSignals(False)

    def _baseline_chosen(self, i: int) -> None:
        self.ws.set_baseline(None if i == 0 else i - 1)

    def refresh(self) -> None:
        ws = self.ws
        self.run_box.clear()
        self.base_box.clear()
        self.base_box.addItem("the previous run")
        for r in ws.runs:
            self.run_box.addItem(r.label)
            self.base_box.addItem(r.label)
        if ws.current is not None:
            self.run_box.setCurrentIndex(ws.current)
        self.base_box.setCurrentIndex(0 if ws.baseline is None else ws.baseline + 1)
        self.run_box.setEnabled(bool(ws.runs))
        self.base_box.setEnabled(len(ws.runs) > 1)
        run, before = ws.current_run, ws.baseline_run
        if run is None:
            self.info.setText(empty_text(ws))
            self.verdict.setText("")
            self.verdict.hide()
            self.table.setRowCount(0)
            self._refresh_stale()
            return
        r = run.result
        flagged = sum(1 for lay in r.layers if lay.flagged)
        overrides = len(run.recipe.layers)
        self.info.setText(f"<b>{run.label}</b>: {r.samples} samples, {len(r.layers)} layers, "
                          f"<span style='color:#d62728'><b>{flagged} flagged</b></span>, {overrides} override(s); "
                          f"{r.elapsed_s:.2f} s, peak {r.peak_rss_mb:.0f} MB")
        self.verdict.setText(self.verdict_text(r))
        self.verdict.setToolTip("The verdict a report of this run carries (good / warn / bad): each output figure "
                                "against the thresholds in docs/report.md. The MAC share is what the recipe asks "
                                "for; the Benchmark panel measures what onnxruntime runs in integer kernels."
                                + "".join(f"\n\n• {h.message}\n   try: {h.suggestion}" for h in r.hints))
        self.verdict.show()
        comp = compare_runs(before.result if before else r, r)
        names = dict.fromkeys(o.name for o in comp.outputs)
        single = len(names) == 1
        # the header shows the output's kind, its tooltip the names: a long name would squeeze the figures
        first = (comp.outputs[0].kind or "Output").capitalize() if single else "Output"
        self.table.setHorizontalHeaderLabels([first, before.label.split(":")[0] if before else "before",
                                              run.label.split(":")[0], "Δ"])
        self.table.horizontalHeaderItem(0).setToolTip(
            "; ".join(dict.fromkeys(f"{o.name}: {o.kind or 'output'}" for o in comp.outputs)))
        for c, r_ in ((1, before), (2, run)):
            self.table.horizontalHeaderItem(c).setToolTip(r_.label if r_ else "")
        rows = []
        group = None
        for od in comp.outputs:
            # every figure belongs to an execution mode (exact Q/DQ or deployed kernels): a header row names it,
            # so the figure rows keep short labels and the numbers their width
            head = od.kernels if single else f"{od.name} ({od.kind}), {od.kernels}"
            if head != group:
                group = head
                rows.append((f"{head} kernels" if single else head, None, None, None, None, None))
            for field, name, fmt in OUTPUT_METRICS:
                after_v = od.value(field, "after")
                if after_v is None and od.value(field, "before") is None:
                    continue
                before_v = od.value(field, "before") if before else None
                d = od.delta(field) if before else None
                rows.append((name, _fmt(fmt, before_v), _fmt(fmt, after_v), d, fmt, field))
        self.table.clearSpans()
        self.table.setRowCount(len(rows))
        for i, (label, b, a, d, fmt, field) in enumerate(rows):
            self.table.setItem(i, 0, QTableWidgetItem(label))
            if fmt is None:  # a group header: the execution mode (and output) the rows below belong to
                self.table.setSpan(i, 0, 1, 4)
                f = self.table.item(i, 0).font()
                f.setBold(True)
                self.table.item(i, 0).setFont(f)
                self.table.item(i, 0).setBackground(QColor("#eef1f5"))
                continue
            for c, text in ((1, b), (2, a)):
                it = QTableWidgetItem(text)
                it.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(i, c, it)
            dt = "" if d is None else (fmt.replace("{:", "{:+").format(d) if "%" not in fmt
                                       else "{:+.2f} pt".format(100 * d))
            it = QTableWidgetItem(dt)
            it.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if d is not None and abs(d) > 1e-9 and field != "accuracy_fp32":
                better = d < 0 if field in LOWER_IS_BETTER else d > 0
                it.setForeground(QColor("#1a7f37") if better else QColor("#b42318"))
            self.table.setItem(i, 3, it)
        self._refresh_stale()

    @staticmethod
    def verdict_text(r) -> str:
        """The verdict with its reasons, the INT8 MAC share and the model-wide hints of one result (rich text)."""
        verdict, reasons = run_verdict(r)
        parts = [verdict_html("Verdict", verdict, reasons), html.escape(mac_share_text(r.macs_by_precision))]
        if r.hints:  # in full in the Layer panel, where the layer hints are; here one line (the tooltip has it all)
            parts.append(f"<b>{len(r.hints)} hint(s) for the whole model</b> (Layer panel): "
                         + "; ".join(html.escape(MODEL_HINTS.get(h.code, h.code.replace("_", " "))) for h in r.hints))
        return "<br>".join(parts)

    def _refresh_stale(self) -> None:
        ws = self.ws
        if ws.current_run is None:
            self.stale.setVisible(ws.graph is not None and ws.activity != "Analysing")
            self.stale_label.setText("Not analysed yet.")
            self.rerun.setText("Run analysis")
            return
        self.rerun.setText("Re-run")
        if ws.stale:
            n = len(ws.stale_layers())
            what = f"{n} layer(s)" if n else "the global settings"
            self.stale_label.setText(f"<b>Results are stale</b>: the recipe changed for {what} since "
                                     f"{ws.current_run.label}.")
        self.stale.setVisible(ws.stale)
