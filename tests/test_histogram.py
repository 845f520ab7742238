"""The streaming histogram: merged batch by batch it is exactly the histogram of all the data."""

from __future__ import annotations

import numpy as np
import pytest

from analyzers.calibration.histogram import StreamingHistogram, trim


def _batches(seed=0):
    """Samples whose scale and offset change a lot, so the grid has to widen on both sides and shift."""
    rng = np.random.default_rng(seed)
    out = []
    for scale, offset in [(0.01, 0), (1, 0), (10, 5), (0.1, -30), (100, 200), (1e-3, 0), (3, -1)]:
        for _ in range(20):
            out.append((rng.standard_normal(500) * scale + offset).astype(np.float32))
    out.append(np.maximum(rng.standard_normal(5000), 0).astype(np.float32))  # exact zeros
    return out


def test_merged_over_many_samples_equals_histogram_of_all_data():
    batches = _batches()
    h = StreamingHistogram(512)
    for b in batches:
        h.update(b)
    s = h.snapshot()
    everything = np.concatenate(batches)
    np.testing.assert_array_equal(s.counts, np.histogram(everything, s.edges)[0])
    assert s.count == everything.size and s.counts.sum() == everything.size
    assert s.min == everything.min() and s.max == everything.max()
    assert s.zeros == np.count_nonzero(everything == 0)
    assert s.sum == pytest.approx(everything.astype(np.float64).sum(), abs=1e-6 * float(np.abs(everything).sum()))
    assert s.sum_sq == pytest.approx((everything.astype(np.float64) ** 2).sum(), rel=1e-6)
    # the grid widened many times and still uses at least a quarter of its bins for the data
    assert np.count_nonzero(s.counts) > 0 and (s.max - s.min) / s.bin_width > 512 / 4


def test_merging_per_sample_histograms_equals_one_pass():
    batches = _batches(1)
    one = StreamingHistogram(256)
    merged = StreamingHistogram(256)
    for b in batches:
        one.update(b)
        part = StreamingHistogram(256)
        part.update(b)
        merged.merge(part)
    a, b = one.snapshot(), merged.snapshot()
    everything = np.concatenate(batches)
    np.testing.assert_array_equal(b.counts, np.histogram(everything, b.edges)[0])
    assert (a.count, a.zeros, a.min, a.max) == (b.count, b.zeros, b.min, b.max)
    assert a.bin_width == b.bin_width  # same resolution, whichever way it was built


def test_all_at_once_and_streamed_agree_once_on_the_same_grid():
    batches = _batches(2)
    streamed, once = StreamingHistogram(256), StreamingHistogram(256)
    for b in batches:
        streamed.update(b)
    once.update(np.concatenate(batches))
    # the coarser of the two grids holds both exactly: merge each into an empty histogram on it
    coarse = max(streamed.exp, once.exp)
    views = []
    for h in (streamed, once):
        v = StreamingHistogram(256)
        v.exp, v.start = coarse, 0
        v.merge(h)
        views.append(v.snapshot())
    np.testing.assert_array_equal(views[0].edges, views[1].edges)
    np.testing.assert_array_equal(views[0].counts, views[1].counts)


def test_nan_and_inf_are_counted_and_left_out():
    h = StreamingHistogram(64)
    h.update(np.array([np.nan, 1.0, np.inf, -2.0, -np.inf, 0.0], np.float32))
    h.update(np.array([np.nan, np.nan], np.float32))  # nothing finite: only counted
    s = h.snapshot()
    assert (s.nonfinite, s.count, s.min, s.max, s.zeros) == (5, 3, -2.0, 1.0, 1)
    assert (s.special.nan, s.special.neginf, s.special.posinf) == (3, 1, 1)
    assert s.counts.sum() == 3
    assert (s.data_min, s.data_max) == (-np.inf, np.inf)


def test_mask_magnitudes_are_counted_apart_and_sums_do_not_overflow():
    """finfo(float32).min padding (Hugging Face masks): counted as mask values, not data.

    Two million of them in float32 summed to -inf before (the calib JSON then failed); now the range and
    the sums come from the ordinary values only, and the sums run in float64.
    """
    fmin = np.finfo(np.float32).min
    x = np.full(2_000_000, fmin, np.float32)
    x[::4] = np.linspace(-3.0, 3.0, 500_000, dtype=np.float32)
    x[1] = 2e30  # a positive mask magnitude
    h = StreamingHistogram(256)
    h.update(x[:1_000_000])
    other = StreamingHistogram(256)
    other.update(x[1_000_000:])
    h.merge(other)
    s = h.snapshot()
    sp = s.special
    assert (sp.huge_neg, sp.huge_pos, sp.nonfinite) == (1_499_999, 1, 0)
    assert (sp.mask_min, sp.mask_max) == (float(fmin), float(np.float32(2e30)))
    assert (s.count, s.min, s.max) == (500_000, -3.0, 3.0) and s.counts.sum() == 500_000
    assert np.isfinite(s.sum) and abs(s.sum) < 1e-6 * s.count
    assert s.sum_sq == pytest.approx(float(np.sum(np.linspace(-3.0, 3.0, 500_000, dtype=np.float32) ** 2.0)))
    assert (s.data_min, s.data_max) == (float(fmin), float(np.float32(2e30)))
    assert "1,499,999 values <= -3.403e+38" in sp.describe()


@pytest.mark.parametrize("values", [np.zeros(100), np.full(100, 3.5), np.full(100, -1e-30)])
def test_constant_tensors(values):
    h = StreamingHistogram(64)
    h.update(values.astype(np.float32))
    s = h.snapshot()
    assert s.counts.sum() == 100 and s.min == s.max == np.float32(values[0])
    k = int(np.nonzero(s.counts)[0][0])
    assert s.edges[k] <= s.min < s.edges[k + 1]
    # a later, much wider batch re-bins the constant exactly
    h.update(np.array([-1000.0, 1000.0], np.float32))
    s = h.snapshot()
    allv = np.concatenate([values.astype(np.float32), [-1000.0, 1000.0]])
    np.testing.assert_array_equal(s.counts, np.histogram(allv, s.edges)[0])


def test_empty_and_integer_inputs():
    h = StreamingHistogram(16)
    h.update(np.zeros((0, 3), np.float32))
    assert h.snapshot().count == 0
    h.update(np.arange(10, dtype=np.int64))
    s = h.snapshot()
    assert s.count == 10 and s.max == 9 and s.zeros == 1


def test_large_tensor_is_binned_in_chunks_exactly():
    x = np.random.default_rng(3).standard_normal(3_000_000).astype(np.float32) * 7
    x[::7] = 0.0  # exact zeros, counted chunk by chunk
    x[3::11] = -0.0
    h = StreamingHistogram()
    h.update(x)
    s = h.snapshot()
    np.testing.assert_array_equal(s.counts, np.histogram(x, s.edges)[0])
    assert s.zeros == x.size - np.count_nonzero(x) and s.count == x.size
    assert s.sum == pytest.approx(float(np.sum(x, dtype=np.float64)), rel=1e-12)
    assert s.sum_sq == pytest.approx(float(np.sum(x.astype(np.float64) ** 2)), rel=1e-12)


def test_memory_is_fixed():
    h = StreamingHistogram(128)
    for b in _batches(4):
        h.update(b)
        assert h.counts.shape == (128,)


def test_trim_keeps_counts_and_edges_aligned():
    h = StreamingHistogram(64)
    h.update(np.array([1.0, 1.5, 2.0], np.float32))
    t = trim(h.snapshot())
    assert t.counts[0] > 0 and t.counts[-1] > 0 and len(t.edges) == len(t.counts) + 1
    assert t.counts.sum() == 3


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("offset, spread", [(0.0, 0.5), (3.0, 0.5), (-7e5, 0.5), (1e4, 0.0), (-3.5, 0.0)])
def test_bins_are_exact_where_the_grid_index_outgrows_the_mantissa(dtype, offset, spread):
    """Values a few float steps apart far from 0 (``spread`` 0: offset + 0..5 ulps) put bin 0 at an absolute
    index beyond the float's mantissa: binning then subtracts in integers; elsewhere in the float itself. Both
    must equal numpy's histogram of the same data."""
    if not spread and dtype is np.float64:
        pytest.skip("float64 bin edges past 2**53 are inexact themselves: np.histogram is no reference there")
    rng = np.random.default_rng(3)
    h = StreamingHistogram()
    ulp = np.spacing(dtype(offset))
    data = [(dtype(offset) + (rng.standard_normal(70_000) * spread * (1 + i) if spread
                              else rng.integers(0, 6, 70_000) * ulp)).astype(dtype) for i in range(3)]
    for d in data:
        h.update(d)
    s = h.snapshot()
    everything = np.concatenate(data)
    np.testing.assert_array_equal(s.counts, np.histogram(everything.astype(np.float64), s.edges)[0])
    assert s.count == everything.size
    if not spread and dtype is np.float32:
        assert abs(h.start) + h.bins >= 1 << 24  # the integer path was taken


def test_mask_magnitude_starts_at_1e8_for_floats_only():
    """-1e9 (``masked_fill(-1e9)`` code) is a mask value; 5e7 is data; integers are always data."""
    x = np.array([1.0, 5e7, -1e9, -2.5, 3e9], np.float32)
    h = StreamingHistogram(64)
    h.update(x)
    s = h.snapshot()
    assert (s.special.huge_neg, s.special.huge_pos, s.special.mask_min, s.special.mask_max) == (1, 1, -1e9, 3e9)
    assert (s.count, s.min, s.max) == (3, -2.5, 5e7)
    big = np.array([3, -2 ** 40, 2 ** 40], np.int64)
    hi = StreamingHistogram(64)
    hi.update(big)
    si = hi.snapshot()
    assert not si.special and (si.count, si.min, si.max) == (3, -2.0 ** 40, 2.0 ** 40)
