"""Project files and autosave: round trip, relative paths, damaged files, crash orphans."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from workbench.app.autosave import Autosaver, discard, orphans
from workbench.app.project import ProjectError, load_project, project_dict, save_project
from workbench.app.workspace import Workspace
from workbench.recipe import Recipe
from workbench.session import SessionSpec

from .results_factory import make_result

NODES = [("conv1", "Conv"), ("fc", "Gemm")]


def _workspace(tmp_path) -> Workspace:
    model, calib = tmp_path / "m.onnx", tmp_path / "c.npz"
    model.write_bytes(b"x")
    calib.write_bytes(b"x")
    ws = Workspace()
    ws.reset(SessionSpec(str(model), str(calib)))
    ws.add_run(make_result(NODES, [30.0, 12.0], [30.0, 14.0]), Recipe())
    ws.set_precision(["fc"], "fp32")
    ws.add_run(make_result(NODES, [30.0, float("inf")], [30.0, 29.0], ["int8", "fp32"]), ws.recipe)
    ws.set_percentile("conv1", 99.9)
    ws.add_benchmark("cpu", {"fp32": {"p50_ms": 1.0}, "int8": {"p50_ms": float("nan")}})
    ws.select(["fc"])
    return ws


def test_round_trip_keeps_recipe_runs_benchmarks_and_selection(tmp_path):
    ws = _workspace(tmp_path)
    p = save_project(ws, tmp_path / "proj")
    assert p.suffix == ".qwbproj" and not ws.dirty
    text = p.read_text()
    json.loads(text)  # strict JSON: no NaN/Infinity tokens
    assert "NaN" not in text and "Infinity" not in text
    data = load_project(p)
    ws2 = Workspace()
    data.apply(ws2)
    assert ws2.spec.model == str((tmp_path / "m.onnx").resolve())
    assert ws2.recipe.to_dict() == ws.recipe.to_dict()
    assert [r.label for r in ws2.runs] == ["Run 1", "Run 2"] and ws2.current == 1
    assert ws2.runs[1].result.layer("fc").precision == "fp32"
    assert ws2.runs[0].result.layer("fc").isolated.sqnr_db == pytest.approx(12.0)
    assert ws2.runs[0].result.heatmap.shape == (8, 2)
    assert ws2.stale and ws2.selection == ("fc",) and not ws2.dirty
    assert ws2.benchmarks[0].data["int8"]["p50_ms"] is None


def test_paths_are_found_relative_to_a_moved_project(tmp_path):
    ws = _workspace(tmp_path)
    save_project(ws, tmp_path / "p.qwbproj")
    moved = tmp_path.parent / (tmp_path.name + "-moved")
    os.rename(tmp_path, moved)
    try:
        data = load_project(moved / "p.qwbproj")
        assert data.spec.model == str((moved / "m.onnx").resolve())
    finally:
        os.rename(moved, tmp_path)


@pytest.mark.parametrize("content, words", [
    ("{\"kind\": \"quant-workbench-project\", \"version\": 1, \"runs\": [{\"label\": 1", "not valid JSON"),
    ("{\"hello\": 1}", "not a Quant Workbench project"),
    ("{\"kind\": \"quant-workbench-project\", \"version\": 99}", "newer Quant Workbench"),
    ("{\"kind\": \"quant-workbench-project\", \"version\": 1, \"runs\": [{\"recipe\": {}}]}", "damaged"),
])
def test_bad_project_files_are_clear_errors(tmp_path, content, words):
    p = tmp_path / "bad.qwbproj"
    p.write_text(content)
    with pytest.raises(ProjectError, match=words):
        load_project(p)
    with pytest.raises(ProjectError, match="not found"):
        load_project(tmp_path / "missing.qwbproj")


def test_autosave_of_a_dead_process_is_an_orphan_and_a_live_one_is_not(tmp_path):
    ws = _workspace(tmp_path)
    mine = Autosaver(tmp_path / "auto")
    mine.write(project_dict(ws))
    assert orphans(tmp_path / "auto") == []  # this process is alive
    # a process that wrote its autosave and died without cleaning up
    code = ("import sys, json; sys.path.insert(0, %r); from workbench.app.autosave import Autosaver; "
            "from pathlib import Path; a = Autosaver(Path(%r)); d = json.load(open(%r)); a.write(d)"
            % (os.getcwd(), str(tmp_path / "auto"), str(mine.path)))
    subprocess.run([sys.executable, "-c", code], check=True)
    found = orphans(tmp_path / "auto")
    assert len(found) == 1 and found[0].runs == 2 and "m.onnx" in found[0].describe()
    assert load_project(found[0].path).recipe.to_dict() == ws.recipe.to_dict()
    discard(found[0])
    assert orphans(tmp_path / "auto") == []
    mine.clear()
    assert not mine.path.exists()
