"""Results of the FP32-vs-INT8 diff: plain dataclasses the GUI, reports and the JSON contract read.

JSON field names here are a public contract (``qwb analyze --json``): add fields, never rename.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from . import ranking
from .jsonsafe import json_num, json_safe
from .ranking import Thresholds

RESULT_FORMAT = 1

# how the INT8 model ran: ``exact`` = Q/DQ as written (onnxruntime without graph optimization, the numbers
# qdq_loss_debug gives); ``deployed`` = onnxruntime with full optimizations on this machine (fused integer
# kernels: what an application ships). The two differ where the kernels round or saturate otherwise.
KERNELS = ("exact", "deployed")


@dataclass
class ErrorMetrics:
    """How far a quantized tensor is from its float reference, accumulated over all samples.

    SQNR is 10*log10(sum x^2 / sum (x-y)^2) over every element of every sample (power-weighted, not a
    mean of per-sample dB). The per-channel figures expose damage a dominant channel hides; they are over
    channels with signal and non-zero error (dead and exact channels are counted, not averaged).
    """

    sqnr_db: float
    channel_sqnr_mean: float | None
    channel_sqnr_min: float | None
    mse: float
    cosine: float
    max_abs: float
    mean_error: float  # bias: mean of (int8 - fp32)
    channels_exact: int | None = None  # channels with exactly zero error: left out of the channel mean/min
    channels_dead: int | None = None  # channels with no signal: left out of the channel mean/min

    @property
    def effective_sqnr_db(self) -> float:
        """The figure ranking uses: the worse of the tensor SQNR and the mean per-channel SQNR."""
        if self.channel_sqnr_mean is None:
            return self.sqnr_db
        return min(self.sqnr_db, self.channel_sqnr_mean)

    def to_dict(self) -> dict:
        # effective_sqnr_db is written so the report can draw (and point at) the figure the GUI draws
        return json_safe({**asdict(self), "effective_sqnr_db": self.effective_sqnr_db})


@dataclass
class WeightError:
    """Quantization error of a layer's weight tensor, overall and per output channel."""

    tensor: str
    sqnr_db: float
    channel_sqnr: list[float] = field(default_factory=list)

    @property
    def channel_sqnr_min(self) -> float | None:
        """The worst channel, over channels with signal and error (``channel_sqnr`` holds NaN for the others)."""
        counted = [v for v in self.channel_sqnr if v is not None and not math.isnan(v)]
        return min(counted) if counted else None

    def to_dict(self) -> dict:
        return {"tensor": self.tensor, "sqnr_db": json_num(self.sqnr_db), "channel_sqnr_min": json_num(self.channel_sqnr_min),
                "channel_sqnr": [json_num(v) for v in self.channel_sqnr]}


@dataclass
class Hint:
    """A root-cause hint computed from the data, with the setting to try."""

    code: str  # outliers | clipping | per_channel | zero_point_skew | mixed_ranges | bias_shift | mask_path
    message: str
    suggestion: str
    evidence: float = 0.0
    measured: dict | None = None  # what trying the suggestion was measured to cost (e.g. MAC share, latency)

    def to_dict(self) -> dict:
        d = {"code": self.code, "message": self.message, "suggestion": self.suggestion,
             "evidence": json_num(self.evidence)}
        if self.measured is not None:
            d["measured"] = json_safe(self.measured)
        return d


@dataclass
class LayerResult:
    """One quantized (or deliberately float) node: its cumulative, isolated and weight error."""

    node: str
    op_type: str
    output: str  # the FP32 model's tensor compared (the node's output, or its fused Relu/Clip's output)
    int8_tensor: str  # the INT8 model's tensor compared with it (after QuantizeLinear/DequantizeLinear)
    precision: str  # int8 | int16 | fp32
    index: int  # topological position in the FP32 graph
    depth: int
    cumulative: ErrorMetrics
    isolated: ErrorMetrics | None = None
    weight: WeightError | None = None
    amplification: float | None = None  # isolated SQNR - cumulative SQNR, dB: > 0 = carries upstream error
    introduced_db: float | None = None  # cumulative SQNR lost from this node's inputs to its output
    clip_rate: float | None = None  # share of evaluation values outside the quantized range
    flagged: bool = False
    hints: list[Hint] = field(default_factory=list)
    # the layer under deployed kernels ({sqnr_db, kernel_gap_db, lsb_diff_share}); None until the optimized
    # graph is mapped back to source layers
    deployed: dict | None = None
    # what onnxruntime's CPU optimizer really runs when it departs from ``precision`` (a float/16-bit layer it
    # re-quantizes anyway: "int8"); None when it honours it. Counts and exports use this over ``precision``
    runtime_precision: str | None = None
    # how INT8 ran for ``cumulative`` (``KERNELS``): exact, or deployed when only the deployed kernels ran (then
    # ``isolated`` and the exact-vs-deployed figures are None: they need the exact simulation)
    kernels: str = "exact"

    @property
    def effective_precision(self) -> str:
        """The precision the layer runs at on onnxruntime CPU: what summaries and exports count."""
        return self.runtime_precision or self.precision

    def to_dict(self) -> dict:
        return {
            "node": self.node, "op_type": self.op_type, "output": self.output, "int8_tensor": self.int8_tensor,
            "precision": self.precision, "index": self.index, "depth": self.depth,
            "cumulative": self.cumulative.to_dict(),
            "isolated": self.isolated.to_dict() if self.isolated else None,
            # the ranking key: the worse of the isolated tensor SQNR and its per-channel mean
            "rank_key_db": json_num(self.isolated.effective_sqnr_db) if self.isolated else None,
            "weight": self.weight.to_dict() if self.weight else None,
            "amplification": json_num(self.amplification), "introduced_db": json_num(self.introduced_db),
            "clip_rate": json_num(self.clip_rate), "flagged": self.flagged,
            "hints": [h.to_dict() for h in self.hints],
            "deployed": json_safe(self.deployed) if self.deployed is not None else None,
            "runtime_precision": self.runtime_precision, "kernels": self.kernels,
        }


@dataclass
class ClassAccuracy:
    label: int
    count: int
    accuracy_fp32: float
    accuracy_int8: float


@dataclass
class OutputResult:
    """Model-output agreement FP32 vs INT8, by the output's kind (``analyzers.output_kinds``).

    SQNR, cosine and max_abs are filled for every kind; the others are None where the kind or missing labels
    make them meaningless: ``top1_agreement`` and ``per_class`` for classifiers, ``cosine_mean``/``cosine_min``
    (per sample) for embeddings, ``step_agreement`` (per-step argmax) and ``sequence_match`` (greedy CTC
    decodes equal) for sequences. ``accuracy_*`` is the task accuracy against labels: top-1 for a
    classifier, exact match of the decoded sequence for a sequence.
    """

    name: str
    sqnr_db: float
    cosine: float
    top1_agreement: float | None = None
    accuracy_fp32: float | None = None
    accuracy_int8: float | None = None
    per_class: list[ClassAccuracy] = field(default_factory=list)
    kind: str = "dense"
    max_abs: float | None = None
    cosine_mean: float | None = None
    cosine_min: float | None = None
    step_agreement: float | None = None
    sequence_match: float | None = None
    kernels: str = "exact"  # how INT8 ran (``KERNELS``): an output appears once per mode analysed

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "kernels": self.kernels, "sqnr_db": json_num(self.sqnr_db), "cosine": json_num(self.cosine),
                "max_abs": json_num(self.max_abs), "top1_agreement": json_num(self.top1_agreement),
                "cosine_mean": json_num(self.cosine_mean), "cosine_min": json_num(self.cosine_min),
                "step_agreement": json_num(self.step_agreement), "sequence_match": json_num(self.sequence_match),
                "accuracy_fp32": json_num(self.accuracy_fp32), "accuracy_int8": json_num(self.accuracy_int8),
                "per_class": [{"label": c.label, "count": c.count, "accuracy_fp32": json_num(c.accuracy_fp32),
                               "accuracy_int8": json_num(c.accuracy_int8)} for c in self.per_class]}


@dataclass
class AnalysisResult:
    """Everything one analysis run produced; ``layers`` is in topological order."""

    model: str
    recipe: dict
    samples: int
    elapsed_s: float
    peak_rss_mb: float
    outputs: list[OutputResult]
    layers: list[LayerResult]
    thresholds: Thresholds = field(default_factory=Thresholds)
    heatmap: np.ndarray | None = None  # [samples, len(layers)] cumulative SQNR per sample (dB)
    reservoirs: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # output -> (fp32, int8)
    int8_model: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    execution: str = "simulated"  # how INT8 ran: Q/DQ simulated exactly, optimizations off (as qdq_loss_debug)
    notes: list[str] = field(default_factory=list)  # things the user should know about this run
    hints: list[Hint] = field(default_factory=list)  # model-level hints (e.g. attention: MatMul/Gemm-only recipe)
    kernels: str = "exact"  # the output modes analysed: exact | deployed | both
    # how INT8 ran for the layer figures: exact, or deployed with ``kernels = "deployed"`` (exact simulation skipped)
    layer_kernels: str = "exact"
    # share of the model's multiply-accumulates (Conv/Gemm/MatMul, batch 1) in layers this run sets to each
    # precision: {"int8": 0.93, "int16": 0.0, "fp32": 0.07}; None when the shapes could not be inferred
    macs_by_precision: dict | None = None

    @property
    def macs_int8_share(self) -> float | None:
        """Share of the model's MACs in layers the recipe quantizes to INT8 (what the recipe asks for; how much
        onnxruntime really runs in integer kernels is ``qwb bench``'s measured coverage)."""
        return None if not self.macs_by_precision else self.macs_by_precision.get("int8")
    kernel_gap: "KernelGap | None" = None  # integer path, deployed-vs-exact gap, cause, measured remedies (both)

    def outputs_of(self, kernels: str) -> list[OutputResult]:
        """The outputs measured under ``kernels`` (exact | deployed), in model order."""
        return [o for o in self.outputs if o.kernels == kernels]

    def layer(self, node: str) -> LayerResult | None:
        return next((lay for lay in self.layers if lay.node == node), None)

    def ranked(self, by: str = "isolated") -> list[LayerResult]:
        """Worst first, in one of ``analyzers.ranking.RANKINGS`` (see ``analyzers.ranking.ranked``)."""
        return ranking.ranked(self.layers, by)

    def flagged(self) -> list[LayerResult]:
        return [lay for lay in self.ranked("isolated") if lay.flagged]

    def to_dict(self, include_arrays: bool = False) -> dict:
        """JSON-ready dict; ``include_arrays`` adds the heatmap and reservoirs (for project files)."""
        d = {
            "format": RESULT_FORMAT, "model": self.model, "recipe": self.recipe, "samples": self.samples,
            "elapsed_s": json_num(self.elapsed_s), "peak_rss_mb": json_num(self.peak_rss_mb),
            "int8_model": self.int8_model, "execution": self.execution, "kernels": self.kernels,
            "layer_kernels": self.layer_kernels, "notes": list(self.notes),
            "hints": [h.to_dict() for h in self.hints],
            "macs_int8_share": json_num(self.macs_int8_share), "macs_by_precision": json_safe(self.macs_by_precision),
            "thresholds": asdict(self.thresholds),
            "outputs": [o.to_dict() for o in self.outputs], "layers": [lay.to_dict() for lay in self.layers],
            "timings": {k: json_num(v) for k, v in self.timings.items()},
            "kernel_gap": self.kernel_gap.to_dict() if self.kernel_gap is not None else None,
        }
        if include_arrays:
            d["heatmap"] = None if self.heatmap is None else [[json_num(v) for v in row] for row in self.heatmap.tolist()]
            d["reservoirs"] = {t: {"fp32": x.tolist(), "int8": y.tolist()} for t, (x, y) in self.reservoirs.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "AnalysisResult":
        """Inverse of ``to_dict`` (None stands for NaN/inf where JSON could not hold them)."""
        fmt = d.get("format", RESULT_FORMAT)
        if fmt > RESULT_FORMAT:
            raise ValueError(f"analysis result format {fmt} is newer than this version reads ({RESULT_FORMAT})")
        heat = d.get("heatmap")
        return cls(
            model=d["model"], recipe=d["recipe"], samples=d["samples"], elapsed_s=_f(d.get("elapsed_s")),
            peak_rss_mb=_f(d.get("peak_rss_mb")), outputs=[_output_from(o) for o in d["outputs"]],
            layers=[_layer_from(x) for x in d["layers"]], thresholds=Thresholds(**d.get("thresholds", {})),
            heatmap=None if heat is None else np.array([[_f(v) for v in row] for row in heat], np.float32),
            reservoirs={t: (np.asarray(v["fp32"], np.float32), np.asarray(v["int8"], np.float32))
                        for t, v in (d.get("reservoirs") or {}).items()},
            int8_model=d.get("int8_model"), timings={k: _f(v) for k, v in (d.get("timings") or {}).items()},
            execution=d.get("execution", "simulated"), notes=list(d.get("notes", [])),
            hints=[_hint_from(h) for h in d.get("hints", [])], kernels=d.get("kernels", "exact"),
            macs_by_precision=d.get("macs_by_precision"), kernel_gap=_kernel_gap_from(d.get("kernel_gap")),
            layer_kernels=d.get("layer_kernels") or "exact")


def _kernel_gap_from(d: dict | None):
    from .kernel_gap import KernelGap  # noqa: PLC0415 - kernel_gap imports this module (Hint, OutputResult)

    return KernelGap.from_dict(d)


def _f(x) -> float:
    return math.nan if x is None else float(x)


def _opt(x) -> float | None:
    return None if x is None else float(x)


def _metrics_from(d: dict | None) -> ErrorMetrics | None:
    if d is None:
        return None
    return ErrorMetrics(_f(d["sqnr_db"]), _opt(d.get("channel_sqnr_mean")), _opt(d.get("channel_sqnr_min")),
                        _f(d.get("mse")), _f(d.get("cosine")), _f(d.get("max_abs")), _f(d.get("mean_error")),
                        d.get("channels_exact"), d.get("channels_dead"))


def _layer_from(d: dict) -> LayerResult:
    w = d.get("weight")
    return LayerResult(
        d["node"], d["op_type"], d["output"], d.get("int8_tensor", d["output"]), d["precision"], d.get("index", 0),
        d.get("depth", 0), _metrics_from(d["cumulative"]), _metrics_from(d.get("isolated")),
        WeightError(w["tensor"], _f(w["sqnr_db"]), [_f(v) for v in w.get("channel_sqnr", [])]) if w else None,
        _opt(d.get("amplification")), _opt(d.get("introduced_db")), _opt(d.get("clip_rate")), bool(d.get("flagged")),
        [_hint_from(h) for h in d.get("hints", [])], d.get("deployed"), d.get("runtime_precision"),
        d.get("kernels") or "exact")


def _hint_from(h: dict) -> Hint:
    return Hint(h["code"], h["message"], h["suggestion"], _f(h.get("evidence")), h.get("measured"))


def _output_from(d: dict) -> OutputResult:
    # results written before outputs had a kind: top-1 agreement was filled for [N, C] outputs only;
    # before they had a mode, every output was measured with exact kernels
    kind = d.get("kind") or ("classifier" if d.get("top1_agreement") is not None else "dense")
    return OutputResult(d["name"], _f(d["sqnr_db"]), _f(d["cosine"]), _opt(d.get("top1_agreement")),
                        _opt(d.get("accuracy_fp32")), _opt(d.get("accuracy_int8")),
                        [ClassAccuracy(c["label"], c["count"], _f(c["accuracy_fp32"]), _f(c["accuracy_int8"]))
                         for c in d.get("per_class", [])], kind, _opt(d.get("max_abs")), _opt(d.get("cosine_mean")),
                        _opt(d.get("cosine_min")), _opt(d.get("step_agreement")), _opt(d.get("sequence_match")),
                        d.get("kernels") or "exact")
