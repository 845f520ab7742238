"""Histograms of the flagged layers' outputs with the calibration range each recipe gives them.

Read from the calibration histograms the session already holds (no model run), re-binned exactly for
display, with the range and its predicted effect computed by the same functions quantization uses.
When the calibration lab (``workbench.calib_lab``) is available, its per-method comparison is added.
"""

from __future__ import annotations

import numpy as np

from analyzers.calibration.histogram import HistogramSnapshot
from analyzers.calibration.methods import range_stats

from ..calib_lab import build_lab
from ..recipe_ranges import tensor_ranges
from .data import CalibRange, TensorHistogram, num

DISPLAY_BINS = 96
MAX_HISTOGRAMS = 6


def rebin(h: HistogramSnapshot, bins: int = DISPLAY_BINS) -> tuple[float, float, list[int]]:
    """(lo, hi, counts): the non-empty span of ``h`` in at most ``bins`` equal bins, each an exact sum of
    whole fine bins (so the display never invents or loses a count)."""
    counts = np.asarray(h.counts, dtype=np.int64)
    nz = np.nonzero(counts)[0]
    if nz.size == 0:
        return float(h.min), float(h.max), []
    a, b = int(nz[0]), int(nz[-1]) + 1
    fine = counts[a:b]
    group = max(1, -(-len(fine) // bins))
    pad = (-len(fine)) % group
    if pad:
        fine = np.concatenate([fine, np.zeros(pad, dtype=np.int64)])
    edges = np.asarray(h.edges, dtype=np.float64)
    width = float(edges[1] - edges[0])
    lo = float(edges[a])
    hi = lo + len(fine) * width
    return lo, hi, fine.reshape(-1, group).sum(axis=1).astype(int).tolist()


def pick_layers(analysis, limit: int = MAX_HISTOGRAMS) -> list[tuple[object, str]]:
    """(layer, why) for the histogram section: the flagged layers, or the two worst when none is flagged."""
    flagged = analysis.flagged()
    if flagged:
        return [(lay, "flagged") for lay in flagged[:limit]]
    ranked = [lay for lay in analysis.ranked("isolated") if lay.isolated is not None]
    return [(lay, "worst") for lay in ranked[:2]]


def calib_range(graph, recipe, calib, tensor: str) -> CalibRange | None:
    """The range ``recipe`` gives ``tensor`` and its predicted clipping, grid use and SQNR."""
    if tensor not in calib.histograms:
        return None
    tr = tensor_ranges(graph, recipe, calib, [tensor])[tensor]
    h = calib.histograms[tensor]
    st = range_stats(h, tr.lo, tr.hi, tr.spec) if h.count else None
    return CalibRange(num(tr.lo), num(tr.hi), tr.method, tr.percentile, tr.spec.qtype,
                      num(st.clip_rate) if st else None, num(st.grid_usage) if st else None,
                      num(st.outlier_share) if st else None, num(st.sqnr_db) if st else None)


def tensor_histograms(session, runs: list[tuple[str, object, object]], final: int) -> list[TensorHistogram]:
    """Histograms for ``runs[final]``'s flagged layers; ``runs`` is [(label, recipe, analysis)], and every
    run's range for the tensor is drawn (before/after a percentile change shows both)."""
    calib = session.calibration()
    graph = session.graph
    _, recipe, analysis = runs[final]
    picks = pick_layers(analysis)
    if final > 0 or len(runs) > 1:  # also the layers the other run flagged (what the change was about)
        seen = {lay.node for lay, _ in picks}
        for i, (_, _, other) in enumerate(runs):
            if i != final:
                for lay in other.flagged():
                    if lay.node not in seen and len(picks) < MAX_HISTOGRAMS:
                        picks.append((lay, "flagged before"))
                        seen.add(lay.node)
    out = []
    for lay, why in picks:
        h = calib.histograms.get(lay.output)
        if h is None or not h.count:
            continue
        lo, hi, counts = rebin(h)
        ranges, float_in = {}, []
        for run_label, r, result in runs:
            mine = result.layer(lay.node)
            if mine is None or mine.precision == "fp32":  # not quantized in that run: no range applies
                float_in.append(run_label)
                continue
            cr = calib_range(graph, r, calib, lay.output)
            if cr is not None:
                ranges[run_label] = cr
        th = TensorHistogram(lay.output, lay.node, lay.op_type, why, lo, hi, counts, float(h.min), float(h.max),
                             int(h.count), int(h.zeros), ranges, float_in)
        _add_lab(th, graph, recipe, calib)
        out.append(th)
    return out


def _add_lab(th: TensorHistogram, graph, recipe, calib) -> None:
    """The calibration lab's per-method ranges and predicted SQNR."""
    lab = build_lab(graph, recipe, calib, tensors=[th.tensor])
    t = lab.tensors[0]
    th.methods = {m: {"lo": num(s.lo), "hi": num(s.hi), "clip_rate": num(s.clip_rate),
                      "predicted_sqnr_db": num(s.sqnr_db)} for m, s in t.methods.items()}
    th.winner = t.winner
