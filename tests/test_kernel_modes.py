"""The two execution modes of the output figures: ``exact`` (Q/DQ as written) and ``deployed`` (onnxruntime with
full optimizations on this machine). Every reference is computed here, on the machine running the test, with a
plain onnxruntime session: deployed integer kernels give other numbers on CPUs with and without VNNI."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import onnxruntime as ort
import pytest

import resources
from analyzers.diff_types import AnalysisResult, OutputResult
from analyzers.model_hints import kernel_gap, saturation_hint
from tests.cli_util import qwb
from tests.models import conv_net, conv_net_data, save, save_npz
from workbench.analysis import analyze
from workbench.compare import compare_runs
from workbench.session import Session

LEVELS = {"exact": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "deployed": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}


def _plain_outputs(path: str, feed: dict, level) -> np.ndarray:
    so = ort.SessionOptions()
    so.graph_optimization_level = level
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return s.run(None, {i.name: feed[i.name] for i in s.get_inputs()})[0]


def _reference(fp32_path, int8_path, feed: dict, labels: np.ndarray, mode: str) -> dict:
    """Classifier figures of a plain onnxruntime session pair: FP32 with default optimizations, INT8 in ``mode``."""
    x = _plain_outputs(fp32_path, feed, LEVELS["deployed"]).astype(np.float64)
    y = _plain_outputs(int8_path, feed, LEVELS[mode]).astype(np.float64)
    px, py = x.argmax(1), y.argmax(1)
    return {"top1_agreement": float((px == py).mean()), "accuracy_fp32": float((px == labels).mean()),
            "accuracy_int8": float((py == labels).mean()),
            "sqnr_db": 10 * math.log10((x * x).sum() / ((x - y) ** 2).sum())}


def _check(r: AnalysisResult, session: Session, feed: dict, labels: np.ndarray) -> None:
    assert [o.kernels for o in r.outputs] == ["exact", "deployed"]  # both by default, exact first
    for o in r.outputs:
        want = _reference(session.prepared.path, r.int8_model, feed, labels, o.kernels)
        for k in ("top1_agreement", "accuracy_fp32", "accuracy_int8"):
            assert getattr(o, k) == pytest.approx(want[k], abs=1e-12), (o.kernels, k)
        assert o.sqnr_db == pytest.approx(want["sqnr_db"], abs=0.01), o.kernels


@pytest.mark.kernels
def test_demo_figures_equal_plain_sessions_per_mode():
    s = Session(resources.DEMO_MODEL, resources.DEMO_CALIB, resources.DEMO_EVAL)
    n = 160
    r = analyze(s, samples=n, isolated=False)
    feed = s.eval_data.batch(0, n)
    _check(r, s, feed, s.eval_data.labels[:n])


@pytest.mark.kernels
def test_tiny_model_figures_equal_plain_sessions_per_mode(tmp_path):
    data = conv_net_data(48)
    s = Session(save(conv_net(), tmp_path / "m.onnx"), save_npz(tmp_path / "d.npz", **data))
    r = analyze(s, isolated=False)
    _check(r, s, {"x": data["x"]}, data["labels"])


@pytest.mark.kernels
def test_quantize_analyze_and_report_print_the_same_figure_per_mode(tmp_path):
    q = qwb("quantize", "--demo", "-o", tmp_path / "q.onnx")
    a = qwb("analyze", "--demo", "--no-isolated", "--json", tmp_path / "a.json")
    rep = qwb("report", "--demo", "-o", tmp_path / "r.html")
    for p in (q, a, rep):
        assert p.returncode == 0, p.stderr
    line = next(x for x in q.stdout.splitlines() if x.startswith("accuracy"))
    assert "(deployed kernels: onnxruntime, full optimizations, this CPU: " in line
    fp32, int8 = (float(v) / 100 for v in re.findall(r"(?:FP32|INT8) ([\d.]+)%", line))
    d = json.loads((tmp_path / "a.json").read_text())
    dep = next(o for o in d["outputs"] if o["kernels"] == "deployed")
    assert f"{dep['accuracy_fp32']:.2%}" == f"{fp32:.2%}" and f"{dep['accuracy_int8']:.2%}" == f"{int8:.2%}"
    assert f"output   logits (classifier, deployed): top-1 agreement {dep['top1_agreement']:.1%}" in a.stdout
    ex = next(o for o in d["outputs"] if o["kernels"] == "exact")
    assert f"output   logits (classifier, exact): top-1 agreement {ex['top1_agreement']:.1%}" in a.stdout
    # the report prints one accuracy line per mode, the deployed one as quantize does
    lines = [x for x in rep.stdout.splitlines() if x.startswith("accuracy")]
    assert len(lines) == 2 and "(exact kernels: " in lines[0] and "(deployed kernels: " in lines[1]
    assert lines[1].split("  (")[0] == line.split("  (")[0]
    assert f"INT8 {ex['accuracy_int8']:.2%}" in lines[0]


def test_kernels_option_picks_the_modes(tmp_path):
    for mode, want in (("exact", ["exact"]), ("deployed", ["deployed"])):
        r = qwb("analyze", "--demo", "--no-isolated", "--samples", "32", "--kernels", mode, "--json", tmp_path / "a.json")
        assert r.returncode == 0, r.stderr
        d = json.loads((tmp_path / "a.json").read_text())
        assert d["kernels"] == mode and [o["kernels"] for o in d["outputs"]] == want
        # per-layer deployed figures only where deployed kernels ran (tests/test_deployed_layers.py checks them)
        assert all((lay["deployed"] is None) == (mode == "exact") for lay in d["layers"])
        assert f"kernels  {mode} kernels: " in r.stdout


def _out(name, kernels, top1, sqnr=30.0) -> OutputResult:
    return OutputResult(name, sqnr, 0.99, top1, 0.9, top1, kind="classifier", kernels=kernels)


def test_json_round_trip_keeps_modes_and_old_files_read_as_exact():
    r = AnalysisResult("m", {}, 4, 1.0, 10.0, [_out("y", "exact", 0.75), _out("y", "deployed", 0.5)], [],
                       kernels="both")
    d = json.loads(json.dumps(r.to_dict()))
    assert [o["kernels"] for o in d["outputs"]] == ["exact", "deployed"] and d["kernels"] == "both"
    back = AnalysisResult.from_dict(d)
    assert back.outputs == r.outputs and back.kernels == "both"
    assert back.outputs_of("deployed") == [r.outputs[1]]
    for o in d["outputs"]:
        del o["kernels"]
    del d["kernels"]
    old = AnalysisResult.from_dict(d)
    assert [o.kernels for o in old.outputs] == ["exact", "exact"] and old.kernels == "exact"


def test_before_after_matches_outputs_by_name_and_mode():
    before = AnalysisResult("m", {}, 4, 1.0, 10.0, [_out("y", "exact", 0.75), _out("y", "deployed", 0.5)], [])
    after = AnalysisResult("m", {}, 4, 1.0, 10.0, [_out("y", "exact", 1.0), _out("y", "deployed", 0.25)], [])
    c = compare_runs(before, after)
    assert [(o.name, o.kernels, o.top1_before, o.top1_after) for o in c.outputs] == [
        ("y", "exact", 0.75, 1.0), ("y", "deployed", 0.5, 0.25)]


def test_saturation_hint_only_where_the_kernels_saturate_and_the_modes_differ():
    exact, same, worse = [_out("y", "exact", 0.75)], [_out("y", "deployed", 0.75)], [_out("y", "deployed", 0.44)]
    assert kernel_gap(exact, worse) == ["y"] and kernel_gap(exact, same) == []
    assert kernel_gap(exact, [_out("y", "deployed", 0.75, sqnr=25.0)]) == ["y"]  # SQNR past the noise
    assert saturation_hint(exact, worse, saturates=False) is None
    assert saturation_hint(exact, same, saturates=True) is None
    h = saturation_hint(exact, worse, saturates=True)
    assert h.code == "kernel_saturation" and "VPMADDUBSW" in h.message
    assert "reduce_range = true" in h.suggestion and "session.x64quantprecision" in h.suggestion
