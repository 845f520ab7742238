"""One small runner interface every backend runs models through (after Polygraphy's runners).

``activate()`` builds the expensive session, ``infer(feed)`` runs one feed and records its own time,
``deactivate()`` frees the session. Configuration is a plain dataclass so it can cross a process
boundary as JSON: the session itself only ever lives inside the child process that times it.

This module imports only the standard library at import time; it also runs inside the ARM64 sysroot
under QEMU, where only numpy and onnxruntime are installed.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field

LEVELS = ("disable", "basic", "extended", "all")


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

    def to_dict(self) -> dict:
        """JSON-ready, to hand the configuration to the child process."""
        return asdict(self)


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
        import onnxruntime as ort  # noqa: PLC0415 - heavy, and only the child process needs it

        c = self.config
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
        if c.optimized_model_path:
            so.optimized_model_filepath = c.optimized_model_path
            # weights go to a side file so the graph stays small (and models over 2 GB can be written)
            so.add_session_config_entry("session.optimized_model_external_initializers_file_name",
                                        _side_file(c.optimized_model_path))
            so.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes",
                                        "1024")
        if c.profile_prefix:
            so.enable_profiling = True
            so.profile_file_prefix = c.profile_prefix
        providers = [p if isinstance(p, str) else (p[0], p[1]) for p in c.providers]
        t0 = time.perf_counter()
        self.session = ort.InferenceSession(c.model, so, providers=providers)
        self.init_seconds = time.perf_counter() - t0
        self.providers_used = list(self.session.get_providers())
        dropped = [p for p in c.require_providers if p not in self.providers_used]
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
