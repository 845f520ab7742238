"""FP32 vs INT8 at the model outputs as deployed (task accuracy with labels): the numbers users compare first."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnx

from analyzers.diff import suggested_batch
from analyzers.diff_types import OutputResult
from analyzers.output_kinds import OutputKind
from analyzers.output_metrics import OutputAccumulator
from backends.runner import SessionConfig, build_session
from backends.tasks import NullTask, Task

from .data import DataSource

_FP32: dict[str, object] = {}  # prepared-model path -> its deployed session (paths are content-addressed)


def _fp32_session(path: str, entries: dict | None = None):
    """The deployed FP32 session of a prepared model, kept for the next run: the what-if loop re-runs the same
    FP32 model with a new INT8 one each time, so only the INT8 session needs building again."""
    key = path + repr(sorted((entries or {}).items()))
    if key not in _FP32:
        _FP32.clear()
        _FP32[key] = build_session(SessionConfig.for_purpose("deployed", path, config_entries=dict(entries or {})))
    return _FP32[key]


class DeployedOutputs:
    """FP32 vs INT8 at every output with both models as deployed: plain onnxruntime sessions with full
    optimizations on this machine (the INT8 one runs onnxruntime's fused integer kernels). Fed one batch at a
    time by whoever streams the data (``update``), so ``qwb analyze`` folds it into the diff engine's own pass
    and ``qwb quantize`` into a pass of its own, over the same batches: both print the same figures."""

    def __init__(self, fp32_path: str | Path, int8_path: str | Path, kinds: dict[str, OutputKind],
                 batched: bool = True, session_options: dict | None = None, int8_run=None):
        """``session_options``: onnxruntime config entries of the deployed sessions (as the user deploys);
        ``int8_run(feed, names)``: runs the INT8 model as deployed instead of a session of its own (the
        per-layer view's tapped graph, which computes the same outputs)."""
        self.fp32 = _fp32_session(str(fp32_path), session_options)
        self.int8_run = int8_run
        self.int8 = None if int8_run else build_session(SessionConfig.for_purpose(
            "deployed", str(int8_path), config_entries=dict(session_options or {})))
        self.names = [o.name for o in self.fp32.get_outputs()]
        self.inputs = {i.name for i in self.fp32.get_inputs()}
        self.acc = {n: OutputAccumulator(kinds[n], batched) for n in self.names}
        self.seconds = 0.0  # inference time of both sessions

    def update(self, feed: dict, labels: np.ndarray | None) -> None:
        """Fold in one batch (``labels``: this batch's labels or None)."""
        t = time.perf_counter()
        feed = {k: v for k, v in feed.items() if k in self.inputs}
        xs = self.fp32.run(self.names, feed)
        ys = self.int8_run(feed, self.names) if self.int8_run else self.int8.run(self.names, feed)
        self.seconds += time.perf_counter() - t
        for n, x, y in zip(self.names, xs, ys):
            self.acc[n].update(x, y, labels)

    def results(self) -> list[OutputResult]:
        out = [self.acc[n].result() for n in self.names]
        for o in out:
            o.kernels = "deployed"
        return out


def evaluation_batching(model: onnx.ModelProto, data: DataSource) -> tuple[int, bool]:
    """(batch size, whether axis 0 of every input is a batch of samples): what ``qwb analyze`` streams, so an
    evaluation outside it sees the very same batches."""
    return suggested_batch(model), all(lay.has_batch_axis for lay in data.layouts.values())


def output_agreement(fp32_path: str | Path, int8_path: str | Path, data: DataSource, kinds: dict[str, OutputKind],
                     task: Task | None = None, model: onnx.ModelProto | None = None,
                     session_options: dict | None = None) -> list[OutputResult]:
    """FP32 vs INT8 at every output, by its kind, as deployed (``DeployedOutputs``): what `qwb quantize`
    prints. ``model``: the FP32 model (read from ``fp32_path`` when not given), which sets the batches.
    Streams: memory is flat in samples."""
    task = task or NullTask()
    batch, batched = evaluation_batching(model if model is not None else onnx.load(str(fp32_path)), data)
    dep = DeployedOutputs(fp32_path, int8_path, kinds, batched, session_options)
    labels = data.labels
    for start, stop, feed in data.batches(batch_size=batch):
        task.check()
        dep.update(feed, None if labels is None else labels[start:stop])
        task.report(stop / len(data), "comparing FP32 and INT8 outputs")
    return dep.results()
