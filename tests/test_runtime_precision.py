"""Precision requests honoured at runtime: what we claim about a float/16-bit layer (onnxruntime re-quantizes it, or
not) must match onnxruntime's own optimized graph, read here independently, on the demo and a zoo transformer;
the fix we offer must really keep the layer in float; analysis, summaries and exports must not count it as float."""

from __future__ import annotations

import json

import onnx
import onnxruntime as ort
import pytest

import resources
from tests.zoo import build
from workbench.analysis import analyze
from workbench.mac_share import macs_by_precision
from workbench.model_prep import prepare_model
from workbench.quantize import runtime_requantized_without_data
from workbench.recipe import Recipe
from workbench.report.data import RunSummary
from workbench.report.exclusions import build_exclusions
from workbench.session import Session

INTEGER = ("QLinear", "QGemm", "MatMulInteger", "ConvInteger")


def _truth(model_path, node: str, tmp_path) -> bool:
    """Does onnxruntime (CPU, extended optimizations: where its QDQ fusions run) execute ``node`` on 8-bit data?
    Read straight from the graph it writes, not through the code under test."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(tmp_path / "truth.onnx")
    ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])
    g = onnx.load(str(tmp_path / "truth.onnx"), load_external_data=False).graph
    producer = {o: n for n in g.node for o in n.output}
    n = next((n for n in g.node if n.name == node), None)
    if n is None:  # folded into another node (e.g. a float FusedMatMul): not an integer kernel of its own
        return False
    if n.op_type.startswith(INTEGER):
        return True
    if n.op_type in ("MaxPool", "Reshape", "Transpose"):  # data movement: on 8-bit data unless a DQ feeds it
        p = producer.get(n.input[0])
        return p is not None and p.op_type != "DequantizeLinear" and (
            p.op_type == "QuantizeLinear" or p.op_type.startswith(INTEGER))
    return False


def _run(model, calib, precisions: dict, tmp_path, name="q.onnx"):
    r = Recipe()
    for node, p in precisions.items():
        r.set_precision(node, p)
    s = Session(model, calib, recipe=r)
    return s, r, s.quantize(tmp_path / name)


DEMO_CASES = [
    ({"block_a.Conv": "fp32"}, True),  # Conv between quantized neighbours: weights quantized at load time
    ({"add_25": "fp32"}, True),  # an Add: QLinearAdd (the old Conv/Gemm-only rule missed it)
    ({"cat": "fp32"}, False),  # its Relu consumer keeps the Concat's output unquantized
    ({"pool.MaxPool": "fp32"}, True),  # Q/DQ dropped around it: MaxPool on 8-bit data
    ({"fc1.Gemm": "fp32"}, False),
    ({"block_a.Conv": "int16"}, False),  # 16-bit Q/DQ: no integer kernel, runs in float as asked
]


@pytest.mark.parametrize("precisions, expected", DEMO_CASES, ids=[next(iter(c[0])) + "-" + next(iter(c[0].values()))
                                                                   for c in DEMO_CASES])
def test_claim_matches_onnxruntimes_graph_on_the_demo(tmp_path, precisions, expected):
    _, _, q = _run(resources.DEMO_MODEL, resources.DEMO_CALIB, precisions, tmp_path)
    node = next(iter(precisions))
    claimed = node in {r.node for r in q.runtime}
    assert claimed == _truth(q.path, node, tmp_path)
    assert claimed == expected  # onnxruntime's known behaviour, so a rule that never fires cannot pass
    if claimed:
        assert any(node in n and "onnxruntime" in n and "fix:" in n for n in q.notes)


@pytest.mark.parametrize("node", ["block_a.Conv", "add_25", "pool.MaxPool"])
def test_the_offered_fix_keeps_the_layer_in_float(tmp_path, node):
    _, _, q = _run(resources.DEMO_MODEL, resources.DEMO_CALIB, {node: "fp32"}, tmp_path)
    lay = next(r for r in q.runtime if r.node == node)
    assert lay.neighbours and lay.fix
    _, _, q2 = _run(resources.DEMO_MODEL, resources.DEMO_CALIB, {node: "fp32"} | {n: "fp32" for n in lay.neighbours},
                    tmp_path, "q2.onnx")
    assert not _truth(q2.path, node, tmp_path)
    assert node not in {r.node for r in q2.runtime}


@pytest.fixture(scope="module")
def transformer():
    return build("transformer_ninf_op17")


@pytest.mark.parametrize("node, expected", [
    ("/blocks.0/MatMul", True),  # activation x activation: MatMulIntegerToFloat even with a float output
    ("/blocks.0/Add_1", True),  # residual Add: QLinearAdd
    ("/blocks.0/act/Mul", True),  # GELU's Mul: QLinearMul
    ("/blocks.0/Softmax", False),
    ("/blocks.0/q/MatMul", False),  # a weight MatMul left in float keeps its float weight
])
def test_claim_matches_onnxruntimes_graph_on_the_zoo_transformer(tmp_path, transformer, node, expected):
    _, _, q = _run(transformer.model, transformer.calib, {node: "fp32"}, tmp_path)
    claimed = node in {r.node for r in q.runtime}
    assert claimed == _truth(q.path, node, tmp_path) == expected
    if claimed:  # and the fix holds on the transformer too
        lay = next(r for r in q.runtime if r.node == node)
        _, _, q2 = _run(transformer.model, transformer.calib, {node: "fp32"} | {n: "fp32" for n in lay.neighbours},
                        tmp_path, "q2.onnx")
        assert not _truth(q2.path, node, tmp_path)


def test_analysis_summary_and_json_never_count_a_requantized_layer_as_float(tmp_path):
    s, r, _ = _run(resources.DEMO_MODEL, resources.DEMO_CALIB, {"block_a.Conv": "fp32", "fc1.Gemm": "fp32"}, tmp_path)
    res = analyze(s, samples=16, kernels="exact")
    lays = {lay.node: lay for lay in res.layers}
    assert lays["block_a.Conv"].runtime_precision == "int8"
    assert lays["block_a.Conv"].precision == "fp32"  # what was asked (the GUI shows both)
    h = next(h for h in lays["block_a.Conv"].hints if h.code == "runtime_requantizes")
    assert "block_b.Conv" in h.suggestion
    assert lays["fc1.Gemm"].runtime_precision is None
    summary = RunSummary.of(res)
    fp32 = [lay.node for lay in res.layers if lay.effective_precision == "fp32"]
    assert "block_a.Conv" not in fp32 and "fc1.Gemm" in fp32
    assert summary.fp32_layers == len(fp32) and summary.runtime_int8_layers == 1
    assert summary.int8_layers == sum(lay.effective_precision == "int8" for lay in res.layers)
    asked = macs_by_precision(s.prepared.load_proto(), {lay.node: lay.precision for lay in res.layers},
                              s.eval_data.sample(0))
    assert res.macs_by_precision["fp32"] < asked["fp32"]  # block_a.Conv's MACs are counted as INT8
    d = json.loads(json.dumps(res.to_dict()))
    assert next(x for x in d["layers"] if x["node"] == "block_a.Conv")["runtime_precision"] == "int8"
    assert type(res).from_dict(d).layers[[x.node for x in res.layers].index("block_a.Conv")].runtime_precision == "int8"


def test_exports_without_data_agree_with_the_calibrated_model(tmp_path):
    precisions = {"block_a.Conv": "fp32", "add_25": "fp32", "fc1.Gemm": "fp32", "cat": "int16"}
    _, r, q = _run(resources.DEMO_MODEL, resources.DEMO_CALIB, precisions, tmp_path)
    prepared = prepare_model(str(resources.DEMO_MODEL))
    placeholder = runtime_requantized_without_data(prepared, r)
    assert {x.node for x in placeholder} == {x.node for x in q.runtime} == {"block_a.Conv", "add_25"}
    ex = build_exclusions(prepared, r, "r.toml", placeholder)
    doc = json.loads(ex.formats["ort"])
    assert {x["node"] for x in doc["runs_int8_on_onnxruntime_cpu"]} == {"block_a.Conv", "add_25"}
    assert "block_a.Conv" in doc["nodes_to_exclude"]  # still excluded in the file: the same model is reproduced
    assert "runs block_a.Conv in 8 bits anyway" in ex.formats["nncf"]
