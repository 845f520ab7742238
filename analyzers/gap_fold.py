"""How far one layer's deployed integers depart from the exact simulation's: the per-batch fold behind each layer's
``kernel_gap_db`` and ``lsb_diff_share`` (``deployed_layers``).

One compiled pass (``analyzers/_gapfold.c``) where the extension is built; numpy otherwise, or when
``QWB_NUMPY_GAP=1`` (the tests compare the two).
"""

from __future__ import annotations

import os

import numpy as np

try:
    from analyzers import _gapfold
except ImportError:  # built without a C compiler: numpy below
    _gapfold = None

_COMPILED_TYPES = frozenset({np.dtype(np.uint8), np.dtype(np.int8), np.dtype(np.uint16), np.dtype(np.int16)})


def available() -> bool:
    """Whether the compiled pass runs (built, and not turned off by ``QWB_NUMPY_GAP=1``)."""
    return _gapfold is not None and os.environ.get("QWB_NUMPY_GAP") != "1"


def gap_fold(d: np.ndarray, e: np.ndarray, x: np.ndarray, scale: float, zero_point: float) -> tuple[int, float, int]:
    """(values where ``d`` != ``e``, what those add to the error power against ``x``, largest |d - e| in LSB).

    ``d``: deployed integers in ``e``'s layout (a transposed view is fine); ``e``: the exact simulation's integers;
    ``x``: the FP32 tensor. y = (q - zero_point) * scale; the deployed error power is the exact one plus
    sum((yd - x)^2 - (ye - x)^2) over the differing values, as only they change anything."""
    if (available() and d.dtype == e.dtype and d.dtype in _COMPILED_TYPES and x.dtype == np.float32
            and 1 <= d.ndim <= 8 and d.shape == e.shape == x.shape):
        return _gapfold.gap_fold(d, np.ascontiguousarray(e), np.ascontiguousarray(x), float(scale), float(zero_point))
    return numpy_gap_fold(d, e, x, scale, zero_point)


def numpy_gap_fold(d: np.ndarray, e: np.ndarray, x: np.ndarray, scale: float,
                   zero_point: float) -> tuple[int, float, int]:
    """``gap_fold`` in numpy: any integer or float types, the reference the compiled pass is tested against."""
    off = np.not_equal(d, e)  # where the kernel's integer is not the simulation's: few, or none, mostly
    k = int(np.count_nonzero(off))
    if not k:
        return 0, 0.0, 0
    ev, dv, xv = e[off].astype(np.float64), d[off].astype(np.float64), x[off].astype(np.float64)
    ye, yd = (ev - zero_point) * scale, (dv - zero_point) * scale
    return k, float((np.square(yd - xv) - np.square(ye - xv)).sum()), int(np.abs(dv - ev).max())
