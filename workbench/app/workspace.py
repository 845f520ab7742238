"""The user's work in the desktop app, as a Qt-free model: data paths, the recipe being edited, every
analysis run, benchmark results, and what is selected.

The GUI's views only read this and call its methods; each change is announced on ``events`` so every
view stays in sync without knowing about the others. Because it holds no Qt, the what-if loop
(edit -> stale -> re-run -> compare) is tested without a window, and a project file is simply this
object written out (``workbench.app.project``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterable

from analyzers.diff_types import AnalysisResult, LayerResult

from ..graph import FUSABLE_ACTIVATIONS
from ..recipe import PRECISIONS, Recipe
from ..session import SessionSpec
from .events import EventGroup

UNDO_LIMIT = 200


@dataclass
class Run:
    """One analysis: the recipe it used and what it found. Runs are never edited, only added."""

    label: str
    recipe: Recipe
    result: AnalysisResult
    created: float = field(default_factory=time.time)
    _cached_dict: dict | None = field(default=None, repr=False, compare=False)

    def result_dict(self, reservoir_keep: int = 512) -> dict:
        """``result.to_dict`` with the heatmap and the first ``reservoir_keep`` reservoir values per tensor,
        computed once (autosave writes it many times)."""
        if self._cached_dict is None:
            d = self.result.to_dict(include_arrays=True)
            for v in (d.get("reservoirs") or {}).values():
                v["fp32"], v["int8"] = v["fp32"][:reservoir_keep], v["int8"][:reservoir_keep]
            self._cached_dict = d
        return self._cached_dict


@dataclass
class BenchmarkEntry:
    """One benchmark result as the backend returned it (a JSON-able dict), tagged with the run it timed."""

    run_label: str
    backend: str
    data: dict
    created: float = field(default_factory=time.time)


def worst_layers(result: AnalysisResult, n: int, by: str = "isolated", skip: Iterable[str] = ()) -> list[str]:
    """The ``n`` worst layers of ``result`` by ``by`` (see ``AnalysisResult.ranked``), skipping ``skip``."""
    skip = set(skip)
    out = []
    for lay in result.ranked(by):
        if lay.node in skip or lay.precision == "fp32":
            continue
        if by == "isolated" and lay.isolated is None:
            continue
        out.append(lay.node)
        if len(out) >= n:
            break
    return out


def fused_into(graph, node: str) -> str | None:
    """The layer a Relu/Clip ``node`` is fused into by onnxruntime (so it has no results of its own), or None."""
    n = graph.node(node)
    if n.op_type not in FUSABLE_ACTIVATIONS or not n.inputs or not n.outputs:
        return None
    p = graph.producer.get(n.inputs[0])
    if p is None or not graph.node(p).quantizable:
        return None
    return p if n.outputs[0] in graph.layer_outputs(p) else None


def table_layers(graph) -> list:
    """The quantizable nodes a user tunes: every one except activations fused into the layer before them."""
    return [n for n in graph.quantizable_nodes() if fused_into(graph, n.name) is None]


class Workspace:
    """Model/data paths, editable recipe, runs, benchmarks and selection; see the module docstring."""

    def __init__(self) -> None:
        # "current" is emitted whenever the shown run or the one compared with changes (adding a run shows
        # it), so views of results listen to it alone; "runs" is for lists of runs.
        self.events = EventGroup("spec", "graph", "recipe", "runs", "current", "stale", "selection",
                                 "benchmarks", "dirty", "samples", "view", "activity", "tune")
        self.spec: SessionSpec | None = None
        self.graph = None  # workbench.graph.ModelGraph once the model is prepared
        self.recipe = Recipe()
        self.runs: list[Run] = []
        self.current: int | None = None  # index of the run the views show
        self.baseline: int | None = None  # the run "before/after" compares against (None: the previous)
        self.selection: tuple[str, ...] = ()
        self.benchmarks: list[BenchmarkEntry] = []
        #: calibration samples each analysis compares on (None: all); kept in the project
        self.samples: int | None = None
        #: how the views were left (table columns, sort, filter), opaque JSON-able dicts by view; kept in the project
        self.view_state: dict[str, dict] = {}
        #: what the engine is doing now ("Analysing", "Opening model"...), None when idle: empty views say
        #: "Analysing…" instead of "No analysis yet" while results are on their way
        self.activity: str | None = None
        #: the latest tune search: ``TuneResult.to_dict()`` once finished (``running`` while points arrive), with
        #: ``chosen``, the index of the point whose recipe the user took (None until one is picked)
        self.tune: dict | None = None
        self.dirty = False
        self._undo: list[dict] = []
        self._redo: list[dict] = []
        self._was_stale = False

    # -- opening ------------------------------------------------------------------------------------
    def reset(self, spec: SessionSpec | None, recipe: Recipe | None = None, samples: int | None = None) -> None:
        """Start over on another model (or nothing): forget runs, benchmarks, selection, view state and history."""
        self.spec = spec
        self.samples = samples or None
        self.view_state = {}
        self.graph = None
        self.recipe = recipe.copy() if recipe is not None else Recipe()
        self.runs, self.current, self.baseline = [], None, None
        self.selection = ()
        self.benchmarks = []
        self.tune = None
        self._undo, self._redo = [], []
        self._was_stale = False
        self.events.spec.emit(spec)
        self.events.graph.emit(None)
        self.events.recipe.emit(())
        self.events.runs.emit()
        self.events.current.emit(None)
        self.events.selection.emit((), None)
        self.events.benchmarks.emit()
        self.events.samples.emit(self.samples)
        self.events.view.emit()
        self.events.tune.emit()
        self._set_dirty(False)

    def set_samples(self, samples: int | None) -> None:
        """Analyse on the first ``samples`` calibration samples (None or 0: all); the next run uses it."""
        samples = int(samples) if samples else None
        if samples != self.samples:
            self.samples = samples
            self.events.samples.emit(samples)
            self._set_dirty(True)

    def set_activity(self, activity: str | None) -> None:
        if activity != self.activity:
            self.activity = activity
            self.events.activity.emit(activity)

    @property
    def empty(self) -> bool:
        """Nothing worth keeping: no runs, no overrides, no benchmarks (a session that only looked)."""
        return not self.runs and not self.recipe.layers and not self.benchmarks

    def set_graph(self, graph) -> None:
        """The prepared model's graph (arrives from a worker); drops selected names it lacks."""
        self.graph = graph
        self.events.graph.emit(graph)
        if graph is not None and self.selection:
            self.select([n for n in self.selection if graph.has_node(n)])

    # -- the recipe --------------------------------------------------------------------------------
    def precision_of(self, node: str) -> str:
        return self.recipe.precision_of(node)

    def set_precision(self, nodes: Iterable[str], precision: str) -> list[str]:
        """Set ``precision`` (int8 | int16 | fp32) on every node; returns the nodes that changed."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}")
        nodes = [n for n in dict.fromkeys(nodes) if self.recipe.precision_of(n) != precision]
        if nodes:
            self._edit(lambda r: [r.set_precision(n, precision) for n in nodes], nodes)
        return nodes

    def set_percentile(self, node: str, percentile: float | None) -> bool:
        """Set (or clear with None) ``node``'s calibration percentile; True when it changed."""
        if self.recipe.percentile_of(node) == percentile:
            return False
        self._edit(lambda r: r.set_percentile(node, percentile), [node])
        return True

    def clear_overrides(self, nodes: Iterable[str]) -> list[str]:
        nodes = [n for n in dict.fromkeys(nodes) if n in self.recipe.layers]
        if nodes:
            self._edit(lambda r: [r.layers.pop(n, None) for n in nodes], nodes)
        return nodes

    def exclude_worst(self, n: int, by: str = "isolated") -> list[str]:
        """Keep the ``n`` worst still-quantized layers of the shown run in FP32; returns them."""
        run = self.current_run
        if run is None or n <= 0:
            return []
        skip = [name for name in self.recipe.excluded_nodes()]
        return self.set_precision(worst_layers(run.result, n, by, skip), "fp32")

    def replace_recipe(self, recipe: Recipe) -> None:
        """Take a whole recipe (a loaded file, or an earlier run's) as one undoable edit."""
        if self.graph is not None:
            recipe.validate(self.graph.node_names)
        new = recipe.copy()
        changed = set(self.recipe.layers) | set(new.layers)
        self._edit(lambda r: self._assign(r, new), sorted(changed))

    @staticmethod
    def _assign(r: Recipe, new: Recipe) -> None:
        r.settings, r.preprocess, r.layers = new.settings, new.preprocess, new.layers

    def _edit(self, fn, nodes) -> None:
        self._undo.append(self.recipe.to_dict())
        del self._undo[:-UNDO_LIMIT]
        self._redo.clear()
        fn(self.recipe)
        self._after_recipe_change(tuple(nodes))

    def _after_recipe_change(self, nodes: tuple[str, ...]) -> None:
        self.events.recipe.emit(nodes)
        self._update_stale()
        self._set_dirty(True)

    def can_undo(self) -> bool:
        return bool(self._undo)

    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> None:
        if self._undo:
            self._redo.append(self.recipe.to_dict())
            self._restore(self._undo.pop())

    def redo(self) -> None:
        if self._redo:
            self._undo.append(self.recipe.to_dict())
            self._restore(self._redo.pop())

    def _restore(self, d: dict) -> None:
        old = set(self.recipe.layers)
        self.recipe = Recipe.from_dict(d)
        self._after_recipe_change(tuple(sorted(old | set(self.recipe.layers))))

    # -- runs ------------------------------------------------------------------------------------------
    @property
    def current_run(self) -> Run | None:
        return self.runs[self.current] if self.current is not None and self.runs else None

    @property
    def baseline_run(self) -> Run | None:
        """The run to compare the shown one with: the chosen baseline, else the run before it."""
        if self.current is None:
            return None
        if self.baseline is not None and self.baseline != self.current and self.baseline < len(self.runs):
            return self.runs[self.baseline]
        return self.runs[self.current - 1] if self.current > 0 else None

    def add_run(self, result: AnalysisResult, recipe: Recipe, label: str | None = None) -> Run:
        """Record a finished analysis (made with ``recipe``) and show it; the previous run stays."""
        run = Run(label or f"Run {len(self.runs) + 1}", recipe.copy(), result)
        self.runs.append(run)
        self.events.runs.emit()
        self.show_run(len(self.runs) - 1)
        # not an edit: results are recomputed from the model, data and recipe, so a session that only opened a
        # model and looked at its analysis closes without asking to save (edits and benchmarks still do)
        return run

    def show_run(self, index: int) -> None:
        if not 0 <= index < len(self.runs):
            raise IndexError(index)
        if index != self.current:
            self.current = index
            self.events.current.emit(index)
        self._update_stale()

    def set_baseline(self, index: int | None) -> None:
        self.baseline = index
        self.events.current.emit(self.current)

    def restore_run_recipe(self, index: int) -> None:
        """Edit the recipe back to the one run ``index`` used (undoable)."""
        self.replace_recipe(self.runs[index].recipe)

    @property
    def stale(self) -> bool:
        """True when the recipe differs from the one the shown results were computed with."""
        run = self.current_run
        return run is not None and run.recipe.to_dict() != self.recipe.to_dict()

    def stale_layers(self) -> list[str]:
        """Layers whose override differs between the recipe and the shown run's recipe."""
        run = self.current_run
        if run is None:
            return []
        a, b = run.recipe.layers, self.recipe.layers
        return sorted(n for n in set(a) | set(b) if a.get(n) != b.get(n))

    def _update_stale(self) -> None:
        s = self.stale
        if s != self._was_stale:
            self._was_stale = s
            self.events.stale.emit(s)

    def layer_result(self, node: str) -> LayerResult | None:
        run = self.current_run
        return run.result.layer(node) if run else None

    # -- benchmarks --------------------------------------------------------------------------------
    def add_benchmark(self, backend: str, data: dict) -> BenchmarkEntry:
        run = self.current_run
        entry = BenchmarkEntry(run.label if run else "", backend, data)
        self.benchmarks.append(entry)
        self.events.benchmarks.emit()
        self._set_dirty(True)
        return entry

    # -- tuning --------------------------------------------------------------------------------------------
    def start_tune(self, target: str, objective: str) -> None:
        """A tune search began: forget the last one; its points arrive through ``add_tune_point``."""
        self.tune = {"target": target, "objective": objective, "points": [], "running": True, "chosen": None}
        self.events.tune.emit()

    def add_tune_point(self, point: dict) -> None:
        """One verified point (``Point.to_dict()``) of the running search."""
        if self.tune is not None:
            self.tune["points"].append(point)
            self.events.tune.emit()

    def finish_tune(self, result: dict | None, stopped: str | None = None) -> None:
        """The search ended: ``result`` is ``TuneResult.to_dict()``; None when it stopped before returning one
        (the points streamed so far stay, with ``stopped``)."""
        if result is not None:
            self.tune = dict(result, chosen=None)
        elif self.tune is not None:
            self.tune.pop("running", None)
            self.tune["stopped"] = stopped or "cancelled"
        self.events.tune.emit()
        self._set_dirty(True)

    def choose_tune_point(self, index: int) -> Recipe:
        """Make point ``index``'s recipe the current edits (one undoable step) and remember the choice."""
        if self.tune is None or not 0 <= index < len(self.tune["points"]):
            raise IndexError(index)
        recipe = Recipe.from_dict(self.tune["points"][index]["recipe"])
        self.replace_recipe(recipe)
        self.tune["chosen"] = index
        self.events.tune.emit()
        return recipe

    # -- selection ------------------------------------------------------------------------------------
    def select(self, nodes: Iterable[str], source: object = None) -> None:
        """Select ``nodes`` everywhere; ``source`` (the view that did it) is passed on so it can ignore it."""
        sel = tuple(dict.fromkeys(nodes))
        if sel != self.selection:
            self.selection = sel
            self.events.selection.emit(sel, source)

    # -- saving ------------------------------------------------------------------------------------------
    def _set_dirty(self, value: bool) -> None:
        if value != self.dirty:
            self.dirty = value
            self.events.dirty.emit(value)

    def mark_saved(self) -> None:
        self._set_dirty(False)
