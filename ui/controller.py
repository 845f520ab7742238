"""What the buttons do: open models and projects, run and cancel the analysis, save — all off the GUI thread.

The controller owns the Workspace (the Qt-free model every view reads) and the EngineClient, whose child
process holds the Session (prepared model, data, cached calibration); the GUI keeps what it draws from
(``OpenedInfo``: graph, layout, calibration histograms) in ``opened``. What it asks the engine for are the
requests of ``workbench.app.requests``; results are applied to the workspace on the GUI thread. Errors become ``ErrorInfo``
on ``sigError``; nothing here raises into Qt.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, Signal

from workbench.app.layer_changes import structure_note
from workbench.app.layout import GraphLayout
from workbench.app.project import ProjectData, load_project, save_project
from workbench.app.requests import SCATTER_RESERVOIR, Analyze, Calibrate, OpenedInfo, OpenModel, Tune
from workbench.app.workspace import Workspace
from workbench.errors import WorkbenchError
from workbench.model_loader import code_to_run
from workbench.recipe import Recipe
from workbench.session import SessionSpec
from workbench.tune.search import TuneSpec

from .errors import ErrorInfo
from .worker import EngineCall, EngineClient


def describe_change(old: Recipe | None, new: Recipe) -> str:
    """A short run label suffix: what the recipe changed against the previous run's."""
    if old is None:
        return "baseline" if not new.layers else f"{len(new.layers)} override(s)"
    changed = sorted(n for n in set(old.layers) | set(new.layers) if old.layers.get(n) != new.layers.get(n))
    parts = []
    for n in changed[:2]:
        p = new.precision_of(n)
        pct = new.percentile_of(n)
        parts.append(f"{n} → {p.upper()}" if old.precision_of(n) != p else f"{n} p{pct:g}" if pct else f"{n} reset")
    if len(changed) > 2:
        parts.append(f"+{len(changed) - 2} more")
    if old.settings != new.settings:
        parts.append("global settings")
    return ", ".join(parts) if parts else "same recipe"


class Controller(QObject):
    """Opens, runs, cancels and saves; see the module docstring."""

    sigError = Signal(object)  # ErrorInfo
    sigStatus = Signal(str)
    sigNote = Signal(str)  # something the user should read about a result (e.g. layers a precision edit created)
    sigModelReady = Signal(object, object)  # ModelGraph, GraphLayout (None, None when closed)
    sigSessionReady = Signal()  # calibration histograms available
    sigBusyChanged = Signal(bool)
    sigProgress = Signal(float, str)
    sigJobFinished = Signal(str, str)  # the call's name, outcome: "done" | "cancelled" | "failed"
    sigProjectPathChanged = Signal(object)

    def __init__(self, workspace: Workspace | None = None, parent=None):
        super().__init__(parent)
        self.ws = workspace or Workspace()
        self.engine = EngineClient(self)
        self.engine.sigBusyChanged.connect(lambda busy: self.ws.set_activity(self.job_name if busy else None))
        self.engine.sigBusyChanged.connect(self.sigBusyChanged)
        self.engine.sigProgress.connect(self.sigProgress)
        self.engine.sigFinished.connect(self._job_finished)
        self.engine.sigEngineLost.connect(self._engine_lost)
        self.opened: OpenedInfo | None = None  # what the GUI keeps of the model open in the engine
        self.layout: GraphLayout | None = None
        self.project_path: Path | None = None
        self.analysis_samples: int | None = None
        self.auto_analyze = True
        self._pending: Callable[[], None] | None = None
        #: asked (model, what would run) before a model that runs code is opened; the window asks its Prompter.
        #: A controller on its own never runs model code.
        self.trust_model_code: Callable[[str, str], bool] = lambda model, what: False

    # -- state ---------------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.engine.busy

    @property
    def job_name(self) -> str | None:
        return self.engine.call.name if self.engine.call else None

    def calibration(self):
        """The calibration histograms of the open model (None until it is loaded)."""
        return self.opened.calibration if self.opened is not None else None

    def _engine_lost(self) -> None:
        self.opened = None
        self.sigSessionReady.emit()

    def _when_idle(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` now, or cancel the running call and run ``fn`` when it has stopped."""
        if not self.busy:
            fn()
        else:
            self._pending = fn
            self.engine.cancel()

    def _job_finished(self, call: EngineCall) -> None:
        outcome = "cancelled" if call.cancelled else "failed" if call.error is not None else "done"
        self.sigJobFinished.emit(call.name, outcome)
        pending, self._pending = self._pending, None
        if pending is not None:
            pending()

    def _fail(self, call: EngineCall, doing: str) -> bool:
        """Report a failed or cancelled call; True when the call did not succeed."""
        if call.cancelled:
            self.sigStatus.emit(f"{call.name}: cancelled")
            return True
        if call.error is not None:
            self.sigError.emit(ErrorInfo.from_exception(call.error, doing, call.traceback))
            self.sigStatus.emit(f"{call.name}: failed")
            return True
        return False

    # -- opening -------------------------------------------------------------------------------------
    def open_model(self, spec: SessionSpec, recipe: Recipe | None = None, analyze: bool | None = None,
                   samples: int | None = None) -> None:
        """Forget the current work and open ``spec`` (model + data); analyse afterwards when asked to, on the
        first ``samples`` samples (0: all; None: the preference)."""
        def go():
            r = recipe
            if r is None and spec.recipe_path:
                try:
                    r = Recipe.load(spec.recipe_path)
                except WorkbenchError as e:
                    self.sigError.emit(ErrorInfo.from_exception(e, "read the recipe"))
                    return
            self.opened, self.layout, self.project_path = None, None, None
            self.sigProjectPathChanged.emit(None)
            self.ws.reset(spec, r, self.analysis_samples if samples is None else samples)
            self.sigModelReady.emit(None, None)
            do_analyze = self.auto_analyze if analyze is None else analyze
            self._start_open(spec, then_analyze=do_analyze)
        self._when_idle(go)

    def _start_open(self, spec: SessionSpec, then_analyze: bool) -> None:
        """Prepare the model (the graph shows), then calibrate (histograms), then analyse if asked to. A model
        that runs code (PyTorch, a factory; also from a project) opens only once the user has confirmed it."""
        what = code_to_run(spec.model)
        if what and not spec.trust_code:
            if not self.trust_model_code(spec.model, what):
                self.sigError.emit(ErrorInfo("Model not opened", f"{spec.model} was not opened: opening it means "
                                             f"Quant Workbench {what}, and that was not allowed.",
                                             "open it again and allow it if you trust it, or open an ONNX export "
                                             "of the model"))
                self.sigStatus.emit(f"{Path(spec.model).name}: not opened (it runs code)")
                return
            spec = replace(spec, trust_code=True)
            self.ws.spec = spec  # a re-open after an engine crash does not ask again; never saved in a project
        self.sigStatus.emit(f"opening {Path(spec.model).name}")

        def opened_(call: EngineCall) -> None:
            if self._fail(call, f"open {Path(spec.model).name}"):
                return
            opened: OpenedInfo = call.result
            self.opened, self.layout = opened, opened.layout
            for note in opened.notes:
                self.sigStatus.emit(note)
            self.ws.set_graph(opened.graph)
            self.sigModelReady.emit(opened.graph, opened.layout)
            for warn in opened.warnings:
                self.sigError.emit(ErrorInfo("Data warning", warn))
            self.engine.start("Calibrating", Calibrate(), on_done=calibrated)

        def calibrated(call: EngineCall) -> None:
            if self._fail(call, "calibrate the model"):
                return
            if self.opened is not None:
                self.opened.calibration = call.result
            self.sigSessionReady.emit()
            self.sigStatus.emit(f"opened {self.opened.source}: {len(self.opened.graph.nodes)} nodes, "
                                f"{len(call.result.histograms)} tensors calibrated on {call.result.samples} samples")
            if then_analyze:
                self.run_analysis()

        self.engine.start("Opening model", OpenModel(spec, self.ws.recipe.copy()), on_done=opened_)

    def close_model(self) -> None:
        def go():
            self.opened, self.layout, self.project_path = None, None, None
            self.ws.reset(None)
            self.sigModelReady.emit(None, None)
            self.sigProjectPathChanged.emit(None)
        self._when_idle(go)

    # -- analysis ------------------------------------------------------------------------------------
    def run_analysis(self) -> bool:
        """Quantize with the workspace recipe and analyse; False (with a message) when that is not possible."""
        if self.busy:
            self.sigError.emit(ErrorInfo("Busy", f"'{self.job_name}' is still running",
                                         "wait for it to finish or press Cancel"))
            return False
        if self.opened is None:
            if self.ws.spec is None:
                self.sigError.emit(ErrorInfo("Nothing to analyse", "no model is open", "open a model first (Ctrl+O)"))
                return False
            self._start_open(self.ws.spec, then_analyze=True)  # e.g. after the engine process crashed
            return True
        recipe = self.ws.recipe.copy()
        previous = self.ws.runs[-1].recipe if self.ws.runs else None
        samples = self.ws.samples or None

        def done(call: EngineCall) -> None:
            if self._fail(call, "analyse the model"):
                return
            label = f"Run {len(self.ws.runs) + 1}: {describe_change(previous, recipe)}"
            before = self.ws.runs[-1] if self.ws.runs else None
            run = self.ws.add_run(call.result, recipe, label)
            self.sigStatus.emit(f"{label} finished in {call.elapsed:.1f} s")
            note = structure_note(before, run)
            if note:
                self.sigNote.emit(note)

        self.engine.start("Analysing", Analyze(recipe, samples, SCATTER_RESERVOIR), on_done=done)
        return True

    def cancel(self) -> None:
        self._pending = None
        self.engine.cancel()

    # -- other requests (benchmarks, exports) ---------------------------------------------------------------
    def submit(self, name: str, request, on_result: Callable[[object], None], doing: str) -> bool:
        """Send ``request`` (see ``workbench.app.requests``) to the engine process and hand its reply to
        ``on_result`` on the GUI thread; ``name`` shows while it runs, ``doing`` in an error message."""
        if self.busy:
            self.sigError.emit(ErrorInfo("Busy", f"'{self.job_name}' is still running",
                                         "wait for it to finish or press Cancel"))
            return False

        def done(call: EngineCall) -> None:
            if not self._fail(call, doing):
                self.sigStatus.emit(f"{name}: done in {call.elapsed:.1f} s")
                on_result(call.result)

        self.engine.start(name, request, on_done=done)
        return True

    # -- tuning --------------------------------------------------------------------------------------------
    def run_tune(self, spec: TuneSpec) -> bool:
        """Search from the current recipe for ``spec``; each verified point lands in the workspace as it is
        verified, the full result when the search ends (Cancel keeps the points found so far)."""
        if self.busy:
            self.sigError.emit(ErrorInfo("Busy", f"'{self.job_name}' is still running",
                                         "wait for it to finish or press Cancel"))
            return False
        if self.opened is None:
            self.sigError.emit(ErrorInfo("Nothing to tune", "no model is loaded in the analysis process",
                                         "open a model first (Ctrl+O), or Re-run (F5) after an engine crash"))
            return False
        self.ws.start_tune(spec.target.text, spec.objective)

        def done(call: EngineCall) -> None:
            if call.cancelled or call.error is not None:
                self.ws.finish_tune(None, "cancelled" if call.cancelled else "failed")
                self._fail(call, "tune the model")
                return
            self.ws.finish_tune(call.result)
            r = call.result
            best = r.get("best")
            verdict = ("no point verified" if best is None else
                       f"best: {best['label']} ({'meets' if best['met_holdout'] else 'does not meet'} the target "
                       "on held-back data)")
            stop = f", stopped early ({r['stopped']})" if r.get("stopped") else ""
            self.sigStatus.emit(f"Tune: {len(r['points'])} points, {r['evaluations']} evaluations in "
                                f"{r['elapsed_s']:.1f} s{stop}; {verdict}")

        self.engine.start("Tuning", Tune(spec, self.ws.recipe.copy()), on_done=done,
                          on_partial=self.ws.add_tune_point)
        return True

    def apply_tune_point(self, index: int) -> bool:
        """Make tune point ``index``'s recipe the current edits (one undoable step) and re-run the analysis, so
        Before / after compares it with the run before."""
        if self.busy:
            self.sigError.emit(ErrorInfo("Busy", f"'{self.job_name}' is still running",
                                         "wait for it to finish or press Cancel"))
            return False
        try:
            self.ws.choose_tune_point(index)
        except WorkbenchError as e:
            self.sigError.emit(ErrorInfo.from_exception(e, "use the tune point's recipe"))
            return False
        return self.run_analysis()

    # -- projects -------------------------------------------------------------------------------------------
    def save_project(self, path: str | Path) -> Path | None:
        try:
            p = save_project(self.ws, path)
        except WorkbenchError as e:
            self.sigError.emit(ErrorInfo.from_exception(e, "save the project"))
            return None
        self.project_path = p
        self.sigProjectPathChanged.emit(p)
        self.sigStatus.emit(f"saved {p}")
        return p

    def open_project(self, path: str | Path) -> bool:
        """Load a project (results show at once); the model is prepared in the background for re-runs."""
        try:
            data = load_project(path)
        except WorkbenchError as e:
            self.sigError.emit(ErrorInfo.from_exception(e, "open the project"))
            return False
        self._when_idle(lambda: self._apply_project(data, Path(path)))
        return True

    def restore(self, data: ProjectData) -> None:
        """Apply autosaved work (crash recovery); it stays unsaved until the user saves it."""
        def go():
            self._apply_project(data, None)
            self.ws._set_dirty(True)  # noqa: SLF001 - restored work is not saved anywhere yet
        self._when_idle(go)

    def _apply_project(self, data: ProjectData, path: Path | None) -> None:
        self.opened, self.layout = None, None
        data.apply(self.ws)
        self.project_path = path
        self.sigProjectPathChanged.emit(path)
        self.sigModelReady.emit(None, None)
        if data.spec is not None:
            self._start_open(data.spec, then_analyze=False)

    def shutdown(self) -> None:
        self._pending = None
        self.engine.shutdown()
