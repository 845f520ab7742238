"""The GUI runs code from a model (a PyTorch file, a factory; also one named by a project) only after the user
allows it in a confirmation naming the model and what would run; the engine process then imports it."""

from __future__ import annotations

import textwrap

import pytest

from workbench.app.project import save_project
from workbench.app.workspace import Workspace
from workbench.session import SessionSpec

from .conftest import FakePrompter, wait_idle

pytestmark = pytest.mark.gui
pytest.importorskip("torch")


@pytest.fixture
def payload(tmp_path, monkeypatch):
    """``evil_gui_factory:make`` on the engine's PYTHONPATH; importing it writes a marker file."""
    marker = tmp_path / "MARKER"
    (tmp_path / "evil_gui_factory.py").write_text(textwrap.dedent(f"""
        import pathlib
        pathlib.Path({str(marker)!r}).write_text("ran")
        import torch

        def make():
            return torch.nn.Linear(4, 2), torch.zeros(1, 4)
    """))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setenv("QWB_CACHE_DIR", str(tmp_path / "cache"))
    return SessionSpec("evil_gui_factory:make", "synthetic:4"), marker


def test_declined_confirmation_runs_nothing(make_window, qtbot, payload, tmp_path):
    spec, marker = payload
    w = make_window(FakePrompter(trust_model_code=False), show=False)
    errors = []
    w.ctl.sigError.connect(errors.append)
    w.open_spec(spec)
    wait_idle(qtbot, w)
    assert w.prompter.asked == ["trust_model_code"]
    assert w.ctl.opened is None and not marker.exists()
    assert errors and "evil_gui_factory:make" in errors[0].message and "imports the Python module" in errors[0].message

    ws = Workspace()
    ws.reset(spec)
    project = save_project(ws, tmp_path / "evil.qwbproj")
    w.open_project(str(project))
    wait_idle(qtbot, w)
    assert w.prompter.asked == ["trust_model_code", "trust_model_code"]
    assert w.ctl.opened is None and not marker.exists()
    assert "trust" not in project.read_text()


def test_allowed_confirmation_opens_the_factory(make_window, qtbot, payload):
    spec, marker = payload
    w = make_window(FakePrompter(trust_model_code=True), show=False)
    w.ctl.auto_analyze = False
    w.open_spec(spec)
    qtbot.waitUntil(lambda: w.ctl.opened is not None and not w.ctl.busy, timeout=120_000)
    assert w.prompter.asked == ["trust_model_code"] and marker.exists()
