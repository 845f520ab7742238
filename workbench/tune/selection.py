"""Choosing moves from measured per-move gains and costs: greedy by gain per cost, and an exact 0/1 program.

Both assume the gains of moves on different groups add up (each gain is measured with only that group
changed); the search verifies every selection, so the assumption only decides the order of what is tried.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

COST_FLOOR = 1e-6  # a move that measures free still costs this much, so the fewest moves win ties
EXHAUSTIVE_MAX = 16  # without scipy, every subset is tried up to this many useful moves


@dataclass(frozen=True)
class Option:
    """A move with its measured effect: ``gain`` in the target's better-is-larger units, ``cost`` in the
    objective's units (ms, MACs or bytes), ``floats`` 1 for a move to float (counted against --max-float)."""

    move: object
    group: int | None
    gain: float
    cost: float
    floats: int = 0


def greedy_order(options: list[Option]) -> list[Option]:
    """The best option of each group, most gain per cost first (options that gain nothing are dropped)."""
    best: dict[int, Option] = {}
    for o in options:
        if o.gain <= 0:
            continue
        cur = best.get(o.group)
        if cur is None or _ratio(o) > _ratio(cur):
            best[o.group] = o
    return sorted(best.values(), key=_ratio, reverse=True)


def _ratio(o: Option) -> float:
    return o.gain / max(o.cost, COST_FLOOR)


def solve(options: list[Option], need: float, max_float: int | None = None, exclude: list[frozenset] = ()
          ) -> list[Option] | None:
    """The cheapest set of options (at most one per group, at most ``max_float`` float moves) whose gains add
    up to ``need``, other than the sets in ``exclude``; None when no set reaches it. Exact: scipy's MILP
    (HiGHS) when scipy is installed, else every subset of the useful options up to EXHAUSTIVE_MAX."""
    useful = [o for o in options if o.gain > 0]
    if not useful or sum(_best_per_group(useful).values()) < need:
        return None
    if need <= 0:
        return []
    scale = 1.0 / need  # gains in units of the need: the solver's tolerances are absolute
    try:
        from scipy.optimize import Bounds, LinearConstraint, milp  # noqa: PLC0415 - optional (dev extra)
    except ImportError:
        return _exhaustive(useful, need, max_float, exclude)
    n = len(useful)
    cost = np.array([max(o.cost, 0.0) + COST_FLOOR for o in useful])
    rows, lo, hi = [np.array([o.gain * scale for o in useful])], [1.0], [np.inf]
    for g in {o.group for o in useful}:
        rows.append(np.array([1.0 if o.group == g else 0.0 for o in useful]))
        lo.append(0)
        hi.append(1)
    if max_float is not None:
        rows.append(np.array([float(o.floats) for o in useful]))
        lo.append(0)
        hi.append(max_float)
    for ex in exclude:  # no-good cut: not exactly this set again
        idx = [i for i, o in enumerate(useful) if o in ex]
        if len(idx) == len(ex):
            rows.append(np.array([1.0 if i in idx else -1.0 for i in range(n)]))
            lo.append(-np.inf)
            hi.append(len(ex) - 1)
    res = milp(cost, constraints=LinearConstraint(np.vstack(rows), lo, hi), integrality=np.ones(n),
               bounds=Bounds(0, 1))
    if res.x is None:
        return None
    return [o for o, x in zip(useful, res.x) if x > 0.5]


def _best_per_group(options: list[Option]) -> dict:
    best: dict = {}
    for o in options:
        best[o.group] = max(best.get(o.group, 0.0), o.gain)
    return best


def _exhaustive(useful: list[Option], need: float, max_float, exclude) -> list[Option] | None:
    useful = sorted(useful, key=_ratio, reverse=True)[:EXHAUSTIVE_MAX]
    best, best_cost = None, float("inf")
    for k in range(1, len(useful) + 1):
        for combo in itertools.combinations(useful, k):
            if len({o.group for o in combo}) < k or frozenset(combo) in exclude:
                continue
            if max_float is not None and sum(o.floats for o in combo) > max_float:
                continue
            if sum(o.gain for o in combo) < need:
                continue
            c = sum(max(o.cost, 0.0) + COST_FLOOR for o in combo)
            if c < best_cost:
                best, best_cost = list(combo), c
    return best
