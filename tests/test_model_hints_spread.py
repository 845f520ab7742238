"""Whole-model hint for spread-out error (16-bit activations, with its measured cost) and the INT8 MAC share
every run carries."""

from __future__ import annotations

import onnx
import pytest
from onnx import shape_inference

import resources
from analyzers.diff_types import Hint
from analyzers.hints import fallback_hint
from analyzers.model_hints import spread_error_hint
from tests.results_factory import make_result
from workbench.analysis import analyze
from workbench.formatting import mac_share_text
from workbench.hint_measure import measure_activations_16bit
from workbench.recipe import Recipe
from workbench.session import Session

NODES = [(f"n{i}", "Conv") for i in range(4)]


def _result(no_cause: int, flagged: int = 3):
    r = make_result(NODES, [10.0] * flagged + [40.0] * (4 - flagged), [30.0] * 4)
    for lay in [lay for lay in r.layers if lay.flagged][:no_cause]:
        lay.hints = [fallback_hint(lay.node)]
    return r


def test_spread_hint_fires_only_when_most_flagged_layers_have_no_single_cause():
    h = spread_error_hint(_result(no_cause=2).layers, "u8")
    assert h is not None and h.code == "activations_16bit" and "2 of 3 flagged layers" in h.message
    assert 'activation_type = "u16"' in h.suggestion and h.evidence == pytest.approx(2 / 3)
    assert spread_error_hint(_result(no_cause=1).layers, "u8") is None  # one of three: a per-layer fix exists
    assert spread_error_hint(_result(no_cause=1, flagged=1).layers, "u8") is None  # one layer is not "spread"
    assert spread_error_hint(_result(no_cause=3).layers, "u16") is None  # never the setting the run already has
    assert 'activation_type = "s16"' in spread_error_hint(_result(no_cause=3).layers, "s8").suggestion


@pytest.fixture(scope="module")
def session():
    return Session(resources.DEMO_MODEL, resources.DEMO_CALIB, resources.DEMO_EVAL)


def _conv_macs_by_hand(model_path, node_name: str) -> tuple[int, int]:
    """(this Conv's MACs, every Conv/Gemm's MACs) at batch 1, from shapes: Cout * Cin/group * kH * kW * H' * W'."""
    m = shape_inference.infer_shapes(onnx.load(str(model_path)))
    shapes = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
              for vi in list(m.graph.value_info) + list(m.graph.output) + list(m.graph.input)}
    inits = {i.name: list(i.dims) for i in m.graph.initializer}
    total, mine = 0, 0
    for n in m.graph.node:
        if n.op_type == "Conv":
            w = inits[n.input[1]]
            out = shapes[n.output[0]]
            macs = w[0] * w[1] * w[2] * w[3] * out[2] * out[3]
        elif n.op_type == "Gemm":
            w = inits[n.input[1]]
            macs = w[0] * w[1]
        else:
            continue
        total += macs
        mine += macs if n.name == node_name else 0
    return mine, total


def test_every_run_carries_its_int8_mac_share(session):
    conv = next(n.name for n in session.graph.quantizable_nodes() if n.op_type == "Conv")
    fix = Recipe()
    fix.set_precision(conv, "fp32")
    r = analyze(session, recipe=fix, samples=20, kernels="exact", isolated=False)
    mine, total = _conv_macs_by_hand(session.prepared.path, conv)
    assert 0 < mine < total
    if r.layer(conv).runtime_precision == "int8":  # onnxruntime runs it in INT8 anyway: never counted as float
        mine = 0
    assert r.macs_by_precision["macs_total"] == total
    assert r.macs_int8_share == pytest.approx(1 - mine / total)
    assert r.macs_by_precision["fp32"] == pytest.approx(mine / total)
    d = r.to_dict()
    assert d["macs_int8_share"] == pytest.approx(1 - mine / total)
    assert f"INT8 MAC share {100 * (1 - mine / total):.1f} %" in mac_share_text(r.macs_by_precision)


@pytest.mark.kernels
def test_the_16bit_hint_carries_its_measured_cost(session):
    """Measured, not asserted from one CPU: 16-bit activations leave onnxruntime's integer kernels on every x86
    CPU (there are none for 16-bit activations), so the share falls, and both models were timed."""
    r = analyze(session, samples=20, kernels="exact", isolated=False)
    r.hints.append(Hint("activations_16bit", "the error is spread out", "set u16", 1.0))
    m = measure_activations_16bit(session, session.recipe, r, runs=30)
    a, b = m["activations_8bit"], m["activations_16bit"]
    assert a["macs_int8_share"] == pytest.approx(r.macs_int8_share)  # the demo: every MAC runs in INT8 at 8 bits
    assert b["macs_int8_share"] < a["macs_int8_share"]
    for x in (a, b):
        assert 0 < x["p50_p10_ms"] <= x["p50_p90_ms"] and x["p50_ms"] > 0
    assert a["fp32_p50_ms"] == b["fp32_p50_ms"] > 0  # one benchmark: FP32 timed once for both
    assert "Measured here" in r.hints[-1].message and r.to_dict()["hints"][-1]["measured"] == m
