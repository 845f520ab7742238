"""Quantization through onnxruntime honours every recipe override, and Constant-held weights get quantized."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper

from tests.models import conv_net, conv_net_data, save, save_npz
from tests.zoo import build
from workbench.analysis import analyze
from workbench.recipe import Recipe
from workbench.session import Session


@pytest.fixture
def files(tmp_path):
    model = save(conv_net(), tmp_path / "m.onnx")
    data = save_npz(tmp_path / "calib.npz", **conv_net_data(24))
    return model, data


def _quantize(files, tmp_path, recipe=None, name="q.onnx"):
    s = Session(files[0], files[1], recipe=recipe or Recipe())
    res = s.quantize(tmp_path / name)
    return s, res, onnx.load(str(res.path))


def _q_nodes_on(model, tensor):
    return [n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == tensor]


def _zero_point_type(model, tensor):
    q = _q_nodes_on(model, tensor)
    assert q, f"no QuantizeLinear on {tensor}"
    inits = {i.name: i for i in model.graph.initializer}
    return inits[q[0].input[2]].data_type


def _scale(model, tensor):
    inits = {i.name: i for i in model.graph.initializer}
    return float(numpy_helper.to_array(inits[_q_nodes_on(model, tensor)[0].input[1]]))


def test_default_recipe_quantizes_every_conv(files, tmp_path):
    _, res, m = _quantize(files, tmp_path)
    convs = {n.name: n for n in m.graph.node if n.op_type in ("Conv", "Gemm")}
    for n in convs.values():
        assert n.input[1].endswith("_DequantizeLinear_Output"), n.name
    assert _zero_point_type(m, "r2") == TensorProto.UINT8
    assert res.path.exists()


def test_fp32_layer_has_no_qdq_on_weights_or_output(files, tmp_path):
    r = Recipe()
    r.set_precision("conv2", "fp32")
    _, res, m = _quantize(files, tmp_path, r)
    conv2 = next(n for n in m.graph.node if n.name == "conv2")
    assert conv2.input[1] == "w2"  # float weight straight from the initializer
    assert not _q_nodes_on(m, conv2.output[0])  # its output is not quantized
    assert {"w2"} <= {i.name for i in m.graph.initializer if i.data_type == TensorProto.FLOAT}
    conv3 = next(n for n in m.graph.node if n.name == "conv3")
    assert conv3.input[1].endswith("_DequantizeLinear_Output")  # neighbours stay INT8
    assert res.excluded == ["conv2"]


def test_int16_override_gives_16_bit_qdq(files, tmp_path):
    r = Recipe()
    r.set_precision("conv2", "int16")
    _, _, m = _quantize(files, tmp_path, r)
    assert _zero_point_type(m, "r2") == TensorProto.UINT16  # the layer's (fused) output
    assert _zero_point_type(m, "r1") == TensorProto.UINT16  # its input
    assert _zero_point_type(m, "r3") == TensorProto.UINT8  # untouched layer
    inits = {i.name: i for i in m.graph.initializer}
    assert inits["w2_quantized"].data_type == TensorProto.INT16
    assert inits["w3_quantized"].data_type == TensorProto.INT8


def test_per_layer_percentile_changes_only_that_scale(files, tmp_path):
    _, _, base = _quantize(files, tmp_path, name="base.onnx")
    r = Recipe()
    r.set_percentile("conv2", 99.0)
    _, res, m = _quantize(files, tmp_path, r, name="p.onnx")
    assert _scale(m, "r2") < 0.95 * _scale(base, "r2")
    assert _scale(m, "r3") == pytest.approx(_scale(base, "r3"))
    assert res.ranges["r2"].method == "percentile" and res.ranges["r2"].override_from == "conv2"


def test_global_method_changes_ranges_without_recalibrating(files, tmp_path):
    s = Session(files[0], files[1])
    base = s.quantize(tmp_path / "a.onnx")
    calib = s.calibration()
    r = Recipe()
    r.settings.calibration_method = "percentile"
    r.settings.percentile = 99.9
    q = s.quantize(tmp_path / "b.onnx", recipe=r)
    assert s.calibration() is calib  # same histograms, no second pass
    assert q.ranges["r1"].hi < base.ranges["r1"].hi


def test_constant_held_weights_are_quantized_and_shrink_the_file(tmp_path):
    model = conv_net(constant_weights=True, channels=32)
    path = save(model, tmp_path / "const.onnx")
    data = save_npz(tmp_path / "calib.npz", **conv_net_data(16))
    s = Session(path, data)
    res = s.quantize(tmp_path / "q.onnx")
    m = onnx.load(str(res.path))
    assert {"w1_quantized", "w2_quantized", "w3_quantized"} <= {i.name for i in m.graph.initializer}
    assert res.size_bytes < 0.5 * path.stat().st_size

    # what onnxruntime alone does with the same file: the weights silently stay float
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"x": x[None]} for x in np.load(data)["x"]])

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(path), str(tmp_path / "ort.onnx"), Reader(), quant_format=QuantFormat.QDQ)
    ort_model = onnx.load(str(tmp_path / "ort.onnx"))
    assert not any(i.name.endswith("_quantized") and i.name.startswith("w2") for i in ort_model.graph.initializer)
    assert res.size_bytes < (tmp_path / "ort.onnx").stat().st_size


def test_quantized_model_stays_close_to_float(files, tmp_path):
    import onnxruntime as ort

    _, res, _ = _quantize(files, tmp_path)
    x = np.load(files[1])["x"][:8]
    f = ort.InferenceSession(str(files[0])).run(None, {"x": x})[0]
    q = ort.InferenceSession(str(res.path)).run(None, {"x": x})[0]
    sqnr = 10 * np.log10((f**2).sum() / ((f - q) ** 2).sum())
    assert sqnr > 20


def test_fp32_layer_between_int8_neighbours_is_reported_as_requantized_by_ort(files, tmp_path):
    """onnxruntime's CPU optimizer quantizes a float Conv sandwiched by Q/DQ: we must say so, and it must be true."""
    import onnxruntime as ort

    r = Recipe()
    r.set_precision("conv2", "fp32")
    _, res, _ = _quantize(files, tmp_path, r)
    assert any("conv2" in n and "onnxruntime" in n for n in res.notes)
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(str(res.path), so, providers=["CPUExecutionProvider"])
    opt = onnx.load(str(tmp_path / "opt.onnx"))
    assert not any(n.op_type == "Conv" for n in opt.graph.node)  # every Conv became an integer kernel

    r.set_precision("conv3", "fp32")  # its consumer in float too: the pattern is broken
    _, res2, _ = _quantize(files, tmp_path, r, name="q2.onnx")
    assert not any("conv2" in n for n in res2.notes)


@pytest.mark.parametrize("weight_type, reduce_range, int16, fp32", [
    ("s8", False, None, None), ("u8", False, None, None), ("s8", True, None, None),
    ("s8", False, "conv2", "conv3"), ("s16", False, None, None),
])
def test_precomputed_weight_scales_give_onnxruntimes_own_model(files, tmp_path, monkeypatch, weight_type,
                                                                reduce_range, int16, fp32):
    """Per-channel weight scales we hand to onnxruntime must produce exactly the model it would make alone."""
    import workbench.quantize as q

    r = Recipe()
    r.settings.weight_type = weight_type
    r.settings.reduce_range = reduce_range
    if int16:
        r.set_precision(int16, "int16")
    if fp32:
        r.set_precision(fp32, "fp32")
    s = Session(files[0], files[1], recipe=r)
    assert q.weight_scale_overrides(s.prepared, r, set())  # the fast path is really taken
    ours = onnx.load(str(s.quantize(tmp_path / "ours.onnx").path))
    monkeypatch.setattr(q, "weight_scale_overrides", lambda *a, **k: {})
    theirs = onnx.load(str(s.quantize(tmp_path / "theirs.onnx").path))
    a = {i.name: numpy_helper.to_array(i) for i in ours.graph.initializer}
    b = {i.name: numpy_helper.to_array(i) for i in theirs.graph.initializer}
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k
    assert [(n.op_type, list(n.input), list(n.output)) for n in ours.graph.node] == \
        [(n.op_type, list(n.input), list(n.output)) for n in theirs.graph.node]


def test_layers_inside_if_and_loop_are_named_as_kept_in_float(tmp_path):
    """onnxruntime's quantizer skips subgraphs: the user is told which layers stay in float, and the
    analysis (whose weight folding must keep the initializers only subgraphs read) runs."""
    p = build("control_flow_op13")
    s = Session(str(p.model), str(p.calib), str(p.eval))
    q = s.quantize(tmp_path / "q.onnx", check=True)
    note = next(n for n in q.notes if "subgraphs" in n)
    assert "loop/MatMul" in note or "MatMul" in note
    r = analyze(s)
    assert r.layers and all(math.isfinite(lay.cumulative.sqnr_db) for lay in r.layers if lay.cumulative.mse > 0)


def test_default_path_quantizes_once_per_recipe_until_the_file_changes(files, tmp_path, monkeypatch):
    import workbench.session as session_mod

    monkeypatch.setenv("QWB_CACHE_DIR", str(tmp_path / "cache"))
    calls = []
    real = session_mod.quantize
    monkeypatch.setattr(session_mod, "quantize", lambda *a, **k: calls.append(a[1].dumps()) or real(*a, **k))
    s = Session(files[0], files[1])
    first = s.quantize()
    assert s.quantize() is first and len(calls) == 1  # same recipe, untouched file: reused
    other = Recipe()
    other.settings.percentile = 99.9
    other.settings.calibration_method = "percentile"
    assert s.quantize(recipe=other).path != first.path and len(calls) == 2  # another recipe: quantized
    assert s.quantize(check=True) is not first and len(calls) == 3  # a check not yet run: quantized again
    assert s.quantize() is not None and len(calls) == 3  # the checked result serves an unchecked request
    p = first.path
    onnx.save(onnx.load(str(p)), str(p))  # the user (or another process) rewrote the file
    import os
    os.utime(p, ns=(1, 1))
    s.quantize()
    assert len(calls) == 4
    s.quantize(tmp_path / "explicit.onnx")  # an explicit path is always written
    assert len(calls) == 5
