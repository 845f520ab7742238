"""Pairing the FP32 model's tensors and nodes with their counterparts in the QDQ model.

onnxruntime's QDQ quantizer keeps node names, inserts QuantizeLinear/DequantizeLinear pairs on the
tensors it quantizes, renames graph outputs (``y`` becomes the DQ output, the producer writes
``y_QuantizeLinear_Input``) and folds Relu/Clip into the producer's output quantization. This module
reads those facts from the graphs themselves (not from name suffixes alone), the same pairing
onnxruntime's ``qdq_loss_debug`` uses: a float tensor is compared with the output of the
DequantizeLinear that follows its QuantizeLinear.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from .onnx_utils import elem_types, is_float_tensor

QUANT_INPUT_SUFFIX = "_QuantizeLinear_Input"
FUSABLE = frozenset({"Relu", "Clip"})


@dataclass(frozen=True)
class ActQuant:
    """Quantization of one activation in the QDQ model: its Q and DQ nodes and parameters."""

    pre: str  # tensor quantized (QDQ model name)
    post: str  # DequantizeLinear output that consumers read
    q_node: str
    dq_node: str
    scale: float
    zero_point: int
    qtype: int  # onnx TensorProto element type of the zero point

    def bounds(self) -> tuple[float, float]:

        rng = {TensorProto.UINT8: (0, 255), TensorProto.INT8: (-128, 127), TensorProto.UINT16: (0, 65535),
               TensorProto.INT16: (-32768, 32767)}.get(self.qtype, (0, 255))
        return self.scale * (rng[0] - self.zero_point), self.scale * (rng[1] - self.zero_point)


@dataclass
class LayerMatch:
    """A FP32 node that is analysed: which tensors to compare and how it is quantized."""

    node: str
    op_type: str
    index: int
    fp32_tensor: str  # compared tensor in the FP32 model
    int8_tensor: str  # compared tensor in the QDQ model
    quantized: bool  # the node runs on dequantized inputs and/or has quantized weights in the QDQ model
    act: ActQuant | None  # quantization of the compared tensor, when it is quantized
    activation_inputs: list[str] = field(default_factory=list)  # FP32 activation inputs (not weights)
    weight: str | None = None  # FP32 weight initializer name (input 1 of Conv/Gemm/MatMul)


@dataclass
class QDQMatch:
    """Everything the diff engine needs to know about how the two models correspond."""

    layers: list[LayerMatch]
    act_quant: dict[str, ActQuant]  # FP32 tensor name -> its quantization in the QDQ model
    int8_nodes: dict[str, onnx.NodeProto]
    int8_producer: dict[str, onnx.NodeProto]
    int8_inits: set[str] = field(default_factory=set)


def _inits(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    return {i.name: i for i in model.graph.initializer}


def _scalar(inits, name) -> float | int:
    return numpy_helper.to_array(inits[name]).reshape(-1)[0].item()


def activation_quantization(fp32: onnx.ModelProto, int8: onnx.ModelProto) -> dict[str, ActQuant]:
    """FP32 tensor -> the Q/DQ pair that quantizes it in the QDQ model (activations only, not weights)."""
    fp32_tensors = _tensor_names(fp32)
    inits = _inits(int8)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in int8.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    out: dict[str, ActQuant] = {}
    for q in int8.graph.node:
        if q.op_type != "QuantizeLinear" or q.input[0] in inits:
            continue
        pre = q.input[0]
        name = pre if pre in fp32_tensors else (pre[: -len(QUANT_INPUT_SUFFIX)] if pre.endswith(QUANT_INPUT_SUFFIX)
                                               else None)
        if name is None or name not in fp32_tensors or name in out:
            continue
        dqs = [c for c in consumers.get(q.output[0], []) if c.op_type == "DequantizeLinear"]
        if not dqs or q.input[1] not in inits:
            continue
        zp_name = q.input[2] if len(q.input) > 2 and q.input[2] else None
        zp = int(_scalar(inits, zp_name)) if zp_name else 0
        qtype = inits[zp_name].data_type if zp_name else onnx.TensorProto.UINT8
        out[name] = ActQuant(pre, dqs[0].output[0], q.name, dqs[0].name, float(_scalar(inits, q.input[1])), zp, qtype)
    return out


def _tensor_names(model: onnx.ModelProto) -> set[str]:
    names = {i.name for i in model.graph.input} | {i.name for i in model.graph.initializer}
    for n in model.graph.node:
        names.update(o for o in n.output if o)
    return names


def match(fp32: onnx.ModelProto, int8: onnx.ModelProto, quantizable_ops: set[str],
          excluded: set[str] | None = None) -> QDQMatch:
    """Pair every analysable FP32 node with what it became in the QDQ model."""
    excluded = excluded or set()
    act = activation_quantization(fp32, int8)
    int8_nodes = {n.name: n for n in int8.graph.node}
    int8_producer = {o: n for n in int8.graph.node for o in n.output}
    int8_tensors = set(int8_producer) | {i.name for i in int8.graph.input}
    fp32_inits = {i.name for i in fp32.graph.initializer}
    fp32_consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in fp32.graph.node:
        for i in n.input:
            fp32_consumers.setdefault(i, []).append(n)
    graph_outputs = {o.name for o in fp32.graph.output}
    types = elem_types(fp32)

    layers = []
    for idx, node in enumerate(fp32.graph.node):
        if node.op_type not in quantizable_ops and node.name not in excluded:
            continue
        if node.op_type in FUSABLE and node.name not in int8_nodes:
            continue  # folded into its producer's output quantization: reported with the producer
        if not node.output or not node.output[0] or not is_float_tensor(types, node.output[0]):
            continue  # shape arithmetic, indices, masks: integer/bool outputs are never layers
        # follow Relu/Clip chains the quantizer removed: the layer's quantized output is at their end
        tensor = node.output[0]
        while tensor not in graph_outputs:
            cons = fp32_consumers.get(tensor, [])
            if len(cons) != 1 or cons[0].op_type not in FUSABLE or cons[0].name in int8_nodes:
                break
            tensor = cons[0].output[0]
        if tensor in act:
            int8_tensor, aq = act[tensor].post, act[tensor]
        elif tensor in int8_tensors:
            int8_tensor, aq = tensor, None
        else:
            continue
        n8 = int8_nodes.get(node.name)
        quantized = node.name not in excluded and n8 is not None and (aq is not None or any(
            i in int8_producer and int8_producer[i].op_type == "DequantizeLinear" for i in n8.input))
        act_inputs = [i for i in node.input if i and i not in fp32_inits and is_float_tensor(types, i)]
        weight = node.input[1] if (node.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul") and len(node.input) > 1
                                   and node.input[1] in fp32_inits) else None
        layers.append(LayerMatch(node.name, node.op_type, idx, tensor, int8_tensor, quantized, aq, act_inputs, weight))
    return QDQMatch(layers, act, int8_nodes, int8_producer, {i.name for i in int8.graph.initializer})


def dequantized_weights(int8: onnx.ModelProto) -> dict[str, np.ndarray]:
    """FP32 weight name -> its dequantized value in the QDQ model (what the INT8 model computes with)."""
    inits = _inits(int8)
    out = {}
    for n in int8.graph.node:
        if n.op_type != "DequantizeLinear" or n.input[0] not in inits:
            continue
        q = numpy_helper.to_array(inits[n.input[0]]).astype(np.float64)
        scale = numpy_helper.to_array(inits[n.input[1]]).astype(np.float64)
        zp = (numpy_helper.to_array(inits[n.input[2]]).astype(np.float64) if len(n.input) > 2 and n.input[2]
              else np.zeros_like(scale))
        axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
        if scale.size > 1:
            shape = [1] * q.ndim
            shape[axis] = -1
            scale, zp = scale.reshape(shape), zp.reshape(shape)
        name = n.output[0]
        for suffix in ("_DequantizeLinear_Output",):
            if name.endswith(suffix):
                name = name[: -len(suffix)]
        out[name] = (q - zp) * scale
    return out


def _isolated_copy(lay: LayerMatch, m: QDQMatch, inits, fp32_of_post, fp32_of_pre, prefix: str, feed_prefix: str):
    """Nodes computing ``lay`` alone quantized from float inputs, or None when it cannot be isolated."""
    n8 = m.int8_nodes.get(lay.node)
    if not lay.quantized or n8 is None:
        return None
    aq = lay.act
    if not ((aq is not None and aq.pre == n8.output[0]) or (aq is None and n8.output[0] == lay.int8_tensor)):
        return None  # the compared tensor is not this node's direct output (an unfused op sits between)
    nodes, feeds, inputs = [], [], []
    for i in n8.input:
        prod = m.int8_producer.get(i)
        if not i or i in inits or (prod is not None and prod.op_type == "DequantizeLinear" and prod.input[0] in inits):
            inputs.append(i)  # weights, biases and constants: shared with the QDQ model
        elif prod is not None and prod.op_type == "DequantizeLinear":
            src = fp32_of_post.get(i)
            if src is None:
                return None
            q_node = m.int8_nodes[m.act_quant[src].q_node]
            feeds.append(src)
            # named by what they compute, not by layer: copies that quantize the same float tensor with the
            # same parameters are identical, so the diff graph keeps one of them
            shared = f"isoq::{q_node.name}::{prod.name}::"
            q_out, dq_out = shared + "q", shared + "dq"
            nodes.append(onnx.helper.make_node("QuantizeLinear", [feed_prefix + src] + list(q_node.input[1:]), [q_out],
                                               name=shared + "Q", **_attrs(q_node)))
            nodes.append(onnx.helper.make_node("DequantizeLinear", [q_out] + list(prod.input[1:]), [dq_out],
                                               name=shared + "DQ", **_attrs(prod)))
            inputs.append(dq_out)
        else:  # an activation the QDQ model leaves in float: the float model's value
            src = fp32_of_pre.get(i, i)
            feeds.append(src)
            inputs.append(feed_prefix + src)
    outs = [prefix + o if o else "" for o in n8.output]
    nodes.append(onnx.helper.make_node(n8.op_type, inputs, outs, name=prefix + n8.name, domain=n8.domain,
                                       **_attrs(n8)))
    result = outs[0]
    if aq is not None:
        q_node, dq_node = m.int8_nodes[aq.q_node], m.int8_nodes[aq.dq_node]
        nodes.append(onnx.helper.make_node("QuantizeLinear", [result] + list(q_node.input[1:]), [prefix + "out_q"],
                                           name=prefix + q_node.name, **_attrs(q_node)))
        nodes.append(onnx.helper.make_node("DequantizeLinear", [prefix + "out_q"] + list(dq_node.input[1:]),
                                           [prefix + "out_dq"], name=prefix + dq_node.name, **_attrs(dq_node)))
        result = prefix + "out_dq"
    return nodes, result, feeds


def isolated_nodes(lay: LayerMatch, m: QDQMatch, prefix: str, fp32_name) -> tuple[list[onnx.NodeProto], str] | None:
    """Nodes for ``lay`` alone quantized inside a merged graph where ``fp32_name(t)`` names FP32 tensors."""
    inits = set(m.int8_inits)
    fp32_of_post = {aq.post: name for name, aq in m.act_quant.items()}
    fp32_of_pre = {aq.pre: name for name, aq in m.act_quant.items()}
    built = _isolated_copy(lay, m, inits, fp32_of_post, fp32_of_pre, prefix, feed_prefix="")
    if built is None:
        return None
    nodes, result, feeds = built
    rename = {f: fp32_name(f) for f in feeds}
    for n in nodes:
        n.input[:] = [rename.get(i, i) for i in n.input]
    return nodes, result


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
