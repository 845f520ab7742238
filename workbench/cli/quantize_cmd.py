"""``qwb quantize``: calibrate (or reuse cached histograms) and write a QDQ model; report accuracy."""

from __future__ import annotations

import argparse
import time

from ..errors import WorkbenchError
from ..evaluate import output_agreement
from ..formatting import fmt_bytes, kernels_label, kind_figures
from ..kernel_remedies import parse_session_options
from ..outputs import output_kinds
from ..safe_paths import is_null_device
from .common import (
    ConsoleTask,
    add_metric_arg,
    add_model_args,
    add_session_option_arg,
    open_session,
    print_model_and_calibration,
    print_notes,
)


def register(sub) -> None:
    p = sub.add_parser("quantize", help="quantize a model to INT8 (QDQ) with onnxruntime",
                       description="Calibrate on --calib data and write a QDQ-quantized ONNX model. Per-layer "
                       "precision and percentile overrides come from --recipe.")
    add_model_args(p)
    add_metric_arg(p)
    p.add_argument("-o", "--output", required=True, metavar="OUT.onnx", help="where to write the QDQ model")
    p.add_argument("--no-eval", action="store_true", help="skip the FP32 vs INT8 accuracy check")
    add_session_option_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:

    task = ConsoleTask()
    t0 = time.perf_counter()
    if is_null_device(args.output):
        raise WorkbenchError("quantize -o /dev/null: the INT8 model is read back after writing (onnxruntime runs "
                             "a sample of it and the accuracy check uses it), so it needs a real file",
                             "write it to a file (e.g. -o /tmp/q.onnx), or run qwb analyze to see the accuracy "
                             "without keeping a model")
    s = open_session(args, [args.output])
    print_model_and_calibration(s, task, f", {len(s.graph.quantizable_nodes())} quantizable")
    diffs = s.recipe.differences_from_default()
    print("recipe   " + (f"{args.recipe}: " + "; ".join(diffs) if diffs else "defaults ("
                          f"{s.recipe.settings.activation_type} activations, {s.recipe.settings.weight_type} "
                          f"{'per-channel' if s.recipe.settings.per_channel else 'per-tensor'} weights, "
                          f"{s.recipe.settings.calibration_method})"))
    q = s.quantize(args.output, task=task, check=True)
    task.done()
    src_size = s.prepared.size_bytes
    print(f"wrote    {q.path}  ({fmt_bytes(q.size_bytes)}; FP32 {fmt_bytes(src_size)}, "
          f"{_size_change(src_size, q.size_bytes)}; onnxruntime loads it and ran a sample)")
    if q.excluded:
        print(f"         kept in FP32: {', '.join(q.excluded)}")
    print_notes(q.notes)
    if q.int16:
        print(f"         INT16: {', '.join(q.int16)}")
    if not args.no_eval:
        _print_evaluation(s, q.path, task, parse_session_options(args.session_option))
    print(f"done in {time.perf_counter() - t0:.2f} s")
    return 0


def _size_change(fp32: int, int8: int) -> str:
    """'3.3x smaller', or 'larger by 12%' when quantizing grew the file (tiny models: Q/DQ nodes cost more)."""
    if int8 < fp32:
        return f"{fp32 / max(int8, 1):.1f}x smaller"
    return f"larger by {100 * (int8 / max(fp32, 1) - 1):.0f}%"


def _print_evaluation(s, int8_path, task, session_options: dict | None = None) -> None:
    """Accuracy for a classifier with class labels; otherwise each output's FP32-vs-INT8 agreement by its kind.
    Both models run as deployed, over the batches `qwb analyze` uses: its deployed figures are these."""
    data = s.eval_data
    model = s.prepared.load_proto()
    kinds = output_kinds(model, s.recipe, data.labels)
    results = output_agreement(s.prepared.path, int8_path, data, kinds, task, model=model,
                               session_options=session_options)
    task.done()
    first = results[0]
    label = f"({kernels_label('deployed')})"
    if first.kind == "classifier" and first.accuracy_fp32 is not None:
        fp, i8 = first.accuracy_fp32, first.accuracy_int8
        print(f"accuracy FP32 {fp:.2%}  INT8 {i8:.2%}  (delta {100 * (i8 - fp):+.2f} points on {len(data)} samples "
              f"of {data.description}) {label}")
        return
    why = "no class labels" if first.kind == "classifier" else f"{first.kind} output"
    print(f"agreement FP32 vs INT8 on {len(data)} samples of {data.description} ({why}) {label}:")
    for o in results:
        print(f"         {o.name} ({o.kind}): " + ", ".join(kind_figures(o)))
