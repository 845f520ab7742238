"""Multiply-accumulates per Conv/Gemm/MatMul node, from the shapes onnx's shape inference gives.

Used to weight INT8 coverage by compute rather than by node count: one big MatMul left in float
matters more than ten Reshapes. Counted on the model *before* onnxruntime optimizes it (all standard
ONNX ops, so onnx's shape inference works, including on QDQ models whose DequantizeLinear outputs
carry the float shapes); the input shapes come from the actual feed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import onnx
from onnx import shape_inference

CONV_OPS = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3}  # op -> index of the weight input
MATMUL_OPS = {"MatMul", "MatMulInteger", "QLinearMatMul"}
MAC_OPS = frozenset(CONV_OPS) | MATMUL_OPS | {"Gemm", "ConvTranspose"}


@dataclass(frozen=True)
class NodeMacs:
    """One compute node: its multiply-accumulates per run of the given feed (None: shape unknown)."""

    name: str
    op_type: str
    macs: int | None
    weight: str | None  # the initializer behind its weight input, if any (follows one DequantizeLinear)


_KEEP_DATA = 4096  # initializers up to this many elements keep their values (shape constants, data propagation)


def count_macs(model, input_shapes: dict[str, tuple]) -> list[NodeMacs]:
    """MACs of every Conv/ConvTranspose/Gemm/MatMul (and integer forms) in ``model`` for these inputs.

    ``model`` is an ``onnx.ModelProto`` (weights may be left on disk: only their dims are read).
    """

    m = _with_shapes(model, input_shapes, strip=True)
    try:
        inferred = shape_inference.infer_shapes(m, strict_mode=False, data_prop=True)
    except Exception:  # noqa: BLE001 - contrib ops or bad value_info: count what can be counted
        inferred = m
    out = _count(inferred)
    if any(n.macs is None for n in out):  # e.g. TF-style "SAME" padding computed from Shape: onnx cannot follow it
        try:
            from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference  # noqa: PLC0415 - fallback only

            again = _count(SymbolicShapeInference.infer_shapes(_with_shapes(model, input_shapes), auto_merge=True))
            if sum(n.macs is None for n in again) < sum(n.macs is None for n in out):
                out = again
        except Exception:  # noqa: BLE001 - a fallback: keep what onnx's inference counted
            pass
    return out


def _with_shapes(model, input_shapes: dict[str, tuple], strip: bool = False):
    """A copy of ``model`` whose inputs have ``input_shapes``; ``strip``: without the values of large initializers
    (onnx's shape inference reads their dims, and values only of small shape constants; the weights' bytes would be
    serialized through it twice for nothing: 0.08 -> 0.03 s on a 224-px MobileNetV2)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    if strip:
        for init in m.graph.initializer:
            if math.prod(init.dims) > _KEEP_DATA:
                for f in ("raw_data", "float_data", "double_data", "int32_data", "int64_data", "external_data"):
                    init.ClearField(f)
                init.ClearField("data_location")
    for inp in m.graph.input:
        if inp.name in input_shapes and inp.type.HasField("tensor_type"):
            dims = inp.type.tensor_type.shape.dim
            del dims[:]
            for d in input_shapes[inp.name]:
                dims.add().dim_value = int(d)
    return m


def _count(m) -> list[NodeMacs]:
    """MACs of every compute node of ``m``, with the shapes its value_info holds."""
    shapes: dict[str, tuple | None] = {}
    for vi in list(m.graph.input) + list(m.graph.value_info) + list(m.graph.output):
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
            dims = vi.type.tensor_type.shape.dim
            shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
    for init in m.graph.initializer:
        shapes[init.name] = tuple(init.dims)
    inits = {i.name for i in m.graph.initializer}
    producer = {o: n for n in m.graph.node for o in n.output}

    def weight_source(tensor: str) -> str | None:
        if tensor in inits:
            return tensor
        p = producer.get(tensor)
        if p is not None and p.op_type == "DequantizeLinear" and p.input[0] in inits:
            return p.input[0]
        return None

    out = []
    for n in m.graph.node:
        if n.op_type not in MAC_OPS:
            continue
        w_idx = CONV_OPS.get(n.op_type, 1 if n.op_type in ("Gemm", "ConvTranspose") else None)
        weight = weight_source(n.input[w_idx]) if w_idx is not None and len(n.input) > w_idx else None
        if weight is None and n.op_type in MATMUL_OPS:
            b_idx = 3 if n.op_type == "QLinearMatMul" else 1
            weight = weight_source(n.input[b_idx]) if len(n.input) > b_idx else None
        out.append(NodeMacs(n.name, n.op_type, _macs(n, shapes), weight))
    return out


def _known(shape) -> bool:
    return shape is not None and all(isinstance(d, int) and d >= 0 for d in shape)


def _macs(node, shapes: dict) -> int | None:
    op = node.op_type
    y = shapes.get(node.output[0])
    if op in CONV_OPS:
        w = shapes.get(node.input[CONV_OPS[op]])
        # every output element is a dot product over (C_in / group) * kernel
        return math.prod(y) * math.prod(w[1:]) if _known(y) and _known(w) and len(w) >= 2 else None
    if op == "ConvTranspose":
        x, w = shapes.get(node.input[0]), shapes.get(node.input[1])
        # every input element is scattered through (C_out / group) * kernel weights
        return math.prod(x) * math.prod(w[1:]) if _known(x) and _known(w) and len(w) >= 2 else None
    if op == "Gemm":
        a = shapes.get(node.input[0])
        trans_a = next((at.i for at in node.attribute if at.name == "transA"), 0)
        if not (_known(y) and _known(a) and len(a) == 2):
            return None
        return math.prod(y) * (a[0] if trans_a else a[1])
    if op in MATMUL_OPS:
        a = shapes.get(node.input[0])
        return math.prod(y) * a[-1] if _known(y) and _known(a) and len(a) >= 1 else None
    return None
