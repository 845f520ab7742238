"""``qwb bench``: FP32 vs INT8 latency, throughput and memory per backend, and how much really runs in INT8."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict

from ..bench import BenchRequest, run_bench
from ..errors import WorkbenchError
from ..formatting import fmt_bytes
from ..safe_paths import write_text
from ..kernel_remedies import parse_session_options
from .common import ConsoleTask, add_model_args, add_session_option_arg, check_paths

BACKEND_CHOICES = ("cpu", "cuda", "neon", "neon-emulated", "all")


def register(sub) -> None:
    p = sub.add_parser("bench", help="benchmark FP32 vs INT8 on a backend, with INT8 coverage",
                       description="Time the FP32 model and its INT8 version (each in its own child process, so a "
                       "crash or hang is reported, not fatal): warm-up, N timed runs, p50/p90/p99/mean/std, "
                       "throughput per batch size, peak memory; and which nodes onnxruntime really runs in INT8. "
                       "neon-emulated compares outputs and coverage under emulated ARM CPUs and never shows times.")
    add_model_args(p, eval_arg=False, calib_required=False)
    p.add_argument("--int8", metavar="FILE", help="an INT8 model you already have (instead of --recipe/--calib)")
    p.add_argument("--backend", choices=BACKEND_CHOICES, default="all",
                   help="where to run (default: all; unavailable ones are listed with the reason)")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (default: physical cores)")
    p.add_argument("--batch", default="1", metavar="N[,N...]", help="batch size(s); the first is the headline "
                   "figure (default: 1)")
    p.add_argument("--runs", type=int, default=100, help="timed runs per batch size (default: 100)")
    p.add_argument("--warmup", type=int, default=10, help="untimed runs first (default: 10)")
    p.add_argument("--timeout", type=float, default=300.0, metavar="S",
                   help="seconds each benchmark process may take before it counts as hung (default: 300)")
    p.add_argument("--arm-cpu", default="neon,dotprod,i8mm", metavar="CPU[,CPU...]",
                   help="emulated ARM CPUs for neon-emulated: neon (Cortex-A57), dotprod (Neoverse-N1), i8mm")
    p.add_argument("--sysroot", metavar="DIR", help="ARM64 sysroot for neon-emulated (default: $QWB_ARM_SYSROOT "
                   "or the cache's arm64-sysroot, built by qwb neon-setup)")
    p.add_argument("--no-variants", action="store_true", help="do not also time the INT8 model with the other "
                   "activation type (u8 vs s8)")
    p.add_argument("--json", metavar="OUT", help="write every figure as JSON")
    add_session_option_arg(p)
    p.set_defaults(func=run)


def _int_list(text: str, what: str) -> tuple:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        values = ()
    if not values:
        raise WorkbenchError(f"{what} must be whole numbers separated by commas, not {text!r}",
                             f"e.g. {what} 1 or {what} 1,8,32")
    return values


def fmt_ms(x: float) -> str:
    """Three significant digits, never in exponent form."""
    if x <= 0 or not math.isfinite(x):
        return f"{x:g}"
    return f"{x:.{max(0, 2 - math.floor(math.log10(x)))}f}"


def run(args: argparse.Namespace) -> int:
    check_paths(args, [args.json])
    req = BenchRequest(model=args.model, int8=args.int8, calib=args.calib, recipe=args.recipe, demo=args.demo,
                       backends=(args.backend,), threads=args.threads, batches=_int_list(args.batch, "--batch"),
                       runs=args.runs, warmup=args.warmup, timeout_s=args.timeout,
                       arm_cpus=tuple(c.strip() for c in args.arm_cpu.split(",") if c.strip()),
                       sysroot=args.sysroot, preprocess=args.preprocess,
                       compare_activation_types=not args.no_variants, trust_code=args.trust_model_code,
                       session_options=parse_session_options(args.session_option))
    task = ConsoleTask()
    report = run_bench(req, task)
    task.done()
    print_report(report)
    if args.json:
        write_text(args.json, json.dumps(report.to_dict(), indent=2))
        print(f"wrote    {args.json}")
    failed = {f"{r.backend} {label}": msg for r in report.results for label, msg in r.failures.items()
              if not label.startswith("emulated ") and label in ("fp32", "int8")}
    if failed:  # a model that crashed or did not load is a failed benchmark, for scripts and CI too
        print(f"error: {len(failed)} model run(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def print_report(report) -> None:
    s = report.settings
    first = report.results[0] if report.results else None
    sizes = first.sizes if first else {}
    print(f"model    {report.model} ({fmt_bytes(sizes.get('fp32', 0))})")
    if report.int8_model:
        print(f"INT8     {report.int8_model} ({fmt_bytes(sizes.get('int8', 0))})")
    print(f"inputs   {report.feed}")
    print(f"settings {s.resolved_threads()} threads, batch {','.join(map(str, s.batches))}, {s.runs} timed runs "
          f"after {s.warmup} warm-up, each model in its own process")
    if s.session_options:
        print("session  " + ", ".join(f"{k} = {v}" for k, v in s.session_options.items()))
    ip = report.host.get("integer_path")
    if ip:
        print(f"cpu      integer path {ip['isa']} ({ip['instruction']}{', saturating 16-bit pairs' if ip['saturates'] else ''})")
    for n in report.notes:
        print(f"note: {n}")
    for r in report.results:
        print()
        a = r.availability
        if not a.available:
            print(f"{r.backend:<14} not available: {a.reason}")
            if a.fix:
                print(f"{'':<14} fix: {a.fix}")
            continue
        print(f"{r.backend:<14} {a.reason}")
        if r.emulated:
            _print_emulated(r)
        else:
            _print_timed(r)
        for label, msg in r.failures.items():
            print(f"  FAILED   {label}: {msg}")
        for n in r.notes:
            print(f"  note: {n}")


def _stats_line(label: str, st) -> str:
    return (f"{label} p50 {fmt_ms(st.p50_ms)} ms  p90 {fmt_ms(st.p90_ms)}  p99 {fmt_ms(st.p99_ms)}  "
            f"mean {fmt_ms(st.mean_ms)} ± {fmt_ms(st.std_ms)}  {st.throughput:,.0f} samples/s"
            + (f"  p50 over {st.rounds} rounds {fmt_ms(st.p50_p10_ms)}-{fmt_ms(st.p50_p90_ms)} (p10-p90)"
               if st.p50_p10_ms is not None else ""))


def _print_timed(r) -> None:
    runs = [m for m in (r.fp32, r.int8) if m and m.stats]
    for k, b in enumerate(r.batches):
        for m in runs:
            head = f"batch {b}" if m is runs[0] else ""
            print(f"  {head:<9}{_stats_line(m.label.upper(), m.stats[k])}")
        if r.fp32 and r.int8 and r.fp32.stats and r.int8.stats:
            print(f"  {'':<9}INT8 speedup {r.fp32.stats[k].p50_ms / r.int8.stats[k].p50_ms:.2f}x (p50)")
    mem = [f"{m.label.upper()} {fmt_bytes(m.peak_rss_bytes)}" for m in runs if m.peak_rss_bytes]
    if mem:
        print(f"  {'memory':<9}peak of each benchmark process: {', '.join(mem)}")
    if r.coverage:
        _print_coverage(r.coverage)
    if r.variant_verdict:
        print(f"  {'activ.':<9}{r.variant_verdict['recommendation']}")
        for label, c in r.variant_coverage.items():
            if c is not r.coverage and c.fallbacks:
                print(f"  {'':<9}{label} variant: {c.summary()}; e.g. {c.fallbacks[0].name}: {c.fallbacks[0].reason}")
    num = (r.numerics or {}).get("int8_vs_fp32")
    if num and "max_abs_diff" in num:
        agree = f", top-1 agreement {num['top1_agreement']:.0%}" if "top1_agreement" in num else ""
        print(f"  {'outputs':<9}INT8 vs FP32 max |diff| {num['max_abs_diff']:.3g} on {num['samples']} sample(s){agree}")


def _print_coverage(c, indent: str = "  ") -> None:
    print(f"{indent}{'INT8':<9}{c.summary()} (after onnxruntime's optimizations)")
    groups = defaultdict(list)
    for f in c.fallbacks:
        groups[(f.op_type, f.reason)].append(f.name)
    for (op, reason), names in groups.items():
        shown = ", ".join(names[:4]) + (f" (+{len(names) - 4})" if len(names) > 4 else "")
        print(f"{indent}{'':<9}float fallback {op} ×{len(names)} [{shown}]: {reason}")
    for m in c.mac_nodes:
        if not m.int8 and m.macs:
            print(f"{indent}{'':<9}{m.name} ({m.op_type}, {m.macs / max(c.macs_total, 1):.1%} of MACs) in float: "
                  f"{m.reason}")
    for n in c.notes:
        print(f"{indent}{'':<9}note: {n}")


def _print_emulated(r) -> None:
    print(f"  {'':<9}(emulated: outputs and INT8 coverage only; emulated timings are meaningless and not shown)")
    if r.host_coverage:
        print(f"  {'x86':<9}{r.host_coverage.summary()}")
    ref = "the x86 reference" if r.host_numerics else "x86"  # without VNNI: the non-saturating kernels (a note says)
    for e in r.emulated_runs:
        if e.failure:
            continue
        parts = []
        for label in ("int8", "fp32"):
            n = e.numerics.get(label)
            if not n:
                continue
            if "error" in n:
                parts.append(f"{label.upper()} {n['error']}")
            elif n["identical"]:
                parts.append(f"{label.upper()} outputs identical to {ref}")
            else:
                parts.append(f"{label.upper()} max |diff| vs {ref} {n['max_abs_diff']:.2g}")
        same = {True: "same as x86", False: "DIFFERENT from x86", None: ""}[e.same_coverage_as_host]
        cov = f"; coverage {e.coverage.summary()} {same}".rstrip() if e.coverage else ""
        feats = f" [{' '.join(e.features)}]" if e.features else ""
        print(f"  {e.cpu:<9}{e.description}{feats}: {', '.join(parts)}{cov}")
    if r.coverage:
        _print_coverage(r.coverage)
