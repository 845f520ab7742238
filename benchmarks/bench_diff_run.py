"""Time ``DiffEngine.run`` alone (wall and CPU seconds), built as ``qwb analyze --kernels exact`` builds it, and
write every figure it produced so two checkouts or settings can be compared bit for bit.

    nice -n 10 python benchmarks/bench_diff_run.py --size 224 --n 128 --repeat 3 --out /tmp/figs.npz
    python benchmarks/bench_diff_run.py --compare /tmp/before.npz /tmp/after.npz

Calibration and quantization run first (cached in a temporary QWB_CACHE_DIR, not timed); each repeat builds the
engine again (isolated figures are not reused between repeats) and times only its ``run``.
Prints one JSON line per repeat and the median.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _figures(outcome) -> dict[str, np.ndarray]:
    """Every number ``run`` produced, flattened to arrays keyed by where it came from."""
    out: dict[str, np.ndarray] = {}

    def put(key, v):
        out[key] = np.asarray(v, dtype=np.float64).ravel()

    def metrics(key, m):
        if m is None:
            return
        for f, v in vars(m).items():
            if isinstance(v, (int, float, list, tuple, np.ndarray)) and not isinstance(v, bool):
                try:
                    put(f"{key}.{f}", v)
                except (TypeError, ValueError):
                    pass

    for node, lay in outcome.layers.items():
        metrics(f"cum/{node}", lay.cumulative)
        metrics(f"iso/{node}", lay.isolated)
        put(f"clip/{node}", np.nan if lay.clip_rate is None else lay.clip_rate)
        put(f"ps/{node}", lay.per_sample)
    for t, m in outcome.tensors.items():
        metrics(f"tensor/{t}", m)
    for k, o in enumerate(outcome.outputs):
        metrics(f"out/{k}", o)
    for t, (x, y) in outcome.reservoirs.items():
        put(f"res/{t}/x", x)
        put(f"res/{t}/y", y)
    return out


def compare(a: str, b: str) -> int:
    fa, fb = np.load(a), np.load(b)
    if set(fa.files) != set(fb.files):
        print("different keys:", sorted(set(fa.files) ^ set(fb.files))[:10])
        return 1
    bad = [k for k in fa.files if fa[k].shape != fb[k].shape
           or not np.array_equal(fa[k], fb[k], equal_nan=True)]
    print(f"{len(fa.files)} figure arrays, {len(bad)} differ" + (f": {bad[:10]}" if bad else " (bit-identical)"))
    return 1 if bad else 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--reservoir", type=int, default=0)
    ap.add_argument("--no-isolated", action="store_true")
    ap.add_argument("--kernels", default="exact", choices=["exact", "both"],
                    help="both: the deployed taps ride along (drawn with each batch, folded in on_batch)")
    ap.add_argument("--out", help="write the last repeat's figures here (.npz)")
    ap.add_argument("--compare", nargs=2, metavar="NPZ")
    args = ap.parse_args()
    if args.compare:
        return compare(*args.compare)
    with tempfile.TemporaryDirectory() as td:
        os.environ["QWB_CACHE_DIR"] = td
        import analyzers.diff as diff  # noqa: PLC0415 - after QWB_CACHE_DIR is set
        from benchmarks.models import image_data, mobilenet_onnx  # noqa: PLC0415 - the same
        from workbench.analysis import analyze  # noqa: PLC0415 - the same
        from workbench.session import Session  # noqa: PLC0415 - the same

        times: list[dict] = []
        last: list = []
        original = diff.DiffEngine.run

        def timed(self, *a, **kw):
            t0, c0 = time.perf_counter(), _cpu()
            r = original(self, *a, **kw)
            times.append({"wall_s": round(time.perf_counter() - t0, 3), "cpu_s": round(_cpu() - c0, 3),
                          "inference_s": round(r.timings["inference_s"], 3),
                          "statistics_s": round(r.timings["statistics_s"], 3)})
            last[:] = [r]
            return r

        diff.DiffEngine.run = timed
        model = mobilenet_onnx(args.size)
        calib, ev = image_data(128, args.size, seed=1), image_data(args.n, args.size, seed=2)
        for _ in range(args.repeat):
            s = Session(model, calib, ev)  # a fresh session: no isolated figures reused
            analyze(s, kernels=args.kernels, isolated=not args.no_isolated, reservoir=args.reservoir, remedies=False)
            print(json.dumps({"size": args.size, "n": args.n, "kernels": args.kernels, **times[-1]}), flush=True)
        med = sorted(times, key=lambda t: t["wall_s"])[len(times) // 2]
        print(json.dumps({"median_wall_s": med["wall_s"], "median_cpu_s": statistics.median(t["cpu_s"] for t in times),
                          "load": os.getloadavg()}))
        if args.out:
            np.savez(args.out, **_figures(last[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
