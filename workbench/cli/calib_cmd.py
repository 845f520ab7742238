"""``qwb calib``: every calibrated tensor's range under each method, its clipping, and the method that wins."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from analyzers.calibration.methods import METHODS

from ..calib_lab import build_lab
from ..calibration_cache import calibration_mask_limits
from ..errors import WorkbenchError
from ..safe_paths import write_text
from .common import ConsoleTask, add_model_args, open_session, print_model_and_calibration, print_notes

RANGE_WIDTH = 19


def register(sub) -> None:
    """Add ``qwb calib`` to the command line."""
    p = sub.add_parser("calib", help="compare calibration methods per tensor (MinMax, Percentile, Entropy, MSE)",
                       description="Collect (or load cached) calibration histograms and show, for every tensor "
                       "that will be quantized, the range each method picks, the clipping under the recipe's "
                       "method, and the method with the lowest predicted error of that tensor alone.")
    add_model_args(p, eval_arg=False)
    p.add_argument("--json", metavar="OUT", help="also write the comparison with every histogram (counts and bin "
                   "edges) as versioned JSON, for the GUI and reports")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Calibrate (or load the cache), compare the methods, print the table, optionally write the JSON."""

    task = ConsoleTask()
    t0 = time.perf_counter()
    s = open_session(args, [args.json])
    st = s.recipe.settings
    cal = print_model_and_calibration(s, task, complete=True)
    print(f"recipe   {st.activation_type} activations ({'symmetric' if st.symmetric_activations else 'asymmetric'}), "
          f"method {st.calibration_method}, percentile {st.percentile:g}"
          + (f"  [{args.recipe}]" if args.recipe else ""))
    lab = build_lab(s.graph, s.recipe, cal, model=s.prepared.source, data=s.calib_data.description,
                    from_cache=s.calibration_from_cache, task=task,
                    mask_limits=calibration_mask_limits(s.prepared, cal))
    task.done()
    print()
    print_table(lab, st.percentile)
    print()
    wins = ", ".join(f"{m} {n}" for m, n in sorted(lab.winners().items(), key=lambda kv: -kv[1]) if n)
    fused = sum(1 for t in lab.tensors if t.fused_into)
    print(f"best     {wins}  (lowest predicted error of each tensor quantized alone; recipe uses "
          f"{st.calibration_method})" + (f"; {fused} tensors fused into the activation after them" if fused else ""))
    print_notes(lab.notes)
    if args.json:
        write_json(lab, Path(args.json))
        print(f"wrote    {args.json}  (format {lab.format}, {len(lab.tensors)} tensors with histograms)")
    print(f"done in {time.perf_counter() - t0:.2f} s")
    return 0


def print_table(lab, global_percentile: float) -> None:
    """One line per tensor: range per method (recipe's marked *), clipping under the recipe, winner, dB gained."""

    width = min(max([len(t.tensor) for t in lab.tensors] + [6]), 36)
    heads = [("p" + f"{global_percentile:g}" if m == "percentile" else m) for m in METHODS]
    print(f"{'tensor':<{width}}  type  " + "".join(f"{h:<{RANGE_WIDTH}}" for h in heads)
          + f"{'clip%':>8}  {'best':<10}{'gain dB':>7}")
    for t in lab.tensors:
        name = _short(t.tensor, width)
        if t.fused_into:
            print(f"{name:<{width}}  {t.qtype:<4}  (fused: quantized with the range of {t.fused_into})")
            continue
        if t.mask_handling == "float":  # never quantized: no method's range applies
            print(f"{name:<{width}}  {t.qtype:<4}  {_data_range(t.histogram)}  (kept in float: on the mask path)")
            continue
        cells = []
        for m in METHODS:
            st = t.methods[m]
            cell = f"{_g(st.lo)} .. {_g(st.hi)}"
            if m == "percentile" and t.percentile != global_percentile:
                cell += f" p{t.percentile:g}"
            cells.append(("*" if m == t.recipe_method else " ") + cell)
        gain = t.comparison.gap_db(t.recipe_method)
        print(f"{name:<{width}}  {t.qtype:<4} " + "".join(f"{c:<{RANGE_WIDTH}}" for c in cells)
              + f"{100 * t.recipe_stats.clip_rate:>8.4f}  {t.winner:<10}{gain:>7.2f}")
        if t.histogram.special:  # the ranges above are of the ordinary values: say what else the tensor holds
            where = "they saturate to the range's low/high end" if t.mask_handling == "clamp" else "NaN"
            print(f"{'':<{width}}        {_data_range(t.histogram)}  ({where})")
    print(f"{'':<{width}}  * the recipe's method for that tensor; clip% = values saturating under it; "
          "gain = SQNR the best method adds")


def write_json(lab, path: Path) -> None:
    """The lab as JSON; a path that cannot be written is a user error, not a crash."""

    try:
        write_text(path, json.dumps(lab.to_dict(), allow_nan=False))
    except OSError as e:
        raise WorkbenchError(f"cannot write {path} ({e.strerror or e})", "pass --json a path in a writable "
                             "folder") from e


def _data_range(h) -> str:
    """'-inf .. 0 (mask: 1,234 -inf kept out of the range)': the tensor's true extent and what was left out."""
    kind = "mask" if h.special.mask else "special values"
    return f"{_g(h.data_min)} .. {_g(h.data_max)} ({kind}: {h.special.describe()} kept out of the range)"


def _g(v: float) -> str:
    return f"{v:.4g}" if v != 0 else "0"


def _short(name: str, width: int) -> str:
    return name if len(name) <= width else name[: width // 2 - 1] + "~" + name[-(width - width // 2):]
