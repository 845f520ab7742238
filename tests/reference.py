"""Independent references the tests hold our figures against (onnxruntime's own tools, not our code)."""

from __future__ import annotations

from pathlib import Path

from onnxruntime.quantization import CalibrationDataReader
from onnxruntime.quantization import qdq_loss_debug as dbg


class _Samples(CalibrationDataReader):
    def __init__(self, feeds: list[dict]):
        self.it = iter(feeds)

    def get_next(self):
        return next(self.it, None)


def qdq_loss_debug_sqnr(fp32_model: str, int8_model: str, feeds: list[dict], scratch: Path) -> dict[str, float]:
    """FP32 tensor name -> cumulative SQNR (dB) as onnxruntime's qdq_loss_debug computes it (every tensor exposed)."""
    dbg.modify_model_output_intermediate_tensors(str(fp32_model), str(scratch / "f_aug.onnx"))
    dbg.modify_model_output_intermediate_tensors(str(int8_model), str(scratch / "q_aug.onnx"))
    fa = dbg.collect_activations(str(scratch / "f_aug.onnx"), _Samples(feeds))
    qa = dbg.collect_activations(str(scratch / "q_aug.onnx"), _Samples(feeds))
    errors = dbg.compute_activation_error(dbg.create_activation_matching(qa, fa))
    return {t: e["xmodel_err"] for t, e in errors.items() if "xmodel_err" in e}
