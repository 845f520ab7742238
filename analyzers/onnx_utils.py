"""Small ONNX helpers the analyzers share: exposing intermediate tensors, sessions, weight axes."""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization.calibrate import CalibraterBase

from backends.runner import SessionConfig, build_session

_TWO_GB = 2**31 - 2**24


def expose_tensors(model: onnx.ModelProto, names, value_types: dict[str, int] | None = None) -> onnx.ModelProto:
    """A copy of ``model`` whose graph outputs also include ``names`` (so one run returns them all)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    existing = {o.name for o in m.graph.output}
    types = dict(value_types or {})
    for vi in itertools.chain(m.graph.value_info, m.graph.input, m.graph.output):
        if vi.type.HasField("tensor_type"):
            types.setdefault(vi.name, vi.type.tensor_type.elem_type)
    for n in names:
        if n in existing:
            continue
        m.graph.output.append(helper.make_tensor_value_info(n, types.get(n, TensorProto.FLOAT), None))
        existing.add(n)
    return m


def make_session(model: onnx.ModelProto, purpose: str = "deployed", threads: int = 0):
    """An onnxruntime CPU session for an in-memory model (``backends.runner.PURPOSES`` names the purpose).

    The session never leaves the analyzer using it; sessions of one process share one memory arena.
    """
    try:
        data = model.SerializeToString()
    except ValueError as e:  # protobuf refuses to serialise more than 2 GB
        raise ValueError("models over 2 GB must be run from a file") from e
    return build_session(SessionConfig.for_purpose(purpose, threads=threads, shared_arena=True), data)


def tensor_size(t: onnx.TensorProto | None) -> int:
    """Elements of an initializer from its dims alone (0 for none): whether a scale or zero point is per-tensor,
    without decoding its values."""
    return 0 if t is None else math.prod(t.dims)


def opset_of(model: onnx.ModelProto, default: int = 0) -> int:
    """The default-domain ONNX opset the model imports (``default`` when it declares none)."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default)


FLOAT_TYPES = frozenset({TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE})


def elem_types(model: onnx.ModelProto) -> dict[str, int]:
    """Tensor name -> ONNX element type, as far as the model declares it (inputs, outputs, value_info,
    initializers and Constant nodes); shape inference fills value_info for prepared models."""
    out = {i.name: i.data_type for i in model.graph.initializer}
    for vi in itertools.chain(model.graph.input, model.graph.output, model.graph.value_info):
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type:
            out[vi.name] = vi.type.tensor_type.elem_type
    for n in model.graph.node:
        if n.op_type == "Constant" and n.output:
            for a in n.attribute:
                if a.name == "value":
                    out[n.output[0]] = a.t.data_type
    return out


def is_float_tensor(types: dict[str, int], name: str) -> bool:
    """Only float tensors carry activations that can be quantized or compared; integer and bool tensors
    (shapes, indices, masks) never are. A tensor of unknown type counts as float (older exports)."""
    t = types.get(name)
    return t is None or t in FLOAT_TYPES


def tensors_to_calibrate(model: onnx.ModelProto, op_types) -> list[str]:
    """The activation tensors onnxruntime's calibrators would calibrate for ``op_types`` (same rule)."""

    # select_tensors_to_calibrate only reads op_types_to_calibrate from self: reuse it rather than re-implement
    names, _ = CalibraterBase.select_tensors_to_calibrate(SimpleNamespace(op_types_to_calibrate=list(op_types)),
                                                          model)
    order = {}
    for node in model.graph.node:
        for t in itertools.chain(node.input, node.output):
            order.setdefault(t, len(order))
    return sorted(names, key=lambda t: order.get(t, 1 << 30))


def weight_channel_axis(node: onnx.NodeProto, rank: int) -> int | None:
    """The output-channel axis of a node's weight (input 1), as onnxruntime's per-channel quantizer uses it."""
    if node.op_type == "Conv":
        return 0
    if node.op_type == "ConvTranspose":
        return 1
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return 0 if trans_b else 1
    if node.op_type == "MatMul":
        return rank - 1 if rank >= 2 else None
    return None


def initializer_arrays(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
