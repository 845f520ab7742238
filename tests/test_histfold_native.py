"""The compiled histogram fold (analyzers/calibration/_histfold.c) gives the numpy path's histograms exactly.

Every case feeds the same batches to two histograms, one folded compiled and one with ``QWB_NUMPY_HISTOGRAM`` set
(numpy), and compares everything: counts, grid, min/max, count, zeros, special values bit for bit, the float64 sums
to 1e-12 (they are added in another order).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from analyzers.calibration import histogram as hmod
from analyzers.calibration.histogram import MASK_MAGNITUDE, StreamingHistogram

pytestmark = pytest.mark.skipif(hmod._histfold is None, reason="the _histfold extension is not built here")


def _fold(batches, bins, monkeypatch, numpy_path: bool) -> StreamingHistogram:
    if numpy_path:
        monkeypatch.setenv(hmod.FORCE_NUMPY_ENV, "1")
    else:
        monkeypatch.delenv(hmod.FORCE_NUMPY_ENV, raising=False)
    assert hmod.native_available() is not numpy_path
    h = StreamingHistogram(bins)
    for b in batches:
        h.update(b)
    return h


def _abs_sum(batches) -> float:
    """sum |x| over the ordinary values: the scale of the rounding error of any order of summation"""
    total = 0.0
    for b in batches:
        x = np.asarray(b, dtype=np.float64).ravel()
        total += float(np.abs(x[np.abs(x) < MASK_MAGNITUDE]).sum())
    return total


def _assert_same(batches, monkeypatch, bins=4096):
    native = _fold(batches, bins, monkeypatch, numpy_path=False)
    ref = _fold(batches, bins, monkeypatch, numpy_path=True)
    assert (native.exp, native.start) == (ref.exp, ref.start)
    np.testing.assert_array_equal(native.counts, ref.counts)
    assert (native.count, native.zeros, native.min, native.max) == (ref.count, ref.zeros, ref.min, ref.max)
    assert native.special == ref.special
    scale = _abs_sum(batches)
    assert native.sum == pytest.approx(ref.sum, rel=1e-12, abs=1e-12 * scale)
    assert native.sum_sq == pytest.approx(ref.sum_sq, rel=1e-12)
    assert native.counts.sum() == native.count
    return native


def _scaled(rng, scales, n=70_000, dtype=np.float32, offset=0.0):
    """batches of a standard normal at each scale: each one past the last widens the grid (regridding)"""
    return [(rng.standard_normal(n) * s + offset).astype(dtype) for s in scales]


CASES = {
    "widening": lambda rng: _scaled(rng, [1e-3, 1, 10, 0.1, 300, 5]),
    "tiny": lambda rng: _scaled(rng, [1e-38, 1e-36, 3e-39]),
    "subnormal": lambda rng: [(rng.integers(-50, 50, 40_000) * np.float32(1.4e-45)).astype(np.float32)],
    "huge": lambda rng: _scaled(rng, [1e4, 1e6, 3e6]),  # below the mask magnitude (1e8): ordinary values
    "negative_only": lambda rng: [-np.abs(b) - 2 for b in _scaled(rng, [1, 4, 0.5])],
    "constant": lambda rng: [np.full(30_000, 3.25, np.float32), np.full(100, 3.25, np.float32),
                             np.full(20_000, -1e-30, np.float32)],
    "relu_zeros": lambda rng: [np.maximum(b, 0) for b in _scaled(rng, [1, 2, 6])]
                              + [np.zeros(50_000, np.float32), -np.zeros(17, np.float32)],
    "small_batches": lambda rng: _scaled(rng, [0.5, 2, 0.1, 9], n=1000) + _scaled(rng, [3], n=1),
    "odd_lengths": lambda rng: (_scaled(rng, [1, 2], n=16_385) + _scaled(rng, [3], n=1023)
                                + _scaled(rng, [4], n=1025)),
    "offset": lambda rng: _scaled(rng, [0.5, 1, 2], offset=-7e5),
    "float64": lambda rng: _scaled(rng, [1e-3, 1, 1e3, 1e-200], dtype=np.float64),
    "float64_offset": lambda rng: _scaled(rng, [1e-6, 1e-3], dtype=np.float64, offset=1e4),
    "integers": lambda rng: [rng.integers(-128, 128, 50_000, dtype=np.int8),
                             rng.integers(0, 256, 20_000).astype(np.uint8),
                             rng.integers(-10**6, 10**6, 30_000, dtype=np.int32),
                             rng.integers(-2**40, 2**40, 30_000, dtype=np.int64)],
    "float16": lambda rng: _scaled(rng, [1, 100], dtype=np.float16),
    "shaped": lambda rng: [rng.standard_normal((4, 16, 28, 28)).astype(np.float32),
                           rng.standard_normal((2, 8, 9, 9)).astype(np.float32).transpose(0, 2, 3, 1)],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_compiled_fold_equals_numpy(case, monkeypatch):
    _assert_same(CASES[case](np.random.default_rng(sorted(CASES).index(case))), monkeypatch)


@pytest.mark.parametrize("bins", [2, 64, 512])
def test_compiled_fold_equals_numpy_on_small_grids(bins, monkeypatch):
    _assert_same(CASES["widening"](np.random.default_rng(7)), monkeypatch, bins)


def test_float32_values_a_few_ulps_apart_far_from_zero(monkeypatch):
    """Bin numbers past float32's mantissa (numpy subtracts them as integers there)."""
    rng = np.random.default_rng(5)
    ulp = np.spacing(np.float32(1e4))
    batches = [(np.float32(1e4) + rng.integers(0, 6, 40_000) * ulp).astype(np.float32) for _ in range(3)]
    h = _assert_same(batches, monkeypatch)
    assert abs(h.start) + h.bins >= 1 << 24


def test_float64_bin_numbers_past_52_bits(monkeypatch):
    """Grids whose bin numbers outgrow 52 bits take the compiled integer path (and numpy's cast-then-subtract)."""
    rng = np.random.default_rng(6)
    ulp = np.spacing(1e4)
    batches = [1e4 + rng.integers(0, 6, 40_000) * ulp for _ in range(2)]
    h = _assert_same(batches, monkeypatch)
    assert abs(h.start) + h.bins >= 1 << 52


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_special_values_are_counted_the_same(dtype, monkeypatch):
    rng = np.random.default_rng(8)
    fmin = np.finfo(dtype).min
    batches = []
    for k, bad in enumerate([np.nan, np.inf, -np.inf, fmin, 2e30, -1e30, 1e30]):
        b = (rng.standard_normal(30_000) * (k + 1)).astype(dtype)
        b[k::97] = bad
        batches.append(b)
    batches.append(np.array([np.nan, np.inf, -np.inf, fmin], dtype))  # nothing ordinary
    batches.append(np.array([np.nan], dtype))
    batches.append(np.array([np.float32(9.9e29), -0.0], dtype))  # just under the mask magnitude: data
    h = _assert_same(batches, monkeypatch)
    assert h.special.nan and h.special.posinf and h.special.neginf and h.special.huge_neg and h.special.huge_pos


def test_merge_of_compiled_histograms_equals_numpy(monkeypatch):
    rng = np.random.default_rng(9)
    batches = _scaled(rng, [1, 20, 0.01, 3])
    out = []
    for numpy_path in (False, True):
        parts = [_fold([b], 1024, monkeypatch, numpy_path) for b in batches]
        total = StreamingHistogram(1024)
        for p in parts:
            total.merge(p)
        out.append(total)
    np.testing.assert_array_equal(out[0].counts, out[1].counts)
    assert (out[0].exp, out[0].start, out[0].zeros) == (out[1].exp, out[1].start, out[1].zeros)


def test_threads_fold_their_own_histograms_as_one_thread_does(monkeypatch):
    """The fold releases the GIL: histograms folded by two threads at once equal the same folds in turn."""
    monkeypatch.delenv(hmod.FORCE_NUMPY_ENV, raising=False)
    rng = np.random.default_rng(10)
    data = [_scaled(rng, [1, 3, 0.2, 7], n=200_000) for _ in range(2)]
    apart = [StreamingHistogram() for _ in data]
    for h, batches in zip(apart, data):
        for b in batches:
            h.update(b)
    together = [StreamingHistogram() for _ in data]

    def fold(h, batches):
        for _ in range(3):
            for b in batches:
                h.update(b)

    threads = [threading.Thread(target=fold, args=(h, b)) for h, b in zip(together, data)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(apart, together):
        assert b.count == 3 * a.count and b.zeros == 3 * a.zeros
        np.testing.assert_array_equal(b.counts, 3 * a.counts)


def test_fold_stops_before_a_block_outside_the_grid_or_not_clean():
    fold = hmod._histfold.fold
    counts = np.zeros(8, np.int64)
    assert fold(np.array([0.5, 100.0], np.float32), counts, 0, 0, MASK_MAGNITUDE)[0] == 0
    assert fold(np.array([0.5, -1.0]), counts, 0, 0, MASK_MAGNITUDE)[0] == 0
    assert not counts.any()
    x = np.full(20_000, 2.5, np.float32)
    x[5000] = np.nan  # in the fifth block of 1024: four blocks are counted
    done, zeros, total, sq, lo, hi = fold(x, counts, 0, 0, MASK_MAGNITUDE)
    assert (done, zeros, total, sq, lo, hi) == (4096, 0, 2.5 * 4096, 6.25 * 4096, 2.5, 2.5)
    assert counts.tolist() == [0, 0, 4096, 0, 0, 0, 0, 0]
    x[5000] = 8.0  # outside [0, 8)
    assert fold(x, counts, 0, 0, MASK_MAGNITUDE)[0] == 4096
    x[5000] = 1e30
    assert fold(x.astype(np.float64), counts, 0, 0, MASK_MAGNITUDE)[0] == 4096
    assert counts[2] == 3 * 4096
    with pytest.raises(TypeError):
        fold(np.zeros(4, np.int32), counts, 0, 0, MASK_MAGNITUDE)
    with pytest.raises(TypeError):
        fold(np.zeros(4, np.float32), counts.astype(np.int32), 0, 0, MASK_MAGNITUDE)
    with pytest.raises(ValueError, match="contiguous"):
        fold(np.zeros(4, np.float32), np.zeros(8, np.int64)[::2], 0, 0, MASK_MAGNITUDE)
    counts[:] = 0
    x = np.array([0.0, 1.5, 7.25, -0.0], np.float32)
    done, zeros, total, sq, lo, hi = fold(x, counts, 0, 0, MASK_MAGNITUDE)
    assert (done, zeros, total, sq, lo, hi) == (4, 2, 8.75, 1.5**2 + 7.25**2, 0.0, 7.25)
    assert counts.tolist() == [2, 1, 0, 0, 0, 0, 0, 1]
    assert fold(np.zeros(0, np.float32), counts, 0, 0, MASK_MAGNITUDE)[0] == 0


def test_a_tensor_that_needs_a_wider_grid_midway(monkeypatch):
    """A tensor whose first blocks fit the grid and whose later ones do not (or hold NaN): the compiled fold counts
    the first on the old grid and the rest after widening, and ends with the numpy path's histogram."""
    rng = np.random.default_rng(11)
    first = rng.standard_normal(30_000).astype(np.float32)
    later = rng.standard_normal(50_000).astype(np.float32)
    later[40_000] = 300.0
    later[45_000] = np.nan
    later2 = np.concatenate([rng.standard_normal(3000), [np.inf], rng.standard_normal(3000) * 1e4])
    _assert_same([first, later, later2.astype(np.float32), later2], monkeypatch)


def test_minmax():
    mm = hmod._histfold.minmax
    assert mm(np.array([3.0, -2.0, 5.0], np.float32), MASK_MAGNITUDE) == (-2.0, 5.0, True)
    for bad in (np.nan, np.inf, -np.inf, 1e30, -1e30, 1e8, -1e9):
        for dtype in (np.float32, np.float64):
            x = np.arange(40, dtype=dtype)
            x[17] = bad
            assert mm(x, MASK_MAGNITUDE)[2] is False
    assert mm(np.array([9.99e7, -9.99e7]), MASK_MAGNITUDE) == (-9.99e7, 9.99e7, True)
    assert mm(np.array([9.99e29, -9.99e29]), 1e30) == (-9.99e29, 9.99e29, True)
    with pytest.raises(TypeError):
        mm(np.zeros(0, np.float32), MASK_MAGNITUDE)


def test_collect_gives_the_numpy_paths_histograms(monkeypatch):
    """The whole calibration pass (two folding threads, grids widening from batch to batch), compiled and numpy."""
    from analyzers.calibration.collect import collect
    from tests.models import conv_net, conv_net_data

    model = conv_net(channels=16)
    x = conv_net_data(48)["x"]
    tensors = ["x"] + [n.output[0] for n in model.graph.node if n.op_type in ("Conv", "Relu", "Gemm")]

    def batches():
        for k, a in enumerate(range(0, len(x), 6)):
            yield a, a + 6, {"x": x[a:a + 6] * np.float32(1.5 ** (k % 5) * (1 + k))}

    got = {}
    for numpy_path in (False, True):
        if numpy_path:
            monkeypatch.setenv(hmod.FORCE_NUMPY_ENV, "1")
        else:
            monkeypatch.delenv(hmod.FORCE_NUMPY_ENV, raising=False)
        got[numpy_path] = collect(model, tensors, batches(), len(x), bins=512, workers=2).histograms
    for t in tensors:
        a, b = got[False][t], got[True][t]
        np.testing.assert_array_equal(a.counts, b.counts)
        np.testing.assert_array_equal(a.edges, b.edges)
        assert (a.min, a.max, a.count, a.zeros, a.special) == (b.min, b.max, b.count, b.zeros, b.special), t
        assert a.sum == pytest.approx(b.sum, rel=1e-12, abs=1e-12 * b.count * max(abs(b.min), abs(b.max)))
        assert a.sum_sq == pytest.approx(b.sum_sq, rel=1e-12)


def test_without_the_extension_update_takes_the_numpy_path(monkeypatch):
    monkeypatch.delenv(hmod.FORCE_NUMPY_ENV, raising=False)
    monkeypatch.setattr(hmod, "_histfold", None)
    assert not hmod.native_available()
    h = StreamingHistogram(64)
    h.update(np.array([1.0, -2.0, 0.0, np.nan], np.float32))
    assert (h.count, h.zeros, h.min, h.max, h.special.nan) == (3, 1, -2.0, 1.0, 1)


def test_minmax_mask_between_two_float32_values():
    """A mask that float32 cannot hold: values just under it are clean, the next float32 up is not."""
    below = np.float32(1e30)
    mask = (float(below) + float(np.nextafter(below, np.float32(np.inf)))) / 2
    assert float(below) < mask < float(np.nextafter(below, np.float32(np.inf)))
    x = np.array([1.0, below, -below], np.float32)
    assert hmod._histfold.minmax(x, mask)[2] is True
    assert hmod._histfold.minmax(np.append(x, np.nextafter(below, np.float32(np.inf))), mask)[2] is False
    assert hmod._histfold.fold(x, np.zeros(4, np.int64), 102, -2, mask)[0] == 3
