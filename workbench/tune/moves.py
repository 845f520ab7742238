"""Candidate moves: what a tune run may change, per group (16-bit, float, a percentile or another calibration
method for the activations it reads) or for the whole model (every activation 16-bit, only MatMul/Gemm
quantized, another calibration method), applied to a base recipe.

A range move (percentile, method) on a group is worth an evaluation only when it changes the range of a tensor the
group reads by RANGE_PAYS or more; ``range_moves_that_pay`` finds those from the cached calibration histograms
(``recipe_ranges.tensor_ranges``: no model run), so a range move that cannot matter costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from analyzers.calibration.collect import CalibrationData

from ..calibration_cache import op_types_for
from ..errors import WorkbenchError
from ..graph import ModelGraph
from ..recipe import CALIBRATION_METHODS, Recipe
from ..recipe_ranges import sixteen_bit, tensor_ranges
from .groups import Group

CANDIDATES = ("int16", "fp32", "percentile", "method")  # --candidates (a public contract)
DEFAULT_CANDIDATES = ("int16", "fp32", "percentile", "method")
PRECISION_MOVES = ("int16", "fp32")
TUNED_PERCENTILE = 99.99  # the percentile a "percentile" move gives a group's activations
GROUP_METHODS = ("entropy", "mse")  # per-group method moves ("percentile" is its own move, minmax the default)
RANGE_PAYS = 0.25  # a range move is evaluated only when it changes some tensor's range width by this share
MATMUL_OPS = ("MatMul", "Gemm")
GROUP_MOVES = ("int16", "fp32", "percentile") + tuple(f"method:{m}" for m in GROUP_METHODS)  # every per-group kind


@dataclass(frozen=True)
class Move:
    """One change: ``kind`` on ``group`` (an index into the run's groups), or a global move (group None)."""

    kind: str  # int16 | fp32 | percentile | method:<name> (per group or global) | all_int16 | matmul_only
    group: int | None = None

    def label(self, groups: list[Group]) -> str:
        return f"{groups[self.group].name}: {self.kind}" if self.group is not None else self.kind


def parse_candidates(text: str | None) -> tuple[str, ...]:
    """``--candidates int16,fp32`` as a tuple; a clear error for an unknown name."""
    if not text:
        return DEFAULT_CANDIDATES
    items = tuple(c.strip() for c in text.split(",") if c.strip())
    bad = [c for c in items if c not in CANDIDATES]
    if bad or not items:
        raise WorkbenchError(f"--candidates {text!r}: unknown candidate(s) {', '.join(bad) or '(none)'}",
                             f"use a comma-separated list of {', '.join(CANDIDATES)}")
    return items


def range_kinds(base: Recipe, candidates: tuple[str, ...]) -> list[str]:
    """The per-group range moves ``candidates`` allow (a method the base recipe already uses is no move)."""
    out = ["percentile"] if "percentile" in candidates else []
    if "method" in candidates:
        out += [f"method:{m}" for m in GROUP_METHODS if m != base.settings.calibration_method]
    return out


def group_moves(groups: list[Group], candidates: tuple[str, ...], paying: set | None = None,
                base: Recipe | None = None) -> list[Move]:
    """Every per-group move ``candidates`` allow; range moves only for the (group, kind) pairs in ``paying``
    (all of them when ``paying`` is None)."""
    kinds = [k for k in PRECISION_MOVES if k in candidates] + range_kinds(base or Recipe(), candidates)
    return [Move(k, i) for i in range(len(groups)) for k in kinds
            if k in PRECISION_MOVES or paying is None or (i, k) in paying]


def range_moves_that_pay(graph: ModelGraph, base: Recipe, calib: CalibrationData, groups: list[Group],
                         candidates: tuple[str, ...], only: set[int] | None = None) -> set[tuple[int, str]]:
    """(group, kind) of the range moves that change the width of a range the group reads by RANGE_PAYS or more,
    from the cached histograms only (for the groups in ``only``, default all); a group whose activations no layer
    override can reach (a graph input) has none."""
    kinds = range_kinds(base, candidates)
    picked = [i for i in range(len(groups)) if only is None or i in only]
    readable = {t for i in picked for t in groups[i].tensors if t in calib.histograms}
    if not kinds or not readable:
        return set()
    before = tensor_ranges(graph, base, calib, sorted(readable))
    out = set()
    for i in picked:
        g = groups[i]
        tensors = sorted(set(g.tensors) & readable)
        if not tensors or not g.range_owners:
            continue
        for k in kinds:
            after = tensor_ranges(graph, apply_moves(base, groups, [Move(k, i)]), calib, tensors)
            if any(_width_change(before[t], after[t]) >= RANGE_PAYS for t in tensors):
                out.add((i, k))
    return out


def global_range_moves_that_pay(graph: ModelGraph, base: Recipe, calib: CalibrationData, groups: list[Group],
                                global_range: list[Move], only: set[int]) -> list[Move]:
    """The whole-model method moves in ``global_range`` that change the width of a range read by a group in
    ``only`` (those that carry the error) by RANGE_PAYS or more, from the cached histograms: one that leaves
    those ranges alone cannot remove the error, so it is not worth an evaluation."""
    tensors = sorted({t for i in only for t in groups[i].tensors if t in calib.histograms})
    if not tensors:
        return []
    before = tensor_ranges(graph, base, calib, tensors)
    out = []
    for m in global_range:
        after = tensor_ranges(graph, apply_moves(base, groups, [m]), calib, tensors)
        if any(_width_change(before[t], after[t]) >= RANGE_PAYS for t in tensors):
            out.append(m)
    return out


def _width_change(a, b) -> float:
    wa, wb = a.hi - a.lo, b.hi - b.lo
    return abs(wa - wb) / max(wa, wb) if max(wa, wb) > 0 else 0.0


def global_moves(base: Recipe, groups: list[Group], candidates: tuple[str, ...]) -> list[Move]:
    """Whole-model alternatives worth one evaluation each."""
    out = []
    if "int16" in candidates and base.settings.activation_type in ("u8", "s8"):
        out.append(Move("all_int16"))
    ops = {o for g in groups for o in g.op_types}
    if ops & set(MATMUL_OPS) and ops - set(MATMUL_OPS):
        out.append(Move("matmul_only"))
    if "method" in candidates:
        out += [Move(f"method:{m}") for m in CALIBRATION_METHODS if m != base.settings.calibration_method]
    return out


def apply_moves(base: Recipe, groups: list[Group], moves) -> Recipe:
    """``base`` with ``moves`` applied (later moves win on the same layer)."""
    r = base.copy()
    for m in moves:
        if m.group is not None:
            g = groups[m.group]
            if m.kind == "percentile":
                for node in g.range_owners or g.nodes:
                    r.set_percentile(node, TUNED_PERCENTILE)
            elif m.kind.startswith("method:"):
                for node in g.range_owners or g.nodes:
                    r.set_method(node, m.kind.split(":", 1)[1])
            else:
                for node in (g.float_nodes or g.nodes) if m.kind == "fp32" else g.nodes:
                    if r.precision_of(node) != "fp32":
                        r.set_precision(node, m.kind)
        elif m.kind == "all_int16":
            r.settings.activation_type = sixteen_bit(r.settings.activation_type)
        elif m.kind == "matmul_only":
            r.settings.op_types = sorted(set(MATMUL_OPS))
        elif m.kind.startswith("method:"):
            r.settings.calibration_method = m.kind.split(":", 1)[1]
    return r


def only_group(base: Recipe, groups: list[Group], keep: int) -> Recipe:
    """``base`` with every layer outside group ``keep`` in float: the "quantize one" probe."""
    r = base.copy()
    for i, g in enumerate(groups):
        if i != keep:
            for node in g.nodes:
                r.set_precision(node, "fp32")
    return r


def effective_recipe(recipe: Recipe, base: Recipe, op_of: dict[str, str]) -> Recipe:
    """``recipe`` spelled one canonical way, so two spellings of the same quantized model share one evaluation
    (a whole-model "MatMul/Gemm only" move is the quantize-one probe of the MatMul group when it is the only
    one): op_types narrowed from ``base``'s become ``base``'s with every layer of a dropped op type (``op_of``:
    the grouped layers' op types) set to float; layer overrides in name order."""
    r = recipe.copy()
    wide = set(op_types_for(base))
    kept = set(op_types_for(r))
    if kept < wide:
        r.settings.op_types = list(base.settings.op_types)
        for node, op in op_of.items():
            if op in wide and op not in kept:
                r.set_precision(node, "fp32")
    r.layers = dict(sorted(r.layers.items()))
    return r
