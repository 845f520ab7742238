"""``qwb analyze``: the table, and the JSON fields that are a public contract."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort

from tests.cli_util import qwb


def test_analyze_demo_json_contract(tmp_path):
    out = tmp_path / "a.json"
    r = qwb("analyze", "--demo", "--json", out, "--samples", "100")
    assert r.returncode == 0, r.stderr
    assert "worst" in r.stdout or "ranked by isolated" in r.stdout
    d = json.loads(out.read_text())
    for key in ("model", "recipe", "samples", "elapsed_s", "peak_rss_mb", "outputs", "layers"):
        assert key in d
    assert d["samples"] == 100
    o = d["outputs"][0]
    assert set(o) >= {"name", "sqnr_db", "cosine", "top1_agreement", "accuracy_fp32", "accuracy_int8"}
    assert 0.9 < o["accuracy_fp32"] <= 1 and 0.9 < o["top1_agreement"] <= 1
    lay = d["layers"][0]
    assert set(lay) >= {"node", "op_type", "output", "precision", "cumulative", "isolated", "weight",
                        "amplification", "flagged", "hints"}
    assert set(lay["cumulative"]) >= {"sqnr_db", "channel_sqnr_mean", "channel_sqnr_min", "mse", "cosine", "max_abs"}
    assert set(lay["isolated"]) == set(lay["cumulative"])
    assert lay["weight"]["sqnr_db"] > 20
    assert any(lay["flagged"] for lay in d["layers"]) and all(lay["hints"] for lay in d["layers"] if lay["flagged"])


def test_json_output_names_recompute_to_the_same_sqnr(tmp_path):
    """What an independent check does: FP32 tensor by the JSON's `output` name vs the INT8 model's tensor."""
    import onnx
    from onnx.utils import Extractor

    import resources

    out = tmp_path / "a.json"
    assert qwb("analyze", "--demo", "--json", out, "--samples", "64").returncode == 0
    d = json.loads(out.read_text())
    x = np.load(resources.DEMO_EVAL)["image"][:64]
    fp32 = onnx.load(str(resources.DEMO_MODEL))
    int8 = onnx.load(d["int8_model"])
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    for lay in d["layers"]:
        f = ort.InferenceSession(Extractor(fp32).extract_model(["image"], [lay["output"]]).SerializeToString())
        q = ort.InferenceSession(Extractor(int8).extract_model(["image"], [lay["int8_tensor"]]).SerializeToString(), so)
        a = f.run(None, {"image": x})[0].astype(np.float64)
        b = q.run(None, {"image": x})[0].astype(np.float64)
        sqnr = 10 * np.log10((a**2).sum() / ((a - b) ** 2).sum())
        assert abs(sqnr - lay["cumulative"]["sqnr_db"]) < 0.01, lay["node"]


def test_analyze_bad_samples_value(tmp_path):
    r = qwb("analyze", "--demo", "--samples", "0")
    assert r.returncode == 2 and "--samples" in r.stderr and "Traceback" not in r.stderr
