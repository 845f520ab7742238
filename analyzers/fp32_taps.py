"""FP32 layer tensors read from the plain FP32 session's own optimized graph, so the FP32 model runs once.

Exposing a layer tensor of the FP32 model as a graph output blocks onnxruntime's fusions around it (Conv + Clip,
Conv + residual Add, the NCHWc-blocked layout on x86), so the exposed model computes other outputs in the last
bits and ran beside a plain session for the output figures: FP32 twice per batch (docs/benchmarks.md). Here the
plain session writes the graph it runs (``optimized_model_filepath``); that graph, with the tensors it already
computes added as outputs and run with optimizations off (nothing is fused again), computes the plain session's
outputs (the caller checks this on the first batch) and holds every layer tensor of a CNN in one of three forms:

* the tensor itself, where its name survives (outside NCHWc regions, ``ReorderOutput`` outputs);
* an NCHWc ``Conv`` output: shape ``[N, C', H, W]``, memory ``[N, C'/B, H, W, B]`` (channels in blocks of B, C'
  the channels padded to a multiple of B; B is MLAS's, picked per tensor on the first batch), which
  onnxruntime names after the source tensor it computes (``<tensor>_nchwc``): the Conv's, or its fused
  activation's output;
* a Conv whose residual Add onnxruntime fused (``Sum`` input): the fused output is the Add's tensor, and the
  Conv's own output is that minus the ``Sum`` input (one float subtraction, within an ulp of the Add's output:
  far below any quantization error).

A layer tensor fusion removed (a LayerNorm's Mul and Add inside onnxruntime's LayerNormalization, x * sigmoid(x)
inside QuickGelu) is re-run in float by the source nodes between it and tensors the graph holds (``recompute``:
chains of up to ``MAX_RECOMPUTE_CHAIN`` nodes). An NCHWc Conv that fused its activation itself (HardSwish) is named
after the Conv's tensor but holds the activation's. MLAS pads every blocked tensor to one block size, so the
padding of the tensors it wrote settles that size (``block_from_padding``).

Where some layer tensor is in none of these forms, ``map_fp32`` says which and the caller keeps exposing the source
tensors (correct, slower)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper

from backends.runner import SessionConfig, build_session

NCHWC = "com.microsoft.nchwc"
_SUFFIX = "_nchwc"
# single-input float ops onnxruntime fuses into an NCHWc Conv as its activation (the channel count passes through)
_PASS = frozenset({"Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "Add", "Sum"})


@dataclass(frozen=True)
class Fp32Source:
    """Where the optimized FP32 graph holds one source tensor, and how to read it back."""

    tensor: str  # the optimized graph's tensor
    minus: str | None = None  # subtract this tensor (a Conv whose residual Add was fused into it)
    channels: int | None = None  # NCHWc-blocked (``blocked``) C-channel NCHW tensor; None: the source layout


@dataclass
class Fp32Map:
    """The optimized FP32 graph with the tensors to fetch added as outputs, and each source tensor's place in it."""

    model: onnx.ModelProto
    sources: dict[str, Fp32Source]  # the tensors asked for and the inputs of those recomputed
    unmapped: list[str]
    # tensor -> the source node to re-run in float (fusion removed it), in graph order: the layer tensors and the
    # tensors between them and what the optimized graph holds
    recompute: dict[str, onnx.NodeProto]


# at most this many source nodes re-run in float for one layer tensor fusion removed (a decomposed LayerNorm, whose
# Mul and Add are layers, is 9 nodes from the input onnxruntime's fused LayerNormalization keeps)
MAX_RECOMPUTE_CHAIN = 24


def _recompute_chain(t: str, producers: dict, held, planned: dict) -> dict[str, onnx.NodeProto] | None:
    """The source nodes (tensor -> node, in graph order) that compute ``t`` from tensors the optimized graph holds
    (``held``) or ``planned`` already re-runs; None when there is none within ``MAX_RECOMPUTE_CHAIN`` nodes (a
    node with several outputs or a subgraph, or a source tensor no graph holds)."""
    chain: dict[str, onnx.NodeProto] = {}

    def add(x: str) -> bool:
        if not x or held(x) or x in planned or x in chain:
            return True
        n = producers.get(x)
        if n is None or len(n.output) != 1 or _has_subgraph(n):
            return False
        if not all(add(i) for i in n.input) or len(chain) >= MAX_RECOMPUTE_CHAIN:
            return False
        chain[x] = n  # after its inputs: graph order
        return True

    return chain if add(t) else None


def map_fp32(optimized: onnx.ModelProto, fp32: onnx.ModelProto, tensors: list[str]) -> Fp32Map:
    """Each of ``tensors`` (source FP32 tensors) in ``optimized`` (onnxruntime's graph of ``fp32``), with every
    tensor it needs exposed in the returned model. A tensor fusion removed that source nodes compute from
    initializers, graph inputs and mapped tensors is listed in ``recompute`` with those nodes, in graph order (the
    caller re-runs them in float)."""
    src_prod = {o: n for n in fp32.graph.node for o in n.output}
    by_name = {n.name: n for n in fp32.graph.node if n.name}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in fp32.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    inits = {i.name: i for i in fp32.graph.initializer}
    shapes = {vi.name: vi.type.tensor_type.shape for vi in fp32.graph.value_info}
    graph_inputs = {i.name for i in fp32.graph.input}
    g = optimized.graph
    plain = {i.name for i in g.input} | {o for n in g.node for o in n.output}
    found: dict[str, Fp32Source] = {}
    whole: dict[str, str] = {}  # optimized tensor -> the source tensor it holds whole (blocked)
    for n in g.node:
        if n.domain == NCHWC and n.op_type == "Conv" and n.name.endswith(_SUFFIX):
            t = n.name[:-len(_SUFFIX)]
            c = _channels(t, src_prod, inits, shapes)
            if t not in src_prod or c is None:
                continue
            s = n.input[3] if len(n.input) > 3 else ""
            act = next((a.s.decode() for a in n.attribute if a.name == "activation"), None)
            if not s:
                out = t
                if act is not None and src_prod[t].op_type != act:
                    # named after the Conv's tensor, but the activation it fused itself (HardSwish...) came after
                    # it: the output is the activation's tensor (a Conv fused earlier is named after that already)
                    after = consumers.get(t, [])
                    if len(after) != 1 or after[0].op_type != act:
                        continue
                    out = after[0].output[0]
                found.setdefault(out, Fp32Source(n.output[0], None, c))
                whole[n.output[0]] = out
                continue
            other = whole.get(s) or (s if s in src_prod or s in graph_inputs else None)
            adds = [a for a in consumers.get(t, []) if a.op_type == "Add" and other is not None
                    and sorted(a.input) == sorted([t, other])]
            if len(adds) != 1:
                continue
            out = adds[0].output[0]
            if act is not None:  # out = act(t + sum): the activation's tensor; t itself is recomputed
                after = consumers.get(out, [])
                if len(after) != 1 or after[0].op_type != act:
                    continue
                out = after[0].output[0]
            found.setdefault(out, Fp32Source(n.output[0], None, c))
            whole[n.output[0]] = out
            if act is None:
                found.setdefault(t, Fp32Source(n.output[0], s, c))
        elif n.domain in ("", "ai.onnx") and n.name in by_name and by_name[n.name].op_type == n.op_type:
            # a float op left inside an NCHWc region keeps its node name and works on the blocked tensor
            srcn = by_name[n.name]
            blocked_in = [i for i in n.input if i in whole]
            if len(srcn.output) != 1 or not blocked_in or n.output[0] == srcn.output[0]:
                continue
            c = _static_channels(srcn.output[0], shapes)
            if c is None and n.op_type in _PASS - {"Add", "Sum"}:
                c = found[whole[blocked_in[0]]].channels
            if c is not None:
                found.setdefault(srcn.output[0], Fp32Source(n.output[0], None, c))
                whole[n.output[0]] = srcn.output[0]
    sources, unmapped, recompute = {}, [], {}
    for t in tensors:
        if t in plain:
            sources[t] = Fp32Source(t)
        elif t in found:
            sources[t] = found[t]
    def held(i: str) -> bool:
        return i in inits or i in graph_inputs or i in sources or i in found or i in plain

    for t in tensors:
        if t in sources or t in recompute:
            continue
        chain = _recompute_chain(t, src_prod, held, recompute)
        if chain is None:
            unmapped.append(t)
            continue
        recompute.update(chain)
        for n in chain.values():
            for i in n.input:
                if i and i not in inits and i not in graph_inputs and i not in sources and i not in recompute:
                    sources[i] = found[i] if i in found else Fp32Source(i)
    m = onnx.ModelProto()
    m.CopyFrom(optimized)
    have = {o.name for o in m.graph.output}
    for name in dict.fromkeys(x for s in sources.values() for x in (s.tensor, s.minus) if x):
        if name not in have and name not in graph_inputs:
            m.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    return Fp32Map(m, sources, unmapped, recompute)


def _has_subgraph(n: onnx.NodeProto) -> bool:
    return any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in n.attribute)


def _static_channels(t: str, shapes: dict) -> int | None:
    """Axis 1 of ``t`` where shape inference fixed it."""
    s = shapes.get(t)
    if s is None or len(s.dim) != 4 or not s.dim[1].HasField("dim_value"):
        return None
    return int(s.dim[1].dim_value)


def _channels(t: str, producers: dict, inits: dict, shapes: dict) -> int | None:
    """Output channels of the Conv that computes ``t`` (through its fused activation or residual Add)."""
    if (c := _static_channels(t, shapes)) is not None:
        return c
    n, seen = producers.get(t), 0
    while n is not None and n.op_type in _PASS and n.input and seen < 4:
        n, seen = producers.get(n.input[0]), seen + 1
    if n is None or n.op_type != "Conv" or len(n.input) < 2 or n.input[1] not in inits:
        return None
    return int(inits[n.input[1]].dims[0])


class OptimizedFp32:
    """The FP32 model as the plain session runs it, with every layer tensor fetched from that very graph.

    ``plain``: the plain session (for the caller's first-batch check of the outputs); ``session``: the optimized
    graph with the layer tensors exposed, run with optimizations off; ``fetch``: its outputs to fetch (the model
    outputs first)."""

    def __init__(self, fp32: onnx.ModelProto, tensors: list[str], config_entries: dict, folder: str):
        path = os.path.join(folder, "fp32_optimized.onnx")
        cfg = SessionConfig.for_purpose("deployed", optimized_model_path=path, config_entries=dict(config_entries),
                                        shared_arena=True)
        self.plain = build_session(cfg, fp32.SerializeToString())
        optimized = onnx.load(path, load_external_data=False)
        self.nchwc = any(n.domain == NCHWC for n in optimized.graph.node)  # blocked layouts in the graph it runs
        mapped = map_fp32(optimized, fp32, tensors)
        self.sources, self.unmapped, self.recompute = mapped.sources, mapped.unmapped, mapped.recompute
        self.fp32, self.entries = fp32, dict(config_entries)
        self.session = None
        if self.unmapped:
            return
        exposed = os.path.join(folder, "fp32_exposed.onnx")
        onnx.save(mapped.model, exposed)  # weights stay in the side file onnxruntime wrote beside the graph
        self.session = build_session(SessionConfig(exposed, level="disable", shared_arena=True, config_entries=dict(
            {"session.intra_op.allow_spinning": "0"}, **config_entries)))
        outputs = [o.name for o in fp32.graph.output]
        self.fetch = list(dict.fromkeys(outputs + [x for s in self.sources.values() for x in (s.tensor, s.minus) if x]))


    def recompute_session(self, blocks: dict[str, int]):
        """(session, its inputs: fetched tensors and graph inputs) re-running each node of ``recompute`` in float
        from the fetched tensors (NCHWc ones of block size ``blocks[name]`` back to NCHW first); None when a
        blocked input has no known block size."""
        b, nodes, inputs, inits = _Names(), [], {}, []
        known = {i.name: i for i in self.fp32.graph.initializer}
        graph_inputs = {i.name: i for i in self.fp32.graph.input}
        local: dict[str, str] = {}  # source tensor -> its NCHW value in this graph
        for t, n in self.recompute.items():
            for i in n.input:
                if not i or i in local:
                    continue
                if i in known:
                    inits.append(known[i])
                    local[i] = i
                elif i in graph_inputs:
                    inputs[i] = graph_inputs[i]
                    local[i] = i
                else:
                    src = self.sources[i]
                    v = src.tensor
                    inputs[v] = helper.make_tensor_value_info(v, TensorProto.FLOAT, None)
                    if src.minus:
                        inputs[src.minus] = helper.make_tensor_value_info(src.minus, TensorProto.FLOAT, None)
                        v = b.add(nodes, "Sub", [v, src.minus])
                    if src.channels is not None:
                        if src.tensor not in blocks:
                            return None
                        v = _unblock(b, nodes, inits, v, blocks[src.tensor], src.channels)
                    local[i] = v
            c = onnx.NodeProto()
            c.CopyFrom(n)
            c.input[:] = [local.get(i, i) if i else "" for i in n.input]
            nodes.append(c)
            local[t] = t  # read by the nodes after it in the chain
        g = helper.make_graph(nodes, "fp32_recompute", list(inputs.values()),
                              [helper.make_tensor_value_info(t, TensorProto.FLOAT, None) for t in self.recompute],
                              list({i.name: i for i in inits}.values()))
        m = helper.make_model(g, opset_imports=list(self.fp32.opset_import))
        m.ir_version = self.fp32.ir_version
        sess = build_session(SessionConfig.for_purpose("exact", config_entries=self.entries, shared_arena=True),
                             m.SerializeToString())
        return sess, list(inputs)


class _Names:
    """Unique names for the nodes and constants of the recompute graph."""

    def __init__(self):
        self.k = 0

    def name(self, base: str) -> str:
        self.k += 1
        return f"recompute{self.k}::{base}"

    def add(self, nodes: list, op: str, inputs: list[str], **attrs) -> str:
        out = self.name(op)
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out


def _unblock(b: _Names, nodes: list, inits: list, x: str, block: int, channels: int) -> str:
    """An NCHWc tensor as fetched (``[N, C', H, W]``, blocked memory) back to NCHW with its ``channels``, in-graph
    (shapes read at run time, so any batch and image size)."""
    def const(v):
        n = b.name("const")
        inits.append(helper.make_tensor(n, TensorProto.INT64, [len(v)], v))
        return n

    shape = b.add(nodes, "Shape", [x])
    n_, c_, hw = (b.add(nodes, "Gather", [shape, const(ix)], axis=0) for ix in ([0], [1], [2, 3]))
    cb = b.add(nodes, "Div", [c_, const([block])])
    x5 = b.add(nodes, "Reshape", [x, b.add(nodes, "Concat", [n_, cb, hw, const([block])], axis=0)])
    t = b.add(nodes, "Transpose", [x5], perm=[0, 1, 4, 2, 3])
    x4 = b.add(nodes, "Reshape", [t, b.add(nodes, "Concat", [n_, c_, hw], axis=0)])
    return b.add(nodes, "Slice", [x4, const([0]), const([channels]), const([1])])


def blocked(x: np.ndarray, block: int) -> np.ndarray:
    """An NCHWc tensor as onnxruntime returns it (shape ``[N, C', H, W]``, memory ``[N, C'/B, H, W, B]``) viewed
    in its memory layout (no copy)."""
    n, cp, h, w = x.shape
    return x.reshape(n, cp // block, h, w, block)


def to_source(x: np.ndarray, s: Fp32Source, block: int | None, minus: np.ndarray | None = None) -> np.ndarray:
    """A fetched tensor back in its source layout (NCHW; numpy, for the few places that need the values)."""
    if minus is not None:
        x = x - minus
    if s.channels is None:
        return x
    n, cp, h, w = x.shape
    return blocked(x, block).transpose(0, 1, 4, 2, 3).reshape(n, cp, h, w)[:, :s.channels]


def block_sizes(padded: int, channels: int) -> list[int]:
    """The NCHWc block sizes that fit ``channels`` padded to ``padded`` (MLAS: 16 with AVX-512, 8 with AVX2...)."""
    return [b for b in (16, 8, 4, 32) if padded % b == 0 and 0 <= padded - channels < b]


def mlas_block_size(flags: set[str]) -> int:
    """The NCHWc block size MLAS (onnxruntime's x86 kernels) uses on a CPU with ``flags``: 16 floats, one AVX-512
    register, where AVX-512F is there; else 8 (AVX2/AVX)."""
    return 16 if "avx512f" in flags else 8


def block_from_padding(shapes: list[tuple[int, int]], preferred: int | None = None) -> int | None:
    """MLAS's NCHWc block size, from (padded, channels) of the blocked tensors it wrote: it pads every blocked
    tensor's channels up to a multiple of one block size, so the sizes every tensor allows; of several (all channel
    counts multiples of 16), ``preferred`` when it is among them; None when that does not settle it."""
    fits: set[int] | None = None
    for padded, channels in shapes:
        f = set(block_sizes(padded, channels))
        fits = f if fits is None else fits & f
    if not fits:
        return None
    if len(fits) == 1:
        return next(iter(fits))
    return preferred if preferred in fits else None


def count_outside_blocked(x: np.ndarray, channels: int, count) -> int:
    """``count(x)`` of a blocked tensor ``[N, C'/B, H, W, B]`` without its padding channels (the last block's tail)."""
    n = count(x)
    pad = x.shape[1] * x.shape[4] - channels
    if pad > 0 and n:
        n -= count(x[:, -1, :, :, x.shape[4] - pad:])
    return n
