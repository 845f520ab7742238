"""Measure what a model-level hint costs before the user tries it: 16-bit activations, timed and profiled here.

"Use 16-bit activations" is only advice if its price is known: onnxruntime has integer kernels for 8-bit
activations, so a 16-bit model runs most of its compute in float between DequantizeLinear/QuantizeLinear.
We quantize the run's recipe with 16-bit activations, and time it and read its INT8 coverage
(``backends.coverage``: the share of MACs onnxruntime really runs in integer kernels) on the CPU beside the
run's own 8-bit model, with ``qwb bench``'s engine (``workbench.bench.run_bench``).
"""

from __future__ import annotations

from backends.tasks import scaled

from .bench import BenchRequest, run_bench
from .recipe import Recipe

HINT_CODE = "activations_16bit"
RUNS = 50  # timed runs per model: five rounds for the p50's spread, short enough to run beside an analysis


def _figures(report, label: str) -> dict:
    """One variant's figures from the CPU result: latency and MAC share in integer kernels, FP32's p50 beside."""
    r = report.result("cpu")
    run = r.variants.get(label)
    cov = r.variant_coverage.get(label)
    lat = run.latency if run else None
    f32 = r.fp32.latency if r.fp32 else None
    return {"macs_int8_share": cov.macs_int8_share if cov else None,
            "p50_ms": lat.p50_ms if lat else None, "p50_p10_ms": lat.p50_p10_ms if lat else None,
            "p50_p90_ms": lat.p50_p90_ms if lat else None, "fp32_p50_ms": f32.p50_ms if f32 else None,
            # a variant's own failure (its coverage's included), else the 8-bit model's coverage failure
            "failure": (run.failure if run else "not timed") or (None if cov else r.coverage_failure)}


def _spread(f: dict) -> str:
    if f["p50_p10_ms"] is None:
        return ""
    return f" (p50 over rounds {f['p50_p10_ms']:.3g}–{f['p50_p90_ms']:.3g})"


def measure_activations_16bit(session, recipe: Recipe, result, task=None, runs: int = RUNS) -> dict | None:
    """Fill in the measured cost of ``result``'s 16-bit-activations hint (``Hint.measured`` and a sentence in its
    message): MAC share in integer kernels and p50 latency on this CPU, 8-bit (the run) vs 16-bit activations.
    Does nothing (returns None) when the run has no such hint or no INT8 model."""
    hint = next((h for h in result.hints if h.code == HINT_CODE), None)
    if hint is None or not result.int8_model:
        return None
    r16 = recipe.copy()
    r16.settings.activation_type = "u16" if recipe.settings.activation_type == "u8" else "s16"
    q16 = session.quantize(recipe=r16, task=scaled(task, 0.0, 0.3))
    fp32, calib = str(session.prepared.path), session.spec.calib
    # one benchmark: FP32 timed once, the 8-bit model and its 16-bit variant each timed and their coverage read
    req = BenchRequest(model=fp32, int8=result.int8_model, calib=calib, backends=("cpu",), runs=runs, warmup=3,
                       compare_activation_types=False, variants={"8bit": result.int8_model, "16bit": str(q16.path)})
    report = run_bench(req, scaled(task, 0.3, 1.0))
    a, b = _figures(report, "8bit"), _figures(report, "16bit")
    hint.measured = {"backend": "cpu", "activation_type": r16.settings.activation_type, "runs": runs,
                     "activations_8bit": a, "activations_16bit": b}
    if a["macs_int8_share"] is not None and b["macs_int8_share"] is not None and a["p50_ms"] and b["p50_ms"]:
        hint.message += (f". Measured here (cpu, {runs} runs): MACs in integer kernels {a['macs_int8_share']:.0%} → "
                         f"{b['macs_int8_share']:.0%} with 16-bit activations; INT8 p50 {a['p50_ms']:.3g} ms "
                         f"{_spread(a)} → {b['p50_ms']:.3g} ms{_spread(b)}; FP32 p50 {a['fp32_p50_ms']:.3g} ms")
    else:
        hint.message += ". Its cost could not be measured here: " + (b["failure"] or a["failure"] or "no timings")
    return hint.measured
