"""``qwb report`` as a user runs it: the demo out of the box, outputs by extension, re-rendering, errors."""

from __future__ import annotations

import json

from tests.cli_util import qwb
from tests.report_util import Page


def test_demo_report_out_of_the_box(tmp_path):
    out = tmp_path / "x.html"
    r = qwb("report", "--demo", "-o", out, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "accuracy FP32 97.40%" in r.stdout and "wrote" in r.stdout
    assert out.exists() and out.with_suffix(".json").exists() and out.with_suffix(".md").exists()
    page = Page(out.read_text(encoding="utf-8"))
    assert "qwb report --demo -o " + str(out) in page.all_text  # the exact command, as typed
    doc = json.loads(out.with_suffix(".json").read_text())
    assert doc["reproduce"]["argv"] == ["qwb", "report", "--demo", "-o", str(out)]


def test_compare_and_outputs_chosen_by_extension(tmp_path):
    fix = tmp_path / "fix.toml"
    fix.write_text('version = 1\n[layers."cat"]\nprecision = "fp32"\n', encoding="utf-8")
    out = tmp_path / "c.json"
    r = qwb("report", "--demo", "--compare", fix, "--samples", "100", "-o", out)
    assert r.returncode == 0, r.stderr
    assert not out.with_suffix(".html").exists() and not out.with_suffix(".md").exists()
    doc = json.loads(out.read_text())
    assert doc["runs"][0]["analysis"]["samples"] == 100
    assert any(lay["node"] == "cat" and lay["changed"] for lay in doc["comparison"]["layers"])
    assert doc["runs"][1]["recipe_source"] == str(fix)
    # re-render the saved JSON as Markdown without the model
    md = tmp_path / "again.md"
    r = qwb("report", "--from", out, "-o", md)
    assert r.returncode == 0, r.stderr
    assert "`cat`" in md.read_text(encoding="utf-8")


def test_user_errors(tmp_path):
    r = qwb("report", "--demo", "-o", tmp_path / "x.pdf")
    assert r.returncode == 2 and ".html" in r.stderr and "Traceback" not in r.stderr
    r = qwb("report", "-o", tmp_path / "x.html")
    assert r.returncode == 2 and "no model" in r.stderr
    r = qwb("report", "--from", tmp_path / "missing.json", "-o", tmp_path / "x.html")
    assert r.returncode == 2 and "missing.json" in r.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('version = 1\n[layers."nope"]\nprecision = "fp32"\n')
    r = qwb("report", "--demo", "--compare", bad, "-o", tmp_path / "x.html")
    assert r.returncode == 2 and "nope" in r.stderr


def test_bench_option(tmp_path):
    """--bench cpu times FP32 vs INT8 in the report."""
    out = tmp_path / "x.json"
    r = qwb("report", "--demo", "--bench", "cpu", "--samples", "64", "-o", out)
    assert r.returncode == 0, r.stderr
    cpu = json.loads(out.read_text())["runs"][0]["bench"]["backends"][0]
    assert cpu["backend"] == "cpu" and cpu["int8"]["p50_ms"] > 0
    r = qwb("report", "--demo", "--bench", "gpu9000", "-o", tmp_path / "y.html")
    assert r.returncode == 2 and "gpu9000" in r.stderr and "cpu" in r.stderr and not (tmp_path / "y.html").exists()
