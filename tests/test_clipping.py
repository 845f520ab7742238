"""Dragged clip line -> percentile: the inverse of ``percentile_range`` through the histogram's CDF."""

from __future__ import annotations

import numpy as np
import pytest

from analyzers.calibration.clipping import lower_line_movable, method_ranges, percentile_for_clip
from analyzers.calibration.grid import QuantSpec
from analyzers.calibration.histogram import StreamingHistogram
from analyzers.calibration.methods import percentile_range


def _hist(values):
    h = StreamingHistogram()
    h.update(values)
    return h.snapshot()


@pytest.mark.parametrize("p", [99.0, 99.9, 99.99])
def test_round_trip_relu_like_data(p):
    h = _hist(np.abs(np.random.default_rng(0).standard_normal(200_000)))
    spec = QuantSpec("u8")
    lo, hi = percentile_range(h, p, spec)
    assert not lower_line_movable(h, spec)
    assert percentile_for_clip(h, hi, spec, "hi") == pytest.approx(p, abs=0.002)


def test_round_trip_signed_data_both_sides_and_symmetric():
    h = _hist(np.random.default_rng(1).standard_normal(200_000))
    spec = QuantSpec("u8")
    lo, hi = percentile_range(h, 99.5, spec)
    assert percentile_for_clip(h, hi, spec, "hi") == pytest.approx(99.5, abs=0.01)
    assert percentile_for_clip(h, lo, spec, "lo") == pytest.approx(99.5, abs=0.01)
    sym = QuantSpec("s8", symmetric=True)
    _, t = percentile_range(h, 99.5, sym)
    assert percentile_for_clip(h, t, sym) == pytest.approx(99.5, abs=0.01)
    assert percentile_for_clip(h, -t, sym, "lo") == pytest.approx(99.5, abs=0.01)


def test_clamped_to_what_the_recipe_accepts():
    h = _hist(np.random.default_rng(2).standard_normal(10_000))
    spec = QuantSpec("u8")
    assert percentile_for_clip(h, 1e9, spec, "hi") == 100.0
    assert percentile_for_clip(h, 0.0, spec, "hi") > 50.0


def test_every_method_has_a_range():
    h = _hist(np.random.default_rng(3).standard_normal(10_000))
    r = method_ranges(h, QuantSpec("u8"), 99.9)
    assert set(r) == {"minmax", "percentile", "entropy", "mse"}
    assert all(lo < hi for lo, hi in r.values())


def test_packed_histograms_give_the_same_ranges_and_are_small():
    from analyzers.calibration.compact import CompactHistograms
    from analyzers.calibration.methods import derive_range

    rng = np.random.default_rng(4)
    hists = {"relu": _hist(np.abs(rng.standard_normal(50_000))), "signed": _hist(rng.standard_normal(50_000) * 3),
             "const": _hist(np.full(100, 2.5, np.float32))}
    packed = CompactHistograms.pack(hists)
    assert set(packed) == set(hists) and len(packed) == 3 and "relu" in packed
    assert packed.nbytes < sum(h.counts.nbytes + h.edges.nbytes for h in hists.values()) / 4
    for name, h in hists.items():
        p = packed[name]
        assert p.count == h.count and p.min == h.min and p.max == h.max and p.counts.sum() == h.counts.sum()
        for method in ("minmax", "percentile", "entropy", "mse"):
            assert derive_range(p, method, QuantSpec("u8"), 99.9) == pytest.approx(
                derive_range(h, method, QuantSpec("u8"), 99.9), rel=1e-9, abs=1e-12)
