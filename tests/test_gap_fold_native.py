"""The compiled deployed-vs-exact fold (``analyzers/_gapfold.c``) against numpy's: how many deployed integers differ
from the exact simulation's, what they add to the error power, the largest difference.

Kernel tests on random integers with a controlled share of differences, in the layouts the deployed graph hands
over (channels last against channels first: the tiled slab path; other strides: the row walk); the analysis test
runs ``--kernels both`` both ways on the same machine, so it holds on any CPU (on a VNNI CPU the kernels differ
from the simulation in fewer places, on an AVX2-only one in up to 40 % of some layers' values)."""

from __future__ import annotations

import numpy as np
import pytest

import resources
from analyzers import gap_fold as G
from workbench.analysis import analyze
from workbench.session import Session

pytestmark = pytest.mark.skipif(G._gapfold is None, reason="the _gapfold extension is not built here (no C "
                                "compiler at install time); the fold runs in numpy")

RNG = np.random.default_rng(11)


def _pair(shape, dtype, share, rng=RNG):
    """Exact integers, and deployed ones that differ from them in about ``share`` of the values (by up to 40)."""
    info = np.iinfo(dtype)
    lo, hi = max(info.min, -1000), min(info.max, 1000)
    e = rng.integers(lo, hi, shape).astype(dtype)
    d = e.astype(np.int64) + rng.integers(-40, 41, shape) * (rng.random(shape) < share)
    return np.clip(d, info.min, info.max).astype(dtype), e


def _same(got, want):
    assert got[0] == want[0] and got[2] == want[2]
    assert got[1] == pytest.approx(want[1], rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("dtype,zp", [(np.uint8, 128), (np.int8, 0), (np.uint16, 30000), (np.int16, -5)])
@pytest.mark.parametrize("share", [0.0, 0.003, 0.3, 1.0])
def test_channels_last_against_channels_first_every_integer_type(dtype, zp, share):
    """The deployed tensor held NHWC, viewed NCHW (the tiled slab path), with tiles cut at odd sizes."""
    x = RNG.standard_normal((3, 70, 9, 75)).astype(np.float32)
    d, e = _pair(x.shape, dtype, share)
    view = np.ascontiguousarray(d.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    assert not view.flags.c_contiguous
    want = G.numpy_gap_fold(view, e, x, 0.021, zp)
    _same(G.gap_fold(view, e, x, 0.021, zp), want)
    _same(G.gap_fold(d, e, x, 0.021, zp), want)  # contiguous: one run
    assert (want[0] > 0) == (share > 0)


@pytest.mark.parametrize("perm", [(1, 0, 2), (2, 1, 0), (0, 2, 1)])
def test_other_strides_take_the_row_walk(perm):
    """Layouts that are not channels-last slabs, and rows longer than the gather buffer."""
    shape = (5, 6, 5000)
    x = RNG.standard_normal(shape).astype(np.float32)
    d, e = _pair(shape, np.uint8, 0.05)
    inv = np.argsort(perm)
    view = np.ascontiguousarray(d.transpose(perm)).transpose(inv)
    _same(G.gap_fold(view, e, x, 0.5, 3), G.numpy_gap_fold(view, e, x, 0.5, 3))
    sliced = np.ascontiguousarray(np.repeat(d, 2, axis=2))[:, :, ::2]  # a step in the last dimension
    _same(G.gap_fold(sliced, e, x, 0.5, 3), G.numpy_gap_fold(sliced, e, x, 0.5, 3))


def test_one_dimension_empty_and_many_dimensions():
    for shape in [(1,), (4097,), (0, 3), (2, 1, 3, 1, 2, 1, 3, 5)]:
        x = RNG.standard_normal(shape).astype(np.float32)
        d, e = _pair(shape, np.int8, 0.5)
        _same(G.gap_fold(d, e, x, 0.1, -3), G.numpy_gap_fold(d, e, x, 0.1, -3))


def test_nan_and_inf_in_fp32():
    """Where the integers agree a NaN or inf FP32 value adds nothing (numpy only reads the differing ones); where
    they differ a NaN makes the sum NaN in both, an inf makes it non-finite (numpy: inf - inf = NaN)."""
    x = RNG.standard_normal((2, 8, 4, 4)).astype(np.float32)
    d, e = _pair(x.shape, np.uint8, 0.2)
    same = np.flatnonzero(d.ravel() == e.ravel())
    off = np.flatnonzero(d.ravel() != e.ravel())
    xs = x.copy()
    xs.ravel()[same[:3]] = [np.nan, np.inf, -np.inf]
    _same(G.gap_fold(d, e, xs, 0.1, 7), G.numpy_gap_fold(d, e, xs, 0.1, 7))
    assert np.isfinite(G.gap_fold(d, e, xs, 0.1, 7)[1])
    xs.ravel()[off[0]] = np.nan
    assert np.isnan(G.gap_fold(d, e, xs, 0.1, 7)[1]) and np.isnan(G.numpy_gap_fold(d, e, xs, 0.1, 7)[1])
    xs.ravel()[off[0]] = np.inf
    assert not np.isfinite(G.gap_fold(d, e, xs, 0.1, 7)[1])


def test_types_the_pass_does_not_take_fall_back_to_numpy(monkeypatch):
    """Mixed integer types, float64 FP32 values, or QWB_NUMPY_GAP=1: numpy's fold, the same answer."""
    x = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    d, e = _pair(x.shape, np.uint8, 0.5)
    want = G.numpy_gap_fold(d, e, x, 0.2, 1)
    _same(G.gap_fold(d.astype(np.int16), e, x, 0.2, 1), want)
    _same(G.gap_fold(d, e, x.astype(np.float64), 0.2, 1), want)
    monkeypatch.setenv("QWB_NUMPY_GAP", "1")
    assert not G.available()
    _same(G.gap_fold(d, e, x, 0.2, 1), want)


def test_kernel_refuses_what_it_cannot_read():
    x = np.zeros((2, 3), np.float32)
    d = np.zeros((2, 3), np.uint8)
    with pytest.raises(TypeError):
        G._gapfold.gap_fold(d, d.astype(np.int8), x, 1.0, 0)
    with pytest.raises(ValueError):
        G._gapfold.gap_fold(d, d, np.zeros((3, 2), np.float32), 1.0, 0)
    with pytest.raises(ValueError):
        G._gapfold.gap_fold(d, d[:1], x, 1.0, 0)


@pytest.mark.kernels
def test_both_modes_deployed_layer_figures_compiled_equal_numpy(monkeypatch):
    """``--kernels both`` on the demo: every layer's deployed figures (kernel gap, share of differing values,
    largest difference, the kernel alone) from the compiled fold equal numpy's."""
    s = Session(resources.DEMO_MODEL, resources.DEMO_CALIB, resources.DEMO_EVAL)
    fast = analyze(s, samples=96, kernels="both", remedies=False)
    with monkeypatch.context() as m:
        m.setenv("QWB_NUMPY_GAP", "1")
        slow = analyze(s, samples=96, kernels="both", remedies=False)
    pairs = [(a.deployed, b.deployed) for a, b in zip(fast.layers, slow.layers)]
    assert sum(a is not None for a, _ in pairs) > 0
    for a, b in pairs:
        assert (a is None) == (b is None)
        if a is None:
            continue
        assert a.keys() == b.keys()
        for k, v in a.items():
            if isinstance(v, float):
                assert v == pytest.approx(b[k], rel=1e-9, abs=1e-9), k
            else:
                assert v == b[k], k
