"""How much of a model's compute each run keeps in INT8: multiply-accumulates per precision the recipe sets.

Shown with every run (``qwb analyze``, the report, the JSON, the GUI), because a recipe that keeps one big
Conv in FP32 gives up far more speed than one that keeps ten small ones: the share is by MACs, not by layers.
This is what the recipe *asks* for; how much onnxruntime really runs in integer kernels is measured by
``qwb bench`` (``backends.coverage``).
"""

from __future__ import annotations

from backends.macs import count_macs


def macs_by_precision(fp32_model, precisions: dict[str, str], feed: dict) -> dict | None:
    """{"int8": share, "int16": share, "fp32": share, "macs_total": n} over the Conv/Gemm/MatMul nodes of
    ``fp32_model`` (an ``onnx.ModelProto``) at ``feed``'s shapes (one sample); ``precisions``: node -> the
    precision the run gives it (nodes the run does not quantize count as FP32). None when no MAC is known."""
    shapes = {k: tuple(v.shape) for k, v in feed.items()}
    counts = {"int8": 0, "int16": 0, "fp32": 0}
    for n in count_macs(fp32_model, shapes):
        if n.macs:
            counts[precisions.get(n.name, "fp32") if precisions.get(n.name) in counts else "fp32"] += n.macs
    total = sum(counts.values())
    if not total:
        return None
    return {**{k: v / total for k, v in counts.items()}, "macs_total": total}
