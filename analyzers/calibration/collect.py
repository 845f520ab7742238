"""One pass over calibration samples: a fixed-memory histogram per activation tensor, plus weight ranges.

The pass runs the float model once per batch, reading every tensor to calibrate where onnxruntime's optimized
graph holds it (``taps``; exposed as an output where it cannot), and folds each tensor into its histogram (in
worker threads, one per core, overlapping the next batch's inference), so memory is the same for 32 or 5,000
samples.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import numpy as np
import onnx

from backends.tasks import NullTask, Task

from ..background import numpy_threads_safe
from ..onnx_utils import expose_tensors, initializer_arrays, make_session, weight_channel_axis
from .grid import QuantSpec
from .histogram import DEFAULT_BINS, HistogramSnapshot, StreamingHistogram
from .methods import derive_range
from .taps import CalibrationTaps, TapsUnavailable

MAX_FOLD_WORKERS = 8


@dataclass
class WeightStats:
    """Ranges of one weight tensor, overall and per output channel."""

    name: str
    node: str
    axis: int | None
    min: float
    max: float
    channel_min: np.ndarray
    channel_max: np.ndarray

    @property
    def channel_absmax(self) -> np.ndarray:
        return np.maximum(np.abs(self.channel_min), np.abs(self.channel_max))

    @property
    def channel_spread(self) -> float:
        """Largest / median per-channel |range|: large means per-tensor quantization wastes most channels."""
        am = self.channel_absmax
        if am.size < 2:
            return 1.0
        med = float(np.median(am))
        return float(am.max() / med) if med > 0 else float("inf")


@dataclass
class CalibrationData:
    """Histograms of activation tensors and weight ranges: everything range derivation needs."""

    histograms: dict[str, HistogramSnapshot]
    weights: dict[str, WeightStats] = field(default_factory=dict)
    samples: int = 0
    # tensor -> the magnitude from which its values counted as mask values (``analyzers.mask_constants``): what
    # the histograms were collected with, for the mask path; empty: MASK_MAGNITUDE everywhere
    mask_limits: dict[str, float] = field(default_factory=dict)
    # tensors left out of the pass: tensor -> (the Relu/Clip node it alone feeds, that node's output), whose range
    # onnxruntime gives it while that node is quantized (``workbench.calibration_cache.fused_away``)
    fused_away: dict[str, tuple[str, str]] = field(default_factory=dict)
    _ranges: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def derived_range(self, tensor: str, method: str, spec: QuantSpec, percentile: float = 99.999) -> tuple[float, float]:
        """``derive_range`` for one tensor, remembered, so an Entropy/MSE search runs once per tensor and grid
        and a percentile change re-derives only what changed."""
        key = (tensor, method, spec, float(percentile) if method == "percentile" else None)
        r = self._ranges.get(key)
        if r is None:
            r = self._ranges[key] = derive_range(self.histograms[tensor], method, spec, percentile)
        return r


def weight_stats(model: onnx.ModelProto, weighted_ops=("Conv", "ConvTranspose", "Gemm", "MatMul")) -> dict[str, WeightStats]:
    """Per-output-channel ranges of the float weights of every weighted node."""
    inits = initializer_arrays(model)
    out = {}
    for node in model.graph.node:
        if node.op_type not in weighted_ops or len(node.input) < 2 or node.input[1] not in inits:
            continue
        w = inits[node.input[1]]
        if w.dtype.kind != "f" or w.size == 0:
            continue
        axis = weight_channel_axis(node, w.ndim)
        if axis is None:
            cmin = np.array([w.min()])
            cmax = np.array([w.max()])
        else:
            moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
            cmin, cmax = moved.min(axis=1), moved.max(axis=1)
        out[node.input[1]] = WeightStats(node.input[1], node.name, axis, float(w.min()), float(w.max()),
                                         cmin.astype(np.float64), cmax.astype(np.float64))
    return out


def fold_workers(tensors: int) -> int:
    """Threads folding histograms: one per CPU this process may use, at most one per tensor and at most
    ``MAX_FOLD_WORKERS`` (the compiled fold releases the GIL for the whole tensor, but threads beyond the cores only
    compete with onnxruntime's; the numpy fallback takes the GIL back at every call).
    One where numpy may not run in two threads (``numpy_threads_safe``: under ``scripts/emulate-x86-cpu``)."""
    if not numpy_threads_safe():
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, tensors, MAX_FOLD_WORKERS))


def split_by_size(sizes: dict[str, int], parts: int) -> list[list[str]]:
    """Names grouped into at most ``parts`` groups of near-equal total size (largest first onto the lightest
    group, which is within 4/3 of the best split); each group keeps the names' original order."""
    groups: list[list[str]] = [[] for _ in range(max(1, parts))]
    load = [0] * len(groups)
    for name in sorted(sizes, key=lambda n: -sizes[n]):  # stable: equal sizes keep their order
        k = load.index(min(load))
        groups[k].append(name)
        load[k] += sizes[name]
    order = {n: i for i, n in enumerate(sizes)}
    return [sorted(g, key=order.__getitem__) for g in groups if g]


def collect(model: onnx.ModelProto, tensor_names: list[str], batches: Iterable[tuple[int, int, dict]],
            total: int, task: Task | None = None, bins: int = DEFAULT_BINS,
            workers: int | None = None, mask_limits: dict[str, float] | None = None) -> CalibrationData:
    """Run ``model`` over ``batches`` ((start, stop, feed) per batch) and histogram ``tensor_names``.

    ``total`` is the number of samples, for progress. Graph inputs among ``tensor_names`` are taken from
    the feeds directly. ``workers`` threads fold the histograms (default ``fold_workers``). ``mask_limits``: tensor ->
    the magnitude from which its values are mask values (``analyzers.mask_constants``; default ``MASK_MAGNITUDE``).
    """
    task = task or NullTask()
    with tempfile.TemporaryDirectory(prefix="qwb-calib-") as folder:
        return _collect(model, tensor_names, batches, total, task, bins, workers, mask_limits, folder)


class _Exposed:
    """Every tensor exposed as an output of ``model`` (the fallback of ``taps.CalibrationTaps``)."""

    def __init__(self, model: onnx.ModelProto, tensors: list[str]):
        self.tensors = list(tensors)
        self.session = make_session(expose_tensors(model, self.tensors))

    def read(self, feed: dict) -> dict[str, np.ndarray]:
        return dict(zip(self.tensors, self.session.run(self.tensors, feed)))


def _reader(model: onnx.ModelProto, tensors: list[str], folder: str):
    """Reads the tensors from onnxruntime's optimized graph (``taps``), or exposed where it cannot."""
    if not tensors:
        return _Exposed(model, tensors)
    try:
        return CalibrationTaps(model, tensors, folder)
    except TapsUnavailable:
        return _Exposed(model, tensors)


def _collect(model, tensor_names, batches, total, task, bins, workers, mask_limits, folder) -> CalibrationData:
    inputs = {i.name for i in model.graph.input}
    to_run = [t for t in tensor_names if t not in inputs]
    reader = _reader(model, to_run, folder)
    hists = {t: StreamingHistogram(bins, (mask_limits or {}).get(t)) for t in tensor_names}
    fed = [t for t in tensor_names if t in inputs]
    workers = workers or fold_workers(len(hists))
    stop_folding = threading.Event()

    def fold(names: list[str], arrays: dict[str, np.ndarray]) -> None:
        for name in names:
            if stop_folding.is_set():  # another group failed: the histograms are being thrown away
                return
            hists[name].update(arrays[name])

    def finish(futures: list[Future]) -> None:
        """Wait for every group of the batch (none may still touch a histogram), then raise the first failure."""
        wait(futures)
        for f in futures:
            if not f.cancelled() and f.exception() is not None:
                raise f.exception()

    # The tensors are split over ``workers`` threads by size, each tensor always on the same thread, and they fold
    # batch k while onnxruntime runs batch k + 1: the compiled fold (histogram._histfold) and onnxruntime release
    # the GIL, so the folding spreads over the cores and hides the inference (2-core VM, otherwise idle: two
    # threads folded a 224-px MobileNetV2's activations at 0.55 ns/value of wall time, one at 1.03-1.06; with other
    # work on the machine, no faster than one). The numpy fallback takes the GIL back at every call, which limits
    # its gain (2.5-2.9 ns/value on two threads, 3.7-4.1 on one). A batch is handed over only once
    # every group has folded the one before, so each histogram sees its batches in order (the result equals
    # folding in the loop) and at most two batches of tensors are alive.
    samples = 0
    groups: list[list[str]] | None = None
    pending: list[Future] = []
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="qwb-histogram") as pool:
        try:
            for _start, stop, feed in batches:
                task.check()
                try:
                    arrays = reader.read(feed)
                except TapsUnavailable:  # a block size the padding does not settle: exposed from here on
                    reader = _Exposed(model, to_run)
                    arrays = reader.read(feed)
                # inputs are copied: a batch source may reuse its arrays for the next batch
                arrays.update({n: np.array(feed[n]) for n in fed})
                finish(pending)  # re-raises a failure of the previous batch here
                if groups is None:  # sizes of the first batch; later batches keep the split (and the order)
                    groups = split_by_size({t: int(arrays[t].size) for t in tensor_names}, workers)
                pending = [pool.submit(fold, g, arrays) for g in groups]
                del arrays  # the workers hold the batch now; it is released when folded
                samples = stop
                task.report(stop / max(total, 1), f"calibrating: sample {stop}/{total}")
            finish(pending)
        finally:
            stop_folding.set()  # a no-op once everything is folded; on failure or cancel the rest stop early
            for f in pending:
                f.cancel()
            wait(pending)
    del reader
    return CalibrationData({t: h.snapshot() for t, h in hists.items()}, weight_stats(model), samples,
                           dict(mask_limits or {}))
