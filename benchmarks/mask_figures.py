"""What the attention-mask benchmarks (mask_magnitude.py, mask_inputs.py) print for one setting: one masked-attention
test model quantized and analysed with an empty cache, in the calling (child) process."""

from __future__ import annotations

import os
import tempfile


def masked_attention_figures(kind: str) -> str:
    """Nodes kept in float; exact and deployed output SQNR and cosine; and the largest change of the INT8 output
    when only x at padded positions changes (0 when padded tokens get no attention weight)."""
    os.environ["QWB_CACHE_DIR"] = tempfile.mkdtemp()
    import numpy as np  # noqa: PLC0415 - after the caller patched what it compares

    from backends.runner import SessionConfig, build_session  # noqa: PLC0415
    from tests.models import masked_attention, masked_attention_data, save, save_npz  # noqa: PLC0415
    from workbench.analysis import analyze  # noqa: PLC0415
    from workbench.session import Session  # noqa: PLC0415

    d = tempfile.mkdtemp()
    data = masked_attention_data(float_bias=kind == "float_neg1e4")
    s = Session(str(save(masked_attention(kind), f"{d}/m.onnx")), str(save_npz(f"{d}/d.npz", **data)))
    q = s.quantize()
    r = analyze(s, isolated=False)

    def run(feed):
        return build_session(SessionConfig.for_purpose("deployed", str(q.path), threads=1)).run(None, feed)[0]

    x, pad = data["x"].copy(), data["mask"] == 0
    x[pad] = np.random.default_rng(5).standard_normal((int(pad.sum()), x.shape[2])).astype(np.float32) * 3
    figures = ", ".join(f"{o.kernels} {o.sqnr_db:.1f} dB / cosine {o.cosine:.4f}" for o in r.outputs)
    return (f"kept in float {q.mask_path.kept_float if q.mask_path else []}; {figures}; padded x changed: INT8 "
            f"output moves by {np.abs(run({**data, 'x': x}) - run(data)).max():.3g}")
