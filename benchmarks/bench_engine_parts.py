"""Time one part of the engine in this process: ``calibrate`` (empty cache) or ``exact`` (an exact analysis with
calibration cached), for before/after comparisons between two checkouts or session settings.

    nice -n 10 python benchmarks/bench_engine_parts.py calibrate --size 224 --n 128
    nice -n 10 python benchmarks/bench_engine_parts.py exact --size 96 --n 64 [--spin]

Prints one JSON line: wall and CPU seconds (user + system, all threads; steadier on a shared machine).
``--spin`` lets analysis sessions' idle threads spin again (onnxruntime's default), to measure that setting.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("part", choices=["calibrate", "exact"])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--n", type=int, default=128, help="evaluation samples (exact); calibration uses 128")
    ap.add_argument("--spin", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as td:
        os.environ["QWB_CACHE_DIR"] = td
        import backends.runner as runner  # noqa: PLC0415 - after QWB_CACHE_DIR is set
        from benchmarks.models import image_data, mobilenet_onnx  # noqa: PLC0415 - the same
        from workbench.analysis import analyze  # noqa: PLC0415 - the same
        from workbench.session import Session  # noqa: PLC0415 - the same

        if args.spin:
            for k in ("exact", "deployed"):
                level, entries = runner.PURPOSES[k]
                runner.PURPOSES[k] = (level, {e: v for e, v in entries.items() if "spinning" not in e})
        s = Session(mobilenet_onnx(args.size), image_data(128, args.size, seed=1), image_data(args.n, args.size, seed=2))
        if args.part == "exact":
            s.calibration()
            s.quantize()
        t0, c0 = time.perf_counter(), _cpu()
        if args.part == "calibrate":
            s.calibration()
        else:
            analyze(s, kernels="exact")
        print(json.dumps({"part": args.part, "size": args.size, "n": args.n, "spin": args.spin,
                          "wall_s": round(time.perf_counter() - t0, 2), "cpu_s": round(_cpu() - c0, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
