"""``qwb tune`` spends fewer evaluations (issue 14: fewer than NNCF): one evaluation per quantized model, and
revert-one probes only for the groups a selection needs, more only when no selection from them passes."""

from __future__ import annotations

import onnx
import pytest

from tests.tune_models import open_planted, write_planted
from workbench.calibration_cache import op_types_for
from workbench.tune import search
from workbench.tune.evaluator import recipe_key
from workbench.tune.groups import find_groups
from workbench.tune.moves import Move, apply_moves, effective_recipe, only_group
from workbench.tune.search import TuneSpec, run_tune
from workbench.tune.target import parse_target

PLANTED = {"conv2", "conv4"}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return write_planted(tmp_path_factory.mktemp("planted"))


_session = open_planted


def _tune(d, objective="int8_macs"):
    """int8_macs: the planted pair in float keeps more INT8 MACs than MatMul/Gemm only, so it is a verified
    point (with the latency objective MatMul/Gemm only dominates it on the search part)."""
    return run_tune(_session(d), TuneSpec(parse_target("cosine>=0.995"), objective=objective, workers=1,
                                          isolated=False))


def _found_planted(r) -> None:
    ilp = next(p for p in r.points if p.source == "ilp")
    assert {m.split(":")[0] for m in ilp.moves} == PLANTED and ilp.met_search and ilp.met_holdout


def test_matmul_only_is_the_quantize_one_probe_of_the_gemm_group(planted):
    """Both spellings quantize to the same graph, so they share one cache key (one evaluation)."""
    s = _session(planted)
    q = s.quantize(recipe=s.recipe)
    groups = find_groups(s.prepared.load_proto(), onnx.load(str(q.path)), set(op_types_for(s.recipe)),
                         set(q.excluded))
    fc = next(i for i, g in enumerate(groups) if g.nodes == ["fc"])
    op_of = {n.name: n.op_type for n in s.graph.nodes if any(n.name in g.nodes for g in groups)}
    matmul_only = apply_moves(s.recipe, groups, [Move("matmul_only")])
    probe = only_group(s.recipe, groups, fc)
    assert recipe_key(matmul_only) != recipe_key(probe)
    assert recipe_key(effective_recipe(matmul_only, s.recipe, op_of)) == \
        recipe_key(effective_recipe(probe, s.recipe, op_of))
    a, b = (onnx.load(str(s.quantize(recipe=r).path)).graph for r in (matmul_only, probe))
    assert a.SerializeToString() == b.SerializeToString()
    conv2 = next(i for i, g in enumerate(groups) if g.nodes == ["conv2"])  # a different model keeps its own key
    assert recipe_key(effective_recipe(only_group(s.recipe, groups, conv2), s.recipe, op_of)) != \
        recipe_key(effective_recipe(probe, s.recipe, op_of))


def test_evaluations_fall_on_the_planted_model_and_it_is_still_found_exactly(planted, monkeypatch):
    r = _tune(planted)
    _found_planted(r)
    assert r.best.met_holdout
    # the previous search: a cache keyed by the recipe's spelling, revert-one probes for at least 4 groups
    with monkeypatch.context() as m:
        m.setattr(search._Run, "key", lambda self, recipe: recipe_key(recipe))
        m.setattr(search, "PROBE_MIN", 4)
        before = _tune(planted)
    _found_planted(before)
    assert r.evaluations <= before.evaluations - 3  # one duplicate model, at least 2 groups' probes (2 moves each)
    assert before.best.met_holdout and r.best.holdout_metric >= 0.995


def test_too_few_first_probes_are_topped_up_until_a_selection_passes(planted, monkeypatch):
    """Only the worst group probed first (its float move alone cannot pass): the next groups are probed and the
    planted pair still found."""
    monkeypatch.setattr(search, "PROBE_MIN", 1)
    monkeypatch.setattr(search, "PROBE_SHARE", 0.5)
    r = _tune(planted)
    _found_planted(r)
    probed = {g.group.name for g in r.groups if g.revert}
    assert PLANTED <= probed and len(probed) == search.PROBE_MORE
    assert any(n.startswith(f"revert-one probes for the {search.PROBE_MORE} of") for n in r.notes)


def test_whole_model_methods_that_cannot_reach_the_error_are_skipped_and_would_not_have_met(planted):
    """A whole-model calibration method that leaves the ranges the planted groups read alone is not evaluated;
    evaluated anyway, none meets the target (nothing was lost)."""
    from backends.tasks import NullTask
    from workbench.tune import evaluator

    s = _session(planted)
    spec = TuneSpec(parse_target("cosine>=0.995"), workers=1, isolated=False)
    r = run_tune(s, spec)
    note = next(n for n in r.notes if n.startswith("whole-model method:"))
    skipped = [w.rstrip(",") for w in note.split(" not evaluated")[0].split()[1:]]
    assert skipped and all(k.startswith("method:") for k in skipped)
    assert not any(p.source == "global" and p.moves[0] in skipped for p in r.points)
    ctx, _, _ = search._context(s, spec, NullTask())
    q = s.quantize(recipe=s.recipe)
    groups = find_groups(s.prepared.load_proto(), onnx.load(str(q.path)), set(op_types_for(s.recipe)),
                         set(q.excluded))
    for kind in skipped:
        res = evaluator.evaluate(ctx, apply_moves(s.recipe, groups, [Move(kind)]).to_dict(), "search")
        assert not spec.target.met(spec.target.measure(res.outputs)), kind


def _layer_count_latency(monkeypatch):
    """Latency as a deterministic stand-in (no timed tests): 1 ms per compute layer left in INT8, as on this
    small model, where the integer kernels cost more than they save."""
    from dataclasses import replace as dc_replace

    from workbench.recipe import Recipe
    from workbench.tune import evaluator

    real = evaluator.evaluate
    compute = {f"conv{i}": "Conv" for i in range(6)} | {"fc": "Gemm"}

    def stub(ctx, recipe_dict, part):
        res = real(ctx, recipe_dict, part)
        r = Recipe.from_dict(recipe_dict)
        kept = set(op_types_for(r))
        int8 = [n for n, op in compute.items() if op in kept and r.precision_of(n) != "fp32"]
        return dc_replace(res, latency_ms=1.0 + len(int8))

    monkeypatch.setattr("workbench.tune.pool.evaluate", stub)


def test_a_point_dominated_on_the_search_part_is_not_verified(planted, monkeypatch):
    """With the latency objective, MatMul/Gemm only (one compute layer in INT8) is faster than the planted pair
    in float (three) and at least as accurate on the search part: the pair is named in the notes, not verified."""
    _layer_count_latency(monkeypatch)
    r = _tune(planted, "latency")
    mm = next(p for p in r.points if p.moves == ["matmul_only"])
    note = next(n for n in r.notes if "was not verified" in n)
    assert note.startswith("ilp: ") and all(f"{g}: fp32" in note for g in PLANTED) and "matmul_only" in note
    assert not any(p.source in ("ilp", "greedy") for p in r.points) and r.best is mm and mm.met_holdout
    verified = _tune(planted)  # int8_macs: the pair keeps more INT8 MACs, so it is verified
    _found_planted(verified)
    assert r.evaluations == verified.evaluations - 1
