"""The long pieces of work the desktop app runs off its GUI thread, as plain functions taking a task.

Orange3's pattern: each job is a module-level function of its inputs and a progress/cancel ``task``
(``analyzers.task.Task``), so it is tested without a GUI and the GUI's worker only schedules it.
"""

from __future__ import annotations

from dataclasses import dataclass

from analyzers.task import NullTask, Task

from .layout import GraphLayout, layout_graph
from ..recipe import Recipe
from ..session import Session, SessionSpec

#: values kept per tensor for the GUI's FP32-vs-INT8 scatter plot
SCATTER_RESERVOIR = 1000


def open_session(spec: SessionSpec, recipe: Recipe, task: Task | None = None, calibrate: bool = True) -> Session:
    """Prepare the model, bind the data and (unless told not to) collect or load the calibration histograms."""
    task = task or NullTask()
    task.report(0.0, "preparing the model")
    session = Session(spec.model, spec.calib, spec.eval, recipe=recipe.copy(), recipe_path=spec.recipe_path)
    task.check()
    if calibrate:
        session.calibration(task)
        task.report(1.0, "calibration ready")
    return session


@dataclass
class OpenedModel:
    """A ready session and the drawing layout of its graph (both computed off the GUI thread)."""

    session: Session
    layout: GraphLayout


def open_model(spec: SessionSpec, recipe: Recipe, task: Task | None = None, calibrate: bool = True) -> OpenedModel:
    """``open_session`` plus the graph layout, so the GUI thread only has to draw."""
    task = task or NullTask()
    session = open_session(spec, recipe, task, calibrate=calibrate)
    task.report(1.0, "laying out the graph")
    return OpenedModel(session, layout_graph(session.graph))


def analyze(session: Session, recipe: Recipe, samples: int | None = None, reservoir: int = SCATTER_RESERVOIR,
            task: Task | None = None):
    """Quantize with ``recipe`` (reusing the session's calibration) and diff it against FP32."""
    from ..analysis import analyze as run  # noqa: PLC0415 - the engine is heavy; load it on first use

    return run(session, recipe=recipe.copy(), samples=samples, task=task or NullTask(), reservoir=reservoir)


def benchmark(model: str, int8: str, calib: str, backends: tuple, threads: int = 0, batches: tuple = (1,),
              runs: int = 50, warmup: int = 5, task: Task | None = None) -> dict:
    """Time the FP32 model against the given INT8 model on ``backends`` (each in its own child process);
    returns the JSON-able report (``workbench.bench.BenchReport.to_dict``)."""
    from ..bench import BenchRequest, run_bench  # noqa: PLC0415

    req = BenchRequest(model=model, int8=int8, calib=calib, backends=tuple(backends), threads=threads,
                       batches=tuple(batches), runs=runs, warmup=warmup, compare_activation_types=False)
    return run_bench(req, task or NullTask()).to_dict()
