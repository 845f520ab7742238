"""Benchmarks of the desktop GUI (run on demand; figures go to docs/benchmarks.md, "Desktop GUI").

    python benchmarks/bench_gui.py graph    # open + lay out + draw a 2,000-node graph (target <= 2 s)
    python benchmarks/bench_gui.py stall    # longest GUI-thread stall during an analysis (target <= 100 ms)
    python benchmarks/bench_gui.py whatif   # one layer -> FP32, Re-run, refreshed results (target <= 2 s)
    python benchmarks/bench_gui.py gil      # why the engine runs in a process: the same probe, thread vs process
    python benchmarks/bench_gui.py all

Runs offscreen unless a display is set (QT_QPA_PLATFORM). ``stall`` and ``whatif`` use the MobileNetV2
of benchmarks/models.py (3.5 M parameters, 3x96x96 input) with 128 calibration and 64 evaluation samples.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QWB_SETTINGS_DIR", tempfile.mkdtemp(prefix="qwb-bench-settings-"))
os.environ.setdefault("QWB_CACHE_DIR", tempfile.mkdtemp(prefix="qwb-bench-cache-"))  # cold: nothing prepared yet


def wide_deep_onnx(blocks: int = 250, channels: int = 16) -> Path:
    """A real ONNX model of ``blocks`` x 8 nodes: two parallel convs, concat, 1x1 merge, residual, gating."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    path = ROOT / "benchmarks" / ".cache" / f"wide_deep_{blocks}x8.onnx"
    if path.exists():
        return path
    path.parent.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    c = channels
    nodes, inits = [], []

    def w(name, shape):
        inits.append(numpy_helper.from_array((rng.standard_normal(shape) * 0.1).astype(np.float32), name))
        return name

    x = "x"
    for b in range(blocks):
        p = f"b{b}_"
        nodes += [
            helper.make_node("Conv", [x, w(p + "wa", (c, c, 3, 3))], [p + "a"], name=p + "conv_a", pads=[1] * 4),
            helper.make_node("Conv", [x, w(p + "wb", (c, c, 1, 1))], [p + "b"], name=p + "conv_b"),
            helper.make_node("Concat", [p + "a", p + "b"], [p + "cat"], name=p + "concat", axis=1),
            helper.make_node("Conv", [p + "cat", w(p + "wm", (c, 2 * c, 1, 1))], [p + "m"], name=p + "merge"),
            helper.make_node("Relu", [p + "m"], [p + "r"], name=p + "relu"),
            helper.make_node("Add", [p + "r", x], [p + "res"], name=p + "residual"),
            helper.make_node("Sigmoid", [p + "res"], [p + "g"], name=p + "gate"),
            helper.make_node("Mul", [p + "res", p + "g"], [p + "out"], name=p + "gated"),
        ]
        x = p + "out"
    g = helper.make_graph(nodes, "wide_deep", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", c, 8, 8])],
                          [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", c, 8, 8])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


def _app():
    from ui.app import application

    return application()


def bench_graph() -> dict:
    """Prepare the model (core), build its graph, lay it out, and draw it fitted, then zoomed."""
    from PySide6.QtWidgets import QApplication

    from ui.graph.panel import GraphPanel
    from workbench.app.layout import layout_graph
    from workbench.model_prep import prepare_model
    from workbench.app.workspace import Workspace

    path = wide_deep_onnx()
    app = _app()
    t0 = time.perf_counter()
    prepared = prepare_model(path)
    t_prep = time.perf_counter() - t0
    g = prepared.graph
    t1 = time.perf_counter()
    lay = layout_graph(g)
    t_layout = time.perf_counter() - t1
    ws = Workspace()
    p = GraphPanel(ws)
    p.resize(1200, 900)
    p.show()
    app.processEvents()
    t2 = time.perf_counter()
    ws.set_graph(g)
    p.set_graph(g, lay)
    p.view.viewport().repaint()
    app.processEvents()
    t_draw = time.perf_counter() - t2
    p.view.fit()
    t3 = time.perf_counter()
    p.view.viewport().repaint()
    t_fit_paint = time.perf_counter() - t3
    frames = []
    for _ in range(20):
        t = time.perf_counter()
        p.view.zoom(1.25)
        p.view.viewport().repaint()
        frames.append(time.perf_counter() - t)
    pans = []
    for _ in range(20):
        t = time.perf_counter()
        p.view.verticalScrollBar().setValue(p.view.verticalScrollBar().value() + 300)
        p.view.viewport().repaint()
        pans.append(time.perf_counter() - t)
    p.close()
    QApplication.processEvents()
    e2e = bench_open_in_window(path)
    return {**e2e, "nodes": len(g.nodes), "edges": len(lay.edges), "crossings": lay.crossings,
            "prepare_model_s": t_prep, "layout_s": t_layout, "scene_and_first_paint_s": t_draw,
            "open_and_layout_total_s": t_prep + t_layout + t_draw, "gui_part_s": t_layout + t_draw,
            "fit_paint_ms": 1000 * t_fit_paint, "zoom_frame_ms_max": 1000 * max(frames),
            "zoom_frame_ms_median": 1000 * statistics.median(frames), "pan_frame_ms_max": 1000 * max(pans)}


def bench_open_in_window(path: Path) -> dict:
    """The whole File → Open in the app: engine process start, prepare, calibrate (8 synthetic samples),
    lay out, send to the GUI, draw. Cold cache."""
    import tempfile as _t

    from ui.main_window import MainWindow
    from workbench.session import SessionSpec

    os.environ["QWB_CACHE_DIR"] = _t.mkdtemp(prefix="qwb-bench-cache-")
    app = _app()
    w = MainWindow()
    w.show()
    app.processEvents()
    drawn = []
    w.ctl.sigModelReady.connect(lambda g, lay: lay is not None and drawn.append(time.perf_counter()))
    t0 = time.perf_counter()
    w.ctl.open_model(SessionSpec(str(path), "synthetic:8"), analyze=False)
    _wait(app, lambda: bool(drawn), 600)
    w.graph.view.viewport().repaint()
    app.processEvents()
    t_total = time.perf_counter() - t0
    w.prompter.save_changes = lambda: "discard"
    w.close()
    return {"open_in_app_s": t_total}


def _mobilenet_window():
    from benchmarks.models import image_data, mobilenet_onnx
    from ui.main_window import MainWindow
    from workbench.session import SessionSpec

    model, calib, ev = mobilenet_onnx(96), image_data(128, 96, seed=1), image_data(64, 96, seed=2)
    app = _app()
    w = MainWindow()
    w.ctl.auto_analyze = False
    w.show()
    w.ctl.open_model(SessionSpec(str(model), str(calib), str(ev)), analyze=False)
    _wait(app, lambda: w.ctl.opened is not None and not w.ctl.busy, 600)
    return app, w


def _wait(app, cond, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError
        app.processEvents()
        time.sleep(0.002)


def bench_stall() -> dict:
    """A 5 ms QTimer on the GUI thread during a whole analysis: the longest gap between its ticks."""
    from PySide6.QtCore import QTimer

    app, w = _mobilenet_window()
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    done = []
    w.ctl.sigJobFinished.connect(lambda name, outcome: done.append(outcome))
    timer.start()
    t0 = time.perf_counter()
    w.ctl.run_analysis()
    while not done:
        app.processEvents()
        app.thread().msleep(1)
    elapsed = time.perf_counter() - t0
    # let the result be applied to every view (that happens on the GUI thread too)
    end = time.perf_counter() + 0.5
    while time.perf_counter() < end:
        app.processEvents()
    timer.stop()
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    w.prompter.save_changes = lambda: "discard"
    w.close()
    return {"analysis_s": elapsed, "ticks": len(ticks), "max_gap_ms": 1000 * max(gaps),
            "p99_gap_ms": 1000 * sorted(gaps)[int(0.99 * (len(gaps) - 1))], "median_gap_ms": 1000 * statistics.median(gaps)}


def bench_whatif(repeats: int = 3) -> dict:
    """After the first run: set the worst layer to FP32, Re-run, until the new run is shown everywhere."""
    app, w = _mobilenet_window()
    w.ctl.run_analysis()
    _wait(app, lambda: len(w.ws.runs) == 1 and not w.ctl.busy, 600)
    out = []
    for k in range(repeats):
        layer = w.ws.current_run.result.ranked("isolated")[0].node
        t0 = time.perf_counter()
        w.ws.set_precision([layer], "fp32" if k % 2 == 0 else "int8")
        w.run_analysis()
        _wait(app, lambda k=k: len(w.ws.runs) == k + 2 and not w.ctl.busy, 600)
        app.processEvents()
        total = time.perf_counter() - t0
        tm = w.ws.current_run.result.timings
        out.append({"refresh_s": total, "engine_s": w.ws.current_run.result.elapsed_s, **tm})
    w.prompter.save_changes = lambda: "discard"
    w.close()
    best = min(out, key=lambda d: d["refresh_s"])
    return {"runs": out, "best_refresh_s": best["refresh_s"], "median_refresh_s": statistics.median(d["refresh_s"] for d in out),
            "samples": 64, "layers": len(w.ws.current_run.result.layers)}


def bench_gil(repeats: int = 2) -> dict:
    """A 5 ms sleep loop on the main thread while the same analysis runs in a thread of this process, or in
    the engine process (``workbench.app.remote``): the longest gap between wake-ups, per design."""
    import threading

    from benchmarks.models import image_data, mobilenet_onnx
    from workbench.analysis import analyze
    from workbench.app.remote import child_main  # noqa: F401 - the process design under test
    from workbench.app.requests import SCATTER_RESERVOIR
    from workbench.recipe import Recipe
    from workbench.session import SessionSpec, open_session

    spec = SessionSpec(str(mobilenet_onnx(96)), str(image_data(128, 96, seed=1)), str(image_data(64, 96, seed=2)))
    out: dict = {"thread_max_gap_ms": [], "process_max_gap_ms": []}

    def probe(done: threading.Event) -> float:
        ticks = []
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.005)
        return 1000 * max(b - a for a, b in zip(ticks, ticks[1:]))

    session = open_session(spec, Recipe(), calibrate=True)
    for _ in range(repeats):
        done = threading.Event()
        th = threading.Thread(target=lambda: (analyze(session, Recipe(), reservoir=SCATTER_RESERVOIR), done.set()))
        th.start()
        out["thread_max_gap_ms"].append(probe(done))
        th.join()
        code = ("import sys; from workbench.analysis import analyze; from workbench.recipe import Recipe; "
                "from workbench.session import SessionSpec, open_session; "
                "s = open_session(SessionSpec(*sys.argv[1:4]), Recipe(), calibrate=True); "
                "print('ready', flush=True); sys.stdin.readline(); analyze(s, Recipe(), reservoir=1000)")
        import subprocess

        p = subprocess.Popen([sys.executable, "-c", code, spec.model, spec.calib, spec.eval], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        p.stdout.readline()
        done = threading.Event()
        th = threading.Thread(target=lambda: (p.stdin.write("go\n"), p.stdin.flush(), p.wait(), done.set()))
        th.start()
        out["process_max_gap_ms"].append(probe(done))
        th.join()
    return out


def machine() -> dict:
    import onnxruntime
    import PySide6

    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__, "pyside6": PySide6.__version__,
            "qpa": os.environ.get("QT_QPA_PLATFORM"), "load_avg": os.getloadavg()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("which", choices=["graph", "stall", "whatif", "gil", "all"])
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    res = {"machine": machine()}
    for name, fn in (("graph", bench_graph), ("stall", bench_stall), ("whatif", bench_whatif), ("gil", bench_gil)):
        if args.which in (name, "all"):
            res[name] = fn()
            print(name, json.dumps(res[name], indent=1, default=float), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
