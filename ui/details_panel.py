"""The Layer dock: everything known about the selected layer, and the hints with the setting to try."""

from __future__ import annotations

import html

from PySide6.QtWidgets import QTextBrowser, QVBoxLayout, QWidget

from analyzers.diff_types import ErrorMetrics
from workbench.workspace import Workspace

from .colors import fmt_db


def _metrics_rows(name: str, m: ErrorMetrics | None) -> str:
    if m is None:
        return f"<tr><td>{name}</td><td colspan=5>—</td></tr>"
    return (f"<tr><td>{name}</td><td align=right>{fmt_db(m.sqnr_db)}</td><td align=right>"
            f"{fmt_db(m.channel_sqnr_mean)}</td><td align=right>{fmt_db(m.channel_sqnr_min)}</td>"
            f"<td align=right>{m.cosine:.4f}</td><td align=right>{m.max_abs:.3g}</td></tr>")


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
        if not sel:
            self.text.setHtml("<p style='color:#5f6b78'>Select a layer in the graph, the table or a plot.</p>")
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
            self.text.setHtml("".join(parts))
            return
        if lay.flagged:
            parts.append("<p style='color:#b42318'><b>Flagged</b>: this layer loses more than the thresholds allow.</p>")
        parts.append("<table cellspacing=0 cellpadding=3 border=1 style='border-collapse:collapse;border-color:#ccd'>"
                     "<tr><th></th><th>SQNR</th><th>ch.&nbsp;mean</th><th>ch.&nbsp;worst</th><th>cosine</th><th>max&nbsp;err</th></tr>"
                     + _metrics_rows("isolated", lay.isolated) + _metrics_rows("cumul.", lay.cumulative)
                     + "</table><p style='color:#5f6b78;margin-top:2px'>SQNR in dB; ch. = per output channel</p>")
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
        if lay.hints:
            parts.append("<h4 style='margin:6px 0 2px'>Why, and what to try</h4><ul style='margin-top:0'>")
            for h in lay.hints:
                parts.append(f"<li>{e(h.message)}<br><i>Try:</i> {e(h.suggestion)}</li>")
            parts.append("</ul>")
        else:
            parts.append("<p style='color:#5f6b78'>No hints for this layer.</p>")
        self.text.setHtml("".join(parts))
