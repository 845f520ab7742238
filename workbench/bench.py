"""Benchmarks driven from the workbench: pick the FP32/INT8 models and the input data, then call backends.

This is the glue between a ``Session`` (prepared model, calibration data, recipe, quantize) and the
``backends`` library (which only knows ONNX files and arrays). ``run_bench`` is what ``qwb bench`` and
the GUI call, with any task object for progress and cancellation; its ``BenchReport`` has ``to_dict()``
for the JSON file. User mistakes become ``WorkbenchError``; a backend that crashes or hangs is reported
inside the result, never raised.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import onnxruntime as ort
import psutil

import resources
from backends.arm_sysroot import build_sysroot
from backends.benchmark import MAX_FEED_BYTES, BenchSettings, benchmark
from backends.cpuinfo import machine, model_name
from backends.errors import BackendError
from backends.feeds import Feed
from backends.integer_path import integer_path
from backends.neon_emulated import DEFAULT_ARM_CPUS
from backends.registry import BACKEND_NAMES, all_backends, make_backend
from backends.results import BackendResult
from backends.tasks import NullTask, Task, scaled

from .data import SyntheticSource
from .errors import ModelLoadError, WorkbenchError
from .graph import build_graph
from .paths import arm_sysroot_dir
from .session import Session

POOL = 64  # calibration samples handed to the benchmark child (batches cycle through them)
ACTIVATION_VARIANTS = ("u8", "s8")


@dataclass
class BenchRequest:
    """What to benchmark, where, and how: the fields of ``qwb bench`` (see its --help)."""

    model: str | None = None
    int8: str | None = None
    calib: str | None = None
    recipe: str | None = None
    demo: bool = False
    backends: tuple = ("all",)
    threads: int = 0
    batches: tuple = (1,)
    runs: int = 100
    warmup: int = 10
    timeout_s: float = 300.0
    arm_cpus: tuple = DEFAULT_ARM_CPUS
    sysroot: str | None = None
    preprocess: str = "auto"
    compare_activation_types: bool = True  # also time the INT8 model with u8 <-> s8 activations
    # with ``int8``: other INT8 files timed beside it (label -> path; a path equal to ``int8`` reuses its run), FP32
    # timed once for all of them
    variants: dict = field(default_factory=dict)
    trust_code: bool = False  # --trust-model-code: a PyTorch model or factory may run its code when exported
    session_options: dict = field(default_factory=dict)  # onnxruntime session config entries (--session-option)


@dataclass
class BenchReport:
    """Results of every backend asked for, plus what was compared; ``to_dict()`` is the JSON file."""

    model: str
    int8_model: str | None
    feed: str
    settings: BenchSettings
    results: list  # [BackendResult]
    host: dict
    notes: list = field(default_factory=list)

    def result(self, backend: str) -> BackendResult:
        return next(r for r in self.results if r.backend == backend)

    def to_dict(self) -> dict:
        s = self.settings
        return {"version": 1, "model": self.model, "int8_model": self.int8_model, "feed": self.feed,
                "settings": {"threads": s.resolved_threads(), "batch": list(s.batches), "runs": s.runs,
                             "warmup": s.warmup, "timeout_s": s.timeout_s, "arm_cpus": list(s.arm_cpus),
                             "session_options": dict(s.session_options)},
                "host": self.host, "backends": {r.backend: r.to_dict() for r in self.results}, "notes": self.notes}


def _wb_error(e: BackendError) -> WorkbenchError:
    return WorkbenchError(e.message, e.fix)


def backend_availability(sysroot: str | Path | None = None) -> list:
    """Availability of every backend (cheap; nothing is loaded), for ``qwb backends`` and the GUI."""
    return [b.availability() for b in all_backends(arm_sysroot_dir(sysroot))]


def setup_neon(sysroot: str | Path | None = None, force: bool = False, mirror: str | None = None,
               task: Task | None = None, log=None):
    """Build the ARM64 sysroot the neon-emulated backend needs (``qwb neon-setup``)."""

    try:
        return build_sysroot(arm_sysroot_dir(sysroot), force=force, mirror=mirror, task=task, log=log)
    except BackendError as e:
        raise _wb_error(e) from e


def host_info() -> dict:
    """The machine the numbers come from (stored with every result)."""


    return {"cpu": model_name(), "arch": machine(), "cores_physical": psutil.cpu_count(logical=False),
            "cores_logical": psutil.cpu_count(logical=True), "onnxruntime": ort.__version__,
            "python": platform.python_version(), "integer_path": _integer_path_dict()}


def _integer_path_dict() -> dict | None:
    p = integer_path()
    return p.to_dict() if p else None


def _check_onnx_file(path: str, what: str) -> str:

    p = Path(path)
    if not p.is_file():
        raise ModelLoadError(f"{what} {path} does not exist", "check the path")
    try:
        onnx.load(str(p), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf raises several types for a file that is not ONNX
        raise ModelLoadError(f"{what} {path} is not an ONNX model ({type(e).__name__})",
                             "pass an .onnx file (for PyTorch models, pass --calib so it can be exported)") from e
    return str(p)


def _feed_from(data) -> Feed:
    """Up to POOL real samples from a bound DataSource, batched when the model has a dynamic batch axis."""
    if data.can_batch:
        arrays = data.batch(0, min(len(data), POOL))
        axis = {n: True for n in arrays}
    else:
        arrays = data.sample(0)
        axis = {n: False for n in arrays}
    return Feed(arrays, axis, f"{min(len(data), POOL) if data.can_batch else 1} sample(s) of {data.description}")


def _models(req: BenchRequest, task: Task, notes: list) -> tuple[str, str | None, Feed, dict]:
    """(FP32 path, INT8 path or None, feed, INT8 variants) for the request; quantizes when asked to."""
    model, calib = req.model, req.calib
    if req.demo:

        model = model or str(resources.DEMO_MODEL)
        calib = calib or str(resources.DEMO_CALIB)
    if not model:
        raise WorkbenchError("no model given", "pass a model file (or --demo for the bundled demo)")
    if req.int8 and req.recipe:
        raise WorkbenchError("--int8 and --recipe exclude each other: --int8 benchmarks a model you already "
                             "quantized, --recipe quantizes one", "pass one of them")
    if req.recipe and not calib:
        raise WorkbenchError(f"--recipe {req.recipe} needs calibration data to quantize {model}",
                             "add --calib DATA (an .npz keyed by input names, an .npy, an image folder)")
    session = None
    if calib:

        session = Session(model, calib, recipe_path=req.recipe, preprocess=req.preprocess,
                          trust_code=req.trust_code)
    is_onnx = Path(model).suffix.lower() == ".onnx"
    if is_onnx:
        fp32 = _check_onnx_file(model, "model")
    elif session is not None:
        fp32 = str(session.prepared.path)
        notes.append(f"FP32 model: {model} exported to ONNX ({fp32})")
    else:
        raise WorkbenchError(f"{model} is not an ONNX file; benchmarking it needs --calib DATA so it can be exported",
                             "pass --calib DATA, or export the model to ONNX first")
    variants: dict = {}
    if req.int8:
        int8 = _check_onnx_file(req.int8, "INT8 model")
        variants = {label: _check_onnx_file(str(path), f"INT8 model {label!r}") for label, path in req.variants.items()}
    elif session is not None:
        q = session.quantize(task=scaled(task, 0.0, 0.5))
        int8 = str(q.path)
        act = session.recipe.settings.activation_type
        if req.compare_activation_types and act in ACTIVATION_VARIANTS:
            other = next(a for a in ACTIVATION_VARIANTS if a != act)
            r2 = session.recipe.copy()
            r2.settings.activation_type = other
            try:
                variants = {act: int8, other: str(session.quantize(recipe=r2, task=scaled(task, 0.5, 1.0)).path)}
            except WorkbenchError as e:
                notes.append(f"could not build the {other}-activation variant to compare: {e.message}")
    else:
        int8 = None
    if session is not None:
        feed = _feed_from(session.calib_data)
    else:
        feed = _feed_from(_random_data(fp32))
        notes.append("inputs are random (no --calib given): timings are valid, output comparisons use random "
                     "inputs")
    return fp32, int8, feed, variants


def _random_data(model_path: str):
    """The foundation's synthetic source, shaped from the model's inputs (only used for timing)."""


    inputs = build_graph(onnx.load(model_path, load_external_data=False)).inputs
    return SyntheticSource(inputs, POOL).bind(inputs)


def _check_feed_size(feed, settings: BenchSettings) -> None:
    """Refuse a batch whose inputs would not fit in memory (the child would die of it half way)."""
    per_sample = sum(a[:1].nbytes for n, a in feed.arrays.items() if feed.batch_axis.get(n))
    batch = max(int(b) for b in settings.batches)
    if per_sample * batch > MAX_FEED_BYTES:
        most = max(1, MAX_FEED_BYTES // max(per_sample, 1))
        raise WorkbenchError(f"a batch of {batch:,} samples would need {per_sample * batch / 2**30:,.1f} GiB of "
                             f"inputs (at most {MAX_FEED_BYTES / 2**30:.0f} GiB)", f"use --batch {most:,} or less")


def run_bench(req: BenchRequest, task: Task | None = None) -> BenchReport:
    """Benchmark FP32 vs INT8 on the requested backends; see ``BenchRequest`` for the knobs."""
    task = task or NullTask()
    names = list(BACKEND_NAMES) if "all" in req.backends else list(req.backends)
    unknown = [n for n in names if n not in BACKEND_NAMES]
    if unknown:
        raise WorkbenchError(f"unknown backend {unknown[0]!r}", f"choose from {', '.join(BACKEND_NAMES)} or all")
    settings = BenchSettings(req.threads, tuple(int(b) for b in req.batches), req.runs, req.warmup, req.timeout_s,
                             tuple(req.arm_cpus), session_options=dict(req.session_options))
    try:
        settings.validate()
    except BackendError as e:
        raise _wb_error(e) from e
    sysroot = arm_sysroot_dir(req.sysroot)
    backends = [make_backend(n, sysroot) for n in names]
    if "all" not in req.backends:  # a backend named explicitly must be usable: say why not before any work
        for b in backends:
            a = b.availability()
            if not a.available:
                raise WorkbenchError(f"backend {b.name} is not available here: {a.reason}", a.fix)
    notes: list = []
    fp32, int8, feed, variants = _models(req, scaled(task, 0.0, 0.15), notes)
    _check_feed_size(feed, settings)
    results = []
    for k, b in enumerate(backends):
        part = scaled(task, 0.15 + 0.85 * k / len(backends), 0.15 + 0.85 * (k + 1) / len(backends))
        part.report(0.0, f"benchmarking on {b.name}")
        try:
            results.append(benchmark(b, fp32, int8, feed, settings, part, None if b.emulated else variants))
        except BackendError as e:
            raise _wb_error(e) from e
    return BenchReport(fp32, int8, feed.description, settings, results, host_info(), notes)
