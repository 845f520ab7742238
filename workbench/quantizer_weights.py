"""onnxruntime's per-channel weight quantization in one numpy pass instead of one Python call per channel.

Why by hand: ``quant_utils.quantize_onnx_initializer`` (onnxruntime 1.20 to 1.32 at least) quantizes a
per-channel weight by calling ``quantize_nparray`` once per output channel, 18,000 calls and ~0.6 s of a 224-px
MobileNetV2's ~1 s ``quantize_static`` on the 2-core VM (docs/benchmarks.md). Here the same ``quantize_nparray``
runs once on the whole weight, with each channel's scale and zero point broadcast along the axis: the same numpy
operations on every element (float32 division, round half to even, the zero point added, clipped, cast), in the
same dtypes, so the bytes are the same; tests check the written model byte-identical to the plain quantizer's
(``tests/test_quantizer_index.py``). Only the plain per-channel integer case is taken over; everything else
(per-tensor, blocked, float8, 4-bit, scales not given as numpy arrays) goes to onnxruntime's own function.

It is swapped in beside the graph index, under the same fingerprint check (``workbench.quantizer_index``).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto
from onnxruntime.quantization import quant_utils

_plain = quant_utils.quantize_onnx_initializer
# the integer types quantize_nparray handles by plain arithmetic (float8 goes through a reference evaluator, 4-bit
# is packed afterwards)
_INTEGER = frozenset({TensorProto.INT8, TensorProto.UINT8, TensorProto.INT16, TensorProto.UINT16})


def quantize_onnx_initializer(weight: onnx.TensorProto, quant_type: int, zero_point, scale, axis: int | None = None,
                              quant_weight_name: str | None = None, block_size: int = 0) -> onnx.TensorProto:
    """``quant_utils.quantize_onnx_initializer``, the per-channel integer case in one pass (same bytes)."""
    if axis is None or block_size > 0 or quant_type not in _INTEGER or not _per_channel_arrays(scale, zero_point):
        return _plain(weight, quant_type, zero_point, scale, axis, quant_weight_name, block_size)
    data = quant_utils.tensor_proto_to_array(weight)
    if not -data.ndim <= axis < data.ndim or data.shape[axis] != scale.shape[0] or data.size == 0:
        return _plain(weight, quant_type, zero_point, scale, axis, quant_weight_name, block_size)
    along = [1] * data.ndim
    along[axis] = data.shape[axis]
    # a numpy scalar taken from an array (what the per-channel loop passes) promotes exactly as that array does
    q = quant_utils.quantize_nparray(quant_type, data, scale.reshape(along), zero_point.reshape(along))
    name = quant_weight_name if quant_weight_name else f"{weight.name}{quant_utils.TENSOR_NAME_QUANT_SUFFIX}"
    q = np.asarray(q, dtype=onnx.helper.tensor_dtype_to_np_dtype(quant_type)).reshape(weight.dims)
    return onnx.numpy_helper.from_array(q, name)


def _per_channel_arrays(scale, zero_point) -> bool:
    """One scale and zero point per channel, as numpy arrays: a list of Python floats would promote differently
    broadcast (float64) than element by element (a weak scalar, float32)."""
    return (isinstance(scale, np.ndarray) and isinstance(zero_point, np.ndarray) and scale.ndim == 1
            and zero_point.shape == scale.shape and scale.dtype.kind == "f" and zero_point.dtype.kind in "iu")
