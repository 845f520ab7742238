"""One ONNX model that computes INT8, every layer's isolated copy, and the error statistics against FP32.

Instead of returning every intermediate tensor to Python (the expensive part: a copy per tensor per
call), the diff model appends small reduction subgraphs: for each compared pair (fp32 x, int8 y) it
outputs per-sample x per-channel sums of x*x and e*e (e = y - x), the total of y*y, and the extremes and sum of e.
onnxruntime frees each activation as soon as its consumers ran, so memory stays at one batch of
activations and the per-call output is a few KB.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .calibration.histogram import MASK_MAGNITUDE
from .onnx_utils import opset_of, tensor_size
from .qdq_match import QDQMatch, isolated_nodes

FP32_PREFIX = "f::"


@dataclass
class PairOutputs:
    """Graph outputs holding the statistics of one compared pair."""

    xx: str
    ee: str
    yy: str  # total of y*y (with x.x and e.e it gives x.y for the cosine)
    emax: str
    emin: str
    esum: str
    channel_axis: int | None  # in the original tensor
    sample_idx: np.ndarray | None = None  # flat per-sample positions sampled for the scatter plot
    sample_y: str | None = None  # the INT8 values at those positions (the FP32 ones are read in numpy)
    y: str | None = None  # compared outside the graph (``native``): the fetched tensor; the statistics names are ""
    # ``y`` holds integers (a DequantizeLinear's input, ``integer_fetch``): the compared value is
    # float(y - y_zero_point) * y_scale, computed in the compiled pass exactly as that DequantizeLinear does
    y_scale: float = 1.0
    y_zero_point: int = 0

    @property
    def stats(self) -> list[str]:
        """The graph outputs this pair needs fetched."""
        return ([self.y] if self.y else [self.xx, self.ee, self.yy, self.emax, self.emin, self.esum]) + \
            ([self.sample_y] if self.sample_y else [])


@dataclass
class DiffGraph:
    """The merged model and where each statistic comes out."""

    model: onnx.ModelProto
    cumulative: dict[str, PairOutputs]  # FP32 tensor -> stats of (fp32, int8)
    isolated: dict[str, PairOutputs]  # layer -> stats of (fp32, isolated copy)
    outputs: dict[str, tuple[str, str]]  # model output -> (fp32 name, int8 name) in the merged graph
    fetch: list[str] = field(default_factory=list)
    fp32_feeds: list[str] = field(default_factory=list)  # FP32 tensors fed as inputs ``f::name``
    iso_signatures: dict[str, str] = field(default_factory=dict)  # layer -> what its isolated copy computes
    iso_reused: set[str] = field(default_factory=set)  # layers whose isolated copy was left out (unchanged)
    fp32_compared: list[str] = field(default_factory=list)  # FP32 tensors the caller compares (``native`` pairs)


def fold_weight_dequantization(int8: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of the QDQ model whose DequantizeLinear nodes on initializers are replaced by their float
    result, computed exactly as the kernel does (float(q - zero_point) * scale), so every run does not
    dequantize every weight again. The values, and so every figure, are bit-identical."""
    m = onnx.ModelProto()
    m.CopyFrom(int8)
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    keep, folded, used = [], [], set()
    used.update(subgraph_inputs(g))  # If/Loop bodies read outer-scope weights by name
    for n in g.node:
        if n.op_type == "DequantizeLinear" and all(i in inits for i in n.input if i) and not n.domain:
            q = numpy_helper.to_array(inits[n.input[0]]).astype(np.int64)
            scale = numpy_helper.to_array(inits[n.input[1]]).astype(np.float32)
            zp = (numpy_helper.to_array(inits[n.input[2]]).astype(np.int64) if len(n.input) > 2 and n.input[2]
                  else np.zeros(scale.shape, np.int64))
            axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
            if scale.size > 1:
                shape = [1] * q.ndim
                shape[axis] = -1
                scale, zp = scale.reshape(shape), zp.reshape(shape)
            folded.append(numpy_helper.from_array((q - zp).astype(np.float32) * scale, n.output[0]))
        else:
            keep.append(n)
            used.update(n.input)
    del g.node[:]
    g.node.extend(keep)
    rest = [i for i in g.initializer if i.name in used or i.name in {x.name for x in g.input}]
    del g.initializer[:]
    g.initializer.extend(rest + folded)
    return m


def subgraph_inputs(graph: onnx.GraphProto) -> set[str]:
    """Every name the subgraphs of ``graph``'s nodes read (If branches, Loop and Scan bodies, nested)."""
    out: set[str] = set()
    for n in graph.node:
        for a in n.attribute:
            subs = [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)
            for sg in subs:
                out.update(i for sn in sg.node for i in sn.input)
                out |= subgraph_inputs(sg)
    return out


class _Builder:
    """Appends nodes and initializers with unique names, minding opset differences of Reduce ops."""

    def __init__(self, opset: int):
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.k = 0

    def name(self, base: str) -> str:
        self.k += 1
        return f"stat{self.k}::{base}"

    def const(self, value, dtype=np.int64) -> str:
        n = self.name("const")
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), n))
        return n

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        out = self.name(op)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def reduce(self, op: str, x: str, axes: list[int] | None) -> str:
        """Reduce over ``axes`` (None: all) without keeping dims; axes as input or attribute by opset."""
        as_input = self.opset >= 18 or (op == "ReduceSum" and self.opset >= 13)
        if axes is None:
            return self.node(op, [x], keepdims=0)
        if as_input:
            return self.node(op, [x, self.const(axes)], keepdims=0)
        return self.node(op, [x], axes=axes, keepdims=0)


def _unmask(b: _Builder, x: str, y: str, limit: float = MASK_MAGNITUDE) -> tuple[str, str]:
    """(x, y) with the mask positions of x (|x| >= ``limit``, +-inf included) set to 0 in x, and in y
    where y is masked there too (same sign, |y| >= ``limit``): a masked position that stays masked counts as
    error-free (-inf - -inf is NaN; -1e4 + a score moves with the score), one that lost its mask value (saturated
    to the range's low end under ``clamp``) counts with its full INT8 value, and the statistics stay finite."""
    lim = b.const(limit, np.float32)
    m = b.node("Not", [b.node("Less", [b.node("Abs", [x]), lim])])
    zero = b.const(0.0, np.float32)
    still = b.node("And", [b.node("Not", [b.node("Less", [b.node("Abs", [y]), lim])]),
                           b.node("Equal", [b.node("Sign", [x]), b.node("Sign", [y])])])
    same = b.node("And", [m, still])
    return b.node("Where", [m, zero, x]), b.node("Where", [same, zero, y])


def _pair(b: _Builder, x: str, y: str, rank: int, channel_axis: int | None, batched: bool,
          xx: str | None = None, masked: float | None = None) -> PairOutputs:
    """Statistics of (x, y): x.x and e.e per sample and channel, y.y in total, and the extremes of e.

    Mul + ReduceSum is several times faster in onnxruntime than ReduceSumSquare over inner axes; full
    reductions (no axes) take its fast path too. ``masked``: x holds mask values (-inf, finfo.min) from this
    magnitude on, compared through ``_unmask``.
    """
    if masked is not None:
        x, y = _unmask(b, x, y, masked)
        xx = None  # the caller's x.x is of the raw tensor
    e = b.node("Sub", [y, x])
    keep = set()
    if batched and rank > 0:
        keep.add(0)
    if channel_axis is not None and channel_axis < rank:
        keep.add(channel_axis)
    axes = [a for a in range(rank) if a not in keep]

    def partial(t: str) -> str:
        if not axes:  # nothing to reduce: the partial sums are the elementwise products
            return b.node("Mul", [t, t])
        return b.reduce("ReduceSum", b.node("Mul", [t, t]), axes)

    xx = xx or partial(x)
    ee = partial(e)
    yy = b.reduce("ReduceSumSquare", y, None)
    return PairOutputs(xx, ee, yy, b.reduce("ReduceMax", e, None), b.reduce("ReduceMin", e, None),
                       b.reduce("ReduceSum", e, None), channel_axis if channel_axis in keep else None)


# the reductions, for other statistics graphs (``deployed_engine``: deployed integers against FP32)
StatsBuilder = _Builder
pair_stats = _pair


def _sample(b: _Builder, t: str, idx: np.ndarray, batched: bool) -> str:
    flat = b.node("Reshape", [t, b.const([0 if batched else 1, -1] if batched else [1, -1])])
    return b.node("Gather", [flat, b.const(idx)], axis=1)


def build_diff_graph(fp32: onnx.ModelProto, iso_source: onnx.ModelProto, m: QDQMatch, tracked: dict[str, str],
                     ranks: dict[str, int], channel_axes: dict[str, int | None], batched: bool,
                     isolated: bool = True, reservoir: int = 0, sample_sizes: dict[str, int] | None = None,
                     seed: int = 0, reuse_isolated: dict[str, str] | None = None,
                     not_sample_major: frozenset[str] = frozenset(),
                     masked: Mapping[str, float] | set[str] | frozenset[str] = frozenset(),
                     native: bool = False) -> DiffGraph:
    """The QDQ model ``iso_source`` plus isolated copies and statistics, reading FP32 tensors ``f::name``.

    The FP32 tensors are inputs (``fp32_feeds``), computed by a separate, fully optimised FP32 session:
    this graph must run with onnxruntime's QDQ transformations off to keep the Q/DQ simulation exact,
    which would slow the float part down several times.
    ``tracked``: FP32 tensor -> QDQ-model tensor to compare cumulatively.
    ``reuse_isolated``: layer -> signature of an isolated copy already measured on the same data; a layer
    whose copy would compute exactly that again is left out (the caller reuses its figures).
    ``not_sample_major``: tensors whose axis 0 is not the sample axis (time-major [T, N, C], LSTM outputs):
    their statistics are not split per sample.
    ``masked``: FP32 tensors that hold mask values (-inf, finfo.min), compared through ``_unmask``; a mapping gives
    the magnitude from which each one's values are masked (a finite mask constant: ``mask_constants``), a set
    ``MASK_MAGNITUDE``.
    ``native``: float32 pairs (not masked) are not reduced in the graph: their INT8 tensor is fetched (``y``) and
    the caller compares it with FP32 in one compiled pass (``pair_stats_native``).
    """
    limits = dict(masked) if isinstance(masked, Mapping) else {t: MASK_MAGNITUDE for t in masked}
    opset = opset_of(iso_source)
    model = fold_weight_dequantization(iso_source)
    g = model.graph
    inputs = {i.name for i in model.graph.input}

    def fname(t: str) -> str:
        return t if t in inputs else FP32_PREFIX + t

    b = _Builder(opset)
    rng = np.random.default_rng(seed)
    iso_out: dict[str, str] = {}
    signatures: dict[str, str] = {}
    reused: set[str] = set()
    shared_added: set[str] = set()
    if isolated:
        init_by_name = {i.name: i for i in g.initializer}
        for k, lay in enumerate(m.layers):
            prefix = f"iso{k}::"
            built = isolated_nodes(lay, m, prefix, fname)
            if built is None:
                continue
            nodes, out = built
            sig = isolated_signature(nodes, prefix, init_by_name)
            signatures[lay.node] = sig
            if reuse_isolated and reuse_isolated.get(lay.node) == sig:
                reused.add(lay.node)
                continue
            for n in nodes:
                if n.name not in shared_added:  # shared input Q/DQ pairs appear once
                    g.node.append(n)
                    if n.name.startswith("isoq::"):
                        shared_added.add(n.name)
            iso_out[lay.node] = out
    cumulative, iso_stats = {}, {}
    elem = {vi.name: vi.type.tensor_type.elem_type for vi in
            list(fp32.graph.value_info) + list(fp32.graph.input) + list(fp32.graph.output)}

    def outside(ft: str) -> bool:  # compared by the caller
        return native and ft not in limits and elem.get(ft, TensorProto.FLOAT) == TensorProto.FLOAT

    for ft, it in tracked.items():
        tb = batched and ft not in not_sample_major
        if outside(ft):
            p = PairOutputs("", "", "", "", "", "", channel_axes.get(ft), y=it)
        else:
            p = _pair(b, fname(ft), it, ranks.get(ft, 0), channel_axes.get(ft), tb, masked=limits.get(ft))
        size = (sample_sizes or {}).get(ft)
        if reservoir and size and tb:
            idx = rng.integers(0, size, size=min(reservoir, size)).astype(np.int64)
            p.sample_idx, p.sample_y = idx, _sample(b, it, idx, tb)
        cumulative[ft] = p
    layer_of = {lay.node: lay for lay in m.layers}
    for node, out in iso_out.items():
        ft = layer_of[node].fp32_tensor
        if outside(ft):
            iso_stats[node] = PairOutputs("", "", "", "", "", "", channel_axes.get(ft), y=out)
            continue
        # x.x of the float tensor is already computed for the cumulative pair: reuse it
        xx = cumulative[ft].xx if ft in cumulative and not cumulative[ft].y else None
        iso_stats[node] = _pair(b, fname(ft), out, ranks.get(ft, 0), channel_axes.get(ft),
                                batched and ft not in not_sample_major,
                                xx=xx, masked=limits.get(ft))
    g.node.extend(b.nodes)
    g.initializer.extend(b.inits)
    outputs = {o.name: (fname(o.name), o.name) for o in fp32.graph.output}
    int_types = integer_fetch(g, list(cumulative.values()) + list(iso_stats.values()), set(iso_out.values()),
                              {q for _, q in outputs.values()})
    del g.output[:]
    fetch: list[str] = []
    for p in list(cumulative.values()) + list(iso_stats.values()):
        fetch += p.stats
    for fo, qo in outputs.values():
        fetch += [fo, qo]
    fetch = list(dict.fromkeys(fetch))
    types = {}
    for o in fp32.graph.output:
        types[fname(o.name)] = types[o.name] = o.type.tensor_type.elem_type
    types.update(int_types)
    for name in fetch:
        g.output.append(helper.make_tensor_value_info(name, types.get(name, TensorProto.FLOAT), None))
    del g.value_info[:]
    produced = {o for n in g.node for o in n.output}
    referenced = [i for n in g.node for i in n.input] + fetch
    feeds = [t[len(FP32_PREFIX):] for t in dict.fromkeys(referenced)
             if t.startswith(FP32_PREFIX) and t not in produced]
    types = {vi.name: vi.type.tensor_type.elem_type for vi in
             list(fp32.graph.value_info) + list(fp32.graph.input) + list(fp32.graph.output)}
    for t in feeds:
        g.input.append(helper.make_tensor_value_info(FP32_PREFIX + t, types.get(t, TensorProto.FLOAT), None))
    compared = list(dict.fromkeys(ft for ft, p in cumulative.items() if p.y))
    compared += [ft for ft in dict.fromkeys(layer_of[n].fp32_tensor for n, p in iso_stats.items() if p.y)
                 if ft not in compared]
    return DiffGraph(model, cumulative, iso_stats, outputs, fetch, feeds, signatures, reused, compared)


# integer types the compiled pass dequantizes (``_pairstats``'s YVALUE)
_FETCHED_INTEGERS = {TensorProto.UINT8, TensorProto.INT8, TensorProto.UINT16, TensorProto.INT16}


def integer_fetch(g: onnx.GraphProto, pairs: list[PairOutputs], own: set[str], keep: set[str]) -> dict[str, int]:
    """Pairs compared outside the graph whose tensor a per-tensor DequantizeLinear computes fetch its integer input
    instead, and the compiled pass dequantizes it as that node does (bit-identical: float(q - zero_point) * scale in
    float32). The integers are a quarter of the bytes to keep and read, and the DequantizeLinear of a tensor in
    ``own`` (the isolated copies' outputs, made here) that nothing else reads is dropped: on a 224-px MobileNetV2 the
    isolated outputs' DequantizeLinear nodes were 4% of the diff model's time. ``keep``: tensors fetched as they are
    (model outputs). Returns the fetched integer tensors' element types (for the graph outputs)."""
    inits = {i.name: i for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    read = {i for n in g.node for i in n.input} | keep
    types: dict[str, int] = {}
    dropped: set[int] = set()
    for p in pairs:
        n = producer.get(p.y) if p.y else None
        if n is None or n.op_type != "DequantizeLinear" or n.domain or len(n.input) < 3:
            continue
        scale, zp = inits.get(n.input[1]), inits.get(n.input[2])
        if (scale is None or zp is None or tensor_size(scale) != 1 or tensor_size(zp) != 1 or scale.data_type != TensorProto.FLOAT
                or zp.data_type not in _FETCHED_INTEGERS or any(a.name == "block_size" for a in n.attribute)):
            continue
        if p.y in own and p.y not in read:
            dropped.add(id(n))
        p.y, types[n.input[0]] = n.input[0], zp.data_type
        p.y_scale = float(numpy_helper.to_array(scale).reshape(-1)[0])
        p.y_zero_point = int(numpy_helper.to_array(zp).reshape(-1)[0])
    if dropped:
        kept = [n for n in g.node if id(n) not in dropped]
        del g.node[:]
        g.node.extend(kept)
    return types



def isolated_signature(nodes: list[onnx.NodeProto], prefix: str, inits: dict[str, onnx.TensorProto]) -> str:
    """A digest of everything an isolated copy computes with: ops, attributes, wiring (prefix removed),
    and the values of every constant it reads (quantization parameters, weights)."""

    h = hashlib.sha256()
    for n in nodes:
        c = onnx.NodeProto()
        c.CopyFrom(n)
        c.name = ""
        c.input[:] = [i.replace(prefix, "@") for i in c.input]
        c.output[:] = [o.replace(prefix, "@") for o in c.output]
        h.update(c.SerializeToString(deterministic=True))
        for i in n.input:
            if i in inits:
                h.update(inits[i].SerializeToString(deterministic=True))
    return h.hexdigest()


def per_sample_size(shape: tuple | None, batched: bool) -> int | None:
    """Elements in one sample of a tensor with a known static shape (beyond the batch axis)."""
    if shape is None:
        return None
    dims = shape[1:] if batched else shape
    if any(not isinstance(d, int) or d <= 0 for d in dims):
        return None
    return int(math.prod(dims))
