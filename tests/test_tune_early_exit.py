"""``qwb tune`` spends no group probes when full INT8 already meets the target (found comparing with NNCF, which
stops after one validation there: benchmarks/compare_nncf.py)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from tests.tune_models import planted_cnn, planted_data
from workbench.session import SessionSpec, open_session
from workbench.tune.moves import DEFAULT_CANDIDATES, global_moves
from workbench.tune.search import TuneSpec, run_tune
from workbench.tune.target import parse_target


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """The planted CNN without planted layers: INT8 keeps its output within a cosine of 0.9 on any CPU."""
    d = tmp_path_factory.mktemp("clean")
    onnx.save(planted_cnn(planted=()), str(d / "m.onnx"))
    np.savez(d / "calib.npz", **planted_data(32, seed=1))
    np.savez(d / "eval.npz", **planted_data(24, seed=2))
    return d


def _tune(d, target):
    s = open_session(SessionSpec(str(d / "m.onnx"), str(d / "calib.npz"), str(d / "eval.npz")))
    r = run_tune(s, TuneSpec(parse_target(target), objective="int8_macs", workers=1, isolated=False))
    return r, len(global_moves(s.recipe, [g.group for g in r.groups], DEFAULT_CANDIDATES))


def test_full_int8_meeting_the_target_probes_no_group(clean):
    r, n_globals = _tune(clean, "cosine>=0.9")
    full = next(p for p in r.points if p.source == "int8")
    assert full.met_search and full.met_holdout
    assert r.best is not None and r.best.met_holdout
    assert all(g.quantize_one is None and not g.revert for g in r.groups)
    # only full INT8 and each whole-model move on the search part, and each point's check on the held-back part
    assert 1 < r.evaluations <= 1 + n_globals + len(r.points) < len(r.groups) + 1 + n_globals
    assert any("no group was probed" in n for n in r.notes)


def test_a_target_full_int8_misses_still_probes_every_group(clean):
    r, _ = _tune(clean, "sqnr>=200")  # out of reach of 8 bits: the search must measure the groups
    assert all(g.quantize_one is not None for g in r.groups)
    assert r.evaluations > len(r.groups)
    assert not any("no group was probed" in n for n in r.notes)
