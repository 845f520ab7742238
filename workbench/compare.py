"""Before/after between two analysis runs of the same model and data: the one comparison every screen uses.

The what-if loop's answer to "did my edit help?", layer by layer and at the model outputs. The GUI's
before/after table, its output summary and the report all read this, so the same two runs show the same
figures everywhere. SQNR here is the tensor SQNR (10*log10(sum x^2 / sum (x-y)^2), the figure
``qdq_loss_debug`` computes); a layer counts as changed when its precision, percentile or flag changed,
or when its cumulative SQNR moved by at least the threshold. Layers are matched by node name, outputs by
(name, kernels): an exact figure is only ever compared with an exact one. A layer or output one run lacks
keeps ``None`` on that side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from analyzers.diff_types import AnalysisResult, LayerResult, OutputResult
from analyzers.jsonsafe import json_num

CHANGE_DB = 0.5  # a layer whose cumulative SQNR moves this much counts as changed


def delta(after: float | None, before: float | None) -> float | None:
    """after - before, or None when either is missing or not finite."""
    if after is None or before is None or not (math.isfinite(after) and math.isfinite(before)):
        return None
    return after - before


@dataclass
class LayerChange:
    """One layer in both runs; ``None`` where a run has no figure (e.g. isolated error of a float layer)."""

    node: str
    op_type: str
    precision_before: str | None
    precision_after: str | None
    percentile_before: float | None
    percentile_after: float | None
    isolated_before: float | None
    isolated_after: float | None
    isolated_delta: float | None
    cumulative_before: float | None
    cumulative_after: float | None
    cumulative_delta: float | None
    flagged_before: bool
    flagged_after: bool
    changed: bool  # a setting changed, the flag changed, or cumulative SQNR moved by at least the threshold

    @property
    def changed_setting(self) -> bool:
        """The user changed this layer's precision or percentile between the runs."""
        return self.precision_before != self.precision_after or self.percentile_before != self.percentile_after


# output figure -> (before field, after field) of OutputChange
OUTPUT_FIELDS = {"sqnr_db": ("sqnr_before", "sqnr_after"), "cosine": ("cosine_before", "cosine_after"),
                 "top1_agreement": ("top1_before", "top1_after"),
                 "accuracy_fp32": ("accuracy_fp32_before", "accuracy_fp32_after"),
                 "accuracy_int8": ("accuracy_before", "accuracy_after"),
                 "cosine_mean": ("cosine_mean_before", "cosine_mean_after"),
                 "cosine_min": ("cosine_min_before", "cosine_min_after"),
                 "step_agreement": ("step_agreement_before", "step_agreement_after"),
                 "sequence_match": ("sequence_match_before", "sequence_match_after"),
                 "max_abs": ("max_abs_before", "max_abs_after")}


@dataclass
class OutputChange:
    """One model output in both runs."""

    name: str
    sqnr_before: float | None
    sqnr_after: float | None
    sqnr_delta: float | None
    top1_before: float | None
    top1_after: float | None
    accuracy_before: float | None  # INT8 accuracy
    accuracy_after: float | None
    accuracy_delta: float | None
    cosine_before: float | None = None
    cosine_after: float | None = None
    accuracy_fp32_before: float | None = None
    accuracy_fp32_after: float | None = None
    kind: str | None = None  # the after run's kind of this output (the before run's when only it has it)
    cosine_mean_before: float | None = None
    cosine_mean_after: float | None = None
    cosine_min_before: float | None = None
    cosine_min_after: float | None = None
    step_agreement_before: float | None = None
    step_agreement_after: float | None = None
    sequence_match_before: float | None = None
    sequence_match_after: float | None = None
    max_abs_before: float | None = None
    max_abs_after: float | None = None
    kernels: str = "exact"  # the execution mode both sides were measured in (analyzers.diff_types.KERNELS)

    def value(self, figure: str, which: str) -> float | None:
        """``figure`` (a key of ``OUTPUT_FIELDS``) of the 'before' or 'after' run."""
        return getattr(self, OUTPUT_FIELDS[figure][0 if which == "before" else 1])

    def delta(self, figure: str) -> float | None:
        return delta(self.value(figure, "after"), self.value(figure, "before"))


@dataclass
class RunComparison:
    """Every layer and output of two runs, in the after run's topological order."""

    threshold_db: float
    layers: list[LayerChange] = field(default_factory=list)
    outputs: list[OutputChange] = field(default_factory=list)

    def changed(self) -> list[LayerChange]:
        return [c for c in self.layers if c.changed]


def _percentile(recipe: dict | None, node: str):
    return (((recipe or {}).get("layers") or {}).get(node) or {}).get("percentile")


def _layer(n: str, b: LayerResult | None, a: LayerResult | None, rb: dict | None, ra: dict | None,
           threshold_db: float) -> LayerChange:
    ib = json_num(b.isolated.sqnr_db) if b is not None and b.isolated else None
    ia = json_num(a.isolated.sqnr_db) if a is not None and a.isolated else None
    cb = json_num(b.cumulative.sqnr_db) if b is not None else None
    ca = json_num(a.cumulative.sqnr_db) if a is not None else None
    pb, pa = _percentile(rb, n), _percentile(ra, n)
    prec_b, prec_a = (b.precision if b else None), (a.precision if a else None)
    fb, fa = bool(b and b.flagged), bool(a and a.flagged)
    dc = delta(ca, cb)
    changed = prec_b != prec_a or pb != pa or fb != fa or (dc is not None and abs(dc) >= threshold_db)
    return LayerChange(n, (a or b).op_type, prec_b, prec_a, pb, pa, ib, ia, delta(ia, ib), cb, ca, dc, fb, fa, changed)


def _output(n: str, b: OutputResult | None, a: OutputResult | None) -> OutputChange:
    def g(o, attr):
        return json_num(getattr(o, attr)) if o is not None else None

    kinds = {"kind": (a or b).kind, "kernels": (a or b).kernels}
    for figure in ("cosine_mean", "cosine_min", "step_agreement", "sequence_match", "max_abs"):
        kinds[f"{figure}_before"], kinds[f"{figure}_after"] = g(b, figure), g(a, figure)
    return OutputChange(n, g(b, "sqnr_db"), g(a, "sqnr_db"), delta(g(a, "sqnr_db"), g(b, "sqnr_db")),
                        g(b, "top1_agreement"), g(a, "top1_agreement"), g(b, "accuracy_int8"), g(a, "accuracy_int8"),
                        delta(g(a, "accuracy_int8"), g(b, "accuracy_int8")), g(b, "cosine"), g(a, "cosine"),
                        g(b, "accuracy_fp32"), g(a, "accuracy_fp32"), **kinds)


def compare_runs(before: AnalysisResult, after: AnalysisResult, before_recipe: dict | None = None,
                 after_recipe: dict | None = None, threshold_db: float = CHANGE_DB) -> RunComparison:
    """What changed from ``before`` to ``after``; the recipes (as dicts) default to the ones the results carry."""
    rb = before_recipe if before_recipe is not None else before.recipe
    ra = after_recipe if after_recipe is not None else after.recipe
    lb = {lay.node: lay for lay in before.layers}
    la = {lay.node: lay for lay in after.layers}
    order = [lay.node for lay in after.layers] + [n for n in lb if n not in la]
    ob = {(o.name, o.kernels): o for o in before.outputs}
    oa = {(o.name, o.kernels): o for o in after.outputs}
    return RunComparison(threshold_db, [_layer(n, lb.get(n), la.get(n), rb, ra, threshold_db) for n in order],
                         [_output(k[0], ob.get(k), oa.get(k)) for k in list(oa) + [k for k in ob if k not in oa]])
