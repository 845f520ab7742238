"""Tiny ONNX models built in code for the tests (each a few KB, fully deterministic)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _rng(seed=0):
    return np.random.default_rng(seed)


def conv_net(constant_weights: bool = False, outlier_channel: float | None = None, seed: int = 0,
             channels: int = 8, dynamic_batch: bool = True, names: bool = True) -> onnx.ModelProto:
    """x[N,3,8,8] -> conv1 -> relu -> conv2 -> relu -> conv3 -> relu -> GAP -> flatten -> fc -> y[N,10].

    ``outlier_channel``: multiply output channel 0 of conv2's weight by this factor (a layer that
    quantizes badly per-tensor). ``constant_weights``: weights come from Constant nodes (as some
    exporters write them) instead of initializers.
    """
    rng = _rng(seed)
    c = channels
    w1 = (rng.standard_normal((c, 3, 3, 3)) * 0.3).astype(np.float32)
    w2 = (rng.standard_normal((c, c, 3, 3)) * 0.15).astype(np.float32)
    w3 = (rng.standard_normal((c, c, 3, 3)) * 0.15).astype(np.float32)
    if outlier_channel:
        w2[0] *= outlier_channel
    wf = (rng.standard_normal((10, c)) * 0.3).astype(np.float32)
    b = {k: (rng.standard_normal(n) * 0.05).astype(np.float32) for k, n in (("b1", c), ("b2", c), ("b3", c),
                                                                             ("bf", 10))}
    weights = {"w1": w1, "w2": w2, "w3": w3, "wf": wf, **b}
    nodes, inits = [], []
    for k, v in weights.items():
        if constant_weights:
            nodes.append(helper.make_node("Constant", [], [k], value=numpy_helper.from_array(v, k)))
        else:
            inits.append(numpy_helper.from_array(v, k))
    n = (lambda s: s) if names else (lambda s: "")
    nodes += [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name=n("conv1"), pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name=n("relu1")),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name=n("conv2"), pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name=n("relu2")),
        helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"], name=n("conv3"), pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c3"], ["r3"], name=n("relu3")),
        helper.make_node("GlobalAveragePool", ["r3"], ["gap"], name=n("gap")),
        helper.make_node("Flatten", ["gap"], ["flat"], name=n("flatten")),
        helper.make_node("Gemm", ["flat", "wf", "bf"], ["y"], name=n("fc"), transB=1),
    ]
    batch = "N" if dynamic_batch else 1
    graph = helper.make_graph(nodes, "conv_net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model


def conv_net_data(n: int = 32, seed: int = 1, labels: bool = True) -> dict[str, np.ndarray]:
    rng = _rng(seed)
    d = {"x": rng.standard_normal((n, 3, 8, 8)).astype(np.float32)}
    if labels:
        d["labels"] = rng.integers(0, 10, n).astype(np.int64)
    return d


def save(model: onnx.ModelProto, path: Path, **kw) -> Path:
    onnx.save(model, str(path), **kw)
    return path


def save_npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def shape_arith_net(seed: int = 0) -> onnx.ModelProto:
    """x[N,3,8,8] -> conv -> reshape to [N, -1] with the shape computed in the graph -> matmul -> y[N,10].

    The shape path (Shape -> Gather -> Mul -> Concat, all int64) is what exporters write for a flatten with a
    dynamic batch: Gather, Mul and Concat are ops the quantizer knows, but their tensors here are integers.
    """
    rng = _rng(seed)
    w = (rng.standard_normal((4, 3, 3, 3)) * 0.3).astype(np.float32)
    wm = (rng.standard_normal((256, 10)) * 0.1).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(wm, "wm"),
             numpy_helper.from_array(np.array([0], np.int64), "i0"),
             numpy_helper.from_array(np.array([1], np.int64), "one"),
             numpy_helper.from_array(np.array([-1], np.int64), "minus1")]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Shape", ["r"], ["s"], name="shape"),
        helper.make_node("Gather", ["s", "i0"], ["n"], name="gather_batch", axis=0),
        helper.make_node("Mul", ["n", "one"], ["n1"], name="mul_int"),
        helper.make_node("Concat", ["n1", "minus1"], ["newshape"], name="concat_shape", axis=0),
        helper.make_node("Reshape", ["r", "newshape"], ["flat"], name="flatten"),
        helper.make_node("MatMul", ["flat", "wm"], ["y"], name="fc"),
    ]
    graph = helper.make_graph(nodes, "shape_arith", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model


def time_major_net(seed: int = 0) -> onnx.ModelProto:
    """x[N, T, 6] -> Transpose -> [T, N, 6] -> MatMul -> [T, N, 5] -> LogSoftmax: a CTC-style time-major head."""
    rng = _rng(seed)
    w = (rng.standard_normal((6, 5)) * 0.5).astype(np.float32)
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], name="to_time_major", perm=[1, 0, 2]),
             helper.make_node("MatMul", ["xt", "w"], ["logits"], name="proj"),
             helper.make_node("LogSoftmax", ["logits"], ["y"], name="logsoftmax", axis=2)]
    graph = helper.make_graph(nodes, "time_major", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "T", 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["T", "N", 5])],
                              [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model


KIND_T, KIND_F, KIND_C = 6, 8, 5  # steps, features, classes of ``kind_net``


def kind_net(kind: str, seed: int = 0, time_major: bool = True) -> onnx.ModelProto:
    """One small MatMul model per output kind, its output named ``out`` (so only the producer tells the kind).

    classifier: x[N,F] -> MatMul+bias -> Softmax -> [N,C]; embedding: x[N,T,F] -> MatMul -> ReduceMean(T) ->
    [N,C]; sequence: x[N,T,F] -> MatMul+bias -> LogSoftmax -> Transpose -> [T,N,C] (time-major, CTC style; without
    the Transpose with ``time_major=False``);
    dense: x[N,F] -> MatMul -> Sigmoid -> [N,C]; attention: x[N,T,F] -> Q.K^T / 2 -> Softmax -> .V ->
    ReduceMean(T) -> [N,F] (an embedding with one attention block).
    """
    rng = _rng(seed)
    w = numpy_helper.from_array((rng.standard_normal((KIND_F, KIND_C)) * 0.6).astype(np.float32), "w")
    b = numpy_helper.from_array((rng.standard_normal(KIND_C) * 0.2).astype(np.float32), "b")
    seq_in = kind in ("embedding", "sequence", "attention")
    x_shape = ["N", "T", KIND_F] if seq_in else ["N", KIND_F]
    inits = [w, b]
    if kind == "classifier":
        nodes = [helper.make_node("MatMul", ["x", "w"], ["m"], name="fc"), helper.make_node("Add", ["m", "b"], ["a"], name="bias"),
                 helper.make_node("Softmax", ["a"], ["out"], name="softmax", axis=-1)]
        out = ["N", KIND_C]
    elif kind == "embedding":
        nodes = [helper.make_node("MatMul", ["x", "w"], ["m"], name="proj"),
                 helper.make_node("ReduceMean", ["m"], ["out"], name="pool", axes=[1], keepdims=0)]
        out, inits = ["N", KIND_C], [w]
    elif kind == "sequence":
        nodes = [helper.make_node("MatMul", ["x", "w"], ["m"], name="fc"), helper.make_node("Add", ["m", "b"], ["a"], name="bias"),
                 helper.make_node("LogSoftmax", ["a"], ["ls" if time_major else "out"], name="log_softmax", axis=-1)]
        if time_major:
            nodes.append(helper.make_node("Transpose", ["ls"], ["out"], name="time_major", perm=[1, 0, 2]))
        out = ["T", "N", KIND_C] if time_major else ["N", "T", KIND_C]
    elif kind == "dense":
        nodes = [helper.make_node("MatMul", ["x", "w"], ["m"], name="fc"),
                 helper.make_node("Sigmoid", ["m"], ["out"], name="sigmoid")]
        out, inits = ["N", KIND_C], [w]
    elif kind == "attention":
        inits = [numpy_helper.from_array((rng.standard_normal((KIND_F, KIND_F)) * 0.4).astype(np.float32), k)
                 for k in ("wq", "wk", "wv")] + [numpy_helper.from_array(np.float32(2.0), "scale")]
        nodes = [helper.make_node("MatMul", ["x", "wq"], ["q"], name="q"), helper.make_node("MatMul", ["x", "wk"], ["k"], name="k"),
                 helper.make_node("MatMul", ["x", "wv"], ["v"], name="v"),
                 helper.make_node("Transpose", ["k"], ["kt"], name="kt", perm=[0, 2, 1]),
                 helper.make_node("MatMul", ["q", "kt"], ["s"], name="scores"),
                 helper.make_node("Div", ["s", "scale"], ["ss"], name="scale_scores"),
                 helper.make_node("Softmax", ["ss"], ["p"], name="softmax", axis=-1),
                 helper.make_node("MatMul", ["p", "v"], ["ctx"], name="context"),
                 helper.make_node("ReduceMean", ["ctx"], ["out"], name="pool", axes=[1], keepdims=0)]
        out = ["N", KIND_F]
    else:
        raise ValueError(kind)
    graph = helper.make_graph(nodes, kind, [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, out)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def kind_net_data(kind: str, n: int = 24, seed: int = 1) -> dict[str, np.ndarray]:
    """Inputs for ``kind_net(kind)``: [n, T, F] for the models with steps, [n, F] otherwise."""
    rng = _rng(seed)
    shape = (n, KIND_T, KIND_F) if kind in ("embedding", "sequence", "attention") else (n, KIND_F)
    return {"x": rng.standard_normal(shape).astype(np.float32)}


def masked_attention(mask: str = "ninf", d: int = 8, seed: int = 0) -> onnx.ModelProto:
    """One attention head over x[N,T,D] with a padding mask[N,T] (1 = token, 0 = padding) -> y[N,D].

    scores = (x Wq)(x Wk)^T + bias; y = sum_t softmax(scores)[.,t,:] (x Wv) * mask / sum(mask), where ``bias`` is
    ``Where(mask, 0, -inf)`` (``mask="ninf"``), ``Where(mask, 0, -1e9)`` (``mask="neg1e9"``: ``masked_fill(-1e9)``
    code), ``(1 - mask) * finfo(float32).min`` (``mask="finfo"``) or ``(1 - mask) * -10000.0`` (``mask="neg1e4"``:
    older Hugging Face exports), the forms exporters write, or a float model input ``bias[N,1,T]`` fed already scaled
    (``mask="float_neg1e4"``: 0 or -1e4; ``masked_attention_data(float_bias=True)``). In FP32 padded positions have
    weight exactly 0 and are multiplied by 0 when pooled, so ``y`` does not depend on x at padded positions at all.
    """
    rng = _rng(seed)
    w = {k: (rng.standard_normal((d, d)) * 0.5).astype(np.float32) for k in ("wq", "wk", "wv")}
    c = {"zero": np.array(0.0, np.float32), "ninf": np.array(-np.inf, np.float32), "neg1e9": np.array(-1e9, np.float32),
         "one": np.array(1.0, np.float32), "fmin": np.array(np.finfo(np.float32).min, np.float32),
         "neg1e4": np.array(-10000.0, np.float32),
         "ax1": np.array([1], np.int64), "ax2": np.array([2], np.int64)}
    inits = [numpy_helper.from_array(v, k) for k, v in {**w, **c}.items()]
    n = helper.make_node
    nodes = [
        n("MatMul", ["x", "wq"], ["q"], name="q.MatMul"), n("MatMul", ["x", "wk"], ["k"], name="k.MatMul"),
        n("MatMul", ["x", "wv"], ["v"], name="v.MatMul"),
        n("Transpose", ["k"], ["kt"], name="k.Transpose", perm=[0, 2, 1]),
        n("MatMul", ["q", "kt"], ["scores"], name="scores.MatMul"),
        n("Unsqueeze", ["mask", "ax1"], ["m3"], name="mask.Unsqueeze"),  # [N,1,T]
        n("Cast", ["mask"], ["mf"], name="mask.Cast", to=TensorProto.FLOAT),
    ]
    if mask in ("ninf", "neg1e9"):
        nodes += [n("Cast", ["m3"], ["mb"], name="mask.CastBool", to=TensorProto.BOOL),
                  n("Where", ["mb", "zero", mask], ["bias"], name="bias.Where")]
    elif mask == "float_neg1e4":  # fed already scaled: the model input ``bias`` itself
        pass
    else:
        nodes += [n("Cast", ["m3"], ["m3f"], name="mask.CastFloat", to=TensorProto.FLOAT),
                  n("Sub", ["one", "m3f"], ["inv"], name="bias.Sub"),
                  n("Mul", ["inv", "neg1e4" if mask == "neg1e4" else "fmin"], ["bias"], name="bias.Mul")]
    nodes += [
        n("Add", ["scores", "bias"], ["masked"], name="scores.Add"),
        n("Softmax", ["masked"], ["p"], name="attn.Softmax", axis=-1),
        n("MatMul", ["p", "v"], ["ctx"], name="ctx.MatMul"),
        n("Unsqueeze", ["mf", "ax2"], ["w"], name="pool.Unsqueeze"),  # [N,T,1]
        n("Mul", ["ctx", "w"], ["ctxm"], name="pool.Mul"),
        n("ReduceSum", ["ctxm", "ax1"], ["total"], name="pool.ReduceSum", keepdims=0),
        n("ReduceSum", ["w", "ax1"], ["count"], name="pool.Count", keepdims=0),
        n("Div", ["total", "count"], ["y"], name="pool.Div"),
    ]
    graph = helper.make_graph(
        nodes, f"masked_attention_{mask}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "T", d]),
         helper.make_tensor_value_info("mask", TensorProto.INT64, ["N", "T"])]
        + ([helper.make_tensor_value_info("bias", TensorProto.FLOAT, ["N", 1, "T"])] if mask == "float_neg1e4" else []),
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", d])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model, full_check=True)
    return model


def masked_attention_data(n: int = 24, t: int = 10, d: int = 8, seed: int = 1,
                          float_bias: bool = False) -> dict[str, np.ndarray]:
    """x[N,T,D] and a padding mask with 3..T real tokens per sample (every sample has at least one pad
    when ``seed`` draws lengths below T); padded positions of x hold 0, as [PAD] embeddings often do not. With
    ``float_bias``, also the additive mask ``bias[N,1,T]`` = (1 - mask) * -10000 (``masked_attention("float_neg1e4")``)."""
    rng = _rng(seed)
    x = rng.standard_normal((n, t, d)).astype(np.float32)
    lengths = rng.integers(3, t, size=n)
    mask = (np.arange(t)[None, :] < lengths[:, None]).astype(np.int64)
    out = {"x": x, "mask": mask}
    if float_bias:
        out["bias"] = ((1 - mask) * np.float32(-10000.0)).astype(np.float32)[:, None, :]
    return out


def deep_cnn(layers: int = 64, channels: int = 4, seed: int = 0) -> onnx.ModelProto:
    """A 64-layer CNN named as torch.onnx names a ``features`` Sequential: ``/features/features.12/Conv``.

    x[N,3,8,8] -> ``layers`` x (Conv 3x3 -> Relu) -> GAP -> Flatten -> Gemm -> y[N,10]: a long chain
    whose names differ only in the middle (what name shortening and the folded graph layout are for).
    """
    rng = _rng(seed)
    nodes, inits = [], []
    x, cin = "x", 3
    for i in range(layers):
        w = (rng.standard_normal((channels, cin, 3, 3)) * (1.0 / np.sqrt(cin * 9))).astype(np.float32)
        b = (rng.standard_normal(channels) * 0.05).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"features.{2 * i}.weight"),
                  numpy_helper.from_array(b, f"features.{2 * i}.bias")]
        p = f"/features/features.{2 * i}"
        nodes.append(helper.make_node("Conv", [x, f"features.{2 * i}.weight", f"features.{2 * i}.bias"],
                                      [f"{p}/Conv_output_0"], name=f"{p}/Conv", pads=[1, 1, 1, 1]))
        r = f"/features/features.{2 * i + 1}"
        nodes.append(helper.make_node("Relu", [f"{p}/Conv_output_0"], [f"{r}/Relu_output_0"], name=f"{r}/Relu"))
        x, cin = f"{r}/Relu_output_0", channels
    wf = (rng.standard_normal((10, channels)) * 0.3).astype(np.float32)
    inits += [numpy_helper.from_array(wf, "classifier.weight"),
              numpy_helper.from_array(np.zeros(10, np.float32), "classifier.bias")]
    nodes += [helper.make_node("GlobalAveragePool", [x], ["/avgpool/out"], name="/avgpool/GlobalAveragePool"),
              helper.make_node("Flatten", ["/avgpool/out"], ["/Flatten_output_0"], name="/Flatten"),
              helper.make_node("Gemm", ["/Flatten_output_0", "classifier.weight", "classifier.bias"], ["y"],
                               name="/classifier/Gemm", transB=1)]
    graph = helper.make_graph(nodes, "deep_cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model


def scoped_net(layers: int = 27, branches: int = 12, channels: int = 4, seed: int = 0) -> onnx.ModelProto:
    """A 2,000-node model with exporter-style scopes: ``/encoder/layers.3/branch7/conv1/Conv``.

    x[N,4,4,4] -> stem -> ``layers`` x (``branches`` parallel Conv-Relu-Conv-Sigmoid-Mul-Relu branches, Concat,
    1x1 merge Conv, Relu, residual Add) -> GAP -> Flatten -> Gemm. 27 x 12 gives 2,057 nodes.
    """
    rng = _rng(seed)
    c = channels
    nodes, inits = [], []

    def w(name, shape, scale=0.3):
        inits.append(numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name))
        return name

    def node(op, ins, name, **kw):
        out = name + "_output_0"
        nodes.append(helper.make_node(op, ins, [out], name=name, **kw))
        return out

    x = node("Conv", ["x", w("stem.w", (c, c, 3, 3))], "/stem/conv/Conv", pads=[1] * 4)
    x = node("Relu", [x], "/stem/relu/Relu")
    for i in range(layers):
        p = f"/encoder/layers.{i}"
        outs = []
        for j in range(branches):
            q = f"{p}/branch{j}"
            a = node("Conv", [x, w(f"{q}.c1", (c, c, 3, 3))], f"{q}/conv1/Conv", pads=[1] * 4)
            a = node("Relu", [a], f"{q}/act1/Relu")
            a = node("Conv", [a, w(f"{q}.c2", (c, c, 1, 1))], f"{q}/conv2/Conv")
            g = node("Sigmoid", [a], f"{q}/gate/Sigmoid")
            a = node("Mul", [a, g], f"{q}/gate/Mul")
            outs.append(node("Relu", [a], f"{q}/act2/Relu"))
        cat = node("Concat", outs, f"{p}/Concat", axis=1)
        m = node("Conv", [cat, w(f"{p}.merge", (c, c * branches, 1, 1), 0.3 / np.sqrt(branches))], f"{p}/merge/Conv")
        m = node("Relu", [m], f"{p}/merge/Relu")
        x = node("Add", [m, x], f"{p}/Add")
    x = node("GlobalAveragePool", [x], "/head/pool/GlobalAveragePool")
    x = node("Flatten", [x], "/head/Flatten")
    node("Gemm", [x, w("fc.w", (10, c))], "/head/fc/Gemm", transB=1)
    out_name = nodes[-1].output[0]
    graph = helper.make_graph(nodes, "scoped_net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", c, 4, 4])],
                              [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model


def residual_net(seed: int = 0, side: int = 8) -> onnx.ModelProto:
    """A MobileNetV2-style CNN for onnxruntime's NCHWc fusions: Conv + Clip, a linear 1x1 Conv whose residual Add
    onnxruntime fuses into it, a Conv + Add + Relu, and channel counts (24, 20) that NCHWc pads with 8- and 16-wide
    blocks. x[N,3,side,side] -> ... -> GAP -> Flatten -> Gemm -> y[N,10]."""
    rng = _rng(seed)
    inits = []

    def conv(name, cin, cout, k, inp, out):
        w = (rng.standard_normal((cout, cin, k, k)) / np.sqrt(cin * k * k)).astype(np.float32)
        b = (rng.standard_normal(cout) * 0.05).astype(np.float32)
        inits.extend([numpy_helper.from_array(w, f"{name}.weight"), numpy_helper.from_array(b, f"{name}.bias")])
        return helper.make_node("Conv", [inp, f"{name}.weight", f"{name}.bias"], [out], name=name,
                                pads=[k // 2] * 4)

    inits += [numpy_helper.from_array(np.float32(0.0), "zero"), numpy_helper.from_array(np.float32(6.0), "six")]
    wf = (rng.standard_normal((10, 20)) * 0.3).astype(np.float32)
    inits += [numpy_helper.from_array(wf, "fc.weight"), numpy_helper.from_array(np.zeros(10, np.float32), "fc.bias")]
    nodes = [
        conv("stem", 3, 24, 3, "x", "c0"), helper.make_node("Clip", ["c0", "zero", "six"], ["a0"], name="clip0"),
        conv("project", 24, 24, 1, "a0", "p1"), helper.make_node("Add", ["p1", "a0"], ["s1"], name="add1"),
        conv("expand", 24, 20, 1, "s1", "c2"), helper.make_node("Clip", ["c2", "zero", "six"], ["a2"], name="clip2"),
        conv("mix", 20, 20, 3, "a2", "c3"), helper.make_node("Add", ["a2", "c3"], ["s3"], name="add3"),
        helper.make_node("Relu", ["s3"], ["r3"], name="relu3"),
        helper.make_node("GlobalAveragePool", ["r3"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["y"], name="fc", transB=1),
    ]
    graph = helper.make_graph(nodes, "residual_net",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, side, side])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model
