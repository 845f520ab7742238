"""The diff engine's speed paths: two batches inferred at once (``DiffEngine.in_flight``) and clip counting that
skips what a Clip already guarantees; the figures, ``on_batch``, progress and cancellation must be exactly what
one batch at a time and a full count give."""

from __future__ import annotations

import threading

import numpy as np
import onnx
import pytest

import analyzers.diff as diff
from analyzers.diff import DiffEngine
from analyzers.onnx_utils import expose_tensors, make_session
from tests.models import conv_net, conv_net_data, save, save_npz
from workbench.analysis import analyze
from workbench.calibration_cache import op_types_for
from workbench.errors import CancelledError
from workbench.session import Session

BATCH = 3  # 20 samples: 7 batches, the last one short


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    d = tmp_path_factory.mktemp("pipe")
    model = save(conv_net(channels=8, outlier_channel=20.0), d / "m.onnx")
    return model, save_npz(d / "c.npz", **conv_net_data(32, seed=1)), save_npz(d / "e.npz", **conv_net_data(20, seed=2))


def _engine(paths, cores: int, monkeypatch, **kw) -> tuple[DiffEngine, Session]:
    monkeypatch.setattr(diff, "physical_cores", lambda: cores)
    s = Session(*paths)
    q = s.quantize()
    e = DiffEngine(s.prepared.load_proto(), onnx.load(str(q.path)), set(op_types_for(s.recipe)), set(q.excluded),
                   **kw)
    return e, s


def _figures(outcome) -> list:
    out = []
    for node, lay in sorted(outcome.layers.items()):
        out += [node, vars(lay.cumulative), vars(lay.isolated) if lay.isolated else None, lay.clip_rate,
                lay.per_sample.tobytes()]
    out += [(t, vars(m)) for t, m in sorted(outcome.tensors.items())]
    out += [vars(o) for o in outcome.outputs]
    out += [(t, x.tobytes(), y.tobytes()) for t, (x, y) in sorted(outcome.reservoirs.items())]
    return out


def test_two_batches_in_flight_give_the_figures_of_one_at_a_time(paths, monkeypatch):
    one, s = _engine(paths, 1, monkeypatch, reservoir=16)
    two, _ = _engine(paths, 2, monkeypatch, reservoir=16)
    assert (one.in_flight, two.in_flight) == (1, 2)
    data = s.eval_data
    a = one.run(data.batches(batch_size=BATCH), len(data), data.labels)
    b = two.run(data.batches(batch_size=BATCH), len(data), data.labels)
    assert a.samples == b.samples == 20
    assert repr(_figures(a)) == repr(_figures(b))  # bit for bit (repr keeps NaN equal to NaN)
    assert any(lay.clip_rate for lay in b.layers.values())  # the outlier layer clips: the counts were compared


def test_on_batch_sees_each_batch_in_order_and_draws_stay_two_ahead(paths, monkeypatch):
    e, s = _engine(paths, 2, monkeypatch)
    data = s.eval_data
    x = np.load(paths[2])["x"]
    drawn, seen = [], []

    def source():
        for start, stop, feed in data.batches(batch_size=BATCH):
            drawn.append(start)
            assert len(drawn) - len(seen) <= e.in_flight  # never more than two batches alive
            yield start, stop, feed

    def on_batch(fp32, exposed):
        k = len(seen)
        np.testing.assert_array_equal(fp32["x"], x[k * BATCH:(k + 1) * BATCH])  # this batch's tensors, in order
        seen.append(k * BATCH)

    e.run(source(), len(data), data.labels, on_batch=on_batch)
    assert seen == drawn == list(range(0, 20, BATCH))


class _Task:
    def __init__(self, cancel_after=None):
        self.fractions, self.cancel_after, self.calls = [], cancel_after, 0

    def report(self, fraction, message=""):
        assert threading.current_thread() is threading.main_thread()  # the GUI's task is not thread-safe
        self.fractions.append(fraction)

    def check(self):
        self.calls += 1
        if self.cancel_after is not None and self.calls > self.cancel_after:
            raise CancelledError()


def test_progress_in_order_and_cancel_leaves_no_worker_running(paths, monkeypatch):
    e, s = _engine(paths, 2, monkeypatch)
    data = s.eval_data
    t = _Task()
    e.run(data.batches(batch_size=BATCH), len(data), task=t)
    assert t.fractions == pytest.approx([min(k * BATCH, 20) / 20 for k in range(1, 8)])
    t = _Task(cancel_after=3)
    with pytest.raises(CancelledError):
        e.run(data.batches(batch_size=BATCH), len(data), task=t)
    assert len(t.fractions) < 7
    assert not [th for th in threading.enumerate() if th.name.startswith("qwb-diff")]


@pytest.mark.kernels  # the deployed integers differ from the exact ones where u8 x s8 saturates: check it there too
def test_deployed_layer_figures_unchanged_when_batches_are_drawn_ahead(paths, monkeypatch):
    """``kernels="both"``: the deployed taps run as each batch is drawn and are folded in ``on_batch``, a batch
    later: each fold must still compare its own batch's integers."""
    monkeypatch.setattr(DiffEngine, "suggested_batch", lambda self, cap=64: BATCH)
    monkeypatch.setattr(diff, "physical_cores", lambda: 1)
    a = analyze(Session(*paths), kernels="both", remedies=False)
    monkeypatch.setattr(diff, "physical_cores", lambda: 2)
    b = analyze(Session(*paths), kernels="both", remedies=False)
    got = [(la.node, la.deployed) for la in b.layers]
    assert got == [(la.node, la.deployed) for la in a.layers]
    assert sum(d is not None for _, d in got) >= 3


def _clip_net(tmp_path):
    """conv_net with Clip(0, 100) after conv1 and ReLU6-style Clip(0, 6) after conv2 and conv3 (bounds as
    initializers)."""
    m = conv_net(channels=8)
    for n in m.graph.node:
        if n.op_type == "Relu":
            n.op_type = "Clip"
            n.input.extend(["zero", "six" if n.output[0] != "r1" else "hundred"])
    m.graph.initializer.extend([onnx.numpy_helper.from_array(np.float32(v), k)
                                for k, v in (("zero", 0.0), ("six", 6.0), ("hundred", 100.0))])
    calib, ev = conv_net_data(32, seed=1), conv_net_data(12, seed=2)
    calib["x"] *= 4  # conv2's Clip saturates while calibrating: its range ends at 6 exactly
    ev["x"] *= 8  # conv1's outputs pass its calibrated range, below 100
    return (save(m, tmp_path / "clip.onnx"), save_npz(tmp_path / "c.npz", **calib), save_npz(tmp_path / "e.npz", **ev))


def test_clip_counting_skips_only_what_the_clip_guarantees(tmp_path, monkeypatch):
    paths = _clip_net(tmp_path)
    e, s = _engine(paths, 2, monkeypatch)
    data = s.eval_data
    r = e.run(data.batches(batch_size=BATCH), len(data))
    assert e.clip_ranges["r1"] == (0.0, 100.0) and e.clip_ranges["r2"] == (0.0, 6.0)
    assert e.bounds["r2"][1] >= 6.0  # the pass over r2's maximum is skipped ...
    assert e.bounds["r1"][1] < 100.0  # ... the one over r1's is not
    fp32 = make_session(expose_tensors(s.prepared.load_proto(), ["r1", "r2", "r3"]), "deployed")
    vals = dict(zip(["r1", "r2", "r3"], fp32.run(["r1", "r2", "r3"], {"x": np.load(paths[2])["x"]})))
    by_tensor = {lay.fp32_tensor: lay.node for lay in e.match.layers}
    rates = {}
    for t, x in vals.items():
        lo, hi = e.bounds[t]
        rates[t] = r.layers[by_tensor[t]].clip_rate
        assert rates[t] == np.count_nonzero((x < np.float32(lo)) | (x > np.float32(hi))) / x.size, t
    assert rates["r1"] > 0.01
