"""A -1e9 attention mask (``masked_fill(mask == 0, -1e9)`` code) with the mask magnitude at 1e8 (now) and at 1e30
(before): whether the mask path is found and kept in float, and what the output keeps.

    python benchmarks/mask_magnitude.py

Model: ``tests.models.masked_attention("neg1e9")`` (one attention head, ``Where(mask, 0, -1e9)`` added to the
scores), default recipe, 24 samples; each setting in its own process with an empty cache. Prints the nodes kept in
float, the exact and deployed output SQNR and cosine, and the largest change of the INT8 output when only x at padded
positions changes (0 when padded tokens get no attention weight). Figures go to docs/benchmarks.md (Attention masks).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _child(magnitude: float) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ["QWB_CACHE_DIR"] = tempfile.mkdtemp()
    import numpy as np

    import analyzers.calibration.histogram as hist
    import analyzers.diff_graph as diff_graph

    hist.MASK_MAGNITUDE = diff_graph.MASK_MAGNITUDE = magnitude
    from backends.runner import SessionConfig, build_session
    from tests.models import masked_attention, masked_attention_data, save, save_npz
    from workbench.analysis import analyze
    from workbench.session import Session

    d = tempfile.mkdtemp()
    data = masked_attention_data()
    s = Session(str(save(masked_attention("neg1e9"), f"{d}/m.onnx")), str(save_npz(f"{d}/d.npz", **data)))
    q = s.quantize()
    r = analyze(s, isolated=False)

    def run(feed):
        return build_session(SessionConfig.for_purpose("deployed", str(q.path), threads=1)).run(None, feed)[0]

    x, pad = data["x"].copy(), data["mask"] == 0
    x[pad] = np.random.default_rng(5).standard_normal((int(pad.sum()), x.shape[2])).astype(np.float32) * 3
    figures = ", ".join(f"{o.kernels} {o.sqnr_db:.1f} dB / cosine {o.cosine:.4f}" for o in r.outputs)
    print(f"mask magnitude {magnitude:g}: kept in float {q.mask_path.kept_float if q.mask_path else []}; {figures}; "
          f"padded x changed: INT8 output moves by {np.abs(run({'x': x, 'mask': data['mask']}) - run(data)).max():.3g}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        _child(float(sys.argv[1]))
    else:
        for m in ("1e8", "1e30"):
            subprocess.run([sys.executable, __file__, m], check=True, cwd=ROOT)
