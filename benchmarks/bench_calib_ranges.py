"""Benchmark: re-deriving every tensor's range after a percentile change, from the cached histograms.

    python benchmarks/bench_calib_ranges.py

Model: a chain of 73 conv+ReLU blocks (benchmarks/calib_models.py) whose 150 calibrated tensors are
histogrammed once over 64 random samples (the collection time is printed, not part of the figure).
Each timing is ``workbench.recipe_ranges.tensor_ranges`` for the whole model, which is what quantization
and the calibration lab call; repeated with a fresh percentile each time (no remembered result can
answer it) and reported as median and worst.

- global percentile change: every one of the 150 tensors is re-derived (the target: <= 100 ms);
- one layer's percentile change: that layer's tensors are re-derived, the rest are remembered;
- first load: the same after reading the histograms from the disk cache (cumulative sums built once),
  and the time to read that cache file;
- cold Entropy / MSE for all tensors, and the full method comparison (``qwb calib``'s table), for scale.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _time(fn, repeats: int) -> list[float]:
    out = []
    for i in range(repeats):
        t0 = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def _fmt(ms: list[float]) -> str:
    return f"median {statistics.median(ms):.1f} ms, worst {max(ms):.1f} ms ({len(ms)} runs)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--blocks", type=int, default=73, help="conv+relu blocks (2 * blocks + 4 tensors)")
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    os.environ.setdefault("QWB_CACHE_DIR", str(Path(__file__).resolve().parent / ".cache" / "qwb"))

    from analyzers.calibration.collect import CalibrationData, collect
    from benchmarks.calib_models import deep_net, random_batches
    from workbench.calib_lab import build_lab
    from workbench.calibration_cache import calibration_tensors, load_histograms, save_histograms
    from workbench.model_prep import prepare_model
    from workbench.recipe_ranges import tensor_ranges
    from workbench.recipe import Recipe

    prepared = prepare_model(deep_net(args.blocks))
    recipe = Recipe()
    tensors = calibration_tensors(prepared, recipe)
    t0 = time.perf_counter()
    calib = collect(prepared.load_proto(), tensors, random_batches(args.samples, 8, 32), args.samples)
    print(f"model: {args.blocks} conv+relu blocks, {len(tensors)} calibrated tensors; histograms of {args.samples} "
          f"samples collected in {time.perf_counter() - t0:.2f} s")
    graph = prepared.graph

    def recipe_with(p: float, layer: str | None = None) -> Recipe:
        r = Recipe()
        r.settings.calibration_method = "percentile"
        r.settings.percentile = 99.99
        if layer is None:
            r.settings.percentile = p
        else:
            r.set_percentile(layer, p)
        return r

    tensor_ranges(graph, recipe_with(99.99), calib)  # the state before the change
    glob = _time(lambda i: tensor_ranges(graph, recipe_with(99.9 + i * 1e-3), calib), args.repeats)
    layer = _time(lambda i: tensor_ranges(graph, recipe_with(99.0 + i * 1e-3, "conv37"), calib), args.repeats)

    path = Path(os.environ["QWB_CACHE_DIR"]) / "bench_calib_ranges.npz"
    save_histograms(path, calib.histograms, calib.samples)

    def first_load(i):
        fresh = CalibrationData(load_histograms(path)[0])
        t = time.perf_counter()
        tensor_ranges(graph, recipe_with(99.95 + i * 1e-3), fresh)
        return time.perf_counter() - t

    loaded = [first_load(i) * 1e3 for i in range(args.repeats)]
    reads = _time(lambda i: load_histograms(path), args.repeats)

    def cold(method: str) -> float:
        fresh = CalibrationData(load_histograms(path)[0])
        r = Recipe()
        r.settings.calibration_method = method
        t = time.perf_counter()
        tensor_ranges(graph, r, fresh)
        return (time.perf_counter() - t) * 1e3

    fresh = CalibrationData(load_histograms(path)[0])
    t = time.perf_counter()
    build_lab(graph, recipe, fresh)
    lab_ms = (time.perf_counter() - t) * 1e3

    print(f"global percentile change, all {len(tensors)} tensors: {_fmt(glob)}")
    print(f"one layer's percentile change:            {_fmt(layer)}")
    print(f"global change right after loading the cache: {_fmt(loaded)}")
    print(f"reading the histogram cache file ({path.stat().st_size / 1024:.0f} KB): {_fmt(reads)}")
    print(f"cold entropy, all tensors: {cold('entropy'):.0f} ms; cold mse, all tensors: {cold('mse'):.0f} ms")
    print(f"full method comparison (qwb calib's table), all tensors, cold: {lab_ms:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
