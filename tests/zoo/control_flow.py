"""A classifier with ``Loop`` and ``If`` subgraphs (what scripted PyTorch and TF while/cond exports contain).

Input ``x`` [N, 16] float -> MatMul + Add + Relu (main graph) -> ``Loop`` 3 times: h = Relu(h @ W_loop + b)
(the loop body reads the weight from the outer scope, as exporters write it) -> ``If`` ReduceSum(h) > 0 (over the whole
batch, as exported control flow often is; h >= 0 so the then-branch runs): then h @ W_then, else h @ W_else (weights again from the outer scope) -> Gemm -> ``logits`` [N, 10].
Eval labels are the FP32 model's own predictions.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from . import ZooBuild
from .common import argmax_labels, rng

IN, H, CLASSES, STEPS = 16, 32, 10, 3


def model(opset: int) -> onnx.ModelProto:
    r = rng(0)

    def w(name, shape, scale):
        return numpy_helper.from_array((r.standard_normal(shape) * scale).astype(np.float32), name)

    inits = [w("W_in", (IN, H), 1 / np.sqrt(IN)), w("b_in", (H,), 0.1), w("W_loop", (H, H), 1.2 / np.sqrt(H)),
             w("b_loop", (H,), 0.1), w("W_then", (H, H), 1 / np.sqrt(H)), w("W_else", (H, H), 0.5 / np.sqrt(H)),
             w("W_out", (CLASSES, H), 2 / np.sqrt(H)), w("b_out", (CLASSES,), 0.1),
             numpy_helper.from_array(np.array(STEPS, np.int64), "trip_count"),
             numpy_helper.from_array(np.array(True), "loop_cond"),
             numpy_helper.from_array(np.array(0.0, np.float32), "zero")]
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"], name="loop/cond"),
         helper.make_node("MatMul", ["h_in", "W_loop"], ["loop_mm"], name="loop/MatMul"),
         helper.make_node("Add", ["loop_mm", "b_loop"], ["loop_add"], name="loop/Add"),
         helper.make_node("Relu", ["loop_add"], ["h_out"], name="loop/Relu")],
        "loop_body",
        [helper.make_tensor_value_info("iter", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("h_in", TensorProto.FLOAT, ["N", H])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("h_out", TensorProto.FLOAT, ["N", H])])
    then_g = helper.make_graph([helper.make_node("MatMul", ["h_loop", "W_then"], ["then_out"], name="then/MatMul")],
                               "then_branch", [], [helper.make_tensor_value_info("then_out", TensorProto.FLOAT, ["N", H])])
    else_g = helper.make_graph([helper.make_node("MatMul", ["h_loop", "W_else"], ["else_out"], name="else/MatMul")],
                               "else_branch", [], [helper.make_tensor_value_info("else_out", TensorProto.FLOAT, ["N", H])])
    nodes = [
        helper.make_node("MatMul", ["x", "W_in"], ["mm_in"], name="in/MatMul"),
        helper.make_node("Add", ["mm_in", "b_in"], ["add_in"], name="in/Add"),
        helper.make_node("Relu", ["add_in"], ["h0"], name="in/Relu"),
        helper.make_node("Loop", ["trip_count", "loop_cond", "h0"], ["h_loop"], name="loop", body=body),
        helper.make_node("ReduceSum", ["h_loop"], ["total"], name="gate/ReduceSum", keepdims=0),
        helper.make_node("Greater", ["total", "zero"], ["gate"], name="gate/Greater"),
        helper.make_node("If", ["gate"], ["h_if"], name="branch", then_branch=then_g, else_branch=else_g),
        helper.make_node("Gemm", ["h_if", "W_out", "b_out"], ["logits"], name="out/Gemm", transB=1),
    ]
    graph = helper.make_graph(nodes, "control_flow", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", IN])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", CLASSES])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="control-flow-zoo")
    m.ir_version = 8
    return m


def _data(n: int, seed: int) -> dict[str, np.ndarray]:
    r = rng(seed)
    x = r.standard_normal((n, IN)) * r.uniform(0.5, 2.0, (n, 1))
    return {"x": x.astype(np.float32)}


def build(opset: int) -> ZooBuild:
    m = model(opset)
    ev = _data(48, 2)
    ev["labels"] = argmax_labels(m, ev)
    return ZooBuild(m, _data(32, 1), ev)
