"""Benchmark: what the deployed per-layer view costs (`qwb analyze --kernels both`), on the demo and a MobileNetV2.

    python benchmarks/bench_deployed_layers.py
    python benchmarks/bench_deployed_layers.py --models mobilenetv2_224 --folds compiled numpy   # the 224-px
        # MobileNetV2 at N = 128, the compiled deployed-vs-exact fold against numpy's (QWB_NUMPY_GAP=1), interleaved

Prints, per run: the analysis time and its timings (``deployed_layers_s``: comparing the layers' deployed integers
with the exact simulation's; ``deployed_inference_s``: the tapped graph and the FP32 session), the time to write
and re-load onnxruntime's optimized graph (``init``), and how many layers mapped. Figures go to docs/benchmarks.md.
"""
import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import resources  # noqa: E402
import analyzers.deployed_layers as dl  # noqa: E402
from benchmarks.models import image_data, mobilenet_onnx  # noqa: E402
from workbench.analysis import analyze  # noqa: E402
from workbench.session import Session  # noqa: E402

_init = dl.DeployedLayerTaps.__init__
T = {}


def _timed_init(self, *a, **k):
    t = time.perf_counter()
    _init(self, *a, **k)
    T["init"] = time.perf_counter() - t


dl.DeployedLayerTaps.__init__ = _timed_init
MODELS = {
    "demo": lambda: (Session(resources.DEMO_MODEL, resources.DEMO_CALIB, resources.DEMO_EVAL), 500),
    "mobilenetv2_96": lambda: (Session(mobilenet_onnx(96), image_data(128), image_data(64, seed=1)), 64),
    "mobilenetv2_224": lambda: (Session(mobilenet_onnx(224), image_data(128, 224, seed=1), image_data(128, 224, seed=2)),
                                128),
}
ap = argparse.ArgumentParser()
ap.add_argument("--models", nargs="+", choices=list(MODELS), default=["demo", "mobilenetv2_96"])
ap.add_argument("--folds", nargs="+", choices=["compiled", "numpy"], default=["compiled"],
                help="the deployed-vs-exact fold: compiled (analyzers/_gapfold.c, where built) or numpy")
args = ap.parse_args()
for name in args.models:
    s, n = MODELS[name]()
    analyze(s, samples=n, kernels="exact")  # warm: calibration, quantized model
    runs = [("exact", "compiled")] + [("both", f) for f in args.folds]
    for mode, fold in runs * 2:
        s.analysis_cache.clear()
        T.clear()
        os.environ["QWB_NUMPY_GAP"] = "1" if fold == "numpy" else "0"
        t = time.perf_counter()
        r = analyze(s, samples=n, kernels=mode)
        print(name, n, mode, "" if mode == "exact" else f"fold={fold}", round(time.perf_counter() - t, 2),
              {k: round(v, 3) for k, v in r.timings.items()}, {k: round(v, 3) for k, v in T.items()},
              [x for x in r.notes if "per-layer" in x], flush=True)
    dep = [lay.deployed for lay in r.layers if lay.deployed]
    print(name, "max |gap|", max(abs(d["kernel_gap_db"]) for d in dep), "max LSB share", max(d["lsb_diff_share"] for d in dep))
