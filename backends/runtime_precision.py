"""Precision requests honoured at runtime: does onnxruntime really run in float what the model keeps in float?

A QDQ model keeps a layer in float (or at 16 bits) by leaving its compute out of QuantizeLinear/
DequantizeLinear. onnxruntime's CPU optimizer does not read intent: a float Add, Mul, Concat, MatMul or
Conv whose inputs arrive through DequantizeLinear and whose output leaves through QuantizeLinear (because
its neighbours are quantized) is fused into an integer kernel anyway (QLinearAdd, MatMulIntegerToFloat, a
QLinearConv with weights quantized at load time, ...), and data movement (MaxPool, Reshape) between
quantized neighbours runs on the 8-bit data. We read the truth from the graph onnxruntime writes with
``optimized_model_filepath`` (the 'extended' level, where the QDQ fusions happen; see coverage.py), node by
node, instead of guessing from patterns.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import onnx

from .coverage import CPU_QDQ_DROPPED, _base_name, _is_integer_kernel
from .runner import SessionConfig, build_session

# integer kernels whose output is float (dequantized inside the kernel)
FLOAT_OUTPUT_KERNELS = frozenset({"MatMulIntegerToFloat", "DynamicQuantizeMatMul", "MatMulInteger", "ConvInteger",
                                  "QAttention", "DynamicQuantizeLSTM", "QEmbedLayerNormalization"})
# ops whose QDQ fusion onnxruntime makes without a QuantizeLinear after them (DQ -> MatMul -> float); for
# these, keeping the consumer in float is not enough: an input must stay unquantized
FUSED_WITHOUT_OUTPUT_Q = frozenset({"MatMul"})
ACTIVATIONS = frozenset({"Relu", "Clip"})
_8BIT = (onnx.TensorProto.UINT8, onnx.TensorProto.INT8)


@dataclass
class RuntimeLayer:
    """How onnxruntime runs one layer the recipe keeps in float or at 16 bits.

    ``int8`` is True when it does not honour the request: the layer runs in an 8-bit integer kernel
    (``exact`` False) or moves 8-bit data (``exact`` True: MaxPool, Reshape, ... give the same values as in
    float on the quantized data, but the data stays 8-bit)."""

    node: str
    requested: str  # fp32 | int16
    runs_as: str | None  # op type in onnxruntime's optimized graph; None: folded into another node
    int8: bool
    exact: bool = False
    neighbours: list | None = None  # the quantized layers to also keep in float so the request holds
    fix: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def message(self) -> str:
        """One sentence for notes and hints."""
        want = "in float" if self.requested == "fp32" else "at 16 bits"
        if self.exact:
            return (f"the recipe keeps {self.node} {want}, but onnxruntime's CPU optimizer drops the Q/DQ around it "
                    f"and runs {self.runs_as} on the 8-bit data (exact on that data, yet the values stay 8-bit)")
        return (f"the recipe keeps {self.node} {want}, but onnxruntime's CPU optimizer re-quantizes it and runs "
                f"{self.runs_as}, an 8-bit integer kernel, because quantized layers feed"
                f"{'' if self.runs_as in FLOAT_OUTPUT_KERNELS else ' and consume'} it")


def optimized_graph(int8_model: str | Path, folder: str | Path, providers: list | None = None) -> onnx.ModelProto:
    """The graph onnxruntime runs for ``int8_model`` (weights left in a side file, not loaded)."""
    path = Path(folder) / "optimized.onnx"
    cfg = SessionConfig(str(int8_model), level="extended", threads=1, optimized_model_path=str(path),
                        **({"providers": providers} if providers else {}))
    build_session(cfg)
    return onnx.load(str(path), load_external_data=False)


def eight_bit_tensors(graph: onnx.GraphProto) -> set[str]:
    """Tensors of ``graph`` (an optimized graph, in topological order) that hold 8-bit integer data."""
    inits = {i.name: i for i in graph.initializer}
    out: set[str] = set()
    for n in graph.node:
        op = n.op_type
        if op == "QuantizeLinear":
            zp = inits.get(n.input[2]) if len(n.input) > 2 else None
            if zp is None or zp.data_type in _8BIT:
                out.update(n.output[:1])
        elif _is_integer_kernel(op) and op not in FLOAT_OUTPUT_KERNELS and op != "DequantizeLinear":
            if op != "QGemm" or len(n.input) > 7:  # QGemm without y_scale writes float
                out.update(n.output[:1])
        elif op in CPU_QDQ_DROPPED and n.input and n.input[0] in out:
            out.update(n.output[:1] if op != "Split" else n.output)
    return out


def check(int8_model: str | Path, requested: dict[str, str], providers: list | None = None) -> dict[str, RuntimeLayer]:
    """How onnxruntime runs each layer of ``requested`` (node name -> fp32 | int16) in ``int8_model``.

    Builds one session (no inference) to get onnxruntime's optimized graph; the fix for a layer that runs
    in 8 bits anyway names its quantized neighbours in the model file."""
    if not requested:
        return {}
    with tempfile.TemporaryDirectory(prefix="qwb-runtime-") as td:
        opt = optimized_graph(int8_model, td, providers)
    qdq = onnx.load(str(int8_model), load_external_data=False)
    return classify(qdq, opt, requested)


def _by_name(g: onnx.GraphProto) -> dict:
    """Nodes of an optimized graph by the name of the model-file node they run (fusions rename some)."""
    by_name = {}
    for n in g.node:
        by_name.setdefault(n.name, n)
    for n in g.node:  # renamed by a fusion ('fused X', 'X_token_3')
        by_name.setdefault(_base_name(n.name), n)
    return by_name


def runtime_int8_layers(int8_model: str | Path, nodes, providers: list | None = None) -> set[str]:
    """Which of ``nodes`` (model-file node names) onnxruntime runs in an 8-bit integer kernel, whatever the
    recipe asked: the deployed INT8 coverage (a 16-bit layer's 8-bit neighbour that loses its fusion is not,
    a float layer re-quantized by the optimizer is). One session build, no inference."""
    with tempfile.TemporaryDirectory(prefix="qwb-runtime-") as td:
        opt = optimized_graph(int8_model, td, providers)
    by_name = _by_name(opt.graph)
    return {n for n in nodes if n in by_name and _is_integer_kernel(by_name[n].op_type)}


def classify(qdq: onnx.ModelProto, opt: onnx.ModelProto, requested: dict[str, str]) -> dict[str, RuntimeLayer]:
    """``check`` on graphs already loaded: ``qdq`` (the file) and ``opt`` (what onnxruntime runs)."""
    g = opt.graph
    by_name = _by_name(g)
    eight = eight_bit_tensors(g)
    out = {}
    for node, want in requested.items():
        o = by_name.get(node)
        if o is None:
            out[node] = RuntimeLayer(node, want, None, False)
            continue
        if _is_integer_kernel(o.op_type):
            lay = RuntimeLayer(node, want, o.op_type, True)
        elif o.op_type in CPU_QDQ_DROPPED and o.input and o.input[0] in eight:
            lay = RuntimeLayer(node, want, o.op_type, True, exact=True)
        else:
            lay = RuntimeLayer(node, want, o.op_type, False)
        if lay.int8:
            _add_fix(lay, qdq, set(requested))
        out[node] = lay
    return out


def _add_fix(lay: RuntimeLayer, qdq: onnx.ModelProto, kept: set[str]) -> None:
    """Name the quantized neighbours that make the fusion possible, and which of them to keep in float."""
    g = qdq.graph
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    inits = {i.name for i in g.initializer}
    node = next((n for n in g.node if n.name == lay.node), None)
    if node is None:
        return
    qdq_ops = ("QuantizeLinear", "DequantizeLinear")

    def source(t):  # the layer behind DequantizeLinear <- QuantizeLinear <- layer
        seen = 0
        while t in producer and producer[t].op_type in qdq_ops and seen < 4:
            t, seen = producer[t].input[0], seen + 1
        p = producer.get(t)
        if p is not None and p.op_type in ACTIVATIONS and p.input and p.input[0] in producer:
            p = producer[p.input[0]]  # a Relu/Clip belongs to the layer before it (fused into its kernel)
        return p.name if p is not None and seen and p.op_type not in qdq_ops else None

    def sinks(t):  # layers reading ``t`` through QuantizeLinear -> DequantizeLinear
        out, todo = [], [(t, 0)]
        while todo:
            cur, depth = todo.pop()
            for c in consumers.get(cur, []):
                if c.op_type in qdq_ops and depth < 4:
                    todo += [(o, depth + 1) for o in c.output]
                elif depth:
                    out.append(c.name)
                elif c.op_type in ACTIVATIONS:  # fused into this layer's kernel: look past it
                    todo += [(o, 0) for o in c.output]
        return out

    def chain(t):  # the nodes between ``t`` and the compute layer that quantizes it: data movement, then it
        out, steps = [], 0
        while t in producer and steps < 16:
            p, steps = producer[t], steps + 1
            if p.op_type not in qdq_ops:
                if p.name not in kept:
                    out.append(p.name)
                if p.op_type not in CPU_QDQ_DROPPED:
                    break
            t = p.input[0] if p.input else ""
        return out

    producers = [p for i in node.input if i and i not in inits for p in [source(i)] if p and p not in kept]
    users = [c for o in node.output for c in sinks(o) if c not in kept]
    producers, users = list(dict.fromkeys(producers)), list(dict.fromkeys(users))
    if node.op_type in FUSED_WITHOUT_OUTPUT_Q:
        paths = [c for i in node.input if i and i not in inits and i in producer for c in [chain(i)] if c]
        producers = min(paths, key=len) if paths else []
    want = "in float" if lay.requested == "fp32" else "at 16 bits"
    if node.op_type in FUSED_WITHOUT_OUTPUT_Q and producers:
        lay.neighbours = producers
        lay.fix = (f"also keep {_names(producers, 'and')} {want} (the path to one of its inputs): onnxruntime fuses a "
                   f"{node.op_type} whose inputs are both quantized even when its output is not")
    elif users:
        lay.neighbours = users
        lay.fix = (f"also keep {_names(users, 'and')} {want}, so that {lay.node}'s output is not quantized and "
                   "onnxruntime has no Q/DQ group to fuse")
    elif producers:
        lay.neighbours = producers
        lay.fix = f"also keep {_names(producers, 'and')} {want}, so that {lay.node}'s input is not quantized"
    else:
        lay.fix = "keep its quantized neighbours in float too, or accept INT8 for it on onnxruntime CPU"


def _names(names: list[str], conj: str) -> str:
    shown = names[:4] + ([f"{len(names) - 4} more"] if len(names) > 4 else [])
    return ", ".join(shown[:-1]) + f" {conj} " + shown[-1] if len(shown) > 1 else shown[0]
