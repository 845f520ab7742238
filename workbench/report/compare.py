"""Before/after between two runs of the same model and data: per layer, at the outputs, in latency.

Reads the two runs' analysis results and benchmark summaries only, so a comparison can be rebuilt from
saved reports. Layers are matched by node name; a layer one run lacks keeps ``None`` on that side.
"""

from __future__ import annotations

import math

from .data import Comparison, LatencyChange, LayerChange, OutputChange, RunReport, num

CHANGE_DB = 0.5  # a layer whose cumulative SQNR moves this much counts as changed


def _delta(after, before):
    if after is None or before is None or not (math.isfinite(after) and math.isfinite(before)):
        return None
    return after - before


def _percentile(recipe: dict, node: str):
    return ((recipe.get("layers") or {}).get(node) or {}).get("percentile")


def compare_runs(runs: list[RunReport], before: int = 0, after: int = 1, threshold_db: float = CHANGE_DB) -> Comparison:
    """What changed from ``runs[before]`` to ``runs[after]``."""
    rb, ra = runs[before], runs[after]
    lb = {lay.node: lay for lay in rb.analysis.layers}
    la = {lay.node: lay for lay in ra.analysis.layers}
    order = [lay.node for lay in ra.analysis.layers] + [n for n in lb if n not in la]
    layers = []
    for n in order:
        b, a = lb.get(n), la.get(n)
        ref = a or b
        ib = num(b.isolated.sqnr_db) if b is not None and b.isolated else None
        ia = num(a.isolated.sqnr_db) if a is not None and a.isolated else None
        cb = num(b.cumulative.sqnr_db) if b is not None else None
        ca = num(a.cumulative.sqnr_db) if a is not None else None
        pb, pa = _percentile(rb.recipe, n), _percentile(ra.recipe, n)
        prec_b, prec_a = (b.precision if b else None), (a.precision if a else None)
        fb, fa = bool(b and b.flagged), bool(a and a.flagged)
        dc = _delta(ca, cb)
        changed = prec_b != prec_a or pb != pa or fb != fa or (dc is not None and abs(dc) >= threshold_db)
        layers.append(LayerChange(n, ref.op_type, prec_b, prec_a, pb, pa, ib, ia, _delta(ia, ib), cb, ca, dc, fb, fa,
                                  changed))
    ob = {o.name: o for o in rb.analysis.outputs}
    oa = {o.name: o for o in ra.analysis.outputs}
    outputs = []
    for n in list(oa) + [n for n in ob if n not in oa]:
        b, a = ob.get(n), oa.get(n)

        def g(o, attr):
            return num(getattr(o, attr)) if o is not None else None

        outputs.append(OutputChange(n, g(b, "sqnr_db"), g(a, "sqnr_db"), _delta(g(a, "sqnr_db"), g(b, "sqnr_db")),
                                    g(b, "top1_agreement"), g(a, "top1_agreement"), g(b, "accuracy_int8"),
                                    g(a, "accuracy_int8"), _delta(g(a, "accuracy_int8"), g(b, "accuracy_int8"))))
    return Comparison(before, after, threshold_db, layers, outputs, latency_changes(rb, ra))


def latency_changes(rb: RunReport, ra: RunReport) -> list[LatencyChange]:
    """INT8 p50 latency before and after on every backend both runs were timed on."""
    if rb.bench is None or ra.bench is None:
        return []
    bb = {b.backend: b for b in rb.bench.backends}
    out = []
    for a in ra.bench.backends:
        b = bb.get(a.backend)
        if b is None:
            continue
        before = b.int8.p50_ms if b.int8 else None
        after = a.int8.p50_ms if a.int8 else None
        d = _delta(after, before)
        fp32 = (a.fp32 or b.fp32).p50_ms if (a.fp32 or b.fp32) else None
        out.append(LatencyChange(a.backend, fp32, before, after, d, d / before if d is not None and before else None))
    return out
