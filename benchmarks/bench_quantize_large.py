"""Quantizing large graphs: onnxruntime's QDQ quantizer as it is (quadratic in the node count) and with the index of
``workbench/quantizer_index.py``, and whether the two write the same bytes.

    python benchmarks/bench_quantize_large.py                    # scoped nets of ~700, 2,057 and ~4,100 nodes
    python benchmarks/bench_quantize_large.py --layers 27 --mobilenet

Models: ``tests.models.scoped_net(layers, 12 branches)`` (Conv-Relu-Conv-Sigmoid-Mul-Relu branches, Concat, merge
Conv, residual Add; 76 nodes a layer), 4 samples; ``--mobilenet`` adds the 224-px MobileNetV2 of bench_analyze.py
with 16 samples. Calibration runs once, untimed; each figure is one ``Session.quantize`` call (default recipe: the
quantizer, the shape annotation and the runtime check of the optimized graph), the plain one first. Figures go to
docs/benchmarks.md ("Quantizing large graphs").
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _timed_pair(session, folder: Path) -> tuple[float, float, bool]:
    session.calibration()
    got, secs = {}, {}
    for plain in ("1", "0"):
        os.environ["QWB_PLAIN_ORT_QUANTIZER"] = plain
        out = folder / f"q{plain}.qdq.onnx"
        t = time.perf_counter()
        session.quantize(out)
        secs[plain] = time.perf_counter() - t
        got[plain] = out.read_bytes()
    os.environ.pop("QWB_PLAIN_ORT_QUANTIZER")
    return secs["1"], secs["0"], got["1"] == got["0"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, nargs="+", default=[9, 27, 54])
    ap.add_argument("--mobilenet", action="store_true", help="also the 224-px MobileNetV2, 16 samples")
    args = ap.parse_args()
    os.environ["QWB_CACHE_DIR"] = tempfile.mkdtemp(prefix="qwb-bench-cache-")
    import numpy as np

    from benchmarks.backends import machine
    from tests.models import save, save_npz, scoped_net
    from workbench.session import Session

    print(f"machine: {machine()}")
    print("| model | nodes | plain quantize s | indexed quantize s | speed-up | same bytes |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as td:
        d = Path(td)
        cases = []
        for layers in args.layers:
            m = scoped_net(layers=layers, branches=12)
            x = np.random.default_rng(1).standard_normal((4, 4, 4, 4)).astype(np.float32)
            cases.append((f"scoped_net({layers}x12)", len(m.graph.node),
                          save(m, d / f"s{layers}.onnx"), save_npz(d / f"s{layers}.npz", x=x)))
        if args.mobilenet:
            import onnx

            from benchmarks.models import image_data, mobilenet_onnx

            path = mobilenet_onnx(224)
            cases.append(("MobileNetV2 224 px", len(onnx.load(str(path), load_external_data=False).graph.node), path,
                          image_data(16, 224, path=d / "mb.npz")))
        for label, nodes, model, calib in cases:
            plain, fast, same = _timed_pair(Session(model, calib), d)
            print(f"| {label} | {nodes} | {plain:.2f} | {fast:.2f} | {plain / fast:.1f}x | {'yes' if same else 'NO'} |",
                  flush=True)


if __name__ == "__main__":
    main()
