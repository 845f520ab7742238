"""Views on their own: graph canvas, layer table editors, histogram clip lines, Netron, big graphs."""

from __future__ import annotations

import time
import urllib.request

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from workbench.app.layout import layered_layout, layout_graph
from workbench.app.workspace import Workspace
from workbench.recipe import Recipe
from workbench.session import SessionSpec, open_session

from ..results_factory import make_result

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def demo_session(demo_paths):
    m, c, e = demo_paths
    return open_session(SessionSpec(str(m), str(c), str(e)), Recipe(), calibrate=True)


@pytest.fixture
def demo_ws(demo_session):
    ws = Workspace()
    ws.reset(SessionSpec("demo.onnx", "calib.npz"))
    ws.set_graph(demo_session.graph)
    q = [n for n in demo_session.graph.quantizable_nodes()][:4]
    nodes = [(n.name, n.op_type) for n in q]
    ws.add_run(make_result(nodes, [35.0, 11.0, 30.0, 28.0], [35.0, 12.0, 11.5, 11.0]), Recipe())
    return ws


def test_graph_click_search_and_colours(qtbot, demo_ws, demo_session):
    from ui.graph.panel import GraphPanel

    p = GraphPanel(demo_ws)
    qtbot.addWidget(p)
    p.resize(900, 700)
    p.show()
    p.set_graph(demo_session.graph, layout_graph(demo_session.graph))
    lay = p.layout_  # what the canvas draws (a tall graph is folded into columns)
    target = demo_ws.current_run.result.layers[1].node
    i = lay.index()[target]
    p.view.center_on_node(i, zoom_in=True)
    pos = p.view.mapFromScene(float(lay.x[i]), float(lay.y[i]))
    qtbot.mouseClick(p.view.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert demo_ws.selection == (target,)
    assert p.view.nodes.selected == {i}
    # colours follow the metric; flagged layers are marked; unanalysed nodes have no colour
    assert p.view.nodes.flagged[i] and p.view.nodes.fill[i] >= 0
    assert (p.view.nodes.fill < 0).sum() == len(lay.names) - 4
    before = p.view.nodes.fill.copy()
    p.metric_box.setCurrentIndex(p.metric_box.findData("cumulative"))
    assert not np.array_equal(before, p.view.nodes.fill) and p.legend.scale.label.startswith("Cumulative")
    # search selects and the tooltip tells the numbers
    p.search.setText(target[:5])
    p.next_match()
    assert demo_ws.selection[0].lower().startswith(target[:5].lower())
    tip = p._tooltip(i)  # the effective SQNR (the worse of tensor and channel mean) named, the tensor figure beside
    assert "effective SQNR 10.0 dB" in tip and "isolated 11.0 dB" in tip, tip
    # background click clears the selection
    qtbot.mouseClick(p.view.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(2, 2))
    assert demo_ws.selection == ()


def test_table_sorting_filter_and_set_many(qtbot, demo_ws):
    from ui.layer_panel import LayerPanel
    from ui.layer_table import C_KEY, C_PREC, NODE_ROLE

    p = LayerPanel(demo_ws)
    qtbot.addWidget(p)
    p.show()
    p.table.sortByColumn(C_KEY, Qt.SortOrder.AscendingOrder)  # the ranking key orders as the ranking does
    first = p.proxy.index(0, 0).data(NODE_ROLE)
    assert first == demo_ws.current_run.result.ranked("isolated")[0].node
    p.flagged_only.setChecked(True)
    assert p.proxy.rowCount() == len(demo_ws.current_run.result.flagged())
    p.flagged_only.setChecked(False)
    p.filter.setText("conv")
    assert all("conv" in p.proxy.index(r, 0).data().lower() or "conv" in p.proxy.index(r, 1).data().lower()
               for r in range(p.proxy.rowCount()))
    p.filter.clear()
    # multi-select two rows, edit the precision of one: the delegate applies it to both
    p.table.selectRow(0)
    p.table.selectionModel().select(p.proxy.index(1, 0), p.table.selectionModel().SelectionFlag.Select
                                    | p.table.selectionModel().SelectionFlag.Rows)
    chosen = p.selected()
    assert len(chosen) == 2 and set(demo_ws.selection) == set(chosen)
    delegate = p.table.itemDelegateForColumn(C_PREC)
    editor = delegate.createEditor(p.table.viewport(), None, p.proxy.index(0, C_PREC))
    editor.setCurrentIndex(editor.findData("int16"))
    delegate.setModelData(editor, p.proxy, p.proxy.index(0, C_PREC))
    assert all(demo_ws.recipe.precision_of(n) == "int16" for n in chosen)
    assert demo_ws.stale and "2 override(s)" in p.count_label.text()
    p.set_buttons["fp32"].click()
    assert all(demo_ws.recipe.precision_of(n) == "fp32" for n in chosen)


def test_dragging_the_clip_line_sets_the_layer_percentile(qtbot, demo_session):
    from analyzers.calibration.clipping import percentile_for_clip
    from ui.plots.histogram import HistogramPlot

    ws = Workspace()
    ws.reset(SessionSpec("demo.onnx", "calib.npz"))
    ws.set_graph(demo_session.graph)
    calib = demo_session.calibration()
    h = HistogramPlot(ws, lambda: calib)
    qtbot.addWidget(h)
    h.show()
    node = "fc1.Gemm"
    ws.select([node])
    assert h.tensor in calib.histograms and h.clip_hi.isVisible()
    hist = calib.histograms[h.tensor]
    new_hi = float(h.clip_hi.value()) * 0.6
    h.clip_hi.setValue(new_hi)
    h.clip_hi.sigPositionChangeFinished.emit(h.clip_hi)
    p = ws.recipe.percentile_of(node)
    assert p is not None and 50 < p < 100
    assert p == pytest.approx(percentile_for_clip(hist, new_hi, h.spec, "hi"), abs=1e-3)
    # the lines now show the range the quantizer will use, close to where the line was dropped
    assert h.clip_hi.value() == pytest.approx(new_hi, rel=0.02)
    assert "override" in h.title.text()
    h.reset_button.click()
    assert ws.recipe.percentile_of(node) is None


def test_netron_is_served_on_loopback_only_and_stops(demo_paths):
    from workbench.app import netron_serve

    url, address = netron_serve.serve(demo_paths[0])
    try:
        assert address[0] == "127.0.0.1" and url.startswith("http://127.0.0.1:")
        body = urllib.request.urlopen(url, timeout=5).read()
        assert b"netron" in body.lower()
    finally:
        netron_serve.stop(address)
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=2)


def test_a_2000_node_graph_draws_quickly(qtbot):
    from PySide6.QtWidgets import QApplication

    from ui.graph.view import GraphView

    rng = np.random.default_rng(0)
    nodes, edges, depth = [], [], {}
    for i in range(2000):
        preds = [f"n{i - 1}"] if i else []
        if i > 8 and rng.random() < 0.25:
            preds.append(f"n{i - int(rng.integers(2, 8))}")
        d = max((depth[p] + 1 for p in preds), default=0)
        depth[f"n{i}"] = d
        nodes.append((f"n{i}", d))
        edges += [(p, f"n{i}") for p in preds]
    v = GraphView()
    qtbot.addWidget(v)
    v.resize(1000, 800)
    v.show()
    t = time.perf_counter()
    lay = layered_layout(nodes, edges)
    v.set_layout(lay, ["Conv"] * len(nodes))
    v.fit()
    v.viewport().repaint()
    QApplication.processEvents()
    assert time.perf_counter() - t < 2.0
    t = time.perf_counter()
    for _ in range(5):
        v.zoom(1.3)
        v.viewport().repaint()
    assert (time.perf_counter() - t) / 5 < 0.1  # each repaint while zooming


def test_before_after_shows_percentile_edits_as_set():
    from ui.compare_panel import _setting
    from workbench.compare import LayerChange

    d = LayerChange("cat", "Concat", "int8", "int8", None, 99.996, 30.0, 30.0, 0.0, 28.0, 28.1, 0.1, False, False,
                    True)
    assert d.changed_setting and _setting(d) == "INT8, p — → 99.996"
    d.precision_after = "fp32"
    assert _setting(d) == "INT8 → FP32, p — → 99.996"


@pytest.mark.parametrize("scale", [1.0, 1.5])
def test_table_headers_are_not_cut_at_the_default_widths(qtbot, demo_ws, scale):
    """Every header (the long "Effective SQNR dB" included) fits its column with the sort arrow, at any font."""
    from PySide6.QtWidgets import QStyle

    from ui.layer_panel import LayerPanel
    from ui.layer_table import C_KEY

    p = LayerPanel(demo_ws)
    qtbot.addWidget(p)
    h = p.table.horizontalHeader()
    font = h.font()
    font.setPointSizeF(font.pointSizeF() * scale)
    h.setFont(font)
    p.fit_columns_to_headers()
    p.table.sortByColumn(C_KEY, Qt.SortOrder.AscendingOrder)  # the arrow takes room too
    p.show()
    fm = h.fontMetrics()
    arrow = h.style().pixelMetric(QStyle.PixelMetric.PM_HeaderMarkSize) + h.style().pixelMetric(
        QStyle.PixelMetric.PM_HeaderMargin)
    for col in range(h.count()):
        text = p.proxy.headerData(col, Qt.Orientation.Horizontal)
        assert h.sectionSize(col) >= h.sectionSizeHint(col), text
        assert fm.horizontalAdvance(text) + arrow < h.sectionSize(col), text


def test_open_scope_blocks_are_saved_in_the_project_and_restored(qtbot, tmp_path):
    """Blocks the user opened come back open: on a panel that gets the graph after the project (the window's
    order: the model is prepared after the project is read) and on one already showing the graph."""
    import onnx

    from tests.models import scoped_net
    from ui.graph.panel import GraphPanel
    from workbench.app.project import load_project, save_project
    from workbench.graph import build_graph

    graph = build_graph(onnx.shape_inference.infer_shapes(scoped_net()))
    layout = layout_graph(graph)

    def panel(ws):
        p = GraphPanel(ws)
        qtbot.addWidget(p)
        p.resize(900, 700)
        return p

    ws = Workspace()
    ws.reset(SessionSpec("net2000.onnx", "calib.npz"))
    p = panel(ws)
    p.set_graph(graph, layout)
    default = set(p.expanded)
    blocks = [i for i in range(len(p.scope_view.units)) if p.is_block(i)]
    outer = p.scope_view.paths[blocks[3]]
    p.expand(blocks[3])
    inner = next(i for i in range(len(p.scope_view.units)) if p.is_block(i)
                 and p.scope_view.paths[i][:len(outer)] == outer)
    p.expand(inner)  # two levels down
    opened, units = set(p.expanded), len(p.scope_view.units)
    assert opened != default
    ws.view_state["graph"] = p.graph_state()
    path = save_project(ws, tmp_path / "p.qwbproj")

    later = Workspace()
    load_project(path).apply(later)
    p2 = panel(later)
    p2.set_graph(graph, layout)
    assert p2.expanded == opened and len(p2.scope_view.units) == units

    shown = Workspace()
    shown.reset(SessionSpec("net2000.onnx", "calib.npz"))
    p3 = panel(shown)
    p3.set_graph(graph, layout)
    assert p3.expanded == default
    load_project(path).apply(shown)
    assert p3.expanded == opened and len(p3.scope_view.units) == units
    # a saved state naming no scope of this graph (another model, older grouping) opens as usual
    shown.view_state["graph"] = {"expanded": [["no", "such", "scope"]]}
    p4 = panel(shown)
    p4.set_graph(graph, layout)
    assert p4.expanded == default


def test_fit_on_a_64_layer_cnn_labels_its_boxes_and_the_legend_covers_nothing(qtbot):
    """In a graph tab as small as the main window gives it, Fit on the 64-layer CNN zooms out below the normal
    text size: the boxes still name their op where it fits; and the legend sits under the canvas, not on it."""
    import onnx

    from tests.models import deep_cnn
    from ui.graph.items import LOD_TEXT
    from ui.graph.panel import GraphPanel
    from workbench.graph import build_graph

    graph = build_graph(onnx.shape_inference.infer_shapes(deep_cnn()))
    p = GraphPanel(Workspace())
    qtbot.addWidget(p)
    p.resize(620, 470)
    p.show()
    p.set_graph(graph, layout_graph(graph))
    p.fit()
    lod = p.view.scale_factor
    assert lod < LOD_TEXT  # the case the overview labels are for
    lay, nodes = p.layout_, p.view.nodes
    shown = [nodes.overview_label(i, lay.node_w * lod, lay.node_h * lod) for i in range(len(lay.names))]
    ops = [graph.node(n).op_type for n in lay.names]
    assert all(s == op or (s and s.endswith("…") and op.startswith(s[:-1])) for s, op in zip(shown, ops)), shown
    assert shown.count("Conv") == ops.count("Conv") >= 64
    assert nodes.overview_label(0, 12, 4) is None  # too small: nothing (the tooltip names it on hover)
    # the legend is visible and outside the canvas at any zoom
    assert p.legend.isVisible()
    assert not p.legend.geometry().intersects(p.view.geometry())
    p.view.zoom(3.0)
    assert not p.legend.geometry().intersects(p.view.geometry())


def test_the_effective_sqnr_column_comes_right_after_name_and_op(qtbot, demo_ws):
    from ui.layer_panel import LayerPanel
    from ui.layer_table import C_KEY, C_NODE, C_OP, C_PREC

    p = LayerPanel(demo_ws)
    qtbot.addWidget(p)
    h = p.table.horizontalHeader()
    assert [h.logicalIndex(v) for v in range(4)] == [C_NODE, C_OP, C_KEY, C_PREC]


def test_a_long_op_type_is_cut_at_the_end_not_clipped(qtbot):
    from PySide6.QtGui import QFontMetricsF

    from ui.graph.items import NodesItem

    lay = layered_layout([("a", 0), ("b", 1)], [("a", "b")])
    item = NodesItem(lay, ["LayerNormalization" * 2, "Conv"])
    width = lay.node_w - 12
    t = item._title(0, width)
    assert t.endswith("…") and t.startswith("LayerNorm") and QFontMetricsF(item._bold).horizontalAdvance(t) <= width
    assert item._title(1, width) == "Conv"


def test_before_after_gives_spare_width_to_the_names(qtbot, demo_ws):
    from ui.compare_panel import NAME_MIN_W, ComparePanel

    p = ComparePanel(demo_ws)
    qtbot.addWidget(p)
    p.resize(1500, 400)
    p.show()
    qtbot.wait(20)
    h = p.table.horizontalHeader()
    last = h.count() - 1
    assert h.sectionSize(0) > NAME_MIN_W and h.sectionSize(last) < 200
    assert h.sectionSize(last) >= h.sectionSizeHint(last)
    p.resize(500, 400)  # narrow: the names keep their room, the table scrolls
    qtbot.wait(20)
    assert h.sectionSize(0) == NAME_MIN_W


def test_table_opens_worst_first_once_figures_exist(qtbot, demo_ws):
    """A new user sees the worst layer on top without sorting; a column the user picks afterwards stays picked."""
    from ui.layer_panel import LayerPanel
    from ui.layer_table import C_KEY, C_NODE, NODE_ROLE

    p = LayerPanel(demo_ws)
    qtbot.addWidget(p)
    p.show()
    assert p.table.horizontalHeader().sortIndicatorSection() == C_KEY
    assert p.proxy.index(0, 0).data(NODE_ROLE) == demo_ws.current_run.result.ranked("isolated")[0].node
    p.table.sortByColumn(C_NODE, Qt.SortOrder.AscendingOrder)
    demo_ws.events.current.emit(demo_ws.current)  # another run shown: the user's order stays
    assert p.table.horizontalHeader().sortIndicatorSection() == C_NODE
