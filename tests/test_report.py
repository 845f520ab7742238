"""The demo report: every section, HTML numbers equal to the JSON, no network, round trip, Markdown size,
before/after and benchmark sections."""

from __future__ import annotations

import copy
import json
import math

import pytest

import resources
from tests.report_util import EXTERNAL_URL, Page, resolve, shown_number
from workbench.compare import compare_runs
from workbench.formatting import EFFECTIVE_SQNR_DEF
from workbench.recipe import Recipe
from workbench.report import build_report, load_report, render_html, render_markdown, write_report
from workbench.report.data import ReportData
from workbench.session import Session

SECTIONS = ("summary", "outputs", "layers", "depth", "histograms", "bench", "fix", "recipe", "model", "environment",
            "reproduce")


@pytest.fixture(scope="module")
def session():
    return Session(resources.DEMO_MODEL, resources.DEMO_CALIB, resources.DEMO_EVAL)


@pytest.fixture(scope="module")
def demo(session, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "demo.html"
    report = build_report(session, command=["qwb", "report", "--demo", "-o", "demo.html"])
    paths = write_report(report, out)
    html = out.read_text(encoding="utf-8")
    return report, paths, html, json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compared(session, tmp_path_factory):
    fix = Recipe()
    fix.set_precision("cat", "fp32")
    fix.set_precision("fc2.Gemm", "int16")
    report = build_report(session, compare_recipe=fix, compare_source="fix.toml")
    return report, report.to_dict(), render_html(report)


def test_demo_report_writes_html_json_and_markdown(demo):
    _, paths, _, doc = demo
    assert [p.suffix for p in paths] == [".html", ".json", ".md", ".toml"]  # the recipe the rerun command reads
    assert paths[3].parent == paths[0].parent and paths[3].name == f"{paths[0].stem}-recipe-run.toml"
    assert doc["format"] == 1 and doc["kind"] == "qwb-report"
    assert doc["runs"][0]["analysis"]["samples"] == 500


def test_demo_report_contains_every_section_with_its_content(demo):
    _, _, html, doc = demo
    page = Page(html)
    for sid in SECTIONS:
        assert sid in page.ids, sid
    text = page.all_text
    m = doc["model"]
    assert m["inputs"][0]["name"] == "image" and "image" in text  # model summary: inputs
    assert m["nodes"] == 19 and m["file_bytes"] > 10_000 and "Concat" in m["op_types"]
    assert "onnxruntime " + doc["environment"]["packages"]["onnxruntime"] in text  # environment
    assert "qwb report --demo -o demo.html" in text  # the exact command
    assert "calibration_method" in text  # the recipe's TOML
    assert "Classes losing accuracy" in text  # per-class where it drops (the demo loses two classes)
    assert "no single cause stands out" in text  # the flagged layer's hint
    # the depth chart has one isolated and one cumulative point per analysed layer
    circles = [a for a in page.attrs("circle") if a.get("data-ptr", "").endswith("/cumulative/effective_sqnr_db")]
    assert len(circles) == len(doc["runs"][0]["analysis"]["layers"]) == 12
    # a histogram for the flagged Concat, with its calibration range
    h = doc["runs"][0]["histograms"][0]
    assert h["node"] == "cat" and h["why"] == "flagged" and sum(h["counts"]) == h["count"]
    assert h["ranges"]["run"]["method"] == "minmax" and h["ranges"]["run"]["hi"] == pytest.approx(h["max"], rel=1e-6)
    assert any("range" in (a.get("class") or "") for a in page.attrs("line"))
    assert "Not run" in text  # benchmark section says so when --bench was not given


def _depth_points(html: str) -> dict:
    """(series css, dashed?, layer position) -> the value the report's depth chart draws."""
    svg = html[html.index('id="depth"'):html.index("</svg>", html.index('id="depth"'))]
    page, out = Page(svg), {}
    for a in page.attrs("circle"):
        cls = (a.get("class") or "").split()
        if "pt" in cls:
            out.setdefault((cls[1], a["r"] == "2"), []).append(float(a["data-value"]))
    return out


def test_depth_chart_draws_the_effective_sqnr_the_gui_draws(compared):
    """The report's depth chart plots what the GUI's depth chart plots (``ErrorMetrics.effective_sqnr_db``, the
    ranking figure), isolated and cumulative, with the before run's dashed, and says so with the definition."""
    report, doc, html = compared
    before, after = (run.analysis for run in report.runs)
    pts = _depth_points(html)
    order = [lay.node for lay in after.layers]
    def iso(lay):
        return lay.isolated.effective_sqnr_db if lay.isolated else math.nan

    want_iso = [iso(lay) for lay in after.layers]
    want_cum = [lay.cumulative.effective_sqnr_db for lay in after.layers]
    assert pts[("s-iso", False)] == pytest.approx([v for v in want_iso if math.isfinite(v)])
    assert pts[("s-cum", False)] == pytest.approx([v for v in want_cum if math.isfinite(v)])
    # the figure differs from the tensor SQNR somewhere, so the check tells the two apart
    assert any(lay.cumulative.effective_sqnr_db < lay.cumulative.sqnr_db - 0.1 for lay in after.layers)
    b = {lay.node: lay for lay in before.layers}
    want_b_cum = [b[n].cumulative.effective_sqnr_db for n in order if n in b]
    assert pts[("s-cum", True)] == pytest.approx([v for v in want_b_cum if math.isfinite(v)])
    want_b_iso = [iso(b[n]) for n in order if n in b]
    assert pts[("s-iso", True)] == pytest.approx([v for v in want_b_iso if math.isfinite(v)])
    depth = html[html.index('id="depth"'):html.index("</section>", html.index('id="depth"'))]
    assert EFFECTIVE_SQNR_DEF in Page(depth).all_text and "effective SQNR (dB)" in depth  # axis and definition
    # a report written before effective_sqnr_db existed draws the same figure, computed from its fields
    old = copy.deepcopy(doc)
    for run in old["runs"]:
        for lay in run["analysis"]["layers"]:
            for kind in ("cumulative", "isolated"):
                if lay[kind]:
                    del lay[kind]["effective_sqnr_db"]
    again = _depth_points(render_html(ReportData.from_dict(old)))
    assert again.keys() == pts.keys()
    for k in pts:
        assert again[k] == pytest.approx(pts[k])


def number_mismatches(html: str, doc: dict) -> list:
    """Every number on the page whose pointer, exact value or displayed text disagrees with ``doc``."""
    bad = []
    for n in Page(html).numbers:
        try:
            value = resolve(doc, n["ptr"])  # the pointer exists in the JSON file
        except (KeyError, IndexError, ValueError):
            bad.append(("no such pointer", n))
            continue
        if n["value"] == "null":
            if value is not None or shown_number(n["text"]) is not None:
                bad.append(("null", n))
            continue
        if value is None or float(n["value"]) != value:  # the exact value, to the last bit
            bad.append(("value", n))
            continue
        shown, decimals = shown_number(n["text"])
        tol = abs(value * n["scale"]) * 1e-3 if "e" in n["text"] else 0.5 * 10 ** -decimals + 1e-9
        if abs(shown - value * n["scale"]) > tol:
            bad.append(("text", n))
    return bad


def test_numbers_in_html_match_the_json(demo):
    _, _, html, doc = demo
    page = Page(html)
    assert len(page.numbers) > 150
    assert number_mismatches(html, doc) == []
    ptrs = {n["ptr"] for n in page.numbers}
    for must in ("/runs/0/summary/accuracy_fp32", "/runs/0/analysis/outputs/0/sqnr_db",
                 "/runs/0/analysis/layers/7/isolated/sqnr_db", "/runs/0/histograms/0/ranges/run/hi"):
        assert must in ptrs
    for a in page.attrs("circle"):  # chart points carry exact values too
        if a.get("data-ptr"):
            assert float(a["data-value"]) == resolve(doc, a["data-ptr"])


def test_the_number_check_catches_a_mismatch(demo, compared):
    """The check is not vacuous: a page whose text or value differs from the JSON is caught."""
    _, _, html, doc = demo
    ptr = "/runs/0/analysis/outputs/0/sqnr_db"
    tag = next(n for n in Page(html).numbers if n["ptr"] == ptr)
    needle = f'data-ptr="{ptr}" data-value="{tag["value"]}">{tag["text"]}<'
    assert needle in html
    wrong_text = html.replace(needle, needle.replace(f'>{tag["text"]}<', ">99.9<"))
    assert {k for k, _ in number_mismatches(wrong_text, doc)} == {"text"}
    other = copy.deepcopy(doc)
    other["runs"][0]["analysis"]["outputs"][0]["sqnr_db"] += 0.01
    assert {k for k, _ in number_mismatches(html, other)} == {"value"}
    assert number_mismatches(compared[2], compared[1]) == []  # and the before/after page is consistent


def test_report_makes_no_network_request(demo, compared):
    for html in (demo[2], compared[2]):
        page = Page(html)
        assert not page.attrs("script") and not page.attrs("link") and not page.attrs("img")
        assert not page.attrs("iframe") and not page.attrs("object") and not page.attrs("embed")
        for tag, a in page.tags:
            for k, v in a.items():
                if k in ("src", "href", "xlink:href", "action", "poster", "srcset", "background"):
                    assert not EXTERNAL_URL.match(v or ""), (tag, k, v[:80])
                    assert (v or "").startswith(("#", "data:")), (tag, k, v[:80])
        css = "".join(page.styles)
        assert "url(" not in css and "@import" not in css and "@font-face" not in css
        assert "http://" not in html and "https://" not in html
        csp = next(a for a in page.attrs("meta") if a.get("http-equiv") == "Content-Security-Policy")
        assert "default-src 'none'" in csp["content"] and "script-src" not in csp["content"]


def test_json_round_trip_renders_the_same_page(demo):
    report, paths, html, _ = demo
    again = load_report(paths[1])
    assert render_html(again) == html
    assert render_markdown(again) == paths[2].read_text(encoding="utf-8")
    assert isinstance(ReportData.from_dict(report.to_dict()), ReportData)


def test_markdown_is_short_enough_for_a_pull_request(demo, compared):
    for report in (demo[0], compared[0]):
        md = render_markdown(report)
        assert len(md.splitlines()) <= 45 and len(md) <= 4000
    md = render_markdown(demo[0])
    s = demo[3]["runs"][0]["summary"]
    assert f"FP32 {100 * s['accuracy_fp32']:.2f}% → INT8 {100 * s['accuracy_int8']:.2f}%" in md
    # the command that runs as printed in the report's folder: the recipe beside it, a new -o
    assert "`cat`" in md and "qwb report --demo --recipe demo-recipe-run.toml -o demo-reproduced.html" in md


def test_gui_and_report_show_the_same_before_after(compared):
    """The GUI's before/after (compare_runs on the two results it holds) is the report's, row for row."""
    report = compared[0]
    before, after = (run.analysis for run in report.runs)
    gui = compare_runs(before, after)
    assert gui.layers == report.comparison.layers and gui.outputs == report.comparison.outputs
    assert [d.node for d in gui.changed()] == [d.node for d in report.comparison.changed()]
    cat = next(d for d in gui.layers if d.node == "cat")
    assert cat.cumulative_delta == pytest.approx(cat.cumulative_after - cat.cumulative_before)
    assert cat.cumulative_after == pytest.approx(after.layer("cat").cumulative.sqnr_db)  # tensor SQNR, as labelled


def test_before_after_shows_the_changed_layers(compared):
    report, doc, html = compared
    c = doc["comparison"]
    assert (c["before"], c["after"]) == (0, 1) and doc["final_run"] == 1
    changed = {lay["node"]: lay for lay in c["layers"] if lay["changed"]}
    assert changed["cat"]["precision_before"] == "int8" and changed["cat"]["precision_after"] == "fp32"
    assert changed["fc2.Gemm"]["precision_after"] == "int16"
    assert changed["cat"]["cumulative_delta"] > 1.0  # keeping the Concat in float helps it
    unchanged = [lay for lay in c["layers"] if not lay["changed"]]
    assert unchanged and all(abs(lay["cumulative_delta"] or 0) < c["threshold_db"] for lay in unchanged)
    page = Page(html)
    assert "compare" in page.ids and "compare-layers" in page.ids
    rows = html[html.index('id="compare-layers"'):html.index("</table>", html.index('id="compare-layers"'))]
    assert "cat" in rows and "fc2.Gemm" in rows and "stem.Conv" not in rows
    o = c["outputs"][0]
    assert o["sqnr_after"] > o["sqnr_before"] and o["sqnr_delta"] == pytest.approx(o["sqnr_after"] - o["sqnr_before"])
    assert "add --bench cpu" in page.all_text  # latency: not measured
    # the histogram of the Concat that was flagged before: its range before; after, it is not quantized at all
    h = next(h for h in doc["runs"][1]["histograms"] if h["node"] == "cat")
    assert set(h["ranges"]) == {"before"} and h["float_in"] == ["after"] and h["why"] == "flagged before"
    assert "after: kept in FP32" in page.all_text
    md = render_markdown(report)
    assert "int8 → fp32" in md and "`cat`" in md


def _bench_json(int8_p50: float) -> dict:
    """A document in ``qwb bench --json``'s shape (``BenchReport.to_dict()``)."""
    lat = {"p50_ms": 0.5, "p90_ms": 0.6, "p99_ms": 0.7, "mean_ms": 0.52, "std_ms": 0.05, "throughput": 1900.0}
    lat8 = dict(lat, p50_ms=int8_p50)
    return {"version": 1, "model": "m.onnx", "int8_model": "q.onnx", "feed": "64 samples",
            "settings": {"threads": 2, "batch": [1], "runs": 100, "warmup": 10},
            "host": {"cpu": "Test CPU", "arch": "x86_64"},
            "backends": {"cpu": {"available": True, "reason": None, "emulated": False, "fp32": lat, "int8": lat8,
                                 "speedup": 0.5 / int8_p50, "batch": 1, "threads": 2, "failures": {}, "notes": [],
                                 "int8_coverage": {"nodes_int8": 9, "nodes_float": 2, "macs_int8_share": 0.97,
                                                   "float_nodes": [{"name": "cat", "op_type": "Concat",
                                                                    "reason": "excluded"}]}},
                         "cuda": {"available": False, "reason": "no NVIDIA GPU", "emulated": False}}}


def test_benchmark_section_and_latency_cost(session):
    fix = Recipe()
    fix.set_precision("cat", "fp32")
    report = build_report(session, compare_recipe=fix, bench_json=[_bench_json(0.25), _bench_json(0.30)])
    doc = report.to_dict()
    lat = doc["comparison"]["latency"][0]
    assert lat["backend"] == "cpu" and lat["before_ms"] == 0.25 and lat["after_ms"] == 0.30
    assert lat["delta_ms"] == pytest.approx(0.05) and lat["delta_share"] == pytest.approx(0.2)
    html = render_html(report)
    page = Page(html)
    assert "bench-1" in page.ids and "bench-0" in page.ids and "compare-latency" in page.ids
    ptrs = {n["ptr"]: n for n in page.numbers}
    assert ptrs["/runs/1/bench/backends/0/speedup"]["text"] == "1.67"
    assert ptrs["/comparison/latency/0/delta_share"]["text"] == "+20.00"
    assert "no NVIDIA GPU" in page.all_text and "cat (Concat): excluded" in page.all_text
    assert "speed-up on cpu" in page.all_text.lower()
    assert "latency on cpu" in render_markdown(report)


def test_report_without_labels_has_no_accuracy(tmp_path):
    from tests.models import conv_net, conv_net_data, save, save_npz

    model = save(conv_net(), tmp_path / "m.onnx")
    data = save_npz(tmp_path / "d.npz", **{k: v for k, v in conv_net_data(16, labels=False).items()})
    doc = build_report(Session(model, data)).to_dict()
    s = doc["runs"][0]["summary"]
    assert s["accuracy_fp32"] is None and s["top1_agreement"] is not None
    html = render_html(doc)
    assert "no labels, so no accuracy" in Page(html).all_text
    assert all(v is None or math.isfinite(v) for v in _floats(doc))


def _floats(d):
    if isinstance(d, dict):
        for v in d.values():
            yield from _floats(v)
    elif isinstance(d, list):
        for v in d:
            yield from _floats(v)
    elif isinstance(d, float):
        yield d


def test_percentile_change_draws_both_ranges(session):
    fix = Recipe()
    fix.set_percentile("cat", 99.9)
    report = build_report(session, compare_recipe=fix)
    doc = report.to_dict()
    h = next(h for h in doc["runs"][1]["histograms"] if h["node"] == "cat")
    before, after = h["ranges"]["before"], h["ranges"]["after"]
    assert before["method"] == "minmax" and after["method"] == "percentile" and after["percentile"] == 99.9
    assert after["hi"] < before["hi"] and after["clip_rate"] > before["clip_rate"]
    page = Page(render_html(report))
    fig = html_between(render_html(report), f'id="hist-{doc["runs"][1]["histograms"].index(h)}"', "</figure>")
    assert fig.count('class="range r0"') == 2 and fig.count('class="range r1"') == 2  # two lines per range
    assert len([a for a in page.attrs("rect") if a.get("class") == "clipped"]) >= 1
    changed = {lay["node"]: lay for lay in doc["comparison"]["layers"] if lay["changed"]}
    assert changed["cat"]["percentile_before"] is None and changed["cat"]["percentile_after"] == 99.9


def html_between(html: str, start: str, end: str) -> str:
    i = html.index(start)
    return html[i:html.index(end, i)]


def test_gui_export_request_reuses_the_analysis_on_screen(session, tmp_path):
    """File → Export report: a picklable request, the analysis reused as is, GUI-style benchmark dicts."""
    import pickle

    from workbench.analysis import analyze
    from workbench.report import ExportRequest, export_report

    result = analyze(session, samples=50)
    bench = {"cpu": _bench_json(0.25)["backends"]["cpu"]}
    req = ExportRequest(session.spec, str(tmp_path / "gui.html"), session.recipe, result, bench=[bench])
    req = pickle.loads(pickle.dumps(req))  # what crossing to the worker process does
    written = export_report(req)
    assert [p.rsplit(".", 1)[1] for p in written] == ["html", "json", "md", "toml"]
    doc = json.loads((tmp_path / "gui.json").read_text())
    a = doc["runs"][0]["analysis"]
    assert a["samples"] == 50 and a["elapsed_s"] == pytest.approx(result.elapsed_s)  # not re-analysed
    assert doc["runs"][0]["bench"]["backends"][0]["speedup"] == pytest.approx(2.0)
    assert "command reconstructed" in " ".join(doc["reproduce"]["notes"])
    assert doc["reproduce"]["argv"][:2] == ["qwb", "report"] and "--samples 50" in doc["reproduce"]["command"]


def test_a_percentile_is_shown_as_the_user_set_it(session):
    fix = Recipe()
    fix.set_percentile("cat", 99.996)  # rounded to 4 digits this read "– → 100"
    html = render_html(build_report(session, compare_recipe=fix))
    rows = html_between(html, 'id="compare-layers"', "</table>")
    assert "99.996" in rows and "→ 100<" not in rows
