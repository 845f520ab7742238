"""collect(): folding histograms in worker threads while the next batch runs equals folding by hand, in order."""

from __future__ import annotations

import threading

import numpy as np
import onnxruntime as ort
import pytest

from analyzers.calibration import collect as collect_mod
from analyzers.calibration import histogram as histogram_mod
from analyzers.calibration.collect import collect, split_by_size
from analyzers.calibration.histogram import StreamingHistogram
from analyzers.onnx_utils import expose_tensors
from tests.models import conv_net, conv_net_data
from tests.task_util import CancelOnCheck


def _batches(x: np.ndarray, step: int):
    for a in range(0, len(x), step):
        # a scale that changes from batch to batch makes the grids widen, so the order of updates matters
        yield a, min(len(x), a + step), {"x": x[a:a + step] * (1.0 + 3.0 * (a % 3))}


def test_overlapped_collection_equals_folding_each_batch_in_order():
    model = conv_net()
    x = conv_net_data(40)["x"]
    tensors = ["x"] + [n.output[0] for n in model.graph.node if n.op_type in ("Conv", "Relu")]
    got = collect(model, tensors, _batches(x, 4), len(x), bins=256)

    sess = ort.InferenceSession(expose_tensors(model, tensors[1:]).SerializeToString(),
                                providers=["CPUExecutionProvider"])
    ref = {t: StreamingHistogram(256) for t in tensors}
    for _a, _b, feed in _batches(x, 4):
        for t, v in zip(tensors[1:], sess.run(tensors[1:], feed)):
            ref[t].update(v)
        ref["x"].update(feed["x"])
    assert got.samples == 40 and len(tensors) > 4
    for t in tensors:
        g, r = got.histograms[t], ref[t].snapshot()
        np.testing.assert_array_equal(g.counts, r.counts)
        np.testing.assert_array_equal(g.edges, r.edges)
        assert (g.min, g.max, g.count, g.zeros) == (r.min, r.max, r.count, r.zeros)
        assert g.sum == pytest.approx(r.sum, rel=1e-12) and g.sum_sq == pytest.approx(r.sum_sq, rel=1e-12)


def _fails_on_call(monkeypatch, n: int) -> list:
    calls = []
    original = StreamingHistogram.update

    def fails(self, values):
        calls.append(1)
        if len(calls) == n:
            raise RuntimeError("boom in the worker")
        original(self, values)

    monkeypatch.setattr(collect_mod.StreamingHistogram, "update", fails)
    return calls


def test_a_failure_while_folding_is_raised_by_collect(monkeypatch):
    calls = _fails_on_call(monkeypatch, 8)
    model = conv_net()
    x = conv_net_data(16)["x"]
    with pytest.raises(RuntimeError, match="boom in the worker"):
        collect(model, ["x", model.graph.node[0].output[0]], _batches(x, 2), len(x), workers=1)
    assert len(calls) == 8  # nothing was folded after the failure


def test_a_failure_in_one_of_several_workers_stops_the_pass(monkeypatch):
    calls = _fails_on_call(monkeypatch, 8)  # the 8th update is in the second batch (6 tensors per batch)
    model = conv_net()
    x = conv_net_data(16)["x"]
    with pytest.raises(RuntimeError, match="boom in the worker"):
        collect(model, ["x"] + [n.output[0] for n in model.graph.node[:5]], _batches(x, 2), len(x), workers=2)
    assert 8 <= len(calls) <= 12  # no batch after the failing one was handed over


def _tensors(model):
    return ["x"] + [n.output[0] for n in model.graph.node if n.op_type in ("Conv", "Relu", "Gemm")]


def _growing_batches(x: np.ndarray, step: int):
    """Batches whose scale changes every time (up and down): the grids widen and re-centre at different batches,
    so the final edges and counts depend on the order in which each histogram saw them."""
    for k, a in enumerate(range(0, len(x), step)):
        yield a, min(len(x), a + step), {"x": x[a:a + step] * np.float32(1.5 ** (k % 5) * (1 + k))}


def _serial(model, tensors, batches, bins):
    sess = ort.InferenceSession(expose_tensors(model, tensors[1:]).SerializeToString(),
                                providers=["CPUExecutionProvider"])
    ref = {t: StreamingHistogram(bins) for t in tensors}
    for _a, _b, feed in batches:
        for t, v in zip(tensors[1:], sess.run(tensors[1:], feed)):
            ref[t].update(v)
        ref["x"].update(feed["x"])
    return {t: h.snapshot() for t, h in ref.items()}


def _same(g, r) -> bool:
    return (np.array_equal(g.counts, r.counts) and np.array_equal(g.edges, r.edges)
            and (g.min, g.max, g.count, g.zeros, g.sum, g.sum_sq, g.special)
            == (r.min, r.max, r.count, r.zeros, r.sum, r.sum_sq, r.special))


@pytest.mark.parametrize("workers", [2, 3, 5])
def test_parallel_fold_equals_a_serial_fold_in_batch_order(monkeypatch, workers):
    """Tensors split over several threads: every histogram (counts, edges, sums to the bit) equals folding the same
    activations serially, batch by batch. Small chunks make every update several chunks long, so threads would also
    trip over shared scratch buffers."""
    monkeypatch.setattr(histogram_mod, "_CHUNK", 256)
    # tensors read in NCHWc layout sum in another order (``taps``, checked below): here every update is the reference's
    monkeypatch.setenv("QWB_EXPOSED_CALIBRATION", "1")
    model = conv_net(channels=16)
    x = conv_net_data(60)["x"]
    tensors = _tensors(model)
    got = collect(model, tensors, _growing_batches(x, 6), len(x), bins=128, workers=workers)
    ref = _serial(model, tensors, _growing_batches(x, 6), 128)
    assert got.samples == 60 and len(tensors) == 8
    for t in tensors:
        assert _same(got.histograms[t], ref[t]), t
    # the check can fail: the same batches in another order, or one batch fewer, give other histograms
    shuffled = [b for i, b in enumerate(_growing_batches(x, 6)) if i != 1] + [list(_growing_batches(x, 6))[1]]
    assert not all(_same(got.histograms[t], h) for t, h in _serial(model, tensors, shuffled, 128).items())
    fewer = list(_growing_batches(x, 6))[:-1]
    assert not any(_same(got.histograms[t], h) for t, h in _serial(model, tensors, fewer, 128).items())


def test_split_by_size_balances_and_keeps_every_name_once_in_order():
    sizes = {"a": 100, "b": 5, "c": 60, "d": 40, "e": 1, "f": 55}
    groups = split_by_size(sizes, 2)
    assert sorted(n for g in groups for n in g) == sorted(sizes)
    assert all(g == sorted(g) for g in groups)  # the names' original order within each group
    loads = sorted(sum(sizes[n] for n in g) for g in groups)
    assert len(loads) == 2 and loads[1] - loads[0] <= max(sizes.values())  # largest first onto the lighter group
    assert split_by_size(sizes, 1) == [list(sizes)]
    assert len(split_by_size({"a": 3, "b": 1}, 8)) == 2  # no empty groups


def test_cancelling_stops_the_pass_and_leaves_no_folding_thread(monkeypatch):
    class Cancelled(Exception):
        pass

    calls = _fails_on_call(monkeypatch, 10**9)  # counts updates, never fails
    model = conv_net()
    x = conv_net_data(16)["x"]
    tensors = _tensors(model)
    with pytest.raises(Cancelled):
        collect(model, tensors, _batches(x, 2), len(x), task=CancelOnCheck(3, Cancelled), workers=2)
    # the first batch was folded, the second perhaps in part (the workers stop at the next tensor), nothing after
    assert len(tensors) <= len(calls) <= 2 * len(tensors)
    assert not [t for t in threading.enumerate() if t.name.startswith("qwb-histogram")]


@pytest.mark.parametrize("channels", [8, 12])
def test_tensors_read_from_the_optimized_graph_give_the_exposed_models_histograms(monkeypatch, channels):
    """12 channels: every blocked tensor carries padding lanes (NCHWc blocks of 8 or 16), which must not be counted."""
    from analyzers.calibration.taps import CalibrationTaps

    model = conv_net(channels=channels)
    x = conv_net_data(16)["x"]
    # not the Conv outputs (a lean calibration leaves them out): onnxruntime fuses each Relu and keeps r1, r2 blocked
    tensors = ["x", "r1", "r2", "r3", "gap", "flat", "y"]
    readers = []
    real = collect_mod._reader
    monkeypatch.setattr(collect_mod, "_reader", lambda *a: readers.append(real(*a)) or readers[-1])
    got = collect(model, tensors, _batches(x, 4), len(x))
    if ort.get_device() == "CPU" and "avx2" in _flags():  # MLAS blocks Conv tensors into NCHWc on x86
        assert isinstance(readers[0], CalibrationTaps) and any(s.channels for s in readers[0].sources.values())
    monkeypatch.setenv("QWB_EXPOSED_CALIBRATION", "1")
    ref = collect(model, tensors, _batches(x, 4), len(x))
    assert not isinstance(readers[1], CalibrationTaps)
    for t in tensors:
        g, r = got.histograms[t], ref.histograms[t]
        np.testing.assert_array_equal(g.counts, r.counts)
        np.testing.assert_array_equal(g.edges, r.edges)
        assert (g.min, g.max, g.count, g.zeros) == (r.min, r.max, r.count, r.zeros), t
        assert g.sum == pytest.approx(r.sum, rel=1e-9) and g.sum_sq == pytest.approx(r.sum_sq, rel=1e-9)


def _flags() -> set[str]:
    from backends.cpuinfo import runtime_flags

    return runtime_flags()


def test_a_tensor_held_as_a_constant_is_read_exposed_without_building_the_optimized_graph(monkeypatch):
    """Identity(initializer) is folded into an initializer by every optimized build (a transformer's LayerNorm
    weights): the pass goes straight to the exposed model, with the same histograms."""
    import onnx

    from analyzers.calibration import taps

    model = conv_net()
    bias = next(i for i in model.graph.initializer if i.name == "b2")
    model.graph.node.insert(0, onnx.helper.make_node("Identity", ["b2"], ["b2_held"], name="hold_b2"))
    add = onnx.helper.make_node("Add", ["r2", "b2_col"], ["r2b"], name="add_b2")
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.array([bias.dims[0], 1, 1], np.int64), "col"))
    reshape = onnx.helper.make_node("Reshape", ["b2_held", "col"], ["b2_col"], name="col_b2")
    conv3 = next(n for n in model.graph.node if n.name == "conv3")
    conv3.input[0] = "r2b"
    at = list(model.graph.node).index(conv3)
    model.graph.node.insert(at, add)
    model.graph.node.insert(at, reshape)
    assert {"b2_held", "b2_col"} <= taps.constant_tensors(model) and "r2b" not in taps.constant_tensors(model)
    built = []
    monkeypatch.setattr(taps, "OptimizedFp32", lambda *a: built.append(a))
    x = conv_net_data(8)["x"]
    tensors = ["x", "r1", "b2_col", "r2b", "r3"]
    got = collect(model, tensors, _batches(x, 4), len(x))
    assert not built
    monkeypatch.setenv("QWB_EXPOSED_CALIBRATION", "1")
    ref = collect(model, tensors, _batches(x, 4), len(x))
    for t in tensors:
        assert _same(got.histograms[t], ref.histograms[t]), t
