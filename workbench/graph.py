"""A Qt-free, read-only view of an ONNX graph for the rest of the product.

The GUI draws it, the table lists it, the recipe validates layer names against it and the analyzers
know which tensors belong to which node. It is built once from the prepared ModelProto and holds only
plain Python data, so it can cross any package boundary and be pickled to a worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx
from onnx import TensorProto
from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry


#: Op types onnxruntime's QDQ quantizer knows how to quantize (its QDQ and QLinear registries).
def default_quantizable_op_types() -> frozenset[str]:
    """Ask onnxruntime rather than keeping our own list, so a new ORT release is picked up for free."""

    return frozenset(QDQRegistry) | frozenset(QLinearOpsRegistry)


#: Activations onnxruntime's QDQ quantizer folds into the producer's output quantization (asymmetric case).
FUSABLE_ACTIVATIONS = frozenset({"Relu", "Clip"})

#: Ops whose second input is a weight with output channels on axis 0 (used for per-channel analysis).
WEIGHTED_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})

_FLOAT_TYPES = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE}


@dataclass(frozen=True)
class TensorInfo:
    """Name, static shape (ints, or strings for symbolic dims, None when unknown) and dtype of a tensor."""

    name: str
    shape: tuple | None
    dtype: str
    is_initializer: bool = False

    @property
    def is_float(self) -> bool:
        return self.dtype in ("float32", "float16", "bfloat16", "float64")


@dataclass(frozen=True)
class NodeInfo:
    """One ONNX node: what it computes, what it reads and writes, and whether it can be quantized."""

    name: str
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    index: int
    quantizable: bool
    weights: tuple[str, ...] = ()  # initializer inputs that are float (what gets quantized as weights)
    depth: int = 0  # longest path from a graph input, for layered drawing and "SQNR along depth"


@dataclass
class ModelGraph:
    """The graph in topological order with lookups by node and tensor name."""

    nodes: list[NodeInfo]
    tensors: dict[str, TensorInfo]
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    producer: dict[str, str] = field(default_factory=dict)  # tensor -> node name
    consumers: dict[str, list[str]] = field(default_factory=dict)  # tensor -> node names

    def __post_init__(self) -> None:
        self._by_name = {n.name: n for n in self.nodes}

    def node(self, name: str) -> NodeInfo:
        return self._by_name[name]

    def has_node(self, name: str) -> bool:
        return name in self._by_name

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.nodes]

    def quantizable_nodes(self) -> list[NodeInfo]:
        return [n for n in self.nodes if n.quantizable]

    def layer_outputs(self, node_name: str) -> list[str]:
        """The node's outputs plus those of a Relu/Clip chain that only it feeds.

        onnxruntime fuses such activations into the producer's output quantization, so the tensor that
        is actually quantized for a Conv->Relu "layer" is the Relu's output. Overrides and analysis use
        all of these so they apply whether or not the activation is fused.
        """
        out = []
        for t in self.node(node_name).outputs:
            cur = t
            out.append(cur)
            while True:
                cons = self.consumers.get(cur, [])
                if len(cons) != 1 or cur in self._graph_output_names:
                    break
                nxt = self.node(cons[0])
                if nxt.op_type not in FUSABLE_ACTIVATIONS or not nxt.outputs:
                    break
                cur = nxt.outputs[0]
                out.append(cur)
        return out

    def tensor_owners(self, tensor: str) -> set[str]:
        """Nodes whose per-layer settings govern ``tensor``: its producer and the layer it is fused into."""
        owners = set()
        cur = tensor
        while cur in self.producer:
            p = self.node(self.producer[cur])
            owners.add(p.name)
            if p.op_type not in FUSABLE_ACTIVATIONS or not p.inputs:
                break
            src = p.inputs[0]
            if len(self.consumers.get(src, [])) != 1:
                break
            cur = src
        return owners

    @property
    def _graph_output_names(self) -> set[str]:
        return {t.name for t in self.outputs}

    def edges(self) -> list[tuple[str, str, str]]:
        """(producer node, consumer node, tensor) for every data edge between two nodes."""
        out = []
        for n in self.nodes:
            for t in n.inputs:
                p = self.producer.get(t)
                if p is not None:
                    out.append((p, n.name, t))
        return out

    def op_type_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for n in self.nodes:
            counts[n.op_type] = counts.get(n.op_type, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    @property
    def max_depth(self) -> int:
        return max((n.depth for n in self.nodes), default=0)


def _dtype_name(elem_type: int) -> str:
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(elem_type).name
    except Exception:  # noqa: BLE001 - exotic types (strings, float8) still get a readable name
        return TensorProto.DataType.Name(elem_type).lower()


def _shape_of(type_proto) -> tuple | None:
    if not type_proto.HasField("tensor_type") or not type_proto.tensor_type.HasField("shape"):
        return None
    dims = []
    for d in type_proto.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return tuple(dims)


def build_graph(model: onnx.ModelProto, op_types_to_quantize: frozenset[str] | None = None) -> ModelGraph:
    """Summarise ``model`` (already shape-inferred, nodes uniquely named) as a ModelGraph."""
    g = model.graph
    quant_ops = op_types_to_quantize if op_types_to_quantize else default_quantizable_op_types()
    tensors: dict[str, TensorInfo] = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        tensors[vi.name] = TensorInfo(vi.name, _shape_of(vi.type), _dtype_name(vi.type.tensor_type.elem_type))
    init_names = set()
    for init in g.initializer:
        init_names.add(init.name)
        tensors[init.name] = TensorInfo(init.name, tuple(init.dims), _dtype_name(init.data_type), True)

    producer: dict[str, str] = {}
    consumers: dict[str, list[str]] = {}
    for node in g.node:
        for o in node.output:
            if o:
                producer[o] = node.name
        for i in node.input:
            if i:
                consumers.setdefault(i, []).append(node.name)

    depth: dict[str, int] = {}
    nodes = []
    for idx, node in enumerate(g.node):
        d = 0
        for i in node.input:
            p = producer.get(i)
            if p is not None and p in depth:
                d = max(d, depth[p] + 1)
        depth[node.name] = d
        float_inputs = [i for i in node.input if i and i in tensors and tensors[i].is_float]
        weights = tuple(i for i in node.input if i in init_names and tensors[i].is_float)
        quantizable = node.op_type in quant_ops and bool(float_inputs or any(
            o in tensors and tensors[o].is_float for o in node.output))
        nodes.append(NodeInfo(node.name, node.op_type, tuple(node.input), tuple(node.output), idx,
                              quantizable, weights, d))

    inputs = [tensors[i.name] for i in g.input if i.name not in init_names]
    outputs = [tensors[o.name] for o in g.output]
    return ModelGraph(nodes, tensors, inputs, outputs, producer, consumers)
