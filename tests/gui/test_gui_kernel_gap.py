"""The deployed per-layer view in the GUI: the layer table's kernel-gap column, the Layer dock, and the graph
coloured by kernel gap, on a real analysis of the demo."""

from __future__ import annotations

import math

import numpy as np
import pytest

from workbench.analysis import analyze
from workbench.app.layout import layout_graph
from workbench.app.workspace import Workspace
from workbench.recipe import Recipe
from workbench.session import SessionSpec, open_session

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def demo_run(demo_paths):
    m, c, e = demo_paths
    s = open_session(SessionSpec(str(m), str(c), str(e)), Recipe(), calibrate=True)
    return s, analyze(s, samples=48, isolated=False)


@pytest.fixture
def ws(demo_run):
    s, r = demo_run
    w = Workspace()
    w.reset(SessionSpec("demo.onnx", "calib.npz"))
    w.set_graph(s.graph)
    w.add_run(r, Recipe())
    return w


def test_table_dock_and_graph_show_the_kernel_gap(qtbot, ws, demo_run):
    from ui.details_panel import DetailsPanel
    from ui.graph.panel import GraphPanel
    from ui.layer_panel import LayerPanel
    from ui.layer_table import C_GAP, COLUMNS

    s, r = demo_run
    lay = r.layers[0]
    gap = lay.deployed["kernel_gap_db"]
    table = LayerPanel(ws)
    qtbot.addWidget(table)
    row = table.model.row_of(lay.node)
    cell = table.model.index(row, C_GAP)
    assert COLUMNS[C_GAP] == "Kernel gap"
    assert cell.data() == f"{0.0 if abs(gap) < 0.005 else gap:.2f}"
    assert "deployed (QLinearConv)" in cell.data(0x0003)  # ToolTipRole
    hv = table.table.horizontalHeader()
    assert hv.visualIndex(C_GAP) < hv.visualIndex(C_GAP - 1)  # shown before the hints
    dock = DetailsPanel(ws)
    qtbot.addWidget(dock)
    ws.select((lay.node,))
    assert "Deployed kernels (this CPU)" in dock.text.toHtml() and "kernel gap" in dock.text.toPlainText()
    g = GraphPanel(ws)
    qtbot.addWidget(g)
    g.set_graph(s.graph, layout_graph(s.graph))
    g.metric_box.setCurrentIndex(g.metric_box.findData("kernel_gap"))
    assert g.legend.scale.label.startswith("Kernel gap") and not g.legend.scale.higher_is_better
    i = g._index[lay.node]
    want = g.legend.scale.bins(np.array([gap]))[0]
    assert g.view.nodes.fill[i] == want and want >= 0
    assert "kernel gap" in g._tooltip(i)
    mapped = sum(1 for x in r.layers if x.deployed)
    assert (g.view.nodes.fill >= 0).sum() >= mapped  # fused Relu nodes show their layer's colour too
    assert all(not math.isnan(x.deployed["kernel_gap_db"]) for x in r.layers if x.deployed)


def test_details_of_a_deployed_only_analysis_name_the_mode(qtbot, demo_run):
    """With --kernels deployed the Layer dock says the cumulative figures are the deployed kernels' and that
    isolated error and the kernel gap were not computed (never an empty or exact-looking figure)."""
    from ui.details_panel import DetailsPanel

    s, _ = demo_run
    r = analyze(s, samples=32, kernels="deployed")
    w = Workspace()
    w.reset(SessionSpec("demo.onnx", "calib.npz"))
    w.set_graph(s.graph)
    w.add_run(r, Recipe())
    dock = DetailsPanel(w)
    qtbot.addWidget(dock)
    w.select((r.layers[0].node,))
    text = dock.text.toPlainText()
    assert "Deployed kernels only" in text and "(QLinearConv)" in text
    assert "does not survive" not in text and "kernel gap" in text
