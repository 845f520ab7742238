"""Writing and reading report files: the three forms of one report document, written atomically."""

from __future__ import annotations

import json
from pathlib import Path

from analyzers.jsonsafe import loads_bounded

from ..safe_paths import write_text
from .data import ReportData
from .render_html import render_html
from .render_md import render_markdown
from .reproduce import relocate, tune_file
from .verdict import apply_verdicts


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
    """Write the report's forms (see ``outputs_for``) as UTF-8, and each run's recipe as a file beside them (what
    the rerun command reads); returns the paths written. The rerun and fix commands are made for this folder."""
    path = Path(path)
    report.reproduce = relocate(report.reproduce, path, tune=bool(report.tune))
    doc = report.to_dict()
    written = []
    for p in outputs_for(path, only):
        ext = ".html" if p.suffix.lower() in (".html", ".htm") else p.suffix.lower()
        text = RENDERERS[ext](doc)
        write_text(p, text, errors="backslashreplace")
        written.append(p)
    for rf in report.reproduce.recipes:  # after the report's forms (callers list those first)
        p = path.parent / rf.file
        write_text(p, rf.toml)
        written.append(p)
    if report.tune:  # what the rerun command's --tune reads (a `qwb tune --json` document)
        p = path.parent / tune_file(path)
        write_text(p, json.dumps(report.tune, indent=1, ensure_ascii=False, allow_nan=False) + "\n")
        written.append(p)
    return written


def load_report(path: str | Path) -> ReportData:
    """Read a report's JSON file back (to re-render it, or compare it with another)."""
    doc = loads_bounded(Path(path).read_text(encoding="utf-8"))
    if not isinstance(doc, dict):
        raise ValueError(f"a report is a JSON object, not {type(doc).__name__}")
    report = ReportData.from_dict(doc)
    return apply_verdicts(report) if report.verdict is None else report  # a report saved before verdicts
