"""Benchmarks of the backends layer, run on demand (figures go to docs/benchmarks.md).

    python benchmarks/backends.py overhead     # harness vs a bare onnxruntime timing loop
    python benchmarks/backends.py activations  # INT8 with u8 vs s8 activations on this CPU

``overhead``: the same model, thread count, batch, warm-up and number of runs timed (a) by a bare
onnxruntime loop in a fresh process and (b) by ``backends.benchmark.benchmark`` (child process, runner,
stats). Rounds alternate the order; the overhead is the ratio of the medians over rounds of each
side's p50 (and mean). ``activations``: the demo quantized with u8 and with s8 activations (everything
else the default recipe), timed by the harness in alternating rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BARE = r"""
import json, sys, time
import numpy as np, onnxruntime as ort
path, threads, batch, warmup, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
so = ort.SessionOptions()
so.intra_op_num_threads = threads
so.inter_op_num_threads = 1
so.log_severity_level = 3
sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
with np.load(sys.argv[6]) as z:
    feed = {k: z[k][np.arange(batch) % z[k].shape[0]] for k in z.files}
for _ in range(warmup):
    sess.run(None, feed)
t = [0.0] * runs
for i in range(runs):
    t0 = time.perf_counter()
    sess.run(None, feed)
    t[i] = time.perf_counter() - t0
print(json.dumps(t))
"""


def demo_models(cache: Path) -> dict:
    """The demo's FP32 file and its INT8 versions with u8 and s8 activations (default recipe otherwise)."""
    os.environ.setdefault("QWB_CACHE_DIR", str(cache))
    import resources
    from workbench.session import Session

    s = Session(resources.DEMO_MODEL, resources.DEMO_CALIB)
    out = {"fp32": str(resources.DEMO_MODEL)}
    for act in ("u8", "s8"):
        r = s.recipe.copy()
        r.settings.activation_type = act
        out[f"int8-{act}"] = str(s.quantize(recipe=r).path)
    return out


def demo_feed():
    import numpy as np

    import resources
    from backends.feeds import Feed

    with np.load(resources.DEMO_CALIB) as z:
        return Feed({"image": z["image"][:64]}, {"image": True}, "demo calibration samples")


def bare(model: str, threads: int, batch: int, warmup: int, runs: int, feed_path: str):
    from backends.stats import LatencyStats

    out = subprocess.run([sys.executable, "-c", BARE, model, str(threads), str(batch), str(warmup), str(runs),
                          feed_path], capture_output=True, text=True, check=True)
    return LatencyStats.from_seconds(json.loads(out.stdout), batch)


def harness(model: str, threads: int, batch: int, warmup: int, runs: int, feed):
    from backends.benchmark import BenchSettings, benchmark
    from backends.cpu import CpuBackend

    r = benchmark(CpuBackend(), model, None, feed, BenchSettings(threads, (batch,), runs, warmup))
    if r.fp32.failure:
        raise RuntimeError(r.fp32.failure)
    return r.fp32.latency


def machine() -> str:
    from backends.cpuinfo import model_name

    import psutil

    return f"{model_name()}, {psutil.cpu_count(logical=False)} cores ({psutil.cpu_count()} logical)"


def overhead(args) -> None:
    feed = demo_feed()
    models = demo_models(Path(args.cache))
    with tempfile.TemporaryDirectory() as td:
        feed_path = str(feed.save(Path(td) / "feed.npz"))
        print(f"machine: {machine()}; {args.rounds} alternating rounds of {args.runs} runs after {args.warmup} warm-up")
        print("| model | threads | batch | bare p50 ms | harness p50 ms | p50 overhead | bare mean ms | harness mean ms | "
              "mean overhead |")
        print("|---|---|---|---|---|---|---|---|---|")
        worst = 0.0
        for label in ("fp32", "int8-u8"):
            for threads in args.threads:
                for batch in args.batch:
                    b, h = [], []
                    for k in range(args.rounds):
                        pair = [("b", bare), ("h", harness)] if k % 2 == 0 else [("h", harness), ("b", bare)]
                        for side, fn in pair:
                            st = fn(models[label], threads, batch, args.warmup, args.runs,
                                    feed_path if side == "b" else feed)
                            (b if side == "b" else h).append(st)
                    bp50, hp50 = (statistics.median(s.p50_ms for s in x) for x in (b, h))
                    bmean, hmean = (statistics.median(s.mean_ms for s in x) for x in (b, h))
                    worst = max(worst, abs(hp50 / bp50 - 1))
                    print(f"| demo {label} | {threads} | {batch} | {bp50:.4f} | {hp50:.4f} | {hp50 / bp50 - 1:+.1%} | "
                          f"{bmean:.4f} | {hmean:.4f} | {hmean / bmean - 1:+.1%} |", flush=True)
        print(f"largest |p50 overhead|: {worst:.1%}")


def activations(args) -> None:
    feed = demo_feed()
    models = demo_models(Path(args.cache))
    print(f"machine: {machine()}; {args.rounds} alternating rounds of {args.runs} runs after {args.warmup} warm-up")
    print("| threads | batch | FP32 p50 ms | INT8 u8 p50 ms | INT8 s8 p50 ms | s8 / u8 |")
    print("|---|---|---|---|---|---|")
    for threads in args.threads:
        for batch in args.batch:
            res = {k: [] for k in ("fp32", "int8-u8", "int8-s8")}
            for k in range(args.rounds):
                order = list(res) if k % 2 == 0 else list(reversed(res))
                for label in order:
                    res[label].append(harness(models[label], threads, batch, args.warmup, args.runs, feed).p50_ms)
            med = {k: statistics.median(v) for k, v in res.items()}
            print(f"| {threads} | {batch} | {med['fp32']:.4f} | {med['int8-u8']:.4f} | {med['int8-s8']:.4f} | "
                  f"{med['int8-s8'] / med['int8-u8']:.2f} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=("overhead", "activations"))
    p.add_argument("--threads", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    p.add_argument("--batch", type=lambda s: [int(x) for x in s.split(",")], default=[1, 32])
    p.add_argument("--runs", type=int, default=2000)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--cache", default=str(ROOT / ".qwb-cache"), help="QWB_CACHE_DIR for the quantized demo")
    args = p.parse_args()
    {"overhead": overhead, "activations": activations}[args.what](args)


if __name__ == "__main__":
    main()
