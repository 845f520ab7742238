"""INT8 coverage: which nodes onnxruntime really runs in integer kernels, after its own optimizations.

A QDQ model only *asks* for INT8; onnxruntime decides at load time which DequantizeLinear→op→
QuantizeLinear groups become integer kernels (QLinearConv, QGemm, ...) and which stay float between
the DequantizeLinear and QuantizeLinear. We read that decision from the graph onnxruntime writes with
``SessionOptions.optimized_model_filepath`` (at the 'extended' level, where these fusions happen; the
'all' level only adds layout passes and renames nodes) and the data types and execution provider of
each node from onnxruntime's profiler, then weight it by multiply-accumulates of the model's compute.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field

from .macs import NodeMacs

CONVERT_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"})
# integer kernels of onnxruntime (QLinear* are caught by prefix)
INTEGER_OPS = frozenset({"QGemm", "MatMulInteger", "ConvInteger", "MatMulIntegerToFloat", "DynamicQuantizeMatMul",
                         "QAttention", "QEmbedLayerNormalization", "DynamicQuantizeLSTM", "QOrderedMatMul",
                         "NhwcMaxPool"})
# ops onnxruntime's CPU provider turns into integer kernels when surrounded by DequantizeLinear/QuantizeLinear
# (onnxruntime/core/optimizer/qdq_transformer/selectors_actions/qdq_selector_action_transformer.cc)
CPU_QDQ_FUSED = frozenset({"Conv", "MatMul", "Gemm", "Add", "Mul", "Concat", "AveragePool", "GlobalAveragePool",
                           "LeakyRelu", "Sigmoid", "Softmax", "Where"})
CPU_QDQ_DROPPED = frozenset({"Expand", "Flatten", "Gather", "GatherElements", "Reshape", "Slice", "Squeeze", "Tile",
                             "Transpose", "Unsqueeze", "MaxPool", "ReduceMax", "ReduceMin", "Resize", "Split",
                             "ArgMax"})
NEEDS_OUTPUT_Q = CPU_QDQ_FUSED - {"MatMul", "Gemm"}  # MatMul/Gemm may keep a float output
INT8_TYPES = frozenset({"int8", "uint8"})
INT16_TYPES = frozenset({"int16", "uint16"})
FLOAT_TYPES = frozenset({"float", "float16", "bfloat16", "double"})


@dataclass
class MacNode:
    """One compute node of the model and how onnxruntime runs it."""

    name: str
    op_type: str  # in the model file
    runs_as: str | None  # op type after optimization (None: not found)
    macs: int | None
    int8: bool
    reason: str = ""  # why it is not INT8, when it is not


@dataclass
class FloatNode:
    """A node that computes in float; ``fallback`` when it sits between DequantizeLinear/QuantizeLinear."""

    name: str
    op_type: str
    fallback: bool
    reason: str
    provider: str | None = None


@dataclass
class Int8Coverage:
    """Integer vs float execution of one INT8 model on one backend, by node and by multiply-accumulates."""

    nodes_int8: int
    nodes_float: int
    nodes_convert: int  # QuantizeLinear / DequantizeLinear left at the edges of integer regions
    nodes_other: int  # shape arithmetic, 16-bit data movement, unknown
    macs_total: int  # per sample (shapes at batch 1), Conv/ConvTranspose/Gemm/MatMul and integer forms
    macs_int8: int
    by_op_type: dict = field(default_factory=dict)  # op -> {"int8": n, "float": n, ...}
    mac_nodes: list = field(default_factory=list)  # [MacNode]
    float_nodes: list = field(default_factory=list)  # [FloatNode]
    providers: dict = field(default_factory=dict)  # provider -> node count
    notes: list = field(default_factory=list)

    @property
    def macs_int8_share(self) -> float | None:
        return self.macs_int8 / self.macs_total if self.macs_total else None

    @property
    def fallbacks(self) -> list:
        return [f for f in self.float_nodes if f.fallback]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["macs_int8_share"] = self.macs_int8_share
        return d

    def summary(self) -> str:
        """The one line ``qwb bench`` prints."""
        share = "n/a" if self.macs_int8_share is None else f"{self.macs_int8_share:.1%}"
        return f"{self.nodes_int8} int8 / {self.nodes_float} float nodes, {share} of MACs in INT8"


def load_profile(path: str) -> dict[str, dict]:
    """Node name -> the profiler's args for it (op_name, provider, input_type_shape, output_type_shape)."""
    with open(path, encoding="utf-8") as f:
        events = json.load(f)
    out = {}
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            out.setdefault(e["name"][: -len("_kernel_time")], e.get("args", {}))
    return out


def _first_dtype(entries) -> str | None:
    for e in entries or []:
        for dtype in e:
            return dtype
    return None


def _is_integer_kernel(op: str) -> bool:
    return op in INTEGER_OPS or op.startswith("QLinear")


def _category(op: str, args: dict | None) -> str:
    if op in CONVERT_OPS:
        return "convert"
    if _is_integer_kernel(op):
        return "int8"
    if args is None:
        return "other"
    dtype = _first_dtype(args.get("input_type_shape")) or _first_dtype(args.get("output_type_shape"))
    if dtype in INT8_TYPES:
        return "int8"
    if dtype in FLOAT_TYPES:
        return "float"
    return "other"


_SUFFIX = re.compile(r"(_token_\d+|_nchwc)+$")


def _base_name(name: str) -> str:
    """Undo the renaming onnxruntime's fusions apply ('fused X', 'X_token_3', 'X_nchwc')."""
    if name.startswith("fused "):
        name = name[len("fused "):]
    return _SUFFIX.sub("", name)


def analyze(model, optimized, profile: dict[str, dict], macs: list[NodeMacs]) -> Int8Coverage:
    """Coverage of ``optimized`` (the graph onnxruntime runs) for ``model`` (the INT8 file as written).

    ``model`` and ``optimized`` are ``onnx.ModelProto`` (weights not needed), ``profile`` comes from
    :func:`load_profile`, ``macs`` from :func:`backends.macs.count_macs` on ``model``.
    """
    g = optimized.graph
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list] = defaultdict(list)
    for n in g.node:
        for i in n.input:
            consumers[i].append(n)
    inits = {i.name for i in g.initializer}

    by_op: dict[str, Counter] = defaultdict(Counter)
    totals: Counter = Counter()
    providers: Counter = Counter()
    category: dict[str, str] = {}
    float_nodes: list[FloatNode] = []
    for n in g.node:
        args = profile.get(n.name)
        cat = _category(n.op_type, args)
        category[n.name] = cat
        by_op[n.op_type][cat] += 1
        totals[cat] += 1
        provider = args.get("provider") if args else None
        if provider:
            providers[provider] += 1
        if cat == "float":
            fallback, reason = _float_reason(n, producer, consumers, inits, profile, provider)
            float_nodes.append(FloatNode(n.name, n.op_type, fallback, reason, provider))

    notes = []
    missing = [n.name for n in g.node if n.name not in profile]
    if missing:
        notes.append(f"{len(missing)} node(s) did not appear in onnxruntime's profile (counted as 'other'): "
                     + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))

    by_name = {_base_name(n.name): n for n in g.node}
    by_weight: dict[str, object] = {}
    for n in g.node:
        for i in n.input:
            if i in inits:
                by_weight.setdefault(i, n)
    float_by_name = {f.name: f for f in float_nodes}
    pre = {n.name: n for n in model.graph.node}
    pre_inits = {i.name: i for i in model.graph.initializer}
    mac_nodes, macs_total, macs_int8 = [], 0, 0
    for m in macs:
        node = by_name.get(m.name) or (by_weight.get(m.weight) if m.weight else None)
        if node is None:
            mac_nodes.append(MacNode(m.name, m.op_type, None, m.macs, False,
                                     "not found in onnxruntime's optimized graph (counted as float)"))
        else:
            is_int8 = category.get(node.name) == "int8"
            reason = ""
            if not is_int8:
                f = float_by_name.get(node.name)
                reason = f.reason if f else f"runs as {node.op_type} on {category.get(node.name)} data"
            mac_nodes.append(MacNode(m.name, m.op_type, node.op_type, m.macs, is_int8, reason))
            if is_int8 and _float_weight_in_file(pre.get(m.name), pre_inits):
                notes.append(f"{m.name} is float in the model file, but onnxruntime quantized its weight at load "
                             f"time and runs it as {node.op_type} (its input and output are quantized); to really "
                             "keep it in float, leave its input and output unquantized too")
        if m.macs is None:
            notes.append(f"{m.name}: MACs unknown (shape inference could not resolve its shapes)")
            continue
        macs_total += m.macs
        if mac_nodes[-1].int8:
            macs_int8 += m.macs
    return Int8Coverage(totals["int8"], totals["float"], totals["convert"], totals["other"], macs_total, macs_int8,
                        {op: dict(c) for op, c in sorted(by_op.items())}, mac_nodes, float_nodes, dict(providers),
                        notes)


def _float_weight_in_file(node, inits: dict) -> bool:
    """The node's weight input is a float initializer in the file (not behind a DequantizeLinear)."""
    if node is None or len(node.input) < 2:
        return False
    w = inits.get(node.input[1])
    return w is not None and w.data_type in (1, 10, 11, 16)  # float, float16, double, bfloat16


def _float_reason(n, producer, consumers, inits, profile, provider) -> tuple[bool, str]:
    """Is this float node a fallback (next to DequantizeLinear/QuantizeLinear), and why is it float."""
    dq = {i: producer[i] for i in n.input if i in producer and producer[i].op_type == "DequantizeLinear"}
    act_dq = [d for d in dq.values() if d.input[0] not in inits]
    q_outputs = [c for o in n.output for c in consumers.get(o, []) if c.op_type == "QuantizeLinear"]
    op = n.op_type
    if not act_dq and not q_outputs:
        if dq:
            return True, f"only its weight is quantized: onnxruntime dequantizes it and runs {op} in float"
        return False, "not quantized in the model (no QuantizeLinear/DequantizeLinear around it)"
    if provider and provider != "CPUExecutionProvider":
        return True, (f"runs on {provider}, which executes DequantizeLinear→{op}→QuantizeLinear in float "
                      "(INT8 on NVIDIA GPUs needs the TensorRT provider)")
    in16 = any(_first_dtype((profile.get(d.name) or {}).get("input_type_shape")) in INT16_TYPES for d in act_dq)
    out16 = any(_first_dtype((profile.get(q.name) or {}).get("output_type_shape")) in INT16_TYPES
                for q in q_outputs)
    if in16 or out16:
        where = "input and output are" if in16 and out16 else ("input is" if in16 else "output is")
        why = "" if in16 and out16 else " (for a 16-bit neighbour)"
        return True, (f"its {where} quantized to 16 bits{why}: onnxruntime has no integer {op} kernel for "
                      "16-bit data, so it runs in float")
    in8 = {_first_dtype((profile.get(d.name) or {}).get("input_type_shape")) for d in act_dq} & INT8_TYPES
    out8 = {_first_dtype((profile.get(q.name) or {}).get("output_type_shape")) for q in q_outputs} & INT8_TYPES
    if op in CPU_QDQ_FUSED and "int8" in in8 | out8:
        return True, (f"8-bit activations {'/'.join(sorted(in8)) or '-'} in, {'/'.join(sorted(out8)) or '-'} out: "
                      f"onnxruntime made no integer {op} from signed (s8) activations on this CPU; quantize "
                      "activations as u8")
    if op not in CPU_QDQ_FUSED and op not in CPU_QDQ_DROPPED:
        return True, (f"onnxruntime has no integer kernel for {op}: it runs in float on dequantized input"
                      + (" and is quantized again after" if q_outputs else ""))
    w = n.input[1] if op in ("Conv", "MatMul", "Gemm") and len(n.input) > 1 else None
    if w and w in inits and w not in dq:
        return True, (f"its weight {w} is a float initializer (the layer was left out of quantization), so "
                      f"onnxruntime runs {op} in float")
    if op in NEEDS_OUTPUT_Q and not q_outputs:
        return True, (f"its output is not quantized (no QuantizeLinear after it), which onnxruntime needs to "
                      f"make {op} an integer kernel")
    if any(i and i not in inits and i not in dq for i in n.input):
        return True, f"an input of {op} is not quantized (no DequantizeLinear before it)"
    return True, (f"onnxruntime's QDQ fusion did not apply to {op} (a type, scale or attribute combination "
                  "its integer kernel does not support)")
