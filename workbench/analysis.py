"""Run the layer-by-layer FP32-vs-INT8 analysis for a session and assemble the public result.

This is the glue between the Session (model, data, recipe, calibration, quantization) and the
analyzers (diff engine, hints, ranking); the CLI, the GUI and reports all call ``analyze``.
"""

from __future__ import annotations

import math
import resource
import sys
import time

import numpy as np
import onnx

from analyzers.calibration.histogram import MASK_MAGNITUDE
from analyzers.background import alongside
from analyzers.calibration.methods import RangeStats, range_stats
from analyzers.deployed_engine import NOT_COMPUTED, DeployedEngine
from analyzers.deployed_layers import DeployedLayerTaps, kernel_departs, own_gap
from analyzers.diff import DiffEngine
from analyzers.diff_types import AnalysisResult, Hint, LayerResult
from analyzers.hints import HintInputs, fallback_hint, layer_hints
from analyzers.kernel_gap import remedy_hint
from analyzers.model_hints import model_hints, saturation_hint, spread_error_hint
from analyzers.qdq_match import match
from analyzers.ranking import Thresholds, amplification, flag, introduced_db
from backends.cpuinfo import runtime_flags, u8s8_saturates
from backends.tasks import scaled

from .calibration_cache import op_types_for
from .errors import WorkbenchError
from .evaluate import DeployedOutputs
from .mac_share import macs_by_precision
from .kernel_remedies import explain_gap, path_only
from .outputs import output_kinds
from .recipe import Recipe
from .session import Session


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024.0 if sys.platform != "darwin" else r / 2**20


# both by default: users ship the deployed figures, and the exact ones explain the layers; the deployed pass
# is one plain FP32 + INT8 inference per batch beside the diff engine's (docs/benchmarks.md: Execution modes)
KERNEL_MODES = ("exact", "deployed", "both")
DEFAULT_KERNELS = "both"


def analyze(session: Session, recipe: Recipe | None = None, samples: int | None = None, task=None,
            thresholds: Thresholds | None = None, reservoir: int = 0, isolated: bool = True,
            kernels: str = DEFAULT_KERNELS, remedies: bool = True, session_options: dict | None = None
            ) -> AnalysisResult:
    """Quantize with ``recipe`` (default: the session's) and diff it against FP32 on the evaluation data.

    ``kernels`` picks the output figures: ``exact`` (Q/DQ as written, from the diff engine), ``deployed``
    (plain onnxruntime sessions with full optimizations, fed the same batches) or ``both`` (exact first).
    Layer figures are exact, except with ``deployed``: then they come from the deployed kernels' own integers
    (``analyzers.deployed_engine``, ``layer_kernels = "deployed"``), the exact simulation is skipped, isolated
    error and the kernel gap are None, and layers are flagged by the SQNR they lose as deployed (no scatter
    samples either: ``reservoir`` is ignored). With ``both``, a deployed figure significantly worse than the exact
    one is explained (``workbench.kernel_remedies``): the remedies are measured unless ``remedies`` is False.
    ``session_options``: onnxruntime session config entries for the deployed sessions (as the user deploys)."""
    if kernels not in KERNEL_MODES:
        raise WorkbenchError(f"unknown kernels mode {kernels!r}", f"use one of {', '.join(KERNEL_MODES)}")
    t0 = time.perf_counter()
    recipe = recipe or session.recipe
    thresholds = thresholds or Thresholds()
    calib = session.calibration(scaled(task, 0.0, 0.25))
    q = session.quantize(recipe=recipe, task=scaled(task, 0.25, 0.3))
    t_quant = time.perf_counter() - t0
    fp32 = session.prepared.load_proto()
    int8 = onnx.load(str(q.path))
    data = session.eval_data
    n = len(data) if samples is None else max(1, min(samples, len(data)))
    # isolated figures depend only on the float data and the layer's own quantization: reuse them across
    # runs on the same samples when the layer's isolated computation did not change
    cache = session.analysis_cache.setdefault(("isolated", data.content_hash(), n), {})
    excluded = set(q.excluded)  # the recipe's exclusions plus the mask path kept in float (workbench.mask_path)
    # the mask path's tensors, each with the magnitude from which its values are masked
    masked = ({t: q.mask_path.limits.get(t, MASK_MAGNITUDE) for t in q.mask_path.tensors} if q.mask_path else {})
    taps, notes = None, list(q.notes)
    # the hints' range statistics need only the calibration: numpy on the second core while the sessions build
    range_figures = alongside(_range_figures, calib, q.ranges)
    if kernels != "exact":  # the deployed graph, each layer's integers fetched from the kernels it runs
        m = match(fp32, int8, set(op_types_for(recipe)), excluded)
        try:
            taps = DeployedLayerTaps(str(q.path), int8, m, masked, config_entries=session_options, fp32=fp32)
        except Exception as e:  # noqa: BLE001 - an extra view: the deployed output figures go on without it
            notes.append(f"deployed per-layer figures unavailable: onnxruntime's optimized graph could not be read "
                         f"back and run ({type(e).__name__}: {str(e)[:200]}); the deployed output figures are a "
                         "plain session's" + ("; the layer figures are the exact simulation's" if kernels == "deployed"
                                              else ""))
    # deployed only: the layer figures come from the deployed kernels and the exact simulation is skipped
    # (``analyzers.deployed_engine``); without taps the exact engine gives them, said in the notes
    layer_kernels = "deployed" if kernels == "deployed" and taps is not None else "exact"
    if layer_kernels == "deployed":
        engine = DeployedEngine(fp32, m, int8, taps, _batched(data), session_options)
        isolated = False
        notes.append("layer figures as deployed (onnxruntime's fused kernels on this CPU), against FP32: "
                     + NOT_COMPUTED + "; layers are flagged and ranked by the SQNR they lose as deployed"
                     + ("; no scatter samples (--reservoir) are kept in this mode" if reservoir else ""))
    else:
        engine = DiffEngine(fp32, int8, set(op_types_for(recipe)), excluded, isolated=isolated,
                            reservoir=reservoir, batched=_batched(data), reuse_isolated=cache if isolated else None,
                            fp32_key=session.prepared.sha256, masked=masked, expose=taps.expose if taps else None)
    kinds = output_kinds(fp32, recipe, data.labels)
    batches = data.batches(limit=n, batch_size=engine.suggested_batch())
    deployed = None
    if kernels != "exact" and layer_kernels == "exact":
        deployed = DeployedOutputs(session.prepared.path, q.path, kinds, engine.batched, session_options,
                                   int8_run=taps.run if taps else None)
        batches = _also_deployed(batches, deployed, data.labels)
    explain = kernels == "both"  # the gap needs both modes
    try:
        outcome = engine.run(batches, n, data.labels, scaled(task, 0.3, 0.85 if explain else 1.0), kinds=kinds,
                             on_batch=taps.fold if taps and layer_kernels == "exact" else None)
    finally:
        if taps is not None:
            taps.close()
        if layer_kernels == "deployed":
            engine.close()
    if isolated:
        for node, sig in engine.graph.iso_signatures.items():
            iso = outcome.layers[node].isolated if node in outcome.layers else None
            if iso is not None:
                cache[node] = (sig, iso)
    layers = _assemble_layers(session, recipe, calib, q.ranges, range_figures(), engine, outcome, excluded)
    for lay in layers:  # before flagging, so a flagged mask-path layer shows its real cause
        h = q.mask_path.hint(lay.node, session.graph) if q.mask_path else None
        if h is not None:
            lay.hints.insert(0, h)
    for lay in flag(layers, thresholds, by="isolated" if layer_kernels == "exact" else "introduced"):
        # every flagged layer carries at least one hint
        if not lay.hints:
            lay.hints = [fallback_hint(lay.node, lay.precision)]
    if layer_kernels == "deployed":
        _deployed_only_layers(layers, set(taps.taps), engine)
        notes.append(f"deployed per-layer figures: {engine.layers_measured()} of {len(layers)} layers have a "
                     "quantized output that survives onnxruntime's fusion (the others show none)"
                     + ("" if not engine.fp32_unmapped else
                        "; FP32 layer tensors exposed in the source model (not in onnxruntime's optimized FP32 "
                        f"graph: {', '.join(engine.fp32_unmapped[:5])}{', ...' if len(engine.fp32_unmapped) > 5 else ''})")
                     + ("" if engine.fp32_identical is not False else
                        "; the output figures are a plain FP32 session's (exposing the layer tensors changes "
                        "onnxruntime's FP32 fusions, so the FP32 model runs twice per batch)")
                     + (f"; layer tensors fused away could not be re-run ({engine.recompute_error})"
                        if engine.recompute_error else "")
                     + (f"; the layer statistics could not run ({engine.stats_error})" if engine.stats_error else ""))
    elif taps is not None:
        _deployed_layers(layers, taps.results({n: o.cumulative for n, o in outcome.layers.items()}))
        notes.append(taps.note())
    runtime = {r.node: r for r in q.runtime}
    for lay in layers:
        r = runtime.get(lay.node)
        if r is not None:
            lay.runtime_precision = "int8"
            lay.hints.append(runtime_hint(r, layer_kernels))
    heat = None
    if layers:

        heat = np.stack([outcome.layers[lay.node].per_sample for lay in layers], axis=1)
    timings = dict(outcome.timings, calibrate_and_quantize_s=t_quant, isolated_reused=float(len(engine.reused)))
    hints = model_hints(fp32, recipe.settings.op_types)
    spread = spread_error_hint(layers, recipe.settings.activation_type)
    if spread is not None:
        hints.append(spread)
    macs = _macs(fp32, layers, data)
    outputs = list(outcome.outputs) if kernels != "deployed" or layer_kernels == "deployed" else []
    gap = path_only()  # a single mode has no gap to explain; the integer path is still worth showing
    if layer_kernels == "deployed":
        timings["deployed_inference_s"] = outcome.timings["inference_s"]
        timings["deployed_layers_s"] = outcome.timings["statistics_s"]
    if deployed is not None:
        dep = deployed.results()
        outputs += dep
        timings["deployed_inference_s"] = deployed.seconds
        timings["deployed_layers_s"] = taps.seconds if taps else 0.0
        if explain:
            t_gap = time.perf_counter()
            gap = explain_gap(session, recipe, q.path, kinds, engine.batched, outcome.samples,
                              engine.suggested_batch(), outcome.outputs, dep, remedies, session_options,
                              scaled(task, 0.85, 1.0))
            timings["kernel_remedies_s"] = time.perf_counter() - t_gap
        h = remedy_hint(gap) or saturation_hint(outcome.outputs, dep, u8s8_saturates(runtime_flags()))
        if h is not None:
            hints.append(h)
    return AnalysisResult(
        model=session.prepared.source, recipe=recipe.to_dict(), samples=outcome.samples,
        elapsed_s=time.perf_counter() - t0, peak_rss_mb=peak_rss_mb(), outputs=outputs, layers=layers,
        thresholds=thresholds, heatmap=heat, reservoirs=outcome.reservoirs, int8_model=str(q.path), timings=timings,
        notes=notes, hints=hints, kernels=kernels, macs_by_precision=macs, kernel_gap=gap,
        layer_kernels=layer_kernels)


def _macs(fp32, layers, data) -> dict | None:
    """The run's MAC share per precision (``workbench.mac_share``); None when the shapes cannot be inferred."""
    try:
        return macs_by_precision(fp32, {lay.node: lay.effective_precision for lay in layers}, data.sample(0))
    except Exception:  # noqa: BLE001 - a figure to show, never a reason to fail the analysis
        return None


def _deployed_layers(layers: list[LayerResult], figures: dict[str, dict]) -> None:
    """Each layer's ``deployed`` figures, and a ``kernel_departs`` hint where the kernel computes a worse
    tensor than the Q/DQ simulation (``analyzers.deployed_layers.KERNEL_GAP_DB``)."""
    saturates = u8s8_saturates(runtime_flags())
    for lay in layers:
        d = lay.deployed = figures.get(lay.node)
        if not kernel_departs(d):
            continue
        why = ("this CPU has no VNNI: onnxruntime's u8 x s8 kernels add pairs of products in saturating 16-bit "
               "lanes" if saturates else "onnxruntime's fused kernel rounds or computes differently from Q/DQ")
        fix = ("quantize with reduce_range = true (7-bit weights cannot saturate), or run with "
               "session.x64quantprecision = 1 (u8 x u8 path)" if saturates else
               "compare with --kernels exact; keep this layer in FP32 or 16-bit if the gap matters")
        gap = own_gap(d)
        alone = (f"fed the simulation's own inputs it costs {gap:.1f} dB ({d['own_lsb_diff_share']:.1%} of values "
                 ">= 1 LSB off)" if d.get("own_gap_db") is not None else f"{gap:.1f} dB of the gap starts here")
        lay.hints.append(Hint("kernel_departs", f"the deployed {d['kernel']} kernel departs from the Q/DQ simulation: "
                              f"{alone}; as deployed the layer is {d['kernel_gap_db']:.1f} dB below exact, "
                              f"{d['lsb_diff_share']:.1%} of its values >= 1 LSB off; {why}", fix, float(gap)))


def _deployed_only_layers(layers: list[LayerResult], tapped: set[str], engine: DeployedEngine) -> None:
    """Each layer's ``deployed`` entry when only the deployed kernels ran: its SQNR as deployed (the layer's
    ``cumulative`` figures), and null for every figure that needs the exact simulation (``NOT_COMPUTED``)."""
    for lay in layers:
        lay.kernels = "deployed"
        t = engine.taps.taps.get(lay.node)
        if lay.node not in tapped or t is None or math.isnan(lay.cumulative.sqnr_db):  # NaN: not measured
            continue
        lay.deployed = {"sqnr_db": lay.cumulative.sqnr_db, "kernel_gap_db": None, "lsb_diff_share": None,
                        "max_lsb_diff": None, "exact_sqnr_db": None, "kernel": t.kernel, "tensor": t.deployed_tensor,
                        "own_gap_db": None, "own_lsb_diff_share": None, "introduced_gap_db": None,
                        "not_computed": "exact simulation skipped (--kernels deployed): kernel_gap_db, lsb_diff_share, "
                                        "exact_sqnr_db and own_gap_db need it"}


def runtime_hint(r, layer_kernels: str = "exact") -> Hint:
    """The ``runtime_requantizes`` hint for a float/16-bit layer onnxruntime runs in 8 bits anyway."""
    where = ("the exact figures here are for the layer the model file describes; the deployed ones include "
             "onnxruntime's integer kernel" if layer_kernels == "exact" else
             "the figures here are the deployed kernels', so they include onnxruntime's integer kernel")
    return Hint("runtime_requantizes", f"{r.message()}: {where}", r.fix)


def _also_deployed(batches, deployed: DeployedOutputs, labels):
    """``batches`` unchanged, each one also run through the deployed sessions: one read of the data, the same
    samples in the same batches for both modes."""
    for start, stop, feed in batches:
        deployed.update(feed, None if labels is None else labels[start:stop])
        yield start, stop, feed


def _assemble_layers(session, recipe, calib, ranges, figures, engine, outcome, excluded) -> list[LayerResult]:
    g = session.graph
    out = []
    for lay in engine.match.layers:
        o = outcome.layers[lay.node]
        node = g.node(lay.node)
        precision = "fp32" if lay.node in excluded else (recipe.precision_of(lay.node) if lay.quantized else "fp32")
        iso = o.isolated
        amp = amplification(iso.sqnr_db if iso else None, o.cumulative.sqnr_db)
        in_sqnr = [outcome.tensors[t].sqnr_db for t in lay.activation_inputs if t in outcome.tensors]
        introduced = introduced_db(in_sqnr, o.cumulative.sqnr_db)
        r = LayerResult(lay.node, lay.op_type, lay.fp32_tensor, lay.int8_tensor, precision, lay.index, node.depth,
                        o.cumulative, iso, o.weight, amp, introduced, o.clip_rate)
        if lay.quantized:
            r.hints = layer_hints(_hint_inputs(lay, recipe, calib, ranges, figures, o.clip_rate))
        out.append(r)
    return out


def _range_figures(calib, ranges) -> dict[str, RangeStats]:
    """Each calibrated tensor's range statistics under the recipe's ranges (``range_stats``), for the hints."""
    return {t: range_stats(h, tr.lo, tr.hi, tr.spec) for t, tr in ranges.items()
            if (h := calib.histograms.get(t)) is not None and h.count}


def _hint_inputs(lay, recipe, calib, ranges, figures, clip_rate) -> HintInputs:
    s = recipe.settings
    tr = ranges.get(lay.fp32_tensor)
    rs = figures.get(lay.fp32_tensor) if tr is not None else None
    inputs = []
    for t in lay.activation_inputs:
        hi = calib.histograms.get(t)
        if hi is not None and hi.count:
            inputs.append((t, hi.min, hi.max))
    w = calib.weights.get(lay.weight) if lay.weight else None
    return HintInputs(lay.node, lay.op_type, lay.fp32_tensor, rs, s.symmetric_activations,
                      s.activation_type.startswith("s"), s.per_channel, w, inputs, clip_rate,
                      recipe.precision_of(lay.node), tr.method if tr is not None else s.calibration_method,
                      tr.percentile if tr is not None else None)


def _batched(data) -> bool:
    """Whether axis 0 of every fed tensor is a batch of samples (so per-sample figures are per row)."""
    return all(lay.has_batch_axis for lay in data.layouts.values())

