"""Deployed-mode analysis with the FP32 layer tensors read from onnxruntime's own optimized graph (the FP32 model runs
once per batch) against the fallback that exposes them in the source model (fusions blocked, and a plain session
beside it for the output figures), on zoo models that used the fallback until the chains of re-run nodes.

    python benchmarks/bench_fp32_once.py
    python benchmarks/bench_fp32_once.py --models transformer_ninf_op17 tf_cnn_op17 --repeat 5
    python benchmarks/bench_fp32_once.py --models bert_mini   # the zoo's encoder at BERT-mini size (below)

Each model: its zoo calibration data, ``analyze(kernels="deployed")``, both ways interleaved ``--repeat`` times
after one untimed run of each; medians of the whole analysis and of its FP32 inference (``fp32_inference_s``), and
the largest difference of a layer's deployed SQNR between the two. ``bert_mini``: the zoo's transformer
(``tests/zoo/transformer.py``, -inf mask, opset 17) with 4 blocks, width 256, 4 heads, FFN 1024, 128 tokens and
128 samples. Figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _bert_mini():
    """The zoo's encoder at BERT-mini size, built by code into a scratch folder."""
    import numpy as np
    import onnx

    from tests.zoo import ZooPaths, transformer

    for k, v in {"D": 256, "HEADS": 4, "FFN": 1024, "LAYERS": 4, "MAX_T": 128, "SEQ": 128}.items():
        setattr(transformer, k, v)
    b = transformer.build(17)
    d = Path(tempfile.mkdtemp(prefix="qwb-bert-mini-"))
    onnx.save(b.model, str(d / "m.onnx"))
    np.savez(d / "calib.npz", **transformer._data(128, 1))
    return ZooPaths(d / "m.onnx", d / "calib.npz", d / "calib.npz")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["transformer_ninf_op13", "transformer_ninf_op17", "tf_cnn_op13"])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    os.environ["QWB_CACHE_DIR"] = tempfile.mkdtemp(prefix="qwb-bench-cache-")
    import analyzers.deployed_engine as de
    from benchmarks.backends import machine
    from tests.zoo import build
    from workbench.analysis import analyze
    from workbench.session import Session

    mapped = de.OptimizedFp32

    def refused(*a, **k):
        raise RuntimeError("the fallback, for comparison")

    print(f"machine: {machine()}")
    print("| model | samples | FP32 once: analysis s (FP32 s) | exposed source: analysis s (FP32 s) | "
          "largest layer SQNR difference dB |")
    print("|---|---|---|---|---|")
    for name in args.models:
        p = _bert_mini() if name == "bert_mini" else build(name)
        s = Session(p.model, p.calib)
        got: dict[str, list] = {"once": [], "exposed": []}
        layers: dict[str, dict] = {}
        for k in range(args.repeat + 1):
            for way in ("once", "exposed"):
                de.OptimizedFp32 = mapped if way == "once" else refused
                t = time.perf_counter()
                r = analyze(s, kernels="deployed")
                wall = time.perf_counter() - t
                if k:  # the first round warms both up
                    got[way].append((wall, r.timings.get("fp32_inference_s", float("nan"))))
                layers[way] = {lay.node: (lay.deployed or {}).get("sqnr_db") for lay in r.layers}
        de.OptimizedFp32 = mapped
        diff = max((abs(a - layers["exposed"][n]) for n, a in layers["once"].items()
                    if a is not None and layers["exposed"].get(n) is not None and a == a), default=0.0)
        med = {w: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v)) for w, v in got.items()}
        print(f"| {name} | {len(s.calib_data)} | {med['once'][0]:.2f} ({med['once'][1]:.2f}) | "
              f"{med['exposed'][0]:.2f} ({med['exposed'][1]:.2f}) | {diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
