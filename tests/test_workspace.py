"""The Qt-free workspace behind the GUI: edits, staleness, undo, runs, baseline, selection, events."""

from __future__ import annotations

import pytest

from workbench.app.workspace import Workspace, worst_layers
from workbench.compare import compare_runs
from workbench.recipe import Recipe
from workbench.session import SessionSpec

from .results_factory import make_result

NODES = [("conv1", "Conv"), ("conv2", "Conv"), ("fc", "Gemm")]


def _ws_with_run(iso=(30.0, 12.0, 25.0), cum=(30.0, 14.0, 13.0)) -> Workspace:
    ws = Workspace()
    ws.reset(SessionSpec("m.onnx", "c.npz"))
    ws.add_run(make_result(NODES, list(iso), list(cum)), Recipe())
    return ws


def test_edits_mark_results_stale_and_undo_clears_it():
    ws = _ws_with_run()
    seen = []
    ws.events.stale.connect(seen.append)
    assert not ws.stale
    assert ws.set_precision(["conv2"], "fp32") == ["conv2"]
    assert ws.stale and ws.stale_layers() == ["conv2"] and seen == [True]
    assert ws.set_precision(["conv2"], "fp32") == []  # no-op edits are not edits
    ws.undo()
    assert not ws.stale and seen == [True, False] and ws.recipe.precision_of("conv2") == "int8"
    ws.redo()
    assert ws.recipe.precision_of("conv2") == "fp32"


def test_percentile_and_clear_overrides():
    ws = _ws_with_run()
    assert ws.set_percentile("conv1", 99.9)
    assert not ws.set_percentile("conv1", 99.9)
    assert ws.recipe.percentile_of("conv1") == 99.9
    assert ws.clear_overrides(["conv1", "fc"]) == ["conv1"]
    assert ws.recipe.layers == {}


def test_exclude_worst_uses_isolated_ranking_and_skips_excluded():
    ws = _ws_with_run(iso=(30.0, 12.0, 25.0))
    assert ws.exclude_worst(1) == ["conv2"]
    assert ws.exclude_worst(1) == ["fc"]  # conv2 already excluded
    assert worst_layers(ws.current_run.result, 2, by="cumulative") == ["fc", "conv2"]


def test_runs_are_kept_and_the_baseline_is_the_previous_run():
    ws = _ws_with_run()
    first = ws.current_run
    ws.set_precision(["conv2"], "fp32")
    r2 = ws.recipe.copy()
    ws.add_run(make_result(NODES, [30.0, 90.0, 26.0], [30.0, 29.0, 24.0], ["int8", "fp32", "int8"]), r2)
    assert len(ws.runs) == 2 and ws.current == 1 and ws.baseline_run is first
    assert not ws.stale
    ws.show_run(0)
    assert ws.stale  # the recipe differs from what run 1 used
    ws.show_run(1)
    ws.set_baseline(1)
    assert ws.baseline_run is first  # choosing the shown run itself falls back to the previous one
    comp = compare_runs(ws.runs[0].result, ws.runs[1].result)
    d = {x.node: x for x in comp.layers}
    assert d["conv2"].changed_setting and d["fc"].cumulative_delta == pytest.approx(11.0)
    assert [x.node for x in comp.changed()] == ["conv2", "fc"]
    assert comp.outputs[0].delta("sqnr_db") == pytest.approx(11.0)


def test_selection_event_carries_the_source_and_skips_repeats():
    ws = Workspace()
    got = []
    ws.events.selection.connect(lambda sel, src: got.append((sel, src)))
    ws.select(["a", "b", "a"], source="table")
    ws.select(["a", "b"], source="graph")
    assert got == [(("a", "b"), "table")]


def test_reset_forgets_everything_and_is_not_dirty():
    ws = _ws_with_run()
    ws.set_precision(["fc"], "int16")
    assert ws.dirty
    ws.reset(SessionSpec("other.onnx", "c.npz"))
    assert ws.runs == [] and ws.recipe.layers == {} and not ws.can_undo() and not ws.dirty


def test_replace_recipe_validates_names_against_the_graph(demo_paths):
    from workbench.errors import RecipeError
    from workbench.model_prep import prepare_model

    ws = Workspace()
    ws.set_graph(prepare_model(demo_paths[0]).graph)
    bad = Recipe()
    bad.set_precision("no_such_layer", "fp32")
    with pytest.raises(RecipeError):
        ws.replace_recipe(bad)
    good = Recipe()
    good.set_precision("fc2.Gemm", "fp32")
    ws.replace_recipe(good)
    assert ws.recipe.excluded_nodes() == ["fc2.Gemm"]
