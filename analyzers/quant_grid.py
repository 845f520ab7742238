"""The integer grid a tensor is quantized onto, with scale/zero-point from onnxruntime's own formula.

Using onnxruntime's ``compute_scale_zp`` keeps every error we predict from a range identical to what
the quantized model will actually do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnx import TensorProto

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
        from onnxruntime.quantization.quant_utils import get_qmin_qmax_for_qType  # noqa: PLC0415

        qmin, qmax = get_qmin_qmax_for_qType(self.onnx_type, self.reduce_range, self.symmetric)
        return int(qmin), int(qmax)

    @property
    def levels(self) -> int:
        qmin, qmax = self.qrange()
        return qmax - qmin + 1


def quant_params(lo: float, hi: float, spec: QuantSpec) -> tuple[float, int]:
    """(scale, zero_point) onnxruntime would use for the real range [lo, hi]."""
    from onnxruntime.quantization.quant_utils import compute_scale_zp  # noqa: PLC0415

    qmin, qmax = spec.qrange()
    zp, scale = compute_scale_zp(np.array(lo, dtype=np.float32), np.array(hi, dtype=np.float32),
                                 np.array(qmin, dtype=np.int32), np.array(qmax, dtype=np.int32), spec.symmetric)
    return float(scale), int(zp)


def fake_quant(x: np.ndarray, scale: float, zero_point: int, spec: QuantSpec) -> np.ndarray:
    """Quantize-dequantize ``x`` exactly as QuantizeLinear/DequantizeLinear do (round half to even)."""
    qmin, qmax = spec.qrange()
    q = np.clip(np.rint(x / np.float32(scale)) + zero_point, qmin, qmax)
    return ((q - zero_point) * np.float32(scale)).astype(np.float32)
