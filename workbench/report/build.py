"""Assemble a ``ReportData`` from a session: analyses, histograms, benchmarks, the fix, how to reproduce.

This is what ``qwb report`` and the GUI's File → Export report call. Results the caller already has
(an ``AnalysisResult`` on screen, a benchmark JSON) are reused, so exporting from the GUI costs no
new computation; anything missing is computed here with the session's data.
"""

from __future__ import annotations

import shlex
import time
from datetime import datetime, timezone
from pathlib import Path

from .. import __version__
from ..analysis import analyze
from ..recipe import Recipe
from .bench import bench_available, run_benchmarks, summarize
from .compare import compare_runs
from .data import RecipeFile, ReportData, Reproduce, RunReport, RunSummary
from .exclusions import build_exclusions
from .histograms import tensor_histograms
from .progress import SubTask
from .summary import data_sets, environment, execution_text, model_summary


def build_report(session, *, analysis=None, compare_recipe: Recipe | None = None, compare_analysis=None,
                 recipe_source: str | None = None, compare_source: str | None = None, samples: int | None = None,
                 bench: list[str] | tuple = (), bench_json: list[dict] | None = None, command: list[str] | None = None,
                 title: str | None = None, task=None) -> ReportData:
    """Everything a report shows for ``session`` (its recipe is the run, or the *before* of a comparison).

    - ``analysis``: the session recipe's ``AnalysisResult`` if already computed (else it is run here).
    - ``compare_recipe`` (+ ``compare_analysis``): a second recipe, the *after* of a before/after; the
      detailed sections then describe it.
    - ``bench``: backend names to benchmark FP32 vs each run's INT8 model on (e.g. ``["cpu"]``), or
      ``bench_json``: ``qwb bench`` JSON documents already measured, one per run.
    - ``command``: the argv that produced the report (``qwb report ...``); synthesised when None.
    """
    t0 = time.perf_counter()
    if bench and not bench_json and not bench_available():  # say so before minutes of analysis, not after
        run_benchmarks("", [], list(bench))
    specs = [("run" if compare_recipe is None else "before", session.recipe, analysis,
              recipe_source or session.spec.recipe_path)]
    if compare_recipe is not None:
        compare_recipe.validate(session.graph.node_names)
        specs.append(("after", compare_recipe, compare_analysis, compare_source))
    steps = len(specs) + (1 if bench else 0)
    runs = []
    for i, (label, recipe, result, source) in enumerate(specs):
        if result is None:
            result = analyze(session, recipe=recipe, samples=samples, task=SubTask(task, i / steps, (i + 1) / steps))
        int8 = Path(result.int8_model) if result.int8_model else None
        runs.append(RunReport(
            label=label, recipe=recipe.to_dict(), recipe_toml=recipe.dumps(), recipe_source=source,
            recipe_changes=recipe.differences_from_default(), analysis=result, summary=RunSummary.of(result),
            int8_bytes=int8.stat().st_size if int8 is not None and int8.is_file() else None,
            exclusions=build_exclusions(session.prepared, recipe, Path(source).name if source else "defaults")))
    final = len(runs) - 1
    runs[final].histograms = tensor_histograms(
        session, [(r.label, spec[1], r.analysis) for r, spec in zip(runs, specs)], final)
    if bench_json:
        for r, d in zip(runs, bench_json):
            r.bench = summarize(d) if d else None
    elif bench:
        models = [r.analysis.int8_model for r in runs]
        for r, summary in zip(runs, run_benchmarks(str(session.prepared.path), models, list(bench),
                                                   SubTask(task, (steps - 1) / steps, 1.0))):
            r.bench = summary
    comparison = compare_runs(runs, 0, 1) if len(runs) == 2 else None
    execution = runs[final].analysis.execution
    report = ReportData(
        title=title or f"{session.prepared.name}: INT8 quantization report",
        created=datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        generator=f"Quant Workbench {__version__}", model=model_summary(session.prepared),
        environment=environment(execution_text(execution)), data=data_sets(session), runs=runs,
        reproduce=reproduce(session, specs, samples, bench, command), comparison=comparison)
    if task is not None:
        task.report(1.0, f"report built in {time.perf_counter() - t0:.1f} s")
    return report


def recipe_file_name(label: str, source: str | None) -> str:
    return Path(source).name if source else ("recipe.toml" if label in ("run", "before") else f"recipe-{label}.toml")


def reproduce(session, specs, samples, bench, command) -> Reproduce:
    """The command line that rebuilds this report, and the recipe files it reads."""
    recipes = [RecipeFile(label, recipe_file_name(label, source), recipe.dumps())
               for label, recipe, _, source in specs]
    notes = []
    if command is None:
        spec = session.spec
        command = ["qwb", "report", spec.model, "--calib", spec.calib]
        if spec.eval:
            command += ["--eval", spec.eval]
        if specs[0][1].layers or specs[0][1].differences_from_default() or spec.recipe_path:
            command += ["--recipe", recipes[0].file]
        if len(specs) > 1:
            command += ["--compare", recipes[1].file]
        if samples:
            command += ["--samples", str(samples)]
        if bench:
            command += ["--bench", ",".join(bench)]
        command += ["-o", "report.html"]
        notes.append("command reconstructed from the session (the report was not made on the command line)")
    notes.append("save each recipe below under the file name shown, next to the command's working directory")
    return Reproduce(" ".join(shlex.quote(a) for a in command), list(command), recipes, notes)
