"""Candidate moves: what a tune run may change, per group (16-bit, float, percentile) or for the whole model
(every activation 16-bit, only MatMul/Gemm quantized, another calibration method), applied to a base recipe."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import WorkbenchError
from ..recipe import CALIBRATION_METHODS, Recipe
from ..recipe_ranges import sixteen_bit
from .groups import Group

CANDIDATES = ("int16", "fp32", "percentile", "method")  # --candidates (a public contract)
DEFAULT_CANDIDATES = ("int16", "fp32", "percentile", "method")
GROUP_MOVES = ("int16", "fp32", "percentile")
TUNED_PERCENTILE = 99.99  # the percentile a "percentile" move gives a group's activations
MATMUL_OPS = ("MatMul", "Gemm")


@dataclass(frozen=True)
class Move:
    """One change: ``kind`` on ``group`` (an index into the run's groups), or a global move (group None)."""

    kind: str  # int16 | fp32 | percentile | all_int16 | matmul_only | method:<name>
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


def group_moves(groups: list[Group], candidates: tuple[str, ...]) -> list[Move]:
    return [Move(k, i) for i in range(len(groups)) for k in GROUP_MOVES if k in candidates]


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
            for node in (g.float_nodes or g.nodes) if m.kind == "fp32" else g.nodes:
                if m.kind == "percentile":
                    r.set_percentile(node, TUNED_PERCENTILE)
                elif r.precision_of(node) != "fp32":
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
