"""An attention mask fed already scaled as a float model input (0 or -1e4 at padded positions), with the detection by
its values (``analyzers.mask_constants.input_mask_limits``) on (now) and off (before): whether the mask path is found
and kept in float, and what the output keeps.

    python benchmarks/mask_inputs.py

Model: ``tests.models.masked_attention("float_neg1e4")`` (one attention head, the float input ``bias`` added to the
scores), ``masked_attention_data(float_bias=True)``, default recipe, 24 samples; each setting in its own process with
an empty cache. Prints the nodes kept in float, the exact and deployed output SQNR and cosine, and the largest change
of the INT8 output when only x at padded positions changes (0 when padded tokens get no attention weight). Figures go
to docs/benchmarks.md (Attention masks).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _child(detect: bool) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ["QWB_CACHE_DIR"] = tempfile.mkdtemp()
    import numpy as np

    import workbench.calibration_cache as cc

    if not detect:
        cc.input_mask_limits = lambda carriers, values: {}
    from backends.runner import SessionConfig, build_session
    from tests.models import masked_attention, masked_attention_data, save, save_npz
    from workbench.analysis import analyze
    from workbench.session import Session

    d = tempfile.mkdtemp()
    data = masked_attention_data(float_bias=True)
    s = Session(str(save(masked_attention("float_neg1e4"), f"{d}/m.onnx")), str(save_npz(f"{d}/d.npz", **data)))
    q = s.quantize()
    r = analyze(s, isolated=False)

    def run(feed):
        return build_session(SessionConfig.for_purpose("deployed", str(q.path), threads=1)).run(None, feed)[0]

    x, pad = data["x"].copy(), data["mask"] == 0
    x[pad] = np.random.default_rng(5).standard_normal((int(pad.sum()), x.shape[2])).astype(np.float32) * 3
    figures = ", ".join(f"{o.kernels} {o.sqnr_db:.1f} dB / cosine {o.cosine:.4f}" for o in r.outputs)
    print(f"detection {'on' if detect else 'off'}: kept in float {q.mask_path.kept_float if q.mask_path else []}; "
          f"{figures}; padded x changed: INT8 output moves by {np.abs(run({**data, 'x': x}) - run(data)).max():.3g}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        _child(sys.argv[1] == "on")
    else:
        for setting in ("on", "off"):
            subprocess.run([sys.executable, __file__, setting], check=True, cwd=ROOT)
