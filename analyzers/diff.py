"""The FP32-vs-INT8 diff engine: cumulative, isolated and weight error for every quantized layer.

Per batch of samples it makes two onnxruntime calls: the float model with every compared tensor
exposed, and one model holding the QDQ model *plus* an isolated copy of each quantized layer fed the
float tensors from the first call. Every statistic is folded into streaming accumulators straight
away, so memory does not grow with the number of samples (only the compact per-sample x per-layer
SQNR matrix does, a few bytes per cell).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import onnx

from .diff_types import ClassAccuracy, ErrorMetrics, OutputResult, WeightError
from .metrics import ErrorAccumulator, Reservoir, channel_axis_for, power_ratio_db
from .onnx_utils import expose_tensors, initializer_arrays, make_session, weight_channel_axis
from .qdq_match import QDQMatch, build_isolated, dequantized_weights, match
from .task import NullTask, Task

_BATCH_BYTES = 192 * 2**20  # budget for one batch's exposed tensors per session


@dataclass
class LayerOutcome:
    """Raw figures for one layer, before ranking and hints."""

    cumulative: ErrorMetrics
    isolated: ErrorMetrics | None
    weight: WeightError | None
    clip_rate: float | None
    per_sample: np.ndarray


@dataclass
class DiffOutcome:
    """What one pass over the samples measured."""

    match: QDQMatch
    layers: dict[str, LayerOutcome]
    tensors: dict[str, ErrorMetrics]  # cumulative error of every tracked FP32 tensor (inputs of layers too)
    outputs: list[OutputResult]
    reservoirs: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    samples: int = 0
    timings: dict[str, float] = field(default_factory=dict)


def weight_errors(fp32: onnx.ModelProto, int8: onnx.ModelProto) -> dict[str, WeightError]:
    """SQNR of each quantized weight, overall and per output channel (no data needed)."""
    floats = initializer_arrays(fp32)
    deq = dequantized_weights(int8)
    nodes_by_weight = {n.input[1]: n for n in fp32.graph.node if len(n.input) > 1}
    out = {}
    for name, q in deq.items():
        w = floats.get(name)
        if w is None or w.shape != q.shape or w.dtype.kind != "f" or name not in nodes_by_weight:
            continue
        w64 = w.astype(np.float64)
        e = q - w64
        axis = weight_channel_axis(nodes_by_weight[name], w.ndim)
        ch = []
        if axis is not None and w.ndim > 1:
            sx = np.moveaxis(w64 * w64, axis, 0).reshape(w.shape[axis], -1).sum(1)
            se = np.moveaxis(e * e, axis, 0).reshape(w.shape[axis], -1).sum(1)
            ch = [min(power_ratio_db(a, b), 200.0) for a, b in zip(sx, se) if a > 0]
        out[name] = WeightError(name, power_ratio_db(float((w64 * w64).sum()), float((e * e).sum())), ch)
    return out


class DiffEngine:
    """Builds the two sessions once; ``run`` streams samples through them."""

    def __init__(self, fp32: onnx.ModelProto, int8: onnx.ModelProto, quantizable_ops: set[str],
                 excluded: set[str] | None = None, isolated: bool = True, reservoir: int = 0):
        t0 = time.perf_counter()
        self.fp32, self.int8 = fp32, int8
        self.match = match(fp32, int8, quantizable_ops, excluded)
        self._by_node = {lay.node: lay for lay in self.match.layers}
        self.reservoir_size = reservoir
        fp32_types = _value_types(fp32)
        self.fp32_inputs = [i.name for i in fp32.graph.input]
        self.model_outputs = [o.name for o in fp32.graph.output]
        qi_model, self.iso_outputs, self.iso_feeds = (build_isolated(int8, self.match, fp32_types) if isolated
                                                      else (int8, {}, []))
        # tensors compared cumulatively: every layer's output, and every activation input of a layer
        int8_tensors = _tensor_names(int8)
        self.tracked: dict[str, str] = {}
        for lay in self.match.layers:
            self.tracked[lay.fp32_tensor] = lay.int8_tensor
            for t in lay.activation_inputs:
                if t in self.match.act_quant:
                    self.tracked.setdefault(t, self.match.act_quant[t].post)
                elif t in int8_tensors:
                    self.tracked.setdefault(t, t)
        self.op_of = {}
        for lay in self.match.layers:
            self.op_of[lay.fp32_tensor] = lay.op_type
        fp32_needed = [t for t in dict.fromkeys(list(self.tracked) + self.iso_feeds + self.model_outputs)
                       if t not in self.fp32_inputs]
        self.fp32_fetch = fp32_needed
        self.fp32_session = make_session(expose_tensors(fp32, fp32_needed, fp32_types))
        int8_fetch = list(dict.fromkeys([self.tracked[t] for t in self.tracked if self.tracked[t] not in
                                         [i.name for i in int8.graph.input]] + list(self.iso_outputs.values())
                                        + self.model_outputs))
        self.int8_fetch = int8_fetch
        # optimizations off, as onnxruntime's qdq_loss_debug does: Q/DQ are simulated exactly in float
        self.qi_session = make_session(expose_tensors(qi_model, int8_fetch), optimize=False)
        self.qi_inputs = {i.name for i in self.qi_session.get_inputs()}
        self.weights = weight_errors(fp32, int8)
        self.rank = {t: len(s) for t, s in _shapes(fp32).items() if s is not None}
        self.per_sample_bytes = _per_sample_bytes(fp32, fp32_needed) * 3
        self.setup_s = time.perf_counter() - t0

    def suggested_batch(self, cap: int = 64) -> int:
        """Samples per call so one batch's exposed tensors stay within a fixed memory budget."""
        if self.per_sample_bytes <= 0:
            return cap
        return int(max(1, min(cap, _BATCH_BYTES // self.per_sample_bytes)))

    def run(self, batches: Iterable[tuple[int, int, dict]], total: int, batched: bool,
            labels: np.ndarray | None = None, task: Task | None = None) -> DiffOutcome:
        """Stream ``batches`` ((start, stop, feed)) through both sessions and accumulate everything."""
        task = task or NullTask()
        t_fp32 = t_int8 = t_stats = 0.0
        acc = {t: ErrorAccumulator(self._channel_axis(t), batched) for t in self.tracked}
        iso_acc = {n: ErrorAccumulator(self._channel_axis(self._layer(n).fp32_tensor), batched)
                   for n in self.iso_outputs}
        clip = {lay.node: [0, 0] for lay in self.match.layers if lay.act is not None}
        res = {lay.node: Reservoir(self.reservoir_size, seed=i) for i, lay in enumerate(self.match.layers)} \
            if self.reservoir_size else {}
        out_acc = {o: ErrorAccumulator(None, batched) for o in self.model_outputs}
        top1 = {o: [0, 0] for o in self.model_outputs}
        preds: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {o: [] for o in self.model_outputs}
        done = 0
        for start, stop, feed in batches:
            task.check()
            t = time.perf_counter()
            fvals = dict(zip(self.fp32_fetch, self.fp32_session.run(self.fp32_fetch, feed)))
            fvals.update({k: v for k, v in feed.items()})
            t_fp32 += time.perf_counter() - t
            t = time.perf_counter()
            qfeed = {k: v for k, v in feed.items() if k in self.qi_inputs}
            qfeed.update({"fp32::" + name: fvals[name] for name in self.iso_feeds})
            qvals = dict(zip(self.int8_fetch, self.qi_session.run(self.int8_fetch, qfeed)))
            qvals.update({k: v for k, v in feed.items()})
            t_int8 += time.perf_counter() - t
            t = time.perf_counter()
            for ft, it in self.tracked.items():
                acc[ft].update(fvals[ft], qvals[it])
            for node, iso_t in self.iso_outputs.items():
                iso_acc[node].update(fvals[self._layer(node).fp32_tensor], qvals[iso_t])
            for lay in self.match.layers:
                x = fvals[lay.fp32_tensor]
                if lay.node in clip:
                    lo, hi = lay.act.bounds()
                    c = clip[lay.node]
                    c[0] += int(np.count_nonzero(x < lo - 1e-12 * abs(lo))) + int(np.count_nonzero(x > hi + 1e-12 * abs(hi)))
                    c[1] += x.size
                if res:
                    res[lay.node].update(x, qvals[lay.int8_tensor])
            for o in self.model_outputs:
                fo, qo = fvals[o], qvals[o]
                out_acc[o].update(fo, qo)
                if fo.ndim == 2 and fo.shape[1] > 1:
                    pf, pq = fo.argmax(1), qo.argmax(1)
                    top1[o][0] += int((pf == pq).sum())
                    top1[o][1] += len(pf)
                    preds[o].append((pf, pq))
            t_stats += time.perf_counter() - t
            done = stop
            task.report(done / max(total, 1), f"analysing: sample {done}/{total}")
        layers = {}
        for lay in self.match.layers:
            a = acc[lay.fp32_tensor]
            c = clip.get(lay.node)
            layers[lay.node] = LayerOutcome(
                a.result(), iso_acc[lay.node].result() if lay.node in iso_acc else None,
                self.weights.get(lay.weight) if lay.weight else None,
                c[0] / c[1] if c and c[1] else None, a.sample_sqnr())
        outputs = [self._output_result(o, out_acc[o], top1[o], preds[o], labels) for o in self.model_outputs]
        reservoirs = {self._layer(n).fp32_tensor: (r.x, r.y) for n, r in res.items()}
        return DiffOutcome(self.match, layers, {t: a.result() for t, a in acc.items()}, outputs, reservoirs, done,
                           {"setup_s": self.setup_s, "fp32_s": t_fp32, "int8_and_isolated_s": t_int8,
                            "statistics_s": t_stats})

    def _layer(self, node: str):
        return self._by_node[node]

    def _channel_axis(self, tensor: str) -> int | None:
        return channel_axis_for(self.op_of.get(tensor, ""), self.rank.get(tensor, 0))

    @staticmethod
    def _output_result(name, acc, top1, preds, labels) -> OutputResult:
        m = acc.result()
        r = OutputResult(name, m.sqnr_db, m.cosine)
        if top1[1]:
            r.top1_agreement = top1[0] / top1[1]
            if labels is not None:
                pf = np.concatenate([p[0] for p in preds])
                pq = np.concatenate([p[1] for p in preds])
                lab = np.asarray(labels)[: len(pf)]
                r.accuracy_fp32 = float((pf == lab).mean())
                r.accuracy_int8 = float((pq == lab).mean())
                for c in np.unique(lab):
                    sel = lab == c
                    r.per_class.append(ClassAccuracy(int(c), int(sel.sum()), float((pf[sel] == c).mean()),
                                                     float((pq[sel] == c).mean())))
        return r


def _value_types(model: onnx.ModelProto) -> dict[str, int]:
    out = {}
    for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        if vi.type.HasField("tensor_type"):
            out[vi.name] = vi.type.tensor_type.elem_type
    return out


def _tensor_names(model: onnx.ModelProto) -> set[str]:
    names = {i.name for i in model.graph.input}
    for n in model.graph.node:
        names.update(n.output)
    return names


def _shapes(model: onnx.ModelProto) -> dict[str, tuple | None]:
    out = {}
    for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        t = vi.type.tensor_type
        out[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim) \
            if t.HasField("shape") else None
    return out


def _per_sample_bytes(model: onnx.ModelProto, names: list[str]) -> int:
    shapes = _shapes(model)
    total = 0
    for n in names:
        s = shapes.get(n)
        if not s:
            continue
        dims = [d for d in s[1:] if d] if len(s) > 1 else []
        total += 4 * int(math.prod(dims)) if dims else 4
    return total
