"""The self-contained HTML report: one file, inline CSS and SVG, no script, no request to anywhere.

A Content-Security-Policy in the page forbids scripts and every fetch (``default-src 'none'``), so even
a mistake in escaping could not run code or reach the network; the page's only style sheet is ours.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from . import sections_context as ctx
from . import sections_kernels as kern
from . import sections_results as res
from . import sections_tune
from .data import ReportData
from .html_parts import MAX_DOWNLOAD_BYTES
from .markup import Markup, el, esc
from .style import CSS
from .view import View

CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; "
       "frame-ancestors 'none'")

SECTIONS = [("summary", "Summary"), ("compare", "Before / after"), ("tune", "Tune"), ("outputs", "Outputs"),
            ("kernels", "Kernels"), ("layers", "Worst layers"), ("depth", "SQNR along depth"),
            ("histograms", "Histograms"), ("bench", "Benchmark"), ("fix", "Fix export"),
            ("recipe", "Recipe"), ("model", "Model"), ("environment", "Environment"), ("reproduce", "Reproduce")]


def render_html(report: ReportData | dict) -> str:
    """The report as one HTML document (a str; write it as UTF-8)."""
    doc = report.to_dict() if isinstance(report, ReportData) else report
    v = View(doc)
    f = doc["final_run"]
    body = [res.summary(v, f), res.comparison(v), sections_tune.tune(v), res.outputs(v, f), kern.kernels(v, f),
            res.layers(v, f), res.depth(v, f), res.histograms(v, f), res.bench(v, f), ctx.fix(v, f), ctx.recipe(v),
            ctx.model(v), ctx.environment(v), ctx.reproduce(v)]
    present = {sid for sid, _ in SECTIONS if (sid != "compare" or doc.get("comparison"))
               and (sid != "tune" or doc.get("tune"))}
    if not v.get("runs", f, "analysis", "kernel_gap"):
        present.discard("kernels")
    nav = el("nav", {"class_": "toc", "aria-label": "sections"},
             *[el("a", {"href": f"#{sid}"}, title) for sid, title in SECTIONS if sid in present])
    s = doc["runs"][f]["summary"]
    sub = (f"{doc['model']['name']} · {s['samples']} evaluation samples · created {doc['created']} · "
           f"{doc['generator']}")
    header = el("header", {"class_": "top"}, el("h1", {"id": "title"}, doc["title"]), el("p", {"class_": "sub"}, sub))
    footer = el("footer", None, "Made by ", doc["generator"], ". Every number on this page is in the report's JSON "
                "file (format ", str(doc["format"]), "); ", _json_link(doc), " This page runs no script and loads "
                "nothing from the network.")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            "<meta name=\"referrer\" content=\"no-referrer\">\n"
            f"<meta name=\"generator\" content=\"{esc(doc['generator'])}\">\n"
            f"<title>{esc(doc['title'])}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            f"{header}\n{nav}\n<main>\n" + "\n".join(b for b in body if b) + f"\n</main>\n{footer}\n</body>\n</html>\n")


def _json_link(doc: dict) -> Markup:
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    href = "data:application/json;charset=utf-8," + quote(text, safe="")
    if len(href) > MAX_DOWNLOAD_BYTES // 2:  # a big model's JSON would double the page: keep it beside it only
        return Markup("it is written next to this file.")
    return el("a", {"class_": "dl", "href": href, "download": f"{doc['model']['name']}-report.json"},
              "download it from this page.")
