"""Benchmark: the calibration phase alone (``workbench.calibration_cache.calibrate``, empty cache), and
``StreamingHistogram.update`` alone on the same model's real activations.

    python benchmarks/bench_calibrate.py --size 224 --samples 128 --repeat 3
    python benchmarks/bench_calibrate.py --size 224 --update-only

Model: the MobileNetV2 of benchmarks/models.py (224 px: 101 calibrated tensors, 13.2 M values per sample). Each
calibrate run has a fresh, empty QWB_CACHE_DIR for its histograms (the prepared model is made once, before timing),
so the model runs over every sample and the histograms are folded and saved. Reported: wall seconds, CPU seconds
(user + system of every thread of this process) and the 1-minute load average before each run: the machine is
shared, so CPU seconds are the steadier figure. ``--update-only`` times ``StreamingHistogram.update`` on one
batch of every tensor (collected once), folded into histograms whose grid is already fitted, by 1 and 2 threads
(``--threads``; the tensors split as ``collect`` splits them): ns of wall time per value.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _session(size: int, samples: int):
    from benchmarks.models import image_data, mobilenet_onnx
    from workbench.session import Session

    return Session(mobilenet_onnx(size), image_data(samples, size, seed=1))


def calibrate_runs(size: int, samples: int, repeat: int) -> list[dict]:
    """Time ``calibrate`` ``repeat`` times, each into an empty histogram cache."""
    from workbench.calibration_cache import calibrate

    out = []
    with tempfile.TemporaryDirectory() as td:
        os.environ["QWB_CACHE_DIR"] = td
        s = _session(size, samples)  # prepares the model (cached in td) before any timing
        for i in range(repeat):
            os.environ["QWB_CACHE_DIR"] = os.path.join(td, f"run{i}")
            load = os.getloadavg()[0]
            t0, c0 = time.perf_counter(), _cpu()
            data, cached = calibrate(s.prepared, s.calib_data, s.recipe)
            wall, cpu = time.perf_counter() - t0, _cpu() - c0
            assert not cached and data.samples == samples
            out.append({"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "load_1min": round(load, 2),
                        "tensors": len(data.histograms)})
            print(json.dumps(out[-1]), flush=True)
    return out


def update_ns_per_value(size: int, repeat: int, threads: list[int]) -> dict:
    """ns per value of ``StreamingHistogram.update`` over one batch (one sample) of every calibrated tensor, folded
    by each number of threads in ``threads``."""
    import threading

    import numpy as np

    from analyzers.calibration.collect import split_by_size
    from analyzers.calibration.histogram import StreamingHistogram
    from analyzers.onnx_utils import expose_tensors, make_session
    from workbench.calibration_cache import calibration_tensors

    with tempfile.TemporaryDirectory() as td:
        os.environ["QWB_CACHE_DIR"] = td
        s = _session(size, 8)
        model = s.prepared.load_proto()
        tensors = calibration_tensors(s.prepared, s.recipe)
        inputs = {i.name for i in model.graph.input}
        run = [t for t in tensors if t not in inputs]
        feed = s.calib_data.batch(0, 1)
        values = dict(zip(run, make_session(expose_tensors(model, run)).run(run, feed)))
        values.update({t: feed[t] for t in tensors if t in inputs})
    hists = {t: StreamingHistogram() for t in values}
    for t, v in values.items():  # fits every grid: the timed updates below only bin
        hists[t].update(v)
    n = sum(v.size for v in values.values())

    def fold(names):
        for t in names:
            hists[t].update(values[t])

    out = {"values": int(n), "tensors": len(values), "dtype": str(next(iter(values.values())).dtype),
           "numpy": np.__version__}
    for k in threads:  # k threads, the tensors split as collect splits them: ns of wall time per value
        groups = split_by_size({t: int(v.size) for t, v in values.items()}, k)
        times = []
        for _ in range(repeat):
            pool = [threading.Thread(target=fold, args=(g,)) for g in groups]
            t0 = time.perf_counter()
            for th in pool:
                th.start()
            for th in pool:
                th.join()
            times.append(time.perf_counter() - t0)
        out[f"{k}_threads"] = {"ns_per_value_median": round(statistics.median(times) / n * 1e9, 3),
                               "ns_per_value_best": round(min(times) / n * 1e9, 3)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--samples", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--update-only", action="store_true", help="only time StreamingHistogram.update")
    ap.add_argument("--no-update", action="store_true", help="only time calibrate")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="update: folding threads to time")
    a = ap.parse_args()
    if not a.no_update:
        print(json.dumps({"update": update_ns_per_value(a.size, max(a.repeat, 5), a.threads)}), flush=True)
    if a.update_only:
        return
    runs = calibrate_runs(a.size, a.samples, a.repeat)
    print(json.dumps({"calibrate": {"median_wall_s": statistics.median(r["wall_s"] for r in runs),
                                    "median_cpu_s": statistics.median(r["cpu_s"] for r in runs),
                                    "cpus": os.cpu_count(), "runs": runs}}))


if __name__ == "__main__":
    main()
