"""Results of a benchmark, as plain dataclasses with ``to_dict()`` (the public JSON contract) and the
small comparisons made on them: outputs against outputs, INT8 variant against variant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx.external_data_helper import ExternalDataInfo, uses_external_data

from .availability import Availability
from .coverage import Int8Coverage
from .stats import LatencyStats

VARIANT_NOISE = 0.05  # p50 differences below this share are treated as noise


@dataclass
class ModelRun:
    """One model timed on one backend (or why it could not be)."""

    label: str
    path: str
    size_bytes: int
    stats: list = field(default_factory=list)  # LatencyStats, one per batch size
    peak_rss_bytes: int | None = None
    providers_used: list = field(default_factory=list)
    init_s: float | None = None
    failure: str | None = None
    outputs: list | None = field(default=None, repr=False)  # outputs of the first batch (numpy), not serialized

    @property
    def latency(self) -> LatencyStats | None:
        return self.stats[0] if self.stats else None

    def to_dict(self) -> dict:
        return {"label": self.label, "path": self.path, "size_mb": self.size_bytes / 1e6,
                "by_batch": [s.to_dict() for s in self.stats],
                "peak_memory_mb": self.peak_rss_bytes / 1e6 if self.peak_rss_bytes else None,
                "providers_used": self.providers_used, "session_init_s": self.init_s, "failure": self.failure}


@dataclass
class EmulatedRun:
    """Both models under one emulated ARM CPU, compared with the same models run natively here."""

    cpu: str
    qemu_cpu: str
    description: str
    coverage: Int8Coverage | None = None
    numerics: dict = field(default_factory=dict)  # "int8"/"fp32" -> comparison with the native run
    same_coverage_as_host: bool | None = None
    features: list | None = None  # what the emulated CPU reports (getauxval), e.g. asimd, asimddp, i8mm
    failure: str | None = None

    def to_dict(self) -> dict:
        return {"cpu": self.cpu, "qemu_cpu": self.qemu_cpu, "description": self.description, 
                "features": self.features,
                "int8_coverage": _coverage_contract(self.coverage), "numerics": self.numerics,
                "same_coverage_as_host": self.same_coverage_as_host, "failure": self.failure}


@dataclass
class BackendResult:
    """Everything measured on one backend; ``to_dict()`` is the public JSON contract for it."""

    backend: str
    availability: Availability
    emulated: bool
    threads: int | None = None
    batches: list = field(default_factory=list)
    fp32: ModelRun | None = None
    int8: ModelRun | None = None
    coverage: Int8Coverage | None = None
    coverage_failure: str | None = None
    variants: dict = field(default_factory=dict)  # label -> ModelRun (INT8 built with other settings)
    variant_coverage: dict = field(default_factory=dict)  # label -> Int8Coverage of that variant
    variant_verdict: dict | None = None
    emulated_runs: list = field(default_factory=list)  # [EmulatedRun]
    host_coverage: Int8Coverage | None = None  # emulated: the same INT8 model's coverage on this host
    host_numerics: dict | None = None  # emulated, x86 without VNNI: host default kernels vs the reference
    numerics: dict | None = None  # timed: INT8 outputs vs FP32 outputs
    sizes: dict = field(default_factory=dict)  # "fp32"/"int8" -> bytes
    notes: list = field(default_factory=list)

    @property
    def speedup(self) -> float | None:
        """FP32 p50 over INT8 p50 at the first batch size (None when either is missing)."""
        a = self.fp32.latency if self.fp32 else None
        b = self.int8.latency if self.int8 else None
        return a.p50_ms / b.p50_ms if a and b and b.p50_ms > 0 else None

    @property
    def failures(self) -> dict:
        """What crashed, hung or failed, by label: reported, never raised."""
        out = {r.label: r.failure for r in (self.fp32, self.int8, *self.variants.values()) if r and r.failure}
        if self.coverage_failure:
            out["int8_coverage"] = self.coverage_failure
        out.update({f"emulated {e.cpu}": e.failure for e in self.emulated_runs if e.failure})
        return out

    def to_dict(self) -> dict:
        a = self.availability
        timed = not self.emulated
        d = {
            "available": a.available, "reason": a.reason, "fix": a.fix, "emulated": self.emulated,
            "fp32": self.fp32.latency.contract() if timed and self.fp32 and self.fp32.latency else None,
            "int8": self.int8.latency.contract() if timed and self.int8 and self.int8.latency else None,
            "speedup": self.speedup if timed else None,
            "int8_coverage": _coverage_contract(self.coverage),
            "model_mb": {k: v / 1e6 for k, v in self.sizes.items()},
            "threads": self.threads, "batch": self.batches[0] if self.batches else None,
            "details": a.details, "failures": self.failures, "notes": self.notes,
        }
        if timed and a.available:
            d["by_batch"] = {r.label: [s.to_dict() for s in r.stats] for r in (self.fp32, self.int8) if r}
            d["peak_memory_mb"] = {r.label: (r.peak_rss_bytes / 1e6 if r.peak_rss_bytes else None)
                                   for r in (self.fp32, self.int8) if r}
            d["providers_used"] = {r.label: r.providers_used for r in (self.fp32, self.int8) if r}
            d["numerics"] = self.numerics
            if self.variants:
                d["int8_variants"] = {
                    k: dict(r.latency.contract() if r.latency else {}, failure=r.failure,
                            macs_int8_share=(self.variant_coverage[k].macs_int8_share
                                             if k in self.variant_coverage else None))
                    for k, r in self.variants.items()}
                d["int8_variants"]["verdict"] = self.variant_verdict
        if self.emulated and a.available:
            d["emulated_cpus"] = [e.to_dict() for e in self.emulated_runs]
            d["host_int8_coverage"] = _coverage_contract(self.host_coverage)
            d["host_int8_numerics"] = self.host_numerics
        return d


def _coverage_contract(c: Int8Coverage | None) -> dict | None:
    if c is None:
        return None
    d = c.to_dict()
    return {"nodes_int8": d.pop("nodes_int8"), "nodes_float": d.pop("nodes_float"),
            "macs_int8_share": d.pop("macs_int8_share"), **d}


def model_size_bytes(path: str | Path) -> int:
    """The model file plus any external weight files it references."""

    path = Path(path)
    total = path.stat().st_size
    try:
        m = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - not readable as ONNX: the benchmark child reports why
        return total
    seen = set()
    for t in m.graph.initializer:
        if uses_external_data(t):
            loc = ExternalDataInfo(t).location
            if loc not in seen and (path.parent / loc).exists():
                seen.add(loc)
                total += (path.parent / loc).stat().st_size
    return total


def compare_outputs(a: list, b: list) -> dict:
    """How far two runs' outputs are apart: largest absolute difference, bit-identity, top-1 agreement."""

    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b)):
        return {"error": f"output shapes differ: {[x.shape for x in a]} vs {[y.shape for y in b]}"}
    diffs = [float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))) if x.size else 0.0
             for x, y in zip(a, b)]
    out = {"max_abs_diff": max(diffs) if diffs else 0.0, "identical": all(np.array_equal(x, y) for x, y in zip(a, b)),
           "samples": int(a[0].shape[0]) if a and a[0].ndim else 1}
    if a and a[0].ndim == 2 and a[0].shape[1] > 1:
        out["top1_agreement"] = float(np.mean(a[0].argmax(1) == b[0].argmax(1)))
    return out


def compare_variants(runs: dict, coverage: dict | None = None, noise: float = VARIANT_NOISE) -> dict:
    """Which INT8 variant is faster (by p50), and a one-line recommendation that respects noise.

    ``coverage`` (label -> Int8Coverage) explains a difference by how much of each variant runs in INT8.
    """
    ok = {k: r.latency for k, r in runs.items() if r.latency}
    if len(ok) < 2:
        failed = {k: r.failure for k, r in runs.items() if not r.latency}
        return {"faster": None, "gain": None, "recommendation": f"could not compare: {failed}"}
    best = min(ok, key=lambda k: ok[k].p50_ms)
    worst = max(ok, key=lambda k: ok[k].p50_ms)
    gain = ok[worst].p50_ms / ok[best].p50_ms - 1
    cov = coverage or {}
    figures = ", ".join(f"{k} p50 {s.p50_ms:.4g} ms" + (f", {cov[k].macs_int8_share:.0%} of MACs in INT8"
                                                         if k in cov and cov[k].macs_int8_share is not None else "")
                        for k, s in ok.items())
    if gain < noise:
        return {"faster": None, "gain": gain, "recommendation": f"no measurable difference ({figures}; "
                f"{gain:.1%} is below the {noise:.0%} noise threshold): choose by accuracy"}
    return {"faster": best, "gain": gain,
            "recommendation": f"use {best}: {gain:.0%} faster than {worst} ({figures})"}
