"""Finite attention-mask constants found in the graph (``analyzers.mask_constants``): the tensors carrying a -1e4
mask to a Softmax get a mask limit of 5000; constants that are not attention masks get none. Masks fed already
scaled as float inputs are found by their values."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from analyzers.calibration.histogram import MASK_MAGNITUDE
from analyzers.mask_constants import input_mask_limits, mask_inputs, mask_limits
from tests.models import deep_cnn, masked_attention


def test_the_forms_exporters_write():
    assert mask_limits(masked_attention("neg1e4")) == {"bias": 5000.0, "masked": 5000.0}
    # -inf, -1e9 and finfo.min are mask magnitudes by value anyway: the graph gives them no lower limit
    for kind in ("ninf", "neg1e9", "finfo"):
        assert mask_limits(masked_attention(kind)) == {"bias": MASK_MAGNITUDE, "masked": MASK_MAGNITUDE}, kind


def _graph(nodes, inputs, inits, out="y"):
    g = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


X = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
MASK = helper.make_tensor_value_info("mask", TensorProto.INT64, ["N", 4])
n = helper.make_node


def test_a_masked_fill_where_with_the_scores_as_the_other_branch():
    m = _graph([n("Cast", ["mask"], ["b"], to=TensorProto.BOOL), n("Not", ["b"], ["pad"]),
                n("Where", ["pad", "c", "x"], ["s"]), n("Softmax", ["s"], ["y"])], [X, MASK], {"c": -1e4})
    assert mask_limits(m) == {"s": 5000.0}


def test_constants_that_are_not_attention_masks():
    # the mask constant reaches no Softmax
    m = _graph([n("Cast", ["mask"], ["f"], to=TensorProto.FLOAT), n("Mul", ["f", "c"], ["b"]),
                n("Add", ["x", "b"], ["s"]), n("Relu", ["s"], ["y"])], [X, MASK], {"c": -1e4})
    assert mask_limits(m) == {}
    # data (not the integer mask) scaled by a large constant before a Softmax: activations, not a mask
    m = _graph([n("Mul", ["x", "c"], ["s"]), n("Softmax", ["s"], ["y"])], [X], {"c": -1e4})
    assert mask_limits(m) == {}
    # a mask scaled by a small constant: padded tokens keep weight, so it is data too
    m = _graph([n("Cast", ["mask"], ["f"], to=TensorProto.FLOAT), n("Mul", ["f", "c"], ["b"]),
                n("Add", ["x", "b"], ["s"]), n("Softmax", ["s"], ["y"])], [X, MASK], {"c": -100.0})
    assert mask_limits(m) == {}
    # token ids through an embedding table are data even when scaled up
    m = _graph([n("Gather", ["emb", "mask"], ["e"]), n("ReduceSum", ["e"], ["r"], keepdims=0),
                n("Mul", ["r", "c"], ["s"]), n("Softmax", ["s"], ["y"])], [MASK],
               {"emb": np.ones((8, 4)), "c": 1e4})
    assert mask_limits(m) == {}
    assert mask_limits(deep_cnn(layers=3)) == {}


def test_a_constant_node_and_a_broadcast_constant_count_too():
    c = onnx.helper.make_tensor("cv", TensorProto.FLOAT, [1, 1], [-1e5])
    m = _graph([n("Constant", [], ["c"], value=c), n("Cast", ["mask"], ["f"], to=TensorProto.FLOAT),
                n("Sub", ["one", "f"], ["inv"]), n("Mul", ["inv", "c"], ["b"]), n("Add", ["x", "b"], ["s"]),
                n("Softmax", ["s"], ["y"])], [X, MASK], {"one": 1.0})
    assert mask_limits(m) == {"b": 5e4, "s": 5e4}


def test_a_mask_fed_as_a_float_input_is_found_by_its_values():
    model = masked_attention("float_neg1e4")
    carriers = mask_inputs(model)
    assert carriers == {"bias": ["bias", "masked"]}  # x reaches the Softmax only through MatMuls: data
    zero_or_c = np.array([-10000.0, 0.0])
    assert input_mask_limits(carriers, {"bias": zero_or_c}) == {"bias": 5000.0, "masked": 5000.0}
    assert input_mask_limits(carriers, {"bias": np.array([-1e4])}) == {"bias": 5000.0, "masked": 5000.0}
    # values that are not 0 and one large constant: data (a learned bias, relative positions), or no padding seen
    for values in ([-10000.0, -3.0, 0.0], [-10000.0, -20000.0], [0.0], [-100.0, 0.0], [-1e9, 0.0], [np.nan, 0.0]):
        assert input_mask_limits(carriers, {"bias": np.array(values)}) == {}, values
    assert input_mask_limits(carriers, {}) == {}
    # int masks are the graph's business (mask_limits), not inputs to read
    assert mask_inputs(masked_attention("neg1e4")) == {}
