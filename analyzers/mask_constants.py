"""Attention masks written with a finite constant too small to tell from data by value (-1e4, -1e5: older Hugging
Face exports' ``(1 - mask) * -10000.0``, ``masked_fill(mask == 0, -1e4)`` code), found in the graph instead; or fed
already scaled as a float model input, found by that input's values (``mask_inputs``, ``input_mask_limits``).

Values of |x| >= ``MASK_MAGNITUDE`` (1e8) are mask values wherever they occur (``calibration.histogram``); -1e4 is
not, since activations can reach it. Here a *mask constant* is a float scalar c with |c| >= ``MIN_CONSTANT`` that a
Mul scales a mask by, or a Where puts at masked positions, where the mask itself comes only from the model's integer
or boolean inputs (through casts, shape and comparison ops and arithmetic with constants). The tensors that carry c
on to a Softmax (through Add, Sub, Where and shape ops) hold mask values: in them values with |x| >= |c| / 2 are
counted as mask values (``mask_limits``), so the scores + mask Add's range is that of the real scores. A constant
whose tensors reach no Softmax is left alone (it is not an attention mask).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from .calibration.histogram import MASK_MAGNITUDE

MIN_CONSTANT = 1e3  # smaller "masks" leave the softmax weights of padded tokens above zero: not masks
# ops that keep a tensor a function of the mask inputs alone (with constants as the other operands)
# (no Gather: token ids through an embedding table are data, not a mask)
_MASK_OPS = frozenset({"Cast", "Unsqueeze", "Squeeze", "Reshape", "Expand", "Flatten", "Transpose", "Identity", "Sub",
                       "Add", "Mul", "Not", "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or",
                       "Slice", "Tile", "Concat"})
# ops that carry the constant's values through unchanged in magnitude (to within the scores they are added to)
_CARRY_OPS = frozenset({"Add", "Sub", "Where", "Cast", "Unsqueeze", "Squeeze", "Reshape", "Expand", "Flatten",
                        "Transpose", "Identity", "Tile", "Concat", "Slice"})
_MAX_HOPS = 12  # from the constant's node to the Softmax
_SMALL = 64  # elements of a constant read as a possible mask constant


def mask_limits(model: onnx.ModelProto) -> dict[str, float]:
    """Tensor -> the magnitude from which its values are mask values, for the tensors carrying a finite mask
    constant to a Softmax; never above ``MASK_MAGNITUDE``. Empty for models without such a mask."""
    g = model.graph
    consts = _constants(model)
    int_inputs = {i.name for i in g.input if i.type.tensor_type.elem_type in _INT_TYPES and i.name not in consts}
    derived = set(int_inputs)  # tensors that are functions of the integer inputs alone
    for n in g.node:
        live = [t for t in n.input if t and t not in consts]
        if n.op_type in _MASK_OPS and live and all(t in derived for t in live):
            derived.update(o for o in n.output if o)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for t in n.input:
            consumers.setdefault(t, []).append(n)
    out: dict[str, float] = {}
    for n in g.node:
        c = _mask_constant(n, consts, derived)
        if c is None:
            continue
        carried, softmax = _carried(n.output[0], consumers)
        if softmax:
            limit = min(MASK_MAGNITUDE, abs(c) / 2)
            for t in carried:
                out[t] = min(out.get(t, MASK_MAGNITUDE), limit)
    return out


def mask_inputs(model: onnx.ModelProto) -> dict[str, list[str]]:
    """Float model inputs that reach a Softmax through the ops that carry a mask (an additive mask fed already
    scaled, ``(1 - mask) * -10000.0`` computed before the model) -> the tensors carrying them, the input first.
    Whether one is a mask is up to its values (``input_mask_limits``)."""
    g = model.graph
    inits = {i.name for i in g.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for t in n.input:
            consumers.setdefault(t, []).append(n)
    out = {}
    for i in g.input:
        if i.name not in inits and i.type.tensor_type.elem_type in _FLOAT_TYPES:
            carried, softmax = _carried(i.name, consumers)
            if softmax and len(carried) > 1:
                out[i.name] = carried
    return out


def input_mask_limits(carriers: dict[str, list[str]], values: dict[str, np.ndarray]) -> dict[str, float]:
    """Tensor -> the magnitude from which its values are mask values, for the inputs of ``mask_inputs`` whose
    values (``values``: each input's distinct values in the data) are 0 and one constant c with ``MIN_CONSTANT`` <=
    |c| < ``MASK_MAGNITUDE`` (larger ones are mask values anyway): |c| / 2 in every tensor carrying it. An input
    that takes any other value is data, and one that is all zeros (no padding in the data) says nothing."""
    out: dict[str, float] = {}
    for name, carried in carriers.items():
        v = values.get(name)
        if v is None:
            continue
        c = v[v != 0]
        if c.size != 1 or not MIN_CONSTANT <= abs(float(c[0])) < MASK_MAGNITUDE:
            continue
        limit = abs(float(c[0])) / 2
        for t in carried:
            out[t] = min(out.get(t, MASK_MAGNITUDE), limit)
    return out


_FLOAT_TYPES = frozenset({TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16})
_INT_TYPES = frozenset({TensorProto.INT64, TensorProto.INT32, TensorProto.INT16, TensorProto.INT8, TensorProto.UINT8,
                        TensorProto.BOOL})


def _constants(model: onnx.ModelProto) -> dict[str, np.ndarray | None]:
    """Constant tensors: small ones read (a mask constant is a scalar or a broadcast one), weights only named."""
    out: dict[str, np.ndarray | None] = {
        i.name: numpy_helper.to_array(i) if int(np.prod(i.dims, dtype=np.int64)) <= _SMALL and not i.data_location
        else None for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant" and n.output:
            for a in n.attribute:
                if a.name == "value":
                    out[n.output[0]] = numpy_helper.to_array(a.t)
                elif a.name in ("value_float", "value_floats"):
                    out[n.output[0]] = np.asarray(a.f if a.name == "value_float" else list(a.floats), np.float32)
    return out


def _scalar(a: np.ndarray | None) -> float | None:
    """The value of a float constant whose elements are all one value (a scalar, or broadcast)."""
    if a is None or a.dtype.kind != "f" or a.size == 0:
        return None
    v = float(a.flat[0])
    return v if np.all(a == a.flat[0]) else None


def _mask_constant(n: onnx.NodeProto, consts: dict, derived: set) -> float | None:
    """c when ``n`` writes a mask constant c (a Mul of the mask by c, or a Where putting c at masked positions)."""
    if n.op_type == "Mul" and len(n.input) == 2:
        for k in (0, 1):
            c = _scalar(consts.get(n.input[k]))
            if c is not None and abs(c) >= MIN_CONSTANT and n.input[1 - k] in derived:
                return c
    if n.op_type == "Where" and len(n.input) == 3 and n.input[0] in derived:
        for k in (1, 2):
            c = _scalar(consts.get(n.input[k]))
            if c is not None and abs(c) >= MIN_CONSTANT:
                return c
    return None


def _carried(start: str, consumers: dict) -> tuple[list[str], bool]:
    """The tensors that carry ``start``'s values on (breadth first, at most ``_MAX_HOPS`` ops), and whether one of
    them is read by a Softmax."""
    seen, frontier, softmax = [start], [start], False
    for _ in range(_MAX_HOPS):
        nxt = []
        for t in frontier:
            for n in consumers.get(t, []):
                if n.op_type in ("Softmax", "LogSoftmax"):
                    softmax = True
                elif n.op_type in _CARRY_OPS and not (n.op_type == "Where" and n.input[0] == t):
                    for o in n.output:
                        if o and o not in seen:
                            seen.append(o)
                            nxt.append(o)
        frontier = nxt
    return seen, softmax
