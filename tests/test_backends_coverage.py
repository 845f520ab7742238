"""MACs and INT8 coverage on tiny models whose integer and float nodes are known by construction."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from backends.benchmark import int8_coverage
from backends.cpu import CpuBackend
from backends.feeds import Feed
from backends.macs import count_macs
from tests.models import OPSET, conv_net, conv_net_data, save, save_npz
from workbench.session import Session

# conv_net: conv1 3->8 3x3 on 8x8, conv2/conv3 8->8 3x3 on 8x8, fc 8->10 (per sample)
CONV1, CONV2, CONV3, FC = 8 * 64 * 3 * 9, 8 * 64 * 8 * 9, 8 * 64 * 8 * 9, 10 * 8
TOTAL = CONV1 + CONV2 + CONV3 + FC


def _init(name, shape, seed=0):
    return numpy_helper.from_array(np.random.default_rng(seed).standard_normal(shape).astype(np.float32), name)


def test_macs_by_hand_for_grouped_conv_strided_conv_conv_transpose_gemm_and_matmul():
    nodes = [
        helper.make_node("Conv", ["x", "wg"], ["y1"], name="grouped", group=2, pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["y1", "ws"], ["y2"], name="strided", strides=[2, 2]),
        helper.make_node("ConvTranspose", ["y2", "wt"], ["y3"], name="up", strides=[2, 2]),
        helper.make_node("Gemm", ["a", "b"], ["g"], name="gemm", transA=1),
        helper.make_node("MatMul", ["m", "mw"], ["mm"], name="batched"),
    ]
    graph = helper.make_graph(
        nodes, "macs",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 10, 10]),
         helper.make_tensor_value_info("a", TensorProto.FLOAT, [6, 3]),
         helper.make_tensor_value_info("m", TensorProto.FLOAT, [2, 3, 4, 5])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y3", "g", "mm")],
        [_init("wg", (8, 2, 3, 3)), _init("ws", (8, 8, 1, 1)), _init("wt", (8, 4, 2, 2)), _init("b", (6, 5)),
         _init("mw", (5, 7))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    macs = {m.name: m.macs for m in count_macs(model, {"x": (1, 4, 10, 10), "a": (6, 3), "m": (2, 3, 4, 5)})}
    assert macs == {
        "grouped": (8 * 10 * 10) * (2 * 3 * 3),  # each output: C_in/group * kernel
        "strided": (8 * 5 * 5) * 8,
        "up": (8 * 5 * 5) * (4 * 2 * 2),  # each input element scatters into C_out/group * kernel
        "gemm": (3 * 5) * 6,  # transA: K is A's first dim
        "batched": (2 * 3 * 4 * 7) * 5,
    }
    # batch 2 doubles the convolutions only
    macs2 = {m.name: m.macs for m in count_macs(model, {"x": (2, 4, 10, 10), "a": (6, 3), "m": (2, 3, 4, 5)})}
    assert macs2["grouped"] == 2 * macs["grouped"] and macs2["gemm"] == macs["gemm"]


def test_conv_net_macs_follow_through_qdq_weights(tmp_path):
    assert [(m.name, m.macs) for m in count_macs(conv_net(), {"x": (1, 3, 8, 8)})] == [
        ("conv1", CONV1), ("conv2", CONV2), ("conv3", CONV3), ("fc", FC)]


@pytest.fixture
def quantize(tmp_path):
    """Quantize conv_net with a recipe (TOML text) through the workbench, return its coverage on the CPU."""
    model = save(conv_net(), tmp_path / "net.onnx")
    calib = save_npz(tmp_path / "calib.npz", **conv_net_data(16))

    def run(recipe_toml: str = ""):
        recipe = tmp_path / "recipe.toml"
        recipe.write_text("version = 1\n" + recipe_toml)
        q = Session(model, calib, recipe_path=recipe).quantize(tmp_path / "net.int8.onnx")
        feed = Feed({"x": conv_net_data(4)["x"]}, {"x": True})
        return int8_coverage(CpuBackend(), q.path, feed)

    return run


def test_fully_quantized_conv_net_runs_every_mac_in_int8(quantize):
    c = quantize()
    assert c.by_op_type["QLinearConv"] == {"int8": 3} and c.by_op_type["QGemm"] == {"int8": 1}
    # 3 QLinearConv, QLinearGlobalAveragePool, Flatten on uint8, QGemm; one Q at the input, one DQ at the output
    assert (c.nodes_int8, c.nodes_float, c.nodes_convert) == (6, 0, 2)
    assert (c.macs_total, c.macs_int8, c.macs_int8_share) == (TOTAL, TOTAL, 1.0)
    assert c.fallbacks == [] and all(m.int8 for m in c.mac_nodes)


def test_gemm_left_out_of_op_types_stays_float(quantize):
    c = quantize('[global]\nop_types = ["Conv"]\n')
    fc = next(m for m in c.mac_nodes if m.name == "fc")
    assert fc.runs_as == "Gemm" and not fc.int8 and "not quantized in the model" in fc.reason
    assert c.macs_int8 == CONV1 + CONV2 + CONV3
    assert c.macs_int8_share == pytest.approx((CONV1 + CONV2 + CONV3) / TOTAL)
    assert c.by_op_type["QLinearConv"] == {"int8": 3}
    # relu3 reads the last dequantized tensor; GAP, Flatten and Gemm were never quantized
    assert sorted(f.name for f in c.float_nodes) == ["fc", "flatten", "gap", "relu3"]
    assert [f.name for f in c.fallbacks] == ["relu3"]


def test_excluded_gemm_is_a_float_fallback_with_its_reason(quantize):
    c = quantize('[layers."fc"]\nprecision = "fp32"\n')
    assert [f.name for f in c.fallbacks] == ["fc"]
    assert "weight wf is a float initializer" in c.fallbacks[0].reason
    assert c.macs_int8_share == pytest.approx((TOTAL - FC) / TOTAL)


def test_one_int16_layer_pushes_its_neighbours_to_float(quantize):
    c = quantize('[layers."conv2"]\nprecision = "int16"\n')
    floats = {m.name: m.reason for m in c.mac_nodes if not m.int8}
    assert set(floats) == {"conv1", "conv2", "conv3"}
    assert "input and output are quantized to 16 bits" in floats["conv2"]
    assert "output is quantized to 16 bits (for a 16-bit neighbour)" in floats["conv1"]
    assert "input is quantized to 16 bits (for a 16-bit neighbour)" in floats["conv3"]
    assert c.macs_int8 == FC and c.macs_int8_share == pytest.approx(FC / TOTAL)
    assert c.nodes_int8 == 3  # QLinearGlobalAveragePool, Flatten on uint8, QGemm


def test_fp32_layer_between_quantized_ones_is_flagged_when_onnxruntime_quantizes_it(quantize):
    # onnxruntime (1.20+) quantizes a float weight itself when the layer's input and output are quantized,
    # so "precision = fp32" on a layer between INT8 layers does not keep it in float; coverage says so
    c = quantize('[layers."conv2"]\nprecision = "fp32"\n')
    conv2 = next(m for m in c.mac_nodes if m.name == "conv2")
    assert conv2.int8 and conv2.runs_as == "QLinearConv"
    assert [n for n in c.notes if n.startswith("conv2 is float in the model file, but onnxruntime quantized its "
                                               "weight at load time")]
    assert not [n for n in c.notes if n.startswith(("conv1", "conv3", "fc"))]


def test_op_without_integer_kernel_falls_back_with_its_reason(tmp_path):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv_a", pads=[1, 1, 1, 1]),
             helper.make_node("Softplus", ["c1"], ["s"], name="softplus"),
             helper.make_node("Conv", ["s", "w2"], ["y"], name="conv_b")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [_init("w1", (8, 4, 3, 3)), _init("w2", (8, 8, 1, 1), seed=1)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    f = save(model, tmp_path / "softplus.onnx")
    x = np.random.default_rng(0).standard_normal((8, 4, 6, 6)).astype(np.float32)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"x": x[i:i + 1]} for i in range(len(x))])

        def get_next(self):
            return next(self.it, None)

    q = tmp_path / "softplus.int8.onnx"
    quantize_static(str(f), str(q), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, per_channel=True)
    c = int8_coverage(CpuBackend(), q, Feed({"x": x}, {"x": True}))
    assert [(fb.name, fb.op_type) for fb in c.fallbacks] == [("softplus", "Softplus")]
    assert "no integer kernel for Softplus" in c.fallbacks[0].reason
    assert {m.name: m.int8 for m in c.mac_nodes} == {"conv_a": True, "conv_b": True}
    a, b = 8 * 36 * 4 * 9, 8 * 36 * 8
    assert (c.macs_total, c.macs_int8_share) == (a + b, 1.0)
    assert c.nodes_float == 1


def test_macs_follow_padding_computed_from_shapes():
    """TF-style "SAME" padding computes its pads from Shape at run time, which onnx's shape inference cannot
    follow; the count falls back to onnxruntime's symbolic inference and still knows every Conv's output."""
    from tests.zoo import tf_cnn

    m = tf_cnn.model(17)
    macs = count_macs(m, {m.graph.input[0].name: (1, 32, 32, 3)})
    assert macs and all(n.macs for n in macs), [(n.name, n.macs) for n in macs if not n.macs]
    # the stem: 3x3 stride-2 Conv, 3 -> 16 channels, 32x32 "SAME" -> 16x16: 16*16*16 outputs x 3*3*3 each
    stem = next(n for n in macs if n.op_type == "Conv")
    assert stem.macs == 16 * 16 * 16 * 3 * 3 * 3
