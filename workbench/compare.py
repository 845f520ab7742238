"""Before/after between two analysis runs: what changed for every layer and at the model outputs.

The what-if loop's answer to "did my edit help?": per layer the isolated and cumulative SQNR of both
runs and their difference; per output SQNR, top-1 agreement and accuracy. Qt-free so the GUI table,
reports and tests read the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from analyzers.diff_types import AnalysisResult, LayerResult, OutputResult


def _iso(lay: LayerResult | None) -> float | None:
    return lay.isolated.effective_sqnr_db if lay is not None and lay.isolated is not None else None


def _cum(lay: LayerResult | None) -> float | None:
    return lay.cumulative.effective_sqnr_db if lay is not None else None


def delta(after: float | None, before: float | None) -> float | None:
    """after - before, or None when either is missing or not finite."""
    if after is None or before is None or not (math.isfinite(after) and math.isfinite(before)):
        return None
    return after - before


@dataclass
class LayerDelta:
    """One layer in both runs (either side may be missing, e.g. a layer newly kept in float)."""

    node: str
    op_type: str
    precision_before: str | None
    precision_after: str | None
    isolated_before: float | None
    isolated_after: float | None
    cumulative_before: float | None
    cumulative_after: float | None
    flagged_before: bool
    flagged_after: bool

    @property
    def isolated_delta(self) -> float | None:
        return delta(self.isolated_after, self.isolated_before)

    @property
    def cumulative_delta(self) -> float | None:
        return delta(self.cumulative_after, self.cumulative_before)

    @property
    def changed_setting(self) -> bool:
        return self.precision_before != self.precision_after


@dataclass
class OutputDelta:
    """One model output in both runs."""

    name: str
    before: OutputResult | None
    after: OutputResult | None

    def value(self, field: str, which: str) -> float | None:
        o = self.before if which == "before" else self.after
        return getattr(o, field) if o is not None else None

    def delta(self, field: str) -> float | None:
        return delta(self.value(field, "after"), self.value(field, "before"))


@dataclass
class RunComparison:
    layers: list[LayerDelta]
    outputs: list[OutputDelta]

    def changed(self, min_db: float = 0.5) -> list[LayerDelta]:
        """Layers whose setting changed or whose cumulative SQNR moved by at least ``min_db``."""
        out = []
        for d in self.layers:
            c = d.cumulative_delta
            if d.changed_setting or (c is not None and abs(c) >= min_db):
                out.append(d)
        return out


def compare_runs(before: AnalysisResult, after: AnalysisResult) -> RunComparison:
    """Layer by layer (in the after run's order, then layers only the before run has) and output by output."""
    b = {lay.node: lay for lay in before.layers}
    a = {lay.node: lay for lay in after.layers}
    order = [lay.node for lay in after.layers] + [n for n in b if n not in a]
    layers = []
    for n in order:
        lb, la = b.get(n), a.get(n)
        ref = la or lb
        layers.append(LayerDelta(n, ref.op_type, lb.precision if lb else None, la.precision if la else None,
                                 _iso(lb), _iso(la), _cum(lb), _cum(la), bool(lb and lb.flagged),
                                 bool(la and la.flagged)))
    ob = {o.name: o for o in before.outputs}
    oa = {o.name: o for o in after.outputs}
    outputs = [OutputDelta(n, ob.get(n), oa.get(n)) for n in list(oa) + [n for n in ob if n not in oa]]
    return RunComparison(layers, outputs)
