"""Five places, one number: for one layer of one run, the GUI table, the layer panel, the CLI, the report and
the JSON show the same effective SQNR = min(tensor, channel mean), with the tensor figure beside it; and the
run's verdict, its before/after verdict and its INT8 MAC share read the same in the GUI, the CLI and the report.

The GUI parts are the real widgets (``LayerTableModel``, ``DetailsPanel``) on a real analysis of the demo; the
CLI is ``qwb analyze`` in a subprocess on the same model, data and sample count (its ``--json`` is the JSON).
"""

from __future__ import annotations

import copy
import html
import json
import re

import pytest

from analyzers.diff_types import Hint

from tests.cli_util import qwb
from tests.report_util import Page
from workbench.analysis import analyze
from workbench.app.workspace import Workspace
from workbench.formatting import EFFECTIVE_SQNR, EFFECTIVE_SQNR_DEF, fmt_db, mac_share_text
from workbench.recipe import Recipe
from workbench.report import build_report, render_html
from workbench.session import SessionSpec, open_session

pytestmark = pytest.mark.gui
SAMPLES = 50


def _norm(text: str) -> str:
    """The same number whichever minus sign a screen uses."""
    return text.strip().replace("\u2212", "-")


@pytest.fixture(scope="module")
def run(demo_paths):
    m, c, e = demo_paths
    session = open_session(SessionSpec(str(m), str(c), str(e)), Recipe(), calibrate=True)
    result = analyze(session, samples=SAMPLES)
    # the layer where the figures differ most: channel mean below the tensor SQNR, so a screen that showed the
    # tensor figure instead would be caught
    lay = max((x for x in result.layers if x.isolated is not None and x.isolated.channel_sqnr_mean is not None),
              key=lambda x: x.isolated.sqnr_db - x.isolated.channel_sqnr_mean)
    assert fmt_db(lay.isolated.effective_sqnr_db) != fmt_db(lay.isolated.sqnr_db)
    return session, result, lay


def test_gui_table_panel_cli_report_and_json_show_the_same_effective_sqnr(qtbot, run, tmp_path):
    from PySide6.QtCore import Qt

    from ui.details_panel import DetailsPanel
    from ui.layer_table import C_ISO, C_KEY, HEADER_TIPS, LayerTableModel

    session, result, lay = run
    want = fmt_db(lay.isolated.effective_sqnr_db)
    tensor = fmt_db(lay.isolated.sqnr_db)
    ws = Workspace()
    ws.reset(session.spec)
    ws.set_graph(session.graph)
    ws.add_run(result, Recipe())

    # 1. the GUI table: the rank-key column, the tensor figure beside it, and a header that says what it is
    model = LayerTableModel(ws)
    row = model.row_of(lay.node)
    shown = {col: model.data(model.index(row, col), Qt.ItemDataRole.DisplayRole) for col in (C_KEY, C_ISO)}
    assert _norm(shown[C_KEY]) == want and _norm(shown[C_ISO]) == tensor
    assert "worse of the isolated tensor SQNR and its per-channel mean" in HEADER_TIPS[C_KEY]
    assert HEADER_TIPS[C_KEY].startswith(EFFECTIVE_SQNR_DEF)
    assert model.headerData(C_KEY, Qt.Orientation.Horizontal).lower().startswith(EFFECTIVE_SQNR.lower())

    # 2. the layer panel: the effective SQNR row of the isolated column (defined under the table), and the tensor
    # SQNR row
    panel = DetailsPanel(ws)
    qtbot.addWidget(panel)
    ws.select([lay.node])
    text = panel.text.toPlainText()
    rows = {m.group(1).strip(): (m.group(2), m.group(3)) for m in
            re.finditer(rf"^(tensor SQNR \(dB\)|{EFFECTIVE_SQNR})[ \t]*\n\s*(\S+)\s*\n?\s*(\S+)", text, re.M)}
    assert _norm(rows[EFFECTIVE_SQNR][0]) == want, text
    assert _norm(rows["tensor SQNR (dB)"][0]) == tensor, text
    assert EFFECTIVE_SQNR_DEF in text

    # 3. the CLI (and 5. its JSON), a separate process on the same model, data and samples
    out = tmp_path / "a.json"
    r = qwb("analyze", "--demo", "--samples", str(SAMPLES), "--json", out, "--no-measure-hints", "--top", "100")
    assert r.returncode == 0, r.stderr
    assert EFFECTIVE_SQNR_DEF in r.stdout
    line = next(x for x in r.stdout.splitlines() if re.match(rf"\s*\d+\s+{re.escape(lay.node)}\s", x))
    cols = line.split()
    assert _norm(cols[3]) == want and _norm(cols[4]) == tensor, line  # key, then the isolated tensor figure
    doc = json.loads(out.read_text(encoding="utf-8"))
    jl = next(x for x in doc["layers"] if x["node"] == lay.node)
    assert fmt_db(jl["rank_key_db"]) == want and fmt_db(jl["isolated"]["sqnr_db"]) == tensor

    # 4. the report: the worst-layers table's effective SQNR cell, labelled with its definition
    report = build_report(session, analysis=result)
    page = Page(render_html(report))
    i = [x.node for x in result.layers].index(lay.node)
    cell = next(n for n in page.numbers if n["ptr"] == f"/runs/0/analysis/layers/{i}/rank_key_db")
    assert _norm(cell["text"]) == want
    iso = next(n for n in page.numbers if n["ptr"] == f"/runs/0/analysis/layers/{i}/isolated/sqnr_db")
    assert _norm(iso["text"]) == tensor
    assert "effective SQNR = min(tensor, channel mean)" in page.all_text
    # and the report's JSON is the same document
    assert fmt_db(report.to_dict()["runs"][0]["analysis"]["layers"][i]["rank_key_db"]) == want


def _bench(p10: float, p90: float) -> dict:
    """A benchmark as the GUI keeps it ({backend: BackendResult.to_dict()}), with the p50 spread over rounds."""
    lat = {"p50_ms": (p10 + p90) / 2, "p50_p10_ms": p10, "p50_p90_ms": p90, "rounds": 5}
    return {"cpu": {"available": True, "fp32": dict(lat), "int8": lat}}


def test_gui_verdicts_and_mac_share_are_the_reports(qtbot, run, tmp_path):
    """The Run panel's verdict and the Before/after panel's verdict are the report JSON's ``verdict`` and
    ``comparison.verdict`` (with the same reasons, latency included), and the MAC share is the CLI's line."""
    from ui.compare_panel import ComparePanel
    from ui.summary_panel import SummaryPanel

    session, result, lay = run
    after_recipe = Recipe()
    after_recipe.set_precision(lay.node, "fp32")
    after = analyze(session, recipe=after_recipe, samples=SAMPLES)
    # the after run timed clearly faster than the before run (ranges apart): a latency reason in both verdicts
    bench_before, bench_after = _bench(10.0, 11.0), _bench(5.0, 6.0)
    report = build_report(session, recipe=Recipe(), analysis=result, compare_recipe=after_recipe,
                          compare_analysis=after, bench_json=[bench_before, bench_after])
    doc = json.loads(json.dumps(report.to_dict()))
    final = doc["runs"][doc["final_run"]]
    assert doc["verdict"] in ("good", "warn", "bad") and doc["comparison"]["verdict"]
    assert any("latency on cpu faster" in r for r in doc["comparison"]["verdict_reasons"])

    ws = Workspace()
    ws.reset(session.spec)
    ws.set_graph(session.graph)
    ws.add_run(result, Recipe())
    ws.add_benchmark("cpu", bench_before["cpu"])
    ws.add_run(after, after_recipe)
    ws.add_benchmark("cpu", bench_after["cpu"])
    summary, compare = SummaryPanel(ws), ComparePanel(ws)
    qtbot.addWidget(summary)
    qtbot.addWidget(compare)

    shown = summary.verdict.text()
    assert f"Verdict: {doc['verdict']}" in shown
    for r in doc["verdict_reasons"]:
        assert html.escape(r) in shown
    assert html.escape(mac_share_text(after.macs_by_precision)) in shown
    assert f"{100 * final['summary']['macs_int8_share']:.1f} %" in shown  # the report's INT8 MAC share
    cshown = compare.verdict.text()
    assert f"After vs before: {doc['comparison']['verdict']}" in cshown
    for r in doc["comparison"]["verdict_reasons"]:
        assert html.escape(r) in cshown

    # 3. the CLI prints the same MAC share for the same run
    r = qwb("analyze", "--demo", "--samples", str(SAMPLES), "--no-measure-hints", "--top", "1")
    assert r.returncode == 0, r.stderr
    assert mac_share_text(result.macs_by_precision) in r.stdout


def test_model_wide_hints_are_shown_with_the_layer_hints_and_the_run(qtbot, run):
    """A model-wide hint (here the 16-bit-activations one with its measured cost) is in the Layer panel, with or
    without a selected layer, and in the Run panel."""
    from ui.details_panel import DetailsPanel
    from ui.summary_panel import SummaryPanel

    session, result, lay = run
    result = copy.copy(result)
    hint = Hint("activations_16bit", "2 of 3 flagged layers have no single cause. Measured here (cpu, 50 runs): "
                "MACs in integer kernels 100% → 12% with 16-bit activations", 'activation_type = "u16"', 0.67,
                {"backend": "cpu"})
    result.hints = [*result.hints, hint]
    ws = Workspace()
    ws.reset(session.spec)
    ws.set_graph(session.graph)
    ws.add_run(result, Recipe())
    details, summary = DetailsPanel(ws), SummaryPanel(ws)
    qtbot.addWidget(details)
    qtbot.addWidget(summary)
    for sel in ([], [lay.node]):
        ws.select(sel)
        text = details.text.toPlainText()
        assert "For the whole model" in text and "MACs in integer kernels 100% → 12%" in text, text
        assert 'activation_type = "u16"' in text
    shown = summary.verdict.text()
    # the run's own model-wide hints come first: on an AVX2-only CPU the deployed kernels lose accuracy the exact
    # simulation does not, so the demo also carries the kernel-remedy hint (none on a VNNI CPU)
    assert f"{len(result.hints)} hint(s) for the whole model" in shown and "try 16-bit activations" in shown, shown
    assert hint.message in summary.verdict.toolTip()
