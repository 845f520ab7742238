"""Loading and preparing models: ONNX (with external data), Constant-held weights, names, bad files."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from tests.models import conv_net, save
from workbench.errors import ModelLoadError
from workbench.model_prep import prepare_model


def test_loads_onnx_and_builds_graph(tmp_path):
    pm = prepare_model(save(conv_net(), tmp_path / "m.onnx"))
    g = pm.graph
    assert [n.name for n in g.nodes][:3] == ["conv1", "relu1", "conv2"]
    assert g.inputs[0].name == "x" and g.inputs[0].shape == ("N", 3, 8, 8)
    assert g.tensors["c2"].shape == ("N", 8, 8, 8) and g.tensors["c2"].dtype == "float32"
    assert g.node("conv2").weights == ("w2", "b2")
    assert g.node("conv1").quantizable and g.node("fc").quantizable
    assert ("conv1", "relu1", "c1") in g.edges()
    assert g.node("fc").depth == 8
    assert g.layer_outputs("conv2") == ["c2", "r2"]
    assert g.tensor_owners("r2") == {"relu2", "conv2"}


def test_external_data_is_loaded(tmp_path):
    model = conv_net(channels=64)
    save(model, tmp_path / "ext.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
         location="ext.weights", size_threshold=0)
    assert (tmp_path / "ext.weights").exists()
    pm = prepare_model(tmp_path / "ext.onnx")
    w = {i.name: i for i in pm.load_proto().graph.initializer}["w2"]
    assert onnx.numpy_helper.to_array(w).shape == (64, 64, 3, 3)


def test_missing_external_data_is_a_clear_error(tmp_path):
    save(conv_net(channels=64), tmp_path / "ext.onnx", save_as_external_data=True, location="gone.bin",
         size_threshold=0)
    (tmp_path / "gone.bin").unlink()
    with pytest.raises(ModelLoadError, match="external data"):
        prepare_model(tmp_path / "ext.onnx")


def test_constant_weights_become_initializers(tmp_path):
    pm = prepare_model(save(conv_net(constant_weights=True), tmp_path / "c.onnx"))
    proto = pm.load_proto()
    assert not any(n.op_type == "Constant" for n in proto.graph.node)
    assert {"w1", "w2", "w3", "wf"} <= {i.name for i in proto.graph.initializer}
    assert any("Constant" in note and "w2" in note for note in pm.notes)
    assert pm.graph.node("conv2").weights == ("w2", "b2")


def test_unnamed_nodes_get_unique_names(tmp_path):
    pm = prepare_model(save(conv_net(names=False), tmp_path / "u.onnx"))
    names = pm.graph.node_names
    assert len(set(names)) == len(names) and all(names)
    assert names[0] == "Conv_0"
    assert any("named" in n for n in pm.notes)


@pytest.mark.parametrize("content", [b"", b"not an onnx model at all \x00\x01\x02", b"\x08\x07" * 50])
def test_corrupt_file_is_a_clear_error(tmp_path, content):
    p = tmp_path / "bad.onnx"
    p.write_bytes(content)
    with pytest.raises(ModelLoadError) as e:
        prepare_model(p)
    assert str(p) in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        prepare_model(tmp_path / "nope.onnx")


def test_invalid_graph_fails_checker(tmp_path):
    m = conv_net()
    m.graph.node[2].input[0] = "does_not_exist"
    with pytest.raises(ModelLoadError, match="not a valid ONNX model"):
        prepare_model(save(m, tmp_path / "broken.onnx"))


def test_batchnorm_triggers_ort_preprocessing(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")]
    for name, val in (("s", 1.5), ("b", 0.1), ("m", 0.2), ("v", 2.0)):
        inits.append(numpy_helper.from_array(np.full(4, val, np.float32), name))
    g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
                           helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["y"], name="bn")],
                          "bn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    pm = prepare_model(save(m, tmp_path / "bn.onnx"))
    assert "BatchNormalization" not in pm.graph.op_type_counts()
    assert any("pre-processing" in n for n in pm.notes)
    # the folded model computes the same function
    import onnxruntime as ort

    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    a = ort.InferenceSession(str(tmp_path / "bn.onnx")).run(None, {"x": x})[0]
    b = ort.InferenceSession(str(pm.path)).run(None, {"x": x})[0]
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_prepared_model_is_cached_by_content(tmp_path):
    a = prepare_model(save(conv_net(seed=0), tmp_path / "a.onnx"))
    b = prepare_model(save(conv_net(seed=0), tmp_path / "b.onnx"))
    c = prepare_model(save(conv_net(seed=1), tmp_path / "c.onnx"))
    assert a.sha256 == b.sha256 and a.path == b.path
    assert c.sha256 != a.sha256
