"""One call for the GUI's File → Export report: plain, picklable inputs in, written files out.

The GUI runs long work as a module-level function in a worker process (``fn(*args, task)``), so the
request carries only data (paths, recipes, analysis results, benchmark dicts); the worker opens the
session from the paths (prepared model and calibration come from the cache) and writes the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..recipe import Recipe
from ..safe_paths import check_outputs
from ..session import SessionSpec, open_session
from .build import build_report
from .files import outputs_for, write_report


@dataclass
class ExportRequest:
    """What to export: the model/data (a ``SessionSpec``), where, and the runs already on screen.

    ``analysis``/``compare_analysis`` are reused as they are (no re-analysis); ``bench`` holds one
    benchmark result per run (a ``qwb bench`` JSON document or ``{backend: result}``) or None.
    """

    spec: SessionSpec
    path: str
    recipe: Recipe
    analysis: object | None = None  # AnalysisResult of ``recipe``
    compare_recipe: Recipe | None = None  # the "after" of a before/after
    compare_analysis: object | None = None
    recipe_source: str | None = None
    compare_source: str | None = None
    bench: list = field(default_factory=list)
    title: str | None = None
    only: bool = False  # write only ``path`` (no .json/.md beside an .html)
    tune: dict | None = None  # the session's tune search (``Workspace.tune``): its Pareto plot and chosen point


def export_report(request: ExportRequest, task=None) -> list[str]:
    """Build the report for ``request`` and write it; returns the files written."""

    spec = request.spec  # without its recipe file: the request's recipe is what the report describes
    check_outputs(outputs_for(request.path, request.only), [("model", spec.model), ("calibration data", spec.calib),
                                                          ("evaluation data", spec.eval)])
    session = open_session(SessionSpec(spec.model, spec.calib, spec.eval, trust_code=spec.trust_code),
                           recipe=request.recipe)
    report = build_report(session, recipe=request.recipe, analysis=request.analysis,
                          compare_recipe=request.compare_recipe, compare_analysis=request.compare_analysis,
                          recipe_source=request.recipe_source, compare_source=request.compare_source,
                          bench_json=request.bench or None, title=request.title, tune=request.tune,
                          task=task)
    return [str(p) for p in write_report(report, Path(request.path), only=request.only)]
