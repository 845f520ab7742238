"""Every zoo model (real export patterns, tests/zoo) opens in the desktop app and analyses with defaults."""

from __future__ import annotations

import math

import pytest

from tests.zoo import ZOO, build
from workbench.session import SessionSpec

from .conftest import wait_runs

pytestmark = [pytest.mark.gui, pytest.mark.slow]


@pytest.mark.parametrize("name", [n for n in ZOO if n.endswith(("op13", "op11"))])  # one opset per family
def test_zoo_model_opens_and_analyses_in_the_window(make_window, qtbot, name):
    p = build(name)
    w = make_window()
    w.open_spec(SessionSpec(str(p.model), str(p.calib), str(p.eval)), analyze=True)
    wait_runs(qtbot, w, 1, timeout=120_000)
    assert w.ctl.opened is not None and w.graph.view.nodes is not None
    assert w.messages.info is None, w.messages.info  # no error shown in the window
    r = w.ws.current_run.result
    assert r.layers and w.layers.model.rowCount() > 0
    assert all(math.isfinite(o.cosine) for o in r.outputs), [(o.name, o.cosine) for o in r.outputs]
