"""The range every activation tensor gets under a recipe: method, percentile, integer type.

Both quantization and the calibration lab read ranges from here, so what the lab shows is exactly
what the quantizer is given. How a range is derived from a histogram is
``analyzers.calibration.methods``; this module only decides which method, percentile and grid apply.
"""

from __future__ import annotations

from dataclasses import dataclass

from analyzers.calibration.collect import CalibrationData
from analyzers.calibration.grid import QuantSpec

from .calibration_cache import missing_histograms
from .errors import WorkbenchError
from .graph import ModelGraph
from .recipe import Recipe


class CalibrationIncomplete(WorkbenchError):
    """The recipe quantizes alone a tensor the calibration left out (``CalibrationData.fused_away``): its activation
    is kept in float. ``Session`` completes the calibration and goes on; elsewhere it is a bug."""

    def __init__(self, tensors: list[str]):
        self.tensors = list(tensors)
        super().__init__(f"the calibration has no histograms for {', '.join(self.tensors[:5])}"
                         + (f" and {len(self.tensors) - 5} more" if len(self.tensors) > 5 else ""),
                         "calibrate completely (Session.calibration(complete=True))")


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
    fused_into: str | None = None  # not calibrated: onnxruntime gives it this activation output's range


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
    names = tensors or [*calib.histograms, *calib.fused_away]
    missing = set(missing_histograms(graph, recipe, calib))
    lacking = [t for t in names if t in missing and t not in calib.histograms]
    if lacking:
        raise CalibrationIncomplete(lacking)
    out = {}
    for name in names:
        if name in calib.histograms or name not in calib.fused_away:
            out[name] = _own_range(graph, recipe, calib, name, int16)
    for name in names:  # onnxruntime's ``adjust_tensor_ranges``: the activation output's range, on this tensor's grid
        if name not in out:
            dst = calib.fused_away[name][1]
            r = out[dst] if dst in out else _own_range(graph, recipe, calib, dst, int16)
            out[name] = TensorRange(name, r.lo, r.hi, activation_spec(graph, recipe, name, int16), r.method,
                                    r.percentile, r.override_from, fused_into=dst)
    return out


def _own_range(graph: ModelGraph, recipe: Recipe, calib: CalibrationData, name: str, int16: set[str]) -> TensorRange:
    """``name``'s range from its own histogram under ``recipe``."""
    s = recipe.settings
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
    return TensorRange(name, lo, hi, spec, method, pct, src)
