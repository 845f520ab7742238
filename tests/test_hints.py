"""Each root-cause rule fires on the data pattern it names, and stays quiet otherwise."""

from __future__ import annotations

import numpy as np

from analyzers.calibration.collect import WeightStats
from analyzers.calibration.grid import QuantSpec
from analyzers.calibration.histogram import StreamingHistogram
from analyzers.calibration.methods import range_stats
from analyzers.hints import HintInputs, clipping_hint, fallback_hint, layer_hints, mixed_ranges_hint


def _stats(values, lo=None, hi=None, spec=QuantSpec("u8")):
    h = StreamingHistogram()
    h.update(np.asarray(values, np.float32))
    s = h.snapshot()
    return range_stats(s, s.min if lo is None else lo, s.max if hi is None else hi, spec)


def _codes(**kw):
    return [h.code for h in layer_hints(HintInputs("n", kw.pop("op_type", "Conv"), "t", **kw))]


def test_outliers_fire_on_a_rare_huge_value():
    rng = np.random.default_rng(0)
    x = np.abs(rng.standard_normal(100_000))
    x[0] = 200.0
    assert "outliers" in _codes(range_stats=_stats(x))
    assert "outliers" not in _codes(range_stats=_stats(np.abs(rng.standard_normal(100_000))))


def test_clipping_fires_on_measured_saturation():
    assert "clipping" in _codes(clip_rate=0.01)
    assert "clipping" not in _codes(clip_rate=1e-5)


def test_per_channel_fires_only_under_per_tensor_with_spread_weights():
    w = WeightStats("w", "n", 0, -8.0, 8.0, np.array([-8.0, -1, -1, -1.2]), np.array([8.0, 1, 1.1, 1]))
    assert "per_channel" in _codes(weight=w, per_channel=False)
    assert "per_channel" not in _codes(weight=w, per_channel=True)
    even = WeightStats("w", "n", 0, -1.0, 1.0, np.array([-1.0, -1, -0.9]), np.array([1.0, 0.9, 1]))
    assert "per_channel" not in _codes(weight=even, per_channel=False)


def test_zero_point_skew_fires_for_one_sided_data_on_a_symmetric_grid():
    relu_like = np.abs(np.random.default_rng(1).standard_normal(10_000))
    spec = QuantSpec("s8", symmetric=True)
    assert "zero_point_skew" in _codes(range_stats=_stats(relu_like, spec=spec), symmetric_activations=True)
    centred = np.random.default_rng(2).standard_normal(10_000)
    assert "zero_point_skew" not in _codes(range_stats=_stats(centred, spec=spec), symmetric_activations=True)


def test_mixed_ranges_fire_for_add_inputs_of_very_different_scale():
    assert "mixed_ranges" in _codes(op_type="Add", input_ranges=[("a", -0.1, 0.1), ("b", -20.0, 20.0)])
    assert "mixed_ranges" not in _codes(op_type="Add", input_ranges=[("a", -1.0, 1.0), ("b", -2.0, 2.0)])
    assert "mixed_ranges" not in _codes(op_type="Conv", input_ranges=[("a", -0.1, 0.1), ("b", -20.0, 20.0)])


def test_every_hint_names_a_setting():
    rng = np.random.default_rng(3)
    x = np.abs(rng.standard_normal(50_000))
    x[:2] = 500  # 0.004% of the values: inside the top 0.01%
    hints = layer_hints(HintInputs("n", "Add", "t", _stats(x), clip_rate=0.05,
                                   input_ranges=[("a", 0, 0.01), ("b", 0, 5.0)]))
    assert {h.code for h in hints} == {"outliers", "clipping", "mixed_ranges"}
    assert all(h.suggestion and h.message for h in hints)


def test_hints_never_suggest_the_setting_the_layer_already_has():
    assert "INT16 (or FP32)" in fallback_hint("conv", "int8").suggestion
    h16 = fallback_hint("conv", "int16")
    assert "INT16" not in h16.suggestion and "FP32" in h16.suggestion and "16-bit" in h16.message
    spread = HintInputs("add", "Add", "y", input_ranges=[("a", -1.0, 1.0), ("b", -100.0, 100.0)], precision="int16")
    hint = mixed_ranges_hint(spread)
    assert hint is not None and "INT16" not in hint.suggestion and "FP32" in hint.suggestion


def test_clipping_hint_never_suggests_minmax_to_a_minmax_layer():
    """Under minmax the calibrated range holds every calibration value: clipping means the evaluation data go
    further, so the fix is other calibration data (or more precision), not 'use minmax'."""
    under_minmax = clipping_hint(HintInputs("dense", "Add", "logits", clip_rate=0.0083))
    assert "use minmax" not in under_minmax.suggestion
    assert "calibrate with data that covers" in under_minmax.suggestion and "INT16 (or FP32)" in under_minmax.suggestion
    under_pct = clipping_hint(HintInputs("dense", "Add", "logits", clip_rate=0.0083, range_method="percentile",
                                         percentile=99.9))
    assert "uses percentile 99.9" in under_pct.suggestion and "use minmax" in under_pct.suggestion
    assert clipping_hint(HintInputs("dense", "Add", "logits", clip_rate=1e-5)) is None
