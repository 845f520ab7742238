"""Models with planted bad layers for the tune tests and benchmarks, built in code.

A planted layer reads an input channel that is always zero (its producer's bias drives that channel below
zero before the Relu) through weights a million times larger than the rest: the float model does not notice,
but each output channel's INT8 (and 16-bit) weight scale is set by the outlier, so every real weight rounds to
zero. Only keeping that layer in float fixes it.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUTLIER = 3e5  # 16-bit weights (step 3e5 / 32767 ~ 9) cannot fix it either: only float does


def planted_cnn(layers: int = 6, planted: tuple = (2, 4), channels: int = 8, side: int = 8,
                seed: int = 0) -> onnx.ModelProto:
    """x[N,3,side,side] -> ``layers`` x (Conv 3x3 + Relu) -> GAP -> Flatten -> Gemm -> y[N,10]; convs are
    named conv0.. and the ones in ``planted`` have the dead-channel outlier."""
    rng = np.random.default_rng(seed)
    c = channels
    nodes, inits = [], []
    prev = "x"
    cin = 3
    for i in range(layers):
        w = (rng.standard_normal((c, cin, 3, 3)) * np.sqrt(2.0 / (cin * 9))).astype(np.float32)  # He: the signal
        # keeps its scale through any depth
        b = (rng.standard_normal(c) * 0.05).astype(np.float32)
        if i in planted:
            w[:, 0] = OUTLIER  # reads channel 0 of its input, which is always zero
        if i + 1 in planted:
            w[0] = 0.0
            b[0] = -10.0  # output channel 0 is zero after the Relu
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes += [helper.make_node("Conv", [prev, f"w{i}", f"b{i}"], [f"c{i}"], name=f"conv{i}", pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}")]
        prev, cin = f"r{i}", c
    return _with_head("planted_cnn", nodes, inits, prev, c, side, rng)


def planted_data(n: int = 48, side: int = 8, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((n, 3, side, side)).astype(np.float32)}


SPIKE = 1000.0  # the one calibration activation that sets the planted tensor's range (the rest lie in 0..~3)


def outlier_cnn(layers: int = 4, channels: int = 8, side: int = 8, seed: int = 0) -> onnx.ModelProto:
    """``planted_cnn``'s shape without weight outliers, where conv0's output channel 0 is
    ``SPIKE * Relu(x[:, 0] - 2.5)`` at each pixel and nothing reads it (conv1's weights on it are zero): the float
    model never notices, but on ``outlier_data(spike=True)`` one activation of ``r0`` is SPIKE, so min-max
    calibration gives ``r0`` (conv1's input) a range 300 times too wide. A 99.99th-percentile range for ``r0``
    is the cheapest fix: it keeps every layer in INT8."""
    rng = np.random.default_rng(seed)
    c = channels
    nodes, inits = [], []
    prev, cin = "x", 3
    for i in range(layers):
        w = (rng.standard_normal((c, cin, 3, 3)) * np.sqrt(2.0 / (cin * 9))).astype(np.float32)
        b = (rng.standard_normal(c) * 0.05).astype(np.float32)
        if i == 0:
            w[0] = 0.0
            w[0, 0, 1, 1] = SPIKE
            b[0] = -2.5 * SPIKE
        if i == 1:
            w[:, 0] = 0.0
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes += [helper.make_node("Conv", [prev, f"w{i}", f"b{i}"], [f"c{i}"], name=f"conv{i}", pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}")]
        prev, cin = f"r{i}", c
    return _with_head("outlier_cnn", nodes, inits, prev, c, side, rng)


def outlier_data(n: int = 48, side: int = 8, seed: int = 1, spike: bool = False) -> dict[str, np.ndarray]:
    """Inputs within [-2.5, 2.5] (conv0's channel 0 stays 0); ``spike``: one pixel of x[:, 0] at 3.5 (one
    activation of SPIKE in r0)."""
    rng = np.random.default_rng(seed)
    x = np.clip(rng.standard_normal((n, 3, side, side)), -2.5, 2.5).astype(np.float32)
    if spike:
        x[0, 0, side // 2, side // 2] = 3.5
    return {"x": x}


def write_planted(d):
    """The planted CNN with its calibration (32) and evaluation (48) data in folder ``d``: the tune tests' model."""
    onnx.save(planted_cnn(), str(d / "m.onnx"))
    np.savez(d / "calib.npz", **planted_data(32, seed=1))
    np.savez(d / "eval.npz", **planted_data(48, seed=2))
    return d


def open_planted(d):
    """A session on what ``write_planted`` wrote."""
    from workbench.session import SessionSpec, open_session  # noqa: PLC0415 - the model builders need no session

    return open_session(SessionSpec(str(d / "m.onnx"), str(d / "calib.npz"), str(d / "eval.npz")))


def _with_head(name: str, nodes: list, inits: list, prev: str, c: int, side: int, rng) -> onnx.ModelProto:
    """The conv stack ``nodes`` (output ``prev``, ``c`` channels) with the shared classifier head, as a checked model."""
    wf = (rng.standard_normal((10, c)) * 0.5).astype(np.float32)
    inits = inits + [numpy_helper.from_array(wf, "wf"), numpy_helper.from_array(np.zeros(10, np.float32), "bf")]
    nodes = nodes + [helper.make_node("GlobalAveragePool", [prev], ["gap"], name="gap"),
                     helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
                     helper.make_node("Gemm", ["flat", "wf", "bf"], ["y"], name="fc", transB=1)]
    graph = helper.make_graph(nodes, name,
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, side, side])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
