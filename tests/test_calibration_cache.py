"""Histograms are cached by model and data content; ranges for any recipe come from them without a model run."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import workbench.calibration_cache as calibrate_mod
from tests.models import conv_net, conv_net_data, save, save_npz
from workbench.calibration_cache import batch_size_for, cache_path, calibrate
from workbench.recipe import Recipe
from workbench.session import Session


@pytest.fixture
def files(tmp_path):
    return save(conv_net(), tmp_path / "m.onnx"), save_npz(tmp_path / "d.npz", **conv_net_data(16))


@pytest.fixture
def runs(monkeypatch):
    """Counts real calibration passes (the model runs), however calibration is reached."""
    calls = []
    real = calibrate_mod.collect

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(calibrate_mod, "collect", counting)
    return calls


def _forbid_model_runs(monkeypatch):
    def fail(*a, **k):
        raise AssertionError("the model was run again")

    monkeypatch.setattr(calibrate_mod, "collect", fail)


def test_cache_is_reused_on_reopen(cache_dir, files, runs):
    a = Session(*files).calibration()
    s2 = Session(*files)
    b = s2.calibration()
    assert len(runs) == 1 and s2.calibration_from_cache
    assert a.histograms.keys() == b.histograms.keys()
    for name in a.histograms:
        np.testing.assert_array_equal(a.histograms[name].counts, b.histograms[name].counts)
        np.testing.assert_array_equal(a.histograms[name].edges, b.histograms[name].edges)
        assert (a.histograms[name].min, a.histograms[name].max, a.histograms[name].zeros) == \
            (b.histograms[name].min, b.histograms[name].max, b.histograms[name].zeros)
    assert b.samples == 16 and b.weights.keys() == a.weights.keys()


def test_cache_is_invalidated_when_the_data_changes(cache_dir, files, runs, tmp_path):
    Session(*files).calibration()
    d = conv_net_data(16)
    d["x"][3] *= 2.0
    changed = save_npz(tmp_path / "d.npz", **d)  # same path, new content
    s = Session(files[0], changed)
    cal = s.calibration()
    assert len(runs) == 2 and not s.calibration_from_cache
    assert cal.histograms["x"].max == pytest.approx(float(d["x"].max()))


def test_cache_is_invalidated_when_the_model_changes(cache_dir, files, runs, tmp_path):
    Session(*files).calibration()
    m = onnx.load(str(files[0]))
    w = next(i for i in m.graph.initializer if i.name == "w2")
    w.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(w) * 1.5, "w2"))
    save(m, files[0])  # same path, new weights
    s = Session(*files)
    s.calibration()
    assert len(runs) == 2 and not s.calibration_from_cache


def test_damaged_cache_file_is_rebuilt(cache_dir, files, runs):
    s = Session(*files)
    s.calibration()
    path = cache_path(s.prepared, s.calib_data, list(s.calibration().histograms), 4096)
    assert path.exists()
    path.write_bytes(b"not an npz")
    s2 = Session(*files)
    s2.calibration()
    assert len(runs) == 2 and not s2.calibration_from_cache


def _scale(model, tensor):
    inits = {i.name: i for i in model.graph.initializer}
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == tensor)
    return float(numpy_helper.to_array(inits[q.input[1]]))


def test_percentile_changes_requantize_without_running_the_model(cache_dir, files, tmp_path, monkeypatch):
    s = Session(*files)
    base = onnx.load(str(s.quantize(tmp_path / "base.onnx").path))
    _forbid_model_runs(monkeypatch)
    # global: every activation range moves
    g = Recipe()
    g.settings.calibration_method = "percentile"
    g.settings.percentile = 99.0
    glob = onnx.load(str(s.quantize(tmp_path / "g.onnx", recipe=g).path))
    for t in ("r1", "r2", "r3"):
        assert _scale(glob, t) < 0.98 * _scale(base, t), t
    # per layer: only that layer's output range moves
    per = Recipe()
    per.set_percentile("conv2", 99.0)
    layer = onnx.load(str(s.quantize(tmp_path / "l.onnx", recipe=per).path))
    assert _scale(layer, "r2") == pytest.approx(_scale(glob, "r2"))
    assert _scale(layer, "r1") == pytest.approx(_scale(base, "r1"))
    assert _scale(layer, "r3") == pytest.approx(_scale(base, "r3"))
    # and after reopening the project, from the disk cache
    s2 = Session(*files, recipe=per)
    again = onnx.load(str(s2.quantize(tmp_path / "again.onnx").path))
    assert s2.calibration_from_cache and _scale(again, "r2") == pytest.approx(_scale(layer, "r2"))


def test_batch_size_keeps_one_batch_of_tensors_within_budget(files):
    s = Session(*files)
    tensors = list(s.calibration(complete=True).histograms)
    per_sample = 4 * (3 * 64 + 6 * 8 * 64 + 8 + 8 + 10)  # x, c/r 1..3 (8x8x8 each), gap, flat, y
    assert batch_size_for(s.prepared, tensors, budget=10 * per_sample) == 10
    assert batch_size_for(s.prepared, tensors, budget=1) == 1
    assert batch_size_for(s.prepared, tensors) == calibrate_mod.MAX_BATCH


def test_calibrate_without_cache_always_collects(cache_dir, files, runs):
    s = Session(*files)
    calibrate(s.prepared, s.calib_data, s.recipe, use_cache=False)
    calibrate(s.prepared, s.calib_data, s.recipe, use_cache=False)
    assert len(runs) == 2


def test_saved_histograms_read_back_exactly_and_compressed(tmp_path):
    import zipfile

    from analyzers.calibration.histogram import StreamingHistogram

    rng = np.random.default_rng(3)
    hists = {}
    masked = np.concatenate([rng.standard_normal(300), [np.nan, -np.inf, np.finfo(np.float32).min]])
    for name, values in {"relu": np.maximum(rng.standard_normal(5000), 0).astype(np.float32),
                         "masked": masked.astype(np.float32)}.items():
        h = StreamingHistogram(256)
        h.update(values)
        hists[name] = h.snapshot()
    path = tmp_path / "h.npz"
    calibrate_mod.save_histograms(path, hists, 7, {"x": 2})
    back, samples = calibrate_mod.load_histograms(path)
    assert samples == 7 and list(back) == list(hists)
    for name, h in hists.items():
        b = back[name]
        np.testing.assert_array_equal(b.counts, h.counts)
        np.testing.assert_array_equal(b.edges, h.edges)
        assert (b.min, b.max, b.count, b.zeros, b.sum, b.sum_sq, b.special) == \
            (h.min, h.max, h.count, h.zeros, h.sum, h.sum_sq, h.special)
    assert back["masked"].special.nan == 1 and back["relu"].zeros > 1000
    with zipfile.ZipFile(path) as zf:
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in zf.infolist())
        assert zf.getinfo("counts.npy").compress_size < zf.getinfo("counts.npy").file_size / 2


def _clip_chain_net():
    """conv_net with conv1 -> Clip(-1, 6) -> Relu: the Clip's output, itself fused into the Relu, has a range of its
    own (negative values) that onnxruntime gives conv1's output."""
    m = conv_net()
    g = m.graph
    relu1 = next(n for n in g.node if n.name == "relu1")
    relu1.input[0] = "k1"
    at = list(g.node).index(relu1)
    lo, hi = (numpy_helper.from_array(np.array(v, np.float32), n) for v, n in ((-1.0, "lo"), (6.0, "hi")))
    g.initializer.extend([lo, hi])
    g.node.insert(at, onnx.helper.make_node("Clip", ["c1", "lo", "hi"], ["k1"], name="clip1"))
    return m


def test_lean_calibration_leaves_out_what_onnxruntime_replaces_and_quantizes_the_same(cache_dir, tmp_path, runs):
    files = save(_clip_chain_net(), tmp_path / "m.onnx"), save_npz(tmp_path / "d.npz", **conv_net_data(16))
    lean = Session(*files)
    cal = lean.calibration()
    # each Conv output feeding only a quantized Relu/Clip takes that activation's range; the Clip's own output stays
    assert cal.fused_away == {"c1": ("clip1", "k1"), "c2": ("relu2", "r2"), "c3": ("relu3", "r3")}
    assert "k1" in cal.histograms and not set(cal.fused_away) & set(cal.histograms)
    assert cal.histograms["k1"].min < 0 <= cal.histograms["r1"].min  # the two ranges differ: the test can tell
    a = lean.quantize(tmp_path / "lean.onnx")
    full = Session(*files)
    complete = full.calibration(complete=True)
    assert not complete.fused_away and {"c1", "c2", "c3"} <= set(complete.histograms) and len(runs) == 2
    b = full.quantize(tmp_path / "complete.onnx")
    assert a.path.read_bytes() == b.path.read_bytes()


def test_a_recipe_keeping_an_activation_in_float_completes_the_calibration_once(cache_dir, tmp_path, runs):
    files = save(conv_net(), tmp_path / "m.onnx"), save_npz(tmp_path / "d.npz", **conv_net_data(16))
    r = Recipe()
    r.set_precision("relu2", "fp32")  # conv2's output is quantized alone now: its own range counts
    s = Session(*files)
    cal = s.calibration()
    assert "c2" in cal.fused_away and len(runs) == 1
    a = s.quantize(tmp_path / "a.onnx", recipe=r)
    assert s.calibration() is cal and not cal.fused_away and "c2" in cal.histograms and len(runs) == 2
    fresh = Session(*files, recipe=r)  # both parts cached: no model run, and the same model
    assert not fresh.calibration().fused_away and len(runs) == 2 and fresh.calibration_from_cache
    b = fresh.quantize(tmp_path / "b.onnx")
    assert a.path.read_bytes() == b.path.read_bytes()
    q = onnx.load(str(a.path))
    scale = {n.input[0]: n.input[1] for n in q.graph.node if n.op_type == "QuantizeLinear"}
    inits = {i.name: numpy_helper.to_array(i) for i in q.graph.initializer}
    lo, hi = cal.histograms["c2"].min, cal.histograms["c2"].max
    assert float(inits[scale["c2"]]) == pytest.approx((max(hi, 0) - min(lo, 0)) / 255, rel=1e-6)


def test_an_activation_the_mask_path_keeps_in_float_completes_the_calibration_while_quantizing(
        cache_dir, tmp_path, runs, monkeypatch):
    """The mask path's exclusions are known only inside quantize (they depend on the histograms): a left-out input
    they need is collected then, and the model is the one a complete calibration gives."""
    import workbench.quantize as quantize_mod
    from workbench.mask_path import MaskPath
    from workbench.recipe_ranges import CalibrationIncomplete, tensor_ranges

    files = save(conv_net(), tmp_path / "m.onnx"), save_npz(tmp_path / "d.npz", **conv_net_data(16))
    s = Session(*files)
    cal = s.calibration()
    kept = Recipe()
    kept.set_precision("relu2", "fp32")
    with pytest.raises(CalibrationIncomplete, match="c2"):
        tensor_ranges(s.graph, kept, cal)
    monkeypatch.setattr(quantize_mod, "find_mask_path",
                        lambda graph, recipe, calib, limits=None: MaskPath("float", kept_float=["relu2"]))
    a = s.quantize(tmp_path / "a.onnx")
    assert "c2" in cal.histograms and not cal.fused_away and len(runs) == 2
    b = Session(*files, recipe=kept).quantize(tmp_path / "b.onnx")
    assert a.path.read_bytes() == b.path.read_bytes()
