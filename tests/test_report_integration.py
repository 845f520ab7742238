"""The report with the calibration lab and the benchmarking engine (run when those parts are installed)."""

from __future__ import annotations

import pytest

import resources
from tests.report_util import Page
from workbench.recipe import Recipe
from workbench.report import build_report, render_html, render_markdown
from workbench.session import Session


@pytest.fixture(scope="module")
def session():
    return Session(resources.DEMO_MODEL, resources.DEMO_CALIB, resources.DEMO_EVAL)


def test_histograms_carry_the_calibration_lab_comparison(session):
    pytest.importorskip("workbench.calib_lab")
    doc = build_report(session).to_dict()
    h = doc["runs"][0]["histograms"][0]
    assert set(h["methods"]) == {"minmax", "percentile", "entropy", "mse"} and h["winner"] in h["methods"]
    mm, run = h["methods"]["minmax"], h["ranges"]["run"]
    assert (mm["lo"], mm["hi"]) == pytest.approx((run["lo"], run["hi"]))  # the recipe's method, same range
    assert mm["predicted_sqnr_db"] == pytest.approx(run["predicted_sqnr_db"], abs=0.05)
    page = Page(render_html(doc))
    assert "Calibration lab" in page.all_text
    assert any(n["ptr"].endswith("/methods/mse/predicted_sqnr_db") for n in page.numbers)


def test_cpu_benchmark_of_both_runs(session):
    pytest.importorskip("workbench.bench")
    fix = Recipe()
    fix.set_precision("cat", "fp32")
    report = build_report(session, compare_recipe=fix, bench=["cpu"])
    doc = report.to_dict()
    for run in doc["runs"]:
        cpu = run["bench"]["backends"][0]
        assert cpu["backend"] == "cpu" and cpu["available"]
        assert cpu["fp32"]["p50_ms"] > 0 and cpu["int8"]["p50_ms"] > 0
        assert cpu["speedup"] == pytest.approx(cpu["fp32"]["p50_ms"] / cpu["int8"]["p50_ms"])
        assert cpu["nodes_int8"] > 0
    lat = doc["comparison"]["latency"][0]
    assert lat["before_ms"] == doc["runs"][0]["bench"]["backends"][0]["int8"]["p50_ms"]
    assert lat["after_ms"] == doc["runs"][1]["bench"]["backends"][0]["int8"]["p50_ms"]
    # keeping the Concat in float leaves more nodes to float kernels
    assert doc["runs"][1]["bench"]["backends"][0]["nodes_float"] > doc["runs"][0]["bench"]["backends"][0]["nodes_float"]
    page = Page(render_html(report))
    assert {"bench-0", "bench-1", "compare-latency"} <= page.ids
    assert "latency on cpu" in render_markdown(report)
