"""One small runner interface every backend runs models through (after Polygraphy's runners).

``activate()`` builds the expensive session, ``infer(feed)`` runs one feed and records its own time,
``deactivate()`` frees the session. Configuration is a plain dataclass so it can cross a process
boundary as JSON: the session itself only ever lives inside the child process that times it.

It is also the one place an onnxruntime session is built (``build_session``), for every purpose the
product has: ``exact`` (Q/DQ computed as written, for the diff engine), ``deployed`` (full optimizations:
what a user's application runs) and ``benchmark`` (the same, timed). Analyses, evaluation and the
benchmark children all go through it, so a session option means the same thing everywhere.

This module imports only the standard library at import time; it also runs inside the ARM64 sysroot
under QEMU, where only numpy and onnxruntime are installed.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field

import onnxruntime as ort

LEVELS = ("disable", "basic", "extended", "all")

# purpose -> (graph optimization level, session config entries)
PURPOSES = {
    # no graph optimization at all: Q/DQ and every float op run exactly as written. Basic optimizations
    # with the QDQ transforms off were bit-identical on CNNs but not on every model (an LSTM/CTC model and a
    # real transformer moved by up to 0.1 dB), and were only ~8% faster on MobileNetV2 (0.80 vs 0.87 s)
    "exact": ("disable", {"session.intra_op.allow_spinning": "0"}),
    "deployed": ("all", {"session.intra_op.allow_spinning": "0"}),  # what onnxruntime runs in a user's application
    "benchmark": ("all", {}),  # the same graph, timed as users run it (threads spin between ops by default)
}
# Analysis sessions do not let idle intra-op threads spin: spinning changes no number, and on a machine whose
# cores are shared it burns the time slices the work needs (MobileNetV2 96 px, 64 samples, exact analysis on
# the 2-core VM at load 15: 27.1 -> 19.9 s wall, 3.9 -> 2.3 CPU s, medians of 3; docs/benchmarks.md)


@dataclass
class SessionConfig:
    """How to build an onnxruntime session: the cheap 'loader' that a runner turns into a session."""

    model: str
    providers: list = field(default_factory=lambda: ["CPUExecutionProvider"])  # names or [name, options]
    threads: int = 0  # intra-op threads; 0 = onnxruntime's default (physical cores)
    level: str = "all"  # graph optimization level: disable | basic | extended | all
    optimized_model_path: str | None = None  # where onnxruntime writes the graph it will run
    profile_prefix: str | None = None  # turn on onnxruntime's profiler (per-node kernel, types, provider)
    require_providers: list = field(default_factory=list)  # fail if onnxruntime silently dropped these
    config_entries: dict = field(default_factory=dict)  # session config keys, e.g. session.x64quantprecision
    shared_arena: bool = False  # one CPU arena for every session of the process (many short-lived sessions)

    @classmethod
    def for_purpose(cls, purpose: str, model: str = "", threads: int = 0, **kw) -> "SessionConfig":
        """The configuration a named purpose (``PURPOSES``) stands for, on the CPU provider."""
        level, entries = PURPOSES[purpose]
        return cls(model, threads=threads, level=level, config_entries=dict(entries, **kw.pop("config_entries", {})),
                   **kw)

    def to_dict(self) -> dict:
        """JSON-ready, to hand the configuration to the child process."""
        return asdict(self)


_ENV_ALLOCATOR: bool | None = None


def _shared_arena() -> bool:
    """Register one CPU memory arena for every session of this process (once).

    Sessions built one after another (each what-if re-run builds a new diff model) then reuse memory that
    is already mapped instead of faulting in fresh pages: measured 0.69 s -> 0.50 s for a first pass
    over 64 MobileNetV2 samples.
    """
    global _ENV_ALLOCATOR
    if _ENV_ALLOCATOR is None:

        try:
            info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
            ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, -1, -1, -1))
            _ENV_ALLOCATOR = True
        except Exception:  # noqa: BLE001 - an optimisation: sessions keep their own arenas
            _ENV_ALLOCATOR = False
    return _ENV_ALLOCATOR


def build_session(c: SessionConfig, model_bytes: bytes | None = None):
    """The onnxruntime session ``c`` describes (for ``model_bytes`` when given, else the file ``c.model``)."""

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[c.level]
    if c.threads:
        so.intra_op_num_threads = c.threads
    so.inter_op_num_threads = 1
    for key, value in c.config_entries.items():
        so.add_session_config_entry(key, str(value))
    if c.shared_arena and _shared_arena():
        so.add_session_config_entry("session.use_env_allocators", "1")
    if c.optimized_model_path:
        so.optimized_model_filepath = c.optimized_model_path
        # weights go to a side file so the graph stays small (and models over 2 GB can be written)
        so.add_session_config_entry("session.optimized_model_external_initializers_file_name",
                                    _side_file(c.optimized_model_path))
        so.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    if c.profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = c.profile_prefix
    providers = [p if isinstance(p, str) else (p[0], p[1]) for p in c.providers]
    return ort.InferenceSession(model_bytes if model_bytes is not None else c.model, so, providers=providers)


class Runner(ABC):
    """Base of every runner: validates the activate/infer/deactivate order and times ``infer``."""

    name = "runner"

    def __init__(self) -> None:
        self.is_active = False
        self.last_inference_time: float | None = None  # seconds, of the most recent infer()

    def activate(self) -> None:
        """Build the expensive state (the session); separate from __init__ so runners are cheap to create."""
        if self.is_active:
            raise RuntimeError(f"{self.name} is already active")
        self.activate_impl()
        self.is_active = True

    def infer(self, feed: dict):
        """Run one feed; the time of the backend call alone is kept in ``last_inference_time``."""
        t0 = time.perf_counter()
        out = self.infer_impl(feed)
        self.last_inference_time = time.perf_counter() - t0
        return out

    def deactivate(self) -> None:
        """Free the session (idempotent)."""
        if self.is_active:
            self.deactivate_impl()
            self.is_active = False

    def __enter__(self) -> "Runner":
        self.activate()
        return self

    def __exit__(self, *exc) -> None:
        self.deactivate()

    @abstractmethod
    def activate_impl(self) -> None: ...

    @abstractmethod
    def infer_impl(self, feed: dict): ...

    @abstractmethod
    def deactivate_impl(self) -> None: ...


class OnnxRuntimeRunner(Runner):
    """Runs a model with onnxruntime; every backend (CPU, CUDA, TensorRT, NEON) is this plus providers."""

    name = "onnxruntime"

    def __init__(self, config: SessionConfig):
        super().__init__()
        self.config = config
        self.session = None
        self.providers_used: list[str] = []
        self.init_seconds: float | None = None

    def activate_impl(self) -> None:
        t0 = time.perf_counter()
        self.session = build_session(self.config)
        self.init_seconds = time.perf_counter() - t0
        self.providers_used = list(self.session.get_providers())
        dropped = [p for p in self.config.require_providers if p not in self.providers_used]
        if dropped:
            raise RuntimeError(f"onnxruntime could not use {', '.join(dropped)} (it fell back to "
                               f"{', '.join(self.providers_used)}); its log above says which library is missing")

    def infer_impl(self, feed: dict):
        return self.session.run(None, feed)

    def end_profiling(self) -> str | None:
        """Stop the profiler and return the JSON file it wrote (None when profiling was off)."""
        return self.session.end_profiling() if self.config.profile_prefix else None

    def deactivate_impl(self) -> None:
        self.session = None


def _side_file(model_path: str) -> str:
    """The external-weights file name onnxruntime writes next to an optimized model."""
    return model_path.replace("\\", "/").rsplit("/", 1)[-1] + ".data"
