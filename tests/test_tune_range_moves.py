"""Per-group range moves of ``qwb tune`` (a percentile or another calibration method for the activations a group
reads): the recipe's per-layer method, which range moves are worth evaluating, and a planted outlier range that a
per-group percentile fixes most cheaply."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from backends.macs import count_macs
from backends.runtime_precision import runtime_int8_layers
from tests.tune_models import SPIKE, outlier_cnn, outlier_data
from workbench.calibration_cache import op_types_for
from workbench.recipe import Recipe
from workbench.recipe_ranges import tensor_ranges
from workbench.session import SessionSpec, open_session
from workbench.tune.groups import attach_range_owners, find_groups
from workbench.tune.moves import Move, apply_moves, range_moves_that_pay
from workbench.tune.search import TuneSpec, run_tune
from workbench.tune.target import parse_target


@pytest.fixture(scope="module")
def outlier(tmp_path_factory):
    d = tmp_path_factory.mktemp("outlier")
    onnx.save(outlier_cnn(), str(d / "m.onnx"))
    np.savez(d / "calib.npz", **outlier_data(32, seed=1, spike=True))
    np.savez(d / "eval.npz", **outlier_data(48, seed=2))
    return open_session(SessionSpec(str(d / "m.onnx"), str(d / "calib.npz"), str(d / "eval.npz")))


def _groups(s):
    q = s.quantize(recipe=s.recipe)
    groups = find_groups(s.prepared.load_proto(), onnx.load(str(q.path)), set(op_types_for(s.recipe)),
                         set(q.excluded))
    attach_range_owners(groups, s.graph)
    return {g.nodes[0]: i for i, g in enumerate(groups)}, groups


def test_per_layer_method_sets_that_layers_output_range_and_round_trips(outlier):
    s = outlier
    calib = s.calibration()
    r = Recipe()
    r.set_method("conv2", "entropy")
    again = Recipe.loads(r.dumps())
    assert again.method_of("conv2") == "entropy" and "layer conv2: method entropy" in again.differences_from_default()
    base = tensor_ranges(s.graph, Recipe(), calib, ["r2", "r1"])
    moved = tensor_ranges(s.graph, again, calib, ["r2", "r1"])
    assert moved["r2"].method == "entropy" and moved["r2"].override_from in ("conv2", "relu2")
    ent = Recipe()
    ent.settings.calibration_method = "entropy"
    assert (moved["r2"].lo, moved["r2"].hi) == pytest.approx(
        (tensor_ranges(s.graph, ent, calib, ["r2"])["r2"].lo, tensor_ranges(s.graph, ent, calib, ["r2"])["r2"].hi))
    assert (moved["r2"].lo, moved["r2"].hi) != (base["r2"].lo, base["r2"].hi)
    assert moved["r1"] == base["r1"]  # another layer's tensor keeps the global method
    r.set_method("conv2", None)
    assert r.layers == {}
    with pytest.raises(Exception, match="method"):
        Recipe.from_dict({"version": 1, "layers": {"conv2": {"method": "kl"}}})


def test_range_moves_are_evaluated_only_where_they_change_a_range(outlier):
    s = outlier
    by_first, groups = _groups(s)
    paying = range_moves_that_pay(s.graph, s.recipe, s.calibration(), groups, ("percentile", "method"))
    conv1 = by_first["conv1"]
    assert groups[conv1].tensors == ["r0"] and set(groups[conv1].range_owners) == {"conv0", "relu0"}
    assert (conv1, "percentile") in paying  # the planted range: SPIKE against activations of a few units
    assert not any(i == by_first["conv0"] for i, _ in paying)  # it reads the graph input: no override reaches it
    moved = apply_moves(s.recipe, groups, [Move("percentile", conv1)])
    r0 = tensor_ranges(s.graph, moved, s.calibration(), ["r0"])["r0"]
    assert r0.hi < SPIKE / 4 and r0.method == "percentile"
    # the move changes the range the group reads, not its own output's (the next group's input)
    assert moved.percentile_of("conv1") is None


# kernels: the figures come from the deployed integer kernels (u8 x s8 saturates without VNNI)
@pytest.mark.kernels
def test_tune_fixes_a_planted_outlier_range_with_one_percentile_move(outlier):
    s = outlier
    r = run_tune(s, TuneSpec(parse_target("cosine>=0.995"), candidates=("int16", "fp32", "percentile"),
                             objective="int8_macs", workers=1, isolated=False))
    full = next(p for p in r.points if p.source == "int8")
    assert not full.met_search and not full.met_holdout  # the outlier range does break full INT8
    conv1 = next(g for g in r.groups if g.group.nodes == ["conv1"])
    assert r.target.met(conv1.revert["percentile"])  # the percentile move alone fixes it ...
    b = r.best
    assert b.moves == ["conv1: percentile"] and b.met_search and b.met_holdout  # ... and is the cheapest fix:
    assert b.float_layers == [] and b.int16_layers == [] and b.int8_mac_share == pytest.approx(1.0)  # all INT8
    assert Recipe.from_dict(b.recipe).percentile_of("relu0") is not None


def test_a_16_bit_layer_takes_its_8_bit_neighbours_out_of_their_integer_kernels(outlier):
    """What onnxruntime runs, not what the recipe asks: with conv1 at 16 bits its input r0 and output r1 are
    16-bit, so conv0 (writing r0) and conv2 (reading r1) lose their QLinearConv too."""
    s = outlier
    r = Recipe()
    r.set_precision("conv1", "int16")
    q = s.quantize(recipe=r)
    layers = ["conv0", "conv1", "conv2", "conv3", "fc"]
    assert runtime_int8_layers(q.path, layers) == {"conv3", "fc"}
    assert runtime_int8_layers(s.quantize(recipe=Recipe()).path, layers) == set(layers)


# kernels: which moves pass comes from the deployed integer kernels
@pytest.mark.kernels
def test_int8_mac_share_of_a_point_is_the_deployed_coverage(outlier):
    s = outlier
    r = run_tune(s, TuneSpec(parse_target("cosine>=0.995"), candidates=("int16",), objective="int8_macs",
                             workers=1, isolated=False))
    macs = {n.name: n.macs for n in count_macs(s.prepared.load_proto(), {"x": (1, 3, 8, 8)})}
    total = sum(m or 0 for m in macs.values())
    assert next(p for p in r.points if p.source == "int8").int8_mac_share == pytest.approx(1.0)
    moved = [p for p in r.points if p.int16_layers and p.source != "global"]
    assert moved and r.best in moved and r.best.met_holdout
    for p in moved:
        asked = 1 - sum(macs[n] or 0 for n in p.int16_layers) / total  # what the recipe alone would say
        assert p.int8_mac_share < asked - 0.05  # a neighbour of the 16-bit layer left its integer kernel too
    assert next(p for p in r.points if p.moves == ["all_int16"]).int8_mac_share == 0.0
