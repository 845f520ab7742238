"""The FP32-vs-INT8 diff engine: cumulative, isolated and weight error for every quantized layer.

Per batch of samples it makes two onnxruntime calls: the float model with every compared tensor
exposed, and one model holding the QDQ model *plus* an isolated copy of each quantized layer fed the
float tensors from the first call. Every statistic is folded into streaming accumulators straight
away, so memory does not grow with the number of samples (only the compact per-sample x per-layer
SQNR matrix does, a few bytes per cell).

Two batches are inferred at once, each in a worker thread with half the cores (onnxruntime releases the
GIL), while this thread folds the previous batch's statistics in batch order: the diff model's many small
ops leave a second intra-op thread mostly idle, a second batch does not (measured in ``_pipeline_shape``).
"""

from __future__ import annotations

import math
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import onnx
from onnx import numpy_helper

from backends.cpu import physical_cores
from backends.tasks import NullTask, Task

from . import pair_stats_native
from .diff_graph import FP32_PREFIX, build_diff_graph, per_sample_size
from .diff_types import ErrorMetrics, OutputResult, WeightError
from .metrics import ErrorAccumulator, Reservoir, channel_axis_for, channel_sqnr, power_ratio_db
from .onnx_utils import expose_tensors, initializer_arrays, make_session, tensor_size, weight_channel_axis
from .output_kinds import OutputKind, detect_kinds
from .output_metrics import OutputAccumulator
from .qdq_match import QDQMatch, dequantized_weights, match

_BATCH_BYTES = 96 * 2**20  # activations of one batch: keeps peak memory flat in N (measured, docs/benchmarks.md)


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
            ch = channel_sqnr(sx, se).db.tolist()  # NaN for dead and exact channels
        out[name] = WeightError(name, power_ratio_db(float((w64 * w64).sum()), float((e * e).sum())), ch)
    return out


class DiffEngine:
    """Builds the merged diff model once (see ``diff_graph``); ``run`` streams samples through it.

    Q/DQ run exactly as written (the ``exact`` session: no graph optimization at all): the numbers
    onnxruntime's own ``qdq_loss_debug`` gives. Fusions stay off because they change what the INT8 part
    computes (QDQ fusions: several dB on the demo; basic float fusions: up to 0.1 dB on an LSTM model).
    """

    def __init__(self, fp32: onnx.ModelProto, int8: onnx.ModelProto, quantizable_ops: set[str],
                 excluded: set[str] | None = None, isolated: bool = True, reservoir: int = 0,
                 batched: bool = True, reuse_isolated: dict[str, tuple[str, ErrorMetrics]] | None = None, fp32_key: str | None = None,
                 masked: dict[str, float] | set[str] | frozenset[str] = frozenset(),
                 expose: dict[str, int] | None = None):
        """``expose``: QDQ-model tensor -> ONNX element type, fetched as they are every batch and handed to
        ``run``'s ``on_batch`` (the deployed per-layer view compares them with the fused kernels' values).
        ``reuse_isolated``: layer -> (signature, metrics) measured earlier on the same samples; layers whose
        isolated computation is unchanged are not run again (the what-if loop changes one or two layers).
        ``fp32_key``: identifies the FP32 model so its optimised session is reused between runs.
        ``masked``: FP32 tensors holding mask values (-inf, finfo.min), compared over their ordinary values; a
        mapping gives the magnitude from which each one's values are masked (``build_diff_graph``)."""
        t0 = time.perf_counter()
        self.match = match(fp32, int8, quantizable_ops, excluded)
        self._by_node = {lay.node: lay for lay in self.match.layers}
        self.batched = batched
        self.model_outputs = [o.name for o in fp32.graph.output]
        self.fp32_model = fp32
        int8_tensors = _tensor_names(int8)
        # tensors compared cumulatively: every layer's output, and every activation input of a layer
        self.tracked: dict[str, str] = {}
        for lay in self.match.layers:
            self.tracked[lay.fp32_tensor] = lay.int8_tensor
        for lay in self.match.layers:
            for t in lay.activation_inputs:
                if t in self.match.act_quant:
                    self.tracked.setdefault(t, self.match.act_quant[t].post)
                elif t in int8_tensors:
                    self.tracked.setdefault(t, t)
        op_of = {lay.fp32_tensor: lay.op_type for lay in self.match.layers}
        shapes = _shapes(fp32)
        dims = _dim_names(fp32)
        batch_dims = {d[0] for i in fp32.graph.input if (d := dims.get(i.name))}
        ranks = {t: len(s) for t, s in shapes.items() if s is not None}
        self.channel_axes = {t: channel_axis_for(op_of.get(t, ""), ranks.get(t, 0)) for t in self.tracked}
        # time-major tensors ([T, N, C], LSTM's [T, dirs, N, H]) have no per-sample rows along axis 0
        self.not_sample_major = frozenset(t for t in self.tracked if not _sample_major(dims.get(t), batch_dims))
        sizes = {t: per_sample_size(shapes.get(t), batched) for t in self.tracked}
        # float32 pairs compared in one compiled pass per tensor instead of the graph's reductions, where built
        self.native_stats = pair_stats_native.available()
        self.graph = build_diff_graph(fp32, int8, self.match, self.tracked, ranks, self.channel_axes, batched,
                                      isolated=isolated, reservoir=reservoir,
                                      sample_sizes={t: v for t, v in sizes.items() if v},
                                      reuse_isolated={k: v[0] for k, v in (reuse_isolated or {}).items()},
                                      not_sample_major=self.not_sample_major, masked=masked,
                                      native=self.native_stats)
        self.nonnegative = _relu_outputs(fp32)
        self.clip_ranges = _clip_ranges(fp32)
        self.bounds = {lay.fp32_tensor: lay.act.bounds() for lay in self.match.layers if lay.act is not None}
        self.reused = {n: reuse_isolated[n][1] for n in self.graph.iso_reused}
        self.exposed = _expose(self.graph, expose or {})
        self.in_flight, threads = _pipeline_shape(physical_cores())
        self.session = make_session(self.graph.model, "exact", threads=threads)
        needed = list(dict.fromkeys(self.graph.fp32_feeds + self.graph.fp32_compared))
        self.fp32_fetch = [t for t in needed if t not in {i.name for i in fp32.graph.input}]
        self.fp32_session = _fp32_session(fp32, self.fp32_fetch, fp32_key, threads) if self.fp32_fetch else None
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.weights = weight_errors(fp32, int8)
        self.reservoir_size = reservoir
        # live memory per sample: a few of the largest activations per model instance (fp32, int8, isolated)
        self.per_sample_bytes = _largest_activation_bytes(fp32) * 8
        self.setup_s = time.perf_counter() - t0

    def suggested_batch(self, cap: int = 64) -> int:
        """Samples per call so one batch's live activations stay within a fixed memory budget."""
        return _batch_for(self.per_sample_bytes, cap)

    def run(self, batches: Iterable[tuple[int, int, dict]], total: int,
            labels: np.ndarray | None = None, task: Task | None = None,
            kinds: dict[str, OutputKind] | None = None, on_batch=None) -> DiffOutcome:
        """Stream ``batches`` ((start, stop, feed)) through the diff model and accumulate everything.

        ``on_batch(fp32, exposed)``: called once per batch, in batch order, with the FP32 tensors of this batch
        (name -> array) and the ``expose``d QDQ-model tensors, before they are dropped. ``batches`` is drawn up to
        ``in_flight`` batches ahead of it (an iterator that keeps per-batch state for it must queue it).
        ``kinds``: each model output's kind (default: detected from the FP32 model), which picks its figures."""
        task = task or NullTask()
        kinds = kinds or detect_kinds(self.fp32_model, labels is not None and np.asarray(labels).ndim == 1)
        g = self.graph
        major = {t: self.batched and t not in self.not_sample_major for t in g.cumulative}
        acc = {t: ErrorAccumulator(self.channel_axes[t], major[t]) for t in g.cumulative}
        iso_acc = {n: ErrorAccumulator(self.channel_axes[self._by_node[n].fp32_tensor],
                                       major[self._by_node[n].fp32_tensor]) for n in g.isolated}
        clip = {t: [0, 0] for t in g.cumulative if t in self.bounds}
        res = {t: Reservoir(self.reservoir_size, seed=i) for i, (t, p) in enumerate(g.cumulative.items())
               if p.sample_y}
        out_acc = {o: OutputAccumulator(kinds[o], self.batched) for o in self.model_outputs}
        t_run = t_stats = 0.0
        done = 0
        passes: dict[tuple[str, str], pair_stats_native.LayerStats] = {}  # compiled pairs, built on first sight

        def fold(key: tuple[str, str], part: tuple) -> None:
            xx, ee, yy, emax, emin, esum, outside, values = part
            kind, name = key
            (acc if kind == "c" else iso_acc)[name].add_partial(xx, ee, yy, emax, emin, esum, values)
            if kind == "c" and name in clip:
                clip[name][0] += outside
                clip[name][1] += values

        def compare(key: tuple[str, str], ft: str, x: np.ndarray, y: np.ndarray, p) -> None:
            ls = passes.get(key)
            if ls is None:
                bounds = self.bounds.get(ft, (-math.inf, math.inf)) if key[0] == "c" else (-math.inf, math.inf)
                ls = passes[key] = pair_stats_native.LayerStats(pair_stats_native.plain_plan(
                    p.y_scale, p.y_zero_point, None, x.ndim, self.channel_axes.get(ft), major[ft], bounds))
            if x.dtype != np.float32 or y.dtype.kind == "f" and y.dtype != np.float32:  # float16/64 models: numpy
                fold(key, pair_stats_native.numpy_pair(ls.plan, x, y) + (x.size,))
                return
            if y.shape != x.shape:
                raise ValueError(f"{'isolated ' if key[0] == 'i' else ''}INT8 tensor of {ft!r} has shape {y.shape}, "
                                 f"FP32 {x.shape}")
            job = ls.job(x, None, y)
            for part in ls.add(job, pair_stats_native.LayerStats.run(job), x.size):
                fold(key, part)

        inferred = self._inferred(batches, task)
        try:
            for start, stop, fvals, vals, waited in inferred:
                t_run += waited
                t = time.perf_counter()
                n_elem = {}
                for ft, p in g.cumulative.items():
                    x = fvals[ft]
                    n_elem[ft] = x.size
                    if p.y:  # compared here in one pass, the clipped values counted by it
                        compare(("c", ft), ft, x, vals[p.y], p)
                    else:
                        acc[ft].add_partial(vals[p.xx], vals[p.ee], vals[p.yy], vals[p.emax], vals[p.emin],
                                            vals[p.esum], x.size)
                        if ft in clip:
                            clip[ft][0] += _count_outside(x, *self.bounds[ft], ft in self.nonnegative,
                                                          self.clip_ranges.get(ft, (-math.inf, math.inf)))
                            clip[ft][1] += x.size
                    if ft in res:
                        xs = x.reshape(x.shape[0] if self.batched else 1, -1)[:, p.sample_idx]
                        res[ft].update(xs, vals[p.sample_y])
                if on_batch is not None:
                    on_batch(fvals, {t: vals[t] for t in self.exposed})
                for node, p in g.isolated.items():
                    ft = self._by_node[node].fp32_tensor
                    if p.y:
                        compare(("i", node), ft, fvals[ft], vals[p.y], p)
                    else:
                        iso_acc[node].add_partial(vals[p.xx], vals[p.ee], vals[p.yy], vals[p.emax], vals[p.emin],
                                                  vals[p.esum], n_elem[ft])
                del fvals
                for o, (fo, qo) in g.outputs.items():
                    out_acc[o].update(vals[fo], vals[qo], None if labels is None else labels[start:stop])
                del vals
                t_stats += time.perf_counter() - t
                done = stop
                task.report(done / max(total, 1), f"analysing: sample {done}/{total}")
        finally:
            inferred.close()  # a cancelled or failed run waits here for the batches still in flight
        for key, ls in passes.items():  # the last batches' sums still in the compiled buffers
            for part in ls.finish():
                fold(key, part)
        layers = {}
        for lay in self.match.layers:
            a = acc[lay.fp32_tensor]
            c = clip.get(lay.fp32_tensor)
            iso = iso_acc[lay.node].result() if lay.node in iso_acc else self.reused.get(lay.node)
            layers[lay.node] = LayerOutcome(
                a.result(), iso,
                self.weights.get(lay.weight) if lay.weight else None,
                c[0] / c[1] if c and c[1] else None,
                _per_sample(a.sample_sqnr(), done, major[lay.fp32_tensor] or not self.batched))
        outputs = [out_acc[o].result() for o in self.model_outputs]
        reservoirs = {t: (r.x, r.y) for t, r in res.items() if t in {lay.fp32_tensor for lay in self.match.layers}}
        # inference_s: what this thread waited for inference (the rest ran beside the fold): with statistics_s,
        # the run's wall time
        return DiffOutcome(self.match, layers, {t: a.result() for t, a in acc.items()}, outputs, reservoirs, done,
                           {"setup_s": self.setup_s, "inference_s": t_run, "statistics_s": t_stats})

    def _inferred(self, batches: Iterable[tuple[int, int, dict]], task: Task):
        """(start, stop, FP32 tensors, diff-model outputs, seconds waited for them) of each batch, in order.

        ``in_flight`` batches are inferred at once in worker threads: the ones after a batch run while the caller
        folds it. Batches are drawn here, in this thread, after ``task.check()``; at most ``in_flight`` are alive."""
        pending: deque = deque()  # (start, stop, future), in batch order
        source = iter(batches)
        with ThreadPoolExecutor(self.in_flight, thread_name_prefix="qwb-diff") as pool:
            more = True
            while True:
                while more and len(pending) < self.in_flight:
                    task.check()
                    nxt = next(source, None)
                    more = nxt is not None
                    if more:
                        pending.append((nxt[0], nxt[1], pool.submit(self._infer, nxt[2])))
                if not pending:
                    return
                start, stop, future = pending.popleft()
                t = time.perf_counter()
                fvals, vals = future.result()
                del future
                yield start, stop, fvals, vals, time.perf_counter() - t
                del fvals, vals  # before the next batch is drawn

    def _infer(self, feed: dict) -> tuple[dict, dict]:
        """One batch through both sessions (in a worker thread): (FP32 tensors and the feed, diff-model outputs)."""
        g = self.graph
        qfeed = {k: v for k, v in feed.items() if k in self.input_names}
        fvals = (dict(zip(self.fp32_fetch, self.fp32_session.run(self.fp32_fetch, feed)))
                 if self.fp32_session is not None else {})
        fvals.update(feed)
        qfeed.update({FP32_PREFIX + t: fvals[t] for t in g.fp32_feeds})
        return fvals, dict(zip(g.fetch, self.session.run(g.fetch, qfeed)))


def _pipeline_shape(cores: int) -> tuple[int, int]:
    """(batches inferred at once, intra-op threads of each session). Two batches with one thread each beat one
    batch with two threads on 2 cores: MobileNetV2 224 px, N = 128, both sessions: 4.5 s wall / 8.8 CPU s
    against 6.9 / 9.9 (FP32 of the next batch beside the diff model of this one: 6.3 / 9.5); bit-identical.
    One core: one batch at a time, onnxruntime's default threads."""
    if cores < 2:
        return 1, 0
    return 2, cores // 2


def _expose(graph, expose: dict[str, int]) -> list[str]:
    """Adds ``expose`` (tensor -> element type) to the diff model's outputs and fetch list; returns its names."""
    have = set(graph.fetch)
    added = [t for t in expose if t not in have]
    for t in added:
        graph.model.graph.output.append(onnx.helper.make_tensor_value_info(t, expose[t], None))
        graph.fetch.append(t)
    return list(expose)


def suggested_batch(fp32: onnx.ModelProto, cap: int = 64) -> int:
    """The batch size ``DiffEngine.suggested_batch`` picks for ``fp32``, without building the engine: an
    evaluation that must see the very batches an analysis sees (``qwb quantize``'s deployed figures) uses it."""
    return _batch_for(_largest_activation_bytes(fp32) * 8, cap)


def _batch_for(per_sample_bytes: int, cap: int) -> int:
    if per_sample_bytes <= 0:
        return cap
    return int(max(1, min(cap, _BATCH_BYTES // per_sample_bytes)))


def _relu_outputs(model: onnx.ModelProto) -> set[str]:
    """Tensors that cannot be negative (Relu outputs)."""
    return {n.output[0] for n in model.graph.node if n.op_type == "Relu"}


def _clip_ranges(model: onnx.ModelProto) -> dict[str, tuple[float, float]]:
    """Clip outputs -> the [min, max] Clip keeps them in (constant bounds only; ReLU6 exports): clip counting
    skips the pass over a tensor whose quantized range already covers that side (MobileNetV2: 35 of 65)."""
    consts = {i.name: i for i in model.graph.initializer}
    consts.update({n.output[0]: a.t for n in model.graph.node if n.op_type == "Constant"
                   for a in n.attribute if a.name == "value"})

    def bound(n: onnx.NodeProto, k: int, attr: str, default: float) -> float | None:
        if len(n.input) > k and n.input[k]:
            t = consts.get(n.input[k])
            return float(numpy_helper.to_array(t).reshape(-1)[0]) if t is not None and tensor_size(t) == 1 else None
        a = next((a for a in n.attribute if a.name == attr), None)  # opset < 11
        return a.f if a is not None else default

    out = {}
    for n in model.graph.node:
        if n.op_type == "Clip" and not n.domain:
            lo, hi = bound(n, 1, "min", -math.inf), bound(n, 2, "max", math.inf)
            if lo is not None and hi is not None:
                out[n.output[0]] = (lo, hi)
    return out


_FP32_SESSIONS: dict[tuple, object] = {}


def _fp32_session(fp32: onnx.ModelProto, fetch: list[str], key: str | None, threads: int = 0):
    """The optimised FP32 session exposing ``fetch``; the last one is kept for the next run of the same model."""
    cache_key = (key, tuple(fetch), threads) if key else None
    if cache_key is not None and cache_key in _FP32_SESSIONS:
        return _FP32_SESSIONS[cache_key]
    sess = make_session(expose_tensors(fp32, fetch), "deployed", threads=threads)
    if cache_key is not None:
        _FP32_SESSIONS.clear()
        _FP32_SESSIONS[cache_key] = sess
    return sess


def _count_outside(x: np.ndarray, lo: float, hi: float, nonnegative: bool,
                   known: tuple[float, float] = (-math.inf, math.inf)) -> int:
    """Values of ``x`` outside [lo, hi]; the extremes are checked first, as most tensors never leave the range.
    ``known``: the range the producing op guarantees (``_clip_ranges``): a side it keeps inside is not read."""
    n = 0
    if known[1] > hi and float(x.max()) > hi:
        n += int(np.count_nonzero(x > np.float32(hi)))
    if not nonnegative and known[0] < lo and float(x.min()) < lo:
        n += int(np.count_nonzero(x < np.float32(lo)))
    return n


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


def _per_sample(sqnr: np.ndarray, samples: int, sample_major: bool) -> np.ndarray:
    """Per-sample SQNR of a layer, or NaN where the tensor has no per-sample rows (the heatmap leaves a gap)."""
    if sample_major and len(sqnr) == samples:
        return sqnr
    return np.full(samples, np.nan, np.float32)


def _dim_names(model: onnx.ModelProto) -> dict[str, tuple]:
    """Tensor -> its dims as the model declares them: the symbolic name, else the fixed size, else None."""
    out = {}
    for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        t = vi.type.tensor_type
        if t.HasField("shape"):
            out[vi.name] = tuple(d.dim_param or (d.dim_value if d.HasField("dim_value") else None)
                                 for d in t.shape.dim)
    return out


def _sample_major(dims: tuple | None, batch_dims: set) -> bool:
    """Whether axis 0 of a tensor is the sample axis. False only when the declared shapes say otherwise:
    the inputs' batch dim is named and the tensor's first dim is another name (``T``) or a fixed size;
    unknown dims (``unk__3``, missing shapes) keep the sample-major default."""
    named = {d for d in batch_dims if isinstance(d, str)}
    if not dims or not named or dims[0] is None or dims[0] in named:
        return True
    return isinstance(dims[0], str) and dims[0].startswith("unk__")


def _shapes(model: onnx.ModelProto) -> dict[str, tuple | None]:
    out = {}
    for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        t = vi.type.tensor_type
        out[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim) \
            if t.HasField("shape") else None
    return out


def _largest_activation_bytes(model: onnx.ModelProto) -> int:
    """Bytes of the largest activation of one sample (static dims beyond the batch axis)."""
    largest = 0
    for s in _shapes(model).values():
        if s and len(s) > 1:
            largest = max(largest, 4 * int(math.prod(d for d in s[1:] if d)))
    return largest
