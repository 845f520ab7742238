"""The Run dock's output table shows each output's figures by its kind: an embedding gets per-sample cosine,
not top-1 agreement."""

from __future__ import annotations

import pytest

from tests.models import kind_net, kind_net_data, save, save_npz
from workbench.analysis import analyze
from workbench.app.workspace import Workspace
from workbench.recipe import Recipe
from workbench.session import Session, SessionSpec

pytestmark = pytest.mark.gui


def test_summary_panel_shows_embedding_figures(qtbot, tmp_path):
    from ui.summary_panel import SummaryPanel

    model = save(kind_net("embedding"), tmp_path / "e.onnx")
    data = save_npz(tmp_path / "d.npz", **kind_net_data("embedding", 16))
    s = Session(model, data)
    r = analyze(s, isolated=False)
    ws = Workspace()
    ws.reset(SessionSpec(str(model), str(data)))
    ws.set_graph(s.graph)
    ws.add_run(r, Recipe())
    p = SummaryPanel(ws)
    qtbot.addWidget(p)
    t = p.table
    rows, group = {}, None
    for i in range(t.rowCount()):  # header rows name the execution mode of the figures below them
        if t.columnSpan(i, 0) == 4:
            group = t.item(i, 0).text().split()[0]
        else:
            rows[f"{t.item(i, 0).text()} ({group})"] = t.item(i, 2).text()
    assert [t.item(i, 0).text() for i in range(t.rowCount()) if t.columnSpan(i, 0) == 4] == \
        ["exact kernels", "deployed kernels"]
    o = r.outputs[0]
    assert t.horizontalHeaderItem(0).text() == "Embedding"
    assert t.horizontalHeaderItem(0).toolTip() == "out: embedding"
    assert rows["cosine mean (exact)"] == f"{o.cosine_mean:.5f}" and rows["cosine worst (exact)"] == f"{o.cosine_min:.5f}"
    d = r.outputs_of("deployed")[0]  # both modes by default, each row labelled with its own
    assert rows["cosine mean (deployed)"] == f"{d.cosine_mean:.5f}"
    assert not any(k.startswith(("top-1 agree", "step agree")) for k in rows)
