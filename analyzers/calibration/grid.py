"""The integer grid a tensor is quantized onto, with scale/zero-point from onnxruntime's own formula.

Using onnxruntime's ``compute_scale_zp`` keeps every error we predict from a range identical to what
the quantized model will actually do.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from onnx import TensorProto
from onnxruntime.quantization.quant_utils import compute_scale_zp, get_qmin_qmax_for_qType

_TYPES = {"u8": TensorProto.UINT8, "s8": TensorProto.INT8, "u16": TensorProto.UINT16, "s16": TensorProto.INT16}


@dataclass(frozen=True)
class QuantSpec:
    """Integer type (u8/s8/u16/s16), whether the range is symmetrised, and 7-bit reduce_range."""

    qtype: str = "u8"
    symmetric: bool = False
    reduce_range: bool = False

    @property
    def bits(self) -> int:
        return int(self.qtype[1:])

    @property
    def onnx_type(self) -> int:
        return _TYPES[self.qtype]

    def qrange(self) -> tuple[int, int]:
        """(qmin, qmax) of the integer grid, as onnxruntime's quantizer picks them."""
        return _qrange(self.onnx_type, self.reduce_range, self.symmetric)

    @property
    def levels(self) -> int:
        qmin, qmax = self.qrange()
        return qmax - qmin + 1


@cache
def _qrange(onnx_type: int, reduce_range: bool, symmetric: bool) -> tuple[int, int]:

    qmin, qmax = get_qmin_qmax_for_qType(onnx_type, reduce_range, symmetric)
    return int(qmin), int(qmax)


def quant_params(lo: float, hi: float, spec: QuantSpec) -> tuple[float, int]:
    """(scale, zero_point) onnxruntime would use for the real range [lo, hi]."""

    qmin, qmax = spec.qrange()
    zp, scale = compute_scale_zp(np.array(lo, dtype=np.float32), np.array(hi, dtype=np.float32),
                                 np.array(qmin, dtype=np.int32), np.array(qmax, dtype=np.int32), spec.symmetric)
    return float(scale), int(zp)


def quant_params_array(lo, hi, spec: QuantSpec) -> tuple[np.ndarray, np.ndarray]:
    """``quant_params`` for arrays of candidate ranges at once (scale as float32 values, zero point).

    Hand-written because onnxruntime's ``compute_scale_zp`` takes one range per call (its degenerate-
    range check is scalar) and range searches try hundreds; the same steps in the same precision, and
    a test holds it equal to onnxruntime's function.
    """
    qmin, qmax = spec.qrange()
    rmin = np.minimum(np.asarray(lo, dtype=np.float32), np.float32(0))
    rmax = np.maximum(np.asarray(hi, dtype=np.float32), np.float32(0))
    if spec.symmetric:
        absmax = np.maximum(np.abs(rmin), np.abs(rmax))
        rmin, rmax = -absmax, absmax
    scale64 = (rmax.astype(np.float64) - rmin.astype(np.float64)) / (float(qmax) - float(qmin))
    degenerate = scale64 < np.finfo(np.float32).tiny
    safe = np.where(degenerate, 1.0, scale64)
    if spec.symmetric:
        zp = np.full(np.shape(safe), float(np.round((qmin + qmax) / 2.0)))
    else:
        zp = np.round(qmin - rmin / safe)
    scale = np.where(degenerate, 1.0, scale64.astype(np.float32).astype(np.float64))
    return scale, np.where(degenerate, 0, zp).astype(np.int64)


def fake_quant(x: np.ndarray, scale: float, zero_point: int, spec: QuantSpec) -> np.ndarray:
    """Quantize-dequantize ``x`` exactly as QuantizeLinear/DequantizeLinear do (round half to even)."""
    qmin, qmax = spec.qrange()
    q = np.clip(np.rint(x / np.float32(scale)) + zero_point, qmin, qmax)
    return ((q - zero_point) * np.float32(scale)).astype(np.float32)
