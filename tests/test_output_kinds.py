"""Output metrics by model kind, on real computations: each hand-built model's kind is detected from its
producer, and its figures match a numpy recomputation from the FP32 model and the INT8 (QDQ) model run
exactly (graph optimizations off, so the numbers do not depend on the CPU's integer kernels)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from analyzers.diff_types import AnalysisResult, OutputResult
from analyzers.output_kinds import detect_kinds
from analyzers.output_metrics import OutputAccumulator, ctc_greedy_decode
from tests.cli_util import qwb
from tests.models import kind_net, kind_net_data, save, save_npz
from workbench.analysis import analyze
from workbench.errors import RecipeError, WorkbenchError
from workbench.outputs import parse_metrics
from workbench.recipe import Recipe
from workbench.session import Session

KERNEL_HINTS = {"kernel_saturation", "kernel_remedy", "kernel_gap"}


def _exact(path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(path if isinstance(path, bytes) else str(path), so, providers=["CPUExecutionProvider"])


def _outputs(fp32_path, int8_path, feed) -> tuple[np.ndarray, np.ndarray]:
    return (_exact(fp32_path).run(["out"], feed)[0].astype(np.float64),
            _exact(int8_path).run(["out"], feed)[0].astype(np.float64))


def _decode(steps, blank=0) -> list[int]:  # an independent greedy CTC decode
    return [int(k) for k, _ in itertools.groupby(steps) if k != blank]


def _run(tmp_path, kind, labels=None, recipe=None):
    # batch-major sequences here: analysing time-major layer tensors is separate work
    model = save(kind_net(kind, time_major=False), tmp_path / f"{kind}.onnx")
    calib = save_npz(tmp_path / "calib.npz", **kind_net_data(kind, 32, seed=1))
    ev_data = kind_net_data(kind, 24, seed=2)
    if labels is not None:
        ev_data["labels"] = labels
    ev = save_npz(tmp_path / "eval.npz", **ev_data)
    r = analyze(Session(model, calib, ev, recipe=recipe), isolated=False)
    x, y = _outputs(model, r.int8_model, {"x": ev_data["x"]})
    return r, x, y


def test_detected_kinds_of_hand_built_models():
    kinds = {k: detect_kinds(kind_net(k))["out"] for k in ("classifier", "embedding", "sequence", "dense")}
    assert {k: v.kind for k, v in kinds.items()} == {k: k for k in kinds}
    assert kinds["sequence"].batch_axis == 1  # [T, N, C]: the batch symbol of the input is on axis 1
    assert detect_kinds(kind_net("sequence", time_major=False))["out"].batch_axis == 0
    # an [N, C] output the producer does not explain: a classifier only when there are class labels
    m = kind_net("dense")
    m.graph.node[1].op_type = "Neg"
    assert detect_kinds(m)["out"].kind == "embedding" and detect_kinds(m, class_labels=True)["out"].kind == "classifier"


def test_classifier_figures(tmp_path):
    labels = np.random.default_rng(3).integers(0, 5, 24)
    r, x, y = _run(tmp_path, "classifier", labels=labels)
    o = r.outputs[0]
    pf, pq = x.argmax(1), y.argmax(1)
    assert o.kind == "classifier" and o.top1_agreement == pytest.approx((pf == pq).mean())
    assert o.accuracy_fp32 == pytest.approx((pf == labels).mean()) and o.accuracy_int8 == pytest.approx((pq == labels).mean())
    assert [c.label for c in o.per_class] == sorted(set(labels.tolist()))
    assert o.cosine_mean is None and o.step_agreement is None


def test_embedding_figures(tmp_path):
    r, x, y = _run(tmp_path, "embedding")
    o = r.outputs[0]
    cos = (x * y).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)
    assert o.kind == "embedding" and o.top1_agreement is None and o.accuracy_fp32 is None
    assert o.cosine_mean == pytest.approx(cos.mean(), abs=1e-6) and o.cosine_min == pytest.approx(cos.min(), abs=1e-6)
    assert o.cosine_min < 1.0  # quantization moved the vectors: the figure measures something
    assert o.max_abs == pytest.approx(np.abs(y - x).max(), rel=1e-4)


def test_sequence_figures_with_label_sequences(tmp_path):
    model = kind_net("sequence", time_major=False)
    x_ev = kind_net_data("sequence", 24, seed=2)["x"]
    ref = _exact(model.SerializeToString()).run(["out"], {"x": x_ev})[0]  # [N, T, C]
    decoded = [_decode(ref[i].argmax(-1)) for i in range(24)]
    # labels: the FP32 decode for even samples, a sequence nothing decodes to for odd ones; padded with -1
    labels = np.full((24, 8), -1, np.int64)
    for i, d in enumerate(decoded):
        seq = d if i % 2 == 0 else [9, 9, 9]
        labels[i, :len(seq)] = seq
    r, x, y = _run(tmp_path, "sequence", labels=labels)
    o = r.outputs[0]
    pf, pq = x.argmax(-1), y.argmax(-1)  # [N, T]
    dq = [_decode(pq[i]) for i in range(24)]
    assert o.kind == "sequence" and o.top1_agreement is None
    assert o.step_agreement == pytest.approx((pf == pq).mean())
    assert o.sequence_match == pytest.approx(np.mean([a == b for a, b in zip(decoded, dq)]))
    assert o.accuracy_fp32 == pytest.approx(0.5)
    assert o.accuracy_int8 == pytest.approx(np.mean([dq[i] == decoded[i] for i in range(0, 24, 2)]) / 2)


def test_dense_figures(tmp_path):
    r, x, y = _run(tmp_path, "dense")
    o = r.outputs[0]
    sqnr = 10 * np.log10((x * x).sum() / ((y - x) ** 2).sum())
    assert o.kind == "dense" and o.top1_agreement is None and o.cosine_mean is None
    assert o.sqnr_db == pytest.approx(sqnr, abs=1e-3) and o.max_abs == pytest.approx(np.abs(y - x).max(), rel=1e-4)


def test_ctc_decode_and_streaming():
    assert ctc_greedy_decode(np.array([0, 3, 3, 0, 3, 1, 1, 0])) == [3, 3, 1]
    assert ctc_greedy_decode(np.array([2, 2, 1]), blank=2) == [1]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 10, 4)).astype(np.float32)  # [T, N, C]
    y = x + rng.normal(0, 0.3, x.shape).astype(np.float32)
    kind = detect_kinds(kind_net("sequence"))["out"]
    whole, parts = OutputAccumulator(kind), OutputAccumulator(kind)
    whole.update(x, y)
    for i in range(0, 10, 3):  # batches along the batch axis (1) give the same figures
        parts.update(x[:, i:i + 3], y[:, i:i + 3])
    a, b = whole.result(), parts.result()
    assert (a.step_agreement, a.sequence_match) == pytest.approx((b.step_agreement, b.sequence_match))


def test_overrides_recipe_and_metric(tmp_path):
    r, _, _ = _run(tmp_path, "embedding", recipe=Recipe.from_dict({"version": 1, "outputs": {"out": {"kind": "dense"}}}))
    assert r.outputs[0].kind == "dense" and r.outputs[0].cosine_mean is None
    assert parse_metrics(["out=classifier"], ["out", "aux"]) == {"out": "classifier"}
    assert parse_metrics(["dense"], ["out", "aux"]) == {"out": "dense", "aux": "dense"}
    with pytest.raises(WorkbenchError, match="did you mean 'embedding'"):
        parse_metrics(["out=embeding"], ["out"])
    with pytest.raises(WorkbenchError, match="did you mean 'out'"):
        parse_metrics(["outt=dense"], ["out"])
    with pytest.raises(RecipeError, match="is not one of"):
        Recipe.from_dict({"version": 1, "outputs": {"out": {"kind": "regression"}}})
    model = save(kind_net("embedding"), tmp_path / "e.onnx")
    data = save_npz(tmp_path / "d.npz", **kind_net_data("embedding", 8))
    with pytest.raises(RecipeError, match="did you mean 'out'"):
        Session(model, data, recipe=Recipe.from_dict({"version": 1, "outputs": {"outs": {"kind": "dense"}}}))
    with pytest.raises(WorkbenchError, match="rank 2"):
        analyze(Session(model, data, recipe=Recipe.from_dict({"version": 1, "outputs": {"out": {"kind": "sequence"}}})))
    assert Recipe.loads(Recipe.from_dict({"version": 1, "outputs": {"out": {"kind": "sequence", "blank": 4}}}).dumps()) \
        .outputs["out"].blank == 4


def test_cli_prints_figures_by_kind_and_the_attention_hint(tmp_path):
    model = save(kind_net("attention"), tmp_path / "att.onnx")
    data = save_npz(tmp_path / "d.npz", **kind_net_data("attention", 16))
    r = qwb("analyze", model, "--calib", data, "--json", tmp_path / "a.json", "--no-isolated")
    assert r.returncode == 0, r.stderr
    assert "output   out (embedding, exact): cosine mean " in r.stdout and "top-1" not in r.stdout
    assert "output   out (embedding, deployed): cosine mean " in r.stdout
    assert 'op_types = ["MatMul", "Gemm"]' in r.stdout
    d = json.loads((tmp_path / "a.json").read_text())
    assert d["outputs"][0]["kind"] == "embedding" and d["outputs"][0]["top1_agreement"] is None
    assert d["outputs"][0]["cosine_mean"] is not None and d["outputs"][0]["step_agreement"] is None
    # the kernel-saturation / remedy hints depend on the CPU (AVX2 without VNNI): not what this test is about
    hints = [h for h in d["hints"] if h["code"] not in KERNEL_HINTS]
    assert [h["code"] for h in hints] == ["attention_matmul_only"] and hints[0]["evidence"] == 1
    # a recipe that already restricts op_types gets no hint; --metric overrides the kind
    (tmp_path / "mm.toml").write_text('version = 1\n[global]\nop_types = ["MatMul", "Gemm"]\n')
    r = qwb("analyze", model, "--calib", data, "--recipe", tmp_path / "mm.toml", "--metric", "out=dense",
            "--json", tmp_path / "b.json", "--no-isolated")
    assert r.returncode == 0, r.stderr
    d = json.loads((tmp_path / "b.json").read_text())
    assert [h for h in d["hints"] if h["code"] not in KERNEL_HINTS] == []
    assert d["outputs"][0]["kind"] == "dense" and "out (dense, exact): SQNR" in r.stdout
    r = qwb("analyze", model, "--calib", data, "--metric", "out=embeding")
    assert r.returncode != 0 and "did you mean 'embedding'" in r.stderr + r.stdout


def test_quantize_prints_agreement_without_labels(tmp_path):
    model = save(kind_net("embedding"), tmp_path / "e.onnx")
    data = save_npz(tmp_path / "d.npz", **kind_net_data("embedding", 16))
    r = qwb("quantize", model, "--calib", data, "-o", tmp_path / "q.onnx")
    assert r.returncode == 0, r.stderr
    assert "n/a" not in r.stdout and "out (embedding): cosine mean 0." in r.stdout


def test_older_results_load_with_a_kind():
    old = {"name": "y", "sqnr_db": 30.0, "cosine": 0.99, "top1_agreement": 0.98, "accuracy_fp32": None,
           "accuracy_int8": None, "per_class": []}
    d = {"model": "m", "recipe": {}, "samples": 1, "outputs": [old, dict(old, name="z", top1_agreement=None)],
         "layers": []}
    r = AnalysisResult.from_dict(d)
    assert [o.kind for o in r.outputs] == ["classifier", "dense"] and r.hints == []
    o = OutputResult("e", 20.0, 0.9, kind="embedding", cosine_mean=0.9, cosine_min=0.5)
    back = AnalysisResult.from_dict(dict(d, outputs=[o.to_dict()])).outputs[0]
    assert back == o


@pytest.mark.slow
def test_zoo_kinds():
    """Every zoo model's outputs get the kind its family declares (detection heads are dense)."""
    from tests.zoo import ZOO, build

    want = {"detection": "dense"}
    for name, z in ZOO.items():
        kinds = detect_kinds(onnx.load(str(build(name).model)))
        assert {k.kind for k in kinds.values()} == {want.get(z.kind, z.kind)}, (name, kinds)
        if z.kind == "sequence":
            assert kinds["log_probs"].batch_axis == 1  # time-major [T, N, C]
