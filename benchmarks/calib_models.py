"""Models and data for the calibration benchmarks, built in code with onnx.helper (no downloads, no torch).

Weights are random (seeded, He-initialised so activations keep a sensible scale through depth); these
models measure time and memory, not accuracy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CACHE = Path(__file__).resolve().parent / ".cache"


def _conv(nodes, inits, rng, name, x, cin, cout, stride=1, relu=True):
    w = (rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2.0 / (cin * 9))).astype(np.float32)
    b = (rng.standard_normal(cout) * 0.05).astype(np.float32)
    inits += [numpy_helper.from_array(w, f"{name}.w"), numpy_helper.from_array(b, f"{name}.b")]
    nodes.append(helper.make_node("Conv", [x, f"{name}.w", f"{name}.b"], [f"{name}.out"], name=name,
                                  pads=[1, 1, 1, 1], strides=[stride, stride]))
    if not relu:
        return f"{name}.out"
    nodes.append(helper.make_node("Relu", [f"{name}.out"], [f"{name}.relu"], name=f"{name}.relu"))
    return f"{name}.relu"


def _finish(nodes, inits, rng, x, cin, size, classes, name) -> onnx.ModelProto:
    wf = (rng.standard_normal((classes, cin)) * np.sqrt(1.0 / cin)).astype(np.float32)
    inits += [numpy_helper.from_array(wf, "fc.w"), numpy_helper.from_array(np.zeros(classes, np.float32), "fc.b")]
    nodes += [helper.make_node("GlobalAveragePool", [x], ["gap"], name="gap"),
              helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
              helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], name="fc", transB=1)]
    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, size, size])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def cnn_1m(size: int = 64, seed: int = 0) -> Path:
    """Six 3x3 conv+ReLU stages (32-64-128-128-256-256 channels, three stride-2), GAP, FC: 1.13 M parameters."""
    path = CACHE / f"cnn1m_{size}.onnx"
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    x, cin = "image", 3
    for i, (cout, stride) in enumerate([(32, 1), (64, 2), (128, 2), (128, 1), (256, 2), (256, 1)]):
        x = _conv(nodes, inits, rng, f"conv{i + 1}", x, cin, cout, stride)
        cin = cout
    CACHE.mkdir(exist_ok=True)
    onnx.save(_finish(nodes, inits, rng, x, cin, size, 10, "cnn1m"), str(path))
    return path


def deep_net(blocks: int = 73, channels: int = 16, size: int = 8, seed: int = 0) -> Path:
    """A plain chain of ``blocks`` conv+ReLU pairs: 2 * blocks + 2 calibrated tensors (150 for 73 blocks)."""
    path = CACHE / f"deep{blocks}_{channels}_{size}.onnx"
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    x, cin = "image", 3
    for i in range(blocks):
        x = _conv(nodes, inits, rng, f"conv{i + 1}", x, cin, channels)
        cin = channels
    CACHE.mkdir(exist_ok=True)
    onnx.save(_finish(nodes, inits, rng, x, cin, size, 10, "deep"), str(path))
    return path


def random_batches(n: int, size: int, batch: int, seed: int = 1):
    """(start, stop, feed) batches of seeded random images, generated on the fly so no data set sits in memory."""
    for start in range(0, n, batch):
        stop = min(n, start + batch)
        rng = np.random.default_rng([seed, start])
        yield start, stop, {"image": rng.standard_normal((stop - start, 3, size, size)).astype(np.float32)}
