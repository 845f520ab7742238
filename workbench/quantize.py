"""Quantize a prepared model to QDQ with onnxruntime, from our calibration ranges and the recipe.

We never write a quantizer: ranges go to ``onnxruntime.quantization.quantize_static`` through its
calibration cache file, exclusions through ``nodes_to_exclude`` and INT16 layers through
``TensorQuantOverrides``. Because ranges come from our histograms, a new percentile (global or per
layer) is a re-quantize without re-calibration.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper, version_converter
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.calibrate import TensorData, TensorsData, save_tensors_data
from onnxruntime.quantization.quant_utils import ONNX_TYPE_TO_NP_TYPE

from analyzers.calibration.collect import CalibrationData
from analyzers.calibration.histogram import HistogramSnapshot
from analyzers.onnx_utils import tensors_to_calibrate
from analyzers.calibration.grid import QuantSpec, quant_params_array
from backends.runner import SessionConfig, build_session
from backends.runtime_precision import RuntimeLayer
from backends.runtime_precision import check as check_runtime
from backends.tasks import NullTask, Task

from .calibration_cache import calibration_mask_limits, op_types_for
from .errors import WorkbenchError
from .mask_path import MaskPath, find_mask_path
from .model_prep import PreparedModel
from .paths import scratch_dir
from .quantizer_index import indexed_quantizer
from .recipe import Recipe
from .recipe_ranges import TensorRange, sixteen_bit, tensor_ranges
from .safe_paths import atomic_output


@dataclass
class QuantizeResult:
    """Where the QDQ model went and what was done to get it."""

    path: Path
    size_bytes: int
    elapsed_s: float
    ranges: dict[str, TensorRange]
    excluded: list[str] = field(default_factory=list)
    int16: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    mask_path: MaskPath | None = None  # mask tensors and what was done with the nodes around them
    # float/16-bit layers onnxruntime's CPU optimizer runs in 8 bits anyway (from its optimized graph)
    runtime: list[RuntimeLayer] = field(default_factory=list)


def _qtype(name: str):

    return {"u8": QuantType.QUInt8, "s8": QuantType.QInt8, "u16": QuantType.QUInt16, "s16": QuantType.QInt16}[name]


@contextlib.contextmanager
def _quiet_ort_logging():
    """onnxruntime's quantizer logs advice (pre-processing, formats) at WARNING for every call."""
    root = logging.getLogger()
    old = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(old)


def build_overrides(prepared: PreparedModel, recipe: Recipe, ranges: dict[str, TensorRange]) -> dict:
    """TensorQuantOverrides for INT16 layers: their activations and weights get 16-bit types."""
    overrides: dict[str, list[dict]] = {}
    g = prepared.graph
    for node_name in recipe.int16_nodes():
        node = g.node(node_name)
        for t in list(node.inputs) + g.layer_outputs(node_name):
            if t in ranges and ranges[t].spec.bits == 16:
                overrides[t] = [{"quant_type": _qtype(ranges[t].spec.qtype)}]
        for w in node.weights:
            if w == (node.inputs[1] if len(node.inputs) > 1 else None):
                o = {"quant_type": _qtype(sixteen_bit(recipe.settings.weight_type))}
                if recipe.settings.per_channel and node.op_type == "Conv":
                    o["axis"] = 0  # a quant_type alone would make onnxruntime fall back to one per-tensor scale
                overrides[w] = [o]
    return overrides


def weight_scale_overrides(prepared: PreparedModel, recipe: Recipe, int16_weights: set[str]) -> dict:
    """Per-channel scale/zero point of every Conv weight, for onnxruntime's TensorQuantOverrides.

    onnxruntime computes these one channel at a time in Python (about half of quantize_static's time on a
    MobileNet); given them, its quantizer skips that loop and does the rest as usual. They are computed
    with onnxruntime's own rules (symmetric per-channel range, ``compute_scale_zp``'s formula), vectorised;
    a test holds the resulting model identical to onnxruntime's own.
    """


    s = recipe.settings
    if not s.per_channel:
        return {}
    excluded = set(recipe.excluded_nodes())
    convs = {n.inputs[1]: n for n in prepared.graph.nodes if n.op_type == "Conv" and len(n.inputs) > 1
             and n.name not in excluded and n.inputs[1] in n.weights}
    if not convs:
        return {}
    consumers = prepared.graph.consumers
    out = {}
    for init in prepared.load_proto().graph.initializer:
        if init.name not in convs or len(consumers.get(init.name, [])) != 1:
            continue
        w = numpy_helper.to_array(init)
        if w.dtype != np.float32 or w.ndim < 2:
            continue
        qtype = sixteen_bit(s.weight_type) if init.name in int16_weights else s.weight_type
        spec = QuantSpec(qtype, symmetric=True, reduce_range=s.reduce_range)
        flat = w.reshape(w.shape[0], -1)
        scale, zp = quant_params_array(flat.min(axis=1), flat.max(axis=1), spec)
        np_zp = ONNX_TYPE_TO_NP_TYPE[spec.onnx_type]
        # iterating the converted arrays gives the same numpy scalars as converting each value, 4x faster
        chans = [{"scale": sc, "zero_point": z} for sc, z in zip(np.asarray(scale, np.float32), zp.astype(np_zp))]
        chans[0].update(axis=0, quant_type=_qtype(qtype))
        out[init.name] = chans
    return out


def _annotate_shapes(path: Path) -> None:
    """Give the QDQ model's new tensors shapes and types (onnxruntime's quantizer writes none), so tools
    that read tensors by name (Netron, onnx.utils.Extractor, our own diff) see them."""

    try:
        onnx.shape_inference.infer_shapes_path(str(path), str(path))
    except Exception:  # noqa: BLE001 - an annotation, never a reason to fail quantization
        pass


def subgraph_layers(model: onnx.ModelProto, op_types: set[str]) -> list[str]:
    """Nodes of quantizable types inside If/Loop/Scan bodies (nested too), which the quantizer leaves alone."""
    out = []

    def walk(graph, inside):
        for n in graph.node:
            if inside and n.op_type in op_types:
                out.append(n.name or n.op_type)
            for a in n.attribute:
                for sg in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                    walk(sg, True)

    walk(model.graph, False)
    return out


def runtime_requantized(path: Path, excluded: list[str], int16: list[str]) -> list[RuntimeLayer]:
    """The float/16-bit layers of ``path`` that onnxruntime's CPU optimizer runs in 8 bits anyway, read from
    the graph it really runs (backends.runtime_precision), with the fix for each."""
    requested = {n: "fp32" for n in excluded} | {n: "int16" for n in int16}
    return [lay for lay in check_runtime(path, requested).values() if lay.int8]


def float_layers_requantized_at_runtime(model_path: Path, excluded: list[str]) -> list[str]:
    """The layers of ``excluded`` (kept in FP32 in ``model_path``) that onnxruntime's CPU optimizer runs in 8 bits
    anyway, in ``excluded``'s order: ``runtime_requantized`` by name only."""
    anyway = {lay.node for lay in runtime_requantized(model_path, list(excluded), [])}
    return [n for n in excluded if n in anyway]


def placeholder_calibration(prepared: PreparedModel, recipe: Recipe) -> CalibrationData:
    """A range of [0, 1] for every tensor quantization calibrates. Where onnxruntime puts integer kernels depends
    on where the Q/DQ nodes sit and their types, not on the ranges, except that its quantizer folds a Relu into
    the layer before it only when the Relu's range starts at 0 (true of every real Relu output): so [0, 1]."""
    h = HistogramSnapshot(np.array([1, 1], np.int64), np.array([0.0, 0.5, 1.0]), 0.0, 1.0, 2, 1.0, 1.0)
    return CalibrationData({t: h for t in tensors_to_calibrate(prepared.load_proto(), op_types_for(recipe))})


def runtime_requantized_without_data(prepared: PreparedModel, recipe: Recipe) -> list[RuntimeLayer]:
    """``runtime_requantized`` for a recipe when no calibration data is at hand (``qwb export-exclusions``):
    quantizes with placeholder ranges into a scratch folder and reads onnxruntime's optimized graph."""
    if not recipe.excluded_nodes() and not recipe.int16_nodes():
        return []
    with tempfile.TemporaryDirectory(prefix="qwb-runtime-", dir=scratch_dir()) as td:
        return quantize(prepared, recipe, placeholder_calibration(prepared, recipe), Path(td) / "m.qdq.onnx").runtime


PER_CHANNEL_OPSET = 13  # DequantizeLinear's ``axis`` (per-channel weights) exists from opset 13


def _upgrade_for_per_channel(prepared: PreparedModel, folder: Path) -> tuple[Path, str | None]:
    """The model quantize_static should read: the prepared one, or a copy converted to opset 13 when
    per-channel weights need it (onnxruntime's quantizer writes ``axis`` regardless, and the model it
    writes then does not load)."""

    old = prepared.opset
    if old >= PER_CHANNEL_OPSET:  # the common case: no need to load the model
        return prepared.path, None
    model = prepared.load_proto()
    try:
        upgraded = version_converter.convert_version(model, PER_CHANNEL_OPSET)
    except Exception as e:  # noqa: BLE001 - the converter raises several types for ops it cannot convert
        raise WorkbenchError(f"{prepared.source} is opset {old}: per-channel weights need opset "
                             f"{PER_CHANNEL_OPSET}, and onnx's version converter could not upgrade it "
                             f"({type(e).__name__}: {str(e)[:200]})",
                             "set per_channel = false in the recipe, or re-export the model at opset 13 or "
                             "newer") from e
    path = folder / "upgraded.onnx"
    onnx.save(upgraded, str(path), save_as_external_data=upgraded.ByteSize() > 1 << 30)
    return path, (f"the model is opset {old}: upgraded to opset {PER_CHANNEL_OPSET} (onnx's version converter) "
                  "because per-channel weights need it; the INT8 model is opset 13")


def check_runs(path: Path, feed: dict, source: str) -> None:
    """Refuse to hand over a quantized model onnxruntime cannot load or run (one sample, full optimizations)."""

    try:
        sess = build_session(SessionConfig.for_purpose("deployed", str(path), threads=1))
        sess.run(None, {k: v for k, v in feed.items() if k in {i.name for i in sess.get_inputs()}})
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise WorkbenchError(f"the INT8 model quantized from {source} does not run in onnxruntime, so it was not "
                             f"written: {type(e).__name__}: {str(e)[:400]}",
                             "set per_channel = false, or restrict op_types in the recipe, and report this model "
                             "to us with --debug") from e


def quantize(prepared: PreparedModel, recipe: Recipe, calib: CalibrationData, out_path: str | Path,
             task: Task | None = None, check_feed: dict | None = None) -> QuantizeResult:
    """Write the QDQ model for ``recipe`` to ``out_path``; with ``check_feed`` (one sample), only after it
    loads and runs that sample in onnxruntime."""

    task = task or NullTask()
    t0 = time.perf_counter()
    recipe.validate(prepared.graph.node_names)
    mask = find_mask_path(prepared.graph, recipe, calib, calibration_mask_limits(prepared, calib))
    recipe = mask.apply(recipe)  # the mask path's nodes, kept in float, are exclusions like any other
    s = recipe.settings
    ranges = tensor_ranges(prepared.graph, recipe, calib)
    task.report(0.1, "quantizing")
    data = {name: TensorData(lowest=np.float32(r.lo), highest=np.float32(r.hi)) for name, r in ranges.items()}
    overrides = build_overrides(prepared, recipe, ranges)
    int16_weights = {t for t, o in overrides.items() if t in prepared.graph.tensors
                     and prepared.graph.tensors[t].is_initializer}
    overrides.update(weight_scale_overrides(prepared, recipe, int16_weights))
    extra = {
        "ActivationSymmetric": s.symmetric_activations,
        "WeightSymmetric": s.symmetric_weights,
        "TensorQuantOverrides": overrides,
    }
    out_path = Path(out_path)
    excluded = recipe.excluded_nodes()
    notes = mask.notes()
    with tempfile.TemporaryDirectory(prefix="qwb-quant-", dir=scratch_dir()) as td:
        source = prepared.path
        if s.per_channel:
            source, note = _upgrade_for_per_channel(prepared, Path(td))
            notes += [note] if note else []
        cache = Path(td) / "ranges.json"
        save_tensors_data(TensorsData(CalibrationMethod.MinMax, data), cache)
        tmp_out = Path(td) / "model.qdq.onnx"
        try:
            with _quiet_ort_logging(), indexed_quantizer():  # same model, linear time (quantizer_index.py)
                quantize_static(
                    str(source), str(tmp_out), calibration_data_reader=None,
                    quant_format=QuantFormat.QDQ, op_types_to_quantize=op_types_for(recipe),
                    per_channel=s.per_channel, reduce_range=s.reduce_range,
                    activation_type=_qtype(s.activation_type), weight_type=_qtype(s.weight_type),
                    nodes_to_exclude=excluded, calibrate_method=CalibrationMethod.MinMax,
                    extra_options=extra, calibration_cache_path=str(cache))
        except Exception as e:  # noqa: BLE001 - onnxruntime raises bare exceptions for bad combinations
            raise WorkbenchError(f"onnxruntime's quantizer failed on {prepared.source}: {type(e).__name__}: "
                                 f"{str(e)[:400]}", "try per_channel = false, or another activation/weight "
                                 "type in the recipe; run with --debug for the full trace") from e
        _annotate_shapes(tmp_out)
        if check_feed is not None:
            task.report(0.9, "checking that onnxruntime runs the INT8 model")
            check_runs(tmp_out, check_feed, prepared.source)
        with atomic_output(out_path) as final:  # the scratch folder may be on another filesystem
            shutil.copyfile(tmp_out, final)
    task.report(1.0, "quantized")
    has_subgraphs = any(n.op_type in ("If", "Loop", "Scan") for n in prepared.graph.nodes)
    inner = subgraph_layers(prepared.load_proto(), set(op_types_for(recipe))) if has_subgraphs else []
    if inner:
        notes.append(f"{len(inner)} layer(s) inside If/Loop subgraphs stay in float ({', '.join(inner[:5])}"
                     f"{', ...' if len(inner) > 5 else ''}): onnxruntime's quantizer does not quantize subgraphs")
    runtime = runtime_requantized(out_path, excluded, recipe.int16_nodes())
    notes += [f"{lay.message()}; fix: {lay.fix}" for lay in runtime]
    return QuantizeResult(out_path, out_path.stat().st_size, time.perf_counter() - t0, ranges, excluded,
                          recipe.int16_nodes(), notes, mask, runtime)
