"""The fix (layers a recipe keeps in float or at 16 bits) in the forms other toolchains take.

- ``ort``: onnxruntime ``quantize_static``/``get_qdq_config`` arguments as JSON: ``nodes_to_exclude``
  and ``extra_options.TensorQuantOverrides`` (quant types by ``QuantType`` member name), plus the global
  settings the fix was measured with. Overrides are computed exactly as ``workbench.quantize`` does.
- ``polygraphy``: ``--layer-precisions NAME:PRECISION ...`` arguments (TensorRT names layers after the
  ONNX nodes; TensorRT has no 16-bit integer layers, so INT16 layers become ``float16``).
- ``nncf``: an ``nncf.IgnoredScope(names=[...])`` snippet (NNCF has no per-layer 16-bit setting).
- ``tflite``: a ``QuantizationDebugOptions(denylisted_nodes=[...])`` snippet; TFLite's denylist names
  ops by their *output tensor* names, so the layers' output tensors are listed.

Every name is written as a quoted literal of the target language (``json``, ``shlex.quote``,
``repr``), so a hostile node name stays a string in every form.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import onnx

from analyzers.onnx_utils import tensors_to_calibrate

from ..calibration_cache import op_types_for
from ..recipe_ranges import activation_spec, sixteen_bit
from .data import ExclusionLayer, Exclusions
from .markup import clean

FORMATS = ("ort", "polygraphy", "nncf", "tflite")
EXTENSIONS = {"ort": ".ort.json", "polygraphy": ".polygraphy.txt", "nncf": ".nncf.py", "tflite": ".tflite.py"}
_QUANT_TYPES = {"u8": "QUInt8", "s8": "QInt8", "u16": "QUInt16", "s16": "QInt16"}
_TRT_PRECISION = {"fp32": "float32", "int16": "float16"}


def source_node_names(source: str) -> set[str] | None:
    """Node names of the user's own ONNX file (None when the source is not an ONNX file we can read)."""
    p = Path(source)
    if p.suffix.lower() != ".onnx" or not p.is_file():
        return None

    try:
        m = onnx.load(str(p), load_external_data=False)
    except Exception:  # noqa: BLE001 - only a refinement of the notes; the prepared model is what we trust
        return None
    return {n.name for n in m.graph.node if n.name}


def exclusion_layers(graph, recipe, source_names: set[str] | None = None) -> list[ExclusionLayer]:
    """The recipe's FP32 and INT16 layers in graph order, with their output tensors."""
    wanted = {n: "fp32" for n in recipe.excluded_nodes()} | {n: "int16" for n in recipe.int16_nodes()}
    out = []
    for node in graph.nodes:
        if node.name in wanted:
            out.append(ExclusionLayer(node.name, node.op_type, wanted[node.name], graph.layer_outputs(node.name),
                                      source_names is None or node.name in source_names))
    return out


def ort_overrides(prepared, recipe) -> dict[str, list[dict]]:
    """``TensorQuantOverrides`` for the recipe's INT16 layers, as ``workbench.quantize.build_overrides``
    gives them to onnxruntime (quant types by name), computed without calibration data."""

    int16 = recipe.int16_nodes()
    if not int16:
        return {}
    g = prepared.graph
    calibrated = set(tensors_to_calibrate(prepared.load_proto(), op_types_for(recipe)))
    out: dict[str, list[dict]] = {}
    for node_name in int16:
        node = g.node(node_name)
        for t in list(node.inputs) + g.layer_outputs(node_name):
            if t in calibrated:
                spec = activation_spec(g, recipe, t)
                if spec.bits == 16:
                    out[t] = [{"quant_type": _QUANT_TYPES[spec.qtype]}]
        for w in node.weights:
            if w == (node.inputs[1] if len(node.inputs) > 1 else None):
                out[w] = [{"quant_type": _QUANT_TYPES[sixteen_bit(recipe.settings.weight_type)]}]
    return out


def one_line(text) -> str:
    """``text`` safe inside a one-line comment: controls, line and paragraph separators made visible."""
    return clean(text).replace("\n", " ").replace("\t", " ").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _header(lines: list[str], prefix: str) -> str:
    return "".join(f"{prefix} {one_line(line)}".rstrip() + "\n" for line in lines)


def _intro(model_name: str, recipe_label: str, layers: list[ExclusionLayer]) -> list[str]:
    lines = [f"Quant Workbench: layers kept out of INT8 for {model_name} (recipe: {recipe_label})"]
    if not layers:
        lines.append("This recipe keeps every layer in INT8: nothing to exclude.")
    for lay in layers:
        if lay.runtime_int8:
            lines.append(f"Warning: onnxruntime's CPU optimizer runs {lay.node} in 8 bits anyway ({lay.runtime_int8}); "
                         f"it is float only in the model file and in other runtimes. Fix: {lay.runtime_fix}")
    missing = [lay.node for lay in layers if not lay.in_source]
    if missing:
        lines.append("Warning: these names were given by Quant Workbench because the model file leaves the nodes "
                     "unnamed; name them in your exporter: " + ", ".join(missing))
    return [one_line(line) for line in lines]


def render_ort(layers, overrides: dict, recipe, model_name: str, recipe_label: str) -> str:
    """JSON with ``nodes_to_exclude``, ``extra_options.TensorQuantOverrides`` and the global settings."""
    s = recipe.settings
    doc = {
        "tool": "onnxruntime.quantization.quantize_static",
        "comment": ". ".join(line.rstrip(".") for line in _intro(model_name, recipe_label, layers)) + (
            ". quant_type values are QuantType member names: pass QuantType[name]."),
        "nodes_to_exclude": [lay.node for lay in layers if lay.precision == "fp32"],
        # excluded in the file, yet run as integer kernels by onnxruntime's CPU optimizer: not float there
        "runs_int8_on_onnxruntime_cpu": [{"node": lay.node, "runs_as": lay.runtime_int8, "fix": lay.runtime_fix}
                                         for lay in layers if lay.runtime_int8],
        "extra_options": {"TensorQuantOverrides": overrides, "ActivationSymmetric": s.symmetric_activations,
                          "WeightSymmetric": s.symmetric_weights},
        "quant_format": "QDQ", "activation_type": _QUANT_TYPES[s.activation_type],
        "weight_type": _QUANT_TYPES[s.weight_type], "per_channel": s.per_channel, "reduce_range": s.reduce_range,
        "op_types_to_quantize": list(s.op_types) or None,
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def render_polygraphy(layers, model_name: str, recipe_label: str) -> str:
    """A comment header and one line of Polygraphy arguments (shell-quoted)."""
    head = _intro(model_name, recipe_label, layers) + [
        "TensorRT's ONNX parser names layers after the ONNX nodes. TensorRT has no 16-bit integer layers:",
        "INT16 layers are given float16. Layer precisions apply when TensorRT quantizes the FP32 model itself",
        "(--int8 with calibration); in a Q/DQ model the Q/DQ nodes decide. Use, e.g.:",
        (f"  polygraphy convert {shlex.quote(model_name)} --int8 --data-loader-script data.py <the line below> "
         "-o model.engine"),
    ]
    args = []
    if any(lay.precision == "int16" for lay in layers):
        args.append("--fp16")
    if layers:
        args += ["--precision-constraints", "obey", "--layer-precisions"]
        args += [shlex.quote(f"{lay.node}:{_TRT_PRECISION[lay.precision]}") for lay in layers]
    return _header(head, "#") + " ".join(args) + "\n"


def render_nncf(layers, model_name: str, recipe_label: str) -> str:
    """A Python snippet building ``nncf.IgnoredScope`` from the node names."""
    head = _intro(model_name, recipe_label, layers) + [
        "NNCF has no per-layer 16-bit setting: INT16 layers are ignored (kept in float) as well.",
        "Use: nncf.quantize(model, calibration_dataset, ignored_scope=ignored_scope)"]
    names = "".join(f"    {lay.node!r},  # {one_line(lay.op_type)}, {lay.precision}\n" for lay in layers)
    return (_header(head, "#") + "import nncf\n\nignored_names = [\n" + names + "]\n"
            "ignored_scope = nncf.IgnoredScope(names=ignored_names, validate=True)\n")


def render_tflite(layers, model_name: str, recipe_label: str) -> str:
    """A Python snippet with TFLite's denylist (output tensor names) for the quantization debugger."""
    head = _intro(model_name, recipe_label, layers) + [
        "TFLite's denylist names ops by their output tensors; TFLite has no per-layer 16-bit setting, so INT16",
        "layers are denylisted (kept in float) as well. Use with the quantization debugger:",
        "  debugger = tf.lite.experimental.QuantizationDebugger(converter=converter,",
        "      debug_dataset=representative_dataset, debug_options=debug_options)",
        "  tflite_model = debugger.get_nondebug_quantized_model()"]
    tensors = []
    for lay in layers:
        for t in lay.outputs:
            if t not in tensors:
                tensors.append(t)
    body = "".join(f"    {t!r},\n" for t in tensors)
    return (_header(head, "#") + "import tensorflow as tf\n\ndenylisted_nodes = [\n" + body + "]\n"
            "debug_options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=denylisted_nodes)\n")


def build_exclusions(prepared, recipe, recipe_label: str = "recipe", runtime: list | None = None) -> Exclusions:
    """The recipe's fix for ``prepared`` in every format of ``FORMATS``; ``runtime`` (RuntimeLayer list) marks
    the layers onnxruntime's CPU optimizer runs in 8 bits anyway."""
    names = source_node_names(prepared.source)
    layers = exclusion_layers(prepared.graph, recipe, names)
    by_node = {r.node: r for r in runtime or [] if r.int8}
    for lay in layers:
        r = by_node.get(lay.node)
        if r is not None:
            lay.runtime_int8, lay.runtime_fix = r.runs_as, r.fix
    model_name = Path(prepared.source).name if names is not None else prepared.name + ".onnx"
    formats = {
        "ort": render_ort(layers, ort_overrides(prepared, recipe), recipe, model_name, recipe_label),
        "polygraphy": render_polygraphy(layers, model_name, recipe_label),
        "nncf": render_nncf(layers, model_name, recipe_label),
        "tflite": render_tflite(layers, model_name, recipe_label),
    }
    notes = [f"{r.message()}; fix: {r.fix}" for r in by_node.values()]
    if any(recipe.percentile_of(n) is not None or recipe.method_of(n) is not None for n in recipe.layers):
        notes.append("per-layer calibration percentiles and methods are not part of these forms; they are in the "
                     "recipe")
    if names is None:
        notes.append(f"{prepared.source} is not an ONNX file: names refer to the ONNX model Quant Workbench "
                     "exported from it")
    return Exclusions(layers, formats, notes)
