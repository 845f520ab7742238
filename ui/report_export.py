"""File → Export report: one self-contained HTML file (JSON and Markdown beside it) from what is on screen.

The runs shown (and the one compared with, as before/after), their benchmarks and the latest tune search go to
the engine process in an ``ExportReport`` request (``workbench.app.requests``); nothing is re-analysed.
"""

from __future__ import annotations

from pathlib import Path

from workbench.app.requests import ExportReport
from workbench.report.api import ExportRequest


def bench_for(ws, run) -> dict | None:
    """The latest benchmark of each backend taken on ``run``, as ``{backend: result}``."""
    out = {}
    for b in ws.benchmarks:
        if b.run_label == run.label:
            out[b.backend] = b.data
    return out or None


def build_request(ws, path: str) -> ExportRequest:
    """Before/after when a run is compared with another, else the shown run alone."""
    run, before = ws.current_run, ws.baseline_run
    tune = ws.tune if ws.tune and not ws.tune.get("running") else None  # its Pareto plot and chosen point
    if before is not None:
        return ExportRequest(ws.spec, path, before.recipe, before.result, run.recipe, run.result,
                             recipe_source=before.label, compare_source=run.label,
                             bench=[bench_for(ws, before), bench_for(ws, run)], tune=tune)
    return ExportRequest(ws.spec, path, run.recipe, run.result, recipe_source=run.label, bench=[bench_for(ws, run)],
                         tune=tune)


def export_report(window) -> bool:
    """Ask where, then write the report in the background; the message bar says where it went."""
    ws = window.ws
    if ws.current_run is None or ws.spec is None:
        return False
    start = f"{Path(ws.spec.model).stem}-report.html"
    path = window.prompter.save_path("Export report", start, "HTML report (*.html);;Markdown (*.md);;JSON (*.json)")
    if not path:
        return False

    def done(files: list[str]) -> None:
        window.messages.show_message("Report written: " + ", ".join(files), "info")
        window.status_label.setText(f"report written to {files[0]}")

    return window.ctl.submit("Writing report", ExportReport(build_request(ws, path)), on_result=done,
                             doing="write the report")
