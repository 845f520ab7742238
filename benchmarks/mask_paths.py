"""Attention-mask paths: what each ``mask_handling`` does to the zoo transformers (figures in docs/benchmarks.md).

    python benchmarks/mask_paths.py [NAME ...]     # default: the four transformer_* zoo models

For each model and each setting (``float``: the mask path kept in float; ``clamp``: quantized with the range
of the ordinary values) the default recipe otherwise, quantized from the zoo's calibration split:

- output SQNR (dB) and cosine of the INT8 model against FP32 over the evaluation split (every element);
- padded-token invariance: the evaluation inputs with only the token ids at padded positions replaced by
  random ids; the largest change of any output element, FP32 and INT8 (FP32 changes by exactly 0).

INT8 runs as deployed (onnxruntime CPU, all optimizations: integer kernels, so the figures are this CPU's).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backends.runner import SessionConfig, build_session  # noqa: E402
from tests.zoo import ZOO, build  # noqa: E402
from workbench.recipe import Recipe  # noqa: E402
from workbench.session import Session  # noqa: E402


def run(path, feed: dict) -> np.ndarray:
    """The first output of ``path`` on ``feed``, as deployed on the CPU."""
    sess = build_session(SessionConfig.for_purpose("deployed", str(path), threads=1))
    return sess.run(None, {i.name: feed[i.name] for i in sess.get_inputs()})[0].astype(np.float64)


def repadded(data: dict, seed: int = 7) -> dict:
    """``data`` with random token ids at the padded positions only (attention_mask == 0)."""
    out = dict(data)
    ids = data["input_ids"].copy()
    pad = data["attention_mask"] == 0
    ids[pad] = np.random.default_rng(seed).integers(1, 200, size=int(pad.sum()))
    out["input_ids"] = ids
    return out


def measure(name: str, handling: str) -> dict:
    """Output SQNR/cosine and padded-token invariance of ``name`` under ``mask_handling = handling``."""
    p = build(name)
    with np.load(p.eval) as z:
        data = {k: z[k] for k in z.files if k != "labels"}
    r = Recipe()
    r.settings.mask_handling = handling
    s = Session(p.model, p.calib, p.eval, recipe=r)
    q = s.quantize()
    x, y = run(p.model, data), run(q.path, data)
    moved = repadded(data)
    x2, y2 = run(p.model, moved), run(q.path, moved)
    err = float(np.sum((x - y) ** 2))
    return {"sqnr_db": 10 * np.log10(float(np.sum(x * x)) / err) if err else float("inf"),
            "cosine": float(np.dot(x.ravel(), y.ravel()) / np.linalg.norm(x) / np.linalg.norm(y)),
            "fp32_pad_change": float(np.abs(x2 - x).max()), "int8_pad_change": float(np.abs(y2 - y).max()),
            "kept_float": len(q.mask_path.kept_float) if q.mask_path else 0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="*", default=[n for n in ZOO if n.startswith("transformer_")])
    a = ap.parse_args(argv)
    os.environ.setdefault("QWB_CACHE_DIR", tempfile.mkdtemp(prefix="qwb-mask-bench-"))
    print("| model | mask_handling | output SQNR dB | cosine | max change, padded ids changed: FP32 | INT8 | "
          "nodes kept in float |")
    print("|---|---|--:|--:|--:|--:|--:|")
    for name in a.names:
        for handling in ("float", "clamp"):
            m = measure(name, handling)
            print(f"| {name} | {handling} | {m['sqnr_db']:.1f} | {m['cosine']:.4f} | {m['fp32_pad_change']:.3g} | "
                  f"{m['int8_pad_change']:.3g} | {m['kept_float']} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
