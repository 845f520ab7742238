"""Units of change: groups of layers that share quantized tensors, so changing a group really changes precision.

Excluding one layer whose input activation is also read by a quantized neighbour leaves that Q/DQ pair in
place (and onnxruntime's CPU optimizer then re-quantizes the "float" layer's weights): such a layer alone is
not a candidate. Layers are joined when they read the same quantized activation or share a weight; a group is
then moved as one (to 16-bit, to float, or to another percentile).

Moving a group to float also sets the quantized layers that read its output to float: onnxruntime's quantizer
quantizes a layer's output for its own fused kernel, so a float layer between two INT8 layers reads a DQ and
feeds a Q, and onnxruntime's CPU optimizer quantizes its weights anyway (``quantize.
float_layers_requantized_at_runtime``). With its readers in float too, its output keeps no Q and it runs in float.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx

from analyzers.qdq_match import match
from backends.macs import count_macs

from ..graph import ModelGraph


@dataclass
class Group:
    """Layers changed together; ``tensors`` are the quantized activations they read (the shared Q/DQ pairs)."""

    name: str
    nodes: list[str]
    op_types: list[str]
    tensors: list[str] = field(default_factory=list)
    macs: int = 0  # multiply-accumulates per sample of its Conv/Gemm/MatMul layers
    float_nodes: list[str] = field(default_factory=list)  # what the float move sets to FP32 (see find_groups)
    range_owners: list[str] = field(default_factory=list)  # nodes whose overrides set ``tensors``' ranges

    def to_dict(self) -> dict:
        return {"name": self.name, "nodes": list(self.nodes), "op_types": list(self.op_types),
                "tensors": list(self.tensors), "macs": self.macs, "float_nodes": list(self.float_nodes),
                "range_owners": list(self.range_owners)}


class _UnionFind:  # hand-written: a dozen lines, no dependency provides it for plain strings
    def __init__(self, items):
        self.parent = {i: i for i in items}

    def find(self, x):
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


def find_groups(fp32: onnx.ModelProto, int8: onnx.ModelProto, op_types: set[str], excluded: set[str] | None = None,
                input_shapes: dict[str, tuple] | None = None) -> list[Group]:
    """Groups of the layers quantized in ``int8`` (the fully quantized model), in topological order."""
    m = match(fp32, int8, op_types, excluded or set())
    layers = [lay for lay in m.layers if lay.quantized]
    names = [lay.node for lay in layers]
    uf = _UnionFind(names)
    by_tensor: dict[str, list[str]] = {}
    by_weight: dict[str, list[str]] = {}
    fp32_nodes = {n.name: n for n in fp32.graph.node}
    for lay in layers:
        for t in fp32_nodes[lay.node].input:
            if t in m.act_quant:
                by_tensor.setdefault(t, []).append(lay.node)
        if lay.weight:
            by_weight.setdefault(lay.weight, []).append(lay.node)
    for members in list(by_tensor.values()) + list(by_weight.values()):
        for other in members[1:]:
            uf.union(members[0], other)
    macs = {}
    if input_shapes:
        macs = {n.name: n.macs or 0 for n in count_macs(fp32, input_shapes)}
    order = {n: i for i, n in enumerate(names)}
    members: dict[str, list[str]] = {}
    for n in names:
        members.setdefault(uf.find(n), []).append(n)
    ops = {lay.node: lay.op_type for lay in layers}
    out_of = {lay.node: lay.fp32_tensor for lay in layers}
    groups = []
    for nodes in sorted(members.values(), key=lambda ns: order[ns[0]]):
        tensors = sorted({t for t, readers in by_tensor.items() if set(readers) & set(nodes)})
        label = nodes[0] + (f" (+{len(nodes) - 1})" if len(nodes) > 1 else "")
        readers = {r for n in nodes for r in by_tensor.get(out_of[n], [])} - set(nodes)
        float_nodes = nodes + sorted(readers, key=order.get)
        groups.append(Group(label, nodes, [ops[n] for n in nodes], tensors, sum(macs.get(n, 0) for n in nodes),
                            float_nodes))
    return groups


def attach_range_owners(groups: list[Group], graph: ModelGraph) -> None:
    """Set each group's ``range_owners``: a percentile or method override on them changes the range of the
    activations the group reads (its own nodes' overrides would change its output's range, the next group's)."""
    for g in groups:
        g.range_owners = sorted({o for t in g.tensors for o in graph.tensor_owners(t)})
