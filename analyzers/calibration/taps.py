"""The tensors to calibrate, read from onnxruntime's own optimized graph in the layout it computes them.

Exposing a tensor as a graph output makes onnxruntime copy it back from its NCHWc-blocked layout to NCHW
(``ReorderOutput``) every run: on a 224-px MobileNetV2 that was a third of the calibration pass. A histogram needs a
tensor's values, not their order, so here they are read where the optimized graph holds them (``analyzers.fp32_taps``:
the tensor itself, or an NCHWc ``Conv`` output read without its padding channels).

A calibrated tensor that graph holds only as a difference (a Conv whose residual Add onnxruntime fused into it),
or not at all (inside another fusion), is exposed in the source model instead, as before: that keeps it out of the
fusion, so every value read is bit for bit what the model with every calibrated tensor exposed computes (the fusions
left either take in no calibrated tensor, or apply a Relu/Clip, which is exact, to a Conv's output).
"""

from __future__ import annotations

import os

import numpy as np
import onnx

from backends.cpuinfo import runtime_flags

from ..fp32_taps import OptimizedFp32, block_from_padding, block_sizes, mlas_block_size
from ..onnx_utils import expose_tensors

ROUNDS = 2  # builds at most: the optimized graph, then with what it could not read exposed


class TapsUnavailable(Exception):
    """The optimized graph does not hold these tensors in a form read exactly: expose them all instead."""


class CalibrationTaps:
    """One session over onnxruntime's optimized graph that yields each tensor's values per batch (``read``)."""

    def __init__(self, model: onnx.ModelProto, tensors: list[str], folder: str):
        """``tensors``: computed tensors of ``model`` (not graph inputs); ``folder``: where onnxruntime writes the
        optimized graph (kept while the session runs)."""
        if os.environ.get("QWB_EXPOSED_CALIBRATION"):
            raise TapsUnavailable("QWB_EXPOSED_CALIBRATION is set")
        if not any(n.op_type == "Conv" for n in model.graph.node):
            raise TapsUnavailable("no Conv: onnxruntime blocks no tensor into NCHWc, exposing them costs nothing more")
        constants = constant_tensors(model)
        if any(t in constants for t in tensors):
            # folded into initializers by any build (a transformer's LayerNorm weights behind Identity nodes): those
            # builds would be spent for nothing
            raise TapsUnavailable("a tensor to read is computed from initializers alone")
        exposed: list[str] = []
        for k in range(ROUNDS):
            sub = os.path.join(folder, str(k))
            os.makedirs(sub, exist_ok=True)
            opt = OptimizedFp32(expose_tensors(model, exposed) if exposed else model, tensors, {}, sub)
            if not opt.nchwc:  # this CPU (or these Convs) without the blocked layout: nothing to gain
                raise TapsUnavailable("no NCHWc-blocked tensor in the optimized graph")
            unread = [t for t in tensors if t in opt.unmapped or t in opt.recompute or t not in opt.sources
                      or opt.sources[t].minus]
            if not unread and opt.session is not None:
                break
            exposed += [t for t in unread if t not in exposed]
            del opt
        else:
            raise TapsUnavailable(f"{len(exposed)} tensors still unread after {ROUNDS} builds")
        self.tensors = list(tensors)
        self.exposed = exposed
        self.sources = {t: opt.sources[t] for t in tensors}
        self.session = opt.session
        self.fetch = list(dict.fromkeys(s.tensor for s in self.sources.values()))
        self.block: int | None = None  # MLAS's NCHWc block size, settled on the first padded batch

    def read(self, feed: dict) -> dict[str, np.ndarray]:
        """This batch's values of every tensor, each in its memory layout (blocked ones without padding)."""
        got = dict(zip(self.fetch, self.session.run(self.fetch, feed)))
        out = {}
        for t, s in self.sources.items():
            x = got[s.tensor]
            if s.channels is not None and x.ndim == 4 and x.shape[1] != s.channels:
                x = self._unpadded(x, s.channels, got)
            out[t] = x
        return out

    def _unpadded(self, x: np.ndarray, channels: int, got: dict) -> np.ndarray:
        """The values of a blocked tensor ``[N, C'/B, H, W, B]`` but its last block's padding lanes."""
        if self.block is None or self.block not in block_sizes(x.shape[1], channels):
            shapes = [(got[s.tensor].shape[1], s.channels) for s in self.sources.values()
                      if s.channels is not None and got[s.tensor].ndim == 4]
            self.block = block_from_padding(shapes, mlas_block_size(runtime_flags()))
            if self.block is None or self.block not in block_sizes(x.shape[1], channels):
                raise TapsUnavailable(f"NCHWc block size not settled by the padding {shapes}")
        n, cp, h, w = x.shape
        b = x.reshape(n, cp // self.block, h, w, self.block)
        tail = channels - (cp // self.block - 1) * self.block
        return np.concatenate([b[:, :-1].reshape(-1), b[:, -1, :, :, :tail].reshape(-1)])


def constant_tensors(model: onnx.ModelProto) -> set[str]:
    """Tensors computed from initializers and Constant nodes alone (no graph input reaches them): onnxruntime folds
    them into initializers, so its optimized graph computes none of them."""
    known = {i.name for i in model.graph.initializer} - {i.name for i in model.graph.input}
    out: set[str] = set()
    for n in model.graph.node:  # graph order is topological
        if all(not i or i in known or i in out for i in n.input) and not any(
                a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in n.attribute):
            out.update(o for o in n.output if o)
    return out
