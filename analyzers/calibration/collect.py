"""One pass over calibration samples: a fixed-memory histogram per activation tensor, plus weight ranges.

The pass runs the float model once per batch with every tensor to calibrate exposed as an output and
folds each tensor into its histogram (in a worker thread, overlapping the next batch's inference), so memory
is the same for 32 or 5,000 samples.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import numpy as np
import onnx

from backends.tasks import NullTask, Task

from ..onnx_utils import expose_tensors, initializer_arrays, make_session, weight_channel_axis
from .grid import QuantSpec
from .histogram import DEFAULT_BINS, HistogramSnapshot, StreamingHistogram
from .methods import derive_range


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


def collect(model: onnx.ModelProto, tensor_names: list[str], batches: Iterable[tuple[int, int, dict]],
            total: int, task: Task | None = None, bins: int = DEFAULT_BINS) -> CalibrationData:
    """Run ``model`` over ``batches`` ((start, stop, feed) per batch) and histogram ``tensor_names``.

    ``total`` is the number of samples, for progress. Graph inputs among ``tensor_names`` are taken from
    the feeds directly.
    """
    task = task or NullTask()
    inputs = {i.name for i in model.graph.input}
    to_run = [t for t in tensor_names if t not in inputs]
    session = make_session(expose_tensors(model, to_run))
    hists = {t: StreamingHistogram(bins) for t in tensor_names}
    fed = [t for t in tensor_names if t in inputs]

    def fold(values: list[np.ndarray], feed: dict) -> None:
        for name, arr in zip(to_run, values):
            hists[name].update(arr)
        for name in fed:
            hists[name].update(feed[name])

    # One worker folds batch k into the histograms while onnxruntime runs batch k + 1: both release the GIL
    # in their inner loops, so on 2+ cores the histogram time hides behind inference. Every histogram still
    # sees its batches in order (the worker is waited for before the next batch is handed over), so the
    # result is the same as folding in the loop; at most two batches of tensors are alive at once.
    samples = 0
    pending: Future | None = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="qwb-histogram") as pool:
        try:
            for _start, stop, feed in batches:
                task.check()
                values = session.run(to_run, feed)
                if pending is not None:
                    pending.result()  # re-raises a failure of the previous batch here
                # inputs are copied: a batch source may reuse its arrays for the next batch
                pending = pool.submit(fold, values, {n: np.array(feed[n]) for n in fed})
                del values  # the worker holds the batch now; it is released when folded
                samples = stop
                task.report(stop / max(total, 1), f"calibrating: sample {stop}/{total}")
            if pending is not None:
                pending.result()
        finally:
            if pending is not None:
                pending.cancel()
                wait([pending])
    del session
    return CalibrationData({t: h.snapshot() for t, h in hists.items()}, weight_stats(model), samples)
