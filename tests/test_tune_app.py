"""The GUI's tune plumbing without Qt: the ``Tune`` engine request streams each verified point, the workspace takes
a point's recipe as one undoable edit and keeps the search in projects, and reports show its Pareto plot."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import resources
from tests.cli_util import qwb
from workbench.app.project import load_project, save_project
from workbench.app.requests import EngineState, Tune, handle
from workbench.app.tuning import pareto_flags
from workbench.app.workspace import Workspace
from workbench.recipe import Recipe
from workbench.report import build_report, render_html, render_markdown
from workbench.report.markup import esc
from workbench.report.view import resolve
from workbench.session import SessionSpec, open_session
from workbench.tune.search import TuneSpec
from workbench.tune.target import parse_target

TARGET = "sqnr>=36"  # the demo's full INT8 model reaches ~33 dB on these samples: the search has work to do


class StreamingTask:
    """The engine process's task as the handler sees it: progress, cancel checks, and ``partial``."""

    def __init__(self):
        self.partials: list[dict] = []

    def report(self, fraction, message=""):
        pass

    def check(self):
        pass

    def partial(self, payload, message=""):
        self.partials.append(payload)


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    d = tmp_path_factory.mktemp("tune-demo")
    with np.load(resources.DEMO_EVAL) as z:
        np.savez(d / "eval.npz", **{k: z[k][:60] for k in z.files})
    return SessionSpec(str(resources.DEMO_MODEL), str(resources.DEMO_CALIB), str(d / "eval.npz"))


@pytest.fixture(scope="module")
def tuned(small_demo):
    state = EngineState()
    state.session = open_session(small_demo)
    task = StreamingTask()
    spec = TuneSpec(parse_target(TARGET), ("int16", "fp32"), workers=1)
    result = handle(Tune(spec, Recipe()), state, task)
    return state.session, task.partials, result


def test_tune_request_streams_every_point_as_it_is_verified(tuned):
    session, streamed, result = tuned
    assert len(result["points"]) >= 2 and result["best"] is not None  # met or not depends on the CPU's kernels
    # the streamed points are the result's points, in order (the result adds only the Pareto marks)
    assert [dict(p, pareto=None) for p in streamed] == [dict(p, pareto=None) for p in result["points"]]
    assert session.recipe.to_dict() == Recipe().to_dict()  # the session's own recipe is left as it was
    json.dumps(result, allow_nan=False)  # the reply is JSON as it is (workspace, project, report)


def test_live_pareto_flags_match_the_engines(tuned):
    _, _, result = tuned
    assert pareto_flags(result["points"], result["target"], result["objective"]) == \
        [p["pareto"] for p in result["points"]]


def test_choosing_a_point_is_one_undoable_edit_and_is_saved(tuned, small_demo, tmp_path):
    _, streamed, result = tuned
    ws = Workspace()
    ws.reset(small_demo)
    ws.set_precision(["fc1.Gemm"], "int16")  # an edit before the search
    before = ws.recipe.to_dict()
    ws.start_tune(result["target"], result["objective"])
    for p in streamed:
        ws.add_tune_point(p)
    assert ws.tune["running"] and len(ws.tune["points"]) == len(streamed)
    ws.finish_tune(result)
    best = next(i for i, p in enumerate(result["points"]) if p["label"] == result["best"]["label"])
    ws.choose_tune_point(best)
    assert ws.recipe.to_dict() == result["points"][best]["recipe"] != before
    assert ws.tune["chosen"] == best
    ws.undo()
    assert ws.recipe.to_dict() == before  # one step back is the recipe before the choice
    ws.redo()
    path = save_project(ws, tmp_path / "p.qwbproj")
    ws2 = Workspace()
    load_project(path).apply(ws2)
    assert ws2.tune["chosen"] == best and ws2.tune["points"] == json.loads(json.dumps(result["points"]))


def test_report_shows_the_pareto_plot_and_the_chosen_point(tuned):
    session, _, result = tuned
    chosen = next(i for i, p in enumerate(result["points"]) if p["label"] == result["best"]["label"])
    recipe = Recipe.from_dict(result["points"][chosen]["recipe"])
    report = build_report(session, recipe=recipe, samples=30, tune=dict(result, chosen=chosen))
    doc = report.to_dict()
    assert doc["tune"]["chosen"] == chosen and doc["tune"]["chosen_is_final"]
    assert len(doc["tune"]["points"]) == len(result["points"])
    html = render_html(report)
    assert 'href="#tune"' in html and '<section id="tune">' in html
    svg = re.search(r'<svg class="chart scatter".*?</svg>', html, re.S).group(0)
    plotted = [p for p in result["points"] if not p["error"] and p["latency_ms"] is not None]
    dots = re.findall(r'<circle class="pt (met|missed)"[^>]*data-ptr="([^"]+)" data-value="([^"]+)"', svg)
    assert len(dots) == len(plotted)
    for css, ptr, value in dots:  # every dot is the held-back figure of the JSON, coloured by the verdict
        i = int(ptr.split("/")[3])
        assert float(value) == pytest.approx(resolve(doc, ptr)) and ptr.endswith("/holdout_metric")
        assert (css == "met") == result["points"][i]["met_holdout"]
    assert svg.count('class="chosen-ring"') == 1 and "target sqnr&gt;=36" in svg
    assert "latency (ms" in svg and "output SQNR (dB), held back" in svg
    assert "<b>Chosen point: </b>" + esc(result["points"][chosen]["label"]) in html
    md = render_markdown(report)
    assert "**Tune** target `sqnr>=36`" in md and "▶" in md


def test_report_without_a_tune_has_no_tune_section(tuned):
    session, _, _ = tuned
    html = render_html(build_report(session, samples=30))
    assert 'id="tune"' not in html and 'href="#tune"' not in html


def test_cli_report_takes_a_tune_result_and_marks_the_point_its_recipe_is(tuned, small_demo, tmp_path):
    _, _, result = tuned
    best = next(i for i, p in enumerate(result["points"]) if p["label"] == result["best"]["label"])
    (tmp_path / "t.json").write_text(json.dumps(result))
    Recipe.from_dict(result["points"][best]["recipe"]).save(tmp_path / "tuned.toml")
    p = qwb("report", small_demo.model, "--calib", small_demo.calib, "--eval", small_demo.eval, "--recipe",
            tmp_path / "tuned.toml", "--tune", tmp_path / "t.json", "--samples", "30", "-o", tmp_path / "r.html")
    assert p.returncode == 0, p.stderr
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["tune"]["chosen"] == best and doc["tune"]["chosen_is_final"]
    assert '<section id="tune">' in (tmp_path / "r.html").read_text()
    p = qwb("report", small_demo.model, "--calib", small_demo.calib, "--tune", tmp_path / "tuned.toml",
            "-o", tmp_path / "x.html")
    assert p.returncode == 2 and p.stderr.startswith("error: --tune") and "fix:" in p.stderr
