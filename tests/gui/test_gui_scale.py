"""Real-model scale in the window, with the real engine: a 64-layer CNN and a 2,000-node scoped model.

Names are shortened without losing the part that differs (full name in the tooltip and on Ctrl+C), the graph
opens a 2,000-node model as a few dozen blocks coloured by their worst member, a long chain folds so Fit stays
readable, and selecting a table row brings its node (opening its block) to the middle of the canvas.
"""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QStyleOptionViewItem

from tests.models import conv_net_data, deep_cnn, save, save_npz, scoped_net
from ui.layer_table import C_NODE, NameDelegate
from workbench.app.scopes import is_group
from workbench.session import SessionSpec

from .conftest import wait_idle, wait_runs

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def cnn64(tmp_path_factory):
    d = tmp_path_factory.mktemp("cnn64")
    return save(deep_cnn(), d / "cnn64.onnx"), save_npz(d / "calib.npz", **conv_net_data(16, labels=False))


@pytest.fixture(scope="module")
def net2000(tmp_path_factory):
    d = tmp_path_factory.mktemp("net2000")
    x = np.random.default_rng(1).standard_normal((4, 4, 4, 4)).astype(np.float32)
    return save(scoped_net(), d / "net2000.onnx"), save_npz(d / "calib.npz", x=x)


def _shown_name(panel, row: int) -> str:
    """The text the Layer column draws for proxy row ``row`` at its current width."""
    idx = panel.proxy.index(row, C_NODE)
    opt = QStyleOptionViewItem()
    opt.initFrom(panel.table.viewport())
    opt.rect = panel.table.visualRect(idx)
    delegate = panel.table.itemDelegateForColumn(C_NODE)
    assert isinstance(delegate, NameDelegate)
    delegate.initStyleOption(opt, idx)
    return opt.text


def _assert_centred(qtbot, g, i: int) -> None:
    qtbot.wait(50)
    centre = g.view.mapToScene(g.view.viewport().rect().center())
    assert abs(centre.x() - g.layout_.x[i]) < 30 and abs(centre.y() - g.layout_.y[i]) < 30, (centre, i)


def test_64_layer_cnn_names_copy_fold_and_table_selection(make_window, qtbot, cnn64):
    model, calib = cnn64
    w = make_window()
    w.resize(1400, 900)
    w.ctl.analysis_samples = 8
    w.open_spec(SessionSpec(str(model), str(calib)))
    wait_runs(qtbot, w, 1, timeout=120_000)
    assert w.ws.current_run.result.samples == 8  # the sample count reached the engine

    # names: at a narrow column every row still reads differently and keeps its layer number
    panel = w.layers
    panel.table.setColumnWidth(C_NODE, 130)
    rows = panel.proxy.rowCount()
    assert rows >= 64
    shown = [_shown_name(panel, r) for r in range(rows)]
    full = [panel.proxy.index(r, C_NODE).data(Qt.ItemDataRole.ToolTipRole) for r in range(rows)]
    assert len(set(shown)) == rows, shown
    conv12 = full.index("/features/features.12/Conv")
    assert "features.12" in shown[conv12] and shown[conv12] != full[conv12]
    # Ctrl+C copies the full names of the selected rows
    w.ws.select(["/features/features.12/Conv", "/features/features.40/Conv"])
    panel.table.setFocus()
    qtbot.keyClick(panel.table, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    # (in the table's order, worst first)
    assert sorted(QGuiApplication.clipboard().text().split("\n")) == ["/features/features.12/Conv",
                                                                      "/features/features.40/Conv"]

    # the graph: the chain is folded into columns, so Fit shows boxes with their op types, not a thin line
    g = w.graph
    x0, y0, x1, y1 = g.layout_.bounds
    assert (x1 - x0) / (y1 - y0) > 0.8
    g.fit()
    assert g.view.scale_factor > 0.25
    # selecting a row in the table centres its node
    target = "/features/features.100/Conv"
    w.ws.select(())
    r = panel.proxy.mapFromSource(panel.model.index(panel.model.row_of(target), 0)).row()
    panel.table.selectRow(r)
    i = g._index[target]
    _assert_centred(qtbot, g, i)
    assert g.view.nodes.selected == {i}
    # the graph copies full names too
    g.view.setFocus()
    qtbot.keyClick(g.view, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert QGuiApplication.clipboard().text() == target
    assert g._tooltip(i).startswith(f"<b>{target}</b>")


@pytest.mark.slow
def test_2000_nodes_open_as_blocks_coloured_by_their_worst_member(make_window, qtbot, net2000):
    model, calib = net2000
    w = make_window()
    w.resize(1400, 900)
    w.ctl.analysis_samples = 2
    w.open_spec(SessionSpec(str(model), str(calib)))
    wait_runs(qtbot, w, 1, timeout=600_000)
    g = w.graph
    n_nodes = len(w.ws.graph.nodes)
    assert n_nodes >= 2000
    units = g.scope_view.units
    blocks = [i for i, (u, _) in enumerate(units) if is_group(u)]
    assert 10 <= len(units) <= 48 and len(blocks) == 27

    # a block's colour is its worst member's value
    run = w.ws.current_run
    vals = g.metric_values()
    by = g._results_by_node(run)
    b = blocks[5]
    members = [by[n].isolated.effective_sqnr_db for n in g.scope_view.members[b] if n in by and by[n].isolated]
    assert members and vals[b] == pytest.approx(min(members))
    flagged = {lay.node for lay in run.result.layers if lay.flagged}
    for i in blocks:
        assert g.view.nodes.flagged[i] == any(n in flagged for n in g.scope_view.members[i])

    # selecting a layer in the table opens its block and centres it
    target = "/encoder/layers.20/branch7/conv1/Conv"
    panel = w.layers
    r = panel.proxy.mapFromSource(panel.model.index(panel.model.row_of(target), 0)).row()
    panel.table.selectRow(r)
    i = g._index[target]
    assert not g.is_block(i) and g.layout_.names[i] == target
    assert len(g.scope_view.units) > len(units)
    _assert_centred(qtbot, g, i)

    # fit-to-flagged frames exactly the flagged boxes; collapse goes back to the blocks
    if flagged:
        g.fit_flagged()
        seen = g.view.mapToScene(g.view.viewport().rect()).boundingRect()
        for k in np.nonzero(g.view.nodes.flagged)[0]:
            assert seen.contains(float(g.layout_.x[k]), float(g.layout_.y[k]))
    g.collapse_default()
    assert len(g.scope_view.units) == len(units)
    # clicking a block selects its members (to set them all at once)
    g._clicked(blocks[0], False)
    assert set(w.ws.selection) == set(g.scope_view.members[blocks[0]])
    wait_idle(qtbot, w)
