"""The layer table says when onnxruntime runs a layer the recipe keeps in float in INT8 anyway, with the fix."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from ui.layer_table import C_PREC

from .conftest import wait_runs

pytestmark = pytest.mark.gui


def _cell(window, node: str, col: int):
    panel = window.layers
    return panel.proxy.mapFromSource(panel.model.index(panel.model.row_of(node), col))


def test_a_float_conv_between_quantized_neighbours_shows_as_run_in_int8(make_window, qtbot):
    w = make_window()
    w.open_demo()
    wait_runs(qtbot, w, 1)
    assert w.layers.proxy.setData(_cell(w, "block_a.Conv", C_PREC), "fp32")
    w.actions_.run.trigger()
    wait_runs(qtbot, w, 2)
    lay = w.ws.current_run.result.layer("block_a.Conv")
    assert lay.precision == "fp32" and lay.runtime_precision == "int8"
    assert _cell(w, "block_a.Conv", C_PREC).data() == "FP32→INT8"
    tip = _cell(w, "block_a.Conv", C_PREC).data(Qt.ItemDataRole.ToolTipRole)
    assert "onnxruntime" in tip and "block_b.Conv" in tip  # the neighbour to also keep in float
