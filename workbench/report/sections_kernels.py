"""The report's kernel section: this CPU's integer path, the deployed-vs-exact gap, its cause and the remedies
measured on the model (``analysis.kernel_gap``), in HTML and in Markdown."""

from __future__ import annotations

from analyzers.kernel_gap import figure_label

from .html_parts import section, table
from .markup import Markup, el
from .view import View, format_value

_PCT_FIGURES = ("top1_agreement", "accuracy_int8", "step_agreement", "sequence_match")


def _kind(metric: str | None) -> str:
    return "pct" if metric in _PCT_FIGURES else "db"


def kernels(v: View, f: int) -> Markup | None:
    """HTML: the integer path, the gap on the primary output and every measured remedy (None without a gap entry)."""
    a = ("runs", f, "analysis", "kernel_gap")
    g = v.get(*a)
    if not g:
        return None
    p = g.get("integer_path")
    head = [el("p", None, "Integer path of the CPU that made this report: ",
               el("b", None, f"{p['isa']} ({p['instruction']})") if p else "unknown", ". ", p["note"] if p else "")]
    if g.get("metric_name") is None:
        return section("kernels", "Kernels: deployed vs exact", *head)
    k = _kind(g["metric_name"])
    fig = figure_label(g["metric_name"])
    gap_p = el("p", None, f"Output {g['output']}, {fig}: deployed ", v.num(a + ("deployed",), k), ", exact ",
               v.num(a + ("exact",), k), ". ",
               ("Cause: " + g["cause_message"] + ".") if g.get("significant") else
               "No gap beyond rounding noise (more than one sample, or 1 dB of SQNR).")
    parts = head + [gap_p]
    if g.get("skipped"):
        parts.append(el("p", {"class_": "muted"}, g["skipped"]))
    if g.get("remedies"):
        rows = []
        for i, r in enumerate(g["remedies"]):
            name = r["name"] + (" (best)" if r["name"] == g.get("best") else "")
            rows.append([name, v.num(a + ("remedies", i, "value"), k), v.num(a + ("remedies", i, "recovered_share"),
                                                                           "pct1"),
                         "yes" if r["int8_kernels"] else "no", r["how"]])
        parts.append(table(["remedy", f"deployed {fig}", "share of the gap recovered (%)", "integer kernels",
                            "how to apply"], rows, num_cols={1, 2}, id="kernel-remedies",
                           caption="Each remedy measured as a real deployed run on this CPU, same samples"))
    return section("kernels", "Kernels: deployed vs exact", *parts)


def kernels_md(analysis: dict) -> list[str]:
    """Plain-text lines for the Markdown summary (the caller escapes them; empty without a significant gap)."""
    g = analysis.get("kernel_gap") or {}
    if not g.get("significant"):
        return []
    k = _kind(g["metric_name"])
    fig = figure_label(g["metric_name"])
    p = g.get("integer_path") or {}
    out = [f"Kernels: deployed {fig} {format_value(g['deployed'], k)}{'%' if k == 'pct' else ' dB'} vs exact "
           f"{format_value(g['exact'], k)}{'%' if k == 'pct' else ' dB'} on "
           f"{p.get('isa', 'this CPU')} ({p.get('instruction', '?')}); cause: {g['cause']}"]
    best = next((r for r in g.get("remedies", []) if r["name"] == g.get("best")), None)
    if best:
        out.append(f"best measured remedy: {best['name']} → {format_value(best['value'], k)} "
                   f"({format_value(best['recovered_share'], 'pct1')}% of the gap); {best['how']}")
    return [" · ".join(out)]
