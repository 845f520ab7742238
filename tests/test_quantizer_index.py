"""The indexed onnxruntime quantizer (workbench/quantizer_index.py) writes the very same INT8 model as the plain one.

Two kinds of check: every kind of graph the zoo holds, quantized with several recipes both ways and compared byte
for byte; and the index against onnxruntime's own ``ONNXModel``, step by step, over random sequences of the edits
the quantizer makes (including edits made behind the index's back).
"""

from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import base_quantizer
from onnxruntime.quantization.onnx_model import ONNXModel

from tests.models import save, save_npz, scoped_net
from tests.zoo import build
from workbench import quantizer_index
from workbench.quantizer_index import IndexedONNXModel, indexed_quantizer
from workbench.recipe import Recipe
from workbench.session import Session


def _edge_net() -> onnx.ModelProto:
    """The graph shapes the index must count right: a node reading one tensor twice (``Mul(a, a)``), a tensor
    read by three nodes, a quantized graph output that is also read inside the graph, an initializer shared by
    two Convs."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 4, 3, 3)).astype(np.float32), "w")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["a"], name="conv1", pads=[1] * 4),
        helper.make_node("Mul", ["a", "a"], ["sq"], name="square"),
        helper.make_node("Relu", ["a"], ["r"], name="relu"),
        helper.make_node("Add", ["sq", "a"], ["s"], name="add"),
        helper.make_node("Conv", ["s", "w"], ["c2"], name="conv2", pads=[1] * 4),
        helper.make_node("Add", ["c2", "r"], ["y"], name="out_add"),
        helper.make_node("Relu", ["y"], ["z"], name="tail"),
    ]
    vi = helper.make_tensor_value_info
    g = helper.make_graph(nodes, "edge", [vi("x", TensorProto.FLOAT, ["N", 4, 6, 6])],
                          [vi("y", TensorProto.FLOAT, ["N", 4, 6, 6]), vi("z", TensorProto.FLOAT, ["N", 4, 6, 6])],
                          [w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


@pytest.fixture(scope="module")
def models(tmp_path_factory, demo_paths):
    d = tmp_path_factory.mktemp("qindex")
    rng = np.random.default_rng(1)
    x6 = rng.standard_normal((6, 4, 6, 6)).astype(np.float32)
    x4 = rng.standard_normal((6, 4, 4, 4)).astype(np.float32)
    out = {
        "demo": (demo_paths[0], demo_paths[1]),
        "edge": (save(_edge_net(), d / "edge.onnx"), save_npz(d / "edge.npz", x=x6)),
        "scoped": (save(scoped_net(layers=3, branches=4), d / "scoped.onnx"), save_npz(d / "scoped.npz", x=x4)),
    }
    return out


ZOO_MODELS = ["transformer_ninf_op13", "transformer_neg1e4_op13", "seq_ctc_op11", "detect_op13", "tf_cnn_op17",
              "control_flow_op13"]


def _recipe(kind: str, session: Session) -> Recipe:
    r = Recipe()
    s = r.settings
    if kind == "per_tensor_reduce_range":
        s.per_channel, s.reduce_range = False, True
    elif kind == "s8_symmetric":
        s.activation_type, s.symmetric_activations = "s8", True
    elif kind == "mixed":  # one layer kept in float, one in 16 bits: the quantizer's override paths
        layers = [n.name for n in session.graph.nodes if n.op_type in ("Conv", "MatMul", "Gemm", "Add", "Mul")]
        r.set_precision(layers[0], "fp32")
        r.set_precision(layers[len(layers) // 2], "int16")
    return r


def _quantize_both(session: Session, recipe: Recipe, tmp_path, monkeypatch) -> tuple[bytes, bytes, int]:
    built = []
    init = IndexedONNXModel.__init__

    def counting(self, model):
        built.append(1)
        init(self, model)

    monkeypatch.setattr(IndexedONNXModel, "__init__", counting)
    got = {}
    for plain in ("1", "0"):
        monkeypatch.setenv("QWB_PLAIN_ORT_QUANTIZER", plain)
        out = tmp_path / f"m{plain}.qdq.onnx"
        session.quantize(out, recipe)
        got[plain] = out.read_bytes()
    return got["1"], got["0"], len(built)


@pytest.mark.parametrize("kind", ["default", "per_tensor_reduce_range", "s8_symmetric", "mixed"])
@pytest.mark.parametrize("name", ["demo", "edge", "scoped"])
def test_same_model_as_the_plain_quantizer(name, kind, models, tmp_path, monkeypatch):
    model, calib = models[name]
    s = Session(model, calib)
    plain, indexed, built = _quantize_both(s, _recipe(kind, s), tmp_path, monkeypatch)
    assert built == 1  # the index was in use for the second run only
    assert indexed == plain
    assert base_quantizer.ONNXModel is ONNXModel  # swapped back after the block


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["default", "mixed"])
@pytest.mark.parametrize("name", ZOO_MODELS)
def test_same_zoo_model_as_the_plain_quantizer(name, kind, tmp_path, monkeypatch):
    paths = build(name)
    s = Session(paths.model, paths.calib)
    plain, indexed, built = _quantize_both(s, _recipe(kind, s), tmp_path, monkeypatch)
    assert built == 1
    assert indexed == plain


# ---- the index against ONNXModel, edit by edit ----

def _names(nodes) -> list[str]:
    return [n.name for n in nodes]


def _tensor_names(g: onnx.GraphProto) -> list[str]:
    return sorted({t for n in g.node for t in list(n.input) + list(n.output) if t})


def _step(rng, k: int, plain: ONNXModel, fast: IndexedONNXModel):
    """One random edit or query, the same on both models; returns what the query answered on each."""
    g = plain.model.graph
    names = _tensor_names(g) + [f"new{k}"]
    op = rng.integers(0, 11)
    a, b = str(rng.choice(names)), f"t{k}"
    i = int(rng.integers(0, len(g.node))) if len(g.node) else 0
    if op == 0:
        plain.replace_input_of_all_nodes(a, b), fast.replace_input_of_all_nodes(a, b)
    elif op == 1:
        plain.replace_output_of_all_nodes(a, b), fast.replace_output_of_all_nodes(a, b)
    elif op == 2 and len(g.node):
        plain.replace_node_input(g.node[i], a, b), fast.replace_node_input(fast.model.graph.node[i], a, b)
    elif op == 3 and len(g.node):
        sel = {g.node[i].name}
        plain.replace_input_of_nodes(a, b, sel), fast.replace_input_of_nodes(a, b, sel)
    elif op == 4:  # a new node reading existing tensors (and one tensor twice)
        n = helper.make_node("Add", [a, a], [b], name=f"added{k}")
        plain.add_node(copy.deepcopy(n)), fast.add_node(n)
    elif op == 5 and len(g.node):
        plain.remove_node(copy.deepcopy(g.node[i])), fast.remove_node(copy.deepcopy(fast.model.graph.node[i]))
    elif op == 6:  # behind the index's back: straight onto the graph
        n = helper.make_node("Relu", [a], [b], name=f"direct{k}")
        g.node.extend([copy.deepcopy(n)]), fast.model.graph.node.extend([n])
    elif op == 7:  # behind its back: the whole node list rebuilt with equal messages (as topological_sort does)
        for m in (plain, fast):
            kept = [copy.deepcopy(n) for n in m.model.graph.node]
            m.model.graph.ClearField("node")
            m.model.graph.node.extend(kept)
    elif op == 8:
        t = numpy_helper.from_array(np.full((1,), k, np.float32), str(rng.choice([a, b])))
        plain.add_initializer(copy.deepcopy(t)), fast.add_initializer(t)
    elif op == 9:  # may duplicate a name: get_initializer must still answer the first
        t = numpy_helper.from_array(np.full((1,), k, np.float32), str(rng.choice([a, b])))
        plain.initializer_extend([copy.deepcopy(t)]), fast.initializer_extend([t])
    # every tensor's readers, each looked up as onnxruntime does (the view's fast path), and the initializers
    readers_plain, readers_fast = plain.input_name_to_nodes(), fast.input_name_to_nodes()
    answers = []
    for m, readers in ((plain, readers_plain), (fast, readers_fast)):
        got = {t: _names(readers[t]) for t in names if readers.get(t) is not None}
        inits = {t: (m.get_initializer(t).name, m.get_initializer(t).raw_data)
                 for t in names if m.get_initializer(t) is not None}
        answers.append((got, inits))
    return answers


@pytest.mark.parametrize("seed", range(6))
def test_index_follows_every_edit_like_onnx_model(seed):
    rng = np.random.default_rng(seed)
    base = scoped_net(layers=2, branches=3)
    plain, fast = ONNXModel(copy.deepcopy(base)), IndexedONNXModel(copy.deepcopy(base))
    for k in range(400):
        answered_plain, answered_fast = _step(rng, k, plain, fast)
        assert answered_fast == answered_plain, k
        assert fast.model.SerializeToString() == plain.model.SerializeToString(), k


def test_a_held_mapping_stays_a_snapshot():
    """input_name_to_nodes() answers as of the call, even when the graph changes before it is read."""
    plain, fast = ONNXModel(_edge_net()), IndexedONNXModel(_edge_net())
    before_plain, before_fast = plain.input_name_to_nodes(), fast.input_name_to_nodes()
    assert _names(before_fast["a"]) == ["square", "square", "relu", "add"]  # Mul(a, a) reads it twice
    for m in (plain, fast):
        m.replace_input_of_all_nodes("a", "a2")
        m.add_node(helper.make_node("Neg", ["a2"], ["n"], name="neg"))
    assert dict((k, _names(v)) for k, v in before_fast.items()) == {k: _names(v) for k, v in before_plain.items()}
    assert "a" not in fast.input_name_to_nodes() and _names(fast.input_name_to_nodes()["a2"]) == [
        "square", "square", "relu", "add", "neg"]


def test_off_switch_and_nested_blocks(monkeypatch):
    monkeypatch.setenv("QWB_PLAIN_ORT_QUANTIZER", "1")
    with indexed_quantizer():
        assert base_quantizer.ONNXModel is ONNXModel
    monkeypatch.delenv("QWB_PLAIN_ORT_QUANTIZER")
    with indexed_quantizer():
        with indexed_quantizer():
            assert base_quantizer.ONNXModel is IndexedONNXModel
        assert base_quantizer.ONNXModel is IndexedONNXModel  # another thread's quantize may still be running
    assert base_quantizer.ONNXModel is ONNXModel and quantizer_index._owners == {}


def test_one_node_edits_are_followed():
    """replace_node_input on a node of the graph: a later rename of the new name must reach that node too."""
    models = (ONNXModel(_edge_net()), IndexedONNXModel(_edge_net()))
    for m in models:
        m.input_name_to_nodes()  # the index is built before the edit
        relu = next(n for n in m.model.graph.node if n.name == "relu")
        m.replace_node_input(relu, "a", "a_dq")
        m.replace_node_output(relu, "r", "r_q")
        m.replace_input_of_all_nodes("a_dq", "a_dq2")
        m.replace_input_of_all_nodes("r", "r_q")
    plain, fast = models
    assert fast.model.SerializeToString() == plain.model.SerializeToString()
    assert _names(fast.input_name_to_nodes()["a_dq2"]) == ["relu"]
    assert _names(fast.input_name_to_nodes()["r_q"]) == ["out_add"]


def test_the_installed_quantizer_is_the_verified_one(monkeypatch):
    """The index runs only with the onnxruntime quantizer it was checked against; with another one it stays off
    (the other tests here then fail on ``built == 1``) until checked with QWB_INDEXED_ORT_QUANTIZER=force."""
    assert quantizer_index.quantizer_fingerprint() in quantizer_index.VERIFIED, (
        "onnxruntime's quantizer changed: run tests/test_quantizer_index.py with QWB_INDEXED_ORT_QUANTIZER=force, "
        "and when it passes add quantizer_fingerprint() to quantizer_index.VERIFIED")
    monkeypatch.setattr(quantizer_index, "VERIFIED", {})
    with indexed_quantizer():
        assert base_quantizer.ONNXModel is ONNXModel  # not verified: the plain quantizer
    monkeypatch.setenv("QWB_INDEXED_ORT_QUANTIZER", "force")
    with indexed_quantizer():
        assert base_quantizer.ONNXModel is IndexedONNXModel
