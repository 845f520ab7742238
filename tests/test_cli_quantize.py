"""``qwb quantize`` end to end, and the one-line errors users get for bad input."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tests.cli_util import qwb
from tests.models import conv_net, conv_net_data, save, save_npz
from workbench import quantize as q
from workbench.errors import WorkbenchError
from workbench.session import Session


def test_quantize_demo_reports_fp32_and_int8_accuracy(tmp_path):
    out = tmp_path / "demo_int8.onnx"
    r = qwb("quantize", "--demo", "-o", out)
    assert r.returncode == 0, r.stderr
    m = onnx.load(str(out))
    assert any(n.op_type == "QuantizeLinear" for n in m.graph.node)
    line = next(l for l in r.stdout.splitlines() if l.startswith("accuracy"))
    fp32 = float(line.split("FP32 ")[1].split("%")[0])
    int8 = float(line.split("INT8 ")[1].split("%")[0])
    assert fp32 > 90 and abs(fp32 - int8) < 3


@pytest.fixture
def good(tmp_path):
    return save(conv_net(), tmp_path / "m.onnx"), save_npz(tmp_path / "d.npz", **conv_net_data(8))


def _assert_clean_error(r, *fragments):
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith("error: ")
    for f in fragments:
        assert f in r.stderr, r.stderr


def test_corrupt_model(tmp_path, good):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage" * 10)
    _assert_clean_error(qwb("quantize", bad, "--calib", good[1], "-o", tmp_path / "o.onnx"), str(bad), "ONNX")


def test_not_an_onnx_file(tmp_path, good):
    _assert_clean_error(qwb("quantize", good[1], "--calib", good[1], "-o", tmp_path / "o.onnx"), str(good[1]))


def test_data_names_mismatch(tmp_path, good):
    p = save_npz(tmp_path / "wrong.npz", input=np.zeros((2, 3, 8, 8), np.float32))
    _assert_clean_error(qwb("quantize", good[0], "--calib", p, "-o", tmp_path / "o.onnx"), str(p), "'x'", "fix:")


def test_data_shape_mismatch(tmp_path, good):
    p = save_npz(tmp_path / "shape.npz", x=np.zeros((2, 3, 16, 16), np.float32))
    _assert_clean_error(qwb("quantize", good[0], "--calib", p, "-o", tmp_path / "o.onnx"), "16 vs 8")


def test_data_dtype_mismatch(tmp_path, good):
    p = save_npz(tmp_path / "dtype.npz", x=np.zeros((2, 3, 8, 8), np.int64))
    _assert_clean_error(qwb("quantize", good[0], "--calib", p, "-o", tmp_path / "o.onnx"), "int64", "float32")


def test_empty_data(tmp_path, good):
    p = save_npz(tmp_path / "empty.npz", x=np.zeros((0, 3, 8, 8), np.float32))
    _assert_clean_error(qwb("quantize", good[0], "--calib", p, "-o", tmp_path / "o.onnx"), "no samples")


def test_recipe_with_unknown_layers(tmp_path, good):
    rec = tmp_path / "r.toml"
    rec.write_text('version = 1\n[layers.conv2x]\nprecision = "fp32"\n')
    _assert_clean_error(qwb("quantize", good[0], "--calib", good[1], "--recipe", rec, "-o", tmp_path / "o.onnx"),
                        "conv2x", "did you mean 'conv2'")


def test_missing_calib(tmp_path, good):
    _assert_clean_error(qwb("quantize", good[0], "-o", tmp_path / "o.onnx"), "--calib")


def test_debug_shows_traceback(tmp_path, good):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"nope")
    r = qwb("--debug", "quantize", bad, "--calib", good[1], "-o", tmp_path / "o.onnx")
    assert r.returncode != 0 and "Traceback" in r.stderr


def _opset(model, version):
    model.opset_import[0].version = version
    return model


def test_opset_12_with_per_channel_weights_is_upgraded_and_runs(tmp_path):
    """DequantizeLinear's axis needs opset 13: the written model must load, not merely be written."""
    model = save(_opset(conv_net(), 12), tmp_path / "m12.onnx")
    data = save_npz(tmp_path / "d.npz", **conv_net_data(8))
    out = tmp_path / "o.onnx"
    r = qwb("quantize", model, "--calib", data, "-o", out, "--no-eval", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "upgraded to opset 13" in r.stdout and "onnxruntime loads it and ran a sample" in r.stdout
    m = onnx.load(str(out))
    assert m.opset_import[0].version == 13
    assert any(a.name == "axis" for n in m.graph.node if n.op_type == "DequantizeLinear" for a in n.attribute)
    ort.InferenceSession(str(out)).run(None, {"x": conv_net_data(2)["x"]})
    # and nothing was left behind where the user ran the command, or beside the model
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npz", "m12.onnx", "o.onnx"]


def test_a_model_onnxruntime_cannot_run_is_not_written(tmp_path, good, monkeypatch):
    s = Session(str(good[0]), str(good[1]))
    out = tmp_path / "o.onnx"
    # stand in for an onnxruntime quantizer bug: the written graph references a tensor nobody produces
    real = q._annotate_shapes

    def break_it(path):
        real(path)
        m = onnx.load(str(path))
        m.graph.node[-1].input[0] = "nobody_makes_this"
        onnx.save(m, str(path))

    monkeypatch.setattr(q, "_annotate_shapes", break_it)
    with pytest.raises(WorkbenchError, match="does not run in onnxruntime, so it was not written"):
        s.quantize(out, check=True)
    assert not out.exists()
