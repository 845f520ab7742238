"""The Markdown summary: short enough to paste into a pull request, numbers from the same JSON document.

Text from the model or the user goes into code spans or is backslash-escaped, so a node name cannot
open HTML, a link or a table cell in the rendered comment.
"""

from __future__ import annotations

import re

from ..formatting import EFFECTIVE_SQNR_DEF
from .data import ReportData
from .markup import clean
from .sections_kernels import kernels_md
from .sections_results import DEPLOYED_ONLY_TEXT
from .view import format_value

TOP = 5
MAX_CHANGED = 10
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~])")


def _one_line(s) -> str:
    return clean(s).replace("\n", " ").replace("\t", " ").replace("\u2028", " ").replace("\u2029", " ")


def md_text(s) -> str:
    """Plain text with every Markdown/HTML-significant character escaped (& as an entity)."""
    return _MD_SPECIAL.sub(r"\\\1", _one_line(s).replace("&", "&amp;"))


def md_code(s, cell: bool = False) -> str:
    """A code span holding ``s`` exactly (fence longer than any backtick run); in a table ``cell`` the pipes
    are escaped, which GitHub-style tables undo before the span is read."""
    t = _one_line(s)
    if cell:
        t = t.replace("|", "\\|")
    runs = [len(m) for m in re.findall(r"`+", t)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if t.startswith("`") or t.endswith("`") or not t.strip() else ""
    return f"{fence}{pad}{t}{pad}{fence}"


def _fence(text: str) -> str:
    """A fenced code block holding ``text``; direction overrides and other invisible characters are made visible
    (``clean``), as everywhere else in the report: in a code block they would reorder what a reviewer reads."""
    text = clean(text)
    runs = [len(m) for m in re.findall(r"`{3,}", text)]
    f = "`" * max(3, max(runs, default=0) + 1)
    return f"{f}\n{text.rstrip()}\n{f}"


def _v(x, kind: str, unit: str = "") -> str:
    s = format_value(x, kind)
    return s if s == "–" else s + unit


def render_markdown(report: ReportData | dict) -> str:
    """The report's Markdown summary."""
    d = report.to_dict() if isinstance(report, ReportData) else report
    f = d["final_run"]
    run = d["runs"][f]
    s = run["summary"]
    out = [f"### {md_text(d['title'])}", ""]
    head = _output_head(s)
    if s.get("deployed"):
        head += _output_head(s["deployed"], kind=False)
    head.append(f"{s['flagged']} of {s['layers']} layers flagged")
    if s.get("macs_int8_share") is not None:
        head.append(f"INT8 MAC share {_v(s['macs_int8_share'], 'pct1', '%')}")
    source = (f"Model {md_code(d['model']['source'])}, {s['samples']} evaluation samples, "
              f"{md_text(d['generator'])}.")
    out += [" · ".join(head), "", source, ""]
    verdict, reasons = d.get("verdict"), d.get("verdict_reasons") or []
    if verdict:
        out += [f"**Verdict: {verdict}**" + (": " + "; ".join(md_text(r) for r in reasons) if reasons else ""), ""]
    c = d.get("comparison")
    if c:
        out += _comparison(d, c)
    if d.get("tune"):
        out += _tune(d["tune"])
    out += [md_text(line) for line in kernels_md(run["analysis"])] + ([""] if kernels_md(run["analysis"]) else [])
    layers = run["analysis"]["layers"]
    if run["analysis"].get("layer_kernels") == "deployed":  # no isolated error: ranked by the SQNR lost as deployed
        ranked = sorted((lay for lay in layers if lay.get("introduced_db") is not None),
                        key=lambda lay: -lay["introduced_db"])
        out += [md_text(DEPLOYED_ONLY_TEXT), "", "**Worst layers, deployed kernels** (SQNR in dB, higher is better)",
                "", "| layer | op | introduced | cumulative (deployed) | flagged | first hint |", "|---|---|--:|--:|---|---|"]
        for lay in ranked[:TOP]:
            hint = md_text(lay["hints"][0]["suggestion"]) if lay["hints"] and lay["flagged"] else ""
            out.append(f"| {md_code(lay['node'], True)} | {md_code(lay['op_type'], True)} | "
                       f"{_v(lay['introduced_db'], 'db')} | {_v(lay['cumulative']['sqnr_db'], 'db')} | "
                       f"{'yes' if lay['flagged'] else ''} | {hint} |")
        ranked = []
    else:
        ranked = sorted((lay for lay in layers if lay.get("rank_key_db") is not None), key=lambda lay: lay["rank_key_db"])
    out += [] if not ranked else [f"**Worst layers** (SQNR in dB, higher is better; ranked by the {EFFECTIVE_SQNR_DEF} "
            "of the isolated layer)", "",
            "| layer | op | effective | isolated tensor | cumulative | kernel gap (deployed) | flagged | first hint |",
            "|---|---|--:|--:|--:|--:|---|---|"]
    for lay in ranked[:TOP]:
        hint = md_text(lay["hints"][0]["suggestion"]) if lay["hints"] and lay["flagged"] else ""
        dep = lay.get("deployed") or {}
        departs = any(h["code"] == "kernel_departs" for h in lay["hints"])
        shown = dep.get("kernel_gap_db")
        shown = 0.0 if shown is not None and abs(shown) < 0.05 else shown  # rounding noise, not a sign
        alone = dep.get("own_gap_db")
        alone = "" if alone is None else f", alone {_v(0.0 if abs(alone) < 0.05 else alone, 'db')}"
        gap = (f"{_v(shown, 'db')} ({100 * dep['lsb_diff_share']:.1f}% ≥ 1 LSB{alone}"
               f"{', departs' if departs else ''})" if dep.get("kernel_gap_db") is not None else "–")
        out.append(f"| {md_code(lay['node'], True)} | {md_code(lay['op_type'], True)} | {_v(lay['rank_key_db'], 'db')} | "
                   f"{_v(lay['isolated']['sqnr_db'], 'db')} | "
                   f"{_v(lay['cumulative']['sqnr_db'], 'db')} | {gap} | {'yes' if lay['flagged'] else ''} | {hint} |")
    out.append("")
    # whole-model hints, e.g. 16-bit activations with their cost; the kernel-gap ones only where no "Kernels:" line
    # above already gives the cause and the measured remedy (the HTML report keeps their explanation)
    said = {"kernel_remedy", "kernel_gap"} if kernels_md(run["analysis"]) else set()
    for h in run["analysis"].get("hints") or []:
        if h.get("code") not in said:
            out += [f"**Hint** {md_text(h['message'])}; try: {md_text(h['suggestion'])}", ""]
    for note in run["analysis"].get("notes") or []:  # e.g. the attention-mask path kept in float
        out += [f"**Note** {md_text(note)}", ""]
    if run.get("bench"):
        parts = []
        for b in run["bench"]["backends"]:
            if b["fp32"] and b["int8"]:
                cov = (f", INT8 coverage {b['nodes_int8']}/{(b['nodes_int8'] or 0) + (b['nodes_float'] or 0)} nodes"
                       if b["nodes_int8"] is not None else "")
                parts.append(f"{md_text(b['backend'])}: FP32 {_v(b['fp32']['p50_ms'], 'ms', ' ms')} → INT8 "
                             f"{_v(b['int8']['p50_ms'], 'ms', ' ms')} p50 ({_v(b['speedup'], 'x', '×')}){cov}")
        if parts:
            out += ["**Benchmark** " + "; ".join(parts), ""]
    changes = run["recipe_changes"]
    out += ["**Recipe** " + ("; ".join(md_code(x) for x in changes) if changes else "defaults"), ""]
    ex = run.get("exclusions") or {}
    if ex.get("layers"):
        fp32 = [md_code(lay["node"]) for lay in ex["layers"] if lay["precision"] == "fp32"]
        i16 = [md_code(lay["node"]) for lay in ex["layers"] if lay["precision"] == "int16"]
        fixes = ([f"FP32: {', '.join(fp32)}"] if fp32 else []) + ([f"INT16: {', '.join(i16)}"] if i16 else [])
        out.append("**Kept out of INT8** " + "; ".join(fixes) + " (onnxruntime, Polygraphy, NNCF and TFLite forms "
                   "in the HTML report, or `qwb export-exclusions`)")
        out.append("")
    rerun = d["reproduce"].get("rerun_command")
    out += (["Reproduce (in the report's folder; the recipe files are written beside the report):", "", _fence(rerun),
             ""] if rerun else ["Reproduce:", "", _fence(d["reproduce"]["command"]), ""])
    return clean("\n".join(out))  # belt and braces: no raw bidi or control character from any field


def _tune(t: dict) -> list[str]:
    """The tune search's points (Pareto ones starred) and the chosen point."""
    pts = t.get("points") or []
    out = [f"**Tune** target {md_code(t['target'])}, objective {md_text(t['objective'])}: {len(pts)} points verified "
           f"on {t.get('holdout_samples', '?')} held-back samples" + (f" (stopped early: {md_text(t['stopped'])})"
                                                                      if t.get("stopped") else ""), "",
           "| | point | search part | held back | target | latency (ms) |", "|---|---|--:|--:|---|--:|"]
    for i, p in enumerate(pts):
        mark = "▶" if i == t.get("chosen") else "★" if p.get("pareto") else ""
        met = "failed" if p.get("error") else "met" if p.get("met_holdout") else "missed"
        out.append(f"| {mark} | {md_text(p['label'])} | {_v(p.get('search_metric'), 'g')} | "
                   f"{_v(p.get('holdout_metric'), 'g')} | {met} | {_v(p.get('latency_ms'), 'ms')} |")
    return out + ["", "▶ chosen point, ★ Pareto point", ""]


def _output_head(s: dict, kind: bool = True) -> list[str]:
    """The output figures of one summary, each labelled with its mode (``kind``: say how the output is judged)."""
    m = f" ({s['kernels']})" if s.get("kernels") else ""
    head = []
    if s["accuracy_fp32"] is not None:
        head.append(f"**Accuracy{m}** FP32 {_v(s['accuracy_fp32'], 'pct', '%')} → INT8 {_v(s['accuracy_int8'], 'pct', '%')} "
                    f"({_v(s['accuracy_delta'], 'dpct')} points)")
    if s["top1_agreement"] is not None:
        head.append(f"top-1 agreement{m} {_v(s['top1_agreement'], 'pct', '%')}")
    if s.get("cosine_mean") is not None:
        head.append(f"embedding cosine mean{m} {_v(s['cosine_mean'], 'cos')} (worst {_v(s['cosine_min'], 'cos')})")
    if s.get("sequence_match") is not None:
        head.append(f"decoded sequences equal{m} {_v(s['sequence_match'], 'pct', '%')} (steps "
                    f"{_v(s['step_agreement'], 'pct', '%')})")
    if kind and s.get("output_kind"):
        head.append(f"output {md_code(s['output'])} judged as {s['output_kind']}")
    if s["output_sqnr_db"] is not None:
        head.append(f"output SQNR{m} {_v(s['output_sqnr_db'], 'db', ' dB')}")
    return head


def _comparison(d: dict, c: dict) -> list[str]:
    out = [f"**Before → after** ({md_text(_name(d, c['before']))} → {md_text(_name(d, c['after']))})", ""]
    if c.get("verdict"):
        out += [f"**After vs before: {c['verdict']}** (" + "; ".join(md_text(r) for r in c.get("verdict_reasons") or [])
                + ")", ""]
    for o in c["outputs"]:
        parts = [f"SQNR {_v(o['sqnr_before'], 'db')} → {_v(o['sqnr_after'], 'db')} dB"]
        if o["accuracy_before"] is not None:
            parts.append(f"INT8 accuracy {_v(o['accuracy_before'], 'pct', '%')} → {_v(o['accuracy_after'], 'pct', '%')}"
                         f" ({_v(o['accuracy_delta'], 'dpct')} points)")
        out.append(f"- output {md_code(o['name'])} ({o.get('kernels') or 'exact'}): " + ", ".join(parts))
    for lat in c["latency"]:
        spread = ""
        if lat.get("before_p50_p10_ms") is not None and lat.get("after_p50_p10_ms") is not None:
            spread = (f"; p50 spread (p10–p90 over rounds) {_v(lat['before_p50_p10_ms'], 'ms')}–"
                      f"{_v(lat['before_p50_p90_ms'], 'ms')} → {_v(lat['after_p50_p10_ms'], 'ms')}–"
                      f"{_v(lat['after_p50_p90_ms'], 'ms')} ms")
        out.append(f"- latency on {md_text(lat['backend'])}: INT8 p50 {_v(lat['before_ms'], 'ms')} → "
                   f"{_v(lat['after_ms'], 'ms')} ms ({_v(lat['delta_share'], 'dpct', '%')}, "
                   f"{lat.get('outcome') or 'spread not measured'}{spread})")
    changed = [lay for lay in c["layers"] if lay["changed"]]
    out += ["", "| changed layer | precision | cumulative SQNR dB | Δ |", "|---|---|--:|--:|"]
    for lay in changed[:MAX_CHANGED]:
        prec = (f"{lay['precision_before'] or '–'} → {lay['precision_after'] or '–'}"
                if lay["precision_before"] != lay["precision_after"] else (lay["precision_after"] or ""))
        out.append(f"| {md_code(lay['node'], True)} | {md_text(prec)} | {_v(lay['cumulative_before'], 'db')} → "
                   f"{_v(lay['cumulative_after'], 'db')} | {_v(lay['cumulative_delta'], 'ddb')} |")
    if len(changed) > MAX_CHANGED:
        out.append(f"| … {len(changed) - MAX_CHANGED} more | | | |")
    return out + [""]


def _name(d: dict, i: int) -> str:
    r = d["runs"][i]
    return f"{r['label']}: {r['recipe_source'] or 'default recipe'}"
