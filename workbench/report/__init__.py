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

from .api import ExportRequest, export_report
from .build import build_report
from .data import REPORT_FORMAT, ReportData
from .exclusions import FORMATS as EXCLUSION_FORMATS
from .exclusions import build_exclusions
from .files import load_report, outputs_for, render_json, write_report
from .render_html import render_html
from .render_md import render_markdown

__all__ = ["build_report", "export_report", "ExportRequest", "ReportData", "REPORT_FORMAT", "render_html", "render_json", "render_markdown",
           "write_report", "load_report", "build_exclusions", "EXCLUSION_FORMATS", "outputs_for"]
