"""The calibration lab: for every calibrated tensor, the range each method picks, what it costs, and the winner.

Qt-free and computed from the cached histograms only (no model run), so the GUI can show it live and
``qwb calib`` can print and save it. Ranges come from ``CalibrationData.derived_range``, the same
place quantization takes them from, so the recipe's column is exactly what the quantizer is given.
The "isolated error" of a method is the predicted error of quantizing that tensor alone with its range
(``analyzers.calibration.methods.range_stats``); how errors add up through the network is the diff engine's job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from analyzers.calibration.collect import CalibrationData, WeightStats
from analyzers.calibration.histogram import HistogramSnapshot, SpecialValues, trim
from analyzers.calibration.methods import METHODS, MethodComparison, RangeStats, compare_methods
from analyzers.jsonsafe import json_num
from backends.tasks import NullTask, Task

from .calibration_cache import activation_pairs, op_types_for
from .graph import ModelGraph
from .mask_path import find_mask_path
from .recipe import Recipe
from .recipe_ranges import activation_spec, tensor_ranges

LAB_FORMAT = 1


@dataclass
class TensorLab:
    """One calibrated tensor: its grid, which settings govern it, every method's range and statistics."""

    tensor: str
    qtype: str
    symmetric: bool
    owners: list[str]  # nodes whose per-layer settings apply to this tensor
    recipe_method: str  # the method the recipe gives it (a per-layer percentile makes it "percentile")
    percentile: float  # the percentile of the percentile column: the layer's override or the global one
    override_from: str | None  # node whose per-layer percentile applies
    comparison: MethodComparison
    histogram: HistogramSnapshot
    fused_into: str | None = None  # onnxruntime quantizes it with this tensor's range (Relu/Clip fusion)
    note: str | None = None
    mask_handling: str | None = None  # holds mask values (-inf, finfo.min): "float" (not quantized) or "clamp"

    @property
    def winner(self) -> str:
        return self.comparison.winner

    @property
    def methods(self) -> dict[str, RangeStats]:
        return self.comparison.stats

    @property
    def recipe_stats(self) -> RangeStats:
        """What the recipe's range does to this tensor."""
        return self.comparison.stats[self.recipe_method]

    def to_dict(self, histogram: bool = True) -> dict:
        """JSON-ready: statistics per method, the winner, and the histogram trimmed to its non-empty bins."""
        h = self.histogram
        d = {
            "name": self.tensor, "qtype": self.qtype, "symmetric": self.symmetric, "owners": self.owners,
            "recipe_method": self.recipe_method, "percentile": self.percentile,
            "override_from": self.override_from, "fused_into": self.fused_into, "note": self.note,
            "count": h.count, "min": _num(h.min), "max": _num(h.max), "sum": json_num(h.sum),
            "sum_sq": json_num(h.sum_sq), "zeros": h.zeros, "nonfinite": h.nonfinite,
            "special": h.special.to_dict(), "mask_handling": self.mask_handling,
            "methods": {m: s.to_dict() for m, s in self.comparison.stats.items()},
            "winner": self.winner,
            "gap_db": {m: _num(self.comparison.gap_db(m)) for m in self.comparison.stats},
        }
        if histogram:
            t = trim(h)
            d["histogram"] = {"counts": t.counts.tolist(), "edges": t.edges.tolist()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TensorLab:
        """Inverse of ``to_dict`` (for reports and the GUI reading a saved lab)."""
        stats = {m: RangeStats(**{k: (math.inf if v is None and k == "sqnr_db" else v) for k, v in s.items()})
                 for m, s in d["methods"].items()}
        hist = d.get("histogram") or {"counts": [], "edges": [0.0]}
        special = SpecialValues(**d["special"]) if d.get("special") else SpecialValues(nan=d.get("nonfinite", 0))
        snap = HistogramSnapshot(np.asarray(hist["counts"], dtype=np.int64), np.asarray(hist["edges"], dtype=np.float64),
                                 d["min"], d["max"], d["count"], _f(d["sum"]), _f(d["sum_sq"]), d["zeros"], special)
        return cls(d["name"], d["qtype"], d["symmetric"], list(d["owners"]), d["recipe_method"], d["percentile"],
                   d["override_from"], MethodComparison(stats, d["winner"]), snap, d.get("fused_into"), d.get("note"),
                   d.get("mask_handling"))


@dataclass
class WeightSummary:
    """A weight's overall and per-output-channel range (what per-channel quantization sees)."""

    name: str
    node: str
    axis: int | None
    min: float
    max: float
    channel_spread: float  # largest / median per-channel |range|

    @classmethod
    def of(cls, w: WeightStats) -> WeightSummary:
        """The summary of a calibration's weight statistics (per-channel arrays dropped)."""
        return cls(w.name, w.node, w.axis, w.min, w.max, w.channel_spread)

    def to_dict(self) -> dict:
        return {"name": self.name, "node": self.node, "axis": self.axis, "min": self.min, "max": self.max,
                "channel_spread": _num(self.channel_spread)}


@dataclass
class CalibLab:
    """The method comparison for a whole model, versioned for the GUI and reports."""

    model: str
    data: str
    samples: int
    from_cache: bool
    settings: dict  # the recipe's activation type, symmetry, method, percentile
    tensors: list[TensorLab]
    weights: list[WeightSummary] = field(default_factory=list)
    format: int = LAB_FORMAT
    notes: list[str] = field(default_factory=list)  # the mask path and NaN tensors, and what is done with them
    mask_path: dict = field(default_factory=dict)  # ``MaskPath.to_dict()``: tensors, nodes, nodes kept in float

    def winners(self) -> dict[str, int]:
        """How many tensors each method wins (fused tensors, quantized with another tensor's range, and mask
        tensors kept in float left out)."""
        out = {m: 0 for m in METHODS}
        for t in self.tensors:
            if t.fused_into is None and t.mask_handling != "float":
                out[t.winner] += 1
        return out

    def tensor(self, name: str) -> TensorLab:
        """The row for ``name``."""
        return next(t for t in self.tensors if t.tensor == name)

    def to_dict(self, histograms: bool = True) -> dict:
        """The versioned JSON document ``qwb calib --json`` writes (``format`` bumps on incompatible change)."""
        return {"format": self.format, "kind": "qwb-calibration-lab", "model": self.model, "data": self.data,
                "samples": self.samples, "from_cache": self.from_cache, "settings": self.settings,
                "methods": list(METHODS), "winners": self.winners(),
                "tensors": [t.to_dict(histograms) for t in self.tensors],
                "weights": [w.to_dict() for w in self.weights], "notes": list(self.notes),
                "mask_path": self.mask_path}

    @classmethod
    def from_dict(cls, d: dict) -> CalibLab:
        """Read a saved lab; refuses other formats rather than misreading them."""
        if d.get("format") != LAB_FORMAT:
            raise ValueError(f"calibration lab format {d.get('format')!r} is not {LAB_FORMAT}")
        weights = [WeightSummary(w["name"], w["node"], w["axis"], w["min"], w["max"],
                                 math.inf if w["channel_spread"] is None else w["channel_spread"])
                   for w in d.get("weights", [])]
        return cls(d["model"], d["data"], d["samples"], d["from_cache"], d["settings"],
                   [TensorLab.from_dict(t) for t in d["tensors"]], weights, d["format"], list(d.get("notes", [])),
                   dict(d.get("mask_path") or {}))


def fused_tensors(graph: ModelGraph, recipe: Recipe, calibrated) -> dict[str, str]:
    """Tensor -> the tensor whose range onnxruntime gives it instead.

    Mirrors onnxruntime's ``adjust_tensor_ranges`` (``calibration_cache.activation_pairs``): the input of a quantized
    Relu/Clip that feeds only it takes the activation's output range (the pair is fused, so the input is never
    quantized alone).
    """
    excluded = set(recipe.excluded_nodes())
    return {src: dst for src, (node, dst) in activation_pairs(graph, op_types_for(recipe), calibrated).items()
            if node not in excluded}


def build_lab(graph: ModelGraph, recipe: Recipe, calib: CalibrationData, *, model: str = "", data: str = "",
              from_cache: bool = False, tensors: list[str] | None = None, task: Task | None = None,
              mask_limits: dict[str, float] | None = None) -> CalibLab:
    """Compare MinMax, Percentile, Entropy and MSE on every calibrated tensor (or ``tensors``); ``mask_limits``: the
    model's finite mask constants (``workbench.calibration_cache.prepared_mask_limits``), for the mask note. Every
    tensor to quantize is listed from a complete calibration (``Session.calibration(complete=True)``); a lean one
    lists those it holds."""
    task = task or NullTask()
    s = recipe.settings
    names = tensors or list(calib.histograms)
    chosen = tensor_ranges(graph, recipe, calib, names)
    fused = fused_tensors(graph, recipe, calib.histograms)
    int16 = set(recipe.int16_nodes())
    mask = find_mask_path(graph, recipe, calib, mask_limits)
    kept = set(mask.kept_float) | set(recipe.excluded_nodes())
    softmax_out = {n.outputs[0] for n in graph.nodes if n.op_type == "Softmax" and n.outputs}
    out = []
    for i, name in enumerate(names):
        task.check()
        h = calib.histograms[name]
        spec = activation_spec(graph, recipe, name, int16)
        tr = chosen[name]
        pct = tr.percentile if tr.percentile is not None else s.percentile
        ranges = {m: calib.derived_range(name, m, spec, pct) for m in METHODS}
        comparison = compare_methods(h, spec, pct, ranges)
        note = None
        if name in fused:
            note = f"onnxruntime fuses the activation after it and quantizes it with the range of {fused[name]}"
        elif name in softmax_out:
            note = "onnxruntime quantizes Softmax outputs with the fixed range [0, 1]"
        handling = None
        if h.special:
            note = (note + "; " if note else "") + f"{h.special.describe()} left out of the range"
        if name in mask.tensors:
            touching = [n for n in [graph.producer.get(name)] + list(graph.consumers.get(name, [])) if n in mask.nodes]
            float_ = all(n in kept for n in touching)  # no quantized node reads or writes it: never quantized
            handling = "float" if float_ else "clamp"
            note += ("; on the " + mask.label + ": kept in float with the nodes around it" if float_ else
                     "; on the " + mask.label + ": quantized with this range, so masked values saturate")
        out.append(TensorLab(name, spec.qtype, spec.symmetric, sorted(graph.tensor_owners(name)), tr.method, pct,
                             tr.override_from, comparison, h, fused.get(name), note, handling))
        task.report((i + 1) / max(len(names), 1), f"comparing methods: {name}")
    settings = {"activation_type": s.activation_type, "symmetric_activations": s.symmetric_activations,
                "calibration_method": s.calibration_method, "percentile": s.percentile,
                "mask_handling": s.mask_handling}
    weights = [WeightSummary.of(w) for w in calib.weights.values()]
    return CalibLab(model, data, calib.samples, from_cache, settings, out, weights, notes=mask.notes(done=False),
                    mask_path=mask.to_dict())


def _num(v: float):
    """JSON has no inf/NaN: they become null."""
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _f(v) -> float:
    """Inverse of ``json_num`` for a sum: null was NaN or inf."""
    return math.nan if v is None else float(v)
