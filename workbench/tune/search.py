"""The tune run: split the evaluation data, find the groups, measure every group's sensitivity, select moves
(greedy and exact), verify every proposal on held-back data the search never saw, and keep the Pareto points.

``run_tune`` is the engine entry point: the CLI passes a console task; a GUI passes its engine task (progress,
``check()`` to cancel) and ``on_point`` to plot each verified point as it arrives. Cancelling (or Ctrl-C, or the
time budget) ends the run early and returns what was verified so far.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field, replace

import numpy as np
import onnx

from backends.macs import count_macs
from backends.registry import make_backend
from backends.tasks import NullTask, Task

from ..analysis import analyze
from ..calibration_cache import op_types_for
from ..data import ArraySource, DataSource
from ..errors import CancelledError, WorkbenchError
from ..evaluate import evaluation_batching
from ..outputs import output_kinds
from ..recipe import Recipe
from ..session import Session
from .evaluator import EvalContext, EvalResult, recipe_key
from .groups import Group, attach_range_owners, find_groups
from .moves import (DEFAULT_CANDIDATES, RANGE_PAYS, Move, apply_moves, effective_recipe, global_moves,
                    global_range_moves_that_pay, group_moves, only_group, range_moves_that_pay)
from .pool import make_pool
from .selection import Option, greedy_order, solve
from .target import Target

OBJECTIVES = ("latency", "int8_macs", "size")  # --objective (a public contract)
LATENCY_NOISE = 0.05  # latency differences below this share of full INT8's are noise on a shared machine: every
# move costs at least this much (so the fewest moves win ties) and points this close count as equally fast
HOLDOUT_EVERY = 3  # every third evaluation sample is held back for verification
ILP_ROUNDS = 6
PROBE_SHARE = 0.95  # revert-one probes for the groups carrying this share of the summed quantize-one error
PROBE_MIN, PROBE_MAX = 2, 24
PROBE_MORE = 4  # when no selection from the first probes passes the search part: probe at least this many groups
MASKED = 0.5  # a float probe that removes less than this part of a group's error was masked by another group
COST_FLOOR_SHARE = 0.05  # every move costs at least this part of the median move's cost
PREDICTION_SLACK = 0.9  # a selection predicted to remove 90% of the error is worth verifying: the estimates are
# noisy, and padding a near-miss with tiny moves costs latency for nothing (a miss is topped up next round)  # re-solves with a raised requirement (or a cut) when a selection misses on the search part


@dataclass
class TuneSpec:
    """What to tune for and how: the fields of ``qwb tune``."""

    target: Target
    candidates: tuple = DEFAULT_CANDIDATES
    max_float: int | None = None
    objective: str = "latency"
    backend: str = "cpu"
    time_budget_s: float | None = None
    workers: int = 0  # 0: one per CPU core
    ray: str | None | bool = False  # False: no Ray; None or "": a local Ray; "host:port": that cluster
    ray_cpus: int = 1
    isolated: bool = True  # also the isolated (per-layer) error of every layer, from one analysis pass
    probe_all: bool = False  # revert-one probes for every group, not only those that carry the error


@dataclass
class GroupSensitivity:
    """One group's measured effect of each move, on the search part."""

    group: Group
    isolated_sqnr_db: float | None = None  # worst isolated SQNR of its layers in the fully quantized model
    quantize_one: float | None = None  # the target metric with only this group quantized
    revert: dict = field(default_factory=dict)  # move kind -> target metric with only this group moved
    latency_ms: dict = field(default_factory=dict)  # move kind -> latency with only this group moved
    size_bytes: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)  # move kind -> why that configuration failed

    def to_dict(self) -> dict:
        return {"group": self.group.to_dict(), "isolated_sqnr_db": _num(self.isolated_sqnr_db),
                "quantize_one": _num(self.quantize_one), "revert": {k: _num(v) for k, v in self.revert.items()},
                "latency_ms": {k: _num(v) for k, v in self.latency_ms.items()},
                "size_bytes": dict(self.size_bytes), "errors": dict(self.errors)}


@dataclass
class Point:
    """One verified configuration: its figures on the search part and on the held-back part."""

    label: str
    source: str  # int8 | global | greedy | ilp
    moves: list[str]
    recipe: dict
    search_metric: float | None
    holdout_metric: float | None
    met_search: bool
    met_holdout: bool
    latency_ms: float | None
    int8_mac_share: float | None  # deployed: MACs onnxruntime runs in 8-bit kernels / all MACs (held-back run)
    size_bytes: int | None
    floats: int = 0  # float moves
    int16: int = 0  # 16-bit moves
    error: str | None = None
    float_layers: list[str] = field(default_factory=list)  # what the moves made of the layers, overlaps resolved
    int16_layers: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("label", "source", "moves", "met_search", "met_holdout", "floats",
                                             "int16", "size_bytes", "error", "float_layers", "int16_layers",
                                             "recipe")}
        d.update(search_metric=_num(self.search_metric), holdout_metric=_num(self.holdout_metric),
                 latency_ms=_num(self.latency_ms), int8_mac_share=_num(self.int8_mac_share))
        return d


@dataclass
class TuneResult:
    """Everything a tune run found; ``best`` is the chosen point (None when nothing was verified)."""

    target: Target
    objective: str
    groups: list[GroupSensitivity]
    points: list[Point]
    best: Point | None
    evaluations: int
    elapsed_s: float
    search_samples: int
    holdout_samples: int
    pool: str
    stopped: str | None = None  # why the run ended early: cancelled | time budget
    notes: list[str] = field(default_factory=list)
    timings: dict = field(default_factory=dict)  # phase -> seconds (sensitivity_s, selection_s)

    def pareto(self) -> list[Point]:
        """Points no other point beats on both the held-back metric and the objective."""
        ok = [p for p in self.points if p.error is None and p.holdout_metric is not None]
        key = {"latency": "latency_ms", "size": "size_bytes", "int8_macs": "int8_mac_share"}[self.objective]
        sign = -1 if self.objective == "int8_macs" else 1

        def cost(p):
            v = getattr(p, key)
            return math.inf if v is None else sign * v

        better = self.target.score
        return [p for p in ok if not any(cost(q) <= cost(p) and better(q.holdout_metric) >= better(p.holdout_metric)
                                         and (cost(q) < cost(p) or better(q.holdout_metric) > better(p.holdout_metric))
                                         for q in ok)]

    def best_recipe(self) -> Recipe | None:
        return Recipe.from_dict(self.best.recipe) if self.best else None

    def to_dict(self) -> dict:
        pareto = {id(p) for p in self.pareto()}
        return {"target": self.target.text, "metric": self.target.metric, "objective": self.objective,
                "met": bool(self.best and self.best.met_holdout), "best": self.best.to_dict() if self.best else None,
                "points": [dict(p.to_dict(), pareto=id(p) in pareto) for p in self.points],
                "groups": [g.to_dict() for g in self.groups], "evaluations": self.evaluations,
                "elapsed_s": round(self.elapsed_s, 3), "search_samples": self.search_samples,
                "holdout_samples": self.holdout_samples, "pool": self.pool, "stopped": self.stopped,
                "notes": list(self.notes), "timings": {k: round(v, 3) for k, v in self.timings.items()}}


def _num(v):
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v


def _arrays(data: DataSource) -> tuple[dict, bool]:
    """Every sample of ``data`` as arrays with the sample axis first, and whether the model takes batches."""
    if data.can_batch and all(lay.has_batch_axis for lay in data.layouts.values()):
        return data.batch(0, len(data)), True
    samples = [data.sample(i) for i in range(len(data))]
    return {k: np.stack([s[k] for s in samples]) for k in samples[0]}, False


def split(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(search indices, held-back indices): every HOLDOUT_EVERY-th sample is held back, so both parts span the
    whole set even when it is sorted by class."""
    idx = np.arange(n)
    hold = idx[HOLDOUT_EVERY - 1::HOLDOUT_EVERY]
    return np.setdiff1d(idx, hold), hold


class _Run:
    """State of one tune run (kept out of ``run_tune`` so the phases stay small)."""

    def __init__(self, session: Session, spec: TuneSpec, task: Task, on_point):
        self.s, self.spec, self.task, self.on_point = session, spec, task, on_point
        self.t0 = time.perf_counter()
        self.evaluations = 0
        self.cache: dict[tuple, EvalResult] = {}
        self.points: list[Point] = []
        self.searched: dict[int, EvalResult] = {}  # id(point) -> its evaluation on the search part
        self.unverified: set[str] = set()  # keys of passing selections dominated by a verified point
        self.selection_passed = False  # some ilp/greedy selection met the target on the search part
        self.notes: list[str] = []
        self.timings: dict[str, float] = {}

    # -- evaluation ------------------------------------------------------------------------------
    def check(self) -> None:
        self.task.check()
        if self.spec.time_budget_s is not None and time.perf_counter() - self.t0 > self.spec.time_budget_s:
            raise _Budget()

    def evaluate(self, recipes: list[Recipe], part: str, message: str, lo: float, hi: float) -> list[EvalResult]:
        """Results for ``recipes`` on ``part`` (cached ones reused), in the order given."""
        keys = [self.key(r) for r in recipes]
        todo, seen, canon = [], set(), {}
        for r, k in zip(recipes, keys):
            if (k, part) not in self.cache and k not in seen:
                todo.append((r.to_dict(), part))
                seen.add(k)
                canon[recipe_key(r)] = k
        for i, res in enumerate(self.pool.run(todo, self.check)):
            self.cache[(canon[res.recipe_key], part)] = res
            self.evaluations += 1
            self.task.report(lo + (hi - lo) * (i + 1) / max(len(todo), 1), f"{message} ({i + 1}/{len(todo)})")
        return [self.cache[(k, part)] for k in keys]

    def key(self, recipe: Recipe) -> str:
        """The cache key of the quantized model ``recipe`` makes (two spellings of one model: one evaluation)."""
        base = getattr(self, "base", None)
        return recipe_key(effective_recipe(recipe, base, self.op_of) if base is not None else recipe)

    def metric(self, res: EvalResult) -> float | None:
        return None if res.error else self.spec.target.measure(res.outputs)

    # -- figures of a recipe ----------------------------------------------------------------------
    def mac_share(self, res: EvalResult) -> float | None:
        """Share of the model's MACs onnxruntime runs in 8-bit integer kernels in the evaluated model (the
        deployed coverage, read from the graph it runs: not what the recipe asks, which it does not always
        honour)."""
        if not self.total_macs or res.int8_macs is None:
            return None
        return res.int8_macs / self.total_macs

    def point(self, label: str, source: str, moves: list[Move], recipe: Recipe, searched: EvalResult,
              lo: float, hi: float) -> Point:
        """Verify ``recipe`` on the held-back part and record the point."""
        (held,) = self.evaluate([recipe], "holdout", f"verifying {label}", lo, hi)
        kinds = [m.kind for m in moves]
        p = Point(label, source, [m.label(self.groups) for m in moves], recipe.to_dict(), self.metric(searched),
                  self.metric(held), self.spec.target.met(self.metric(searched)),
                  self.spec.target.met(self.metric(held)), held.latency_ms,
                  self.mac_share(held if held.int8_macs is not None else searched),
                  held.size_bytes, kinds.count("fp32"), kinds.count("int16"), held.error or searched.error,
                  sorted(set(recipe.excluded_nodes()) - set(self.base.excluded_nodes())),
                  sorted(set(recipe.int16_nodes()) - set(self.base.int16_nodes())))
        self.points.append(p)
        self.searched[id(p)] = searched
        if self.on_point is not None:
            self.on_point(p)
        return p


class _Budget(Exception):
    """The time budget ran out (internal: turned into ``TuneResult.stopped``)."""


def _context(session: Session, spec: TuneSpec, task: Task) -> tuple[EvalContext, int, int]:
    data = session.eval_data
    if len(data) < 2:
        raise WorkbenchError(f"tune needs at least 2 evaluation samples (one searched, one held back); "
                             f"{data.description} has {len(data)}", "pass more samples with --eval")
    arrays, batched = _arrays(data)
    search, hold = split(len(data))
    labels = None if data.labels is None else np.asarray(data.labels)
    parts = {name: ({k: v[idx] for k, v in arrays.items()}, None if labels is None else labels[idx])
             for name, idx in (("search", search), ("holdout", hold))}
    model = session.prepared.load_proto()
    batch, _ = evaluation_batching(model, data)
    kinds = output_kinds(model, session.recipe, data.labels)
    backend = make_backend(spec.backend)
    avail = backend.availability()
    if not avail.available or backend.emulated:
        raise WorkbenchError(f"backend {spec.backend!r} cannot time candidates here"
                             + (f" ({avail.reason})" if getattr(avail, "reason", None) else ""),
                             "use --backend cpu (or a native backend `qwb backends` lists as available)")
    macs = {n.name: n.macs or 0 for n in count_macs(model, _shapes(session))}
    ctx = EvalContext(session.prepared.sha256 + data.content_hash(), session.prepared.path.read_bytes(),
                      session.prepared, session.calibration(task), parts, batch, batched, kinds, threads=1,
                      providers=backend.providers(1), macs=macs,
                      coverage_parts=("search", "holdout") if spec.objective == "int8_macs" else ("holdout",))
    return ctx, len(search), len(hold)


def _shapes(session: Session) -> dict[str, tuple]:
    """Input shapes of one sample (batch 1), for MAC counts."""
    first = session.eval_data.sample(0)
    return {k: tuple(v.shape) if not session.eval_data.can_batch else (1,) + tuple(v.shape[1:])
            for k, v in first.items()}


def run_tune(session: Session, spec: TuneSpec, task: Task | None = None, on_point=None) -> TuneResult:
    """Tune ``session``'s recipe for ``spec``; see the module docstring. ``on_point(point)`` is called with
    every verified point as soon as it is verified."""
    if spec.objective not in OBJECTIVES:
        raise WorkbenchError(f"--objective {spec.objective!r} is not one of {', '.join(OBJECTIVES)}",
                             f"use --objective {' | '.join(OBJECTIVES)}")
    task = task or NullTask()
    task.report(0.0, "calibrating")
    session.calibration(task, complete=True)  # candidates keep activations in float: their inputs need ranges
    run = _Run(session, spec, task, on_point)
    ctx, n_search, n_hold = _context(session, spec, task)
    run.ctx = ctx
    workers = spec.workers or (os.cpu_count() or 1)
    run.pool = make_pool(ctx, workers, spec.ray, spec.ray_cpus)
    stopped = None
    sens: list[GroupSensitivity] = []
    try:
        sens = _sensitivity(run)
        run.timings["sensitivity_s"] = time.perf_counter() - run.t0
        _select(run, sens)
        run.timings["selection_s"] = time.perf_counter() - run.t0 - run.timings["sensitivity_s"]
    except _Budget:
        stopped = "time budget"
    except (KeyboardInterrupt, CancelledError):
        stopped = "cancelled"
    finally:
        run.pool.close()
    best = _best(run.points, spec.target, spec.objective)
    return TuneResult(spec.target, spec.objective, sens, run.points, best, run.evaluations,
                      time.perf_counter() - run.t0, n_search, n_hold, run.pool.description, stopped, run.notes,
                      run.timings)


def _sensitivity(run: _Run) -> list[GroupSensitivity]:
    """Full INT8 and the global moves, then (unless full INT8 already meets the target) every group quantized
    alone and the revert-one probes of the groups that carry the error; each pass one batch over the pool."""
    s, spec = run.s, run.spec
    base = s.recipe.copy()
    q = s.quantize(recipe=base)
    fp32 = s.prepared.load_proto()
    shapes = _shapes(s)
    run.groups = find_groups(fp32, onnx.load(str(q.path)), set(op_types_for(base)), set(q.excluded), shapes)
    if not run.groups:
        raise WorkbenchError(f"{s.prepared.source} has no quantized layers to tune",
                             "check the recipe's op_types and exclusions")
    attach_range_owners(run.groups, s.graph)
    run.total_macs = sum(run.ctx.macs.values())
    run.base = base
    grouped = {n for g in run.groups for n in g.nodes}  # layers outside every group (fused activations) follow
    # their neighbours' precision: the same model whether the op_types drop them or not
    run.op_of = {n.name: n.op_type for n in s.graph.nodes if n.name in grouped}
    groups = run.groups
    sens = [GroupSensitivity(g) for g in groups]
    every_global = global_moves(base, groups, spec.candidates)
    # whole-model calibration-method moves wait for the quantize-one probes: they are evaluated only when they
    # change a range the error-carrying groups read (global_range_moves_that_pay)
    global_range = [m for m in every_global if m.kind.startswith("method:")]
    run.globals = [m for m in every_global if m not in global_range]
    run.moves, run.move_results = [], {}
    # pass 0: full INT8 and the whole-model moves. When full INT8 already meets the target, no group move can be
    # cheaper (every move costs something): the group probes would be spent for nothing (NNCF stops there too)
    res = run.evaluate([base] + [apply_moves(base, groups, [m]) for m in run.globals], "search",
                       "full INT8 and whole-model moves", 0.02, 0.05)
    run.full = res[0]
    if run.full.error:
        raise WorkbenchError(f"the fully quantized model failed: {run.full.error}", "run qwb quantize for details")
    run.global_results = dict(zip(run.globals, res[1:]))
    if spec.target.met(run.metric(run.full)):
        run.notes.append("full INT8 meets the target on the search part: no group was probed"
                         + (" and no whole-model calibration method evaluated (none can be cheaper)"
                            if global_range else ""))
        return sens
    # pass 1: each group quantized alone (cheap: one group's Q/DQ)
    run.task.report(0.05, f"{len(groups)} groups: quantize-one probes")
    if spec.isolated:
        _isolated(run, sens)
    res = run.evaluate([only_group(base, groups, i) for i in range(len(groups))], "search", "quantize-one probes",
                       0.05, 0.35)
    for g, r in zip(sens, res):
        g.quantize_one = run.metric(r)
    # pass 2: the revert-one probe of each candidate move, for the groups that carry the error (more only when
    # no selection from these passes: see _select)
    run.probed = set()
    probed = _groups_to_probe(run, sens)
    paying = global_range_moves_that_pay(s.graph, base, s.calibration(run.task), groups, global_range, probed)
    _probe(run, sens, probed, paying)
    skipped = [m.kind for m in global_range if m not in paying]
    if skipped:
        run.notes.append(f"whole-model {', '.join(skipped)} not evaluated: no range the error-carrying groups read "
                         f"changes by {100 * RANGE_PAYS:g}% or more")
    return sens


def _probe(run: _Run, sens: list[GroupSensitivity], groups: set[int], global_range: list[Move] = ()) -> None:
    """The revert-one probes of every candidate move of ``groups`` (those not probed yet), and the whole-model
    moves in ``global_range``, one batch."""
    s, spec, base = run.s, run.spec, run.base
    new = set(groups) - run.probed
    if not new and not global_range:
        return
    paying = range_moves_that_pay(s.graph, base, s.calibration(run.task), run.groups, spec.candidates, new)
    moves = [m for m in group_moves(run.groups, spec.candidates, paying, base) if m.group in new]
    res = run.evaluate([apply_moves(base, run.groups, [m]) for m in list(global_range) + moves], "search",
                       "revert-one probes", 0.35, 0.7)
    run.globals = run.globals + list(global_range)
    run.global_results.update(zip(global_range, res))
    res = res[len(global_range):]
    for m, r in zip(moves, res):
        g = sens[m.group]
        g.revert[m.kind] = run.metric(r)
        g.latency_ms[m.kind] = r.latency_ms
        g.size_bytes[m.kind] = r.size_bytes
        if r.error:
            g.errors[m.kind] = r.error
    run.moves = run.moves + moves
    run.move_results.update(zip(moves, res))
    run.probed |= new
    run.notes = [n for n in run.notes if not n.startswith("revert-one probes for the ")]
    if len(run.probed) < len(run.groups):
        run.notes.append(f"revert-one probes for the {len(run.probed)} of {len(run.groups)} groups that carry "
                         f"{100 * PROBE_SHARE:g}% of the quantize-one error (--probe-all: every group)")


def _groups_to_probe(run: _Run, sens: list[GroupSensitivity], at_least: int | None = None) -> set[int]:
    """Every group with --probe-all; else the fewest groups, most sensitive first, whose quantize-one errors
    add up to PROBE_SHARE of the total (at least PROBE_MIN, at most PROBE_MAX): the others cannot matter to
    the target, and their revert-one probes are most of a run's cost (a full quantization each)."""
    if run.spec.probe_all:
        return set(range(len(sens)))
    at_least = PROBE_MIN if at_least is None else at_least
    t = run.spec.target
    errs = [(t.error(g.quantize_one) if g.quantize_one is not None else 0.0, i) for i, g in enumerate(sens)]
    errs = [(e if math.isfinite(e) else 0.0, i) for e, i in errs]
    total = sum(e for e, _ in errs)
    out, acc = set(), 0.0
    for e, i in sorted(errs, reverse=True):
        if len(out) >= PROBE_MAX or (len(out) >= at_least and acc >= PROBE_SHARE * total):
            break
        out.add(i)
        acc += e
    return out


def _isolated(run: _Run, sens: list[GroupSensitivity]) -> None:
    """Worst isolated SQNR of each group's layers, from one analysis pass on the search part only."""
    s = run.s
    data = s.eval_data
    search, _ = split(len(data))
    arrays, batched = _arrays(data)
    if not batched:
        return
    sub = ArraySource({k: v[search] for k, v in arrays.items()},
                      None if data.labels is None else np.asarray(data.labels)[search],
                      f"{data.description} (search part)", data.content_hash() + ":search")
    sub.layouts = data.layouts
    saved = s.eval_data
    s.eval_data = sub
    try:
        a = analyze(s, run.base, samples=min(len(sub), 64), kernels="exact")
    finally:
        s.eval_data = saved
    iso = {lay.node: lay.isolated.sqnr_db for lay in a.layers if lay.isolated is not None}
    for g in sens:
        vals = [iso[n] for n in g.group.nodes if n in iso and math.isfinite(iso[n])]
        g.isolated_sqnr_db = min(vals) if vals else None


def _cost(run: _Run, res: EvalResult) -> float:
    """The objective's cost of a configuration relative to full INT8 (latency: measured on the deployed
    kernels, noise below zero counts as free; INT8 MACs: the deployed coverage lost)."""
    full = run.full
    if run.spec.objective == "latency":
        noise = LATENCY_NOISE * (full.latency_ms or 0.0)
        return max(noise, (res.latency_ms or 0.0) - (full.latency_ms or 0.0))
    if run.spec.objective == "size":
        return max(0.0, float((res.size_bytes or 0) - (full.size_bytes or 0)))
    base = run.mac_share(run.full) or 0.0
    return max(0.0, base - (run.mac_share(res) or 0.0)) * run.total_macs


def _options(run: _Run, sens: list[GroupSensitivity]) -> tuple[list[Option], float]:
    """Every measured move as an Option with its predicted error reduction, and the reduction needed.

    Errors (``Target.error``) are taken to add up over groups: a group's share is its error when quantized alone
    (the "quantize one" probe), scaled so the shares add up to full INT8's measured error; a move to 16-bit or a
    new percentile removes the part of that share its "revert one" probe removed compared with float. The
    "revert one" gain itself is the floor of each estimate (it is exact when one group dominates)."""
    t = run.spec.target
    full = t.error(run.metric(run.full))
    shares = [t.error(g.quantize_one) if g.quantize_one is not None else 0.0 for g in sens]
    total = sum(x for x in shares if math.isfinite(x))
    k = max(1.0, full / total) if total > 0 and math.isfinite(full) else 1.0  # errors that amplify (never
    # scaled down: a saturated metric, e.g. two layers each enough to ruin the output, would hide both)
    reverted = {(m.group, m.kind): t.error(run.metric(run.move_results[m])) for m in run.moves}
    out = []
    for m in run.moves:
        r = run.move_results[m]
        err = reverted[(m.group, m.kind)]
        if not math.isfinite(err):
            continue
        direct = full - err
        fp32_gain = full - reverted.get((m.group, "fp32"), math.inf)
        share = k * (shares[m.group] if math.isfinite(shares[m.group]) else 0.0)
        # what part of the group's error a 16-bit or percentile move removes, read from the revert-one probes;
        # only when the float probe removed a real part of it (another broken group masks both otherwise)
        informative = fp32_gain > 0 and fp32_gain >= MASKED * share
        frac = 1.0 if m.kind == "fp32" else (min(max(direct / fp32_gain, 0.0), 1.0) if informative else 0.0)
        gain = max(direct, share * frac)
        out.append(Option(m, m.group, gain, _cost(run, r), int(m.kind == "fp32")))
    positive = sorted(o.cost for o in out if o.cost > 0)
    floor = COST_FLOOR_SHARE * positive[len(positive) // 2] if positive else 1.0
    out = [replace(o, cost=max(o.cost, floor)) for o in out]  # nothing is free: the fewest moves win ties
    return out, full - t.error(t.value)


def _select(run: _Run, sens: list[GroupSensitivity]) -> None:
    spec, goal = run.spec, run.spec.target
    base = run.base
    full_val = run.metric(run.full)
    run.point("full INT8", "int8", [], base, run.full, 0.7, 0.72)
    for m, r in run.global_results.items():  # whole-model alternatives that pass are points too
        if goal.met(run.metric(r)):
            run.point(m.kind, "global", [m], apply_moves(base, run.groups, [m]), r, 0.72, 0.74)
    if goal.met(full_val):
        return
    options, need = _options(run, sens)
    _ilp(run, options, need)
    _greedy(run, options, need)
    more = _groups_to_probe(run, sens, PROBE_MORE) - run.probed
    if more and not run.selection_passed:
        # the first probes were too few for any selection to pass: probe the next groups and select again
        _probe(run, sens, more)
        options, need = _options(run, sens)
        _ilp(run, options, need)
        _greedy(run, options, need)


def _try(run: _Run, chosen: list[Option], source: str, lo: float, hi: float) -> tuple[bool, float]:
    """Evaluate ``chosen`` on the search part (a point when it passes); returns (passed, error reduction got)."""
    moves = [o.move for o in chosen]
    recipe = apply_moves(run.base, run.groups, moves)
    (r,) = run.evaluate([recipe], "search", f"{source}: {len(moves)} moves", lo, hi)
    val = run.metric(r)
    t = run.spec.target
    got = t.error(run.metric(run.full)) - t.error(val)
    if t.met(val):
        run.selection_passed = True
        label = f"{source}: " + ", ".join(m.label(run.groups) for m in moves)
        by = _dominating(run, r)
        if by is not None:
            if r.recipe_key not in run.unverified:  # ilp and greedy may pick the same set: one note
                run.unverified.add(r.recipe_key)
                run.notes.append(f"{label} met the target on the search part but was not verified: {by.label} "
                                 f"is as accurate there and cheaper")
        elif not any(p.recipe == recipe.to_dict() for p in run.points):
            run.point(label, source, moves, recipe, r, lo, hi)
        return True, got
    return False, got


def _dominating(run: _Run, res: EvalResult) -> Point | None:
    """A point that passed both parts, at least as good as ``res`` on the search part and cheaper beyond noise:
    ``res`` could not join the Pareto front, so its held-back verification (one evaluation) is not spent."""
    score = run.spec.target.score
    margin = LATENCY_NOISE * (run.full.latency_ms or 0.0)
    for p in run.points:
        q = run.searched.get(id(p))
        if (q is None or q.error or not (p.met_search and p.met_holdout) or p.search_metric is None
                or q.recipe_key == res.recipe_key):  # only a point that passed both parts can stand in
            continue
        if run.spec.objective == "latency":  # measured latencies: _cost counts anything below full INT8's as free
            cheaper = q.latency_ms is not None and res.latency_ms is not None and \
                q.latency_ms + margin < res.latency_ms
        else:
            cheaper = _cost(run, q) < _cost(run, res)
        if cheaper and score(p.search_metric) >= score(run.metric(res)):
            return p
    return None


def _ilp(run: _Run, options: list[Option], need: float) -> None:
    """The cheapest set predicted to reach the target (exact over the measured options); when it misses on the
    search part, the error still left is measured, and the cheapest set of the other groups' moves predicted to
    remove it is added (each round one evaluation)."""
    t = run.spec.target
    full_err = t.error(run.metric(run.full))
    chosen: list[Option] = []
    want = need
    for i in range(ILP_ROUNDS):
        used = {o.group for o in chosen}
        floats = sum(o.floats for o in chosen)
        budget = None if run.spec.max_float is None else run.spec.max_float - floats
        more = solve([o for o in options if o.group not in used], want * PREDICTION_SLACK, budget)
        if not more:
            run.notes.append(f"exact selection: no set of measured moves is predicted to remove the error "
                             f"({want:.4g} {t.metric} error to remove)" + (f" after {i} rounds" if i else ""))
            return
        chosen = chosen + more
        ok, got = _try(run, chosen, "ilp", 0.75, 0.85)
        if ok:
            return
        left = full_err - got if math.isfinite(got) else full_err
        want = left - t.error(t.value)


def _greedy(run: _Run, options: list[Option], need: float) -> None:
    """Moves in order of gain per cost, verified as soon as the predicted gain reaches the target, then one
    more move per evaluation until the search part passes (NNCF's loop, ordered by cost as well)."""
    order = greedy_order(options)
    floats, chosen, predicted = 0, [], 0.0
    for o in order:
        if run.spec.max_float is not None and floats + o.floats > run.spec.max_float:
            continue
        chosen.append(o)
        floats += o.floats
        predicted += o.gain
        if predicted < need * PREDICTION_SLACK:
            continue
        ok, _ = _try(run, chosen, "greedy", 0.85, 1.0)
        if ok:
            return


def _best(points: list[Point], target: Target, objective: str) -> Point | None:
    """The cheapest point that meets the target on both parts; else the best held-back metric."""
    ok = [p for p in points if p.error is None]
    if not ok:
        return None
    good = [p for p in ok if p.met_search and p.met_holdout]
    if not good:
        return max(ok, key=lambda p: target.score(p.holdout_metric))
    if objective == "latency":  # as fast as the fastest (within noise), then most INT8, fewest changes
        fastest = min(p.latency_ms or math.inf for p in good)
        near = [p for p in good if (p.latency_ms or math.inf) <= fastest * (1 + LATENCY_NOISE)]
        return max(near, key=lambda p: (p.int8_mac_share or 0.0, -len(p.moves), target.score(p.holdout_metric)))
    if objective == "size":
        return min(good, key=lambda p: (p.size_bytes or math.inf, len(p.moves)))
    return max(good, key=lambda p: (p.int8_mac_share or 0.0, -len(p.moves), target.score(p.holdout_metric)))
