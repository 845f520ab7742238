"""The deployed per-layer view: every layer's quantized output as onnxruntime's fused integer kernels compute it.

onnxruntime rewrites a QDQ model at load time (QLinearConv, QGemm, QLinearAdd..., NHWC layout on x86) and
the tensors of the model file mostly disappear. Those that survive in the graph it writes with
``optimized_model_filepath`` map back to source layers: a tensor still named after a layer's QuantizeLinear
output, or the output of the fused node named after the layer (``stem.Conv_token_1`` -> ``stem.Conv``) whose
output quantization is the layer's. That optimized graph, with those tensors added as outputs and run with
optimizations off (nothing is fused again), computes what the plain deployed session computes (checked bit
for bit on the first batch, ``identical``) and shows each layer's INT8 values as shipped. Each is compared
with FP32 and with the exact Q/DQ simulation the diff engine runs, batch by batch (memory flat in N).
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from backends.runner import SessionConfig, build_session

from .diff_types import ErrorMetrics
from .gap_fold import gap_fold
from .onnx_utils import tensor_size
from .qdq_match import QDQMatch

# a layer whose deployed SQNR is this much below its exact one is flagged (``kernel_departs``): rounding ties
# alone cost hundredths of a dB (measured on the demo with AVX-512 VNNI), saturation costs several dB
KERNEL_GAP_DB = 1.0
# onnxruntime's fused quantized ops: input index of the output scale (y_scale / C_scale)
_OUTPUT_SCALE_INPUT = {
    "QLinearConv": 6, "QGemm": 7, "QLinearMatMul": 6, "QLinearAdd": 6, "QLinearMul": 6, "QLinearConcat": 0,
    "QLinearAveragePool": 3, "QLinearGlobalAveragePool": 3, "QLinearLeakyRelu": 3, "QLinearSigmoid": 3,
    "QLinearSoftmax": 3, "QLinearReduceMean": 3, "QLinearWhere": 7, "QLinearConvTranspose": 6,
}
_SUFFIX = re.compile(r"(_token_\d+|_nchwc)+$")
_QTYPES = {onnx.TensorProto.UINT8: np.uint8, onnx.TensorProto.INT8: np.int8,
           onnx.TensorProto.UINT16: np.uint16, onnx.TensorProto.INT16: np.int16}


@dataclass(frozen=True)
class LayerTap:
    """Where one source layer's quantized output is found in the deployed graph, and how to read it."""

    node: str  # the source layer
    fp32_tensor: str  # its FP32 tensor (what the diff engine compares)
    exact_tensor: str  # its QuantizeLinear output in the QDQ model (the exact simulation's integers)
    deployed_tensor: str  # the same integers in onnxruntime's optimized graph
    kernel: str  # the op that writes them there (QLinearConv, QGemm, Transpose, QuantizeLinear...)
    scale: float
    zero_point: int
    qtype: int  # ONNX element type of the integers
    perm: tuple[int, ...] | None  # deployed = transpose(source, perm); None: same layout


def base_name(name: str) -> str:
    """A node name without the suffixes onnxruntime's fusions add ('fused X', 'X_token_3', 'X_nchwc')."""
    if name.startswith("fused "):
        name = name[len("fused "):]
    return _SUFFIX.sub("", name)


def _layouts(graph: onnx.GraphProto) -> dict[str, tuple[int, ...]]:
    """Tensor -> permutation of the source layout it holds, where not the source layout.

    onnxruntime's layout transformation brackets channels-last regions with Transposes; inside one, every op
    (QLinearConv channels_last, NhwcMaxPool, QLinearAdd...) keeps its input's layout. A Transpose composes its
    perm; any other op passes on the first permuted input's layout (callers check shapes, so an op that changes
    rank inside a region leaves its layer unmapped rather than misread)."""
    perm: dict[str, tuple[int, ...]] = {}
    for n in graph.node:
        src = next((perm[i] for i in n.input if i in perm), None)
        if n.op_type == "Transpose" and n.domain in ("", "ai.onnx"):
            p = next((list(a.ints) for a in n.attribute if a.name == "perm"), None)
            if p is None:
                continue
            inner = src or tuple(range(len(p)))
            out = tuple(inner[i] for i in p) if len(inner) == len(p) else None
        else:
            out = src
        if out is not None and out != tuple(range(len(out))):
            for o in n.output:
                perm[o] = out
    return perm


def map_layers(optimized: onnx.ModelProto, m: QDQMatch, int8: onnx.ModelProto) -> dict[str, LayerTap]:
    """Source layer -> its quantized output in ``optimized`` (onnxruntime's graph of the QDQ model ``int8``).

    A layer maps when its output is quantized (QuantizeLinear in the QDQ model) and either that Q output's name
    survives fusion, or a fused quantized node carries the layer's name and the layer's output scale."""
    g = optimized.graph
    produced = {o: n for n in g.node for o in n.output}
    graph_inputs = {i.name for i in g.input}
    by_base: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        by_base.setdefault(base_name(n.name), []).append(n)
    layouts = _layouts(g)
    int8_inits = {i.name: i for i in int8.graph.initializer}
    out: dict[str, LayerTap] = {}
    for lay in m.layers:
        aq = lay.act
        if aq is None or aq.qtype not in _QTYPES:
            continue
        q = m.int8_nodes.get(aq.q_node)
        if q is None or len(q.input) < 2 or tensor_size(int8_inits.get(q.input[1])) != 1:
            continue  # per-axis activation quantization: not read here
        qname, tensor, kernel = q.output[0], None, None
        if qname in produced:
            tensor, kernel = qname, _computing_op(produced[qname], produced)
        elif qname in graph_inputs:
            continue
        else:
            for n in by_base.get(lay.node, []):
                k = _OUTPUT_SCALE_INPUT.get(n.op_type)
                if k is not None and len(n.input) > k and n.input[k] == q.input[1]:
                    tensor, kernel = n.output[0], n.op_type
                    break
        if tensor is None:
            continue
        out[lay.node] = LayerTap(lay.node, lay.fp32_tensor, qname, tensor, kernel, aq.scale, aq.zero_point,
                                 aq.qtype, layouts.get(tensor))
    return out


_MOVES = frozenset({"Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity"})


def _computing_op(node: onnx.NodeProto, produced: dict) -> str:
    """The op that computed a tensor, looking through the data movement onnxruntime puts after it."""
    seen = 0
    while node.op_type in _MOVES and node.input and node.input[0] in produced and seen < 16:
        node, seen = produced[node.input[0]], seen + 1
    return node.op_type


# data (quantized activation) inputs of onnxruntime's fused ops; QLinearConcat: every third input from the third
_DATA_INPUTS = {"QLinearConv": (0,), "QGemm": (0,), "QLinearMatMul": (0, 3), "QLinearAdd": (0, 3), "QLinearMul": (0, 3),
                "QLinearAveragePool": (0,), "QLinearGlobalAveragePool": (0,), "QLinearLeakyRelu": (0,),
                "QLinearSigmoid": (0,), "QLinearSoftmax": (0,), "NhwcMaxPool": (0,), "QLinearConvTranspose": (0,)}


def _data_inputs(n: onnx.NodeProto) -> list[int] | None:
    if n.op_type == "QLinearConcat":
        return list(range(2, len(n.input), 3))
    idx = _DATA_INPUTS.get(n.op_type)
    return list(idx) if idx is not None else None


class _KernelCheck:
    """Each layer's fused kernel run alone on the exact simulation's integers: what the kernel itself departs by.

    The cumulative gap of a layer includes what earlier kernels did; this runs a copy of every fused node whose
    output is a layer's tensor, fed its inputs as the exact simulation computes them (in the layout the kernel
    reads), so a gap here is the kernel's own. Built on the first batch, once each tap's layout is known."""

    def __init__(self, optimized: onnx.ModelProto, taps: dict[str, LayerTap], qdq_q: dict[str, int], folder: str):
        self.optimized, self.taps, self.qdq_q, self.folder = optimized, taps, qdq_q, folder
        self.session = None
        self.built = False
        self.plan: dict[str, tuple[onnx.NodeProto, list]] = {}  # layer -> (kernel node, its data inputs' sources)
        self.inputs: dict[str, tuple] = {}  # sub-model input -> source
        g = optimized.graph
        self._producer = {o: n for n in g.node for o in n.output}
        self._by_tensor = {t.deployed_tensor: k for k, t in taps.items()}
        self._inits = {i.name for i in g.initializer}

    def _source(self, tensor: str, depth: int = 0):
        """Where the exact integers of a deployed tensor come from: ('tap', layer), ('q', QDQ tensor) or
        ('t', perm, inner source) through a Transpose; None when unknown."""
        if tensor in self._by_tensor:
            return ("tap", self._by_tensor[tensor])
        if tensor in self.qdq_q:
            return ("q", tensor)
        n = self._producer.get(tensor)
        if n is not None and n.op_type == "Transpose" and depth < 8:
            inner = self._source(n.input[0], depth + 1)
            p = next((tuple(a.ints) for a in n.attribute if a.name == "perm"), None)
            return None if inner is None or p is None else ("t", p, inner)
        return None

    def resolve(self, src, exact: dict, perms: dict):
        """The exact integers of ``src`` in the layout the deployed graph holds them (None when unknown)."""
        if src[0] == "tap":
            t = self.taps[src[1]]
            e, p = exact.get(t.exact_tensor), perms.get(src[1], False)
            return None if e is None or p is False else (e if p is None else np.transpose(e, p))
        if src[0] == "q":
            return exact.get(src[1])
        inner = self.resolve(src[2], exact, perms)
        return None if inner is None else np.transpose(inner, src[1])

    def build(self, exact: dict, perms: dict) -> None:
        """The sub-model of every kernel whose inputs resolve on this batch (called once)."""
        self.built = True
        nodes, inputs, outputs, inits = [], {}, [], set()
        for layer, t in self.taps.items():
            k = self._producer.get(t.deployed_tensor)
            idx = _data_inputs(k) if k is not None else None
            if idx is None or k.output[0] != t.deployed_tensor or perms.get(layer, False) is False:
                continue
            data = [k.input[i] for i in idx if i < len(k.input) and k.input[i]]
            srcs = [self._source(d) for d in data]
            others = [i for j, i in enumerate(k.input) if j not in idx and i]
            if any(s is None for s in srcs) or any(i not in self._inits for i in others):
                continue
            vals = [self.resolve(src, exact, perms) for src in srcs]
            if any(v is None for v in vals):
                continue
            c = onnx.NodeProto()
            c.CopyFrom(k)
            c.name = "iso::" + k.name
            c.input[:] = ["in::" + i if i in data else i for i in k.input]
            c.output[:] = ["out::" + k.output[0]] + [""] * (len(k.output) - 1)
            nodes.append(c)
            for d, src, v in zip(data, srcs, vals):
                inputs["in::" + d] = (src, v.dtype)
            outputs.append(helper.make_tensor_value_info("out::" + k.output[0], t.qtype, None))
            inits.update(others)
            self.plan[layer] = (k, srcs)
        if not nodes:
            return
        g = helper.make_graph(nodes, "kernels", [helper.make_tensor_value_info(
            n, helper.np_dtype_to_tensor_dtype(dt), None) for n, (_, dt) in inputs.items()], outputs,
            [i for i in self.optimized.graph.initializer if i.name in inits])
        sub = helper.make_model(g, opset_imports=list(self.optimized.opset_import))
        sub.ir_version = self.optimized.ir_version
        path = os.path.join(self.folder, "kernels.onnx")
        onnx.save(sub, path)  # weights: the same side file as the optimized graph
        self.session = build_session(SessionConfig(path, level="disable",
                                                   config_entries={"session.intra_op.allow_spinning": "0"}))
        self.inputs = {n: src for n, (src, _) in inputs.items()}

    def run(self, exact: dict, perms: dict) -> dict[str, np.ndarray]:
        """Layer -> its kernel's integers computed from the exact inputs (deployed layout)."""
        if self.session is None:
            return {}
        feed = {}
        for n, src in self.inputs.items():
            v = self.resolve(src, exact, perms)
            if v is None:
                return {}
            feed[n] = np.ascontiguousarray(v)
        names = ["out::" + k.output[0] for k, _ in self.plan.values()]
        return dict(zip(self.plan, self.session.run(names, feed)))


class DeployedLayerTaps:
    """The INT8 model as deployed, with every mappable layer's integers fetched from the very kernels it runs.

    ``run(feed, names)`` returns the model outputs ``names`` (as the plain deployed session gives them) and
    keeps this batch's layer integers; ``fold(fp32, exact)`` compares them with the FP32 tensors and the exact
    simulation's integers of the same batch (``expose`` names those); ``results()`` gives each layer's
    ``deployed`` figures."""

    def __init__(self, int8_path: str, int8: onnx.ModelProto, m: QDQMatch, masked=frozenset(),
                 config_entries: dict | None = None, fp32: onnx.ModelProto | None = None):
        """``fp32``: the float model, to find each layer's upstream layers (``introduced_gap_db``)."""
        self._dir = tempfile.TemporaryDirectory(prefix="qwb-deployed-")
        opt_path = os.path.join(self._dir.name, "optimized.onnx")
        entries = dict(config_entries or {})
        # the plain deployed session (what ships); building it writes the graph it runs
        self.plain = build_session(SessionConfig.for_purpose("deployed", str(int8_path), optimized_model_path=opt_path,
                                                             config_entries=entries))
        optimized = onnx.load(opt_path, load_external_data=False)
        self.taps = {k: t for k, t in map_layers(optimized, m, int8).items() if t.fp32_tensor not in masked}
        self.layers = len(m.layers)
        self._upstream = _upstream_layers(fp32, m) if fp32 is not None else {}
        self.outputs = [o.name for o in optimized.graph.output]
        tap_names = list(dict.fromkeys(t.deployed_tensor for t in self.taps.values()))
        self._fetch = self.outputs + [t for t in tap_names if t not in set(self.outputs)]
        have = {o.name for o in optimized.graph.output}
        for t in tap_names:
            if t not in have:
                optimized.graph.output.append(helper.make_tensor_value_info(t, self._qtype_of(t), None))
        tapped_path = os.path.join(self._dir.name, "tapped.onnx")
        onnx.save(optimized, tapped_path)  # weights stay in the side file onnxruntime wrote beside it
        # optimizations off: the graph runs exactly as onnxruntime optimized it, nothing is fused again
        # no spinning (as for_purpose gives every analysis session): idle intra-op threads of this session kept a
        # core busy through the statistics that follow each run (1.5 of 3.1 CPU s at N = 128, docs/benchmarks.md)
        self.tapped = build_session(SessionConfig(tapped_path, level="disable", config_entries=dict(
            {"session.intra_op.allow_spinning": "0"}, **entries)))
        inits8 = {i.name: i for i in int8.graph.initializer}
        qdq_q = {n.output[0]: inits8[n.input[2]].data_type for n in int8.graph.node
                 if n.op_type == "QuantizeLinear" and n.input[0] not in inits8 and len(n.input) > 2
                 and n.input[2] in inits8 and inits8[n.input[2]].data_type in _QTYPES
                 and tensor_size(inits8.get(n.input[1])) == 1}
        optimized.graph.ClearField("output")  # the kernel check copies nodes, not the tapped outputs
        self._kernels = _KernelCheck(optimized, self.taps, qdq_q, self._dir.name)
        # exact integers the kernel check feeds (graph-input quantization and the like, beside the layers')
        used = {i for n in optimized.graph.node for i in list(n.input) + list(n.output)}
        self._extra_exact = {t: q for t, q in qdq_q.items() if t in used}
        self.kernel_check_error: str | None = None
        self.identical: bool | None = None  # tapped outputs == plain session's outputs, checked on the first batch
        self.max_output_diff = 0.0
        # each batch's layer integers, oldest first, until folded (``DiffEngine.run`` draws batches ahead of
        # ``fold``) or taken (``batch_integers``)
        self._batches: deque[dict[str, np.ndarray]] = deque()
        # per layer: error power the deployed values add, values that differ, values, largest difference (LSB);
        # then the same for its kernel alone on exact inputs (_KernelCheck)
        self._acc = {k: np.zeros(8) for k in self.taps}
        # layer -> the layout its deployed tensor holds (False: none fits)
        self._perm: dict[str, tuple | None | bool] = {}
        self.seconds = 0.0  # comparing the taps (the tapped inference is timed with the deployed outputs)

    def _qtype_of(self, tensor: str) -> int:
        return next(t.qtype for t in self.taps.values() if t.deployed_tensor == tensor)

    @property
    def expose(self) -> dict[str, int]:
        """The exact simulation's integers to fetch from the diff engine: QDQ tensor -> element type."""
        out = dict(self._extra_exact)
        out.update({t.exact_tensor: t.qtype for t in self.taps.values()})
        return out

    def run(self, feed: dict, names: list[str]) -> list[np.ndarray]:
        """The model outputs ``names`` for ``feed`` as deployed; this batch's layer integers are kept."""
        inputs = {i.name for i in self.tapped.get_inputs()}
        feed = {k: v for k, v in feed.items() if k in inputs}
        vals = dict(zip(self._fetch, self.tapped.run(self._fetch, feed)))
        plain = None
        if self.identical is not True:  # checked on the first batch; if they differ, outputs come from the plain one
            plain = dict(zip(self.outputs, self.plain.run(self.outputs, feed)))
        if self.identical is None:
            self.identical = all(np.array_equal(a, vals[n], equal_nan=a.dtype.kind in "fc") for n, a in plain.items())
            self.max_output_diff = max((float(np.nanmax(np.abs(a.astype(np.float64) - vals[n])))
                                        for n, a in plain.items() if a.size and a.dtype.kind in "fiub"), default=0.0)
            if self.identical:
                self.plain = None  # built for the check and the graph it wrote: not needed after
        if self.identical is False:
            vals.update(plain)
        self._batches.append({t.deployed_tensor: vals[t.deployed_tensor] for t in self.taps.values()})
        return [vals[n] for n in names]

    def batch_integers(self) -> dict[str, np.ndarray]:
        """The oldest batch's layer integers as deployed, taken (not folded): deployed tensor -> array (in the
        deployed layout)."""
        return self._take()

    def _take(self) -> dict[str, np.ndarray]:
        return self._batches.popleft() if self._batches else {}

    def layout_for(self, node: str, t: LayerTap, d: np.ndarray, ref: np.ndarray) -> tuple | None | bool:
        """The permutation ``d`` holds relative to the source layout (None: the source layout; False: none fits),
        picked once per layer against ``ref``: integers of the source layout (``_source_layout``)."""
        self._source_layout(node, t, d, ref)
        return self._perm[node]

    def fold(self, fp32: dict[str, np.ndarray], exact: dict[str, np.ndarray]) -> None:
        """Compare the oldest batch's deployed integers not yet folded with its FP32 tensors (``fp32``) and exact
        simulation (``exact``): batches are run and folded in the same order."""
        t0 = time.perf_counter()
        batch = self._take()
        for node, t in self.taps.items():
            d, e, x = batch.get(t.deployed_tensor), exact.get(t.exact_tensor), fp32.get(t.fp32_tensor)
            if d is None or e is None or x is None:
                continue
            d = self._source_layout(node, t, d, e)
            if d is None or e.shape != x.shape:
                continue
            # deployed error power = exact error power + what the differing values add
            self._add(self._acc[node], 0, gap_fold(d, e, x, t.scale, t.zero_point), e.size)
        self._fold_kernels(fp32, exact)
        self.seconds += time.perf_counter() - t0

    def _fold_kernels(self, fp32: dict, exact: dict) -> None:
        """Each kernel alone on the exact inputs against the exact output (``_KernelCheck``)."""
        if self.kernel_check_error is not None:
            return
        try:
            if not self._kernels.built:
                self._kernels.build(exact, self._perm)
            own = self._kernels.run(exact, self._perm)
        except Exception as err:  # noqa: BLE001 - an extra figure: the deployed view stands without it
            self.kernel_check_error = f"{type(err).__name__}: {str(err)[:200]}"
            return
        for node, y in own.items():
            t, p = self.taps[node], self._perm.get(node, False)
            e, x = exact.get(t.exact_tensor), fp32.get(t.fp32_tensor)
            if p is False or e is None or x is None:
                continue
            y = y if p is None else np.transpose(y, np.argsort(p))
            if y.shape != e.shape or x.shape != e.shape:
                continue
            self._add(self._acc[node], 4, gap_fold(y, e, x, t.scale, t.zero_point), e.size)

    @staticmethod
    def _add(a: np.ndarray, at: int, gap: tuple[int, float, int], values: int) -> None:
        """One ``gap_fold`` into a layer's accumulator from ``at``: added power, differing, values, largest."""
        k, extra, largest = gap
        a[at] += extra
        a[at + 1] += k
        a[at + 2] += values
        a[at + 3] = max(a[at + 3], largest)

    def _source_layout(self, node: str, t: LayerTap, d: np.ndarray, e: np.ndarray) -> np.ndarray | None:
        """``d`` in the exact tensor's layout. The graph says which layout a tensor holds (``LayerTap.perm``), but
        when onnxruntime cancels a model's own Transposes (TF-style NHWC inputs) a layout can come from the input
        side too, and a square tensor fits both; so on the first batch every layout that fits the shape is tried
        and the one closest to the exact integers kept (a layout mix-up moves most values far more than any kernel)."""
        if node not in self._perm:
            r = d.ndim
            cands = [t.perm, None] + ([(0, *range(2, r), 1)] if r >= 3 else [])

            def fit(p):
                if p is None:
                    return d.shape == e.shape
                return len(p) == r and tuple(d.shape[i] for i in np.argsort(p)) == e.shape

            fits = [p for p in dict.fromkeys(cands) if fit(p)]
            if not fits:
                self._perm[node] = False
            else:
                def far(p):
                    v = d if p is None else np.transpose(d, np.argsort(p))
                    return float(np.abs(v.astype(np.int32) - e).mean())
                self._perm[node] = min(fits, key=far) if len(fits) > 1 else fits[0]
        p = self._perm[node]
        if p is False:
            return None
        return d if p is None else np.transpose(d, np.argsort(p))

    def results(self, exact: dict[str, ErrorMetrics]) -> dict[str, dict]:
        """Layer -> {sqnr_db (deployed vs FP32), kernel_gap_db (exact SQNR - deployed SQNR), lsb_diff_share,
        max_lsb_diff, exact_sqnr_db, kernel, tensor, introduced_gap_db}; layers with no surviving tensor are absent.

        ``exact``: each layer's cumulative figures from the diff engine (same samples): the deployed error power
        is the exact one plus what the differing values add, so a kernel that matches the simulation everywhere
        shows a gap of exactly 0 and ``exact_sqnr_db`` is the cumulative SQNR every other screen prints.
        Both SQNRs are cumulative, so a kernel that departs early moves every layer after it;
        ``introduced_gap_db`` (this gap minus the largest gap of the nearest upstream layers) names where a
        departure starts. None when an upstream layer has no deployed figures."""
        out = {}
        for node, t in self.taps.items():
            extra, diff, n, mx, own_extra, own_diff, own_n, _ = self._acc[node]
            m = exact.get(node)
            if not n or m is None or not math.isfinite(m.mse):
                continue
            ee = m.mse * n
            ex = m.sqnr_db
            if extra == 0:
                gap = 0.0
            elif ee > 0 and ee + extra > 0:
                gap = 10.0 * math.log10((ee + extra) / ee)
            else:
                gap = None  # the simulation is exact here (no error at all): no ratio to state
            dep = ex - gap if gap is not None and math.isfinite(ex) else (ex if gap == 0.0 else None)
            out[node] = {"sqnr_db": dep, "kernel_gap_db": gap, "lsb_diff_share": float(diff / n),
                         "max_lsb_diff": int(mx), "exact_sqnr_db": ex, "kernel": t.kernel, "tensor": t.deployed_tensor,
                         "own_gap_db": None, "own_lsb_diff_share": None}
            if own_n:  # the kernel alone, fed the exact inputs
                own = 0.0 if own_extra == 0 else (10.0 * math.log10((ee + own_extra) / ee)
                                                  if ee > 0 and ee + own_extra > 0 else None)
                out[node].update(own_gap_db=own, own_lsb_diff_share=float(own_diff / own_n))
        for node, d in out.items():
            up = self._upstream.get(node)
            gaps = [out[u]["kernel_gap_db"] if u in out else None for u in (up or [])]
            d["introduced_gap_db"] = (None if up is None or d["kernel_gap_db"] is None or None in gaps
                                      else d["kernel_gap_db"] - max([0.0] + gaps))
        return out

    def note(self) -> str:
        """One line on what the per-layer deployed figures cover."""
        n = sum(1 for a in self._acc.values() if a[2])
        own = sum(1 for a in self._acc.values() if a[6])
        s = (f"deployed per-layer figures: {n} of {self.layers} layers have a quantized output that survives "
             f"onnxruntime's fusion (the others show none); {own} of them also with their kernel run alone on the "
             "exact simulation's inputs (own_gap_db)")
        if self.kernel_check_error:
            s += f"; the kernels could not be run alone ({self.kernel_check_error})"
        if self.identical is False:
            s += (f"; the tapped graph's outputs differ from the plain deployed session's (max |diff| "
                  f"{self.max_output_diff:.3g}), so the per-layer figures may not be exactly what ships (the output "
                  "figures are the plain session's)")
        return s

    def close(self) -> None:
        self.tapped = self.plain = None
        self._dir.cleanup()


def kernel_departs(deployed: dict | None, threshold_db: float = KERNEL_GAP_DB) -> bool:
    """Whether this layer's own kernel departs from the exact simulation by ``threshold_db`` or more (``own_gap``)."""
    gap = own_gap(deployed)
    return gap is not None and gap >= threshold_db


def own_gap(deployed: dict | None) -> float | None:
    """What the layer's own kernel adds: ``own_gap_db`` (the kernel fed the simulation's inputs) where measured;
    else, for a fused arithmetic kernel, the gap over its upstream layers' (``introduced_gap_db``, else the whole
    gap). None for data movement and float ops: a cumulative gap changes through them (a mean of errors) without
    any kernel departing, so it says nothing about them."""
    if not deployed:
        return None
    if deployed.get("own_gap_db") is not None:
        return deployed["own_gap_db"]
    if deployed.get("kernel") not in _OUTPUT_SCALE_INPUT:
        return None
    for k in ("introduced_gap_db", "kernel_gap_db"):
        if deployed.get(k) is not None:
            return deployed[k]
    return None


def _upstream_layers(fp32: onnx.ModelProto, m: QDQMatch) -> dict[str, list[str]]:
    """Layer -> the nearest layers upstream of its activation inputs in the FP32 graph (through ops that are
    not layers: Reshape, Flatten...); graph inputs contribute none."""
    producer = {o: n for n in fp32.graph.node for o in n.output}
    inits = {i.name for i in fp32.graph.initializer}
    owner = {lay.fp32_tensor: lay.node for lay in m.layers}
    out = {}
    for lay in m.layers:
        found, seen, todo = [], set(), list(lay.activation_inputs)
        while todo:
            t = todo.pop()
            if t in seen or t in inits:
                continue
            seen.add(t)
            if t in owner and owner[t] != lay.node:
                found.append(owner[t])
            elif t in producer and len(seen) < 10_000:
                todo.extend(i for i in producer[t].input if i)
        out[lay.node] = list(dict.fromkeys(found))
    return out
