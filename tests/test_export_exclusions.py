"""``qwb export-exclusions``: every form parses, names the right layers/tensors, and the onnxruntime form
really reproduces the recipe's exclusions when handed to onnxruntime's quantizer."""

from __future__ import annotations

import ast
import json
import shlex

import numpy as np
import onnx
import pytest
from onnx import TensorProto

import resources
from tests.cli_util import qwb
from tests.models import conv_net, save
from workbench.model_prep import prepare_model
from workbench.recipe import Recipe
from workbench.report.exclusions import build_exclusions, ort_overrides

FIX = 'version = 1\n[layers."cat"]\nprecision = "fp32"\n[layers."fc2.Gemm"]\nprecision = "int16"\n'


@pytest.fixture
def fix(tmp_path):
    p = tmp_path / "fix.toml"
    p.write_text(FIX, encoding="utf-8")
    return p


def _assigned(source: str, name: str):
    tree = ast.parse(source)
    return next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == name)


def test_all_formats_written_and_parse(tmp_path, fix):
    out = tmp_path / "fix"
    r = qwb("export-exclusions", "--demo", "--recipe", fix, "--format", "all", "-o", out)
    assert r.returncode == 0, r.stderr
    files = {p.name for p in out.iterdir()}
    assert files == {"digits_cnn.ort.json", "digits_cnn.polygraphy.txt", "digits_cnn.nncf.py", "digits_cnn.tflite.py"}
    ort = json.loads((out / "digits_cnn.ort.json").read_text())
    assert ort["nodes_to_exclude"] == ["cat"]
    over = ort["extra_options"]["TensorQuantOverrides"]
    assert over["fc2.weight"] == [{"quant_type": "QInt16"}] and over["logits"] == [{"quant_type": "QUInt16"}]
    assert ort["activation_type"] == "QUInt8" and ort["per_channel"] is True
    args = shlex.split((out / "digits_cnn.polygraphy.txt").read_text(), comments=True)
    assert args[args.index("--layer-precisions") + 1:] == ["cat:float32", "fc2.Gemm:float16"]
    assert "--fp16" in args and args[args.index("--precision-constraints") + 1] == "obey"
    assert _assigned((out / "digits_cnn.nncf.py").read_text(), "ignored_names") == ["cat", "fc2.Gemm"]
    deny = _assigned((out / "digits_cnn.tflite.py").read_text(), "denylisted_nodes")
    g = prepare_model(resources.DEMO_MODEL).graph
    assert deny == g.layer_outputs("cat") + g.layer_outputs("fc2.Gemm")  # output tensor names, fused Relu included


def test_single_format_to_stdout_and_to_a_file(tmp_path, fix):
    r = qwb("export-exclusions", "--demo", "--recipe", fix, "--format", "nncf")
    assert r.returncode == 0 and _assigned(r.stdout, "ignored_names") == ["cat", "fc2.Gemm"]
    out = tmp_path / "x.json"
    r = qwb("export-exclusions", "--demo", "--recipe", fix, "--format", "ort", "-o", out)
    assert r.returncode == 0 and json.loads(out.read_text())["nodes_to_exclude"] == ["cat"]


def test_user_errors_are_one_line(tmp_path):
    r = qwb("export-exclusions", "--demo")
    assert r.returncode == 2 and "--recipe" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('version = 1\n[layers."nope"]\nprecision = "fp32"\n')
    r = qwb("export-exclusions", "--demo", "--recipe", bad)
    assert r.returncode == 2 and "nope" in r.stderr


def test_overrides_match_what_quantization_gives_onnxruntime():
    """Computed without data, the overrides equal ``workbench.quantize.build_overrides`` from real ranges."""
    from onnxruntime.quantization import QuantType

    from workbench.quantize import build_overrides
    from workbench.session import Session

    recipe = Recipe.loads(FIX)
    s = Session(resources.DEMO_MODEL, resources.DEMO_CALIB, recipe=recipe)
    from workbench.recipe_ranges import tensor_ranges

    real = build_overrides(s.prepared, recipe, tensor_ranges(s.graph, recipe, s.calibration()))
    ours = ort_overrides(s.prepared, recipe)
    assert {t: [{"quant_type": QuantType[o[0]["quant_type"]]}] for t, o in ours.items()} == real
    assert real  # not vacuous


def test_onnxruntime_form_reproduces_the_exclusions(tmp_path, fix):
    """Feed the exported JSON to onnxruntime's quantize_static: cat stays float, fc2's weight becomes 16-bit."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    out = tmp_path / "ort.json"
    assert qwb("export-exclusions", "--demo", "--recipe", fix, "--format", "ort", "-o", out).returncode == 0
    cfg = json.loads(out.read_text())
    extra = dict(cfg["extra_options"])
    extra["TensorQuantOverrides"] = {t: [{"quant_type": QuantType[o["quant_type"]]} for o in v]
                                     for t, v in extra["TensorQuantOverrides"].items()}
    x = np.load(resources.DEMO_CALIB)["image"][:16]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"image": x[i:i + 1]} for i in range(len(x))])

        def get_next(self):
            return next(self.it, None)

    prepared = prepare_model(resources.DEMO_MODEL)
    q = tmp_path / "q.onnx"
    quantize_static(str(prepared.path), str(q), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType[cfg["activation_type"]], weight_type=QuantType[cfg["weight_type"]],
                    per_channel=cfg["per_channel"], nodes_to_exclude=cfg["nodes_to_exclude"], extra_options=extra)
    # the same Q/DQ structure as Quant Workbench's own quantization of the recipe (only the ranges differ)
    from workbench.session import Session

    ours = onnx.load(str(Session(resources.DEMO_MODEL, resources.DEMO_CALIB, recipe_path=fix).quantize().path))
    theirs = onnx.load(str(q))
    assert _quantized_tensors(theirs) == _quantized_tensors(ours)
    assert _weight_types(theirs) == _weight_types(ours)
    assert _weight_types(theirs)["fc2.weight_quantized"] == TensorProto.INT16
    assert "relu_4" not in _quantized_tensors(theirs)  # the Concat's (fused Relu) output stays float
    assert "relu_4" in _quantized_tensors(onnx.load(str(Session(resources.DEMO_MODEL, resources.DEMO_CALIB)
                                                          .quantize().path)))


def _quantized_tensors(m) -> set[str]:
    return {n.input[0] for n in m.graph.node if n.op_type == "QuantizeLinear"}


def _weight_types(m) -> dict:
    return {i.name: i.data_type for i in m.graph.initializer if i.name.endswith("_quantized")}


def test_unnamed_nodes_are_reported(tmp_path):
    model = save(conv_net(names=False), tmp_path / "m.onnx")
    prepared = prepare_model(model)
    name = next(n.name for n in prepared.graph.nodes if n.op_type == "Gemm")
    recipe = Recipe()
    recipe.set_precision(name, "fp32")
    ex = build_exclusions(prepared, recipe, "r.toml")
    assert [lay.in_source for lay in ex.layers] == [False]
    assert "given by Quant Workbench" in ex.formats["nncf"] and name in ex.formats["polygraphy"]


def test_empty_fix_still_parses():
    prepared = prepare_model(resources.DEMO_MODEL)
    ex = build_exclusions(prepared, Recipe(), "defaults")
    assert ex.layers == [] and json.loads(ex.formats["ort"])["nodes_to_exclude"] == []
    assert _assigned(ex.formats["tflite"], "denylisted_nodes") == []
    assert "--layer-precisions" not in shlex.split(ex.formats["polygraphy"], comments=True)
