"""Shareable quantization reports: one self-contained HTML file, versioned JSON, a Markdown summary.

The API the CLI (``qwb report``) and the GUI (File → Export report) call::

    from workbench.report import build_report, write_report
    report = build_report(session, analysis=result)           # or compare_recipe=..., bench=["cpu"]
    paths = write_report(report, "model-report.html")          # + .json and .md beside it

or, from a worker process, ``export_report(ExportRequest(spec, path, recipe, analysis, ...), task)``.

``render_html`` / ``render_json`` / ``render_markdown`` return the text of one form; all three render the
same ``ReportData.to_dict()`` document, so their numbers agree. Qt-free.
"""

from __future__ import annotations

import json
from pathlib import Path

from .api import ExportRequest, export_report
from .build import build_report
from .data import REPORT_FORMAT, ReportData
from .exclusions import FORMATS as EXCLUSION_FORMATS
from .exclusions import build_exclusions
from .render_html import render_html
from .render_md import render_markdown

__all__ = ["build_report", "export_report", "ExportRequest", "ReportData", "REPORT_FORMAT", "render_html", "render_json", "render_markdown",
           "write_report", "load_report", "build_exclusions", "EXCLUSION_FORMATS", "outputs_for"]


def render_json(report: ReportData | dict) -> str:
    """The report as its versioned JSON document (``"format": 1``)."""
    doc = report.to_dict() if isinstance(report, ReportData) else report
    return json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False) + "\n"


RENDERERS = {".html": render_html, ".json": render_json, ".md": render_markdown}


def outputs_for(path: str | Path, only: bool = False) -> list[Path]:
    """The files ``write_report`` writes for ``-o path``: an .html also gets .json and .md beside it
    (unless ``only``); a .json or .md path is that form alone."""
    p = Path(path)
    ext = p.suffix.lower()
    if ext == ".htm":
        ext = ".html"
    if ext not in RENDERERS:
        raise ValueError(f"report file {p} must end in .html, .json or .md")
    if ext != ".html" or only:
        return [p]
    return [p, p.with_suffix(".json"), p.with_suffix(".md")]


def write_report(report: ReportData, path: str | Path, only: bool = False) -> list[Path]:
    """Write the report's forms (see ``outputs_for``) as UTF-8; returns the paths written."""
    doc = report.to_dict()
    written = []
    for p in outputs_for(path, only):
        ext = ".html" if p.suffix.lower() in (".html", ".htm") else p.suffix.lower()
        text = RENDERERS[ext](doc)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(text, encoding="utf-8", errors="backslashreplace")
        tmp.replace(p)
        written.append(p)
    return written


def load_report(path: str | Path) -> ReportData:
    """Read a report's JSON file back (to re-render it, or compare it with another)."""
    return ReportData.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
