"""Which layers cause error: amplification, SQNR introduced at a node, the flag rule, its thresholds, rank orders.

Pure functions of figures the diff engine already measured (no model, no data), so each rule can be
tested on hand-made ``LayerResult`` objects and explained in one sentence. ``workbench.analysis`` calls
them while assembling a result, and ``AnalysisResult.ranked`` orders layers with ``ranked``. Why a flagged
layer loses accuracy is ``hints``' job, not this module's.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # diff_types imports Thresholds from here: no run-time import back
    from .diff_types import LayerResult

#: orders ``ranked`` knows, worst layer first (``qwb analyze --rank``)
RANKINGS = ("isolated", "introduced", "cumulative")


@dataclass
class Thresholds:
    """When a layer is flagged. Defaults suit 8-bit grids; every value can be changed by the user."""

    isolated_below_median_db: float = 6.0  # isolated (effective) SQNR this far below the layers' median
    isolated_floor_db: float = 20.0  # ... or below this absolute floor
    introduced_db: float = 6.0  # ... or this much cumulative SQNR lost at the node itself
    max_flagged: int = 10


def amplification(isolated_sqnr_db: float | None, cumulative_sqnr_db: float) -> float | None:
    """Isolated minus cumulative SQNR (dB): > 0 means the layer carries error from upstream.

    None when the layer has no isolated figure or either SQNR is not finite.
    """
    if isolated_sqnr_db is None or not _finite(isolated_sqnr_db, cumulative_sqnr_db):
        return None
    return isolated_sqnr_db - cumulative_sqnr_db


def introduced_db(input_sqnr_db: Sequence[float], cumulative_sqnr_db: float) -> float | None:
    """Cumulative SQNR lost at the node itself: its worst activation input's SQNR minus its output's (dB).

    None when the node has no measured activation input or either figure is not finite.
    """
    if not input_sqnr_db or not _finite(min(input_sqnr_db), cumulative_sqnr_db):
        return None
    return min(input_sqnr_db) - cumulative_sqnr_db


def flag(layers: Iterable[LayerResult], th: Thresholds, by: str = "isolated") -> list[LayerResult]:
    """Mark the layers that cause error (``flagged = True``) and return them, worst isolated SQNR first.

    A layer is a candidate when its isolated effective SQNR is ``isolated_below_median_db`` below the
    median layer's or under ``isolated_floor_db``, or when it loses more than ``introduced_db`` of
    cumulative SQNR itself while ending up worse than the median cumulative SQNR; at most
    ``max_flagged`` of the worst candidates are flagged. Layers without an isolated figure never are.
    ``by = "introduced"`` (deployed-only analyses, which have no isolated figures): only the second rule, worst
    loss first.
    """
    layers = list(layers)
    effs = [lay.isolated.effective_sqnr_db for lay in layers if lay.isolated and math.isfinite(lay.isolated.effective_sqnr_db)]
    median = statistics.median(effs) if effs else math.inf
    cums = [lay.cumulative.effective_sqnr_db for lay in layers if math.isfinite(lay.cumulative.effective_sqnr_db)]
    median_cum = statistics.median(cums) if cums else math.inf
    candidates = []
    for lay in layers:
        if lay.isolated is None and by == "isolated":
            continue
        # a big SQNR drop only counts where the result is also worse than typical: the first layer after a
        # clean input always "drops" a lot while staying the most accurate tensor in the model
        introduces = (lay.introduced_db is not None and lay.introduced_db > th.introduced_db
                      and lay.cumulative.effective_sqnr_db < median_cum)
        if by != "isolated":
            if introduces:
                candidates.append(lay)
            continue
        eff = lay.isolated.effective_sqnr_db
        bad = eff < median - th.isolated_below_median_db or eff < th.isolated_floor_db or introduces
        if bad:
            candidates.append(lay)
    if by == "isolated":
        candidates.sort(key=lambda lay: lay.isolated.effective_sqnr_db)
    else:
        candidates.sort(key=lambda lay: -lay.introduced_db)
    flagged = candidates[: th.max_flagged]
    for lay in flagged:
        lay.flagged = True
    return flagged


def ranked(layers: Iterable[LayerResult], by: str = "isolated") -> list[LayerResult]:
    """Worst first: by isolated effective SQNR, by cumulative SQNR introduced at the node, or by cumulative SQNR."""
    if by == "isolated":
        key = (lambda r: r.isolated.effective_sqnr_db if r.isolated else math.inf)
    elif by == "introduced":
        key = (lambda r: -(r.introduced_db if r.introduced_db is not None else -math.inf))
    elif by == "cumulative":
        key = (lambda r: r.cumulative.effective_sqnr_db)
    else:
        raise ValueError(f"unknown ranking {by!r}")
    return sorted(layers, key=key)


def _finite(*xs) -> bool:
    return all(x is not None and math.isfinite(x) for x in xs)
