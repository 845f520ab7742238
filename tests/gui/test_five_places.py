"""Five places, one number: for one layer of one run, the GUI table, the layer panel, the CLI, the report and
the JSON show the same effective SQNR = min(tensor, channel mean), with the tensor figure beside it.

The GUI parts are the real widgets (``LayerTableModel``, ``DetailsPanel``) on a real analysis of the demo; the
CLI is ``qwb analyze`` in a subprocess on the same model, data and sample count (its ``--json`` is the JSON).
"""

from __future__ import annotations

import json
import re

import pytest

from tests.cli_util import qwb
from tests.report_util import Page
from workbench.analysis import analyze
from workbench.app.workspace import Workspace
from workbench.formatting import EFFECTIVE_SQNR_DEF, fmt_db
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

    # 2. the layer panel: the min(SQNR, ch. mean) row of the isolated column, and the tensor SQNR row
    panel = DetailsPanel(ws)
    qtbot.addWidget(panel)
    ws.select([lay.node])
    text = panel.text.toPlainText()
    rows = {m.group(1).strip(): (m.group(2), m.group(3)) for m in
            re.finditer(r"^(SQNR \(dB\)|min\(SQNR, ch\. mean\))\s*\n?\s*(\S+)\s*\n?\s*(\S+)", text, re.M)}
    assert _norm(rows["min(SQNR, ch. mean)"][0]) == want, text
    assert _norm(rows["SQNR (dB)"][0]) == tensor, text

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
