"""The deployed per-layer view: each layer's integers read from onnxruntime's fused kernels, against FP32 and the
exact Q/DQ simulation. Every reference is computed here, on the machine running the test, with plain onnxruntime
sessions (the fused kernels give other numbers on x86 CPUs with and without VNNI)."""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import resources
from analyzers.deployed_layers import DeployedLayerTaps, map_layers
from analyzers.qdq_match import match
from backends.cpuinfo import runtime_flags, u8s8_saturates
from tests.cli_util import qwb
from tests.ort_util import plain_session as _sess
from tests.ort_util import with_outputs as _with_outputs
from workbench.analysis import analyze
from workbench.calibration_cache import op_types_for
from workbench.session import Session

N = 160




def _source_layout(d: np.ndarray, shape: tuple) -> np.ndarray:
    """A deployed tensor in the source (NCHW) layout: onnxruntime's x86 graph keeps conv regions channels-last."""
    if d.shape == shape:
        return d
    assert d.ndim == 4 and d.shape == (shape[0], shape[2], shape[3], shape[1]), (d.shape, shape)
    return d.transpose(0, 3, 1, 2)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    s = Session(resources.DEMO_MODEL, resources.DEMO_CALIB, resources.DEMO_EVAL)
    r = analyze(s, samples=N, isolated=False)
    return s, r, tmp_path_factory.mktemp("opt")


def test_every_demo_layer_maps_to_a_tensor_of_the_optimized_graph(demo):
    s, r, tmp = demo
    fp32, int8 = s.prepared.load_proto(), onnx.load(r.int8_model)
    _sess(r.int8_model, ort.GraphOptimizationLevel.ORT_ENABLE_ALL, tmp / "map.onnx")
    taps = map_layers(onnx.load(str(tmp / "map.onnx")), match(fp32, int8, set(op_types_for(s.recipe))), int8)
    assert set(taps) == {lay.node for lay in r.layers}
    # fused kernels named after the layer, and tensors whose QuantizeLinear output name survived
    assert taps["stem.Conv"].kernel == "QLinearConv" and taps["stem.Conv"].deployed_tensor == "stem.Conv"
    assert taps["fc1.Gemm"].kernel == "QGemm" and taps["fc1.Gemm"].deployed_tensor == "relu_5_QuantizeLinear_Output"
    assert taps["pool.MaxPool"].kernel == "NhwcMaxPool"
    assert taps["stem.Conv"].perm == (0, 2, 3, 1) and taps["fc1.Gemm"].perm is None  # NHWC region, then NCHW


@pytest.mark.kernels
def test_tapped_graph_computes_what_the_plain_deployed_session_computes(demo):
    s, r, _ = demo
    fp32, int8 = s.prepared.load_proto(), onnx.load(r.int8_model)
    taps = DeployedLayerTaps(r.int8_model, int8, match(fp32, int8, set(op_types_for(s.recipe))))
    try:
        plain = _sess(r.int8_model, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
        names = [o.name for o in plain.get_outputs()]
        for start in (0, 64):
            feed = s.eval_data.batch(start, start + 64)
            want = plain.run(names, feed)
            got = taps.run(feed, names)
            assert all(np.array_equal(a, b) for a, b in zip(want, got))  # bit for bit
        assert taps.identical is True
    finally:
        taps.close()


@pytest.mark.kernels
def test_per_layer_figures_equal_an_independent_run_of_the_optimized_graph(demo):
    """sqnr_db, kernel_gap_db and lsb_diff_share against a reference computed here: onnxruntime's optimized graph
    run with every layer tensor exposed, the QDQ model without optimizations, FP32 with every tensor exposed."""
    s, r, tmp = demo
    feed = s.eval_data.batch(0, N)
    int8 = onnx.load(r.int8_model)
    _sess(r.int8_model, ort.GraphOptimizationLevel.ORT_ENABLE_ALL, tmp / "ref.onnx")
    opt = onnx.load(str(tmp / "ref.onnx"))
    m = match(s.prepared.load_proto(), int8, set(op_types_for(s.recipe)))
    by_node = {lay.node: lay for lay in m.layers}
    q_out = {lay.node: m.int8_nodes[lay.act.q_node].output[0] for lay in m.layers}
    qtype = {lay.node: lay.act.qtype for lay in m.layers}
    dep_t = {lay.node: lay.deployed["tensor"] for lay in r.layers}
    dep = _sess(_with_outputs(opt, {dep_t[n]: qtype[n] for n in dep_t if dep_t[n] not in
                                    {o.name for o in opt.graph.output}}),
                ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    dvals = dict(zip([o.name for o in dep.get_outputs()], dep.run(None, feed)))
    ex = _sess(_with_outputs(int8, {q_out[n]: qtype[n] for n in q_out}), ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    evals = dict(zip([o.name for o in ex.get_outputs()], ex.run(None, feed)))
    fp = s.prepared.load_proto()
    fp_s = _sess(_with_outputs(fp, {by_node[n].fp32_tensor: onnx.TensorProto.FLOAT for n in q_out
                                    if by_node[n].fp32_tensor not in {o.name for o in fp.graph.output}}),
                 ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    fvals = dict(zip([o.name for o in fp_s.get_outputs()], fp_s.run(None, feed)))
    for lay in r.layers:
        aq = by_node[lay.node].act
        e = evals[q_out[lay.node]].astype(np.float64)
        d = _source_layout(dvals[dep_t[lay.node]], e.shape).astype(np.float64)
        x = fvals[lay.output].astype(np.float64)
        ye, yd = (e - aq.zero_point) * aq.scale, (d - aq.zero_point) * aq.scale
        sq_e = 10 * math.log10((x * x).sum() / ((ye - x) ** 2).sum())
        sq_d = 10 * math.log10((x * x).sum() / ((yd - x) ** 2).sum())
        got = lay.deployed
        assert got["sqnr_db"] == pytest.approx(sq_d, abs=0.01), lay.node
        assert got["kernel_gap_db"] == pytest.approx(sq_e - sq_d, abs=0.01), lay.node
        assert got["lsb_diff_share"] == pytest.approx(float((d != e).mean()), abs=1e-12), lay.node
        assert got["exact_sqnr_db"] == pytest.approx(sq_e, abs=0.01), lay.node


@pytest.mark.kernels
def test_kernel_gap_follows_the_cpu_integer_path(demo):
    """With VNNI the fused kernels match the simulation up to rounding ties (measured here: every gap under
    0.003 dB, under 0.03 % of values one LSB off); without it (AVX2: saturating u8 x s8 pairs) the first conv
    departs by tens of dB and every layer after it carries the gap, while the kernel-alone figure tells the
    layers whose kernel departs (measured emulated: stem.Conv 26.3 dB, fc1.Gemm 4.6 dB) from those that only
    carry it (the other convs: 0.00 dB alone)."""
    _, r, _ = demo
    gaps = {lay.node: lay.deployed["kernel_gap_db"] for lay in r.layers}
    own = {lay.node: lay.deployed["own_gap_db"] for lay in r.layers if lay.deployed["own_gap_db"] is not None}
    departs = [lay.node for lay in r.layers if any(h.code == "kernel_departs" for h in lay.hints)]
    assert len(own) >= 8  # every fused conv, add, concat and gemm of the demo
    # the first conv reads the quantized input, the same in both: alone or in the model, one figure
    assert own["stem.Conv"] == pytest.approx(gaps["stem.Conv"], abs=0.01)
    if u8s8_saturates(runtime_flags()):
        assert gaps["stem.Conv"] > 3.0 and "stem.Conv" in departs
        assert min(gaps.values()) > 1.0  # carried to the output
        carried = [n for n in own if own[n] < 0.5 and gaps[n] > 3.0]
        assert carried and not set(carried) & set(departs)  # carried, not caused: not flagged
        h = next(h for h in r.layer("stem.Conv").hints if h.code == "kernel_departs")
        assert "VNNI" in h.message and "reduce_range" in h.suggestion
    else:
        assert max(abs(g) for g in gaps.values()) < 0.05, gaps
        assert max(abs(g) for g in own.values()) < 0.05, own
        assert max(lay.deployed["lsb_diff_share"] for lay in r.layers) < 0.01
        assert not departs


def test_exact_only_leaves_the_deployed_view_empty():
    s = Session(resources.DEMO_MODEL, resources.DEMO_CALIB, resources.DEMO_EVAL)
    r = analyze(s, samples=32, isolated=False, kernels="exact")
    assert all(lay.deployed is None for lay in r.layers)
    assert not any("deployed per-layer" in n for n in r.notes)


def test_cli_report_and_json_show_the_kernel_gap(tmp_path):
    # the kernel gap needs both modes (--kernels deployed skips the exact simulation: tests/test_deployed_engine.py)
    a = qwb("analyze", "--demo", "--kernels", "both", "--no-remedies", "--no-isolated", "--json", tmp_path / "a.json")
    assert a.returncode == 0, a.stderr
    assert "k.gap" in a.stdout and "deployed 12 of 12 layers read from onnxruntime's fused kernels" in a.stdout
    d = json.loads((tmp_path / "a.json").read_text())
    assert [o["kernels"] for o in d["outputs"]] == ["exact", "deployed"]
    for lay in d["layers"]:
        assert {"sqnr_db", "kernel_gap_db", "lsb_diff_share"} <= set(lay["deployed"]), lay["node"]
    assert any("12 of 12 layers" in n for n in d["notes"])
    rep = qwb("report", "--demo", "-o", tmp_path / "r.html")
    assert rep.returncode == 0, rep.stderr
    html = (tmp_path / "r.html").read_text()
    assert html.count("kernel gap dB (deployed)") == 2  # worst layers and all layers
    md = qwb("report", "--demo", "-o", tmp_path / "r.md")
    assert md.returncode == 0 and "| kernel gap (deployed) |" in (tmp_path / "r.md").read_text()


def test_outputs_come_from_the_plain_session_when_the_tapped_graph_differs(demo):
    """Were the re-loaded graph ever to compute otherwise than the plain session, the output figures stay the plain
    session's and the note says the per-layer figures may not be what ships."""
    s, r, _ = demo
    fp32, int8 = s.prepared.load_proto(), onnx.load(r.int8_model)
    taps = DeployedLayerTaps(r.int8_model, int8, match(fp32, int8, set(op_types_for(s.recipe))))
    real = taps.plain

    class Shifted:  # the plain session, one unit off
        def run(self, names, feed):
            return [a + 1 for a in real.run(names, feed)]

    taps.plain = Shifted()
    try:
        feed = s.eval_data.batch(0, 8)
        got = taps.run(feed, taps.outputs)
        want = real.run(taps.outputs, feed)
        assert taps.identical is False and all(np.array_equal(g, w + 1) for g, w in zip(got, want))
        assert "differ from the plain deployed session's (max |diff| 1)" in taps.note()
    finally:
        taps.close()


def test_a_graph_that_cannot_be_read_back_leaves_the_deployed_outputs(monkeypatch):
    """The per-layer view is extra: if onnxruntime's optimized graph cannot be re-loaded, the deployed output
    figures come from a plain session and a note says why the layers have none."""
    import workbench.analysis as wa

    def broken(*a, **k):
        raise RuntimeError("cannot load the optimized graph")

    monkeypatch.setattr(wa, "DeployedLayerTaps", broken)
    s = Session(resources.DEMO_MODEL, resources.DEMO_CALIB, resources.DEMO_EVAL)
    r = analyze(s, samples=32, isolated=False)
    assert [o.kernels for o in r.outputs] == ["exact", "deployed"]
    assert all(lay.deployed is None for lay in r.layers)
    assert any("deployed per-layer figures unavailable" in n and "cannot load" in n for n in r.notes)
