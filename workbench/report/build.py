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

import resources
from analyzers.jsonsafe import json_safe
from backends.tasks import scaled

from .. import __version__
from ..analysis import analyze
from ..compare import compare_runs
from ..hint_measure import HINT_CODE, measure_activations_16bit
from ..quantize import runtime_requantized
from ..recipe import Recipe
from .bench import check_backends, latency_changes, run_benchmarks, summarize
from .data import Comparison, RecipeFile, ReportData, Reproduce, RunReport, RunSummary
from .exclusions import build_exclusions
from .histograms import tensor_histograms
from .reproduce import safe_name
from .summary import data_sets, environment, execution_text, model_summary
from .verdict import apply_verdicts


def build_report(session, *, recipe: Recipe | None = None, analysis=None, compare_recipe: Recipe | None = None,
                 compare_analysis=None, recipe_source: str | None = None, compare_source: str | None = None,
                 samples: int | None = None, bench: list[str] | tuple = (), bench_json: list[dict] | None = None,
                 command: list[str] | None = None, title: str | None = None, tune: dict | None = None,
                 task=None) -> ReportData:
    """Everything a report shows for ``session``'s model and data.

    - ``recipe``: the run's recipe, or the *before* of a comparison (default: the session's recipe).
    - ``analysis``: that recipe's ``AnalysisResult`` if already computed (else it is run here).
    - ``compare_recipe`` (+ ``compare_analysis``): a second recipe, the *after* of a before/after; the
      detailed sections then describe it.
    - ``recipe_source`` / ``compare_source``: the recipe files' paths, as the reader should see them.
    - ``bench``: backend names to benchmark FP32 vs each run's INT8 model on (e.g. ``["cpu"]``), or
      ``bench_json``: benchmark results already measured, one per run (``qwb bench --json`` documents).
    - ``command``: the argv that produced the report (``qwb report ...``); synthesised when None.
    - ``tune``: a tune search (``TuneResult.to_dict()``, with ``chosen``: the index of the point the user took),
      shown as its Pareto plot and points.
    """
    t0 = time.perf_counter()
    if bench and not bench_json:  # say what cannot be benchmarked before minutes of analysis, not after
        check_backends(list(bench))
    if recipe is None:
        recipe, recipe_source = session.recipe, recipe_source or session.spec.recipe_path
    specs = [("run" if compare_recipe is None else "before", recipe, analysis, recipe_source)]
    if compare_recipe is not None:
        specs.append(("after", compare_recipe, compare_analysis, compare_source))
    for _, r, _, _ in specs:
        r.validate(session.graph.node_names)
    steps = len(specs) + (1 if bench else 0)
    runs = [_run(session, spec, samples, scaled(task, i / steps, (i + 1) / steps)) for i, spec in enumerate(specs)]
    final = len(runs) - 1
    runs[final].histograms = tensor_histograms(
        session, [(run.label, spec[1], run.analysis) for run, spec in zip(runs, specs)], final)
    if bench_json:
        for run, d in zip(runs, bench_json):
            run.bench = summarize(d) if d else None
    elif bench:
        summaries = run_benchmarks(str(session.prepared.path), [run.analysis.int8_model for run in runs],
                                   list(bench), scaled(task, (steps - 1) / steps, 1.0), calib=session.spec.calib)
        for run, summary in zip(runs, summaries):
            run.bench = summary
    if samples is None:  # results analysed on fewer samples (e.g. from the GUI) are reproduced with as many
        samples = next((run.analysis.samples for run in runs if run.analysis.samples < len(session.eval_data)), None)
    report = ReportData(
        title=title or f"{session.prepared.name}: INT8 quantization report",
        created=datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        generator=f"Quant Workbench {__version__}", model=model_summary(session.prepared),
        environment=environment(execution_text(runs[final].analysis.execution)), data=data_sets(session),
        runs=runs, reproduce=reproduce(session, specs, samples, bench, command),
        comparison=comparison(runs[0], runs[1]) if len(runs) == 2 else None,
        tune=tune_block(tune, runs[final].recipe) if tune else None)
    apply_verdicts(report)
    if task is not None:
        task.report(1.0, f"report built in {time.perf_counter() - t0:.1f} s")
    return report


def tune_block(tune: dict, final_recipe: dict) -> dict:
    """The tune search as the report keeps it: every figure of the result, ``chosen`` (the point the user took;
    else the point whose recipe the report's run uses) and ``chosen_is_final`` (the detailed sections describe
    that point's recipe)."""
    d = json_safe({k: v for k, v in tune.items() if k != "running"})
    points = d.get("points") or []
    same = [i for i, p in enumerate(points) if p.get("recipe") == final_recipe]
    chosen = d.get("chosen")
    if not (isinstance(chosen, int) and 0 <= chosen < len(points)):
        chosen = same[0] if same else None
    d["chosen"] = chosen
    d["chosen_is_final"] = chosen is not None and chosen in same
    return d


def comparison(before: RunReport, after: RunReport) -> Comparison:
    """runs[0] -> runs[1] through the one comparison the GUI uses too, plus the latency each run measured."""
    c = compare_runs(before.analysis, after.analysis, before.recipe, after.recipe)
    return Comparison(0, 1, c.threshold_db, c.layers, c.outputs, latency_changes(before, after))


def _run(session, spec, samples, task) -> RunReport:
    """One run of the report: analyse when no result was given, then summarise and export its fix."""
    label, recipe, result, source = spec
    if result is None:
        result = analyze(session, recipe=recipe, samples=samples, task=task)
    if any(h.code == HINT_CODE and h.measured is None for h in result.hints):
        measure_activations_16bit(session, recipe, result, task)
    int8 = Path(result.int8_model) if result.int8_model else None
    return RunReport(
        label=label, recipe=recipe.to_dict(), recipe_toml=recipe.dumps(), recipe_source=source,
        recipe_changes=recipe.differences_from_default(), analysis=result, summary=RunSummary.of(result),
        int8_bytes=int8.stat().st_size if int8 is not None and int8.is_file() else None,
        exclusions=build_exclusions(session.prepared, recipe, source_name(source) if source else "defaults",
                                    _runtime(recipe, int8)))


def source_name(source: str) -> str:
    """A recipe source as a reader sees it: a file's name without its folders; a GUI run name (which may hold
    slashes: "run 3 / cat fp32") whole."""
    return Path(source).name if source.lower().endswith(".toml") else source


def _runtime(recipe, int8: Path | None) -> list:
    """The recipe's float/16-bit layers onnxruntime's CPU optimizer runs in 8 bits anyway, read from the INT8
    model the analysis used (none when that file is gone)."""
    if int8 is None or not int8.is_file():
        return []
    return runtime_requantized(int8, recipe.excluded_nodes(), recipe.int16_nodes())


def recipe_file_name(label: str, source: str | None) -> str:
    """The file a recipe is saved as: the source file's name, else one made from the run label (never a path)."""
    if source and source.lower().endswith(".toml"):
        return Path(source).name
    return "recipe.toml" if label in ("run", "before") else f"recipe-{safe_name(label)}.toml"


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
    notes.append("the recipes are written beside the report; run the command below in the report's folder")
    spec = session.spec
    demo = _is_demo(spec)
    return Reproduce(" ".join(shlex.quote(a) for a in command), list(command), recipes, notes,
                     model=_abs(spec.model), calib=_abs(spec.calib), eval=_abs(spec.eval), samples=samples, demo=demo)


def _abs(path: str | None) -> str | None:
    """An input as the rerun command needs it: absolute when it is a file or folder, else as given (a data spec)."""
    return str(Path(path).resolve()) if path and Path(path).exists() else path


def _is_demo(spec) -> bool:
    """Whether the inputs are the bundled demo's (the rerun command then says --demo, which works anywhere)."""
    try:
        return (Path(spec.model).resolve() == Path(resources.DEMO_MODEL).resolve()
                and Path(spec.calib).resolve() == Path(resources.DEMO_CALIB).resolve()
                and (spec.eval is None or Path(spec.eval).resolve() == Path(resources.DEMO_EVAL).resolve()))
    except (OSError, TypeError):
        return False
