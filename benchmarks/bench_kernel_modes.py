"""Benchmark: what the deployed output figures (`qwb analyze --kernels both`, the default) cost over exact only.

    python benchmarks/bench_kernel_modes.py

The demo at N = 500 and the MobileNetV2 of benchmarks/models.py (3x96x96) at N = 64; median of 3 runs each,
calibration and the quantized model cached beforehand. Figures go to docs/benchmarks.md (Execution modes).
"""

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import resources  # noqa: E402
from benchmarks.models import image_data, mobilenet_onnx  # noqa: E402
from workbench.analysis import analyze  # noqa: E402
from workbench.session import Session  # noqa: E402

def measure(s, n, reps=3):
    analyze(s, samples=n, kernels="exact")  # warm: calibration, quantized model, isolated cache
    out = {}
    for mode in ("exact", "both"):
        ts, dep = [], []
        for _ in range(reps):
            s.analysis_cache.clear()
            t = time.perf_counter(); r = analyze(s, samples=n, kernels=mode); ts.append(time.perf_counter() - t)
            dep.append(r.timings.get("deployed_inference_s", 0.0))
        out[mode] = (statistics.median(ts), statistics.median(dep))
    return out

for name, s, n in (("demo", Session(resources.DEMO_MODEL, resources.DEMO_CALIB, resources.DEMO_EVAL), 500),
                   ("mobilenetv2_96", Session(mobilenet_onnx(96), image_data(128), image_data(64, seed=1)), 64)):
    m = measure(s, n)
    print(name, n, {k: (round(a, 3), round(b, 3)) for k, (a, b) in m.items()},
          f"extra {m['both'][0] - m['exact'][0]:+.3f} s ({100 * (m['both'][0] / m['exact'][0] - 1):+.0f}%)", flush=True)
