"""``qwb tune --report``: the chosen point's report with its Tune section, and a rerun command that keeps it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli_util import qwb
from workbench.cli.report_cmd import read_tune
from workbench.recipe import Recipe
from workbench.report.data import Reproduce
from workbench.report.reproduce import relocate


def test_tune_writes_the_report_of_the_chosen_point_and_its_rerun_keeps_the_tune_section(tmp_path):
    p = qwb("tune", "--demo", "--workers", "1", "-o", "tuned.toml", "--json", "t.json", "--report", "r.html",
            cwd=tmp_path)
    assert p.returncode in (0, 1), p.stderr  # met or not depends on the CPU's integer kernels
    tune = json.loads((tmp_path / "t.json").read_text())
    doc = json.loads((tmp_path / "r.json").read_text())
    assert (tmp_path / "r.html").is_file() and (tmp_path / "r.md").is_file()
    best = [p["recipe"] for p in tune["points"]].index(tune["best"]["recipe"])
    assert doc["tune"]["chosen"] == best and doc["tune"]["chosen_is_final"]
    run = doc["runs"][-1]
    assert Recipe.from_dict(run["recipe"]).to_dict() == Recipe.load(tmp_path / "tuned.toml").to_dict()
    html = (tmp_path / "r.html").read_text()
    assert 'id="tune"' in html and tune["best"]["label"] in html
    # the rebuild command reads the recipe and the tune search written beside the report
    argv = doc["reproduce"]["rerun_argv"]
    assert argv[argv.index("--tune") + 1] == "r-tune.json" and argv.count("--tune") == 1
    assert read_tune(str(tmp_path / "r-tune.json"))["points"] == doc["tune"]["points"]
    assert doc["reproduce"]["argv"][:2] == ["qwb", "report"] and "--tune" in doc["reproduce"]["argv"]
    again = qwb(*argv[1:], cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    redo = json.loads((tmp_path / "r-reproduced.json").read_text())
    assert redo["tune"]["chosen"] == best and redo["tune"]["chosen_is_final"]
    assert redo["runs"][-1]["recipe"] == run["recipe"]
    argv = redo["reproduce"]["rerun_argv"]
    assert argv[argv.index("--tune") + 1] == "r-reproduced-tune.json"


def test_rerun_command_names_the_tune_file_only_when_the_report_has_a_tune_section(tmp_path):
    typed = ["qwb", "report", "m.onnx", "--calib", "c.npz", "--tune", "elsewhere/t.json", "--samples", "8",
             "-o", "r.html"]
    r = relocate(Reproduce("", typed, [], model=str(tmp_path / "m.onnx"), calib=str(tmp_path / "c.npz")),
                 Path(tmp_path / "out" / "rep.html"), tune=True)
    assert r.rerun_argv.count("--tune") == 1 and r.rerun_argv[r.rerun_argv.index("--tune") + 1] == "rep-tune.json"
    assert r.rerun_argv[r.rerun_argv.index("--samples") + 1] == "8"  # other options kept as typed
    r = relocate(Reproduce("", typed, [], model=str(tmp_path / "m.onnx"), calib=str(tmp_path / "c.npz")),
                 Path(tmp_path / "rep.html"))
    assert "--tune" not in r.rerun_argv and "elsewhere/t.json" not in r.rerun_argv


def test_tune_report_with_a_bad_extension_is_refused_before_any_work(tmp_path):
    p = qwb("tune", "--demo", "--report", tmp_path / "r.pdf")
    assert p.returncode == 2
    assert p.stderr.startswith("error: --report") and "fix:" in p.stderr
