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

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _child(detect: bool) -> None:
    sys.path.insert(0, str(ROOT))
    import workbench.calibration_cache as cc
    from benchmarks.mask_figures import masked_attention_figures

    if not detect:
        cc.input_mask_limits = lambda carriers, values: {}
    print(f"detection {'on' if detect else 'off'}: {masked_attention_figures('float_neg1e4')}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        _child(sys.argv[1] == "on")
    else:
        for setting in ("on", "off"):
            subprocess.run([sys.executable, __file__, setting], check=True, cwd=ROOT)
