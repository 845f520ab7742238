"""Deployed-mode analysis without the exact simulation: each layer's error as onnxruntime's fused kernels compute it.

With ``--kernels deployed`` the user asks for what ships; running the exact diff engine beside the deployed
pass for the per-layer figures cost 3.5-4.8x the plain FP32 + INT8 inference floor (docs/benchmarks.md). Per
batch this runs three sessions instead: the FP32 model as the plain session optimizes it, with the layer tensors
it already computes fetched (``fp32_taps``: NCHWc blocks, a fused residual Add's Conv as out - sum, a tensor
fusion removed re-run in float; where a layer tensor is in none of these forms, the source tensors are exposed and
a plain session runs beside for the outputs), the deployed INT8 graph with every mappable layer's integers fetched
from its kernels (``DeployedLayerTaps``), and the statistics of each layer's integers against FP32: one compiled
pass per layer (``pair_stats_native``) where the extension is built, else a small onnxruntime graph that
dequantizes them into the FP32 tensor's layout and reduces (the diff engine's own reductions,
``diff_graph.pair_stats``); numpy folds a few KB per batch and memory stays flat in N. The statistics of one
batch run in a worker thread while the sessions run the next. What needs the exact simulation is not computed and stays None: isolated error, the kernel gap
(deployed vs exact), the share of values off by >= 1 LSB. ``run`` has ``DiffEngine.run``'s signature and
returns a ``DiffOutcome`` whose outputs are labelled ``deployed``.
"""

from __future__ import annotations

from collections import deque

import math
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from backends.cpuinfo import runtime_flags
from backends.runner import SessionConfig, build_session
from backends.tasks import NullTask, Task

from . import pair_stats_native
from .background import alongside
from .deployed_layers import DeployedLayerTaps
from .diff import (DiffOutcome, LayerOutcome, _batch_for, _count_outside, _dim_names, _largest_activation_bytes,
                   _per_sample, _relu_outputs, _sample_major, _shapes, weight_errors)
from .diff_graph import PairOutputs, StatsBuilder, pair_stats
from .diff_types import ErrorMetrics
from .fp32_taps import (Fp32Source, OptimizedFp32, block_from_padding, block_sizes, blocked, count_outside_blocked,
                        mlas_block_size, to_source)
from .metrics import ErrorAccumulator, channel_axis_for
from .output_kinds import OutputKind, detect_kinds
from .output_metrics import OutputAccumulator
from .qdq_match import QDQMatch

# DequantizeLinear of 16-bit integers needs opset 21; the reductions take axes as inputs from opset 18
_STATS_OPSET = 21
_NP_QTYPE = {TensorProto.UINT8: np.uint8, TensorProto.INT8: np.int8, TensorProto.UINT16: np.uint16,
             TensorProto.INT16: np.int16}

#: what deployed mode leaves out, in the words JSON notes, console, report and GUI use
NOT_COMPUTED = ("isolated error, the kernel gap (deployed vs exact) and the share of values >= 1 LSB off need the "
                "exact Q/DQ simulation, which --kernels deployed skips: they are null (run --kernels both for them)")


def missing_metrics() -> ErrorMetrics:
    """The figures of a layer whose quantized output does not survive onnxruntime's fusion: all NaN (JSON null)."""
    return ErrorMetrics(math.nan, None, None, math.nan, math.nan, math.nan, math.nan)


class DeployedEngine:
    """The per-layer figures of ``--kernels deployed``: FP32 against the deployed kernels' own integers.

    Built like ``DiffEngine`` (same ``match``, batches, per-sample rows, clip rate, weight error), so the
    analysis assembles, ranks and hints its result the same way; ``cumulative`` then means *as deployed*."""

    #: statistics of batch k in a worker thread while the sessions run batch k+1 (onnxruntime releases the GIL)
    overlap = True
    #: intra-op threads of the statistics session: one, the worker thread itself, beside the sessions' threads
    #: (on the 2-core VM at load 3-5, CPU seconds were the same within noise for 1 or 2 and with no overlap;
    #: with one the statistics' CPU is the worker thread's own, ``deployed_stats_cpu_s``)
    stats_threads = 1

    def __init__(self, fp32: onnx.ModelProto, m: QDQMatch, int8: onnx.ModelProto, taps: DeployedLayerTaps,
                 batched: bool = True, config_entries: dict | None = None):
        """``taps``: the deployed graph with each layer's integers (owned by the caller, who closes it);
        ``config_entries``: onnxruntime session config of the deployed sessions (as the user deploys)."""
        t0 = time.perf_counter()
        weights = alongside(weight_errors, fp32, int8)  # numpy beside the session builds
        self.match, self.taps, self.batched = m, taps, batched
        self.fp32_model = fp32
        self.model_outputs = [o.name for o in fp32.graph.output]
        shapes, dims = _shapes(fp32), _dim_names(fp32)
        batch_dims = {d[0] for i in fp32.graph.input if (d := dims.get(i.name))}
        op_of = {lay.fp32_tensor: lay.op_type for lay in m.layers}
        self.channel_axes = {}
        self.sample_major = {}
        for t in taps.taps.values():
            rank = len(shapes.get(t.fp32_tensor) or ())
            self.channel_axes[t.fp32_tensor] = channel_axis_for(op_of.get(t.fp32_tensor, ""), rank)
            self.sample_major[t.fp32_tensor] = batched and _sample_major(dims.get(t.fp32_tensor), batch_dims)
        self.ranks = {t: len(s) for t, s in shapes.items() if s is not None}
        inputs = {i.name for i in fp32.graph.input}
        layer_tensors = [t.fp32_tensor for t in taps.taps.values() if t.fp32_tensor not in inputs]
        self.fp32_fetch = list(dict.fromkeys(self.model_outputs + layer_tensors))
        entries = dict(config_entries or {})
        self._dir = tempfile.TemporaryDirectory(prefix="qwb-fp32-")
        # the FP32 model runs once: layer tensors from the plain session's own optimized graph (``fp32_taps``)
        self.fp32_sources: dict[str, Fp32Source] = {}
        self._opt: OptimizedFp32 | None = None  # for the layer tensors fusion removed (re-run in float)
        self._recompute = None  # (session, its inputs) once built on the first batch
        self.fp32_unmapped: list[str] = []
        opt = None
        try:
            opt = OptimizedFp32(fp32, layer_tensors, entries, self._dir.name)
        except Exception as e:  # noqa: BLE001 - exposing the source tensors below is correct, only slower
            self.fp32_unmapped = [f"{type(e).__name__}: {str(e)[:200]}"]
        if opt is not None and opt.session is not None:
            self.fp32_session, self._fp32_plain = opt.session, opt.plain
            self.fp32_fetch, self.fp32_sources = opt.fetch, opt.sources
            self._opt = opt
        else:  # some layer tensor is not in the optimized graph: expose the source tensors (blocks fusions)
            self.fp32_unmapped = self.fp32_unmapped or (opt.unmapped if opt is not None else [])
            exposed = onnx.ModelProto()
            exposed.CopyFrom(fp32)
            have = {o.name for o in exposed.graph.output}
            types = {vi.name: vi.type.tensor_type.elem_type for vi in
                     list(fp32.graph.value_info) + list(fp32.graph.input) + list(fp32.graph.output)}
            for t in self.fp32_fetch:
                if t not in have:
                    exposed.graph.output.append(helper.make_tensor_value_info(t, types.get(t, TensorProto.FLOAT),
                                                                              None))
            cfg = SessionConfig.for_purpose("deployed", config_entries=entries, shared_arena=True)
            self.fp32_session = build_session(cfg, exposed.SerializeToString())
            # the plain FP32 session, for the outputs' check on the first batch (exposing tensors may block a fusion)
            self._fp32_plain = opt.plain if opt is not None else build_session(cfg, fp32.SerializeToString())
        self.fp32_identical: bool | None = None
        self.fp32_inputs = {i.name for i in self.fp32_session.get_inputs()}
        self.nonnegative = _relu_outputs(fp32) | _clipped_at_zero(fp32)
        self.bounds = {lay.fp32_tensor: lay.act.bounds() for lay in m.layers if lay.act is not None}
        self.weights = weights()
        self.per_sample_bytes = _largest_activation_bytes(fp32) * 8
        self.stats = None  # the statistics session, built on the first batch once each tap's layout is known
        # the statistics in one compiled pass per layer where the extension is built (``pair_stats_native``), else
        # the onnxruntime graph; layer -> (its LayerStats, FP32 tensor, tensor subtracted from it or None, deployed
        # tensor)
        self.native_stats = pair_stats_native.available()
        self._plans: dict[str, tuple] = {}
        self._clip_from: dict[str, str] = {}  # FP32 tensor -> the layer whose compiled pass counts its clipped values
        self._stats_fetch: dict[str, tuple[str, ...]] = {}  # layer -> its 6 statistics outputs
        self._stats_feed: dict[str, dict] = {}  # layer -> {statistics input: fetched FP32 tensor (None: integers)}
        # layer -> (source values, fetched values: the blocked layout pads channels, the fetched tensor)
        self._stats_count: dict[str, tuple[int, int, str]] = {}
        self.reused: dict = {}  # no isolated figures to reuse (DiffEngine's attribute)
        self._stats_built = False
        self._blocks: dict[str, int] = {}  # fetched NCHWc tensor -> its block size (picked on the first batch)
        self._block: int | None = None  # MLAS's NCHWc block size, once a layer showed it
        self._q_views: dict[str, int] = {}  # deployed integers fed viewed as [N, H, W, C/B, B] -> B
        self.stats_error: str | None = None  # why the statistics graph could not run, if it could not
        self.recompute_error: str | None = None  # why layer tensors fusion removed could not be re-run
        self.setup_s = time.perf_counter() - t0

    def suggested_batch(self, cap: int = 64) -> int:
        """The diff engine's batch for this model: ``qwb quantize`` evaluates on the very same batches."""
        return _batch_for(self.per_sample_bytes, cap)

    def _build_stats(self, fvals: dict, ints: dict) -> None:
        """The statistics graph of every layer whose deployed integers fit its FP32 tensor in some layout.

        The layout is picked on this batch against FP32 quantized in numpy with the layer's own scale (a layout
        mix-up moves most values far more than any kernel does); the graph moves the integers into the FP32 tensor's
        layout (NCHW, or the NCHWc blocks of the optimized FP32 graph: 1 byte moved per value instead of 4)."""
        b = StatsBuilder(_STATS_OPSET)
        graph_inputs = {}
        again = self._opt.recompute if self._opt is not None else {}
        if self._block is None:  # exact where the blocked tensors' padding settles it (a picked one can be fooled)
            self._block = block_from_padding(
                [(x.shape[1], src.channels) for src in self.fp32_sources.values()
                 if src.channels is not None and (x := fvals.get(src.tensor)) is not None and x.ndim == 4],
                mlas_block_size(runtime_flags()))
        # layers whose tensor fusion removed go last: they are re-run from tensors whose NCHWc blocks are known then
        for k, (node, t) in enumerate(sorted(self.taps.taps.items(), key=lambda kv: kv[1].fp32_tensor in again)):
            ft = t.fp32_tensor
            if ft in again and self._recompute is None:
                try:
                    self._recompute = self._opt.recompute_session(self._blocks_of(again, fvals)) or (None, [])
                    fvals.update(self._run_recompute(fvals))
                except Exception as e:  # noqa: BLE001 - those layers show no figures; the note says why
                    self._recompute = (None, [])
                    self.recompute_error = f"{type(e).__name__}: {str(e)[:200]}"
            src = self.fp32_sources.get(ft, Fp32Source(ft))
            d, raw = ints.get(t.deployed_tensor), fvals.get(src.tensor)
            minus = fvals.get(src.minus) if src.minus else None
            if d is None or raw is None or raw.dtype != np.float32:  # float16/64 models: no figures (said in the note)
                continue
            block = None
            if src.channels is not None:  # NCHWc: the block size is MLAS's, read off this batch
                block = self._pick_block(t, d, raw, src, minus)
                if block is None:
                    continue
            x = to_source(raw, src, block, minus)
            ref = _quantize(x, t.scale, t.zero_point, t.qtype)
            perm = self.taps.layout_for(node, t, d, ref)  # False: no layout fits
            if perm is False:
                continue
            blocked = src.channels is not None
            if blocked and (x.ndim != 4 or self.channel_axes.get(ft) != 1):
                continue
            self._stats_count[node] = ((src.channels, raw.shape[1]) if blocked else (1, 1)) + (src.tensor,)
            if blocked:
                self._blocks.update({n: block for n in (src.tensor, src.minus) if n})
            if self.native_stats:  # one compiled pass per layer: the plan of its views, no graph nodes
                sm, bounds = self.sample_major.get(ft, False), self.bounds.get(ft, (-math.inf, math.inf))
                plan = (pair_stats_native.blocked_plan(t.scale, t.zero_point, perm, src.channels, block, sm, bounds)
                        if blocked else
                        pair_stats_native.plain_plan(t.scale, t.zero_point, perm, x.ndim, self.channel_axes.get(ft), sm,
                                                     bounds))
                if ft in self.bounds:  # the pass counts the clipped values too: no numpy pass for them
                    self._clip_from.setdefault(ft, node)
                self._plans[node] = (pair_stats_native.LayerStats(plan), src.tensor, src.minus, t.deployed_tensor)
                continue
            feed = {f"x{k}": src.tensor, f"q{k}": None}
            graph_inputs[f"x{k}"] = helper.make_tensor_value_info(f"x{k}", TensorProto.FLOAT, None)
            graph_inputs[f"q{k}"] = helper.make_tensor_value_info(f"q{k}", t.qtype, None)
            xi = f"x{k}"
            if src.minus:
                feed[f"m{k}"] = src.minus
                graph_inputs[f"m{k}"] = helper.make_tensor_value_info(f"m{k}", TensorProto.FLOAT, None)
                xi = b.node("Sub", [xi, f"m{k}"])
            scale = b.const(np.float32(t.scale), np.float32)
            zp = b.const(np.asarray(t.zero_point, _NP_QTYPE[t.qtype]), _NP_QTYPE[t.qtype])
            if blocked:  # the integers into the FP32 tensor's NCHWc blocks: cheaper on 1 byte than on 4
                q, view = _blocked_integers(b, f"q{k}", perm, src.channels, block, zp)
                if view:
                    self._q_views[t.deployed_tensor] = block
                y = b.node("DequantizeLinear", [q, scale, zp])
                p = _blocked_stats(b, xi, y, src.channels, raw.shape[1],
                                   self.sample_major.get(ft, False))
            else:
                q = f"q{k}" if perm is None else b.node("Transpose", [f"q{k}"], perm=[int(i) for i in np.argsort(perm)])
                y = b.node("DequantizeLinear", [q, scale, zp])
                p = pair_stats(b, xi, y, x.ndim, self.channel_axes.get(ft), self.sample_major.get(ft, False))
            self._stats_fetch[node] = (p.xx, p.ee, p.yy, p.emax, p.emin, p.esum)
            self._stats_feed[node] = feed
        graph_inputs = list(graph_inputs.values())
        if not self._stats_fetch or self.native_stats:
            return
        outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None)
                for o in dict.fromkeys(o for f in self._stats_fetch.values() for o in f)]
        g = helper.make_graph(b.nodes, "deployed_stats", graph_inputs, outs, b.inits)
        model = helper.make_model(g, opset_imports=[helper.make_opsetid("", _STATS_OPSET)])
        model.ir_version = 10
        try:
            self.stats = build_session(SessionConfig.for_purpose("exact", threads=self.stats_threads, shared_arena=True),
                                       model.SerializeToString())
        except Exception as e:  # noqa: BLE001 - the outputs stand without the layer figures; the note says why
            self.stats_error = f"{type(e).__name__}: {str(e)[:200]}"
            self._stats_fetch.clear()
            self._stats_feed.clear()

    def run(self, batches: Iterable[tuple[int, int, dict]], total: int, labels: np.ndarray | None = None,
            task: Task | None = None, kinds: dict[str, OutputKind] | None = None, on_batch=None) -> DiffOutcome:
        """Stream ``batches`` through the deployed pass; ``on_batch`` is accepted for ``DiffEngine``'s signature
        and never called (there is no exact simulation to hand over)."""
        task = task or NullTask()
        kinds = kinds or detect_kinds(self.fp32_model, labels is not None and np.asarray(labels).ndim == 1)
        acc = {node: ErrorAccumulator(self.channel_axes[t.fp32_tensor], self.sample_major[t.fp32_tensor])
               for node, t in self.taps.taps.items()}
        clip = {t.fp32_tensor: [0, 0] for t in self.taps.taps.values() if t.fp32_tensor in self.bounds}
        out_acc = {o: OutputAccumulator(kinds[o], self.batched) for o in self.model_outputs}
        clock = {"fp32": 0.0, "int8": 0.0, "stats": 0.0, "fold": 0.0, "fp32_cpu": 0.0, "int8_cpu": 0.0,
                 "stats_cpu": 0.0}
        done, pending = 0, None
        cpu0 = time.process_time()  # per phase: process CPU (all threads), so they include the overlapped statistics
        # the statistics session of batch k runs in a worker thread while this thread folds batch k's clip counts and
        # outputs and runs the sessions of batch k+1 (onnxruntime releases the GIL); one batch in flight at most, so
        # memory stays at two batches. The worker runs onnxruntime only: numpy stays on this thread (numpy in a
        # second thread crashed under QEMU's x86 emulation, which CI runs the ``kernels`` tests in)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="qwb-deployed-stats") as pool:
            for start, stop, feed in batches:
                task.check()
                t, c = time.perf_counter(), time.process_time()
                fvals = self._fp32_run(feed)
                clock["fp32"] += time.perf_counter() - t
                clock["fp32_cpu"] += time.process_time() - c
                t, c = time.perf_counter(), time.process_time()
                ys = self.taps.run(feed, self.model_outputs)
                ints = self.taps.batch_integers()
                clock["int8"] += time.perf_counter() - t
                clock["int8_cpu"] += time.process_time() - c
                t = time.perf_counter()
                sfeed, sizes = self._prepare(fvals, ints)
                clock["fold"] += time.perf_counter() - t
                if pending is not None:
                    self._fold_stats(self._finish(pending[0]), pending[1], acc, clip, pending[2])
                    pending = None
                if sfeed is not None:
                    if self.overlap:
                        pending = (self._start(pool, sfeed, clock), sizes, sfeed)
                    else:
                        self._fold_stats(self._stats_run(sfeed, clock, pool), sizes, acc, clip, sfeed)
                t = time.perf_counter()
                for ft, n in clip.items():
                    if ft not in self._clip_from:
                        self._count_clipped(ft, fvals, n)
                for o, y in zip(self.model_outputs, ys):
                    out_acc[o].update(fvals[o], y, None if labels is None else labels[start:stop])
                clock["fold"] += time.perf_counter() - t
                del fvals, ints, ys, sfeed
                done = stop
                task.report(done / max(total, 1), f"analysing (deployed kernels): sample {done}/{total}")
            if pending is not None:
                self._fold_stats(self._finish(pending[0]), pending[1], acc, clip, pending[2])
            for node, (ls, *_) in self._plans.items():  # the last batches' sums still in the compiled buffers
                for part in ls.finish():
                    self._fold_native(node, part, acc, clip)
        loop_cpu = time.process_time() - cpu0
        layers = {}
        measured = self._measured()
        for lay in self.match.layers:
            c = clip.get(lay.fp32_tensor)
            a = acc.get(lay.node) if lay.node in measured else None
            cum = a.result() if a is not None and a.count else missing_metrics()
            per = (_per_sample(a.sample_sqnr(), done, self.sample_major[lay.fp32_tensor] or not self.batched)
                   if a is not None and a.count else np.full(done, np.nan, np.float32))
            layers[lay.node] = LayerOutcome(cum, None, self.weights.get(lay.weight) if lay.weight else None,
                                            c[0] / c[1] if c and c[1] else None, per)
        tensors = {lay.fp32_tensor: layers[lay.node].cumulative for lay in self.match.layers
                   if lay.node in measured}
        outputs = [out_acc[o].result() for o in self.model_outputs]
        for o in outputs:
            o.kernels = "deployed"
        return DiffOutcome(self.match, layers, tensors, outputs, {}, done,
                           {"setup_s": self.setup_s, "inference_s": clock["fp32"] + clock["int8"],
                            "fp32_inference_s": clock["fp32"], "int8_inference_s": clock["int8"],
                            "statistics_s": clock["stats"] + clock["fold"], "deployed_stats_s": clock["stats"],
                            "fp32_inference_cpu_s": clock["fp32_cpu"], "int8_inference_cpu_s": clock["int8_cpu"],
                            "deployed_stats_cpu_s": clock["stats_cpu"], "deployed_loop_cpu_s": loop_cpu,
                            "statistics_overlapped": float(self.overlap)})

    def _fp32_run(self, feed: dict) -> dict:
        """This batch's FP32 tensors (model outputs, layer tensors as fetched) and the feed."""
        f = {k: v for k, v in feed.items() if k in self.fp32_inputs}
        fvals = dict(zip(self.fp32_fetch, self.fp32_session.run(self.fp32_fetch, f)))
        if self.fp32_identical is not True:
            plain = dict(zip(self.model_outputs, self._fp32_plain.run(self.model_outputs, f)))
            if self.fp32_identical is None:
                self.fp32_identical = all(np.array_equal(a, fvals[n], equal_nan=a.dtype.kind in "fc")
                                          for n, a in plain.items())
                if self.fp32_identical:
                    self._fp32_plain = None
            if self.fp32_identical is False:
                fvals.update(plain)
        fvals.update(feed)
        return fvals

    def _prepare(self, fvals: dict, ints: dict) -> tuple[dict | None, dict]:
        """(feed of the statistics session, layer -> values compared) for this batch; the statistics graph is built
        on the first batch. Adds the layer tensors fusion removed to ``fvals`` and views NCHWc ones blocked."""
        if not self._stats_built:  # once, on the first batch (layouts are picked on it)
            self._stats_built = True
            self._build_stats(fvals, ints)
        elif self._recompute is not None:
            fvals.update(self._run_recompute(fvals))
        for name, bk in self._blocks.items():  # NCHWc tensors viewed in their memory layout (no copy)
            fvals[name] = blocked(fvals[name], bk)
        sizes = {}
        for node, (have, fetched, xname) in self._stats_count.items():
            sizes[node] = fvals[xname].size * have // fetched
        if self.native_stats:  # views and zeroed sums here (numpy on this thread), the passes in the worker
            if not self._plans:
                return None, {}
            return {node: ls.job(fvals[x], fvals[m] if m else None, ints[d])
                    for node, (ls, x, m, d) in self._plans.items()}, sizes
        if self.stats is None:
            return None, {}
        sfeed = {}
        for node, inputs in self._stats_feed.items():
            for i, name in inputs.items():
                if name is None:
                    d = self.taps.taps[node].deployed_tensor
                    q, bk = ints[d], self._q_views.get(d)
                    sfeed[i] = q if bk is None else q.reshape(*q.shape[:3], -1, bk)
                else:
                    sfeed[i] = fvals[name]
        return sfeed, sizes

    def _start(self, pool: ThreadPoolExecutor, sfeed: dict, clock: dict) -> tuple:
        """Batch k's statistics begun in the worker while this thread runs the sessions on batch k+1. The compiled
        passes are queued layer by layer, largest first, so that ``_finish`` can share what is left: when the
        sessions are done first, the worker had a third of the cores beside their two threads, and waiting for it
        left a core idle (0.4 s of a 3.9-s deployed analysis, 224-px MobileNetV2 at N = 128)."""
        if not self.native_stats or len(sfeed) < 2:
            return pool.submit(self._stats_run, sfeed, clock), None, None
        queue = deque(sorted(sfeed, key=lambda n: -sfeed[n][0].size))
        out: dict = {}

        def drain() -> None:  # the compiled passes only: no numpy, so either thread may run it
            while True:
                try:
                    node = queue.popleft()  # atomic: each layer is run by exactly one thread
                except IndexError:
                    return
                out[node] = pair_stats_native.LayerStats.run(sfeed[node])

        def worker() -> None:
            t, c = time.perf_counter(), time.thread_time()
            drain()
            clock["stats"] += time.perf_counter() - t
            clock["stats_cpu"] += time.thread_time() - c

        return pool.submit(worker), (drain, out, sfeed), clock

    def _finish(self, started: tuple) -> dict:
        """The statistics ``_start`` began, this thread running the layers the worker has not taken yet."""
        future, shared, timing = started
        if shared is None:
            return future.result()
        drain, out, sfeed = shared
        t, c = time.perf_counter(), time.thread_time()
        drain()
        t, c = time.perf_counter() - t, time.thread_time() - c
        future.result()  # the worker's last layer; its clock is updated before this returns
        timing["stats"] += t
        timing["stats_cpu"] += c
        if len(out) != len(sfeed):
            raise RuntimeError(f"deployed statistics: {len(sfeed) - len(out)} layers were not run")
        return out

    def _stats_run(self, sfeed: dict, clock: dict, pool: ThreadPoolExecutor | None = None) -> dict:
        """One batch's statistics, {layer: (x.x, e.e, y.y, max e, min e, sum e)}: the compiled passes or the
        statistics session (no numpy either way: the worker thread's job). With ``pool`` (no overlap: the sessions
        are idle) the compiled passes run half in its worker, half here."""
        t, c = time.perf_counter(), (time.thread_time() if pool is None else time.process_time())
        if self.native_stats and pool is not None and len(sfeed) > 1:
            order = sorted(sfeed, key=lambda n: -sfeed[n][0].size)
            half = order[::2]  # every other by size: about half the values each
            there = pool.submit(lambda: {n: pair_stats_native.LayerStats.run(sfeed[n]) for n in half})
            out = {n: pair_stats_native.LayerStats.run(sfeed[n]) for n in order[1::2]}
            out.update(there.result())
        elif self.native_stats:
            out = {node: pair_stats_native.LayerStats.run(job) for node, job in sfeed.items()}
        else:
            names = [o for f in self._stats_fetch.values() for o in f]
            vals = dict(zip(names, _run_named(self.stats, names, sfeed)))
            out = {node: tuple(vals[o] for o in outs) for node, outs in self._stats_fetch.items()}
        clock["stats"] += time.perf_counter() - t
        clock["stats_cpu"] += (time.thread_time() if pool is None else time.process_time()) - c
        return out

    def _fold_stats(self, vals: dict, sizes: dict, acc: dict, clip: dict, jobs: dict) -> None:
        """One batch's statistics into the layers' accumulators (compiled: each layer's buffer of batches once it
        is complete, with the clipped values its passes counted)."""
        if self.native_stats:
            for node, job in jobs.items():
                for part in self._plans[node][0].add(job, vals[node], sizes[node]):
                    self._fold_native(node, part, acc, clip)
            return
        for node in self._stats_fetch:
            self._add(acc, node, *vals[node], sizes[node])

    def _fold_native(self, node: str, part: tuple, acc: dict, clip: dict) -> None:
        """Sums of the compiled passes (one buffer of batches, ``LayerStats.add``) into the layer's accumulator."""
        xx, ee, yy, emax, emin, esum, outside, values = part
        self._add(acc, node, xx, ee, yy, emax, emin, esum, values)
        ft = self.taps.taps[node].fp32_tensor
        if self._clip_from.get(ft) == node:
            clip[ft][0] += outside
            clip[ft][1] += values

    def _add(self, acc: dict, node: str, xx, ee, yy, emax, emin, esum, values: int) -> None:
        """Partial sums into the layer's accumulator; NCHWc ones per block ``[N, C/B, B]`` become per channel."""
        have, fetched, _ = self._stats_count[node]
        if fetched != 1:
            xx, ee = (a.reshape(*a.shape[:-2], -1)[..., :have] for a in (xx, ee))
        acc[node].add_partial(xx, ee, yy, emax, emin, esum, values)

    def _blocks_of(self, again: dict, fvals: dict) -> dict[str, int]:
        """Block sizes of the NCHWc tensors the recomputed nodes read (this batch's ``fvals``): as picked for the
        layers, else the run's (``_block_for``), so a chain re-runs even where no layer picked a block."""
        out = dict(self._blocks)
        for n in again.values():
            for i in n.input:
                src = self.fp32_sources.get(i)
                if src is None or src.channels is None or src.tensor in out:
                    continue
                x = fvals.get(src.tensor)
                bk = self._block_for(x.shape[1], src.channels) if x is not None and x.ndim == 4 else None
                if bk is not None:
                    out[src.tensor] = bk
                    if src.minus:
                        out[src.minus] = bk
        return out

    def _run_recompute(self, fvals: dict) -> dict:
        """The layer tensors fusion removed, re-run in float from this batch's FP32 tensors (source layout)."""
        sess, inputs = self._recompute or (None, [])
        if sess is None:
            return {}
        return dict(zip(self._opt.recompute, sess.run(list(self._opt.recompute), {i: fvals[i] for i in inputs})))

    def _pick_block(self, t, d: np.ndarray, raw: np.ndarray, src: Fp32Source, minus) -> int | None:
        """The NCHWc block size of ``raw``: the one the padding of every blocked tensor settles (``_build_stats``),
        else among those its padded channels allow, the one whose NCHW values are closest to the deployed integers
        ``d`` (a wrong block scrambles channels, far more than any kernel moves a value), on the batch's first
        sample; then the same for every layer (MLAS has one block size per process). None when no block size
        fits."""
        if raw.ndim != 4:
            return None
        cands = block_sizes(raw.shape[1], src.channels)
        if self._block in cands or len(cands) < 2:
            return self._block if self._block in cands else (cands[0] if cands else None)
        ds = d[:1] if t.perm is None or d.ndim != 4 else np.transpose(d[:1], np.argsort(t.perm))
        far = {}
        for bk in cands:
            x = to_source(raw[:1], src, bk, None if minus is None else minus[:1])
            ref = _quantize(x, t.scale, t.zero_point, t.qtype)
            if ref.shape == ds.shape:
                far[bk] = float(np.abs(ds.astype(np.int32) - ref).mean())
        if not far:
            return None
        self._block = min(far, key=far.get)
        return self._block

    def _count_clipped(self, ft: str, fvals: dict, n: list) -> None:
        """Add this batch's values of ``ft`` outside its quantization range, and its values, to ``n``."""
        src = self.fp32_sources.get(ft, Fp32Source(ft))
        x = fvals.get(src.tensor)
        if x is None:
            return
        if src.minus:
            x = x - fvals[src.minus]
        lo, hi = self.bounds[ft]
        nonneg = ft in self.nonnegative and not src.minus and lo <= 0  # nothing below the range: no min pass
        if src.channels is None:
            n[0] += _count_outside(x, lo, hi, nonneg)
            n[1] += x.size
        else:
            if x.ndim == 4:  # a layer whose block size was not picked (its integers did not survive fusion)
                bk = self._block_for(x.shape[1], src.channels)
                if bk is None:
                    return
                x = blocked(x, bk)
            n[0] += count_outside_blocked(x, src.channels, lambda v: _count_outside(v, lo, hi, nonneg))
            n[1] += x.size * src.channels // (x.shape[1] * x.shape[4])

    def _block_for(self, padded: int, channels: int) -> int | None:
        """The NCHWc block size of a tensor no layer picked one for: MLAS uses one per process, so the one settled
        for the run (``_block``) where it fits, else the only size that fits its channels; None when neither says."""
        fits = block_sizes(padded, channels)
        if self._block in fits:
            return self._block
        return fits[0] if len(fits) == 1 else None

    def close(self) -> None:
        """Free the sessions and the optimized FP32 graph's folder."""
        self.fp32_session = self._fp32_plain = self.stats = None
        self._dir.cleanup()

    def layers_measured(self) -> int:
        """Layers with deployed figures (their quantized output survives fusion and fits a layout)."""
        return len(self._measured())

    def _measured(self) -> set[str]:
        """Layers with statistics: compiled passes, or outputs of the statistics graph."""
        return set(self._plans) | set(self._stats_fetch)


def _blocked_integers(b: StatsBuilder, q: str, perm: tuple | None, channels: int, block: int,
                      zp: str) -> tuple[str, bool]:
    """A layer's integers (held transposed by ``perm`` from NCHW; None: NCHW) in NCHWc blocks ``[N, C/B, H, W, B]``,
    the last block padded with the zero point (which dequantizes to exactly 0). Second: whether the caller feeds
    the integers viewed as ``[N, H, W, C/B, B]`` (channels-last and no padding: a free numpy view, one node less)."""
    nhwc = (0, 2, 3, 1)
    r = nhwc if perm is None else tuple(int(np.argsort(perm)[k]) for k in nhwc)
    pad = -channels % block
    if r == (0, 1, 2, 3) and not pad:
        return b.node("Transpose", [q], perm=[0, 3, 1, 2, 4]), True
    if r != (0, 1, 2, 3):
        q = b.node("Transpose", [q], perm=list(r))
    if pad:
        q = b.node("Pad", [q, b.const([0, 0, 0, 0, 0, 0, 0, pad]), zp])
    q = b.node("Reshape", [q, b.const([0, 0, 0, -1, block])])
    return b.node("Transpose", [q], perm=[0, 3, 1, 2, 4]), False


def _blocked_stats(b: StatsBuilder, x: str, y: str, channels: int, padded: int, sample_major: bool) -> PairOutputs:
    """``pair_stats`` of NCHWc-blocked ``x`` and ``y``: the same figures as of their NCHW tensors. x.x and e.e come
    out per block ``[N, C/B, B]`` (the caller flattens them and drops the padding channels in numpy: no nodes)."""
    e = b.node("Sub", [y, x])
    axes = [2, 3] if sample_major else [0, 2, 3]
    xx = b.reduce("ReduceSum", b.node("Mul", [x, x]), axes)
    ee = b.reduce("ReduceSum", b.node("Mul", [e, e]), axes)
    yy = b.reduce("ReduceSumSquare", y, None)  # the padding dequantizes to 0
    if padded > channels:  # the padding's e is not 0 unless FP32 pads with 0: extremes per channel, padding left out
        def real(t: str) -> str:
            r = b.node("Reshape", [t, b.const([0, -1] if sample_major else [-1])])
            return b.node("Slice", [r, b.const([0]), b.const([channels]), b.const([1 if sample_major else 0])])

        ext = [b.reduce(op, real(b.reduce(op, e, axes)), None) for op in ("ReduceMax", "ReduceMin", "ReduceSum")]
    else:
        ext = [b.reduce(op, e, None) for op in ("ReduceMax", "ReduceMin", "ReduceSum")]
    return PairOutputs(xx, ee, yy, *ext, channel_axis=1)


def _clipped_at_zero(model: onnx.ModelProto) -> set[str]:
    """Outputs of Clip nodes whose minimum is a constant >= 0 (ReLU6): like Relu outputs, never below a quantization
    range (ranges include 0), so the clip count skips their minimum (one pass less per layer of a MobileNet)."""
    inits = {i.name: i for i in model.graph.initializer}
    out = set()
    for n in model.graph.node:
        if n.op_type != "Clip":
            continue
        lo = next((a.f for a in n.attribute if a.name == "min"), None)  # opset < 11
        if len(n.input) > 1 and n.input[1] in inits:
            v = numpy_helper.to_array(inits[n.input[1]])
            lo = float(v) if v.size == 1 else None
        if lo is not None and lo >= 0:
            out.add(n.output[0])
    return out


def _run_named(session, names: list[str], feed: dict) -> list:
    """``session.run`` for a fetch list that may repeat a name (layers sharing an output share statistics)."""
    uniq = list(dict.fromkeys(names))
    got = dict(zip(uniq, session.run(uniq, feed)))
    return [got[n] for n in names]


def _quantize(x: np.ndarray, scale: float, zero_point: int, qtype: int) -> np.ndarray:
    """FP32 values on the layer's grid (round half to even, saturate), as the exact simulation would hold them:
    the reference the deployed tensor's layout is picked against."""
    info = np.iinfo(_NP_QTYPE[qtype])
    return np.clip(np.rint(x / np.float32(scale)) + zero_point, info.min, info.max).astype(np.int32)
