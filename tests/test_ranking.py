"""The ranking rules on hand-made layer results: amplification, introduced dB, the flag rule, rank orders."""

from __future__ import annotations

import math

import pytest

from analyzers.diff_types import AnalysisResult, ErrorMetrics, LayerResult
from analyzers.ranking import RANKINGS, Thresholds, amplification, flag, introduced_db, ranked


def _m(db: float) -> ErrorMetrics:
    return ErrorMetrics(db, None, None, 10 ** (-db / 10), 0.999, 0.1, 0.0)


def _layer(name: str, iso: float | None, cum: float, introduced: float | None = None) -> LayerResult:
    return LayerResult(name, "Conv", f"{name}_out", f"{name}_out_dq", "int8", 0, 0, _m(cum),
                       None if iso is None else _m(iso), introduced_db=introduced)


def test_amplification_is_isolated_minus_cumulative_when_both_are_finite():
    assert amplification(40.0, 30.0) == 10.0
    assert amplification(None, 30.0) is None
    assert amplification(math.inf, 30.0) is None
    assert amplification(40.0, math.nan) is None


def test_introduced_is_worst_input_minus_output():
    assert introduced_db([35.0, 32.0], 30.0) == 2.0
    assert introduced_db([], 30.0) is None
    assert introduced_db([math.inf], 30.0) is None


def test_flag_below_median_and_below_floor():
    layers = [_layer("a", 40.0, 40.0), _layer("b", 41.0, 39.0), _layer("c", 39.0, 38.0),
              _layer("d", 30.0, 30.0),  # 9 dB below the median (39): flagged
              _layer("e", 36.0, 36.0),  # 3 dB below: not flagged
              _layer("f", None, 10.0)]  # no isolated figure: never flagged
    got = flag(layers, Thresholds())
    assert [lay.node for lay in got] == ["d"]
    assert [lay.node for lay in layers if lay.flagged] == ["d"]

    floor = [_layer("a", 19.0, 19.0), _layer("b", 19.5, 19.0)]  # both under the 20 dB floor, worst first
    assert [lay.node for lay in flag(floor, Thresholds())] == ["a", "b"]


def test_flag_introduced_only_counts_where_the_result_is_worse_than_typical():
    layers = [_layer("first", 45.0, 45.0, introduced=50.0),  # big drop after a clean input, still the best tensor
              _layer("mid", 40.0, 40.0), _layer("low", 40.0, 35.0, introduced=8.0), _layer("end", 40.0, 38.0)]
    assert [lay.node for lay in flag(layers, Thresholds())] == ["low"]
    assert flag([_layer(n, 40.0, 35.0 if n == "low" else 40.0, introduced=8.0 if n == "low" else None)
                 for n in ("x", "low", "y")], Thresholds(introduced_db=9.0)) == []


def test_flag_keeps_only_the_worst_max_flagged():
    layers = [_layer(f"n{i}", 10.0 + i, 10.0 + i) for i in range(5)]
    got = flag(layers, Thresholds(max_flagged=2))
    assert [lay.node for lay in got] == ["n0", "n1"]
    assert sum(lay.flagged for lay in layers) == 2


def test_ranked_orders_worst_first():
    layers = [_layer("a", 30.0, 25.0, introduced=1.0), _layer("b", 20.0, 28.0, introduced=None),
              _layer("c", None, 22.0, introduced=4.0)]
    assert [lay.node for lay in ranked(layers, "isolated")] == ["b", "a", "c"]
    assert [lay.node for lay in ranked(layers, "introduced")] == ["c", "a", "b"]
    assert [lay.node for lay in ranked(layers, "cumulative")] == ["c", "a", "b"]
    assert set(RANKINGS) == {"isolated", "introduced", "cumulative"}
    with pytest.raises(ValueError):
        ranked(layers, "loudest")
    result = AnalysisResult("m.onnx", {"version": 1}, 1, 0.0, 0.0, [], layers)
    assert result.ranked("introduced") == ranked(layers, "introduced")
