"""The Tune dock against the real engine on the demo: points reach the plot while the search runs, Cancel stops it
and keeps them, and picking a point takes its recipe (undoably) and re-runs so Before / after shows the change."""

from __future__ import annotations

import numpy as np
import pytest

import resources
from workbench.session import SessionSpec

from .conftest import wait_idle, wait_runs

pytestmark = pytest.mark.gui


def _spec(tmp_path, n: int | None) -> SessionSpec:
    """The demo with its first ``n`` evaluation samples (all of them for None)."""
    if n is None:
        return SessionSpec(str(resources.DEMO_MODEL), str(resources.DEMO_CALIB), str(resources.DEMO_EVAL))
    with np.load(resources.DEMO_EVAL) as z:
        np.savez(tmp_path / "eval.npz", **{k: z[k][:n] for k in z.files})
    return SessionSpec(str(resources.DEMO_MODEL), str(resources.DEMO_CALIB), str(tmp_path / "eval.npz"))


def _open(qtbot, make_window, spec):
    w = make_window()
    w.ctl.open_model(spec)
    wait_runs(qtbot, w, 1, timeout=120_000)
    p = w.tune
    p.set_target("sqnr", 36.0)  # full INT8 reaches ~33 dB: the search has work to do
    for c, box in p.candidates.items():
        box.setChecked(c in ("int16", "fp32"))
    p.workers.setValue(1)
    return w, p


def test_points_appear_while_the_search_runs_and_picking_one_is_undoable(qtbot, make_window, tmp_path):
    w, panel = _open(qtbot, make_window, _spec(tmp_path, 60))
    seen = []  # (still running, points on the plot) at every change of the workspace's tune state
    w.ws.events.tune.connect(lambda *_: seen.append((bool(w.ws.tune and w.ws.tune.get("running")),
                                                     len(panel.held_pts.data))))
    assert panel.run_button.isEnabled()
    assert panel.run()
    assert not panel.run_button.isEnabled() and panel.cancel_button.isEnabled()
    wait_idle(qtbot, w, timeout=120_000)
    t = w.ws.tune
    assert not t.get("running") and t["stopped"] is None and t["best"] is not None
    assert any(running and shown >= 1 for running, shown in seen)  # a point was drawn before the search ended
    points = t["points"]
    assert panel.table.rowCount() == len(points) >= 2
    assert len(panel.held_pts.data) == sum(1 for p in points if not p["error"] and p["latency_ms"] is not None)
    assert "held-back part" in panel.plot.getPlotItem().getAxis("left").labelText
    assert "latency" in panel.plot.getPlotItem().getAxis("bottom").labelText
    assert panel.target_line.isVisible() and panel.target_line.value() == pytest.approx(36.0)
    assert "held back: 20 samples" in panel.key.text()

    first = w.ws.current_run
    before = w.ws.recipe.to_dict()
    # the point with the best held-back figure that changes the recipe (whether it meets the target depends on the
    # CPU's integer kernels)
    best = max((i for i, p in enumerate(points) if p["source"] != "int8" and not p["error"]),
               key=lambda i: points[i]["holdout_metric"])
    panel.table.selectRow(best)
    assert panel.use_button.isEnabled() and panel.sel_ring.data.size == 1
    assert panel.use_selected()
    wait_runs(qtbot, w, 2, timeout=120_000)
    after = w.ws.current_run
    assert w.ws.recipe.to_dict() == points[best]["recipe"] == after.recipe.to_dict() != before
    assert w.ws.baseline_run is first  # Before / after compares the chosen point with the run before it
    assert after.result.outputs[0].sqnr_db > first.result.outputs[0].sqnr_db  # the point's fix really helps
    assert w.ws.tune["chosen"] == best and panel.ring.data.size == 1
    assert panel.table.item(best, panel.table.columnCount() - 1).text().startswith("▶")
    w.ws.undo()  # one step takes the whole point back
    assert w.ws.recipe.to_dict() == before and w.ws.stale


def test_cancel_stops_the_search_and_keeps_the_points(qtbot, make_window, tmp_path):
    w, panel = _open(qtbot, make_window, _spec(tmp_path, None))  # all 500 samples: a search that takes a while

    def cancel_at_first_point(*_):
        t = w.ws.tune
        if t and t.get("running") and t["points"] and not w.engine_cancelled:
            w.engine_cancelled = True
            panel.cancel_button.click()

    w.engine_cancelled = False
    w.ws.events.tune.connect(cancel_at_first_point)
    panel.run()
    wait_idle(qtbot, w, timeout=120_000)
    t = w.ws.tune
    assert w.engine_cancelled and t["stopped"] == "cancelled" and not t.get("running")
    assert len(t["points"]) >= 1 and panel.table.rowCount() == len(t["points"])
    assert "stopped early (cancelled)" in panel.summary.text()
    assert not panel.cancel_button.isEnabled() and panel.run_button.isEnabled()
    w.run_analysis()  # the engine is free again
    wait_runs(qtbot, w, 2, timeout=120_000)
