"""The diff engine on real computations: agreement with onnxruntime's qdq_loss_debug, isolated error by
hand, a planted bad layer ranked first with the right hint, streaming, progress and cancellation."""

from __future__ import annotations

import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from analyzers.calibration.grid import QuantSpec, fake_quant
from tests.models import conv_net, conv_net_data, save, save_npz, shape_arith_net, time_major_net
from tests.reference import qdq_loss_debug_sqnr
from workbench.analysis import analyze
from workbench.errors import CancelledError
from workbench.recipe import Recipe
from workbench.session import Session


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    d = tmp_path_factory.mktemp("net")
    model = save(conv_net(channels=8), d / "m.onnx")
    calib = save_npz(d / "calib.npz", **conv_net_data(32, seed=1))
    ev = save_npz(d / "eval.npz", **conv_net_data(24, seed=2))
    return model, calib, ev


def test_cumulative_sqnr_agrees_with_qdq_loss_debug(net, tmp_path):
    s = Session(*net)
    r = analyze(s)
    x = np.load(net[2])["x"]
    errors = qdq_loss_debug_sqnr(s.prepared.path, r.int8_model, [{"x": x[i:i + 1]} for i in range(len(x))], tmp_path)
    compared = 0
    for lay in r.layers:
        if lay.output in errors:
            assert lay.cumulative.sqnr_db == pytest.approx(errors[lay.output], abs=0.01), lay.node
            compared += 1
    assert compared >= 4


def _run_one_node(model: onnx.ModelProto, node_name: str, feeds: dict) -> np.ndarray:
    """Run a single node of ``model`` (with its initializers) on ``feeds``."""
    node = next(n for n in model.graph.node if n.name == node_name)
    inits = [i for i in model.graph.initializer if i.name in node.input]
    g = onnx.helper.make_graph([node], "one", [onnx.helper.make_tensor_value_info(k, 1, None) for k in feeds],
                               [onnx.helper.make_tensor_value_info(node.output[0], 1, None)], inits)
    m = onnx.helper.make_model(g, opset_imports=model.opset_import)
    m.ir_version = model.ir_version
    return ort.InferenceSession(m.SerializeToString()).run(None, feeds)[0]


def test_isolated_error_matches_a_hand_built_computation(net):
    s = Session(*net)
    r = analyze(s)
    lay = r.layer("conv2")
    int8 = onnx.load(r.int8_model)
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in int8.graph.initializer}
    fp32 = onnx.load(str(s.prepared.path))
    x = np.load(net[2])["x"]
    # float input of conv2 (r1) and float output (r2) from the FP32 model
    sess = ort.InferenceSession(onnx.utils.Extractor(fp32).extract_model(["x"], ["r1", "r2"]).SerializeToString())
    r1, r2 = sess.run(["r1", "r2"], {"x": x})
    # conv2 alone quantized: its input through its own Q/DQ, dequantized weights, output through its Q/DQ
    in_spec = QuantSpec("u8")
    r1q = fake_quant(r1, float(inits["r1_scale"]), int(inits["r1_zero_point"]), in_spec)
    w2 = (inits["w2_quantized"].astype(np.float32) - inits["w2_zero_point"].reshape(-1, 1, 1, 1)) * \
        inits["w2_scale"].reshape(-1, 1, 1, 1)
    conv = onnx.helper.make_node("Conv", ["a", "w", "b"], ["c"], name="c", pads=[1, 1, 1, 1])
    g = onnx.helper.make_graph([conv], "c", [onnx.helper.make_tensor_value_info("a", 1, None),
                                             onnx.helper.make_tensor_value_info("w", 1, None),
                                             onnx.helper.make_tensor_value_info("b", 1, None)],
                               [onnx.helper.make_tensor_value_info("c", 1, None)])
    m = onnx.helper.make_model(g, opset_imports=[onnx.helper.make_opsetid("", 17)])
    m.ir_version = 8
    b2 = onnx.numpy_helper.to_array(next(i for i in fp32.graph.initializer if i.name == "b2"))
    c2 = ort.InferenceSession(m.SerializeToString()).run(None, {"a": r1q, "w": w2.astype(np.float32), "b": b2})[0]
    out = fake_quant(c2, float(inits["r2_scale"]), int(inits["r2_zero_point"]), QuantSpec("u8"))
    expected = 10 * math.log10(float((r2.astype(np.float64) ** 2).sum()) / float(((out - r2).astype(np.float64) ** 2).sum()))
    assert lay.output == "r2" and lay.isolated is not None
    assert lay.isolated.sqnr_db == pytest.approx(expected, abs=0.01)


def test_planted_bad_layer_ranks_first_with_the_matching_hint(tmp_path):
    model = save(conv_net(channels=16, outlier_channel=8.0, seed=3), tmp_path / "bad.onnx")
    calib = save_npz(tmp_path / "calib.npz", **conv_net_data(32, seed=4))
    recipe = Recipe()
    recipe.settings.per_channel = False
    r = analyze(Session(model, calib, recipe=recipe))
    ranked = r.ranked("isolated")
    assert ranked[0].node == "conv2"
    worst = ranked[0]
    assert worst.flagged
    assert "per_channel" in [h.code for h in worst.hints]
    # conv2's damage is per channel: its tensor SQNR hides it, the per-channel mean shows it
    assert worst.isolated.channel_sqnr_mean < worst.isolated.sqnr_db - 2
    # downstream layers carry the error but do not cause it
    conv3 = r.layer("conv3")
    assert not conv3.flagged
    assert conv3.isolated.effective_sqnr_db > worst.isolated.effective_sqnr_db + 6
    assert conv3.amplification > 3  # cumulative much worse than isolated: it only carries the error


def test_fp32_override_removes_the_layers_error(net):
    s = Session(*net)
    base = analyze(s)
    r = Recipe()
    r.set_precision("conv2", "fp32")
    fixed = analyze(s, recipe=r)
    assert fixed.layer("conv2").precision == "fp32" and fixed.layer("conv2").isolated is None
    assert fixed.outputs[0].sqnr_db > base.outputs[0].sqnr_db
    assert fixed.layer("conv3").cumulative.sqnr_db > base.layer("conv3").cumulative.sqnr_db


def test_output_metrics_match_direct_inference(net):
    s = Session(*net)
    r = analyze(s)
    x, labels = np.load(net[2])["x"], np.load(net[2])["labels"]
    f = ort.InferenceSession(str(s.prepared.path)).run(None, {"x": x})[0]
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    q = ort.InferenceSession(r.int8_model, so).run(None, {"x": x})[0]
    o = r.outputs[0]
    assert o.name == "y"
    assert o.top1_agreement == pytest.approx(float((f.argmax(1) == q.argmax(1)).mean()))
    assert o.accuracy_fp32 == pytest.approx(float((f.argmax(1) == labels).mean()))
    assert o.accuracy_int8 == pytest.approx(float((q.argmax(1) == labels).mean()))
    assert sum(c.count for c in o.per_class) == len(labels)
    assert o.sqnr_db == pytest.approx(10 * math.log10((f.astype(np.float64) ** 2).sum() / ((f - q).astype(np.float64) ** 2).sum()), abs=0.01)


def test_batched_and_per_sample_runs_agree(tmp_path):
    calib = save_npz(tmp_path / "c.npz", **conv_net_data(16, seed=5))
    a = analyze(Session(save(conv_net(dynamic_batch=True), tmp_path / "a.onnx"), calib))
    b = analyze(Session(save(conv_net(dynamic_batch=False), tmp_path / "b.onnx"), calib))
    for la, lb in zip(a.layers, b.layers):
        assert la.node == lb.node
        assert la.cumulative.sqnr_db == pytest.approx(lb.cumulative.sqnr_db, abs=1e-3)
        assert la.isolated.sqnr_db == pytest.approx(lb.isolated.sqnr_db, abs=1e-3)
    assert a.heatmap.shape == b.heatmap.shape == (16, len(a.layers))
    np.testing.assert_allclose(a.heatmap, b.heatmap, atol=1e-2)


class _Task:
    def __init__(self, cancel_after=None):
        self.fractions, self.cancel_after, self.calls = [], cancel_after, 0

    def report(self, fraction, message=""):
        self.fractions.append(fraction)

    def check(self):
        self.calls += 1
        if self.cancel_after is not None and self.calls > self.cancel_after:
            raise CancelledError()


def test_progress_reaches_one_and_cancel_stops_between_samples(tmp_path):
    model = save(conv_net(dynamic_batch=False), tmp_path / "m.onnx")
    calib = save_npz(tmp_path / "c.npz", **conv_net_data(12))
    s = Session(model, calib)
    t = _Task()
    analyze(s, task=t)
    assert t.fractions[-1] == pytest.approx(1.0)
    assert all(b >= a - 1e-9 for a, b in zip(t.fractions, t.fractions[1:]))
    with pytest.raises(CancelledError):
        analyze(s, task=_Task(cancel_after=3))


def test_reservoir_and_heatmap(net):
    r = analyze(Session(*net), reservoir=256, samples=10)
    assert r.samples == 10 and r.heatmap.shape == (10, len(r.layers))
    x, y = r.reservoirs["r2"]
    assert x.shape == y.shape == (256,)
    assert np.corrcoef(x, y)[0, 1] > 0.99


def test_result_round_trips_through_json(net):
    import json

    from analyzers.diff_types import AnalysisResult

    r = analyze(Session(*net), reservoir=16, samples=8)
    d = json.loads(json.dumps(r.to_dict(include_arrays=True)))
    back = AnalysisResult.from_dict(d)
    assert back.to_dict(include_arrays=True) == r.to_dict(include_arrays=True)
    assert back.layer("conv2").isolated.sqnr_db == pytest.approx(r.layer("conv2").isolated.sqnr_db)
    np.testing.assert_allclose(back.heatmap, r.heatmap, rtol=1e-6)


def test_what_if_rerun_reuses_unchanged_isolated_figures_exactly(net):
    s = Session(*net)
    first = analyze(s)
    assert first.timings["isolated_reused"] == 0
    r2 = Recipe()
    r2.set_precision("conv2", "fp32")
    one = analyze(s, recipe=r2)
    fresh = analyze(Session(*net), recipe=r2)
    assert one.timings["isolated_reused"] >= 2  # layers away from conv2 were not recomputed
    assert fresh.timings["isolated_reused"] == 0
    for a, b in zip(one.layers, fresh.layers):
        assert (a.isolated is None) == (b.isolated is None)
        if a.isolated:
            assert a.isolated.sqnr_db == pytest.approx(b.isolated.sqnr_db, abs=1e-9), a.node
        assert a.cumulative.sqnr_db == pytest.approx(b.cumulative.sqnr_db, abs=1e-9)


def test_clip_rate_counts_evaluation_values_outside_the_quantized_range(net):
    r = Recipe()
    r.set_percentile("conv1", 99.0)  # the fused conv1->relu1 output r1: clipped at its 99th percentile
    s = Session(*net)
    res = analyze(s, recipe=r)
    int8 = onnx.load(res.int8_model)
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in int8.graph.initializer}
    fp32 = onnx.load(str(s.prepared.path))
    x = np.load(net[2])["x"]
    r1 = ort.InferenceSession(onnx.utils.Extractor(fp32).extract_model(["x"], ["r1", "r2"]).SerializeToString()
                              ).run(["r1", "r2"], {"x": x})
    for tensor, vals in zip(["r1", "r2"], r1):
        scale, zp = float(inits[f"{tensor}_scale"]), int(inits[f"{tensor}_zero_point"])
        lo, hi = scale * (0 - zp), scale * (255 - zp)
        expected = float(((vals < lo) | (vals > hi)).mean())
        lay = next(lay for lay in res.layers if lay.output == tensor)
        assert lay.clip_rate == pytest.approx(expected, abs=1e-9), tensor
    assert res.layer("conv1").clip_rate > 0.001


def test_weight_error_per_layer_and_per_output_channel(tmp_path):
    model = save(conv_net(channels=16, outlier_channel=8.0, seed=3), tmp_path / "bad.onnx")
    calib = save_npz(tmp_path / "calib.npz", **conv_net_data(16, seed=4))
    recipe = Recipe()
    recipe.settings.per_channel = False
    r = analyze(Session(model, calib, recipe=recipe))
    int8 = onnx.load(r.int8_model)
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in int8.graph.initializer}
    w = onnx.numpy_helper.to_array(next(i for i in onnx.load(str(model)).graph.initializer if i.name == "w2"))
    wq = (inits["w2_quantized"].astype(np.float64) - inits["w2_zero_point"]) * inits["w2_scale"]
    per_ch = [10 * np.log10((w[c].astype(np.float64) ** 2).sum() / ((w[c] - wq[c]) ** 2).sum()) for c in range(16)]
    we = r.layer("conv2").weight
    assert we.tensor == "w2"
    np.testing.assert_allclose(we.channel_sqnr, per_ch, atol=1e-6)
    assert we.sqnr_db == pytest.approx(10 * np.log10((w.astype(np.float64) ** 2).sum() / ((w - wq) ** 2).sum()), abs=1e-6)
    assert min(we.channel_sqnr) < we.sqnr_db - 5  # the small channels lose most under one per-tensor scale


def test_integer_shape_tensors_are_never_layers(tmp_path):
    """Shape -> Gather -> Mul -> Concat (int64) feeding a Reshape: analysed without error, float layers only."""
    model = save(shape_arith_net(), tmp_path / "shape.onnx")
    data = save_npz(tmp_path / "d.npz", **conv_net_data(16, labels=False))
    r = analyze(Session(str(model), str(data)))
    nodes = {lay.node for lay in r.layers}
    assert {"conv", "fc"} <= nodes
    assert not nodes & {"shape", "gather_batch", "mul_int", "concat_shape"}
    for lay in r.layers:
        assert math.isfinite(lay.cumulative.sqnr_db), lay.node
    assert math.isfinite(r.outputs[0].sqnr_db) and r.outputs[0].sqnr_db > 10


def test_time_major_tensors_get_no_per_sample_rows(tmp_path):
    """[T, N, C] tensors: figures over all elements, no per-sample rows along T (they would not line up with
    the samples); the heatmap keeps one row per sample."""
    model = save(time_major_net(), tmp_path / "tm.onnx")
    x = np.random.default_rng(3).standard_normal((12, 7, 6)).astype(np.float32)  # N=12 samples, T=7 steps
    data = save_npz(tmp_path / "d.npz", x=x)
    r = analyze(Session(str(model), str(data)))
    proj = r.layer("proj")
    assert math.isfinite(proj.cumulative.sqnr_db) and proj.cumulative.sqnr_db > 10
    assert r.heatmap.shape == (12, len(r.layers))
    assert np.isnan(r.heatmap[:, [lay.node for lay in r.layers].index("proj")]).all()
