"""GUI test fixtures: a private QSettings file, windows that answer questions at once, leak checks.

``make_window`` is napari's ``make_napari_viewer`` idea: every window a test makes is closed after it,
and the test fails if a top-level widget or a Python thread outlives it.
"""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")


class FakePrompter:
    """Answers every question the window asks, and records them."""

    def __init__(self, save_changes: str = "discard", restore: bool = True, save_path: str | None = None,
                 open_path: str | None = None, trust_model_code: bool = False, replace_file: bool = False):
        self.answers = {"save_changes": save_changes, "restore": restore, "save_path": save_path,
                        "open_path": open_path, "trust_model_code": trust_model_code, "replace_file": replace_file}
        self.asked: list[str] = []

    def save_changes(self) -> str:
        self.asked.append("save_changes")
        return self.answers["save_changes"]

    def restore(self, description: str) -> bool:
        self.asked.append("restore")
        return self.answers["restore"]

    def trust_model_code(self, model: str, what: str) -> bool:
        self.asked.append("trust_model_code")
        return self.answers["trust_model_code"]

    def replace_file(self, path: str, what: str) -> bool:
        self.asked.append("replace_file")
        return self.answers["replace_file"]

    def save_path(self, *a, **k):
        self.asked.append("save_path")
        return self.answers["save_path"]

    def open_path(self, *a, **k):
        self.asked.append("open_path")
        return self.answers["open_path"]


@pytest.fixture(autouse=True)
def _private_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("QWB_SETTINGS_DIR", str(tmp_path / "settings"))


def _flush_deletes(qapp) -> None:
    """Process deferred deletes, and collect the Python side (pyqtgraph's parentless menus go with it)."""
    import gc

    from PySide6.QtCore import QCoreApplication, QEvent

    for _ in range(3):
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)
        qapp.processEvents()
        gc.collect()


@pytest.fixture
def make_window(qtbot, qapp):
    """Factory for MainWindow; closes them afterwards and fails on leaked windows, threads or processes."""
    from ui.main_window import MainWindow

    _flush_deletes(qapp)
    widgets_before = set(qapp.topLevelWidgets())
    threads_before = set(threading.enumerate())
    made = []

    def factory(prompter: FakePrompter | None = None, show: bool = True) -> MainWindow:
        w = MainWindow()
        w.prompter = prompter or FakePrompter()
        w.ctl.auto_analyze = True
        made.append(w)
        if show:
            w.show()
        return w

    yield factory
    for w in made:
        try:
            w.prompter.answers["save_changes"] = "discard"
            w.close()
        except RuntimeError:  # already deleted by the test
            pass
    made.clear()
    _flush_deletes(qapp)
    leaked = [w for w in qapp.topLevelWidgets() if w not in widgets_before and type(w).__name__ != "QTipLabel"]
    deadline = time.monotonic() + 5
    while set(threading.enumerate()) - threads_before and time.monotonic() < deadline:
        time.sleep(0.05)
    threads = [t.name for t in set(threading.enumerate()) - threads_before]
    import multiprocessing

    children = [p.name for p in multiprocessing.active_children()]
    assert not leaked, f"windows leaked: {[type(w).__name__ for w in leaked]}"
    assert not threads, f"threads leaked: {threads}"
    assert not children, f"processes leaked: {children}"


def wait_idle(qtbot, window, timeout: int = 30_000) -> None:
    """Wait until no job runs (and the pending follow-up, if any, has started and finished)."""
    qtbot.waitUntil(lambda: not window.ctl.busy and window.ctl._pending is None, timeout=timeout)


def wait_runs(qtbot, window, n: int, timeout: int = 30_000) -> None:
    qtbot.waitUntil(lambda: len(window.ws.runs) >= n and not window.ctl.busy, timeout=timeout)
