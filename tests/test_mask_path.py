"""Attention masks (-inf, -1e9, finfo.min, -1e4 found in the graph, -1e4 fed as a float input): counted in calibration,
kept in float by default, named in every output.

The model (tests.models.masked_attention) is one attention head with the padding mask built in the graph as
exporters write it. In FP32 padded positions get attention weight exactly 0 and are multiplied by 0 when
pooled, so the output does not depend on x at padded positions at all.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from analyzers.calibration.compact import CompactHistograms
from backends.runner import SessionConfig, build_session
from tests.cli_util import qwb
from tests.models import masked_attention, masked_attention_data, save, save_npz
from workbench.analysis import analyze
from workbench.errors import RecipeError
from workbench.recipe import Recipe
from workbench.report import build_report, render_html, render_markdown
from workbench.session import Session

MASK_NODES = {"ninf": ["bias.Where", "scores.Add", "attn.Softmax"], "finfo": ["bias.Mul", "scores.Add", "attn.Softmax"],
              "neg1e9": ["bias.Where", "scores.Add", "attn.Softmax"], "neg1e4": ["bias.Mul", "scores.Add", "attn.Softmax"],
              "float_neg1e4": ["scores.Add", "attn.Softmax"]}
# With the mask path in float, a padded position has attention weight exactly 0, which quantizes exactly to
# the zero point (0 is always on the grid), and is pooled with weight exactly 0: nothing of x at padded
# positions can reach y through any integer kernel, so y must not move at all. 1e-6 leaves room only for
# float summation order, and is far below what the same quantization without the float path moves (> 0.05).
PAD_TOLERANCE = 1e-6


def _strict(text: str):
    """json.loads that refuses NaN and Infinity (what other parsers do)."""
    def bad(token):
        raise ValueError(f"non-standard JSON token {token}")
    return json.loads(text, parse_constant=bad)


@pytest.fixture(params=["ninf", "finfo", "neg1e9", "neg1e4", "float_neg1e4"])
def case(request, tmp_path):
    data = masked_attention_data(float_bias=request.param == "float_neg1e4")
    model = save(masked_attention(request.param), tmp_path / f"{request.param}.onnx")
    return request.param, model, save_npz(tmp_path / "data.npz", **data), data


def _session(model, data_path, handling: str | None = None) -> Session:
    r = Recipe()
    if handling:
        r.settings.mask_handling = handling
    return Session(model, data_path, recipe=r)


def test_calibration_counts_the_mask_values_exactly(case):
    kind, model, data_path, data = case
    s = _session(model, data_path)
    cal = s.calibration()
    pads = int((data["mask"] == 0).sum())
    t = data["mask"].shape[1]
    bias, masked = cal.histograms["bias"], cal.histograms["masked"]
    if kind == "ninf":
        assert (bias.special.neginf, masked.special.neginf) == (pads, pads * t)
        assert bias.data_min == -np.inf and masked.data_min == -np.inf
    elif kind == "finfo":
        assert (bias.special.huge_neg, masked.special.huge_neg) == (pads, pads * t)
        assert bias.data_min == masked.data_min == float(np.finfo(np.float32).min)
        assert bias.special.neginf == 0
    else:  # -1e9 (a mask magnitude) or -1e4 (a mask constant found in the graph), and the scores it is added to
        c = -1e9 if kind == "neg1e9" else -1e4
        assert (bias.special.huge_neg, masked.special.huge_neg) == (pads, pads * t)
        assert bias.data_min == c and c - 100 < masked.data_min < c + 100  # scores are within +-40
        assert bias.special.neginf == 0
    # the range statistics are those of the ordinary values only
    assert (bias.count, bias.min, bias.max) == (data["mask"].sum(), 0.0, 0.0)
    assert masked.count == data["mask"].size * t - pads * t and -100 < masked.min < masked.max < 100
    assert np.isfinite([masked.sum, masked.sum_sq]).all()
    for h in cal.histograms.values():
        assert h.special.nan == 0
    # the counts survive the trip to the GUI and the on-disk cache
    assert CompactHistograms.pack(cal.histograms)["masked"].special == masked.special
    again = _session(model, data_path)
    assert again.calibration().histograms["masked"].special == masked.special and again.calibration_from_cache


def _run(path, feed) -> np.ndarray:
    sess = build_session(SessionConfig.for_purpose("deployed", str(path), threads=1))
    return sess.run(None, feed)[0]


def _repadded(data: dict) -> dict:
    x = data["x"].copy()
    pad = data["mask"] == 0
    x[pad] = np.random.default_rng(5).standard_normal((int(pad.sum()), x.shape[2])).astype(np.float32) * 3
    return {**data, "x": x}


def test_default_keeps_the_mask_path_in_float_and_the_analysis_is_finite(case):
    kind, model, data_path, data = case
    s = _session(model, data_path)
    q = s.quantize()
    assert q.mask_path.kept_float == MASK_NODES[kind] and set(MASK_NODES[kind]) <= set(q.excluded)
    quantized = {n.input[0] for n in onnx.load(str(q.path)).graph.node if n.op_type == "QuantizeLinear"}
    assert not quantized & {"bias", "masked"} and {"scores", "p"} <= quantized
    assert any("attention-mask path" in n and f"kept {len(MASK_NODES[kind])} nodes" in n for n in q.notes)

    r = analyze(s)
    out = r.outputs[0]
    assert out.sqnr_db > 25 and out.cosine > 0.99  # measured 33.0 dB, cosine 0.9998 (clamp: 2.0 dB, 0.68)
    for lay in r.layers:
        c = lay.cumulative
        assert np.isfinite(c.sqnr_db) or c.mse == 0, (lay.node, c)
        codes = [h.code for h in lay.hints]
        assert ("mask_path" in codes) == (lay.node in MASK_NODES[kind]), lay.node
        if lay.node in MASK_NODES[kind]:
            assert lay.precision == "fp32"
    assert r.layer("scores.Add").cumulative.sqnr_db > 25  # compared over the ordinary values
    d = _strict(json.dumps(r.to_dict()))
    assert any("attention-mask path" in n for n in d["notes"])

    before, after = _run(q.path, data), _run(q.path, _repadded(data))
    assert np.abs(after - before).max() <= PAD_TOLERANCE
    fp_before, fp_after = _run(s.prepared.path, data), _run(s.prepared.path, _repadded(data))
    assert np.abs(fp_after - fp_before).max() <= PAD_TOLERANCE


def test_clamp_quantizes_the_mask_path_and_says_what_it_costs(case):
    kind, model, data_path, data = case
    s = _session(model, data_path, "clamp")
    q = s.quantize()
    assert q.mask_path.kept_float == [] and not set(MASK_NODES[kind]) & set(q.excluded)
    assert any("saturate" in n for n in q.notes)
    before, after = _run(q.path, data), _run(q.path, _repadded(data))
    assert np.abs(after - before).max() > 0.05  # padded tokens get weight: the reason float is the default
    r = analyze(s, isolated=False)
    assert r.outputs[0].sqnr_db < 10
    assert "mask_path" in [h.code for h in r.layer("scores.Add").hints]


def test_a_layer_the_recipe_names_keeps_its_precision(case):
    kind, model, data_path, _ = case
    r = Recipe.loads('version = 1\n[layers."attn.Softmax"]\nprecision = "int8"\n')
    s = Session(model, data_path, recipe=r)
    q = s.quantize()
    assert q.mask_path.kept_float == [n for n in MASK_NODES[kind] if n != "attn.Softmax"]


def test_mask_handling_is_validated():
    with pytest.raises(RecipeError, match="mask_handling"):
        Recipe.loads('version = 1\n[global]\nmask_handling = "off"\n')
    assert Recipe.loads('version = 1\n[global]\nmask_handling = "clamp"\n').settings.mask_handling == "clamp"


def test_calib_prints_the_mask_and_writes_strict_json(case, tmp_path):
    kind, model, data_path, data = case
    out = tmp_path / "c.json"
    r = qwb("calib", model, "--calib", data_path, "--json", out)
    assert r.returncode == 0, r.stderr
    row = next(line for line in r.stdout.splitlines() if line.startswith("bias "))
    pads = int((data["mask"] == 0).sum())
    shown = {"ninf": f"-inf .. 0 (mask: {pads} -inf", "finfo": f"-3.403e+38 .. 0 (mask: {pads} values <= -3.403e+38",
             "neg1e9": f"-1e+09 .. 0 (mask: {pads} values <= -1e+09",
             "neg1e4": f"-1e+04 .. 0 (mask: {pads} values <= -1e+04",
             "float_neg1e4": f"-1e+04 .. 0 (mask: {pads} values <= -1e+04"}[kind]
    assert shown in row and "kept in float" in row and "0 .. 0 " not in row
    assert "note: attention-mask path holds mask values" in r.stdout
    d = _strict(out.read_text())
    t = next(t for t in d["tensors"] if t["name"] == "masked")
    key = "neginf" if kind == "ninf" else "huge_neg"
    assert t["special"][key] == pads * data["mask"].shape[1] and t["mask_handling"] == "float"
    assert d["mask_path"]["kept_float"] == MASK_NODES[kind] and d["notes"]


def test_report_names_the_mask_path(tmp_path):
    data = masked_attention_data()
    s = Session(save(masked_attention("ninf"), tmp_path / "m.onnx"), save_npz(tmp_path / "d.npz", **data))
    report = build_report(s, command=["qwb", "report", "m.onnx"])
    html, md = render_html(report), render_markdown(report)
    assert 'id="run-notes"' in html and "attention-mask path holds mask values" in html
    assert "bias.Where, scores.Add, attn.Softmax" in html
    assert "**Note** attention-mask path holds mask values" in md
