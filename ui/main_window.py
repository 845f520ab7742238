"""The main window: composes the panels as docks around the graph, and turns menu actions into
controller calls. Layout and preferences persist in QSettings; work is autosaved and offered back
after a crash; closing never loses unsaved work without asking.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

import resources
from workbench import __version__
from workbench.app.autosave import Autosaver, discard, orphans
from workbench.app.export_model import export_int8
from workbench.app.project import SUFFIX, load_project, project_dict, project_path
from workbench.errors import WorkbenchError
from workbench.recipe import Recipe
from workbench.session import SessionSpec

from . import netron_view, report_export
from .actions import build_actions
from .bench_panel import BenchmarkPanel
from .compare_panel import ComparePanel
from .controller import Controller
from .details_panel import DetailsPanel
from .errors import ErrorInfo, MessageBar
from .graph.panel import GraphPanel
from .layer_panel import LayerPanel
from .open_dialog import OpenDialog, guess_data
from .plots.common import release_plot_menus
from .plots.depth import DepthPlot
from .plots.heatmap import HeatmapPlot
from .plots.histogram import HistogramPlot
from .plots.scatter import ScatterPlot
from .prompts import Prompter
from .settings import Preferences, RecentItem, add_recent, open_settings, recent_items
from .summary_panel import SummaryPanel
from .tune_panel import TunePanel

MODEL_SUFFIXES = {".onnx", ".pt", ".pt2"}
LAYOUT_VERSION = 2  # 2: narrower side docks, so the graph gets the room its tool bar and folded chains need


class MainWindow(QMainWindow):
    """See the module docstring; the panels do the drawing, the controller does the work."""

    def __init__(self, controller: Controller | None = None, settings: QSettings | None = None):
        super().__init__()
        self.setWindowTitle("Quant Workbench")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.settings = settings or open_settings()
        self.prefs = Preferences.load(self.settings)
        self.ctl = controller or Controller(parent=self)
        self.ctl.auto_analyze = self.prefs.auto_analyze
        self.ctl.analysis_samples = self.prefs.analysis_samples or None
        self.ws = self.ctl.ws
        self.prompter = Prompter(self)
        self.ctl.trust_model_code = lambda model, what: self.prompter.trust_model_code(model, what)
        self.autosaver = Autosaver()
        self.netron_servers: list = []
        self._closed = False

        self.messages = MessageBar()
        self.graph = GraphPanel(self.ws, self.prefs.color_metric)
        self.graph.sigOpenNetron.connect(lambda: self.open_netron(int8=self._shows_int8()))
        self.graph.sigMetricChanged.connect(self._metric_changed)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.setTabsClosable(True)
        self.tabs.tabCloseRequested.connect(self._close_tab)
        self.tabs.addTab(self.graph, "Graph")
        self.tabs.tabBar().setTabButton(0, self.tabs.tabBar().ButtonPosition.RightSide, None)
        central = QWidget()
        cl = QVBoxLayout(central)
        cl.setContentsMargins(4, 4, 4, 0)
        cl.addWidget(self.messages)
        cl.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

        self.layers = LayerPanel(self.ws, self.prefs.exclude_n)
        self.summary = SummaryPanel(self.ws)
        self.summary.sigRerun.connect(self.run_analysis)
        self.details = DetailsPanel(self.ws)
        self.depth = DepthPlot(self.ws)
        self.histogram = HistogramPlot(self.ws, self.ctl.calibration, self.prefs.histogram_log)
        self.scatter = ScatterPlot(self.ws)
        self.heatmap = HeatmapPlot(self.ws)
        self.compare = ComparePanel(self.ws)
        self.bench = make_bench_panel(self)
        self.tune = TunePanel(self.ws, self.ctl)
        self.docks: dict[str, QDockWidget] = {}
        self._build_docks()
        self.actions_ = build_actions(self)
        for d in self.docks.values():
            self.actions_.docks_menu.addAction(d.toggleViewAction())
        self._build_statusbar()
        self._connect()
        self._default_state = self.saveState(LAYOUT_VERSION)
        self._restore_window()
        self._refresh_recent()
        self._refresh_actions()
        self.setAcceptDrops(True)
        self.autosave_timer = QTimer(self)
        self.autosave_timer.setSingleShot(True)
        self.autosave_timer.setInterval(max(self.prefs.autosave_seconds, 1) * 1000)
        self.autosave_timer.timeout.connect(self.autosave_now)

    # -- construction -------------------------------------------------------------------------------------
    def _dock(self, key: str, title: str, widget: QWidget, area) -> QDockWidget:
        d = QDockWidget(title, self)
        d.setObjectName(f"dock_{key}")
        d.setWidget(widget)
        d.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetClosable
                      | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(area, d)
        self.docks[key] = d
        return d

    def _build_docks(self) -> None:
        L, R, B = (Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea,
                   Qt.DockWidgetArea.BottomDockWidgetArea)
        self._dock("run", "Run", self.summary, L)
        self._dock("details", "Layer", self.details, L)
        self._dock("layers", "Layers", self.layers, R)
        first = self._dock("depth", "Effective SQNR along depth", self.depth, B)
        for key, title, w in (("histogram", "Histogram && clip range", self.histogram),
                              ("scatter", "FP32 vs INT8", self.scatter), ("heatmap", "Heatmap", self.heatmap),
                              ("compare", "Before / after", self.compare), ("bench", "Benchmark", self.bench),
                              ("tune", "Tune", self.tune)):
            self.tabifyDockWidget(first, self._dock(key, title, w, B))
        first.raise_()
        self.resizeDocks([self.docks["run"], self.docks["layers"]], [330, 520], Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["depth"]], [300], Qt.Orientation.Vertical)

    def _build_statusbar(self) -> None:
        sb = self.statusBar()
        self.status_label = QLabel("Ready")
        sb.addWidget(self.status_label, 1)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setFixedWidth(260)
        self.progress.setTextVisible(True)
        self.progress.hide()
        sb.addPermanentWidget(self.progress)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.ctl.cancel)
        self.cancel_button.hide()
        sb.addPermanentWidget(self.cancel_button)

    def _connect(self) -> None:
        c = self.ctl
        c.sigError.connect(self.show_error)
        c.sigStatus.connect(self.status_label.setText)
        c.sigNote.connect(lambda text: self.messages.show_message(text, "info"))
        c.sigBusyChanged.connect(self._busy_changed)
        c.sigProgress.connect(self._progress)
        c.sigModelReady.connect(self.graph.set_graph)
        c.sigSessionReady.connect(self.histogram.refresh)
        c.sigSessionReady.connect(self._refresh_actions)
        c.sigProjectPathChanged.connect(lambda *_: self._refresh_title())
        ev = self.ws.events
        for e in (ev.recipe, ev.runs, ev.spec, ev.benchmarks, ev.dirty, ev.stale):
            e.connect(lambda *_: self._workspace_changed())

    # -- errors and status ---------------------------------------------------------------------------------
    def show_error(self, info: ErrorInfo) -> None:
        self.messages.show_error(info)

    def _busy_changed(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        if busy:
            self.progress.setValue(0)
            self.progress.setFormat(f"{self.ctl.job_name}… %p%")
        self._refresh_actions()

    def _progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(fraction * 1000))
        if message:
            self.status_label.setText(message)

    def _refresh_actions(self) -> None:
        A, busy, has_model = self.actions_, self.ctl.busy, self.ws.spec is not None
        A.cancel.setEnabled(busy)
        A.run.setEnabled(not busy and has_model)
        A.run.setText("&Re-run analysis" if self.ws.runs else "&Run analysis")
        A.exclude.setEnabled(self.ws.current_run is not None)
        A.undo.setEnabled(self.ws.can_undo())
        A.redo.setEnabled(self.ws.can_redo())
        for a in (A.save, A.save_as, A.save_recipe, A.close_model, A.load_recipe):
            a.setEnabled(has_model)
        A.export_report.setEnabled(self.ws.current_run is not None and not busy)
        A.export_int8.setEnabled(bool(self.ws.current_run and self.ws.current_run.result.int8_model))
        A.bench.setEnabled(has_model)
        int8 = self._shows_int8()
        self.graph.netron_button.setToolTip(
            ("Show the INT8 model of the shown run" if int8 else "Show this model (FP32)")
            + " in Netron, for every attribute and tensor shape (served on 127.0.0.1 only)")
        A.netron.setEnabled(has_model)
        A.netron_int8.setEnabled(bool(self.ws.current_run and self.ws.current_run.result.int8_model))
        self.summary.rerun.setEnabled(not busy and has_model)

    def _refresh_title(self) -> None:
        parts = ["Quant Workbench"]
        if self.ws.spec is not None:
            parts.append(Path(self.ws.spec.model).name)
        if self.ctl.project_path is not None:
            parts.append(f"[{self.ctl.project_path.name}]")
        self.setWindowTitle(" — ".join(parts[:2]) + (" " + parts[2] if len(parts) > 2 else "")
                            + (" *" if self.ws.dirty else ""))

    def _workspace_changed(self) -> None:
        self._refresh_actions()
        self._refresh_title()
        if self.ws.spec is not None and not self._closed:
            self.autosave_timer.start()

    # -- opening -----------------------------------------------------------------------------------------
    def _confirm_discard(self) -> bool:
        """Before replacing the work: True to go on (saved or discarded), False to stay."""
        if not self.ws.dirty or self.ws.spec is None:
            return True
        answer = self.prompter.save_changes()
        if answer == "save":
            return self.save_project() is not None
        return answer == "discard"

    def open_spec(self, spec: SessionSpec, analyze: bool | None = None, samples: int | None = None) -> None:
        if not self._confirm_discard():
            return
        self.messages.hide()
        self.ctl.open_model(spec, analyze=analyze, samples=samples)
        self._remember(RecentItem(spec.model, spec.calib, spec.eval))

    def open_demo(self) -> None:
        self.open_spec(SessionSpec(str(resources.DEMO_MODEL), str(resources.DEMO_CALIB), str(resources.DEMO_EVAL)))

    def open_dialog(self, model: str = "") -> None:
        c, e = guess_data(model) if model else (None, None)
        dlg = OpenDialog(model, c, e, self, samples=self.ctl.analysis_samples)
        if dlg.exec():
            self.open_spec(dlg.spec(), samples=dlg.analysis_samples())

    def open_path(self, path: str) -> None:
        """A path from the command line, a drop or the recent list: project, recipe, or model."""
        p = Path(path)
        if p.suffix == SUFFIX:
            self.open_project(path)
        elif p.suffix == ".toml":
            self.load_recipe(path)
        else:
            calib, evalf = guess_data(path)
            if calib:
                self.open_spec(SessionSpec(path, calib, evalf))
            else:
                self.open_dialog(path)

    def open_project_dialog(self) -> None:
        path = self.prompter.open_path("Open project", "", f"Projects (*{SUFFIX})")
        if path:
            self.open_project(path)

    def open_project(self, path: str) -> None:
        if not self._confirm_discard():
            return
        self.messages.hide()
        if self.ctl.open_project(path):
            self._remember(RecentItem(str(Path(path).resolve()), project=True))

    def close_model(self) -> None:
        if self._confirm_discard():
            self.ctl.close_model()

    def _remember(self, item: RecentItem) -> None:
        add_recent(self.settings, item)
        self._refresh_recent()

    def _refresh_recent(self) -> None:
        m = self.actions_.recent_menu
        m.clear()
        items = recent_items(self.settings)
        for it in items:
            if it.project:
                m.addAction(it.label(), lambda it=it: self.open_project(it.model))
            else:
                m.addAction(it.label(), lambda it=it: self.open_spec(SessionSpec(it.model, it.calib or "", it.eval)))
        m.setEnabled(bool(items))

    # -- recipe --------------------------------------------------------------------------------------------
    def load_recipe_dialog(self) -> None:
        path = self.prompter.open_path("Load recipe", "", "Recipes (*.toml)")
        if path:
            self.load_recipe(path)

    def load_recipe(self, path: str) -> None:
        try:
            self.ws.replace_recipe(Recipe.load(path))
            self.status_label.setText(f"recipe loaded from {path} (re-run to see its effect)")
        except WorkbenchError as e:
            self.show_error(ErrorInfo.from_exception(e, "load the recipe"))

    def save_recipe_dialog(self) -> None:
        path = self.prompter.save_path("Save recipe", "recipe.toml", "Recipes (*.toml)")
        if path:
            try:
                self.ws.recipe.save(path)
                self.status_label.setText(f"recipe written to {path}: `qwb quantize MODEL --recipe {Path(path).name}`")
            except OSError as e:
                self.show_error(ErrorInfo("Could not save the recipe", str(e), "choose a folder you can write to"))

    def reset_all_overrides(self) -> None:
        self.ws.clear_overrides(list(self.ws.recipe.layers))

    # -- analysis ----------------------------------------------------------------------------------------------
    def run_analysis(self) -> None:
        self.messages.hide()
        self.ctl.run_analysis()

    def set_auto_analyze(self, on: bool) -> None:
        self.prefs.auto_analyze = bool(on)
        self.ctl.auto_analyze = bool(on)
        self.prefs.save(self.settings)

    def _metric_changed(self, metric: str) -> None:
        self.prefs.color_metric = metric
        self.prefs.save(self.settings)

    def focus_search(self) -> None:
        self.graph.search.setFocus()
        self.graph.search.selectAll()

    def show_tune(self) -> None:
        self.docks["tune"].show()
        self.docks["tune"].raise_()

    def show_benchmark(self) -> None:
        self.docks["bench"].show()
        self.docks["bench"].raise_()

    def run_benchmark(self) -> bool:
        """F6: show the Benchmark panel and time the shown run now (or say why it cannot)."""
        self.show_benchmark()
        if not self.bench._loaded:  # noqa: SLF001 - backends are listed when the panel is first shown
            self.bench.load_backends()
        if self.ws.current_run is None:
            self.messages.show_message("Nothing to benchmark yet: the benchmark times the INT8 model of an analysis. "
                                       + ("It starts when the running analysis has finished: press F6 again then."
                                          if self.ws.activity == "Analysing" else "Run the analysis first (F5)."),
                                       "warning")
            return False
        if self.ctl.busy:
            self.messages.show_message(f"'{self.ctl.job_name}' is still running: press F6 when it has finished.",
                                       "warning")
            return False
        if self.bench.backend() is None:
            self.messages.show_message("No benchmark backend is available here: see the Benchmark panel.", "warning")
            return False
        return self.bench.run()

    def export_int8_dialog(self) -> None:
        run = self.ws.current_run
        if run is None or not run.result.int8_model:
            self.show_error(ErrorInfo("Nothing to export", "no analysed run is shown", "run the analysis first (F5)"))
            return
        stem = Path(self.ws.spec.model).stem if self.ws.spec else "model"
        path = self.prompter.save_path("Export INT8 model", f"{stem}_int8.onnx", "ONNX models (*.onnx)")
        if path:
            self.export_int8(path)

    def export_int8(self, path: str):
        """Write the shown run's INT8 model to ``path`` and its recipe beside it; returns ExportedModel or None."""
        try:
            done = export_int8(self.ws.current_run, path, self.ws.spec)
        except WorkbenchError as e:
            self.show_error(ErrorInfo.from_exception(e, "export the INT8 model"))
            return None
        cmd = done.reproduce(self.ws.spec.model, self.ws.spec.calib) if self.ws.spec else ""
        self.messages.show_message(f"INT8 model of {self.ws.current_run.label.split(':')[0]} written to {done.model}, "
                                   f"its recipe to {done.recipe.name}" + (f". Reproduce: {cmd}" if cmd else ""), "info")
        return done

    def _shows_int8(self) -> bool:
        """The graph shows the results of a run: Netron shows that run's INT8 model (else the FP32 one)."""
        run = self.ws.current_run
        return bool(run and run.result.int8_model)

    def export_report(self) -> None:

        report_export.export_report(self)

    # -- Netron ------------------------------------------------------------------------------------------------
    def open_netron(self, int8: bool = False) -> None:
        """Serve the FP32 (or the shown run's INT8) model on 127.0.0.1 and show it in Netron."""
        if int8:
            run = self.ws.current_run
            path = run.result.int8_model if run else None
        else:
            opened = self.ctl.opened
            path = (self.ws.spec.model if self.ws.spec and self.ws.spec.model.endswith(".onnx")
                    else (opened.prepared_path if opened else None))
        if not path:
            self.show_error(ErrorInfo("Nothing to show", "no model file is available yet", "open a model first"))
            return
        try:
            server = netron_view.NetronServer(path)
        except WorkbenchError as e:
            self.show_error(ErrorInfo.from_exception(e, "start Netron"))
            return
        self.netron_servers.append(server)
        if netron_view.webengine_available():
            tab = netron_view.NetronTab(server)
            i = self.tabs.addTab(tab, f"Netron: {Path(path).name}")
            self.tabs.setCurrentIndex(i)
        elif not netron_view.open_in_browser(server):
            self.show_error(ErrorInfo("Could not open a browser", f"Netron is serving the model at {server.url}",
                                      "open that address in a browser on this computer"))
        else:
            self.status_label.setText(f"Netron opened in your browser ({server.url}, this computer only)")

    def _close_tab(self, i: int) -> None:
        w = self.tabs.widget(i)
        if isinstance(w, netron_view.NetronTab):
            w.close_server()
            self.tabs.removeTab(i)
            w.deleteLater()

    def stop_netron(self) -> None:
        for s in self.netron_servers:
            s.stop()
        self.netron_servers.clear()

    # -- projects, autosave, crash recovery -------------------------------------------------------------------
    def _store_view_state(self) -> None:
        """How the table was left (columns, sort, filter) and which graph blocks are open go into the project."""
        self.ws.view_state["table"] = self.layers.table_state()
        graph = self.graph.graph_state()
        if graph is not None:
            self.ws.view_state["graph"] = graph

    def save_project(self):
        self._store_view_state()
        if self.ctl.project_path is None:
            return self.save_project_as()
        return self.ctl.save_project(self.ctl.project_path)

    def save_project_as(self):
        start = str(Path(self.ws.spec.model).with_suffix(SUFFIX).name) if self.ws.spec else f"project{SUFFIX}"
        path = self.prompter.save_path("Save project", start)
        if not path:
            return None
        final = project_path(path)
        if str(final) != path and final.exists() and not self.prompter.replace_file(str(final), "a project file"):
            return None  # the dialog confirmed "p"; the file written would be the existing p.qwbproj
        self._store_view_state()
        p = self.ctl.save_project(final)
        if p is not None:
            self._remember(RecentItem(str(p), project=True))
        return p

    def autosave_now(self) -> None:
        """Write the work to this process's autosave file (it survives a crash of the app or a backend)."""
        if self.ws.spec is None:
            return
        if self.ws.empty and not self.ws.dirty:  # nothing to lose: a crash then offers nothing
            self.autosaver.clear()
            return
        self._store_view_state()
        try:
            self.autosaver.write(project_dict(self.ws))
        except (OSError, ValueError) as e:
            self.status_label.setText(f"autosave failed: {e}")

    def check_crash_restore(self) -> bool:
        """Offer the newest work a crashed session left behind; True when it was restored."""
        found = orphans()
        for o in [o for o in found if o.runs == 0 and o.edits == 0]:
            discard(o)  # a session that never got a result or an edit: nothing worth offering
        found = [o for o in found if o.runs or o.edits]
        if not found:
            return False
        newest = found[0]
        restored = False
        if self.prompter.restore(newest.describe()):
            try:
                data = load_project(newest.path)
            except WorkbenchError as e:
                self.show_error(ErrorInfo.from_exception(e, "restore the autosaved work"))
            else:
                self.ctl.restore(data)
                self.status_label.setText("restored the autosaved work: save it as a project to keep it")
                restored = True
        for o in found:
            discard(o)
        if restored:
            self.autosave_now()
        return restored

    # -- window state ----------------------------------------------------------------------------------------
    def _restore_window(self) -> None:
        geo = self.settings.value("window/geometry")
        if geo is not None:
            self.restoreGeometry(geo)
        else:
            self.resize(1600, 1000)
        state = self.settings.value("window/state")
        if state is not None:
            self.restoreState(state, LAYOUT_VERSION)
        self.fit_to_screen()

    def fit_to_screen(self) -> None:
        """Keep the window inside the screen's available area (a saved size, or the default 1600x1000, can be
        larger than a small or scaled screen: at scale 1.5 a 1920x1080 screen is 1280x720 logical pixels)."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is None:
            return
        avail = screen.availableGeometry()
        frame = self.frameGeometry()
        extra_w = max(frame.width() - self.width(), 0)
        extra_h = max(frame.height() - self.height(), 0)
        w = min(self.width(), avail.width() - extra_w)
        h = min(self.height(), avail.height() - extra_h)
        if (w, h) != (self.width(), self.height()):
            self.resize(max(w, 640), max(h, 480))
        x = min(max(frame.x(), avail.x()), avail.right() - self.frameGeometry().width() + 1)
        y = min(max(frame.y(), avail.y()), avail.bottom() - self.frameGeometry().height() + 1)
        if (x, y) != (frame.x(), frame.y()):
            self.move(max(x, avail.x()), max(y, avail.y()))

    def reset_layout(self) -> None:
        self.restoreState(self._default_state, LAYOUT_VERSION)
        for d in self.docks.values():
            d.show()
        self.docks["depth"].raise_()

    def save_window(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState(LAYOUT_VERSION))
        self.prefs.exclude_n = self.layers.exclude_n.value()
        self.prefs.histogram_log = self.histogram.log_box.isChecked()
        self.prefs.save(self.settings)
        self.settings.sync()

    def show_about(self) -> None:

        QMessageBox.about(self, "Quant Workbench", f"Quant Workbench {__version__}\n\nQuantize a model to INT8, see "
                          "which layers lose accuracy and why, fix them by hand, re-benchmark and report.")

    # -- drag and drop ----------------------------------------------------------------------------------------
    def dragEnterEvent(self, event):
        urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
        if urls and all(u.isLocalFile() for u in urls):
            event.acceptProposedAction()

    def dropEvent(self, event):
        for u in event.mimeData().urls():
            if u.isLocalFile():
                self.open_path(u.toLocalFile())
                event.acceptProposedAction()
                return

    # -- closing -----------------------------------------------------------------------------------------------
    def closeEvent(self, event):
        if not self._closed:
            if not self._confirm_discard():
                event.ignore()
                return
            self._closed = True
            self.autosave_timer.stop()
            self.save_window()
            self.ctl.shutdown()
            self.stop_netron()
            self.autosaver.clear()
            release_plot_menus(self)
        super().closeEvent(event)


def make_bench_panel(window: MainWindow) -> QWidget:
    """The benchmark panel (a function so the window builds its docks in one place)."""
    return BenchmarkPanel(window.ws, window.ctl)

