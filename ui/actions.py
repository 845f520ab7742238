"""Menus, shortcuts and the toolbar of the main window, built in one place from the window's slots."""

from __future__ import annotations

from types import SimpleNamespace

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu, QToolBar


def _act(w: QMainWindow, text: str, slot, shortcut=None, tip: str | None = None, checkable: bool = False) -> QAction:
    a = QAction(text, w)
    if shortcut is not None:
        a.setShortcut(QKeySequence(shortcut))
    if tip:
        a.setStatusTip(tip)
        a.setToolTip(tip)
    a.setCheckable(checkable)
    if slot is not None:
        a.triggered.connect(slot if checkable else (lambda *_: slot()))
    return a


def build_actions(w) -> SimpleNamespace:
    """Create every action, menu and the toolbar of MainWindow ``w``; returns the actions by name."""
    A = SimpleNamespace()
    A.open = _act(w, "&Open model…", w.open_dialog, QKeySequence.StandardKey.Open, "Open a model and its data")
    A.demo = _act(w, "Open &demo", w.open_demo, None, "The bundled digits CNN with its calibration and evaluation data")
    A.open_project = _act(w, "Open &project…", w.open_project_dialog, "Ctrl+Shift+O")
    A.save = _act(w, "&Save project", w.save_project, QKeySequence.StandardKey.Save, "Save recipe, data paths and results")
    A.save_as = _act(w, "Save project &as…", w.save_project_as, "Ctrl+Shift+S")
    A.load_recipe = _act(w, "&Load recipe…", w.load_recipe_dialog, None, "Take per-layer overrides from a recipe file")
    A.save_recipe = _act(w, "Save &recipe as…", w.save_recipe_dialog, None, "Write the recipe (TOML) for `qwb` commands")
    A.export_report = _act(w, "E&xport report…", w.export_report, "Ctrl+E", "One self-contained HTML report")
    A.close_model = _act(w, "&Close model", w.close_model, QKeySequence.StandardKey.Close)
    A.quit = _act(w, "&Quit", w.close, QKeySequence.StandardKey.Quit)
    A.undo = _act(w, "&Undo edit", w.ws.undo, QKeySequence.StandardKey.Undo)
    A.redo = _act(w, "&Redo edit", w.ws.redo, QKeySequence.StandardKey.Redo)
    A.exclude = _act(w, "E&xclude the N worst layers", w.layers.exclude_worst, "Ctrl+Shift+X",
                     "Keep the worst layers of the shown run in FP32 (N is set in the Layers panel)")
    A.reset_all = _act(w, "Reset &all overrides", w.reset_all_overrides)
    A.run = _act(w, "&Run analysis", w.run_analysis, "F5", "Quantize with the recipe and compare every layer with FP32")
    A.cancel = _act(w, "&Cancel", w.ctl.cancel, "Esc", "Stop the running job")
    A.bench = _act(w, "&Benchmark", w.run_benchmark, "F6", "Time the shown run's INT8 model against FP32 now "
                   "(settings in the Benchmark panel)")
    A.export_int8 = _act(w, "Export &INT8 model…", w.export_int8_dialog, "Ctrl+Shift+E",
                         "Write the shown run's INT8 model (.onnx) and its recipe (.recipe.toml) beside it")
    A.tune = _act(w, "&Tune…", w.show_tune, "F7", "Search for the fewest layers to keep in 16-bit or float to meet "
                  "an accuracy target")
    A.netron = _act(w, "Open FP32 model in &Netron", w.open_netron, None)
    A.netron_int8 = _act(w, "Open INT8 model in Netron", lambda: w.open_netron(int8=True), None)
    A.fit = _act(w, "&Fit graph", w.graph.fit, "F", "Show the whole graph")
    A.find = _act(w, "&Find node…", w.focus_search, QKeySequence.StandardKey.Find)
    A.reset_layout = _act(w, "Reset window &layout", w.reset_layout)
    A.auto_analyze = _act(w, "Analyse after opening", w.set_auto_analyze, None, None, True)
    A.auto_analyze.setChecked(w.prefs.auto_analyze)
    A.about = _act(w, "&About Quant Workbench", w.show_about)

    mb = w.menuBar()
    f = mb.addMenu("&File")
    for a in (A.open, A.demo, A.open_project):
        f.addAction(a)
    A.recent_menu = QMenu("Open &recent", w)
    f.addMenu(A.recent_menu)
    f.addSeparator()
    for a in (A.save, A.save_as):
        f.addAction(a)
    f.addSeparator()
    for a in (A.load_recipe, A.save_recipe, A.export_int8, A.export_report):
        f.addAction(a)
    f.addSeparator()
    f.addAction(A.close_model)
    f.addAction(A.quit)
    e = mb.addMenu("&Edit")
    for a in (A.undo, A.redo):
        e.addAction(a)
    e.addSeparator()
    e.addAction(A.exclude)
    e.addAction(A.reset_all)
    an = mb.addMenu("&Analysis")
    for a in (A.run, A.cancel, A.bench, A.tune):
        an.addAction(a)
    an.addSeparator()
    an.addAction(A.auto_analyze)
    v = mb.addMenu("&View")
    for a in (A.fit, A.find, A.netron, A.netron_int8):
        v.addAction(a)
    A.docks_menu = v.addMenu("&Panels")
    v.addAction(A.reset_layout)
    h = mb.addMenu("&Help")
    h.addAction(A.about)

    tb = QToolBar("Main", w)
    tb.setObjectName("mainToolbar")
    tb.setMovable(False)
    for a in (A.open, A.demo, A.save):
        tb.addAction(a)
    tb.addSeparator()
    for a in (A.run, A.cancel):
        tb.addAction(a)
    tb.addSeparator()
    tb.addAction(A.exclude)
    tb.addAction(A.bench)
    tb.addAction(A.tune)
    w.addToolBar(tb)
    A.toolbar = tb
    return A
