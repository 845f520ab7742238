"""A MobileNetV3/EfficientNet-style CNN written the way tf2onnx writes a Keras model, with onnx.helper.

Input ``input_1`` [N, 32, 32, 3] NHWC float (dynamic batch and spatial size) -> Transpose to NCHW ->
'SAME' padding computed in the graph for every strided conv (Shape -> Gather -> ceil-div / Mul / Sub / Max
arithmetic on int64 -> Concat -> Pad), stem conv + swish (x * Sigmoid(x)), depthwise 3x3 conv (group = C) +
hard-swish (``HardSwish`` at opset >= 14, ``x * HardSigmoid(x)`` before), squeeze-excite (ReduceMean ->
1x1 conv -> Relu -> 1x1 conv -> Sigmoid -> Mul), projection conv, global ReduceMean, MatMul + Add ->
``logits`` [N, 10]. Eval labels are the FP32 model's own predictions.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from . import ZooBuild
from .common import argmax_labels, rng, run_fp32

CLASSES = 10


class _G:
    """A tiny graph writer: unique names, initializers, nodes."""

    def __init__(self, seed: int):
        self.nodes, self.inits, self.k = [], [], 0
        self.r = rng(seed)

    def name(self, base):
        self.k += 1
        return f"{base}_{self.k}"

    def init(self, base, arr):
        n = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), n))
        return n

    def w(self, base, shape, scale):
        return self.init(base, (self.r.standard_normal(shape) * scale).astype(np.float32))

    def op(self, op, inputs, base=None, **attrs):
        out = self.name(base or op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out.replace("_", "/", 1), **attrs))
        return out


def same_pad(g: _G, x: str, k: int, s: int) -> str:
    """tf2onnx's dynamic 'SAME' padding: pads from the runtime H, W of ``x`` (NCHW), then Pad."""
    shape = g.op("Shape", [x], "shape")
    hw = g.op("Gather", [shape, g.init("hw_idx", np.array([2, 3], np.int64))], "hw", axis=0)
    sc, kc, one, zero = (g.init(n, np.array([v], np.int64)) for n, v in (("s", s), ("k", k), ("one", 1), ("zero", 0)))
    # out = ceil(in / s) = (in + s - 1) / s ; total = max((out - 1) * s + k - in, 0)
    out = g.op("Div", [g.op("Add", [hw, g.op("Sub", [sc, one])]), sc], "out_hw")
    total = g.op("Max", [g.op("Sub", [g.op("Add", [g.op("Mul", [g.op("Sub", [out, one]), sc]), kc]), hw]),
                         zero], "pad_total")
    before = g.op("Div", [total, g.init("two", np.array([2], np.int64))], "pad_before")
    after = g.op("Sub", [total, before], "pad_after")
    zz = g.init("zz", np.zeros(2, np.int64))
    pads = g.op("Concat", [zz, before, zz, after], "pads", axis=0)
    return g.op("Pad", [x, pads], "Pad", mode="constant")


def conv(g: _G, x: str, cin: int, cout: int, k: int, s: int = 1, group: int = 1, base: str = "Conv2D") -> str:
    if s > 1:
        x = same_pad(g, x, k, s)
        pads = [0, 0, 0, 0]
    else:
        pads = [k // 2] * 4
    w = g.w(f"{base}_weights", (cout, cin // group, k, k), 1.0 / np.sqrt(cin // group * k * k))
    b = g.init(f"{base}_bias", (g.r.standard_normal(cout) * 0.1).astype(np.float32))
    return g.op("Conv", [x, w, b], base, kernel_shape=[k, k], strides=[s, s], pads=pads, group=group)


def swish(g: _G, x: str) -> str:
    return g.op("Mul", [x, g.op("Sigmoid", [x])], "swish")


def hard_swish(g: _G, x: str, opset: int) -> str:
    if opset >= 14:
        return g.op("HardSwish", [x], "hard_swish")
    return g.op("Mul", [x, g.op("HardSigmoid", [x], alpha=1.0 / 6, beta=0.5)], "hard_swish")


def squeeze_excite(g: _G, x: str, c: int, r: int = 4) -> str:
    s = g.op("ReduceMean", [x], "se_squeeze", axes=[2, 3], keepdims=1)
    s = g.op("Relu", [conv(g, s, c, c // r, 1, base="se_reduce")])
    s = g.op("Sigmoid", [conv(g, s, c // r, c, 1, base="se_expand")])
    return g.op("Mul", [x, s], "se_excite")


def model(opset: int) -> onnx.ModelProto:
    g = _G(0)
    x = g.op("Transpose", ["input_1"], "transpose_nchw", perm=[0, 3, 1, 2])
    x = swish(g, conv(g, x, 3, 16, 3, 2, base="stem_conv"))  # 16x16
    x = hard_swish(g, conv(g, x, 16, 16, 3, 1, group=16, base="block1_dwconv"), opset)
    x = squeeze_excite(g, x, 16)
    x = conv(g, x, 16, 24, 1, base="block1_project")
    x = swish(g, conv(g, x, 24, 48, 1, base="block2_expand"))
    x = hard_swish(g, conv(g, x, 48, 48, 3, 2, group=48, base="block2_dwconv"), opset)  # 8x8
    x = squeeze_excite(g, x, 48)
    x = conv(g, x, 48, 32, 1, base="block2_project")
    x = g.op("ReduceMean", [x], "avg_pool", axes=[2, 3], keepdims=0)
    wf = g.w("dense_kernel", (32, CLASSES), 1.0)
    bf = g.init("dense_bias", np.zeros(CLASSES, np.float32))
    y = g.op("MatMul", [x, wf], "dense_MatMul")
    g.nodes.append(helper.make_node("Add", [y, bf], ["logits"], name="dense/BiasAdd"))
    graph = helper.make_graph(g.nodes, "tf_cnn",
                              [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, ["N", "H", "W", 3])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", CLASSES])], g.inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="tf2onnx-style")
    m.ir_version = 8
    return m


def _images(n: int, seed: int) -> np.ndarray:
    """Smooth patterns of random frequency, phase and contrast per sample and channel, plus noise."""
    r = rng(seed)
    yy, xx = np.mgrid[0:32, 0:32] / 32.0
    f = r.uniform(1, 8, (n, 1, 1, 3, 2))
    ph = r.uniform(0, 2 * np.pi, (n, 1, 1, 3))
    a = r.uniform(0.2, 1.5, (n, 1, 1, 3))
    img = a * np.sin(f[..., 0] * xx[None, :, :, None] * 3 + f[..., 1] * yy[None, :, :, None] * 3 + ph)
    return np.clip(img + r.normal(0, 0.2, (n, 32, 32, 3)), -1.5, 1.5).astype(np.float32)


def build(opset: int) -> ZooBuild:
    m = model(opset)
    # an untrained network predicts one class for everything: centre the pooled features on held-out images
    # (through the last conv's bias, as training would) so the labels below spread over the classes
    inits = {i.name: i for i in m.graph.initializer}
    pooled = next(n.output[0] for n in m.graph.node if n.output[0].startswith("avg_pool"))
    probe = onnx.ModelProto()
    probe.CopyFrom(m)
    probe.graph.output.append(helper.make_tensor_value_info(pooled, TensorProto.FLOAT, None))
    feats = run_fp32(probe, {"input_1": _images(64, 3)})[1]
    bias = next(n for n in inits if n.startswith("block2_project_bias"))
    b = numpy_helper.to_array(inits[bias]) - feats.mean(axis=0)
    inits[bias].CopyFrom(numpy_helper.from_array(b.astype(np.float32), bias))
    kernel = next(n for n in inits if n.startswith("dense_kernel"))
    w = numpy_helper.to_array(inits[kernel]) / (3.0 * feats.std())
    inits[kernel].CopyFrom(numpy_helper.from_array(w.astype(np.float32), kernel))
    calib = {"input_1": _images(32, 1)}
    ev = {"input_1": _images(48, 2)}
    ev["labels"] = argmax_labels(m, ev)
    return ZooBuild(m, calib, ev)
