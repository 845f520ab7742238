"""What each model output is (classifier, embedding, sequence, dense), read from its shape, name and producer.

The kind decides which FP32-vs-INT8 figures mean something: top-1 agreement for a sentence embedding or for
detection scores does not. Rules, in order (``detect_kinds``; every zoo model is classified by them):

1. rank 3, last axis C > 1, made by a Softmax/LogSoftmax over that axis (through Identity, Cast, Transpose or
   a constant bias/scale) -> ``sequence``; the batch axis is the one whose symbolic dim is the batch dim of
   the inputs (axis 0 of an input), so [N, T, C] and time-major [T, N, C] both work.
2. rank 2 [N, C]: C == 1 -> ``dense`` (a regression value); a name containing embed/pool/feature/vector/
   encod/latent -> ``embedding``; logit/prob/class/softmax -> ``classifier``; else by the producer (through
   Reshape/Flatten/Squeeze/Identity/Cast/Dropout or a constant bias/scale): Softmax, LogSoftmax, Gemm,
   MatMul -> ``classifier``; pooling, ReduceMean/ReduceSum/ReduceL2, normalisation or a computed Div
   (masked mean) -> ``embedding``; Sigmoid, ReduceMax/ReduceMin, Relu, Exp, Clip (per-position scores)
   -> ``dense``; anything else -> ``classifier`` when the evaluation data has class labels, else ``embedding``.
3. everything else -> ``dense``.

Overrides (``qwb analyze --metric``, the recipe's ``[outputs."name"] kind``) replace the detected kind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import onnx

from .onnx_utils import opset_of

KINDS = ("classifier", "embedding", "sequence", "dense")

# figures each kind reports beyond SQNR and cosine (OutputResult field names), in the order they are shown
KIND_FIGURES = {
    "classifier": ("top1_agreement", "accuracy_fp32", "accuracy_int8"),
    "embedding": ("cosine_mean", "cosine_min"),
    "sequence": ("step_agreement", "sequence_match", "accuracy_fp32", "accuracy_int8"),
    "dense": ("max_abs",),
}

_TRANSPARENT = {"Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Cast", "Dropout", "Transpose"}
_AFFINE = {"Add", "Sub", "Mul", "Div"}  # transparent when the other operand is a constant
_SOFTMAX = {"Softmax", "LogSoftmax"}
_CLASSIFIER_HEADS = _SOFTMAX | {"Gemm", "MatMul"}
_EMBEDDING_HEADS = {"ReduceMean", "ReduceSum", "ReduceL2", "GlobalAveragePool", "GlobalMaxPool", "AveragePool",
                    "LpNormalization", "LayerNormalization", "Div", "Tanh"}
_DENSE_HEADS = {"Sigmoid", "ReduceMax", "ReduceMin", "Relu", "Exp", "Clip", "HardSigmoid"}
_EMBEDDING_NAME = re.compile(r"embed|pool|feature|vector|encod|latent", re.I)
_CLASSIFIER_NAME = re.compile(r"logit|prob|class|softmax", re.I)


@dataclass(frozen=True)
class OutputKind:
    """One output's kind, the axis holding samples (sequence outputs may be time-major) and why."""

    name: str
    kind: str
    batch_axis: int = 0
    blank: int = 0  # CTC blank index for sequence decoding
    reason: str = ""


def detect_kinds(model: onnx.ModelProto, class_labels: bool = False) -> dict[str, OutputKind]:
    """The kind of every graph output by the rules in this module's docstring."""
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    constants = {i.name for i in g.initializer} | {n.output[0] for n in g.node if n.op_type == "Constant"}
    batch_syms = _batch_symbols(model)
    opset = opset_of(model, 13)
    out = {}
    for vo in g.output:
        dims = _dims(vo)
        axis = _batch_axis(dims, batch_syms)
        kind, why = _classify(vo.name, dims, producer, constants, opset, class_labels)
        out[vo.name] = OutputKind(vo.name, kind, axis if kind == "sequence" else 0, 0, why)
    return out


def apply_overrides(kinds: dict[str, OutputKind], overrides: dict[str, dict]) -> dict[str, OutputKind]:
    """``kinds`` with ``{output: {"kind": ..., "blank": ...}}`` applied (unknown outputs are the caller's check)."""
    out = dict(kinds)
    for name, o in overrides.items():
        if name not in out:
            continue
        k = out[name]
        if o.get("kind"):
            k = replace(k, kind=o["kind"], reason="override")
        if o.get("blank") is not None:
            k = replace(k, blank=int(o["blank"]))
        out[name] = k
    return out


def _dims(vi: onnx.ValueInfoProto) -> list | None:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]


def _batch_symbols(model: onnx.ModelProto) -> set[str]:
    """Symbolic names of axis 0 of the model's (non-initializer) inputs: the batch dim."""
    inits = {i.name for i in model.graph.initializer}
    syms = set()
    for i in model.graph.input:
        d = _dims(i)
        if i.name not in inits and d and isinstance(d[0], str):
            syms.add(d[0])
    return syms


def _batch_axis(dims: list | None, batch_syms: set[str]) -> int:
    """The first of axes 0 and 1 whose symbol is an input's batch symbol; 0 when none is."""
    if dims:
        for ax in range(min(2, len(dims))):
            if isinstance(dims[ax], str) and dims[ax] in batch_syms:
                return ax
    return 0


def _head(tensor: str, producer: dict, constants: set[str]) -> tuple[onnx.NodeProto | None, list[int] | None]:
    """The first producer of ``tensor`` that is not a reshape/cast/constant bias, and where the output's axes
    come from in the head's output (None when a reshape in between loses axis identity)."""
    axes_map: list[int] = list(range(8))  # output axis k is head axis axes_map[k]
    reshaped = False
    cur = tensor
    for _ in range(16):
        n = producer.get(cur)
        if n is None:
            return None, None
        if n.op_type in _AFFINE and len(n.input) == 2 and (n.input[1] in constants or n.input[0] in constants):
            cur = n.input[0] if n.input[1] in constants else n.input[1]
            continue
        if n.op_type not in _TRANSPARENT or not n.input:
            return n, (None if reshaped else axes_map)
        if n.op_type == "Transpose":
            perm = next((list(a.ints) for a in n.attribute if a.name == "perm"), None)
            if perm is None:
                reshaped = True
            else:
                axes_map = [perm[a] if a < len(perm) else a for a in axes_map]
        elif n.op_type not in ("Identity", "Cast", "Dropout"):
            reshaped = True
        cur = n.input[0]
    return None, None


def _softmax_axis(node: onnx.NodeProto, rank: int, opset: int) -> int:
    ax = next((a.i for a in node.attribute if a.name == "axis"), -1 if opset >= 13 else 1)
    return ax + rank if ax < 0 else ax


def _classify(name: str, dims: list | None, producer: dict, constants: set[str], opset: int,
              class_labels: bool) -> tuple[str, str]:
    if dims is None:
        return "dense", "shape unknown"
    rank = len(dims)
    last = dims[-1] if dims else None
    head, axes_map = _head(name, producer, constants)
    op = head.op_type if head is not None else None
    if rank == 3 and (not isinstance(last, int) or last > 1) and op in _SOFTMAX and axes_map is not None \
            and _softmax_axis(head, rank, opset) == axes_map[rank - 1]:
        return "sequence", f"rank 3 from {op} over the last axis"
    if rank != 2:
        return "dense", f"rank {rank}"
    if isinstance(last, int) and last == 1:
        return "dense", "one value per sample"
    if _EMBEDDING_NAME.search(name):
        return "embedding", "output name"
    if _CLASSIFIER_NAME.search(name):
        return "classifier", "output name"
    if op in _CLASSIFIER_HEADS:
        return "classifier", f"[N, C] from {op}"
    if op in _EMBEDDING_HEADS:
        return "embedding", f"[N, D] from {op}"
    if op in _DENSE_HEADS:
        return "dense", f"[N, D] of per-position values from {op}"
    if class_labels:
        return "classifier", "[N, C] with class labels"
    return "embedding", "[N, D], not a classifier"

