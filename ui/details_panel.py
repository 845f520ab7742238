"""The Layer dock: everything known about the selected layer, and the hints with the setting to try."""

from __future__ import annotations

import html

from PySide6.QtWidgets import QTextBrowser, QVBoxLayout, QWidget

from analyzers.diff_types import ErrorMetrics
from workbench.app.workspace import Workspace
from workbench.formatting import EFFECTIVE_SQNR, EFFECTIVE_SQNR_DEF

from .colors import fmt_db


def _metrics_table(iso: ErrorMetrics | None, cum: ErrorMetrics | None) -> str:
    """Rows = figures, columns = isolated | cumulative (narrow enough for a side panel)."""
    def cell(m, f):
        return "<td align=right>—</td>" if m is None else f"<td align=right>{f(m)}</td>"

    rows = (("tensor SQNR (dB)", lambda m: fmt_db(m.sqnr_db)),
            (f"<b>{EFFECTIVE_SQNR}</b>", lambda m: f"<b>{fmt_db(m.effective_sqnr_db)}</b>"),
            ("channel mean", lambda m: fmt_db(m.channel_sqnr_mean)),
            ("worst channel", lambda m: fmt_db(m.channel_sqnr_min)),
            ("channels left out", lambda m: f"{m.channels_exact or 0} exact, {m.channels_dead or 0} dead"),
            ("cosine", lambda m: f"{m.cosine:.5f}"),
            ("max |error|", lambda m: f"{m.max_abs:.3g}"), ("mean error", lambda m: f"{m.mean_error:+.2g}"))
    body = "".join(f"<tr><td>{name}</td>{cell(iso, f)}{cell(cum, f)}</tr>" for name, f in rows)
    return ("<table cellspacing=0 cellpadding=3 border=1 style='border-collapse:collapse;border-color:#ccd'>"
            "<tr><th></th><th>isolated</th><th>cumulative</th></tr>" + body + "</table>"
            f"<p style='color:#5f6b78;margin:2px 0'>{EFFECTIVE_SQNR_DEF}: layers are ranked and flagged by the "
            "isolated one</p>")


def model_hints_html(hints) -> str:
    """The run's model-wide hints (``AnalysisResult.hints``, e.g. 16-bit activations with its measured cost), as
    the layer hints are shown; '' when there are none."""
    if not hints:
        return ""
    e = html.escape
    items = "".join(f"<li>{e(h.message)}<br><i>Try:</i> {e(h.suggestion)}</li>" for h in hints)
    return f"<h4 style='margin:6px 0 2px'>For the whole model</h4><ul style='margin-top:0'>{items}</ul>"


class DetailsPanel(QWidget):
    """Read-only HTML summary of the first selected layer (all strings from the model are escaped)."""

    def __init__(self, workspace: Workspace, parent=None):
        super().__init__(parent)
        self.ws = workspace
        self.text = QTextBrowser()
        self.text.setOpenLinks(False)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.text)
        for ev in (workspace.events.selection, workspace.events.current, workspace.events.recipe):
            ev.connect(lambda *_: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        sel = self.ws.selection
        run = self.ws.current_run
        model_hints = model_hints_html(run.result.hints) if run is not None else ""
        if not sel:
            self.text.setHtml("<p style='color:#5f6b78'>Select a layer in the graph, the table or a plot.</p>"
                              + model_hints)
            return
        node = sel[0]
        e = html.escape
        g = self.ws.graph
        op = g.node(node).op_type if g is not None and g.has_node(node) else ""
        prec = self.ws.recipe.precision_of(node).upper()
        pct = self.ws.recipe.percentile_of(node)
        parts = [f"<h3 style='margin:2px 0'>{e(node)} <span style='color:#5f6b78;font-weight:normal'>{e(op)}</span></h3>",
                 f"<p>precision <b>{prec}</b>" + (f" · percentile override <b>{pct:g}</b>" if pct is not None else "")
                 + (f" · {len(sel)} layers selected" if len(sel) > 1 else "") + "</p>"]
        lay = self.ws.layer_result(node)
        if lay is None:
            parts.append("<p style='color:#5f6b78'>No results for this node in the shown run.</p>")
            self.text.setHtml("".join(parts) + model_hints)
            return
        if lay.flagged:
            parts.append("<p style='color:#b42318'><b>Flagged</b>: this layer loses more than the thresholds allow.</p>")
        if lay.kernels == "deployed":  # a deployed-only analysis: no exact simulation ran
            parts.append("<p><b>Deployed kernels only</b> (this CPU): the cumulative column is the layer's output as "
                         "onnxruntime's fused kernels compute it, against FP32"
                         + (f" ({e(str(lay.deployed.get('kernel') or ''))})" if lay.deployed else
                            "; this layer's output does not survive onnxruntime's fusion, so it has no figures")
                         + ". Isolated error and the kernel gap need the exact simulation: analyse with both "
                         "kernels for them.</p>")
        parts.append(_metrics_table(lay.isolated, lay.cumulative))
        extra = []
        if lay.weight is not None:
            extra.append(f"weight SQNR {fmt_db(lay.weight.sqnr_db)} dB (worst channel "
                         f"{fmt_db(lay.weight.channel_sqnr_min)} dB)")
        if lay.amplification is not None:
            extra.append(f"amplification {fmt_db(lay.amplification)} dB")
        if lay.introduced_db is not None:
            extra.append(f"introduced here {fmt_db(lay.introduced_db)} dB")
        if lay.clip_rate is not None:
            extra.append(f"clipped {100 * lay.clip_rate:.3f}% of values")
        if extra:
            parts.append("<p>" + " · ".join(extra) + "</p>")
        d = lay.deployed
        if d and d.get("kernel_gap_db") is not None:
            departs = any(h.code == "kernel_departs" for h in lay.hints)
            own = d.get("own_gap_db")
            style = " style='color:#b42318'" if departs else ""
            parts.append("<h4 style='margin:6px 0 2px'>Deployed kernels (this CPU)</h4>"
                         f"<p>{e(str(d.get('kernel') or ''))}: SQNR <b>{fmt_db(d['sqnr_db'])} dB</b> vs exact "
                         f"{fmt_db(d.get('exact_sqnr_db'))} dB · kernel gap "
                         f"<b{style}>{fmt_db(d['kernel_gap_db'], 2)} dB</b>"
                         + (f" (its kernel alone, fed the simulation's inputs: {fmt_db(own, 2)} dB)"
                            if own is not None else "")
                         + f" · {100 * d['lsb_diff_share']:.2f}% of values ≥ 1 LSB off</p>")
        elif lay.kernels != "deployed" and self.ws.current_run is not None and any(
                x.deployed for x in self.ws.current_run.result.layers):
            parts.append("<p style='color:#5f6b78'>Deployed kernels: this layer's output does not survive "
                         "onnxruntime's fusion, so it has no deployed figures.</p>")
        if lay.hints:
            parts.append("<h4 style='margin:6px 0 2px'>Why, and what to try</h4><ul style='margin-top:0'>")
            for h in lay.hints:
                parts.append(f"<li>{e(h.message)}<br><i>Try:</i> {e(h.suggestion)}</li>")
            parts.append("</ul>")
        else:
            parts.append("<p style='color:#5f6b78'>No hints for this layer.</p>")
        parts.append(model_hints)
        self.text.setHtml("".join(parts))
