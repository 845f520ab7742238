"""The report's data: one object that the HTML, JSON and Markdown are all rendered from.

``ReportData.to_dict()`` *is* the JSON file (``"format": 1``, add fields, never rename), and the HTML
and Markdown renderers read that same dict, so a number on the page is the number in the JSON by
construction (the HTML carries each value's JSON pointer, which the tests follow). ``from_dict`` reads a
saved report back, so a report can be re-rendered without the model or the data.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field, fields, is_dataclass

from analyzers.diff_types import AnalysisResult
from analyzers.jsonsafe import json_num

from ..compare import LayerChange, OutputChange  # noqa: F401 - the comparison's rows, resolved by _from_json

REPORT_FORMAT = 1
REPORT_KIND = "qwb-report"

num = json_num  # the one JSON-safe float conversion, shared with the analysis results


@dataclass
class TensorInfoRow:
    """A model input or output: name, shape (ints or symbolic names), element type."""

    name: str
    shape: list | None
    dtype: str


@dataclass
class ModelSummary:
    """What was quantized: identity, size, graph statistics and the file's own descriptive fields.

    ``producer``, ``doc_string`` and ``metadata`` come straight from the model file (untrusted text).
    """

    source: str
    name: str
    sha256: str
    file_bytes: int | None
    prepared_bytes: int
    parameters: int
    nodes: int
    quantizable: int
    ir_version: int
    opsets: dict[str, int]
    inputs: list[TensorInfoRow]
    outputs: list[TensorInfoRow]
    op_types: dict[str, int]
    producer: str = ""
    producer_version: str = ""
    domain: str = ""
    model_version: int = 0
    graph_name: str = ""
    doc_string: str = ""
    graph_doc_string: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class Environment:
    """Where the numbers were computed: Python, OS, CPU, package versions, onnxruntime providers."""

    python: str
    platform: str
    cpu: str
    cores_logical: int | None
    packages: dict[str, str]
    providers: list[str]
    execution: str  # how INT8 was run for the analysis


@dataclass
class DataSet:
    """One data set used: what it is, how many samples, whether it has labels, a content hash."""

    role: str  # calibration | evaluation
    description: str
    samples: int
    labels: bool
    sha256: str


@dataclass
class CalibRange:
    """The range a recipe gives a tensor and what it does to the calibration data (predicted)."""

    lo: float
    hi: float
    method: str
    percentile: float | None
    qtype: str
    clip_rate: float | None = None
    grid_usage: float | None = None
    outlier_share: float | None = None
    predicted_sqnr_db: float | None = None


@dataclass
class TensorHistogram:
    """A flagged layer's output on the calibration data, re-binned for display, with its range(s).

    ``counts`` are exact sums of the calibration histogram's fine bins over ``len(counts)`` equal bins
    spanning [``lo``, ``hi``]. ``ranges`` maps a run label to that run's calibration range. ``methods``
    holds the calibration lab's comparison (range and predicted SQNR per method) when it was computed.
    """

    tensor: str
    node: str
    op_type: str
    why: str  # flagged | worst
    lo: float
    hi: float
    counts: list[int]
    min: float
    max: float
    count: int
    zeros: int
    ranges: dict[str, CalibRange]
    float_in: list[str] = field(default_factory=list)  # runs that keep this layer in FP32 (no range applies)
    methods: dict[str, dict] | None = None
    winner: str | None = None


@dataclass
class LatencyRow:
    """One model timed on one backend: the latency figures of ``qwb bench``'s JSON contract."""

    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    std_ms: float | None
    throughput: float | None
    # the spread of the p50 over rounds of the timed runs (``backends.stats``); None in reports before it was kept
    rounds: int | None = None
    p50_p10_ms: float | None = None
    p50_p90_ms: float | None = None


@dataclass
class BackendBench:
    """FP32 vs INT8 on one backend, with how much of the INT8 model really runs in integer kernels."""

    backend: str
    available: bool
    reason: str | None = None
    emulated: bool = False
    batch: int | None = None
    threads: int | None = None
    fp32: LatencyRow | None = None
    int8: LatencyRow | None = None
    speedup: float | None = None
    nodes_int8: int | None = None
    nodes_float: int | None = None
    macs_int8_share: float | None = None
    float_nodes: list[str] = field(default_factory=list)  # "name (op): reason"
    failures: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class BenchSummary:
    """Benchmark results of one run (one INT8 model), per backend; ``host`` is the machine timed on."""

    backends: list[BackendBench]
    host: dict[str, typing.Any] = field(default_factory=dict)
    settings: dict[str, typing.Any] = field(default_factory=dict)


@dataclass
class ExclusionLayer:
    """A layer the recipe keeps in float (``fp32``) or at 16 bits (``int16``): the fix to hand on."""

    node: str
    op_type: str
    precision: str
    outputs: list[str]  # the node's output tensor names (TFLite's denylist speaks in these)
    in_source: bool = True  # False: the name was given by Quant Workbench (the source left it unnamed)
    # set when onnxruntime's CPU optimizer runs this layer in 8 bits anyway: the kernel it runs and the fix
    runtime_int8: str | None = None
    runtime_fix: str = ""


@dataclass
class Exclusions:
    """The fix in the forms other toolchains take, keyed by format name (ort, polygraphy, nncf, tflite)."""

    layers: list[ExclusionLayer]
    formats: dict[str, str]
    notes: list[str] = field(default_factory=list)


@dataclass
class RunSummary:
    """The headline figures of one run (primary output = the first one), as the summary cards show them."""

    samples: int
    layers: int
    flagged: int
    int8_layers: int
    int16_layers: int
    fp32_layers: int
    output: str | None = None
    output_sqnr_db: float | None = None
    top1_agreement: float | None = None
    accuracy_fp32: float | None = None
    accuracy_int8: float | None = None
    accuracy_delta: float | None = None  # INT8 - FP32, as a fraction
    worst_node: str | None = None
    worst_op: str | None = None
    worst_isolated_db: float | None = None
    output_kind: str | None = None  # the primary output's kind, which picks the figures below
    cosine_mean: float | None = None  # embedding: per-sample cosine
    cosine_min: float | None = None
    step_agreement: float | None = None  # sequence: per-step argmax, and decoded sequences equal
    sequence_match: float | None = None
    max_abs: float | None = None
    kernels: str | None = None  # the execution mode of the figures above (exact when the run has it)
    deployed: "RunSummary | None" = None  # the same figures under deployed kernels, when the run has both modes
    macs_int8_share: float | None = None  # share of the model's MACs in layers that run in INT8
    # layers the recipe keeps in float/16 bits that onnxruntime's CPU optimizer runs in INT8 anyway: counted in
    # int8_layers and the MAC share, never in fp32_layers/int16_layers
    runtime_int8_layers: int = 0

    @classmethod
    def of(cls, a: AnalysisResult, kernels: str | None = None) -> "RunSummary":
        """Summarise an analysis result: the first output of mode ``kernels`` (default: of the first mode, exact
        when present), with the deployed figures beside it when the run measured both."""
        prec = [lay.effective_precision for lay in a.layers]
        outs = a.outputs if kernels is None else a.outputs_of(kernels)
        o = outs[0] if outs else None
        ranked = [lay for lay in a.ranked("isolated") if lay.isolated is not None]
        worst = ranked[0] if ranked else None
        fp, i8 = (num(o.accuracy_fp32), num(o.accuracy_int8)) if o else (None, None)
        return cls(a.samples, len(a.layers), sum(lay.flagged for lay in a.layers), prec.count("int8"),
                   prec.count("int16"), prec.count("fp32"), o.name if o else None, num(o.sqnr_db) if o else None,
                   num(o.top1_agreement) if o else None, fp, i8, (i8 - fp) if fp is not None and i8 is not None
                   else None, worst.node if worst else None, worst.op_type if worst else None,
                   num(worst.isolated.sqnr_db) if worst else None, o.kind if o else None,
                   *((num(getattr(o, k)) if o else None)
                     for k in ("cosine_mean", "cosine_min", "step_agreement", "sequence_match", "max_abs")),
                   o.kernels if o else None,
                   cls.of(a, "deployed") if kernels is None and o is not None and o.kernels != "deployed"
                   and a.outputs_of("deployed") else None, num(a.macs_int8_share) if kernels is None else None,
                   sum(lay.runtime_precision is not None for lay in a.layers))


@dataclass
class RunReport:
    """One recipe's run: the recipe, the analysis, histograms of its flagged tensors, benchmark, fix."""

    label: str
    recipe: dict
    recipe_toml: str
    recipe_source: str | None
    recipe_changes: list[str]
    analysis: AnalysisResult
    summary: RunSummary | None = None
    int8_bytes: int | None = None
    histograms: list[TensorHistogram] = field(default_factory=list)
    bench: BenchSummary | None = None
    exclusions: Exclusions | None = None


@dataclass
class LatencyChange:
    """What the change costs (or saves) in INT8 latency on one backend, p50 at the headline batch."""

    backend: str
    fp32_ms: float | None
    before_ms: float | None
    after_ms: float | None
    delta_ms: float | None
    delta_share: float | None  # (after - before) / before
    # each run's p50 spread (p10-p90 of the p50s of repeated rounds); ``outcome`` is faster/slower only when the
    # two ranges do not overlap (the change exceeds the noise), "within noise" when they do, None when unknown
    before_p50_p10_ms: float | None = None
    before_p50_p90_ms: float | None = None
    after_p50_p10_ms: float | None = None
    after_p50_p90_ms: float | None = None
    outcome: str | None = None  # faster | slower | within noise


@dataclass
class Comparison:
    """Before/after between ``runs[before]`` and ``runs[after]`` (rows from ``workbench.compare``)."""

    before: int
    after: int
    threshold_db: float
    layers: list[LayerChange]
    outputs: list[OutputChange]
    latency: list[LatencyChange] = field(default_factory=list)
    verdict: str | None = None  # better | worse | mixed | same: is the after run better than the before run?
    verdict_reasons: list[str] = field(default_factory=list)

    def changed(self) -> list[LayerChange]:
        return [c for c in self.layers if c.changed]


@dataclass
class RecipeFile:
    """A recipe as the colleague should save it to reproduce the run."""

    label: str
    file: str
    toml: str


@dataclass
class Reproduce:
    """The command as typed (argv and a shell-quoted line), the recipe files, and the commands that rerun the
    report and export its fix as printed from the report's folder (``rerun_*``/``fix_*``, set when written)."""

    command: str
    argv: list[str]
    recipes: list[RecipeFile]
    notes: list[str] = field(default_factory=list)
    model: str | None = None  # the inputs as opened (absolute where they are files)
    calib: str | None = None
    eval: str | None = None
    samples: int | None = None
    demo: bool = False
    rerun_command: str | None = None
    rerun_argv: list[str] | None = None
    fix_command: str | None = None
    fix_argv: list[str] | None = None


@dataclass
class ReportData:
    """Everything a report shows. Build with ``build_report``; render with ``render_html/json/markdown``."""

    title: str
    created: str  # ISO 8601, UTC
    generator: str  # "Quant Workbench 0.1.0"
    model: ModelSummary
    environment: Environment
    data: list[DataSet]
    runs: list[RunReport]
    reproduce: Reproduce
    comparison: Comparison | None = None
    verdict: str | None = None  # good | warn | bad: the final run (public contract, ``workbench.report.verdict``)
    verdict_reasons: list[str] = field(default_factory=list)
    tune: dict | None = None  # a tune search (``TuneResult.to_dict()``) with ``chosen``: see ``build.tune_block``

    @property
    def final(self) -> RunReport:
        """The run the detailed sections describe: the 'after' run of a comparison, else the only run."""
        return self.runs[self.comparison.after] if self.comparison else self.runs[-1]

    def to_dict(self) -> dict:
        """The versioned JSON document (every float finite or null)."""
        d = {"format": REPORT_FORMAT, "kind": REPORT_KIND}
        d.update(_to_json(self))
        d["final_run"] = self.runs.index(self.final)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ReportData":
        """Read a report written by ``to_dict`` (this format or older)."""
        if d.get("kind") != REPORT_KIND:
            raise ValueError("not a Quant Workbench report (kind != 'qwb-report')")
        if d.get("format", 0) > REPORT_FORMAT:
            raise ValueError(f"report format {d.get('format')} is newer than this version reads ({REPORT_FORMAT})")
        runs = d.get("runs")
        if not isinstance(runs, list) or not runs or not all(isinstance(r, dict) for r in runs):
            raise ValueError("'runs' must be a non-empty list of runs")
        c = d.get("comparison")
        if c is not None and not (isinstance(c, dict) and all(
                isinstance(c.get(k), int) and 0 <= c[k] < len(runs) for k in ("before", "after"))):
            raise ValueError(f"'comparison' must name two of the {len(runs)} runs by index")
        return _from_json(cls, d)


# -- generic (de)serialisation of the dataclasses above ---------------------------------------------
def to_json(obj):
    """``obj`` (these dataclasses, lists, dicts, numbers) as it appears in the report's JSON."""
    return _to_json(obj)


def _to_json(obj):
    if isinstance(obj, AnalysisResult):
        return obj.to_dict()
    if is_dataclass(obj):
        return {f.name: _to_json(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_json(v) for v in obj]
    if isinstance(obj, float):
        return num(obj)
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    if hasattr(obj, "item"):  # numpy scalar
        return _to_json(obj.item())
    raise TypeError(f"cannot put {type(obj).__name__} in a report")


def _from_json(tp, value):
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _from_json(args[0], value) if len(args) == 1 else value
    if tp is AnalysisResult:
        return AnalysisResult.from_dict(value)
    if is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        kw = {f.name: _from_json(hints[f.name], value[f.name]) for f in fields(tp) if f.name in value}
        return tp(**kw)
    if origin is list:
        (arg,) = typing.get_args(tp) or (typing.Any,)
        return [_from_json(arg, v) for v in value]
    if origin is dict:
        _, arg = typing.get_args(tp) or (str, typing.Any)
        return {k: _from_json(arg, v) for k, v in value.items()}
    if tp is float:
        return float(value)
    return value
