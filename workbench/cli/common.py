"""Arguments and helpers shared by the ``qwb`` subcommands."""

from __future__ import annotations

import argparse
import sys

import resources

from ..errors import WorkbenchError
from ..outputs import parse_metrics, with_metrics
from ..safe_paths import check_input, check_outputs
from ..session import SessionSpec
from ..session import open_session as open_spec


def add_model_args(p: argparse.ArgumentParser, eval_arg: bool = True, calib_required: bool = True) -> None:
    """MODEL, --calib, --eval, --recipe, --demo: how every command is told what to work on."""
    p.add_argument("model", nargs="?", help="ONNX file, TorchScript (.pt) / torch.export (.pt2) file, "
                   "or package.module:factory returning (module, example_inputs)")
    p.add_argument("--calib", metavar="DATA", help="calibration data: .npz (one array per input name, "
                   "sample axis first, optional 'labels'), .npy (single-input models), an image folder, or "
                   "synthetic:N (random data; misleading, for smoke tests only)")
    if eval_arg:
        p.add_argument("--eval", metavar="DATA", help="evaluation data (same formats as --calib); labels give "
                       "accuracy. Default: the calibration data")
    p.add_argument("--recipe", metavar="R", help="recipe TOML file (global settings and per-layer overrides)")
    p.add_argument("--demo", action="store_true", help="use the bundled demo model and its data")
    p.add_argument("--preprocess", choices=["auto", "always", "never"], default="auto",
                   help="onnxruntime quantization pre-processing (default: auto, only when it helps)")
    add_trust_arg(p)
    add_force_arg(p)
    p.set_defaults(_calib_required=calib_required)


def add_trust_arg(p: argparse.ArgumentParser) -> None:
    """--trust-model-code: TorchScript, torch.export and package.module:factory models run code when opened."""
    p.add_argument("--trust-model-code", action="store_true",
                   help="allow opening models that run code: TorchScript (.pt), torch.export (.pt2) and "
                   "package.module:factory (only for files and modules you trust)")


def add_force_arg(p: argparse.ArgumentParser) -> None:
    """--force: an output may replace an existing project file (never an input of the command)."""
    p.add_argument("--force", action="store_true", help="allow an output to replace an existing Quant Workbench "
                   "project file (.qwbproj); outputs that are one of the command's inputs are refused regardless")


#: (role, argument) of every input a command may read, for the output checks
INPUT_ARGS = (("model", "model"), ("calibration data", "calib"), ("evaluation data", "eval"),
              ("recipe", "recipe"), ("recipe", "compare"), ("report", "from_json"), ("INT8 model", "int8"),
              ("analysis", "source"))


def check_paths(args: argparse.Namespace, outputs) -> None:
    """Refuse special files among the inputs named on the command line, and ``outputs`` that are one of them
    (or a project file, without --force)."""
    inputs = [(role, getattr(args, name, None)) for role, name in INPUT_ARGS]
    for role, path in inputs:
        check_input(path, role)
    check_outputs(outputs, inputs, replace_projects=getattr(args, "force", False))


def add_metric_arg(p: argparse.ArgumentParser) -> None:
    """--metric: how the model outputs are judged, when the kind detected from their shapes is wrong."""
    p.add_argument("--metric", action="append", default=[], metavar="[OUTPUT=]KIND",
                   help="judge an output (or, without OUTPUT=, every output) as classifier | embedding | sequence "
                   "| dense instead of the kind detected from its shape; repeatable (recipe: [outputs.\"name\"] kind)")


def resolve_model_args(args: argparse.Namespace) -> None:
    """Fill in the demo paths, and insist on MODEL and --calib otherwise."""
    if getattr(args, "demo", False):

        if args.model is None:
            args.model = str(resources.DEMO_MODEL)
        if getattr(args, "calib", None) is None:
            args.calib = str(resources.DEMO_CALIB)
        if hasattr(args, "eval") and args.eval is None:
            args.eval = str(resources.DEMO_EVAL)
    if not args.model:
        raise WorkbenchError("no model given", "pass a model file (or --demo for the bundled demo)")
    if getattr(args, "_calib_required", False) and not getattr(args, "calib", None):
        raise WorkbenchError(f"no calibration data given for {args.model}",
                             "pass --calib DATA (an .npz keyed by input names, an .npy, an image folder), "
                             "or --calib synthetic:64 for a smoke test")


def session_spec(args: argparse.Namespace):
    """The ``SessionSpec`` (model, data, recipe file) named on the command line."""

    resolve_model_args(args)
    return SessionSpec(args.model, args.calib, getattr(args, "eval", None), args.recipe,
                       trust_code=getattr(args, "trust_model_code", False))


def open_session(args: argparse.Namespace, outputs=()):
    """A Session for the model/data/recipe named on the command line, once its paths and the command's
    ``outputs`` have passed ``check_paths``."""

    spec = session_spec(args)
    check_paths(args, outputs)
    s = open_spec(spec, preprocess=args.preprocess)
    if getattr(args, "metric", None):
        s.recipe = with_metrics(s.recipe, metric_overrides(args, s))
    return s


def metric_overrides(args: argparse.Namespace, session) -> dict[str, str]:
    """``--metric`` as {output: kind} for ``session``'s model (empty when the command has no --metric)."""
    return parse_metrics(getattr(args, "metric", None) or [], [t.name for t in session.graph.outputs])


def add_session_option_arg(p) -> None:
    """``--session-option KEY=VALUE``: onnxruntime session config entries, as the user's deployment sets them."""
    p.add_argument("--session-option", action="append", metavar="KEY=VALUE",
                   help="an onnxruntime session config entry for the deployed sessions, as your application sets "
                   "it (repeatable), e.g. session.x64quantprecision=1 (u8 x u8 integer path on x86 without VNNI)")


class ConsoleTask:
    """Progress on stderr (only when it is a terminal) and Ctrl+C as cancellation."""

    def __init__(self, quiet: bool = False):
        self.tty = sys.stderr.isatty() and not quiet
        self._last = ""

    def report(self, fraction: float, message: str = "") -> None:
        if not self.tty:
            return
        line = f"\r[{'#' * int(fraction * 20):<20}] {message[:60]:<60}"
        if line != self._last:
            sys.stderr.write(line)
            sys.stderr.flush()
            self._last = line

    def check(self) -> None:
        pass

    def done(self) -> None:
        if self.tty and self._last:
            sys.stderr.write("\r" + " " * 84 + "\r")
            sys.stderr.flush()
            self._last = ""


def print_notes(notes: list[str]) -> None:
    for n in notes:
        print(f"note: {n}")


def print_model_and_calibration(s, task, extra: str = "", complete: bool = False) -> object:
    """The first lines `quantize`, `calib` and `tune` print: the model, its notes, the calibration (``complete``:
    every tensor to quantize, also those onnxruntime gives their activation's range); returns it."""
    print(f"model    {s.prepared.source}  ({len(s.graph.nodes)} nodes{extra})")
    print_notes(s.prepared.notes)
    cal = s.calibration(task, complete=complete)
    task.done()
    how = "loaded from cache" if s.calibration_from_cache else "collected"
    away = (f" ({len(cal.fused_away)} more take the range of the Relu/Clip they feed, as onnxruntime fuses them)"
            if cal.fused_away else "")
    print(f"calib    {len(s.calib_data)} samples from {s.calib_data.description}; "
          f"{len(cal.histograms)} tensor histograms {how}{away}")
    return cal
