"""The project file: model and data paths, the recipe, every run's results and benchmarks, as JSON.

A project is what a user reopens tomorrow or hands to a colleague, so it is plain, versioned,
human-readable JSON (``*.qwbproj``) with a migration hook, written atomically (a crash while saving
never leaves half a file). Results go through ``AnalysisResult.to_dict``/``from_dict`` (the public
JSON contract) with the per-sample heatmap and, cut to ``RESERVOIR_KEEP`` values per tensor, the value
reservoirs behind the scatter plot.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from analyzers.diff_types import AnalysisResult
from analyzers.jsonsafe import json_safe, loads_bounded

from ..errors import WorkbenchError
from ..recipe import Recipe
from ..safe_paths import write_json
from ..session import SessionSpec
from .workspace import BenchmarkEntry, Run, Workspace

PROJECT_KIND = "quant-workbench-project"
PROJECT_VERSION = 1
SUFFIX = ".qwbproj"
RESERVOIR_KEEP = 512  # values per tensor kept in a project for the FP32-vs-INT8 scatter


class ProjectError(WorkbenchError):
    """The project file is missing, not a project, corrupt, or from a newer version."""


@dataclass
class ProjectData:
    """What a project file holds, decoded; ``apply`` puts it into a Workspace."""

    spec: SessionSpec | None
    recipe: Recipe
    runs: list[Run] = field(default_factory=list)
    benchmarks: list[BenchmarkEntry] = field(default_factory=list)
    current: int | None = None
    baseline: int | None = None
    selection: tuple[str, ...] = ()
    saved: float = 0.0
    samples: int | None = None
    view_state: dict = field(default_factory=dict)
    tune: dict | None = None  # the latest tune search (``Workspace.tune``)

    def apply(self, ws: Workspace) -> None:
        """Replace the workspace's content with this project (the graph arrives when the model is prepared)."""
        ws.reset(self.spec, self.recipe, self.samples)
        ws.view_state = dict(self.view_state)
        ws.runs = list(self.runs)
        ws.benchmarks = list(self.benchmarks)
        ws.tune = self.tune
        ws.baseline = self.baseline
        ws.events.runs.emit()
        ws.events.benchmarks.emit()
        ws.events.tune.emit()
        if self.runs:
            ws.show_run(self.current if self.current is not None and self.current < len(self.runs)
                        else len(self.runs) - 1)
        ws.select(self.selection)
        ws.events.view.emit()
        ws.mark_saved()


# -- writing ---------------------------------------------------------------------------------------
def _path_entry(p: str | None, base: Path | None) -> dict | None:
    """A data/model path stored absolute and, when possible, relative to the project file."""
    if p is None:
        return None
    entry: dict = {"path": p}
    path = Path(p)
    if base is not None and path.exists():
        try:
            entry["relative"] = os.path.relpath(path.resolve(), base.resolve())
        except ValueError:  # another drive on Windows
            pass
        entry["path"] = str(path.resolve())
    return entry


def project_dict(ws: Workspace, base: Path | None = None) -> dict:
    """The workspace as a JSON-able dict; paths are also stored relative to ``base`` (the project's folder)."""
    spec = ws.spec
    runs = []
    for r in ws.runs:
        runs.append({"label": r.label, "created": r.created, "recipe": r.recipe.to_dict(), "result": r.result_dict()})
    return {
        "kind": PROJECT_KIND, "version": PROJECT_VERSION, "saved": time.time(),
        "model": _path_entry(spec.model, base) if spec else None,
        "calib": _path_entry(spec.calib, base) if spec else None,
        "eval": _path_entry(spec.eval, base) if spec else None,
        "recipe": ws.recipe.to_dict(),
        "runs": runs, "current_run": ws.current, "baseline_run": ws.baseline,
        "benchmarks": [{"run": b.run_label, "backend": b.backend, "created": b.created,
                        "result": json_safe(b.data)} for b in ws.benchmarks],
        "selection": list(ws.selection),
        "analysis_samples": ws.samples,
        "view_state": json_safe(ws.view_state),
        "tune": json_safe({k: v for k, v in ws.tune.items() if k != "running"}) if ws.tune else None,
    }


def write_json_atomic(path: Path, data: dict) -> None:
    """Write to a fresh temporary file in the same folder, then rename: readers never see half a file, and a
    file that happens to be called ``<project>.tmp`` is never touched."""
    write_json(path, data, indent=1, allow_nan=False)


def project_path(path: str | Path) -> Path:
    """Where ``save_project`` writes for ``path``: the path with ``.qwbproj`` added when it lacks it (so a save
    dialog's answer "p" writes p.qwbproj, which the dialog did not ask about)."""
    path = Path(path)
    return path if path.suffix == SUFFIX else path.with_name(path.name + SUFFIX)


def save_project(ws: Workspace, path: str | Path) -> Path:
    path = project_path(path)
    try:
        write_json_atomic(path, project_dict(ws, path.parent))
    except OSError as e:
        raise ProjectError(f"could not write the project {path}: {e.strerror or e}",
                           "choose a folder you can write to") from e
    ws.mark_saved()
    return path


# -- reading ----------------------------------------------------------------------------------------
def _resolve(entry: dict | None, base: Path) -> str | None:
    if entry is None:
        return None
    p = entry.get("path")
    if p and Path(p).exists():
        return p
    rel = entry.get("relative")
    if rel and (base / rel).exists():
        return str((base / rel).resolve())
    return p


def migrate(d: dict, source: str) -> dict:
    """Bring an older project dict to PROJECT_VERSION (there is only version 1 so far)."""
    v = d.get("version")
    if not isinstance(v, int):
        raise ProjectError(f"{source} has no valid version number", "is this a Quant Workbench project?")
    if v > PROJECT_VERSION:
        raise ProjectError(f"{source} was written by a newer Quant Workbench (project version {v}, this one "
                           f"reads up to {PROJECT_VERSION})", "upgrade quant-workbench")
    return d


def project_from_dict(d: dict, base: Path, source: str = "project") -> ProjectData:
    if not isinstance(d, dict) or d.get("kind") != PROJECT_KIND:
        raise ProjectError(f"{source} is not a Quant Workbench project", f"open a {SUFFIX} file")
    d = migrate(d, source)
    try:
        model = _resolve(d.get("model"), base)
        spec = SessionSpec(model, _resolve(d.get("calib"), base), _resolve(d.get("eval"), base)) if model else None
        recipe = Recipe.from_dict(d.get("recipe") or {"version": 1}, f"{source} (recipe)")
        runs = []
        for r in d.get("runs") or []:
            res = AnalysisResult.from_dict(r["result"])
            runs.append(Run(r.get("label") or f"Run {len(runs) + 1}", Recipe.from_dict(r["recipe"]), res,
                            float(r.get("created") or 0.0)))
        benches = [BenchmarkEntry(b.get("run", ""), b["backend"], b["result"], float(b.get("created") or 0.0))
                   for b in d.get("benchmarks") or []]
        tune = d.get("tune")
        if tune is not None and not (isinstance(tune, dict) and isinstance(tune.get("points"), list)):
            raise ValueError("'tune' must be a tune result with a list of points")
        cur = d.get("current_run")
        base_run = d.get("baseline_run")
        samples = d.get("analysis_samples")
        if samples is not None and (not isinstance(samples, int) or isinstance(samples, bool) or samples < 1):
            raise ProjectError(f"{source}: analysis_samples must be a positive whole number, not {samples!r}",
                               "fix or remove that field")
        view_state = d.get("view_state") or {}
        if not isinstance(view_state, dict):
            raise ProjectError(f"{source}: view_state must be an object", "fix or remove that field")
        return ProjectData(spec, recipe, runs, benches, cur if isinstance(cur, int) else None,
                           base_run if isinstance(base_run, int) else None, tuple(d.get("selection") or ()),
                           float(d.get("saved") or 0.0), samples, view_state, tune)
    except WorkbenchError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ProjectError(f"{source} is damaged ({type(e).__name__}: {e})",
                           "restore it from a backup, or reopen the model and data") from e


def load_project(path: str | Path) -> ProjectData:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise ProjectError(f"project file not found: {path}", "check the path") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ProjectError(f"could not read the project {path} ({e})", f"open a {SUFFIX} file") from e
    try:
        d = loads_bounded(text)
    except json.JSONDecodeError as e:
        raise ProjectError(f"{path} is not valid JSON (line {e.lineno}): it may be truncated or not a project",
                           "restore it from a backup, or reopen the model and data") from e
    except ValueError as e:  # nested too deeply
        raise ProjectError(f"{path} is not a project: {e}", f"open a {SUFFIX} file") from e
    return project_from_dict(d, path.parent, str(path))
