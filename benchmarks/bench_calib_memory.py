"""Benchmark: calibration peak memory and time as samples grow, ours vs onnxruntime's own calibrators.

Each measurement runs in its own subprocess so its peak RSS is its own (ru_maxrss of the child, which
covers short spikes a poller would miss). Same model, same data, same batches for every calibrator:

    python benchmarks/bench_calib_memory.py --sizes 32 512

Model: a 1.13 M-parameter CNN on 3x64x64 input (benchmarks/calib_models.py); data: seeded random images
generated batch by batch, so no data set is held in memory by anyone. Every calibrator gets the same
batches of --batch samples (onnxruntime's histogram calibrators need equal-sized batches, so it must
divide N). "ours" is the one-pass histogram collection qwb runs (analyzers.calibration.collect.collect on the
prepared model and the tensors workbench.calibration_cache picks); "ort-percentile" / "ort-entropy" /
"ort-minmax" are onnxruntime.quantization.calibrate.create_calibrator with its defaults, followed by
compute_data(). "baseline" is the child's RSS after imports and model preparation, before calibrating;
CPU seconds (user + system, all threads) of the calibration itself are printed beside wall time
because they are steadier than wall time on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.watch import run_watched  # noqa: E402
KINDS = ("ours", "ort-percentile", "ort-entropy", "ort-minmax")


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _cpu() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _child(kind: str, n: int, size: int, batch: int) -> dict:
    """Runs inside the subprocess."""
    import resource

    from benchmarks.calib_models import cnn_1m, random_batches
    from workbench.calibration_cache import batch_size_for, calibration_tensors, op_types_for
    from workbench.model_prep import prepare_model
    from workbench.recipe import Recipe

    prepared = prepare_model(cnn_1m(size))
    recipe = Recipe()
    tensors = calibration_tensors(prepared, recipe)
    out = {"kind": kind, "n": n, "batch": batch, "qwb_default_batch": batch_size_for(prepared, tensors),
           "tensors": len(tensors)}
    if kind == "ours":
        from analyzers.calibration.collect import collect

        model = prepared.load_proto()
        out["baseline_mb"] = _rss_mb()
        out["cpu_before"] = _cpu()
        t0 = time.perf_counter()
        cal = collect(model, tensors, random_batches(n, size, batch), n)
        out["seconds"] = time.perf_counter() - t0
        out["calibrated"] = len(cal.histograms)
    else:
        from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod
        from onnxruntime.quantization.calibrate import create_calibrator

        method = {"ort-percentile": CalibrationMethod.Percentile, "ort-entropy": CalibrationMethod.Entropy,
                  "ort-minmax": CalibrationMethod.MinMax}[kind]

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.it = random_batches(n, size, batch)

            def get_next(self):
                b = next(self.it, None)
                return None if b is None else b[2]

        out["baseline_mb"] = _rss_mb()
        out["cpu_before"] = _cpu()
        with tempfile.TemporaryDirectory() as td:
            t0 = time.perf_counter()
            cal = create_calibrator(str(prepared.path), op_types_for(recipe), f"{td}/augmented.onnx", method)
            cal.collect_data(Reader())
            ranges = cal.compute_data()
            out["seconds"] = time.perf_counter() - t0
            out["calibrated"] = len(ranges.data)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    out["peak_rss_mb"] = ru.ru_maxrss / 1024
    out["cpu_seconds"] = ru.ru_utime + ru.ru_stime - out.pop("cpu_before")
    return out


def run_child(kind: str, n: int, size: int, batch: int, limit_gb: float) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--n", str(n), "--size", str(size), "--batch", str(batch)]
    return run_watched(cmd, ROOT, limit_gb, {"kind": kind, "n": n})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 512])
    ap.add_argument("--size", type=int, default=64, help="input height and width")
    ap.add_argument("--batch", type=int, default=8, help="samples per run, for every calibrator")
    ap.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    ap.add_argument("--limit-gb", type=float, default=18.0, help="kill a child whose RSS passes this")
    ap.add_argument("--child")
    ap.add_argument("--n", type=int)
    args = ap.parse_args()
    os.environ.setdefault("QWB_CACHE_DIR", str(Path(__file__).resolve().parent / ".cache" / "qwb"))
    if args.child:
        print(json.dumps(_child(args.child, args.n, args.size, args.batch)))
        return 0
    from benchmarks.calib_models import cnn_1m

    cnn_1m(args.size)
    rows = []
    for n in args.sizes:
        for kind in args.kinds:
            if n % args.batch:
                raise SystemExit(f"--batch {args.batch} must divide every N (onnxruntime needs equal batches)")
            r = run_child(kind, n, args.size, args.batch, args.limit_gb)
            rows.append(r)
            print(json.dumps(r), flush=True)
    by = {(r["kind"], r["n"]): r for r in rows}
    print("\n| calibrator | " + " | ".join(f"N = {n}: peak RSS MB (above baseline) / wall s / CPU s"
                                         for n in args.sizes) + " |")
    print("|---|" + "---|" * len(args.sizes))
    for kind in args.kinds:
        cells = []
        for n in args.sizes:
            r = by[(kind, n)]
            if r.get("out_of_memory"):
                cells.append(f"killed at {r['peak_rss_mb']:.0f} MB")
            elif "error" in r:
                cells.append("error")
            else:
                cells.append(f"{r['peak_rss_mb']:.0f} ({r['peak_rss_mb'] - r['baseline_mb']:+.0f}) / "
                             f"{r['seconds']:.1f} / {r['cpu_seconds']:.1f}")
        print(f"| {kind} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
