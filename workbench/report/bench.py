"""Benchmark results for a report: run ``qwb bench``'s engine on the analysed models, and summarise its JSON.

The report never times anything itself: it hands the FP32 model and each run's INT8 model to
``workbench.bench.run_bench`` (the backends work) and keeps the figures of its JSON contract
(``BenchReport.to_dict()``) that a reader needs: latency, speed-up and INT8 coverage per backend.
"""

from __future__ import annotations

from backends.registry import BACKEND_NAMES, make_backend
from backends.tasks import scaled

from ..bench import BenchRequest, run_bench
from ..compare import delta
from ..errors import WorkbenchError
from ..paths import arm_sysroot_dir
from .data import BackendBench, BenchSummary, LatencyChange, LatencyRow, RunReport, num

MAX_FLOAT_NODES = 12


def check_backends(names: list[str]) -> None:
    """Refuse, before any analysis runs, a benchmark that cannot happen: an unknown backend name, or a backend that is not available on this machine (with its reason and fix)."""

    for n in names:
        if n not in BACKEND_NAMES:
            raise WorkbenchError(f"unknown backend {n!r} for --bench", f"choose from {', '.join(BACKEND_NAMES)}")
        a = make_backend(n, arm_sysroot_dir()).availability()
        if not a.available:
            raise WorkbenchError(f"backend {n} is not available here: {a.reason}", a.fix)


def _latency(d: dict | None) -> LatencyRow | None:
    if not d:
        return None
    return LatencyRow(*(num(d.get(k)) for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "throughput",
                                                  "rounds", "p50_p10_ms", "p50_p90_ms")))


def summarize(bench_json: dict) -> BenchSummary:
    """The report's view of a ``qwb bench`` JSON document (``BenchReport.to_dict()``), or of a plain
    ``{backend: BackendResult.to_dict()}`` mapping (what the GUI keeps per benchmark)."""
    if "backends" in bench_json:
        backends = bench_json.get("backends") or {}
    else:
        backends = {k: v for k, v in bench_json.items() if isinstance(v, dict) and "available" in v}
    rows = []
    for name, b in backends.items():
        cov = b.get("int8_coverage") or {}
        floats = []
        for f in (cov.get("float_nodes") or [])[:MAX_FLOAT_NODES]:
            if isinstance(f, dict):
                floats.append(f"{f.get('name')} ({f.get('op_type')}): {f.get('reason', '')}".rstrip(": "))
            else:
                floats.append(str(f))
        rows.append(BackendBench(
            backend=str(name), available=bool(b.get("available")), reason=b.get("reason"),
            emulated=bool(b.get("emulated")), batch=b.get("batch"), threads=b.get("threads"),
            fp32=_latency(b.get("fp32")), int8=_latency(b.get("int8")), speedup=num(b.get("speedup")),
            nodes_int8=cov.get("nodes_int8"), nodes_float=cov.get("nodes_float"),
            macs_int8_share=num(cov.get("macs_int8_share")), float_nodes=floats,
            failures={str(k): str(v) for k, v in (b.get("failures") or {}).items()},
            notes=[str(n) for n in (b.get("notes") or [])]))
    return BenchSummary(rows, dict(bench_json.get("host") or {}), dict(bench_json.get("settings") or {}))


def run_benchmarks(fp32_model: str, int8_models: list[str], backends: list[str], task=None,
                   runs: int = 100, calib: str | None = None) -> list[BenchSummary]:
    """Time FP32 vs each INT8 model on ``backends`` with the benchmarking engine; one summary per INT8 model.

    ``calib``: the calibration data, so the models are fed real samples (random inputs otherwise)."""
    out = []
    for i, int8 in enumerate(int8_models):
        part = scaled(task, i / len(int8_models), (i + 1) / len(int8_models))
        req = BenchRequest(model=fp32_model, int8=int8, calib=calib, backends=tuple(backends), runs=runs,
                           compare_activation_types=False)
        out.append(summarize(run_bench(req, part).to_dict()))
    return out


def latency_changes(rb: RunReport, ra: RunReport) -> list[LatencyChange]:
    """INT8 p50 latency before and after on every backend both runs were timed on."""
    return bench_latency_changes(rb.bench, ra.bench)


def bench_latency_changes(before: BenchSummary | None, after: BenchSummary | None) -> list[LatencyChange]:
    """``latency_changes`` of two benchmark summaries (the GUI's before/after verdict passes its own benchmarks)."""
    if before is None or after is None:
        return []
    bb = {b.backend: b for b in before.backends}
    out = []
    for a in after.backends:
        b = bb.get(a.backend)
        if b is None:
            continue
        before = b.int8.p50_ms if b.int8 else None
        after = a.int8.p50_ms if a.int8 else None
        d = delta(after, before)
        fp32 = (a.fp32 or b.fp32).p50_ms if (a.fp32 or b.fp32) else None
        spread = [getattr(r.int8, k, None) if r.int8 else None for r in (b, a) for k in ("p50_p10_ms", "p50_p90_ms")]
        out.append(LatencyChange(a.backend, fp32, before, after, d, d / before if d is not None and before else None,
                                 *spread, latency_outcome(*spread)))
    return out


def latency_outcome(before_p10, before_p90, after_p10, after_p90) -> str | None:
    """``faster``/``slower`` only when the after run's p50 range (p10-p90 of its rounds' p50s) lies wholly
    below/above the before run's (the change exceeds the spread), ``within noise`` when the ranges overlap; None
    when either is unknown. A p50 difference inside the spread is what re-running the same command gives."""
    if None in (before_p10, before_p90, after_p10, after_p90):
        return None
    if after_p90 < before_p10:
        return "faster"
    if after_p10 > before_p90:
        return "slower"
    return "within noise"
