"""The report tells the truth: a verdict from the outputs even without labels, latency changes judged against
their spread, and reproduce/fix commands that really run as printed (run here in a subprocess)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil

import pytest

import resources
from tests.cli_util import qwb
from tests.report_util import Page
from workbench.report import ReportData, render_html, render_markdown
from workbench.report.bench import latency_outcome
from workbench.report.charts import Series, histogram_chart, line_chart
from workbench.report.reproduce import safe_name
from workbench.report.verdict import apply_verdicts, compare_verdict, judge


def _summary(**kw):
    s = {"accuracy_delta": None, "top1_agreement": None, "sequence_match": None, "cosine_mean": None,
         "output_sqnr_db": None, "kernels": "exact"}
    s.update(kw)
    return s


def test_low_sqnr_or_disagreement_is_never_good_without_labels():
    assert judge(_summary(output_sqnr_db=12.0, top1_agreement=1.0))[0] == "bad"
    assert judge(_summary(output_sqnr_db=40.0, top1_agreement=0.75))[0] == "bad"
    level, reasons = judge(_summary(output_sqnr_db=18.0, top1_agreement=0.995))
    assert level == "warn" and reasons == ["warn: output SQNR 18.0 dB (good ≥ 25 dB, warn ≥ 15 dB) (exact kernels)"]
    assert judge(_summary(output_sqnr_db=35.0, top1_agreement=0.995)) == ("good", [])
    # the deployed figures count too: a good exact run whose deployed kernels disagree is not good
    dep = _summary(output_sqnr_db=35.0, top1_agreement=0.80, kernels="deployed")
    assert judge(_summary(output_sqnr_db=35.0, top1_agreement=0.995, deployed=dep))[0] == "bad"
    assert judge(_summary()) == (None, [])


def test_one_point_of_accuracy_is_one_point_not_worse():
    """-0.01 computed as 0.97 - 0.98 is -0.010000000000000009: still 'warn', not 'bad'."""
    assert judge(_summary(accuracy_delta=0.97 - 0.98))[0] == "warn"
    assert judge(_summary(accuracy_delta=-0.02))[0] == "bad"


def test_before_after_verdict_names_what_moved():
    out = [{"name": "y", "kernels": "exact", "sqnr_before": 12.0, "sqnr_after": 20.0, "top1_before": 0.75,
            "top1_after": 0.93, "accuracy_before": None, "accuracy_after": None}]
    v, reasons = compare_verdict(out, _summary(output_sqnr_db=12.0), _summary(output_sqnr_db=20.0))
    assert v == "better" and "verdict bad → warn" in reasons and any("SQNR 12.0 → 20.0 dB" in r for r in reasons)
    slower = [{"backend": "cpu", "outcome": "slower"}]
    assert compare_verdict(out, None, None, slower)[0] == "mixed"
    same = [dict(out[0], sqnr_after=12.3, top1_after=0.755)]  # one sample of 200 more agrees: noise
    n200 = _summary(samples=200)
    assert compare_verdict(same, n200, n200, [{"backend": "cpu", "outcome": "within noise"}])[0] == "same"
    assert compare_verdict([dict(same[0], top1_after=0.76)], n200, n200)[0] == "better"  # two samples count


def test_latency_is_a_win_or_loss_only_beyond_the_spread():
    # the case: p50 31 -> 29 ms (-5.9 %) while the p50 itself moves over 20-50 ms between rounds is noise
    assert latency_outcome(20.0, 50.0, 19.0, 48.0) == "within noise"
    assert latency_outcome(30.0, 32.0, 20.0, 25.0) == "faster"
    assert latency_outcome(30.0, 32.0, 33.0, 35.0) == "slower"
    assert latency_outcome(None, 32.0, 33.0, 35.0) is None


def test_run_names_become_safe_file_names():
    assert safe_name("a/b c") == "a-b-c" and safe_name("../../etc/passwd") == "etc-passwd" and safe_name("///") == "run"


def test_depth_chart_has_both_axis_labels_and_the_before_line_on_top():
    svg = str(line_chart(["a", "b", "c"], [Series("before", [10.0, 20.0, 30.0], "s-before", dashed=True),
                                           Series("cumulative", [10.0, 20.0, 30.0], "s-cum")], label="x"))
    assert "x-label" in svg and "graph order" in svg and "SQNR (dB)" in svg
    assert svg.index("line s-cum") < svg.index("line s-before dashed")  # drawn later = visible where equal


def test_histogram_has_a_count_scale():
    svg = str(histogram_chart(0.0, 1.0, [1, 10, 1000, 5], [("range", 0.0, 1.0, "r0")], label="h"))
    assert "count (log)" in svg
    ticks = re.findall(r'class="tick"[^>]*text-anchor="end">([^<]+)<', svg)
    assert ticks == ["1", "10", "100", "1,000"]


@pytest.fixture(scope="module")
def relative_report(tmp_path_factory):
    """`qwb report` typed with relative paths from one folder, the report written into another."""
    root = tmp_path_factory.mktemp("typed")
    (root / "models").mkdir()
    (root / "data").mkdir()
    shutil.copy(resources.DEMO_MODEL, root / "models" / "m.onnx")
    shutil.copy(resources.DEMO_CALIB, root / "data" / "c.npz")
    shutil.copy(resources.DEMO_EVAL, root / "data" / "e.npz")
    (root / "fix.toml").write_text('version = 1\n[layers."cat"]\nprecision = "fp32"\n', encoding="utf-8")
    r = qwb("report", "models/m.onnx", "--calib", "data/c.npz", "--eval", "data/e.npz", "--compare", "fix.toml",
            "--samples", "80", "-o", "out/sub/r.html", cwd=root)
    assert r.returncode == 0, r.stderr
    return root, root / "out" / "sub"


def _run_printed(argv, cwd):
    assert argv[0] == "qwb"
    return qwb(*argv[1:], cwd=cwd)


def test_reproduce_command_runs_as_printed_and_keeps_the_original(relative_report):
    root, folder = relative_report
    doc = json.loads((folder / "r.json").read_text(encoding="utf-8"))
    rep = doc["reproduce"]
    assert doc["verdict"] in ("good", "warn", "bad") and doc["comparison"]["verdict"] in ("better", "worse", "mixed",
                                                                                          "same")
    assert rep["rerun_argv"][2] == "../../models/m.onnx" and "-o" in rep["rerun_argv"]
    assert rep["rerun_argv"][rep["rerun_argv"].index("-o") + 1] == "r-reproduced.html"
    # the recipe files it reads were written beside the report
    for rf in rep["recipes"]:
        assert (folder / rf["file"]).read_text(encoding="utf-8") == rf["toml"] and "/" not in rf["file"]
    before = hashlib.sha256((folder / "r.html").read_bytes()).hexdigest()
    # the printed command (the HTML shows the same text) runs in the report's folder
    assert rep["rerun_command"] in Page((folder / "r.html").read_text(encoding="utf-8")).all_text
    r = _run_printed(rep["rerun_argv"], folder)
    assert r.returncode == 0, r.stderr
    assert hashlib.sha256((folder / "r.html").read_bytes()).hexdigest() == before  # the original is untouched
    again = json.loads((folder / "r-reproduced.json").read_text(encoding="utf-8"))
    for a, b in zip(doc["runs"], again["runs"]):  # same model, data, recipes, samples: the same figures
        assert a["recipe"] == b["recipe"] and a["analysis"]["samples"] == b["analysis"]["samples"] == 80
        assert a["summary"]["output_sqnr_db"] == b["summary"]["output_sqnr_db"]
    assert again["verdict"] == doc["verdict"]


def test_fix_command_runs_as_printed(relative_report):
    _, folder = relative_report
    rep = json.loads((folder / "r.json").read_text(encoding="utf-8"))["reproduce"]
    assert rep["fix_command"] in Page((folder / "r.html").read_text(encoding="utf-8")).all_text
    r = _run_printed(rep["fix_argv"], folder)
    assert r.returncode == 0, r.stderr
    ort = json.loads(next((folder / "r-fix").glob("*.json")).read_text(encoding="utf-8"))
    assert "cat" in json.dumps(ort)


def test_verdict_is_shown_in_html_and_markdown_and_old_reports_get_one(relative_report):
    _, folder = relative_report
    doc = json.loads((folder / "r.json").read_text(encoding="utf-8"))
    page = Page((folder / "r.html").read_text(encoding="utf-8"))
    assert f"verdict {doc['verdict']}" in (folder / "r.html").read_text(encoding="utf-8")
    assert "Verdict:" in page.all_text and "Before → after:" in page.all_text
    md = (folder / "r.md").read_text(encoding="utf-8")
    assert f"**Verdict: {doc['verdict']}**" in md
    # Markdown blocks are separated by blank lines: no paragraph runs into the next
    blocks = md.split("\n\n")
    assert all(not (b.startswith("**Recipe**") and "\n**Kept" in b) for b in blocks)
    # a report saved before verdicts existed is judged when read back, by the same rules
    old = dict(doc)
    for k in ("verdict", "verdict_reasons"):
        old.pop(k)
    old["runs"][doc["final_run"]]["summary"].update(output_sqnr_db=12.0)
    report = apply_verdicts(ReportData.from_dict(old))
    assert report.verdict == "bad" and 'class="verdict bad"' in render_html(report)
    assert "**Verdict: bad**" in render_markdown(report)


def test_gui_run_names_with_slashes_stay_names_not_paths(tmp_path):
    """The GUI names a report's runs by their labels ("run 3 / cat fp32"): shown whole, never a folder."""
    from workbench.recipe import Recipe
    from workbench.report import build_report, write_report
    from workbench.session import Session

    session = Session(resources.DEMO_MODEL, resources.DEMO_CALIB, resources.DEMO_EVAL)
    fix = Recipe()
    fix.set_precision("cat", "fp32")
    report = build_report(session, recipe=Recipe(), recipe_source="run 1 / defaults", compare_recipe=fix,
                          compare_source="run 3 / cat fp32", samples=40)
    written = write_report(report, tmp_path / "gui.html")
    assert all(p.parent == tmp_path for p in written) and sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["gui.html", "gui.json", "gui.md", "gui-recipe-before.toml", "gui-recipe-after.toml"])
    text = Page((tmp_path / "gui.html").read_text(encoding="utf-8")).all_text
    assert "After: run 3 / cat fp32." in text
    doc = json.loads((tmp_path / "gui.json").read_text(encoding="utf-8"))
    assert "gui-recipe-after.toml" in doc["reproduce"]["rerun_argv"] and doc["reproduce"]["demo"]
