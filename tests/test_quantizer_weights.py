"""Per-channel weight quantization in one pass (workbench/quantizer_weights.py) gives onnxruntime's bytes.

The whole-model check (every zoo model, several recipes, byte for byte against the plain quantizer) is in
tests/test_quantizer_index.py; here the function itself against onnxruntime's, on the values where rounding and
clipping decide: exact halves, both ends of the range, large and tiny scales.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, numpy_helper
from onnxruntime.quantization import qdq_quantizer, quant_utils

from workbench import quantizer_weights
from workbench.quantizer_index import indexed_quantizer

INT_TYPES = {TensorProto.INT8: np.int8, TensorProto.UINT8: np.uint8, TensorProto.INT16: np.int16,
             TensorProto.UINT16: np.uint16}


def _weight(rng, shape, axis, qtype, wdtype):
    """Weights built from chosen integers times each channel's scale, plus exact halves, and values beyond the
    range (clipped)."""
    info = np.iinfo(INT_TYPES[qtype])
    chans = shape[axis]
    top = 2 if wdtype == np.float32 else -1  # float16 weights stay finite
    scale = (rng.uniform(0.5, 2.0, chans) * 10.0 ** rng.integers(-6, top, chans)).astype(np.float32)
    zp = rng.integers(info.min // 2, info.max // 2 + 1, chans).astype(INT_TYPES[qtype])
    along = [1] * len(shape)
    along[axis] = chans
    q = rng.integers(int(info.min) - 40, int(info.max) + 40, shape)
    over = (int(info.max) - int(info.min)) // 100 + 5  # beyond float16's rounding of the weight
    q.reshape(-1)[:2] = int(info.min) - over, int(info.max) + over  # beyond both ends: clipped
    q = q - zp.reshape(along).astype(np.int64)
    half = rng.random(shape) < 0.3  # q + 0.5: round half to even decides
    w = ((q + 0.5 * half) * scale.reshape(along)).astype(wdtype)
    return numpy_helper.from_array(w, "w"), scale, zp


@pytest.mark.parametrize("wdtype", [np.float32, np.float16])
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("qtype", sorted(INT_TYPES))
def test_same_bytes_as_onnxruntime_per_channel(qtype, axis, wdtype):
    rng = np.random.default_rng(qtype * 10 + axis)
    weight, scale, zp = _weight(rng, (6, 5, 3, 3), axis, qtype, wdtype)
    plain = quant_utils.quantize_onnx_initializer(weight, qtype, zp, scale, axis)
    calls = []
    real = quant_utils.quantize_nparray

    def counted(*a, **k):
        calls.append(1)
        return real(*a, **k)

    quant_utils.quantize_nparray = counted
    try:
        fast = quantizer_weights.quantize_onnx_initializer(weight, qtype, zp, scale, axis)
    finally:
        quant_utils.quantize_nparray = real
    assert len(calls) == 1  # one pass, not one call per channel
    assert fast.SerializeToString() == plain.SerializeToString()
    values = numpy_helper.to_array(fast)
    info = np.iinfo(INT_TYPES[qtype])
    assert values.min() == info.min and values.max() == info.max  # the clipping was exercised


def test_other_cases_go_to_onnxruntime():
    """Per-tensor, blocked, 4-bit and scales given as lists are onnxruntime's own code path."""
    rng = np.random.default_rng(5)
    weight, scale, zp = _weight(rng, (4, 8), 0, TensorProto.INT8, np.float32)
    seen = []
    real = quantizer_weights._plain

    def plain(*a, **k):
        seen.append(a[4] if len(a) > 4 else None)
        return real(*a, **k)

    quantizer_weights._plain = plain
    try:
        for args in ((weight, TensorProto.INT8, zp[:1].reshape(()), scale[:1].reshape(()), None),
                     (weight, TensorProto.INT8, list(zp), list(scale), 0),
                     (weight, TensorProto.INT4, np.zeros(4, np.int8), scale, 0)):
            got = quantizer_weights.quantize_onnx_initializer(*args)
            assert got.SerializeToString() == real(*args).SerializeToString()
    finally:
        quantizer_weights._plain = real
    assert seen == [None, 0, 0]


def test_swapped_in_only_within_the_block():
    with indexed_quantizer():
        assert qdq_quantizer.quantize_onnx_initializer is quantizer_weights.quantize_onnx_initializer
    assert qdq_quantizer.quantize_onnx_initializer is quant_utils.quantize_onnx_initializer
