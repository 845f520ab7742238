"""Benchmark: does `qwb tune` meet a target set from our own brute-force search, within its time budget?

    python benchmarks/tune_vs_bruteforce.py [MODEL ...] [--budget MIN] [--workers N] [--pairs-of M]

MODEL: ``planted`` (tests/tune_models.planted_cnn: 6 convs, two planted outlier-weight layers), ``outlier``
(tests/tune_models.outlier_cnn: one planted activation range), or a zoo name (tests/zoo, e.g.
``transformer_ninf_op17``, ``tf_cnn_op13``). Default: planted transformer_ninf_op17 tf_cnn_op13.

For each model, on the held-back part of the evaluation data (the part tune verifies on and never searches):
1. brute force: the SQNR of full INT8, of every group kept in float alone (every single), and of every pair of
   the M groups whose single move gains most (all pairs when there are at most M groups; ``--pairs-of``);
   hand-written: no library enumerates onnxruntime exclusion sets.
2. the target: halfway between the best single and the best pair when a pair beats every single by 0.5 dB or
   more (so the smallest set that meets it has two groups), else halfway between full INT8 and the best single
   (one group). The brute-force answer is the fastest set of that size that meets it.
3. `run_tune` with that target (``sqnr>=T``, latency objective, ``--time-budget``), twice: every candidate move
   (16-bit, float, percentile, method, global moves), and ``--candidates fp32`` (the brute force's own move set);
   whether its chosen point meets the target on the held-back part, how many moves, its latency against the
   brute-force set's, the evaluations and the time each side took.
Figures go to docs/benchmarks.md (Tune).
"""

import argparse
import itertools
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import numpy as np  # noqa: E402
import onnx  # noqa: E402

from tests.tune_models import outlier_cnn, outlier_data, planted_cnn, planted_data  # noqa: E402
from backends.tasks import NullTask  # noqa: E402
from workbench.calibration_cache import op_types_for  # noqa: E402
from workbench.session import SessionSpec, open_session  # noqa: E402
from workbench.tune.evaluator import recipe_key  # noqa: E402
from workbench.tune.groups import attach_range_owners, find_groups  # noqa: E402
from workbench.tune.moves import Move, apply_moves  # noqa: E402
from workbench.tune.pool import make_pool  # noqa: E402
from workbench.tune.search import TuneSpec, _context, run_tune  # noqa: E402
from workbench.tune.target import parse_target  # noqa: E402

DEFAULT_MODELS = ("planted", "transformer_ninf_op17", "tf_cnn_op13")
PAIR_MARGIN_DB = 0.5  # a pair must beat the best single by this much for the target to need two groups


def _paths(name: str) -> tuple[str, str, str]:
    if name in ("planted", "outlier"):
        d = Path(tempfile.mkdtemp(prefix=f"qwb-bf-{name}-"))
        model, data = (planted_cnn(), planted_data) if name == "planted" else (outlier_cnn(), outlier_data)
        onnx.save(model, str(d / "m.onnx"))
        np.savez(d / "calib.npz", **(data(32, seed=1, spike=True) if name == "outlier" else data(32, seed=1)))
        np.savez(d / "eval.npz", **data(48, seed=2))
        return str(d / "m.onnx"), str(d / "calib.npz"), str(d / "eval.npz")
    from tests.zoo import build  # noqa: PLC0415 - the zoo builds (torch) only when a zoo model is asked for
    p = build(name)
    return str(p.model), str(p.calib), str(p.eval)


def brute_force(s, workers: int, pairs_of: int) -> dict:
    """Every single and the pairs of the strongest singles, each group moved to float, on the held-back part."""
    t0 = time.perf_counter()
    base = s.recipe.copy()
    q = s.quantize(recipe=base)
    groups = find_groups(s.prepared.load_proto(), onnx.load(str(q.path)), set(op_types_for(base)), set(q.excluded))
    attach_range_owners(groups, s.graph)
    metric = parse_target("sqnr>=0")
    ctx, _, _ = _context(s, TuneSpec(metric), NullTask())
    pool = make_pool(ctx, workers)

    def run(sets):
        recipes = [apply_moves(base, groups, [Move("fp32", i) for i in st]) for st in sets]
        jobs, seen = [], set()
        for r in recipes:
            if recipe_key(r) not in seen:
                seen.add(recipe_key(r))
                jobs.append((r.to_dict(), "holdout"))
        got = {res.recipe_key: res for res in pool.run(jobs)}
        return [got[recipe_key(r)] for r in recipes]

    try:
        (full,), n = run([()]), 1
        singles = run([(i,) for i in range(len(groups))])
        n += len(singles)
        val = {(): metric.measure(full.outputs)}
        lat = {(): full.latency_ms}
        for i, r in enumerate(singles):
            val[(i,)] = -math.inf if r.error else metric.measure(r.outputs)
            lat[(i,)] = r.latency_ms
        strongest = sorted(range(len(groups)), key=lambda i: val[(i,)], reverse=True)[:pairs_of]
        pairs = list(itertools.combinations(sorted(strongest), 2))
        for pr, r in zip(pairs, run(pairs)):
            val[pr] = -math.inf if r.error else metric.measure(r.outputs)
            lat[pr] = r.latency_ms
        n += len(pairs)
    finally:
        pool.close()
    return {"groups": groups, "val": val, "lat": lat, "evaluations": n, "seconds": time.perf_counter() - t0,
            "pairs": len(pairs)}


def one(name: str, budget_min: float, workers: int, pairs_of: int) -> str:
    model, calib, ev = _paths(name)
    s = open_session(SessionSpec(model, calib, ev), calibrate=True)
    bf = brute_force(s, workers, pairs_of)
    val, lat, groups = bf["val"], bf["lat"], bf["groups"]
    singles = {k: v for k, v in val.items() if len(k) == 1}
    pairs = {k: v for k, v in val.items() if len(k) == 2}
    best1, best2 = max(singles.values()), max(pairs.values(), default=-math.inf)
    if best2 >= best1 + PAIR_MARGIN_DB:
        target, size = (best1 + best2) / 2, 2
    else:
        target, size = (val[()] + best1) / 2, 1
    meets = [k for k, v in val.items() if len(k) == size and v >= target]
    cheapest = min(meets, key=lambda k: lat[k] or math.inf)
    names = ", ".join(groups[i].name for i in cheapest)
    line = (f"{name}: {len(groups)} groups; full INT8 {val[()]:.2f} dB, best single {best1:.2f}, best pair "
            f"{best2:.2f} (held-back part); target sqnr>={target:.2f}; brute force: {bf['evaluations']} "
            f"evaluations ({len(groups)} singles + {bf['pairs']} pairs) in {bf['seconds']:.1f} s, smallest set "
            f"{size} group(s), {len(meets)} such sets meet it, fastest [{names}] {lat[cheapest]:.3f} ms (full INT8 "
            f"{lat[()]:.3f} ms)")
    for candidates in (("int16", "fp32", "percentile", "method"), ("fp32",)):
        t = time.perf_counter()
        r = run_tune(s, TuneSpec(parse_target(f"sqnr>={target:.2f}"), candidates=candidates, objective="latency",
                                 workers=workers, time_budget_s=budget_min * 60))
        wall = time.perf_counter() - t
        b = r.best
        line += (f"\n  tune --candidates {','.join(candidates)}: "
                 f"{'MET' if b and b.met_holdout else 'MISSED'} in {wall:.1f} s (budget {budget_min:g} min"
                 f"{', stopped: ' + r.stopped if r.stopped else ''}), {r.evaluations} evaluations; chosen "
                 + (f"{b.label}: {len(b.moves)} move(s), held-back {b.holdout_metric:.2f} dB, search "
                    f"{b.search_metric:.2f} dB, {b.latency_ms:.3f} ms, INT8 MACs {100 * (b.int8_mac_share or 0):.1f}%"
                    " (deployed)" if b else "nothing"))
        grouped = [p for p in r.points if p.source in ("ilp", "greedy") and p.met_search and p.met_holdout]
        if grouped:  # the best point made of per-group moves only: the brute force's kind of answer
            g = min(grouped, key=lambda p: (len(p.moves), p.latency_ms or math.inf))
            line += (f"; fewest per-group moves that meet it: {g.label} ({len(g.moves)}), held-back "
                     f"{g.holdout_metric:.2f} dB, {g.latency_ms:.3f} ms")
    print(line, flush=True)
    return line


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", default=list(DEFAULT_MODELS))
    ap.add_argument("--budget", type=float, default=5.0, help="qwb tune --time-budget, minutes (default 5)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--pairs-of", type=int, default=12, help="pairs among the M strongest singles (default 12)")
    a = ap.parse_args()
    for m in a.models:
        one(m, a.budget, a.workers, a.pairs_of)


if __name__ == "__main__":
    main()
