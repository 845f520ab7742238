"""Ranges and statistics derived from histograms, checked against the raw values they summarise."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from analyzers.calibration.grid import QuantSpec, fake_quant, quant_params, quant_params_array
from analyzers.calibration.histogram import StreamingHistogram
from analyzers.calibration.methods import (
    METHODS,
    abs_quantile,
    derive_range,
    predicted_error,
    quantile,
    range_stats,
)

RNG = np.random.default_rng(0)
DISTRIBUTIONS = {
    "gaussian": RNG.standard_normal(200_000),
    "relu": np.maximum(RNG.standard_normal(200_000), 0.0),  # half exact zeros
    "skewed": RNG.lognormal(0.0, 1.0, 200_000) - 0.5,
    "uniform": RNG.uniform(-3.0, 7.0, 200_000),
}


def _hist(x, bins=4096, batches=8):
    h = StreamingHistogram(bins)
    for part in np.array_split(np.asarray(x, dtype=np.float32), batches):
        h.update(part)
    return h.snapshot()


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_percentile_matches_numpy_within_one_bin(name):
    x = DISTRIBUTIONS[name].astype(np.float32)
    h = _hist(x)
    for p in (0.01, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 99.999):
        assert abs(quantile(h, p / 100) - np.percentile(x, p)) <= h.bin_width, p
        assert abs(abs_quantile(h, p / 100) - np.percentile(np.abs(x), p)) <= h.bin_width, p


def test_percentile_range_follows_onnxruntime_convention():
    x = DISTRIBUTIONS["gaussian"].astype(np.float32)
    h = _hist(x)
    lo, hi = derive_range(h, "percentile", QuantSpec("u8"), 99.0)  # 0.5% cut on each side
    assert abs(lo - np.percentile(x, 0.5)) <= h.bin_width and abs(hi - np.percentile(x, 99.5)) <= h.bin_width
    lo, hi = derive_range(h, "percentile", QuantSpec("s8", symmetric=True), 99.0)  # |x| at 99%
    assert lo == -hi and abs(hi - np.percentile(np.abs(x), 99)) <= h.bin_width


@pytest.mark.parametrize("spec", [QuantSpec("u8"), QuantSpec("s8", symmetric=True)])
def test_entropy_and_mse_clip_a_planted_outlier_minmax_keeps_it(spec):
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.standard_normal(500_000), [60.0]]).astype(np.float32)
    h = _hist(x)
    assert derive_range(h, "minmax", spec)[1] == 60.0
    sqnr = {}
    for method in METHODS:
        lo, hi = derive_range(h, method, spec)
        sqnr[method] = range_stats(h, lo, hi, spec).sqnr_db
        if method in ("entropy", "mse"):
            stats = range_stats(h, lo, hi, spec)
            assert hi < 45.0 and stats.clip_high * h.count >= 0.99, (method, hi)  # the outlier saturates ...
            assert hi > 2.5 and lo < -2.5 and stats.clip_rate < 1e-3, (method, lo, hi)  # ... the bulk does not
    # MSE minimises exactly the error the lab compares, so no other method beats it
    assert sqnr["mse"] >= max(sqnr.values()) - 0.01, sqnr


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
@pytest.mark.parametrize("spec", [QuantSpec("u8"), QuantSpec("s8", symmetric=True), QuantSpec("u16"),
                                  QuantSpec("s8")], ids=["u8", "s8sym", "u16", "s8"])
def test_predicted_error_matches_fake_quantizing_the_values(name, spec):
    """The lab's 'isolated error' per method is predicted from the histogram; here it meets reality."""
    x = DISTRIBUTIONS[name].astype(np.float32)
    sample = x[::4]  # the values the histogram was built from
    h = _hist(sample)
    for method in METHODS:
        lo, hi = derive_range(h, method, spec, 99.99)
        scale, zp = quant_params(lo, hi, spec)
        actual = float(((fake_quant(sample, scale, zp, spec) - sample).astype(np.float64) ** 2).mean())
        predicted = range_stats(h, lo, hi, spec).mse
        assert predicted == pytest.approx(actual, rel=0.05), (method, lo, hi)


def test_statistics_match_the_raw_values():
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.standard_normal(100_000), [25.0, -20.0]]).astype(np.float32)
    h = _hist(x)
    spec = QuantSpec("u8")
    lo, hi = -2.0, 3.0
    s = range_stats(h, lo, hi, spec)
    q = np.rint(x / np.float32(s.scale)) + s.zero_point  # what QuantizeLinear does before saturating
    assert s.clip_low == pytest.approx(np.mean(q < 0), abs=2e-4)
    assert s.clip_high == pytest.approx(np.mean(q > 255), abs=2e-4)
    assert s.clip_rate == pytest.approx(s.clip_low + s.clip_high)
    # minmax: the 0.01% most extreme values own most of the range and the rest uses a sliver of the grid
    mm = range_stats(h, float(x.min()), float(x.max()), spec)
    bulk = np.percentile(x, [0.005, 99.995])
    assert mm.outlier_share == pytest.approx(1 - (bulk[1] - bulk[0]) / (x.max() - x.min()), abs=0.01)
    assert mm.grid_usage == pytest.approx((bulk[1] - bulk[0]) / mm.scale / 256, abs=0.01)
    assert mm.clip_rate < 1e-5 and s.outlier_share == 0.0 and s.grid_usage == 1.0


def test_zeros_and_symmetric_grid_usage():
    x = np.maximum(np.random.default_rng(3).standard_normal(100_000), 0).astype(np.float32)
    h = _hist(x)
    assert quantile(h, 0.3) == 0.0  # inside the exact zeros
    spec = QuantSpec("s8", symmetric=True)
    lo, hi = derive_range(h, "minmax", spec)
    s = range_stats(h, lo, hi, spec)
    # one-sided data on a symmetric grid: the bulk (zeros up to the 99.995th percentile) spans under half of it
    expected = (np.percentile(x, 99.995) / s.scale + 1) / 255
    assert s.grid_usage == pytest.approx(expected, abs=0.01) and s.grid_usage < 0.5


@pytest.mark.parametrize("values", [np.zeros(1000), np.full(1000, 2.5), np.full(1000, -0.75)])
def test_constant_tensors_get_their_value_exactly(values):
    h = _hist(values)
    for method in METHODS:
        for spec in (QuantSpec("u8"), QuantSpec("s8", symmetric=True), QuantSpec("s16")):
            lo, hi = derive_range(h, method, spec)
            assert (lo, hi) == (values[0], values[0])
            s = range_stats(h, lo, hi, spec)
            assert s.clip_rate == 0.0 and s.mse < 1e-10


def test_empty_histogram_and_nonfinite_values():
    h = StreamingHistogram(64)
    h.update(np.array([np.nan, np.inf], np.float32))
    s = h.snapshot()
    for method in METHODS:
        assert derive_range(s, method, QuantSpec("u8")) == (0.0, 0.0)
    assert range_stats(s, 0.0, 0.0, QuantSpec("u8")).clip_rate == 0.0
    with pytest.raises(ValueError, match="unknown calibration method"):
        derive_range(s, "kl", QuantSpec("u8"))


def test_sixteen_bit_entropy_keeps_minmax_and_mse_barely_clips():
    x = DISTRIBUTIONS["gaussian"].astype(np.float32)
    h = _hist(x)
    spec = QuantSpec("u16")
    assert derive_range(h, "entropy", spec) == (h.min, h.max)
    lo, hi = derive_range(h, "mse", spec)
    assert hi > 0.95 * h.max and lo < 0.95 * h.min


def test_vectorised_quant_params_equal_onnxruntime():
    rng = np.random.default_rng(4)
    lo = np.concatenate([rng.standard_normal(300) * 10 ** rng.uniform(-6, 3, 300), [0, 0, 1e-40, -3]])
    hi = np.concatenate([lo[:300] + np.abs(rng.standard_normal(300)) * 10 ** rng.uniform(-6, 3, 300),
                         [0, 5, 1e-40, -1]])
    for spec in (QuantSpec("u8"), QuantSpec("s8"), QuantSpec("s8", symmetric=True), QuantSpec("u16"),
                 QuantSpec("s16", symmetric=True), QuantSpec("u8", reduce_range=True)):
        scales, zps = quant_params_array(lo, hi, spec)
        for i in range(len(lo)):
            s, z = quant_params(float(lo[i]), float(hi[i]), spec)
            assert (scales[i], zps[i]) == (s, z), (spec, lo[i], hi[i])


@pytest.mark.parametrize("qtype, onnx_type", [("u8", TensorProto.UINT8), ("s8", TensorProto.INT8),
                                              ("u16", TensorProto.UINT16), ("s16", TensorProto.INT16)])
def test_fake_quant_is_bit_exact_with_onnxruntime(qtype, onnx_type):
    spec = QuantSpec(qtype)
    x = (np.random.default_rng(5).standard_normal(10_000) * 3).astype(np.float32)
    scale, zp = quant_params(-2.0, 4.0, spec)
    g = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
         helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])], "qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [x.size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [x.size])],
        [helper.make_tensor("s", TensorProto.FLOAT, [], [scale]), helper.make_tensor("z", onnx_type, [], [zp])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
    m.ir_version = 10
    y = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_array_equal(fake_quant(x, scale, zp, spec), y)


def test_predicted_error_of_a_single_bin_is_exact():
    """Values uniform in one bin far finer than the step: error is step^2/12, exactly as predicted."""
    h = StreamingHistogram(2)
    x = np.linspace(0.0, 1.0, 100_001, dtype=np.float32)[:-1]
    h.update(x)
    s = h.snapshot()
    spec = QuantSpec("u8")
    scale, zp = quant_params(0.0, 255.0, spec)  # step 1: one bin of width 1 holds every value
    err = predicted_error(s, 0.0, 255.0, spec) / s.count
    actual = float(((fake_quant(x, scale, zp, spec) - x).astype(np.float64) ** 2).mean())
    assert err == pytest.approx(actual, rel=1e-3)
