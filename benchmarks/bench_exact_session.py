"""Benchmark: the diff graph under the `exact` session (no optimization) vs basic optimizations with
onnxruntime's QDQ transformations off (what `exact` used to be), on the MobileNetV2 of bench_analyze.

    python benchmarks/bench_exact_session.py [--samples 64] [--repeat 3]

Prints whether both give bit-identical statistics on this model and the median time of each over the
samples (batches of 16). The FP32 pass is not timed: it is the same for both.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from analyzers.diff import DiffEngine  # noqa: E402
from benchmarks.models import image_data, mobilenet_onnx  # noqa: E402
from workbench.calibration_cache import op_types_for  # noqa: E402
from workbench.session import Session  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    s = Session(mobilenet_onnx(96), image_data(128, 96, seed=1), image_data(a.samples, 96, seed=2))
    q, r = s.quantize(), s.recipe
    eng = DiffEngine(s.prepared.load_proto(), onnx.load(str(q.path)), set(op_types_for(r)), set(r.excluded_nodes()))
    g = eng.graph
    feeds = []
    for _start, _stop, feed in s.eval_data.batches(limit=a.samples, batch_size=16):
        fvals = dict(zip(eng.fp32_fetch, eng.fp32_session.run(eng.fp32_fetch, feed)))
        fvals.update(feed)
        qf = {k: v for k, v in feed.items() if k in eng.input_names}
        qf.update({"f::" + t: fvals[t] for t in g.fp32_feeds})
        feeds.append(qf)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.add_session_config_entry("session.disable_quant_qdq", "1")
    basic = ort.InferenceSession(g.model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    same = all(np.array_equal(x, y, equal_nan=True)
               for qf in feeds for x, y in zip(eng.session.run(g.fetch, qf), basic.run(g.fetch, qf)))

    def timed(sess) -> float:
        ts = []
        for _ in range(a.repeat):
            t = time.perf_counter()
            for qf in feeds:
                sess.run(g.fetch, qf)
            ts.append(time.perf_counter() - t)
        return statistics.median(ts)

    print(f"bit-identical: {same}; {a.samples} samples: exact (no optimization) {timed(eng.session):.3f} s, "
          f"basic + QDQ transforms off {timed(basic):.3f} s (median of {a.repeat})")


if __name__ == "__main__":
    main()
