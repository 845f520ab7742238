"""collect(): folding histograms in a worker thread while the next batch runs equals folding by hand."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from analyzers.calibration import collect as collect_mod
from analyzers.calibration.collect import collect
from analyzers.calibration.histogram import StreamingHistogram
from analyzers.onnx_utils import expose_tensors
from tests.models import conv_net, conv_net_data


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


def test_a_failure_while_folding_is_raised_by_collect(monkeypatch):
    calls = []
    original = StreamingHistogram.update

    def fails_on_the_eighth(self, values):
        calls.append(1)
        if len(calls) == 8:
            raise RuntimeError("boom in the worker")
        original(self, values)

    monkeypatch.setattr(collect_mod.StreamingHistogram, "update", fails_on_the_eighth)
    model = conv_net()
    x = conv_net_data(16)["x"]
    with pytest.raises(RuntimeError, match="boom in the worker"):
        collect(model, ["x", model.graph.node[0].output[0]], _batches(x, 2), len(x))
    assert len(calls) == 8  # nothing was folded after the failure
