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
    sources: dict[str, Fp32Source]
    unmapped: list[str]


def map_fp32(optimized: onnx.ModelProto, fp32: onnx.ModelProto, tensors: list[str]) -> Fp32Map:
    """Each of ``tensors`` (source FP32 tensors) in ``optimized`` (onnxruntime's graph of ``fp32``), with every
    tensor it needs exposed in the returned model."""
    src_prod = {o: n for n in fp32.graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in fp32.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    inits = {i.name: i for i in fp32.graph.initializer}
    g = optimized.graph
    plain = {i.name for i in g.input} | {o for n in g.node for o in n.output}
    found: dict[str, Fp32Source] = {}
    whole: dict[str, str] = {}  # optimized tensor -> the source tensor it holds whole (blocked), for Sum inputs
    for n in g.node:
        if n.domain != NCHWC or n.op_type != "Conv" or not n.name.endswith(_SUFFIX):
            continue
        t = n.name[:-len(_SUFFIX)]
        c = _channels(t, src_prod, inits)
        if t not in src_prod or c is None:
            continue
        s = n.input[3] if len(n.input) > 3 else ""
        if not s:
            found.setdefault(t, Fp32Source(n.output[0], None, c))
            whole[n.output[0]] = t
            continue
        act = any(a.name == "activation" for a in n.attribute)
        other = whole.get(s) or (s if s in src_prod or s in {i.name for i in fp32.graph.input} else None)
        adds = [a for a in consumers.get(t, []) if a.op_type == "Add" and other is not None
                and sorted(a.input) == sorted([t, other])]
        if act or len(adds) != 1:
            continue
        found.setdefault(adds[0].output[0], Fp32Source(n.output[0], None, c))
        whole[n.output[0]] = adds[0].output[0]
        found.setdefault(t, Fp32Source(n.output[0], s, c))
    sources, unmapped = {}, []
    for t in tensors:
        if t in plain:
            sources[t] = Fp32Source(t)
        elif t in found:
            sources[t] = found[t]
        else:
            unmapped.append(t)
    m = onnx.ModelProto()
    m.CopyFrom(optimized)
    have = {o.name for o in m.graph.output}
    for name in dict.fromkeys(x for s in sources.values() for x in (s.tensor, s.minus) if x):
        if name not in have:
            m.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    return Fp32Map(m, sources, unmapped)


def _channels(t: str, producers: dict, inits: dict) -> int | None:
    """Output channels of the Conv that computes ``t`` (through its fused activation or residual Add)."""
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
        mapped = map_fp32(optimized, fp32, tensors)
        self.sources, self.unmapped = mapped.sources, mapped.unmapped
        self.session = None
        if self.unmapped:
            return
        exposed = os.path.join(folder, "fp32_exposed.onnx")
        onnx.save(mapped.model, exposed)  # weights stay in the side file onnxruntime wrote beside the graph
        self.session = build_session(SessionConfig(exposed, level="disable", shared_arena=True, config_entries=dict(
            {"session.intra_op.allow_spinning": "0"}, **config_entries)))
        outputs = [o.name for o in fp32.graph.output]
        self.fetch = list(dict.fromkeys(outputs + [x for s in self.sources.values() for x in (s.tensor, s.minus) if x]))


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


def count_outside_blocked(x: np.ndarray, channels: int, count) -> int:
    """``count(x)`` of a blocked tensor ``[N, C'/B, H, W, B]`` without its padding channels (the last block's tail)."""
    n = count(x)
    pad = x.shape[1] * x.shape[4] - channels
    if pad > 0 and n:
        n -= count(x[:, -1, :, :, x.shape[4] - pad:])
    return n
