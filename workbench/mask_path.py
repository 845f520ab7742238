"""Mask paths: tensors holding -inf / +inf or mask magnitudes (-1e9, finfo.min), and what quantization does with them.

An attention mask is added to the scores as ``Where(mask, 0, -inf)`` or ``(1 - mask) * finfo(float32).min``.
No finite range holds such values: quantized with the range of the ordinary values they saturate to its low
end (padded tokens then get attention weight); a range stretched to -3.4e38 puts every real score on one
level. Calibration counts them (``SpecialValues``); this module finds the nodes that read or write them and
applies the recipe's ``mask_handling``:

- ``float`` (default): those nodes are kept in float, as if the recipe excluded them (measured on the zoo
  transformers, see docs/benchmarks.md: the only setting that keeps padded tokens out of the result);
- ``clamp``: they are quantized with the range of their ordinary values, and the masked values saturate.

Either way one note names the tensors and nodes and says what was done, and every such layer carries a
``mask_path`` hint. A node the recipe gives a precision explicitly keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from analyzers.calibration.collect import CalibrationData
from analyzers.calibration.histogram import MASK_MAGNITUDE, SpecialValues
from analyzers.diff_types import Hint

from .calibration_cache import op_types_for
from .graph import ModelGraph
from .recipe import Recipe

MAX_NAMED = 4  # tensors / nodes named in a note before "and N more"


@dataclass
class MaskPath:
    """The mask tensors of one model under one recipe, the nodes around them, and what was done."""

    handling: str  # the recipe's mask_handling
    tensors: dict[str, SpecialValues] = field(default_factory=dict)  # calibrated tensors holding mask values
    nodes: list[str] = field(default_factory=list)  # quantizable nodes that read or write them
    kept_float: list[str] = field(default_factory=list)  # nodes this module keeps in float
    attention: bool = False  # a Softmax reads the path: it is an attention mask
    nan: dict[str, int] = field(default_factory=dict)  # tensors holding NaN (a fault, not a mask): counts
    # tensors whose mask values start below MASK_MAGNITUDE: a finite mask constant found in the graph
    # (``analyzers.mask_constants``, e.g. -1e4): tensor -> the magnitude from which its values are mask values
    limits: dict[str, float] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.tensors)

    @property
    def label(self) -> str:
        return "attention-mask path" if self.attention else "mask path"

    def apply(self, recipe: Recipe) -> Recipe:
        """The recipe quantization uses: ``recipe`` with the mask-path nodes set to FP32 under ``float``."""
        if not self.kept_float:
            return recipe
        out = recipe.copy()
        for n in self.kept_float:
            out.set_precision(n, "fp32")
        return out

    def notes(self, done: bool = True) -> list[str]:
        """One line for the mask path (and one for NaN), saying what was done (``done``) or will be done."""
        out = []
        if self.tensors:
            held = _named([f"{t} ({s.describe()})" for t, s in self.tensors.items()])
            if any(s.neginf or s.posinf for s in self.tensors.values()):
                kinds = "infinite"
            elif self.limits:
                kinds = (f"dominated by a mask constant found in the graph (values with |x| >= "
                         f"{min(self.limits.values()):.4g} count as masked)")
            else:
                kinds = f"dominated by mask magnitudes (|x| >= {MASK_MAGNITUDE:.0e})".replace("e+0", "e")
            head = f"{self.label} holds mask values: {held}; their range is {kinds}, so they are kept out of it"
            if self.kept_float:
                verb = "kept" if done else "quantize/analyze keep"
                out.append(f"{head}; {verb} {len(self.kept_float)} nodes that read or write them in float "
                           f"({_named(self.kept_float)}). Set [global] mask_handling = \"clamp\" to quantize "
                           "them instead (masked values then saturate to the range's low end)")
            elif self.handling == "clamp":
                out.append(f"{head}; mask_handling = \"clamp\": {_named(self.nodes)} quantized with the range of "
                           "the ordinary values, so masked values saturate to its low end (padded tokens get "
                           "weight); mask_handling = \"float\" keeps them in float")
            else:
                out.append(f"{head}; the nodes around them ({_named(self.nodes)}) follow their per-layer precision")
        if self.nan:
            out.append("NaN values left out of the range of " + _named([f"{t} ({n:,})" for t, n in self.nan.items()])
                       + ": the model or the data produce NaN there")
        return out

    def hint(self, node: str, graph: ModelGraph) -> Hint | None:
        """The ``mask_path`` hint for a node that reads or writes a mask tensor (None for other nodes)."""
        if node not in self.nodes:
            return None
        n = graph.node(node)
        tensor = next(t for t in list(n.outputs) + list(n.inputs) if t in self.tensors)
        sp = self.tensors[tensor]
        what = (f"{tensor} is on the {self.label} and holds {sp.describe()}: "
                + ("its range is infinite" if sp.neginf or sp.posinf else
                   f"a range holding them would reach {sp.mask_min if sp.huge_neg else sp.mask_max:.4g}"))
        if node in self.kept_float:
            return Hint("mask_path", f"{what}, so this node was kept in float automatically",
                        "nothing to do; [global] mask_handling = \"clamp\" would quantize it with the range of "
                        "the ordinary values (masked values then saturate)", float(self.tensors[tensor].mask))
        if self.handling == "clamp":
            return Hint("mask_path", f"{what}; quantized with the range of the ordinary values, the masked values "
                        "saturate to its low end", "set [global] mask_handling = \"float\" (the default) to keep "
                        "the mask path in float", float(self.tensors[tensor].mask))
        return Hint("mask_path", f"{what}; the recipe sets this node's precision explicitly",
                    "remove its precision from the recipe to let mask_handling keep it in float",
                    float(self.tensors[tensor].mask))

    def to_dict(self) -> dict:
        return {"handling": self.handling, "label": self.label,
                "tensors": {t: s.to_dict() for t, s in self.tensors.items()}, "nodes": list(self.nodes),
                "kept_float": list(self.kept_float), "nan": dict(self.nan), "mask_limits": dict(self.limits)}


def find_mask_path(graph: ModelGraph, recipe: Recipe, calib: CalibrationData,
                   limits: dict[str, float] | None = None) -> MaskPath:
    """The mask tensors among the calibrated ones, the quantizable nodes that read or write them, and
    which of those ``recipe.settings.mask_handling`` keeps in float.

    Every input and output of a quantizable node is calibrated, so keeping the producers and consumers of
    the mask tensors in float leaves no Q/DQ pair on any of them. ``limits``: the model's finite mask constants'
    limits (``workbench.calibration_cache.prepared_mask_limits``), to say where the mask values start.
    """
    handling = recipe.settings.mask_handling
    ops = set(op_types_for(recipe))
    tensors, nan = {}, {}
    for name, h in calib.histograms.items():
        if h.special.mask:
            tensors[name] = h.special
        if h.special.nan:
            nan[name] = h.special.nan
    nodes = []
    for t in tensors:
        around = ([graph.producer[t]] if t in graph.producer else []) + list(graph.consumers.get(t, []))
        nodes += [n for n in around if graph.node(n).op_type in ops and n not in nodes]
    order = {n.name: n.index for n in graph.nodes}
    nodes.sort(key=order.__getitem__)
    attention = any(graph.node(n).op_type == "Softmax" for n in nodes)
    explicit = {n for n, o in recipe.layers.items() if o.precision is not None}
    kept = [n for n in nodes if n not in explicit] if handling == "float" else []
    return MaskPath(handling, tensors, nodes, kept, attention, nan,
                    {t: v for t, v in (limits or {}).items() if t in tensors and v < MASK_MAGNITUDE})


def _named(items: list[str]) -> str:
    more = len(items) - MAX_NAMED
    return ", ".join(items[:MAX_NAMED]) + (f" and {more} more" if more > 0 else "")
