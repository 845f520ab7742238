"""The range every activation tensor gets under a recipe: method, percentile, integer type.

Both quantization and the calibration lab read ranges from here, so what the lab shows is exactly
what the quantizer is given. How a range is derived from a histogram is
``analyzers.calibration.methods``; this module only decides which method, percentile and grid apply.
"""

from __future__ import annotations

from dataclasses import dataclass

from analyzers.calibration.collect import CalibrationData
from analyzers.calibration.grid import QuantSpec

from .graph import ModelGraph
from .recipe import Recipe


@dataclass(frozen=True)
class TensorRange:
    """The calibrated range of one activation tensor and where its settings came from."""

    tensor: str
    lo: float
    hi: float
    spec: QuantSpec
    method: str
    percentile: float | None
    override_from: str | None = None  # node whose per-layer override set the percentile


def sixteen_bit(qtype: str) -> str:
    return ("s" if qtype.startswith("s") else "u") + "16"


def activation_spec(graph: ModelGraph, recipe: Recipe, tensor: str, int16: set[str] | None = None) -> QuantSpec:
    """The integer grid for ``tensor``: 16-bit when a node reading or writing it is set to INT16.

    ``int16``: the recipe's INT16 nodes, when the caller already has them (one lookup for many tensors).
    """
    s = recipe.settings
    qtype = s.activation_type
    int16 = set(recipe.int16_nodes()) if int16 is None else int16
    if int16:
        touching = set(graph.consumers.get(tensor, [])) | graph.tensor_owners(tensor)
        if touching & int16:
            qtype = sixteen_bit(qtype)
    return QuantSpec(qtype, symmetric=s.symmetric_activations)


def tensor_ranges(graph: ModelGraph, recipe: Recipe, calib: CalibrationData,
                  tensors: list[str] | None = None) -> dict[str, TensorRange]:
    """Ranges for ``tensors`` (default: every calibrated tensor) under ``recipe``.

    Derived ranges are remembered in ``calib``, so after a percentile change only the tensors whose
    percentile changed cost anything (see ``CalibrationData.derived_range``).
    """
    s = recipe.settings
    int16 = set(recipe.int16_nodes())
    out = {}
    for name in tensors or list(calib.histograms):
        spec = activation_spec(graph, recipe, name, int16)
        layer_p, layer_m, owner = None, None, None
        for owner in sorted(graph.tensor_owners(name)):
            layer_p, layer_m = recipe.percentile_of(owner), recipe.method_of(owner)
            if layer_p is not None or layer_m is not None:
                break
        if layer_p is not None:
            method, pct, src = "percentile", layer_p, owner
        elif layer_m is not None:
            method, pct, src = layer_m, (s.percentile if layer_m == "percentile" else None), owner
        else:
            method, pct, src = s.calibration_method, (s.percentile if s.calibration_method == "percentile" else None), None
        lo, hi = calib.derived_range(name, method, spec, pct if pct is not None else s.percentile)
        out[name] = TensorRange(name, lo, hi, spec, method, pct, src)
    return out
