"""Model-level hints: patterns in the whole graph that call for a different recipe, not a per-layer fix.

Attention (MatMul -> Softmax -> MatMul) is the case that matters most: quantizing everything in a transformer
(LayerNorm inputs, Softmax, GELU, the attention MatMuls fed by masked scores) loses far more than quantizing
only the weight MatMul/Gemm layers, which hold nearly all of the compute.
"""

from __future__ import annotations

import math

import onnx

from .diff_types import Hint, OutputResult

# ops allowed between the scores MatMul and the Softmax (scale, mask, reshape) and between Softmax and the
# context MatMul (dropout, cast)
_SCORE_OPS = {"Div", "Mul", "Add", "Sub", "Where", "Cast", "Reshape", "Transpose", "Identity", "Clip"}
_PROB_OPS = {"Cast", "Dropout", "Identity", "Reshape", "Where"}
MATMUL_ONLY = ["MatMul", "Gemm"]


def attention_blocks(model: onnx.ModelProto) -> int:
    """How many Softmax nodes sit between two MatMuls (scores = Q.K^T, then probabilities . V)."""
    producer = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    count = 0
    for sm in (n for n in model.graph.node if n.op_type == "Softmax"):
        if _reaches_back(sm.input[0], producer) and _reaches_forward(sm.output[0], consumers):
            count += 1
    return count


def _reaches_back(tensor: str, producer: dict, depth: int = 6) -> bool:
    """A MatMul produces ``tensor`` through score ops only (every activation input is followed)."""
    n = producer.get(tensor)
    if n is None or depth == 0:
        return False
    if n.op_type == "MatMul":
        return True
    return n.op_type in _SCORE_OPS and any(_reaches_back(i, producer, depth - 1) for i in n.input if i)


def _reaches_forward(tensor: str, consumers: dict, depth: int = 4) -> bool:
    for n in consumers.get(tensor, []):
        if n.op_type == "MatMul":
            return True
        if depth and n.op_type in _PROB_OPS and any(_reaches_forward(o, consumers, depth - 1) for o in n.output):
            return True
    return False


def model_hints(model: onnx.ModelProto, op_types: list[str]) -> list[Hint]:
    """Hints for the whole model under a recipe quantizing ``op_types`` (empty = every quantizable op)."""
    blocks = attention_blocks(model)
    if blocks and not op_types:
        return [Hint("attention_matmul_only",
                     f"the model has {blocks} attention block(s) (MatMul -> Softmax -> MatMul); quantizing every "
                     "op of a transformer usually costs far more than quantizing only its MatMul/Gemm layers",
                     'quantize only MatMul and Gemm: in the recipe\'s [global] set op_types = ["MatMul", "Gemm"]',
                     float(blocks))]
    return []


SPREAD_SHARE = 0.5  # more than half of the flagged layers have no single cause: the error is spread out
SPREAD_MIN_FLAGGED = 2


def spread_error_hint(layers, activation_type: str) -> Hint | None:
    """When most flagged layers say "no single cause", no per-layer fix will do: suggest 16-bit activations for the
    whole model (unless the recipe already has them). ``layers``: ``LayerResult``s with their hints. Its cost (MAC
    share left in integer kernels, latency) is measured by the caller and put in ``Hint.measured``."""
    if activation_type in ("u16", "s16"):
        return None
    flagged = [lay for lay in layers if lay.flagged]
    spread = [lay for lay in flagged if any(h.code == "no_single_cause" for h in lay.hints)]
    if len(flagged) < SPREAD_MIN_FLAGGED or len(spread) <= SPREAD_SHARE * len(flagged):
        return None
    to = "u16" if activation_type == "u8" else "s16"
    return Hint("activations_16bit",
                f"the error is spread out: {len(spread)} of {len(flagged)} flagged layers show no single cause, so no "
                "per-layer fix stands out; 16-bit activations for the whole model usually recover most of it",
                f'set activation_type = "{to}" in the recipe\'s [global] (weights stay 8-bit), and weigh its cost: '
                "layers with 16-bit activations leave onnxruntime's INT8 kernels", len(spread) / len(flagged))


# the figures that say "INT8 decides otherwise": any change counts; SQNR only past measurement noise
_DECISION_FIGURES = ("top1_agreement", "accuracy_int8", "step_agreement", "sequence_match")
_SQNR_GAP_DB = 0.5


def kernel_gap(exact: list[OutputResult], deployed: list[OutputResult]) -> list[str]:
    """The outputs whose deployed figures differ from their exact ones (the INT8 kernels compute other numbers
    than the Q/DQ the model file describes)."""
    dep = {o.name: o for o in deployed}
    out = []
    for e in exact:
        d = dep.get(e.name)
        if d is None:
            continue
        moved = any(getattr(e, f) is not None and getattr(d, f) is not None and getattr(e, f) != getattr(d, f)
                    for f in _DECISION_FIGURES)
        if moved or (math.isfinite(e.sqnr_db) and math.isfinite(d.sqnr_db) and abs(e.sqnr_db - d.sqnr_db) >= _SQNR_GAP_DB):
            out.append(e.name)
    return out


def saturation_hint(exact: list[OutputResult], deployed: list[OutputResult], saturates: bool) -> Hint | None:
    """On a CPU whose u8 x s8 kernels saturate (``backends.cpuinfo.u8s8_saturates``), a gap between the deployed
    and exact figures is most likely that saturation: name it and the remedies to try (not measured here)."""
    moved = kernel_gap(exact, deployed)
    if not saturates or not moved:
        return None
    return Hint("kernel_saturation",
                f"the deployed figures of {', '.join(moved)} differ from the exact Q/DQ ones: on this CPU (AVX2 or "
                "AVX-512 without VNNI) onnxruntime's u8 x s8 integer kernels add pairs of products in a saturating "
                "16-bit lane (VPMADDUBSW), which the exact simulation does not do",
                "set reduce_range = true in the recipe's [global] (7-bit weights), or run the session with "
                "session.x64quantprecision = \"1\"; or deploy on a CPU with VNNI")
