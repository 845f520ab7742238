"""Measure one candidate recipe: quantize it from the cached calibration, run it as deployed, time it.

Everything a worker needs travels in one picklable ``EvalContext`` (model bytes, calibration histograms, the
data of each part), so the same function runs in this process, in local worker processes and as a Ray task on
another machine; each process keeps the FP32 outputs of every part, so a candidate costs one quantization and
one INT8 pass.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from analyzers.calibration.collect import CalibrationData
from analyzers.diff_types import OutputResult
from analyzers.output_kinds import OutputKind
from analyzers.output_metrics import OutputAccumulator
from backends.runner import SessionConfig, build_session
from backends.runtime_precision import runtime_int8_layers

from ..model_prep import PreparedModel
from ..quantize import quantize
from ..recipe import Recipe

LATENCY_RUNS = 15  # timed single-sample runs per candidate; the minimum is kept (the least disturbed run)


@dataclass
class EvalContext:
    """What every evaluation needs, self-contained (no paths): shipped once to each worker or object store."""

    key: str
    model_bytes: bytes
    prepared: PreparedModel
    calib: CalibrationData
    parts: dict  # part name -> (inputs {name: array}, labels or None)
    batch: int
    batched: bool
    kinds: dict[str, OutputKind]
    threads: int = 1  # onnxruntime intra-op threads per evaluation (a worker's CPUs)
    providers: list = field(default_factory=lambda: ["CPUExecutionProvider"])
    macs: dict = field(default_factory=dict)  # node -> multiply-accumulates per sample (Conv/Gemm/MatMul)
    coverage_parts: tuple = ("holdout",)  # parts whose evaluations also read the deployed INT8 coverage (one
    # more session build each): the verified points, and every evaluation when the objective is INT8 MACs


@dataclass
class EvalResult:
    """One candidate on one part of the data: its output figures, latency and size, or why it failed."""

    recipe_key: str
    part: str
    outputs: list[OutputResult] = field(default_factory=list)
    latency_ms: float | None = None  # one sample, deployed kernels, minimum of LATENCY_RUNS
    size_bytes: int | None = None
    seconds: float = 0.0  # wall time of the evaluation (quantize + run)
    error: str | None = None
    int8_macs: int | None = None  # MACs per sample onnxruntime runs in 8-bit integer kernels (deployed coverage)


def recipe_key(recipe: Recipe) -> str:
    return hashlib.sha256(recipe.dumps().encode()).hexdigest()[:16]


_STATE: dict[str, dict] = {}  # context key -> this process's materialised model, FP32 outputs, scratch folder


def _state(ctx: EvalContext) -> dict:
    st = _STATE.get(ctx.key)
    if st is None:
        _STATE.clear()
        folder = Path(tempfile.mkdtemp(prefix="qwb-tune-"))
        # a copy per process, also on this machine: onnxruntime's quantizer writes its shape-inferred model
        # beside its input, and workers sharing the cached file would overwrite each other's
        path = folder / "fp32.onnx"
        path.write_bytes(ctx.model_bytes)
        st = _STATE[ctx.key] = {"prepared": replace(ctx.prepared, path=path), "folder": folder, "fp32": {}}
    return st


def _session(path: Path, ctx: EvalContext):
    cfg = SessionConfig.for_purpose("deployed", str(path), threads=ctx.threads)
    cfg.providers = list(ctx.providers)
    return build_session(cfg)


def _batches(arrays: dict, n: int, batch: int, batched: bool):
    step = batch if batched else 1
    for start in range(0, n, step):
        stop = min(n, start + step)
        yield start, stop, ({k: v[start:stop] for k, v in arrays.items()} if batched
                            else {k: v[start] for k, v in arrays.items()})


def _fp32_outputs(ctx: EvalContext, st: dict, part: str) -> tuple[list[str], list[list[np.ndarray]]]:
    if part not in st["fp32"]:
        sess = _session(st["prepared"].path, ctx)
        names = [o.name for o in sess.get_outputs()]
        inputs = {i.name for i in sess.get_inputs()}
        arrays, _ = ctx.parts[part]
        n = len(next(iter(arrays.values())))
        outs = [sess.run(names, {k: v for k, v in feed.items() if k in inputs})
                for _, _, feed in _batches(arrays, n, ctx.batch, ctx.batched)]
        st["fp32"][part] = (names, outs)
    return st["fp32"][part]


def evaluate(ctx: EvalContext, recipe_dict: dict, part: str) -> EvalResult:
    """Quantize ``recipe_dict`` and compare it with FP32 on ``part`` of the data; never raises for a candidate
    that fails to quantize or run (the search records it and moves on)."""
    t0 = time.perf_counter()
    recipe = Recipe.from_dict(recipe_dict)
    key = recipe_key(recipe)
    st = _state(ctx)
    out = st["folder"] / f"{key}-{os.getpid()}.qdq.onnx"
    try:
        quantize(st["prepared"], recipe, ctx.calib, out)
        size = out.stat().st_size
        names, fp32 = _fp32_outputs(ctx, st, part)
        sess = _session(out, ctx)
        inputs = {i.name for i in sess.get_inputs()}
        arrays, labels = ctx.parts[part]
        n = len(next(iter(arrays.values())))
        acc = {nm: OutputAccumulator(ctx.kinds[nm], ctx.batched) for nm in names}
        first = None
        for (start, stop, feed), xs in zip(_batches(arrays, n, ctx.batch, ctx.batched), fp32):
            feed = {k: v for k, v in feed.items() if k in inputs}
            first = first or feed
            ys = sess.run(names, feed)
            for nm, x, y in zip(names, xs, ys):
                acc[nm].update(x, y, None if labels is None else labels[start:stop])
        latency = _latency(sess, names, first, ctx.batched)
        results = [acc[nm].result() for nm in names]
        for r in results:
            r.kernels = "deployed"
        int8_macs = None
        if part in ctx.coverage_parts and ctx.macs:
            int8 = runtime_int8_layers(out, [n for n, m in ctx.macs.items() if m], ctx.providers)
            int8_macs = sum(ctx.macs[n] for n in int8)
        return EvalResult(key, part, results, latency, size, time.perf_counter() - t0, int8_macs=int8_macs)
    except Exception as e:  # noqa: BLE001 - a candidate onnxruntime cannot quantize or run is a failed point
        return EvalResult(key, part, seconds=time.perf_counter() - t0, error=f"{type(e).__name__}: {str(e)[:300]}")
    finally:
        out.unlink(missing_ok=True)


def _latency(sess, names, feed: dict | None, batched: bool) -> float | None:
    """Milliseconds for one sample through the deployed INT8 session (minimum of LATENCY_RUNS runs)."""
    if not feed:
        return None
    one = {k: v[:1] for k, v in feed.items()} if batched else feed
    sess.run(names, one)  # warm-up
    best = float("inf")
    for _ in range(LATENCY_RUNS):
        t = time.perf_counter()
        sess.run(names, one)
        best = min(best, time.perf_counter() - t)
    return best * 1e3
