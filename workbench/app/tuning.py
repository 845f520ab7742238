"""What the Tune panel needs from a tune search's points, Qt-free: the Pareto set while points still arrive,
and the target's direction (``qwb tune``'s result marks its Pareto points only once the search has ended)."""

from __future__ import annotations

import math

from ..tune.target import parse_target

COST_KEYS = {"latency": "latency_ms", "size": "size_bytes", "int8_macs": "int8_mac_share"}


def higher_is_better(target_text: str) -> bool:
    """True when the target's metric must be at least its value (every metric but accuracy_drop)."""
    return parse_target(target_text).higher_is_better


def pareto_flags(points: list[dict], target_text: str, objective: str = "latency") -> list[bool]:
    """For each point (``Point.to_dict()``), whether no other point is at least as good on both the held-back
    metric and the objective and better on one: ``TuneResult.pareto`` over the dicts a GUI holds."""
    up = 1.0 if higher_is_better(target_text) else -1.0
    key = COST_KEYS.get(objective, "latency_ms")
    sign = -1.0 if objective == "int8_macs" else 1.0  # more INT8 MACs is better

    def figures(p: dict) -> tuple[float, float] | None:
        if p.get("error") or p.get("holdout_metric") is None:
            return None
        c = p.get(key)
        return (math.inf if c is None else sign * c, up * p["holdout_metric"])

    fs = [figures(p) for p in points]
    out = []
    for f in fs:
        if f is None:
            out.append(False)
            continue
        out.append(not any(g is not None and g[0] <= f[0] and g[1] >= f[1] and (g[0] < f[0] or g[1] > f[1])
                           for g in fs))
    return out
