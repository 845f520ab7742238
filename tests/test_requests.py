"""The GUI's engine requests: one frozen dataclass and one handler each, dispatched by type."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from workbench.app import requests as rq
from workbench.errors import WorkbenchError
from workbench.recipe import Recipe
from workbench.session import SessionSpec

REQUESTS = (rq.OpenModel, rq.Calibrate, rq.Analyze, rq.Benchmark, rq.ExportReport)


def test_every_request_is_a_frozen_dataclass_with_a_handler():
    for t in REQUESTS:
        assert dataclasses.is_dataclass(t) and t.__dataclass_params__.frozen, t
        assert t in rq.HANDLERS, t


def test_an_unknown_request_is_refused_by_name():
    with pytest.raises(TypeError, match="no handler for str"):
        rq.handle("analyze", rq.EngineState())


def test_requests_that_need_a_model_say_so_when_none_is_open():
    with pytest.raises(WorkbenchError, match="no model is loaded"):
        rq.handle(rq.Calibrate(), rq.EngineState())
    with pytest.raises(WorkbenchError, match="no model is loaded"):
        rq.handle(rq.Analyze(Recipe()), rq.EngineState())


def test_open_then_calibrate_keeps_the_session_in_the_engine_state(demo_paths):
    m, c, e = demo_paths
    state = rq.EngineState()
    req = pickle.loads(pickle.dumps(rq.OpenModel(SessionSpec(str(m), str(c), str(e)), Recipe())))
    opened = rq.handle(req, state)
    assert isinstance(opened, rq.OpenedInfo) and opened.calibration is None and opened.layout is not None
    assert state.session is not None and opened.prepared_path == str(state.session.prepared.path)
    cal = rq.handle(rq.Calibrate(), state)
    assert cal.samples > 0 and len(cal.histograms) > 0
