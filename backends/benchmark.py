"""Benchmark FP32 vs INT8 on one backend, each model in its own child process, plus INT8 coverage.

Timed backends (cpu, cuda, neon): warm-up then N timed runs per batch size for each model, the child's
peak memory, INT8 coverage from onnxruntime's optimized graph, and optional INT8 variants (e.g. u8 vs
s8 activations) timed the same way with a verdict on which is faster. The emulated backend instead runs
both models under each emulated ARM CPU and compares their outputs with the same models run natively
here; it never reports a time. A child that crashes or hangs becomes a ``failure`` sentence in the
result and the remaining work goes on.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .availability import Availability
from .base import Backend
from .child import ChildFailure, run_child
from .coverage import Int8Coverage, analyze, load_profile
from .cpu import CpuBackend, physical_cores
from .errors import BackendError
from .feeds import Feed
from .macs import count_macs
from .neon_emulated import ARM_CPUS, DEFAULT_ARM_CPUS, NeonEmulatedBackend
from .runner import SessionConfig
from .stats import LatencyStats
from .tasks import NullTask, Task, scaled

VARIANT_NOISE = 0.05  # p50 differences below this share are treated as noise


@dataclass
class BenchSettings:
    """How to measure: threads (0 = physical cores), batch sizes, timed and warm-up runs, child time limit."""

    threads: int = 0
    batches: tuple = (1,)
    runs: int = 100
    warmup: int = 10
    timeout_s: float = 300.0
    arm_cpus: tuple = DEFAULT_ARM_CPUS  # emulated CPUs for neon-emulated
    numerics_samples: int = 32  # samples compared between emulated and native runs

    def validate(self) -> None:
        """Refuse impossible numbers with a fix, before any process starts."""
        def bad(what, fix):
            raise BackendError(what, fix)
        if self.threads < 0:
            bad(f"--threads must be 0 (automatic) or more, not {self.threads}", "pass e.g. --threads 4")
        if not self.batches or any(int(b) < 1 for b in self.batches):
            bad(f"batch sizes must be 1 or more, not {list(self.batches)}", "pass e.g. --batch 1 or --batch 1,8,32")
        if self.runs < 1:
            bad(f"--runs must be at least 1, not {self.runs}", "pass e.g. --runs 100")
        if self.warmup < 0:
            bad(f"--warmup must be 0 or more, not {self.warmup}", "pass e.g. --warmup 10")
        if self.timeout_s <= 0:
            bad(f"--timeout must be positive, not {self.timeout_s}", "pass e.g. --timeout 300")
        unknown = [c for c in self.arm_cpus if c not in ARM_CPUS]
        if unknown:
            bad(f"unknown emulated ARM CPU {unknown[0]!r}", f"choose from {', '.join(ARM_CPUS)}")

    def resolved_threads(self) -> int:
        return self.threads or physical_cores()


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
        return d


def _coverage_contract(c: Int8Coverage | None) -> dict | None:
    if c is None:
        return None
    d = c.to_dict()
    return {"nodes_int8": d.pop("nodes_int8"), "nodes_float": d.pop("nodes_float"),
            "macs_int8_share": d.pop("macs_int8_share"), **d}


def model_size_bytes(path: str | Path) -> int:
    """The model file plus any external weight files it references."""
    import onnx  # noqa: PLC0415
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data  # noqa: PLC0415

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
    import numpy as np  # noqa: PLC0415

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


class _Workspace:
    """Request/result files of the child processes of one benchmark, in one temporary folder."""

    def __init__(self, root: Path, feed: Feed):
        self.root = root
        self.feed = feed
        self.feed_path = feed.save(root / "feed.npz")
        self.n = 0
        self.files = 0

    def path(self, stem: str, suffix: str) -> str:
        """A new file name in the folder (numbered, so no job overwrites another's files)."""
        self.files += 1
        return str(self.root / f"{stem}-{self.files}{suffix}")

    def run(self, backend: Backend, jobs: list, task: Task, timeout_s: float, what: str) -> dict:
        """Run the worker on ``jobs`` in a child of ``backend``; raise ChildFailure with a sentence if it fails."""
        self.n += 1
        req = self.root / f"request-{self.n}.json"
        res = self.root / f"result-{self.n}.json"
        req.write_text(json.dumps({"feed": str(self.feed_path), "batch_axis": self.feed.batch_axis, "jobs": jobs,
                                   "result": str(res)}), encoding="utf-8")
        cmd, env = backend.command(str(req))
        outcome = run_child(cmd, timeout_s=timeout_s, task=task, env=env)
        result = json.loads(res.read_text(encoding="utf-8")) if res.exists() else None
        if result and result.get("error"):
            raise ChildFailure(f"{what}: onnxruntime failed: {result['error']}", outcome)
        if not outcome.ok or result is None:
            raise ChildFailure(outcome.describe(what, timeout_s), outcome)
        return result


def _load_outputs(path: str) -> list:
    import numpy as np  # noqa: PLC0415

    with np.load(path) as z:
        return [z[f"arr_{i}"] for i in range(len(z.files))]


def _bench_job(backend: Backend, label: str, model: str, s: BenchSettings, threads: int, ws: _Workspace) -> dict:
    cfg = SessionConfig(model, backend.providers(threads), threads, "all",
                        require_providers=backend.required_providers())
    return {"kind": "bench", "label": label, "config": cfg.to_dict(), "batches": [int(b) for b in s.batches],
            "runs": s.runs, "warmup": s.warmup, "outputs": ws.path(f"{label}-outputs", ".npz")}


def _inspect_job(label: str, model: str, providers: list, threads: int, batch: int, ws: _Workspace,
                 coverage: bool, required: list | None = None) -> dict:
    cfg = SessionConfig(model, providers, threads, "all", require_providers=required or [])
    job = {"kind": "inspect", "label": label, "config": cfg.to_dict(), "batch": batch,
           "outputs": ws.path(f"{label}-outputs", ".npz")}
    if coverage:
        job["coverage"] = {"optimized_model_path": ws.path(f"{label}-optimized", ".onnx"),
                           "profile_prefix": ws.path(f"{label}-profile", "")}
    return job


def _coverage_from(job_result: dict, int8_model: str, feed: Feed) -> Int8Coverage:
    """Coverage from a child's optimized graph and profile; MACs are per sample (batch 1 shapes)."""
    import onnx  # noqa: PLC0415

    model = onnx.load(int8_model, load_external_data=False)
    optimized = onnx.load(job_result["optimized_model"], load_external_data=False)
    macs = count_macs(model, feed.shapes(1))
    return analyze(model, optimized, load_profile(job_result["profile"]), macs)


def benchmark(backend: Backend, fp32: str | Path, int8: str | Path | None, feed: Feed,
              settings: BenchSettings | None = None, task: Task | None = None,
              variants: dict | None = None) -> BackendResult:
    """Benchmark (or, when emulated, compare) FP32 and INT8 models on ``backend``; never raises for a crash.

    ``variants`` maps labels to other INT8 files to time against each other (a path equal to ``int8``
    reuses its run). Raises ``BackendError`` only for bad settings; the task's cancellation propagates.
    """
    s = settings or BenchSettings()
    s.validate()
    for b in s.batches:
        feed.check_batch(int(b))
    task = task or NullTask()
    avail = backend.availability()
    sizes = {"fp32": model_size_bytes(fp32)}
    if int8:
        sizes["int8"] = model_size_bytes(int8)
    result = BackendResult(backend.name, avail, backend.emulated, batches=[int(b) for b in s.batches], sizes=sizes)
    if not avail.available:
        return result
    with tempfile.TemporaryDirectory(prefix=f"qwb-bench-{backend.name}-") as td:
        ws = _Workspace(Path(td), feed)
        if backend.emulated:
            _emulated(backend, str(fp32), str(int8) if int8 else None, s, ws, task, result)
        else:
            _timed(backend, str(fp32), str(int8) if int8 else None, s, ws, task, result, variants or {})
    task.report(1.0, f"{backend.name} done")
    return result


def int8_coverage(backend: Backend, int8: str | Path, feed: Feed, settings: BenchSettings | None = None,
                  task: Task | None = None) -> Int8Coverage:
    """Only the INT8 coverage of ``int8`` on a native ``backend`` (one child process, no timing).

    Raises ``ChildFailure`` when the child crashes, hangs or onnxruntime rejects the model.
    """
    s = settings or BenchSettings()
    with tempfile.TemporaryDirectory(prefix=f"qwb-coverage-{backend.name}-") as td:
        return _coverage_run(backend, str(int8), s, _Workspace(Path(td), feed), task or NullTask())


def _coverage_run(backend: Backend, int8: str, s: BenchSettings, ws: _Workspace, task: Task) -> Int8Coverage:
    threads = s.resolved_threads()
    job = _inspect_job("int8", int8, backend.coverage_providers(threads), threads, 1, ws, True,
                       backend.required_providers())
    res = ws.run(backend, [job], task, s.timeout_s, f"reading INT8 coverage of {Path(int8).name} on {backend.name}")
    return _coverage_from(res["jobs"][0], int8, ws.feed)


def _model_run(backend, label, path, s, threads, ws, task) -> ModelRun:
    run = ModelRun(label, path, model_size_bytes(path))
    try:
        res = ws.run(backend, [_bench_job(backend, label, path, s, threads, ws)], task, s.timeout_s,
                     f"the {backend.name} benchmark of {label} ({Path(path).name})")
    except ChildFailure as e:
        run.failure = e.message
        return run
    job = res["jobs"][0]
    run.stats = [LatencyStats.from_seconds(job["timings"][str(int(b))], int(b)) for b in s.batches]
    run.peak_rss_bytes = job.get("peak_rss_bytes")
    run.providers_used = job.get("providers_used", [])
    run.init_s = job.get("init_s")
    run.outputs = _load_outputs(job["outputs"])
    return run


def _timed(backend, fp32, int8, s, ws, task, result: BackendResult, variants: dict) -> None:
    threads = s.resolved_threads()
    result.threads = threads
    extra = {k: str(v) for k, v in variants.items() if int8 is None or Path(v).resolve() != Path(int8).resolve()}
    steps = 1 + (2 if int8 else 0) + 2 * len(extra)
    k = 0

    def part():
        nonlocal k
        k += 1
        return scaled(task, (k - 1) / steps, k / steps)

    result.fp32 = _model_run(backend, "fp32", fp32, s, threads, ws, part())
    if not int8:
        result.notes.append("no INT8 model: pass --int8 FILE, or --calib DATA (and --recipe R) to quantize")
        return
    result.int8 = _model_run(backend, "int8", int8, s, threads, ws, part())
    if result.fp32.outputs is not None and result.int8.outputs is not None:
        result.numerics = {"int8_vs_fp32": compare_outputs(result.int8.outputs, result.fp32.outputs)}
    try:
        result.coverage = _coverage_run(backend, int8, s, ws, part())
    except ChildFailure as e:
        result.coverage_failure = e.message
    if extra:
        runs = {}
        for label, path in variants.items():
            if label in extra:
                runs[label] = _model_run(backend, label, extra[label], s, threads, ws, part())
                try:
                    result.variant_coverage[label] = _coverage_run(backend, extra[label], s, ws, part())
                except ChildFailure as e:
                    runs[label].failure = runs[label].failure or f"coverage: {e.message}"
            else:
                runs[label] = result.int8
                if result.coverage:
                    result.variant_coverage[label] = result.coverage
        result.variants = runs
        result.variant_verdict = compare_variants(runs, result.variant_coverage)


def _emulated(backend: NeonEmulatedBackend, fp32, int8, s, ws, task, result: BackendResult) -> None:
    nb = min(s.numerics_samples, ws.feed.pool_size) if ws.feed.can_batch else 1
    result.notes.append(f"emulated: outputs and INT8 coverage compared on {nb} sample(s); timings are not measured "
                        "under emulation (they are 90-190x off)")
    labels = [("fp32", fp32)] + ([("int8", int8)] if int8 else [])
    steps = 1 + len(s.arm_cpus)
    native = CpuBackend()
    try:
        jobs = [_inspect_job(lab, path, ["CPUExecutionProvider"], 1, nb, ws, lab == "int8") for lab, path in labels]
        ref = ws.run(native, jobs, scaled(task, 0, 1 / steps), s.timeout_s, "the native reference run")
    except ChildFailure as e:
        result.notes.append(f"no native reference: {e.message}")
        ref = None
    ref_out = {j["label"]: _load_outputs(j["outputs"]) for j in ref["jobs"]} if ref else {}
    if ref and int8:
        result.host_coverage = _coverage_from(ref["jobs"][-1], int8, ws.feed)
    for k, cpu in enumerate(s.arm_cpus):
        emu = NeonEmulatedBackend(backend.sysroot, cpu, qemu=backend.qemu())
        run = EmulatedRun(cpu, emu.qemu_cpu, ARM_CPUS[cpu][1])
        result.emulated_runs.append(run)
        try:
            jobs = [_inspect_job(lab, path, ["CPUExecutionProvider"], 1, nb, ws, lab == "int8") for lab, path in labels]
            res = ws.run(emu, jobs, scaled(task, (k + 1) / steps, (k + 2) / steps), s.timeout_s,
                         f"the emulated run on {cpu} ({emu.qemu_cpu})")
        except ChildFailure as e:
            run.failure = e.message
            continue
        run.features = res.get("arm_features")
        for j in res["jobs"]:
            if j["label"] in ref_out:
                run.numerics[j["label"]] = compare_outputs(_load_outputs(j["outputs"]), ref_out[j["label"]])
            if j["label"] == "int8":
                run.coverage = _coverage_from(j, int8, ws.feed)
                if result.host_coverage:
                    run.same_coverage_as_host = (run.coverage.by_op_type == result.host_coverage.by_op_type)
    result.coverage = next((r.coverage for r in result.emulated_runs if r.coverage), None)
