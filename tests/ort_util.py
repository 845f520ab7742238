"""Plain onnxruntime sessions built by the tests themselves: the reference the deployed-kernel figures must match."""

from __future__ import annotations

import onnx
import onnxruntime as ort


def plain_session(model, level, path=None) -> ort.InferenceSession:
    """A CPU session at optimization ``level`` (writing the optimized graph to ``path`` when given)."""
    so = ort.SessionOptions()
    so.graph_optimization_level = level
    if path:
        so.optimized_model_filepath = str(path)
    return ort.InferenceSession(model if isinstance(model, str) else model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])


def with_outputs(model: onnx.ModelProto, names: dict[str, int]) -> onnx.ModelProto:
    """A copy of ``model`` that also outputs the tensors ``names`` (name -> element type) it does not already."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for n, t in names.items():
        if n not in have:
            m.graph.output.append(onnx.helper.make_tensor_value_info(n, t, None))
    return m
