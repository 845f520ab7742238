"""The SVG charts draw what they are given: ticks cover the data, higher SQNR is higher on the page,
gaps stay gaps, histograms keep every count and shade only values a range really clips."""

from __future__ import annotations

import re

import numpy as np
import pytest

from analyzers.calibration.histogram import StreamingHistogram
from tests.report_util import Page
from workbench.report.charts import Series, histogram_chart, line_chart, nice_ticks
from workbench.report.histograms import rebin


@pytest.mark.parametrize("lo,hi", [(32.7, 44.7), (-3.2, 0.4), (0.0, 1e-3), (5.0, 5.0), (12.0, 250.0)])
def test_ticks_cover_the_data(lo, hi):
    t = nice_ticks(lo, hi)
    assert t[0] <= lo and t[-1] >= hi and len(t) >= 2
    steps = np.diff(t)
    assert np.allclose(steps, steps[0])


def test_line_chart_maps_values_to_height_and_keeps_gaps():
    s = Series("iso", [30.0, None, 40.0, 35.0], "s-iso", ["/a/0", "", "/a/2", "/a/3"])
    svg = line_chart(["a", "b", "c", "d"], [s], label="t", marks={2})
    page = Page(svg)
    pts = {a["data-ptr"]: float(a["cy"]) for a in page.attrs("circle") if a.get("data-ptr")}
    assert set(pts) == {"/a/0", "/a/2", "/a/3"}  # no point for the missing value
    assert pts["/a/2"] < pts["/a/3"] < pts["/a/0"]  # 40 dB above 35 dB above 30 dB (SVG y grows downwards)
    assert len(page.attrs("polyline")) == 2  # the gap splits the line
    assert len([a for a in page.attrs("circle") if a.get("class") == "flag-ring"]) == 1


def test_rebin_keeps_every_count():
    rng = np.random.default_rng(0)
    h = StreamingHistogram()
    x = np.concatenate([rng.standard_normal(50_000), [40.0]])  # one far outlier
    h.update(x)
    snap = h.snapshot()
    lo, hi, counts = rebin(snap, 96)
    assert sum(counts) == snap.count == x.size and len(counts) <= 96
    assert lo <= x.min() and hi >= x.max()
    assert counts[-1] == 1  # the outlier is its own bar, not smeared


def test_histogram_shades_only_clipped_data():
    counts = [5, 10, 20, 10, 5]
    full = Page(histogram_chart(0.0, 5.0, counts, [("range", 0.0, 5.0, "r0")], label="h"))
    assert not [a for a in full.attrs("rect") if a.get("class") == "clipped"]
    clipped = Page(histogram_chart(0.0, 5.0, counts, [("range", 1.0, 4.0, "r0")], label="h"))
    assert len([a for a in clipped.attrs("rect") if a.get("class") == "clipped"]) == 2
    bars = next(a for a in clipped.attrs("path") if a.get("class") == "bars")
    assert len(re.findall("M", bars["d"])) == 5


def test_a_value_that_rounds_to_zero_shows_no_minus():
    """A kernel gap of −0.004 dB is no loss: "0.0", not "−0.0" (signed kinds read "+0.0")."""
    from workbench.report.view import format_value

    assert format_value(-0.004, "db") == "0.0" and format_value(-0.04, "ddb") == "+0.0"
    assert format_value(-0.06, "db") == "−0.1" and format_value(-0.00004, "pct") == "0.00"
