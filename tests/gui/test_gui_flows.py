"""The main flows of the desktop app, driven for real (offscreen) with the real engine on the demo."""

from __future__ import annotations

import time

import pytest
from PySide6.QtCore import Qt

from ui.layer_table import C_PREC
from workbench.session import SessionSpec

from .conftest import FakePrompter, wait_idle, wait_runs

pytestmark = pytest.mark.gui


def _row_index(window, node: str, col: int):
    panel = window.layers
    r = panel.model.row_of(node)
    return panel.proxy.mapFromSource(panel.model.index(r, col))


def test_open_demo_analyse_fix_the_worst_layer_and_rerun(make_window, qtbot):
    w = make_window()
    w.open_demo()
    wait_runs(qtbot, w, 1)
    assert w.graph.view.nodes is not None and len(w.graph.layout_.names) == len(w.ws.graph.nodes)
    run1 = w.ws.current_run.result
    worst = run1.ranked("isolated")[0]
    before_out = run1.outputs[0]

    # select the worst layer in the table: the graph and plots follow
    w.layers.table.selectRow(_row_index(w, worst.node, 0).row())
    assert w.ws.selection == (worst.node,)
    assert w.graph.view.nodes.selected == {w.graph._index[worst.node]}
    assert worst.node in w.details.text.toPlainText()
    assert w.histogram.node == worst.node and w.histogram.hist is not None

    # set it to FP32 through the table's editor path: results turn stale
    assert w.layers.proxy.setData(_row_index(w, worst.node, C_PREC), "fp32")
    assert w.ws.stale and not w.summary.stale.isHidden()
    assert "FP32 *" in _row_index(w, worst.node, C_PREC).data()
    assert w.graph.view.nodes.badges[w.graph._index[worst.node]] == "FP32*"

    w.actions_.run.trigger()
    wait_runs(qtbot, w, 2)
    assert not w.ws.stale and w.summary.stale.isHidden()
    run2 = w.ws.current_run.result
    fixed = run2.layer(worst.node)
    assert fixed.precision == "fp32"
    assert fixed.isolated is None  # kept in float: causes no error of its own
    assert fixed.cumulative.sqnr_db != pytest.approx(worst.cumulative.sqnr_db)
    after_out = run2.outputs[0]
    assert after_out.sqnr_db != pytest.approx(before_out.sqnr_db)
    # the previous run stays; before/after views show both
    assert len(w.ws.runs) == 2 and w.ws.baseline_run.result is run1
    assert w.summary.table.rowCount() >= 3
    header = [w.summary.table.horizontalHeaderItem(c).text() for c in range(4)]
    assert header[1].startswith("Run 1") and header[2].startswith("Run 2")
    assert w.summary.table.item(0, 0).text() == "exact kernels"  # the group header of the rows below
    sqnr_row = [w.summary.table.item(1, c).text() for c in range(4)]
    assert sqnr_row[1] == f"{before_out.sqnr_db:.2f}" and sqnr_row[2] == f"{after_out.sqnr_db:.2f}"
    assert worst.node in [d.node for d in w.compare.model.rows]
    assert "Run 1" in w.compare.title.text() and "Run 2" in w.compare.title.text()


def test_cancel_an_analysis_keeps_the_window_working(make_window, qtbot, tmp_path):
    import numpy as np

    import resources

    with np.load(resources.DEMO_EVAL) as z:  # 40 x the demo's evaluation data: a run of a few seconds
        big = {k: np.concatenate([z[k]] * 40) for k in z.files}
    np.savez(tmp_path / "eval_big.npz", **big)
    w = make_window()
    w.ctl.auto_analyze = False
    w.open_spec(SessionSpec(str(resources.DEMO_MODEL), str(resources.DEMO_CALIB), str(tmp_path / "eval_big.npz")))
    wait_idle(qtbot, w)
    outcomes, messages = [], []
    w.ctl.sigJobFinished.connect(lambda name, outcome: outcomes.append(outcome))
    w.ctl.sigProgress.connect(lambda f, m: messages.append(m))
    assert w.ctl.run_analysis()
    assert w.ctl.busy and w.actions_.cancel.isEnabled() and not w.progress.isHidden()
    qtbot.waitUntil(lambda: any(m.startswith("analysing") for m in messages), timeout=30_000)
    t = time.monotonic()
    w.cancel_button.click()
    wait_idle(qtbot, w)
    assert time.monotonic() - t < 5.0
    assert outcomes == ["cancelled"]
    assert w.ws.runs == [] and "cancelled" in w.status_label.text()
    assert w.progress.isHidden() and not w.actions_.cancel.isEnabled()
    w.summary.samples.setValue(200)  # the Run panel's sample count (kept in the project)
    w.actions_.run.trigger()  # the same engine process goes on working
    wait_runs(qtbot, w, 1)
    assert w.ws.current_run.result.samples == 200


def test_exclude_the_n_worst_in_one_action(make_window, qtbot):
    w = make_window()
    w.open_demo()
    wait_runs(qtbot, w, 1)
    ranked = [lay.node for lay in w.ws.current_run.result.ranked("isolated") if lay.isolated is not None]
    w.layers.exclude_n.setValue(2)
    w.actions_.exclude.trigger()
    assert sorted(w.ws.recipe.excluded_nodes()) == sorted(ranked[:2])
    assert set(w.ws.selection) == set(ranked[:2])
    w.actions_.undo.trigger()
    assert w.ws.recipe.excluded_nodes() == []


def test_save_and_reopen_a_project(make_window, qtbot, tmp_path):
    path = tmp_path / "demo.qwbproj"
    w = make_window(FakePrompter(save_path=str(path)))
    w.open_demo()
    wait_runs(qtbot, w, 1)
    node = w.ws.current_run.result.ranked("isolated")[0].node
    w.ws.set_precision([node], "int16")
    w.ws.select([node])
    w.actions_.save.trigger()
    assert path.exists() and not w.ws.dirty and "demo.qwbproj" in w.windowTitle()
    w.close()

    w2 = make_window(FakePrompter())
    w2.open_project(str(path))
    assert len(w2.ws.runs) == 1 and w2.ws.recipe.precision_of(node) == "int16" and w2.ws.stale
    assert w2.ws.selection == (node,)
    wait_idle(qtbot, w2)  # the model is prepared in the background for re-runs
    assert w2.ctl.opened is not None and w2.graph.view.nodes is not None
    assert w2.layers.model.rowCount() >= len(w2.ws.current_run.result.layers)
    assert w2.heatmap.nodes  # the heatmap came back from the file
    assert w2.scatter.points.data.size > 0 or w2.ws.selection  # reservoirs too (scatter of the selection)
    assert w2.actions_.run.isEnabled()
    w2.actions_.run.trigger()
    wait_runs(qtbot, w2, 2)
    assert w2.ws.current_run.result.layer(node).precision == "int16"


def test_closing_with_unsaved_work_asks_first(make_window, qtbot, tmp_path):
    p = FakePrompter(save_changes="cancel")
    w = make_window(p)
    w.ctl.auto_analyze = False
    w.open_demo()
    wait_idle(qtbot, w)
    w.ws.set_precision([w.ws.graph.quantizable_nodes()[0].name], "fp32")
    assert not w.close() and w.isVisible() and p.asked == ["save_changes"]
    p.answers.update(save_changes="save", save_path=str(tmp_path / "kept.qwbproj"))
    assert w.close()
    assert (tmp_path / "kept.qwbproj").exists()


def test_core_errors_appear_in_the_window(make_window, qtbot, tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_text("not a model")
    w = make_window()
    w.open_spec(SessionSpec(str(bad), "synthetic:4"))
    wait_idle(qtbot, w)
    assert not w.messages.isHidden() and w.messages.level == "error"
    assert "broken.onnx" in w.messages.label.text() and "Fix" in w.messages.label.text()
    assert w.ws.runs == []

    import numpy as np

    import resources

    data = tmp_path / "wrong.npz"
    np.savez(data, not_an_input=np.zeros((4, 3), np.float32))
    w.open_spec(SessionSpec(str(resources.DEMO_MODEL), str(data)))
    wait_idle(qtbot, w)
    assert not w.messages.isHidden() and "wrong.npz" in w.messages.label.text()


def test_drop_a_model_file_opens_it_with_the_data_beside_it(make_window, qtbot):
    from PySide6.QtCore import QMimeData, QPoint, QUrl
    from PySide6.QtGui import QDropEvent

    import resources

    w = make_window()
    w.ctl.auto_analyze = False
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(resources.DEMO_MODEL))])
    ev = QDropEvent(QPoint(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    w.dropEvent(ev)
    wait_idle(qtbot, w)
    assert w.ws.spec.model == str(resources.DEMO_MODEL) and w.ws.spec.calib.endswith("calib.npz")
    assert w.ws.spec.eval.endswith("eval.npz") and w.ctl.opened is not None
    assert w.actions_.recent_menu.actions()[0].text().startswith("digits_cnn.onnx")


def test_window_layout_and_preferences_persist(make_window, qtbot):
    w = make_window()
    w.graph.metric_box.setCurrentIndex(w.graph.metric_box.findData("amplification"))
    w.docks["heatmap"].hide()
    w.layers.exclude_n.setValue(3)
    w.close()
    w2 = make_window()
    assert w2.graph.metric == "amplification"
    assert w2.docks["heatmap"].isHidden() and not w2.docks["layers"].isHidden()
    assert w2.layers.exclude_n.value() == 3


def test_uncaught_exceptions_show_a_dialog_not_a_traceback(make_window, qtbot, monkeypatch, capsys):
    import sys

    from ui.errors import install_excepthook

    w = make_window()
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    install_excepthook()
    shown = []
    monkeypatch.setattr(qtbot.__class__, "_dummy", None, raising=False)
    from PySide6.QtWidgets import QApplication

    monkeypatch.setattr(QApplication.instance(), "qwb_error_handler", shown.append, raising=False)
    try:
        raise ZeroDivisionError("boom")
    except ZeroDivisionError:
        sys.excepthook(*sys.exc_info())
    assert shown and shown[0].is_bug and "ZeroDivisionError" in shown[0].message and "boom" in shown[0].details
    assert "Traceback" not in capsys.readouterr().err
    w.show_error(shown[0])
    assert not w.messages.isHidden()


def test_a_crash_in_the_engine_process_is_reported_and_nothing_is_lost(make_window, qtbot):
    from .engine_requests import Add, Crash

    w = make_window()
    w.open_demo()
    wait_runs(qtbot, w, 1)
    w.ws.set_precision([w.ws.current_run.result.layers[0].node], "fp32")
    got = []
    assert w.ctl.submit("Benchmarking", Crash(11), on_result=got.append, doing="benchmark")
    wait_idle(qtbot, w)
    assert not w.messages.isHidden() and "stopped unexpectedly" in w.messages.label.text()
    assert "exit code 11" in w.messages.label.text() and got == []
    # the window, the run and the edit are all still there
    assert len(w.ws.runs) == 1 and w.ws.stale and w.ctl.opened is None
    assert w.ctl.submit("Adding", Add(2, 3), on_result=got.append, doing="add")  # a fresh engine process
    wait_idle(qtbot, w)
    assert got == [5]
    w.actions_.run.trigger()  # reloads the model in the new process, then analyses the edited recipe
    wait_runs(qtbot, w, 2)
    assert w.ws.current_run.result.layers[0].precision == "fp32" and not w.ws.stale


def test_benchmark_on_cpu_in_the_background(make_window, qtbot):
    w = make_window()
    w.open_demo()
    wait_runs(qtbot, w, 1)
    w.show_benchmark()  # F6 would also start it (tests/gui/test_gui_states.py)
    p = w.bench
    qtbot.waitUntil(lambda: p.backend_model.rowCount() > 0)
    names = {p.backend_model.item(r).data(Qt.ItemDataRole.UserRole): p.backend_model.item(r)
             for r in range(p.backend_model.rowCount())}
    assert names["cpu"].isEnabled()
    assert not names["neon"].isEnabled() and "ARM64" in names["neon"].toolTip()  # this host is x86
    assert "neon" in p.reason.toPlainText() and "✗" in p.reason.toPlainText()
    p.backend_box.setCurrentIndex(list(names).index("cpu"))
    p.runs.setValue(20)
    p.threads.setValue(1)
    assert p.run()
    assert w.ctl.busy  # in the background: the window stays responsive
    wait_idle(qtbot, w)
    assert w.messages.isHidden(), w.messages.label.text()
    assert len(w.ws.benchmarks) == 1 and p.table.rowCount() == 1
    d = w.ws.benchmarks[0].data
    assert d["fp32"]["p50_ms"] > 0 and d["int8"]["p50_ms"] > 0 and d["threads"] == 1
    assert d["int8_coverage"]["nodes_int8"] > 0 and 0 < d["int8_coverage"]["macs_int8_share"] <= 1
    assert p.table.item(0, 1).text() == "cpu" and p.table.item(0, 7).text().endswith("×")
    assert "INT8" in p.note.text() or "float" in p.note.text()


def test_export_a_before_after_report(make_window, qtbot, tmp_path):
    out = tmp_path / "demo-report.html"
    w = make_window(FakePrompter(save_path=str(out)))
    w.open_demo()
    wait_runs(qtbot, w, 1)
    node = w.ws.current_run.result.ranked("isolated")[0].node
    w.ws.set_precision([node], "fp32")
    w.run_analysis()
    wait_runs(qtbot, w, 2)
    w.actions_.export_report.trigger()
    wait_idle(qtbot, w, timeout=120_000)
    assert out.exists(), w.messages.label.text()
    html = out.read_text()
    assert node in html and "Report written" in w.messages.label.text()
    assert out.with_suffix(".json").exists() and out.with_suffix(".md").exists()


def test_edits_are_autosaved_and_a_clean_close_removes_the_file(make_window, qtbot):
    import json

    w = make_window()
    w.ctl.auto_analyze = False
    w.open_demo()
    wait_idle(qtbot, w)
    w.autosave_timer.setInterval(50)
    node = w.ws.graph.quantizable_nodes()[0].name
    w.ws.set_precision([node], "int16")
    qtbot.waitUntil(lambda: w.autosaver.path.exists(), timeout=5000)
    saved = json.loads(w.autosaver.path.read_text())
    assert saved["recipe"]["layers"][node]["precision"] == "int16"
    assert saved["autosave"]["pid"] == __import__("os").getpid()
    w.close()
    assert not w.autosaver.path.exists()
