"""Numbers as people read them, shared by the console and the reports so both print a size the same way."""

from __future__ import annotations

import math

from analyzers.diff_types import OutputResult
from backends.cpuinfo import ARM_FEATURES, ARM_MACHINES, X86_FEATURES, machine, named_features, runtime_flags


def fmt_bytes(n: float | None) -> str:
    """1536 -> '1.5 KB' (binary units, one decimal; whole bytes below 1 KB); None -> '–'."""
    if n is None:
        return "–"
    n = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


# the headline per-layer figure, named alike on every screen (GUI table and layer panel, CLI, report, JSON's
# ``rank_key_db``): what ranking and flagging use, with the tensor and per-channel figures shown beside it
EFFECTIVE_SQNR = "effective SQNR"
EFFECTIVE_SQNR_DEF = "effective SQNR = min(tensor, channel mean)"


def fmt_db(v: float | None, digits: int = 1, none: str = "–") -> str:
    """A dB figure as every screen prints it: one decimal, ``none`` ('–') for none, '∞' for an exact (error-free)
    tensor, no '-0.0'. The one formatting of SQNR, so the GUI, the CLI and the report print the same text (the
    GUI passes its own dash for a missing figure, the one its other empty cells show)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return none
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    text = f"{v:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def mac_share_text(macs: dict | None) -> str:
    """'INT8 MAC share 98.0 % (FP32 2.0 %) of 0.46 M MACs per sample' from ``AnalysisResult.macs_by_precision``."""
    if not macs:
        return "INT8 MAC share unknown (shapes could not be inferred)"
    rest = [f"{k.upper()} {100 * macs[k]:.1f} %" for k in ("int16", "fp32") if macs.get(k)]
    return (f"INT8 MAC share {100 * macs['int8']:.1f} %" + (f" ({', '.join(rest)})" if rest else "")
            + f" of {macs['macs_total'] / 1e6:.3g} M MACs per sample")


def _num(x, fmt: str) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else (
        "inf" if isinstance(x, float) and math.isinf(x) else fmt.format(x))


def kind_figures(o: OutputResult) -> list[str]:
    """The figures that judge an output of ``o.kind`` (agreement first), as the console and reports word them:
    one shared wording so `qwb analyze`, `qwb quantize` and `qwb report` say the same thing."""
    out = []
    if o.kind == "classifier":
        if o.top1_agreement is not None:
            out.append(f"top-1 agreement {o.top1_agreement:.1%}")
        if o.accuracy_fp32 is not None:
            out.append(f"accuracy FP32 {o.accuracy_fp32:.2%} -> INT8 {o.accuracy_int8:.2%}")
    elif o.kind == "embedding":
        out.append(f"cosine mean {_num(o.cosine_mean, '{:.5f}')} (worst sample {_num(o.cosine_min, '{:.5f}')})")
    elif o.kind == "sequence":
        out.append(f"step agreement {_num(o.step_agreement, '{:.1%}')}")
        out.append(f"decoded sequences equal {_num(o.sequence_match, '{:.1%}')}")
        if o.accuracy_fp32 is not None:
            out.append(f"exact match FP32 {o.accuracy_fp32:.2%} -> INT8 {o.accuracy_int8:.2%}")
    else:
        out.append(f"SQNR {_num(o.sqnr_db, '{:.1f}')} dB")
        out.append(f"max-abs error {_num(o.max_abs, '{:.4g}')}")
    return out


def output_figures(o: OutputResult) -> list[str]:
    """``kind_figures`` followed by the figures every kind has (SQNR, cosine over all values)."""
    shared = [f"cosine {_num(o.cosine, '{:.5f}')}"] if o.kind == "dense" else \
        [f"SQNR {_num(o.sqnr_db, '{:.1f}')} dB", f"cosine {_num(o.cosine, '{:.5f}')}"]
    return kind_figures(o) + shared


def cpu_flags_text() -> str:
    """This CPU's integer-kernel features as onnxruntime sees them ('AVX2, AVX-512, AVX-512 VNNI')."""
    table = ARM_FEATURES if machine() in ARM_MACHINES else X86_FEATURES
    return ", ".join(named_features(runtime_flags(), table)) or "no SIMD integer features found"


def kernels_label(kernels: str) -> str:
    """What an execution mode means, in the words every screen uses: the same figure is labelled alike."""
    if kernels == "deployed":
        return f"deployed kernels: onnxruntime, full optimizations, this CPU: {cpu_flags_text()}"
    return "exact kernels: Q/DQ as written, onnxruntime without graph optimization, as qdq_loss_debug"
