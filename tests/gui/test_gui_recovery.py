"""After a crash, the next start offers the autosaved work back, with its runs and edits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import FakePrompter, wait_idle, wait_runs

pytestmark = pytest.mark.gui
ROOT = Path(__file__).resolve().parents[2]


def test_restore_after_a_simulated_crash(make_window, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("QWB_CACHE_DIR", str(tmp_path / "cache"))
    env = dict(os.environ, PYTHONPATH=str(ROOT), QT_QPA_PLATFORM="offscreen")
    r = subprocess.run([sys.executable, str(Path(__file__).with_name("crashing_app.py"))], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, r.stderr
    node = r.stdout.split()[-1]

    declined = make_window(FakePrompter(restore=False), show=False)
    # a declined offer is not repeated; make a fresh crash to test accepting
    assert declined.check_crash_restore() is False
    assert declined.prompter.asked == ["restore"] and declined.check_crash_restore() is False
    declined.close()

    r = subprocess.run([sys.executable, str(Path(__file__).with_name("crashing_app.py"))], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, r.stderr
    w = make_window(FakePrompter(restore=True))
    assert w.check_crash_restore() is True
    assert len(w.ws.runs) == 1 and w.ws.recipe.precision_of(node) == "fp32" and w.ws.stale and w.ws.dirty
    wait_idle(qtbot, w)
    assert w.ctl.opened is not None
    w.actions_.run.trigger()
    wait_runs(qtbot, w, 2)
    assert w.ws.current_run.result.layer(node).precision == "fp32"
    # the restored work lives in this process's autosave now; a clean close removes it
    assert w.autosaver.path.exists()
    w.close()
    assert not w.autosaver.path.exists()
