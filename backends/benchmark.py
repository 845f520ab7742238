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
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from .base import Backend
from .child import ChildFailure, run_child
from .coverage import Int8Coverage, analyze, load_profile
from .cpu import CpuBackend, physical_cores
from .cpuinfo import runtime_flags, u8s8_saturates
from .errors import BackendError
from .feeds import Feed
from .macs import count_macs
from .neon_emulated import ARM_CPUS, DEFAULT_ARM_CPUS, NeonEmulatedBackend
from .results import BackendResult, EmulatedRun, ModelRun, compare_outputs, compare_variants, model_size_bytes
from .runner import SessionConfig
from .stats import LatencyStats
from .tasks import NullTask, Task, scaled

# onnxruntime's u8u8 path on x86 CPUs without VNNI: exact 32-bit accumulation, no 16-bit saturation
EXACT_INTEGER_X86 = {"session.x64quantprecision": "1"}
HOST_DEFAULT = "int8-host-default"  # the INT8 model under this host's default kernels (emulated comparisons)


#: bounds checked before any process starts: the child keeps every run's time (8 bytes each) and builds each batch
MAX_RUNS = 10_000_000
MAX_BATCH = 65_536
#: the most one batch of inputs may take in memory
MAX_FEED_BYTES = 2 << 30
#: threads beyond this many per logical CPU only contend (and 100,000 of them hang the child)
THREADS_PER_CPU = 4


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
    session_options: dict = field(default_factory=dict)  # session config entries for every timed/inspected session

    def validate(self) -> None:
        """Refuse impossible numbers with a fix, before any process starts."""
        def bad(what, fix):
            raise BackendError(what, fix)
        if self.threads < 0:
            bad(f"--threads must be 0 (automatic) or more, not {self.threads}", "pass e.g. --threads 4")
        cpus = os.cpu_count() or 1
        if self.threads > THREADS_PER_CPU * cpus:
            bad(f"--threads {self.threads:,} is more than {THREADS_PER_CPU}x this machine's {cpus} logical CPUs",
                f"pass --threads 0 (its {physical_cores()} physical cores) or at most {THREADS_PER_CPU * cpus}")
        if not self.batches or any(int(b) < 1 for b in self.batches):
            bad(f"batch sizes must be 1 or more, not {list(self.batches)}", "pass e.g. --batch 1 or --batch 1,8,32")
        if any(int(b) > MAX_BATCH for b in self.batches):
            bad(f"batch sizes must be at most {MAX_BATCH:,}, not {max(int(b) for b in self.batches):,}",
                "pass e.g. --batch 1,8,32")
        if self.runs < 1:
            bad(f"--runs must be at least 1, not {self.runs}", "pass e.g. --runs 100")
        if self.warmup < 0:
            bad(f"--warmup must be 0 or more, not {self.warmup}", "pass e.g. --warmup 10")
        if max(self.runs, self.warmup) > MAX_RUNS:
            flag = "--runs" if self.runs > MAX_RUNS else "--warmup"
            bad(f"{flag} must be at most {MAX_RUNS:,}, not {max(self.runs, self.warmup):,}", f"pass e.g. {flag} 100")
        if not (math.isfinite(self.timeout_s) and self.timeout_s > 0):
            bad(f"--timeout must be a positive number of seconds, not {self.timeout_s}", "pass e.g. --timeout 300")
        unknown = [c for c in self.arm_cpus if c not in ARM_CPUS]
        if unknown:
            bad(f"unknown emulated ARM CPU {unknown[0]!r}", f"choose from {', '.join(ARM_CPUS)}")

    def resolved_threads(self) -> int:
        return self.threads or physical_cores()


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

    with np.load(path) as z:
        return [z[f"arr_{i}"] for i in range(len(z.files))]


def _bench_job(backend: Backend, label: str, model: str, s: BenchSettings, threads: int, ws: _Workspace) -> dict:
    cfg = SessionConfig.for_purpose("benchmark", model, threads, providers=backend.providers(threads),
                                    require_providers=backend.required_providers(),
                                    config_entries=dict(s.session_options))
    return {"kind": "bench", "label": label, "config": cfg.to_dict(), "batches": [int(b) for b in s.batches],
            "runs": s.runs, "warmup": s.warmup, "outputs": ws.path(f"{label}-outputs", ".npz")}


def _inspect_job(label: str, model: str, providers: list, threads: int, batch: int, ws: _Workspace,
                 coverage: bool, required: list | None = None, entries: dict | None = None) -> dict:
    cfg = SessionConfig.for_purpose("deployed", model, threads, providers=providers, require_providers=required or [],
                                    config_entries=dict(entries or {}))
    job = {"kind": "inspect", "label": label, "config": cfg.to_dict(), "batch": batch,
           "outputs": ws.path(f"{label}-outputs", ".npz")}
    if coverage:
        job["coverage"] = {"optimized_model_path": ws.path(f"{label}-optimized", ".onnx"),
                           "profile_prefix": ws.path(f"{label}-profile", "")}
    return job


def _coverage_from(job_result: dict, int8_model: str, feed: Feed) -> Int8Coverage:
    """Coverage from a child's optimized graph and profile; MACs are per sample (batch 1 shapes)."""

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
                       backend.required_providers(), s.session_options)
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
    saturates = u8s8_saturates(runtime_flags())
    try:
        jobs = [_inspect_job(lab, path, ["CPUExecutionProvider"], 1, nb, ws, lab == "int8",
                             entries=(EXACT_INTEGER_X86 if lab == "int8" and saturates else None))
                for lab, path in labels]
        if int8 and saturates:
            jobs.append(_inspect_job(HOST_DEFAULT, int8, ["CPUExecutionProvider"], 1, nb, ws, False))
        ref = ws.run(native, jobs, scaled(task, 0, 1 / steps), s.timeout_s, "the native reference run")
    except ChildFailure as e:
        result.notes.append(f"no native reference: {e.message}")
        ref = None
    ref_out = {j["label"]: _load_outputs(j["outputs"]) for j in ref["jobs"]} if ref else {}
    if ref and int8:
        result.host_coverage = _coverage_from(next(j for j in ref["jobs"] if j["label"] == "int8"), int8, ws.feed)
    if HOST_DEFAULT in ref_out and "int8" in ref_out:
        # the reference must not depend on which x86 CPU this is: compare ARM with integer kernels that do
        # not saturate, and say how far this CPU's own default kernels are from them
        result.host_numerics = compare_outputs(ref_out.pop(HOST_DEFAULT), ref_out["int8"])
        result.notes.append(
            "this x86 CPU has no VNNI: its default u8 x s8 kernels saturate, so the INT8 reference here uses "
            "onnxruntime's non-saturating path (session.x64quantprecision = 1); this CPU's default kernels "
            f"differ from it by up to {result.host_numerics['max_abs_diff']:.3g}")
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
