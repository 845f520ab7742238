"""Helpers the zoo builders share: seeded RNGs, torch export to a ModelProto, FP32 runs for labels."""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def torch_export(module, args: tuple, opset: int, input_names, output_names, dynamic_axes) -> onnx.ModelProto:
    """The legacy TorchScript exporter (what most models in the wild were exported with), in memory."""
    import torch  # noqa: PLC0415

    torch.manual_seed(0)
    module.eval()
    f = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, f, dynamo=False, opset_version=opset, input_names=list(input_names),
                          output_names=list(output_names), dynamic_axes=dynamic_axes, do_constant_folding=True)
    return onnx.load_from_string(f.getvalue())


def run_fp32(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort  # noqa: PLC0415

    so = ort.SessionOptions()
    so.log_severity_level = 3
    s = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = {i.name for i in s.get_inputs()}
    return s.run(None, {k: v for k, v in feed.items() if k in names})


def argmax_labels(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> np.ndarray:
    """The FP32 model's own top-1 on ``feed`` as labels: FP32 accuracy is 100% and INT8's shows the loss."""
    return run_fp32(model, feed)[0].argmax(axis=-1).astype(np.int64)
