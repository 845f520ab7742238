"""What the desktop app asks of the engine process: one frozen dataclass per request, one handler per request.

Orange3's pattern: each handler is a module-level function of the request's inputs and a progress/cancel
``task`` (``backends.tasks.Task``), so it is tested without a GUI; the GUI (``ui.worker.EngineClient``) only
schedules requests, and the engine process (``workbench.app.remote``) dispatches them by type through
``HANDLERS``. The process keeps what a request leaves behind (the open Session) in an ``EngineState``.

Requests and replies cross a process boundary pickled, so they carry data only (paths, recipes, results).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from analyzers.calibration.collect import CalibrationData
from analyzers.calibration.compact import CompactHistograms, calibration_view
from backends.tasks import NullTask, Task

from .. import analysis
from ..bench import BenchRequest, run_bench
from ..errors import WorkbenchError
from ..graph import ModelGraph
from ..hint_measure import measure_activations_16bit
from ..recipe import Recipe
from ..report import api as report_api
from ..report.api import ExportRequest
from ..session import Session, SessionSpec, open_session
from ..tune.search import TuneSpec, run_tune
from .layout import GraphLayout, layout_graph

#: values kept per tensor for the GUI's FP32-vs-INT8 scatter plot
SCATTER_RESERVOIR = 1000


# -- requests --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OpenModel:
    """Prepare the model and bind the data, keeping the Session in the engine; no calibration yet.
    Reply: ``OpenedInfo``."""

    spec: SessionSpec
    recipe: Recipe


@dataclass(frozen=True)
class Calibrate:
    """Collect (or load cached) calibration histograms of the open model.
    Reply: ``CalibrationData`` over packed histograms (``analyzers.calibration.compact``)."""


@dataclass(frozen=True)
class Analyze:
    """Quantize the open model with ``recipe`` (reusing its calibration) and diff it against FP32.
    Reply: ``AnalysisResult``."""

    recipe: Recipe
    samples: int | None = None
    reservoir: int = SCATTER_RESERVOIR


@dataclass(frozen=True)
class Benchmark:
    """Time the FP32 model against the INT8 model, as ``qwb bench`` does (one ``BenchRequest``, no restated
    fields). Reply: the JSON-able report (``workbench.bench.BenchReport.to_dict``)."""

    bench: BenchRequest


@dataclass(frozen=True)
class Tune:
    """Search the open model for the cheapest per-group mix of INT8, 16-bit and float that meets ``spec.target``
    (``qwb tune``), starting from ``recipe`` (the GUI's current edits). Each verified point is streamed as it is
    verified (``Point.to_dict()`` through ``task.partial``); cancelling keeps the points found so far.
    Reply: ``TuneResult.to_dict()`` (``stopped`` says why a run ended early)."""

    spec: TuneSpec
    recipe: Recipe


@dataclass(frozen=True)
class ExportReport:
    """Write a report of runs already analysed (nothing is re-analysed). Reply: the files written."""

    export: ExportRequest


# -- replies -----------------------------------------------------------------------------------------------
@dataclass
class OpenedInfo:
    """The reply to ``OpenModel``: what the GUI needs from an opened Session (the Session itself stays in
    the engine process).

    ``calibration`` arrives with a second request (``Calibrate``), so the graph shows before the model has
    run over the calibration data.
    """

    source: str
    prepared_path: str
    graph: ModelGraph
    layout: GraphLayout
    calibration: CalibrationData | None = None  # over packed histograms, once calibrated
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# -- handlers --------------------------------------------------------------------------------------------
class EngineState:
    """What the engine process keeps between requests: the open Session."""

    def __init__(self) -> None:
        self.session: Session | None = None

    def require_session(self) -> Session:
        if self.session is None:
            raise WorkbenchError("no model is loaded in the analysis process", "open the model again")
        return self.session


Handler = Callable[[object, EngineState, Task], object]

#: request type -> the function that answers it
HANDLERS: dict[type, Handler] = {}


def handles(request_type: type) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of ``request_type``."""
    def register(fn: Handler) -> Handler:
        HANDLERS[request_type] = fn
        return fn
    return register


def handle(request, state: EngineState, task: Task | None = None):
    """Answer ``request`` with the handler registered for its type."""
    handler = HANDLERS.get(type(request))
    if handler is None:
        raise TypeError(f"the engine has no handler for {type(request).__qualname__} requests")
    return handler(request, state, task or NullTask())


@handles(OpenModel)
def open_model(req: OpenModel, state: EngineState, task: Task) -> OpenedInfo:
    """Prepare the model and bind the data (errors surface here), lay out its graph; no calibration yet."""
    state.session = None
    s = open_session(req.spec, req.recipe.copy(), task, calibrate=False)
    task.report(1.0, "laying out the graph")
    layout = layout_graph(s.graph)
    state.session = s
    warnings = [w for w in (s.calib_data.warning, s.eval_data.warning if s.eval_data is not s.calib_data else None)
                if w]
    return OpenedInfo(s.prepared.source, str(s.prepared.path), s.graph, layout, None, list(s.prepared.notes),
                      warnings)


@handles(Calibrate)
def calibrate(req: Calibrate, state: EngineState, task: Task):
    """Collect (or load cached) histograms; the GUI gets them packed (``analyzers.calibration.compact``)."""

    cal = state.require_session().calibration(task, complete=True)  # the lab lists every tensor to quantize
    return calibration_view(CompactHistograms.pack(cal.histograms), cal.samples)


@handles(Analyze)
def analyze(req: Analyze, state: EngineState, task: Task):
    """Quantize with the request's recipe (reusing the session's calibration) and diff it against FP32; when the
    16-bit-activations hint fires, measure its cost as ``qwb analyze`` does (a few seconds), so the GUI shows it."""
    session, recipe = state.require_session(), req.recipe.copy()
    result = analysis.analyze(session, recipe=recipe, samples=req.samples, task=task, reservoir=req.reservoir)
    measure_activations_16bit(session, recipe, result, task)
    return result


@handles(Benchmark)
def benchmark(req: Benchmark, state: EngineState, task: Task) -> dict:
    """Time FP32 against INT8 on the request's backends; returns the JSON-able report."""
    return run_bench(req.bench, task).to_dict()


@handles(Tune)
def tune(req: Tune, state: EngineState, task: Task) -> dict:
    """Run the tune search on the open session from the request's recipe; points go up as they are verified."""
    s = state.require_session()
    partial = getattr(task, "partial", None)  # the engine process's task streams; a plain Task does not

    def on_point(point) -> None:
        if partial is not None:
            partial(point.to_dict(), f"verified: {point.label}")

    saved, s.recipe = s.recipe, req.recipe.copy()  # run_tune searches from the session's recipe
    try:
        return run_tune(s, req.spec, task, on_point).to_dict()
    finally:
        s.recipe = saved


@handles(ExportReport)
def export_report(req: ExportReport, state: EngineState, task: Task) -> list[str]:
    """Open a session from the request's paths (prepared model and calibration come from the cache) and
    write the report; returns the files written."""
    return report_api.export_report(req.export, task)
