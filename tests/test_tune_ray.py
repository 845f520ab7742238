"""``qwb tune --ray``: a small tune through a local Ray with 2 CPUs gives the points a local run gives."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from tests.tune_models import planted_cnn, planted_data
from workbench.session import SessionSpec, open_session
from workbench.tune.search import TuneSpec, run_tune
from workbench.tune.target import parse_target

ray = pytest.importorskip("ray", reason="the [ray] extra is not installed (pip install 'quant-workbench[ray]')")

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_tune_through_a_local_ray_with_2_cpus(tmp_path):
    onnx.save(planted_cnn(), str(tmp_path / "m.onnx"))
    np.savez(tmp_path / "calib.npz", **planted_data(32, seed=1))
    np.savez(tmp_path / "eval.npz", **planted_data(48, seed=2))
    s = open_session(SessionSpec(str(tmp_path / "m.onnx"), str(tmp_path / "calib.npz"), str(tmp_path / "eval.npz")))
    spec = TuneSpec(parse_target("sqnr>=25"), objective="int8_macs", isolated=False)
    local = run_tune(s, spec.__class__(**{**spec.__dict__, "workers": 1}))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = run_tune(s, spec.__class__(**{**spec.__dict__, "ray": ""}))
    finally:
        ray.shutdown()
    assert remote.pool.startswith("Ray cluster (2 CPUs")
    assert remote.best is not None and remote.best.met_holdout
    assert remote.best.moves == local.best.moves
    # integer kernels are deterministic on one machine: the same recipes give the same figures either way
    assert [p.holdout_metric for p in remote.points] == pytest.approx([p.holdout_metric for p in local.points])
    assert remote.evaluations == local.evaluations
