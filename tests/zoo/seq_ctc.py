"""A CTC speech/OCR-style sequence model as older converters (keras2onnx, tf2onnx, onnxmltools) wrote it.

Input ``features`` [N, T, 20] float (dynamic batch and time) -> 1-D conv front end (Conv over [N, 20, T]) ->
Relu -> bidirectional LSTM (hidden 24) -> MatMul + Add -> LogSoftmax -> ``log_probs`` [T, N, 12] (the
layout CTC losses and decoders read). Exported from PyTorch at opset 11 or 12, then every initializer is
rewritten as a ``Constant`` node, as those converters did: the graph has no initializers at all.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from . import ZooBuild
from .common import rng, torch_export

FEAT, HIDDEN, CLASSES, T = 20, 24, 12, 24


def _module():
    import torch  # noqa: PLC0415
    from torch import nn  # noqa: PLC0415

    class CTC(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(FEAT, 32, 3, padding=1)
            self.lstm = nn.LSTM(32, HIDDEN, batch_first=False, bidirectional=True)
            self.fc = nn.Linear(2 * HIDDEN, CLASSES)

        def forward(self, features):  # [N, T, F]
            x = torch.relu(self.conv(features.transpose(1, 2)))  # [N, 32, T]
            x, _ = self.lstm(x.permute(2, 0, 1))  # [T, N, 2H]
            return torch.log_softmax(self.fc(x), dim=-1)  # [T, N, C]

    return CTC()


def initializers_to_constants(model: onnx.ModelProto) -> onnx.ModelProto:
    g = model.graph
    consts = [helper.make_node("Constant", [], [i.name], name=f"const_{i.name}", value=i) for i in g.initializer]
    nodes = consts + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    del g.initializer[:]
    return model


def _data(n: int, seed: int) -> dict[str, np.ndarray]:
    r = rng(seed)
    t = np.arange(T)[None, :, None]
    tone = np.sin(t * r.uniform(0.1, 1.0, (n, 1, FEAT)) + r.uniform(0, 6, (n, 1, FEAT)))
    return {"features": (tone * r.uniform(0.5, 2.0, (n, 1, 1)) + r.normal(0, 0.3, (n, T, FEAT))).astype(np.float32)}


def build(opset: int) -> ZooBuild:
    import torch  # noqa: PLC0415

    torch.manual_seed(0)
    m = torch_export(_module(), (torch.from_numpy(_data(2, 99)["features"]),), opset, ["features"], ["log_probs"],
                     {"features": {0: "batch", 1: "time"}, "log_probs": {0: "time", 1: "batch"}})
    return ZooBuild(initializers_to_constants(m), _data(32, 1), _data(48, 2))
