"""Calibration for a prepared model: which tensors, one histogram pass, and the on-disk cache.

Histograms are cached by the content of the prepared model and of the data, so reopening a project
or changing a percentile never runs the model again; changing the model or the data invalidates it.
The histogram pass itself, and everything computed from histograms, is ``analyzers.calibration``.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import zipfile
from pathlib import Path

import numpy as np

from analyzers.calibration.collect import CalibrationData, collect, weight_stats
from analyzers.calibration.histogram import DEFAULT_BINS, HistogramSnapshot, SpecialValues
from analyzers.mask_constants import input_mask_limits, mask_inputs, mask_limits
from analyzers.onnx_utils import tensors_to_calibrate
from backends.tasks import NullTask, Task

from .data import DataSource
from .graph import FUSABLE_ACTIVATIONS, ModelGraph, default_quantizable_op_types
from .model_prep import PreparedModel
from .paths import cache_dir, sha256_bytes
from .recipe import Recipe

CACHE_FORMAT = 5  # 2: power-of-two histogram grids (exact widening); 3: special values counted by kind (NaN,
# -inf, +inf, mask magnitudes) and kept out of the bins; 4: mask magnitudes from 1e8 (were 1e30: -1e9 masks were
# binned as data); 5: masks fed as float inputs found by their values; older caches are rebuilt
BATCH_BYTES = 16 << 20  # one batch of calibrated tensors: bounds peak memory whatever N is (larger batches
# measured no faster on CPU; see docs/benchmarks.md, Calibration lab). Two batches are alive at once: the one
# being histogrammed (collect's worker thread) and the one onnxruntime is running.
MAX_BATCH = 32


def op_types_for(recipe: Recipe) -> list[str]:
    """The op types to quantize: the recipe's list, or every type onnxruntime's QDQ quantizer supports."""
    return sorted(recipe.settings.op_types) if recipe.settings.op_types else sorted(default_quantizable_op_types())


def calibration_tensors(prepared: PreparedModel, recipe: Recipe) -> list[str]:
    """The activation tensors onnxruntime will quantize for this recipe's op types."""
    return tensors_to_calibrate(prepared.load_proto(), op_types_for(recipe))


def cache_path(prepared: PreparedModel, data: DataSource, tensors: list[str], bins: int, model=None) -> Path:
    """Where the histograms of this model, data, tensor list and bin count are kept (``model``: the prepared model,
    when it is loaded already)."""
    key = sha256_bytes(json.dumps([CACHE_FORMAT, prepared.sha256, data.content_hash(), len(data), bins,
                                   tensors, sorted(data_mask_limits(prepared, data, model).items())]).encode())
    return cache_dir() / "calib" / f"{key[:32]}.npz"


_MASK_LIMITS: dict[str, dict[str, float]] = {}  # prepared model's sha256 -> its mask limits


def prepared_mask_limits(prepared: PreparedModel, model=None) -> dict[str, float]:
    """The finite mask constants' limits of the prepared model (``analyzers.mask_constants``), read once per model
    content: calibration, the cache key and the mask path all use them."""
    if prepared.sha256 not in _MASK_LIMITS:
        _MASK_LIMITS[prepared.sha256] = mask_limits(model if model is not None else prepared.load_proto())
    return _MASK_LIMITS[prepared.sha256]


_DATA_MASK_LIMITS: dict[tuple[str, str], dict[str, float]] = {}  # (model sha256, data hash) -> its mask limits
_SCAN_ROWS = 256  # samples of a candidate mask input read at a time


def data_mask_limits(prepared: PreparedModel, data: DataSource, model=None) -> dict[str, float]:
    """``prepared_mask_limits`` plus the masks fed as float inputs, already scaled (-1e4 at padded positions), found
    by the values those inputs take in ``data`` (``analyzers.mask_constants.input_mask_limits``); once per model and
    data content. Only inputs that reach a Softmax through the ops that carry a mask are read, and an input stops
    being read once it shows a third value."""
    key = (prepared.sha256, data.content_hash())
    if key not in _DATA_MASK_LIMITS:
        model = model if model is not None else prepared.load_proto()
        limits = dict(prepared_mask_limits(prepared, model))
        carriers = mask_inputs(model)
        values = {}
        for name in (n for n in carriers if n in data.input_names()):
            seen = np.empty(0)
            for start in range(0, len(data), _SCAN_ROWS):
                seen = np.union1d(seen, np.unique(data.input_rows(name, start, min(len(data), start + _SCAN_ROWS))))
                if seen.size > 2:  # not 0 and one constant: data
                    break
            values[name] = seen
        for t, lim in input_mask_limits(carriers, values).items():
            limits[t] = min(limits.get(t, lim), lim)
        _DATA_MASK_LIMITS[key] = limits
    return _DATA_MASK_LIMITS[key]


def calibration_mask_limits(prepared: PreparedModel, calib: CalibrationData) -> dict[str, float]:
    """The mask limits ``calib`` was collected with (``data_mask_limits``), or the graph's alone for calibration
    data made without a data set (placeholder ranges)."""
    return calib.mask_limits or prepared_mask_limits(prepared)


def batch_size_for(prepared: PreparedModel, tensors: list[str], budget: int = BATCH_BYTES) -> int:
    """Samples per run so that one batch of every calibrated tensor fits in ``budget`` bytes.

    Sizes come from the graph's inferred shapes (symbolic or unknown dimensions count as 1, the batch
    axis excluded); a model whose shapes are unknown gets the default batch.
    """
    per_sample = 0
    for t in tensors:
        info = prepared.graph.tensors.get(t)
        if info is None or info.shape is None:
            continue
        n = 1
        for d in info.shape[1:]:
            n *= d if isinstance(d, int) and d > 0 else 1
        per_sample += n * 4
    if per_sample == 0:
        return MAX_BATCH
    return int(max(1, min(MAX_BATCH, budget // per_sample)))


def activation_pairs(graph: ModelGraph, op_types, tensors) -> dict[str, tuple[str, str]]:
    """Tensor -> (activation node, its output) for each of ``tensors`` that is the input of a Relu/Clip among
    ``op_types`` that it alone feeds, the output also among ``tensors``: onnxruntime's ``adjust_tensor_ranges`` gives
    such an input the output's range while the activation is quantized (the pair is fused)."""
    calibrated, ops = set(tensors), set(op_types)
    pairs = {}
    for n in graph.nodes:
        if n.op_type in FUSABLE_ACTIVATIONS and n.op_type in ops and n.inputs and n.outputs:
            src, dst = n.inputs[0], n.outputs[0]
            if src in calibrated and dst in calibrated and len(graph.consumers.get(src, [])) == 1:
                pairs[src] = (n.name, dst)
    return pairs


def fused_away(graph: ModelGraph, op_types, tensors) -> dict[str, tuple[str, str]]:
    """The ``activation_pairs`` whose input's own histogram decides nothing while the activation is quantized.

    The calibration pass leaves them out until a recipe keeps such an activation in float: 35 of a 224-px
    MobileNetV2's 101 tensors, and their exposure blocks onnxruntime's Conv + Clip fusion (the pass took 2.1 s instead
    of 3.6 without them, docs/benchmarks.md). A tensor that is itself such an activation's output stays (Conv -> Clip
    -> Relu: onnxruntime adjusts in graph order, so the Conv output takes the Clip output's own range before the
    Relu's replaces it)."""
    pairs = activation_pairs(graph, op_types, tensors)
    outputs = {dst for _, dst in pairs.values()}
    return {t: v for t, v in pairs.items() if t not in outputs}


def missing_histograms(graph: ModelGraph, recipe: Recipe, calib: CalibrationData) -> list[str]:
    """The tensors ``calib`` left out (``fused_away``) that ``recipe`` quantizes with their own range."""
    return _unfused(graph, recipe, calib.fused_away)


def _unfused(graph: ModelGraph, recipe: Recipe, away: dict[str, tuple[str, str]]) -> list[str]:
    """The tensors of ``away`` whose activation ``recipe`` does not quantize: excluded, or not among its op types."""
    if not away:
        return []
    excluded, ops = set(recipe.excluded_nodes()), set(op_types_for(recipe))
    return [t for t, (node, _) in away.items()
            if node in excluded or not graph.has_node(node) or graph.node(node).op_type not in ops]


def calibrate(prepared: PreparedModel, data: DataSource, recipe: Recipe, task: Task | None = None,
              bins: int = DEFAULT_BINS, use_cache: bool = True, complete: bool = False) -> tuple[CalibrationData, bool]:
    """Histograms for every tensor to quantize; returns (data, loaded_from_cache).

    Tensors whose range onnxruntime replaces by their activation's (``fused_away``) are left out unless ``complete``
    or ``recipe`` quantizes one of them alone; ``take_fused_away`` adds them later. The cache file is named by the
    content of the prepared model and of the data (plus the tensor list and bin count), so reopening reuses it and a
    changed model or data set is recalibrated; a complete calibration is one file, or the lean one plus the rest.
    """
    task = task or NullTask()
    model = prepared.load_proto()
    tensors = tensors_to_calibrate(model, op_types_for(recipe))
    away = fused_away(prepared.graph, op_types_for(recipe), tensors)
    lean = [t for t in tensors if t not in away]
    whole = complete or bool(_unfused(prepared.graph, recipe, away))
    for names in ([tensors, lean] if away else [tensors]):
        hit = _cached_histograms(prepared, data, names, bins, model, use_cache, task)
        if hit is not None:
            got = CalibrationData(hit[0], weight_stats(model), hit[1], dict(data_mask_limits(prepared, data, model)),
                                  fused_away=away if names is lean else {})
            if whole:
                take_fused_away(prepared, data, got, task, bins, use_cache)
            return got, True
    if whole or not away:
        return _collect_and_save(prepared, data, tensors, bins, model, task), False
    result = _collect_and_save(prepared, data, lean, bins, model, task)
    result.fused_away = away
    return result, False


def take_fused_away(prepared: PreparedModel, data: DataSource, calib: CalibrationData, task: Task | None = None,
                    bins: int = DEFAULT_BINS, use_cache: bool = True) -> None:
    """Complete ``calib``: the histograms of the tensors it left out (``fused_away``), from the cache or one more
    pass over the data, added in place (a new dict, so a reader of the old one is undisturbed)."""
    if not calib.fused_away:
        return
    task = task or NullTask()
    model = prepared.load_proto()
    rest = list(calib.fused_away)
    hit = _cached_histograms(prepared, data, rest, bins, model, use_cache, task, warn=False)  # the first part warned
    hists = hit[0] if hit is not None else _collect_and_save(prepared, data, rest, bins, model, task,
                                                             warn=False).histograms
    calib.histograms = {**calib.histograms, **hists}
    calib.fused_away = {}


def _cached_histograms(prepared: PreparedModel, data: DataSource, tensors: list[str], bins: int, model,
                       use_cache: bool, task: Task, warn: bool = True) -> tuple[dict, int] | None:
    """(histograms, samples) cached for exactly ``tensors``, or None (none cached, or a damaged file: rebuilt);
    ``warn``: about non-finite input values the data holds."""
    path = cache_path(prepared, data, tensors, bins, model)
    if not (use_cache and path.exists()):
        return None
    try:
        hists, samples, index = _load(path)
        if set(hists) != set(tensors):
            return None
    except Exception as e:  # noqa: BLE001 - a damaged cache file is rebuilt, never trusted
        print(f"note: the calibration cache {path} is damaged ({type(e).__name__}: {str(e)[:200]}); "
              "rebuilding it", file=sys.stderr)
        return None
    task.report(1.0, "calibration histograms loaded from cache")
    if warn:
        warn_nonfinite_inputs(data, index.get("input_nonfinite") or {})
    return hists, samples


def _collect_and_save(prepared: PreparedModel, data: DataSource, tensors: list[str], bins: int, model,
                      task: Task, warn: bool = True) -> CalibrationData:
    """One pass over ``data`` histogramming ``tensors``, written to the cache."""
    nonfinite: dict[str, int] = {}
    batches = _count_nonfinite(data.batches(batch_size=batch_size_for(prepared, tensors)), nonfinite)
    result = collect(model, tensors, batches, len(data), task=task, bins=bins,
                     mask_limits=data_mask_limits(prepared, data, model))
    save_histograms(cache_path(prepared, data, tensors, bins, model), result.histograms, result.samples, nonfinite)
    if warn:
        warn_nonfinite_inputs(data, nonfinite)
    return result


def _count_nonfinite(batches, counts: dict[str, int]):
    """Pass batches through, counting NaN/inf per float input: calibration keeps them out of every range, but
    non-finite *input* data is almost always a broken data set, so the user is told."""
    for start, stop, feed in batches:
        for name, arr in feed.items():
            if arr.dtype.kind == "f":
                bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
                if bad:
                    counts[name] = counts.get(name, 0) + bad
        yield start, stop, feed


def warn_nonfinite_inputs(data: DataSource, counts: dict[str, int]) -> None:
    """One line naming the data and every input holding NaN/inf values (nothing when there are none)."""
    if counts:
        what = ", ".join(f"'{n}': {c:,}" for n, c in counts.items())
        print(f"WARNING: {data.description} holds NaN or infinite values (by input {what}); they are left out of "
              "every calibration range, but check how the data was made", file=sys.stderr)


def save_histograms(path: Path, hists: dict[str, HistogramSnapshot], samples: int,
                    input_nonfinite: dict[str, int] | None = None) -> None:
    """Write histograms atomically as one .npz: a JSON index and a few stacked arrays (fast to reopen)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(hists)
    hs = [hists[n] for n in names]
    index = {"format": CACHE_FORMAT, "names": names, "samples": samples, "input_nonfinite": input_nonfinite or {}}
    arrays = {
        "index": np.frombuffer(json.dumps(index).encode(), dtype=np.uint8),
        "counts": np.concatenate([h.counts for h in hs]) if hs else np.zeros(0, np.int64),
        "offsets": np.cumsum([0] + [len(h.counts) for h in hs]).astype(np.int64),
        "grid": np.array([[h.edges[0], h.edges[1] - h.edges[0]] for h in hs], dtype=np.float64).reshape(-1, 2),
        "stats": np.array([[h.min, h.max, h.sum, h.sum_sq] for h in hs], dtype=np.float64).reshape(-1, 4),
        "tallies": np.array([[h.count, h.zeros] for h in hs], dtype=np.int64).reshape(-1, 2),
        "special": np.array([h.special.as_row() for h in hs], dtype=np.float64).reshape(-1, 7),
    }
    tmp = path.with_suffix(".tmp.npz")
    # what np.savez_compressed writes (np.load reads it), at zlib level 1: 25 ms instead of 150 ms for a 224-px
    # MobileNetV2's 101 histograms, the file 7% larger (572 KB vs 536 KB)
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, a in arrays.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, a, allow_pickle=False)
    tmp.replace(path)


def load_histograms(path: Path) -> tuple[dict[str, HistogramSnapshot], int]:
    """Read what ``save_histograms`` wrote; raises on a damaged file or another format."""
    hists, samples, _ = _load(path)
    return hists, samples


def _load(path: Path) -> tuple[dict[str, HistogramSnapshot], int, dict]:
    """Histograms, sample count and the index; every array is checked (shapes, finite statistics, counts that
    add up), so a damaged file raises instead of giving NaN ranges to every later quantize."""
    if not stat.S_ISREG(os.lstat(path).st_mode):  # a link to /dev/zero or a FIFO would hang the read
        raise ValueError("it is not a regular file")
    with np.load(path, allow_pickle=False) as z:
        index = json.loads(bytes(z["index"]).decode())
        if index.get("format") != CACHE_FORMAT:
            raise ValueError("old cache format")
        counts, offsets, grid, stats, tallies, special = (
            z[k] for k in ("counts", "offsets", "grid", "stats", "tallies", "special"))
    names = index["names"]
    n = len(names)
    if offsets.shape != (n + 1,) or grid.shape != (n, 2) or stats.shape != (n, 4) or tallies.shape != (n, 2) \
            or special.shape != (n, 7) or offsets[0] != 0 or offsets[-1] != len(counts) or np.any(np.diff(offsets) < 0):
        raise ValueError("array shapes do not match the index")
    if np.any(counts < 0) or np.any(tallies < 0) or np.any(np.isnan(special)) or np.any(special[:, :5] < 0):
        raise ValueError("negative or NaN counts")
    if not np.all(np.isfinite(grid)) or np.any(grid[:, 1] <= 0):
        raise ValueError("histogram grid not finite")
    out = {}
    for i, name in enumerate(names):
        c = counts[offsets[i]:offsets[i + 1]].astype(np.int64)
        if int(c.sum()) != int(tallies[i, 0]):
            raise ValueError(f"counts of {name!r} do not add up")
        if tallies[i, 0] and not np.all(np.isfinite(stats[i])):
            raise ValueError(f"statistics of {name!r} are not finite")
        edges = grid[i, 0] + np.arange(len(c) + 1, dtype=np.float64) * grid[i, 1]
        mn, mx, sm, sq = (float(v) for v in stats[i])
        out[name] = HistogramSnapshot(c, edges, mn, mx, int(tallies[i, 0]), sm, sq, int(tallies[i, 1]),
                                      SpecialValues.from_row(special[i]))
    return out, int(index.get("samples", 0)), index
