"""A -1e9 attention mask (``masked_fill(mask == 0, -1e9)`` code) with the mask magnitude at 1e8 (now) and at 1e30
(before): whether the mask path is found and kept in float, and what the output keeps.

    python benchmarks/mask_magnitude.py

Model: ``tests.models.masked_attention("neg1e9")`` (one attention head, ``Where(mask, 0, -1e9)`` added to the
scores), default recipe, 24 samples; each setting in its own process with an empty cache. Prints the nodes kept in
float, the exact and deployed output SQNR and cosine, and the largest change of the INT8 output when only x at padded
positions changes (0 when padded tokens get no attention weight). Figures go to docs/benchmarks.md (Attention masks).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _child(magnitude: float) -> None:
    sys.path.insert(0, str(ROOT))
    import analyzers.calibration.histogram as hist
    import analyzers.diff_graph as diff_graph
    from benchmarks.mask_figures import masked_attention_figures

    hist.MASK_MAGNITUDE = diff_graph.MASK_MAGNITUDE = magnitude
    print(f"mask magnitude {magnitude:g}: {masked_attention_figures('neg1e9')}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        _child(float(sys.argv[1]))
    else:
        for m in ("1e8", "1e30"):
            subprocess.run([sys.executable, __file__, m], check=True, cwd=ROOT)
